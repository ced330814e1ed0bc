//! Presence on one server: set and read, who may see it, sync, idleness and going offline.

use std::time::{Duration, Instant};

use complement_tests::*;

use crate::room_support::*;

fn presence_path(user_id: &str) -> String {
    format!("{C}/presence/{}/status", enc(user_id))
}

/// A server whose users turn idle after 2 s and offline 3 s after their last sync.
async fn quick_presence_server() -> TestServer {
    TestServer::start(ServerOptions::new().env("MYELIN_PRESENCE__IDLE_AFTER_SECS", "2").env("MYELIN_PRESENCE__OFFLINE_AFTER_SECS", "3")).await
}

async fn presence_of(server: &TestServer, viewer: &Session, user: &str) -> Value {
    server.get(&presence_path(user), viewer).await.ok().clone()
}

#[tokio::test]
async fn presence_is_set_read_and_synced_to_users_sharing_a_room_only() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let carol = server.register("carol", "pw").await;
    let room = public_room(&server, &alice).await;
    join(&server, &bob, &room).await.ok();
    let since = sync(&server, &bob, "timeout=0").await["next_batch"].as_str().unwrap_or_default().to_owned();

    server.put(&presence_path(&alice.user_id), &alice, &json!({"presence": "online", "status_msg": "coding"})).await.ok();
    let seen = presence_of(&server, &bob, &alice.user_id).await;
    assert_eq!(seen["presence"], "online", "{seen}");
    assert_eq!(seen["status_msg"], "coding", "{seen}");
    assert_eq!(seen["currently_active"], true, "{seen}");
    assert!(seen["last_active_ago"].as_u64().is_some_and(|ago| ago < 10_000), "{seen}");

    // Carol shares no room with Alice.
    let refused = server.get(&presence_path(&alice.user_id), &carol).await;
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    let carol_sync = sync(&server, &carol, "timeout=0").await;
    let leaked = carol_sync["presence"]["events"].as_array().into_iter().flatten().any(|e| e["sender"] == alice.user_id.as_str());
    assert!(!leaked, "carol saw alice's presence: {carol_sync}");

    // Bob's incremental sync carries Alice's change.
    let synced = sync(&server, &bob, &format!("timeout=5000&since={since}")).await;
    let event = synced["presence"]["events"].as_array().into_iter().flatten().find(|e| e["sender"] == alice.user_id.as_str()).cloned();
    let event = event.unwrap_or_else(|| panic!("no presence for alice: {synced}"));
    assert_eq!(event["type"], "m.presence");
    assert_eq!(event["content"]["status_msg"], "coding");

    // Setting someone else's presence is refused; a bad state is the client's mistake.
    let forged = server.put(&presence_path(&alice.user_id), &bob, &json!({"presence": "offline"})).await;
    assert_eq!(forged.status, 403, "{:?}", forged.body);
    let bad = server.put(&presence_path(&bob.user_id), &bob, &json!({"presence": "asleep"})).await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);
}

#[tokio::test]
async fn idle_users_become_unavailable_and_silent_ones_offline() {
    let server = quick_presence_server().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = public_room(&server, &alice).await;
    join(&server, &bob, &room).await.ok();
    sync(&server, &alice, "timeout=0&set_presence=online").await;
    assert_eq!(presence_of(&server, &bob, &alice.user_id).await["presence"], "online");

    // Alice keeps syncing but does nothing: idle after 2 s.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        sync(&server, &alice, "timeout=0").await;
        let seen = presence_of(&server, &bob, &alice.user_id).await;
        if seen["presence"] == "unavailable" {
            assert_eq!(seen["currently_active"], false, "{seen}");
            break;
        }
        assert!(Instant::now() < deadline, "alice never became unavailable: {seen}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Sending a message makes her active again.
    send_text(&server, &alice, &room, "back").await;
    assert_eq!(presence_of(&server, &bob, &alice.user_id).await["presence"], "online");

    // She stops syncing: offline after 3 s.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let seen = presence_of(&server, &bob, &alice.user_id).await;
        if seen["presence"] == "offline" {
            break;
        }
        assert!(Instant::now() < deadline, "alice never went offline: {seen}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn disabled_presence_shows_everyone_offline() {
    let server = TestServer::start(ServerOptions::new().env("MYELIN_PRESENCE__ENABLED", "false")).await;
    let alice = server.register("alice", "pw").await;
    server.put(&presence_path(&alice.user_id), &alice, &json!({"presence": "online"})).await.ok();
    assert_eq!(presence_of(&server, &alice, &alice.user_id).await["presence"], "offline");
    let synced = sync(&server, &alice, "timeout=0").await;
    assert_eq!(synced["presence"]["events"], json!([]), "{synced}");
}
