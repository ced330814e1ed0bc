//! Server-side key backup: encrypted megolm session keys, per backup version.
//!
//! The server cannot read the keys; it keeps them, and when a client uploads a key for a
//! session already backed up, decides which copy to keep with the spec's rules: a verified key
//! beats an unverified one, then the lower `first_message_index` (it decrypts more), then the
//! lower `forwarded_count` (fewer hops). Writes to one user's backup are serialised by the
//! user's key lock, so its `count` and `etag` always describe its keys.

use std::collections::BTreeMap;

use http::StatusCode;
use myelin_storage::{Batch, Direction, Table};
use ruma::{
    UserId,
    api::error::{ErrorKind, WrongRoomKeysVersionErrorData},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::E2ee;
use crate::error::{Error, Result};

pub const VERSIONS_TABLE: &str = "userid_version_backup";
pub const KEYS_TABLE: &str = "userid_version_roomsession_backupkey";
/// (user, version) → the backup's algorithm and auth data, key count and etag.
const VERSIONS: Table<(String, u64), BackupVersion> = Table::new(VERSIONS_TABLE);
/// (user, version, `room\nsession`) → the encrypted session key. Room IDs contain no newline,
/// so one room's keys share the prefix `room\n`.
const KEYS: Table<KeyRow, Value> = Table::new(KEYS_TABLE);
type KeyRow = (String, u64, String);
const VERSION_COUNTER: &str = "backup_version";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackupVersion {
    /// `{"algorithm": …, "auth_data": …}` as the client sent it.
    pub algorithm: Value,
    pub count: u64,
    /// Bumped whenever the backup's keys change.
    pub etag: u64,
}

/// Keys of a backup: room → session → key data.
pub type BackupKeys = BTreeMap<String, BTreeMap<String, Value>>;

fn parse_version(version: &str) -> Result<u64> {
    version.parse().map_err(|_| Error::not_found("Unknown backup version"))
}

fn session_row(user: &UserId, version: u64, room: &str, session: &str) -> KeyRow {
    (user.to_string(), version, format!("{room}\n{session}"))
}

/// Whether `new` should replace `old` under the spec's rules.
fn replaces(old: &Value, new: &Value) -> bool {
    // Higher is better: verified, then lower first_message_index, then lower forwarded_count.
    let merit = |key: &Value| {
        let number = |field: &str| std::cmp::Reverse(key[field].as_u64().unwrap_or(u64::MAX));
        (key["is_verified"].as_bool().unwrap_or(false), number("first_message_index"), number("forwarded_count"))
    };
    merit(new) > merit(old)
}

impl E2ee {
    /// Creates a new backup version, which becomes the current one.
    pub async fn create_backup(&self, user: &UserId, algorithm: Value) -> Result<String> {
        let _guard = self.lock_user(user).await;
        let version = self.db.next_id(VERSION_COUNTER)?;
        let mut batch = Batch::new();
        VERSIONS.put(&mut batch, &(user.to_string(), version), &BackupVersion { algorithm, count: 0, etag: 0 })?;
        self.db.write_async(batch).await?;
        Ok(version.to_string())
    }

    /// The current (newest) backup version, if any.
    pub fn latest_backup(&self, user: &UserId) -> Result<Option<(String, BackupVersion)>> {
        let newest = VERSIONS.iter_prefix(&self.db, &user.to_string(), Direction::Reverse)?.next().transpose()?;
        Ok(newest.map(|((_, version), backup)| (version.to_string(), backup)))
    }

    pub fn backup(&self, user: &UserId, version: &str) -> Result<BackupVersion> {
        VERSIONS.get(&self.db, &(user.to_string(), parse_version(version)?))?.ok_or_else(|| Error::not_found("Unknown backup version"))
    }

    /// Replaces a backup's auth data; its algorithm may not change.
    pub async fn update_backup(&self, user: &UserId, version: &str, algorithm: Value) -> Result<()> {
        let _guard = self.lock_user(user).await;
        let mut backup = self.backup(user, version)?;
        if backup.algorithm["algorithm"] != algorithm["algorithm"] {
            return Err(Error::invalid_param("The algorithm of a backup version cannot change"));
        }
        backup.algorithm = algorithm;
        let mut batch = Batch::new();
        VERSIONS.put(&mut batch, &(user.to_string(), parse_version(version)?), &backup)?;
        Ok(self.db.write_async(batch).await?)
    }

    /// Deletes a backup version and its keys.
    pub async fn delete_backup(&self, user: &UserId, version: &str) -> Result<()> {
        let _guard = self.lock_user(user).await;
        self.backup(user, version)?;
        let number = parse_version(version)?;
        let mut batch = Batch::new();
        for entry in KEYS.iter_prefix(&self.db, &(user.to_string(), number), Direction::Forward)? {
            KEYS.delete(&mut batch, &entry?.0);
        }
        VERSIONS.delete(&mut batch, &(user.to_string(), number));
        Ok(self.db.write_async(batch).await?)
    }

    /// Adds keys to the current backup version, keeping the better copy of each session;
    /// answers the backup's new state. Uploading to any other version is refused with
    /// `M_WRONG_ROOM_KEYS_VERSION`, so a client with a stale backup notices.
    pub async fn add_backup_keys(&self, user: &UserId, version: &str, keys: BackupKeys) -> Result<BackupVersion> {
        let _guard = self.lock_user(user).await;
        let (current, mut backup) = self.latest_backup(user)?.ok_or_else(|| Error::not_found("Unknown backup version"))?;
        if current != version {
            return Err(Error::matrix(
                StatusCode::FORBIDDEN,
                ErrorKind::WrongRoomKeysVersion(WrongRoomKeysVersionErrorData::new(current)),
                "Not the current backup version",
            ));
        }
        let number = parse_version(version)?;
        let mut batch = Batch::new();
        let mut changed = false;
        for (room, sessions) in keys {
            for (session, key) in sessions {
                let row = session_row(user, number, &room, &session);
                match KEYS.get(&self.db, &row)? {
                    Some(old) if !replaces(&old, &key) => continue,
                    Some(_) => {}
                    None => backup.count += 1,
                }
                KEYS.put(&mut batch, &row, &key)?;
                changed = true;
            }
        }
        if changed {
            backup.etag += 1;
            VERSIONS.put(&mut batch, &(user.to_string(), number), &backup)?;
            self.db.write_async(batch).await?;
        }
        Ok(backup)
    }

    /// The keys of a backup version, all of them or one room's or one session's.
    pub fn backup_keys(&self, user: &UserId, version: &str, room: Option<&str>, session: Option<&str>) -> Result<BackupKeys> {
        self.backup(user, version)?;
        let mut keys = BackupKeys::new();
        for (row, key) in self.backup_rows(user, parse_version(version)?, room, session)? {
            if let Some((room, session)) = row.2.split_once('\n') {
                keys.entry(room.to_owned()).or_default().insert(session.to_owned(), key);
            }
        }
        Ok(keys)
    }

    /// Deletes keys of a backup version (all, a room's, or a session's).
    pub async fn delete_backup_keys(&self, user: &UserId, version: &str, room: Option<&str>, session: Option<&str>) -> Result<BackupVersion> {
        let _guard = self.lock_user(user).await;
        let mut backup = self.backup(user, version)?;
        let number = parse_version(version)?;
        let rows = self.backup_rows(user, number, room, session)?;
        if rows.is_empty() {
            return Ok(backup);
        }
        let mut batch = Batch::new();
        for (row, _) in &rows {
            KEYS.delete(&mut batch, row);
        }
        backup.count = backup.count.saturating_sub(rows.len() as u64);
        backup.etag += 1;
        VERSIONS.put(&mut batch, &(user.to_string(), number), &backup)?;
        self.db.write_async(batch).await?;
        Ok(backup)
    }

    fn backup_rows(&self, user: &UserId, version: u64, room: Option<&str>, session: Option<&str>) -> Result<Vec<(KeyRow, Value)>> {
        if let (Some(room), Some(session)) = (room, session) {
            let row = session_row(user, version, room, session);
            return Ok(KEYS.get(&self.db, &row)?.map(|key| (row, key)).into_iter().collect());
        }
        let mut prefix = myelin_storage::prefix_of(&(user.to_string(), version));
        if let Some(room) = room {
            prefix.extend_from_slice(format!("{room}\n").as_bytes());
        }
        KEYS.iter_prefix_bytes(&self.db, &prefix, Direction::Forward)?.map(|entry| Ok(entry?)).collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::replaces;

    #[test]
    fn the_better_backup_copy_wins() {
        let key = |verified: bool, index: u64, forwarded: u64| {
            json!({"is_verified": verified, "first_message_index": index, "forwarded_count": forwarded})
        };
        assert!(replaces(&key(false, 0, 0), &key(true, 9, 9)), "verified beats unverified");
        assert!(!replaces(&key(true, 9, 9), &key(false, 0, 0)), "unverified never replaces verified");
        assert!(replaces(&key(true, 5, 0), &key(true, 2, 3)), "lower first_message_index wins");
        assert!(!replaces(&key(true, 2, 0), &key(true, 5, 0)));
        assert!(replaces(&key(true, 2, 3), &key(true, 2, 1)), "then lower forwarded_count");
        assert!(!replaces(&key(true, 2, 1), &key(true, 2, 1)), "an equal copy changes nothing");
    }
}
