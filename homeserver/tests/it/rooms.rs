use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::TestApp;

async fn create_room(app: &TestApp, token: &str, body: Value) -> String {
    let reply = app.call(Method::POST, "/_matrix/client/v3/createRoom", Some(token), Some(body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["room_id"].as_str().unwrap().to_owned()
}

async fn send_text(app: &TestApp, token: &str, room: &str, txn: &str, text: &str) -> (StatusCode, Value) {
    let reply = app
        .call(Method::PUT, &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}"), Some(token), Some(json!({"msgtype": "m.text", "body": text})))
        .await;
    (reply.status, reply.body)
}

async fn sync(app: &TestApp, token: &str, since: Option<&str>, timeout_ms: u64) -> Value {
    let path = match since {
        Some(since) => format!("/_matrix/client/v3/sync?since={since}&timeout={timeout_ms}"),
        None => format!("/_matrix/client/v3/sync?timeout={timeout_ms}"),
    };
    let reply = app.call(Method::GET, &path, Some(token), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

fn timeline_bodies(sync: &Value, room: &str) -> Vec<String> {
    sync["rooms"]["join"][room]["timeline"]["events"]
        .as_array()
        .map(|events| events.iter().filter_map(|e| e["content"]["body"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn create_send_and_initial_sync_in_every_room_version() {
    let app = TestApp::new();
    let token = app.register_token("ann").await;
    for version in 1..=12 {
        let room = create_room(&app, &token, json!({"room_version": version.to_string(), "name": format!("v{version}")})).await;
        if version >= 12 {
            assert!(!room.contains(':'), "v12 room ids are derived hashes: {room}");
        } else {
            assert!(room.ends_with(":test.local"), "{room}");
        }
        let (status, body) = send_text(&app, &token, &room, &format!("t{version}"), "hello").await;
        assert_eq!(status, StatusCode::OK, "v{version}: {body}");
        let event_id = body["event_id"].as_str().unwrap();
        match version {
            1 | 2 => assert!(event_id.ends_with(":test.local"), "{event_id}"),
            3 => assert_eq!(event_id.len(), 44, "{event_id}"),
            _ => assert!(!event_id.contains('+') && !event_id.contains('/'), "{event_id}"),
        }
        let encoded: String = form_urlencoded::byte_serialize(event_id.as_bytes()).collect();
        let event = app.call(Method::GET, &format!("/_matrix/client/v3/rooms/{room}/event/{encoded}"), Some(&token), None).await;
        assert_eq!(event.body["content"]["body"], "hello", "v{version}: {}", event.body);
        assert!(event.body.get("hashes").is_none() && event.body.get("signatures").is_none());
    }
    let initial = sync(&app, &token, None, 0).await;
    assert_eq!(initial["rooms"]["join"].as_object().unwrap().len(), 12);
}

#[tokio::test]
async fn sends_are_idempotent_per_transaction() {
    let app = TestApp::new();
    let token = app.register_token("bea").await;
    let room = create_room(&app, &token, json!({})).await;
    let (_, first) = send_text(&app, &token, &room, "same", "once").await;
    let (_, again) = send_text(&app, &token, &room, "same", "once").await;
    assert_eq!(first["event_id"], again["event_id"]);
    let (_, other) = send_text(&app, &token, &room, "other", "twice").await;
    assert_ne!(first["event_id"], other["event_id"]);
    let synced = sync(&app, &token, None, 0).await;
    assert_eq!(timeline_bodies(&synced, &room), vec!["once", "twice"]);
    // the sender's own device sees its transaction ID
    let events = synced["rooms"]["join"][&room]["timeline"]["events"].as_array().unwrap();
    assert_eq!(events.iter().rev().nth(1).unwrap()["unsigned"]["transaction_id"], "same");
}

#[tokio::test]
async fn incremental_sync_long_polls_until_a_message_arrives() {
    let app = TestApp::new();
    let alice = app.register_token("cal").await;
    let room = create_room(&app, &alice, json!({"preset": "public_chat"})).await;
    let bob = app.register_token("dee").await;
    let join = app.call(Method::POST, &format!("/_matrix/client/v3/join/{room}"), Some(&bob), Some(json!({}))).await;
    assert_eq!(join.status, StatusCode::OK, "{}", join.body);
    let first = sync(&app, &bob, None, 0).await;
    let since = first["next_batch"].as_str().unwrap().to_owned();

    let waiting = {
        let app_router = app.router.clone();
        let bob = bob.clone();
        let since = since.clone();
        tokio::spawn(async move {
            let request = http::Request::get(format!("/_matrix/client/v3/sync?since={since}&timeout=10000"))
                .header("authorization", format!("Bearer {bob}"))
                .body(axum::body::Body::empty())
                .unwrap();
            let started = std::time::Instant::now();
            let response = tower::ServiceExt::oneshot(app_router, request).await.unwrap();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
            (started.elapsed(), serde_json::from_slice::<Value>(&bytes).unwrap())
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    send_text(&app, &alice, &room, "t1", "wake up").await;
    let (elapsed, body) = waiting.await.unwrap();
    assert!(elapsed < std::time::Duration::from_secs(5), "sync did not wake: {elapsed:?}");
    assert_eq!(timeline_bodies(&body, &room), vec!["wake up"]);

    // nothing new: an empty answer after the timeout, with the same position
    let idle = sync(&app, &bob, body["next_batch"].as_str(), 100).await;
    assert!(idle["rooms"]["join"].as_object().unwrap().is_empty(), "{idle}");
}

#[tokio::test]
async fn non_members_cannot_send_or_read_and_power_levels_are_enforced() {
    let app = TestApp::new();
    let owner = app.register_token("eli").await;
    let room = create_room(&app, &owner, json!({"preset": "public_chat"})).await;
    let stranger = app.register_token("fox").await;
    let (status, body) = send_text(&app, &stranger, &room, "x", "hi").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let messages = app.call(Method::GET, &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b"), Some(&stranger), None).await;
    messages.assert_error(StatusCode::FORBIDDEN, "M_FORBIDDEN");

    app.call(Method::POST, &format!("/_matrix/client/v3/rooms/{room}/join"), Some(&stranger), Some(json!({}))).await;
    let rename = app
        .call(Method::PUT, &format!("/_matrix/client/v3/rooms/{room}/state/m.room.name/"), Some(&stranger), Some(json!({"name": "mine"})))
        .await;
    rename.assert_error(StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert!(rename.body["error"].as_str().unwrap().to_lowercase().contains("power"), "{}", rename.body);
    let owner_rename = app
        .call(Method::PUT, &format!("/_matrix/client/v3/rooms/{room}/state/m.room.name/"), Some(&owner), Some(json!({"name": "ours"})))
        .await;
    assert_eq!(owner_rename.status, StatusCode::OK, "{}", owner_rename.body);
    let name = app.call(Method::GET, &format!("/_matrix/client/v3/rooms/{room}/state/m.room.name/"), Some(&stranger), None).await;
    assert_eq!(name.body["name"], "ours");

    app.call(Method::GET, "/_matrix/client/v3/rooms/!nope:test.local/state", Some(&owner), None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

#[tokio::test]
async fn invite_only_rooms_need_an_invite() {
    let app = TestApp::new();
    let owner = app.register_token("gil").await;
    let room = create_room(&app, &owner, json!({"preset": "private_chat"})).await;
    let guest = app.register_token("hoa").await;
    let refused = app.call(Method::POST, &format!("/_matrix/client/v3/rooms/{room}/join"), Some(&guest), Some(json!({}))).await;
    refused.assert_error(StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let invite = app
        .call(Method::POST, &format!("/_matrix/client/v3/rooms/{room}/invite"), Some(&owner), Some(json!({"user_id": "@hoa:test.local"})))
        .await;
    assert_eq!(invite.status, StatusCode::OK, "{}", invite.body);
    let invited = sync(&app, &guest, None, 0).await;
    let invite_state = invited["rooms"]["invite"][&room]["invite_state"]["events"].as_array().unwrap();
    assert!(invite_state.iter().any(|e| e["type"] == "m.room.create"));
    assert!(invite_state.iter().any(|e| e["type"] == "m.room.member" && e["state_key"] == "@hoa:test.local"));
    let joined = app.call(Method::POST, &format!("/_matrix/client/v3/rooms/{room}/join"), Some(&guest), Some(json!({}))).await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.body);
    let members = app.call(Method::GET, &format!("/_matrix/client/v3/rooms/{room}/joined_members"), Some(&guest), None).await;
    assert_eq!(members.body["joined"].as_object().unwrap().len(), 2);
    let rooms = app.call(Method::GET, "/_matrix/client/v3/joined_rooms", Some(&guest), None).await;
    assert_eq!(rooms.body["joined_rooms"][0], room);
}

#[tokio::test]
async fn messages_paginate_backwards_through_history() {
    let app = TestApp::new();
    let token = app.register_token("ida").await;
    let room = create_room(&app, &token, json!({})).await;
    for i in 0..25 {
        send_text(&app, &token, &room, &format!("m{i}"), &format!("message {i}")).await;
    }
    let mut from: Option<String> = None;
    let mut seen = Vec::new();
    loop {
        let path = match &from {
            Some(token) => format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=10&from={token}&filter=%7B%22types%22%3A%5B%22m.room.message%22%5D%7D"),
            None => format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=10&filter=%7B%22types%22%3A%5B%22m.room.message%22%5D%7D"),
        };
        let page = app.call(Method::GET, &path, Some(&token), None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        for event in page.body["chunk"].as_array().unwrap() {
            seen.push(event["content"]["body"].as_str().unwrap().to_owned());
        }
        match page.body["end"].as_str() {
            Some(end) => from = Some(end.to_owned()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).rev().map(|i| format!("message {i}")).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn redaction_strips_content_and_names_the_redaction() {
    let app = TestApp::new();
    let token = app.register_token("jay").await;
    let room = create_room(&app, &token, json!({})).await;
    let (_, sent) = send_text(&app, &token, &room, "r1", "secret").await;
    let event_id = sent["event_id"].as_str().unwrap();
    let redaction = app
        .call(Method::PUT, &format!("/_matrix/client/v3/rooms/{room}/redact/{event_id}/x1"), Some(&token), Some(json!({"reason": "oops"})))
        .await;
    assert_eq!(redaction.status, StatusCode::OK, "{}", redaction.body);
    let event = app.call(Method::GET, &format!("/_matrix/client/v3/rooms/{room}/event/{event_id}"), Some(&token), None).await;
    assert_eq!(event.body["content"], json!({}));
    assert_eq!(event.body["unsigned"]["redacted_because"]["event_id"], redaction.body["event_id"]);
}

#[tokio::test]
async fn oversized_and_invalid_events_are_refused() {
    let app = TestApp::new();
    let token = app.register_token("kai").await;
    let room = create_room(&app, &token, json!({})).await;
    let big = "x".repeat(70_000);
    let (status, body) = send_text(&app, &token, &room, "big", &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["errcode"], "M_TOO_LARGE");
    let not_object = app.call(Method::PUT, &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/n1"), Some(&token), Some(json!([1, 2]))).await;
    assert_eq!(not_object.status, StatusCode::BAD_REQUEST, "{}", not_object.body);
    let float = app
        .call(Method::PUT, &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/n2"), Some(&token), Some(json!({"body": "x", "n": 1.5})))
        .await;
    float.assert_error(StatusCode::BAD_REQUEST, "M_BAD_JSON");
}

#[tokio::test]
async fn history_visibility_hides_events_from_before_an_invite_in_invited_rooms() {
    let app = TestApp::new();
    let owner = app.register_token("lou").await;
    let room = create_room(
        &app,
        &owner,
        json!({"preset": "private_chat", "initial_state": [{"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "invited"}}]}),
    )
    .await;
    send_text(&app, &owner, &room, "a", "before invite").await;
    app.call(Method::POST, &format!("/_matrix/client/v3/rooms/{room}/invite"), Some(&owner), Some(json!({"user_id": "@max:test.local"}))).await;
    let max = app.register_token("max").await;
    app.call(Method::POST, &format!("/_matrix/client/v3/rooms/{room}/invite"), Some(&owner), Some(json!({"user_id": "@max:test.local"}))).await;
    app.call(Method::POST, &format!("/_matrix/client/v3/rooms/{room}/join"), Some(&max), Some(json!({}))).await;
    send_text(&app, &owner, &room, "b", "after join").await;
    let page = app.call(Method::GET, &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=50"), Some(&max), None).await;
    let bodies: Vec<&str> = page.body["chunk"].as_array().unwrap().iter().filter_map(|e| e["content"]["body"].as_str()).collect();
    assert_eq!(bodies, vec!["after join"]);
}

#[tokio::test]
async fn upgrade_tombstones_the_old_room_and_carries_state_and_aliases() {
    let app = TestApp::new();
    let token = app.register_token("ned").await;
    let old = create_room(&app, &token, json!({"room_version": "10", "name": "Old name", "room_alias_name": "up", "preset": "public_chat"})).await;
    let reply = app.call(Method::POST, &format!("/_matrix/client/v3/rooms/{old}/upgrade"), Some(&token), Some(json!({"new_version": "12"}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let new = reply.body["replacement_room"].as_str().unwrap();
    let tombstone = app.call(Method::GET, &format!("/_matrix/client/v3/rooms/{old}/state/m.room.tombstone"), Some(&token), None).await;
    assert_eq!(tombstone.body["replacement_room"], new);
    let create = app.call(Method::GET, &format!("/_matrix/client/v3/rooms/{new}/state/m.room.create"), Some(&token), None).await;
    assert_eq!(create.body["predecessor"]["room_id"], old.as_str());
    assert_eq!(create.body["room_version"], "12");
    let name = app.call(Method::GET, &format!("/_matrix/client/v3/rooms/{new}/state/m.room.name/"), Some(&token), None).await;
    assert_eq!(name.body["name"], "Old name");
    let alias = app.call(Method::GET, "/_matrix/client/v3/directory/room/%23up:test.local", None, None).await;
    assert_eq!(alias.body["room_id"], new);
    // ordinary members can no longer talk in the old room
    let levels = app.call(Method::GET, &format!("/_matrix/client/v3/rooms/{old}/state/m.room.power_levels/"), Some(&token), None).await;
    assert!(levels.body["events_default"].as_i64().unwrap() >= 50);
    let other = app.register_token("oli").await;
    app.call(Method::POST, &format!("/_matrix/client/v3/rooms/{new}/upgrade"), Some(&other), Some(json!({"new_version": "12"})))
        .await
        .assert_error(StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

#[tokio::test]
async fn timestamp_to_event_finds_the_nearest_event() {
    let app = TestApp::new();
    let token = app.register_token("pat").await;
    let room = create_room(&app, &token, json!({})).await;
    let (_, first) = send_text(&app, &token, &room, "1", "first").await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let middle = myelin::util::now_millis();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (_, second) = send_text(&app, &token, &room, "2", "second").await;
    let forward = app.call(Method::GET, &format!("/_matrix/client/v1/rooms/{room}/timestamp_to_event?ts={middle}&dir=f"), Some(&token), None).await;
    assert_eq!(forward.body["event_id"], second["event_id"], "{}", forward.body);
    let backward = app.call(Method::GET, &format!("/_matrix/client/v1/rooms/{room}/timestamp_to_event?ts={middle}&dir=b"), Some(&token), None).await;
    assert_eq!(backward.body["event_id"], first["event_id"], "{}", backward.body);
}

#[tokio::test]
async fn profile_changes_reach_member_events_and_directory_lists_public_rooms() {
    let app = TestApp::new();
    let token = app.register_token("quin").await;
    let room = create_room(&app, &token, json!({"visibility": "public", "name": "Searchable lounge"})).await;
    app.call(Method::PUT, "/_matrix/client/v3/profile/@quin:test.local/displayname", Some(&token), Some(json!({"displayname": "Quinn"}))).await;
    let member = app.call(Method::GET, &format!("/_matrix/client/v3/rooms/{room}/state/m.room.member/@quin:test.local"), Some(&token), None).await;
    assert_eq!(member.body["displayname"], "Quinn");
    assert_eq!(member.body["membership"], "join");
    let found = app.call(Method::POST, "/_matrix/client/v3/publicRooms", Some(&token), Some(json!({"filter": {"generic_search_term": "lounge"}}))).await;
    assert_eq!(found.body["chunk"][0]["room_id"], room, "{}", found.body);
    assert_eq!(found.body["chunk"][0]["num_joined_members"], 1);
    let missed = app.call(Method::POST, "/_matrix/client/v3/publicRooms", Some(&token), Some(json!({"filter": {"generic_search_term": "kitchen"}}))).await;
    assert!(missed.body["chunk"].as_array().unwrap().is_empty());
}

async fn current_extremity(app: &TestApp, room: &str) -> ruma::OwnedEventId {
    let record = app.services.rooms.room(&ruma::RoomId::parse(room).unwrap()).unwrap();
    assert_eq!(record.forward_extremities.len(), 1);
    ruma::EventId::parse(&record.forward_extremities[0]).unwrap()
}

#[tokio::test]
async fn forked_branches_merge_by_state_resolution() {
    for version in ["10", "12"] {
        let app = TestApp::new();
        let alice = app.register_token("ray").await;
        let room = create_room(&app, &alice, json!({"preset": "public_chat", "room_version": version})).await;
        let bob = app.register_token("sue").await;
        app.call(Method::POST, &format!("/_matrix/client/v3/join/{room}"), Some(&bob), Some(json!({}))).await;
        let room_id = ruma::RoomId::parse(&room).unwrap();
        let alice_id = ruma::UserId::parse("@ray:test.local").unwrap();
        let bob_id = ruma::UserId::parse("@sue:test.local").unwrap();
        let rooms = &app.services.rooms;
        use myelin::service::rooms::EventDraft;

        // Two branches off the same parent: a topic on one, a name on the other. Both survive.
        let base = current_extremity(&app, &room).await;
        rooms.append_with_prev_events(&room_id, &alice_id, EventDraft::state("m.room.topic", "", json!({"topic": "from A"})), vec![base.clone()]).await.unwrap();
        rooms.append_with_prev_events(&room_id, &alice_id, EventDraft::state("m.room.name", "", json!({"name": "from B"})), vec![base]).await.unwrap();
        assert_eq!(rooms.room(&room_id).unwrap().forward_extremities.len(), 2, "v{version}: the graph should be forked");
        let topic = app.call(Method::GET, &format!("/_matrix/client/v3/rooms/{room}/state/m.room.topic/"), Some(&alice), None).await;
        assert_eq!(topic.body["topic"], "from A", "v{version}");
        let name = app.call(Method::GET, &format!("/_matrix/client/v3/rooms/{room}/state/m.room.name/"), Some(&alice), None).await;
        assert_eq!(name.body["name"], "from B", "v{version}");
        // The next local event merges the branches.
        let (status, merged) = send_text(&app, &alice, &room, "merge", "merged").await;
        assert_eq!(status, StatusCode::OK, "{merged}");
        assert_eq!(rooms.room(&room_id).unwrap().forward_extremities.len(), 1);

        // A ban on one branch, the banned user's profile change on the other: the ban wins.
        let base = current_extremity(&app, &room).await;
        rooms
            .append_with_prev_events(&room_id, &alice_id, EventDraft::state("m.room.member", bob_id.as_str(), json!({"membership": "ban"})), vec![base.clone()])
            .await
            .unwrap();
        rooms
            .append_with_prev_events(&room_id, &bob_id, EventDraft::state("m.room.member", bob_id.as_str(), json!({"membership": "join", "displayname": "Sneaky"})), vec![base])
            .await
            .unwrap();
        let member = app.call(Method::GET, &format!("/_matrix/client/v3/rooms/{room}/state/m.room.member/@sue:test.local"), Some(&alice), None).await;
        assert_eq!(member.body["membership"], "ban", "v{version}: {}", member.body);
        // the membership index follows the resolved state too
        let joined = app.call(Method::GET, "/_matrix/client/v3/joined_rooms", Some(&bob), None).await;
        assert!(joined.body["joined_rooms"].as_array().unwrap().is_empty(), "v{version}: {}", joined.body);
        let (status, _) = send_text(&app, &bob, &room, "after-ban", "can I?").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "v{version}");
    }
}

#[tokio::test]
async fn concurrent_sends_never_fork_the_graph() {
    let app = std::sync::Arc::new(TestApp::new());
    let token = app.register_token("uma").await;
    let room = create_room(&app, &token, json!({})).await;
    let mut sends = Vec::new();
    for i in 0..32 {
        let (app, token, room) = (app.clone(), token.clone(), room.clone());
        sends.push(tokio::spawn(async move { send_text(&app, &token, &room, &format!("c{i}"), &format!("concurrent {i}")).await }));
    }
    for send in sends {
        let (status, body) = send.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let room_id = ruma::RoomId::parse(&room).unwrap();
    let record = app.services.rooms.room(&room_id).unwrap();
    assert_eq!(record.forward_extremities.len(), 1, "concurrent sends forked the graph");
    // every message event has exactly one parent, and the chain is linear: depths are unique
    let page = app.call(Method::GET, &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=100"), Some(&token), None).await;
    let chunk = page.body["chunk"].as_array().unwrap();
    let mut depths = std::collections::HashSet::new();
    for event in chunk {
        let (_, stored) = app.services.rooms.event(event["event_id"].as_str().unwrap()).unwrap().unwrap();
        if event["type"] != "m.room.create" {
            assert_eq!(stored.pdu["prev_events"].as_array().unwrap().len(), 1);
        }
        assert!(depths.insert(stored.depth), "two events share depth {}", stored.depth);
    }
    assert_eq!(chunk.iter().filter(|e| e["type"] == "m.room.message").count(), 32);
}
