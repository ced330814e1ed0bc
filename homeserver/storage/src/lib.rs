//! Myelin's storage layer.
//!
//! Everything the homeserver persists goes through this crate, in layers:
//!
//! - [`Engine`] — an object-safe, backend-neutral ordered key-value store of
//!   named tables: point reads, atomic [`Batch`] writes, ordered range and
//!   prefix iteration. No RocksDB type crosses it, so another backend (a
//!   distributed store) can be dropped in later.
//! - Engines — [`RocksEngine`] for production (one column family per table,
//!   lz4, shared block cache, refuses a directory another process holds with
//!   [`Error::Locked`]) and [`MemoryEngine`] for unit tests.
//! - Durability — a write is either [`Durability::Durable`] (returns after
//!   the WAL is fsynced) or [`Durability::Buffered`]. RocksDB durable writes
//!   use *group commit*: a single committer thread merges every batch queued
//!   while the previous fsync ran into one write with one fsync, so many
//!   concurrent writers cost one disk sync ([`Engine::sync_count`] shows it).
//! - Codec — one key encoding for all tables ([`KeyCodec`], format documented
//!   in the `codec` module): big-endian integers and separator-terminated
//!   strings, so byte order is meaningful and tuple prefixes select exactly
//!   their entries. Values use a [`ValueCodec`], JSON by default.
//! - [`Table`] — typed, `const`-declared handles (`Table<String, Account>`)
//!   that encode keys and values on the way in and out.
//! - [`Database`] — the cloneable handle the server passes around: opens an
//!   engine from a [`Catalog`] of tables, checks the schema version stored
//!   in the internal meta table and runs pending [`Migration`]s in order,
//!   and provides durable/async writes and crash-safe id counters.

mod codec;
mod database;
mod engine;
mod error;
mod memory;
mod rocks;
mod table;

#[cfg(test)]
mod tests;

pub use codec::{Json, KeyCodec, Raw, ValueCodec, encode_key, prefix_of};
pub use database::{COUNTER_BLOCK, Catalog, Database, META_TABLE, Migration};
pub use engine::{
    Batch, BatchOp, CommitCallback, Direction, Durability, Engine, KvIter, prefix_end,
};
pub use error::{Error, Result};
pub use memory::MemoryEngine;
pub use rocks::{RocksEngine, RocksOptions};
pub use table::{Table, TableIter};
