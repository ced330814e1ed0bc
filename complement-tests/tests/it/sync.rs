//! `GET /sync`: initial and incremental syncs, long-polling, limited
//! timelines and gaps, filters (inline and by ID), lazy-loaded members, the
//! `join`/`invite`/`leave` sections, summaries, account data and
//! transaction IDs.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use complement_tests::*;

use crate::room_support::*;

/// `POST /user/{id}/filter`; returns the filter ID.
async fn upload_filter(server: &TestServer, who: &Session, filter: &Value) -> String {
    let resp = server
        .post(
            &format!("{C}/user/{}/filter", enc(&who.user_id)),
            who,
            filter,
        )
        .await;
    resp.str_field("filter_id").to_owned()
}

/// The user IDs of the `m.room.member` events in a list.
fn member_ids(events: &[Value]) -> BTreeSet<String> {
    events
        .iter()
        .filter(|e| e["type"] == "m.room.member")
        .map(|e| e["state_key"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Whether a sync response has anything for `room` in `rooms.join` beyond
/// empty batches.
fn has_join_updates(body: &Value, room: &str) -> bool {
    let room = joined(body, room);
    !room.is_null()
        && (!events_of(&room["timeline"]).is_empty()
            || !events_of(&room["state"]).is_empty()
            || !events_of(&room["account_data"]).is_empty())
}

#[tokio::test]
async fn initial_sync_shape_summary_and_invite_state() {
    let server = TestServer::start_default().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;

    // A user without rooms.
    let body = sync(&server, &alice, "").await;
    assert!(body["next_batch"].is_string(), "{body}");
    for section in ["join", "invite", "leave"] {
        let rooms = &body["rooms"][section];
        assert!(
            rooms.is_null() || rooms.as_object().is_some_and(|m| m.is_empty()),
            "rooms.{section} must be empty: {body}"
        );
    }
    for (key, kind) in [
        ("to_device", "events"),
        ("presence", "events"),
        ("account_data", "events"),
    ] {
        if let Some(section) = body.get(key) {
            assert!(section[kind].is_array(), "{key}: {body}");
        }
    }
    if let Some(lists) = body.get("device_lists") {
        assert!(lists.is_object(), "{body}");
    }
    if let Some(counts) = body.get("device_one_time_keys_count") {
        assert!(counts.is_object(), "{body}");
    }
    assert!(events_of(&body["to_device"]).is_empty(), "{body}");
    // A fresh account shares no room: the only presence it sees is its own.
    assert!(events_of(&body["presence"]).iter().all(|e| e["type"] == "m.presence" && e["sender"] == alice.user_id.as_str()), "{body}");

    // An unnamed room with bob invited, and two messages.
    let room = create_room(
        &server,
        &alice,
        json!({"preset": "private_chat", "invite": [bob.user_id]}),
    )
    .await;
    let m1 = send_text(&server, &alice, &room, "one").await;
    let m2 = send_text(&server, &alice, &room, "two").await;
    // A named room bob is invited to.
    let named = create_room(
        &server,
        &alice,
        json!({"preset": "private_chat", "name": "Invite Room", "topic": "t"}),
    )
    .await;
    invite(&server, &alice, &named, &bob.user_id).await.ok();

    let filter = filter_param(&json!({"room": {"timeline": {"limit": 2}}}));
    let body = sync(&server, &alice, &filter).await;
    let entry = joined(&body, &room);
    let timeline = &entry["timeline"];
    assert_eq!(ids(events_of(timeline)), vec![m1, m2], "{timeline}");
    assert_eq!(timeline["limited"], true, "{timeline}");
    assert!(timeline["prev_batch"].is_string(), "{timeline}");
    for event in events_of(timeline) {
        for field in ["event_id", "sender", "origin_server_ts", "type", "content"] {
            assert!(event.get(field).is_some(), "{field} missing: {event}");
        }
    }
    let state = events_of(&entry["state"]);
    for (ty, key) in [
        ("m.room.create", ""),
        ("m.room.power_levels", ""),
        ("m.room.join_rules", ""),
        ("m.room.history_visibility", ""),
        ("m.room.member", alice.user_id.as_str()),
        ("m.room.member", bob.user_id.as_str()),
    ] {
        assert!(
            find_state(state, ty, key).is_some(),
            "{ty}/{key} missing from the initial state: {state:?}"
        );
    }
    assert_eq!(
        find_state(state, "m.room.member", &bob.user_id).unwrap()["content"]["membership"],
        "invite"
    );
    // The state and timeline do not overlap.
    let state_ids: BTreeSet<String> = ids(state).into_iter().collect();
    assert!(
        ids(events_of(timeline))
            .iter()
            .all(|id| !state_ids.contains(id)),
        "state overlaps the timeline"
    );
    // Summary: heroes exclude the syncing user; counts.
    let summary = &entry["summary"];
    assert_eq!(summary["m.heroes"], json!([bob.user_id]), "{summary}");
    assert_eq!(summary["m.joined_member_count"], 1, "{summary}");
    assert_eq!(summary["m.invited_member_count"], 1, "{summary}");
    if let Some(counts) = entry.get("unread_notifications") {
        assert!(counts.is_object(), "{entry}");
    }
    if let Some(ephemeral) = entry.get("ephemeral") {
        assert!(ephemeral["events"].is_array(), "{entry}");
    }
    assert!(!in_section(&body, "invite", &room), "{body}");

    // Bob sees both invites as stripped state, and no joined rooms.
    let body = sync(&server, &bob, "").await;
    assert!(!in_section(&body, "join", &room), "{body}");
    for (r, name) in [(&room, None), (&named, Some("Invite Room"))] {
        let invite_state = events_of(&body["rooms"]["invite"][r]["invite_state"]);
        for ty in ["m.room.create", "m.room.join_rules"] {
            assert!(
                find_state(invite_state, ty, "").is_some(),
                "{ty} missing from invite_state: {invite_state:?}"
            );
        }
        let me = find_state(invite_state, "m.room.member", &bob.user_id)
            .unwrap_or_else(|| panic!("bob's invite missing: {invite_state:?}"));
        assert_eq!(me["content"]["membership"], "invite");
        assert_eq!(me["sender"], alice.user_id);
        for event in invite_state {
            for field in ["type", "state_key", "content", "sender"] {
                assert!(
                    event.get(field).is_some(),
                    "stripped event without {field}: {event}"
                );
            }
        }
        if let Some(name) = name {
            let event = find_state(invite_state, "m.room.name", "")
                .unwrap_or_else(|| panic!("the name is part of invite_state: {invite_state:?}"));
            assert_eq!(event["content"]["name"], name);
        }
    }
}

#[tokio::test]
async fn incremental_sync_and_long_polling() {
    let server = TestServer::start_default().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;
    let room = public_room(&server, &alice).await;
    join(&server, &bob, &room).await.ok();
    let body = sync(&server, &bob, "").await;
    let since = next_batch(&body);

    // Nothing new: no timeline events for the room.
    let body = sync(&server, &bob, &format!("since={}&timeout=0", enc(&since))).await;
    assert!(!has_join_updates(&body, &room), "{body}");
    let since = next_batch(&body);

    // An idle long-poll returns after its timeout, empty.
    let started = Instant::now();
    let body = sync(&server, &bob, &format!("since={}&timeout=500", enc(&since))).await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_secs(3),
        "an idle sync with timeout=500 took {elapsed:?}"
    );
    assert!(!has_join_updates(&body, &room), "{body}");
    let since = next_batch(&body);

    // A waiting long-poll returns as soon as alice sends.
    let waiting = {
        let url = format!(
            "{}{C}/sync?since={}&timeout=10000",
            server.url(),
            enc(&since)
        );
        let request = server.client().get(url).bearer_auth(&bob.access_token);
        tokio::spawn(async move {
            let response = request.send().await.expect("sync request");
            let returned = Instant::now();
            let body: Value = response.json().await.expect("sync JSON");
            (returned, body)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent_at = Instant::now();
    let message = send_text(&server, &alice, &room, "wake up").await;
    let (returned, body) = tokio::time::timeout(Duration::from_secs(15), waiting)
        .await
        .expect("the long-poll must end")
        .expect("the sync task");
    let latency = returned.saturating_duration_since(sent_at);
    assert!(
        latency < Duration::from_secs(1),
        "the waiting sync returned {latency:?} after the send"
    );
    assert_eq!(
        ids(events_of(&joined(&body, &room)["timeline"])),
        vec![message.clone()],
        "{body}"
    );
    assert_ne!(
        joined(&body, &room)["timeline"]["limited"],
        true,
        "one new event is not a gap"
    );
    let since = next_batch(&body);

    // A long-poll is also woken by an invite to a new room.
    let waiting = {
        let url = format!(
            "{}{C}/sync?since={}&timeout=10000",
            server.url(),
            enc(&since)
        );
        let request = server.client().get(url).bearer_auth(&bob.access_token);
        tokio::spawn(async move {
            let body: Value = request.send().await.unwrap().json().await.unwrap();
            (Instant::now(), body)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let invited_at = Instant::now();
    let second = create_room(&server, &alice, json!({"invite": [bob.user_id]})).await;
    let (returned, body) = tokio::time::timeout(Duration::from_secs(15), waiting)
        .await
        .expect("the long-poll must end")
        .unwrap();
    let latency = returned.saturating_duration_since(invited_at);
    assert!(
        latency < Duration::from_secs(2),
        "woken {latency:?} after the invite"
    );
    assert!(in_section(&body, "invite", &second), "{body}");
    let since = next_batch(&body);

    // Every event arrives exactly once across incremental syncs.
    let mut sent = Vec::new();
    for i in 0..3 {
        sent.push(send_text(&server, &alice, &room, &format!("n{i}")).await);
    }
    let body = sync(&server, &bob, &format!("since={}", enc(&since))).await;
    assert_eq!(ids(events_of(&joined(&body, &room)["timeline"])), sent);
    let since2 = next_batch(&body);
    let body = sync(&server, &bob, &format!("since={}", enc(&since2))).await;
    assert!(!has_join_updates(&body, &room), "{body}");
    // Re-using an older token replays the same events.
    let body = sync(&server, &bob, &format!("since={}", enc(&since))).await;
    assert_eq!(ids(events_of(&joined(&body, &room)["timeline"])), sent);

    // full_state: everything, immediately, even with a long timeout.
    let started = Instant::now();
    let body = sync(
        &server,
        &bob,
        &format!("since={}&full_state=true&timeout=5000", enc(&since2)),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "full_state ignores the timeout"
    );
    let entry = joined(&body, &room);
    let state = events_of(&entry["state"]);
    let timeline = events_of(&entry["timeline"]);
    let everything: Vec<Value> = state.iter().chain(timeline).cloned().collect();
    for (ty, key) in [
        ("m.room.create", ""),
        ("m.room.power_levels", ""),
        ("m.room.member", alice.user_id.as_str()),
        ("m.room.member", bob.user_id.as_str()),
    ] {
        assert!(
            find_state(&everything, ty, key).is_some(),
            "{ty}/{key}: {body}"
        );
    }

    // A bad token is refused.
    let resp = sync_raw(&server, &bob, "since=definitely-not-a-token").await;
    assert!(
        resp.status.is_client_error(),
        "{} {}",
        resp.status,
        resp.text
    );

    // Spec (full_state): "all state events will be returned, even if
    // `since` is non-empty. The timeline will still be limited by the
    // `since` parameter." Nothing happened since `since2`, so the whole
    // state belongs in `state` and the timeline is empty.
    assert!(
        timeline.is_empty(),
        "full_state with since: the timeline must only hold events after `since`, got {} events: {:?}",
        timeline.len(),
        ids(timeline)
    );
    assert!(
        find_state(state, "m.room.member", &alice.user_id).is_some(),
        "{body}"
    );
}

#[tokio::test]
async fn transaction_id_only_for_the_sending_device() {
    let server = TestServer::start_default().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;
    let alice2 = server.login("alice", "pw").await;
    let room = public_room(&server, &alice).await;
    join(&server, &bob, &room).await.ok();
    let resp = server
        .put(
            &room_path(&room, "/send/m.room.message/my-txn-1"),
            &alice,
            &json!({"msgtype": "m.text", "body": "txn"}),
        )
        .await;
    let event_id = resp.str_field("event_id").to_owned();

    let unsigned_of = async |who: &Session| -> Value {
        let body = sync(&server, who, "").await;
        events_of(&joined(&body, &room)["timeline"])
            .iter()
            .find(|e| e["event_id"] == event_id)
            .unwrap_or_else(|| panic!("the event is in the timeline: {body}"))["unsigned"]
            .clone()
    };
    assert_eq!(unsigned_of(&alice).await["transaction_id"], "my-txn-1");
    assert!(
        unsigned_of(&alice2).await.get("transaction_id").is_none(),
        "another device of the sender gets no transaction_id"
    );
    assert!(unsigned_of(&bob).await.get("transaction_id").is_none());
}

#[tokio::test]
async fn limited_timelines_and_gaps_are_filled_by_pagination() {
    let server = TestServer::start_default().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;
    let room = public_room(&server, &alice).await;
    join(&server, &bob, &room).await.ok();
    for i in 0..30 {
        send_text(&server, &alice, &room, &format!("m{i}")).await;
    }
    let all = ids(&paginate(&server, &bob, &room, "f", None, 50, 10).await);

    let filter_id =
        upload_filter(&server, &bob, &json!({"room": {"timeline": {"limit": 5}}})).await;
    let body = sync(&server, &bob, &format!("filter={}", enc(&filter_id))).await;
    let timeline = &joined(&body, &room)["timeline"];
    let recent = ids(events_of(timeline));
    assert_eq!(recent, all[all.len() - 5..].to_vec(), "{timeline}");
    assert_eq!(timeline["limited"], true, "{timeline}");
    let prev_batch = timeline["prev_batch"]
        .as_str()
        .expect("prev_batch")
        .to_owned();

    // Paginating back from prev_batch yields exactly the older events.
    let older = paginate(&server, &bob, &room, "b", Some(&prev_batch), 8, 20).await;
    let mut joined_up = ids(&older);
    joined_up.reverse();
    joined_up.extend(recent);
    assert_eq!(
        joined_up, all,
        "prev_batch pagination: no gap, no duplicate"
    );

    // A gappy incremental sync: the name change inside the gap is in
    // `state`, the timeline holds the newest events, and /messages from
    // prev_batch back to `since` returns exactly the gap.
    let since = next_batch(&body);
    let mut gap = Vec::new();
    for i in 0..3 {
        gap.push(send_text(&server, &alice, &room, &format!("g{i}")).await);
    }
    gap.push(
        put_state(
            &server,
            &alice,
            &room,
            "m.room.name",
            "",
            &json!({"name": "Gap name"}),
        )
        .await,
    );
    let mut newest = Vec::new();
    for i in 0..10 {
        newest.push(send_text(&server, &alice, &room, &format!("h{i}")).await);
    }
    let body = sync(
        &server,
        &bob,
        &format!("filter={}&since={}", enc(&filter_id), enc(&since)),
    )
    .await;
    let entry = joined(&body, &room);
    let timeline = &entry["timeline"];
    assert_eq!(ids(events_of(timeline)), newest[5..].to_vec(), "{timeline}");
    assert_eq!(timeline["limited"], true, "{timeline}");
    let name = find_state(events_of(&entry["state"]), "m.room.name", "")
        .unwrap_or_else(|| panic!("the name change in the gap belongs in `state`: {entry}"));
    assert_eq!(name["content"]["name"], "Gap name");
    assert_eq!(name["event_id"], gap[3]);
    // Only what changed: not the whole room state.
    assert!(
        find_state(events_of(&entry["state"]), "m.room.create", "").is_none(),
        "an incremental sync only carries state changed in the gap: {entry}"
    );
    let prev_batch = timeline["prev_batch"]
        .as_str()
        .expect("prev_batch")
        .to_owned();
    let query = format!(
        "dir=b&limit=50&from={}&to={}",
        enc(&prev_batch),
        enc(&since)
    );
    let resp = messages(&server, &bob, &room, &query).await;
    let mut filled = ids(events_of(&resp.ok()["chunk"]));
    filled.reverse();
    let mut expected = gap.clone();
    expected.extend_from_slice(&newest[..5]);
    assert_eq!(filled, expected, "the gap, exactly");

    // A small incremental sync is not limited.
    let since = next_batch(&body);
    let one = send_text(&server, &alice, &room, "small").await;
    let body = sync(
        &server,
        &bob,
        &format!("filter={}&since={}", enc(&filter_id), enc(&since)),
    )
    .await;
    let timeline = &joined(&body, &room)["timeline"];
    assert_eq!(ids(events_of(timeline)), vec![one]);
    assert_ne!(timeline["limited"], true, "{timeline}");
    assert!(
        events_of(&joined(&body, &room)["state"]).is_empty(),
        "{body}"
    );

    // The same filter inline behaves the same.
    let inline = filter_param(&json!({"room": {"timeline": {"limit": 5}}}));
    let body = sync(&server, &bob, &inline).await;
    assert_eq!(events_of(&joined(&body, &room)["timeline"]).len(), 5);
    // An unknown filter ID or broken JSON is refused.
    let resp = sync_raw(&server, &bob, "filter=999999").await;
    assert!(
        resp.status.is_client_error(),
        "{} {}",
        resp.status,
        resp.text
    );
    let resp = sync_raw(&server, &bob, "filter=%7Bbroken").await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.text);
}

#[tokio::test]
async fn sync_filters_select_rooms_and_events() {
    let server = TestServer::start_default().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;
    let first = public_room(&server, &alice).await;
    let second = public_room(&server, &alice).await;
    for room in [&first, &second] {
        join(&server, &bob, room).await.ok();
        send_text(&server, &alice, room, "text").await;
        send_event_raw(
            &server,
            &alice,
            room,
            "org.example.custom",
            &json!({"x": 1}),
        )
        .await
        .ok();
    }

    let with = async |filter: Value| sync(&server, &bob, &filter_param(&filter)).await;
    let body = with(json!({"room": {"rooms": [first]}})).await;
    assert!(in_section(&body, "join", &first), "{body}");
    assert!(!in_section(&body, "join", &second), "{body}");

    let body = with(json!({"room": {"not_rooms": [first]}})).await;
    assert!(!in_section(&body, "join", &first), "{body}");
    assert!(in_section(&body, "join", &second), "{body}");

    let body = with(json!({"room": {"timeline": {"types": ["org.example.custom"]}}})).await;
    let types: Vec<&str> = events_of(&joined(&body, &first)["timeline"])
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["org.example.custom"], "{body}");

    let body = with(json!({"room": {"timeline": {"not_types": ["m.room.message"]}}})).await;
    let timeline = events_of(&joined(&body, &first)["timeline"]);
    assert!(!timeline.is_empty());
    assert!(
        timeline.iter().all(|e| e["type"] != "m.room.message"),
        "{body}"
    );

    let body = with(json!({"room": {"timeline": {"senders": [bob.user_id]}}})).await;
    let timeline = events_of(&joined(&body, &first)["timeline"]);
    assert!(
        timeline.iter().all(|e| e["sender"] == bob.user_id),
        "{body}"
    );

    let body =
        with(json!({"room": {"state": {"types": ["m.room.create"]}, "timeline": {"limit": 1}}}))
            .await;
    let state = events_of(&joined(&body, &first)["state"]);
    assert!(!state.is_empty(), "{body}");
    assert!(state.iter().all(|e| e["type"] == "m.room.create"), "{body}");
}

#[tokio::test]
async fn lazy_loaded_members_in_sync() {
    let server = TestServer::start_default().await;
    let [alice, bob, carol, dave] = users(&server, ["alice", "bob", "carol", "dave"]).await;
    let fillers = users(&server, ["f1", "f2", "f3", "f4"]).await;
    let room = create_room(
        &server,
        &alice,
        json!({"preset": "public_chat", "name": "Lazy"}),
    )
    .await;
    // Join order: the fillers first (the heroes, if the server lists any),
    // then dave, carol and bob.
    for user in fillers.iter().chain([&dave, &carol, &bob]) {
        join(&server, user, &room).await.ok();
    }
    send_text(&server, &dave, &room, "older, by dave").await;
    send_text(&server, &carol, &room, "latest, by carol").await;

    let filter = json!({"room": {"state": {"lazy_load_members": true}, "timeline": {"limit": 1}}});
    let filter_id = upload_filter(&server, &bob, &filter).await;
    let body = sync(&server, &bob, &format!("filter={}", enc(&filter_id))).await;
    let entry = joined(&body, &room);
    let members = member_ids(events_of(&entry["state"]));
    let lazy_members = members.clone();
    let heroes: BTreeSet<String> = entry["summary"]["m.heroes"]
        .as_array()
        .map(|h| h.iter().map(|u| u.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    assert!(members.contains(&carol.user_id), "the sender: {members:?}");
    assert!(
        members.contains(&bob.user_id),
        "the syncing user: {members:?}"
    );
    assert!(
        !members.contains(&dave.user_id) || heroes.contains(&dave.user_id),
        "dave sent nothing in this timeline: {members:?}"
    );
    // Other state is complete.
    assert!(find_state(events_of(&entry["state"]), "m.room.name", "").is_some());
    assert_eq!(entry["summary"]["m.joined_member_count"], 8, "{entry}");

    // Incrementally, a new sender's membership comes along.
    let since = next_batch(&body);
    send_text(&server, &dave, &room, "dave again").await;
    let body = sync(
        &server,
        &bob,
        &format!("filter={}&since={}", enc(&filter_id), enc(&since)),
    )
    .await;
    let entry = joined(&body, &room);
    assert_eq!(bodies(events_of(&entry["timeline"])), ["dave again"]);
    let incremental_members = member_ids(events_of(&entry["state"]));
    let incremental_entry = entry.clone();

    // Without lazy-loading every member is in the initial state.
    let body = sync(
        &server,
        &bob,
        &filter_param(&json!({"room": {"timeline": {"limit": 1}}})),
    )
    .await;
    let members = member_ids(events_of(&joined(&body, &room)["state"]));
    assert_eq!(members.len(), 8, "{members:?}");
    assert!(members.contains(&alice.user_id));

    // Spec: "When lazy-loading room members is enabled, the membership
    // events for the heroes MUST be included in the state, unless they are
    // redundant."
    let missing: Vec<&String> = heroes
        .iter()
        .filter(|h| !lazy_members.contains(*h))
        .collect();
    let mut errors = Vec::new();
    if !missing.is_empty() {
        errors.push(format!(
            "heroes {heroes:?} listed, but the lazily loaded initial state lacks {missing:?}"
        ));
    }
    // Dave's membership was never sent to bob, so it must come with his
    // first event in an incremental sync.
    if !incremental_members.contains(&dave.user_id) {
        errors.push(format!(
            "dave's membership is missing next to his event: {incremental_entry}"
        ));
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[tokio::test]
async fn invite_join_and_leave_sections() {
    let server = TestServer::start_default().await;
    let [alice, bob, carol] = users(&server, ["alice", "bob", "carol"]).await;
    let room = create_room(
        &server,
        &alice,
        json!({"preset": "private_chat", "name": "Sections", "invite": [bob.user_id, carol.user_id]}),
    )
    .await;
    let body = sync(&server, &bob, "").await;
    assert!(in_section(&body, "invite", &room), "{body}");
    let since = next_batch(&body);
    let carol_since = next_batch(&sync(&server, &carol, "").await);

    // Accepting: join section, with bob's join in the timeline.
    join(&server, &bob, &room).await.ok();
    let body = sync(&server, &bob, &format!("since={}", enc(&since))).await;
    assert!(!in_section(&body, "invite", &room), "{body}");
    let timeline = events_of(&joined(&body, &room)["timeline"]);
    let join_event = timeline
        .iter()
        .rfind(|e| e["type"] == "m.room.member" && e["state_key"] == bob.user_id)
        .unwrap_or_else(|| panic!("bob's join in the timeline: {body}"));
    assert_eq!(join_event["content"]["membership"], "join");
    // A newly joined room comes with its full state.
    let state_and_timeline: Vec<Value> = events_of(&joined(&body, &room)["state"])
        .iter()
        .chain(timeline)
        .cloned()
        .collect();
    for ty in ["m.room.create", "m.room.name", "m.room.power_levels"] {
        assert!(
            find_state(&state_and_timeline, ty, "").is_some(),
            "{ty} missing after joining: {body}"
        );
    }
    let since = next_batch(&body);

    // Kicked: leave section, with the kick in the timeline.
    send_text(&server, &alice, &room, "before the kick").await;
    moderate(&server, &alice, &room, "kick", &bob.user_id, Some("bye"))
        .await
        .ok();
    send_text(&server, &alice, &room, "after the kick").await;
    let body = sync(&server, &bob, &format!("since={}", enc(&since))).await;
    assert!(!in_section(&body, "join", &room), "{body}");
    let left = &body["rooms"]["leave"][&room];
    let timeline = events_of(&left["timeline"]);
    assert_eq!(
        bodies(timeline),
        ["before the kick"],
        "nothing after the kick: {left}"
    );
    let kick = timeline
        .iter()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == bob.user_id)
        .cloned();
    let kick_sync = body.clone();
    let since = next_batch(&body);
    // … and only once.
    let body = sync(&server, &bob, &format!("since={}", enc(&since))).await;
    assert!(!in_section(&body, "leave", &room), "{body}");

    // Rejecting an invite: leave section too.
    leave(&server, &carol, &room).await.ok();
    let body = sync(&server, &carol, &format!("since={}", enc(&carol_since))).await;
    assert!(!in_section(&body, "invite", &room), "{body}");
    assert!(in_section(&body, "leave", &room), "{body}");

    // Initial syncs include left rooms only with include_leave.
    let body = sync(&server, &bob, "").await;
    assert!(!in_section(&body, "leave", &room), "{body}");
    assert!(!in_section(&body, "join", &room), "{body}");
    let body = sync(
        &server,
        &bob,
        &filter_param(&json!({"room": {"include_leave": true}})),
    )
    .await;
    assert!(in_section(&body, "leave", &room), "{body}");

    // The kick itself must reach bob (his membership before it was `join`,
    // so history visibility allows it): otherwise he never learns who
    // removed him, or why.
    let kick =
        kick.unwrap_or_else(|| panic!("the kick is missing from the leave timeline: {kick_sync}"));
    assert_eq!(kick["content"]["membership"], "leave");
    assert_eq!(kick["content"]["reason"], "bye");
    assert_eq!(kick["sender"], alice.user_id);
}

#[tokio::test]
async fn account_data_in_sync() {
    let server = TestServer::start_default().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;
    let room = public_room(&server, &alice).await;
    let other = public_room(&server, &alice).await;
    let global = |ty: &str| format!("{C}/user/{}/account_data/{ty}", enc(&alice.user_id));
    let per_room = |room: &str, ty: &str| {
        format!(
            "{C}/user/{}/rooms/{}/account_data/{ty}",
            enc(&alice.user_id),
            enc(room)
        )
    };
    let types_of = |batch: &Value| -> Vec<String> {
        let mut types: Vec<String> = events_of(batch)
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect();
        types.sort();
        types
    };

    server
        .put(&global("org.example.a"), &alice, &json!({"v": 1}))
        .await
        .ok();
    server
        .put(
            &per_room(&room, "org.example.r"),
            &alice,
            &json!({"tag": "x"}),
        )
        .await
        .ok();
    let resp = server.get(&per_room(&room, "org.example.r"), &alice).await;
    assert_eq!(resp.ok(), &json!({"tag": "x"}));
    let resp = server.get(&per_room(&other, "org.example.r"), &alice).await;
    assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    let body = sync(&server, &alice, "").await;
    let events = events_of(&body["account_data"]);
    let a = events
        .iter()
        .find(|e| e["type"] == "org.example.a")
        .unwrap_or_else(|| panic!("global account data in the initial sync: {body}"));
    assert_eq!(a["content"], json!({"v": 1}));
    let room_data = &joined(&body, &room)["account_data"];
    assert_eq!(types_of(room_data), ["org.example.r"], "{body}");
    assert_eq!(events_of(room_data)[0]["content"], json!({"tag": "x"}));
    assert!(
        types_of(&joined(&body, &other)["account_data"]).is_empty(),
        "room account data stays in its room: {body}"
    );
    let since = next_batch(&body);

    // Incremental: only what changed.
    server
        .put(&global("org.example.b"), &alice, &json!({"v": 2}))
        .await
        .ok();
    server
        .put(&per_room(&room, "org.example.s"), &alice, &json!({"n": 1}))
        .await
        .ok();
    let body = sync(&server, &alice, &format!("since={}", enc(&since))).await;
    assert_eq!(types_of(&body["account_data"]), ["org.example.b"], "{body}");
    assert_eq!(
        types_of(&joined(&body, &room)["account_data"]),
        ["org.example.s"],
        "{body}"
    );
    assert!(!has_join_updates(&body, &other), "{body}");
    let since = next_batch(&body);
    let body = sync(&server, &alice, &format!("since={}", enc(&since))).await;
    assert!(types_of(&body["account_data"]).is_empty(), "{body}");
    assert!(!has_join_updates(&body, &room), "{body}");

    // Access control and validation.
    let resp = server
        .put(&per_room(&room, "org.example.r"), &bob, &json!({}))
        .await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = server.get(&per_room(&room, "org.example.r"), &bob).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = server
        .put(
            &per_room("not-a-room-id", "org.example.r"),
            &alice,
            &json!({}),
        )
        .await;
    assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let resp = server
        .put(
            &per_room(&room, "m.fully_read"),
            &alice,
            &json!({"event_id": "$x"}),
        )
        .await;
    assert_matrix_error(&resp, StatusCode::METHOD_NOT_ALLOWED, "M_BAD_JSON");
    let resp = server
        .put(
            &per_room(&room, "org.example.r"),
            &alice,
            &json!(["not an object"]),
        )
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.text);
}
