//! Dehydrated devices (MSC3814): a device a client parks on the server, encrypted with a key
//! only the user holds, so messages encrypted to it while all the user's clients are offline
//! can be read by the next client that logs in. The server keeps the opaque device data, the
//! device's keys (like any device's) and its to-device queue, which a client drains with
//! `POST …/dehydrated_device/{deviceId}/events`: each call acknowledges (deletes) what the
//! call before it returned, so a lost answer is answered again.

use myelin_storage::{Batch, Table};
use ruma::{DeviceId, OwnedDeviceId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::E2ee;
use crate::error::{Error, Result};

pub const DEHYDRATED_TABLE: &str = "userid_dehydrateddevice";
/// user → their one dehydrated device.
const DEHYDRATED: Table<String, DehydratedDevice> = Table::new(DEHYDRATED_TABLE);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DehydratedDevice {
    pub device_id: String,
    /// The client's encrypted device pickle, as it sent it.
    pub device_data: Value,
}

impl E2ee {
    pub fn dehydrated_device(&self, user: &UserId) -> Result<Option<DehydratedDevice>> {
        Ok(DEHYDRATED.get(&self.db, &user.to_string())?)
    }

    /// Records the user's dehydrated device (the caller created the device itself and stores
    /// its keys); answers the device it replaces, which the caller deletes.
    pub async fn set_dehydrated_device(&self, user: &UserId, device: DehydratedDevice) -> Result<Option<OwnedDeviceId>> {
        let _guard = self.lock_user(user).await;
        let previous = self.dehydrated_device(user)?.map(|old| OwnedDeviceId::from(old.device_id)).filter(|old| old.as_str() != device.device_id);
        let mut batch = Batch::new();
        DEHYDRATED.put(&mut batch, &user.to_string(), &device)?;
        self.db.write_async(batch).await?;
        Ok(previous)
    }

    /// Forgets the user's dehydrated device record (the caller deletes the device); answers
    /// its ID, or `M_NOT_FOUND`.
    pub async fn remove_dehydrated_device(&self, user: &UserId) -> Result<OwnedDeviceId> {
        let _guard = self.lock_user(user).await;
        let device = self.dehydrated_device(user)?.ok_or_else(|| Error::not_found("No dehydrated device"))?;
        let mut batch = Batch::new();
        DEHYDRATED.delete(&mut batch, &user.to_string());
        self.db.write_async(batch).await?;
        Ok(device.device_id.into())
    }

    /// The next page of to-device messages for the dehydrated device, after deleting those up
    /// to `acknowledged` (the `next_batch` of the previous page). Answers the page and its
    /// `next_batch`.
    pub async fn dehydrated_device_events(&self, user: &UserId, device: &DeviceId, acknowledged: Option<&str>) -> Result<(Vec<Value>, Option<String>)> {
        let is_theirs = self.dehydrated_device(user)?.is_some_and(|dehydrated| dehydrated.device_id == device.as_str());
        if !is_theirs {
            return Err(Error::forbidden("Not your dehydrated device"));
        }
        if let Some(acknowledged) = acknowledged {
            let up_to: u64 = acknowledged.parse().map_err(|_| Error::invalid_param("Invalid next_batch"))?;
            let mut batch = Batch::new();
            self.stage_to_device_deletion(&mut batch, user, device, up_to)?;
            self.db.write_async(batch).await?;
        }
        let (events, last) = self.pending_to_device(user, device, self.rooms.stream.safe())?;
        Ok((events, last.map(|position| position.to_string()).or_else(|| acknowledged.map(str::to_owned))))
    }

    pub(super) fn stage_dehydrated_removal(&self, batch: &mut Batch, user: &UserId, device: &DeviceId) -> Result<()> {
        if self.dehydrated_device(user)?.is_some_and(|dehydrated| dehydrated.device_id == device.as_str()) {
            DEHYDRATED.delete(batch, &user.to_string());
        }
        Ok(())
    }
}
