//! The media repository: uploads (direct and asynchronous), downloads of local media, and
//! remote media fetched over federation and cached.
//!
//! Files live in [`store::FileStore`] (content-addressed, written atomically); metadata lives in
//! RocksDB keyed by `(server_name, media_id)`, so local media and cached remote media share one
//! table. Metadata is committed only after its file is durable, so no record ever names a
//! missing or partial file.

pub mod admin;
pub mod multipart;
pub mod opengraph;
pub mod preview;
pub mod store;
pub mod sweep;
pub mod thumbnail;
pub mod thumbnailer;

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::StatusCode;
use myelin_config::Config;
use myelin_storage::{Batch, Database, Direction, Table};
use ruma::{OwnedMxcUri, ServerName, UserId, api::error::ErrorKind};
use serde::{Deserialize, Serialize};

use self::{
    multipart::{FilePart, MultipartReader},
    store::{FileStore, Placed, StoredFile},
};
use crate::{
    error::{Error, Result},
    service::federation_client::FederationClient,
    util::now_millis,
};

pub const TABLES: &[&str] = &["servername_mediaid_media", "userid_mediaid_pendingmedia", admin::TABLES[0]];

/// Every media item we hold, local or cached from another server.
const MEDIA: Table<(String, String), MediaRecord> = Table::new("servername_mediaid_media");
/// A user's media IDs created with `/create` and not uploaded yet, with their expiry (ms).
const PENDING: Table<(String, String), u64> = Table::new("userid_mediaid_pendingmedia");

/// The longest a download waits for an asynchronous upload to complete, whatever the client
/// asks for.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// How long fetching a remote file may take as a whole.
const REMOTE_FETCH_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MediaRecord {
    /// The local user who uploaded (or created) it; `None` for media cached from another server.
    pub uploader: Option<String>,
    pub content_type: Option<String>,
    pub filename: Option<String>,
    /// `None` while an asynchronous upload waits for its content.
    pub file: Option<StoredFile>,
    pub created_ms: u64,
    /// When a pending media ID stops accepting its upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_ms: Option<u64>,
}

/// A file ready to be served.
pub struct Download {
    pub content_type: Option<String>,
    pub filename: Option<String>,
    pub size: u64,
    pub file: tokio::fs::File,
}

pub struct Media {
    db: Database,
    store: FileStore,
    server_name: ruma::OwnedServerName,
    federation: FederationClient,
    federation_enabled: bool,
    max_upload_bytes: u64,
    max_pending: usize,
    pending_expiry_ms: u64,
    legacy_before_ms: Option<u64>,
    /// Woken after every completed upload: downloads waiting for pending media re-check.
    uploaded: tokio::sync::Notify,
    /// Serialises `/create` so that concurrent calls cannot pass the pending limit together.
    creating: tokio::sync::Mutex<()>,
    /// Pending media IDs whose upload is in progress: a second one is refused.
    uploading: Arc<Mutex<HashSet<String>>>,
    /// Thumbnails being made at once (`media.max_concurrent_thumbnails`).
    thumbnail_slots: tokio::sync::Semaphore,
    max_thumbnail_pixels: u64,
}

impl Media {
    /// Opens the file store (cleaning up after interrupted writes) under `media.path`, or
    /// `media` in the database directory.
    pub fn new(db: Database, config: &Config, server_name: ruma::OwnedServerName, federation: FederationClient) -> Result<Self> {
        let media = &config.media;
        let root: PathBuf = media.path.clone().unwrap_or_else(|| config.database_path.join("media"));
        Ok(Self {
            db,
            store: FileStore::open(&root)?,
            server_name,
            federation,
            federation_enabled: config.federation.enabled,
            max_upload_bytes: media.max_upload_bytes,
            max_pending: media.max_pending_uploads_per_user as usize,
            pending_expiry_ms: media.unused_pending_upload_expiry_secs.saturating_mul(1000),
            legacy_before_ms: media.legacy_unauthenticated_before_ms().map_err(Error::internal)?,
            uploaded: tokio::sync::Notify::new(),
            creating: tokio::sync::Mutex::new(()),
            uploading: Arc::default(),
            thumbnail_slots: tokio::sync::Semaphore::new(media.max_concurrent_thumbnails.max(1) as usize),
            max_thumbnail_pixels: media.max_thumbnail_source_pixels,
        })
    }

    pub fn max_upload_bytes(&self) -> u64 {
        self.max_upload_bytes
    }

    /// Stores an upload and returns its new `mxc://` URI.
    #[tracing::instrument(skip_all, fields(user = %uploader))]
    pub async fn upload(
        &self,
        uploader: &UserId,
        content_type: Option<String>,
        filename: Option<String>,
        body: impl Stream<Item = Result<Bytes>>,
    ) -> Result<OwnedMxcUri> {
        let placed = self.store.write_held(body, self.max_upload_bytes).await?;
        let media_id = new_media_id();
        let record = MediaRecord {
            uploader: Some(uploader.to_string()),
            content_type,
            filename,
            file: Some(placed.file.clone()),
            created_ms: now_millis(),
            expires_ms: None,
        };
        let mut batch = Batch::new();
        MEDIA.put(&mut batch, &(self.server_name.to_string(), media_id.clone()), &record)?;
        self.db.write_async(batch).await?;
        Ok(self.mxc(&media_id))
    }

    /// `/create`: reserves a media ID whose content `uploader` sends later. Returns the URI and
    /// when it expires (ms).
    #[tracing::instrument(skip_all, fields(user = %uploader))]
    pub async fn create_pending(&self, uploader: &UserId) -> Result<(OwnedMxcUri, u64)> {
        let _serialised = self.creating.lock().await;
        let now = now_millis();
        let mut cleanup = Batch::new();
        let mut live = Vec::new();
        for entry in PENDING.iter_prefix(&self.db, &uploader.to_string(), Direction::Forward)? {
            let ((user, media_id), expires) = entry?;
            if expires <= now {
                MEDIA.delete(&mut cleanup, &(self.server_name.to_string(), media_id.clone()));
                PENDING.delete(&mut cleanup, &(user, media_id));
            } else {
                live.push(expires);
            }
        }
        if live.len() >= self.max_pending {
            self.db.write_async(cleanup).await?;
            let first_expiry = live.iter().min().copied().unwrap_or(now);
            return Err(Error::limit_exceeded(Duration::from_millis(first_expiry.saturating_sub(now))));
        }
        let media_id = new_media_id();
        let expires = now + self.pending_expiry_ms;
        let record = MediaRecord {
            uploader: Some(uploader.to_string()),
            content_type: None,
            filename: None,
            file: None,
            created_ms: now,
            expires_ms: Some(expires),
        };
        MEDIA.put(&mut cleanup, &(self.server_name.to_string(), media_id.clone()), &record)?;
        PENDING.put(&mut cleanup, &(uploader.to_string(), media_id.clone()), &expires)?;
        self.db.write_async(cleanup).await?;
        Ok((self.mxc(&media_id), expires))
    }

    /// `PUT /upload/{serverName}/{mediaId}`: the content of a media ID from `/create`, by the
    /// user who created it, once.
    #[tracing::instrument(skip_all, fields(user = %uploader, media_id))]
    pub async fn upload_pending(
        &self,
        uploader: &UserId,
        server: &ServerName,
        media_id: &str,
        content_type: Option<String>,
        filename: Option<String>,
        body: impl Stream<Item = Result<Bytes>>,
    ) -> Result<()> {
        if server != self.server_name || !is_valid_media_id(media_id) {
            return Err(unknown_media());
        }
        let key = (server.to_string(), media_id.to_owned());
        let record = MEDIA.get(&self.db, &key)?.ok_or_else(unknown_media)?;
        if record.uploader.as_deref() != Some(uploader.as_str()) {
            return Err(Error::forbidden("This media ID was created by another user"));
        }
        if record.file.is_some() {
            return Err(cannot_overwrite());
        }
        if record.expires_ms.is_some_and(|expires| expires <= now_millis()) {
            return Err(Error::not_found("This media ID has expired"));
        }
        let _claim = UploadClaim::take(&self.uploading, media_id)?;
        let placed = self.store.write_held(body, self.max_upload_bytes).await?;
        let record = MediaRecord { content_type, filename, file: Some(placed.file.clone()), expires_ms: None, ..record };
        let mut batch = Batch::new();
        MEDIA.put(&mut batch, &key, &record)?;
        PENDING.delete(&mut batch, &(uploader.to_string(), media_id.to_owned()));
        self.db.write_async(batch).await?;
        self.uploaded.notify_waiters();
        Ok(())
    }

    /// A file for an authenticated client download: local media (waiting up to `wait` for a
    /// pending upload), or remote media from the cache or fetched from its server.
    #[tracing::instrument(skip(self))]
    pub async fn download(&self, server: &ServerName, media_id: &str, wait: Duration) -> Result<Download> {
        if !is_valid_media_id(media_id) {
            return Err(unknown_media());
        }
        if server == self.server_name {
            let (record, file) = self.wait_for_content(server, media_id, wait).await?;
            return self.open(record, file).await;
        }
        if let Some(record) = self.servable(&(server.to_string(), media_id.to_owned()))?
            && let Some(file) = record.file.clone()
        {
            return self.open(record, file).await;
        }
        let (record, file) = self.fetch_remote(server, media_id, wait).await?;
        self.open(record, file).await
    }

    /// A file for another server (`/_matrix/federation/v1/media/download`): local media only.
    pub async fn download_for_federation(&self, media_id: &str, wait: Duration) -> Result<Download> {
        if !is_valid_media_id(media_id) {
            return Err(unknown_media());
        }
        let (record, file) = self.wait_for_content(&self.server_name, media_id, wait).await?;
        self.open(record, file).await
    }

    /// A file for the legacy unauthenticated paths: only media stored before
    /// `media.legacy_unauthenticated_before`, never fetched from another server (Synapse's
    /// media freeze).
    pub async fn legacy_download(&self, server: &ServerName, media_id: &str) -> Result<Download> {
        let Some(before) = self.legacy_before_ms else { return Err(unknown_media()) };
        if !is_valid_media_id(media_id) {
            return Err(unknown_media());
        }
        let record = self.servable(&(server.to_string(), media_id.to_owned()))?.ok_or_else(unknown_media)?;
        match record.file.clone() {
            Some(file) if record.created_ms < before => self.open(record, file).await,
            _ => Err(unknown_media()),
        }
    }

    /// The record of local media once its content is there, waiting for a pending upload up
    /// to `wait` (then 504 `M_NOT_YET_UPLOADED`).
    async fn wait_for_content(&self, server: &ServerName, media_id: &str, wait: Duration) -> Result<(MediaRecord, StoredFile)> {
        let key = (server.to_string(), media_id.to_owned());
        let deadline = tokio::time::Instant::now() + wait.min(MAX_WAIT);
        loop {
            // Registered before the check, so an upload completing in between is not missed.
            let notified = self.uploaded.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let record = self.servable(&key)?.ok_or_else(unknown_media)?;
            if let Some(file) = record.file.clone() {
                return Ok((record, file));
            }
            if record.expires_ms.is_some_and(|expires| expires <= now_millis()) {
                return Err(unknown_media());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Error::matrix(
                    StatusCode::GATEWAY_TIMEOUT,
                    ErrorKind::NotYetUploaded,
                    "The media has not been uploaded yet",
                ));
            }
        }
    }

    async fn open(&self, record: MediaRecord, file: StoredFile) -> Result<Download> {
        let Some(handle) = self.store.open_file(&file).await? else {
            tracing::error!(sha256 = %file.sha256, "a media record names a file that is not on disk");
            return Err(unknown_media());
        };
        Ok(Download { content_type: record.content_type, filename: record.filename, size: file.size, file: handle })
    }

    /// Fetches remote media from its server, stores it and caches its record.
    #[tracing::instrument(skip(self))]
    async fn fetch_remote(&self, server: &ServerName, media_id: &str, wait: Duration) -> Result<(MediaRecord, StoredFile)> {
        if !self.federation_enabled {
            return Err(unknown_media());
        }
        let timeout_ms = wait.min(MAX_WAIT).as_millis();
        let path = format!("/_matrix/federation/v1/media/download/{media_id}?timeout_ms={timeout_ms}");
        let (content_type, disposition, placed) = match self.federation.get_signed_streaming(server, &path, REMOTE_FETCH_TIMEOUT).await {
            Ok(response) => self.store_multipart(server, response).await?,
            // Servers from before authenticated media (Matrix 1.11) only have the old path.
            Err(e) if e.errcode() == "M_UNRECOGNIZED" => {
                let path = format!("/_matrix/media/v3/download/{server}/{media_id}?allow_remote=false&timeout_ms={timeout_ms}");
                let response = self.federation.get_signed_streaming(server, &path, REMOTE_FETCH_TIMEOUT).await?;
                self.store_plain(server, response).await?
            }
            Err(e) => return Err(e),
        };
        let record = MediaRecord {
            uploader: None,
            content_type,
            filename: disposition.as_deref().and_then(filename_of_disposition),
            file: Some(placed.file.clone()),
            created_ms: now_millis(),
            expires_ms: None,
        };
        let mut batch = Batch::new();
        MEDIA.put(&mut batch, &(server.to_string(), media_id.to_owned()), &record)?;
        self.db.write_async(batch).await?;
        Ok((record, placed.file.clone()))
    }

    /// Stores the file of a federation media answer (`multipart/mixed`), following a
    /// `Location` part. Returns the file's content type and disposition.
    async fn store_multipart(
        &self,
        server: &ServerName,
        mut response: reqwest::Response,
    ) -> Result<(Option<String>, Option<String>, Placed)> {
        let boundary = header(&response, http::header::CONTENT_TYPE)
            .as_deref()
            .and_then(multipart::boundary_of)
            .ok_or_else(|| bad_answer(server, "not a multipart/mixed answer"))?;
        let mut reader = MultipartReader::new(&boundary);
        let (part, first) = loop {
            let chunk = response.chunk().await.map_err(|e| bad_answer(server, &e.to_string()))?;
            let chunk = chunk.ok_or_else(|| bad_answer(server, "the answer ended in its headers"))?;
            let progress = reader.push(&chunk).map_err(|e| bad_answer(server, &e.to_string()))?;
            if let Some(part) = progress.part {
                break (part, progress.data);
            }
        };
        match part {
            FilePart::Location(url) => {
                let response = self.federation.get_url_streaming(server, &url, REMOTE_FETCH_TIMEOUT).await?;
                self.store_plain(server, response).await
            }
            FilePart::File { content_type, content_disposition } => {
                let file = self.store_remote_body(server, multipart_file(server, response, reader, first)).await?;
                Ok((content_type, content_disposition, file))
            }
        }
    }

    /// Stores a plain answer's body as the file (a `Location` target, the legacy path).
    async fn store_plain(&self, server: &ServerName, response: reqwest::Response) -> Result<(Option<String>, Option<String>, Placed)> {
        let content_type = header(&response, http::header::CONTENT_TYPE);
        let disposition = header(&response, http::header::CONTENT_DISPOSITION);
        let file = self.store_remote_body(server, response_chunks(server, response)).await?;
        Ok((content_type, disposition, file))
    }

    /// Writes a remote file, capped at `media.max_upload_bytes` (502 `M_TOO_LARGE` beyond).
    async fn store_remote_body(&self, server: &ServerName, body: impl Stream<Item = Result<Bytes>>) -> Result<Placed> {
        self.store.write_held(body, self.max_upload_bytes).await.map_err(|e| match e.errcode().as_str() {
            "M_TOO_LARGE" => Error::matrix(
                StatusCode::BAD_GATEWAY,
                ErrorKind::TooLarge,
                format!("The media on {server} is larger than {} bytes", self.max_upload_bytes),
            ),
            _ => e,
        })
    }

    fn mxc(&self, media_id: &str) -> OwnedMxcUri {
        OwnedMxcUri::from(format!("mxc://{}/{media_id}", self.server_name))
    }
}

/// Holds a pending media ID while its upload streams in; released on drop.
struct UploadClaim {
    set: Arc<Mutex<HashSet<String>>>,
    media_id: String,
}

impl UploadClaim {
    fn take(set: &Arc<Mutex<HashSet<String>>>, media_id: &str) -> Result<Self> {
        let mut claimed = set.lock().map_err(|_| Error::internal("upload claims poisoned"))?;
        if !claimed.insert(media_id.to_owned()) {
            return Err(cannot_overwrite());
        }
        Ok(Self { set: set.clone(), media_id: media_id.to_owned() })
    }
}

impl Drop for UploadClaim {
    fn drop(&mut self) {
        if let Ok(mut claimed) = self.set.lock() {
            claimed.remove(&self.media_id);
        }
    }
}

/// A response body as a stream of chunks; a failure to read it is the peer's (502).
fn response_chunks(server: &ServerName, response: reqwest::Response) -> impl Stream<Item = Result<Bytes>> + use<'_> {
    futures::stream::try_unfold(response, move |mut response| async move {
        match response.chunk().await {
            Ok(Some(chunk)) => Ok(Some((chunk, response))),
            Ok(None) => Ok(None),
            Err(e) => Err(bad_answer(server, &e.to_string())),
        }
    })
}

/// The rest of a multipart answer's file part, after the bytes `first` that came with its
/// headers. An answer that ends before its closing boundary is an error, so a cut-off download
/// is never stored as if it were whole.
fn multipart_file(
    server: &ServerName,
    response: reqwest::Response,
    reader: MultipartReader,
    first: Vec<u8>,
) -> impl Stream<Item = Result<Bytes>> + use<'_> {
    let rest = futures::stream::try_unfold((response, reader), move |(mut response, mut reader)| async move {
        match response.chunk().await.map_err(|e| bad_answer(server, &e.to_string()))? {
            Some(chunk) => {
                let progress = reader.push(&chunk).map_err(|e| bad_answer(server, &e.to_string()))?;
                Ok(Some((Bytes::from(progress.data), (response, reader))))
            }
            None => reader.finish().map(|()| None).map_err(|e| bad_answer(server, &e.to_string())),
        }
    });
    futures::stream::once(async move { Ok(Bytes::from(first)) }).chain(rest)
}

fn header(response: &reqwest::Response, name: http::HeaderName) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// The file name in a `Content-Disposition` header, if any.
fn filename_of_disposition(value: &str) -> Option<String> {
    ruma::http_headers::ContentDisposition::try_from(value.as_bytes()).ok().and_then(|d| d.filename)
}

/// Media IDs we make and accept: the spec's URL-safe alphabet, so an ID can never reach into
/// another path when it is put into a URL or a key.
pub fn is_valid_media_id(media_id: &str) -> bool {
    (1..=255).contains(&media_id.len()) && media_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn new_media_id() -> String {
    use rand::Rng as _;
    rand::thread_rng().sample_iter(rand::distributions::Alphanumeric).take(24).map(char::from).collect()
}

fn unknown_media() -> Error {
    Error::not_found("Unknown media")
}

fn cannot_overwrite() -> Error {
    Error::matrix(StatusCode::CONFLICT, ErrorKind::CannotOverwriteMedia, "This media has already been uploaded")
}

fn bad_answer(server: &ServerName, why: &str) -> Error {
    Error::matrix(StatusCode::BAD_GATEWAY, ErrorKind::Unknown, format!("Cannot fetch media from {server}: {why}"))
}
