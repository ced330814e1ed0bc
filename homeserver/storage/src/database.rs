//! The database handle: catalog, schema migrations, durable writes, counters.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::engine::{Batch, Durability, Engine, lock};
use crate::error::{Error, Result};
use crate::memory::MemoryEngine;
use crate::rocks::{RocksEngine, RocksOptions};

/// Internal table holding the schema version and counter high-water marks.
/// Reserved: a catalog may not declare it.
pub const META_TABLE: &str = "meta";

/// RocksDB's implicit column family; reserved so nobody stores data in it
/// by accident.
const DEFAULT_CF: &str = "default";

const SCHEMA_VERSION_KEY: &[u8] = b"schema_version";
const COUNTER_KEY_PREFIX: &[u8] = b"counter/";

/// How many ids [`Database::next_id`] reserves per durable write. Ids are
/// handed out from memory until the block runs out, so only one in this many
/// calls waits for an fsync; a crash skips at most this many ids.
pub const COUNTER_BLOCK: u64 = 64;

/// Upgrades the stored data from the previous schema version to `to_version`.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub to_version: u64,
    pub name: &'static str,
    pub run: fn(&Database) -> Result<()>,
}

/// What the server expects to find in the database: its tables and the
/// schema version, with the migrations that lead to it.
#[derive(Debug, Clone)]
pub struct Catalog {
    schema_version: u64,
    tables: Vec<String>,
    migrations: Vec<Migration>,
}

impl Catalog {
    pub fn new(schema_version: u64) -> Self {
        Self {
            schema_version,
            tables: Vec::new(),
            migrations: Vec::new(),
        }
    }

    pub fn table(mut self, name: impl Into<String>) -> Self {
        self.tables.push(name.into());
        self
    }

    /// Adds a migration; they run in `to_version` order regardless of the
    /// order they were added in.
    pub fn migration(mut self, migration: Migration) -> Self {
        self.migrations.push(migration);
        self
    }

    pub fn schema_version(&self) -> u64 {
        self.schema_version
    }

    /// The declared tables (without the internal meta table).
    pub fn tables(&self) -> &[String] {
        &self.tables
    }

    /// What the engine must be opened with: declared tables plus meta.
    fn engine_tables(&self) -> Vec<String> {
        let mut tables = self.tables.clone();
        tables.push(META_TABLE.to_owned());
        tables
    }

    /// Checks the catalog and returns the migrations sorted by version.
    fn validate(&self) -> Result<Vec<Migration>> {
        let mut seen = HashSet::new();
        for table in &self.tables {
            if table.is_empty() || table == META_TABLE || table == DEFAULT_CF {
                return Err(Error::InvalidCatalog(format!(
                    "table name `{table}` is empty or reserved"
                )));
            }
            if !seen.insert(table.as_str()) {
                return Err(Error::InvalidCatalog(format!(
                    "table `{table}` is declared twice"
                )));
            }
        }
        let mut migrations = self.migrations.clone();
        migrations.sort_by_key(|m| m.to_version);
        for pair in migrations.windows(2) {
            if pair[0].to_version == pair[1].to_version {
                return Err(Error::InvalidCatalog(format!(
                    "migrations `{}` and `{}` both target version {}",
                    pair[0].name, pair[1].name, pair[0].to_version
                )));
            }
        }
        if let Some(m) = migrations
            .iter()
            .find(|m| m.to_version == 0 || m.to_version > self.schema_version)
        {
            return Err(Error::InvalidCatalog(format!(
                "migration `{}` targets version {}, outside 1..={}",
                m.name, m.to_version, self.schema_version
            )));
        }
        Ok(migrations)
    }
}

/// A cheap-to-clone handle to an open database. The engine closes when the
/// last clone is dropped.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Arc<dyn Engine>,
    /// One lock per counter, so busy counters do not serialise each other.
    counters: Mutex<HashMap<String, Arc<Mutex<Counter>>>>,
}

/// In-memory state of one counter. Invariant: `issued <= reserved`, and
/// `reserved` is durably stored, so every id ever handed out is <= the
/// stored value and every future id is above it.
struct Counter {
    issued: u64,
    reserved: u64,
}

impl Database {
    /// Opens (creating if needed) a RocksDB database in `path` and brings
    /// its schema up to date.
    pub fn open_rocksdb(path: &Path, catalog: &Catalog) -> Result<Database> {
        Self::open_rocksdb_with(path, catalog, &RocksOptions::default())
    }

    pub fn open_rocksdb_with(
        path: &Path,
        catalog: &Catalog,
        options: &RocksOptions,
    ) -> Result<Database> {
        catalog.validate()?;
        let engine = RocksEngine::open_with(path, &catalog.engine_tables(), options)?;
        Self::from_engine(Arc::new(engine), catalog)
    }

    /// A fresh, empty database in memory, for tests.
    pub fn in_memory(catalog: &Catalog) -> Result<Database> {
        catalog.validate()?;
        let engine = MemoryEngine::new(&catalog.engine_tables());
        Self::from_engine(Arc::new(engine), catalog)
    }

    /// Wraps an already open engine, which must have every catalog table
    /// and the meta table. Only one `Database` may use an engine at a time
    /// (counters are coordinated in memory).
    pub fn from_engine(engine: Arc<dyn Engine>, catalog: &Catalog) -> Result<Database> {
        let migrations = catalog.validate()?;
        for table in catalog.engine_tables() {
            // Fails with `UnknownTable` now rather than on first use.
            engine.get(&table, &[])?;
        }
        let db = Database {
            inner: Arc::new(Inner {
                engine,
                counters: Mutex::new(HashMap::new()),
            }),
        };
        db.migrate(catalog.schema_version, &migrations)?;
        Ok(db)
    }

    pub fn engine(&self) -> &dyn Engine {
        &*self.inner.engine
    }

    /// Applies `batch` atomically and durably, blocking until the WAL is
    /// fsynced (shared with concurrent writers by group commit). From async
    /// code use [`Database::write_async`] instead.
    pub fn write(&self, batch: Batch) -> Result<()> {
        self.inner.engine.write(batch, Durability::Durable)
    }

    /// Applies `batch` atomically without waiting for an fsync: for data
    /// that can be recomputed or whose loss on power failure is harmless
    /// (caches, read markers, presence).
    pub fn write_buffered(&self, batch: Batch) -> Result<()> {
        self.inner.engine.write(batch, Durability::Buffered)
    }

    /// Like [`Database::write`], but waits without blocking an executor
    /// thread: the engine's commit thread answers through a oneshot channel.
    /// Dropping the future does not cancel the write.
    pub async fn write_async(&self, batch: Batch) -> Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner.engine.submit_durable(
            batch,
            Box::new(move |result| {
                // Nobody to tell if the future was dropped.
                let _ = tx.send(result);
            }),
        );
        rx.await.unwrap_or(Err(Error::Closed))
    }

    /// Makes all buffered writes durable.
    pub fn flush(&self) -> Result<()> {
        self.inner.engine.flush()
    }

    pub fn sync_count(&self) -> u64 {
        self.inner.engine.sync_count()
    }

    /// The stored schema version.
    pub fn schema_version(&self) -> Result<u64> {
        Ok(self.stored_schema_version()?.unwrap_or(0))
    }

    /// Returns a new id for `counter`, greater than every id it returned
    /// before, in this process or any earlier one. Ids start at 1 and may
    /// skip values after a restart (see [`COUNTER_BLOCK`]).
    pub fn next_id(&self, counter: &str) -> Result<u64> {
        let state = self.counter(counter)?;
        let mut state = lock(&state);
        if state.issued == state.reserved {
            let reserved = state
                .reserved
                .checked_add(COUNTER_BLOCK)
                .ok_or_else(|| Error::Engine(format!("counter `{counter}` is exhausted")))?;
            // Persist the new ceiling before handing out anything below it:
            // after a crash we restart above it and never repeat an id.
            let mut batch = Batch::new();
            batch.put(META_TABLE, counter_key(counter), reserved.to_be_bytes());
            self.write(batch)?;
            state.reserved = reserved;
        }
        state.issued += 1;
        Ok(state.issued)
    }

    /// The last id [`Database::next_id`] returned for `counter`, or 0 if
    /// none. After a restart this is the stored high-water mark, which is
    /// >= every id handed out before and < every id handed out after.
    pub fn current_id(&self, counter: &str) -> Result<u64> {
        let state = self.counter(counter)?;
        let state = lock(&state);
        Ok(state.issued)
    }

    fn counter(&self, name: &str) -> Result<Arc<Mutex<Counter>>> {
        let mut counters = lock(&self.inner.counters);
        if let Some(counter) = counters.get(name) {
            return Ok(Arc::clone(counter));
        }
        // Loaded under the map lock, so two first callers cannot both load
        // and then diverge.
        let stored = match self.inner.engine.get(META_TABLE, &counter_key(name))? {
            Some(bytes) => decode_u64(&bytes, "counter")?,
            None => 0,
        };
        let counter = Arc::new(Mutex::new(Counter {
            issued: stored,
            reserved: stored,
        }));
        counters.insert(name.to_owned(), Arc::clone(&counter));
        Ok(counter)
    }

    fn stored_schema_version(&self) -> Result<Option<u64>> {
        self.inner
            .engine
            .get(META_TABLE, SCHEMA_VERSION_KEY)?
            .map(|bytes| decode_u64(&bytes, "schema version"))
            .transpose()
    }

    fn set_schema_version(&self, version: u64) -> Result<()> {
        let mut batch = Batch::new();
        batch.put(META_TABLE, SCHEMA_VERSION_KEY, version.to_be_bytes());
        self.write(batch)
    }

    /// Brings the stored schema to `target`. Each migration's version is
    /// persisted right after it succeeds, so an interrupted upgrade resumes
    /// with the first migration that did not finish, and none runs twice.
    fn migrate(&self, target: u64, migrations: &[Migration]) -> Result<()> {
        let Some(mut current) = self.stored_schema_version()? else {
            // A new database is created directly in the current layout;
            // there is nothing to migrate.
            tracing::info!(version = target, "initialising new database");
            return self.set_schema_version(target);
        };
        if current > target {
            return Err(Error::SchemaTooNew {
                found: current,
                supported: target,
            });
        }
        let stored = current;
        for migration in migrations.iter().filter(|m| m.to_version > stored) {
            tracing::info!(
                from = current,
                to = migration.to_version,
                name = migration.name,
                "running database migration"
            );
            (migration.run)(self).map_err(|e| Error::Migration {
                to_version: migration.to_version,
                name: migration.name,
                source: Box::new(e),
            })?;
            self.set_schema_version(migration.to_version)?;
            current = migration.to_version;
        }
        if current < target {
            // Version bumps that only add tables need no migration code.
            self.set_schema_version(target)?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").finish_non_exhaustive()
    }
}

fn counter_key(name: &str) -> Vec<u8> {
    let mut key = COUNTER_KEY_PREFIX.to_vec();
    key.extend_from_slice(name.as_bytes());
    key
}

fn decode_u64(bytes: &[u8], what: &str) -> Result<u64> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| Error::Corrupt(format!("stored {what} has {} bytes, not 8", bytes.len())))?;
    Ok(u64::from_be_bytes(array))
}
