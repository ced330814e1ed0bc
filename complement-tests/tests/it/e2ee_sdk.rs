//! End-to-end encryption with a real client library: matrix-sdk (with `e2e-encryption`, its
//! in-memory crypto store) does the cryptography, the server only relays. Alice and Bob talk
//! in an encrypted room across a server restart and a new device; Alice's keys survive in the
//! server-side backup and a new device of hers reads her history with them.

use std::time::{Duration, Instant};

use complement_tests::*;
use matrix_sdk::ruma::api::client::room::create_room;
use matrix_sdk::ruma::events::room::message::{OriginalSyncRoomMessageEvent, RoomMessageEventContent};
use matrix_sdk::ruma::{OwnedEventId, OwnedRoomId};
use matrix_sdk::{Client, Room};
use tokio::sync::mpsc;

use crate::real_client_rooms::{sdk_client, sync_until};

/// A further SDK client (a new device) of a user who is already registered.
async fn another_device(server: &TestServer, username: &str) -> Client {
    let client = Client::builder().homeserver_url(server.url()).build().await.expect("build the SDK client");
    client.matrix_auth().login_username(username, "pw").send().await.expect("SDK login");
    client
}

async fn sync(client: &Client) {
    client.sync_once(matrix_sdk::config::SyncSettings::default().timeout(Duration::from_millis(300))).await.expect("SDK sync");
}

/// Collects the bodies of the room messages `client`'s syncs decrypt (the SDK hands event
/// handlers the decrypted event).
fn collect_messages(client: &Client) -> mpsc::UnboundedReceiver<(OwnedRoomId, String)> {
    let (tx, rx) = mpsc::unbounded_channel();
    client.add_event_handler(move |event: OriginalSyncRoomMessageEvent, room: Room| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((room.room_id().to_owned(), event.content.body().to_owned()));
        }
    });
    rx
}

/// Syncs `client` until its handler has seen `body` in `room`.
async fn receive(client: &Client, rx: &mut mpsc::UnboundedReceiver<(OwnedRoomId, String)>, room: &OwnedRoomId, body: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        while let Ok((in_room, received)) = rx.try_recv() {
            if &in_room == room && received == body {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{body:?} never arrived decrypted");
        sync(client).await;
    }
}

/// An encrypted room of Alice's that Bob has joined, seen as encrypted and joined by both
/// clients.
async fn encrypted_room(alice: &Client, bob: &Client) -> OwnedRoomId {
    let mut request = create_room::v3::Request::new();
    request.invite = vec![bob.user_id().expect("bob is logged in").to_owned()];
    let room = alice.create_room(request).await.expect("create the room");
    room.enable_encryption().await.expect("enable encryption");
    let room_id = room.room_id().to_owned();
    sync_until(bob, Duration::from_secs(30), "bob's invite", |bob| bob.get_room(&room_id).is_some()).await;
    bob.join_room_by_id(&room_id).await.expect("bob joins");
    sync_until(alice, Duration::from_secs(30), "bob's join on alice's side", |alice| {
        alice.get_room(&room_id).is_some_and(|room| room.joined_members_count() == 2)
    })
    .await;
    room_id
}

/// The event as the server stores it, fetched over plain HTTP with `token`.
async fn stored_event(server: &TestServer, token: &str, room: &OwnedRoomId, event: &OwnedEventId) -> Value {
    let path = format!("/_matrix/client/v3/rooms/{}/event/{}", crate::room_support::enc(room.as_str()), crate::room_support::enc(event.as_str()));
    server.get(&path, token).await.ok().clone()
}

fn token_of(client: &Client) -> String {
    client.access_token().expect("logged in")
}

#[tokio::test]
async fn matrix_sdk_clients_talk_encrypted_across_a_restart_and_a_new_device() {
    let mut server = TestServer::start_default().await;
    let alice = sdk_client(&server, "alice").await;
    let bob = sdk_client(&server, "bob").await;
    // The first syncs upload each device's identity and one-time keys.
    sync(&alice).await;
    sync(&bob).await;
    let room_id = encrypted_room(&alice, &bob).await;
    let mut bob_messages = collect_messages(&bob);

    let sent = alice.get_room(&room_id).expect("alice's room").send(RoomMessageEventContent::text_plain("secret one")).await.expect("send");
    receive(&bob, &mut bob_messages, &room_id, "secret one").await;
    // The server only ever held ciphertext.
    let stored = stored_event(&server, &token_of(&bob), &room_id, &sent.response.event_id).await;
    assert_eq!(stored["type"], "m.room.encrypted", "{stored}");
    assert!(!stored.to_string().contains("secret one"), "{stored}");

    // After a restart the same clients go on: keys, sessions and queues were durable.
    server.restart().await;
    alice.get_room(&room_id).expect("alice's room").send(RoomMessageEventContent::text_plain("secret two")).await.expect("send");
    receive(&bob, &mut bob_messages, &room_id, "secret two").await;

    // Bob signs in on a second device: Alice's client learns of it from the device list and
    // shares the room key with it too.
    let bob_phone = another_device(&server, "bob").await;
    sync(&bob_phone).await;
    let mut phone_messages = collect_messages(&bob_phone);
    sync(&alice).await;
    alice.get_room(&room_id).expect("alice's room").send(RoomMessageEventContent::text_plain("secret three")).await.expect("send");
    receive(&bob_phone, &mut phone_messages, &room_id, "secret three").await;
    receive(&bob, &mut bob_messages, &room_id, "secret three").await;
}

#[tokio::test]
async fn matrix_sdk_key_backup_lets_a_new_device_read_the_history() {
    let server = TestServer::start_default().await;
    let alice = sdk_client(&server, "alice").await;
    let bob = sdk_client(&server, "bob").await;
    sync(&alice).await;
    sync(&bob).await;

    // Alice turns on recovery: cross-signing, secret storage and a key backup.
    let recovery_key = alice.encryption().recovery().enable().await.expect("enable recovery");
    let room_id = encrypted_room(&alice, &bob).await;
    let sent = alice.get_room(&room_id).expect("alice's room").send(RoomMessageEventContent::text_plain("kept safe")).await.expect("send");
    alice.encryption().backups().wait_for_steady_state().await.expect("the room key reaches the backup");
    let backup = server.get("/_matrix/client/v3/room_keys/version", &token_of(&alice)).await;
    assert!(backup.ok()["count"].as_u64().is_some_and(|count| count >= 1), "{}", backup.text);

    // A new device of Alice's has no room key, until it recovers the backup key and downloads.
    let laptop = another_device(&server, "alice").await;
    sync(&laptop).await;
    let room = laptop.get_room(&room_id).expect("the laptop sees the room");
    let before = room.event(&sent.response.event_id, None).await.expect("fetch the event");
    assert!(before.encryption_info().is_none(), "decrypted without a key?");
    laptop.encryption().recovery().recover(&recovery_key).await.expect("recover with the key");
    laptop.encryption().backups().download_room_keys_for_room(&room_id).await.expect("download the room's keys");
    let after = room.event(&sent.response.event_id, None).await.expect("fetch the event");
    assert!(after.encryption_info().is_some(), "not decrypted after the backup was restored");
    let body: Value = after.raw().deserialize_as_unchecked().expect("event JSON");
    assert_eq!(body["content"]["body"], "kept safe", "{body}");
}
