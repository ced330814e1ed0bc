//! URL previews against a real web site served by the test (axum on 127.0.0.1): OpenGraph and
//! plain-HTML fallbacks, the image stored as local media, image URLs, the cache (counted in
//! the site's hits), the body limit, and the address policy: loopback, cloud metadata and
//! IPv6 loopback refused by default, also after a redirect. Also the upload and preview rate
//! limits and the sweep of expired `/create` media IDs.
//!
//! The default configuration refuses loopback, so the positive tests allow 127.0.0.1 (only
//! that address) with `url_preview.ip_range_allowlist`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::{
    body::Body,
    extract::Request,
    response::{IntoResponse, Response},
};
use complement_tests::*;

use crate::room_support::enc;

/// What the site serves for `/image.png`: a 40 x 30 PNG.
fn image() -> &'static [u8] {
    static PNG: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    PNG.get_or_init(|| {
        let mut png = Vec::new();
        image::RgbImage::from_pixel(40, 30, image::Rgb([200, 30, 90]))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .expect("encode the test image");
        png
    })
}
/// The preview body limit the tests configure.
const BODY_LIMIT: usize = 64 * 1024;

/// A web site on 127.0.0.1 that counts the requests for each path.
struct Site {
    addr: SocketAddr,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Site {
    async fn start() -> Site {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the test site");
        let addr = listener.local_addr().expect("the site's address");
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let counted = hits.clone();
        let app = axum::Router::new().fallback(move |request: Request| {
            let counted = counted.clone();
            async move {
                let path = request.uri().path().to_owned();
                *counted.lock().expect("hits").entry(path.clone()).or_default() += 1;
                page(&path, addr)
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        Site { addr, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().expect("hits").get(path).copied().unwrap_or(0)
    }

    fn total_hits(&self) -> usize {
        self.hits.lock().expect("hits").values().sum()
    }
}

fn html(body: String) -> Response {
    ([("content-type", "text/html; charset=utf-8")], body).into_response()
}

fn redirect(location: String) -> Response {
    (StatusCode::FOUND, [("location", location)]).into_response()
}

fn page(path: &str, addr: SocketAddr) -> Response {
    match path {
        "/og" | "/counted" => html(
            "<!doctype html><html><head><title>Not this</title>\
             <meta property='og:title' content='Myelin &amp; friends'>\
             <meta property='og:description' content='A homeserver'>\
             <meta property='og:site_name' content='Test site'>\
             <meta property='og:type' content='website'>\
             <meta property='og:image' content='/image.png'>\
             <meta property='og:image:width' content='300'><meta property='og:image:height' content='200'>\
             </head><body><p>Hello</p></body></html>"
                .to_owned(),
        ),
        "/plain" => html(
            "<html><head><title> Plain   page </title><meta name='description' content='Described plainly'></head>\
             <body><img src='/pixel.gif' width='1' height='1'><img src='/image.png' width='640' height='480'></body></html>"
                .to_owned(),
        ),
        "/image.png" => ([("content-type", "image/png")], image()).into_response(),
        "/latin1" => ([("content-type", "text/html; charset=iso-8859-1")], b"<title>Caf\xe9 cr\xe8me</title>".to_vec()).into_response(),
        "/text" => ([("content-type", "text/plain")], "just text").into_response(),
        "/big" => html(format!("<title>big</title>{}", "x".repeat(4 * BODY_LIMIT))),
        "/big-chunked" => {
            // No Content-Length: the limit must stop the reading itself.
            let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(bytes_of(BODY_LIMIT / 4)));
            ([("content-type", "text/html")], Body::from_stream(futures::stream::iter(chunks))).into_response()
        }
        "/redirect-ok" => redirect("/og".to_owned()),
        "/redirect-loopback" => redirect(format!("http://127.0.0.2:{}/og", addr.port())),
        "/redirect-metadata" => redirect("http://169.254.169.254/latest/meta-data/".to_owned()),
        "/redirect-localhost" => redirect(format!("http://localhost:{}/og", addr.port())),
        "/redirect-file" => redirect("file:///etc/passwd".to_owned()),
        "/redirect-forever" => redirect("/redirect-forever".to_owned()),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn bytes_of(len: usize) -> axum::body::Bytes {
    axum::body::Bytes::from(vec![b'y'; len])
}

/// A server whose previews may reach 127.0.0.1 (the test site), with a small body limit.
fn allowing_loopback() -> ServerOptions {
    ServerOptions::new()
        .env("MYELIN_URL_PREVIEW__IP_RANGE_ALLOWLIST", "127.0.0.1/32")
        .env("MYELIN_URL_PREVIEW__MAX_BODY_BYTES", BODY_LIMIT.to_string())
}

async fn preview(server: &TestServer, who: &Session, url: &str) -> Resp {
    server.get(&format!("/_matrix/client/v1/media/preview_url?url={}", enc(url)), who).await
}

async fn download(server: &TestServer, who: &Session, mxc: &str) -> Vec<u8> {
    let path = mxc.strip_prefix("mxc://").unwrap_or_else(|| panic!("not an mxc URI: {mxc}"));
    let response = server
        .request(Method::GET, &format!("/_matrix/client/v1/media/download/{path}"), who)
        .send()
        .await
        .expect("download the preview's image");
    assert_eq!(response.status(), StatusCode::OK);
    response.bytes().await.expect("the image's bytes").to_vec()
}

#[tokio::test]
async fn opengraph_page_is_previewed_with_its_image_stored_as_media() {
    let site = Site::start().await;
    let server = TestServer::start(allowing_loopback()).await;
    let alice = server.register("alice", "password").await;

    let resp = preview(&server, &alice, &site.url("/og")).await;
    let og = resp.ok();
    assert_eq!(og["og:title"], "Myelin & friends");
    assert_eq!(og["og:description"], "A homeserver");
    assert_eq!(og["og:site_name"], "Test site");
    assert_eq!(og["og:type"], "website");
    assert_eq!(
        (og["og:image:width"].as_u64(), og["og:image:height"].as_u64()),
        (Some(40), Some(30)),
        "the image's own size, not the 300 x 200 the page declares"
    );
    assert_eq!(og["og:image:type"], "image/png");
    assert_eq!(og["matrix:image:size"].as_u64(), Some(image().len() as u64));
    let mxc = og["og:image"].as_str().expect("og:image");
    assert!(mxc.starts_with(&format!("mxc://{}/", server.server_name())), "the image is our media: {mxc}");
    assert_eq!(download(&server, &alice, mxc).await, image());
    assert_eq!(site.hits("/image.png"), 1);

    // A redirect within allowed addresses is followed, and the legacy paths answer too.
    let legacy = server.get(&format!("/_matrix/media/v3/preview_url?url={}", enc(&site.url("/redirect-ok"))), &alice).await;
    assert_eq!(legacy.ok()["og:title"], "Myelin & friends");
    let r0 = server.get(&format!("/_matrix/media/r0/preview_url?url={}&ts=0", enc(&site.url("/og"))), &alice).await;
    assert_eq!(r0.ok()["og:description"], "A homeserver");
}

#[tokio::test]
async fn plain_html_images_and_charsets_are_previewed() {
    let site = Site::start().await;
    let server = TestServer::start(allowing_loopback()).await;
    let alice = server.register("alice", "password").await;

    let resp = preview(&server, &alice, &site.url("/plain")).await;
    let og = resp.ok();
    assert_eq!(og["og:title"], "Plain page", "from <title>");
    assert_eq!(og["og:description"], "Described plainly", "from <meta name=description>");
    let mxc = og["og:image"].as_str().expect("the largest <img> as og:image");
    assert_eq!(download(&server, &alice, mxc).await, image());
    assert_eq!(site.hits("/pixel.gif"), 0, "the 1x1 pixel is passed over");

    // An image URL previews as the image itself.
    let resp = preview(&server, &alice, &site.url("/image.png")).await;
    let og = resp.ok();
    assert_eq!(og["og:image:type"], "image/png");
    assert_eq!((og["og:image:width"].as_u64(), og["og:image:height"].as_u64()), (Some(40), Some(30)));
    assert_eq!(og["matrix:image:size"].as_u64(), Some(image().len() as u64));
    assert_eq!(download(&server, &alice, og["og:image"].as_str().expect("og:image")).await, image());

    let resp = preview(&server, &alice, &site.url("/latin1")).await;
    assert_eq!(resp.ok()["og:title"], "Café crème", "decoded as the page's charset");
    let resp = preview(&server, &alice, &site.url("/text")).await;
    assert_eq!(resp.ok(), &serde_json::json!({}), "nothing to preview in plain text");
}

#[tokio::test]
async fn previews_are_cached_and_concurrent_requests_fetch_once() {
    let site = Site::start().await;
    let server = TestServer::start(allowing_loopback()).await;
    let alice = server.register("alice", "password").await;
    let bob = server.register("bob", "password").await;

    let url = site.url("/counted");
    let (a, b, c) = tokio::join!(preview(&server, &alice, &url), preview(&server, &bob, &url), preview(&server, &alice, &url));
    for resp in [&a, &b, &c] {
        assert_eq!(resp.ok()["og:title"], "Myelin & friends");
    }
    assert_eq!(site.hits("/counted"), 1, "three concurrent requests, one fetch");
    let again = preview(&server, &bob, &url).await;
    assert_eq!(again.ok(), a.ok(), "the cached answer, image included");
    assert_eq!((site.hits("/counted"), site.hits("/image.png")), (1, 1), "served from the cache");
}

#[tokio::test]
async fn oversize_bodies_are_refused() {
    let site = Site::start().await;
    let server = TestServer::start(allowing_loopback()).await;
    let alice = server.register("alice", "password").await;

    for path in ["/big", "/big-chunked"] {
        let resp = preview(&server, &alice, &site.url(path)).await;
        assert_matrix_error(&resp, StatusCode::BAD_GATEWAY, "M_TOO_LARGE");
    }
    // The server still previews afterwards.
    preview(&server, &alice, &site.url("/og")).await.ok();
}

#[tokio::test]
async fn redirects_to_denied_addresses_and_denied_hosts_are_refused() {
    let site = Site::start().await;
    let server = TestServer::start(allowing_loopback().env("MYELIN_URL_PREVIEW__HOST_DENYLIST", "denied.test,localhost")).await;
    let alice = server.register("alice", "password").await;

    // 127.0.0.2 is loopback like the allowed 127.0.0.1, but not allowed.
    for path in ["/redirect-loopback", "/redirect-metadata"] {
        let resp = preview(&server, &alice, &site.url(path)).await;
        let body = assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_UNKNOWN");
        assert!(body["error"].as_str().unwrap_or_default().contains("IP address blocked"), "{body}");
        assert_eq!(site.hits(path), 1);
    }
    assert_eq!(site.hits("/og"), 0, "the redirect target was never fetched");

    let resp = preview(&server, &alice, &site.url("/redirect-localhost")).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_UNKNOWN");
    let resp = preview(&server, &alice, &format!("http://www.denied.test:{}/og", site.addr.port())).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_UNKNOWN");
    let resp = preview(&server, &alice, &site.url("/redirect-file")).await;
    assert_matrix_error(&resp, StatusCode::BAD_GATEWAY, "M_UNKNOWN");
    let resp = preview(&server, &alice, &site.url("/redirect-forever")).await;
    assert_matrix_error(&resp, StatusCode::BAD_GATEWAY, "M_UNKNOWN");
    assert_eq!(site.hits("/redirect-forever"), 6, "the first request and 5 redirects");
    assert_eq!(site.hits("/og"), 0);
}

#[tokio::test]
async fn the_default_configuration_refuses_local_addresses() {
    let site = Site::start().await;
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "password").await;
    let port = site.addr.port();

    for url in [
        format!("http://127.0.0.1:{port}/og"),
        "http://127.0.0.1/".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[::1]/".to_owned(),
        format!("http://[::ffff:127.0.0.1]:{port}/og"),
        format!("http://0x7f.1:{port}/og"),
        "http://10.0.0.1/".to_owned(),
        "http://[fe80::1]/".to_owned(),
    ] {
        let resp = preview(&server, &alice, &url).await;
        assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_UNKNOWN");
    }
    // A name that resolves only to denied addresses fails to resolve, as in Synapse.
    let resp = preview(&server, &alice, &format!("http://localhost:{port}/og")).await;
    assert_matrix_error(&resp, StatusCode::BAD_GATEWAY, "M_UNKNOWN");
    assert_eq!(site.total_hits(), 0, "nothing reached the local site");

    for url in ["file:///etc/passwd", "ftp://example.org/", "gopher://127.0.0.1/", "not a url"] {
        let resp = preview(&server, &alice, url).await;
        assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    }
    let resp = server.get("/_matrix/client/v1/media/preview_url", &alice).await;
    assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_MISSING_PARAM");
    let resp = server.get(&format!("/_matrix/client/v1/media/preview_url?url={}", enc(&site.url("/og"))), &NoAuth).await;
    assert_matrix_error(&resp, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
}

#[tokio::test]
async fn previews_can_be_switched_off() {
    let site = Site::start().await;
    let server = TestServer::start(allowing_loopback().env("MYELIN_URL_PREVIEW__ENABLED", "false")).await;
    let alice = server.register("alice", "password").await;

    for path in ["/_matrix/client/v1/media/preview_url", "/_matrix/media/v3/preview_url"] {
        let resp = server.get(&format!("{path}?url={}", enc(&site.url("/og"))), &alice).await;
        assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_UNRECOGNIZED");
    }
    assert_eq!(site.total_hits(), 0);
    let config = server.get("/_matrix/client/v1/media/config", &alice).await;
    assert!(config.ok()["m.upload.size"].as_u64().is_some_and(|size| size > 0), "{}", config.text);
}

#[tokio::test]
async fn uploads_and_previews_are_rate_limited_per_user() {
    let site = Site::start().await;
    let server = TestServer::start(
        allowing_loopback()
            .rate_limits(true)
            .env("MYELIN_RATE_LIMITS__MEDIA_UPLOAD_PER_USER__PER_SECOND", "0.001")
            .env("MYELIN_RATE_LIMITS__MEDIA_UPLOAD_PER_USER__BURST", "3")
            .env("MYELIN_RATE_LIMITS__URL_PREVIEW_PER_USER__PER_SECOND", "0.001")
            .env("MYELIN_RATE_LIMITS__URL_PREVIEW_PER_USER__BURST", "1"),
    )
    .await;
    let alice = server.register("alice", "password").await;
    let bob = server.register("bob", "password").await;

    let upload = |who: &Session| {
        server.send(server.request(Method::POST, "/_matrix/media/v3/upload", who).header("content-type", "text/plain").body("hi"))
    };
    upload(&alice).await.ok();
    upload(&alice).await.ok();
    // `/create` counts as an upload too.
    server.post("/_matrix/media/v1/create", &alice, &serde_json::json!({})).await.ok();
    for resp in [upload(&alice).await, server.post("/_matrix/media/v1/create", &alice, &serde_json::json!({})).await] {
        let body = assert_matrix_error(&resp, StatusCode::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED");
        assert!(body["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "{body}");
    }
    upload(&bob).await.ok();

    preview(&server, &alice, &site.url("/og")).await.ok();
    let resp = preview(&server, &alice, &site.url("/og")).await;
    let body = assert_matrix_error(&resp, StatusCode::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED");
    assert!(body["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0), "{body}");
    preview(&server, &bob, &site.url("/og")).await.ok();
}

#[tokio::test]
async fn expired_pending_media_ids_are_swept() {
    let server = TestServer::start(ServerOptions::new().env("MYELIN_MEDIA__UNUSED_PENDING_UPLOAD_EXPIRY_SECS", "1")).await;
    let alice = server.register("alice", "password").await;

    let created = server.post("/_matrix/media/v1/create", &alice, &serde_json::json!({})).await;
    let mxc = created.str_field("content_uri").to_owned();
    let path = mxc.strip_prefix("mxc://").expect("an mxc URI");
    // The sweep runs every second here; wait for it to report the deletion.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !server.current_log().contains("expired pending media IDs deleted") {
        assert!(tokio::time::Instant::now() < deadline, "no sweep within 30 s:\n{}", server.current_log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Swept, the ID is unknown (an expired but unswept one says it has expired).
    let resp = server
        .send(server.request(Method::PUT, &format!("/_matrix/media/v3/upload/{path}"), &alice).header("content-type", "text/plain").body("late"))
        .await;
    let body = assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    assert_eq!(body["error"], "Unknown media", "{body}");
}
