//! Thumbnails: every size and method for JPEG, PNG, GIF and WebP sources (made here with the
//! `image` crate, the answers decoded and measured), the cache (a second request is served from
//! the stored thumbnail, not made again), animation kept only when asked, decompression bombs
//! refused from their header, content that cannot be thumbnailed, the frozen legacy paths, and
//! remote thumbnails over federation (Myelin ↔ Myelin, Myelin ↔ Synapse).

use std::io::Cursor;

use complement_tests::*;
use image::codecs::gif::{GifDecoder, GifEncoder, Repeat};
use image::{AnimationDecoder, DynamicImage, Frame, GenericImageView, ImageFormat, RgbImage, RgbaImage};

use crate::federation_rooms::{federating_myelin, federating_synapse};
use crate::media::{Fetched, fetch, files_under, media_dir, upload};

/// The sizes every server is expected to make (Synapse's defaults): (width, height, method).
const SIZES: &[(u32, u32, &str)] = &[(32, 32, "crop"), (96, 96, "crop"), (320, 240, "scale"), (640, 480, "scale"), (800, 600, "scale")];

/// A colourful image, so that a resize or a crop changes its bytes.
fn picture(width: u32, height: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, y| image::Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, ((x + y) % 256) as u8])))
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("encode a test image");
    out.into_inner()
}

/// An animated GIF of `frames` frames, each a different colour.
fn animated_gif(width: u32, height: u32, frames: u8) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut out, 30);
        encoder.set_repeat(Repeat::Infinite).expect("loop");
        let frames = (0..frames).map(|i| {
            let colour = image::Rgba([i.wrapping_mul(80), 255 - i.wrapping_mul(80), 60, 255]);
            Frame::from_parts(RgbaImage::from_pixel(width, height, colour), 0, 0, image::Delay::from_numer_denom_ms(100, 1))
        });
        encoder.encode_frames(frames).expect("encode an animated GIF");
    }
    out
}

/// A PNG whose header declares `width` x `height` pixels, with an empty image stream: a
/// decoder that trusted the header would allocate width x height x 3 bytes.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, deflate, no filter, no interlace
    chunk(&mut png, b"IHDR", &header);
    chunk(&mut png, b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(&mut png, b"IEND", &[]);
    png
}

fn thumbnail_path(server: &str, id: &str, width: u32, height: u32, method: &str) -> String {
    format!("/_matrix/client/v1/media/thumbnail/{server}/{id}?width={width}&height={height}&method={method}")
}

/// Fetches a thumbnail and decodes it, checking the answer is a 200 of an image type.
#[track_caller]
fn decoded(got: &Fetched, context: &str) -> DynamicImage {
    assert_eq!(got.status, StatusCode::OK, "{context}: {}", String::from_utf8_lossy(&got.bytes));
    let format = ImageFormat::from_mime_type(got.header("content-type")).unwrap_or_else(|| panic!("{context}: type {}", got.header("content-type")));
    image::load_from_memory_with_format(&got.bytes, format).unwrap_or_else(|e| panic!("{context}: the thumbnail does not decode: {e}"))
}

#[tokio::test]
async fn every_size_and_method_for_jpeg_png_gif_and_webp() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let source = picture(1200, 900);
    for (format, content_type, thumbnail_type) in [
        (ImageFormat::Jpeg, "image/jpeg", "image/jpeg"),
        (ImageFormat::Png, "image/png", "image/png"),
        (ImageFormat::Gif, "image/gif", "image/png"),
        (ImageFormat::WebP, "image/webp", "image/png"),
    ] {
        let (origin, id) = upload(&server, &alice, &encode(&source, format), content_type, None).await;
        for &(width, height, method) in SIZES {
            let context = format!("{content_type} {width}x{height} {method}");
            let got = fetch(&server, &thumbnail_path(&origin, &id, width, height, method), &bob).await;
            let thumbnail = decoded(&got, &context);
            assert_eq!(got.header("content-type"), thumbnail_type, "{context}");
            assert_eq!(got.header("x-content-type-options"), "nosniff", "{context}");
            // 1200x900 is 4:3 like every scale size, so scale gives the size exactly too.
            assert_eq!((thumbnail.width(), thumbnail.height()), (width, height), "{context}");
        }
        // Sizes between ours get the next one up, never a smaller one.
        let got = fetch(&server, &thumbnail_path(&origin, &id, 50, 40, "crop"), &bob).await;
        assert_eq!(decoded(&got, "50x40 crop").width(), 96);
        let got = fetch(&server, &thumbnail_path(&origin, &id, 400, 300, "scale"), &bob).await;
        assert_eq!(decoded(&got, "400x300 scale").width(), 640);
    }

    // Scale keeps the aspect ratio, crop gives exactly the size from the middle.
    let (origin, wide) = upload(&server, &alice, &encode(&picture(2000, 500), ImageFormat::Png), "image/png", None).await;
    let got = fetch(&server, &thumbnail_path(&origin, &wide, 320, 240, "scale"), &bob).await;
    assert_eq!(decoded(&got, "wide scale").dimensions(), (320, 80));
    let got = fetch(&server, &thumbnail_path(&origin, &wide, 96, 96, "crop"), &bob).await;
    assert_eq!(decoded(&got, "wide crop").dimensions(), (96, 96));
    // Without a method: scale.
    let got = fetch(&server, &format!("/_matrix/client/v1/media/thumbnail/{origin}/{wide}?width=640&height=480"), &bob).await;
    assert_eq!(decoded(&got, "no method").dimensions(), (640, 160));
}

#[tokio::test]
async fn a_thumbnail_is_made_once_and_then_served_from_the_store() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let (origin, id) = upload(&server, &alice, &encode(&picture(1000, 750), ImageFormat::Jpeg), "image/jpeg", None).await;
    let before = files_under(&media_dir(&server));
    let first = fetch(&server, &thumbnail_path(&origin, &id, 96, 96, "crop"), &alice).await;
    assert_eq!(decoded(&first, "first").dimensions(), (96, 96));
    let after: Vec<_> = files_under(&media_dir(&server)).into_iter().filter(|f| !before.contains(f)).collect();
    assert_eq!(after.len(), 1, "one thumbnail file stored: {after:?}");
    assert_eq!(std::fs::read(&after[0]).expect("read the stored thumbnail"), first.bytes);

    // Change the stored thumbnail's bytes (keeping its length, which the record holds): an
    // answer made again would not have them, one served from the cache does.
    let mut marker = first.bytes.clone();
    let middle = marker.len() / 2;
    marker[middle..middle + 8].copy_from_slice(b"CACHED!!");
    std::fs::write(&after[0], &marker).expect("overwrite the stored thumbnail");
    let second = fetch(&server, &thumbnail_path(&origin, &id, 96, 96, "crop"), &alice).await;
    assert_eq!(second.status, StatusCode::OK);
    assert!(second.bytes == marker, "the second answer was made again instead of served from the store");
    // Another request mapping onto the same size shares the entry.
    let third = fetch(&server, &thumbnail_path(&origin, &id, 90, 60, "crop"), &alice).await;
    assert!(third.bytes == marker, "90x60 crop is answered by the stored 96x96 crop");

    // Many at once, on sizes not made yet: the bounded pool serves them all.
    let requests = (0..24).map(|i| {
        let (width, height, method) = SIZES[i % SIZES.len()];
        let path = format!("/_matrix/client/v1/media/thumbnail/{origin}/{id}?width={width}&height={height}&method={method}&animated={}", i % 2 == 0);
        let server = &server;
        let alice = &alice;
        async move { fetch(server, &path, alice).await.status }
    });
    let statuses = futures::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");
    assert_eq!(server.get("/_matrix/client/versions", &NoAuth).await.status, StatusCode::OK);
}

#[tokio::test]
async fn originals_smaller_than_the_size_are_not_enlarged() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let small = encode(&picture(20, 10), ImageFormat::Png);
    let (origin, id) = upload(&server, &alice, &small, "image/png", None).await;
    let got = fetch(&server, &thumbnail_path(&origin, &id, 320, 240, "scale"), &alice).await;
    assert_eq!((got.status, got.header("content-type")), (StatusCode::OK, "image/png"));
    assert!(got.bytes == small, "the original is served as it is");

    let (origin, narrow) = upload(&server, &alice, &encode(&picture(50, 20), ImageFormat::Jpeg), "image/jpeg", None).await;
    let got = fetch(&server, &thumbnail_path(&origin, &narrow, 32, 32, "crop"), &alice).await;
    assert_eq!(decoded(&got, "narrow crop").dimensions(), (32, 20), "cut to the overlap, not enlarged");
}

#[tokio::test]
async fn animated_gifs_stay_animated_only_when_asked() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let (origin, id) = upload(&server, &alice, &animated_gif(400, 300, 3), "image/gif", None).await;

    let animated = fetch(&server, &format!("{}&animated=true", thumbnail_path(&origin, &id, 96, 96, "crop")), &alice).await;
    assert_eq!((animated.status, animated.header("content-type")), (StatusCode::OK, "image/gif"));
    let frames = GifDecoder::new(Cursor::new(&animated.bytes)).expect("a GIF").into_frames().collect_frames().expect("frames");
    assert_eq!(frames.len(), 3, "every frame is kept");
    assert!(frames.iter().all(|f| f.buffer().dimensions() == (96, 96)));
    assert_ne!(frames[0].buffer().get_pixel(48, 48), frames[1].buffer().get_pixel(48, 48), "the frames differ");

    for query in ["&animated=false", ""] {
        let still = fetch(&server, &format!("{}{query}", thumbnail_path(&origin, &id, 96, 96, "crop")), &alice).await;
        assert_eq!(still.header("content-type"), "image/png", "{query:?}: a still thumbnail");
        assert_eq!(decoded(&still, query).dimensions(), (96, 96));
    }

    // A still image asked for animated: the still thumbnail.
    let (origin, jpeg) = upload(&server, &alice, &encode(&picture(800, 600), ImageFormat::Jpeg), "image/jpeg", None).await;
    let got = fetch(&server, &format!("{}&animated=true", thumbnail_path(&origin, &jpeg, 320, 240, "scale")), &alice).await;
    assert_eq!(got.header("content-type"), "image/jpeg");
    assert_eq!(decoded(&got, "jpeg animated=true").dimensions(), (320, 240));
}

#[tokio::test]
async fn images_over_the_pixel_limit_are_refused_before_decoding() {
    let server = TestServer::start(ServerOptions::new().env("MYELIN_MEDIA__MAX_THUMBNAIL_SOURCE_PIXELS", "1000000")).await;
    let alice = server.register("alice", "pw").await;
    // 30000 x 30000 RGB would be 2.7 GB decoded; the file is 70 bytes.
    let bomb = png_claiming(30_000, 30_000);
    assert!(bomb.len() < 100);
    let (origin, id) = upload(&server, &alice, &bomb, "image/png", None).await;
    for _ in 0..3 {
        let got = fetch(&server, &thumbnail_path(&origin, &id, 320, 240, "scale"), &alice).await;
        got.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");
    }
    // The configured limit applies to honest images too: 1001x1000 is over, 1000x1000 is not.
    let (_, over) = upload(&server, &alice, &encode(&picture(1001, 1000), ImageFormat::Png), "image/png", None).await;
    fetch(&server, &thumbnail_path(&origin, &over, 32, 32, "crop"), &alice).await.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");
    let (_, fine) = upload(&server, &alice, &encode(&picture(1000, 1000), ImageFormat::Png), "image/png", None).await;
    let got = fetch(&server, &thumbnail_path(&origin, &fine, 32, 32, "crop"), &alice).await;
    assert_eq!(decoded(&got, "at the limit").dimensions(), (32, 32));
    // The server is still healthy.
    assert_eq!(server.get("/_matrix/client/versions", &NoAuth).await.status, StatusCode::OK);
}

#[tokio::test]
async fn content_that_cannot_be_thumbnailed_and_bad_requests() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><circle r="40"/></svg>"#;
    for (bytes, content_type) in [
        (&b"plain words, not a picture"[..], "text/plain"),
        (&svg[..], "image/svg+xml"),
        (&b"\x89PNG\r\n\x1a\n but then nothing of a PNG"[..], "image/png"),
        (&b"%PDF-1.4 not really"[..], "application/pdf"),
    ] {
        let (origin, id) = upload(&server, &alice, bytes, content_type, None).await;
        // Spec v1.16: 400 when "the server cannot thumbnail the content" (Synapse: 400 M_UNKNOWN).
        fetch(&server, &thumbnail_path(&origin, &id, 96, 96, "crop"), &alice).await.assert_error(StatusCode::BAD_REQUEST, "M_UNKNOWN");
    }
    // The default pixel limit (32 megapixels) refuses a 30000 x 30000 header too.
    let (origin, bomb) = upload(&server, &alice, &png_claiming(30_000, 30_000), "image/png", None).await;
    fetch(&server, &thumbnail_path(&origin, &bomb, 96, 96, "crop"), &alice).await.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");
    let origin = server.server_name();
    fetch(&server, &thumbnail_path(origin, "doesNotExist", 96, 96, "crop"), &alice).await.assert_error(StatusCode::NOT_FOUND, "M_NOT_FOUND");
    fetch(&server, &thumbnail_path(origin, "bad.id", 96, 96, "crop"), &alice).await.assert_error(StatusCode::NOT_FOUND, "M_NOT_FOUND");

    let (origin, id) = upload(&server, &alice, &encode(&picture(100, 100), ImageFormat::Png), "image/png", None).await;
    fetch(&server, &thumbnail_path(&origin, &id, 96, 96, "zoom"), &alice).await.assert_error(StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let missing_width = fetch(&server, &format!("/_matrix/client/v1/media/thumbnail/{origin}/{id}?height=96"), &alice).await;
    assert_eq!(missing_width.status, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(&missing_width.bytes));
    let negative = fetch(&server, &format!("/_matrix/client/v1/media/thumbnail/{origin}/{id}?width=-5&height=96"), &alice).await;
    assert_eq!(negative.status, StatusCode::BAD_REQUEST);
    fetch(&server, &thumbnail_path(&origin, &id, 96, 96, "crop"), &NoAuth).await.assert_error(StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");

    // Media created but not uploaded yet: the download's answer once timeout_ms has passed.
    let created = server.post("/_matrix/media/v1/create", &alice, &json!({})).await;
    let (_, pending) = crate::media::mxc_parts(created.str_field("content_uri"));
    let path = format!("{}&timeout_ms=0", thumbnail_path(&origin, &pending, 96, 96, "crop"));
    fetch(&server, &path, &alice).await.assert_error(StatusCode::GATEWAY_TIMEOUT, "M_NOT_YET_UPLOADED");
}

#[tokio::test]
async fn legacy_thumbnails_follow_the_media_freeze() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let (origin, id) = upload(&server, &alice, &encode(&picture(400, 300), ImageFormat::Png), "image/png", None).await;
    for legacy in ["v3", "r0"] {
        let path = format!("/_matrix/media/{legacy}/thumbnail/{origin}/{id}?width=96&height=96&method=crop");
        fetch(&server, &path, &NoAuth).await.assert_error(StatusCode::NOT_FOUND, "M_NOT_FOUND");
        fetch(&server, &path, &alice).await.assert_error(StatusCode::NOT_FOUND, "M_NOT_FOUND");
    }

    let thawed = TestServer::start(ServerOptions::new().env("MYELIN_MEDIA__LEGACY_UNAUTHENTICATED_BEFORE", "2999-01-01")).await;
    let bob = thawed.register("bob", "pw").await;
    let (origin, id) = upload(&thawed, &bob, &encode(&picture(400, 300), ImageFormat::Png), "image/png", None).await;
    for legacy in ["v3", "r0"] {
        let got = fetch(&thawed, &format!("/_matrix/media/{legacy}/thumbnail/{origin}/{id}?width=96&height=96&method=crop"), &NoAuth).await;
        assert_eq!(decoded(&got, legacy).dimensions(), (96, 96));
    }
    // Never fetched from another server on the legacy paths.
    let got = fetch(&thawed, "/_matrix/media/v3/thumbnail/matrix.org/someRemoteMedia?width=96&height=96", &NoAuth).await;
    got.assert_error(StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

#[tokio::test]
async fn remote_thumbnails_between_two_myelin_servers_are_fetched_as_thumbnails_and_cached() {
    let mut one = federating_myelin().await;
    let two = federating_myelin().await;
    let alice = one.register("alice", "pw").await;
    let bob = two.register("bob", "pw").await;
    let logs = || format!("--- one ---\n{}\n--- two ---\n{}", one.all_logs(), two.all_logs());
    let (origin, id) = upload(&one, &alice, &encode(&picture(1600, 1200), ImageFormat::Jpeg), "image/jpeg", None).await;

    let got = fetch(&two, &thumbnail_path(&origin, &id, 320, 240, "scale"), &bob).await;
    assert_eq!(got.status, StatusCode::OK, "{}\n{}", String::from_utf8_lossy(&got.bytes), logs());
    assert_eq!((got.header("content-type"), decoded(&got, "remote").dimensions()), ("image/jpeg", (320, 240)));
    // Server two asked for the thumbnail, not the 1600x1200 original: one file, the thumbnail.
    let stored = files_under(&media_dir(&two)).into_iter().filter(|f| !f.starts_with(media_dir(&two).join("tmp"))).collect::<Vec<_>>();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(std::fs::read(&stored[0]).expect("the cached thumbnail"), got.bytes);

    let crop = fetch(&two, &format!("{}&animated=true", thumbnail_path(&origin, &id, 32, 32, "crop")), &bob).await;
    assert_eq!(decoded(&crop, "remote crop").dimensions(), (32, 32));
    fetch(&two, &thumbnail_path(&origin, "unknownMediaId", 32, 32, "crop"), &bob).await.assert_error(StatusCode::NOT_FOUND, "M_NOT_FOUND");

    // Served from two's cache while one is down.
    one.stop_gracefully().await;
    let cached = fetch(&two, &thumbnail_path(&origin, &id, 320, 240, "scale"), &bob).await;
    assert!(cached.status == StatusCode::OK && cached.bytes == got.bytes, "{}", String::from_utf8_lossy(&cached.bytes));
}

#[tokio::test]
async fn remote_thumbnails_between_myelin_and_synapse_both_ways() {
    let myelin = federating_myelin().await;
    let synapse = federating_synapse().await;
    let alice = myelin.register("alice", "pw").await;
    let bob = synapse.register("bob", "pw").await;
    let logs = || format!("--- myelin ---\n{}\n--- synapse ---\n{}", myelin.all_logs(), synapse.logs());

    // Synapse's user asks Synapse for a thumbnail of Myelin's media.
    let (origin, id) = upload(&myelin, &alice, &encode(&picture(1200, 900), ImageFormat::Png), "image/png", None).await;
    let got = fetch(&synapse, &thumbnail_path(&origin, &id, 96, 96, "crop"), &bob).await;
    assert_eq!(got.status, StatusCode::OK, "{}\n{}", String::from_utf8_lossy(&got.bytes), logs());
    assert_eq!(decoded(&got, "synapse of myelin").dimensions(), (96, 96));

    // Myelin's user asks Myelin for a thumbnail of Synapse's media: through Synapse's
    // federation thumbnail endpoint.
    let (origin, id) = upload(&synapse, &bob, &encode(&picture(1200, 900), ImageFormat::Jpeg), "image/jpeg", None).await;
    for &(width, height, method) in SIZES {
        let got = fetch(&myelin, &thumbnail_path(&origin, &id, width, height, method), &alice).await;
        assert_eq!(got.status, StatusCode::OK, "{width}x{height} {method}: {}\n{}", String::from_utf8_lossy(&got.bytes), logs());
        assert_eq!(decoded(&got, "myelin of synapse").dimensions(), (width, height), "{width}x{height} {method}");
    }
    let stored = files_under(&media_dir(&myelin)).into_iter().filter(|f| !f.starts_with(media_dir(&myelin).join("tmp"))).count();
    assert_eq!(stored, 1 + SIZES.len(), "alice's upload and the five thumbnails, not Synapse's original");
}

#[tokio::test]
async fn thumbnails_follow_their_media_through_quarantine_deletion_and_purge() {
    use crate::admin::{admin_options, shared_secret_register};
    use crate::federation_rooms::federating_myelin_with;

    const ADMIN: &str = "/_synapse/admin/v1";
    let secret = admin_options().get_env("MYELIN_REGISTRATION_SHARED_SECRET").unwrap_or_default().to_owned();
    let home = federating_myelin_with(|o| o.shared_secret(&secret)).await;
    let away = federating_myelin_with(|o| o.shared_secret(&secret)).await;
    let root = shared_secret_register(&home, "root", "pw", true).await;
    let away_root = shared_secret_register(&away, "root", "pw", true).await;
    let alice = home.register("alice", "pw").await;
    let bob = away.register("bob", "pw").await;
    let stored = |server: &TestServer| files_under(&media_dir(server)).into_iter().filter(|f| !f.starts_with(media_dir(server).join("tmp"))).count();
    let (origin, id) = upload(&home, &alice, &encode(&picture(1000, 750), ImageFormat::Png), "image/png", None).await;
    let path = thumbnail_path(&origin, &id, 96, 96, "crop");
    assert_eq!(decoded(&fetch(&home, &path, &alice).await, "home").dimensions(), (96, 96));
    assert_eq!(stored(&home), 2, "the original and its thumbnail");

    // Quarantined media has no thumbnails, cached or not, here or over federation.
    home.post(&format!("{ADMIN}/media/quarantine/{origin}/{id}"), &root, &json!({})).await.ok();
    fetch(&home, &path, &alice).await.assert_error(StatusCode::NOT_FOUND, "M_NOT_FOUND");
    fetch(&away, &path, &bob).await.assert_error(StatusCode::NOT_FOUND, "M_NOT_FOUND");
    home.post(&format!("{ADMIN}/media/unquarantine/{origin}/{id}"), &root, &json!({})).await.ok();
    assert_eq!(decoded(&fetch(&away, &path, &bob).await, "away").dimensions(), (96, 96));
    assert_eq!(stored(&away), 1, "away holds the thumbnail only");

    // A purge of away's remote cache takes the thumbnail too.
    let purge = format!("{ADMIN}/purge_media_cache?before_ts={}", u64::MAX / 2);
    let purged = away.post(&purge, &away_root, &json!({})).await;
    assert_eq!(purged.ok()["deleted"], 1, "{}", purged.text);
    assert_eq!(stored(&away), 0);
    // Quarantined on away: not fetched again, not even as a thumbnail.
    away.post(&format!("{ADMIN}/media/quarantine/{origin}/{id}"), &away_root, &json!({})).await.ok();
    fetch(&away, &path, &bob).await.assert_error(StatusCode::NOT_FOUND, "M_NOT_FOUND");
    assert_eq!(stored(&away), 0);

    // Deleting the media on home removes its thumbnail's file as well.
    home.delete(&format!("{ADMIN}/media/{origin}/{id}"), &root, &json!({})).await.ok();
    assert_eq!(stored(&home), 0, "{:?}", files_under(&media_dir(&home)));
    fetch(&home, &path, &alice).await.assert_error(StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

/// A media server from before authenticated thumbnails: it serves
/// `/_matrix/federation/v1/media/download/{id}` (one JPEG, whatever the ID) and answers
/// everything else 404 `M_UNRECOGNIZED`. Returns its server name and the paths it was asked for.
async fn download_only_media_server(jpeg: Vec<u8>) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    use axum::http::Uri;
    use axum::response::IntoResponse;

    use crate::federation_forged::{TlsListener, self_signed_tls};

    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let name = format!("127.0.0.1:{}", tcp.local_addr().expect("address").port());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = seen.clone();
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let (jpeg, seen) = (jpeg.clone(), recorded.clone());
        async move {
            seen.lock().expect("lock").push(uri.path().to_owned());
            if !uri.path().starts_with("/_matrix/federation/v1/media/download/") {
                let body = json!({"errcode": "M_UNRECOGNIZED", "error": "not served here"});
                return (axum::http::StatusCode::NOT_FOUND, axum::Json(body)).into_response();
            }
            let mut body = b"--b0undary\r\nContent-Type: application/json\r\n\r\n{}\r\n--b0undary\r\nContent-Type: image/jpeg\r\n\r\n".to_vec();
            body.extend_from_slice(&jpeg);
            body.extend_from_slice(b"\r\n--b0undary--\r\n");
            ([(axum::http::header::CONTENT_TYPE, "multipart/mixed; boundary=b0undary")], body).into_response()
        }
    });
    let listener = TlsListener { tcp, tls: tokio_rustls::TlsAcceptor::from(self_signed_tls()) };
    let serving = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (name, seen, serving)
}

#[tokio::test]
async fn a_remote_server_without_the_thumbnail_endpoint_gets_its_original_thumbnailed_here() {
    let myelin = federating_myelin().await;
    let alice = myelin.register("alice", "pw").await;
    let (remote, seen, serving) = download_only_media_server(encode(&picture(1200, 900), ImageFormat::Jpeg)).await;

    let got = fetch(&myelin, &thumbnail_path(&remote, "oldServerMedia", 320, 240, "scale"), &alice).await;
    assert_eq!(got.status, StatusCode::OK, "{}\n{:?}\n{}", String::from_utf8_lossy(&got.bytes), seen.lock().map(|s| s.clone()), myelin.all_logs());
    assert_eq!((got.header("content-type"), decoded(&got, "fallback").dimensions()), ("image/jpeg", (320, 240)));
    let asked = seen.lock().expect("lock").clone();
    assert_eq!(
        asked,
        ["/_matrix/federation/v1/media/thumbnail/oldServerMedia", "/_matrix/federation/v1/media/download/oldServerMedia"],
        "the thumbnail first, then the original"
    );
    let stored = files_under(&media_dir(&myelin)).into_iter().filter(|f| !f.starts_with(media_dir(&myelin).join("tmp"))).count();
    assert_eq!(stored, 2, "the original and the thumbnail made of it");

    // Both are cached: another size is made here without asking the remote server again.
    let crop = fetch(&myelin, &thumbnail_path(&remote, "oldServerMedia", 32, 32, "crop"), &alice).await;
    assert_eq!(decoded(&crop, "fallback crop").dimensions(), (32, 32));
    assert_eq!(seen.lock().expect("lock").len(), 2, "the remote server was not asked again");
    serving.abort();
    let again = fetch(&myelin, &thumbnail_path(&remote, "oldServerMedia", 320, 240, "scale"), &alice).await;
    assert!(again.status == StatusCode::OK && again.bytes == got.bytes);
}
