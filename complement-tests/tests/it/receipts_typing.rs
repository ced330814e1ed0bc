//! Read receipts, read markers and typing notifications on one server.

use std::time::{Duration, Instant};

use complement_tests::*;

use crate::room_support::*;

fn ephemeral<'a>(sync: &'a Value, room: &str, kind: &str) -> Option<&'a Value> {
    sync["rooms"]["join"][room]["ephemeral"]["events"].as_array()?.iter().find(|e| e["type"] == kind)
}

#[tokio::test]
async fn public_receipts_reach_the_room_and_private_ones_stay_with_their_owner() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = public_room(&server, &alice).await;
    join(&server, &bob, &room).await.ok();
    let first = send_text(&server, &alice, &room, "one").await;
    let second = send_text(&server, &alice, &room, "two").await;
    let since = sync(&server, &alice, "timeout=0").await["next_batch"].as_str().unwrap_or_default().to_owned();

    let path = |kind: &str, event: &str| room_path(&room, &format!("/receipt/{kind}/{}", enc(event)));
    server.post(&path("m.read", &first), &bob, &json!({})).await.ok();
    server.post(&path("m.read.private", &second), &bob, &json!({})).await.ok();

    // Alice sees Bob's public receipt, in an initial and in an incremental sync, but not the
    // private one.
    for query in ["timeout=0".to_owned(), format!("timeout=0&since={since}")] {
        let for_alice = sync(&server, &alice, &query).await;
        let receipts = ephemeral(&for_alice, &room, "m.receipt").unwrap_or_else(|| panic!("no receipts for alice ({query}): {for_alice}"));
        assert!(receipts["content"][first.as_str()]["m.read"][bob.user_id.as_str()]["ts"].is_u64(), "{receipts}");
        assert!(receipts["content"].get(second.as_str()).is_none(), "a private receipt leaked: {receipts}");
    }
    // Bob sees both of his own.
    let for_bob = sync(&server, &bob, "timeout=0").await;
    let receipts = ephemeral(&for_bob, &room, "m.receipt").unwrap_or_else(|| panic!("no receipts for bob: {for_bob}"));
    assert!(receipts["content"][second.as_str()]["m.read.private"][bob.user_id.as_str()]["ts"].is_u64(), "{receipts}");

    // A thread receipt keeps its thread; an unknown event is 404; a non-member is refused.
    server.post(&path("m.read", &second), &bob, &json!({"thread_id": "main"})).await.ok();
    let for_alice = sync(&server, &alice, "timeout=0").await;
    let receipts = ephemeral(&for_alice, &room, "m.receipt").cloned().unwrap_or_default();
    assert_eq!(receipts["content"][second.as_str()]["m.read"][bob.user_id.as_str()]["thread_id"], "main", "{receipts}");
    let unknown = server.post(&path("m.read", "$nope"), &bob, &json!({})).await;
    assert_matrix_error(&unknown, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let carol = server.register("carol", "pw").await;
    let outsider = server.post(&path("m.read", &first), &carol, &json!({})).await;
    assert_eq!(outsider.status, 403, "{:?}", outsider.body);
}

#[tokio::test]
async fn read_markers_move_fully_read_and_the_read_receipt() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let room = public_room(&server, &alice).await;
    let event = send_text(&server, &alice, &room, "hello").await;
    let resp = server.post(&room_path(&room, "/read_markers"), &alice, &json!({"m.fully_read": event, "m.read": event})).await;
    resp.ok();
    let synced = sync(&server, &alice, "timeout=0").await;
    let account_data = synced["rooms"]["join"][room.as_str()]["account_data"]["events"].as_array().cloned().unwrap_or_default();
    assert!(account_data.iter().any(|e| e["type"] == "m.fully_read" && e["content"]["event_id"] == event.as_str()), "{account_data:?}");
    let receipts = ephemeral(&synced, &room, "m.receipt").cloned().unwrap_or_default();
    assert!(receipts["content"][event.as_str()]["m.read"][alice.user_id.as_str()].is_object(), "{receipts}");
}

#[tokio::test]
async fn typing_shows_until_stopped_or_timed_out_and_wakes_a_waiting_sync() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = public_room(&server, &alice).await;
    join(&server, &bob, &room).await.ok();
    let since = sync(&server, &bob, "timeout=0").await["next_batch"].as_str().unwrap_or_default().to_owned();
    let typing_path = room_path(&room, &format!("/typing/{}", enc(&alice.user_id)));

    // Bob's long poll returns as soon as Alice starts typing.
    let started = Instant::now();
    let long_poll = format!("timeout=10000&since={since}");
    let (woken, typed) = tokio::join!(sync(&server, &bob, &long_poll), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.put(&typing_path, &alice, &json!({"typing": true, "timeout": 1500})).await
    });
    typed.ok();
    assert!(started.elapsed() < Duration::from_secs(5), "the sync was not woken");
    let typing = ephemeral(&woken, &room, "m.typing").unwrap_or_else(|| panic!("no typing: {woken}"));
    assert_eq!(typing["content"]["user_ids"], json!([alice.user_id]));

    // It times out by itself (the timeout was 1.5 s), and Bob is told.
    let since = woken["next_batch"].as_str().unwrap_or_default().to_owned();
    let later = sync(&server, &bob, &format!("timeout=10000&since={since}")).await;
    let typing = ephemeral(&later, &room, "m.typing").unwrap_or_else(|| panic!("no typing update: {later}"));
    assert_eq!(typing["content"]["user_ids"], json!([]), "{later}");

    // One cannot type for someone else, nor in a room one is not in.
    let forged = server.put(&typing_path, &bob, &json!({"typing": true, "timeout": 1000})).await;
    assert_eq!(forged.status, 403, "{:?}", forged.body);
    let carol = server.register("carol", "pw").await;
    let outsider = server.put(&room_path(&room, &format!("/typing/{}", enc(&carol.user_id))), &carol, &json!({"typing": true, "timeout": 1000})).await;
    assert_eq!(outsider.status, 403, "{:?}", outsider.body);
}

#[tokio::test]
async fn a_sender_learns_their_message_was_delivered_when_the_recipient_syncs_it() {
    let server = TestServer::start_default().await;
    let versions = server.get("/_matrix/client/versions", &NoAuth).await;
    assert_eq!(versions.ok()["unstable_features"]["org.myelin.delivery_receipts"], true);
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = public_room(&server, &alice).await;
    join(&server, &bob, &room).await.ok();
    let since = sync(&server, &alice, "timeout=0").await["next_batch"].as_str().unwrap_or_default().to_owned();
    let message = send_text(&server, &alice, &room, "did you get this?").await;

    // Not delivered until Bob's device syncs it.
    let before = sync(&server, &alice, &format!("timeout=0&since={since}")).await;
    let delivered = |sync: &Value| ephemeral(sync, &room, "m.receipt").is_some_and(|r| r["content"][message.as_str()]["org.myelin.delivered"][bob.user_id.as_str()]["ts"].is_u64());
    assert!(!delivered(&before), "delivered before bob synced: {before}");
    let since = before["next_batch"].as_str().unwrap_or_default().to_owned();
    sync(&server, &bob, "timeout=0").await;

    // Alice's waiting sync wakes with Bob's delivery receipt.
    let after = sync(&server, &alice, &format!("timeout=5000&since={since}")).await;
    assert!(delivered(&after), "no delivery receipt: {after}");
    // Alice's own messages give her no receipt of her own.
    let own = ephemeral(&after, &room, "m.receipt").cloned().unwrap_or_default();
    assert!(own["content"][message.as_str()]["org.myelin.delivered"].get(alice.user_id.as_str()).is_none(), "{own}");
}
