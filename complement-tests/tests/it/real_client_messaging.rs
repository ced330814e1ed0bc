//! Messaging features through a real client library (matrix-sdk, no E2EE,
//! in-memory store), between two SDK clients in one room: an edit and a
//! reaction seen live through the other's sync, a threaded reply with the
//! thread list and the bundled thread summary, a read receipt and typing seen
//! through the other's sync, and server-side search through the SDK's `send`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use complement_tests::*;
use matrix_sdk::room::{IncludeRelations, RelationsOptions};
use matrix_sdk::ruma::api::client::receipt::create_receipt::v3::ReceiptType as SendReceiptType;
use matrix_sdk::ruma::api::client::room::create_room;
use matrix_sdk::ruma::api::client::search::search_events;
use matrix_sdk::ruma::api::client::threads::get_threads;
use matrix_sdk::ruma::events::SyncEphemeralRoomEvent;
use matrix_sdk::ruma::events::reaction::{OriginalSyncReactionEvent, ReactionEventContent};
use matrix_sdk::ruma::events::receipt::{ReceiptEventContent, ReceiptThread, ReceiptType};
use matrix_sdk::ruma::events::relation::{Annotation, RelationType, Thread};
use matrix_sdk::ruma::events::room::message::{
    OriginalSyncRoomMessageEvent, Relation, ReplacementMetadata, RoomMessageEventContent,
};
use matrix_sdk::ruma::events::typing::TypingEventContent;
use matrix_sdk::ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, UserId};
use matrix_sdk::{Client, Room};

use crate::real_client_rooms::{sdk_client, sync_until};

/// How long a client syncs, at most, for something the other one did.
const SEEN_WITHIN: Duration = Duration::from_secs(20);

/// Alice and bob, both SDK clients, joined to a room alice made; both have
/// synced it.
struct TwoClients {
    alice: Client,
    bob: Client,
    alice_room: Room,
    bob_room: Room,
    room_id: OwnedRoomId,
    bob_id: OwnedUserId,
}

async fn two_clients_in_a_room(server: &TestServer) -> TwoClients {
    let alice = sdk_client(server, "alice").await;
    let bob = sdk_client(server, "bob").await;
    let bob_id = UserId::parse(server.user_id("bob")).unwrap();
    let mut request = create_room::v3::Request::new();
    request.name = Some("messaging".to_owned());
    request.invite = vec![bob_id.clone()];
    let alice_room = alice.create_room(request).await.expect("create the room");
    let room_id = alice_room.room_id().to_owned();
    let bob_room = bob.join_room_by_id(&room_id).await.expect("bob joins");
    for client in [&alice, &bob] {
        sync_until(client, SEEN_WITHIN, "the room with both members", |c| {
            c.get_room(&room_id)
                .is_some_and(|r| r.joined_members_count() == 2)
        })
        .await;
    }
    TwoClients {
        alice,
        bob,
        alice_room,
        bob_room,
        room_id,
        bob_id,
    }
}

/// What an event handler collected, shared with the test.
type Collected<T> = Arc<Mutex<Vec<T>>>;

/// Collects `$extract` of every `$event` that `$client`'s sync delivers.
macro_rules! collect {
    ($client:expr, |$event:ident: $type:ty| $extract:expr) => {{
        let collected = Collected::default();
        let sink = collected.clone();
        $client.add_event_handler(move |$event: $type| {
            let sink = sink.clone();
            async move { sink.lock().unwrap().push($extract) }
        });
        collected
    }};
}

/// Collects the room messages `client`'s sync delivers.
fn collect_messages(client: &Client) -> Collected<OriginalSyncRoomMessageEvent> {
    collect!(client, |event: OriginalSyncRoomMessageEvent| event)
}

/// Syncs `client` until `collected` has an item matching `found`; returns it.
async fn sync_until_collected<T: Clone>(
    client: &Client,
    collected: &Collected<T>,
    what: &str,
    found: impl Fn(&T) -> bool,
) -> T {
    sync_until(client, SEEN_WITHIN, what, |_| {
        collected.lock().unwrap().iter().any(&found)
    })
    .await;
    let items = collected.lock().unwrap();
    items.iter().find(|item| found(item)).unwrap().clone()
}

/// `event` as JSON, fetched by the SDK with `GET /rooms/{id}/event/{id}`.
async fn fetched_event(room: &Room, event: &OwnedEventId) -> Value {
    let fetched = room.event(event, None).await.expect("fetch the event");
    fetched
        .raw()
        .deserialize_as()
        .expect("an event is a JSON object")
}

async fn send_text(room: &Room, body: &str) -> OwnedEventId {
    room.send(RoomMessageEventContent::text_plain(body))
        .await
        .expect("send a message")
        .response
        .event_id
}

#[tokio::test]
async fn matrix_sdk_edit_and_reaction_reach_the_other_client() {
    let server = TestServer::start_default().await;
    let clients = two_clients_in_a_room(&server).await;
    let bob_messages = collect_messages(&clients.bob);
    let alice_reactions = collect!(clients.alice, |event: OriginalSyncReactionEvent| event);

    let original = send_text(&clients.alice_room, "the original").await;
    sync_until_collected(&clients.bob, &bob_messages, "alice's message", |e| {
        e.event_id == original
    })
    .await;

    // Alice edits; bob's sync delivers the replacement with its new content.
    let edit_content = RoomMessageEventContent::text_plain("the edited text")
        .make_replacement(ReplacementMetadata::new(original.clone(), None));
    let edit = clients
        .alice_room
        .send(edit_content)
        .await
        .expect("send the edit")
        .response
        .event_id;
    let seen = sync_until_collected(&clients.bob, &bob_messages, "alice's edit", |e| {
        e.event_id == edit
    })
    .await;
    match &seen.content.relates_to {
        Some(Relation::Replacement(replacement)) => {
            assert_eq!(replacement.event_id, original);
            assert_eq!(replacement.new_content.msgtype.body(), "the edited text");
        }
        other => panic!("the edit arrived with the relation {other:?}"),
    }
    // Fetched later, the original carries the edit bundled.
    let fetched = fetched_event(&clients.bob_room, &original).await;
    assert_eq!(
        fetched["unsigned"]["m.relations"]["m.replace"]["event_id"],
        edit.as_str(),
        "{fetched}"
    );

    // Bob reacts; alice's sync delivers the annotation.
    let reaction = clients
        .bob_room
        .send(ReactionEventContent::new(Annotation::new(
            original.clone(),
            "👍".to_owned(),
        )))
        .await
        .expect("send the reaction")
        .response
        .event_id;
    let seen = sync_until_collected(&clients.alice, &alice_reactions, "bob's reaction", |e| {
        e.event_id == reaction
    })
    .await;
    assert_eq!(seen.sender, clients.bob_id);
    assert_eq!(seen.content.relates_to.event_id, original);
    assert_eq!(seen.content.relates_to.key, "👍");
    // And the SDK lists it among the original's annotations (/relations).
    let options = RelationsOptions {
        include_relations: IncludeRelations::RelationsOfType(RelationType::Annotation),
        ..RelationsOptions::default()
    };
    let relations = clients
        .alice_room
        .relations(original.clone(), options)
        .await
        .expect("/relations through the SDK");
    let listed: Vec<_> = relations
        .chunk
        .iter()
        .filter_map(|event| event.event_id())
        .collect();
    assert_eq!(listed, vec![reaction]);
}

#[tokio::test]
async fn matrix_sdk_threaded_reply_thread_list_and_summary() {
    let server = TestServer::start_default().await;
    let clients = two_clients_in_a_room(&server).await;
    let alice_messages = collect_messages(&clients.alice);

    let root = send_text(&clients.alice_room, "a thread starts here").await;
    // Bob answers in the thread; alice's sync delivers it as a thread event.
    let mut content = RoomMessageEventContent::text_plain("an answer in the thread");
    content.relates_to = Some(Relation::Thread(Thread::plain(root.clone(), root.clone())));
    let reply = clients
        .bob_room
        .send(content)
        .await
        .expect("send the threaded reply")
        .response
        .event_id;
    let seen = sync_until_collected(
        &clients.alice,
        &alice_messages,
        "bob's threaded reply",
        |e| e.event_id == reply,
    )
    .await;
    match &seen.content.relates_to {
        Some(Relation::Thread(thread)) => assert_eq!(thread.event_id, root),
        other => panic!("the threaded reply arrived with the relation {other:?}"),
    }

    // The room's thread list names the root, with its summary.
    let threads = clients
        .alice
        .send(get_threads::v1::Request::new(clients.room_id.clone()))
        .await
        .expect("GET /v1/rooms/{roomId}/threads through the SDK");
    assert_eq!(threads.chunk.len(), 1, "one thread");
    let listed: Value = threads.chunk[0].deserialize_as().unwrap();
    assert_eq!(listed["event_id"], root.as_str(), "{listed}");
    assert_thread_summary(&listed, &reply);

    // The root fetched on its own carries the same bundled summary.
    assert_thread_summary(&fetched_event(&clients.bob_room, &root).await, &reply);
}

/// `root` bundles the summary of a thread with one reply, `reply`, in which
/// the viewer took part (sending the root counts, as a reply does).
#[track_caller]
fn assert_thread_summary(root: &Value, reply: &OwnedEventId) {
    let summary = &root["unsigned"]["m.relations"]["m.thread"];
    assert_eq!(summary["count"], 1, "{root}");
    assert_eq!(
        summary["latest_event"]["event_id"],
        reply.as_str(),
        "{root}"
    );
    assert_eq!(summary["current_user_participated"], true, "{root}");
}

#[tokio::test]
async fn matrix_sdk_read_receipt_and_typing_reach_the_other_client() {
    let server = TestServer::start_default().await;
    let clients = two_clients_in_a_room(&server).await;
    // (The clients share only this room, so every ephemeral event is about it.)
    let receipts = collect!(clients.alice, |event: SyncEphemeralRoomEvent<
        ReceiptEventContent,
    >| event.content);
    let typing = collect!(clients.alice, |event: SyncEphemeralRoomEvent<
        TypingEventContent,
    >| event.content.user_ids);

    let message = send_text(&clients.alice_room, "read me").await;

    // Bob marks it read; alice's sync delivers his m.read receipt on it.
    clients
        .bob_room
        .send_single_receipt(
            SendReceiptType::Read,
            ReceiptThread::Unthreaded,
            message.clone(),
        )
        .await
        .expect("send the read receipt");
    let bob_id = clients.bob_id.clone();
    sync_until_collected(&clients.alice, &receipts, "bob's read receipt", |content| {
        content
            .get(&message)
            .and_then(|receipts| receipts.get(&ReceiptType::Read))
            .is_some_and(|users| users.contains_key(&bob_id))
    })
    .await;
    // The SDK keeps it as bob's receipt in the room.
    let (stored, _) = clients
        .alice_room
        .load_user_receipt(
            ReceiptType::Read,
            ReceiptThread::Unthreaded,
            &clients.bob_id,
        )
        .await
        .expect("load bob's receipt")
        .expect("alice's SDK stored bob's receipt");
    assert_eq!(stored, message);

    // Bob types, then stops; alice's sync shows both.
    clients
        .bob_room
        .typing_notice(true)
        .await
        .expect("start typing");
    let typing_seen = |users: &Vec<OwnedUserId>| users.contains(&bob_id);
    sync_until_collected(&clients.alice, &typing, "bob typing", typing_seen).await;
    let updates_before_stop = typing.lock().unwrap().len();
    clients
        .bob_room
        .typing_notice(false)
        .await
        .expect("stop typing");
    sync_until(&clients.alice, SEEN_WITHIN, "bob no longer typing", |_| {
        typing.lock().unwrap()[updates_before_stop..]
            .iter()
            .any(|users| !users.contains(&bob_id))
    })
    .await;
}

#[tokio::test]
async fn matrix_sdk_server_side_search() {
    let server = TestServer::start_default().await;
    let clients = two_clients_in_a_room(&server).await;
    send_text(&clients.alice_room, "nothing to see").await;
    let wanted = send_text(&clients.alice_room, "the needle is in this haystack").await;
    send_text(&clients.bob_room, "more hay").await;

    // Bob searches the rooms he is in through the SDK's `send`.
    let mut categories = search_events::v3::Categories::new();
    categories.room_events = Some(search_events::v3::Criteria::new("needle".to_owned()));
    let response = clients
        .bob
        .send(search_events::v3::Request::new(categories))
        .await
        .expect("POST /search through the SDK");
    let found = response.search_categories.room_events;
    let ids: Vec<OwnedEventId> = found
        .results
        .iter()
        .filter_map(|result| result.result.as_ref())
        .map(|event| {
            event
                .get_field::<OwnedEventId>("event_id")
                .unwrap()
                .unwrap()
        })
        .collect();
    assert_eq!(ids, vec![wanted], "only the matching message");
    assert_eq!(found.count.map(u64::from), Some(1));
    assert!(
        found
            .highlights
            .iter()
            .any(|h| h.eq_ignore_ascii_case("needle")),
        "highlights: {:?}",
        found.highlights
    );

    // A term nobody wrote finds nothing.
    let mut categories = search_events::v3::Categories::new();
    categories.room_events = Some(search_events::v3::Criteria::new("zebra".to_owned()));
    let response = clients
        .alice
        .send(search_events::v3::Request::new(categories))
        .await
        .expect("POST /search through the SDK");
    assert!(response.search_categories.room_events.results.is_empty());
}
