//! Room previews: the room summary (MSC3266 / v1.15) and space hierarchies.

use complement_tests::*;

use crate::room_support::*;

#[tokio::test]
async fn a_room_summary_previews_public_rooms_and_hides_private_ones() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let public = create_room(&server, &alice, json!({"preset": "public_chat", "name": "Lobby", "topic": "say hi", "room_alias_name": "lobby"})).await;
    let private = create_room(&server, &alice, json!({"preset": "private_chat", "name": "Secret"})).await;

    for path in [format!("{C}/../v1/room_summary/{}", enc(&public)), format!("/_matrix/client/unstable/im.nheko.summary/rooms/{}/summary", enc(&public))] {
        let path = path.replace("/v3/../", "/");
        let summary = server.get(&path, &bob).await;
        let summary = summary.ok();
        assert_eq!(summary["room_id"], public.as_str(), "{path}: {summary}");
        assert_eq!(summary["name"], "Lobby");
        assert_eq!(summary["topic"], "say hi");
        // `public` is the default, which may be left out.
        assert!(summary.get("join_rule").is_none_or(|rule| rule == "public"), "{summary}");
        assert_eq!(summary["num_joined_members"], 1);
        assert!(summary["room_version"].is_string(), "{summary}");
        assert!(summary.get("membership").is_none(), "bob is no member: {summary}");
    }
    // By alias, and with a membership for members.
    let alias = format!("#lobby:{}", server.server_name());
    let by_alias = server.get(&format!("/_matrix/client/v1/room_summary/{}", enc(&alias)), &alice).await;
    assert_eq!(by_alias.ok()["membership"], "join");
    // Its members preview a private room, with its join rule.
    let own = server.get(&format!("/_matrix/client/v1/room_summary/{}", enc(&private)), &alice).await;
    assert_eq!(own.ok()["join_rule"], "invite");
    // A private room is not previewable by outsiders, and looks like a missing one.
    let hidden = server.get(&format!("/_matrix/client/v1/room_summary/{}", enc(&private)), &bob).await;
    assert_matrix_error(&hidden, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let missing = server.get(&format!("/_matrix/client/v1/room_summary/{}", enc("!nope:myelin.test")), &bob).await;
    assert_matrix_error(&missing, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

#[tokio::test]
async fn a_space_hierarchy_lists_children_breadth_first_with_pagination() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let space = create_room(&server, &alice, json!({"preset": "public_chat", "name": "Space", "creation_content": {"type": "m.space"}})).await;
    let sub = create_room(&server, &alice, json!({"preset": "public_chat", "name": "Subspace", "creation_content": {"type": "m.space"}})).await;
    let general = create_room(&server, &alice, json!({"preset": "public_chat", "name": "General"})).await;
    let deep = create_room(&server, &alice, json!({"preset": "public_chat", "name": "Deep"})).await;
    let via = json!({"via": [server.server_name()]});
    put_state(&server, &alice, &space, "m.space.child", &sub, &via).await;
    put_state(&server, &alice, &space, "m.space.child", &general, &json!({"via": [server.server_name()], "suggested": true})).await;
    put_state(&server, &alice, &sub, "m.space.child", &deep, &via).await;
    // A child without `via` is not a child.
    let ghost = create_room(&server, &alice, json!({"preset": "public_chat", "name": "Ghost"})).await;
    put_state(&server, &alice, &space, "m.space.child", &ghost, &json!({})).await;

    let names = |body: &Value| body["rooms"].as_array().into_iter().flatten().map(|r| r["name"].as_str().unwrap_or_default().to_owned()).collect::<Vec<_>>();
    let server = &server;
    let alice = &alice;
    let space_path = format!("/_matrix/client/v1/rooms/{}/hierarchy", enc(&space));
    let hierarchy = |query: &str| {
        let path = format!("{space_path}{query}");
        async move { server.get(&path, alice).await }
    };
    let all = hierarchy("").await;
    let all = all.ok().clone();
    let listed = names(&all);
    assert_eq!(listed.first().map(String::as_str), Some("Space"), "{all}");
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert!(listed.contains(&"Deep".to_owned()) && !listed.contains(&"Ghost".to_owned()), "{listed:?}");
    let root = &all["rooms"][0];
    assert_eq!(root["room_type"], "m.space");
    assert_eq!(root["children_state"].as_array().map(Vec::len), Some(2), "{root}");

    assert_eq!(names(hierarchy("?max_depth=1").await.ok()).len(), 3);
    assert_eq!(names(hierarchy("?suggested_only=true").await.ok()), vec!["Space".to_owned(), "General".to_owned()]);
    let first = hierarchy("?limit=2").await.ok().clone();
    assert_eq!(names(&first).len(), 2);
    let next = first["next_batch"].as_str().unwrap_or_default().to_owned();
    let second = hierarchy(&format!("?limit=2&from={next}")).await.ok().clone();
    assert_eq!(names(&second).len(), 2);
    assert!(second.get("next_batch").is_none(), "{second}");
    let bad = hierarchy("?from=x").await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);
}
