//! Rooms across restarts: a graceful restart and a SIGKILL right after
//! acknowledged writes lose no room, event, membership or alias, and sync
//! and pagination tokens issued before the restart keep working.

use complement_tests::*;

use crate::room_support::*;

/// What a scenario wrote before the restart.
struct Written {
    room: String,
    private: String,
    alias: String,
    messages: Vec<String>,
    bob_since: String,
    page_end: String,
}

async fn write_rooms(
    server: &TestServer,
    alice: &Session,
    bob: &Session,
    carol: &Session,
) -> Written {
    let room = create_room(
        server,
        alice,
        json!({"preset": "public_chat", "name": "Durable", "room_alias_name": "durable", "visibility": "public"}),
    )
    .await;
    let private = create_room(
        server,
        alice,
        json!({"preset": "private_chat", "invite": [carol.user_id]}),
    )
    .await;
    join(server, bob, &room).await.ok();
    let alias = format!("#durable:{}", server.server_name());
    let mut messages = Vec::new();
    for i in 0..20 {
        let who = if i % 2 == 0 { alice } else { bob };
        messages.push(send_text(server, who, &room, &format!("d{i}")).await);
    }
    let body = sync(server, bob, "").await;
    let bob_since = next_batch(&body);
    let resp = messages_page(server, bob, &room).await;
    for i in 20..25 {
        messages.push(send_text(server, alice, &room, &format!("d{i}")).await);
    }
    put_state(
        server,
        alice,
        &room,
        "m.room.topic",
        "",
        &json!({"topic": "kept"}),
    )
    .await;
    Written {
        room,
        private,
        alias,
        messages,
        bob_since,
        page_end: resp,
    }
}

/// The `end` token of a 5-event backwards page from the end of the room.
async fn messages_page(server: &TestServer, who: &Session, room: &str) -> String {
    let resp = messages(server, who, room, "dir=b&limit=5").await;
    resp.ok()["end"].as_str().expect("an end token").to_owned()
}

/// Checks everything [`write_rooms`] wrote; `extra` are further rooms that
/// alice and bob have joined.
async fn check_rooms(
    server: &TestServer,
    [alice, bob, carol]: [&Session; 3],
    w: &Written,
    extra: &[String],
) {
    // Rooms and memberships.
    let mut rooms = joined_rooms(server, alice).await;
    rooms.sort();
    let mut expected = vec![w.room.clone(), w.private.clone()];
    expected.extend_from_slice(extra);
    expected.sort();
    assert_eq!(rooms, expected);
    let mut rooms = joined_rooms(server, bob).await;
    rooms.sort();
    let mut expected = vec![w.room.clone()];
    expected.extend_from_slice(extra);
    expected.sort();
    assert_eq!(rooms, expected);
    assert_eq!(
        membership_of(server, alice, &w.private, &carol.user_id)
            .await
            .as_deref(),
        Some("invite")
    );
    let mut members = vec![alice.user_id.clone(), bob.user_id.clone()];
    members.sort();
    assert_eq!(joined_member_ids(server, alice, &w.room).await, members);

    // State, alias and directory.
    let name = get_state(server, bob, &w.room, "m.room.name", "").await;
    assert_eq!(name.ok()["name"], "Durable");
    let topic = get_state(server, bob, &w.room, "m.room.topic", "").await;
    assert_eq!(topic.ok()["topic"], "kept");
    let resp = server
        .get(
            &format!("{C}/directory/room/{}", enc(&w.alias)),
            &carol.access_token,
        )
        .await;
    assert_eq!(resp.ok()["room_id"], w.room);
    let resp = server.get(&format!("{C}/publicRooms"), &NoAuth).await;
    assert!(
        resp.ok()["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["room_id"] == w.room),
        "{}",
        resp.text
    );

    // Every message, in order, through /messages.
    let events = paginate(server, bob, &w.room, "f", None, 10, 20).await;
    let expected: Vec<String> = (0..25).map(|i| format!("d{i}")).collect();
    assert_eq!(bodies(&events), expected);
    let message_ids: Vec<String> = events
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(message_ids, w.messages);

    // Tokens from before the restart still work.
    let body = sync(server, bob, &format!("since={}", enc(&w.bob_since))).await;
    let timeline = &joined(&body, &w.room)["timeline"];
    let new: Vec<String> = bodies(events_of(timeline));
    assert_eq!(new, ["d20", "d21", "d22", "d23", "d24"], "{body}");
    let query = format!("dir=b&limit=3&from={}", enc(&w.page_end));
    let resp = messages(server, bob, &w.room, &query).await;
    assert_eq!(
        bodies(events_of(&resp.ok()["chunk"])),
        ["d14", "d13", "d12"]
    );

    // An initial sync shows everything; carol still has her invite.
    let body = sync(
        server,
        alice,
        &filter_param(&json!({"room": {"timeline": {"limit": 3}}})),
    )
    .await;
    assert_eq!(
        bodies(events_of(&joined(&body, &w.room)["timeline"])),
        ["d23", "d24"],
        "the 3 latest events: d23, d24 and the topic"
    );
    assert!(in_section(&body, "join", &w.private));
    let body = sync(server, carol, "").await;
    assert!(in_section(&body, "invite", &w.private), "{body}");

    // The room engine keeps working: new events after the old ones.
    let after = send_text(server, bob, &w.room, "after restart").await;
    let events = paginate(server, alice, &w.room, "b", None, 50, 5).await;
    assert_eq!(events[0]["event_id"], after);
    assert_eq!(bodies(&events).len(), 26);
}

#[tokio::test]
async fn rooms_survive_a_graceful_restart() {
    let mut server = TestServer::start_default().await;
    let [alice, bob, carol] = users(&server, ["alice", "bob", "carol"]).await;
    let written = write_rooms(&server, &alice, &bob, &carol).await;
    server.restart().await;
    check_rooms(&server, [&alice, &bob, &carol], &written, &[]).await;
}

#[tokio::test]
async fn acknowledged_room_writes_survive_sigkill() {
    let mut server = TestServer::start_default().await;
    let [alice, bob, carol] = users(&server, ["alice", "bob", "carol"]).await;
    let written = write_rooms(&server, &alice, &bob, &carol).await;
    // More writes in a third room (a burst of messages, an alias, a leave
    // and a rejoin), then SIGKILL right after the last acknowledgement.
    let third = public_room(&server, &alice).await;
    join(&server, &bob, &third).await.ok();
    let mut burst = Vec::new();
    for i in 0..30 {
        burst.push(send_text(&server, &alice, &third, &format!("k{i}")).await);
    }
    let late_alias = format!("#late:{}", server.server_name());
    server
        .put(
            &format!("{C}/directory/room/{}", enc(&late_alias)),
            &alice,
            &json!({"room_id": third}),
        )
        .await
        .ok();
    leave(&server, &bob, &third).await.ok();
    join(&server, &bob, &third).await.ok();
    server.kill().await;
    server.start_again().await;

    check_rooms(
        &server,
        [&alice, &bob, &carol],
        &written,
        std::slice::from_ref(&third),
    )
    .await;
    let events = paginate(&server, &alice, &third, "f", None, 50, 5).await;
    let ids: Vec<String> = events
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, burst, "every acknowledged message survives SIGKILL");
    let resp = server
        .get(&format!("{C}/directory/room/{}", enc(&late_alias)), &bob)
        .await;
    assert_eq!(resp.ok()["room_id"], third);
    // Bob's leave and rejoin are both in the history.
    let bob_memberships: Vec<String> = events
        .iter()
        .filter(|e| e["type"] == "m.room.member" && e["state_key"] == bob.user_id)
        .map(|e| e["content"]["membership"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(bob_memberships, ["join", "leave", "join"]);
}
