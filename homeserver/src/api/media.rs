//! The media repository over HTTP: uploads (`/_matrix/media/…/upload`, `/create`), downloads
//! for clients (authenticated `/_matrix/client/v1/media/…` and the frozen legacy
//! `/_matrix/media/…/download`), and downloads for other servers
//! (`/_matrix/federation/v1/media/download`).
//!
//! Uploads are plain axum handlers: ruma's upload request types hold the whole file in memory,
//! so the body is streamed to the media service instead. Downloads use `Ruma<T>` for parsing and
//! authentication and stream the file out; nothing is ever read into memory whole.
//!
//! Thumbnails (`…/thumbnail`, client, legacy and federation) are made by the media service in
//! fixed sizes and served like downloads.
//!
//! URL previews are served by `api::media_preview`.

use axum::{
    Router,
    body::Body,
    extract::{FromRequestParts, RawPathParams, Request, State},
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{HeaderValue, Method, StatusCode, header, request::Parts};
use ruma::{
    ServerName, UInt,
    api::{
        client::{authenticated_media, media},
        error::ErrorKind,
        federation::authenticated_media as federation_media,
    },
};
use tokio_util::io::ReaderStream;

use crate::{
    error::{Error, Result},
    router::{AppState, ClientUser, Ruma, RumaResponse, RumaRouter},
    service::media::{Download, multipart, thumbnail::ThumbnailRequest},
};

// The legacy media paths are deprecated in ruma; they are served for media from before the
// freeze.
#[allow(deprecated)]
pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .ruma::<media::create_content::v3::Request, _, _>(create_content_route)
        .ruma::<media::create_mxc_uri::v1::Request, _, _>(create_mxc_uri_route)
        .ruma::<media::create_content_async::v3::Request, _, _>(create_content_async_route)
        .ruma::<authenticated_media::get_content::v1::Request, _, _>(get_content_route)
        .ruma::<authenticated_media::get_content_as_filename::v1::Request, _, _>(get_content_as_filename_route)
        .ruma::<authenticated_media::get_media_config::v1::Request, _, _>(get_media_config_route)
        .ruma::<media::get_media_config::v3::Request, _, _>(get_legacy_media_config_route)
        .ruma::<media::get_content::v3::Request, _, _>(get_legacy_content_route)
        .ruma::<media::get_content_as_filename::v3::Request, _, _>(get_legacy_content_as_filename_route)
        .ruma::<federation_media::get_content::v1::Request, _, _>(get_federation_content_route)
        .ruma::<authenticated_media::get_content_thumbnail::v1::Request, _, _>(get_content_thumbnail_route)
        .ruma::<media::get_content_thumbnail::v3::Request, _, _>(get_legacy_content_thumbnail_route)
        .ruma::<federation_media::get_content_thumbnail::v1::Request, _, _>(get_federation_content_thumbnail_route)
}

/// Whether a request is a media upload, whose body has `media.max_upload_bytes` as its limit
/// rather than `limits.max_request_body_bytes` (the body-size layer asks).
pub fn is_upload(method: &Method, path: &str) -> bool {
    matches!(*method, Method::POST | Method::PUT) && path.starts_with("/_matrix/media/") && path.contains("/upload")
}

/// `POST /_matrix/media/v3/upload` (and r0)
async fn create_content_route(
    State(services): State<AppState>,
    ClientUser(user): ClientUser,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let uploaded = async {
        services.rate_limits.media_upload_per_user.check(user.user_id.as_str())?;
        let (content_type, filename) = upload_metadata(&parts)?;
        services.media.upload(&user.user_id, content_type, filename, upload_stream(body)).await
    };
    match uploaded.await {
        Ok(content_uri) => RumaResponse(media::create_content::v3::Response::new(content_uri)).into_response(),
        Err(error) => upload_error(error),
    }
}

/// `POST /_matrix/media/v1/create`
async fn create_mxc_uri_route(
    State(services): State<AppState>,
    body: Ruma<media::create_mxc_uri::v1::Request>,
) -> Result<RumaResponse<media::create_mxc_uri::v1::Response>> {
    let user = &body.sender()?.user_id;
    services.rate_limits.media_upload_per_user.check(user.as_str())?;
    let (content_uri, expires) = services.media.create_pending(user).await?;
    let mut response = media::create_mxc_uri::v1::Response::new(content_uri);
    response.unused_expires_at = UInt::new(expires).map(ruma::MilliSecondsSinceUnixEpoch);
    Ok(RumaResponse(response))
}

/// `PUT /_matrix/media/v3/upload/{serverName}/{mediaId}`
async fn create_content_async_route(
    State(services): State<AppState>,
    ClientUser(user): ClientUser,
    request: Request,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let uploaded = async {
        services.rate_limits.media_upload_per_user.check(user.user_id.as_str())?;
        let params = RawPathParams::from_request_parts(&mut parts, &services)
            .await
            .map_err(|e| Error::invalid_param(format!("invalid path parameter: {e}")))?;
        let param = |name: &str| params.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_owned()).unwrap_or_default();
        let server_name = param("server_name");
        let server =
            <&ServerName>::try_from(server_name.as_str()).map_err(|e| Error::invalid_param(format!("invalid server name: {e}")))?;
        let (content_type, filename) = upload_metadata(&parts)?;
        let body = upload_stream(body);
        services.media.upload_pending(&user.user_id, server, &param("media_id"), content_type, filename, body).await
    };
    match uploaded.await {
        Ok(()) => axum::Json(serde_json::json!({})).into_response(),
        Err(error) => upload_error(error),
    }
}

/// `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}`
async fn get_content_route(
    State(services): State<AppState>,
    body: Ruma<authenticated_media::get_content::v1::Request>,
) -> Result<Response> {
    body.sender()?;
    let request = body.body;
    let download = services.media.download(&request.server_name, &request.media_id, request.timeout_ms).await?;
    Ok(file_response(download, None))
}

/// `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName}`
async fn get_content_as_filename_route(
    State(services): State<AppState>,
    body: Ruma<authenticated_media::get_content_as_filename::v1::Request>,
) -> Result<Response> {
    body.sender()?;
    let request = body.body;
    let download = services.media.download(&request.server_name, &request.media_id, request.timeout_ms).await?;
    Ok(file_response(download, Some(&request.filename)))
}

/// `GET /_matrix/client/v1/media/config`
async fn get_media_config_route(
    State(services): State<AppState>,
    _: Ruma<authenticated_media::get_media_config::v1::Request>,
) -> Result<RumaResponse<authenticated_media::get_media_config::v1::Response>> {
    Ok(RumaResponse(authenticated_media::get_media_config::v1::Response::new(upload_size(&services))))
}

/// `GET /_matrix/media/v3/config` (deprecated, still authenticated)
#[allow(deprecated)]
async fn get_legacy_media_config_route(
    State(services): State<AppState>,
    _: Ruma<media::get_media_config::v3::Request>,
) -> Result<RumaResponse<media::get_media_config::v3::Response>> {
    Ok(RumaResponse(media::get_media_config::v3::Response::new(upload_size(&services))))
}

/// `GET /_matrix/media/v3/download/{serverName}/{mediaId}` (deprecated, unauthenticated):
/// only media from before `media.legacy_unauthenticated_before`.
#[allow(deprecated)]
async fn get_legacy_content_route(
    State(services): State<AppState>,
    body: Ruma<media::get_content::v3::Request>,
) -> Result<Response> {
    let download = services.media.legacy_download(&body.body.server_name, &body.body.media_id).await?;
    Ok(file_response(download, None))
}

/// `GET /_matrix/media/v3/download/{serverName}/{mediaId}/{fileName}` (deprecated)
#[allow(deprecated)]
async fn get_legacy_content_as_filename_route(
    State(services): State<AppState>,
    body: Ruma<media::get_content_as_filename::v3::Request>,
) -> Result<Response> {
    let request = body.body;
    let download = services.media.legacy_download(&request.server_name, &request.media_id).await?;
    Ok(file_response(download, Some(&request.filename)))
}

/// `GET /_matrix/federation/v1/media/download/{mediaId}`: our own media for another server, as
/// `multipart/mixed` (an empty JSON metadata part, then the file).
async fn get_federation_content_route(
    State(services): State<AppState>,
    body: Ruma<federation_media::get_content::v1::Request>,
) -> Result<Response> {
    body.origin()?;
    let download = services.media.download_for_federation(&body.body.media_id, body.body.timeout_ms).await?;
    Ok(multipart_response(download))
}

/// `GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}`
async fn get_content_thumbnail_route(
    State(services): State<AppState>,
    body: Ruma<authenticated_media::get_content_thumbnail::v1::Request>,
) -> Result<Response> {
    body.sender()?;
    let request = body.body;
    let thumbnail = ThumbnailRequest::new(request.width.into(), request.height.into(), request.method.as_ref(), request.animated)?;
    let download = services.media.thumbnail(&request.server_name, &request.media_id, thumbnail, request.timeout_ms).await?;
    Ok(file_response(download, None))
}

/// `GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId}` (deprecated, unauthenticated):
/// only of media from before `media.legacy_unauthenticated_before`.
#[allow(deprecated)]
async fn get_legacy_content_thumbnail_route(
    State(services): State<AppState>,
    body: Ruma<media::get_content_thumbnail::v3::Request>,
) -> Result<Response> {
    let request = body.body;
    let thumbnail = ThumbnailRequest::new(request.width.into(), request.height.into(), request.method.as_ref(), request.animated)?;
    let download = services.media.legacy_thumbnail(&request.server_name, &request.media_id, thumbnail).await?;
    Ok(file_response(download, None))
}

/// `GET /_matrix/federation/v1/media/thumbnail/{mediaId}`: a thumbnail of our own media for
/// another server, as `multipart/mixed` like a download.
async fn get_federation_content_thumbnail_route(
    State(services): State<AppState>,
    body: Ruma<federation_media::get_content_thumbnail::v1::Request>,
) -> Result<Response> {
    body.origin()?;
    let request = body.body;
    let thumbnail = ThumbnailRequest::new(request.width.into(), request.height.into(), request.method.as_ref(), request.animated)?;
    let download = services.media.thumbnail_for_federation(&request.media_id, thumbnail, request.timeout_ms).await?;
    Ok(multipart_response(download))
}

/// A file for another server: `multipart/mixed`, an empty JSON metadata part, then the file.
fn multipart_response(download: Download) -> Response {
    let content_type = content_type_of(&download);
    let boundary = multipart::new_boundary();
    let head = multipart::head(&boundary, content_type.to_str().unwrap_or("application/octet-stream"), &disposition_of(&download, None));
    let tail = multipart::tail(&boundary);
    let length = head.len() as u64 + download.size + tail.len() as u64;
    let body = futures::stream::once(async move { Ok(Bytes::from(head)) })
        .chain(ReaderStream::with_capacity(download.file, 64 * 1024))
        .chain(futures::stream::once(async move { Ok(Bytes::from(tail)) }));
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Ok(value) = HeaderValue::from_str(&format!("multipart/mixed; boundary={boundary}")) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    response
}

/// The upload's `Content-Type` header and `filename` query parameter.
fn upload_metadata(parts: &Parts) -> Result<(Option<String>, Option<String>)> {
    let content_type = match parts.headers.get(header::CONTENT_TYPE) {
        None => None,
        Some(value) => {
            let value = value.to_str().map_err(|_| Error::invalid_param("Content-Type is not ASCII"))?.trim();
            (!value.is_empty()).then(|| value.to_owned())
        }
    };
    let filename = parts.uri.query().and_then(|query| {
        form_urlencoded::parse(query.as_bytes()).find(|(key, _)| key == "filename").map(|(_, value)| value.into_owned())
    });
    Ok((content_type, filename.filter(|name| !name.is_empty())))
}

/// The request body as it arrives.
fn upload_stream(body: Body) -> impl Stream<Item = Result<Bytes>> {
    body.into_data_stream().map(|chunk| {
        chunk.map_err(|e| Error::matrix(StatusCode::BAD_REQUEST, ErrorKind::Unknown, format!("Cannot read the upload: {e}")))
    })
}

/// An upload refused as too large was not read to its end, so the connection cannot carry
/// another request.
fn upload_error(error: Error) -> Response {
    let close = error.errcode() == "M_TOO_LARGE";
    let mut response = error.into_response();
    if close {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn upload_size(services: &AppState) -> UInt {
    UInt::new(services.media.max_upload_bytes()).unwrap_or(UInt::MAX)
}

/// What browsers must not do with media: run it, sniff it into another type, or embed it
/// where it should not be.
const CONTENT_SECURITY_POLICY: &str = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; \
     style-src 'unsafe-inline'; media-src 'self'; object-src 'self';";

/// A file for a client, streamed from disk with the security headers.
fn file_response(download: Download, filename: Option<&str>) -> Response {
    let content_type = content_type_of(&download);
    let disposition = disposition_of(&download, filename);
    let size = download.size;
    let mut response = Response::new(Body::from_stream(ReaderStream::with_capacity(download.file, 64 * 1024)));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(http::HeaderName::from_static("cross-origin-resource-policy"), HeaderValue::from_static("cross-origin"));
    // Media never changes under its ID; only the user who fetched it may reuse the copy.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=86400"));
    response
}

fn content_type_of(download: &Download) -> HeaderValue {
    download
        .content_type
        .as_deref()
        .and_then(|value| HeaderValue::from_str(value).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

fn disposition_of(download: &Download, filename: Option<&str>) -> String {
    let content_type = download.content_type.as_deref().unwrap_or("application/octet-stream");
    content_disposition(content_type, filename.or(download.filename.as_deref()))
}

/// The types the spec lists as safe to show inline ("Serving inline content"); everything
/// else is served as an attachment.
const INLINE_CONTENT_TYPES: &[&str] = &[
    "text/css", "text/plain", "text/csv", "application/json", "application/ld+json", "image/jpeg", "image/gif",
    "image/png", "image/apng", "image/webp", "image/avif", "video/mp4", "video/webm", "video/ogg", "video/quicktime",
    "audio/mp4", "audio/webm", "audio/aac", "audio/mpeg", "audio/ogg", "audio/wave", "audio/wav", "audio/x-wav",
    "audio/x-pn-wav", "audio/flac", "audio/x-flac",
];

/// `Content-Disposition` (RFC 6266) for a download: `inline` only for the safe types,
/// `attachment` otherwise, with the file name sanitised and given twice: as an ASCII
/// `filename` for old clients and as UTF-8 `filename*` (RFC 8187).
pub fn content_disposition(content_type: &str, filename: Option<&str>) -> String {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let disposition = if INLINE_CONTENT_TYPES.contains(&essence.as_str()) { "inline" } else { "attachment" };
    let Some(name) = filename.map(sanitise_filename).filter(|name| !name.is_empty()) else {
        return disposition.to_owned();
    };
    let ascii: String = name.chars().map(|c| if c.is_ascii() { c } else { '_' }).collect();
    let mut encoded = String::new();
    for byte in name.bytes() {
        // RFC 8187 attr-char: these pass as they are, every other byte is percent-encoded.
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("{disposition}; filename=\"{ascii}\"; filename*=utf-8''{encoded}")
}

/// A file name that can neither break out of the header (quotes, CR, LF and other control
/// characters), name a path (separators), nor disguise its extension (bidirectional
/// overrides); at most 255 characters.
fn sanitise_filename(name: &str) -> String {
    let kept: String = name
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '/' | '\\' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'))
        .collect();
    kept.trim().chars().take(255).collect()
}

#[cfg(test)]
mod tests {
    use super::{content_disposition, is_upload};

    #[test]
    fn inline_only_for_safe_types() {
        assert_eq!(content_disposition("image/png", None), "inline");
        assert_eq!(content_disposition("text/plain; charset=utf-8", None), "inline");
        assert_eq!(content_disposition("IMAGE/JPEG", None), "inline");
        for unsafe_type in ["text/html", "image/svg+xml", "application/octet-stream", "application/javascript", ""] {
            assert_eq!(content_disposition(unsafe_type, None), "attachment", "{unsafe_type}");
        }
    }

    #[test]
    fn file_names_are_encoded_and_sanitised() {
        assert_eq!(
            content_disposition("image/png", Some("cat.png")),
            "inline; filename=\"cat.png\"; filename*=utf-8''cat.png"
        );
        assert_eq!(
            content_disposition("text/html", Some("naïve résumé.html")),
            "attachment; filename=\"na_ve r_sum_.html\"; filename*=utf-8''na%C3%AFve%20r%C3%A9sum%C3%A9.html"
        );
        assert_eq!(
            content_disposition("text/plain", Some("../../etc/\"pass\r\nwd\".txt")),
            "inline; filename=\"....etcpasswd.txt\"; filename*=utf-8''....etcpasswd.txt"
        );
        assert_eq!(
            content_disposition("application/pdf", Some("invoice\u{202e}fdp.exe")),
            "attachment; filename=\"invoicefdp.exe\"; filename*=utf-8''invoicefdp.exe"
        );
        assert_eq!(content_disposition("image/png", Some(" \r\n\"/ ")), "inline", "nothing left of the name");
        assert_eq!(content_disposition("image/png", Some(&"x".repeat(300))).matches('x').count(), 510);
    }

    #[test]
    fn upload_paths() {
        use http::Method;
        assert!(is_upload(&Method::POST, "/_matrix/media/v3/upload"));
        assert!(is_upload(&Method::POST, "/_matrix/media/r0/upload"));
        assert!(is_upload(&Method::PUT, "/_matrix/media/v3/upload/example.org/abc"));
        assert!(!is_upload(&Method::GET, "/_matrix/media/v3/download/example.org/abc"));
        assert!(!is_upload(&Method::PUT, "/_matrix/client/v3/rooms/!a/send/upload/1"));
    }
}
