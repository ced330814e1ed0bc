//! Room aliases (`/directory/room/{alias}`, `/rooms/{id}/aliases`) and the
//! published room directory (`/directory/list/room/{id}`, `/publicRooms`).

use std::collections::BTreeSet;

use complement_tests::*;

use crate::room_support::*;

fn alias_path(alias: &str) -> String {
    format!("{C}/directory/room/{}", enc(alias))
}

#[tokio::test]
async fn room_aliases() {
    let server = TestServer::start_default().await;
    let [alice, bob, carol] = users(&server, ["alice", "bob", "carol"]).await;
    let room = public_room(&server, &alice).await;
    let private = create_room(&server, &alice, json!({"preset": "private_chat"})).await;
    let alias = format!("#café-lounge:{}", server.server_name());

    // Unknown alias.
    let resp = server.get(&alias_path(&alias), &bob).await;
    assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    // Only members may point an alias at a room.
    let resp = server
        .put(&alias_path(&alias), &bob, &json!({"room_id": room}))
        .await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = server
        .put(&alias_path(&alias), &alice, &json!({"room_id": room}))
        .await;
    assert_eq!(resp.ok(), &json!({}));

    // Resolvable by anyone, with the server in `servers`.
    let resp = server.get(&alias_path(&alias), &carol).await;
    let body = resp.ok();
    assert_eq!(body["room_id"], room);
    assert!(
        body["servers"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s == server.server_name())),
        "{body}"
    );
    // Percent-encoding of the alias is optional for ':'… but '#' must be.
    let resp = server
        .get(
            &format!(
                "{C}/directory/room/%23{}:{}",
                enc("café-lounge"),
                server.server_name()
            ),
            &carol,
        )
        .await;
    assert_eq!(resp.ok()["room_id"], room);

    // Taken: 409, even for another room.
    let resp = server
        .put(&alias_path(&alias), &alice, &json!({"room_id": private}))
        .await;
    assert_eq!(resp.status, StatusCode::CONFLICT, "{}", resp.text);
    assert!(resp.errcode().is_some(), "{}", resp.text);
    assert_eq!(
        server.get(&alias_path(&alias), &carol).await.ok()["room_id"],
        room
    );

    // Invalid aliases and foreign servers.
    for bad in ["no-sigil", "#nocolon", "#x:other.example"] {
        let resp = server
            .put(&alias_path(bad), &alice, &json!({"room_id": room}))
            .await;
        assert_eq!(
            resp.status,
            StatusCode::BAD_REQUEST,
            "PUT {bad}: {}",
            resp.text
        );
    }
    let resp = server
        .put(
            &alias_path(&format!("#ghost:{}", server.server_name())),
            &alice,
            &json!({"room_id": format!("!nope:{}", server.server_name())}),
        )
        .await;
    assert!(
        resp.status.is_client_error(),
        "alias to an unknown room: {}",
        resp.text
    );

    // Local aliases of a room: members (or anyone when world-readable).
    let second = format!("#second:{}", server.server_name());
    server
        .put(&alias_path(&second), &alice, &json!({"room_id": room}))
        .await
        .ok();
    let aliases_path = room_path(&room, "/aliases");
    let resp = server.get(&aliases_path, &alice).await;
    let listed: BTreeSet<&str> = resp.ok()["aliases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(listed, BTreeSet::from([alias.as_str(), second.as_str()]));
    let resp = server.get(&aliases_path, &carol).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    put_state(
        &server,
        &alice,
        &room,
        "m.room.history_visibility",
        "",
        &json!({"history_visibility": "world_readable"}),
    )
    .await;
    let resp = server.get(&aliases_path, &carol).await;
    assert_eq!(resp.ok()["aliases"].as_array().unwrap().len(), 2);
    let resp = server.get(&room_path(&private, "/aliases"), &alice).await;
    assert_eq!(resp.ok(), &json!({"aliases": []}));

    // Joining through an alias works once bob resolved it.
    let resp = server
        .post(&format!("{C}/join/{}", enc(&second)), &bob, &json!({}))
        .await;
    assert_eq!(resp.ok()["room_id"], room);

    // Deletion: not by a bystander; by the creator of the alias.
    let resp = server
        .delete(&alias_path(&second), &carol, &json!({}))
        .await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = server
        .delete(&alias_path(&second), &alice, &json!({}))
        .await;
    assert_eq!(resp.ok(), &json!({}));
    let resp = server.get(&alias_path(&second), &bob).await;
    assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let resp = server
        .delete(&alias_path(&second), &alice, &json!({}))
        .await;
    assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let resp = server.get(&aliases_path, &alice).await;
    assert_eq!(resp.ok()["aliases"], json!([alias]));
    // A deleted alias can be reused.
    server
        .put(&alias_path(&second), &alice, &json!({"room_id": private}))
        .await
        .ok();
    assert_eq!(
        server.get(&alias_path(&second), &bob).await.ok()["room_id"],
        private
    );
}

/// Collects a `/publicRooms` listing page by page (GET, `limit`, `since`).
async fn all_public_rooms(server: &TestServer, limit: usize) -> Vec<Value> {
    let mut rooms = Vec::new();
    let mut since: Option<String> = None;
    for _ in 0..20 {
        let mut path = format!("{C}/publicRooms?limit={limit}");
        if let Some(since) = &since {
            path.push_str(&format!("&since={}", enc(since)));
        }
        let resp = server.get(&path, &NoAuth).await;
        let body = resp.ok();
        let chunk = body["chunk"].as_array().expect("chunk");
        assert!(chunk.len() <= limit, "{body}");
        if since.is_some() {
            assert!(
                body["prev_batch"].is_string(),
                "a later page has prev_batch: {body}"
            );
        }
        rooms.extend(chunk.iter().cloned());
        match body.get("next_batch").and_then(Value::as_str) {
            Some(next) => since = Some(next.to_owned()),
            None => return rooms,
        }
    }
    panic!("/publicRooms never ended");
}

#[tokio::test]
async fn published_room_directory() {
    let server = TestServer::start_default().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;
    let mut published = Vec::new();
    for (name, topic) in [
        ("Alpha lounge", "all about alpha"),
        ("Beta hub", "talk about lounges here"),
        ("Gamma lounge", "gamma rays"),
        ("Delta", "rivers"),
    ] {
        published.push(
            create_room(
                &server,
                &alice,
                json!({"visibility": "public", "name": name, "topic": topic}),
            )
            .await,
        );
    }
    let hidden = create_room(
        &server,
        &alice,
        json!({"preset": "public_chat", "name": "Hidden lounge"}),
    )
    .await;
    let private = create_room(&server, &alice, json!({"name": "Private lounge"})).await;
    let aliased = create_room(
        &server,
        &alice,
        json!({"visibility": "public", "name": "Epsilon", "room_alias_name": "epsilon"}),
    )
    .await;
    published.push(aliased.clone());

    // Visibility per room.
    let visibility = async |room: &str| {
        let resp = server
            .get(&format!("{C}/directory/list/room/{}", enc(room)), &NoAuth)
            .await;
        resp.ok()["visibility"].as_str().unwrap().to_owned()
    };
    assert_eq!(visibility(&published[0]).await, "public");
    assert_eq!(visibility(&hidden).await, "private");
    assert_eq!(visibility(&private).await, "private");

    // The whole listing, paginated one by one: each published room once.
    let listed = all_public_rooms(&server, 2).await;
    let listed_ids: Vec<&str> = listed
        .iter()
        .map(|r| r["room_id"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&str> = listed_ids.iter().copied().collect();
    assert_eq!(
        unique.len(),
        listed_ids.len(),
        "duplicates across pages: {listed_ids:?}"
    );
    assert_eq!(
        unique,
        published
            .iter()
            .map(String::as_str)
            .collect::<BTreeSet<_>>()
    );
    let alpha = listed
        .iter()
        .find(|r| r["room_id"] == published[0])
        .unwrap();
    assert_eq!(alpha["name"], "Alpha lounge");
    assert_eq!(alpha["topic"], "all about alpha");
    assert_eq!(alpha["num_joined_members"], 1);
    assert_eq!(alpha["world_readable"], false);
    assert_eq!(alpha["guest_can_join"], false);
    // "When not present, the room is assumed to be public."
    assert!(
        alpha.get("join_rule").is_none() || alpha["join_rule"] == "public",
        "{alpha}"
    );
    let epsilon = listed.iter().find(|r| r["room_id"] == aliased).unwrap();
    assert_eq!(
        epsilon["canonical_alias"],
        format!("#epsilon:{}", server.server_name())
    );
    let resp = server.get(&format!("{C}/publicRooms"), &NoAuth).await;
    let estimate = resp.ok()["total_room_count_estimate"].as_u64();
    assert_eq!(estimate, Some(5), "{}", resp.text);

    // Joining updates the member count.
    join(&server, &bob, &published[0]).await.ok();
    let listed = all_public_rooms(&server, 10).await;
    let alpha = listed
        .iter()
        .find(|r| r["room_id"] == published[0])
        .unwrap();
    assert_eq!(alpha["num_joined_members"], 2);

    // POST with a search term (name or topic), authenticated.
    let search = async |term: &str, limit: Option<u64>| {
        let mut body = json!({"filter": {"generic_search_term": term}});
        if let Some(limit) = limit {
            body["limit"] = json!(limit);
        }
        let resp = server.post(&format!("{C}/publicRooms"), &bob, &body).await;
        let mut ids: Vec<String> = resp.ok()["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["room_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        (ids, resp.body.clone())
    };
    let (found, _) = search("lounge", None).await;
    let mut expected = vec![
        published[0].clone(),
        published[1].clone(),
        published[2].clone(),
    ];
    expected.sort();
    assert_eq!(
        found, expected,
        "name or topic matches, unpublished rooms never"
    );
    let (found, _) = search("nothing matches this", None).await;
    assert!(found.is_empty());
    let (found, body) = search("lounge", Some(1)).await;
    assert_eq!(found.len(), 1, "{body}");
    let next = body["next_batch"]
        .as_str()
        .expect("more results")
        .to_owned();
    let resp = server
        .post(
            &format!("{C}/publicRooms"),
            &bob,
            &json!({"filter": {"generic_search_term": "lounge"}, "limit": 5, "since": next}),
        )
        .await;
    let rest = resp.ok()["chunk"].as_array().unwrap().len();
    assert_eq!(rest, 2, "{}", resp.text);
    let resp = server
        .post(&format!("{C}/publicRooms"), &NoAuth, &json!({}))
        .await;
    assert_matrix_error(&resp, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");

    // Changing the visibility needs power (state_default) in the room.
    let path = format!("{C}/directory/list/room/{}", enc(&published[0]));
    let resp = server
        .put(&path, &bob, &json!({"visibility": "private"}))
        .await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = server
        .put(&path, &alice, &json!({"visibility": "private"}))
        .await;
    assert_eq!(resp.ok(), &json!({}));
    assert_eq!(visibility(&published[0]).await, "private");
    let resp = server
        .put(
            &format!("{C}/directory/list/room/{}", enc(&hidden)),
            &alice,
            &json!({"visibility": "public"}),
        )
        .await;
    resp.ok();
    let listed: BTreeSet<String> = all_public_rooms(&server, 10)
        .await
        .iter()
        .map(|r| r["room_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!listed.contains(&published[0]));
    assert!(listed.contains(&hidden));
    let resp = server
        .get(
            &format!(
                "{C}/directory/list/room/{}",
                enc(&format!("!nope:{}", server.server_name()))
            ),
            &NoAuth,
        )
        .await;
    assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    // `visibility` is `public` or `private`; anything else is refused and
    // changes nothing.
    let resp = server
        .put(&path, &alice, &json!({"visibility": "sideways"}))
        .await;
    let after = visibility(&published[0]).await;
    assert_eq!(
        (resp.status, after.as_str()),
        (StatusCode::BAD_REQUEST, "private"),
        "PUT visibility \"sideways\": {}",
        resp.text
    );
}
