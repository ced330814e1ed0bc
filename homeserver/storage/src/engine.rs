//! The backend-neutral engine interface and the write batch type.
//!
//! Nothing here mentions RocksDB: a future distributed engine only has to
//! implement [`Engine`] over named tables of ordered byte keys.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::Result;

/// How long a write must survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Returns only once the write-ahead log has been fsynced: survives a
    /// power loss.
    Durable,
    /// Lands in the engine (visible to readers, survives a process crash
    /// once the OS has it) but is not fsynced; a power loss can drop it.
    Buffered,
}

/// Iteration order over keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Ascending byte order.
    Forward,
    /// Descending byte order.
    Reverse,
}

/// A fallible iterator of `(key, value)` pairs borrowed from an engine.
pub type KvIter<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + 'a>;

/// Called exactly once with the outcome of a durable write submitted through
/// [`Engine::submit_durable`]. It may run on an engine-internal thread, so it
/// must be quick and must not block.
pub type CommitCallback = Box<dyn FnOnce(Result<()>) + Send + 'static>;

/// An ordered key-value store made of named tables.
///
/// Object safe, so the server holds an `Arc<dyn Engine>` and never learns
/// which backend it runs on.
pub trait Engine: Send + Sync + 'static {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// One result per key, in the order of `keys`.
    fn multi_get(&self, table: &str, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>>;

    /// Applies the batch atomically. `Durability::Durable` returns only after the WAL is fsynced.
    fn write(&self, batch: Batch, durability: Durability) -> Result<()>;

    /// Starts a durable write and reports its outcome through `on_done`
    /// instead of blocking the caller; this is what lets async code wait for
    /// an fsync without tying up an executor thread.
    ///
    /// The default runs [`Engine::write`] inline, which suits engines whose
    /// durable writes are cheap (the in-memory one).
    fn submit_durable(&self, batch: Batch, on_done: CommitCallback) {
        on_done(self.write(batch, Durability::Durable));
    }

    /// Ordered iteration over keys in [start, end) (end None = unbounded), forward or reverse.
    fn range(
        &self,
        table: &str,
        start: &[u8],
        end: Option<&[u8]>,
        direction: Direction,
    ) -> Result<KvIter<'_>>;

    /// Ordered iteration over all keys starting with prefix (forward or reverse).
    fn prefix(&self, table: &str, prefix: &[u8], direction: Direction) -> Result<KvIter<'_>> {
        let end = prefix_end(prefix);
        self.range(table, prefix, end.as_deref(), direction)
    }

    /// Makes everything written so far durable (WAL fsync) and persists
    /// in-memory buffers.
    fn flush(&self) -> Result<()>;

    /// Number of WAL fsyncs performed so far (observability / group-commit tests).
    fn sync_count(&self) -> u64;
}

/// The exclusive upper bound of all keys that start with `prefix`, or `None`
/// when no such bound exists (empty prefix, or all bytes 0xFF).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last_incrementable = prefix.iter().rposition(|&b| b != 0xFF)?;
    let mut end = prefix[..=last_incrementable].to_vec();
    end[last_incrementable] += 1;
    Some(end)
}

/// One operation inside a [`Batch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    Put {
        table: String,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        table: String,
        key: Vec<u8>,
    },
}

impl BatchOp {
    pub fn table(&self) -> &str {
        match self {
            BatchOp::Put { table, .. } | BatchOp::Delete { table, .. } => table,
        }
    }
}

/// An ordered list of puts and deletes applied all-or-nothing. Later
/// operations on the same key win.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<BatchOp>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, table: &str, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(BatchOp::Put {
            table: table.to_owned(),
            key: key.into(),
            value: value.into(),
        });
    }

    pub fn delete(&mut self, table: &str, key: impl Into<Vec<u8>>) {
        self.ops.push(BatchOp::Delete {
            table: table.to_owned(),
            key: key.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Number of operations (not distinct keys).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Moves all of `other`'s operations after this batch's own.
    pub fn append(&mut self, mut other: Batch) {
        self.ops.append(&mut other.ops);
    }

    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    pub fn into_ops(self) -> Vec<BatchOp> {
        self.ops
    }
}

// Lock helpers. A poisoned lock only means another thread panicked while
// holding it; every structure guarded in this crate is updated in a way
// that leaves it consistent, so continuing is safer than cascading panics.

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}
