//! The user directory (`POST /user_directory/search`): who a search finds (users sharing a
//! room with the searcher, users in public rooms, every local user when configured; never a
//! stranger, nor a deactivated account), matching on words of the user ID and display name
//! (case-insensitive, Unicode-aware prefixes), kept current as profiles and memberships
//! change, ranked exact match first, `limit` and `limited`, and remote users found once they
//! are in a room we hold.

use complement_tests::*;

use crate::{federation_rooms::eventually, room_support::*};

async fn directory_raw(server: &TestServer, who: &Session, body: Value) -> Resp {
    server.post(&format!("{C}/user_directory/search"), who, &body).await
}

/// The user IDs found for `term`, in order.
async fn found(server: &TestServer, who: &Session, term: &str) -> Vec<String> {
    let resp = directory_raw(server, who, json!({"search_term": term})).await;
    user_ids(resp.ok())
}

fn user_ids(body: &Value) -> Vec<String> {
    body["results"].as_array().unwrap_or_else(|| panic!("no results: {body}")).iter().map(|u| u["user_id"].as_str().unwrap_or_default().to_owned()).collect()
}

async fn set_displayname(server: &TestServer, who: &Session, name: &str) {
    server.put(&format!("{C}/profile/{}/displayname", enc(&who.user_id)), who, &json!({"displayname": name})).await.ok();
}

/// A private room of `owner` with `guest` invited and joined.
async fn private_room_with(server: &TestServer, owner: &Session, guest: &Session) -> String {
    let room = create_room(server, owner, json!({"preset": "private_chat"})).await;
    invite(server, owner, &room, &guest.user_id).await.ok();
    join(server, guest, &room).await.ok();
    room
}

#[tokio::test]
async fn finds_users_sharing_a_room_or_in_public_rooms_and_never_strangers() {
    let server = TestServer::start_default().await;
    let [alice, bob, carol, dave] = users(&server, ["alice", "bob", "carol", "dave"]).await;
    assert!(found(&server, &alice, "bob").await.is_empty(), "no room in common yet");
    let shared = private_room_with(&server, &alice, &bob).await;
    assert_eq!(found(&server, &alice, "bob").await, [bob.user_id.clone()], "a private room in common");
    assert_eq!(found(&server, &bob, "alice").await, [alice.user_id.clone()]);

    let carols = public_room(&server, &carol).await;
    assert_eq!(found(&server, &alice, "carol").await, [carol.user_id.clone()], "a user in a public room");

    // Dave shares a private room with bob only: bob finds him, alice does not.
    private_room_with(&server, &dave, &bob).await;
    assert_eq!(found(&server, &bob, "dave").await, [dave.user_id.clone()]);
    assert!(found(&server, &alice, "dave").await.is_empty(), "a stranger stays hidden");

    // Memberships and join rules are read when searching: changes show at once.
    put_state(&server, &carol, &carols, "m.room.join_rules", "", &json!({"join_rule": "invite"})).await;
    assert!(found(&server, &alice, "carol").await.is_empty(), "the room is no longer public");
    leave(&server, &bob, &shared).await.ok();
    assert!(found(&server, &alice, "bob").await.is_empty(), "no room in common any more");
    join(&server, &alice, &carols).await;
    assert!(found(&server, &alice, "carol").await.is_empty(), "an invite-only room cannot be joined uninvited");
}

#[tokio::test]
async fn profile_changes_are_reflected_with_unicode_aware_matching() {
    let server = TestServer::start_default().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;
    private_room_with(&server, &alice, &bob).await;
    set_displayname(&server, &bob, "Robert Paulson").await;
    assert_eq!(found(&server, &alice, "robert").await, [bob.user_id.clone()]);
    assert_eq!(found(&server, &alice, "PAUL").await, [bob.user_id.clone()], "a word prefix, any case");
    assert_eq!(found(&server, &alice, "rob pau").await, [bob.user_id.clone()], "every word must match");
    assert!(found(&server, &alice, "rob smith").await.is_empty());
    assert_eq!(found(&server, &alice, "bob").await, [bob.user_id.clone()], "the localpart still matches");

    set_displayname(&server, &bob, "Émile Zola").await;
    assert!(found(&server, &alice, "robert").await.is_empty(), "the old name is forgotten");
    assert_eq!(found(&server, &alice, "ÉMILE").await, [bob.user_id.clone()]);
    assert_eq!(found(&server, &alice, "zol").await, [bob.user_id.clone()]);
    set_displayname(&server, &bob, "Борис Иванов").await;
    assert_eq!(found(&server, &alice, "иван").await, [bob.user_id.clone()]);
    assert_eq!(found(&server, &alice, "БОР").await, [bob.user_id.clone()]);

    let resp = directory_raw(&server, &alice, json!({"search_term": "борис"})).await;
    assert_eq!(resp.ok()["results"][0]["display_name"], "Борис Иванов");
    assert_eq!(found(&server, &alice, &bob.user_id).await, [bob.user_id.clone()], "the full user ID");

    // A deactivated account leaves the directory.
    server.with_password_uia(Method::POST, &format!("{C}/account/deactivate"), &bob, json!({}), "pw").await.ok();
    assert!(found(&server, &alice, "bob").await.is_empty());
}

#[tokio::test]
async fn ranks_exact_matches_first_then_display_name_prefixes() {
    let server = TestServer::start_default().await;
    let [searcher, exact, name_prefix, id_prefix, word] = users(&server, ["searcher", "ali", "bob", "alison", "carl"]).await;
    let room = public_room(&server, &searcher).await;
    for who in [&exact, &name_prefix, &id_prefix, &word] {
        join(&server, who, &room).await.ok();
    }
    set_displayname(&server, &exact, "Somebody").await;
    set_displayname(&server, &name_prefix, "Alice Smith").await;
    set_displayname(&server, &id_prefix, "Zed").await;
    set_displayname(&server, &word, "Mr Alien").await;
    assert_eq!(
        found(&server, &searcher, "ali").await,
        [exact.user_id.clone(), name_prefix.user_id.clone(), id_prefix.user_id.clone(), word.user_id.clone()],
    );
    assert_eq!(found(&server, &searcher, "smi").await, [name_prefix.user_id.clone()], "a later word of the name");
    assert_eq!(found(&server, &searcher, "alice smith").await, [name_prefix.user_id.clone()]);
}

#[tokio::test]
async fn limit_and_limited() {
    let server = TestServer::start_default().await;
    let [searcher] = users(&server, ["searcher"]).await;
    let room = public_room(&server, &searcher).await;
    for i in 0..5 {
        let user = server.register(&format!("tester{i}"), "pw").await;
        join(&server, &user, &room).await.ok();
    }
    let resp = directory_raw(&server, &searcher, json!({"search_term": "tester", "limit": 3})).await;
    let body = resp.ok();
    assert_eq!(user_ids(body).len(), 3);
    assert_eq!(body["limited"], true);
    let resp = directory_raw(&server, &searcher, json!({"search_term": "tester"})).await;
    let body = resp.ok();
    assert_eq!(user_ids(body).len(), 5, "the default limit is 10");
    assert_eq!(body["limited"], false);
    let resp = directory_raw(&server, &searcher, json!({"search_term": "tester", "limit": 5})).await;
    assert_eq!(resp.ok()["limited"], false, "exactly the limit is not limited");

    assert_matrix_error(&directory_raw(&server, &searcher, json!({})).await, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    assert_matrix_error(&directory_raw(&server, &searcher, json!({"search_term": "x", "limit": -1})).await, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    let empty = directory_raw(&server, &searcher, json!({"search_term": ""})).await;
    assert_eq!(empty.ok()["results"], json!([]));
}

#[tokio::test]
async fn search_all_users_finds_every_local_user() {
    let server = TestServer::start(ServerOptions::new().env("MYELIN_USER_DIRECTORY__SEARCH_ALL_USERS", "true")).await;
    let [alice, _hermit] = users(&server, ["alice", "hermit"]).await;
    assert_eq!(found(&server, &alice, "herm").await, [server.user_id("hermit")], "in no room at all");
}

#[tokio::test]
async fn remote_users_are_found_once_in_a_shared_room() {
    let home = crate::federation_rooms::federating_myelin().await;
    let away = crate::federation_rooms::federating_myelin().await;
    let alice = home.register("alice", "pw").await;
    let bob = away.register("bob", "pw").await;
    set_displayname(&away, &bob, "Remote Robert").await;
    assert!(found(&home, &alice, "robert").await.is_empty(), "never seen");

    let room = create_room(&home, &alice, json!({"preset": "private_chat"})).await;
    invite(&home, &alice, &room, &bob.user_id).await.ok();
    let via = enc(home.server_name());
    away.post(&format!("{C}/join/{}?server_name={via}&via={via}", enc(&room)), &bob, &json!({})).await.ok();
    let logs = || format!("--- home ---\n{}\n--- away ---\n{}", home.all_logs(), away.all_logs());
    let finds = async |term: &str| found(&home, &alice, term).await == [bob.user_id.clone()];
    eventually("the remote user to be found", async || finds("robert").await.then_some(()), logs).await;
    assert_eq!(found(&away, &bob, "alice").await, [alice.user_id.clone()], "the room's members, from the join's state");

    set_displayname(&away, &bob, "Renamed Remote").await;
    eventually("the remote rename to arrive", async || finds("renamed").await.then_some(()), logs).await;
    assert!(found(&home, &alice, "robert").await.is_empty());
}
