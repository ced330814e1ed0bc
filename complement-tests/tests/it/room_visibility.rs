//! History visibility (`m.room.history_visibility`) as enforced by
//! `/messages`, `/event`, `/context` and `/sync`.
//!
//! The scenario of each test: alice sets the visibility, sends
//! `before-invite`, invites bob, sends `after-invite`, bob joins, alice sends
//! `after-join`, bob leaves, alice sends `after-leave`. Bob's view is checked
//! while he is joined and again after he left.

use complement_tests::*;

use crate::room_support::*;

struct Scenario {
    server: TestServer,
    alice: Session,
    bob: Session,
    carol: Session,
    room: String,
    /// body → event ID
    ids: Vec<(&'static str, String)>,
}

impl Scenario {
    fn id(&self, body: &str) -> &str {
        &self
            .ids
            .iter()
            .find(|(b, _)| *b == body)
            .unwrap_or_else(|| panic!("no event {body}"))
            .1
    }

    /// The message bodies bob gets from /messages (oldest first).
    async fn visible_via_messages(&self, who: &Session) -> Vec<String> {
        let events = paginate(&self.server, who, &self.room, "f", None, 50, 10).await;
        bodies(&events)
    }

    /// Whether `who` may fetch the event with this body via /event.
    async fn event_visible(&self, who: &Session, body: &str) -> bool {
        let resp = self
            .server
            .get(
                &room_path(&self.room, &format!("/event/{}", enc(self.id(body)))),
                who,
            )
            .await;
        if resp.status == StatusCode::OK {
            assert_eq!(resp.body["content"]["body"], body);
            return true;
        }
        assert_denied(&resp);
        false
    }

    /// Whether `who` may fetch the context of the event with this body.
    async fn context_visible(&self, who: &Session, body: &str) -> bool {
        let resp = self
            .server
            .get(
                &room_path(
                    &self.room,
                    &format!("/context/{}?limit=20", enc(self.id(body))),
                ),
                who,
            )
            .await;
        if resp.status == StatusCode::OK {
            let visible = [&resp.body["events_before"], &resp.body["events_after"]]
                .into_iter()
                .flat_map(|batch| bodies(events_of(batch)))
                .collect::<Vec<_>>();
            for other in visible {
                assert!(
                    self.event_visible(who, &other).await,
                    "/context leaked {other:?} which /event hides"
                );
            }
            return true;
        }
        assert_denied(&resp);
        false
    }
}

const BODIES: [&str; 4] = ["before-invite", "after-invite", "after-join", "after-leave"];

/// Runs the scenario up to (excluding) bob's leave; `after-leave` is sent
/// by [`leave_and_send`].
async fn scenario(visibility: &str) -> Scenario {
    let server = TestServer::start_default().await;
    let [alice, bob, carol] = users(&server, ["alice", "bob", "carol"]).await;
    let room = create_room(
        &server,
        &alice,
        json!({
            "preset": "private_chat",
            "initial_state": [{
                "type": "m.room.history_visibility",
                "content": {"history_visibility": visibility},
            }],
        }),
    )
    .await;
    let mut ids = Vec::new();
    ids.push((
        BODIES[0],
        send_text(&server, &alice, &room, BODIES[0]).await,
    ));
    invite(&server, &alice, &room, &bob.user_id).await.ok();
    ids.push((
        BODIES[1],
        send_text(&server, &alice, &room, BODIES[1]).await,
    ));
    join(&server, &bob, &room).await.ok();
    ids.push((
        BODIES[2],
        send_text(&server, &alice, &room, BODIES[2]).await,
    ));
    Scenario {
        server,
        alice,
        bob,
        carol,
        room,
        ids,
    }
}

async fn leave_and_send(s: &mut Scenario) {
    leave(&s.server, &s.bob, &s.room).await.ok();
    let id = send_text(&s.server, &s.alice, &s.room, BODIES[3]).await;
    s.ids.push((BODIES[3], id));
}

/// Checks bob's view through every endpoint: `expected_joined` while
/// joined, and the same (plus `after-leave` when world-readable) after
/// leaving. Collects every mismatch before failing, so that one run shows
/// all the endpoints that disagree with the spec.
async fn check_bob(visibility: &str, expected_joined: &[&str]) {
    let mut s = scenario(visibility).await;
    let mut errors: Vec<String> = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            errors.push(what);
        }
    };

    // While joined: /messages, /event, /context and an initial sync.
    let seen = s.visible_via_messages(&s.bob).await;
    check(
        seen == expected_joined,
        format!("/messages while joined: {seen:?}"),
    );
    for body in &BODIES[..3] {
        let expected = expected_joined.contains(body);
        let got = s.event_visible(&s.bob, body).await;
        check(
            got == expected,
            format!("/event {body} while joined: {got}"),
        );
        let got = s.context_visible(&s.bob, body).await;
        check(
            got == expected,
            format!("/context {body} while joined: {got}"),
        );
    }
    // His own join is always visible to him ("a user can always see
    // m.room.member events which set their membership to join").
    let events = paginate(&s.server, &s.bob, &s.room, "f", None, 50, 10).await;
    let own_join = events.iter().any(|e| {
        e["type"] == "m.room.member"
            && e["state_key"] == s.bob.user_id
            && e["content"]["membership"] == "join"
    });
    check(
        own_join,
        "bob's own join is not in his /messages".to_owned(),
    );
    let filter = filter_param(&json!({"room": {"timeline": {"limit": 50}}}));
    let body = sync(&s.server, &s.bob, &filter).await;
    let seen = bodies(events_of(&joined(&body, &s.room)["timeline"]));
    check(
        seen == expected_joined,
        format!("initial sync timeline: {seen:?}"),
    );
    let since = next_batch(&body);

    // After leaving: nothing sent after the leave, unless world-readable;
    // what was visible stays visible.
    let world = visibility == "world_readable";
    leave_and_send(&mut s).await;
    let mut expected_left = expected_joined.to_vec();
    if world {
        expected_left.push("after-leave");
    }
    let seen = s.visible_via_messages(&s.bob).await;
    check(
        seen == expected_left,
        format!("/messages after leaving: {seen:?}"),
    );
    let events = paginate(&s.server, &s.bob, &s.room, "f", None, 50, 10).await;
    let own_leave = events.iter().any(|e| {
        e["type"] == "m.room.member"
            && e["state_key"] == s.bob.user_id
            && e["content"]["membership"] == "leave"
    });
    check(
        own_leave,
        "bob's own leave is not in his /messages".to_owned(),
    );
    for body in BODIES {
        let expected = expected_left.contains(&body);
        let got = s.event_visible(&s.bob, body).await;
        check(
            got == expected,
            format!("/event {body} after leaving: {got}"),
        );
    }
    let got = s.context_visible(&s.bob, "after-leave").await;
    check(
        got == world,
        format!("/context after-leave after leaving: {got}"),
    );

    // The incremental sync reports the leave, including bob's own leave
    // event (visible because his membership before it was `join`), and no
    // message sent after it.
    let body = sync(&s.server, &s.bob, &format!("since={}", enc(&since))).await;
    let left = &body["rooms"]["leave"][&s.room];
    check(left.is_object(), format!("no leave section: {body}"));
    let seen = bodies(events_of(&left["timeline"]));
    check(
        seen.is_empty(),
        format!("messages after the leave in the sync leave timeline: {seen:?}"),
    );
    let leave_event = events_of(&left["timeline"])
        .iter()
        .find(|e| e["type"] == "m.room.member" && e["state_key"] == s.bob.user_id);
    check(
        leave_event.map(|e| e["content"]["membership"].clone()) == Some(json!("leave")),
        format!("bob's own leave event missing from the sync leave timeline: {left}"),
    );

    // Carol never joined: only world_readable lets her in.
    let resp = messages(&s.server, &s.carol, &s.room, "dir=b").await;
    if world {
        let seen = bodies(events_of(&resp.ok()["chunk"]));
        check(seen.len() == 4, format!("carol's /messages: {seen:?}"));
    } else {
        assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    }
    for body in BODIES {
        let got = s.event_visible(&s.carol, body).await;
        check(got == world, format!("carol's /event {body}: {got}"));
    }

    assert!(
        errors.is_empty(),
        "history_visibility={visibility}: bob's (and carol's) views disagree with the spec:\n{}",
        errors.join("\n")
    );
}

#[tokio::test]
async fn history_visibility_joined() {
    check_bob("joined", &["after-join"]).await;
}

#[tokio::test]
async fn history_visibility_invited() {
    check_bob("invited", &["after-invite", "after-join"]).await;
}

#[tokio::test]
async fn history_visibility_shared() {
    check_bob("shared", &["before-invite", "after-invite", "after-join"]).await;
}

#[tokio::test]
async fn history_visibility_world_readable() {
    check_bob(
        "world_readable",
        &["before-invite", "after-invite", "after-join"],
    )
    .await;
}

#[tokio::test]
async fn visibility_is_evaluated_at_each_event() {
    let server = TestServer::start_default().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;
    let room = create_room(&server, &alice, json!({"preset": "public_chat"})).await;
    let set = async |value: &str| {
        put_state(
            &server,
            &alice,
            &room,
            "m.room.history_visibility",
            "",
            &json!({"history_visibility": value}),
        )
        .await
    };
    send_text(&server, &alice, &room, "shared-1").await;
    set("joined").await;
    let hidden = send_text(&server, &alice, &room, "joined-only").await;
    set("shared").await;
    send_text(&server, &alice, &room, "shared-2").await;
    join(&server, &bob, &room).await.ok();
    send_text(&server, &alice, &room, "after-join").await;

    let events = paginate(&server, &bob, &room, "b", None, 4, 20).await;
    let mut seen = bodies(&events);
    seen.reverse();
    assert_eq!(seen, ["shared-1", "shared-2", "after-join"]);
    let resp = server
        .get(&room_path(&room, &format!("/event/{}", enc(&hidden))), &bob)
        .await;
    assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    // Alice, joined throughout, sees everything.
    let alice_view = paginate(&server, &alice, &room, "b", None, 50, 5).await;
    assert_eq!(bodies(&alice_view).len(), 4);

    // The history_visibility events themselves are visible when the value
    // before *or* after them allows it: the preset's `shared`, the change
    // shared → joined (allowed before) and joined → shared (allowed after).
    let changes: Vec<&str> = events
        .iter()
        .rev()
        .filter(|e| e["type"] == "m.room.history_visibility")
        .map(|e| e["content"]["history_visibility"].as_str().unwrap())
        .collect();
    assert_eq!(
        changes,
        ["shared", "joined", "shared"],
        "history_visibility events visible to bob"
    );
}
