//! Account-data features: room tags, ignored users, DMs (`m.direct`, `is_direct`).

use complement_tests::*;

use crate::room_support::*;

#[tokio::test]
async fn room_tags_are_set_listed_synced_and_deleted() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = public_room(&server, &alice).await;
    let tags = |user: &str| format!("{C}/user/{}/rooms/{}/tags", enc(user), enc(&room));

    server.put(&format!("{}/m.favourite", tags(&alice.user_id)), &alice, &json!({"order": 0.25})).await.ok();
    server.put(&format!("{}/u.work", tags(&alice.user_id)), &alice, &json!({})).await.ok();
    let listed = server.get(&tags(&alice.user_id), &alice).await;
    assert_eq!(listed.ok()["tags"], json!({"m.favourite": {"order": 0.25}, "u.work": {}}));

    let synced = sync(&server, &alice, "timeout=0").await;
    let account_data = synced["rooms"]["join"][room.as_str()]["account_data"]["events"].as_array().cloned().unwrap_or_default();
    let tag_event = account_data.iter().find(|e| e["type"] == "m.tag").cloned().unwrap_or_else(|| panic!("no m.tag in sync: {synced}"));
    assert_eq!(tag_event["content"]["tags"]["m.favourite"]["order"], 0.25);

    server.delete(&format!("{}/u.work", tags(&alice.user_id)), &alice, &json!({})).await.ok();
    let listed = server.get(&tags(&alice.user_id), &alice).await;
    assert_eq!(listed.ok()["tags"], json!({"m.favourite": {"order": 0.25}}));

    // Someone else's tags are private.
    let refused = server.get(&tags(&alice.user_id), &bob).await;
    assert_eq!(refused.status, 403, "{:?}", refused.body);
}

#[tokio::test]
async fn ignored_users_disappear_from_sync_messages_and_invites() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let mallory = server.register("mallory", "pw").await;
    let room = public_room(&server, &alice).await;
    join(&server, &bob, &room).await.ok();
    join(&server, &mallory, &room).await.ok();

    server.put(&format!("{C}/user/{}/account_data/m.ignored_user_list", enc(&alice.user_id)), &alice, &json!({"ignored_users": {mallory.user_id.as_str(): {}}})).await.ok();
    send_text(&server, &bob, &room, "from bob").await;
    send_text(&server, &mallory, &room, "from mallory").await;

    let bodies = |events: &[Value]| events.iter().filter_map(|e| e["content"]["body"].as_str().map(ToOwned::to_owned)).collect::<Vec<_>>();
    let synced = sync(&server, &alice, "timeout=0").await;
    let timeline = bodies(events_of(&synced["rooms"]["join"][room.as_str()]["timeline"]));
    assert!(timeline.contains(&"from bob".to_owned()), "{timeline:?}");
    assert!(!timeline.contains(&"from mallory".to_owned()), "an ignored user's message reached sync: {timeline:?}");
    let messages = server.get(&room_path(&room, "/messages?dir=b&limit=50"), &alice).await;
    let chunk = bodies(messages.ok()["chunk"].as_array().map(Vec::as_slice).unwrap_or_default());
    assert!(chunk.contains(&"from bob".to_owned()) && !chunk.contains(&"from mallory".to_owned()), "{chunk:?}");
    // Bob ignores no one and sees both.
    let for_bob = sync(&server, &bob, "timeout=0").await;
    let timeline = bodies(events_of(&for_bob["rooms"]["join"][room.as_str()]["timeline"]));
    assert!(timeline.contains(&"from mallory".to_owned()), "{timeline:?}");

    // An invite from an ignored user is not shown.
    let mallorys_room = create_room(&server, &mallory, json!({"preset": "private_chat"})).await;
    invite(&server, &mallory, &mallorys_room, &alice.user_id).await.ok();
    let synced = sync(&server, &alice, "timeout=0").await;
    assert!(synced["rooms"]["invite"].get(mallorys_room.as_str()).is_none(), "an ignored user's invite was shown: {synced}");
}

#[tokio::test]
async fn a_direct_chat_invite_is_marked_direct() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let room = create_room(&server, &alice, json!({"preset": "trusted_private_chat", "is_direct": true, "invite": [bob.user_id]})).await;
    let synced = sync(&server, &bob, "timeout=0").await;
    let invite_state = synced["rooms"]["invite"][room.as_str()]["invite_state"]["events"].as_array().cloned().unwrap_or_default();
    let own = invite_state.iter().find(|e| e["type"] == "m.room.member" && e["state_key"] == bob.user_id.as_str()).cloned();
    assert_eq!(own.unwrap_or_default()["content"]["is_direct"], true, "{invite_state:?}");
    // The client records the DM in m.direct; the server keeps and syncs it.
    server.put(&format!("{C}/user/{}/account_data/m.direct", enc(&bob.user_id)), &bob, &json!({alice.user_id.as_str(): [room]})).await.ok();
    let synced = sync(&server, &bob, "timeout=0").await;
    let direct = synced["account_data"]["events"].as_array().into_iter().flatten().find(|e| e["type"] == "m.direct").cloned();
    assert_eq!(direct.unwrap_or_default()["content"][alice.user_id.as_str()], json!([room]));
}
