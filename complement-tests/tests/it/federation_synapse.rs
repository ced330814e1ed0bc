//! Myelin ↔ Synapse over real federation (TLS on loopback): each server answers the other's
//! X-Matrix-signed requests after fetching and verifying the requester's signing key.

use complement_tests::{
    HttpPeer,
    Session, free_port,
    synapse::{SynapseOptions, SynapseServer},
};
use serde_json::json;

use crate::federation_rooms::federating_myelin;

fn encode(user_id: &str) -> String {
    user_id.replace('@', "%40").replace(':', "%3A")
}


#[tokio::test]
async fn myelin_and_synapse_answer_each_others_signed_profile_queries() {
    let synapse_port = free_port();
    let synapse = SynapseServer::start(
        SynapseOptions::new().server_name(&format!("127.0.0.1:{synapse_port}")).federation_port(synapse_port),
    )
    .await;
    let myelin = federating_myelin().await;

    let alice = synapse.register("alice", "pw").await;
    synapse
        .put(&format!("/_matrix/client/v3/profile/{}/displayname", encode(&alice.user_id)), &alice, &json!({"displayname": "Alice on Synapse"}))
        .await
        .ok();
    let bob = myelin.register("bob", "pw").await;
    myelin
        .put(&format!("/_matrix/client/v3/profile/{}/displayname", encode(&bob.user_id)), &bob, &json!({"displayname": "Bob on Myelin"}))
        .await
        .ok();

    // Myelin → Synapse: Myelin signs the query; Synapse fetches Myelin's key and checks it.
    let from_synapse = myelin.get(&format!("/_matrix/client/v3/profile/{}", encode(&alice.user_id)), &bob).await;
    assert_eq!(from_synapse.ok()["displayname"], "Alice on Synapse", "{}", myelin.all_logs());

    // Synapse → Myelin: Synapse signs; Myelin fetches Synapse's key and checks it.
    let from_myelin = synapse.get(&format!("/_matrix/client/v3/profile/{}", encode(&bob.user_id)), &alice).await;
    assert_eq!(from_myelin.ok()["displayname"], "Bob on Myelin", "{}", myelin.all_logs());

    // A user Synapse does not have is a 404 through Myelin, not a server error.
    let missing = myelin
        .get(&format!("/_matrix/client/v3/profile/{}", encode(&format!("@nobody:127.0.0.1:{synapse_port}"))), &bob)
        .await;
    assert_eq!(missing.status, 404, "{:?}", missing.body);
}

#[tokio::test]
async fn each_server_lists_the_others_public_rooms_over_federation() {
    let synapse_port = free_port();
    // Synapse keeps its directory from other servers unless told otherwise.
    let synapse = SynapseServer::start(
        SynapseOptions::new()
            .server_name(&format!("127.0.0.1:{synapse_port}"))
            .federation_port(synapse_port)
            .config("allow_public_rooms_over_federation", json!(true))
            .config("room_list_publication_rules", json!([{"action": "allow"}])),
    )
    .await;
    let myelin = federating_myelin().await;
    let alice = synapse.register("alice", "pw").await;
    let bob = myelin.register("bob", "pw").await;
    let on_synapse = synapse
        .post("/_matrix/client/v3/createRoom", &alice, &json!({"preset": "public_chat", "visibility": "public", "name": "Synapse lobby"}))
        .await;
    assert_eq!(on_synapse.status, 200, "{:?}", on_synapse.body);
    let on_myelin = myelin
        .post("/_matrix/client/v3/createRoom", &bob, &json!({"preset": "public_chat", "visibility": "public", "name": "Myelin lobby"}))
        .await;
    assert_eq!(on_myelin.status, 200, "{:?}", on_myelin.body);

    let names = |body: &serde_json::Value| -> Vec<String> {
        body["chunk"].as_array().into_iter().flatten().filter_map(|room| room["name"].as_str().map(ToOwned::to_owned)).collect()
    };
    // Myelin asks Synapse (GET), then Synapse asks Myelin (POST with a search term).
    let synapse_name = synapse.server_name().to_owned();
    // Synapse fills its directory from room statistics it updates in the background.
    let mut seen = Vec::new();
    for _ in 0..50 {
        let listed = myelin.get(&format!("/_matrix/client/v3/publicRooms?server={}", encode(&synapse_name)), &bob).await;
        seen = names(listed.ok());
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(seen, vec!["Synapse lobby".to_owned()], "{}", myelin.all_logs());
    let listed = synapse
        .post(&format!("/_matrix/client/v3/publicRooms?server={}", encode(myelin.server_name())), &alice, &json!({"filter": {"generic_search_term": "lobby"}}))
        .await;
    assert_eq!(names(listed.ok()), vec!["Myelin lobby".to_owned()], "{}", synapse.logs());
}

/// `who` knocks on `room` held by the other server, which then shows the knock; the room's
/// creator lets them in with an invite and they join.
async fn knock_across(home: &impl HttpPeer, creator: &Session, away: &impl HttpPeer, guest: &Session, logs: impl Fn() -> String) {
    let created = home
        .post("/_matrix/client/v3/createRoom", creator, &json!({"room_version": "12", "preset": "private_chat", "initial_state": [{"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}]}))
        .await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let room = created.body["room_id"].as_str().unwrap_or_default().to_owned();
    let home_name = creator.user_id.split_once(':').map(|(_, s)| s.to_owned()).unwrap_or_default();
    let knocked = away.post(&format!("/_matrix/client/v3/knock/{}?via={}", encode(&room), encode(&home_name)), guest, &json!({"reason": "let me in"})).await;
    assert_eq!(knocked.status, 200, "knock: {:?}\n{}", knocked.body, logs());
    let member_path = format!("/_matrix/client/v3/rooms/{}/state/m.room.member/{}", encode(&room), encode(&guest.user_id));
    let mut membership = String::new();
    for _ in 0..50 {
        membership = home.get(&member_path, creator).await.body["membership"].as_str().unwrap_or_default().to_owned();
        if membership == "knock" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(membership, "knock", "{}", logs());
    let invited = home.post(&format!("/_matrix/client/v3/rooms/{}/invite", encode(&room)), creator, &json!({"user_id": guest.user_id})).await;
    assert_eq!(invited.status, 200, "{:?}", invited.body);
    let mut joined = None;
    for _ in 0..50 {
        let attempt = away.post(&format!("/_matrix/client/v3/join/{}?via={}", encode(&room), encode(&home_name)), guest, &json!({})).await;
        if attempt.status == 200 {
            joined = Some(attempt);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(joined.is_some(), "the invited knocker could not join\n{}", logs());
}

#[tokio::test]
async fn knocking_works_across_myelin_and_synapse_both_ways() {
    let synapse_port = free_port();
    let synapse = SynapseServer::start(
        SynapseOptions::new().server_name(&format!("127.0.0.1:{synapse_port}")).federation_port(synapse_port),
    )
    .await;
    let myelin = federating_myelin().await;
    let alice = synapse.register("alice", "pw").await;
    let bob = myelin.register("bob", "pw").await;
    let logs = || format!("--- myelin ---\n{}\n--- synapse ---\n{}", myelin.all_logs(), synapse.logs());
    knock_across(&synapse, &alice, &myelin, &bob, logs).await;
    knock_across(&myelin, &bob, &synapse, &alice, logs).await;
}

/// On `home`, a public room and a room restricted to its members; `guest` of the other server
/// cannot join the restricted room until it is in the public one.
async fn restricted_join_across(home: &impl HttpPeer, creator: &Session, away: &impl HttpPeer, guest: &Session, logs: impl Fn() -> String) {
    let home_name = creator.user_id.split_once(':').map(|(_, s)| s.to_owned()).unwrap_or_default();
    let lobby = home.post("/_matrix/client/v3/createRoom", creator, &json!({"room_version": "10", "preset": "public_chat"})).await;
    assert_eq!(lobby.status, 200, "{:?}", lobby.body);
    let lobby = lobby.body["room_id"].as_str().unwrap_or_default().to_owned();
    let rule = json!({"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": lobby}]});
    let inner = home
        .post("/_matrix/client/v3/createRoom", creator, &json!({"room_version": "10", "preset": "private_chat", "initial_state": [{"type": "m.room.join_rules", "state_key": "", "content": rule}]}))
        .await;
    assert_eq!(inner.status, 200, "{:?}", inner.body);
    let inner = inner.body["room_id"].as_str().unwrap_or_default().to_owned();
    let join = |room: String| {
        let path = format!("/_matrix/client/v3/join/{}?via={}", encode(&room), encode(&home_name));
        async move { away.post(&path, guest, &json!({})).await }
    };
    let refused = join(inner.clone()).await;
    assert_eq!(refused.status, 403, "a non-member of the lobby must be refused: {:?}\n{}", refused.body, logs());
    let joined_lobby = join(lobby.clone()).await;
    assert_eq!(joined_lobby.status, 200, "{:?}\n{}", joined_lobby.body, logs());
    let joined_inner = join(inner.clone()).await;
    assert_eq!(joined_inner.status, 200, "a lobby member may join the restricted room: {:?}\n{}", joined_inner.body, logs());
    let member = home.get(&format!("/_matrix/client/v3/rooms/{}/state/m.room.member/{}", encode(&inner), encode(&guest.user_id)), creator).await;
    let mut authoriser = member.body["join_authorised_via_users_server"].as_str().map(ToOwned::to_owned);
    for _ in 0..50 {
        if authoriser.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let member = home.get(&format!("/_matrix/client/v3/rooms/{}/state/m.room.member/{}", encode(&inner), encode(&guest.user_id)), creator).await;
        authoriser = member.body["join_authorised_via_users_server"].as_str().map(ToOwned::to_owned);
    }
    assert_eq!(authoriser.as_deref(), Some(creator.user_id.as_str()), "{}", logs());
}

#[tokio::test]
async fn restricted_joins_work_across_myelin_and_synapse_both_ways() {
    let synapse_port = free_port();
    let synapse = SynapseServer::start(
        SynapseOptions::new().server_name(&format!("127.0.0.1:{synapse_port}")).federation_port(synapse_port),
    )
    .await;
    let myelin = federating_myelin().await;
    let alice = synapse.register("alice", "pw").await;
    let bob = myelin.register("bob", "pw").await;
    let logs = || format!("--- myelin ---\n{}\n--- synapse ---\n{}", myelin.all_logs(), synapse.logs());
    restricted_join_across(&myelin, &bob, &synapse, &alice, logs).await;
    restricted_join_across(&synapse, &alice, &myelin, &bob, logs).await;
}
