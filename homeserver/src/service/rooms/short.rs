//! Interned short ids: event IDs, room IDs and (event type, state key) pairs become u64s, so
//! state snapshots and indexes store 8 bytes where an ID would take 40 to 250.
//!
//! Interning is idempotent and the mapping never changes once written. New ids are staged in
//! the caller's batch and in a small in-memory overlay until that batch is committed, so one
//! append can intern and use several ids before anything is on disk.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use myelin_storage::{Batch, Database, Table};

use crate::error::{Error, Result};

const EVENTID_SHORT: Table<String, u64> = Table::new("eventid_shorteventid");
const SHORT_EVENTID: Table<u64, String> = Table::new("shorteventid_eventid");
const ROOMID_SHORT: Table<String, u64> = Table::new("roomid_shortroomid");
const STATEKEY_SHORT: Table<(String, String), u64> = Table::new("statekey_shortstatekey");
const SHORT_STATEKEY: Table<u64, (String, String)> = Table::new("shortstatekey_statekey");

pub const TABLES: &[&str] = &[
    "eventid_shorteventid",
    "shorteventid_eventid",
    "roomid_shortroomid",
    "statekey_shortstatekey",
    "shortstatekey_statekey",
];

/// A (type, state_key) pair.
pub type StateKey = (String, String);

#[derive(Clone)]
pub struct ShortIds {
    db: Database,
    /// State keys are few and hot (every state lookup names them): keep them all in memory.
    state_keys: Arc<RwLock<HashMap<StateKey, u64>>>,
    state_keys_by_id: Arc<RwLock<HashMap<u64, StateKey>>>,
}

impl ShortIds {
    pub fn new(db: Database) -> Self {
        Self { db, state_keys: Arc::default(), state_keys_by_id: Arc::default() }
    }

    pub fn event(&self, event_id: &str) -> Result<Option<u64>> {
        Ok(EVENTID_SHORT.get(&self.db, &event_id.to_owned())?)
    }

    pub fn event_id(&self, short: u64) -> Result<String> {
        SHORT_EVENTID.get(&self.db, &short)?.ok_or_else(|| Error::internal(format!("dangling short event id {short}")))
    }

    /// Interns an event ID into `batch`. Callers hold the room's append lock, so two appends can
    /// never race to intern the same new event.
    pub fn intern_event(&self, batch: &mut Batch, event_id: &str) -> Result<u64> {
        if let Some(short) = self.event(event_id)? {
            return Ok(short);
        }
        let short = self.db.next_id("short_event")?;
        EVENTID_SHORT.put(batch, &event_id.to_owned(), &short)?;
        SHORT_EVENTID.put(batch, &short, &event_id.to_owned())?;
        Ok(short)
    }

    pub fn room(&self, room_id: &str) -> Result<Option<u64>> {
        Ok(ROOMID_SHORT.get(&self.db, &room_id.to_owned())?)
    }

    pub fn intern_room(&self, batch: &mut Batch, room_id: &str) -> Result<u64> {
        if let Some(short) = self.room(room_id)? {
            return Ok(short);
        }
        let short = self.db.next_id("short_room")?;
        ROOMID_SHORT.put(batch, &room_id.to_owned(), &short)?;
        Ok(short)
    }

    pub fn state_key(&self, key: &StateKey) -> Result<Option<u64>> {
        if let Some(short) = self.state_keys.read().ok().and_then(|m| m.get(key).copied()) {
            return Ok(Some(short));
        }
        let found = STATEKEY_SHORT.get(&self.db, key)?;
        if let Some(short) = found {
            self.remember(key.clone(), short);
        }
        Ok(found)
    }

    /// Interns a state key durably at once: they are shared by all rooms, so staging them in
    /// one room's batch would let a concurrent append in another room see an id whose mapping
    /// is not on disk yet.
    pub fn intern_state_key(&self, key: &StateKey) -> Result<u64> {
        if let Some(short) = self.state_key(key)? {
            return Ok(short);
        }
        let mut guard = self.state_keys.write().map_err(|_| Error::internal("state key cache poisoned"))?;
        if let Some(short) = guard.get(key) {
            return Ok(*short);
        }
        if let Some(short) = STATEKEY_SHORT.get(&self.db, key)? {
            guard.insert(key.clone(), short);
            return Ok(short);
        }
        let short = self.db.next_id("short_statekey")?;
        let mut batch = Batch::new();
        STATEKEY_SHORT.put(&mut batch, key, &short)?;
        SHORT_STATEKEY.put(&mut batch, &short, key)?;
        self.db.write(batch)?;
        guard.insert(key.clone(), short);
        drop(guard);
        if let Ok(mut by_id) = self.state_keys_by_id.write() {
            by_id.insert(short, key.clone());
        }
        Ok(short)
    }

    /// [`ShortIds::intern_state_key`] for many keys with one durable write, as a join that
    /// brings thousands of new state keys needs (one write each cost thousands of fsyncs).
    pub fn intern_state_keys(&self, keys: &[StateKey]) -> Result<Vec<u64>> {
        let mut guard = self.state_keys.write().map_err(|_| Error::internal("state key cache poisoned"))?;
        let mut batch = Batch::new();
        let mut new_keys = Vec::new();
        let mut shorts = Vec::with_capacity(keys.len());
        for key in keys {
            let short = match guard.get(key) {
                Some(short) => *short,
                None => match STATEKEY_SHORT.get(&self.db, key)? {
                    Some(short) => short,
                    None => {
                        let short = self.db.next_id("short_statekey")?;
                        STATEKEY_SHORT.put(&mut batch, key, &short)?;
                        SHORT_STATEKEY.put(&mut batch, &short, key)?;
                        new_keys.push((key.clone(), short));
                        short
                    }
                },
            };
            guard.insert(key.clone(), short);
            shorts.push(short);
        }
        if !new_keys.is_empty()
            && let Err(error) = self.db.write(batch)
        {
            // Nothing was written: forget the ids handed out above.
            for (key, _) in &new_keys {
                guard.remove(key);
            }
            return Err(error.into());
        }
        drop(guard);
        if let Ok(mut by_id) = self.state_keys_by_id.write() {
            for (key, short) in new_keys {
                by_id.insert(short, key);
            }
        }
        Ok(shorts)
    }

    pub fn state_key_of(&self, short: u64) -> Result<StateKey> {
        if let Some(key) = self.state_keys_by_id.read().ok().and_then(|m| m.get(&short).cloned()) {
            return Ok(key);
        }
        let key = SHORT_STATEKEY
            .get(&self.db, &short)?
            .ok_or_else(|| Error::internal(format!("dangling short state key {short}")))?;
        self.remember(key.clone(), short);
        Ok(key)
    }

    fn remember(&self, key: StateKey, short: u64) {
        if let Ok(mut by_id) = self.state_keys_by_id.write() {
            by_id.insert(short, key.clone());
        }
        if let Ok(mut by_key) = self.state_keys.write() {
            by_key.insert(key, short);
        }
    }
}
