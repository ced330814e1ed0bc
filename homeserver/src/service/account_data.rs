//! Account data, global and per room. Every change takes a position in the global stream
//! and wakes the user's syncs, so sync can send exactly what changed since a token.

use myelin_storage::{Batch, Database, Direction, Table};
use ruma::UserId;
use serde_json::Value;

use super::{notifier::Notifier, rooms::StreamPositions};
use crate::error::Result;

/// Global account data has the room part "" in these keys.
const DATA: Table<(String, String, String), Value> = Table::new("userid_roomid_type_accountdata");
/// (user, stream) → (room or "", type): the user's account data changes in stream order.
const CHANGES: Table<(String, u64), (String, String)> = Table::new("userid_stream_accountdatachange");

pub const TABLES: &[&str] = &["userid_roomid_type_accountdata", "userid_stream_accountdatachange"];

#[derive(Clone)]
pub struct AccountData {
    db: Database,
    stream: StreamPositions,
    notifier: Notifier,
}

impl AccountData {
    pub fn new(db: Database, stream: StreamPositions, notifier: Notifier) -> Self {
        Self { db, stream, notifier }
    }

    /// `room` is `None` for global account data.
    pub fn get(&self, user_id: &UserId, room: Option<&str>, event_type: &str) -> Result<Option<Value>> {
        Ok(DATA.get(&self.db, &(user_id.to_string(), room.unwrap_or_default().to_owned(), event_type.to_owned()))?)
    }

    pub async fn set(&self, user_id: &UserId, room: Option<&str>, event_type: &str, content: &Value) -> Result<()> {
        let room = room.unwrap_or_default().to_owned();
        let ticket = self.stream.allocate()?;
        let mut batch = Batch::new();
        DATA.put(&mut batch, &(user_id.to_string(), room.clone(), event_type.to_owned()), content)?;
        CHANGES.put(&mut batch, &(user_id.to_string(), ticket.position), &(room, event_type.to_owned()))?;
        self.db.write_async(batch).await?;
        let position = ticket.position;
        drop(ticket);
        self.notifier.notify([user_id.as_str()], position);
        Ok(())
    }

    /// (room or "", type, content) of everything changed in (since, up_to]; everything when
    /// `since` is None. Each key appears once, with its current content.
    pub fn changes(&self, user_id: &UserId, since: Option<u64>, up_to: u64) -> Result<Vec<(String, String, Value)>> {
        let mut keys = std::collections::BTreeSet::new();
        let start = (user_id.to_string(), since.map_or(0, |s| s + 1));
        for entry in CHANGES.iter_from(&self.db, &start, Direction::Forward)? {
            let ((owner, position), key) = entry?;
            if owner != user_id.as_str() || position > up_to {
                break;
            }
            keys.insert(key);
        }
        let mut out = Vec::new();
        for (room, event_type) in keys {
            if let Some(content) = DATA.get(&self.db, &(user_id.to_string(), room.clone(), event_type.clone()))? {
                out.push((room, event_type, content));
            }
        }
        Ok(out)
    }

    /// The users `user` ignores (`m.ignored_user_list`): their events and invites are hidden
    /// from `user`.
    pub fn ignored_users(&self, user_id: &UserId) -> Result<std::collections::HashSet<String>> {
        let list = self.get(user_id, None, "m.ignored_user_list")?;
        Ok(list
            .as_ref()
            .and_then(|content| content.get("ignored_users"))
            .and_then(Value::as_object)
            .map(|users| users.keys().cloned().collect())
            .unwrap_or_default())
    }
}
