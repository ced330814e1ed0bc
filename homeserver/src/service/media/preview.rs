//! URL previews (`/preview_url`): a page fetched on a user's behalf and summarised as
//! OpenGraph properties ([`super::opengraph`]), its image stored as local media so that
//! clients load it from us (`og:image` becomes an `mxc://` URI, as with Synapse).
//!
//! The server fetches what its users name, so every fetch is fenced in:
//! - only `http`/`https`; hosts on `url_preview.host_denylist` are refused;
//! - every address connected to passes the [`AddressPolicy`]: hostnames through the HTTP
//!   client's resolver (the addresses checked are the ones connected to, so DNS rebinding
//!   gains nothing), IP literals (which no resolver sees) before each request;
//! - redirects are followed by hand, at most `url_preview.max_redirects`, each hop checked as
//!   the first URL was;
//! - no proxy from the environment (a proxy would resolve the host instead of us);
//! - bodies are read up to `url_preview.max_body_bytes` and the whole fetch, redirects
//!   included, within `url_preview.timeout_secs`.
//!
//! Previews are cached in RocksDB for `url_preview.cache_secs`; concurrent requests for the
//! same URL wait for one fetch instead of each making their own.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use futures::Stream;
use http::StatusCode;
use myelin_config::{Config, UrlPreviewConfig};
use myelin_storage::{Batch, Database, Table};
use reqwest::Url;
use ruma::{UserId, api::error::ErrorKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Media, filename_of_disposition, header, opengraph};
use crate::{
    error::{Error, Result},
    service::address_policy::{AddressPolicy, FilteringResolver, OnlyDeniedAddresses},
    util::now_millis,
};

pub const TABLES: &[&str] = &["url_preview"];

/// Previews by the URL as requested, with when they were made.
const PREVIEWS: Table<String, CachedPreview> = Table::new("url_preview");

/// URLs longer than this are refused rather than fetched and cached under a huge key.
const MAX_URL_BYTES: usize = 4_096;
/// How much of an image is kept aside to read its dimensions from its header (JPEG's can sit
/// behind tens of KiB of metadata).
const IMAGE_HEADER_BYTES: usize = 256 * 1024;

#[derive(Serialize, Deserialize)]
struct CachedPreview {
    og: Map<String, Value>,
    made_ms: u64,
}

pub struct UrlPreviews {
    db: Database,
    enabled: bool,
    http: reqwest::Client,
    policy: AddressPolicy,
    host_denylist: Vec<String>,
    max_body_bytes: u64,
    timeout: Duration,
    max_redirects: u32,
    cache_ms: u64,
    /// One lock per URL being previewed: a request for a URL already in flight waits for it
    /// and then finds its answer in the cache.
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl UrlPreviews {
    pub fn new(db: Database, config: &Config) -> Result<Self> {
        let preview: &UrlPreviewConfig = &config.url_preview;
        let ranges = |list: &[String]| UrlPreviewConfig::parse_ip_ranges(list).map_err(Error::internal);
        let policy = AddressPolicy::new(&ranges(&preview.ip_range_denylist)?, &ranges(&preview.ip_range_allowlist)?);
        let timeout = Duration::from_secs(preview.timeout_secs);
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(FilteringResolver::new(policy.clone())))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .user_agent(format!("{} (URL preview bot)", crate::VERSION))
            .build()
            .map_err(|e| Error::internal(format!("cannot build the URL preview HTTP client: {e}")))?;
        let host_denylist =
            preview.host_denylist.iter().map(|host| host.trim().trim_end_matches('.').to_ascii_lowercase()).collect();
        Ok(Self {
            db,
            enabled: preview.enabled,
            http,
            policy,
            host_denylist,
            max_body_bytes: preview.max_body_bytes,
            timeout,
            max_redirects: preview.max_redirects,
            cache_ms: preview.cache_secs.saturating_mul(1000),
            in_flight: Mutex::default(),
        })
    }

    /// The preview of `url` for `user`, from the cache while it is fresh. Images are stored in
    /// `media` as `user`'s uploads.
    #[tracing::instrument(skip(self, media), fields(user = %user))]
    pub async fn preview(&self, media: &Media, user: &UserId, url: &str) -> Result<Map<String, Value>> {
        if !self.enabled {
            // As Synapse when previews are off: the endpoint does not exist.
            return Err(Error::unrecognized(StatusCode::NOT_FOUND));
        }
        let parsed = self.parse_requested(url)?;
        let claim = InFlight::join(&self.in_flight, url)?;
        let _only_fetch = claim.lock.lock().await;
        if let Some(og) = self.cached(url)? {
            return Ok(og);
        }
        let og = tokio::time::timeout(self.timeout, self.make(media, user, parsed))
            .await
            .map_err(|_| upstream(StatusCode::GATEWAY_TIMEOUT, format!("Previewing took longer than {} s", self.timeout.as_secs())))??;
        let mut batch = Batch::new();
        PREVIEWS.put(&mut batch, &url.to_owned(), &CachedPreview { og: og.clone(), made_ms: now_millis() })?;
        self.db.write_async(batch).await?;
        Ok(og)
    }

    /// Deletes the previews older than their cache lifetime; returns how many.
    pub async fn delete_expired(&self) -> Result<usize> {
        let oldest_fresh = now_millis().saturating_sub(self.cache_ms);
        let mut batch = Batch::new();
        let mut deleted = 0;
        for entry in PREVIEWS.iter_all(&self.db)? {
            let (url, cached) = entry?;
            if cached.made_ms < oldest_fresh {
                PREVIEWS.delete(&mut batch, &url);
                deleted += 1;
            }
        }
        if deleted > 0 {
            self.db.write_async(batch).await?;
        }
        Ok(deleted)
    }

    fn cached(&self, url: &str) -> Result<Option<Map<String, Value>>> {
        let oldest_fresh = now_millis().saturating_sub(self.cache_ms);
        Ok(PREVIEWS.get(&self.db, &url.to_owned())?.filter(|cached| cached.made_ms >= oldest_fresh).map(|cached| cached.og))
    }

    /// The client's URL, refused (400 `M_INVALID_PARAM`) unless it is an http(s) URL.
    fn parse_requested(&self, url: &str) -> Result<Url> {
        if url.len() > MAX_URL_BYTES {
            return Err(Error::invalid_param(format!("The URL is longer than {MAX_URL_BYTES} bytes")));
        }
        let parsed = Url::parse(url).map_err(|e| Error::invalid_param(format!("Invalid URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::invalid_param("Only http and https URLs can be previewed"));
        }
        Ok(parsed)
    }

    /// Fetches `url` and builds its preview.
    async fn make(&self, media: &Media, user: &UserId, url: Url) -> Result<Map<String, Value>> {
        let (response, url) = self.fetch(url).await?;
        let content_type = header(&response, http::header::CONTENT_TYPE).unwrap_or_default();
        if opengraph::is_image(&content_type) {
            let filename = header(&response, http::header::CONTENT_DISPOSITION).as_deref().and_then(filename_of_disposition);
            let mut og = self.store_image(media, user, response, &content_type).await?;
            if let Some(filename) = filename {
                og.insert("og:description".to_owned(), Value::String(filename));
            }
            return Ok(og);
        }
        if !opengraph::is_html(&content_type) {
            // Nothing to show for other types: an empty preview, without reading the body.
            return Ok(Map::new());
        }
        let body = self.read_body(response).await?;
        let page_url = url.clone();
        let mut og = tokio::task::spawn_blocking(move || opengraph::parse(&body, &content_type, &page_url))
            .await
            .map_err(|e| Error::internal(format!("the HTML parser failed: {e}")))?;
        if let Some(image_url) = og.remove("og:image").and_then(|v| v.as_str().map(str::to_owned)) {
            // As with Synapse, a page whose image cannot be had is still previewed, without it.
            match self.fetch_image(media, user, &image_url).await {
                Ok(image) => og.extend(image),
                Err(error) => tracing::info!(%error, image_url, "the preview's image is left out"),
            }
        }
        Ok(og)
    }

    /// `og:image`, `og:image:type` and `matrix:image:size` for an image at `url`.
    async fn fetch_image(&self, media: &Media, user: &UserId, url: &str) -> Result<Map<String, Value>> {
        let url = Url::parse(url).map_err(|e| Error::invalid_param(format!("Invalid image URL: {e}")))?;
        let (response, _) = self.fetch(url).await?;
        let content_type = header(&response, http::header::CONTENT_TYPE).unwrap_or_default();
        if !opengraph::is_image(&content_type) {
            return Err(upstream(StatusCode::BAD_GATEWAY, format!("the image is of type {content_type:?}")));
        }
        self.store_image(media, user, response, &content_type).await
    }

    /// Streams an image answer into the media store.
    async fn store_image(&self, media: &Media, user: &UserId, response: reqwest::Response, content_type: &str) -> Result<Map<String, Value>> {
        self.refuse_declared_oversize(&response)?;
        let tap = Arc::new(Mutex::new(BodyTap::keeping(IMAGE_HEADER_BYTES)));
        let mxc = media
            .upload(user, Some(content_type.to_owned()), None, self.capped_body(response, tap.clone()))
            .await
            // Over `media.max_upload_bytes`: too large for us, as over our own limit.
            .map_err(|e| if e.errcode() == "M_TOO_LARGE" { self.too_large() } else { e })?;
        let (size, head) = tap.lock().map(|tap| (tap.size, tap.head.clone())).map_err(|_| Error::internal("body tap poisoned"))?;
        let mut og = Map::new();
        og.insert("og:image".to_owned(), Value::String(mxc.to_string()));
        og.insert("og:image:type".to_owned(), Value::String(content_type.to_owned()));
        og.insert("matrix:image:size".to_owned(), Value::from(size));
        // The image's own size, as Synapse gives it, over whatever the page declared.
        if let Some((width, height)) = image_dimensions(head).await {
            og.insert("og:image:width".to_owned(), Value::from(width));
            og.insert("og:image:height".to_owned(), Value::from(height));
        }
        Ok(og)
    }

    /// GETs `url`, following redirects by hand so that every hop is checked. Returns the
    /// final answer and its URL.
    async fn fetch(&self, mut url: Url) -> Result<(reqwest::Response, Url)> {
        for _ in 0..=self.max_redirects {
            self.check_destination(&url)?;
            let response = self.http.get(url.clone()).send().await.map_err(|e| fetch_failed(&url, &e))?;
            let status = response.status();
            if status.is_redirection()
                && let Some(location) = header(&response, http::header::LOCATION)
            {
                url = url.join(&location).map_err(|e| upstream(StatusCode::BAD_GATEWAY, format!("invalid redirect: {e}")))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(upstream(StatusCode::BAD_GATEWAY, "redirected to a URL that is not http(s)"));
                }
                continue;
            }
            if !status.is_success() {
                return Err(upstream(StatusCode::BAD_GATEWAY, format!("the page answered {status}")));
            }
            return Ok((response, url));
        }
        Err(upstream(StatusCode::BAD_GATEWAY, format!("more than {} redirects", self.max_redirects)))
    }

    /// The checks a destination must pass before it is requested; addresses of host names are
    /// checked by the resolver as they are connected to.
    fn check_destination(&self, url: &Url) -> Result<()> {
        let blocked = |message: String| Error::matrix(StatusCode::FORBIDDEN, ErrorKind::Unknown, message);
        let host = url.host_str().ok_or_else(|| Error::invalid_param("The URL has no host"))?;
        // The URL parser has normalised IP literals (e.g. "0x7f.1" is "127.0.0.1"); IPv6 ones
        // keep their brackets.
        if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>() {
            return self.policy.check(ip).map_err(|why| blocked(format!("IP address blocked ({why})")));
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let denied = self
            .host_denylist
            .iter()
            .any(|entry| host == *entry || host.strip_suffix(entry.as_str()).is_some_and(|rest| rest.ends_with('.')));
        if denied {
            return Err(blocked("URL blocked by the host deny list".to_owned()));
        }
        Ok(())
    }

    /// 502 `M_TOO_LARGE` at once when the answer declares a body over the limit.
    fn refuse_declared_oversize(&self, response: &reqwest::Response) -> Result<()> {
        match response.content_length() {
            Some(length) if length > self.max_body_bytes => Err(self.too_large()),
            _ => Ok(()),
        }
    }

    /// The body in memory, up to the limit.
    async fn read_body(&self, response: reqwest::Response) -> Result<Vec<u8>> {
        use futures::TryStreamExt as _;
        self.refuse_declared_oversize(&response)?;
        let tap = Arc::new(Mutex::new(BodyTap::keeping(0)));
        self.capped_body(response, tap).try_fold(Vec::new(), |mut body, chunk| async move {
            body.extend_from_slice(&chunk);
            Ok(body)
        })
        .await
    }

    /// The body as a stream that fails with 502 `M_TOO_LARGE` as soon as it passes the limit
    /// (nothing more is read), counting its bytes (and keeping its first ones) in `tap`.
    fn capped_body(&self, response: reqwest::Response, tap: Arc<Mutex<BodyTap>>) -> impl Stream<Item = Result<Bytes>> + use<> {
        let limit = self.max_body_bytes;
        let too_large = self.too_large();
        futures::stream::try_unfold((response, Some(too_large)), move |(mut response, mut too_large)| {
            let tap = tap.clone();
            async move {
                let chunk = response.chunk().await.map_err(|e| upstream(StatusCode::BAD_GATEWAY, format!("reading the answer: {e}")))?;
                let Some(chunk) = chunk else { return Ok(None) };
                let size = tap.lock().map_err(|_| Error::internal("body tap poisoned"))?.take(&chunk);
                if size > limit {
                    return Err(too_large.take().unwrap_or_else(|| Error::internal("read past the end")));
                }
                Ok(Some((chunk, (response, too_large))))
            }
        })
    }

    fn too_large(&self) -> Error {
        Error::matrix(StatusCode::BAD_GATEWAY, ErrorKind::TooLarge, format!("The page is larger than {} bytes", self.max_body_bytes))
    }
}

/// A request's place among those previewing one URL; the URL's lock leaves the map with the
/// last of them, also when a request is dropped half-way (its client went away).
struct InFlight<'a> {
    map: &'a Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    url: String,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl<'a> InFlight<'a> {
    fn join(map: &'a Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>, url: &str) -> Result<Self> {
        let lock = map.lock().map_err(|_| Error::internal("preview locks poisoned"))?.entry(url.to_owned()).or_default().clone();
        Ok(Self { map, url: url.to_owned(), lock })
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Ok(mut map) = self.map.lock()
            && Arc::strong_count(&self.lock) == 2
        {
            // Nobody else holds or waits for this URL's lock: only the map and we do.
            map.remove(&self.url);
        }
    }
}

/// What a body stream has seen: its size so far and its first bytes.
struct BodyTap {
    size: u64,
    head: Vec<u8>,
    keep: usize,
}

impl BodyTap {
    fn keeping(keep: usize) -> Self {
        Self { size: 0, head: Vec::new(), keep }
    }

    /// Records a chunk; returns the size so far.
    fn take(&mut self, chunk: &[u8]) -> u64 {
        self.size += chunk.len() as u64;
        let room = self.keep.saturating_sub(self.head.len());
        self.head.extend_from_slice(&chunk[..room.min(chunk.len())]);
        self.size
    }
}

/// Width and height from an image's header (`None` for formats the image crate does not
/// know or a header cut short).
async fn image_dimensions(head: Vec<u8>) -> Option<(u32, u32)> {
    tokio::task::spawn_blocking(move || {
        image::ImageReader::new(std::io::Cursor::new(head)).with_guessed_format().ok()?.into_dimensions().ok()
    })
    .await
    .ok()
    .flatten()
}

/// A failure of the site previewed (or of reaching it), as Synapse reports it: `M_UNKNOWN`.
fn upstream(status: StatusCode, message: impl Into<String>) -> Error {
    Error::matrix(status, ErrorKind::Unknown, message)
}

/// A request that failed: a host whose addresses are all denied is a DNS failure (502, as
/// Synapse answers when its resolver filters every address).
fn fetch_failed(url: &Url, error: &reqwest::Error) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if cause.is::<OnlyDeniedAddresses>() {
            return upstream(StatusCode::BAD_GATEWAY, "DNS resolution failure during URL preview generation");
        }
        source = cause.source();
    }
    let host = url.host_str().unwrap_or_default();
    if error.is_timeout() {
        return upstream(StatusCode::GATEWAY_TIMEOUT, format!("{host} did not answer in time"));
    }
    upstream(StatusCode::BAD_GATEWAY, format!("cannot fetch from {host}: {error}"))
}
