//! The room engine seen through the client-server API: `/createRoom` and its
//! options, room versions and their ID formats, state endpoints, sending
//! (transactions, size and JSON limits), redaction, fetching single events,
//! and unknown rooms.

use complement_tests::*;

use crate::room_support::*;

/// The content of a state event, panicking with the response when absent.
async fn state_content(
    server: &TestServer,
    who: &Session,
    room: &str,
    event_type: &str,
    key: &str,
) -> Value {
    get_state(server, who, room, event_type, key)
        .await
        .ok()
        .clone()
}

#[tokio::test]
async fn create_room_presets_set_the_documented_state() {
    let server = TestServer::start_default().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;

    // (request, join_rule, guest_access, published in the directory)
    let cases = [
        (
            json!({"preset": "private_chat"}),
            "invite",
            "can_join",
            "private",
        ),
        (json!({}), "invite", "can_join", "private"),
        (
            json!({"visibility": "private"}),
            "invite",
            "can_join",
            "private",
        ),
        (
            json!({"preset": "public_chat"}),
            "public",
            "forbidden",
            "private",
        ),
        (
            json!({"visibility": "public"}),
            "public",
            "forbidden",
            "public",
        ),
        (
            json!({"preset": "trusted_private_chat", "invite": [bob.user_id]}),
            "invite",
            "can_join",
            "private",
        ),
    ];
    for (request, join_rule, guest_access, visibility) in cases {
        let room = create_room(&server, &alice, request.clone()).await;
        let content = state_content(&server, &alice, &room, "m.room.join_rules", "").await;
        assert_eq!(content["join_rule"], join_rule, "join_rule for {request}");
        let content = state_content(&server, &alice, &room, "m.room.history_visibility", "").await;
        assert_eq!(
            content["history_visibility"], "shared",
            "history_visibility for {request}"
        );
        let content = state_content(&server, &alice, &room, "m.room.guest_access", "").await;
        assert_eq!(
            content["guest_access"], guest_access,
            "guest_access for {request}"
        );
        let resp = server
            .get(&format!("{C}/directory/list/room/{}", enc(&room)), &NoAuth)
            .await;
        assert_eq!(
            resp.ok()["visibility"],
            visibility,
            "directory visibility for {request}"
        );
        // The creator is joined; the create event names the right version.
        assert_eq!(
            membership_of(&server, &alice, &room, &alice.user_id)
                .await
                .as_deref(),
            Some("join")
        );
        let create = state_content(&server, &alice, &room, "m.room.create", "").await;
        assert_eq!(create["room_version"], "12", "default room version");
    }

    // trusted_private_chat gives invitees the creator's power: in room
    // version 12 by making them additional creators (the creator itself is
    // never listed in `users`).
    let room = create_room(
        &server,
        &alice,
        json!({"preset": "trusted_private_chat", "invite": [bob.user_id]}),
    )
    .await;
    let levels = state_content(&server, &alice, &room, "m.room.power_levels", "").await;
    assert!(
        levels["users"].get(&alice.user_id).is_none(),
        "v12 creators must not be listed in power_levels.users: {levels}"
    );
    join(&server, &bob, &room).await.ok();
    // Bob has the creator's power: he may change the power levels and set
    // state that needs 100.
    let mut raised = levels.clone();
    raised["events"]["m.room.name"] = json!(100);
    put_state(&server, &bob, &room, "m.room.power_levels", "", &raised).await;
    put_state(
        &server,
        &bob,
        &room,
        "m.room.name",
        "",
        &json!({"name": "bob may"}),
    )
    .await;
    let v12_trusted = room.clone();

    // In room version 11 the invitee gets the creator's power level.
    let room = create_room(
        &server,
        &alice,
        json!({"preset": "trusted_private_chat", "invite": [bob.user_id], "room_version": "11"}),
    )
    .await;
    let levels = state_content(&server, &alice, &room, "m.room.power_levels", "").await;
    assert_eq!(levels["users"][&alice.user_id], 100, "{levels}");
    assert_eq!(levels["users"][&bob.user_id], 100, "{levels}");

    // A plain private_chat in v11 lists only the creator.
    let room = create_room(
        &server,
        &alice,
        json!({"preset": "private_chat", "invite": [bob.user_id], "room_version": "11"}),
    )
    .await;
    let levels = state_content(&server, &alice, &room, "m.room.power_levels", "").await;
    assert_eq!(levels["users"][&alice.user_id], 100, "{levels}");
    assert!(levels["users"].get(&bob.user_id).is_none(), "{levels}");

    // How the v12 invitee got that power: the spec's mechanism is
    // `additional_creators` in the create event.
    let create = state_content(&server, &alice, &v12_trusted, "m.room.create", "").await;
    assert_eq!(
        create["additional_creators"],
        json!([bob.user_id]),
        "v12 trusted_private_chat invitees SHOULD become additional creators: {create}"
    );
}

#[tokio::test]
async fn room_events_carry_the_room_id() {
    // The client event format (`ClientEvent`) requires `room_id` everywhere
    // but in /sync (which uses the format without it).
    let server = TestServer::start_default().await;
    let [alice] = users(&server, ["alice"]).await;
    let room = create_room(&server, &alice, json!({"name": "R"})).await;
    let message = send_text(&server, &alice, &room, "hi").await;

    let mut missing = Vec::new();
    let resp = server
        .get(
            &room_path(&room, &format!("/event/{}", enc(&message))),
            &alice,
        )
        .await;
    if resp.ok()["room_id"] != room {
        missing.push(format!("GET /event: {}", resp.text));
    }
    let resp = messages(&server, &alice, &room, "dir=b&limit=50").await;
    for event in events_of(&resp.ok()["chunk"]) {
        if event["room_id"] != room {
            missing.push(format!("GET /messages: {event}"));
        }
    }
    let resp = server
        .get(
            &room_path(&room, &format!("/context/{}", enc(&message))),
            &alice,
        )
        .await;
    let body = resp.ok();
    for event in std::iter::once(&body["event"])
        .chain(events_of(&body["events_before"]))
        .chain(events_of(&body["state"]))
    {
        if event["room_id"] != room {
            missing.push(format!("GET /context: {event}"));
        }
    }
    let resp = server.get(&room_path(&room, "/members"), &alice).await;
    for event in events_of(&resp.ok()["chunk"]) {
        if event["room_id"] != room {
            missing.push(format!("GET /members: {event}"));
        }
    }
    let resp = server.get(&room_path(&room, "/state"), &alice).await;
    for event in events_of(resp.ok()) {
        if event["room_id"] != room {
            missing.push(format!("GET /state: {event}"));
        }
    }
    let event = get_state_event(&server, &alice, &room, "m.room.name", "").await;
    if event["room_id"] != room {
        missing.push(format!("GET /state/m.room.name/?format=event: {event}"));
    }
    assert!(
        missing.is_empty(),
        "events without the right room_id:\n{}",
        missing.join("\n")
    );
}

#[tokio::test]
async fn room_versions_and_id_formats() {
    let server = TestServer::start_default().await;
    let [alice] = users(&server, ["alice"]).await;
    let suffix = format!(":{}", server.server_name());

    for version in 1..=12 {
        let version = version.to_string();
        let room = create_room(&server, &alice, json!({"room_version": version})).await;
        assert!(room.starts_with('!'), "{room}");
        let create = get_state_event(&server, &alice, &room, "m.room.create", "").await;
        assert_eq!(create["content"]["room_version"], version, "{create}");
        assert_eq!(create["sender"], alice.user_id, "{create}");
        let create_id = create["event_id"].as_str().unwrap().to_owned();
        let message_id = send_text(&server, &alice, &room, "hello").await;

        if version == "12" {
            // The room ID is the create event's reference hash.
            assert!(
                !room.contains(':'),
                "v12 room IDs have no server part: {room}"
            );
            assert_eq!(
                create_id,
                format!("${}", &room[1..]),
                "in v12 the room ID is derived from the create event ID"
            );
        } else {
            assert!(room.ends_with(&suffix), "v{version} room ID {room}");
        }
        // `creator` exists only in versions 1 to 10.
        if version.parse::<u32>().unwrap() <= 10 {
            assert_eq!(create["content"]["creator"], alice.user_id, "{create}");
        } else {
            assert!(
                create["content"].get("creator").is_none(),
                "v{version} create events carry no `creator`: {create}"
            );
        }
        for id in [&create_id, &message_id] {
            assert!(id.starts_with('$'), "{id}");
            match version.as_str() {
                "1" | "2" => assert!(id.ends_with(&suffix), "v{version} event ID {id}"),
                "3" => {
                    assert_eq!(id.len(), 44, "v3 event ID {id}");
                    assert!(
                        id[1..]
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'),
                        "v3 event IDs use standard base64: {id}"
                    );
                }
                _ => {
                    assert_eq!(id.len(), 44, "v{version} event ID {id}");
                    assert!(
                        id[1..]
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                        "v4+ event IDs use URL-safe base64: {id}"
                    );
                }
            }
        }
        // The message can be fetched back by its (encoded) ID.
        let resp = server
            .get(
                &room_path(&room, &format!("/event/{}", enc(&message_id))),
                &alice,
            )
            .await;
        assert_eq!(resp.ok()["content"]["body"], "hello", "v{version}");
    }

    for bad in ["13", "0", "foo", "12.0"] {
        let resp = server
            .post(
                &format!("{C}/createRoom"),
                &alice,
                &json!({"room_version": bad}),
            )
            .await;
        assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_UNSUPPORTED_ROOM_VERSION");
    }
    // The capabilities agree with what createRoom does by default.
    let caps = server.get(&format!("{C}/capabilities"), &alice).await;
    let versions = &caps.ok()["capabilities"]["m.room_versions"];
    assert_eq!(versions["default"], "12", "{versions}");
    for version in 1..=12 {
        assert_eq!(
            versions["available"][version.to_string()],
            "stable",
            "{versions}"
        );
    }
}

#[tokio::test]
async fn create_room_options_are_applied() {
    let server = TestServer::start_default().await;
    let [alice, bob, carol] = users(&server, ["alice", "bob", "carol"]).await;

    let room = create_room(
        &server,
        &alice,
        json!({
            "preset": "private_chat",
            "name": "The Name",
            "topic": "The topic",
            "invite": [bob.user_id, carol.user_id],
            "is_direct": true,
            "room_alias_name": "options",
            "creation_content": {
                "m.federate": false,
                "org.example.extra": 7,
                "room_version": "1",
                "creator": "@mallory:evil.example",
            },
            "initial_state": [
                {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "public"}},
                {"type": "m.room.name", "content": {"name": "overridden by name"}},
                {"type": "org.example.custom", "state_key": "k", "content": {"v": 1}},
                {"type": "m.room.history_visibility", "content": {"history_visibility": "joined"}},
            ],
            "power_level_content_override": {
                "events_default": 10,
                "events": {"org.example.custom": 75},
            },
        }),
    )
    .await;
    assert!(!room.contains(':'), "default version 12: {room}");

    let name = state_content(&server, &alice, &room, "m.room.name", "").await;
    assert_eq!(name["name"], "The Name", "`name` beats initial_state");
    let topic = state_content(&server, &alice, &room, "m.room.topic", "").await;
    assert_eq!(topic["topic"], "The topic");
    let rules = state_content(&server, &alice, &room, "m.room.join_rules", "").await;
    assert_eq!(rules["join_rule"], "public", "initial_state beats preset");
    let hv = state_content(&server, &alice, &room, "m.room.history_visibility", "").await;
    assert_eq!(
        hv["history_visibility"], "joined",
        "initial_state beats preset"
    );
    let custom = state_content(&server, &alice, &room, "org.example.custom", "k").await;
    assert_eq!(custom, json!({"v": 1}));

    // creation_content: extra keys kept, creator/room_version overwritten.
    let create = state_content(&server, &alice, &room, "m.room.create", "").await;
    assert_eq!(create["m.federate"], false, "{create}");
    assert_eq!(create["org.example.extra"], 7, "{create}");
    assert_eq!(create["room_version"], "12", "{create}");
    assert!(
        create.get("creator").is_none(),
        "the server overwrites `creator` (absent in v12): {create}"
    );

    // power_level_content_override replaces top-level keys.
    let levels = state_content(&server, &alice, &room, "m.room.power_levels", "").await;
    assert_eq!(levels["events_default"], 10, "{levels}");
    assert_eq!(
        levels["events"],
        json!({"org.example.custom": 75}),
        "{levels}"
    );
    assert_eq!(levels["state_default"], 50, "defaults kept: {levels}");
    assert_eq!(levels["kick"], 50, "{levels}");
    assert_eq!(levels["ban"], 50, "{levels}");
    assert_eq!(levels["invite"], 0, "{levels}");

    // Invites, flagged as direct.
    for user in [&bob, &carol] {
        let member = state_content(&server, &alice, &room, "m.room.member", &user.user_id).await;
        assert_eq!(member["membership"], "invite", "{member}");
        assert_eq!(member["is_direct"], true, "{member}");
    }
    let alice_member = state_content(&server, &alice, &room, "m.room.member", &alice.user_id).await;
    assert_eq!(alice_member["membership"], "join");

    // The alias resolves and is the canonical alias.
    let alias = format!("#options:{}", server.server_name());
    let canonical = state_content(&server, &alice, &room, "m.room.canonical_alias", "").await;
    assert_eq!(canonical["alias"], alias, "{canonical}");
    let resp = server
        .get(&format!("{C}/directory/room/{}", enc(&alias)), &bob)
        .await;
    assert_eq!(resp.ok()["room_id"], room);

    // The same alias again is refused, and no room is left behind.
    let before = joined_rooms(&server, &alice).await;
    let resp = server
        .post(
            &format!("{C}/createRoom"),
            &alice,
            &json!({"room_alias_name": "options", "name": "dup"}),
        )
        .await;
    assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_ROOM_IN_USE");
    assert_eq!(
        joined_rooms(&server, &alice).await.len(),
        before.len(),
        "a refused createRoom must not create a room"
    );

    // Order of the initial events: create, creator join, power levels,
    // canonical alias, preset, initial_state, name/topic, invites.
    let events = paginate(&server, &alice, &room, "f", None, 50, 5).await;
    let kinds: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                e["type"].as_str().unwrap_or_default(),
                e["state_key"].as_str().unwrap_or_default()
            )
        })
        .collect();
    let pos = |kind: &str| {
        kinds
            .iter()
            .position(|k| k == kind)
            .unwrap_or_else(|| panic!("{kind} missing from {kinds:?}"))
    };
    let member = |user: &Session| format!("m.room.member/{}", user.user_id);
    assert_eq!(pos("m.room.create/"), 0, "{kinds:?}");
    assert_eq!(pos(&member(&alice)), 1, "{kinds:?}");
    assert_eq!(pos("m.room.power_levels/"), 2, "{kinds:?}");
    assert!(
        pos("m.room.canonical_alias/") < pos("org.example.custom/k"),
        "{kinds:?}"
    );
    assert!(
        pos("org.example.custom/k") < pos("m.room.topic/"),
        "{kinds:?}"
    );
    assert!(pos("m.room.topic/") < pos(&member(&bob)), "{kinds:?}");
    assert!(pos("m.room.topic/") < pos(&member(&carol)), "{kinds:?}");
}

#[tokio::test]
async fn v12_power_levels_for_creators() {
    let server = TestServer::start_default().await;
    let [alice, bob, carol] = users(&server, ["alice", "bob", "carol"]).await;

    let room = public_room(&server, &alice).await;
    let levels = state_content(&server, &alice, &room, "m.room.power_levels", "").await;
    assert!(
        levels["users"].get(&alice.user_id).is_none(),
        "v12: the creator is not in `users`: {levels}"
    );
    let state_default = levels["state_default"].as_i64().unwrap_or(0);
    let tombstone = levels["events"]["m.room.tombstone"]
        .as_i64()
        .unwrap_or_else(|| panic!("v12 rooms set a tombstone level explicitly: {levels}"));
    assert!(
        tombstone > state_default,
        "v12: tombstone level {tombstone} must exceed state_default {state_default}"
    );

    // Listing a creator in `users` is refused by the auth rules.
    let mut with_creator = levels.clone();
    with_creator["users"][&alice.user_id] = json!(100);
    let resp = put_state_raw(
        &server,
        &alice,
        &room,
        "m.room.power_levels",
        "",
        &with_creator,
    )
    .await;
    assert!(
        resp.status == StatusCode::FORBIDDEN || resp.status == StatusCode::BAD_REQUEST,
        "power levels naming a v12 creator must be refused: {} {}",
        resp.status,
        resp.text
    );

    // Bob at 100 still cannot kick the creator (infinite power).
    join(&server, &bob, &room).await.ok();
    let mut promoted = levels.clone();
    promoted["users"] = json!({ bob.user_id.clone(): 100 });
    put_state(&server, &alice, &room, "m.room.power_levels", "", &promoted).await;
    let resp = moderate(&server, &bob, &room, "kick", &alice.user_id, None).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = moderate(&server, &bob, &room, "ban", &alice.user_id, None).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    // … but the creator can kick bob.
    moderate(&server, &alice, &room, "kick", &bob.user_id, None)
        .await
        .ok();

    // additional_creators get unlimited power too.
    let room = create_room(
        &server,
        &alice,
        json!({"preset": "public_chat", "creation_content": {"additional_creators": [carol.user_id]}}),
    )
    .await;
    join(&server, &carol, &room).await.ok();
    join(&server, &bob, &room).await.ok();
    put_state(
        &server,
        &carol,
        &room,
        "m.room.name",
        "",
        &json!({"name": "by an additional creator"}),
    )
    .await;
    moderate(&server, &carol, &room, "kick", &bob.user_id, None)
        .await
        .ok();
    let resp = moderate(&server, &carol, &room, "kick", &alice.user_id, None).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

#[tokio::test]
async fn state_endpoints() {
    let server = TestServer::start_default().await;
    let [alice, bob, carol] = users(&server, ["alice", "bob", "carol"]).await;
    let room = create_room(
        &server,
        &alice,
        json!({"preset": "public_chat", "name": "Start"}),
    )
    .await;
    join(&server, &bob, &room).await.ok();

    // Whole state: every event is complete.
    let resp = server.get(&room_path(&room, "/state"), &alice).await;
    let state = resp.ok().as_array().expect("an array of events").clone();
    for (ty, key) in [
        ("m.room.create", ""),
        ("m.room.power_levels", ""),
        ("m.room.join_rules", ""),
        ("m.room.history_visibility", ""),
        ("m.room.name", ""),
        ("m.room.member", alice.user_id.as_str()),
        ("m.room.member", bob.user_id.as_str()),
    ] {
        let event =
            find_state(&state, ty, key).unwrap_or_else(|| panic!("{ty}/{key} missing: {state:?}"));
        for field in ["event_id", "sender", "origin_server_ts", "content"] {
            assert!(event.get(field).is_some(), "{field} missing in {event}");
        }
    }
    // Exactly one event per (type, state_key).
    let mut keys: Vec<(String, String)> = state
        .iter()
        .map(|e| (e["type"].to_string(), e["state_key"].to_string()))
        .collect();
    let total = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), total, "duplicate state entries: {state:?}");

    // Empty state key, with and without the trailing slash.
    let plain = room_path(&room, "/state/m.room.name");
    let slash = room_path(&room, "/state/m.room.name/");
    let resp = server.put(&plain, &alice, &json!({"name": "Plain"})).await;
    let plain_id = resp.str_field("event_id").to_owned();
    assert_eq!(server.get(&slash, &bob).await.ok()["name"], "Plain");
    let resp = server.put(&slash, &alice, &json!({"name": "Slash"})).await;
    let slash_id = resp.str_field("event_id").to_owned();
    assert_ne!(plain_id, slash_id);
    assert_eq!(
        server.get(&plain, &bob).await.ok(),
        &json!({"name": "Slash"})
    );

    // format=event returns the whole event.
    for path in [
        format!("{plain}?format=event"),
        format!("{slash}?format=event"),
    ] {
        let resp = server.get(&path, &bob).await;
        let event = resp.ok();
        assert_eq!(event["event_id"], slash_id, "{event}");
        assert_eq!(event["type"], "m.room.name");
        assert_eq!(event["state_key"], "");
        assert_eq!(event["sender"], alice.user_id);
        assert_eq!(event["content"], json!({"name": "Slash"}));
    }
    let resp = server.get(&format!("{plain}?format=content"), &bob).await;
    assert_eq!(resp.ok(), &json!({"name": "Slash"}));

    // A non-empty state key with special characters.
    let key = "a key/with #odd: chars";
    put_state(
        &server,
        &alice,
        &room,
        "org.example.thing",
        key,
        &json!({"n": 1}),
    )
    .await;
    let resp = get_state(&server, &bob, &room, "org.example.thing", key).await;
    assert_eq!(resp.ok(), &json!({"n": 1}));
    let event = get_state_event(&server, &bob, &room, "org.example.thing", key).await;
    assert_eq!(event["state_key"], key);

    // Unknown state.
    let resp = get_state(&server, &alice, &room, "m.room.topic", "").await;
    assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let resp = get_state(&server, &alice, &room, "org.example.thing", "other").await;
    assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    // Bob (power 0) cannot set state that needs 50.
    let resp = server.put(&plain, &bob, &json!({"name": "Bob's"})).await;
    let body = assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let error = body["error"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        error.contains("power"),
        "the reason should mention power: {error}"
    );
    assert_eq!(server.get(&plain, &bob).await.ok()["name"], "Slash");

    // Carol (not a member) can neither read nor write state.
    let resp = server.get(&room_path(&room, "/state"), &carol).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = server.get(&plain, &carol).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = put_state_raw(&server, &carol, &room, "org.example.thing", "c", &json!({})).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    // State content must be a JSON object.
    let resp = server
        .put(&plain, &alice, &json!(["not", "an", "object"]))
        .await;
    assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_BAD_JSON");

    // A member who left sees the state as it was when they left.
    leave(&server, &bob, &room).await.ok();
    put_state(
        &server,
        &alice,
        &room,
        "m.room.name",
        "",
        &json!({"name": "After bob"}),
    )
    .await;
    let resp = server.get(&plain, &bob).await;
    assert_eq!(
        resp.ok()["name"],
        "Slash",
        "a left member sees the state at the time they left"
    );
}

#[tokio::test]
async fn sending_events_transactions_and_limits() {
    let server = TestServer::start_default().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;
    let alice2 = server.login("alice", "pw").await;
    let room = public_room(&server, &alice).await;
    let send_path = |txn: &str| room_path(&room, &format!("/send/m.room.message/{txn}"));
    let msg = json!({"msgtype": "m.text", "body": "once"});

    // The same transaction ID from the same device is idempotent.
    let first = server.put(&send_path("t1"), &alice, &msg).await;
    let first_id = first.str_field("event_id").to_owned();
    let again = server.put(&send_path("t1"), &alice, &msg).await;
    assert_eq!(again.str_field("event_id"), first_id);
    let changed = server
        .put(
            &send_path("t1"),
            &alice,
            &json!({"msgtype": "m.text", "body": "other"}),
        )
        .await;
    assert_eq!(
        changed.str_field("event_id"),
        first_id,
        "a retried transaction returns the original event"
    );
    // Another device of the same user has its own transaction namespace.
    let other_device = server.put(&send_path("t1"), &alice2, &msg).await;
    let other_id = other_device.str_field("event_id").to_owned();
    assert_ne!(other_id, first_id);
    let events = paginate(&server, &alice, &room, "b", None, 50, 5).await;
    let sent: Vec<String> = events
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        sent,
        vec![other_id.clone(), first_id.clone()],
        "exactly two messages"
    );

    // The event carries what was sent.
    let resp = server
        .get(
            &room_path(&room, &format!("/event/{}", enc(&first_id))),
            &bob,
        )
        .await;
    assert_denied(&resp);
    join(&server, &bob, &room).await.ok();
    let resp = server
        .get(
            &room_path(&room, &format!("/event/{}", enc(&first_id))),
            &bob,
        )
        .await;
    let event = resp.ok();
    assert_eq!(event["content"], msg);
    assert_eq!(event["sender"], alice.user_id);
    assert_eq!(event["type"], "m.room.message");
    assert_eq!(event["room_id"], room);
    assert!(event["origin_server_ts"].as_u64().is_some(), "{event}");
    assert!(event.get("state_key").is_none(), "{event}");

    // Custom event types and empty content are fine.
    let resp = send_event_raw(&server, &bob, &room, "org.example.ping", &json!({})).await;
    resp.ok();

    // Too large: the event would exceed 65536 bytes.
    let big = json!({"msgtype": "m.text", "body": "x".repeat(70_000)});
    let resp = server.put(&send_path("big"), &alice, &big).await;
    assert_matrix_error(&resp, StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");

    // Content must be canonical-JSON-compatible objects.
    for bad in [
        json!(["a", "list"]),
        json!("a string"),
        json!(42),
        json!({"body": "float", "n": 1.5}),
        json!({"body": "too big", "n": 9_007_199_254_740_992_u64}),
    ] {
        let resp = server.put(&send_path(&txn_id()), &alice, &bad).await;
        assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    }
    let resp = server
        .send(
            server
                .request(Method::PUT, &send_path("notjson"), &alice)
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_NOT_JSON");

    // Non-members cannot send.
    leave(&server, &bob, &room).await.ok();
    let resp = server.put(&send_path("bob1"), &bob, &msg).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    // Members below events_default cannot send.
    join(&server, &bob, &room).await.ok();
    let mut levels = get_state(&server, &alice, &room, "m.room.power_levels", "")
        .await
        .ok()
        .clone();
    levels["events_default"] = json!(20);
    put_state(&server, &alice, &room, "m.room.power_levels", "", &levels).await;
    let resp = server.put(&send_path("bob2"), &bob, &msg).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

#[tokio::test]
async fn redaction() {
    let server = TestServer::start_default().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;
    let room = create_room(
        &server,
        &alice,
        json!({"preset": "public_chat", "name": "Named"}),
    )
    .await;
    join(&server, &bob, &room).await.ok();
    let target = send_text(&server, &alice, &room, "secret words").await;
    let bobs = send_text(&server, &bob, &room, "bob's words").await;
    let redact_path =
        |event: &str, txn: &str| room_path(&room, &format!("/redact/{}/{txn}", enc(event)));

    // Bob (power 0) cannot redact alice's event, but can redact his own.
    let bob_attempt = server
        .put(&redact_path(&target, "r0"), &bob, &json!({}))
        .await;
    let resp = server
        .get(&room_path(&room, &format!("/event/{}", enc(&target))), &bob)
        .await;
    assert_eq!(
        resp.ok()["content"]["body"],
        "secret words",
        "a redaction by a user below `redact` must not apply; the request got {} {}",
        bob_attempt.status,
        bob_attempt.text
    );
    let resp = server
        .put(&redact_path(&bobs, "r1"), &bob, &json!({}))
        .await;
    resp.ok();

    let resp = server
        .put(
            &redact_path(&target, "r2"),
            &alice,
            &json!({"reason": "oops"}),
        )
        .await;
    let redaction_id = resp.str_field("event_id").to_owned();
    // Idempotent per transaction.
    let again = server
        .put(
            &redact_path(&target, "r2"),
            &alice,
            &json!({"reason": "oops"}),
        )
        .await;
    assert_eq!(again.str_field("event_id"), redaction_id);

    let fetch = |id: String| {
        let server = &server;
        let bob = &bob;
        let room = &room;
        async move {
            server
                .get(&room_path(room, &format!("/event/{}", enc(&id))), bob)
                .await
        }
    };
    let resp = fetch(target.clone()).await;
    let redacted = resp.ok();
    assert_eq!(redacted["content"], json!({}), "{redacted}");
    assert_eq!(redacted["type"], "m.room.message");
    assert_eq!(
        redacted["unsigned"]["redacted_because"]["event_id"], redaction_id,
        "{redacted}"
    );
    let resp = fetch(redaction_id.clone()).await;
    let redaction = resp.ok();
    assert_eq!(redaction["type"], "m.room.redaction");
    assert_eq!(
        redaction["content"]["redacts"], target,
        "v11+: `redacts` in content"
    );
    assert_eq!(redaction["content"]["reason"], "oops");

    // /messages shows the redacted form too.
    let events = paginate(&server, &bob, &room, "b", None, 50, 5).await;
    let seen = events
        .iter()
        .find(|e| e["event_id"] == target)
        .expect("the redacted event is still in the timeline");
    assert_eq!(seen["content"], json!({}));
    assert!(
        bodies(&events).iter().all(|b| !b.contains("words")),
        "{events:?}"
    );

    // Redacting a state event strips its content in the current state.
    let name = get_state_event(&server, &alice, &room, "m.room.name", "").await;
    let name_id = name["event_id"].as_str().unwrap().to_owned();
    server
        .put(&redact_path(&name_id, "r3"), &alice, &json!({}))
        .await
        .ok();
    let resp = get_state(&server, &bob, &room, "m.room.name", "").await;
    assert_eq!(resp.ok(), &json!({}), "the name is gone after redaction");

    // The refused redaction must be refused to the client too: otherwise
    // clients that see the `m.room.redaction` event hide the message locally.
    assert_matrix_error(&bob_attempt, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

#[tokio::test]
async fn event_ids_with_slashes_and_pluses_are_addressable() {
    let server = TestServer::start_default().await;
    let [alice] = users(&server, ["alice"]).await;
    let room = create_room(&server, &alice, json!({"room_version": "3"})).await;

    // v3 event IDs are standard base64; send until one has a '/' and a '+'.
    let mut wanted = (None, None);
    for i in 0..60 {
        let id = send_text(&server, &alice, &room, &format!("m{i}")).await;
        if id.contains('/') && wanted.0.is_none() {
            wanted.0 = Some(id.clone());
        }
        if id.contains('+') && wanted.1.is_none() {
            wanted.1 = Some(id.clone());
        }
        if wanted.0.is_some() && wanted.1.is_some() {
            break;
        }
    }
    let (Some(slash), Some(plus)) = wanted else {
        panic!("no event ID with '/' and '+' among 60 v3 events: {wanted:?}");
    };
    for id in [slash, plus] {
        let resp = server
            .get(&room_path(&room, &format!("/event/{}", enc(&id))), &alice)
            .await;
        assert_eq!(resp.ok()["event_id"], id);
        let resp = server
            .get(
                &room_path(&room, &format!("/context/{}?limit=2", enc(&id))),
                &alice,
            )
            .await;
        assert_eq!(resp.ok()["event"]["event_id"], id);
        let resp = server
            .put(
                &room_path(&room, &format!("/redact/{}/{}", enc(&id), txn_id())),
                &alice,
                &json!({}),
            )
            .await;
        resp.ok();
        let resp = server
            .get(&room_path(&room, &format!("/event/{}", enc(&id))), &alice)
            .await;
        assert_eq!(resp.ok()["content"], json!({}));
        // v3 redactions carry `redacts` at the top level.
        let redaction_id = resp.ok()["unsigned"]["redacted_because"]["event_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no redacted_because: {}", resp.text))
            .to_owned();
        let resp = server
            .get(
                &room_path(&room, &format!("/event/{}", enc(&redaction_id))),
                &alice,
            )
            .await;
        assert_eq!(resp.ok()["redacts"], id, "{}", resp.text);
    }
}

#[tokio::test]
async fn unknown_rooms_and_events_are_not_found() {
    let server = TestServer::start_default().await;
    let [alice] = users(&server, ["alice"]).await;
    let room = public_room(&server, &alice).await;
    let ghost = format!("!doesnotexist:{}", server.server_name());

    let resp = server
        .get(
            &room_path(&room, &format!("/event/{}", enc("$nope"))),
            &alice,
        )
        .await;
    assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let resp = server
        .get(
            &room_path(&room, &format!("/context/{}", enc("$nope"))),
            &alice,
        )
        .await;
    assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    for (method, path, body) in [
        (Method::GET, room_path(&ghost, "/state"), json!(null)),
        (
            Method::GET,
            room_path(&ghost, "/state/m.room.name/"),
            json!(null),
        ),
        (
            Method::GET,
            room_path(&ghost, "/messages?dir=b"),
            json!(null),
        ),
        (Method::GET, room_path(&ghost, "/members"), json!(null)),
        (
            Method::GET,
            room_path(&ghost, "/joined_members"),
            json!(null),
        ),
        (
            Method::GET,
            room_path(&ghost, &format!("/event/{}", enc("$x"))),
            json!(null),
        ),
        (
            Method::PUT,
            room_path(&ghost, "/send/m.room.message/t"),
            json!({"body": "x"}),
        ),
        (
            Method::PUT,
            room_path(&ghost, "/state/m.room.name/"),
            json!({"name": "x"}),
        ),
        (Method::POST, room_path(&ghost, "/join"), json!({})),
        (Method::POST, format!("{C}/join/{}", enc(&ghost)), json!({})),
        (
            Method::GET,
            format!("{C}/directory/list/room/{}", enc(&ghost)),
            json!(null),
        ),
    ] {
        let mut request = server.request(method.clone(), &path, &alice);
        if !body.is_null() {
            request = request.json(&body);
        }
        let resp = server.send(request).await;
        assert_eq!(
            (resp.status, resp.errcode()),
            (StatusCode::NOT_FOUND, Some("M_NOT_FOUND")),
            "{method} {path}: {}",
            resp.text
        );
    }
}

#[tokio::test]
async fn rooms_created_at_the_same_moment_get_their_own_ids() {
    // A v12 room ID is the hash of its create event: identical requests in one millisecond
    // must still make distinct rooms, each with its creator joined.
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let body = json!({ "room_version": "12", "preset": "private_chat" });
    let path = format!("{C}/createRoom");
    let mut rooms = Vec::new();
    for _ in 0..4 {
        let batch = (0..16).map(|_| server.post(&path, &alice, &body));
        for resp in futures::future::join_all(batch).await {
            rooms.push(resp.ok()["room_id"].as_str().unwrap_or_default().to_owned());
        }
    }
    let distinct: std::collections::HashSet<&String> = rooms.iter().collect();
    assert_eq!(distinct.len(), rooms.len(), "room IDs repeat: {rooms:?}");
    assert_eq!(joined_rooms(&server, &alice).await.len(), rooms.len());
}
