//! The engine conformance suite: every function takes a [`Harness`] and
//! must pass for every engine.

use std::collections::HashSet;
use std::thread;

use serde::{Deserialize, Serialize};

use super::Harness;
use crate::{
    Batch, COUNTER_BLOCK, Catalog, Database, Direction, Durability, Error, KvIter, Migration, Raw,
    Result, Table,
};

fn collect(iter: KvIter<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
    iter.collect::<Result<_>>().expect("iteration succeeds")
}

fn keys(iter: KvIter<'_>) -> Vec<Vec<u8>> {
    collect(iter).into_iter().map(|(k, _)| k).collect()
}

fn put(engine: &dyn crate::Engine, table: &str, key: &[u8], value: &[u8]) {
    let mut batch = Batch::new();
    batch.put(table, key, value);
    engine.write(batch, Durability::Durable).expect("write");
}

pub(crate) fn get_put_delete(h: &impl Harness) {
    let engine = h.engine(&["one", "two"]);
    assert_eq!(engine.get("one", b"k").unwrap(), None);

    put(&*engine, "one", b"k", b"v1");
    put(&*engine, "two", b"k", b"other");
    assert_eq!(engine.get("one", b"k").unwrap(), Some(b"v1".to_vec()));
    assert_eq!(
        engine.get("two", b"k").unwrap(),
        Some(b"other".to_vec()),
        "tables are separate"
    );

    put(&*engine, "one", b"k", b"v2");
    assert_eq!(
        engine.get("one", b"k").unwrap(),
        Some(b"v2".to_vec()),
        "put overwrites"
    );

    let mut batch = Batch::new();
    batch.delete("one", b"k");
    engine.write(batch, Durability::Buffered).unwrap();
    assert_eq!(engine.get("one", b"k").unwrap(), None);
    assert_eq!(engine.get("two", b"k").unwrap(), Some(b"other".to_vec()));
}

pub(crate) fn multi_get_preserves_order(h: &impl Harness) {
    let engine = h.engine(&["t"]);
    put(&*engine, "t", b"a", b"1");
    put(&*engine, "t", b"c", b"3");
    let got = engine.multi_get("t", &[b"c", b"b", b"a", b"c"]).unwrap();
    assert_eq!(
        got,
        vec![
            Some(b"3".to_vec()),
            None,
            Some(b"1".to_vec()),
            Some(b"3".to_vec())
        ]
    );
    assert!(engine.multi_get("t", &[]).unwrap().is_empty());
}

pub(crate) fn batches_are_atomic(h: &impl Harness) {
    let engine = h.engine(&["t"]);
    put(&*engine, "t", b"keep", b"old");

    // A batch touching an unknown table must leave no trace, whatever the
    // position of the bad operation.
    for durability in [Durability::Durable, Durability::Buffered] {
        let mut batch = Batch::new();
        batch.put("t", b"new", b"x");
        batch.delete("t", b"keep");
        batch.put("missing", b"k", b"v");
        assert!(matches!(
            engine.write(batch, durability),
            Err(Error::UnknownTable(name)) if name == "missing"
        ));
        assert_eq!(engine.get("t", b"new").unwrap(), None);
        assert_eq!(engine.get("t", b"keep").unwrap(), Some(b"old".to_vec()));
    }

    // Within a batch, later operations on a key win.
    let mut batch = Batch::new();
    batch.put("t", b"k", b"first");
    batch.delete("t", b"k");
    batch.put("t", b"k", b"last");
    batch.put("t", b"gone", b"x");
    batch.delete("t", b"gone");
    engine.write(batch, Durability::Durable).unwrap();
    assert_eq!(engine.get("t", b"k").unwrap(), Some(b"last".to_vec()));
    assert_eq!(engine.get("t", b"gone").unwrap(), None);

    // Empty batches are accepted in both modes.
    engine.write(Batch::new(), Durability::Durable).unwrap();
    engine.write(Batch::new(), Durability::Buffered).unwrap();
}

pub(crate) fn batch_append_and_len(h: &impl Harness) {
    let engine = h.engine(&["t"]);
    let mut first = Batch::new();
    assert!(first.is_empty());
    first.put("t", b"k", b"from-first");
    let mut second = Batch::new();
    second.put("t", b"k", b"from-second");
    second.put("t", b"other", b"x");
    first.append(second);
    assert_eq!(first.len(), 3);
    assert!(!first.is_empty());
    engine.write(first, Durability::Durable).unwrap();
    assert_eq!(
        engine.get("t", b"k").unwrap(),
        Some(b"from-second".to_vec())
    );
}

pub(crate) fn prefix_iteration_order(h: &impl Harness) {
    let engine = h.engine(&["t"]);
    let all: [&[u8]; 9] = [
        b"a",
        b"ab",
        b"abc",
        b"abd",
        b"ac",
        b"b",
        b"\x01\xff\x00",
        b"\x01\xff\xff",
        b"\x02",
    ];
    let mut batch = Batch::new();
    for key in all {
        batch.put("t", key, [key, b"!"].concat());
    }
    engine.write(batch, Durability::Durable).unwrap();

    let forward = collect(engine.prefix("t", b"ab", Direction::Forward).unwrap());
    assert_eq!(
        forward,
        vec![
            (b"ab".to_vec(), b"ab!".to_vec()),
            (b"abc".to_vec(), b"abc!".to_vec()),
            (b"abd".to_vec(), b"abd!".to_vec()),
        ]
    );
    let reverse = keys(engine.prefix("t", b"ab", Direction::Reverse).unwrap());
    assert_eq!(
        reverse,
        vec![b"abd".to_vec(), b"abc".to_vec(), b"ab".to_vec()]
    );

    // A prefix ending in 0xFF has no simple successor; it must still work.
    let ff = keys(engine.prefix("t", b"\x01\xff", Direction::Forward).unwrap());
    assert_eq!(ff, vec![b"\x01\xff\x00".to_vec(), b"\x01\xff\xff".to_vec()]);
    let ff_rev = keys(engine.prefix("t", b"\x01\xff", Direction::Reverse).unwrap());
    assert_eq!(
        ff_rev,
        vec![b"\x01\xff\xff".to_vec(), b"\x01\xff\x00".to_vec()]
    );

    assert!(keys(engine.prefix("t", b"zz", Direction::Forward).unwrap()).is_empty());
    assert!(keys(engine.prefix("t", b"zz", Direction::Reverse).unwrap()).is_empty());

    let mut sorted: Vec<Vec<u8>> = all.iter().map(|k| k.to_vec()).collect();
    sorted.sort();
    assert_eq!(
        keys(engine.prefix("t", b"", Direction::Forward).unwrap()),
        sorted
    );
    sorted.reverse();
    assert_eq!(
        keys(engine.prefix("t", b"", Direction::Reverse).unwrap()),
        sorted
    );
}

pub(crate) fn range_iteration_bounds(h: &impl Harness) {
    let engine = h.engine(&["t"]);
    let mut batch = Batch::new();
    for n in 1u64..=9 {
        batch.put("t", n.to_be_bytes(), n.to_string());
    }
    engine.write(batch, Durability::Buffered).unwrap();
    let nums = |iter: KvIter<'_>| -> Vec<u64> {
        keys(iter)
            .into_iter()
            .map(|k| u64::from_be_bytes(k.try_into().unwrap()))
            .collect()
    };
    let (three, seven) = (3u64.to_be_bytes(), 7u64.to_be_bytes());

    let fwd = engine
        .range("t", &three, Some(&seven), Direction::Forward)
        .unwrap();
    assert_eq!(
        nums(fwd),
        vec![3, 4, 5, 6],
        "start inclusive, end exclusive"
    );
    let rev = engine
        .range("t", &three, Some(&seven), Direction::Reverse)
        .unwrap();
    assert_eq!(nums(rev), vec![6, 5, 4, 3]);

    let open_end = engine.range("t", &seven, None, Direction::Forward).unwrap();
    assert_eq!(nums(open_end), vec![7, 8, 9]);
    let open_end_rev = engine.range("t", &seven, None, Direction::Reverse).unwrap();
    assert_eq!(nums(open_end_rev), vec![9, 8, 7]);

    let everything = engine.range("t", &[], None, Direction::Reverse).unwrap();
    assert_eq!(nums(everything), (1..=9).rev().collect::<Vec<_>>());

    for direction in [Direction::Forward, Direction::Reverse] {
        let inverted = engine.range("t", &seven, Some(&three), direction).unwrap();
        assert!(nums(inverted).is_empty(), "end before start is empty");
        let same = engine.range("t", &three, Some(&three), direction).unwrap();
        assert!(nums(same).is_empty(), "end == start is empty");
    }

    // Iterators are unaffected by writes made while they are open.
    let mut iter = engine.range("t", &[], None, Direction::Forward).unwrap();
    assert!(iter.next().is_some());
    put(&*engine, "t", &10u64.to_be_bytes(), b"10");
    assert_eq!(iter.count(), 8);
}

pub(crate) fn unknown_table_is_an_error(h: &impl Harness) {
    let engine = h.engine(&["t"]);
    let unknown = |r: Result<()>| matches!(r, Err(Error::UnknownTable(name)) if name == "nope");
    assert!(unknown(engine.get("nope", b"k").map(drop)));
    assert!(unknown(engine.multi_get("nope", &[b"k"]).map(drop)));
    assert!(unknown(
        engine
            .range("nope", b"", None, Direction::Forward)
            .map(drop)
    ));
    assert!(unknown(
        engine.prefix("nope", b"", Direction::Reverse).map(drop)
    ));
    let mut batch = Batch::new();
    batch.delete("nope", b"k");
    assert!(unknown(engine.write(batch, Durability::Durable)));
}

pub(crate) fn sync_count_counts_durable_writes(h: &impl Harness) {
    let engine = h.engine(&["t"]);
    let before = engine.sync_count();
    put(&*engine, "t", b"a", b"1");
    assert_eq!(
        engine.sync_count(),
        before + 1,
        "a lone durable write is one sync"
    );
    let mut batch = Batch::new();
    batch.put("t", b"b", b"2");
    engine.write(batch, Durability::Buffered).unwrap();
    assert_eq!(
        engine.sync_count(),
        before + 1,
        "buffered writes do not sync"
    );
    engine.flush().unwrap();
    assert_eq!(engine.get("t", b"b").unwrap(), Some(b"2".to_vec()));
}

const NUMBERS: Table<u64, String> = Table::new("number_name");
const PAIRS: Table<(String, String), u64, Raw> = Table::new("first_second_value");
const TRIPLES: Table<(String, u64, String), Vec<u8>, Raw> = Table::new("roomid_seq_eventid");
const BLOBS: Table<(Vec<u8>, u64), ()> = Table::new("blob_seq_unit");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Device {
    name: String,
    last_seen: u64,
}

const DEVICES: Table<(String, String), Device> = Table::new("userid_deviceid_device");

fn data_catalog() -> Catalog {
    Catalog::new(1)
        .table(NUMBERS.name())
        .table(PAIRS.name())
        .table(TRIPLES.name())
        .table(BLOBS.name())
        .table(DEVICES.name())
}

fn s(value: &str) -> String {
    value.to_owned()
}

pub(crate) fn key_codec_orders_u64_numerically(h: &impl Harness) {
    let db = h.database(&data_catalog()).unwrap();
    let numbers = [65_536u64, 2, 255, 0, 256, u64::MAX, 1, 1 << 40];
    let mut batch = Batch::new();
    for n in numbers {
        NUMBERS.put(&mut batch, &n, &n.to_string()).unwrap();
    }
    db.write(batch).unwrap();

    let mut expected = numbers.to_vec();
    expected.sort_unstable();
    let got: Vec<u64> = NUMBERS
        .iter_all(&db)
        .unwrap()
        .map(|e| e.unwrap().0)
        .collect();
    assert_eq!(got, expected);
    let rev: Vec<u64> = NUMBERS
        .iter_range(&db, None, None, Direction::Reverse)
        .unwrap()
        .map(|e| e.unwrap().0)
        .collect();
    expected.reverse();
    assert_eq!(rev, expected);
}

pub(crate) fn tuple_prefixes_do_not_collide(h: &impl Harness) {
    let db = h.database(&data_catalog()).unwrap();
    let mut batch = Batch::new();
    PAIRS.put(&mut batch, &(s("ab"), s("c")), &1).unwrap();
    PAIRS.put(&mut batch, &(s("a"), s("bc")), &2).unwrap();
    PAIRS.put(&mut batch, &(s("a"), s("")), &3).unwrap();
    PAIRS.put(&mut batch, &(s(""), s("abc")), &4).unwrap();
    db.write(batch).unwrap();

    let under = |first: &str| -> Vec<((String, String), u64)> {
        PAIRS
            .iter_prefix(&db, &s(first), Direction::Forward)
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(
        under("a"),
        vec![((s("a"), s("")), 3), ((s("a"), s("bc")), 2)]
    );
    assert_eq!(under("ab"), vec![((s("ab"), s("c")), 1)]);
    assert_eq!(under(""), vec![((s(""), s("abc")), 4)]);
    assert!(under("abc").is_empty());
    assert_eq!(PAIRS.get(&db, &(s("ab"), s("c"))).unwrap(), Some(1));
    assert_eq!(PAIRS.get(&db, &(s("a"), s("bc"))).unwrap(), Some(2));

    // Three-part keys, prefixed by one or two parts; u64 parts order numerically.
    let mut batch = Batch::new();
    for (room, seq, event) in [
        ("!r", 10, "$b"),
        ("!r", 2, "$a"),
        ("!r", 2, "$c"),
        ("!rr", 1, "$x"),
    ] {
        TRIPLES
            .put(
                &mut batch,
                &(s(room), seq, s(event)),
                &event.as_bytes().to_vec(),
            )
            .unwrap();
    }
    db.write(batch).unwrap();
    let room: Vec<_> = TRIPLES
        .iter_prefix(&db, &s("!r"), Direction::Forward)
        .unwrap()
        .map(|e| e.unwrap().0)
        .collect();
    assert_eq!(
        room,
        vec![
            (s("!r"), 2, s("$a")),
            (s("!r"), 2, s("$c")),
            (s("!r"), 10, s("$b"))
        ]
    );
    let at_two: Vec<_> = TRIPLES
        .iter_prefix(&db, &(s("!r"), 2u64), Direction::Reverse)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(
        at_two,
        vec![
            ((s("!r"), 2, s("$c")), b"$c".to_vec()),
            ((s("!r"), 2, s("$a")), b"$a".to_vec())
        ]
    );

    // Byte-string parts may contain the separator byte itself.
    let mut batch = Batch::new();
    BLOBS.put(&mut batch, &(vec![0xFF], 1), &()).unwrap();
    BLOBS.put(&mut batch, &(vec![0xFF, 0xFF], 2), &()).unwrap();
    BLOBS.put(&mut batch, &(vec![], 3), &()).unwrap();
    db.write(batch).unwrap();
    let blob = |prefix: Vec<u8>| -> Vec<(Vec<u8>, u64)> {
        BLOBS
            .iter_prefix(&db, &prefix, Direction::Forward)
            .unwrap()
            .map(|e| e.unwrap().0)
            .collect()
    };
    assert_eq!(blob(vec![0xFF]), vec![(vec![0xFF], 1)]);
    assert_eq!(blob(vec![0xFF, 0xFF]), vec![(vec![0xFF, 0xFF], 2)]);
    assert_eq!(blob(vec![]), vec![(vec![], 3)]);
}

pub(crate) fn typed_table_operations(h: &impl Harness) {
    let db = h.database(&data_catalog()).unwrap();
    let alice_phone = (s("@alice:x"), s("PHONE"));
    let alice_laptop = (s("@alice:x"), s("LAPTOP"));
    let phone = Device {
        name: s("Phone"),
        last_seen: 7,
    };

    let mut batch = Batch::new();
    DEVICES.put(&mut batch, &alice_phone, &phone).unwrap();
    db.write(batch).unwrap();
    assert_eq!(DEVICES.get(&db, &alice_phone).unwrap(), Some(phone.clone()));
    assert!(DEVICES.contains(&db, &alice_phone).unwrap());
    assert!(!DEVICES.contains(&db, &alice_laptop).unwrap());
    assert_eq!(
        DEVICES
            .multi_get(&db, &[alice_laptop.clone(), alice_phone.clone()])
            .unwrap(),
        vec![None, Some(phone)]
    );

    let mut batch = Batch::new();
    DEVICES.delete(&mut batch, &alice_phone);
    db.write_buffered(batch).unwrap();
    assert_eq!(DEVICES.get(&db, &alice_phone).unwrap(), None);

    // Undecodable bytes are reported as corruption naming the table.
    let mut batch = Batch::new();
    batch.put(
        DEVICES.name(),
        crate::encode_key(&alice_laptop),
        b"not json".to_vec(),
    );
    db.write(batch).unwrap();
    match DEVICES.get(&db, &alice_laptop) {
        Err(Error::Corrupt(msg)) => assert!(msg.contains(DEVICES.name()), "{msg}"),
        other => panic!("expected corruption, got {other:?}"),
    }
    let mut batch = Batch::new();
    batch.put(NUMBERS.name(), b"short".to_vec(), b"\"x\"".to_vec());
    db.write(batch).unwrap();
    let first = NUMBERS.iter_all(&db).unwrap().next().expect("one entry");
    assert!(matches!(first, Err(Error::Corrupt(_))));
}

pub(crate) fn typed_iteration_from_and_range(h: &impl Harness) {
    let db = h.database(&data_catalog()).unwrap();
    let mut batch = Batch::new();
    for n in [10u64, 20, 30, 40] {
        NUMBERS.put(&mut batch, &n, &format!("n{n}")).unwrap();
    }
    db.write(batch).unwrap();
    let run = |iter: crate::TableIter<'_, u64, String>| -> Vec<u64> {
        iter.map(|e| e.unwrap().0).collect()
    };
    assert_eq!(
        run(NUMBERS.iter_from(&db, &20, Direction::Forward).unwrap()),
        [20, 30, 40]
    );
    assert_eq!(
        run(NUMBERS.iter_from(&db, &25, Direction::Forward).unwrap()),
        [30, 40]
    );
    assert_eq!(
        run(NUMBERS.iter_from(&db, &30, Direction::Reverse).unwrap()),
        [30, 20, 10]
    );
    assert_eq!(
        run(NUMBERS.iter_from(&db, &25, Direction::Reverse).unwrap()),
        [20, 10]
    );
    let range = NUMBERS
        .iter_range(&db, Some(&15), Some(&40), Direction::Reverse)
        .unwrap();
    assert_eq!(run(range), [30, 20]);
    let (key, value) = NUMBERS.iter_all(&db).unwrap().next().unwrap().unwrap();
    assert_eq!((key, value.as_str()), (10, "n10"));
}

pub(crate) fn counters_are_monotonic_and_persistent(h: &impl Harness) {
    let catalog = Catalog::new(1);
    let mut last = {
        let db = h.database(&catalog).unwrap();
        assert_eq!(db.current_id("events").unwrap(), 0);
        let ids: Vec<u64> = (0..3).map(|_| db.next_id("events").unwrap()).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(db.current_id("events").unwrap(), 3);
        assert_eq!(db.next_id("other").unwrap(), 1, "counters are independent");
        // Cross a reservation block boundary.
        let mut last = 3;
        for _ in 0..COUNTER_BLOCK + 5 {
            let id = db.next_id("events").unwrap();
            assert!(id > last);
            last = id;
        }
        last
    };
    for _ in 0..3 {
        let db = h.database(&catalog).unwrap();
        let current = db.current_id("events").unwrap();
        assert!(
            current >= last,
            "current id {current} went back below {last}"
        );
        let next = db.next_id("events").unwrap();
        assert!(
            next > current && next > last,
            "id {next} repeated after reopen"
        );
        last = next;
    }
}

pub(crate) fn counters_are_unique_under_concurrency(h: &impl Harness) {
    let db = h.database(&Catalog::new(1)).unwrap();
    let per_thread: Vec<Vec<u64>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let db = db.clone();
                scope.spawn(move || (0..100).map(|_| db.next_id("c").unwrap()).collect())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all = HashSet::new();
    for ids in &per_thread {
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "each caller sees increasing ids"
        );
        all.extend(ids.iter().copied());
    }
    assert_eq!(all.len(), 800, "no id handed out twice");
    assert_eq!(db.current_id("c").unwrap(), 800);
}

const MIGRATION_LOG: Table<u64, String> = Table::new("seq_migrationname");

fn record_migration(db: &Database, name: &str) -> Result<()> {
    let seq = db.next_id("migration_log")?;
    let mut batch = Batch::new();
    MIGRATION_LOG.put(&mut batch, &seq, &name.to_owned())?;
    db.write(batch)
}

fn migration_names(db: &Database) -> Vec<String> {
    MIGRATION_LOG
        .iter_all(db)
        .unwrap()
        .map(|e| e.unwrap().1)
        .collect()
}

fn to_v2(db: &Database) -> Result<()> {
    record_migration(db, "to_v2")
}

fn to_v3(db: &Database) -> Result<()> {
    if migration_names(db) != ["to_v2"] {
        return Err(Error::Corrupt("to_v3 ran before to_v2".to_owned()));
    }
    record_migration(db, "to_v3")
}

fn to_v5_fails(_: &Database) -> Result<()> {
    Err(Error::Engine("simulated failure".to_owned()))
}

fn to_v5(db: &Database) -> Result<()> {
    record_migration(db, "to_v5")
}

fn migration(to_version: u64, name: &'static str, run: fn(&Database) -> Result<()>) -> Migration {
    Migration {
        to_version,
        name,
        run,
    }
}

fn versioned_catalog(version: u64) -> Catalog {
    Catalog::new(version).table(MIGRATION_LOG.name())
}

pub(crate) fn schema_version_and_migrations(h: &impl Harness) {
    // A fresh database starts at the current version without migrating.
    let fresh = versioned_catalog(1).migration(migration(1, "never", to_v5_fails));
    let db = h.database(&fresh).unwrap();
    assert_eq!(db.schema_version().unwrap(), 1);
    drop(db);

    // Added out of order on purpose: they must run by version.
    let v3 = versioned_catalog(3)
        .migration(migration(3, "to_v3", to_v3))
        .migration(migration(2, "to_v2", to_v2));
    let db = h.database(&v3).unwrap();
    assert_eq!(db.schema_version().unwrap(), 3);
    assert_eq!(migration_names(&db), ["to_v2", "to_v3"]);
    drop(db);

    // Reopening at the same version runs nothing again.
    let db = h.database(&v3).unwrap();
    assert_eq!(migration_names(&db), ["to_v2", "to_v3"]);
    drop(db);

    // A version bump without migration code just records the new version.
    let db = h.database(&versioned_catalog(4)).unwrap();
    assert_eq!(db.schema_version().unwrap(), 4);
    assert_eq!(migration_names(&db), ["to_v2", "to_v3"]);
}

pub(crate) fn failed_migration_is_retried(h: &impl Harness) {
    drop(h.database(&versioned_catalog(4)).unwrap());
    let broken = versioned_catalog(5).migration(migration(5, "to_v5", to_v5_fails));
    match h.database(&broken) {
        Err(Error::Migration {
            to_version: 5,
            name: "to_v5",
            source,
        }) => {
            assert!(matches!(*source, Error::Engine(_)));
        }
        other => panic!("expected a migration error, got {other:?}"),
    }
    let fixed = versioned_catalog(5).migration(migration(5, "to_v5", to_v5));
    let db = h.database(&fixed).unwrap();
    assert_eq!(db.schema_version().unwrap(), 5, "resumed from version 4");
    assert_eq!(migration_names(&db), ["to_v5"]);
}

pub(crate) fn schema_too_new_is_refused(h: &impl Harness) {
    drop(h.database(&versioned_catalog(5)).unwrap());
    match h.database(&versioned_catalog(3)) {
        Err(
            err @ Error::SchemaTooNew {
                found: 5,
                supported: 3,
            },
        ) => {
            assert!(err.to_string().contains("newer"), "{err}");
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    // Refusing must not have modified anything.
    let db = h.database(&versioned_catalog(5)).unwrap();
    assert_eq!(db.schema_version().unwrap(), 5);
}

pub(crate) fn invalid_catalog_is_rejected(h: &impl Harness) {
    let invalid = |catalog: Catalog| matches!(h.database(&catalog), Err(Error::InvalidCatalog(_)));
    assert!(invalid(Catalog::new(1).table("a_b").table("a_b")));
    assert!(invalid(Catalog::new(1).table(crate::META_TABLE)));
    assert!(invalid(Catalog::new(1).table("")));
    assert!(invalid(
        Catalog::new(2).migration(migration(3, "beyond", to_v5))
    ));
    assert!(invalid(
        Catalog::new(2)
            .migration(migration(2, "one", to_v5))
            .migration(migration(2, "two", to_v5))
    ));
}

pub(crate) fn write_async_is_durable(h: &impl Harness) {
    let db = h.database(&data_catalog()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let before = db.sync_count();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..32u64)
            .map(|n| {
                let db = db.clone();
                tokio::spawn(async move {
                    let mut batch = Batch::new();
                    NUMBERS.put(&mut batch, &n, &format!("async {n}"))?;
                    db.write_async(batch).await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
    });
    assert_eq!(NUMBERS.iter_all(&db).unwrap().count(), 32);
    let syncs = db.sync_count() - before;
    assert!((1..=32).contains(&syncs), "{syncs} syncs for 32 writes");
}
