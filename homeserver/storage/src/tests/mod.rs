//! Unit tests. The engine-independent behaviour is one suite
//! (`conformance`) instantiated for every engine by
//! `engine_conformance_tests!`; RocksDB-specific behaviour (persistence,
//! locking, group commit) is tested in `rocks`.

use std::sync::{Arc, Mutex};

use crate::{Catalog, Database, Direction, Engine, META_TABLE, MemoryEngine, Result, RocksEngine};

mod codec;
mod conformance;
mod rocks;

/// Creates engines for the conformance suite. "Reopening" (calling a method
/// again after every handle from the previous call was dropped) must see
/// the data written before, as a restart would.
pub(crate) trait Harness {
    fn engine(&self, tables: &[&str]) -> Arc<dyn Engine>;
    fn database(&self, catalog: &Catalog) -> Result<Database>;
}

pub(crate) struct RocksHarness {
    dir: tempfile::TempDir,
}

impl RocksHarness {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("create temp dir"),
        }
    }
}

impl Harness for RocksHarness {
    fn engine(&self, tables: &[&str]) -> Arc<dyn Engine> {
        Arc::new(RocksEngine::open(self.dir.path(), tables).expect("open RocksDB"))
    }

    fn database(&self, catalog: &Catalog) -> Result<Database> {
        Database::open_rocksdb(self.dir.path(), catalog)
    }
}

/// Simulates a restart by copying the previous engine's tables into a new
/// engine opened with (at least) the requested tables.
pub(crate) struct MemoryHarness {
    previous: Mutex<Option<Arc<MemoryEngine>>>,
}

impl MemoryHarness {
    pub(crate) fn new() -> Self {
        Self {
            previous: Mutex::new(None),
        }
    }

    fn reopen(&self, tables: &[&str]) -> Arc<MemoryEngine> {
        let mut previous = self.previous.lock().unwrap();
        let mut names: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
        let old_tables = previous
            .as_ref()
            .map(|old| old.tables())
            .unwrap_or_default();
        for name in &old_tables {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let engine = Arc::new(MemoryEngine::new(&names));
        if let Some(old) = previous.as_ref() {
            let mut batch = crate::Batch::new();
            for table in &old_tables {
                for entry in old.range(table, &[], None, Direction::Forward).unwrap() {
                    let (key, value) = entry.unwrap();
                    batch.put(table, key, value);
                }
            }
            engine
                .write(batch, crate::Durability::Buffered)
                .expect("copy tables");
        }
        *previous = Some(Arc::clone(&engine));
        engine
    }
}

impl Harness for MemoryHarness {
    fn engine(&self, tables: &[&str]) -> Arc<dyn Engine> {
        self.reopen(tables)
    }

    fn database(&self, catalog: &Catalog) -> Result<Database> {
        let mut tables: Vec<&str> = catalog.tables().iter().map(String::as_str).collect();
        tables.push(META_TABLE);
        Database::from_engine(self.reopen(&tables), catalog)
    }
}

/// Runs the whole conformance suite against one engine: one `#[test]` per
/// suite function, in a module named `$name`. `$make` is a closure returning
/// a fresh [`Harness`].
macro_rules! engine_conformance_tests {
    ($name:ident, $make:expr) => {
        engine_conformance_tests!(@expand $name, $make, [
            get_put_delete,
            multi_get_preserves_order,
            batches_are_atomic,
            batch_append_and_len,
            prefix_iteration_order,
            range_iteration_bounds,
            unknown_table_is_an_error,
            sync_count_counts_durable_writes,
            key_codec_orders_u64_numerically,
            tuple_prefixes_do_not_collide,
            typed_table_operations,
            typed_iteration_from_and_range,
            counters_are_monotonic_and_persistent,
            counters_are_unique_under_concurrency,
            schema_version_and_migrations,
            failed_migration_is_retried,
            schema_too_new_is_refused,
            invalid_catalog_is_rejected,
            write_async_is_durable,
        ]);
    };
    (@expand $name:ident, $make:expr, [$($test:ident),* $(,)?]) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $test() {
                    let harness = ($make)();
                    crate::tests::conformance::$test(&harness);
                }
            )*
        }
    };
}

engine_conformance_tests!(rocks_conformance, RocksHarness::new);
engine_conformance_tests!(memory_conformance, MemoryHarness::new);
