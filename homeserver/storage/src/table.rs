//! Typed table handles.

use std::fmt;
use std::marker::PhantomData;

use crate::codec::{CodecMarker, Json, KeyCodec, ValueCodec, encode_key, prefix_of};
use crate::database::Database;
use crate::engine::{Batch, Direction, KvIter, prefix_end};
use crate::error::{Error, Result};

/// A typed view of one engine table: keys of type `K` in the crate's key
/// encoding, values of type `V` stored with codec `C` (JSON by default).
///
/// Holds only the name, so tables are declared as constants next to the
/// code that owns them:
///
/// ```
/// # use myelin_storage::Table;
/// # struct Account;
/// pub const USERS: Table<String, Account> = Table::new("userid_account");
/// ```
///
/// Names follow the `key_value` convention (`userid_account`,
/// `roomid_eventid`), and each must also be listed in the
/// [`crate::Catalog`] the database is opened with.
pub struct Table<K, V, C = Json> {
    name: &'static str,
    _types: CodecMarker<K, V, C>,
}

// Written by hand: derives would demand `K: Clone` etc. although only the
// name is stored.
impl<K, V, C> Clone for Table<K, V, C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V, C> Copy for Table<K, V, C> {}

impl<K, V, C> fmt::Debug for Table<K, V, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Table").field(&self.name).finish()
    }
}

impl<K, V, C> Table<K, V, C> {
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            _types: PhantomData,
        }
    }

    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<K: KeyCodec, V, C: ValueCodec<V>> Table<K, V, C> {
    pub fn get(&self, db: &Database, key: &K) -> Result<Option<V>> {
        db.engine()
            .get(self.name, &encode_key(key))?
            .map(|bytes| self.decode_value(&bytes))
            .transpose()
    }

    /// Looks up many keys in one engine call; results are in key order.
    pub fn multi_get<'k>(
        &self,
        db: &Database,
        keys: impl IntoIterator<Item = &'k K>,
    ) -> Result<Vec<Option<V>>>
    where
        K: 'k,
    {
        let encoded: Vec<Vec<u8>> = keys.into_iter().map(encode_key).collect();
        let borrowed: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        db.engine()
            .multi_get(self.name, &borrowed)?
            .into_iter()
            .map(|value| value.map(|bytes| self.decode_value(&bytes)).transpose())
            .collect()
    }

    pub fn contains(&self, db: &Database, key: &K) -> Result<bool> {
        Ok(db.engine().get(self.name, &encode_key(key))?.is_some())
    }

    /// Adds a put to `batch`; fails only if the value cannot be encoded.
    pub fn put(&self, batch: &mut Batch, key: &K, value: &V) -> Result<()> {
        let value = C::encode_value(value).map_err(|e| self.annotate(e))?;
        batch.put(self.name, encode_key(key), value);
        Ok(())
    }

    pub fn delete(&self, batch: &mut Batch, key: &K) {
        batch.delete(self.name, encode_key(key));
    }

    /// All entries whose key starts with the part(s) `prefix`, e.g. every
    /// `(user, device)` entry of one user with `prefix = &user`, or with
    /// `prefix = &(room, user)` for a three-part key.
    pub fn iter_prefix<'a, P: KeyCodec>(
        &self,
        db: &'a Database,
        prefix: &P,
        direction: Direction,
    ) -> Result<TableIter<'a, K, V, C>> {
        self.iter_prefix_bytes(db, &prefix_of(prefix), direction)
    }

    /// All entries whose encoded key starts with `prefix` bytes, for prefix
    /// matches inside a part (e.g. user IDs beginning with "@al").
    pub fn iter_prefix_bytes<'a>(
        &self,
        db: &'a Database,
        prefix: &[u8],
        direction: Direction,
    ) -> Result<TableIter<'a, K, V, C>> {
        let end = prefix_end(prefix);
        self.iter_encoded(db, prefix, end.as_deref(), direction)
    }

    /// Forward: entries with keys >= `start`, ascending. Reverse: entries
    /// with keys <= `start`, descending (so "the latest entry up to X").
    pub fn iter_from<'a>(
        &self,
        db: &'a Database,
        start: &K,
        direction: Direction,
    ) -> Result<TableIter<'a, K, V, C>> {
        let start = encode_key(start);
        match direction {
            Direction::Forward => self.iter_encoded(db, &start, None, direction),
            Direction::Reverse => {
                // `start ++ 0x00` is the smallest key after `start`, so as an
                // exclusive end it includes `start` itself.
                let mut end = start;
                end.push(0x00);
                self.iter_encoded(db, &[], Some(&end), direction)
            }
        }
    }

    /// Entries with `start <= key < end`; `None` leaves that side open.
    pub fn iter_range<'a>(
        &self,
        db: &'a Database,
        start: Option<&K>,
        end: Option<&K>,
        direction: Direction,
    ) -> Result<TableIter<'a, K, V, C>> {
        let start = start.map(encode_key).unwrap_or_default();
        let end = end.map(encode_key);
        self.iter_encoded(db, &start, end.as_deref(), direction)
    }

    /// Every entry, ascending.
    pub fn iter_all<'a>(&self, db: &'a Database) -> Result<TableIter<'a, K, V, C>> {
        self.iter_encoded(db, &[], None, Direction::Forward)
    }

    fn iter_encoded<'a>(
        &self,
        db: &'a Database,
        start: &[u8],
        end: Option<&[u8]>,
        direction: Direction,
    ) -> Result<TableIter<'a, K, V, C>> {
        Ok(TableIter {
            table: *self,
            inner: db.engine().range(self.name, start, end, direction)?,
        })
    }

    fn decode_value(&self, bytes: &[u8]) -> Result<V> {
        C::decode_value(bytes).map_err(|e| self.annotate(e))
    }

    /// Names the table in decode/encode errors; "corrupt data" alone is
    /// useless in a log.
    fn annotate(&self, error: Error) -> Error {
        match error {
            Error::Corrupt(msg) => Error::Corrupt(format!("table `{}`: {msg}", self.name)),
            Error::Encode(msg) => Error::Encode(format!("table `{}`: {msg}", self.name)),
            other => other,
        }
    }
}

/// Iterator over decoded `(key, value)` entries of a [`Table`].
pub struct TableIter<'a, K, V, C = Json> {
    table: Table<K, V, C>,
    inner: KvIter<'a>,
}

impl<K: KeyCodec, V, C: ValueCodec<V>> Iterator for TableIter<'_, K, V, C> {
    type Item = Result<(K, V)>;

    fn next(&mut self) -> Option<Self::Item> {
        let (key, value) = match self.inner.next()? {
            Ok(entry) => entry,
            Err(e) => return Some(Err(e)),
        };
        let key = K::decode_key(&key).map_err(|e| self.table.annotate(e));
        Some(key.and_then(|key| Ok((key, self.table.decode_value(&value)?))))
    }
}
