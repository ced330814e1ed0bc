//! Membership indexes in both directions: a user's rooms, and a room's members.

use std::sync::Arc;

use myelin_storage::{Batch, Database, Direction, Table};
use serde::{Deserialize, Serialize};

use crate::service::cache::SharedCache;
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

/// Rooms whose member lists are kept in memory (every send and every sync reads them).
const MEMBERS_CACHE_ROOMS: usize = 512;
/// Rooms up to this size share the cache of [`MEMBERS_CACHE_ROOMS`] entries, which bounds it
/// at roughly 512 × 1000 entries of ~200 bytes.
const MEMBERS_CACHE_MAX_ROOM: usize = 1000;
/// Larger rooms have a cache of their own with this few entries: reading a big room's members
/// from the store costs milliseconds, and every sync and send of each of its members needs
/// them, so a big room read afresh each time stalls the server (1,000 members long-polling
/// one room spent most of its time decoding the member list).
const LARGE_ROOMS_CACHED: usize = 8;
/// Rooms over this size are read from the store each time, which bounds the large-room
/// cache at roughly 8 × 100,000 entries of ~200 bytes.
const LARGE_ROOM_MAX_CACHED: usize = 100_000;

/// A room's members with any membership, in user ID order.
pub type Members = Arc<Vec<(String, MembershipEntry)>>;

#[derive(Clone)]
pub struct Membership {
    db: Database,
    members: SharedCache<String, Members>,
    /// Rooms of more than [`MEMBERS_CACHE_MAX_ROOM`] members.
    large_members: SharedCache<String, Members>,
}

impl Membership {
    pub fn new(db: Database) -> Self {
        Self { db, members: SharedCache::new(MEMBERS_CACHE_ROOMS), large_members: SharedCache::new(LARGE_ROOMS_CACHED) }
    }

    /// Stages a membership change. The caller must call [`Membership::committed`] once the
    /// batch is written (or failed); until then the room's members are read from the store.
    pub fn set(&self, batch: &mut Batch, room_id: &str, user_id: &str, entry: &MembershipEntry) -> Result<()> {
        self.members.begin_change(room_id.to_owned());
        self.large_members.begin_change(room_id.to_owned());
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

    /// Ends `changes` changes staged with [`Membership::set`] for the room, once their batch
    /// is written (or failed).
    pub fn committed(&self, room_id: &str, changes: usize) {
        for _ in 0..changes {
            self.members.end_change(room_id);
            self.large_members.end_change(room_id);
        }
    }

    /// The room's members with any membership.
    pub fn members_of(&self, room_id: &str) -> Result<Vec<(String, MembershipEntry)>> {
        Ok(self.members(room_id)?.as_ref().clone())
    }

    /// The room's members with any membership, shared with the cache.
    pub fn members(&self, room_id: &str) -> Result<Members> {
        if let Some(members) = self.members.get(room_id).or_else(|| self.large_members.get(room_id)) {
            return Ok(members);
        }
        let (ticket, large_ticket) = (self.members.ticket(), self.large_members.ticket());
        let mut members = Vec::new();
        for entry in ROOM_USERS.iter_prefix(&self.db, &room_id.to_owned(), Direction::Forward)? {
            let ((_, user_id), membership) = entry?;
            members.push((user_id, membership));
        }
        let members = Arc::new(members);
        if members.len() <= MEMBERS_CACHE_MAX_ROOM {
            self.members.insert(ticket, room_id.to_owned(), members.clone());
        } else if members.len() <= LARGE_ROOM_MAX_CACHED {
            self.large_members.insert(large_ticket, room_id.to_owned(), members.clone());
        }
        Ok(members)
    }

    pub fn forget(&self, batch: &mut Batch, room_id: &str, user_id: &str) -> Result<()> {
        Ok(FORGOTTEN.put(batch, &(user_id.to_owned(), room_id.to_owned()), &())?)
    }
}
