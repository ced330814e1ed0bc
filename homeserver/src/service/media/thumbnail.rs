//! Thumbnails of the media repository: made on demand in one of the sizes of
//! [`thumbnailer::SIZES`], stored content-addressed like any file, and cached in RocksDB under
//! (server, media ID, size, method, animated), so a thumbnail is made once. The image work runs
//! on the blocking pool, at most `media.max_concurrent_thumbnails` at a time, so a flood of
//! thumbnail requests queues there instead of starving the async runtime.
//!
//! Remote media: the thumbnail is asked of its server (`/_matrix/federation/v1/media/thumbnail`)
//! and cached; a server without that endpoint (`M_UNRECOGNIZED`) gets its original fetched and
//! thumbnailed here.
//!
//! Answers for media that cannot be thumbnailed follow the spec (v1.16): 400 `M_UNKNOWN` when
//! the content is not an image we read (SVG, PDF, text; Synapse answers the same 400), 413
//! `M_TOO_LARGE` when a local image has more pixels than `media.max_thumbnail_source_pixels`,
//! 502 `M_TOO_LARGE` when a remote one does.

use std::{
    collections::{BTreeSet, HashSet},
    io::BufReader,
    time::Duration,
};

use bytes::Bytes;
use http::StatusCode;
use myelin_storage::{Batch, Direction, Table};
use ruma::{ServerName, api::error::ErrorKind};
use serde::{Deserialize, Serialize};

use super::{
    Download, MEDIA, Media, REMOTE_FETCH_TIMEOUT, is_valid_media_id, store::{Placed, StoredFile},
    thumbnailer::{self, ResizeMethod, Thumbnail, ThumbnailError, ThumbnailSize},
    unknown_media,
};
use crate::{
    error::{Error, Result},
    util::now_millis,
};

pub const TABLES: &[&str] = &["servername_mediaid_thumbnail"];

/// Every thumbnail made or fetched, keyed by (server, media ID, [`cache_key`]).
const THUMBNAILS: Table<(String, String, String), ThumbnailRecord> = Table::new("servername_mediaid_thumbnail");

/// The content types a thumbnail may have (the spec's list).
const THUMBNAIL_CONTENT_TYPES: &[&str] = &["image/jpeg", "image/png", "image/apng", "image/gif", "image/webp"];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ThumbnailRecord {
    /// `None`: the original itself answers this size (it is no bigger and of a thumbnail type).
    pub file: Option<StoredFile>,
    pub content_type: Option<String>,
    pub created_ms: u64,
}

/// A thumbnail request, its size already mapped onto one of ours.
#[derive(Clone, Copy, Debug)]
pub struct ThumbnailRequest {
    pub size: ThumbnailSize,
    pub animated: bool,
}

impl ThumbnailRequest {
    /// From the query parameters: `method` absent is scale; a method the spec does not define
    /// is 400 `M_INVALID_PARAM`. `animated` absent is false (the spec: SHOULD NOT animate).
    pub fn new(width: u64, height: u64, method: Option<&ruma::media::Method>, animated: Option<bool>) -> Result<Self> {
        let method =
            ResizeMethod::from_request(method).ok_or_else(|| Error::invalid_param("method must be \"crop\" or \"scale\""))?;
        Ok(Self { size: thumbnailer::choose_size(width, height, method), animated: animated.unwrap_or(false) })
    }

    fn cache_key(&self) -> String {
        let size = self.size;
        let animation = if self.animated { "animated" } else { "still" };
        format!("{}x{}-{}-{animation}", size.width, size.height, size.method.as_str())
    }
}

/// Where the original comes from, which decides what may be served.
#[derive(Clone, Copy)]
enum Source {
    /// An authenticated client: local or remote media, remote fetched when missing.
    Client { wait: Duration },
    /// Another server: our own media only.
    Federation { wait: Duration },
    /// The frozen legacy paths: media from before the freeze, never fetched.
    Legacy,
}

impl Media {
    /// A thumbnail for an authenticated client (`/_matrix/client/v1/media/thumbnail`).
    #[tracing::instrument(skip(self))]
    pub async fn thumbnail(&self, server: &ServerName, media_id: &str, request: ThumbnailRequest, wait: Duration) -> Result<Download> {
        self.serve_thumbnail(server, media_id, request, Source::Client { wait }).await
    }

    /// A thumbnail of our own media for another server (`/_matrix/federation/v1/media/thumbnail`).
    pub async fn thumbnail_for_federation(&self, media_id: &str, request: ThumbnailRequest, wait: Duration) -> Result<Download> {
        let server = self.server_name.clone();
        self.serve_thumbnail(&server, media_id, request, Source::Federation { wait }).await
    }

    /// A thumbnail on the legacy unauthenticated paths: only of media the legacy download
    /// serves (stored before `media.legacy_unauthenticated_before`).
    pub async fn legacy_thumbnail(&self, server: &ServerName, media_id: &str, request: ThumbnailRequest) -> Result<Download> {
        drop(self.legacy_download(server, media_id).await?);
        self.serve_thumbnail(server, media_id, request, Source::Legacy).await
    }

    /// Stages the deletion of a media item's thumbnail records and returns the content hashes
    /// of their files, for [`Media::delete`] to remove once nothing names them.
    pub(super) fn stage_thumbnail_deletion(&self, batch: &mut Batch, media: &(String, String)) -> Result<Vec<String>> {
        let mut hashes = Vec::new();
        for entry in THUMBNAILS.iter_prefix(&self.db, media, Direction::Forward)? {
            let (key, record) = entry?;
            THUMBNAILS.delete(batch, &key);
            hashes.extend(record.file.map(|file| file.sha256));
        }
        Ok(hashes)
    }

    /// The content hash of every stored thumbnail file, for the reference check of a deletion.
    pub(super) fn thumbnail_hashes(&self) -> Result<HashSet<String>> {
        let mut hashes = HashSet::new();
        for entry in THUMBNAILS.iter_all(&self.db)? {
            let (_, record) = entry?;
            hashes.extend(record.file.map(|file| file.sha256));
        }
        Ok(hashes)
    }

    /// Remote media of which only thumbnails are cached (fetched without the original), with
    /// a thumbnail stored before `before_ms`: what a purge of the remote cache also deletes.
    pub(super) fn remote_thumbnails_before(&self, before_ms: u64) -> Result<BTreeSet<(String, String)>> {
        let mut found = BTreeSet::new();
        for entry in THUMBNAILS.iter_all(&self.db)? {
            let ((server, media_id, _), record) = entry?;
            let media = (server, media_id);
            if media.0 != self.server_name.as_str() && record.created_ms < before_ms && !MEDIA.contains(&self.db, &media)? {
                found.insert(media);
            }
        }
        Ok(found)
    }

    async fn serve_thumbnail(&self, server: &ServerName, media_id: &str, request: ThumbnailRequest, source: Source) -> Result<Download> {
        if !is_valid_media_id(media_id) {
            return Err(unknown_media());
        }
        // Quarantined media has no thumbnails either; deleted local media none left.
        let media = (server.to_string(), media_id.to_owned());
        let original = self.servable(&media)?;
        if original.is_none() && *server == *self.server_name {
            return Err(unknown_media());
        }
        let original_cached = original.is_some_and(|record| record.file.is_some());
        let key = (media.0, media.1, request.cache_key());
        if let Some(record) = THUMBNAILS.get(&self.db, &key)?
            && let Some(download) = self.open_thumbnail(server, media_id, &record, source).await?
        {
            return Ok(download);
        }
        // The file stays held until its record is committed (see `store::Placed`).
        let (record, _placed) = match source {
            // Remote media whose original we do not hold: its server's thumbnail, or, from a
            // server without the endpoint, its original thumbnailed here.
            Source::Client { wait } if *server != *self.server_name && !original_cached => {
                match self.fetch_remote_thumbnail(server, media_id, request, wait).await {
                    Err(e) if e.errcode() == "M_UNRECOGNIZED" => self.make_thumbnail(server, media_id, request, source).await?,
                    fetched => fetched?,
                }
            }
            _ => self.make_thumbnail(server, media_id, request, source).await?,
        };
        let mut batch = Batch::new();
        THUMBNAILS.put(&mut batch, &key, &record)?;
        self.db.write_async(batch).await?;
        self.open_thumbnail(server, media_id, &record, source).await?.ok_or_else(unknown_media)
    }

    /// The file a thumbnail record names, or the original; `None` if the file is gone.
    async fn open_thumbnail(&self, server: &ServerName, media_id: &str, record: &ThumbnailRecord, source: Source) -> Result<Option<Download>> {
        let Some(file) = &record.file else { return self.original(server, media_id, source).await.map(Some) };
        let Some(handle) = self.store.open_file(file).await? else {
            tracing::warn!(sha256 = %file.sha256, "a thumbnail record names a file that is not on disk; making it again");
            return Ok(None);
        };
        Ok(Some(Download { content_type: record.content_type.clone(), filename: None, size: file.size, file: handle }))
    }

    async fn original(&self, server: &ServerName, media_id: &str, source: Source) -> Result<Download> {
        match source {
            Source::Client { wait } => self.download(server, media_id, wait).await,
            Source::Federation { wait } => self.download_for_federation(media_id, wait).await,
            Source::Legacy => self.legacy_download(server, media_id).await,
        }
    }

    /// Makes a thumbnail from the original, on the blocking pool, holding one of the
    /// thumbnailing slots; stores a generated image before its record is written.
    async fn make_thumbnail(
        &self,
        server: &ServerName,
        media_id: &str,
        request: ThumbnailRequest,
        source: Source,
    ) -> Result<(ThumbnailRecord, Option<Placed>)> {
        let original = self.original(server, media_id, source).await?;
        let original_type = original.content_type.clone();
        let file = original.file.into_std().await;
        let _slot = self.thumbnail_slots.acquire().await.map_err(|_| Error::internal("the thumbnail slots are closed"))?;
        let max_pixels = self.max_thumbnail_pixels;
        let made = tokio::task::spawn_blocking(move || {
            thumbnailer::make_thumbnail(BufReader::with_capacity(64 * 1024, file), request.size, request.animated, max_pixels)
        })
        .await
        .map_err(|e| Error::internal(format!("thumbnail task failed: {e}")))?;
        let remote = *server != *self.server_name;
        match made.map_err(|e| thumbnail_error(e, remote))? {
            Thumbnail::Original => Ok((ThumbnailRecord { file: None, content_type: original_type, created_ms: now_millis() }, None)),
            Thumbnail::Generated { bytes, content_type, .. } => {
                let body = futures::stream::once(async move { Ok(Bytes::from(bytes)) });
                let placed = self.store.write_held(body, u64::MAX).await?;
                let record = ThumbnailRecord { file: Some(placed.file.clone()), content_type: Some(content_type.to_owned()), created_ms: now_millis() };
                Ok((record, Some(placed)))
            }
        }
    }

    /// Asks the media's server for the thumbnail and stores its answer.
    async fn fetch_remote_thumbnail(
        &self,
        server: &ServerName,
        media_id: &str,
        request: ThumbnailRequest,
        wait: Duration,
    ) -> Result<(ThumbnailRecord, Option<Placed>)> {
        if !self.federation_enabled {
            return Err(unknown_media());
        }
        let size = request.size;
        let path = format!(
            "/_matrix/federation/v1/media/thumbnail/{media_id}?width={}&height={}&method={}&animated={}&timeout_ms={}",
            size.width,
            size.height,
            size.method.as_str(),
            request.animated,
            wait.min(super::MAX_WAIT).as_millis(),
        );
        let response = self.federation.get_signed_streaming(server, &path, REMOTE_FETCH_TIMEOUT).await.map_err(|e| {
            // The spec's answer for remote content too large to thumbnail is 502.
            match e.errcode().as_str() {
                "M_TOO_LARGE" => Error::matrix(StatusCode::BAD_GATEWAY, ErrorKind::TooLarge, e.to_string()),
                _ => e,
            }
        })?;
        let (content_type, _, placed) = self.store_multipart(server, response).await?;
        let essence = content_type.as_deref().and_then(|t| t.split(';').next()).map(|t| t.trim().to_ascii_lowercase());
        if !essence.as_deref().is_some_and(|t| THUMBNAIL_CONTENT_TYPES.contains(&t)) {
            return Err(super::bad_answer(server, &format!("a thumbnail of type {content_type:?}")));
        }
        Ok((ThumbnailRecord { file: Some(placed.file.clone()), content_type, created_ms: now_millis() }, Some(placed)))
    }
}

/// The spec's answers for content that cannot be thumbnailed.
fn thumbnail_error(error: ThumbnailError, remote: bool) -> Error {
    match error {
        ThumbnailError::Unsupported(why) => {
            Error::matrix(StatusCode::BAD_REQUEST, ErrorKind::Unknown, format!("Cannot generate thumbnails for the requested content: {why}"))
        }
        ThumbnailError::TooLarge { .. } => {
            let status = if remote { StatusCode::BAD_GATEWAY } else { StatusCode::PAYLOAD_TOO_LARGE };
            Error::matrix(status, ErrorKind::TooLarge, format!("The content is too large to thumbnail: {error}"))
        }
    }
}

