//! Account data, global and per room. Every change takes a position in the global stream
//! and wakes the user's syncs, so sync can send exactly what changed since a token.
//!
//! Every event stored in a room is run through the push rules of each local member (for
//! unread counts), so the parsed rules and ignore list of a user are kept in memory: parsing
//! them afresh cost more than everything else a send does in a room of a few hundred members.
//! Every clone of [`AccountData`] shares that cache, and every write of either type goes
//! through [`AccountData::set`], which keeps it true.

use std::{collections::HashSet, sync::Arc};

use myelin_storage::{Batch, Database, Direction, Table};
use ruma::{OwnedUserId, UserId, push::Ruleset};
use serde_json::Value;

use super::{cache::SharedCache, notifier::Notifier, rooms::StreamPositions};
use crate::error::{Error, Result};

pub const PUSH_RULES: &str = "m.push_rules";
const IGNORED_USERS: &str = "m.ignored_user_list";

/// Users whose [`PushSettings`] are kept parsed (a few KiB each); a full cache drops its least
/// recently used entry.
const PUSH_SETTINGS_CACHED: usize = 4096;

/// What deciding whether an event notifies a user needs from their account data.
#[derive(Debug)]
pub struct PushSettings {
    /// Their push rules: what they stored, or the server defaults.
    pub ruleset: Ruleset,
    /// The users they ignore (`m.ignored_user_list`).
    pub ignored: HashSet<String>,
}

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
    push_settings: SharedCache<OwnedUserId, Arc<PushSettings>>,
}

impl AccountData {
    pub fn new(db: Database, stream: StreamPositions, notifier: Notifier) -> Self {
        Self { db, stream, notifier, push_settings: SharedCache::new(PUSH_SETTINGS_CACHED) }
    }

    /// `room` is `None` for global account data.
    pub fn get(&self, user_id: &UserId, room: Option<&str>, event_type: &str) -> Result<Option<Value>> {
        Ok(DATA.get(&self.db, &(user_id.to_string(), room.unwrap_or_default().to_owned(), event_type.to_owned()))?)
    }

    pub async fn set(&self, user_id: &UserId, room: Option<&str>, event_type: &str, content: &Value) -> Result<()> {
        let changes_push_settings = room.is_none() && (event_type == PUSH_RULES || event_type == IGNORED_USERS);
        let room = room.unwrap_or_default().to_owned();
        let ticket = self.stream.allocate()?;
        let mut batch = Batch::new();
        DATA.put(&mut batch, &(user_id.to_string(), room.clone(), event_type.to_owned()), content)?;
        CHANGES.put(&mut batch, &(user_id.to_string(), ticket.position), &(room, event_type.to_owned()))?;
        if changes_push_settings {
            self.push_settings.begin_change(user_id.to_owned());
        }
        let written = self.db.write_async(batch).await;
        if changes_push_settings {
            self.push_settings.end_change(user_id);
        }
        written?;
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
    pub fn ignored_users(&self, user_id: &UserId) -> Result<HashSet<String>> {
        Ok(self.push_settings(user_id)?.ignored.clone())
    }

    /// The user's push rules and ignore list, parsed.
    pub fn push_settings(&self, user_id: &UserId) -> Result<Arc<PushSettings>> {
        if let Some(settings) = self.push_settings.get(user_id) {
            return Ok(settings);
        }
        let ticket = self.push_settings.ticket();
        let ruleset = match self.get(user_id, None, PUSH_RULES)?.and_then(|mut content| content.get_mut("global").map(Value::take)) {
            Some(global) => serde_json::from_value(global).map_err(|e| Error::internal(format!("stored push rules: {e}")))?,
            None => Ruleset::server_default(user_id),
        };
        let ignored = self
            .get(user_id, None, IGNORED_USERS)?
            .as_ref()
            .and_then(|content| content.get("ignored_users"))
            .and_then(Value::as_object)
            .map(|users| users.keys().cloned().collect())
            .unwrap_or_default();
        let settings = Arc::new(PushSettings { ruleset, ignored });
        self.push_settings.insert(ticket, user_id.to_owned(), settings.clone());
        Ok(settings)
    }
}
