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

/// `unread_notifications` of a room in `who`'s initial sync, and its thread counts when
/// `by_thread` asks for them (MSC3773).
async fn unread(server: &TestServer, who: &Session, room: &str, by_thread: bool) -> (u64, u64, Value) {
    let filter = filter_param(&json!({ "room": { "timeline": { "unread_thread_notifications": by_thread } } }));
    let synced = sync(server, who, &format!("timeout=0&{filter}")).await;
    let room = &synced["rooms"]["join"][room];
    let counts = &room["unread_notifications"];
    let (Some(notifications), Some(highlights)) = (counts["notification_count"].as_u64(), counts["highlight_count"].as_u64()) else {
        panic!("no unread_notifications counts: {room}");
    };
    (notifications, highlights, room["unread_thread_notifications"].clone())
}

#[tokio::test]
async fn unread_counts_follow_push_rules_read_receipts_and_threads() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = public_room(&server, &alice).await;
    join(&server, &bob, &room).await.ok();
    let receipt = |event: &str| room_path(&room, &format!("/receipt/m.read/{}", enc(event)));

    // Messages notify (the default `.m.rule.room_one_to_one`); a mention also highlights; one's
    // own messages never count.
    send_text(&server, &alice, &room, "one").await;
    let second = send_text(&server, &alice, &room, "two").await;
    send_text(&server, &alice, &room, "three").await;
    let mention = json!({ "msgtype": "m.text", "body": "hey bob", "m.mentions": { "user_ids": [bob.user_id] } });
    send_event_raw(&server, &alice, &room, "m.room.message", &mention).await.ok();
    let (notifications, highlights, _) = unread(&server, &bob, &room, false).await;
    assert_eq!((notifications, highlights), (4, 1));
    assert_eq!(unread(&server, &alice, &room, false).await.0, 0);

    // A read receipt on the second message leaves the two after it.
    server.post(&receipt(&second), &bob, &json!({})).await.ok();
    let (notifications, highlights, _) = unread(&server, &bob, &room, false).await;
    assert_eq!((notifications, highlights), (2, 1));

    // A thread: its replies count under the root when the client asks for thread counts, and in
    // the room's total otherwise; a threaded receipt reads only its thread.
    let root = send_text(&server, &alice, &room, "thread root").await;
    let reply = json!({ "msgtype": "m.text", "body": "in the thread", "m.relates_to": { "rel_type": "m.thread", "event_id": root } });
    let reply_id = send_event_raw(&server, &alice, &room, "m.room.message", &reply).await.ok()["event_id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(unread(&server, &bob, &room, false).await.0, 4);
    let (main, _, threads) = unread(&server, &bob, &room, true).await;
    assert_eq!(main, 3, "{threads}");
    assert_eq!(threads[root.as_str()]["notification_count"], 1, "{threads}");
    server.post(&receipt(&reply_id), &bob, &json!({ "thread_id": root })).await.ok();
    let (main, _, threads) = unread(&server, &bob, &room, true).await;
    assert_eq!(main, 3, "{threads}");
    assert!(threads.get(root.as_str()).is_none(), "the thread was read: {threads}");
    // An unthreaded receipt on the root reads the main timeline up to it.
    server.post(&receipt(&root), &bob, &json!({})).await.ok();
    assert_eq!(unread(&server, &bob, &room, true).await.0, 0);

    // The user's own push rules decide: a room rule without actions silences the room.
    let silence = format!("{C}/pushrules/global/room/{}", enc(&room));
    server.put(&silence, &bob, &json!({ "actions": [] })).await.ok();
    send_text(&server, &alice, &room, "unheard").await;
    assert_eq!(unread(&server, &bob, &room, false).await.0, 0);
    server.delete(&silence, &bob, &json!({})).await.ok();

    // Ignored users' messages do not count; others' still do.
    server.put(&format!("{C}/user/{}/account_data/m.ignored_user_list", enc(&bob.user_id)), &bob, &json!({ "ignored_users": { alice.user_id.as_str(): {} } })).await.ok();
    send_text(&server, &alice, &room, "ignored").await;
    let carol = server.register("carol", "pw").await;
    join(&server, &carol, &room).await.ok();
    send_text(&server, &carol, &room, "hello from carol").await;
    assert_eq!(unread(&server, &bob, &room, false).await.0, 1);
}
