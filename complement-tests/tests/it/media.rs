//! The media repository: uploads (direct and asynchronous) and downloads byte for byte, the
//! exact security headers, limits refused before and while the body streams, the frozen
//! legacy paths, crash atomicity (SIGKILL during an upload), remote media over federation
//! (Myelin ↔ Myelin, Myelin ↔ Synapse, both ways) and a real client (matrix-sdk).

use std::path::{Path, PathBuf};
use std::time::Duration;

use complement_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::federation_rooms::{federating_myelin, federating_myelin_with, federating_synapse};
use crate::room_support::enc;

const CSP: &str = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; \
                   style-src 'unsafe-inline'; media-src 'self'; object-src 'self';";

/// Every byte value, over and over: more than the 1 MiB JSON body limit, which uploads do not
/// have.
fn binary_payload(len: usize) -> Vec<u8> {
    (0..=255u8).cycle().take(len).collect()
}

/// `POST /_matrix/media/v3/upload`; returns the response.
async fn upload_raw(peer: &impl HttpPeer, who: &Session, bytes: &[u8], content_type: &str, filename: Option<&str>) -> Resp {
    let path = match filename {
        Some(name) => format!("/_matrix/media/v3/upload?filename={}", enc(name)),
        None => "/_matrix/media/v3/upload".to_owned(),
    };
    peer.send(peer.request(Method::POST, &path, who).header("content-type", content_type).body(bytes.to_vec())).await
}

/// Uploads and returns `(server_name, media_id)` of the new `mxc://` URI.
pub(crate) async fn upload(peer: &impl HttpPeer, who: &Session, bytes: &[u8], content_type: &str, filename: Option<&str>) -> (String, String) {
    let resp = upload_raw(peer, who, bytes, content_type, filename).await;
    mxc_parts(resp.str_field("content_uri"))
}

pub(crate) fn mxc_parts(uri: &str) -> (String, String) {
    let rest = uri.strip_prefix("mxc://").unwrap_or_else(|| panic!("not an mxc URI: {uri}"));
    let (server, id) = rest.rsplit_once('/').unwrap_or_else(|| panic!("no media ID in {uri}"));
    (server.to_owned(), id.to_owned())
}

/// A download's status, headers and raw bytes.
pub(crate) struct Fetched {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) bytes: Vec<u8>,
}

impl Fetched {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }

    #[track_caller]
    pub(crate) fn assert_error(&self, status: StatusCode, errcode: &str) {
        assert_eq!((self.status, self.json()["errcode"].as_str()), (status, Some(errcode)), "{}", String::from_utf8_lossy(&self.bytes));
    }
}

pub(crate) async fn fetch(peer: &impl HttpPeer, path: &str, auth: &(impl AsToken + ?Sized)) -> Fetched {
    let response = peer.request(Method::GET, path, auth).send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    Fetched { status, headers, bytes }
}

/// `GET /_matrix/client/v1/media/download/{server}/{id}` as `who`.
async fn download(peer: &impl HttpPeer, who: &(impl AsToken + ?Sized), server: &str, id: &str) -> Fetched {
    fetch(peer, &format!("/_matrix/client/v1/media/download/{}/{id}", enc(server)), who).await
}

pub(crate) fn media_dir(server: &TestServer) -> PathBuf {
    server.database_path().join("media")
}

/// Every file under `dir`, recursively (the content-addressed files and the temporary ones).
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() { pending.push(path) } else { files.push(path) }
        }
    }
    files.sort();
    files
}

#[tokio::test]
async fn uploads_download_byte_identical_with_the_security_headers() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;

    let config = server.get("/_matrix/client/v1/media/config", &alice).await;
    assert_eq!(config.ok()["m.upload.size"], 52_428_800);

    let payload = binary_payload(3 * 1024 * 1024 + 17);
    let (media_server, id) = upload(&server, &alice, &payload, "image/png", Some("photo.png")).await;
    assert_eq!(media_server, server.server_name());

    // Another user of the server may read it: media is not tied to rooms.
    let got = download(&server, &bob, &media_server, &id).await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.bytes == payload, "the download differs from the upload ({} bytes vs {})", got.bytes.len(), payload.len());
    assert_eq!(got.header("content-type"), "image/png");
    assert_eq!(got.header("content-length"), payload.len().to_string());
    assert_eq!(got.header("content-disposition"), "inline; filename=\"photo.png\"; filename*=utf-8''photo.png");
    assert_eq!(got.header("content-security-policy"), CSP);
    assert_eq!(got.header("x-content-type-options"), "nosniff");
    assert_eq!(got.header("cross-origin-resource-policy"), "cross-origin");

    // The file name in the path wins; the r0 upload path is the same endpoint.
    let renamed = fetch(&server, &format!("/_matrix/client/v1/media/download/{media_server}/{id}/holiday.png"), &bob).await;
    assert_eq!(renamed.header("content-disposition"), "inline; filename=\"holiday.png\"; filename*=utf-8''holiday.png");
    let r0 = server.send(server.request(Method::POST, "/_matrix/media/r0/upload", &alice).body(b"plain".to_vec())).await;
    let (_, r0_id) = mxc_parts(r0.str_field("content_uri"));
    let plain = download(&server, &alice, &media_server, &r0_id).await;
    assert_eq!((plain.bytes.as_slice(), plain.header("content-type")), (&b"plain"[..], "application/octet-stream"));
    assert_eq!(plain.header("content-disposition"), "attachment");

    // The same bytes twice are stored once.
    upload(&server, &bob, &payload, "image/png", None).await;
    let stored: Vec<_> = files_under(&media_dir(&server)).into_iter().filter(|p| !p.starts_with(media_dir(&server).join("tmp"))).collect();
    assert_eq!(stored.len(), 2, "two distinct contents: {stored:?}");
}

#[tokio::test]
async fn only_safe_types_are_inline_and_file_names_are_sanitised() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let html = b"<html><script>alert(document.cookie)</script></html>";
    let (origin, id) = upload(&server, &alice, html, "text/html", Some("página ☃.html")).await;
    let got = download(&server, &alice, &origin, &id).await;
    assert_eq!(got.bytes, html);
    assert_eq!(got.header("content-type"), "text/html");
    assert_eq!(got.header("content-disposition"), "attachment; filename=\"p_gina _.html\"; filename*=utf-8''p%C3%A1gina%20%E2%98%83.html");
    assert_eq!(got.header("content-security-policy"), CSP);

    let (_, svg) = upload(&server, &alice, b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>", "image/svg+xml", Some("a.svg")).await;
    let got = download(&server, &alice, &origin, &svg).await;
    assert_eq!(got.header("content-disposition"), "attachment; filename=\"a.svg\"; filename*=utf-8''a.svg");

    // Quotes, line breaks and path separators never reach the header.
    let (_, sneaky) = upload(&server, &alice, b"x", "text/plain", Some("../\"evil\"\r\nSet-Cookie: a=b.txt")).await;
    let got = download(&server, &alice, &origin, &sneaky).await;
    assert_eq!(got.header("content-disposition"), "inline; filename=\"..evilSet-Cookie: a=b.txt\"; filename*=utf-8''..evilSet-Cookie%3A%20a%3Db.txt");
    assert!(got.headers.get("set-cookie").is_none());
}

#[tokio::test]
async fn asynchronous_upload_create_then_put_once_by_its_creator() {
    let server = TestServer::start(ServerOptions::new().env("MYELIN_MEDIA__MAX_PENDING_UPLOADS_PER_USER", "2")).await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;

    let created = server.post("/_matrix/media/v1/create", &alice, &json!({})).await;
    let (origin, id) = mxc_parts(created.str_field("content_uri"));
    let expires = created.body["unused_expires_at"].as_u64().expect("unused_expires_at");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(expires > now + 23 * 3600 * 1000 && expires <= now + 24 * 3600 * 1000 + 60_000, "expires {expires}, now {now}");

    // Not uploaded yet: a download that will not wait says so.
    let early = fetch(&server, &format!("/_matrix/client/v1/media/download/{origin}/{id}?timeout_ms=0"), &alice).await;
    early.assert_error(StatusCode::GATEWAY_TIMEOUT, "M_NOT_YET_UPLOADED");

    // A download that waits gets the content as soon as it is uploaded.
    let waiting = {
        let url = format!("{}/_matrix/client/v1/media/download/{origin}/{id}", server.url());
        let request = server.client().get(url).bearer_auth(&bob.access_token).send();
        tokio::spawn(async move { request.await.expect("waiting download").bytes().await.expect("body").to_vec() })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let path = format!("/_matrix/media/v3/upload/{origin}/{id}?filename=late.txt");
    assert_matrix_error(&put_media(&server, &bob, &path, b"not yours").await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_eq!(put_media(&server, &alice, &path, b"finally here").await.ok(), &json!({}));
    assert_matrix_error(&put_media(&server, &alice, &path, b"again").await, StatusCode::CONFLICT, "M_CANNOT_OVERWRITE_MEDIA");
    assert_eq!(waiting.await.expect("join"), b"finally here");
    let got = download(&server, &alice, &origin, &id).await;
    assert_eq!((got.bytes.as_slice(), got.header("content-disposition")), (&b"finally here"[..], "inline; filename=\"late.txt\"; filename*=utf-8''late.txt"));

    // Unknown IDs, and more pending IDs than allowed.
    let unknown = server.send(server.request(Method::PUT, &format!("/_matrix/media/v3/upload/{origin}/nosuchmedia"), &alice).body("x")).await;
    assert_matrix_error(&unknown, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    for _ in 0..2 {
        server.post("/_matrix/media/v1/create", &alice, &json!({})).await.ok();
    }
    let third = server.post("/_matrix/media/v1/create", &alice, &json!({})).await;
    assert_matrix_error(&third, StatusCode::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED");
    server.post("/_matrix/media/v1/create", &bob, &json!({})).await.ok();
}

async fn put_media(server: &TestServer, who: &Session, path: &str, body: &'static [u8]) -> Resp {
    server.send(server.request(Method::PUT, path, who).header("content-type", "text/plain").body(body)).await
}

/// An HTTP/1.1 request written by hand, to control exactly what is sent and when.
struct RawRequest {
    stream: TcpStream,
}

impl RawRequest {
    /// Sends the request line and headers (`headers` are full lines without CRLF).
    async fn start(server: &TestServer, method: &str, path: &str, token: &str, headers: &[&str]) -> RawRequest {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port())).await.expect("connect");
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n");
        for header in headers {
            head.push_str(header);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.expect("send the head");
        RawRequest { stream }
    }

    /// One chunk of a chunked body; errors are ignored (the server may have answered and
    /// closed already).
    async fn chunk(&mut self, data: &[u8]) {
        let _ = self.stream.write_all(format!("{:x}\r\n", data.len()).as_bytes()).await;
        let _ = self.stream.write_all(data).await;
        let _ = self.stream.write_all(b"\r\n").await;
    }

    async fn finish(mut self) -> (u16, Value) {
        let _ = self.stream.write_all(b"0\r\n\r\n").await;
        self.response().await
    }

    /// The answer's status and JSON body.
    async fn response(&mut self) -> (u16, Value) {
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        let read = async {
            loop {
                match self.stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                }
                let text = String::from_utf8_lossy(&received);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)));
                    if length.is_some_and(|length| body.len() >= length) {
                        break;
                    }
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read).await.expect("no answer within 10 s");
        let text = String::from_utf8_lossy(&received).into_owned();
        let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status line in {text:?}"));
        let body = text.split_once("\r\n\r\n").map(|(_, b)| serde_json::from_str(b).unwrap_or(Value::Null)).unwrap_or(Value::Null);
        (status, body)
    }
}

#[tokio::test]
async fn oversize_uploads_are_refused_before_or_while_the_body_streams() {
    let server = TestServer::start(ServerOptions::new().env("MYELIN_MEDIA__MAX_UPLOAD_BYTES", "100000")).await;
    let alice = server.register("alice", "pw").await;
    assert_eq!(server.get("/_matrix/client/v1/media/config", &alice).await.ok()["m.upload.size"], 100_000);

    // A declared length over the limit is refused before a byte of the body is sent.
    let mut declared = RawRequest::start(&server, "POST", "/_matrix/media/v3/upload", &alice.access_token, &["Content-Length: 100001"]).await;
    let (status, body) = declared.response().await;
    assert_eq!((status, body["errcode"].as_str()), (413, Some("M_TOO_LARGE")), "{body}");

    // A chunked body is cut off as soon as it passes the limit, and leaves no file behind.
    for path in ["/_matrix/media/v3/upload".to_owned(), {
        let created = server.post("/_matrix/media/v1/create", &alice, &json!({})).await;
        let (origin, id) = mxc_parts(created.str_field("content_uri"));
        format!("/_matrix/media/v3/upload/{origin}/{id}")
    }] {
        let method = if path.ends_with("upload") { "POST" } else { "PUT" };
        let mut chunked = RawRequest::start(&server, method, &path, &alice.access_token, &["Transfer-Encoding: chunked"]).await;
        for _ in 0..11 {
            chunked.chunk(&[7u8; 10_000]).await;
        }
        let (status, body) = chunked.finish().await;
        assert_eq!((status, body["errcode"].as_str()), (413, Some("M_TOO_LARGE")), "{method} {path}: {body}");
    }
    assert_eq!(files_under(&media_dir(&server)), Vec::<PathBuf>::new(), "nothing stored, no temporary file left");

    // Exactly at the limit is fine.
    let mut chunked = RawRequest::start(&server, "POST", "/_matrix/media/v3/upload", &alice.access_token, &["Transfer-Encoding: chunked"]).await;
    for _ in 0..10 {
        chunked.chunk(&[7u8; 10_000]).await;
    }
    let (status, body) = chunked.finish().await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn downloads_need_a_token_and_the_legacy_paths_are_frozen() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let (origin, id) = upload(&server, &alice, b"fresh", "text/plain", Some("f.txt")).await;

    download(&server, &NoAuth, &origin, &id).await.assert_error(StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
    download(&server, "not-a-token", &origin, &id).await.assert_error(StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    for legacy in ["v3", "r0"] {
        let got = fetch(&server, &format!("/_matrix/media/{legacy}/download/{origin}/{id}"), &NoAuth).await;
        got.assert_error(StatusCode::NOT_FOUND, "M_NOT_FOUND");
        fetch(&server, &format!("/_matrix/media/{legacy}/download/{origin}/{id}/f.txt"), &alice).await.assert_error(StatusCode::NOT_FOUND, "M_NOT_FOUND");
    }
    download(&server, &alice, &origin, "doesNotExist").await.assert_error(StatusCode::NOT_FOUND, "M_NOT_FOUND");
    download(&server, &alice, &origin, "bad.media%2Fid").await.assert_error(StatusCode::NOT_FOUND, "M_NOT_FOUND");
    download(&server, &alice, "not a server!", &id).await.assert_error(StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let upload_without_token = server.send(server.request(Method::POST, "/_matrix/media/v3/upload", &NoAuth).body("x")).await;
    assert_matrix_error(&upload_without_token, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");

    // With a freeze date in the future, today's media is still served without a token.
    let thawed = TestServer::start(ServerOptions::new().env("MYELIN_MEDIA__LEGACY_UNAUTHENTICATED_BEFORE", "2999-01-01")).await;
    let bob = thawed.register("bob", "pw").await;
    let (origin, id) = upload(&thawed, &bob, b"old enough", "text/plain", None).await;
    let got = fetch(&thawed, &format!("/_matrix/media/v3/download/{origin}/{id}/old.txt"), &NoAuth).await;
    assert_eq!((got.status, got.bytes.as_slice()), (StatusCode::OK, &b"old enough"[..]));
    assert_eq!(got.header("content-disposition"), "inline; filename=\"old.txt\"; filename*=utf-8''old.txt");
    assert_eq!(got.header("x-content-type-options"), "nosniff");
}

#[tokio::test]
async fn a_kill_during_an_upload_leaves_nothing_half_written() {
    let mut server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let (origin, kept) = upload(&server, &alice, b"committed before the crash", "text/plain", None).await;
    let stored_before = files_under(&media_dir(&server));

    let created = server.post("/_matrix/media/v1/create", &alice, &json!({})).await;
    let (_, pending) = mxc_parts(created.str_field("content_uri"));
    let mut slow_put =
        RawRequest::start(&server, "PUT", &format!("/_matrix/media/v3/upload/{origin}/{pending}"), &alice.access_token, &["Transfer-Encoding: chunked"]).await;
    let mut slow_post = RawRequest::start(&server, "POST", "/_matrix/media/v3/upload", &alice.access_token, &["Transfer-Encoding: chunked"]).await;
    for _ in 0..40 {
        slow_put.chunk(&[1u8; 16 * 1024]).await;
        slow_post.chunk(&[2u8; 16 * 1024]).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Both uploads stream into temporary files, and bytes reach the disk as they come.
    let tmp = media_dir(&server).join("tmp");
    let streaming = || {
        let in_flight = files_under(&tmp);
        in_flight.len() == 2 && in_flight.iter().all(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0) > 0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !streaming() {
        assert!(std::time::Instant::now() < deadline, "not streaming to temporary files: {:?}", files_under(&tmp));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    server.kill().await;
    drop((slow_put, slow_post));
    server.start_again().await;

    assert_eq!(files_under(&media_dir(&server)), stored_before, "only the file committed before the crash remains");
    let got = download(&server, &alice, &origin, &kept).await;
    assert_eq!(got.bytes, b"committed before the crash");
    let half = fetch(&server, &format!("/_matrix/client/v1/media/download/{origin}/{pending}?timeout_ms=0"), &alice).await;
    half.assert_error(StatusCode::GATEWAY_TIMEOUT, "M_NOT_YET_UPLOADED");

    // The interrupted asynchronous upload can be made again.
    let retried = server
        .send(server.request(Method::PUT, &format!("/_matrix/media/v3/upload/{origin}/{pending}"), &alice).body(vec![1u8; 40 * 16 * 1024]))
        .await;
    retried.ok();
    assert_eq!(download(&server, &alice, &origin, &pending).await.bytes, vec![1u8; 40 * 16 * 1024]);
}

/// `uploader` on `home` uploads; `reader` on `away` downloads it through `away`, twice (the
/// second time from `away`'s cache, which the caller may check by stopping `home`).
async fn remote_download(home: &impl HttpPeer, uploader: &Session, away: &impl HttpPeer, reader: &Session, logs: impl Fn() -> String) -> (String, String) {
    let payload = binary_payload(2 * 1024 * 1024 + 3);
    let (origin, id) = upload(home, uploader, &payload, "image/jpeg", Some("remote cat.jpg")).await;
    let got = download(away, reader, &origin, &id).await;
    assert_eq!(got.status, StatusCode::OK, "{}\n{}", String::from_utf8_lossy(&got.bytes), logs());
    assert!(got.bytes == payload, "the remote download differs ({} bytes vs {})", got.bytes.len(), payload.len());
    assert_eq!(got.header("content-type"), "image/jpeg");
    assert!(got.header("content-disposition").contains("remote"), "{}", got.header("content-disposition"));
    download(away, reader, &origin, "unknownMediaId").await.assert_error(StatusCode::NOT_FOUND, "M_NOT_FOUND");
    (origin, id)
}

#[tokio::test]
async fn remote_media_between_two_myelin_servers_both_ways_and_cached() {
    let mut one = federating_myelin().await;
    let two = federating_myelin().await;
    let alice = one.register("alice", "pw").await;
    let bob = two.register("bob", "pw").await;
    let logs = || format!("--- one ---\n{}\n--- two ---\n{}", one.all_logs(), two.all_logs());
    let (origin, id) = remote_download(&one, &alice, &two, &bob, logs).await;
    remote_download(&two, &bob, &one, &alice, logs).await;

    // The other server serves its copy while the origin is down.
    let got_before = download(&two, &bob, &origin, &id).await;
    one.stop_gracefully().await;
    let cached = download(&two, &bob, &origin, &id).await;
    assert_eq!((cached.status, cached.bytes == got_before.bytes), (StatusCode::OK, true));
}

#[tokio::test]
async fn remote_media_over_the_local_upload_limit_is_refused() {
    let origin = federating_myelin().await;
    let strict = federating_myelin_with(|options| options.env("MYELIN_MEDIA__MAX_UPLOAD_BYTES", "100000")).await;
    let alice = origin.register("alice", "pw").await;
    let bob = strict.register("bob", "pw").await;
    let (server, big) = upload(&origin, &alice, &binary_payload(100_001), "application/octet-stream", None).await;
    let (_, small) = upload(&origin, &alice, &binary_payload(100_000), "application/octet-stream", None).await;
    download(&strict, &bob, &server, &big).await.assert_error(StatusCode::BAD_GATEWAY, "M_TOO_LARGE");
    assert_eq!(download(&strict, &bob, &server, &small).await.bytes, binary_payload(100_000));
    let leftovers: Vec<_> = files_under(&media_dir(&strict)).into_iter().filter(|p| p.starts_with(media_dir(&strict).join("tmp"))).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn remote_media_between_myelin_and_synapse_both_ways() {
    let myelin = federating_myelin().await;
    let synapse = federating_synapse().await;
    let alice = myelin.register("alice", "pw").await;
    let bob = synapse.register("bob", "pw").await;
    let logs = || format!("--- myelin ---\n{}\n--- synapse ---\n{}", myelin.all_logs(), synapse.logs());
    remote_download(&myelin, &alice, &synapse, &bob, logs).await;
    remote_download(&synapse, &bob, &myelin, &alice, logs).await;
}

#[tokio::test]
async fn matrix_sdk_uploads_an_image_and_another_user_downloads_it_and_a_thumbnail() {
    use matrix_sdk::media::{MediaFormat, MediaRequestParameters, MediaThumbnailSettings};
    use matrix_sdk::ruma::media::Method as ResizeMethod;
    use matrix_sdk::ruma::uint;
    use matrix_sdk::ruma::api::client::media::create_content;
    use matrix_sdk::ruma::api::client::room::create_room;
    use matrix_sdk::ruma::events::room::MediaSource;
    use matrix_sdk::ruma::events::room::message::{ImageMessageEventContent, MessageType, RoomMessageEventContent};

    use crate::real_client_rooms::{sdk_client, sync_until};

    let server = TestServer::start_default().await;
    let alice = sdk_client(&server, "alice").await;
    let bob = sdk_client(&server, "bob").await;
    // A real 1024x768 PNG, so that the server can thumbnail it.
    let picture = image::RgbImage::from_fn(1024, 768, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x ^ y) % 256) as u8]));
    let mut image = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(picture).write_to(&mut image, image::ImageFormat::Png).expect("encode a PNG");
    let image = image.into_inner();

    // Upload through the SDK's typed request, then an m.image pointing at it.
    let mut request = create_content::v3::Request::new(image.clone());
    request.content_type = Some("image/png".to_owned());
    request.filename = Some("sdk.png".to_owned());
    let uploaded = alice.send(request).await.expect("SDK upload");
    let mut create = create_room::v3::Request::new();
    create.invite = vec![bob.user_id().expect("bob's ID").to_owned()];
    let room = alice.create_room(create).await.expect("create a room");
    bob.join_room_by_id(room.room_id()).await.expect("bob joins");
    let content = ImageMessageEventContent::plain("sdk.png".to_owned(), uploaded.content_uri.clone());
    room.send(RoomMessageEventContent::new(MessageType::Image(content))).await.expect("send m.image");

    // Bob finds the image in his timeline and downloads it through the SDK.
    let room_id = room.room_id().to_owned();
    sync_until(&bob, Duration::from_secs(20), "bob's room", |client| client.get_room(&room_id).is_some()).await;
    let messages = bob.get_room(&room_id).expect("room").messages(matrix_sdk::room::MessagesOptions::backward()).await.expect("messages");
    let source = messages
        .chunk
        .iter()
        .filter_map(|event| event.raw().get_field::<Value>("content").ok().flatten())
        .find(|content| content["msgtype"] == "m.image")
        .and_then(|content| content["url"].as_str().map(ToOwned::to_owned))
        .expect("the m.image in bob's timeline");
    let parameters = MediaRequestParameters {
        source: MediaSource::Plain(source.as_str().into()),
        format: MediaFormat::File,
    };
    let downloaded = bob.media().get_media_content(&parameters, false).await.expect("SDK download");
    assert!(downloaded == image, "the SDK download differs ({} bytes vs {})", downloaded.len(), image.len());

    // And a thumbnail of it, as a timeline would show it.
    let settings = MediaThumbnailSettings::with_method(ResizeMethod::Crop, uint!(96), uint!(96));
    let parameters = MediaRequestParameters { source: MediaSource::Plain(source.as_str().into()), format: MediaFormat::Thumbnail(settings) };
    let thumbnail = bob.media().get_media_content(&parameters, false).await.expect("SDK thumbnail");
    let thumbnail = image::load_from_memory(&thumbnail).expect("the thumbnail decodes");
    assert_eq!((thumbnail.width(), thumbnail.height()), (96, 96));
}
