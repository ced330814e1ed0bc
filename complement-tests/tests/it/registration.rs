//! Account registration: open, token-gated and closed modes, username
//! availability and validation, registration options.

use complement_tests::*;

const REGISTER: &str = "/_matrix/client/v3/register";

#[tokio::test]
async fn open_registration_uses_the_dummy_flow() {
    let server = TestServer::start_default().await;
    let first = server
        .post(
            REGISTER,
            &NoAuth,
            &json!({"username": "alice", "password": "pw-alice"}),
        )
        .await;
    assert_eq!(first.status, StatusCode::UNAUTHORIZED, "{}", first.text);
    assert!(
        has_flow(&first.body, &["m.login.dummy"]),
        "open registration offers [m.login.dummy]: {}",
        first.text
    );
    let session = first.str_field("session").to_owned();
    assert!(!session.is_empty());

    let second = server
        .post(
            REGISTER,
            &NoAuth,
            &json!({"username": "alice", "password": "pw-alice", "auth": {"type": "m.login.dummy", "session": session}}),
        )
        .await;
    let alice = Session::from_body(second.ok());
    assert_eq!(alice.user_id, server.user_id("alice"));
    assert!(!alice.device_id.is_empty());
    assert!(
        alice.refresh_token.is_none(),
        "no refresh token unless requested: {}",
        second.text
    );

    let whoami = server.whoami(&alice).await;
    assert_eq!(whoami.ok()["user_id"], json!(alice.user_id));
    assert_eq!(whoami.ok()["device_id"], json!(alice.device_id));

    // The new account can log in with its password.
    let again = server.login("alice", "pw-alice").await;
    assert_ne!(
        again.device_id, alice.device_id,
        "a new login is a new device"
    );
}

#[tokio::test]
async fn registration_without_a_username_generates_one() {
    let server = TestServer::start_default().await;
    let resp = server.register_raw(json!({"password": "pw"})).await;
    let session = Session::from_body(resp.ok());
    assert!(
        session.user_id.starts_with('@')
            && session
                .user_id
                .ends_with(&format!(":{DEFAULT_SERVER_NAME}")),
        "generated user ID {}",
        session.user_id
    );
    let other = Session::from_body(server.register_raw(json!({"password": "pw"})).await.ok());
    assert_ne!(
        session.user_id, other.user_id,
        "generated user IDs must be unique"
    );
    server.login(session.localpart(), "pw").await;
}

#[tokio::test]
async fn registration_options() {
    let server = TestServer::start_default().await;

    // Requested device ID and display name.
    let resp = server
        .register_raw(json!({
            "username": "alice",
            "password": "pw",
            "device_id": "ALICEPHONE",
            "initial_device_display_name": "Alice's phone",
        }))
        .await;
    let alice = Session::from_body(resp.ok());
    assert_eq!(alice.device_id, "ALICEPHONE");
    let device = server
        .get("/_matrix/client/v3/devices/ALICEPHONE", &alice)
        .await;
    assert_eq!(device.ok()["display_name"], "Alice's phone");

    // inhibit_login: an account, but no session.
    let resp = server
        .register_raw(json!({"username": "bob", "password": "pw", "inhibit_login": true}))
        .await;
    let body = resp.ok();
    assert_eq!(body["user_id"], json!(server.user_id("bob")));
    assert!(
        body.get("access_token").is_none(),
        "inhibit_login must not return an access token: {body}"
    );
    assert!(
        body.get("device_id").is_none(),
        "inhibit_login must not return a device: {body}"
    );
    server.login("bob", "pw").await;

    // refresh_token: a refresh token and an expiry.
    let resp = server
        .register_raw(json!({"username": "carol", "password": "pw", "refresh_token": true}))
        .await;
    let carol = Session::from_body(resp.ok());
    assert!(
        carol
            .refresh_token
            .as_deref()
            .is_some_and(|t| !t.is_empty()),
        "{}",
        resp.text
    );
    let expires = carol
        .expires_in_ms
        .unwrap_or_else(|| panic!("expires_in_ms missing: {}", resp.text));
    assert!(expires > 0);
    server.whoami(&carol).await.ok();
}

#[tokio::test]
async fn username_availability_and_validation() {
    let server = TestServer::start_default().await;
    let available = |name: &str| format!("/_matrix/client/v3/register/available?username={name}");

    let resp = server.get(&available("alice"), &NoAuth).await;
    assert_eq!(resp.ok()["available"], true);

    server.register("alice", "pw").await;
    let resp = server.get(&available("alice"), &NoAuth).await;
    assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_USER_IN_USE");

    for bad in ["Alice", "bad%20name", "bad%21", "%C3%A9lise", "a%3Ab"] {
        let resp = server.get(&available(bad), &NoAuth).await;
        assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_INVALID_USERNAME");
    }
    // Every character of the user ID grammar is allowed.
    let resp = server.get(&available("a.b_c=d-e%2Ff%2B9"), &NoAuth).await;
    assert_eq!(resp.ok()["available"], true, "{}", resp.text);

    // Registering a taken or invalid name fails the same way.
    let resp = server
        .register_raw(json!({"username": "alice", "password": "pw"}))
        .await;
    assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_USER_IN_USE");
    let resp = server
        .register_raw(json!({"username": "Alice2", "password": "pw"}))
        .await;
    assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_INVALID_USERNAME");
    // The original account was not affected.
    server.login("alice", "pw").await;
}

#[tokio::test]
async fn token_registration() {
    let server = TestServer::start(
        ServerOptions::new()
            .registration("token")
            .config_toml("registration_tokens = [\"letmein\", \"other-token\"]\n"),
    )
    .await;

    let validity = "/_matrix/client/v1/register/m.login.registration_token/validity";
    let resp = server
        .send(
            server
                .request(Method::GET, validity, &NoAuth)
                .query(&[("token", "letmein")]),
        )
        .await;
    assert_eq!(resp.ok()["valid"], true);
    let resp = server
        .send(
            server
                .request(Method::GET, validity, &NoAuth)
                .query(&[("token", "wrong")]),
        )
        .await;
    assert_eq!(resp.ok()["valid"], false);

    let first = server
        .post(
            REGISTER,
            &NoAuth,
            &json!({"username": "alice", "password": "pw"}),
        )
        .await;
    assert_eq!(first.status, StatusCode::UNAUTHORIZED, "{}", first.text);
    assert!(
        has_flow(&first.body, &["m.login.registration_token"]),
        "{}",
        first.text
    );
    assert!(
        !has_flow(&first.body, &["m.login.dummy"]),
        "token mode must not offer the dummy flow: {}",
        first.text
    );
    let session = first.str_field("session").to_owned();

    // Skipping the token stage with m.login.dummy must not work.
    let fresh_session = async || {
        let first = server
            .post(
                REGISTER,
                &NoAuth,
                &json!({"username": "alice", "password": "pw"}),
            )
            .await;
        first.str_field("session").to_owned()
    };
    let resp = server
        .post(REGISTER, &NoAuth, &json!({"username": "alice", "password": "pw", "auth": {"type": "m.login.dummy", "session": session}}))
        .await;
    assert!(resp.status.is_client_error(), "{}", resp.text);

    // A wrong token fails the stage: 401 with an errcode, the flows again.
    let session = fresh_session().await;
    let resp = server
        .post(
            REGISTER,
            &NoAuth,
            &json!({"username": "alice", "password": "pw", "auth": {"type": "m.login.registration_token", "token": "wrong", "session": session}}),
        )
        .await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{}", resp.text);
    assert!(
        resp.errcode().is_some(),
        "a failed stage carries an errcode: {}",
        resp.text
    );
    assert!(
        has_flow(&resp.body, &["m.login.registration_token"]),
        "{}",
        resp.text
    );
    assert_eq!(
        server
            .get(
                "/_matrix/client/v3/register/available?username=alice",
                &NoAuth
            )
            .await
            .ok()["available"],
        true
    );

    let resp = server
        .register_with_auth(
            json!({"username": "alice", "password": "pw"}),
            "m.login.registration_token",
            Some(json!({"token": "letmein"})),
        )
        .await;
    let alice = Session::from_body(resp.ok());
    assert_eq!(alice.user_id, server.user_id("alice"));
    server.whoami(&alice).await.ok();

    // The second configured token works too.
    let resp = server
        .register_with_auth(
            json!({"username": "bob", "password": "pw"}),
            "m.login.registration_token",
            Some(json!({"token": "other-token"})),
        )
        .await;
    resp.ok();
}

#[tokio::test]
async fn closed_registration_is_forbidden() {
    let server = TestServer::start(ServerOptions::new().registration("closed")).await;
    let resp = server
        .post(
            REGISTER,
            &NoAuth,
            &json!({"username": "alice", "password": "pw"}),
        )
        .await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    // Even when trying to go through UIA directly.
    let resp = server
        .post(
            REGISTER,
            &NoAuth,
            &json!({"username": "alice", "password": "pw", "auth": {"type": "m.login.dummy"}}),
        )
        .await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

#[tokio::test]
async fn password_policy_min_length() {
    let server =
        TestServer::start(ServerOptions::new().env("MYELIN_PASSWORD__MIN_LENGTH", "8")).await;
    let resp = server
        .register_raw(json!({"username": "alice", "password": "short"}))
        .await;
    assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_WEAK_PASSWORD");
    assert_eq!(
        server
            .get(
                "/_matrix/client/v3/register/available?username=alice",
                &NoAuth
            )
            .await
            .ok()["available"],
        true
    );

    let alice = server.register("alice", "long enough").await;
    let resp = server
        .with_password_uia(
            Method::POST,
            "/_matrix/client/v3/account/password",
            &alice,
            json!({"new_password": "tiny"}),
            "long enough",
        )
        .await;
    assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_WEAK_PASSWORD");
    server.login("alice", "long enough").await;
    assert_matrix_error(
        &server.login_raw("alice", "tiny").await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
}

#[tokio::test]
async fn concurrent_registrations_of_one_name_create_one_account() {
    const RACERS: usize = 12;
    let server = TestServer::start_default().await;
    // Collect UIA sessions first, then complete them all at once.
    let mut sessions = Vec::new();
    for _ in 0..RACERS {
        let first = server
            .post(
                REGISTER,
                &NoAuth,
                &json!({"username": "racer", "password": "pw"}),
            )
            .await;
        sessions.push(first.str_field("session").to_owned());
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, session) in sessions.into_iter().enumerate() {
        let client = server.client().clone();
        let url = format!("{}{REGISTER}", server.url());
        let body = json!({
            "username": "racer",
            "password": format!("pw{i}"),
            "auth": {"type": "m.login.dummy", "session": session},
        });
        tasks.spawn(async move {
            let response = client.post(url).json(&body).send().await.expect("request");
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (i, status, body)
        });
    }
    let mut winners = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let (i, status, body) = result.expect("task");
        match status {
            StatusCode::OK => winners.push(i),
            StatusCode::BAD_REQUEST => assert_eq!(body["errcode"], "M_USER_IN_USE", "{body}"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one registration of the same name may succeed: {winners:?}"
    );
    // The winner's password is the account's password.
    server.login("racer", &format!("pw{}", winners[0])).await;

    // Distinct names registered concurrently all succeed.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..RACERS {
        let first = server
            .post(
                REGISTER,
                &NoAuth,
                &json!({"username": format!("user{i}"), "password": "pw"}),
            )
            .await;
        let session = first.str_field("session").to_owned();
        let client = server.client().clone();
        let url = format!("{}{REGISTER}", server.url());
        let body = json!({"username": format!("user{i}"), "password": "pw", "auth": {"type": "m.login.dummy", "session": session}});
        tasks.spawn(async move {
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .expect("request")
                .status()
        });
    }
    while let Some(status) = tasks.join_next().await {
        assert_eq!(status.expect("task"), StatusCode::OK);
    }
    for i in 0..RACERS {
        server.login(&format!("user{i}"), "pw").await;
    }
}
