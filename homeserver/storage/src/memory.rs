//! An in-memory engine for unit tests.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::engine::{Batch, BatchOp, Direction, Durability, Engine, KvIter, read, write};
use crate::error::{Error, Result};

type TableMap = BTreeMap<Vec<u8>, Vec<u8>>;

/// One `BTreeMap` per table behind a single lock.
///
/// Semantics match [`crate::RocksEngine`]: batches are atomic (validated
/// first, then applied under the write lock) and iterators see a snapshot
/// taken when they were created. Nothing is ever fsynced; `sync_count`
/// counts every `Durability::Durable` write as one sync, i.e. there is no
/// group commit here.
pub struct MemoryEngine {
    tables: RwLock<HashMap<String, TableMap>>,
    syncs: AtomicU64,
}

impl MemoryEngine {
    pub fn new<S: AsRef<str>>(tables: &[S]) -> Self {
        let tables = tables
            .iter()
            .map(|name| (name.as_ref().to_owned(), TableMap::new()))
            .collect();
        Self {
            tables: RwLock::new(tables),
            syncs: AtomicU64::new(0),
        }
    }

    /// Names of all tables, sorted.
    pub fn tables(&self) -> Vec<String> {
        let mut names: Vec<String> = read(&self.tables).keys().cloned().collect();
        names.sort();
        names
    }
}

impl Engine for MemoryEngine {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let tables = read(&self.tables);
        let map = tables
            .get(table)
            .ok_or_else(|| Error::UnknownTable(table.to_owned()))?;
        Ok(map.get(key).cloned())
    }

    fn multi_get(&self, table: &str, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        let tables = read(&self.tables);
        let map = tables
            .get(table)
            .ok_or_else(|| Error::UnknownTable(table.to_owned()))?;
        Ok(keys.iter().map(|key| map.get(*key).cloned()).collect())
    }

    fn write(&self, batch: Batch, durability: Durability) -> Result<()> {
        let mut tables = write(&self.tables);
        // Validate everything before touching anything, so a bad table name
        // leaves the store untouched (atomicity).
        if let Some(op) = batch
            .ops()
            .iter()
            .find(|op| !tables.contains_key(op.table()))
        {
            return Err(Error::UnknownTable(op.table().to_owned()));
        }
        for op in batch.into_ops() {
            match op {
                BatchOp::Put { table, key, value } => {
                    if let Some(map) = tables.get_mut(&table) {
                        map.insert(key, value);
                    }
                }
                BatchOp::Delete { table, key } => {
                    if let Some(map) = tables.get_mut(&table) {
                        map.remove(&key);
                    }
                }
            }
        }
        if durability == Durability::Durable {
            self.syncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn range(
        &self,
        table: &str,
        start: &[u8],
        end: Option<&[u8]>,
        direction: Direction,
    ) -> Result<KvIter<'_>> {
        let tables = read(&self.tables);
        let map = tables
            .get(table)
            .ok_or_else(|| Error::UnknownTable(table.to_owned()))?;
        if end.is_some_and(|end| end <= start) {
            return Ok(Box::new(std::iter::empty()));
        }
        let upper = match end {
            Some(end) => Bound::Excluded(end),
            None => Bound::Unbounded,
        };
        // Copy the range out so the lock is not held while the caller
        // iterates (it may want to write meanwhile); this also gives the
        // same snapshot semantics as a RocksDB iterator.
        let range = map.range::<[u8], _>((Bound::Included(start), upper));
        let mut items: Vec<(Vec<u8>, Vec<u8>)> =
            range.map(|(k, v)| (k.clone(), v.clone())).collect();
        if direction == Direction::Reverse {
            items.reverse();
        }
        Ok(Box::new(items.into_iter().map(Ok)))
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn sync_count(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}
