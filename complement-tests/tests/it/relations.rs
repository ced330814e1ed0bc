//! Relations and threads (spec v1.16): edits (`m.replace`) validated and bundled wherever
//! events are served, reactions (`m.annotation`) indexed but not bundled, references,
//! replies passing through, thread summaries and `/threads`, `/relations` with its filters,
//! pagination and recursion, and what redaction does to all of them.

use std::fmt::Write as _;

use complement_tests::*;

use crate::room_support::*;

/// Prefix of the v1 client-server endpoints (`/relations`, `/threads`).
const V1: &str = "/_matrix/client/v1";

/// Sends an event of any type; panics unless it succeeds. Returns its ID.
async fn send(server: &TestServer, who: &Session, room: &str, event_type: &str, content: Value) -> String {
    let resp = send_event_raw(server, who, room, event_type, &content).await;
    resp.ok();
    resp.str_field("event_id").to_owned()
}

/// An edit of `original` replacing its text with `body`.
fn edit_content(original: &str, body: &str) -> Value {
    json!({
        "msgtype": "m.text",
        "body": format!("* {body}"),
        "m.new_content": {"msgtype": "m.text", "body": body},
        "m.relates_to": {"rel_type": "m.replace", "event_id": original},
    })
}

/// A text message in the thread rooted at `root`.
fn thread_content(root: &str, body: &str) -> Value {
    json!({
        "msgtype": "m.text",
        "body": body,
        "m.relates_to": {"rel_type": "m.thread", "event_id": root, "is_falling_back": true, "m.in_reply_to": {"event_id": root}},
    })
}

fn reaction_content(target: &str, key: &str) -> Value {
    json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}})
}

/// `GET /rooms/{room}/event/{id}`; panics unless it succeeds.
async fn event(server: &TestServer, who: &Session, room: &str, id: &str) -> Value {
    server.get(&room_path(room, &format!("/event/{}", enc(id))), who).await.ok().clone()
}

/// `PUT /rooms/{room}/redact/{id}/{txn}`; panics unless it succeeds.
async fn redact(server: &TestServer, who: &Session, room: &str, id: &str) {
    let path = room_path(room, &format!("/redact/{}/{}", enc(id), txn_id()));
    server.put(&path, who, &json!({"reason": "test"})).await.ok();
}

/// `GET /_matrix/client/v1/rooms/{room}/relations/{id}{rest}` where `rest` is an optional
/// `/{relType}[/{eventType}]` followed by an optional `?query`.
async fn relations(server: &TestServer, who: &Session, room: &str, id: &str, rest: &str) -> Resp {
    server.get(&format!("{V1}/rooms/{}/relations/{}{rest}", enc(room), enc(id)), who).await
}

/// `GET /_matrix/client/v1/rooms/{room}/threads?{query}`.
async fn threads(server: &TestServer, who: &Session, room: &str, query: &str) -> Resp {
    server.get(&format!("{V1}/rooms/{}/threads?{query}", enc(room)), who).await
}

/// `unsigned.m.relations` of an event (`Value::Null` when absent).
fn bundled(event: &Value) -> &Value {
    &event["unsigned"]["m.relations"]
}

/// The ID of the bundled edit of an event, if any.
fn bundled_edit(event: &Value) -> Option<&str> {
    bundled(event)["m.replace"]["event_id"].as_str()
}

/// Pages through `/relations` with `limit` per page until no `next_batch`; every ID in order.
async fn all_relations(server: &TestServer, who: &Session, room: &str, id: &str, rest: &str, query: &str, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut from: Option<String> = None;
    for _ in 0..50 {
        let mut q = format!("?limit={limit}&{query}");
        if let Some(from) = &from {
            let _ = write!(q, "&from={}", enc(from));
        }
        let resp = relations(server, who, room, id, &format!("{rest}{q}")).await;
        let body = resp.ok();
        let chunk = events_of(&body["chunk"]);
        assert!(chunk.len() <= limit, "{}", resp.text);
        out.extend(ids(chunk));
        match body["next_batch"].as_str() {
            Some(next) => from = Some(next.to_owned()),
            None => return out,
        }
    }
    panic!("/relations never stopped paginating");
}

/// The event in a sync response's timeline of `room` with ID `id`.
fn in_timeline<'a>(sync: &'a Value, room: &str, id: &str) -> Option<&'a Value> {
    events_of(&joined(sync, room)["timeline"]).iter().find(|e| e["event_id"] == id)
}

#[tokio::test]
async fn edits_are_validated_and_the_latest_is_bundled_everywhere() {
    let server = TestServer::start_default().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;
    let room = public_room(&server, &alice).await;
    join(&server, &bob, &room).await.ok();
    let original = send_text(&server, &alice, &room, "I like cake").await;

    // Invalid edits are stored but never bundled: another sender, another type, no
    // m.new_content, an edit of an edit.
    let by_bob = send(&server, &bob, &room, "m.room.message", edit_content(&original, "bob was here")).await;
    let other_type = send(&server, &alice, &room, "m.sticker", edit_content(&original, "sticker")).await;
    let mut no_new_content = edit_content(&original, "no new content");
    no_new_content.as_object_mut().map(|c| c.remove("m.new_content"));
    let no_new_content = send(&server, &alice, &room, "m.room.message", no_new_content).await;
    for id in [&by_bob, &other_type, &no_new_content] {
        assert_eq!(event(&server, &bob, &room, id).await["content"]["m.relates_to"]["rel_type"], "m.replace", "stored as sent");
    }
    let fetched = event(&server, &bob, &room, &original).await;
    assert!(bundled(&fetched).is_null(), "invalid edits must not be bundled: {fetched}");

    // Two valid edits: the most recent (origin_server_ts, then the larger event ID) wins.
    let first = send(&server, &alice, &room, "m.room.message", edit_content(&original, "I like chocolate cake")).await;
    let second = send(&server, &alice, &room, "m.room.message", edit_content(&original, "I love chocolate cake")).await;
    let key = |e: &Value| (e["origin_server_ts"].as_u64().unwrap_or_default(), e["event_id"].as_str().unwrap_or_default().to_owned());
    let (first_event, second_event) = (event(&server, &bob, &room, &first).await, event(&server, &bob, &room, &second).await);
    let latest = if key(&second_event) > key(&first_event) { second.clone() } else { first.clone() };
    // An edit of an edit is ignored, and an edit carries no aggregations of its own.
    let edit_of_edit = send(&server, &alice, &room, "m.room.message", edit_content(&latest, "nested")).await;
    assert!(bundled(&event(&server, &bob, &room, &latest).await).is_null(), "an edit has no aggregations");

    let fetched = event(&server, &bob, &room, &original).await;
    assert_eq!(bundled_edit(&fetched), Some(latest.as_str()), "/event bundles the latest valid edit: {fetched}");
    let replace = &bundled(&fetched)["m.replace"];
    assert_eq!(replace["sender"], alice.user_id, "the full edit event is bundled: {replace}");
    assert_eq!(replace["type"], "m.room.message");
    assert!(replace["content"]["m.new_content"]["body"].is_string(), "{replace}");
    assert_eq!(fetched["content"]["body"], "I like cake", "the server never replaces the content");
    assert_ne!(bundled_edit(&fetched), Some(edit_of_edit.as_str()));

    // /messages, /context and sync bundle it too.
    let page = messages(&server, &bob, &room, "dir=b&limit=50").await;
    let listed = events_of(&page.ok()["chunk"]).iter().find(|e| e["event_id"] == original).cloned().expect("original in /messages");
    assert_eq!(bundled_edit(&listed), Some(latest.as_str()), "/messages: {listed}");
    let context = server.get(&room_path(&room, &format!("/context/{}?limit=4", enc(&original))), &bob).await;
    assert_eq!(bundled_edit(&context.ok()["event"]), Some(latest.as_str()), "/context: {}", context.text);
    let body = sync(&server, &bob, &filter_param(&json!({"room": {"timeline": {"limit": 50}}}))).await;
    let synced = in_timeline(&body, &room, &original).expect("original in the sync timeline");
    assert_eq!(bundled_edit(synced), Some(latest.as_str()), "sync: {synced}");

    // Redacting the latest edit reverts to the one before.
    redact(&server, &alice, &room, &latest).await;
    let earlier = if latest == first { &second } else { &first };
    assert_eq!(bundled_edit(&event(&server, &bob, &room, &original).await), Some(earlier.as_str()), "a redacted edit no longer counts");
    // Redacting the original: no edit is bundled any more, but its relations stay listable.
    redact(&server, &alice, &room, &original).await;
    let fetched = event(&server, &bob, &room, &original).await;
    assert!(bundled_edit(&fetched).is_none(), "no edit is bundled with a redacted original: {fetched}");
    let listed = all_relations(&server, &bob, &room, &original, "/m.replace", "", 10).await;
    assert!(listed.contains(earlier) && listed.contains(&by_bob), "relations of a redacted parent remain listable: {listed:?}");
    assert!(!listed.contains(&latest), "the redacted edit is gone from /relations");
}

#[tokio::test]
async fn encrypted_edits_need_no_cleartext_new_content() {
    let server = TestServer::start_default().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;
    let room = public_room(&server, &alice).await;
    join(&server, &bob, &room).await.ok();
    let megolm = |extra: Value| {
        let mut content = json!({"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgA", "sender_key": "k", "device_id": "D", "session_id": "s"});
        if let (Some(content), Some(extra)) = (content.as_object_mut(), extra.as_object()) {
            content.extend(extra.clone());
        }
        content
    };
    let original = send(&server, &alice, &room, "m.room.encrypted", megolm(json!({}))).await;
    let edit = send(&server, &alice, &room, "m.room.encrypted", megolm(json!({"m.relates_to": {"rel_type": "m.replace", "event_id": original}}))).await;
    // Bob's encrypted "edit" has the wrong sender; it stays unbundled.
    send(&server, &bob, &room, "m.room.encrypted", megolm(json!({"m.relates_to": {"rel_type": "m.replace", "event_id": original}}))).await;
    let fetched = event(&server, &bob, &room, &original).await;
    assert_eq!(bundled_edit(&fetched), Some(edit.as_str()), "{fetched}");
    let listed = all_relations(&server, &bob, &room, &original, "/m.replace/m.room.encrypted", "", 5).await;
    assert_eq!(listed.len(), 2, "both encrypted edits are listed by type: {listed:?}");
}

#[tokio::test]
async fn reactions_references_and_replies() {
    let server = TestServer::start_default().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;
    let room = public_room(&server, &alice).await;
    join(&server, &bob, &room).await.ok();
    let message = send_text(&server, &alice, &room, "react to me").await;

    let thumbs = send(&server, &bob, &room, "m.reaction", reaction_content(&message, "👍")).await;
    // The same reaction twice is refused; another key, or another user, is fine.
    let again = send_event_raw(&server, &bob, &room, "m.reaction", &reaction_content(&message, "👍")).await;
    assert_matrix_error(&again, StatusCode::BAD_REQUEST, "M_DUPLICATE_ANNOTATION");
    send(&server, &bob, &room, "m.reaction", reaction_content(&message, "🎉")).await;
    send(&server, &alice, &room, "m.reaction", reaction_content(&message, "👍")).await;
    let keyless = send_event_raw(&server, &bob, &room, "m.reaction", &json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": message}})).await;
    assert_eq!(keyless.status, StatusCode::BAD_REQUEST, "an annotation needs a key: {}", keyless.text);

    // Annotations are not bundled (spec v1.7+), but /relations lists them.
    let fetched = event(&server, &bob, &room, &message).await;
    assert!(bundled(&fetched).is_null(), "annotations are not aggregated: {fetched}");
    let listed = all_relations(&server, &bob, &room, &message, "/m.annotation/m.reaction", "", 2).await;
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert_eq!(listed[2], thumbs, "most recent first");
    // A redacted reaction leaves, and may be sent again.
    redact(&server, &bob, &room, &thumbs).await;
    assert_eq!(all_relations(&server, &bob, &room, &message, "/m.annotation", "", 5).await.len(), 2);
    send(&server, &bob, &room, "m.reaction", reaction_content(&message, "👍")).await;

    // References are bundled as a chunk of event IDs.
    let reference = send(&server, &bob, &room, "m.room.message", json!({"msgtype": "m.text", "body": "see above", "m.relates_to": {"rel_type": "m.reference", "event_id": message}})).await;
    let fetched = event(&server, &bob, &room, &message).await;
    assert_eq!(bundled(&fetched)["m.reference"], json!({"chunk": [{"event_id": reference}]}), "{fetched}");

    // Replies pass through untouched, and are no relation for the server.
    let reply_content = json!({"msgtype": "m.text", "body": "> quoted\n\nreply", "m.relates_to": {"m.in_reply_to": {"event_id": message}}});
    let reply = send(&server, &bob, &room, "m.room.message", reply_content.clone()).await;
    assert_eq!(event(&server, &alice, &room, &reply).await["content"], reply_content);
    assert!(!all_relations(&server, &bob, &room, &message, "", "", 10).await.contains(&reply));

    // Relations must name an event of this room that we know.
    let unknown = send_event_raw(&server, &bob, &room, "m.reaction", &reaction_content("$nope:localhost", "👍")).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{}", unknown.text);
    let other_room = public_room(&server, &bob).await;
    let elsewhere = send_event_raw(&server, &bob, &other_room, "m.reaction", &reaction_content(&message, "👍")).await;
    assert_eq!(elsewhere.status, StatusCode::BAD_REQUEST, "{}", elsewhere.text);
}

#[tokio::test]
async fn thread_summaries_and_the_threads_list() {
    let server = TestServer::start_default().await;
    let [alice, bob, carol] = users(&server, ["alice", "bob", "carol"]).await;
    let room = public_room(&server, &alice).await;
    join(&server, &bob, &room).await.ok();
    join(&server, &carol, &room).await.ok();

    let root_a = send_text(&server, &alice, &room, "thread A").await;
    let root_b = send_text(&server, &bob, &room, "thread B").await;
    let root_c = send_text(&server, &alice, &room, "thread C").await;
    let a1 = send(&server, &bob, &room, "m.room.message", thread_content(&root_a, "a1")).await;
    let b1 = send(&server, &carol, &room, "m.room.message", thread_content(&root_b, "b1")).await;
    let c1 = send(&server, &alice, &room, "m.room.message", thread_content(&root_c, "c1")).await;
    let a2 = send(&server, &alice, &room, "m.room.message", thread_content(&root_a, "a2")).await;
    // The latest thread event's own edit is bundled inside the summary.
    let a2_edit = send(&server, &alice, &room, "m.room.message", edit_content(&a2, "a2 edited")).await;

    let fetched = event(&server, &bob, &room, &root_a).await;
    let summary = &bundled(&fetched)["m.thread"];
    assert_eq!(summary["count"], 2, "{fetched}");
    assert_eq!(summary["latest_event"]["event_id"], a2, "{summary}");
    assert_eq!(bundled_edit(&summary["latest_event"]), Some(a2_edit.as_str()), "{summary}");
    assert_eq!(summary["current_user_participated"], true, "bob replied");
    let for_carol = event(&server, &carol, &room, &root_a).await;
    assert_eq!(bundled(&for_carol)["m.thread"]["current_user_participated"], false, "carol did not take part");
    assert_eq!(bundled(&event(&server, &carol, &room, &root_c).await)["m.thread"]["current_user_participated"], false);
    assert_eq!(bundled(&event(&server, &alice, &room, &root_c).await)["m.thread"]["current_user_participated"], true, "the root's sender took part");
    // Thread events themselves carry no thread summary.
    assert!(bundled(&event(&server, &bob, &room, &a1).await)["m.thread"].is_null());

    // Summaries in /messages and sync as well.
    let page = messages(&server, &carol, &room, "dir=b&limit=50").await;
    let listed = events_of(&page.ok()["chunk"]).iter().find(|e| e["event_id"] == root_b).cloned().expect("root in /messages");
    assert_eq!(bundled(&listed)["m.thread"]["current_user_participated"], true, "{listed}");
    let body = sync(&server, &carol, &filter_param(&json!({"room": {"timeline": {"limit": 50}}}))).await;
    let synced = in_timeline(&body, &room, &root_b).expect("root in sync");
    assert_eq!(bundled(synced)["m.thread"]["latest_event"]["event_id"], b1, "{synced}");

    // /threads: most recently active first (A, C, B), paginated.
    let mut seen = Vec::new();
    let mut from: Option<String> = None;
    for _ in 0..5 {
        let query = match &from {
            Some(from) => format!("limit=1&from={}", enc(from)),
            None => "limit=1".to_owned(),
        };
        let resp = threads(&server, &bob, &room, &query).await;
        let body = resp.ok();
        let chunk = events_of(&body["chunk"]);
        assert!(chunk.len() <= 1, "{}", resp.text);
        for root in chunk {
            assert!(bundled(root)["m.thread"]["count"].is_u64(), "thread roots carry their summary: {root}");
        }
        seen.extend(ids(chunk));
        match body["next_batch"].as_str() {
            Some(next) => from = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, vec![root_a.clone(), root_c.clone(), root_b.clone()]);
    // New activity moves a thread to the front.
    send(&server, &carol, &room, "m.room.message", thread_content(&root_c, "c2")).await;
    assert_eq!(ids(events_of(&threads(&server, &bob, &room, "").await.ok()["chunk"])), vec![root_c.clone(), root_a.clone(), root_b.clone()]);
    // include=participated: carol replied in B and C only.
    let resp = threads(&server, &carol, &room, "include=participated").await;
    assert_eq!(ids(events_of(&resp.ok()["chunk"])), vec![root_c.clone(), root_b.clone()]);
    let resp = threads(&server, &bob, &room, "include=participated&limit=10").await;
    assert_eq!(ids(events_of(&resp.ok()["chunk"])), vec![root_a.clone(), root_b.clone()], "bob sent B and replied in A");

    // Redacting thread replies: the count drops, the latest falls back, and a thread
    // without replies leaves the list.
    redact(&server, &alice, &room, &a2).await;
    let summary = bundled(&event(&server, &bob, &room, &root_a).await)["m.thread"].clone();
    assert_eq!((summary["count"].clone(), summary["latest_event"]["event_id"].clone()), (json!(1), json!(a1)), "{summary}");
    redact(&server, &carol, &room, &b1).await;
    assert!(bundled(&event(&server, &bob, &room, &root_b).await)["m.thread"].is_null());
    let listed = ids(events_of(&threads(&server, &bob, &room, "limit=10").await.ok()["chunk"]));
    assert_eq!(listed, vec![root_c.clone(), root_a.clone()]);
    let _ = c1;

    // A thread cannot start from an event that is itself a relation.
    let resp = send_event_raw(&server, &bob, &room, "m.room.message", &thread_content(&a1, "nested")).await;
    assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_UNKNOWN");

    // Errors: a bad token, limit 0, a non-member of a private room.
    assert_matrix_error(&threads(&server, &bob, &room, "from=garbage").await, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    assert_matrix_error(&threads(&server, &bob, &room, "limit=0").await, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let private = create_room(&server, &alice, json!({"preset": "private_chat"})).await;
    assert_denied(&threads(&server, &bob, &private, "").await);
}

#[tokio::test]
async fn relations_paginate_filter_and_recurse() {
    let server = TestServer::start_default().await;
    let [alice, bob, eve] = users(&server, ["alice", "bob", "eve"]).await;
    let room = create_room(&server, &alice, json!({"preset": "private_chat"})).await;
    invite(&server, &alice, &room, &bob.user_id).await.ok();
    join(&server, &bob, &room).await.ok();
    let root = send_text(&server, &alice, &room, "root").await;

    let mut replies = Vec::new();
    for i in 0..7 {
        replies.push(send(&server, if i % 2 == 0 { &bob } else { &alice }, &room, "m.room.message", thread_content(&root, &format!("r{i}"))).await);
    }
    let reaction = send(&server, &bob, &room, "m.reaction", reaction_content(&root, "👀")).await;
    // A relation of a relation: an edit of a thread reply.
    let nested = send(&server, &bob, &room, "m.room.message", edit_content(&replies[0], "r0 edited")).await;

    // Backwards (the default), most recent first, in pages; then forwards.
    let backwards = all_relations(&server, &bob, &room, &root, "", "", 3).await;
    let mut expected: Vec<String> = replies.clone();
    expected.push(reaction.clone());
    expected.reverse();
    assert_eq!(backwards, expected);
    let forwards = all_relations(&server, &bob, &room, &root, "", "dir=f", 2).await;
    expected.reverse();
    assert_eq!(forwards, expected);

    // Filters by relation type and event type.
    assert_eq!(all_relations(&server, &bob, &room, &root, "/m.thread", "", 4).await.len(), 7);
    assert_eq!(all_relations(&server, &bob, &room, &root, "/m.annotation", "", 4).await, vec![reaction.clone()]);
    assert!(all_relations(&server, &bob, &room, &root, "/m.thread/m.reaction", "", 4).await.is_empty());

    // Tokens: next_batch continues, prev_batch echoes `from`, `to` stops.
    let page1 = relations(&server, &bob, &room, &root, "/m.thread?limit=2").await;
    let page1 = page1.ok().clone();
    assert!(page1.get("prev_batch").is_none(), "the first page has no prev_batch: {page1}");
    assert!(page1.get("recursion_depth").is_none(), "only when recursing: {page1}");
    let next1 = page1["next_batch"].as_str().expect("more pages").to_owned();
    let page2 = relations(&server, &bob, &room, &root, &format!("/m.thread?limit=2&from={}", enc(&next1))).await;
    let page2 = page2.ok().clone();
    assert_eq!(page2["prev_batch"], next1);
    assert_eq!(ids(events_of(&page2["chunk"])), vec![replies[4].clone(), replies[3].clone()]);
    let next2 = page2["next_batch"].as_str().expect("more pages").to_owned();
    // From the start to page 2's end: exactly pages 1 and 2.
    let bounded = relations(&server, &bob, &room, &root, &format!("/m.thread?limit=50&to={}", enc(&next2))).await;
    assert_eq!(ids(events_of(&bounded.ok()["chunk"])), vec![replies[6].clone(), replies[5].clone(), replies[4].clone(), replies[3].clone()]);
    // A sync token is a valid `from`.
    let since = next_batch(&sync(&server, &bob, "").await);
    let latest = send(&server, &alice, &room, "m.room.message", thread_content(&root, "late")).await;
    let after = relations(&server, &bob, &room, &root, &format!("/m.thread?dir=f&from={}", enc(&since))).await;
    assert_eq!(ids(events_of(&after.ok()["chunk"])), vec![latest.clone()]);

    // recurse: the edit of a reply shows up, with the depth the server went to.
    let flat = all_relations(&server, &bob, &room, &root, "", "", 50).await;
    assert!(!flat.contains(&nested));
    let resp = relations(&server, &bob, &room, &root, "?recurse=true&limit=50").await;
    let body = resp.ok();
    assert_eq!(body["recursion_depth"], 3, "{}", resp.text);
    let recursed = ids(events_of(&body["chunk"]));
    assert_eq!(recursed.first(), Some(&latest), "most recent first");
    assert!(recursed.contains(&nested) && recursed.len() == flat.len() + 1, "{recursed:?}");
    // Filters apply at every level: m.thread reaches replies, not their edits.
    let resp = relations(&server, &bob, &room, &root, "/m.thread?recurse=true&limit=50").await;
    assert!(!ids(events_of(&resp.ok()["chunk"])).contains(&nested));
    let recursed_paged = all_relations(&server, &bob, &room, &root, "", "recurse=true", 4).await;
    assert_eq!(recursed_paged, recursed, "recursive results paginate like flat ones");

    // Errors: an unknown event, an event the user may not see, a bad token.
    assert_matrix_error(&relations(&server, &bob, &room, "$unknown:localhost", "").await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    assert_matrix_error(&relations(&server, &eve, &room, &root, "").await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    assert_matrix_error(&relations(&server, &bob, &room, &root, "?from=nonsense").await, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
}

#[tokio::test]
async fn relations_hide_what_the_viewer_cannot_see() {
    let server = TestServer::start_default().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;
    let room = create_room(&server, &alice, json!({"preset": "public_chat"})).await;
    put_state(&server, &alice, &room, "m.room.history_visibility", "", &json!({"history_visibility": "joined"})).await;
    join(&server, &bob, &room).await.ok();
    let message = send_text(&server, &alice, &room, "before bob left").await;
    leave(&server, &bob, &room).await.ok();
    // Edited after bob left: bob may still see the original, but not the edit.
    send(&server, &alice, &room, "m.room.message", edit_content(&message, "secret edit")).await;
    let resp = server.get(&room_path(&room, &format!("/event/{}", enc(&message))), &bob).await;
    let fetched = resp.ok();
    assert!(bundled_edit(fetched).is_none(), "an edit bob cannot see must not be bundled: {fetched}");
    assert!(all_relations(&server, &bob, &room, &message, "", "", 5).await.is_empty());
}

#[tokio::test]
async fn ignored_users_leave_aggregations() {
    let server = TestServer::start_default().await;
    let [alice, bob, carol] = users(&server, ["alice", "bob", "carol"]).await;
    let room = public_room(&server, &alice).await;
    join(&server, &bob, &room).await.ok();
    join(&server, &carol, &room).await.ok();
    let root = send_text(&server, &alice, &room, "root").await;
    let from_bob = send(&server, &bob, &room, "m.room.message", thread_content(&root, "bob's reply")).await;
    send(&server, &carol, &room, "m.room.message", thread_content(&root, "carol's reply")).await;
    send(&server, &carol, &room, "m.reaction", reaction_content(&root, "👍")).await;
    send(&server, &carol, &room, "m.room.message", json!({"msgtype": "m.text", "body": "ref", "m.relates_to": {"rel_type": "m.reference", "event_id": root}})).await;
    let carols_root = send_text(&server, &carol, &room, "carol's thread").await;
    send(&server, &alice, &room, "m.room.message", thread_content(&carols_root, "alice answers carol")).await;

    let path = format!("{C}/user/{}/account_data/m.ignored_user_list", enc(&bob.user_id));
    server.put(&path, &bob, &json!({"ignored_users": {carol.user_id.clone(): {}}})).await.ok();

    // Bob ignores carol: her reply is not counted nor the latest, her reference is gone.
    let fetched = event(&server, &bob, &room, &root).await;
    let thread = &bundled(&fetched)["m.thread"];
    assert_eq!((thread["count"].clone(), thread["latest_event"]["event_id"].clone()), (json!(1), json!(from_bob)), "{fetched}");
    assert!(bundled(&fetched)["m.reference"].is_null(), "{fetched}");
    // Alice ignores nobody.
    assert_eq!(bundled(&event(&server, &alice, &room, &root).await)["m.thread"]["count"], 2);
    // /relations hides carol's events from bob.
    let listed = all_relations(&server, &bob, &room, &root, "", "", 10).await;
    assert_eq!(listed, vec![from_bob.clone()], "{listed:?}");
    // /threads lists carol's thread with its root redacted for bob.
    let resp = threads(&server, &bob, &room, "limit=10").await;
    let body = resp.ok();
    let roots = events_of(&body["chunk"]);
    let carols = roots.iter().find(|e| e["event_id"] == carols_root).unwrap_or_else(|| panic!("{}", resp.text));
    assert_eq!(carols["content"], json!({}), "an ignored user's thread root is listed redacted: {carols}");
}

#[tokio::test]
async fn search_results_carry_bundled_edits() {
    let server = TestServer::start_default().await;
    let [alice] = users(&server, ["alice"]).await;
    let room = public_room(&server, &alice).await;
    let original = send_text(&server, &alice, &room, "searchable pancake").await;
    let edit = send(&server, &alice, &room, "m.room.message", edit_content(&original, "searchable waffle")).await;
    let resp = server.post(&format!("{C}/search"), &alice, &json!({"search_categories": {"room_events": {"search_term": "pancake"}}})).await;
    let body = resp.ok();
    let results = body["search_categories"]["room_events"]["results"].as_array().cloned().unwrap_or_default();
    let found = results.iter().find(|r| r["result"]["event_id"] == original).unwrap_or_else(|| panic!("the original is found: {}", resp.text));
    assert_eq!(bundled_edit(&found["result"]), Some(edit.as_str()), "{found}");
}
