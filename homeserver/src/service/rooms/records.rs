//! Per-room metadata, aliases, the public directory, and send transaction IDs.

use myelin_storage::{Batch, Database, Direction, Table};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// What the engine needs to know about a room to append to it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoomRecord {
    pub short: u64,
    pub version: String,
    /// The events nothing points to yet; new local events point to all of them.
    pub forward_extremities: Vec<String>,
    /// Highest depth in the room, so a new event's depth is one more.
    pub max_depth: u64,
    /// The state after the forward extremities.
    pub current_state_group: u64,
}

const ROOMS: Table<String, RoomRecord> = Table::new("roomid_room");
const ALIASES: Table<String, String> = Table::new("alias_roomid");
const ROOM_ALIASES: Table<(String, String), String> = Table::new("roomid_alias_creator");
const DIRECTORY: Table<String, ()> = Table::new("publicroomid");
const TXNS: Table<(String, String, String), String> = Table::new("userdevicetxn_eventid");

pub const TABLES: &[&str] = &["roomid_room", "alias_roomid", "roomid_alias_creator", "publicroomid", "userdevicetxn_eventid"];

#[derive(Clone)]
pub struct Records {
    db: Database,
}

impl Records {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    pub fn room(&self, room_id: &str) -> Result<Option<RoomRecord>> {
        Ok(ROOMS.get(&self.db, &room_id.to_owned())?)
    }

    pub fn put_room(&self, batch: &mut Batch, room_id: &str, record: &RoomRecord) -> Result<()> {
        Ok(ROOMS.put(batch, &room_id.to_owned(), record)?)
    }

    pub fn alias(&self, alias: &str) -> Result<Option<String>> {
        Ok(ALIASES.get(&self.db, &alias.to_owned())?)
    }

    pub fn put_alias(&self, batch: &mut Batch, alias: &str, room_id: &str, creator: &str) -> Result<()> {
        ALIASES.put(batch, &alias.to_owned(), &room_id.to_owned())?;
        Ok(ROOM_ALIASES.put(batch, &(room_id.to_owned(), alias.to_owned()), &creator.to_owned())?)
    }

    pub fn delete_alias(&self, batch: &mut Batch, alias: &str, room_id: &str) {
        ALIASES.delete(batch, &alias.to_owned());
        ROOM_ALIASES.delete(batch, &(room_id.to_owned(), alias.to_owned()));
    }

    /// The local aliases of a room and who created each.
    pub fn aliases_of(&self, room_id: &str) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for entry in ROOM_ALIASES.iter_prefix(&self.db, &room_id.to_owned(), Direction::Forward)? {
            let ((_, alias), creator) = entry?;
            out.push((alias, creator));
        }
        Ok(out)
    }

    pub fn set_published(&self, batch: &mut Batch, room_id: &str, published: bool) -> Result<()> {
        if published {
            DIRECTORY.put(batch, &room_id.to_owned(), &())?;
        } else {
            DIRECTORY.delete(batch, &room_id.to_owned());
        }
        Ok(())
    }

    pub fn is_published(&self, room_id: &str) -> Result<bool> {
        Ok(DIRECTORY.contains(&self.db, &room_id.to_owned())?)
    }

    pub fn published_rooms(&self) -> Result<Vec<String>> {
        DIRECTORY.iter_all(&self.db)?.map(|entry| Ok(entry?.0)).collect()
    }

    pub fn txn(&self, user_id: &str, device_id: &str, txn_id: &str) -> Result<Option<String>> {
        Ok(TXNS.get(&self.db, &(user_id.to_owned(), device_id.to_owned(), txn_id.to_owned()))?)
    }

    pub fn put_txn(&self, batch: &mut Batch, user_id: &str, device_id: &str, txn_id: &str, event_id: &str) -> Result<()> {
        Ok(TXNS.put(batch, &(user_id.to_owned(), device_id.to_owned(), txn_id.to_owned()), &event_id.to_owned())?)
    }
}
