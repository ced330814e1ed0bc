//! Room state snapshots as deltas ("state groups").
//!
//! A state group is a parent group plus the (short state key → short event) entries that
//! changed. A 100k-member room therefore stores one row per state *change*, not a copy of its
//! state per event. Chains are cut by a full snapshot every `SNAPSHOT_INTERVAL` deltas so a
//! lookup never walks far, and resolved groups are cached in memory.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use myelin_storage::{Batch, Database, Table};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Full state: short state key → short event id. A persistent map: the states of successive
/// groups share their structure, so deriving a group costs O(changes · log n) and caching many
/// groups of a 20,000-event room costs little more than one (a `BTreeMap` copy per state event
/// made building such a room quadratic in time and memory).
pub type ShortState = imbl::OrdMap<u64, u64>;

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StateGroup {
    parent: Option<u64>,
    /// Entries set (or replaced) relative to the parent.
    added: Vec<(u64, u64)>,
    /// Entries removed relative to the parent (state resolution can drop keys).
    #[serde(default)]
    removed: Vec<u64>,
    /// Number of deltas between this group and the nearest snapshot.
    chain: u32,
}

const GROUPS: Table<u64, StateGroup> = Table::new("stategroup_delta");
pub const TABLES: &[&str] = &["stategroup_delta"];

const SNAPSHOT_INTERVAL: u32 = 64;
const CACHE_CAPACITY: usize = 2048;

#[derive(Clone)]
pub struct StateStore {
    db: Database,
    cache: Arc<Mutex<HashMap<u64, Arc<ShortState>>>>,
}

impl StateStore {
    pub fn new(db: Database) -> Self {
        Self { db, cache: Arc::default() }
    }

    /// The full state of a group.
    pub fn load(&self, group: u64) -> Result<Arc<ShortState>> {
        if let Some(state) = self.cache.lock().ok().and_then(|c| c.get(&group).cloned()) {
            return Ok(state);
        }
        let mut chain = Vec::new();
        let mut cursor = Some(group);
        let mut base: Option<Arc<ShortState>> = None;
        while let Some(id) = cursor {
            if let Some(cached) = self.cache.lock().ok().and_then(|c| c.get(&id).cloned()) {
                base = Some(cached);
                break;
            }
            let stored = GROUPS.get(&self.db, &id)?.ok_or_else(|| Error::internal(format!("missing state group {id}")))?;
            cursor = stored.parent;
            chain.push(stored);
        }
        let mut state: ShortState = base.map(|b| (*b).clone()).unwrap_or_default();
        for delta in chain.iter().rev() {
            for key in &delta.removed {
                state.remove(key);
            }
            state.extend(delta.added.iter().copied());
        }
        let state = Arc::new(state);
        self.remember(group, state.clone());
        Ok(state)
    }

    /// Stages a new group: `parent`'s state with `changes` applied (and `removed` dropped).
    pub fn create(&self, batch: &mut Batch, parent: Option<u64>, changes: &[(u64, u64)], removed: &[u64]) -> Result<u64> {
        let id = self.db.next_id("state_group")?;
        let parent_state = parent.map(|p| self.load(p)).transpose()?;
        let parent_chain = match parent {
            Some(p) => GROUPS.get(&self.db, &p)?.map_or(0, |g| g.chain),
            None => 0,
        };
        let mut full = parent_state.as_deref().cloned().unwrap_or_default();
        for key in removed {
            full.remove(key);
        }
        full.extend(changes.iter().copied());
        let group = if parent.is_none() || parent_chain + 1 >= SNAPSHOT_INTERVAL {
            StateGroup { parent: None, added: full.iter().map(|(k, v)| (*k, *v)).collect(), removed: Vec::new(), chain: 0 }
        } else {
            StateGroup { parent, added: changes.to_vec(), removed: removed.to_vec(), chain: parent_chain + 1 }
        };
        GROUPS.put(batch, &id, &group)?;
        self.remember(id, Arc::new(full));
        Ok(id)
    }

    /// Stages a group holding exactly `state` (after state resolution), as a delta against
    /// `base` when one is given.
    pub fn create_from_full(&self, batch: &mut Batch, base: Option<u64>, state: &ShortState) -> Result<u64> {
        let Some(base) = base else {
            let changes: Vec<(u64, u64)> = state.iter().map(|(k, v)| (*k, *v)).collect();
            return self.create(batch, None, &changes, &[]);
        };
        let base_state = self.load(base)?;
        let changes: Vec<(u64, u64)> =
            state.iter().filter(|(k, v)| base_state.get(k) != Some(v)).map(|(k, v)| (*k, *v)).collect();
        let removed: Vec<u64> = base_state.keys().filter(|k| !state.contains_key(k)).copied().collect();
        self.create(batch, Some(base), &changes, &removed)
    }

    fn remember(&self, group: u64, state: Arc<ShortState>) {
        if let Ok(mut cache) = self.cache.lock() {
            // A crude bound: the hot groups (rooms' current state) are re-cached on next use.
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
            cache.insert(group, state);
        }
    }
}
