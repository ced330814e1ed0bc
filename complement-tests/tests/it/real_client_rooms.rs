//! Rooms through a real client library (matrix-sdk, no E2EE, in-memory
//! store): room creation with an invite, accepting it, live messages through
//! the SDK's sync, and back-pagination through a long history.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use complement_tests::*;
use matrix_sdk::config::SyncSettings;
use matrix_sdk::room::MessagesOptions;
use matrix_sdk::ruma::api::client::room::{Visibility, create_room};
use matrix_sdk::ruma::events::room::message::{
    OriginalSyncRoomMessageEvent, RoomMessageEventContent,
};
use matrix_sdk::ruma::{OwnedEventId, OwnedRoomId, RoomId, UInt, UserId};
use matrix_sdk::{Client, Room, RoomState};
use tokio::sync::mpsc;

/// An SDK client logged in as `username` (registered through the harness).
pub async fn sdk_client(server: &TestServer, username: &str) -> Client {
    server.register(username, "pw").await;
    let client = Client::builder()
        .homeserver_url(server.url())
        .build()
        .await
        .expect("build the SDK client");
    client
        .matrix_auth()
        .login_username(username, "pw")
        .send()
        .await
        .expect("SDK login");
    client
}

/// One SDK sync that waits at most `timeout` for news.
async fn sync_for(client: &Client, timeout: Duration) {
    client
        .sync_once(SyncSettings::default().timeout(timeout))
        .await
        .expect("SDK sync");
}

/// Syncs `client` until `done` holds, for at most `limit`.
pub async fn sync_until(client: &Client, limit: Duration, what: &str, done: impl Fn(&Client) -> bool) {
    let deadline = Instant::now() + limit;
    while !done(client) {
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what} after {limit:?}"
        );
        sync_for(client, Duration::from_millis(500)).await;
    }
}

fn room_in_state(client: &Client, room: &RoomId, state: RoomState) -> bool {
    client.get_room(room).is_some_and(|r| r.state() == state)
}

#[tokio::test]
async fn matrix_sdk_invite_join_and_live_messages() {
    let server = TestServer::start_default().await;
    let alice = sdk_client(&server, "alice").await;
    let bob = sdk_client(&server, "bob").await;
    let bob_id = UserId::parse(server.user_id("bob")).unwrap();

    // Alice creates a room and invites bob.
    let mut request = create_room::v3::Request::new();
    request.name = Some("SDK room".to_owned());
    request.topic = Some("made by matrix-sdk".to_owned());
    request.invite = vec![bob_id.clone()];
    let room = alice.create_room(request).await.expect("create the room");
    let room_id: OwnedRoomId = room.room_id().to_owned();
    assert_eq!(room.state(), RoomState::Joined);

    // Bob sees the invite, with the room's name, and accepts it.
    sync_for(&bob, Duration::ZERO).await;
    sync_until(&bob, Duration::from_secs(10), "the invite", |c| {
        room_in_state(c, &room_id, RoomState::Invited)
    })
    .await;
    let invited = bob.get_room(&room_id).unwrap();
    assert_eq!(invited.name().as_deref(), Some("SDK room"));
    invited.join().await.expect("accept the invite");
    sync_until(
        &bob,
        Duration::from_secs(10),
        "the joined room's summary",
        |c| {
            room_in_state(c, &room_id, RoomState::Joined)
                && c.get_room(&room_id).unwrap().joined_members_count() == 2
        },
    )
    .await;
    let bob_room = bob.get_room(&room_id).unwrap();
    assert_eq!(bob_room.name().as_deref(), Some("SDK room"));
    assert_eq!(bob_room.topic().as_deref(), Some("made by matrix-sdk"));
    assert_eq!(bob_room.joined_members_count(), 2);

    // Bob's event handler receives what alice sends, in order.
    let (tx, mut rx) = mpsc::unbounded_channel::<(OwnedRoomId, OwnedEventId, String)>();
    bob.add_event_handler(move |event: OriginalSyncRoomMessageEvent, room: Room| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((
                room.room_id().to_owned(),
                event.event_id.clone(),
                event.content.body().to_owned(),
            ));
        }
    });
    let alice_room = alice.get_room(&room_id).unwrap();
    let mut sent = Vec::new();
    for text in ["hello bob", "second", "third"] {
        let result = alice_room
            .send(RoomMessageEventContent::text_plain(text))
            .await
            .expect("send through the SDK");
        sent.push((result.response.event_id, text.to_owned()));
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut received = Vec::new();
    while received.len() < sent.len() {
        assert!(
            Instant::now() < deadline,
            "bob received only {received:?} of {sent:?}"
        );
        sync_for(&bob, Duration::from_secs(1)).await;
        while let Ok((room, event_id, body)) = rx.try_recv() {
            assert_eq!(room, room_id);
            received.push((event_id, body));
        }
    }
    assert_eq!(received, sent, "every message once, in order");

    // A live message arrives through a waiting sync well within a second.
    let waiting = {
        let bob = bob.clone();
        tokio::spawn(async move {
            sync_for(&bob, Duration::from_secs(10)).await;
            Instant::now()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent_at = Instant::now();
    alice_room
        .send(RoomMessageEventContent::text_plain("live"))
        .await
        .expect("send");
    let returned = tokio::time::timeout(Duration::from_secs(15), waiting)
        .await
        .expect("the waiting SDK sync returns")
        .unwrap();
    assert!(
        returned.saturating_duration_since(sent_at) < Duration::from_secs(2),
        "the SDK's long-poll took {:?} after the send",
        returned.saturating_duration_since(sent_at)
    );
    let (_, _, body) = rx.try_recv().expect("the live message reached the handler");
    assert_eq!(body, "live");

    // Bob answers; alice gets it through her own sync, and plain HTTP agrees.
    let reply = bob_room
        .send(RoomMessageEventContent::text_plain("hi alice"))
        .await
        .expect("bob sends")
        .response
        .event_id;
    let session = server.login("alice", "pw").await;
    let resp = server
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{room_id}/event/{}",
                reply.as_str().replace('$', "%24")
            ),
            &session,
        )
        .await;
    assert_eq!(resp.ok()["content"]["body"], "hi alice");
    assert_eq!(resp.ok()["sender"], server.user_id("bob"));
}

#[tokio::test]
async fn matrix_sdk_back_paginates_200_messages() {
    let server = TestServer::start_default().await;
    let alice = sdk_client(&server, "alice").await;
    let bob = sdk_client(&server, "bob").await;

    let mut request = create_room::v3::Request::new();
    request.visibility = Visibility::Public;
    request.name = Some("History".to_owned());
    let room = alice.create_room(request).await.expect("create the room");
    let room_id = room.room_id().to_owned();
    let bob_room = bob.join_room_by_id(&room_id).await.expect("bob joins");

    let started = Instant::now();
    let mut sent = Vec::with_capacity(200);
    for i in 0..200 {
        let result = room
            .send(RoomMessageEventContent::text_plain(format!("m{i}")))
            .await
            .expect("send");
        sent.push(result.response.event_id);
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "200 sends took {:?}",
        started.elapsed()
    );

    // Bob syncs once (a limited timeline), then pages back through all of
    // it with /messages, 30 at a time.
    sync_for(&bob, Duration::ZERO).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut token: Option<String> = None;
    let mut seen = HashSet::new();
    let mut messages = Vec::new();
    let mut pages = 0;
    loop {
        assert!(Instant::now() < deadline, "pagination took too long");
        pages += 1;
        assert!(pages < 50, "pagination does not end");
        let mut options = MessagesOptions::backward().from(token.as_deref());
        options.limit = UInt::new(30).unwrap();
        let page = bob_room.messages(options).await.expect("SDK /messages");
        assert!(page.chunk.len() <= 30);
        for event in &page.chunk {
            let id = event.event_id().expect("events have IDs");
            assert!(seen.insert(id.clone()), "{id} returned twice");
            let raw = event.raw();
            if raw.get_field::<String>("type").unwrap().as_deref() == Some("m.room.message") {
                let content: Value = raw.get_field("content").unwrap().unwrap();
                messages.push((id, content["body"].as_str().unwrap().to_owned()));
            }
        }
        match page.end {
            Some(end) => token = Some(end),
            None => break,
        }
    }
    messages.reverse();
    assert_eq!(messages.len(), 200, "all 200 messages, no more, no less");
    for (i, (id, body)) in messages.iter().enumerate() {
        assert_eq!(body, &format!("m{i}"), "message {i} out of order");
        assert_eq!(id, &sent[i]);
    }
    assert!(
        seen.len() > 200,
        "the room's state events are part of the history too"
    );
}
