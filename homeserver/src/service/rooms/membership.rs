//! Membership indexes in both directions: a user's rooms, and a room's members.

use myelin_storage::{Batch, Database, Direction, Table};
use serde::{Deserialize, Serialize};

use crate::error::Result;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MembershipEntry {
    /// join, invite, leave, ban or knock.
    pub membership: String,
    /// The member event that set it.
    pub event_id: String,
    /// Its stream position, so sync can tell what changed since a token.
    pub stream: u64,
}

const USER_ROOMS: Table<(String, String), MembershipEntry> = Table::new("userid_roomid_membership");
const ROOM_USERS: Table<(String, String), MembershipEntry> = Table::new("roomid_userid_membership");
/// Rooms a user has forgotten: left rooms that no longer appear anywhere for them.
const FORGOTTEN: Table<(String, String), ()> = Table::new("userid_roomid_forgotten");

pub const TABLES: &[&str] = &["userid_roomid_membership", "roomid_userid_membership", "userid_roomid_forgotten"];

#[derive(Clone)]
pub struct Membership {
    db: Database,
}

impl Membership {
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    pub fn set(&self, batch: &mut Batch, room_id: &str, user_id: &str, entry: &MembershipEntry) -> Result<()> {
        USER_ROOMS.put(batch, &(user_id.to_owned(), room_id.to_owned()), entry)?;
        ROOM_USERS.put(batch, &(room_id.to_owned(), user_id.to_owned()), entry)?;
        // Joining or being invited again brings a forgotten room back.
        if entry.membership != "leave" && entry.membership != "ban" {
            FORGOTTEN.delete(batch, &(user_id.to_owned(), room_id.to_owned()));
        }
        Ok(())
    }

    pub fn get(&self, room_id: &str, user_id: &str) -> Result<Option<MembershipEntry>> {
        Ok(ROOM_USERS.get(&self.db, &(room_id.to_owned(), user_id.to_owned()))?)
    }

    pub fn membership(&self, room_id: &str, user_id: &str) -> Result<Option<String>> {
        Ok(self.get(room_id, user_id)?.map(|entry| entry.membership))
    }

    /// The user's rooms with their membership (forgotten rooms excluded).
    pub fn rooms_of(&self, user_id: &str) -> Result<Vec<(String, MembershipEntry)>> {
        let mut rooms = Vec::new();
        for entry in USER_ROOMS.iter_prefix(&self.db, &user_id.to_owned(), Direction::Forward)? {
            let ((_, room_id), membership) = entry?;
            if !FORGOTTEN.contains(&self.db, &(user_id.to_owned(), room_id.clone()))? {
                rooms.push((room_id, membership));
            }
        }
        Ok(rooms)
    }

    /// The room's members with any membership.
    pub fn members_of(&self, room_id: &str) -> Result<Vec<(String, MembershipEntry)>> {
        let mut members = Vec::new();
        for entry in ROOM_USERS.iter_prefix(&self.db, &room_id.to_owned(), Direction::Forward)? {
            let ((_, user_id), membership) = entry?;
            members.push((user_id, membership));
        }
        Ok(members)
    }

    pub fn forget(&self, batch: &mut Batch, room_id: &str, user_id: &str) -> Result<()> {
        Ok(FORGOTTEN.put(batch, &(user_id.to_owned(), room_id.to_owned()), &())?)
    }
}
