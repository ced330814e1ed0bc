//! Rooms shared across servers over real federation (TLS on loopback): Myelin ↔ Myelin and
//! Myelin ↔ Synapse, with the room created on either side, for room versions 10, 11 and 12.

use std::time::{Duration, Instant};

use complement_tests::{
    HttpPeer, ServerOptions, Session, TestServer, free_port,
    synapse::{SynapseOptions, SynapseServer},
};
use serde_json::json;

use crate::room_support::{enc, txn_id};

const C: &str = "/_matrix/client/v3";

/// A Myelin whose server name is its own TLS federation address, so peers reach it directly.
pub async fn federating_myelin() -> TestServer {
    let port = free_port();
    TestServer::start(
        ServerOptions::new()
            .server_name(&format!("127.0.0.1:{port}"))
            .env("MYELIN_FEDERATION__LISTEN", format!("127.0.0.1:{port}"))
            .env("MYELIN_FEDERATION__GENERATE_SELF_SIGNED_CERTIFICATE", "true")
            .env("MYELIN_FEDERATION__VERIFY_TLS", "false")
            .env("MYELIN_FEDERATION__ALLOW_PRIVATE_ADDRESSES", "true")
            .env("MYELIN_FEDERATION__RETRY_INITIAL_MS", "200")
            .env("MYELIN_FEDERATION__RETRY_MAX_MS", "2000"),
    )
    .await
}

/// A Synapse federating over TLS at `127.0.0.1:<port>`, retrying failed destinations quickly.
pub async fn federating_synapse() -> SynapseServer {
    let port = free_port();
    SynapseServer::start(SynapseOptions::new().server_name(&format!("127.0.0.1:{port}")).federation_port(port)).await
}

/// Polls `check` every 200 ms for up to 30 s; panics with `what` (and `context()`) if it
/// never returns `Some`.
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>, context: impl Fn() -> String) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}\n{}", context());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The bodies of the room's latest messages as `who` sees them on `server`.
async fn message_bodies(server: &impl HttpPeer, who: &Session, room: &str) -> Vec<String> {
    let resp = server.get(&format!("{C}/rooms/{}/messages?dir=b&limit=100", enc(room)), who).await;
    if resp.status != 200 {
        return Vec::new();
    }
    resp.body["chunk"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == "m.room.message")
        .filter_map(|e| e["content"]["body"].as_str().map(ToOwned::to_owned))
        .collect()
}

async fn send_text(server: &impl HttpPeer, who: &Session, room: &str, body: &str) -> String {
    let resp = server
        .put(&format!("{C}/rooms/{}/send/m.room.message/{}", enc(room), txn_id()), who, &json!({"msgtype": "m.text", "body": body}))
        .await;
    assert_eq!(resp.status, 200, "send failed: {:?}", resp.body);
    resp.body["event_id"].as_str().unwrap_or_default().to_owned()
}

async fn membership_of(server: &impl HttpPeer, who: &Session, room: &str, user: &str) -> Option<String> {
    let resp = server.get(&format!("{C}/rooms/{}/state/m.room.member/{}", enc(room), enc(user)), who).await;
    (resp.status == 200).then(|| resp.body["membership"].as_str().unwrap_or_default().to_owned())
}

/// Whether `who` has a pending invite to `room` in an initial sync. Each call uses another
/// inline filter: Synapse answers a repeated identical initial sync from a cache.
async fn has_invite(server: &impl HttpPeer, who: &Session, room: &str) -> bool {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let limit = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let filter = enc(&json!({"room": {"timeline": {"limit": limit}}}).to_string());
    let resp = server.get(&format!("{C}/sync?timeout=0&filter={filter}"), who).await;
    resp.status == 200 && resp.body["rooms"]["invite"].get(room).is_some()
}

/// The whole scenario of one room: `creator` on `home` makes it, invites `guest` of `away`,
/// who joins; messages go both ways and each side sees the other's.
async fn chat_across(home: &impl HttpPeer, creator: &Session, away: &impl HttpPeer, guest: &Session, version: &str, logs: impl Fn() -> String) {
    let created = home.post(&format!("{C}/createRoom"), creator, &json!({"room_version": version, "preset": "private_chat"})).await;
    assert_eq!(created.status, 200, "createRoom: {:?}", created.body);
    let room = created.body["room_id"].as_str().unwrap_or_default().to_owned();

    let invited = home.post(&format!("{C}/rooms/{}/invite", enc(&room)), creator, &json!({"user_id": guest.user_id})).await;
    assert_eq!(invited.status, 200, "invite over federation: {:?}\n{}", invited.body, logs());
    eventually("the invite to reach the guest's server", async || has_invite(away, guest, &room).await.then_some(()), &logs).await;

    let home_name = creator.user_id.split_once(':').map(|(_, server)| server.to_owned()).unwrap_or_default();
    let joined = away.post(&format!("{C}/join/{}?server_name={}&via={}", enc(&room), enc(&home_name), enc(&home_name)), guest, &json!({})).await;
    assert_eq!(joined.status, 200, "join over federation: {:?}\n{}", joined.body, logs());
    eventually(
        "the join to reach the room's server",
        async || (membership_of(home, creator, &room, &guest.user_id).await.as_deref() == Some("join")).then_some(()),
        &logs,
    )
    .await;

    send_text(home, creator, &room, &format!("hello from the creator in v{version}")).await;
    let wanted = format!("hello from the creator in v{version}");
    eventually("the creator's message on the guest's server", async || message_bodies(away, guest, &room).await.contains(&wanted).then_some(()), &logs).await;

    send_text(away, guest, &room, &format!("hello back in v{version}")).await;
    let wanted = format!("hello back in v{version}");
    eventually("the guest's message on the room's server", async || message_bodies(home, creator, &room).await.contains(&wanted).then_some(()), &logs).await;
}

#[tokio::test]
async fn myelin_users_chat_across_two_myelin_servers_in_rooms_of_versions_10_to_12() {
    let home = federating_myelin().await;
    let away = federating_myelin().await;
    let alice = home.register("alice", "pw").await;
    let bob = away.register("bob", "pw").await;
    let logs = || format!("--- home ---\n{}\n--- away ---\n{}", home.all_logs(), away.all_logs());
    for version in ["10", "11", "12"] {
        chat_across(&home, &alice, &away, &bob, version, logs).await;
    }
}

#[tokio::test]
async fn a_synapse_user_joins_a_room_created_on_myelin() {
    let myelin = federating_myelin().await;
    let synapse = federating_synapse().await;
    let alice = myelin.register("alice", "pw").await;
    let bob = synapse.register("bob", "pw").await;
    let logs = || format!("--- myelin ---\n{}\n--- synapse ---\n{}", myelin.all_logs(), synapse.logs());
    for version in ["10", "11", "12"] {
        chat_across(&myelin, &alice, &synapse, &bob, version, logs).await;
    }
}

#[tokio::test]
async fn a_myelin_user_joins_a_room_created_on_synapse() {
    let myelin = federating_myelin().await;
    let synapse = federating_synapse().await;
    let alice = synapse.register("alice", "pw").await;
    let bob = myelin.register("bob", "pw").await;
    let logs = || format!("--- myelin ---\n{}\n--- synapse ---\n{}", myelin.all_logs(), synapse.logs());
    for version in ["10", "11", "12"] {
        chat_across(&synapse, &alice, &myelin, &bob, version, logs).await;
    }
}
