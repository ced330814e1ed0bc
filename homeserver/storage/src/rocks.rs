//! The RocksDB engine, with explicit group commit for durable writes.
//!
//! Durable writes are not written by the calling thread. They are queued for
//! a single committer thread which takes *everything* queued at that moment,
//! concatenates the batches in arrival order into one RocksDB `WriteBatch`,
//! writes it with `sync = true`, and then answers every writer in the group
//! with the same result. While one fsync is in flight, new writers pile up
//! in the queue and share the next one, so the number of fsyncs grows with
//! time spent syncing rather than with the number of writers.
//!
//! Merging is safe because RocksDB applies a `WriteBatch` atomically: each
//! writer's batch is still all-or-nothing, and batches queued later are
//! applied after earlier ones, exactly as if they had been written one by
//! one.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType,
    DBRawIteratorWithThreadMode, DBWithThreadMode, ErrorKind, FlushOptions, Options, ReadOptions,
    SingleThreaded, WriteBatch, WriteOptions,
};

use crate::engine::{Batch, BatchOp, CommitCallback, Direction, Durability, Engine, KvIter, lock};
use crate::error::{Error, Result};

// Spelled out instead of `rocksdb::DB` so that another crate enabling the
// `multi-threaded-cf` feature cannot change the type under us. Column
// families are only created at open, so single-threaded CF management is
// all that is needed.
type Db = DBWithThreadMode<SingleThreaded>;

/// Tuning knobs for [`RocksEngine`]; the defaults suit a small homeserver.
#[derive(Debug, Clone)]
pub struct RocksOptions {
    /// Size of the LRU block cache shared by all tables.
    pub block_cache_bytes: usize,
    /// Threads RocksDB may use for flushes and compactions.
    pub max_background_jobs: i32,
}

impl Default for RocksOptions {
    fn default() -> Self {
        Self {
            block_cache_bytes: 256 << 20,
            max_background_jobs: 4,
        }
    }
}

/// A RocksDB database with one column family per table.
pub struct RocksEngine {
    shared: Arc<Shared>,
    committer: Option<JoinHandle<()>>,
    path: PathBuf,
}

/// State shared with the committer thread.
struct Shared {
    db: Db,
    tables: Vec<String>,
    queue: Mutex<CommitQueue>,
    wakeup: Condvar,
    syncs: AtomicU64,
}

struct CommitQueue {
    pending: Vec<PendingCommit>,
    closed: bool,
}

struct PendingCommit {
    batch: Batch,
    on_done: CommitCallback,
}

impl RocksEngine {
    /// Opens (creating if needed) the database in `path` with the default
    /// [`RocksOptions`].
    pub fn open<S: AsRef<str>>(path: &Path, tables: &[S]) -> Result<Self> {
        Self::open_with(path, tables, &RocksOptions::default())
    }

    /// Opens (creating if needed) the database in `path`. Every name in
    /// `tables` gets a column family; column families already present on
    /// disk are opened as well (RocksDB refuses to open otherwise, and their
    /// data must stay reachable for migrations).
    pub fn open_with<S: AsRef<str>>(
        path: &Path,
        tables: &[S],
        options: &RocksOptions,
    ) -> Result<Self> {
        std::fs::create_dir_all(path).map_err(|e| {
            Error::Io(format!(
                "cannot create database directory {}: {e}",
                path.display()
            ))
        })?;

        let cache = Cache::new_lru_cache(options.block_cache_bytes);
        let mut table_options = BlockBasedOptions::default();
        table_options.set_block_cache(&cache);
        // Bloom filters make point lookups of absent keys (very common:
        // "is this event already known?") skip most disk reads.
        table_options.set_bloom_filter(10.0, false);
        table_options.set_cache_index_and_filter_blocks(true);
        table_options.set_pin_l0_filter_and_index_blocks_in_cache(true);

        let mut cf_options = Options::default();
        cf_options.set_compression_type(DBCompressionType::Lz4);
        cf_options.set_level_compaction_dynamic_level_bytes(true);
        cf_options.set_block_based_table_factory(&table_options);

        let mut db_options = cf_options.clone();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.set_max_background_jobs(options.max_background_jobs);
        db_options.set_keep_log_file_num(4);

        let mut names: BTreeSet<String> = tables.iter().map(|t| t.as_ref().to_owned()).collect();
        // `list_cf` fails on a directory without a database, so only ask
        // when one exists.
        if path.join("CURRENT").exists() {
            let existing = Db::list_cf(&db_options, path).map_err(|e| open_error(path, e))?;
            for name in existing {
                if names.insert(name.clone()) && name != "default" {
                    tracing::info!(table = %name, "opening table that is not in the catalog");
                }
            }
        }
        names.insert("default".to_owned());

        let descriptors = names
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(name, cf_options.clone()));
        let db = Db::open_cf_descriptors(&db_options, path, descriptors)
            .map_err(|e| open_error(path, e))?;
        tracing::debug!(path = %path.display(), tables = names.len(), "opened RocksDB");

        let shared = Arc::new(Shared {
            db,
            tables: names.into_iter().collect(),
            queue: Mutex::new(CommitQueue {
                pending: Vec::new(),
                closed: false,
            }),
            wakeup: Condvar::new(),
            syncs: AtomicU64::new(0),
        });
        let committer = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("myelin-storage-commit".to_owned())
                .spawn(move || run_committer(&shared))
                .map_err(|e| Error::Io(format!("cannot start commit thread: {e}")))?
        };
        Ok(Self {
            shared,
            committer: Some(committer),
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All tables (column families) that are open, including ones found on
    /// disk that were not asked for, sorted.
    pub fn tables(&self) -> &[String] {
        &self.shared.tables
    }

    fn cf(&self, table: &str) -> Result<&ColumnFamily> {
        self.shared.cf(table)
    }

    fn stop_committer(&mut self) {
        lock(&self.shared.queue).closed = true;
        self.shared.wakeup.notify_all();
        if let Some(handle) = self.committer.take() {
            // The last handle could in principle be dropped from inside a
            // commit callback; a thread cannot join itself, and it will exit
            // on its own after seeing `closed`.
            if handle.thread().id() != thread::current().id() && handle.join().is_err() {
                tracing::error!("storage commit thread panicked");
            }
        }
    }
}

impl Shared {
    fn cf(&self, table: &str) -> Result<&ColumnFamily> {
        self.db
            .cf_handle(table)
            .ok_or_else(|| Error::UnknownTable(table.to_owned()))
    }

    fn check_tables(&self, batch: &Batch) -> Result<()> {
        batch
            .ops()
            .iter()
            .try_for_each(|op| self.cf(op.table()).map(drop))
    }

    /// Appends `batch` to `out`. Tables must have been checked already; the
    /// set of column families never changes after open, so a checked batch
    /// stays valid.
    fn fill(&self, out: &mut WriteBatch, batch: Batch) {
        for op in batch.into_ops() {
            match op {
                BatchOp::Put { table, key, value } => {
                    if let Some(cf) = self.db.cf_handle(&table) {
                        out.put_cf(cf, key, value);
                    }
                }
                BatchOp::Delete { table, key } => {
                    if let Some(cf) = self.db.cf_handle(&table) {
                        out.delete_cf(cf, key);
                    }
                }
            }
        }
    }

    /// Writes one merged group with a single fsync and answers all its writers.
    fn commit_group(&self, group: Vec<PendingCommit>) {
        let mut merged = WriteBatch::default();
        let mut waiters = Vec::with_capacity(group.len());
        for pending in group {
            self.fill(&mut merged, pending.batch);
            waiters.push(pending.on_done);
        }
        let mut write_options = WriteOptions::default();
        write_options.set_sync(true);
        let result = self
            .db
            .write_opt(&merged, &write_options)
            .map_err(engine_error);
        match &result {
            Ok(()) => {
                self.syncs.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(error = %e, writers = waiters.len(), "group commit failed");
            }
        }
        for on_done in waiters {
            on_done(result.clone());
        }
    }
}

fn run_committer(shared: &Shared) {
    // Whatever way this thread ends (including a panic), writers must not
    // wait forever: refuse new work and fail what is still queued.
    struct CloseOnExit<'a>(&'a Shared);
    impl Drop for CloseOnExit<'_> {
        fn drop(&mut self) {
            let orphans = {
                let mut queue = lock(&self.0.queue);
                queue.closed = true;
                std::mem::take(&mut queue.pending)
            };
            for pending in orphans {
                (pending.on_done)(Err(Error::Closed));
            }
        }
    }
    let _close = CloseOnExit(shared);

    loop {
        let group = {
            let mut queue = lock(&shared.queue);
            loop {
                // Drain before honouring `closed`, so writes accepted before
                // shutdown still land.
                if !queue.pending.is_empty() {
                    break std::mem::take(&mut queue.pending);
                }
                if queue.closed {
                    return;
                }
                queue = shared
                    .wakeup
                    .wait(queue)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        };
        shared.commit_group(group);
    }
}

impl Engine for RocksEngine {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let cf = self.cf(table)?;
        self.shared.db.get_cf(cf, key).map_err(engine_error)
    }

    fn multi_get(&self, table: &str, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        let cf = self.cf(table)?;
        self.shared
            .db
            .multi_get_cf(keys.iter().map(|key| (cf, *key)))
            .into_iter()
            .map(|r| r.map_err(engine_error))
            .collect()
    }

    fn write(&self, batch: Batch, durability: Durability) -> Result<()> {
        match durability {
            Durability::Durable => {
                let (tx, rx) = mpsc::sync_channel(1);
                self.submit_durable(
                    batch,
                    Box::new(move |result| {
                        // The receiver only disappears if the writer is gone.
                        let _ = tx.send(result);
                    }),
                );
                // A dropped sender means the commit thread died with our
                // batch in hand.
                rx.recv().unwrap_or(Err(Error::Closed))
            }
            Durability::Buffered => {
                if batch.is_empty() {
                    return Ok(());
                }
                self.shared.check_tables(&batch)?;
                let mut rocks_batch = WriteBatch::default();
                self.shared.fill(&mut rocks_batch, batch);
                let mut write_options = WriteOptions::default();
                write_options.set_sync(false);
                self.shared
                    .db
                    .write_opt(&rocks_batch, &write_options)
                    .map_err(engine_error)
            }
        }
    }

    fn submit_durable(&self, batch: Batch, on_done: CommitCallback) {
        if batch.is_empty() {
            return on_done(Ok(()));
        }
        // Checked here, in the writer's thread, so one bad batch can never
        // fail the rest of its group.
        if let Err(e) = self.shared.check_tables(&batch) {
            return on_done(Err(e));
        }
        let mut queue = lock(&self.shared.queue);
        if queue.closed {
            drop(queue);
            return on_done(Err(Error::Closed));
        }
        queue.pending.push(PendingCommit { batch, on_done });
        drop(queue);
        self.shared.wakeup.notify_one();
    }

    fn range(
        &self,
        table: &str,
        start: &[u8],
        end: Option<&[u8]>,
        direction: Direction,
    ) -> Result<KvIter<'_>> {
        let cf = self.cf(table)?;
        if end.is_some_and(|end| end <= start) {
            return Ok(Box::new(std::iter::empty()));
        }
        // Bounds in ReadOptions let RocksDB stop at the edge of the range
        // itself (and skip tombstones beyond it) instead of us comparing
        // every key.
        let mut read_options = ReadOptions::default();
        if !start.is_empty() {
            read_options.set_iterate_lower_bound(start);
        }
        if let Some(end) = end {
            read_options.set_iterate_upper_bound(end);
        }
        let mut raw = self.shared.db.raw_iterator_cf_opt(cf, read_options);
        match direction {
            Direction::Forward => raw.seek_to_first(),
            Direction::Reverse => raw.seek_to_last(),
        }
        Ok(Box::new(RocksIter {
            raw,
            direction,
            finished: false,
        }))
    }

    fn flush(&self) -> Result<()> {
        self.shared.db.flush_wal(true).map_err(engine_error)?;
        self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        let cfs = self
            .shared
            .tables
            .iter()
            .map(|name| self.cf(name))
            .collect::<Result<Vec<_>>>()?;
        self.shared
            .db
            .flush_cfs_opt(&cfs, &FlushOptions::default())
            .map_err(engine_error)
    }

    fn sync_count(&self) -> u64 {
        self.shared.syncs.load(Ordering::Relaxed)
    }
}

impl Drop for RocksEngine {
    fn drop(&mut self) {
        self.stop_committer();
        // Buffered writes are in the WAL but not fsynced yet; a clean
        // shutdown should not lose them to a later power cut.
        if let Err(e) = self.flush() {
            tracing::warn!(error = %e, path = %self.path.display(), "flush on close failed");
        }
    }
}

struct RocksIter<'a> {
    raw: DBRawIteratorWithThreadMode<'a, Db>,
    direction: Direction,
    finished: bool,
}

impl Iterator for RocksIter<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        if let Some((key, value)) = self.raw.item() {
            let item = (key.to_vec(), value.to_vec());
            match self.direction {
                Direction::Forward => self.raw.next(),
                Direction::Reverse => self.raw.prev(),
            }
            return Some(Ok(item));
        }
        // An invalid iterator is either the end of the range or an error.
        self.finished = true;
        self.raw.status().err().map(|e| Err(engine_error(e)))
    }
}

fn engine_error(e: rocksdb::Error) -> Error {
    match e.kind() {
        ErrorKind::IOError => Error::Io(e.into_string()),
        ErrorKind::Corruption => Error::Corrupt(e.into_string()),
        _ => Error::Engine(e.into_string()),
    }
}

/// Errors from opening get a chance to be recognised as a held LOCK file.
fn open_error(path: &Path, e: rocksdb::Error) -> Error {
    if is_lock_error(e.as_ref()) {
        Error::Locked {
            path: path.to_owned(),
        }
    } else {
        engine_error(e)
    }
}

/// RocksDB reports a held lock as an I/O error naming the LOCK file: "While
/// lock file: <dir>/LOCK: Resource temporarily unavailable" when another
/// process holds it, "lock hold by current process ... <dir>/LOCK: No locks
/// available" when this process does.
pub(crate) fn is_lock_error(message: &str) -> bool {
    message.contains("/LOCK:")
        || message.contains("\\LOCK:")
        || message.contains("lock file")
        || message.contains("lock hold by current process")
}
