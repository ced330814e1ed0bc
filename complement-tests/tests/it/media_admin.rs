//! The media admin API (Synapse's paths): quarantine on every download path, protection,
//! listings, deletion that keeps shared files until their last record goes, purges by age,
//! by user and of the remote cache; and `myelin-admin media …` against a live server.

use std::path::PathBuf;
use std::time::Duration;

use complement_tests::*;

use crate::admin::{admin_options, shared_secret_register};
use crate::federation_rooms::federating_myelin_with;
use crate::room_support::{create_room, enc, send_event_raw};

const ADMIN: &str = "/_synapse/admin/v1";

async fn upload(server: &impl HttpPeer, who: &Session, bytes: &[u8]) -> (String, String) {
    let resp = server.send(server.request(Method::POST, "/_matrix/media/v3/upload?filename=f.txt", who).header("content-type", "text/plain").body(bytes.to_vec())).await;
    let uri = resp.str_field("content_uri").to_owned();
    let (origin, id) = uri.trim_start_matches("mxc://").rsplit_once('/').unwrap_or_else(|| panic!("{uri}"));
    (origin.to_owned(), id.to_owned())
}

/// The status and body of a download through `path`.
async fn fetch(server: &impl HttpPeer, path: &str, who: &(impl AsToken + ?Sized)) -> (StatusCode, Vec<u8>) {
    let response = server.request(Method::GET, path, who).send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
    (response.status(), response.bytes().await.map(|b| b.to_vec()).unwrap_or_default())
}

async fn download(server: &impl HttpPeer, who: &Session, origin: &str, id: &str) -> (StatusCode, Vec<u8>) {
    fetch(server, &format!("/_matrix/client/v1/media/download/{origin}/{id}"), who).await
}

/// The content-addressed files of a server's media store (not its temporary files).
fn stored_files(server: &TestServer) -> Vec<PathBuf> {
    let root = server.database_path().join("media");
    let mut files = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path != root.join("tmp") {
                    pending.push(path);
                }
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

/// A millisecond that no upload shares: the clock has moved past it before and after.
async fn instant_between_uploads() -> u64 {
    tokio::time::sleep(Duration::from_millis(5)).await;
    let instant = now_ms();
    tokio::time::sleep(Duration::from_millis(5)).await;
    instant
}

fn admin_secret() -> String {
    admin_options().get_env("MYELIN_REGISTRATION_SHARED_SECRET").unwrap_or_default().to_owned()
}

fn deleted_ids(body: &Value) -> Vec<String> {
    let mut ids: Vec<String> = body["deleted_media"].as_array().unwrap_or_else(|| panic!("{body}")).iter().map(|id| id.as_str().unwrap_or_default().to_owned()).collect();
    ids.sort();
    assert_eq!(body["total"], ids.len(), "{body}");
    ids
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[tokio::test]
async fn media_admin_needs_an_admin_and_checks_its_parameters() {
    let server = TestServer::start(admin_options()).await;
    let root = shared_secret_register(&server, "root", "pw", true).await;
    let alice = server.register("alice", "pw").await;
    let (origin, id) = upload(&server, &alice, b"hello").await;
    let alice_id = alice.user_id.clone();

    let endpoints = [
        (Method::POST, format!("{ADMIN}/media/quarantine/{origin}/{id}")),
        (Method::POST, format!("{ADMIN}/media/unquarantine/{origin}/{id}")),
        (Method::POST, format!("{ADMIN}/user/{alice_id}/media/quarantine")),
        (Method::POST, format!("{ADMIN}/media/protect/{id}")),
        (Method::GET, format!("{ADMIN}/users/{alice_id}/media")),
        (Method::DELETE, format!("{ADMIN}/users/{alice_id}/media")),
        (Method::GET, format!("{ADMIN}/media/{origin}/{id}")),
        (Method::DELETE, format!("{ADMIN}/media/{origin}/{id}")),
        (Method::POST, format!("{ADMIN}/media/delete?before_ts={}", now_ms())),
        (Method::POST, format!("{ADMIN}/purge_media_cache?before_ts={}", now_ms())),
    ];
    for (method, path) in &endpoints {
        let resp = server.send(server.request(method.clone(), path, &alice).json(&json!({}))).await;
        assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
        let resp = server.send(server.request(method.clone(), path, &NoAuth).json(&json!({}))).await;
        assert_matrix_error(&resp, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
    }
    assert_eq!(download(&server, &alice, &origin, &id).await, (StatusCode::OK, b"hello".to_vec()), "nothing was touched");

    for path in [
        format!("{ADMIN}/media/{origin}/unknownMedia"),
        format!("{ADMIN}/media/{origin}/bad.id"),
    ] {
        assert_matrix_error(&server.get(&path, &root).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
        assert_matrix_error(&server.delete(&path, &root, &json!({})).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    }
    for path in [
        format!("{ADMIN}/media/quarantine/{origin}/unknownMedia"),
        format!("{ADMIN}/media/unquarantine/{origin}/unknownMedia"),
        format!("{ADMIN}/media/protect/unknownMedia"),
        format!("{ADMIN}/user/{}/media/quarantine", enc(&server.user_id("nobody"))),
        format!("{ADMIN}/room/{}/media/quarantine", enc(&format!("!nowhere:{origin}"))),
    ] {
        assert_matrix_error(&server.post(&path, &root, &json!({})).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    }
    assert_matrix_error(&server.get(&format!("{ADMIN}/users/{}/media", enc(&server.user_id("nobody"))), &root).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    let invalid = [
        (Method::GET, format!("{ADMIN}/media/not%20a%20server/{id}")),
        (Method::DELETE, format!("{ADMIN}/media/other.example/{id}")),
        (Method::GET, format!("{ADMIN}/users/not-a-user-id/media")),
        (Method::GET, format!("{ADMIN}/users/@someone:other.example/media")),
        (Method::GET, format!("{ADMIN}/users/{alice_id}/media?order_by=colour")),
        (Method::GET, format!("{ADMIN}/users/{alice_id}/media?dir=sideways")),
        (Method::GET, format!("{ADMIN}/users/{alice_id}/media?limit=-1")),
        (Method::GET, format!("{ADMIN}/room/not-a-room/media")),
        (Method::POST, format!("{ADMIN}/media/delete?before_ts=yesterday")),
        (Method::POST, format!("{ADMIN}/media/delete?before_ts=1700000000")),
        (Method::POST, format!("{ADMIN}/media/delete?before_ts={}&size_gt=big", now_ms())),
        (Method::POST, format!("{ADMIN}/media/delete?before_ts={}&keep_profiles=maybe", now_ms())),
        (Method::POST, format!("{ADMIN}/media/other.example/delete?before_ts={}", now_ms())),
        (Method::POST, format!("{ADMIN}/purge_media_cache?before_ts=-5")),
    ];
    for (method, path) in &invalid {
        let resp = server.send(server.request(method.clone(), path, &root).json(&json!({}))).await;
        assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    }
    for path in [format!("{ADMIN}/media/delete"), format!("{ADMIN}/purge_media_cache")] {
        assert_matrix_error(&server.post(&path, &root, &json!({})).await, StatusCode::BAD_REQUEST, "M_MISSING_PARAM");
    }
    assert_eq!(download(&server, &alice, &origin, &id).await, (StatusCode::OK, b"hello".to_vec()), "nothing was touched");
}

#[tokio::test]
async fn quarantined_media_is_refused_on_every_download_path() {
    let home = federating_myelin_with(|o| o.shared_secret(&admin_secret()).env("MYELIN_MEDIA__LEGACY_UNAUTHENTICATED_BEFORE", "2999-01-01")).await;
    let away = federating_myelin_with(|o| o.shared_secret(&admin_secret())).await;
    let root = shared_secret_register(&home, "root", "pw", true).await;
    let away_root = shared_secret_register(&away, "root", "pw", true).await;
    let alice = home.register("alice", "pw").await;
    let bob = away.register("bob", "pw").await;
    let (origin, id) = upload(&home, &alice, b"questionable").await;
    let (_, protected) = upload(&home, &alice, b"sticker").await;
    // `away` caches a copy before the quarantine.
    assert_eq!(download(&away, &bob, &origin, &id).await, (StatusCode::OK, b"questionable".to_vec()));

    let paths = [
        format!("/_matrix/client/v1/media/download/{origin}/{id}"),
        format!("/_matrix/client/v1/media/download/{origin}/{id}/name.txt"),
        format!("/_matrix/media/v3/download/{origin}/{id}"),
        format!("/_matrix/media/r0/download/{origin}/{id}/name.txt"),
    ];
    for path in &paths {
        assert_eq!(fetch(&home, path, &alice).await.0, StatusCode::OK, "{path} before the quarantine");
    }
    home.post(&format!("{ADMIN}/media/protect/{protected}"), &root, &json!({})).await.ok();
    assert_eq!(home.post(&format!("{ADMIN}/media/quarantine/{origin}/{id}"), &root, &json!({})).await.ok(), &json!({}));
    assert_eq!(home.post(&format!("{ADMIN}/user/{}/media/quarantine", alice.user_id), &root, &json!({})).await.ok()["num_quarantined"], 1, "protected media is skipped");

    for path in &paths {
        let resp = home.get(path, &alice).await;
        assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    }
    assert_eq!(download(&home, &alice, &origin, &protected).await, (StatusCode::OK, b"sticker".to_vec()));
    let info = home.get(&format!("{ADMIN}/media/{origin}/{id}"), &root).await;
    assert_eq!(info.ok()["media_info"]["quarantined_by"], json!(root.user_id));
    assert_eq!(info.ok()["media_info"]["media_length"], 12);
    let info = home.get(&format!("{ADMIN}/media/{origin}/{protected}"), &root).await;
    assert_eq!((info.ok()["media_info"]["safe_from_quarantine"].clone(), info.ok()["media_info"]["quarantined_by"].clone()), (json!(true), Value::Null));

    // Federation: a new server cannot fetch it; `away` still has its cached copy until its own
    // admin quarantines it, and a purge of its cache does not let it fetch the file again.
    let carol = away.register("carol", "pw").await;
    let (_, other) = upload(&home, &alice, b"fetched later").await;
    home.post(&format!("{ADMIN}/media/quarantine/{origin}/{other}"), &root, &json!({})).await.ok();
    assert_eq!(download(&away, &carol, &origin, &other).await.0, StatusCode::NOT_FOUND, "served over federation despite the quarantine");
    away.post(&format!("{ADMIN}/media/quarantine/{origin}/{id}"), &away_root, &json!({})).await.ok();
    assert_matrix_error(&away.get(&format!("/_matrix/client/v1/media/download/{origin}/{id}"), &bob).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let purged = away.post(&format!("{ADMIN}/purge_media_cache?before_ts={}", now_ms() + 1), &away_root, &json!({})).await;
    assert_eq!(purged.ok()["deleted"], 1, "{}", purged.text);
    assert!(stored_files(&away).is_empty(), "{:?}", stored_files(&away));
    home.post(&format!("{ADMIN}/media/unquarantine/{origin}/{id}"), &root, &json!({})).await.ok();
    assert_eq!(download(&away, &bob, &origin, &id).await.0, StatusCode::NOT_FOUND, "quarantined on away: not fetched again");
    away.post(&format!("{ADMIN}/media/unquarantine/{origin}/{id}"), &away_root, &json!({})).await.ok();
    assert_eq!(download(&away, &bob, &origin, &id).await, (StatusCode::OK, b"questionable".to_vec()), "fetched again once released");

    // Released, it is served again on every path.
    for path in &paths {
        assert_eq!(fetch(&home, path, &alice).await.0, StatusCode::OK, "{path} after the release");
    }
}

#[tokio::test]
async fn room_media_is_listed_and_quarantined() {
    let server = TestServer::start(admin_options()).await;
    let root = shared_secret_register(&server, "root", "pw", true).await;
    let alice = server.register("alice", "pw").await;
    let (origin, image) = upload(&server, &alice, b"image").await;
    let (_, thumb) = upload(&server, &alice, b"thumb").await;
    let (_, elsewhere) = upload(&server, &alice, b"in no room").await;
    let room = create_room(&server, &alice, json!({})).await;
    let remote = "mxc://remote.example/remoteMedia";
    let content = json!({
        "msgtype": "m.image", "body": "cat.png", "url": format!("mxc://{origin}/{image}"),
        "info": { "thumbnail_url": format!("mxc://{origin}/{thumb}") },
    });
    send_event_raw(&server, &alice, &room, "m.room.message", &content).await.ok();
    send_event_raw(&server, &alice, &room, "m.room.message", &json!({ "msgtype": "m.file", "body": "x", "file": { "url": remote } })).await.ok();

    let listed = server.get(&format!("{ADMIN}/room/{}/media", enc(&room)), &root).await;
    let expected_local = sorted(vec![format!("mxc://{origin}/{image}"), format!("mxc://{origin}/{thumb}")]);
    assert_eq!(listed.ok()["local"], json!(expected_local));
    assert_eq!(listed.ok()["remote"], json!([remote]));

    let quarantined = server.post(&format!("{ADMIN}/room/{}/media/quarantine", enc(&room)), &root, &json!({})).await;
    assert_eq!(quarantined.ok()["num_quarantined"], 3, "two local, one remote: {}", quarantined.text);
    assert_eq!(download(&server, &alice, &origin, &image).await.0, StatusCode::NOT_FOUND);
    assert_eq!(download(&server, &alice, &origin, &thumb).await.0, StatusCode::NOT_FOUND);
    assert_eq!(download(&server, &alice, &origin, &elsewhere).await.0, StatusCode::OK);
    let legacy = server.post(&format!("{ADMIN}/quarantine_media/{}", enc(&room)), &root, &json!({})).await;
    assert_eq!(legacy.ok()["num_quarantined"], 3);
}

#[tokio::test]
async fn deleting_shared_content_keeps_the_file_until_its_last_record_goes() {
    let server = TestServer::start(admin_options()).await;
    let root = shared_secret_register(&server, "root", "pw", true).await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let (origin, first) = upload(&server, &alice, b"the same bytes").await;
    let (_, second) = upload(&server, &bob, b"the same bytes").await;
    assert_ne!(first, second);
    assert_eq!(stored_files(&server).len(), 1, "deduplicated");

    let deleted = server.delete(&format!("{ADMIN}/media/{origin}/{first}"), &root, &json!({})).await;
    assert_eq!(deleted_ids(deleted.ok()), [first.clone()]);
    assert_eq!(download(&server, &alice, &origin, &first).await.0, StatusCode::NOT_FOUND);
    assert_eq!(download(&server, &alice, &origin, &second).await, (StatusCode::OK, b"the same bytes".to_vec()));
    assert_eq!(stored_files(&server).len(), 1, "the other record still names the file");
    assert_matrix_error(&server.delete(&format!("{ADMIN}/media/{origin}/{first}"), &root, &json!({})).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    server.delete(&format!("{ADMIN}/media/{origin}/{second}"), &root, &json!({})).await.ok();
    assert!(stored_files(&server).is_empty(), "the last record went, so did the file: {:?}", stored_files(&server));
    assert_eq!(download(&server, &bob, &origin, &second).await.0, StatusCode::NOT_FOUND);
    // The same bytes can be uploaded again.
    let (_, again) = upload(&server, &alice, b"the same bytes").await;
    assert_eq!(download(&server, &bob, &origin, &again).await, (StatusCode::OK, b"the same bytes".to_vec()));
}

#[tokio::test]
async fn media_is_listed_and_purged_by_age_size_and_user() {
    let server = TestServer::start(admin_options()).await;
    let root = shared_secret_register(&server, "root", "pw", true).await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let (origin, old_small) = upload(&server, &alice, b"old").await;
    let (_, old_big) = upload(&server, &alice, b"old and bigger").await;
    let (_, avatar) = upload(&server, &alice, b"old avatar").await;
    let (_, bob_old) = upload(&server, &bob, b"bob's old").await;
    server.put(&format!("/_matrix/client/v3/profile/{}/avatar_url", alice.user_id), &alice, &json!({ "avatar_url": format!("mxc://{origin}/{avatar}") })).await.ok();
    let between = instant_between_uploads().await;
    let (_, new) = upload(&server, &alice, b"new").await;

    // Listing: newest first by default, pages with next_token, other orders.
    let list = |query: &str| format!("{ADMIN}/users/{}/media{query}", alice.user_id);
    let page = server.get(&list("?limit=2"), &root).await;
    let body = page.ok();
    assert_eq!(body["total"], 4);
    assert_eq!(body["next_token"], 2);
    assert_eq!(body["media"][0]["media_id"], json!(new), "newest first: {body}");
    assert_eq!(body["media"][0]["media_length"], 3);
    assert_eq!(body["media"][0]["upload_name"], "f.txt");
    let rest = server.get(&list("?from=2&limit=2"), &root).await;
    assert!(rest.ok().get("next_token").is_none(), "{}", rest.text);
    let by_size = server.get(&list("?order_by=media_length&dir=b"), &root).await;
    assert_eq!(by_size.ok()["media"][0]["media_id"], json!(old_big));

    // Purge by age and size: only what is older than `between` and larger than 3 bytes; the
    // profile picture is kept unless keep_profiles=false.
    let purged = server.post(&format!("{ADMIN}/media/delete?before_ts={between}&size_gt=3"), &root, &json!({})).await;
    assert_eq!(deleted_ids(purged.ok()), sorted(vec![old_big.clone(), bob_old.clone()]));
    assert_eq!(purged.ok()["remaining"], 0);
    assert_eq!(download(&server, &alice, &origin, &old_small).await.0, StatusCode::OK);
    assert_eq!(download(&server, &alice, &origin, &avatar).await.0, StatusCode::OK);
    assert_eq!(download(&server, &alice, &origin, &old_big).await.0, StatusCode::NOT_FOUND);
    let purged = server.post(&format!("{ADMIN}/media/delete?before_ts={between}&keep_profiles=false&limit=1"), &root, &json!({})).await;
    assert_eq!((purged.ok()["total"].clone(), purged.ok()["remaining"].clone()), (json!(1), json!(1)), "batches: {}", purged.text);
    let purged = server.post(&format!("{ADMIN}/media/{origin}/delete?before_ts={between}&keep_profiles=false"), &root, &json!({})).await;
    assert_eq!((purged.ok()["total"].clone(), purged.ok()["remaining"].clone()), (json!(1), json!(0)));
    assert_eq!(download(&server, &alice, &origin, &avatar).await.0, StatusCode::NOT_FOUND);
    assert_eq!(download(&server, &alice, &origin, &new).await, (StatusCode::OK, b"new".to_vec()), "newer than before_ts");

    // By user: everything of bob's, nothing of alice's.
    let (_, bob_new) = upload(&server, &bob, b"bob's new").await;
    let (_, bob_newer) = upload(&server, &bob, b"bob's newer").await;
    let deleted = server.delete(&format!("{ADMIN}/users/{}/media", bob.user_id), &root, &json!({})).await;
    assert_eq!(deleted_ids(deleted.ok()), sorted(vec![bob_new, bob_newer]));
    assert_eq!(server.get(&format!("{ADMIN}/users/{}/media", bob.user_id), &root).await.ok()["total"], 0);
    assert_eq!(download(&server, &alice, &origin, &new).await.0, StatusCode::OK);
    assert_eq!(stored_files(&server).len(), 1, "only alice's newest file is left: {:?}", stored_files(&server));
}

/// `myelin-admin media …` with the admin's token against `server`.
async fn media_cli(server: &TestServer, token: &str, args: &[&str]) -> CmdOutput {
    let url = server.url();
    let mut all = vec!["--server", url.as_str(), "--token", token, "media"];
    all.extend_from_slice(args);
    myelin_admin(&all).await
}

fn json_of(out: &CmdOutput) -> Value {
    serde_json::from_str(out.success()).unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", out.stdout))
}

#[tokio::test]
async fn admin_cli_media_commands() {
    let server = TestServer::start(admin_options()).await;
    let root = shared_secret_register(&server, "root", "pw", true).await;
    let token = root.access_token.clone();
    let alice = server.register("alice", "pw").await;
    let (origin, first) = upload(&server, &alice, b"one").await;
    let mxc = format!("mxc://{origin}/{first}");

    let out = media_cli(&server, &token, &["list", "--user", &alice.user_id]).await;
    assert!(out.success().contains(&first), "{}", out.stdout);
    let listed = json_of(&media_cli(&server, &token, &["--json", "list", "--user", "alice"]).await);
    assert_eq!(listed[0]["media_id"], json!(first), "{listed}");

    media_cli(&server, &token, &["quarantine", &mxc]).await.success();
    assert_eq!(download(&server, &alice, &origin, &first).await.0, StatusCode::NOT_FOUND);
    media_cli(&server, &token, &["unquarantine", &mxc]).await.success();
    assert_eq!(download(&server, &alice, &origin, &first).await.0, StatusCode::OK);
    let out = media_cli(&server, &token, &["quarantine", &format!("mxc://{origin}/unknownMedia")]).await;
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    let out = media_cli(&server, &token, &["delete", "not-an-mxc"]).await;
    assert_eq!(out.code(), Some(2), "{}", out.stderr);

    let deleted = json_of(&media_cli(&server, &token, &["--json", "delete", &mxc]).await);
    assert_eq!(deleted["deleted_media"], json!([first]));
    assert_eq!(download(&server, &alice, &origin, &first).await.0, StatusCode::NOT_FOUND);

    // A purge in batches of 2 over 5 items, with the progress bar (non-tty: never on stdout).
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(upload(&server, &alice, format!("purge me {n}").as_bytes()).await.1);
    }
    let before = instant_between_uploads().await.to_string();
    let (_, kept) = upload(&server, &alice, b"after the cut").await;
    let purged = json_of(&media_cli(&server, &token, &["--json", "purge", "--before", &before, "--batch-size", "2"]).await);
    assert_eq!(purged["total"], 5, "{purged}");
    let mut got: Vec<String> = purged["deleted_media"].as_array().unwrap().iter().map(|id| id.as_str().unwrap().to_owned()).collect();
    got.sort();
    ids.sort();
    assert_eq!(got, ids);
    assert_eq!(download(&server, &alice, &origin, &kept).await.0, StatusCode::OK);

    // Human output, relative dates and the user filter.
    let out = media_cli(&server, &token, &["purge", "--before", "1d", "--user", "alice"]).await;
    assert!(out.success().contains("deleted 0 media"), "{}", out.stdout);
    let out = media_cli(&server, &token, &["purge", "--before", "yesterday-ish"]).await;
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    let out = media_cli(&server, &token, &["purge-remote", "--before", "0s"]).await;
    assert!(out.success().contains("deleted 0 cached remote media"), "{}", out.stdout);
}
