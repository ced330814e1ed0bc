//! To-device messages: queued per device, delivered by sync, deleted once acknowledged.
//!
//! A message is deleted only when the device syncs again with a token at or past the response
//! that carried it, never when that response is sent: a response lost on the way (a dropped
//! connection, a crash of the client) is answered again, with the same messages, when the
//! client repeats its old token. Each device keeps one delivery record, "the response with
//! `next_batch` N carried messages up to position P"; a sync with `since >= N` acknowledges
//! them.

use std::collections::BTreeMap;

use myelin_storage::{Batch, Direction, Table};
use ruma::{DeviceId, OwnedDeviceId, OwnedUserId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::E2ee;
use crate::error::{Error, Result};

pub const MESSAGES_TABLE: &str = "userid_deviceid_stream_todevice";
pub const DELIVERED_TABLE: &str = "userid_deviceid_todevicedelivered";
pub const TRANSACTIONS_TABLE: &str = "userid_deviceid_txnid_todevicetxn";
/// (recipient, device, stream position) → the message.
const MESSAGES: Table<(String, String, u64), ToDeviceMessage> = Table::new(MESSAGES_TABLE);
/// (recipient, device) → (the `next_batch` of the last response with messages, the position of
/// its last message).
const DELIVERED: Table<(String, String), (u64, u64)> = Table::new(DELIVERED_TABLE);
/// (sender, device, transaction ID) → (): sends already done, so a retried request is not
/// delivered twice.
const TRANSACTIONS: Table<(String, String, String), ()> = Table::new(TRANSACTIONS_TABLE);

/// At most this many messages go out in one sync response; the rest follow in the next.
pub const MAX_PER_SYNC: usize = 100;
/// The largest content of one to-device message (that of a PDU).
pub const MAX_CONTENT_BYTES: usize = 65_536;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ToDeviceMessage {
    pub sender: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub content: Value,
}

/// Recipients of one send: user → device → content.
pub type Recipients = BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, Value>>;

impl E2ee {
    /// Whether `(sender, device)` already sent transaction `txn_id`.
    fn to_device_sent(&self, sender: &UserId, device: &DeviceId, txn_id: &str) -> Result<bool> {
        Ok(TRANSACTIONS.contains(&self.db, &(sender.to_string(), device.to_string(), txn_id.to_owned()))?)
    }

    /// Queues one message per local recipient device, records the transaction, and wakes the
    /// recipients, all in one durable write. Answers `false`, sending nothing, when the
    /// transaction was already sent (checked under the sender's lock, so two concurrent
    /// retries cannot both send).
    #[tracing::instrument(skip(self, recipients))]
    pub async fn send_to_device(&self, sender: &UserId, device: &DeviceId, txn_id: Option<&str>, event_type: &str, recipients: Recipients) -> Result<bool> {
        let _guard = self.lock_user(sender).await;
        if let Some(txn_id) = txn_id
            && self.to_device_sent(sender, device, txn_id)?
        {
            return Ok(false);
        }
        let mut batch = Batch::new();
        let mut tickets = Vec::new();
        for (user, devices) in &recipients {
            for (recipient_device, content) in devices {
                let size = serde_json::to_vec(content).map_or(usize::MAX, |bytes| bytes.len());
                if size > MAX_CONTENT_BYTES {
                    return Err(Error::too_large(format!("A to-device message is limited to {MAX_CONTENT_BYTES} bytes")));
                }
                let ticket = self.rooms.stream.allocate()?;
                let message = ToDeviceMessage { sender: sender.to_string(), event_type: event_type.to_owned(), content: content.clone() };
                MESSAGES.put(&mut batch, &(user.to_string(), recipient_device.to_string(), ticket.position), &message)?;
                tickets.push(ticket);
            }
        }
        if let Some(txn_id) = txn_id {
            TRANSACTIONS.put(&mut batch, &(sender.to_string(), device.to_string(), txn_id.to_owned()), &())?;
        }
        self.db.write_async(batch).await?;
        let last = tickets.iter().map(|ticket| ticket.position).max();
        drop(tickets);
        if let Some(position) = last {
            self.rooms.notifier.notify(recipients.keys().map(|user| user.as_str()), position);
        }
        Ok(true)
    }

    /// Sends messages for other servers' users as `m.direct_to_device` EDUs, one per server
    /// (their servers deliver them; `*` stays `*`). The queue is durable, so the send is too.
    pub async fn send_to_remote_devices(&self, sender: &UserId, event_type: &str, txn_id: &str, recipients: Recipients) -> Result<()> {
        let mut by_server: BTreeMap<ruma::OwnedServerName, Recipients> = BTreeMap::new();
        for (user, devices) in recipients {
            by_server.entry(user.server_name().to_owned()).or_default().insert(user, devices);
        }
        for (server, messages) in by_server {
            let edu = json!({ "edu_type": "m.direct_to_device", "content": {
                "sender": sender, "type": event_type, "message_id": format!("{sender}/{txn_id}"), "messages": messages,
            }});
            self.sender.enqueue_edu(server, edu).await?;
        }
        Ok(())
    }

    /// Deletes the messages a previous response carried, if `since` shows the device got it.
    pub async fn acknowledge_to_device(&self, user: &UserId, device: &DeviceId, since: u64) -> Result<()> {
        let key = (user.to_string(), device.to_string());
        let Some((next_batch, last_position)) = DELIVERED.get(&self.db, &key)? else { return Ok(()) };
        if since < next_batch {
            return Ok(());
        }
        let mut batch = Batch::new();
        self.stage_to_device_deletion(&mut batch, user, device, last_position)?;
        DELIVERED.delete(&mut batch, &key);
        Ok(self.db.write_async(batch).await?)
    }

    /// Stages the deletion of the device's messages up to position `up_to`.
    pub(super) fn stage_to_device_deletion(&self, batch: &mut Batch, user: &UserId, device: &DeviceId, up_to: u64) -> Result<()> {
        for entry in MESSAGES.iter_prefix(&self.db, &(user.to_string(), device.to_string()), Direction::Forward)? {
            let (key, _) = entry?;
            if key.2 > up_to {
                break;
            }
            MESSAGES.delete(batch, &key);
        }
        Ok(())
    }

    /// Whether messages wait for the device (up to `now`): a sync must not long-poll then.
    pub fn has_to_device(&self, user: &UserId, device: &DeviceId, now: u64) -> Result<bool> {
        let first = MESSAGES.iter_prefix(&self.db, &(user.to_string(), device.to_string()), Direction::Forward)?.next().transpose()?;
        Ok(first.is_some_and(|((_, _, position), _)| position <= now))
    }

    /// The messages waiting for the device, oldest first, at most [`MAX_PER_SYNC`], with the
    /// position of the last one.
    pub fn pending_to_device(&self, user: &UserId, device: &DeviceId, now: u64) -> Result<(Vec<Value>, Option<u64>)> {
        let mut events = Vec::new();
        let mut last = None;
        for entry in MESSAGES.iter_prefix(&self.db, &(user.to_string(), device.to_string()), Direction::Forward)? {
            let ((_, _, position), message) = entry?;
            if position > now || events.len() == MAX_PER_SYNC {
                break;
            }
            events.push(json!({ "sender": message.sender, "type": message.event_type, "content": message.content }));
            last = Some(position);
        }
        Ok((events, last))
    }

    /// Remembers that the response with `next_batch` carried messages up to `last_position`.
    pub async fn record_to_device_delivery(&self, user: &UserId, device: &DeviceId, next_batch: u64, last_position: u64) -> Result<()> {
        let mut batch = Batch::new();
        DELIVERED.put(&mut batch, &(user.to_string(), device.to_string()), &(next_batch, last_position))?;
        Ok(self.db.write_async(batch).await?)
    }

    /// Stages the removal of a deleted device's queue, delivery record and the transaction IDs
    /// it sent with (a device ID used again starts afresh).
    pub(super) fn stage_to_device_removal(&self, batch: &mut Batch, user: &UserId, device: &DeviceId) -> Result<()> {
        let key = (user.to_string(), device.to_string());
        for entry in MESSAGES.iter_prefix(&self.db, &key, Direction::Forward)? {
            MESSAGES.delete(batch, &entry?.0);
        }
        for entry in TRANSACTIONS.iter_prefix(&self.db, &key, Direction::Forward)? {
            TRANSACTIONS.delete(batch, &entry?.0);
        }
        DELIVERED.delete(batch, &key);
        Ok(())
    }
}
