//! Profiles, global account data and filters.

use complement_tests::*;

#[tokio::test]
async fn display_name_and_avatar() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let uid = alice.user_id.clone();

    let resp = server
        .put(
            &format!("/_matrix/client/v3/profile/{uid}/displayname"),
            &alice,
            &json!({"displayname": "Alice 🐇"}),
        )
        .await;
    resp.ok();
    let resp = server
        .put(
            &format!("/_matrix/client/v3/profile/{uid}/avatar_url"),
            &alice,
            &json!({"avatar_url": "mxc://myelin.test/abcdef"}),
        )
        .await;
    resp.ok();

    // Readable by the owner and by others.
    for session in [&alice, &bob] {
        let get = async |path: &str| server.get(path, session).await;
        let resp = get(&format!("/_matrix/client/v3/profile/{uid}/displayname")).await;
        assert_eq!(resp.ok()["displayname"], "Alice 🐇");
        let resp = get(&format!("/_matrix/client/v3/profile/{uid}/avatar_url")).await;
        assert_eq!(resp.ok()["avatar_url"], "mxc://myelin.test/abcdef");
        let resp = get(&format!("/_matrix/client/v3/profile/{uid}")).await;
        assert_eq!(resp.ok()["displayname"], "Alice 🐇");
        assert_eq!(resp.ok()["avatar_url"], "mxc://myelin.test/abcdef");
    }
    // URL-encoded user ID in the path.
    let encoded = uid.replace('@', "%40").replace(':', "%3A");
    let resp = server
        .get(
            &format!("/_matrix/client/v3/profile/{encoded}/displayname"),
            &bob,
        )
        .await;
    assert_eq!(resp.ok()["displayname"], "Alice 🐇");

    // Changing it again replaces it.
    server
        .put(
            &format!("/_matrix/client/v3/profile/{uid}/displayname"),
            &alice,
            &json!({"displayname": "Alice"}),
        )
        .await
        .ok();
    let resp = server
        .get(
            &format!("/_matrix/client/v3/profile/{uid}/displayname"),
            &bob,
        )
        .await;
    assert_eq!(resp.ok()["displayname"], "Alice");

    // Nobody else may change it, and an unauthenticated request is refused.
    let resp = server
        .put(
            &format!("/_matrix/client/v3/profile/{uid}/displayname"),
            &bob,
            &json!({"displayname": "Mallory"}),
        )
        .await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = server
        .put(
            &format!("/_matrix/client/v3/profile/{uid}/avatar_url"),
            &bob,
            &json!({"avatar_url": "mxc://evil/x"}),
        )
        .await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = server
        .put(
            &format!("/_matrix/client/v3/profile/{uid}/displayname"),
            &NoAuth,
            &json!({"displayname": "Mallory"}),
        )
        .await;
    assert_matrix_error(&resp, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
    let resp = server
        .get(
            &format!("/_matrix/client/v3/profile/{uid}/displayname"),
            &bob,
        )
        .await;
    assert_eq!(resp.ok()["displayname"], "Alice");

    // Unknown user.
    let resp = server
        .get(
            &format!("/_matrix/client/v3/profile/{}", server.user_id("nobody")),
            &bob,
        )
        .await;
    assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let resp = server
        .get(
            &format!(
                "/_matrix/client/v3/profile/{}/displayname",
                server.user_id("nobody")
            ),
            &bob,
        )
        .await;
    assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

#[tokio::test]
async fn global_account_data() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let path = |user: &str, ty: &str| format!("/_matrix/client/v3/user/{user}/account_data/{ty}");
    let content = json!({"theme": "dark", "nested": {"list": [1, 2, 3], "flag": true}});

    let resp = server
        .get(&path(&alice.user_id, "org.example.settings"), &alice)
        .await;
    assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    let resp = server
        .put(
            &path(&alice.user_id, "org.example.settings"),
            &alice,
            &content,
        )
        .await;
    assert_eq!(resp.ok(), &json!({}));
    let resp = server
        .get(&path(&alice.user_id, "org.example.settings"), &alice)
        .await;
    assert_eq!(resp.ok(), &content);

    // Overwrite replaces the whole content.
    server
        .put(
            &path(&alice.user_id, "org.example.settings"),
            &alice,
            &json!({"theme": "light"}),
        )
        .await
        .ok();
    assert_eq!(
        server
            .get(&path(&alice.user_id, "org.example.settings"), &alice)
            .await
            .ok(),
        &json!({"theme": "light"})
    );

    // Types are independent, and so are users.
    server
        .put(
            &path(&alice.user_id, "org.example.other"),
            &alice,
            &json!({"n": 1}),
        )
        .await
        .ok();
    assert_eq!(
        server
            .get(&path(&alice.user_id, "org.example.settings"), &alice)
            .await
            .ok()["theme"],
        "light"
    );
    let resp = server
        .get(&path(&bob.user_id, "org.example.settings"), &bob)
        .await;
    assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    // Someone else's account data: neither readable nor writable.
    let resp = server
        .get(&path(&alice.user_id, "org.example.settings"), &bob)
        .await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = server
        .put(
            &path(&alice.user_id, "org.example.settings"),
            &bob,
            &json!({"theme": "pwned"}),
        )
        .await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_eq!(
        server
            .get(&path(&alice.user_id, "org.example.settings"), &alice)
            .await
            .ok()["theme"],
        "light"
    );

    // Server-managed types cannot be set by clients.
    let resp = server
        .put(
            &path(&alice.user_id, "m.fully_read"),
            &alice,
            &json!({"event_id": "$x"}),
        )
        .await;
    assert_matrix_error(&resp, StatusCode::METHOD_NOT_ALLOWED, "M_BAD_JSON");

    // Content must be a JSON object.
    let resp = server
        .put(
            &path(&alice.user_id, "org.example.settings"),
            &alice,
            &json!([1, 2]),
        )
        .await;
    assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_BAD_JSON");

    // Authentication is required.
    let resp = server
        .get(&path(&alice.user_id, "org.example.settings"), &NoAuth)
        .await;
    assert_matrix_error(&resp, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
}

#[tokio::test]
async fn filters() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let filter = json!({
        "event_fields": ["type", "content.body"],
        "event_format": "client",
        "presence": {"not_types": ["m.presence"]},
        "room": {"timeline": {"limit": 10, "types": ["m.room.message"]}},
    });
    let resp = server
        .post(
            &format!("/_matrix/client/v3/user/{}/filter", alice.user_id),
            &alice,
            &filter,
        )
        .await;
    let filter_id = resp.ok()["filter_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no filter_id: {}", resp.text))
        .to_owned();
    assert!(!filter_id.is_empty());
    assert!(
        !filter_id.starts_with('{'),
        "filter IDs must not start with '{{' (clients use that for inline filters)"
    );

    let resp = server
        .get(
            &format!(
                "/_matrix/client/v3/user/{}/filter/{filter_id}",
                alice.user_id
            ),
            &alice,
        )
        .await;
    let got = resp.ok();
    assert_eq!(got["event_fields"], filter["event_fields"], "{got}");
    // "client" is the default, so leaving it out is equivalent.
    assert!(
        got.get("event_format").is_none() || got["event_format"] == "client",
        "{got}"
    );
    assert_eq!(got["room"]["timeline"]["limit"], 10, "{got}");
    assert_eq!(
        got["room"]["timeline"]["types"],
        json!(["m.room.message"]),
        "{got}"
    );
    assert_eq!(got["presence"]["not_types"], json!(["m.presence"]), "{got}");

    // A second filter gets a different ID.
    let resp = server
        .post(
            &format!("/_matrix/client/v3/user/{}/filter", alice.user_id),
            &alice,
            &json!({}),
        )
        .await;
    assert_ne!(resp.ok()["filter_id"].as_str(), Some(filter_id.as_str()));

    let resp = server
        .get(
            &format!(
                "/_matrix/client/v3/user/{}/filter/nosuchfilter",
                alice.user_id
            ),
            &alice,
        )
        .await;
    assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    // Filters of another user are not accessible.
    let resp = server
        .post(
            &format!("/_matrix/client/v3/user/{}/filter", alice.user_id),
            &bob,
            &filter,
        )
        .await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = server
        .get(
            &format!(
                "/_matrix/client/v3/user/{}/filter/{filter_id}",
                alice.user_id
            ),
            &bob,
        )
        .await;
    assert!(
        resp.status == StatusCode::FORBIDDEN || resp.status == StatusCode::NOT_FOUND,
        "bob read alice's filter: {} {}",
        resp.status,
        resp.text
    );
    let resp = server
        .get(
            &format!("/_matrix/client/v3/user/{}/filter/{filter_id}", bob.user_id),
            &bob,
        )
        .await;
    assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}
