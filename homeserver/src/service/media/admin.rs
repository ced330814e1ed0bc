//! Media administration: quarantine and protection, what admins list and look up, and
//! deletion of local media and of the remote cache.
//!
//! Quarantine lives in a table of its own keyed like the media table, rather than in the media
//! records, so that it can name remote media this server has not fetched yet (a quarantined
//! room's) and outlives a purge of the remote cache: quarantined remote media is never fetched
//! again. Every download path reads media through [`Media::servable`], which refuses it.
//!
//! Deletion and shared files: files are content-addressed, so two records with the same bytes
//! name one file. [`Media::delete`] works in this order, under the file store's removal guard
//! (which waits for files being placed to have their records committed, and holds new ones
//! back):
//! 1. commit the deletion of the records (durably);
//! 2. look through the remaining records for the deleted ones' content hashes;
//! 3. remove the files no record names any more.
//!
//! A crash after 1 leaves files that no record names: wasted space, never a record naming a
//! missing file. Removing files first would risk exactly that, so it is never done.

use std::{
    cmp::Ordering,
    collections::{BTreeSet, HashSet},
};

use myelin_storage::{Batch, Direction, Table};
use ruma::{RoomId, ServerName, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{MEDIA, Media, MediaRecord, PENDING, unknown_media};
use crate::{
    error::Result,
    service::rooms::{Rooms, timeline::gap_after},
};

pub const TABLES: &[&str] = &["servername_mediaid_quarantine"];

/// (server, media ID) → who quarantined it and whether it is protected from quarantine. A row
/// exists only while one of the two is set.
const QUARANTINE: Table<(String, String), AdminFlags> = Table::new("servername_mediaid_quarantine");

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminFlags {
    /// The admin who quarantined the media; `None` when it is not quarantined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantined_by: Option<String>,
    /// Protected media is skipped by quarantines and by purges by age (sticker packs, …).
    #[serde(default)]
    pub protected: bool,
}

/// One media item as admins see it.
pub struct MediaInfo {
    pub server_name: String,
    pub media_id: String,
    pub record: MediaRecord,
    pub flags: AdminFlags,
}

impl MediaInfo {
    pub fn size(&self) -> u64 {
        self.record.file.as_ref().map_or(0, |file| file.size)
    }
}

/// The orders of Synapse's user media listing; ties are broken by ascending media ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaOrder {
    MediaId,
    UploadName,
    CreatedTs,
    /// Access is not tracked: ordered by creation, as if last accessed when created.
    LastAccessTs,
    MediaLength,
    MediaType,
    QuarantinedBy,
    SafeFromQuarantine,
}

impl MediaOrder {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "media_id" => Self::MediaId,
            "upload_name" => Self::UploadName,
            "created_ts" => Self::CreatedTs,
            "last_access_ts" => Self::LastAccessTs,
            "media_length" => Self::MediaLength,
            "media_type" => Self::MediaType,
            "quarantined_by" => Self::QuarantinedBy,
            "safe_from_quarantine" => Self::SafeFromQuarantine,
            _ => return None,
        })
    }

    fn compare(self, a: &MediaInfo, b: &MediaInfo) -> Ordering {
        let first = match self {
            Self::MediaId => Ordering::Equal,
            Self::UploadName => a.record.filename.cmp(&b.record.filename),
            Self::CreatedTs | Self::LastAccessTs => a.record.created_ms.cmp(&b.record.created_ms),
            Self::MediaLength => a.size().cmp(&b.size()),
            Self::MediaType => a.record.content_type.cmp(&b.record.content_type),
            Self::QuarantinedBy => a.flags.quarantined_by.cmp(&b.flags.quarantined_by),
            Self::SafeFromQuarantine => a.flags.protected.cmp(&b.flags.protected),
        };
        first.then_with(|| a.media_id.cmp(&b.media_id))
    }
}

/// Sorts a listing; `descending` reverses the whole order (Synapse's `dir=b`).
pub fn sort_media(media: &mut [MediaInfo], order: MediaOrder, descending: bool) {
    media.sort_by(|a, b| if descending { order.compare(b, a) } else { order.compare(a, b) });
}

/// Which local media a purge deletes.
pub struct LocalPurge {
    /// Only media stored before this time (ms).
    pub before_ms: u64,
    /// Only media larger than this many bytes.
    pub size_gt: u64,
    /// Only this user's uploads.
    pub uploader: Option<String>,
    /// Media IDs to keep whatever their age (profile pictures).
    pub keep: HashSet<String>,
    /// Delete at most this many; the rest is counted in [`Purged::remaining`].
    pub limit: usize,
}

/// What a purge deleted, and how many more matched beyond its limit.
pub struct Purged {
    pub deleted: Vec<String>,
    pub remaining: usize,
}

impl Media {
    /// The one lookup every download path (client, legacy, federation, thumbnails) goes
    /// through: quarantined media reads as 404 `M_NOT_FOUND`, as in Synapse, and remote media
    /// that is quarantined is never fetched.
    pub(super) fn servable(&self, key: &(String, String)) -> Result<Option<MediaRecord>> {
        if QUARANTINE.get(&self.db, key)?.is_some_and(|flags| flags.quarantined_by.is_some()) {
            return Err(unknown_media());
        }
        Ok(MEDIA.get(&self.db, key)?)
    }

    /// Local media or cached remote media by ID; 404 if we hold no record of it.
    pub fn info(&self, server: &ServerName, media_id: &str) -> Result<MediaInfo> {
        let key = (server.to_string(), media_id.to_owned());
        let record = MEDIA.get(&self.db, &key)?.ok_or_else(unknown_media)?;
        let flags = QUARANTINE.get(&self.db, &key)?.unwrap_or_default();
        Ok(MediaInfo { server_name: key.0, media_id: key.1, record, flags })
    }

    /// Quarantines (`by` is the admin) or releases (`by` is `None`) one item. Local media must
    /// exist; remote media need not be cached yet, so that it is never fetched. Protected
    /// media is left alone, as Synapse does. Returns whether the item was changed.
    #[tracing::instrument(skip(self))]
    pub async fn set_quarantine(&self, server: &ServerName, media_id: &str, by: Option<&UserId>) -> Result<bool> {
        let key = (server.to_string(), media_id.to_owned());
        if server == self.server_name && !MEDIA.contains(&self.db, &key)? {
            return Err(unknown_media());
        }
        let mut batch = Batch::new();
        let changed = self.stage_quarantine(&mut batch, key, by)?;
        self.db.write_async(batch).await?;
        Ok(changed)
    }

    /// Quarantines every item of `mxcs` (`mxc://server/id`) that names valid media, local
    /// media only if we hold it. Returns how many were quarantined.
    #[tracing::instrument(skip_all, fields(by = %by))]
    pub async fn quarantine_uris(&self, mxcs: impl IntoIterator<Item = String>, by: &UserId) -> Result<usize> {
        let mut batch = Batch::new();
        let mut count = 0;
        for uri in mxcs {
            let Some((server, media_id)) = split_mxc(&uri) else { continue };
            let key = (server.to_owned(), media_id.to_owned());
            if server == self.server_name.as_str() && !MEDIA.contains(&self.db, &key)? {
                continue;
            }
            count += usize::from(self.stage_quarantine(&mut batch, key, Some(by))?);
        }
        self.db.write_async(batch).await?;
        Ok(count)
    }

    /// Quarantines everything `user` uploaded. Returns how many were quarantined.
    #[tracing::instrument(skip(self))]
    pub async fn quarantine_uploaded_by(&self, user: &UserId, by: &UserId) -> Result<usize> {
        let mut batch = Batch::new();
        let mut count = 0;
        for info in self.uploaded_by(user)? {
            count += usize::from(self.stage_quarantine(&mut batch, (info.server_name, info.media_id), Some(by))?);
        }
        self.db.write_async(batch).await?;
        Ok(count)
    }

    fn stage_quarantine(&self, batch: &mut Batch, key: (String, String), by: Option<&UserId>) -> Result<bool> {
        let mut flags = QUARANTINE.get(&self.db, &key)?.unwrap_or_default();
        if by.is_some() && flags.protected {
            return Ok(false);
        }
        flags.quarantined_by = by.map(UserId::to_string);
        self.stage_flags(batch, &key, &flags)?;
        Ok(true)
    }

    fn stage_flags(&self, batch: &mut Batch, key: &(String, String), flags: &AdminFlags) -> Result<()> {
        if *flags == AdminFlags::default() {
            QUARANTINE.delete(batch, key);
            Ok(())
        } else {
            Ok(QUARANTINE.put(batch, key, flags)?)
        }
    }

    /// Protects local media from quarantine (and purges by age), or lifts the protection.
    #[tracing::instrument(skip(self))]
    pub async fn set_protected(&self, media_id: &str, protected: bool) -> Result<()> {
        let key = (self.server_name.to_string(), media_id.to_owned());
        if !MEDIA.contains(&self.db, &key)? {
            return Err(unknown_media());
        }
        let mut flags = QUARANTINE.get(&self.db, &key)?.unwrap_or_default();
        flags.protected = protected;
        let mut batch = Batch::new();
        self.stage_flags(&mut batch, &key, &flags)?;
        self.db.write_async(batch).await?;
        Ok(())
    }

    /// Every media item `user` uploaded or created, in media ID order.
    pub fn uploaded_by(&self, user: &UserId) -> Result<Vec<MediaInfo>> {
        let server = self.server_name.to_string();
        let mut found = Vec::new();
        for entry in MEDIA.iter_prefix(&self.db, &server, Direction::Forward)? {
            let ((server_name, media_id), record) = entry?;
            if record.uploader.as_deref() == Some(user.as_str()) {
                let flags = QUARANTINE.get(&self.db, &(server_name.clone(), media_id.clone()))?.unwrap_or_default();
                found.push(MediaInfo { server_name, media_id, record, flags });
            }
        }
        Ok(found)
    }

    /// Deletes media records and the files no other record shares (see the module comment for
    /// the order). Returns the keys that were deleted (those that existed).
    #[tracing::instrument(skip_all, fields(count = keys.len()))]
    pub async fn delete(&self, keys: &[(String, String)]) -> Result<Vec<(String, String)>> {
        let removal = self.store.removal().await;
        let mut batch = Batch::new();
        let mut deleted = Vec::new();
        let mut hashes = HashSet::new();
        for key in keys {
            // Thumbnails go with their media; remote ones may be cached without it.
            let thumbnails = self.stage_thumbnail_deletion(&mut batch, key)?;
            let had_thumbnails = !thumbnails.is_empty();
            hashes.extend(thumbnails);
            let Some(record) = MEDIA.get(&self.db, key)? else {
                if had_thumbnails {
                    deleted.push(key.clone());
                }
                continue;
            };
            MEDIA.delete(&mut batch, key);
            let local = key.0 == self.server_name.as_str();
            if local {
                // Local IDs never come back, so neither does their quarantine. A remote one's
                // is kept, so that a purged quarantined file is not fetched again.
                QUARANTINE.delete(&mut batch, key);
                if let Some(uploader) = &record.uploader {
                    PENDING.delete(&mut batch, &(uploader.clone(), key.1.clone()));
                }
            }
            if let Some(file) = record.file {
                hashes.insert(file.sha256);
            }
            deleted.push(key.clone());
        }
        self.db.write_async(batch).await?;

        if !hashes.is_empty() {
            for entry in MEDIA.iter_all(&self.db)? {
                let (_, record) = entry?;
                if let Some(file) = record.file {
                    hashes.remove(&file.sha256);
                }
            }
            for sha256 in self.thumbnail_hashes()? {
                hashes.remove(&sha256);
            }
        }
        for sha256 in &hashes {
            removal.remove(sha256).await?;
        }
        tracing::info!(records = deleted.len(), files = hashes.len(), "deleted media");
        Ok(deleted)
    }

    /// Deletes local media stored before a time (Synapse uses the last access, which Myelin
    /// does not track: storing is the last change a file sees), at most `purge.limit` items.
    /// Protected media is kept, as are media IDs in `purge.keep`.
    pub async fn purge_local(&self, purge: &LocalPurge) -> Result<Purged> {
        let server = self.server_name.to_string();
        let mut candidates = Vec::new();
        let mut remaining = 0;
        for entry in MEDIA.iter_prefix(&self.db, &server, Direction::Forward)? {
            let (key, record) = entry?;
            let Some(file) = &record.file else { continue };
            let matches = record.created_ms < purge.before_ms
                && file.size > purge.size_gt
                && purge.uploader.as_ref().is_none_or(|user| record.uploader.as_ref() == Some(user))
                && !purge.keep.contains(&key.1)
                && !QUARANTINE.get(&self.db, &key)?.is_some_and(|flags| flags.protected);
            if !matches {
                continue;
            }
            if candidates.len() < purge.limit {
                candidates.push(key);
            } else {
                remaining += 1;
            }
        }
        self.purged(&candidates, remaining).await
    }

    /// Deletes cached remote media fetched before `before_ms`, at most `limit` items. A later
    /// download fetches it again (unless it is quarantined).
    pub async fn purge_remote(&self, before_ms: u64, limit: usize) -> Result<Purged> {
        let mut candidates = Vec::new();
        let mut remaining = 0;
        let mut consider = |key| {
            if candidates.len() < limit {
                candidates.push(key);
            } else {
                remaining += 1;
            }
        };
        for entry in MEDIA.iter_all(&self.db)? {
            let (key, record) = entry?;
            if key.0 == self.server_name.as_str() || record.file.is_none() || record.created_ms >= before_ms {
                continue;
            }
            consider(key);
        }
        // Remote thumbnails fetched without their original have no media record.
        self.remote_thumbnails_before(before_ms)?.into_iter().for_each(&mut consider);
        self.purged(&candidates, remaining).await
    }

    async fn purged(&self, candidates: &[(String, String)], remaining: usize) -> Result<Purged> {
        let deleted = self.delete(candidates).await?.into_iter().map(|(_, media_id)| media_id).collect();
        Ok(Purged { deleted, remaining })
    }
}

/// (server, media ID) of an `mxc://` URI whose media ID is one we accept.
pub fn split_mxc(uri: &str) -> Option<(&str, &str)> {
    let (server, media_id) = uri.strip_prefix("mxc://")?.split_once('/')?;
    (<&ServerName>::try_from(server).is_ok() && super::is_valid_media_id(media_id)).then_some((server, media_id))
}

/// The `mxc://` URIs that a room's events refer to (`content.url`, `content.info.thumbnail_url`,
/// and the `url` of an encrypted attachment's `file`/`info.thumbnail_file`), in URI order. The
/// whole room is read, backfilled events too; events that are encrypted reveal nothing, as in
/// Synapse.
pub fn media_of_room(rooms: &Rooms, room_id: &RoomId) -> Result<BTreeSet<String>> {
    const PAGE: usize = 500;
    let record = rooms.room(room_id)?;
    let mut uris = BTreeSet::new();
    let mut from = (0, 0);
    loop {
        let page = rooms.timeline.room_topological(record.short, from, Direction::Forward, PAGE)?;
        for (_, short) in &page {
            if let Some(event) = rooms.timeline.get_shared(*short)? {
                uris.extend(media_of_content(event.content()));
            }
        }
        match page.last() {
            Some((position, _)) if page.len() == PAGE => from = gap_after(*position, Direction::Forward),
            _ => return Ok(uris),
        }
    }
}

/// The media URIs one event content refers to.
pub fn media_of_content(content: &Value) -> impl Iterator<Item = String> + '_ {
    const PLACES: [&str; 4] = ["/url", "/info/thumbnail_url", "/file/url", "/info/thumbnail_file/url"];
    PLACES
        .into_iter()
        .filter_map(|place| content.pointer(place)?.as_str())
        .filter(|uri| split_mxc(uri).is_some())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{media_of_content, split_mxc};

    #[test]
    fn media_uris_of_an_event_content() {
        let content = json!({
            "msgtype": "m.image",
            "url": "mxc://example.org/image",
            "info": { "thumbnail_url": "mxc://other.example/thumb", "thumbnail_file": { "url": "mxc://example.org/encthumb" } },
            "file": { "url": "mxc://example.org/encrypted" },
        });
        let found: Vec<String> = media_of_content(&content).collect();
        assert_eq!(
            found,
            ["mxc://example.org/image", "mxc://other.example/thumb", "mxc://example.org/encrypted", "mxc://example.org/encthumb"]
        );
        let not_media = json!({ "url": "https://example.org/a", "info": { "thumbnail_url": 3 }, "file": "mxc://example.org/x" });
        assert_eq!(media_of_content(&not_media).count(), 0);
    }

    #[test]
    fn mxc_uris_are_split_and_checked() {
        assert_eq!(split_mxc("mxc://example.org:8448/abc_-1"), Some(("example.org:8448", "abc_-1")));
        for bad in ["mxc://example.org/", "mxc://example.org/a/b", "mxc://bad server/a", "https://example.org/a", "mxc://example.org/a.b"] {
            assert_eq!(split_mxc(bad), None, "{bad}");
        }
    }
}
