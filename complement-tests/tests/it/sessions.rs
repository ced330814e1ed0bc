//! Sessions: login, logout, refresh tokens and soft logout, devices,
//! password changes and account deactivation.

use std::time::Duration;

use complement_tests::*;

const LOGIN: &str = "/_matrix/client/v3/login";

#[tokio::test]
async fn login_variants() {
    let server = TestServer::start_default().await;
    let registered = server.register("alice", "pw-alice").await;

    // Identifier with a localpart.
    let a = server.login("alice", "pw-alice").await;
    assert_eq!(a.user_id, registered.user_id);
    let whoami = server.whoami(&a).await;
    assert_eq!(whoami.ok()["user_id"], json!(a.user_id));
    assert_eq!(whoami.ok()["device_id"], json!(a.device_id));

    // Identifier with a full user ID.
    let b = server.login(&server.user_id("alice"), "pw-alice").await;
    assert_eq!(b.user_id, registered.user_id);
    assert_ne!(a.device_id, b.device_id);
    assert_ne!(a.access_token, b.access_token);

    // Legacy top-level `user` field.
    let resp = server
        .post(
            LOGIN,
            &NoAuth,
            &json!({"type": "m.login.password", "user": "alice", "password": "pw-alice"}),
        )
        .await;
    let c = Session::from_body(resp.ok());
    assert_eq!(c.user_id, registered.user_id);

    // Every session is usable at the same time.
    for session in [&registered, &a, &b, &c] {
        server.whoami(session).await.ok();
    }

    // Wrong password, unknown user: the same 403.
    let resp = server.login_raw("alice", "wrong").await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let resp = server.login_raw("nobody", "pw-alice").await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    // A user ID on another server cannot log in here.
    let resp = server
        .login_raw("@alice:elsewhere.example", "pw-alice")
        .await;
    assert!(
        resp.status == StatusCode::FORBIDDEN || resp.status == StatusCode::BAD_REQUEST,
        "{}",
        resp.text
    );

    // An unsupported login type is a 400.
    let resp = server
        .post(LOGIN, &NoAuth, &json!({"type": "m.login.carrier_pigeon"}))
        .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.text);
    assert!(resp.errcode().is_some(), "{}", resp.text);
}

#[tokio::test]
async fn login_with_an_existing_device_id_replaces_its_token() {
    let server = TestServer::start_default().await;
    server.register("alice", "pw").await;
    let body = json!({
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": "alice"},
        "password": "pw",
        "device_id": "LAPTOP",
        "initial_device_display_name": "Laptop",
    });
    let first = Session::from_body(server.post(LOGIN, &NoAuth, &body).await.ok());
    assert_eq!(first.device_id, "LAPTOP");
    let second = Session::from_body(server.post(LOGIN, &NoAuth, &body).await.ok());
    assert_eq!(second.device_id, "LAPTOP");
    assert_ne!(first.access_token, second.access_token);

    // "The server will invalidate any access token previously associated with this device."
    let resp = server.whoami(&first).await;
    assert_matrix_error(&resp, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    server.whoami(&second).await.ok();

    let devices = server.get("/_matrix/client/v3/devices", &second).await;
    let laptop_count = devices.ok()["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["device_id"] == "LAPTOP")
        .count();
    assert_eq!(
        laptop_count, 1,
        "the device is reused, not duplicated: {}",
        devices.text
    );
}

#[tokio::test]
async fn logout_and_logout_all() {
    let server = TestServer::start_default().await;
    let a = server.register("alice", "pw").await;
    let b = server.login("alice", "pw").await;
    let c = server.login("alice", "pw").await;

    let resp = server
        .post("/_matrix/client/v3/logout", &b, &json!({}))
        .await;
    resp.ok();
    let resp = server.whoami(&b).await;
    let body = assert_matrix_error(&resp, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    assert!(
        body.get("soft_logout").is_none() || body["soft_logout"] == false,
        "logout is a hard logout: {body}"
    );
    // Logging out removes the device.
    let devices = server.get("/_matrix/client/v3/devices", &a).await;
    let ids: Vec<&str> = devices.ok()["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["device_id"].as_str())
        .collect();
    assert!(!ids.contains(&b.device_id.as_str()), "{ids:?}");
    assert!(
        ids.contains(&a.device_id.as_str()) && ids.contains(&c.device_id.as_str()),
        "{ids:?}"
    );
    server.whoami(&a).await.ok();

    // Logging out again with the dead token fails.
    let resp = server
        .post("/_matrix/client/v3/logout", &b, &json!({}))
        .await;
    assert_matrix_error(&resp, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");

    let bob = server.register("bob", "pw").await;
    let resp = server
        .post("/_matrix/client/v3/logout/all", &c, &json!({}))
        .await;
    resp.ok();
    for session in [&a, &c] {
        assert_matrix_error(
            &server.whoami(session).await,
            StatusCode::UNAUTHORIZED,
            "M_UNKNOWN_TOKEN",
        );
    }
    // Other users are unaffected, and alice can log in again.
    server.whoami(&bob).await.ok();
    let again = server.login("alice", "pw").await;
    let devices = server.get("/_matrix/client/v3/devices", &again).await;
    assert_eq!(
        devices.ok()["devices"].as_array().unwrap().len(),
        1,
        "{}",
        devices.text
    );
}

#[tokio::test]
async fn refresh_tokens_and_soft_logout() {
    let server = TestServer::start(ServerOptions::new().env(
        "MYELIN_SESSIONS__REFRESHABLE_ACCESS_TOKEN_LIFETIME_MS",
        "1500",
    ))
    .await;
    server.register("alice", "pw").await;
    let resp = server
        .post(
            LOGIN,
            &NoAuth,
            &json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "pw", "refresh_token": true}),
        )
        .await;
    let session = Session::from_body(resp.ok());
    let refresh_token = session
        .refresh_token
        .clone()
        .unwrap_or_else(|| panic!("no refresh_token: {}", resp.text));
    let expires = session
        .expires_in_ms
        .unwrap_or_else(|| panic!("no expires_in_ms: {}", resp.text));
    assert!(
        expires > 0 && expires <= 1500,
        "expires_in_ms {expires} must reflect the configured lifetime"
    );
    server.whoami(&session).await.ok();

    // Wait for the access token to expire: soft logout.
    tokio::time::sleep(Duration::from_millis(expires + 300)).await;
    let resp = server.whoami(&session).await;
    let body = assert_matrix_error(&resp, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    assert_eq!(
        body["soft_logout"], true,
        "an expired access token is a soft logout: {body}"
    );

    // Refresh: a new access token (and refresh token) for the same device.
    let resp = server
        .post(
            "/_matrix/client/v3/refresh",
            &NoAuth,
            &json!({"refresh_token": refresh_token}),
        )
        .await;
    let body = resp.ok();
    let new_access = body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    let new_refresh = body["refresh_token"].as_str().map(str::to_owned);
    assert!(
        body["expires_in_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 0 && ms <= 1500),
        "{body}"
    );
    assert_ne!(new_access, session.access_token);
    let whoami = server.whoami(&new_access).await;
    assert_eq!(
        whoami.ok()["device_id"],
        json!(session.device_id),
        "refreshing keeps the device"
    );

    // Once the new access token has been used, the old refresh token is revoked.
    let resp = server
        .post(
            "/_matrix/client/v3/refresh",
            &NoAuth,
            &json!({"refresh_token": refresh_token}),
        )
        .await;
    assert_matrix_error(&resp, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    if let Some(new_refresh) = new_refresh {
        let resp = server
            .post(
                "/_matrix/client/v3/refresh",
                &NoAuth,
                &json!({"refresh_token": new_refresh}),
            )
            .await;
        server
            .whoami(resp.ok()["access_token"].as_str().unwrap())
            .await
            .ok();
    }

    // Garbage refresh token.
    let resp = server
        .post(
            "/_matrix/client/v3/refresh",
            &NoAuth,
            &json!({"refresh_token": "nope"}),
        )
        .await;
    assert_matrix_error(&resp, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");

    // Sessions without a refresh token do not expire with that lifetime.
    let plain = server.login("alice", "pw").await;
    assert!(
        plain.refresh_token.is_none() && plain.expires_in_ms.is_none(),
        "{plain:?}"
    );
    tokio::time::sleep(Duration::from_millis(1800)).await;
    server.whoami(&plain).await.ok();
}

#[tokio::test]
async fn refresh_after_logout_fails() {
    let server = TestServer::start_default().await;
    let resp = server
        .register_raw(json!({"username": "alice", "password": "pw", "refresh_token": true}))
        .await;
    let session = Session::from_body(resp.ok());
    server
        .post("/_matrix/client/v3/logout", &session, &json!({}))
        .await
        .ok();
    let resp = server
        .post(
            "/_matrix/client/v3/refresh",
            &NoAuth,
            &json!({"refresh_token": session.refresh_token.unwrap()}),
        )
        .await;
    assert_matrix_error(&resp, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
}

#[tokio::test]
async fn devices_list_get_rename_delete() {
    let server = TestServer::start_default().await;
    let a = server.register("alice", "pw").await;
    let b = server.login("alice", "pw").await;
    let c = server.login("alice", "pw").await;
    let d = server.login("alice", "pw").await;
    let bob = server.register("bob", "pw").await;

    let list = server.get("/_matrix/client/v3/devices", &a).await;
    let devices = list.ok()["devices"].as_array().unwrap().clone();
    assert_eq!(devices.len(), 4, "{}", list.text);
    for device in &devices {
        assert!(device["device_id"].is_string(), "{device}");
    }

    // Get and rename.
    let path = format!("/_matrix/client/v3/devices/{}", b.device_id);
    let got = server.get(&path, &a).await;
    assert_eq!(got.ok()["device_id"], json!(b.device_id));
    server
        .put(&path, &a, &json!({"display_name": "Work laptop"}))
        .await
        .ok();
    assert_eq!(
        server.get(&path, &b).await.ok()["display_name"],
        "Work laptop"
    );

    // Unknown device, someone else's device.
    let resp = server
        .get("/_matrix/client/v3/devices/NOSUCHDEVICE", &a)
        .await;
    assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let resp = server
        .get(&format!("/_matrix/client/v3/devices/{}", bob.device_id), &a)
        .await;
    assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let resp = server
        .put(
            "/_matrix/client/v3/devices/NOSUCHDEVICE",
            &a,
            &json!({"display_name": "x"}),
        )
        .await;
    assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    // Delete: UIA required; a wrong password fails the stage.
    let first = server.delete(&path, &a, &json!({})).await;
    assert_eq!(first.status, StatusCode::UNAUTHORIZED, "{}", first.text);
    assert!(
        has_flow(&first.body, &["m.login.password"]),
        "{}",
        first.text
    );
    let uia_session = first.body["session"].as_str().map(str::to_owned);
    let resp = server
        .delete(
            &path,
            &a,
            &json!({"auth": password_auth("alice", "wrong", uia_session.as_deref())}),
        )
        .await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{}", resp.text);
    assert_eq!(
        resp.errcode(),
        Some("M_FORBIDDEN"),
        "a wrong password fails the stage with M_FORBIDDEN: {}",
        resp.text
    );
    server.whoami(&b).await.ok();

    // Password of another user does not authenticate alice.
    let resp = server
        .delete(
            &path,
            &a,
            &json!({"auth": password_auth("bob", "pw", None)}),
        )
        .await;
    assert!(
        resp.status == StatusCode::UNAUTHORIZED || resp.status == StatusCode::FORBIDDEN,
        "{}",
        resp.text
    );
    server.whoami(&b).await.ok();

    let resp = server
        .with_password_uia(Method::DELETE, &path, &a, json!({}), "pw")
        .await;
    resp.ok();
    assert_matrix_error(
        &server.whoami(&b).await,
        StatusCode::UNAUTHORIZED,
        "M_UNKNOWN_TOKEN",
    );
    assert_matrix_error(
        &server.get(&path, &a).await,
        StatusCode::NOT_FOUND,
        "M_NOT_FOUND",
    );

    // Bulk delete.
    let resp = server
        .with_password_uia(
            Method::POST,
            "/_matrix/client/v3/delete_devices",
            &a,
            json!({"devices": [c.device_id, d.device_id, "ALREADYGONE"]}),
            "pw",
        )
        .await;
    resp.ok();
    for session in [&c, &d] {
        assert_matrix_error(
            &server.whoami(session).await,
            StatusCode::UNAUTHORIZED,
            "M_UNKNOWN_TOKEN",
        );
    }
    let list = server.get("/_matrix/client/v3/devices", &a).await;
    let ids: Vec<&str> = list.ok()["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["device_id"].as_str())
        .collect();
    assert_eq!(ids, vec![a.device_id.as_str()]);
    server.whoami(&bob).await.ok();
}

#[tokio::test]
async fn change_password() {
    let server = TestServer::start_default().await;
    let current = server.register("alice", "old-pw").await;
    let other = server.login("alice", "old-pw").await;

    let path = "/_matrix/client/v3/account/password";
    let first = server
        .post(path, &current, &json!({"new_password": "new-pw"}))
        .await;
    assert_eq!(first.status, StatusCode::UNAUTHORIZED, "{}", first.text);
    assert!(
        has_flow(&first.body, &["m.login.password"]),
        "{}",
        first.text
    );
    // Wrong current password.
    let resp = server
        .post(path, &current, &json!({"new_password": "new-pw", "auth": password_auth("alice", "nope", first.body["session"].as_str())}))
        .await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{}", resp.text);
    server.login("alice", "old-pw").await;

    let resp = server
        .with_password_uia(
            Method::POST,
            path,
            &current,
            json!({"new_password": "new-pw"}),
            "old-pw",
        )
        .await;
    resp.ok();
    // logout_devices defaults to true: other sessions end, this one stays.
    assert_matrix_error(
        &server.whoami(&other).await,
        StatusCode::UNAUTHORIZED,
        "M_UNKNOWN_TOKEN",
    );
    server.whoami(&current).await.ok();
    assert_matrix_error(
        &server.login_raw("alice", "old-pw").await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    let fresh = server.login("alice", "new-pw").await;

    // logout_devices: false keeps the other sessions.
    let resp = server
        .with_password_uia(
            Method::POST,
            path,
            &current,
            json!({"new_password": "newer-pw", "logout_devices": false}),
            "new-pw",
        )
        .await;
    resp.ok();
    server.whoami(&fresh).await.ok();
    server.whoami(&current).await.ok();
    server.login("alice", "newer-pw").await;
}

#[tokio::test]
async fn deactivate_account() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let other = server.login("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    server
        .put(
            &format!("/_matrix/client/v3/profile/{}/displayname", alice.user_id),
            &alice,
            &json!({"displayname": "Alice"}),
        )
        .await
        .ok();

    let path = "/_matrix/client/v3/account/deactivate";
    // Wrong password: nothing happens.
    let first = server.post(path, &alice, &json!({})).await;
    assert_eq!(first.status, StatusCode::UNAUTHORIZED, "{}", first.text);
    let resp = server
        .post(
            path,
            &alice,
            &json!({"auth": password_auth("alice", "wrong", first.body["session"].as_str())}),
        )
        .await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{}", resp.text);
    server.whoami(&alice).await.ok();

    let resp = server
        .with_password_uia(Method::POST, path, &alice, json!({"erase": true}), "pw")
        .await;
    let body = resp.ok();
    assert!(
        body["id_server_unbind_result"] == "success"
            || body["id_server_unbind_result"] == "no-support",
        "id_server_unbind_result is required: {body}"
    );

    for session in [&alice, &other] {
        assert_matrix_error(
            &server.whoami(session).await,
            StatusCode::UNAUTHORIZED,
            "M_UNKNOWN_TOKEN",
        );
    }
    let resp = server.login_raw("alice", "pw").await;
    assert_eq!(resp.status, StatusCode::FORBIDDEN, "{}", resp.text);
    assert!(
        matches!(resp.errcode(), Some("M_USER_DEACTIVATED" | "M_FORBIDDEN")),
        "{}",
        resp.text
    );
    // The user ID stays taken.
    let resp = server
        .get(
            "/_matrix/client/v3/register/available?username=alice",
            &NoAuth,
        )
        .await;
    assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_USER_IN_USE");
    let resp = server
        .register_raw(json!({"username": "alice", "password": "pw2"}))
        .await;
    assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_USER_IN_USE");
    // erase: true removed the profile's display name.
    let resp = server
        .get(
            &format!(
                "/_matrix/client/v3/profile/{}/displayname",
                server.user_id("alice")
            ),
            &bob,
        )
        .await;
    assert!(
        resp.status == StatusCode::NOT_FOUND
            || resp.body.get("displayname").is_none_or(Value::is_null),
        "an erased user's display name must be gone: {} {}",
        resp.status,
        resp.text
    );
    server.whoami(&bob).await.ok();
}

#[tokio::test]
async fn secrets_never_appear_in_logs() {
    const SECRET: &str = "shared-secret-that-must-stay-private";
    let mut server = TestServer::start(
        ServerOptions::new()
            .shared_secret(SECRET)
            .env("MYELIN_LOG__LEVEL", "debug")
            .env("MYELIN_LOG__FORMAT", "text"),
    )
    .await;
    let first_password = "Correct-Horse-Battery-Staple-1";
    let second_password = "Correct-Horse-Battery-Staple-2";
    let resp = server
        .register_raw(
            json!({"username": "alice", "password": first_password, "refresh_token": true}),
        )
        .await;
    let alice = Session::from_body(resp.ok());
    let other = server.login("alice", first_password).await;
    assert_matrix_error(
        &server.login_raw("alice", "Wrong-Password-Attempt-9").await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    server.whoami(&alice).await.ok();
    server.whoami("syt_made_up_token_value_123").await;
    let refreshed = server
        .post(
            "/_matrix/client/v3/refresh",
            &NoAuth,
            &json!({"refresh_token": alice.refresh_token.clone().unwrap()}),
        )
        .await;
    let refreshed_token = refreshed.ok()["access_token"].as_str().unwrap().to_owned();
    let alice_now = Session {
        access_token: refreshed_token.clone(),
        ..alice.clone()
    };
    server
        .with_password_uia(
            Method::POST,
            "/_matrix/client/v3/account/password",
            &alice_now,
            json!({"new_password": second_password, "logout_devices": false}),
            first_password,
        )
        .await
        .ok();
    // Shared-secret registration.
    let nonce = server
        .get("/_synapse/admin/v1/register", &NoAuth)
        .await
        .ok()["nonce"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin_password = "Admin-Password-Never-Logged";
    let mac = shared_secret_mac(SECRET, &nonce, "root", admin_password, true);
    let root = server
        .post(
            "/_synapse/admin/v1/register",
            &NoAuth,
            &json!({"nonce": nonce, "username": "root", "password": admin_password, "admin": true, "mac": mac}),
        )
        .await;
    let root_token = root.ok()["access_token"].as_str().unwrap().to_owned();
    server.stop_gracefully().await;

    let log = server.all_logs();
    assert!(
        log.lines().count() > 3,
        "expected some debug logging:\n{log}"
    );
    let secrets = [
        ("a password", first_password.to_owned()),
        ("a password", second_password.to_owned()),
        ("a wrong password", "Wrong-Password-Attempt-9".to_owned()),
        ("an admin password", admin_password.to_owned()),
        ("an access token", alice.access_token.clone()),
        ("an access token", other.access_token.clone()),
        ("an access token", refreshed_token),
        ("an access token", root_token),
        (
            "an unknown access token",
            "syt_made_up_token_value_123".to_owned(),
        ),
        ("a refresh token", alice.refresh_token.clone().unwrap()),
        ("the registration shared secret", SECRET.to_owned()),
        ("a registration MAC", mac),
    ];
    for (what, secret) in secrets {
        assert!(
            !log.contains(&secret),
            "{what} appears in the server's log: {secret}"
        );
    }
}

#[tokio::test]
async fn configured_token_lifetimes() {
    let server = TestServer::start(
        ServerOptions::new()
            .env(
                "MYELIN_SESSIONS__NONREFRESHABLE_ACCESS_TOKEN_LIFETIME_MS",
                "1000",
            )
            .env("MYELIN_SESSIONS__REFRESH_TOKEN_LIFETIME_MS", "1000")
            .env(
                "MYELIN_SESSIONS__REFRESHABLE_ACCESS_TOKEN_LIFETIME_MS",
                "60000",
            ),
    )
    .await;
    let plain = server.register("alice", "pw").await;
    let resp = server
        .post(
            LOGIN,
            &NoAuth,
            &json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "pw", "refresh_token": true}),
        )
        .await;
    let refreshable = Session::from_body(resp.ok());
    server.whoami(&plain).await.ok();
    tokio::time::sleep(Duration::from_millis(1300)).await;

    // A non-refreshable token past its lifetime is dead.
    assert_matrix_error(
        &server.whoami(&plain).await,
        StatusCode::UNAUTHORIZED,
        "M_UNKNOWN_TOKEN",
    );
    // The refreshable access token lives longer than its (expired) refresh token.
    server.whoami(&refreshable).await.ok();
    let resp = server
        .post(
            "/_matrix/client/v3/refresh",
            &NoAuth,
            &json!({"refresh_token": refreshable.refresh_token.unwrap()}),
        )
        .await;
    assert_matrix_error(&resp, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
}
