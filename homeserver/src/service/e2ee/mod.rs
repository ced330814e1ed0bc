//! End-to-end encryption support: what a server keeps so that clients can encrypt to each
//! other. The server never sees a plaintext or a private key; it stores and hands out public
//! keys (`keys.rs`, `cross_signing.rs`), relays to-device messages (`to_device.rs`), tells
//! clients whose devices changed (`device_lists.rs`), and keeps encrypted room-key backups
//! (`backup.rs`).
//!
//! Everything that changes what another client must know (a device's keys, a new or deleted
//! device, cross-signing keys) takes a position on the global stream, so one sync token
//! orders it with the timeline (see `device_lists.rs`).

pub mod backup;
pub mod cross_signing;
pub mod dehydrated;
pub mod device_lists;
pub mod keys;
pub mod query;
mod remote;
pub mod signatures;
pub mod sync;
pub mod to_device;

use std::{
    collections::hash_map::DefaultHasher,
    hash::{Hash, Hasher},
    sync::Arc,
};

use myelin_storage::{Batch, Database};
use ruma::{DeviceId, OwnedDeviceId, OwnedServerName, UserId};

use super::{federation_client::FederationClient, federation_sender::FederationSender, rooms::Rooms};
use crate::error::Result;

pub const TABLES: &[&str] = &[
    keys::DEVICE_KEYS_TABLE,
    keys::ONE_TIME_KEYS_TABLE,
    keys::FALLBACK_KEYS_TABLE,
    cross_signing::CROSS_SIGNING_KEYS_TABLE,
    cross_signing::FOREIGN_SIGNATURES_TABLE,
    device_lists::STREAM_TABLE,
    device_lists::LATEST_TABLE,
    to_device::MESSAGES_TABLE,
    to_device::DELIVERED_TABLE,
    to_device::TRANSACTIONS_TABLE,
    backup::VERSIONS_TABLE,
    backup::KEYS_TABLE,
    dehydrated::DEHYDRATED_TABLE,
];

/// Key writes of one user are serialised by one of these locks (picked by a hash of the user
/// ID): a one-time key is read and deleted under it, so concurrent claims can never hand out
/// the same key twice, and a backup's count and etag stay in step with its keys.
const USER_LOCK_STRIPES: usize = 64;

#[derive(Clone)]
pub struct E2ee {
    db: Database,
    rooms: Rooms,
    sender: FederationSender,
    federation: FederationClient,
    server_name: OwnedServerName,
    user_locks: Arc<Vec<tokio::sync::Mutex<()>>>,
}

impl E2ee {
    pub fn new(db: Database, rooms: Rooms, sender: FederationSender, federation: FederationClient, server_name: OwnedServerName) -> Self {
        let user_locks = Arc::new((0..USER_LOCK_STRIPES).map(|_| tokio::sync::Mutex::new(())).collect());
        Self { db, rooms, sender, federation, server_name, user_locks }
    }

    /// The lock serialising `user`'s key writes.
    async fn lock_user(&self, user: &UserId) -> tokio::sync::MutexGuard<'_, ()> {
        let mut hasher = DefaultHasher::new();
        user.as_str().hash(&mut hasher);
        let stripe = (hasher.finish() % USER_LOCK_STRIPES as u64) as usize;
        self.user_locks[stripe].lock().await
    }

    fn is_local(&self, user: &UserId) -> bool {
        user.server_name() == self.server_name
    }
}

/// A device removal staged by [`E2ee::stage_device_removal`], to commit with its batch.
pub struct DeviceRemoval {
    staged: device_lists::StagedListChange,
}

impl E2ee {
    /// Stages, in the batch that deletes the devices, the removal of their keys and to-device
    /// queues, and a change of the user's device list.
    pub fn stage_device_removal(&self, batch: &mut Batch, user: &UserId, devices: &[OwnedDeviceId]) -> Result<DeviceRemoval> {
        for device in devices {
            let device: &DeviceId = device;
            self.stage_device_keys_removal(batch, user, device)?;
            self.stage_to_device_removal(batch, user, device)?;
            self.stage_dehydrated_removal(batch, user, device)?;
        }
        let staged = self.stage_device_list_change(batch, user, device_lists::ListChange::Deleted(devices.to_vec()))?;
        Ok(DeviceRemoval { staged })
    }

    /// Writes the batch of a device removal and tells those who share a room with the user.
    pub async fn commit_device_removal(&self, batch: Batch, user: &UserId, removal: DeviceRemoval) -> Result<()> {
        self.commit_device_list_change(batch, user, removal.staged).await
    }
}
