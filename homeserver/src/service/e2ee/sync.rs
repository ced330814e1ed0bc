//! The end-to-end encryption parts of a `/sync` response: to-device messages, device-list
//! changes, one-time key counts and unused fallback key types.

use ruma::{DeviceId, UserId};
use serde_json::{Value, json};

use super::E2ee;
use crate::error::Result;

impl E2ee {
    /// The top-level sync fields for `device`, up to stream position `now`. The key counts are
    /// always present, zero included (as Synapse sends them): clients upload keys when they
    /// see them low.
    pub fn sync_fields(&self, user: &UserId, device: &DeviceId, since: Option<u64>, now: u64) -> Result<Value> {
        let (to_device, _) = self.pending_to_device(user, device, now)?;
        let (changed, left) = match since {
            Some(since) => self.device_list_changes(user, since, now)?,
            None => (Vec::new(), Vec::new()),
        };
        Ok(json!({
            "to_device": { "events": to_device },
            "device_lists": { "changed": changed, "left": left },
            "device_one_time_keys_count": self.one_time_key_counts(user, device)?,
            "device_unused_fallback_key_types": self.unused_fallback_key_types(user, device)?,
        }))
    }

    /// Records, once a response is final, which to-device messages it carried (see
    /// `to_device.rs`: they stay queued until the device syncs past `next_batch`).
    pub async fn sync_sent(&self, user: &UserId, device: &DeviceId, next_batch: u64) -> Result<()> {
        if let (_, Some(last)) = self.pending_to_device(user, device, next_batch)? {
            self.record_to_device_delivery(user, device, next_batch, last).await?;
        }
        Ok(())
    }
}
