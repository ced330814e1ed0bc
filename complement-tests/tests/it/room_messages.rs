//! Reading room history: `/messages` (directions, tokens, `to`, limits,
//! filters, lazy-loaded members) and `/context`.

use std::collections::HashSet;

use complement_tests::*;

use crate::room_support::*;

/// Sends `count` messages `"{prefix}{i}"` and returns their event IDs.
async fn send_many(
    server: &TestServer,
    who: &Session,
    room: &str,
    prefix: &str,
    count: usize,
) -> Vec<String> {
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        out.push(send_text(server, who, room, &format!("{prefix}{i}")).await);
    }
    out
}

#[tokio::test]
async fn messages_paginate_both_ways_without_gaps() {
    let server = TestServer::start_default().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;
    let room = public_room(&server, &alice).await;
    join(&server, &bob, &room).await.ok();
    let sent = send_many(&server, &alice, &room, "m", 25).await;

    // Backwards from the end: newest first.
    let resp = messages(&server, &bob, &room, "dir=b&limit=10").await;
    let page = resp.ok();
    assert!(page["start"].is_string(), "`start` is required: {page}");
    let end1 = page["end"].as_str().expect("more events remain").to_owned();
    let expected: Vec<String> = sent.iter().rev().take(10).cloned().collect();
    assert_eq!(ids(events_of(&page["chunk"])), expected);
    for event in events_of(&page["chunk"]) {
        assert_eq!(event["room_id"], room, "{event}");
        assert!(event["origin_server_ts"].is_u64(), "{event}");
    }

    let query = format!("dir=b&limit=10&from={}", enc(&end1));
    let resp = messages(&server, &bob, &room, &query).await;
    let page = resp.ok();
    assert_eq!(page["start"], end1, "`start` echoes `from`");
    let expected: Vec<String> = sent.iter().rev().skip(10).take(10).cloned().collect();
    assert_eq!(ids(events_of(&page["chunk"])), expected);
    let end2 = page["end"].as_str().expect("more events remain").to_owned();

    // Everything backwards, then everything forwards: the same events in
    // opposite orders, starting with the create event, no duplicates.
    let backwards = paginate(&server, &bob, &room, "b", None, 7, 20).await;
    let forwards = paginate(&server, &bob, &room, "f", None, 7, 20).await;
    let mut reversed = ids(&backwards);
    reversed.reverse();
    assert_eq!(reversed, ids(&forwards));
    assert_eq!(forwards[0]["type"], "m.room.create");
    assert_eq!(
        bodies(&forwards),
        (0..25).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    // The room's membership history is in the timeline too.
    assert!(
        forwards
            .iter()
            .any(|e| e["type"] == "m.room.member" && e["state_key"] == bob.user_id),
        "bob's join is in the timeline"
    );

    // A sync token works as `from`; new events show up after it.
    let body = sync(&server, &bob, "").await;
    let since = next_batch(&body);
    let new = send_text(&server, &alice, &room, "after the sync").await;
    let query = format!("dir=f&from={}", enc(&since));
    let resp = messages(&server, &bob, &room, &query).await;
    assert_eq!(ids(events_of(&resp.ok()["chunk"])), vec![new.clone()]);

    // Default limit is 10.
    let resp = messages(&server, &bob, &room, "dir=b").await;
    assert_eq!(events_of(&resp.ok()["chunk"]).len(), 10);

    // Bad requests.
    for query in ["dir=x", "", "dir=b&from=not-a-token", "dir=b&limit=ten"] {
        let resp = messages(&server, &bob, &room, query).await;
        assert_eq!(
            resp.status,
            StatusCode::BAD_REQUEST,
            "/messages?{query}: {}",
            resp.text
        );
        assert!(resp.errcode().is_some(), "{}", resp.text);
    }

    // Tokens are positions between events, whatever the request they came
    // from; mismatches are collected so that one run shows all of them.
    let mut errors = Vec::new();
    // `to` stops a backwards pagination at a token: exactly the events in
    // between (end2 sits just before m5, end1 just after m14).
    let query = format!("dir=b&limit=50&from={}&to={}", enc(&end1), enc(&end2));
    let resp = messages(&server, &bob, &room, &query).await;
    let got = bodies(events_of(&resp.ok()["chunk"]));
    let expected: Vec<String> = (5..15).rev().map(|i| format!("m{i}")).collect();
    if got != expected {
        errors.push(format!(
            "dir=b from=end1 to=end2: expected {expected:?}, got {got:?}"
        ));
    }
    // Forwards between the same two tokens gives the same events.
    let query = format!("dir=f&limit=50&from={}&to={}", enc(&end2), enc(&end1));
    let resp = messages(&server, &bob, &room, &query).await;
    let got = bodies(events_of(&resp.ok()["chunk"]));
    let expected: Vec<String> = (5..15).map(|i| format!("m{i}")).collect();
    if got != expected {
        errors.push(format!(
            "dir=f from=end2 to=end1: expected {expected:?}, got {got:?}"
        ));
    }
    // Forwards from a backwards `end` to the end of the room.
    let last = paginate(&server, &bob, &room, "f", Some(&end1), 50, 5).await;
    let mut expected = sent[15..].to_vec();
    expected.push(new);
    if ids(&last) != expected {
        errors.push(format!(
            "dir=f from=end1: expected m15..m24 + 1, got {:?}",
            bodies(&last)
        ));
    }
    // `limit` is a maximum: 0 is not an error, and returns no events.
    let resp = messages(&server, &bob, &room, "dir=b&limit=0").await;
    let got = events_of(&resp.ok()["chunk"]).len();
    if got != 0 {
        errors.push(format!("dir=b&limit=0 returned {got} events"));
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[tokio::test]
async fn messages_filters() {
    let server = TestServer::start_default().await;
    let [alice, bob, carol] = users(&server, ["alice", "bob", "carol"]).await;
    let room = public_room(&server, &alice).await;
    join(&server, &bob, &room).await.ok();
    join(&server, &carol, &room).await.ok();

    send_text(&server, &alice, &room, "a1").await;
    send_text(&server, &bob, &room, "b1").await;
    let image = send_event_raw(
        &server,
        &bob,
        &room,
        "m.room.message",
        &json!({"msgtype": "m.image", "body": "pic", "url": "mxc://myelin.test/pic"}),
    )
    .await;
    let image = image.str_field("event_id").to_owned();
    send_event_raw(
        &server,
        &alice,
        &room,
        "org.example.custom",
        &json!({"k": 1}),
    )
    .await
    .ok();
    send_event_raw(
        &server,
        &alice,
        &room,
        "org.example.other",
        &json!({"k": 2}),
    )
    .await
    .ok();
    send_text(&server, &alice, &room, "a2").await;

    let filtered = async |filter: Value| -> Value {
        let query = format!("dir=b&limit=50&{}", filter_param(&filter));
        let resp = messages(&server, &carol, &room, &query).await;
        resp.ok().clone()
    };
    let types_of = |body: &Value| -> Vec<String> {
        events_of(&body["chunk"])
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect()
    };

    let body = filtered(json!({"types": ["m.room.message"]})).await;
    assert_eq!(bodies(events_of(&body["chunk"])), ["a2", "pic", "b1", "a1"]);
    assert!(types_of(&body).iter().all(|t| t == "m.room.message"));

    let body = filtered(json!({"types": ["org.example.*"]})).await;
    assert_eq!(types_of(&body), ["org.example.other", "org.example.custom"]);

    let body = filtered(json!({"not_types": ["m.room.message", "m.room.member"]})).await;
    let types = types_of(&body);
    assert!(
        types
            .iter()
            .all(|t| t != "m.room.message" && t != "m.room.member"),
        "{types:?}"
    );
    assert!(
        types.contains(&"org.example.custom".to_owned()),
        "{types:?}"
    );
    assert!(types.contains(&"m.room.create".to_owned()), "{types:?}");

    let body = filtered(json!({"senders": [bob.user_id], "types": ["m.room.message"]})).await;
    assert_eq!(bodies(events_of(&body["chunk"])), ["pic", "b1"]);

    let body = filtered(json!({"not_senders": [alice.user_id], "types": ["m.room.message"]})).await;
    assert_eq!(bodies(events_of(&body["chunk"])), ["pic", "b1"]);

    let body = filtered(json!({"contains_url": true})).await;
    assert_eq!(ids(events_of(&body["chunk"])), vec![image.clone()]);
    let body = filtered(json!({"contains_url": false, "types": ["m.room.message"]})).await;
    assert_eq!(bodies(events_of(&body["chunk"])), ["a2", "b1", "a1"]);

    // Filters combine.
    let body = filtered(json!({"types": ["m.room.message"], "not_senders": [bob.user_id]})).await;
    assert_eq!(bodies(events_of(&body["chunk"])), ["a2", "a1"]);

    // Lazy-loading: `state` carries the members of the chunk's senders only.
    let query = format!(
        "dir=b&limit=50&{}",
        filter_param(&json!({"senders": [bob.user_id], "lazy_load_members": true}))
    );
    let resp = messages(&server, &carol, &room, &query).await;
    let body = resp.ok();
    let state = events_of(&body["state"]);
    let members: HashSet<&str> = state
        .iter()
        .filter(|e| e["type"] == "m.room.member")
        .map(|e| e["state_key"].as_str().unwrap())
        .collect();
    assert!(
        members.contains(bob.user_id.as_str()),
        "bob's membership is lazily loaded: {}",
        resp.text
    );
    assert!(
        !members.contains(alice.user_id.as_str()) && !members.contains(carol.user_id.as_str()),
        "only the senders of the chunk: {members:?}"
    );
    let bob_member = find_state(state, "m.room.member", &bob.user_id).unwrap();
    assert_eq!(bob_member["content"]["membership"], "join");

    // Without lazy loading the state may be omitted, but must not be junk.
    let resp = messages(&server, &carol, &room, "dir=b&limit=5").await;
    if let Some(state) = resp.ok().get("state") {
        assert!(state.is_array(), "{}", resp.text);
    }

    // An invalid filter is refused.
    let resp = messages(&server, &carol, &room, "dir=b&filter=%7Bnot-json").await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.text);

    // Non-members may not read a room with `shared` history.
    let [dave] = users(&server, ["dave"]).await;
    let resp = messages(&server, &dave, &room, "dir=b").await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

#[tokio::test]
async fn context_around_an_event() {
    let server = TestServer::start_default().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;
    let room = create_room(
        &server,
        &alice,
        json!({"preset": "public_chat", "name": "Ctx"}),
    )
    .await;
    join(&server, &bob, &room).await.ok();
    let sent = send_many(&server, &alice, &room, "c", 12).await;
    let context_path =
        |event: &str, query: &str| room_path(&room, &format!("/context/{}?{query}", enc(event)));

    let resp = server.get(&context_path(&sent[6], "limit=6"), &bob).await;
    let body = resp.ok();
    assert_eq!(body["event"]["event_id"], sent[6]);
    assert_eq!(body["event"]["content"]["body"], "c6");
    let before = ids(events_of(&body["events_before"]));
    let after = ids(events_of(&body["events_after"]));
    assert!(!before.is_empty() && !after.is_empty(), "{body}");
    assert!(
        before.len() + after.len() <= 6,
        "limit applies to the sum: {body}"
    );
    // events_before is newest-first and contiguous with the event.
    let expected_before: Vec<String> = sent[..6].iter().rev().take(before.len()).cloned().collect();
    assert_eq!(before, expected_before);
    let expected_after: Vec<String> = sent[7..].iter().take(after.len()).cloned().collect();
    assert_eq!(after, expected_after);

    // The state at the event includes the room's name and members.
    let state = events_of(&body["state"]);
    assert_eq!(
        find_state(state, "m.room.name", "").map(|e| e["content"]["name"].clone()),
        Some(json!("Ctx")),
        "{}",
        resp.text
    );
    assert!(
        find_state(state, "m.room.create", "").is_some(),
        "{}",
        resp.text
    );

    // `start` and `end` continue the pagination around the window.
    let start = body["start"].as_str().expect("start token").to_owned();
    let end = body["end"].as_str().expect("end token").to_owned();
    let query = format!("dir=b&limit=2&from={}", enc(&start));
    let resp = messages(&server, &bob, &room, &query).await;
    let oldest_before = sent
        .iter()
        .position(|id| *id == before[before.len() - 1])
        .unwrap();
    let expected: Vec<String> = sent[..oldest_before]
        .iter()
        .rev()
        .take(2)
        .cloned()
        .collect();
    assert_eq!(ids(events_of(&resp.ok()["chunk"])), expected);
    let query = format!("dir=f&limit=2&from={}", enc(&end));
    let resp = messages(&server, &bob, &room, &query).await;
    let newest_after = sent
        .iter()
        .position(|id| *id == after[after.len() - 1])
        .unwrap();
    let expected: Vec<String> = sent[newest_after + 1..].iter().take(2).cloned().collect();
    assert_eq!(ids(events_of(&resp.ok()["chunk"])), expected);

    // limit=0 still returns the event itself.
    let resp = server.get(&context_path(&sent[3], "limit=0"), &bob).await;
    let body = resp.ok();
    assert_eq!(body["event"]["event_id"], sent[3]);
    assert!(events_of(&body["events_before"]).is_empty(), "{body}");
    assert!(events_of(&body["events_after"]).is_empty(), "{body}");

    // At the newest event there is nothing after.
    let resp = server.get(&context_path(&sent[11], "limit=4"), &bob).await;
    assert!(
        events_of(&resp.ok()["events_after"]).is_empty(),
        "{}",
        resp.text
    );

    // A filter applies to the surrounding events, not to the event.
    let filter = filter_param(&json!({"types": ["m.room.member"]}));
    let resp = server
        .get(&context_path(&sent[0], &format!("limit=10&{filter}")), &bob)
        .await;
    let body = resp.ok();
    assert_eq!(body["event"]["event_id"], sent[0]);
    for event in events_of(&body["events_before"])
        .iter()
        .chain(events_of(&body["events_after"]))
    {
        assert_eq!(event["type"], "m.room.member", "{event}");
    }

    // Non-members are refused.
    let [carol] = users(&server, ["carol"]).await;
    let resp = server.get(&context_path(&sent[3], "limit=2"), &carol).await;
    assert_denied(&resp);
}
