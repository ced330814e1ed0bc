//! Read receipts: public (`m.read`, shared with the room and its servers) and private
//! (`m.read.private`, seen by their owner only), per thread, on the global stream.
//!
//! **Delivery receipts** (Myelin's unstable extension, advertised as
//! [`DELIVERY_FEATURE`] in `/versions`): the "delivered" tick of chat apps, which Matrix lacks.
//! When a user's sync hands them events that others sent, the server records a receipt of type
//! [`DELIVERED`] for that user on the newest of them, exactly like a public read receipt: it
//! reaches the room's members in the `m.receipt` ephemeral event (`{event_id: {"<type>":
//! {user: {ts}}}}`), where clients that do not know the type ignore it, as the spec asks of
//! unknown receipt types. A sender's client shows "delivered" once every other member has a
//! delivery (or read) receipt at or after its event. Only rooms of at most
//! [`DELIVERY_MAX_MEMBERS`] joined members get them (ticks are for conversations; in big
//! rooms each delivery would wake every member), and they stay on this server (the federation
//! receipt EDU only carries `m.read`).

use std::collections::{BTreeMap, HashSet};

use myelin_storage::{Batch, Database, Direction, Table, prefix_of};
use ruma::{OwnedServerName, RoomId, ServerName, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{
    federation_sender::FederationSender,
    rooms::{Rooms, notifications::ReadPositions},
};
use crate::{
    error::{Error, Result},
    util::now_millis,
};

/// The public receipt type, the only one that leaves this server.
pub const READ: &str = "m.read";
pub const READ_PRIVATE: &str = "m.read.private";
/// The delivery receipt type.
pub const DELIVERED: &str = "org.myelin.delivered";
/// The `unstable_features` flag announcing delivery receipts.
pub const DELIVERY_FEATURE: &str = "org.myelin.delivery_receipts";
/// Rooms with more joined members than this get no delivery receipts.
pub const DELIVERY_MAX_MEMBERS: usize = 50;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredReceipt {
    event_id: String,
    ts: u64,
    stream: u64,
}

/// (room, receipt type, user and thread) → the receipt. The user and the thread ("" when
/// unthreaded) share one key part, split by a newline no user ID contains.
type ReceiptKey = (String, String, String);

fn receipt_key(room_id: &RoomId, receipt_type: &str, user: &str, thread: &str) -> ReceiptKey {
    (room_id.to_string(), receipt_type.to_owned(), format!("{user}\n{thread}"))
}

/// The user and the thread of a key.
fn user_and_thread(key: &ReceiptKey) -> (&str, &str) {
    key.2.split_once('\n').unwrap_or((key.2.as_str(), ""))
}
const RECEIPTS: Table<ReceiptKey, StoredReceipt> = Table::new("roomid_type_userid_thread_receipt");
/// stream → the receipt set then, for incremental sync.
const RECEIPT_STREAM: Table<u64, ReceiptKey> = Table::new("stream_receipt");
pub const TABLES: &[&str] = &["roomid_type_userid_thread_receipt", "stream_receipt"];

#[derive(Clone)]
pub struct Receipts {
    db: Database,
    rooms: Rooms,
    sender: FederationSender,
    server_name: OwnedServerName,
}

impl Receipts {
    pub fn new(db: Database, rooms: Rooms, sender: FederationSender, server_name: OwnedServerName) -> Self {
        Self { db, rooms, sender, server_name }
    }

    /// A local user's receipt on an event they can see; public ones go to the room's servers.
    pub async fn set_local(&self, room_id: &RoomId, user: &UserId, receipt_type: &str, event_id: &str, thread: Option<&str>) -> Result<()> {
        let (_, event) = self.rooms.event_shared(event_id)?.ok_or_else(|| Error::not_found("Unknown event"))?;
        let viewer = self.rooms.viewer(room_id, user)?;
        if event.outlier || !self.rooms.can_see_event(&viewer, &event)? {
            return Err(Error::not_found("Unknown event"));
        }
        let ts = now_millis();
        self.store(room_id, user, receipt_type, event_id, thread, ts).await?;
        if receipt_type == READ {
            let mut data = json!({ "ts": ts });
            if let Some(thread) = thread {
                data["thread_id"] = json!(thread);
            }
            let edu = json!({ "edu_type": "m.receipt", "content": {
                room_id.as_str(): { READ: { user.as_str(): { "event_ids": [event_id], "data": data } } }
            }});
            for server in self.rooms.joined_servers(room_id)?.into_iter().filter(|s| *s != self.server_name) {
                self.sender.enqueue_edu(server, edu.clone()).await?;
            }
        }
        Ok(())
    }

    /// Records that `user`'s device received `event_id` (the newest event from someone else
    /// that a sync handed them), unless an earlier sync got further.
    pub async fn set_delivered(&self, room_id: &RoomId, user: &UserId, event_id: &str, event_stream: u64) -> Result<()> {
        let key = receipt_key(room_id, DELIVERED, user.as_str(), "");
        if let Some(previous) = RECEIPTS.get(&self.db, &key)?
            && let Some((_, event)) = self.rooms.event_shared(&previous.event_id)?
            && event.stream >= event_stream
        {
            return Ok(());
        }
        let joined = self.rooms.membership.members(room_id.as_str())?.iter().filter(|(_, entry)| entry.membership == "join").count();
        if joined > DELIVERY_MAX_MEMBERS {
            return Ok(());
        }
        self.store(room_id, user, DELIVERED, event_id, None, now_millis()).await
    }

    /// A public receipt another server reports for one of its users, who must be joined.
    pub async fn set_remote(&self, origin: &ServerName, room_id: &RoomId, user: &UserId, event_id: &str, thread: Option<&str>, ts: u64) -> Result<()> {
        if user.server_name() != origin {
            return Err(Error::forbidden("A server can only report its own users' receipts"));
        }
        if self.rooms.membership.membership(room_id.as_str(), user.as_str())?.as_deref() != Some("join") {
            return Err(Error::forbidden("The user is not in the room"));
        }
        self.store(room_id, user, READ, event_id, thread, ts).await
    }

    async fn store(&self, room_id: &RoomId, user: &UserId, receipt_type: &str, event_id: &str, thread: Option<&str>, ts: u64) -> Result<()> {
        let key = receipt_key(room_id, receipt_type, user.as_str(), thread.unwrap_or_default());
        let ticket = self.rooms.stream.allocate()?;
        let mut batch = Batch::new();
        if let Some(previous) = RECEIPTS.get(&self.db, &key)? {
            RECEIPT_STREAM.delete(&mut batch, &previous.stream);
        }
        RECEIPTS.put(&mut batch, &key, &StoredReceipt { event_id: event_id.to_owned(), ts, stream: ticket.position })?;
        RECEIPT_STREAM.put(&mut batch, &ticket.position, &key)?;
        self.db.write_async(batch).await?;
        let position = ticket.position;
        drop(ticket);
        if matches!(receipt_type, READ | READ_PRIVATE)
            && thread.is_none()
            && user.server_name() == self.server_name
            && let Some((_, event)) = self.rooms.event_shared(event_id)?
        {
            self.rooms.forget_read_notifications(user, event.room_short, event.stream).await?;
        }
        let members = self.rooms.membership.members(room_id.as_str())?;
        // A private receipt concerns its owner alone; a delivery receipt concerns everyone but
        // its owner, whose sync produced it (waking them would only cost them another round).
        let joined = members.iter().filter(|(_, entry)| entry.membership == "join").map(|(member, _)| member.as_str());
        let wake: Vec<&str> = match receipt_type {
            READ_PRIVATE => vec![user.as_str()],
            DELIVERED => joined.filter(|member| *member != user.as_str()).collect(),
            _ => joined.collect(),
        };
        self.rooms.notifier.notify(wake, position);
        Ok(())
    }

    /// How far `user` has read a room: where their read receipts, public or private, point.
    pub fn read_positions(&self, room_id: &RoomId, user: &UserId) -> Result<ReadPositions> {
        let mut read = ReadPositions::default();
        for receipt_type in [READ, READ_PRIVATE] {
            let mut prefix = prefix_of(&(room_id.to_string(), receipt_type.to_owned()));
            prefix.extend_from_slice(format!("{user}\n").as_bytes());
            for entry in RECEIPTS.iter_prefix_bytes(&self.db, &prefix, Direction::Forward)? {
                let (key, receipt) = entry?;
                if let Some((_, event)) = self.rooms.event_shared(&receipt.event_id)? {
                    read.record(Some(user_and_thread(&key).1), event.stream);
                }
            }
        }
        Ok(read)
    }

    /// The `m.receipt` event of a room for `viewer`: every receipt on an initial sync, those
    /// set in (since, up_to] otherwise; `None` when there is nothing to send.
    pub fn receipt_event(&self, room_id: &RoomId, viewer: &UserId, since: Option<u64>, up_to: u64) -> Result<Option<Value>> {
        let mut entries: Vec<(ReceiptKey, StoredReceipt)> = Vec::new();
        match since {
            None => {
                for entry in RECEIPTS.iter_prefix(&self.db, &room_id.to_string(), Direction::Forward)? {
                    let (key, receipt) = entry?;
                    if receipt.stream <= up_to {
                        entries.push((key, receipt));
                    }
                }
            }
            Some(since) => {
                for entry in RECEIPT_STREAM.iter_from(&self.db, &(since + 1), Direction::Forward)? {
                    let (stream, key) = entry?;
                    if stream > up_to {
                        break;
                    }
                    if key.0 == room_id.as_str()
                        && let Some(receipt) = RECEIPTS.get(&self.db, &key)?
                    {
                        entries.push((key, receipt));
                    }
                }
            }
        }
        let mut content: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
        for (key, receipt) in entries {
            let (user, thread) = user_and_thread(&key);
            let receipt_type = key.1.clone();
            // Private receipts are their owner's alone; one's own delivery receipts tell one
            // nothing.
            let own = user == viewer.as_str();
            if (receipt_type == READ_PRIVATE && !own) || (receipt_type == DELIVERED && own) {
                continue;
            }
            let mut data = json!({ "ts": receipt.ts });
            if !thread.is_empty() {
                data["thread_id"] = json!(thread);
            }
            let by_type = content.entry(receipt.event_id).or_default();
            let users = by_type.entry(receipt_type).or_insert_with(|| json!({}));
            users[user] = data;
        }
        if content.is_empty() {
            return Ok(None);
        }
        Ok(Some(json!({ "type": "m.receipt", "content": content })))
    }

    /// Rooms with a receipt set in (since, up_to].
    pub fn rooms_changed(&self, since: u64, up_to: u64) -> Result<HashSet<String>> {
        let mut rooms = HashSet::new();
        for entry in RECEIPT_STREAM.iter_from(&self.db, &(since + 1), Direction::Forward)? {
            let (stream, (room, _, _)) = entry?;
            if stream > up_to {
                break;
            }
            rooms.insert(room);
        }
        Ok(rooms)
    }
}
