//! Room membership: joining (by ID and alias), invites, leaving, forgetting,
//! kicks, bans and unbans with their power-level checks, and the membership
//! listing endpoints (`/joined_rooms`, `/members` with its filters,
//! `/joined_members`).

use complement_tests::*;

use crate::room_support::*;

#[tokio::test]
async fn join_leave_forget_and_listings() {
    let server = TestServer::start_default().await;
    let [alice, bob, carol] = users(&server, ["alice", "bob", "carol"]).await;
    server
        .put(
            &format!("{C}/profile/{}/displayname", bob.user_id),
            &bob,
            &json!({"displayname": "Bobby"}),
        )
        .await
        .ok();
    let room = public_room(&server, &alice).await;
    let other = public_room(&server, &alice).await;
    assert_eq!(joined_rooms(&server, &bob).await, Vec::<String>::new());

    let resp = join(&server, &bob, &room).await;
    assert_eq!(resp.ok()["room_id"], room);
    // Joining again is harmless.
    join(&server, &bob, &room).await.ok();
    assert_eq!(joined_rooms(&server, &bob).await, vec![room.clone()]);
    let mut alice_rooms = joined_rooms(&server, &alice).await;
    alice_rooms.sort();
    let mut expected = vec![room.clone(), other.clone()];
    expected.sort();
    assert_eq!(alice_rooms, expected);

    // The member event carries the profile.
    let member = get_state(&server, &alice, &room, "m.room.member", &bob.user_id).await;
    assert_eq!(member.ok()["membership"], "join");
    assert_eq!(member.ok()["displayname"], "Bobby");
    let resp = server
        .get(&room_path(&room, "/joined_members"), &alice)
        .await;
    let joined = &resp.ok()["joined"];
    assert_eq!(joined[&bob.user_id]["display_name"], "Bobby", "{joined}");
    assert!(joined.get(&alice.user_id).is_some(), "{joined}");
    assert_eq!(joined.as_object().unwrap().len(), 2, "{joined}");

    // Non-members may not list the members.
    let resp = server
        .get(&room_path(&room, "/joined_members"), &carol)
        .await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = server.get(&room_path(&room, "/members"), &carol).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    // Forgetting is only for rooms one has left: refused (and ignored).
    let forget_while_joined = server
        .post(&room_path(&room, "/forget"), &bob, &json!({}))
        .await;
    assert!(
        forget_while_joined.status.is_client_error(),
        "{}",
        forget_while_joined.text
    );
    assert_eq!(joined_rooms(&server, &bob).await, vec![room.clone()]);

    leave(&server, &bob, &room).await.ok();
    assert_eq!(joined_rooms(&server, &bob).await, Vec::<String>::new());
    assert_eq!(
        membership_of(&server, &alice, &room, &bob.user_id)
            .await
            .as_deref(),
        Some("leave")
    );
    assert_eq!(
        joined_member_ids(&server, &alice, &room).await,
        vec![alice.user_id.clone()]
    );
    // A left member can still see the member list as of their leave
    // (checked at the end).
    send_text(&server, &alice, &room, "after bob left").await;
    let members_after_leave = server.get(&room_path(&room, "/members"), &bob).await;

    server
        .post(&room_path(&room, "/forget"), &bob, &json!({}))
        .await
        .ok();
    // Forgotten rooms do not come back in an initial sync, even with
    // include_leave.
    let filter = filter_param(&json!({"room": {"include_leave": true}}));
    let body = sync(&server, &bob, &filter).await;
    assert!(!in_section(&body, "leave", &room), "{body}");
    assert!(!in_section(&body, "join", &room), "{body}");
    // The room can still be joined again.
    join(&server, &bob, &room).await.ok();
    assert_eq!(joined_rooms(&server, &bob).await, vec![room.clone()]);

    // Spec: "If you have left the room then this will be the members of the
    // room when you left."
    let chunk = events_of(&members_after_leave.ok()["chunk"]);
    let bob_member = find_state(chunk, "m.room.member", &bob.user_id)
        .unwrap_or_else(|| panic!("{}", members_after_leave.text));
    assert_eq!(bob_member["content"]["membership"], "leave");
    assert!(find_state(chunk, "m.room.member", &alice.user_id).is_some());

    // The spec's status for forgetting a room one has not left is 400
    // ("The user has not left the room").
    assert_eq!(
        forget_while_joined.status,
        StatusCode::BAD_REQUEST,
        "forget while joined: {}",
        forget_while_joined.text
    );
}

#[tokio::test]
async fn join_by_alias_and_by_id_via_join_endpoint() {
    let server = TestServer::start_default().await;
    let [alice, bob, carol] = users(&server, ["alice", "bob", "carol"]).await;
    let room = create_room(
        &server,
        &alice,
        json!({"preset": "public_chat", "room_alias_name": "lobby"}),
    )
    .await;
    let alias = format!("#lobby:{}", server.server_name());

    let resp = server
        .post(&format!("{C}/join/{}", enc(&alias)), &bob, &json!({}))
        .await;
    assert_eq!(resp.ok()["room_id"], room);
    assert_eq!(joined_rooms(&server, &bob).await, vec![room.clone()]);

    let resp = server
        .post(
            &format!("{C}/join/{}", enc(&room)),
            &carol,
            &json!({"reason": "hi"}),
        )
        .await;
    assert_eq!(resp.ok()["room_id"], room);
    let member = get_state(&server, &alice, &room, "m.room.member", &carol.user_id).await;
    assert_eq!(member.ok()["membership"], "join");
    assert_eq!(member.ok()["reason"], "hi");

    let missing = format!("#nowhere:{}", server.server_name());
    let resp = server
        .post(&format!("{C}/join/{}", enc(&missing)), &bob, &json!({}))
        .await;
    assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

#[tokio::test]
async fn invites_gate_invite_only_rooms() {
    let server = TestServer::start_default().await;
    let [alice, bob, carol, dave] = users(&server, ["alice", "bob", "carol", "dave"]).await;
    let room = create_room(&server, &alice, json!({"preset": "private_chat"})).await;

    // Not invited: refused, by ID and through /join.
    let resp = join(&server, &bob, &room).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = server
        .post(&format!("{C}/join/{}", enc(&room)), &bob, &json!({}))
        .await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_eq!(
        membership_of(&server, &alice, &room, &bob.user_id).await,
        None
    );

    // Only members may invite.
    let resp = invite(&server, &carol, &room, &bob.user_id).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    let resp = invite(&server, &alice, &room, &bob.user_id).await;
    assert_eq!(resp.ok(), &json!({}));
    // Inviting someone already invited succeeds (spec: "or was already invited").
    invite(&server, &alice, &room, &bob.user_id).await.ok();
    let member = get_state(&server, &alice, &room, "m.room.member", &bob.user_id).await;
    assert_eq!(member.ok()["membership"], "invite");
    // An invited user is not joined and cannot send.
    assert_eq!(joined_rooms(&server, &bob).await, Vec::<String>::new());
    let resp = send_event_raw(
        &server,
        &bob,
        &room,
        "m.room.message",
        &json!({"body": "x"}),
    )
    .await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    join(&server, &bob, &room).await.ok();
    assert_eq!(joined_rooms(&server, &bob).await, vec![room.clone()]);
    send_text(&server, &bob, &room, "in").await;

    // Inviting a member is refused.
    let resp = invite(&server, &alice, &room, &bob.user_id).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    // Members with the default invite level (0) may invite.
    invite(&server, &bob, &room, &carol.user_id).await.ok();
    // Rejecting an invite is leaving.
    leave(&server, &carol, &room).await.ok();
    assert_eq!(
        membership_of(&server, &alice, &room, &carol.user_id)
            .await
            .as_deref(),
        Some("leave")
    );
    let resp = join(&server, &carol, &room).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    // An invite can be withdrawn by kicking the invitee.
    invite(&server, &alice, &room, &dave.user_id).await.ok();
    moderate(
        &server,
        &alice,
        &room,
        "kick",
        &dave.user_id,
        Some("changed my mind"),
    )
    .await
    .ok();
    let member = get_state(&server, &alice, &room, "m.room.member", &dave.user_id).await;
    assert_eq!(member.ok()["membership"], "leave");
    assert_eq!(member.ok()["reason"], "changed my mind");
    let resp = join(&server, &dave, &room).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    // Raising the invite level stops bob.
    let mut levels = get_state(&server, &alice, &room, "m.room.power_levels", "")
        .await
        .ok()
        .clone();
    levels["invite"] = json!(50);
    put_state(&server, &alice, &room, "m.room.power_levels", "", &levels).await;
    let resp = invite(&server, &bob, &room, &dave.user_id).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

#[tokio::test]
async fn kick_ban_unban_and_power() {
    let server = TestServer::start_default().await;
    let [alice, bob, carol, dave] = users(&server, ["alice", "bob", "carol", "dave"]).await;
    let room = create_room(
        &server,
        &alice,
        json!({"preset": "public_chat", "room_version": "11"}),
    )
    .await;
    join(&server, &bob, &room).await.ok();
    join(&server, &carol, &room).await.ok();

    // Power 0 cannot kick or ban.
    let resp = moderate(&server, &bob, &room, "kick", &carol.user_id, None).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = moderate(&server, &bob, &room, "ban", &carol.user_id, None).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_eq!(
        joined_member_ids(&server, &alice, &room).await.len(),
        3,
        "refused moderation changes nothing"
    );

    // Kick: membership leave, with reason and the kicker as sender.
    let resp = moderate(
        &server,
        &alice,
        &room,
        "kick",
        &bob.user_id,
        Some("be nice"),
    )
    .await;
    assert_eq!(resp.ok(), &json!({}));
    let event = get_state_event(&server, &alice, &room, "m.room.member", &bob.user_id).await;
    assert_eq!(event["content"]["membership"], "leave");
    assert_eq!(event["content"]["reason"], "be nice");
    assert_eq!(event["sender"], alice.user_id);
    assert_eq!(joined_rooms(&server, &bob).await, Vec::<String>::new());
    // A kicked user may rejoin a public room.
    join(&server, &bob, &room).await.ok();

    // Kicking someone who is not in the room is refused.
    let resp = moderate(&server, &alice, &room, "kick", &dave.user_id, None).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    // Ban: carol is out and cannot come back, not even by invite.
    moderate(&server, &alice, &room, "ban", &carol.user_id, Some("spam"))
        .await
        .ok();
    let event = get_state_event(&server, &alice, &room, "m.room.member", &carol.user_id).await;
    assert_eq!(event["content"]["membership"], "ban");
    assert_eq!(event["content"]["reason"], "spam");
    let resp = join(&server, &carol, &room).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = invite(&server, &alice, &room, &carol.user_id).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert!(
        !joined_member_ids(&server, &alice, &room)
            .await
            .contains(&carol.user_id)
    );
    // Pre-emptive ban of someone who never joined.
    moderate(&server, &alice, &room, "ban", &dave.user_id, None)
        .await
        .ok();
    let resp = join(&server, &dave, &room).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    // Unban needs power too; afterwards the user is `leave` and may join.
    let resp = moderate(&server, &bob, &room, "unban", &carol.user_id, None).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = moderate(
        &server,
        &alice,
        &room,
        "unban",
        &carol.user_id,
        Some("second chance"),
    )
    .await;
    assert_eq!(resp.ok(), &json!({}));
    let event = get_state_event(&server, &alice, &room, "m.room.member", &carol.user_id).await;
    assert_eq!(event["content"]["membership"], "leave");
    assert_eq!(event["content"]["reason"], "second chance");
    join(&server, &carol, &room).await.ok();

    // Bob at 50 may kick carol (0) but not alice (100).
    let mut levels = get_state(&server, &alice, &room, "m.room.power_levels", "")
        .await
        .ok()
        .clone();
    assert_eq!(levels["kick"], 50, "{levels}");
    assert_eq!(levels["ban"], 50, "{levels}");
    assert_eq!(levels["users"][&alice.user_id], 100, "{levels}");
    levels["users"][&bob.user_id] = json!(50);
    put_state(&server, &alice, &room, "m.room.power_levels", "", &levels).await;
    let resp = moderate(&server, &bob, &room, "kick", &alice.user_id, None).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = moderate(&server, &bob, &room, "ban", &alice.user_id, None).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    moderate(&server, &bob, &room, "kick", &carol.user_id, None)
        .await
        .ok();
    // Bob cannot raise himself above his own level.
    levels["users"][&bob.user_id] = json!(100);
    let resp = put_state_raw(&server, &bob, &room, "m.room.power_levels", "", &levels).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    // A banned user who leaves stays banned (leave is refused or a no-op).
    moderate(&server, &alice, &room, "ban", &bob.user_id, None)
        .await
        .ok();
    let _ = leave(&server, &bob, &room).await;
    assert_eq!(
        membership_of(&server, &alice, &room, &bob.user_id)
            .await
            .as_deref(),
        Some("ban")
    );
}

#[tokio::test]
async fn member_list_filters_and_at_token() {
    let server = TestServer::start_default().await;
    let [alice, bob, carol, dave, eve] =
        users(&server, ["alice", "bob", "carol", "dave", "eve"]).await;
    let room = public_room(&server, &alice).await;
    join(&server, &bob, &room).await.ok();
    join(&server, &dave, &room).await.ok();
    send_text(&server, &alice, &room, "before carol").await;
    invite(&server, &alice, &room, &carol.user_id).await.ok();

    // The `prev_batch` of a one-event timeline ending with carol's invite is
    // a point in time after bob and dave joined, before carol's invite.
    let body = sync(
        &server,
        &alice,
        &filter_param(&json!({"room": {"timeline": {"limit": 1}}})),
    )
    .await;
    let timeline = &joined(&body, &room)["timeline"];
    assert_eq!(
        events_of(timeline)[0]["state_key"],
        carol.user_id,
        "{timeline}"
    );
    let at_token = timeline["prev_batch"]
        .as_str()
        .unwrap_or_else(|| panic!("a limited timeline has a prev_batch: {timeline}"))
        .to_owned();

    leave(&server, &dave, &room).await.ok();
    join(&server, &eve, &room).await.ok();
    moderate(&server, &alice, &room, "ban", &eve.user_id, None)
        .await
        .ok();

    let list = async |query: &str| -> Vec<(String, String)> {
        let resp = server
            .get(&room_path(&room, &format!("/members{query}")), &bob)
            .await;
        let mut out: Vec<(String, String)> = events_of(&resp.ok()["chunk"])
            .iter()
            .map(|e| {
                assert_eq!(e["type"], "m.room.member", "{e}");
                (
                    e["state_key"].as_str().unwrap().to_owned(),
                    e["content"]["membership"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        out.sort();
        out
    };
    let pair = |s: &Session, m: &str| (s.user_id.clone(), m.to_owned());
    assert_eq!(
        list("").await,
        vec![
            pair(&alice, "join"),
            pair(&bob, "join"),
            pair(&carol, "invite"),
            pair(&dave, "leave"),
            pair(&eve, "ban"),
        ]
    );
    assert_eq!(
        list("?membership=join").await,
        vec![pair(&alice, "join"), pair(&bob, "join")]
    );
    assert_eq!(
        list("?membership=invite").await,
        vec![pair(&carol, "invite")]
    );
    assert_eq!(list("?membership=leave").await, vec![pair(&dave, "leave")]);
    assert_eq!(list("?membership=ban").await, vec![pair(&eve, "ban")]);
    assert_eq!(
        list("?not_membership=join").await,
        vec![
            pair(&carol, "invite"),
            pair(&dave, "leave"),
            pair(&eve, "ban")
        ]
    );
    assert_eq!(
        list("?not_membership=leave").await,
        vec![
            pair(&alice, "join"),
            pair(&bob, "join"),
            pair(&carol, "invite"),
            pair(&eve, "ban"),
        ]
    );
    // Together the two parameters are an 'or' (spec): "is join" or "is not
    // join" matches everyone.
    assert_eq!(list("?membership=join&not_membership=join").await.len(), 5);
    assert_eq!(
        list("?membership=ban&not_membership=invite").await,
        vec![
            pair(&alice, "join"),
            pair(&bob, "join"),
            pair(&dave, "leave"),
            pair(&eve, "ban"),
        ]
    );

    // joined_members only lists joined users.
    assert_eq!(joined_member_ids(&server, &bob, &room).await, {
        let mut v = vec![alice.user_id.clone(), bob.user_id.clone()];
        v.sort();
        v
    });

    // The prev_batch token leads /messages to the events before carol's
    // invite …
    let resp = messages(
        &server,
        &bob,
        &room,
        &format!("dir=b&limit=1&from={}", enc(&at_token)),
    )
    .await;
    assert_eq!(
        bodies(events_of(&resp.ok()["chunk"])),
        ["before carol"],
        "{}",
        resp.text
    );
    // … and `at` gives the membership as it was at that token.
    assert_eq!(
        list(&format!("?at={}", enc(&at_token))).await,
        vec![
            pair(&alice, "join"),
            pair(&bob, "join"),
            pair(&dave, "join")
        ]
    );
    assert_eq!(
        list(&format!("?at={}&membership=join", enc(&at_token))).await,
        vec![
            pair(&alice, "join"),
            pair(&bob, "join"),
            pair(&dave, "join")
        ]
    );
}
