//! RocksDB-only behaviour: persistence, locking, group commit.

use std::path::Path;
use std::sync::Barrier;
use std::thread;


use crate::{Batch, Catalog, Database, Direction, Durability, Engine, Error, RocksEngine, Table};

fn put(engine: &dyn Engine, table: &str, key: &[u8], value: &[u8], durability: Durability) {
    let mut batch = Batch::new();
    batch.put(table, key, value);
    engine.write(batch, durability).expect("write");
}

#[test]
fn data_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    // A nested path that does not exist yet is created.
    let path = dir.path().join("nested/db");
    {
        let engine = RocksEngine::open(&path, &["a", "b"]).unwrap();
        put(&engine, "a", b"durable", b"1", Durability::Durable);
        put(&engine, "b", b"buffered", b"2", Durability::Buffered);
    }
    {
        let engine = RocksEngine::open(&path, &["a", "b"]).unwrap();
        assert_eq!(engine.get("a", b"durable").unwrap(), Some(b"1".to_vec()));
        assert_eq!(engine.get("b", b"buffered").unwrap(), Some(b"2".to_vec()));
    }
    {
        // Tables dropped from the list are still opened, data intact.
        let engine = RocksEngine::open(&path, &["a"]).unwrap();
        assert!(engine.tables().iter().any(|t| t == "b"));
        assert_eq!(engine.get("b", b"buffered").unwrap(), Some(b"2".to_vec()));
        assert!(matches!(engine.get("c", b"x"), Err(Error::UnknownTable(_))));
    }
    {
        // New tables can be added to an existing database.
        let engine = RocksEngine::open(&path, &["a", "b", "c"]).unwrap();
        put(&engine, "c", b"k", b"3", Durability::Durable);
        assert_eq!(engine.get("a", b"durable").unwrap(), Some(b"1".to_vec()));
    }
}

#[test]
fn typed_data_survives_reopen_through_database() {
    const NAMES: Table<u64, String> = Table::new("id_name");
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::new(1).table(NAMES.name());
    {
        let db = Database::open_rocksdb(dir.path(), &catalog).unwrap();
        let mut batch = Batch::new();
        NAMES.put(&mut batch, &1, &"one".to_owned()).unwrap();
        NAMES.put(&mut batch, &2, &"two".to_owned()).unwrap();
        db.write(batch).unwrap();
        let clone = db.clone();
        drop(db);
        // The engine stays open while any clone lives.
        assert_eq!(NAMES.get(&clone, &1).unwrap().as_deref(), Some("one"));
    }
    let db = Database::open_rocksdb(dir.path(), &catalog).unwrap();
    let entries: Vec<(u64, String)> = NAMES
        .iter_range(&db, None, None, Direction::Reverse)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(entries, vec![(2, "two".to_owned()), (1, "one".to_owned())]);
}

fn assert_locked(result: crate::Result<impl Sized>, path: &Path) {
    match result {
        Err(err @ Error::Locked { .. }) => {
            let message = err.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(
                message.contains("already in use by another process"),
                "{message}"
            );
        }
        Err(other) => panic!("expected Error::Locked, got {other:?}"),
        Ok(_) => panic!("second open of {} succeeded", path.display()),
    }
}

#[test]
fn second_open_in_same_process_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::new(1).table("a_b");
    let first = Database::open_rocksdb(dir.path(), &catalog).unwrap();
    assert_locked(RocksEngine::open(dir.path(), &["a_b"]), dir.path());
    assert_locked(Database::open_rocksdb(dir.path(), &catalog), dir.path());
    drop(first);
    // Closing releases the lock.
    Database::open_rocksdb(dir.path(), &catalog).unwrap();
}

/// Env var telling the helper test below which database to hold open.

// A database held by another *process* is covered end to end by complement-tests
// (`lifecycle`), which starts two real `myelin` processes on one directory.

#[test]
fn group_commit_shares_fsyncs() {
    const THREADS: usize = 16;
    const WRITES: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let engine = RocksEngine::open(dir.path(), &["t"]).unwrap();
    let before = engine.sync_count();
    let start = Barrier::new(THREADS);
    thread::scope(|scope| {
        for t in 0..THREADS {
            let (engine, start) = (&engine, &start);
            scope.spawn(move || {
                start.wait();
                for w in 0..WRITES {
                    let key = format!("{t:02}-{w:02}");
                    put(engine, "t", key.as_bytes(), b"v", Durability::Durable);
                }
            });
        }
    });
    let syncs = engine.sync_count() - before;
    let stored = engine
        .range("t", b"", None, Direction::Forward)
        .unwrap()
        .collect::<crate::Result<Vec<_>>>()
        .unwrap();
    assert_eq!(stored.len(), THREADS * WRITES, "every durable write landed");
    eprintln!(
        "group commit: {} durable writes, {syncs} fsyncs",
        THREADS * WRITES
    );
    assert!(
        syncs < (THREADS * WRITES) as u64,
        "{syncs} fsyncs for {} writes: group commit is not sharing",
        THREADS * WRITES
    );
}

#[test]
fn bad_batch_does_not_fail_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let engine = RocksEngine::open(dir.path(), &["t"]).unwrap();
    thread::scope(|scope| {
        for t in 0..8u8 {
            let engine = &engine;
            scope.spawn(move || {
                for w in 0..20u8 {
                    let mut batch = Batch::new();
                    batch.put("t", [t, w], b"ok");
                    if w % 2 == 1 {
                        batch.put("missing", [t, w], b"bad");
                        assert!(engine.write(batch, Durability::Durable).is_err());
                    } else {
                        engine.write(batch, Durability::Durable).unwrap();
                    }
                }
            });
        }
    });
    let stored = engine.prefix("t", b"", Direction::Forward).unwrap().count();
    assert_eq!(stored, 8 * 10, "only the good batches, all of them");
}
