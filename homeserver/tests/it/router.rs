use axum::body::Body;
use http::{Method, Request, StatusCode};
use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn versions_lists_v1_1_through_v1_16_and_unstable_features() {
    let app = TestApp::new();
    let reply = app.call(Method::GET, "/_matrix/client/versions", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let versions: Vec<&str> = reply.body["versions"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for minor in 1..=16 {
        assert!(versions.contains(&format!("v1.{minor}").as_str()), "missing v1.{minor}");
    }
    assert!(versions.contains(&"r0.6.1"));
    assert!(reply.body["unstable_features"].is_object());
}

#[tokio::test]
async fn unknown_path_and_wrong_method_are_unrecognized() {
    let app = TestApp::new();
    app.call(Method::GET, "/_matrix/client/v3/nope", None, None).await.assert_error(StatusCode::NOT_FOUND, "M_UNRECOGNIZED");
    app.call(Method::PUT, "/_matrix/client/v3/login", None, Some(json!({})))
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "M_UNRECOGNIZED");
}

#[tokio::test]
async fn body_that_is_not_json_is_m_not_json() {
    let app = TestApp::new();
    let request = Request::post("/_matrix/client/v3/login").body(Body::from("{not json")).unwrap();
    app.send(request).await.assert_error(StatusCode::BAD_REQUEST, "M_NOT_JSON");
}

#[tokio::test]
async fn json_of_the_wrong_shape_is_m_bad_json_naming_the_field() {
    let app = TestApp::new();
    let reply = app
        .call(Method::POST, "/_matrix/client/v3/login", None, Some(json!({"type": "m.login.password", "user": "a", "password": 5})))
        .await;
    reply.assert_error(StatusCode::BAD_REQUEST, "M_BAD_JSON");
    assert!(reply.body["error"].as_str().unwrap().starts_with("password:"), "{}", reply.body);
    let reply = app.call(Method::POST, "/_matrix/client/v3/user/@a:test.local/filter", Some("x"), Some(json!([1]))).await;
    // auth runs before the body is parsed: an unknown token wins
    reply.assert_error(StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    let token = app.register_token("shape").await;
    let reply = app
        .call(Method::PUT, "/_matrix/client/v3/devices/NOPE", Some(&token), Some(json!({"display_name": 12})))
        .await;
    reply.assert_error(StatusCode::BAD_REQUEST, "M_BAD_JSON");
    assert!(reply.body["error"].as_str().unwrap().starts_with("display_name:"), "{}", reply.body);
}

#[tokio::test]
async fn declared_oversize_body_is_refused_before_reading() {
    let app = TestApp::with_config(|c| c.limits.max_request_body_bytes = 100);
    // The body is never produced: a stream that would fail if polled proves it is not read.
    let stream = futures::stream::once(async { Err::<bytes::Bytes, std::io::Error>(std::io::Error::other("must not be read")) });
    let request = Request::post("/_matrix/client/v3/login")
        .header("content-length", "1000000")
        .body(Body::from_stream(stream))
        .unwrap();
    app.send(request).await.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");
}

#[tokio::test]
async fn chunked_oversize_body_is_too_large() {
    let app = TestApp::with_config(|c| c.limits.max_request_body_bytes = 100);
    let chunks = (0..10).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 50])));
    let request = Request::post("/_matrix/client/v3/login").body(Body::from_stream(futures::stream::iter(chunks))).unwrap();
    app.send(request).await.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");
}

#[tokio::test]
async fn missing_and_unknown_tokens() {
    let app = TestApp::new();
    app.call(Method::GET, "/_matrix/client/v3/account/whoami", None, None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
    let reply = app.call(Method::GET, "/_matrix/client/v3/account/whoami", Some("bogus"), None).await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    // absent means false
    assert_ne!(reply.body["soft_logout"], true);
}

#[tokio::test]
async fn register_login_whoami_logout_and_the_r0_alias() {
    let app = TestApp::new();
    let registered = app.register("alice", "correct horse").await;
    assert_eq!(registered["user_id"], "@alice:test.local");

    let login = app
        .call(
            Method::POST,
            "/_matrix/client/r0/login",
            None,
            Some(json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "correct horse"})),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let token = login.body["access_token"].as_str().unwrap();
    let whoami = app.call(Method::GET, "/_matrix/client/r0/account/whoami", Some(token), None).await;
    assert_eq!(whoami.body["user_id"], "@alice:test.local");
    assert_eq!(whoami.body["device_id"], login.body["device_id"]);

    let logout = app.call(Method::POST, "/_matrix/client/v3/logout", Some(token), Some(json!({}))).await;
    assert_eq!(logout.status, StatusCode::OK);
    app.call(Method::GET, "/_matrix/client/v3/account/whoami", Some(token), None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    // the registration session is untouched by the other device's logout
    let first = registered["access_token"].as_str().unwrap();
    assert_eq!(app.call(Method::GET, "/_matrix/client/v3/account/whoami", Some(first), None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_password_is_forbidden_and_legacy_user_field_works() {
    let app = TestApp::new();
    app.register("bob", "hunter22").await;
    let bad = app
        .call(Method::POST, "/_matrix/client/v3/login", None, Some(json!({"type": "m.login.password", "user": "bob", "password": "nope"})))
        .await;
    bad.assert_error(StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let good = app
        .call(Method::POST, "/_matrix/client/v3/login", None, Some(json!({"type": "m.login.password", "user": "@bob:test.local", "password": "hunter22"})))
        .await;
    assert_eq!(good.status, StatusCode::OK, "{}", good.body);
}

#[tokio::test]
async fn username_rules_and_availability() {
    let app = TestApp::new();
    app.call(Method::GET, "/_matrix/client/v3/register/available?username=Caps", None, None)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "M_INVALID_USERNAME");
    let free = app.call(Method::GET, "/_matrix/client/v3/register/available?username=carol", None, None).await;
    assert_eq!(free.body["available"], true);
    app.register("carol", "pw-pw-pw").await;
    app.call(Method::GET, "/_matrix/client/v3/register/available?username=carol", None, None)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "M_USER_IN_USE");
    // a taken name is reported before user-interactive auth starts
    app.call(Method::POST, "/_matrix/client/v3/register", None, Some(json!({"username": "carol", "password": "x"})))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "M_USER_IN_USE");
}

#[tokio::test]
async fn token_registration_requires_a_valid_token() {
    let app = TestApp::with_config(|c| {
        c.registration = myelin_config::RegistrationMode::Token;
        c.registration_tokens = vec!["letmein".to_owned()];
    });
    let first = app.call(Method::POST, "/_matrix/client/v3/register", None, Some(json!({"username": "dan", "password": "pw"}))).await;
    assert_eq!(first.status, StatusCode::UNAUTHORIZED);
    assert_eq!(first.body["flows"][0]["stages"][0], "m.login.registration_token");
    let session = first.body["session"].as_str().unwrap();
    let wrong = app
        .call(Method::POST, "/_matrix/client/v3/register", None, Some(json!({"username": "dan", "password": "pw", "auth": {"type": "m.login.registration_token", "token": "nope", "session": session}})))
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body["errcode"], "M_FORBIDDEN");
    let right = app
        .call(Method::POST, "/_matrix/client/v3/register", None, Some(json!({"username": "dan", "password": "pw", "auth": {"type": "m.login.registration_token", "token": "letmein", "session": session}})))
        .await;
    assert_eq!(right.status, StatusCode::OK, "{}", right.body);
}

#[tokio::test]
async fn closed_registration_is_forbidden() {
    let app = TestApp::with_config(|c| c.registration = myelin_config::RegistrationMode::Closed);
    app.call(Method::POST, "/_matrix/client/v3/register", None, Some(json!({"username": "eve", "password": "pw"})))
        .await
        .assert_error(StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

#[tokio::test]
async fn refresh_rotates_and_expired_tokens_soft_logout() {
    let app = TestApp::with_config(|c| c.sessions.refreshable_access_token_lifetime_ms = 300);
    app.register("fay", "pw-pw-pw").await;
    let login = app
        .call(Method::POST, "/_matrix/client/v3/login", None, Some(json!({"type": "m.login.password", "user": "fay", "password": "pw-pw-pw", "refresh_token": true})))
        .await;
    assert_eq!(login.body["expires_in_ms"], 300);
    let access = login.body["access_token"].as_str().unwrap().to_owned();
    let refresh = login.body["refresh_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let expired = app.call(Method::GET, "/_matrix/client/v3/account/whoami", Some(&access), None).await;
    expired.assert_error(StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    assert_eq!(expired.body["soft_logout"], true);

    let refreshed = app.call(Method::POST, "/_matrix/client/v3/refresh", None, Some(json!({"refresh_token": refresh}))).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let new_access = refreshed.body["access_token"].as_str().unwrap();
    assert_ne!(new_access, access);
    assert_eq!(app.call(Method::GET, "/_matrix/client/v3/account/whoami", Some(new_access), None).await.status, StatusCode::OK);
    // the old refresh token is spent
    app.call(Method::POST, "/_matrix/client/v3/refresh", None, Some(json!({"refresh_token": refresh})))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
}

#[tokio::test]
async fn login_rate_limit_answers_429_with_retry_after() {
    let app = TestApp::with_config(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.login_per_ip = myelin_config::RateLimit { per_second: 0.1, burst: 2 };
    });
    let body = json!({"type": "m.login.password", "user": "nobody", "password": "x"});
    for _ in 0..2 {
        assert_eq!(app.call(Method::POST, "/_matrix/client/v3/login", None, Some(body.clone())).await.status, StatusCode::FORBIDDEN);
    }
    let limited = app.call(Method::POST, "/_matrix/client/v3/login", None, Some(body)).await;
    limited.assert_error(StatusCode::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED");
    assert!(limited.body["retry_after_ms"].as_u64().unwrap() > 0);
    let header: u64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(header >= 1);
}

#[tokio::test]
async fn devices_need_password_uia_to_delete() {
    let app = TestApp::new();
    let token = app.register_token("gus").await;
    let login = app
        .call(Method::POST, "/_matrix/client/v3/login", None, Some(json!({"type": "m.login.password", "user": "gus", "password": "correct horse", "device_id": "PHONE", "initial_device_display_name": "Phone"})))
        .await;
    assert_eq!(login.body["device_id"], "PHONE");
    let devices = app.call(Method::GET, "/_matrix/client/v3/devices", Some(&token), None).await;
    assert_eq!(devices.body["devices"].as_array().unwrap().len(), 2);

    let rename = app.call(Method::PUT, "/_matrix/client/v3/devices/PHONE", Some(&token), Some(json!({"display_name": "Old phone"}))).await;
    assert_eq!(rename.status, StatusCode::OK);
    let phone = app.call(Method::GET, "/_matrix/client/v3/devices/PHONE", Some(&token), None).await;
    assert_eq!(phone.body["display_name"], "Old phone");

    let challenge = app.call(Method::DELETE, "/_matrix/client/v3/devices/PHONE", Some(&token), Some(json!({}))).await;
    assert_eq!(challenge.status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.body["flows"][0]["stages"][0], "m.login.password");
    let session = challenge.body["session"].as_str().unwrap();
    let wrong = app
        .call(Method::DELETE, "/_matrix/client/v3/devices/PHONE", Some(&token), Some(json!({"auth": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "gus"}, "password": "bad", "session": session}})))
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body["errcode"], "M_FORBIDDEN");
    let done = app
        .call(Method::DELETE, "/_matrix/client/v3/devices/PHONE", Some(&token), Some(json!({"auth": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "gus"}, "password": "correct horse", "session": session}})))
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let phone_token = login.body["access_token"].as_str().unwrap();
    app.call(Method::GET, "/_matrix/client/v3/account/whoami", Some(phone_token), None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
}

#[tokio::test]
async fn deactivation_blocks_login() {
    let app = TestApp::new();
    let token = app.register_token("hal").await;
    let auth = json!({"auth": {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "hal"}, "password": "correct horse"}, "erase": true});
    let reply = app.call(Method::POST, "/_matrix/client/v3/account/deactivate", Some(&token), Some(auth)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["id_server_unbind_result"], "success");
    let login = app
        .call(Method::POST, "/_matrix/client/v3/login", None, Some(json!({"type": "m.login.password", "user": "hal", "password": "correct horse"})))
        .await;
    assert_eq!(login.status, StatusCode::FORBIDDEN);
    assert_eq!(login.body["errcode"], "M_USER_DEACTIVATED");
}

#[tokio::test]
async fn profile_account_data_and_filters_round_trip() {
    let app = TestApp::new();
    let token = app.register_token("ivy").await;
    let set = app.call(Method::PUT, "/_matrix/client/v3/profile/@ivy:test.local/displayname", Some(&token), Some(json!({"displayname": "Ivy"}))).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let profile = app.call(Method::GET, "/_matrix/client/v3/profile/@ivy:test.local", None, None).await;
    assert_eq!(profile.body["displayname"], "Ivy");
    let other = app.register_token("jon").await;
    app.call(Method::PUT, "/_matrix/client/v3/profile/@ivy:test.local/displayname", Some(&other), Some(json!({"displayname": "Not Ivy"})))
        .await
        .assert_error(StatusCode::FORBIDDEN, "M_FORBIDDEN");

    let put = app.call(Method::PUT, "/_matrix/client/v3/user/@ivy:test.local/account_data/m.direct", Some(&token), Some(json!({"@jon:test.local": ["!r:test.local"]}))).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    let get = app.call(Method::GET, "/_matrix/client/v3/user/@ivy:test.local/account_data/m.direct", Some(&token), None).await;
    assert_eq!(get.body["@jon:test.local"][0], "!r:test.local");
    app.call(Method::GET, "/_matrix/client/v3/user/@ivy:test.local/account_data/m.direct", Some(&other), None)
        .await
        .assert_error(StatusCode::FORBIDDEN, "M_FORBIDDEN");

    let filter = app.call(Method::POST, "/_matrix/client/v3/user/@ivy:test.local/filter", Some(&token), Some(json!({"room": {"timeline": {"limit": 10}}}))).await;
    let id = filter.body["filter_id"].as_str().unwrap();
    let back = app.call(Method::GET, &format!("/_matrix/client/v3/user/@ivy:test.local/filter/{id}"), Some(&token), None).await;
    assert_eq!(back.body["room"]["timeline"]["limit"], 10);
}

#[tokio::test]
async fn cors_preflight_and_headers() {
    let app = TestApp::new();
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri("/_matrix/client/v3/account/whoami")
        .header("origin", "https://app.element.io")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .body(Body::empty())
        .unwrap();
    let reply = app.send(preflight).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["access-control-allow-origin"], "*");
    assert!(reply.headers["access-control-allow-headers"].to_str().unwrap().to_lowercase().contains("authorization"));
    let normal = Request::get("/_matrix/client/versions").header("origin", "https://x.example").body(Body::empty()).unwrap();
    assert_eq!(app.send(normal).await.headers["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn admin_api_needs_an_admin() {
    let app = TestApp::new();
    let token = app.register_token("kim").await;
    app.call(Method::GET, "/_synapse/admin/v2/users", Some(&token), None).await.assert_error(StatusCode::FORBIDDEN, "M_FORBIDDEN");
    app.services.users.update(&ruma::UserId::parse("@kim:test.local").unwrap(), |a| a.admin = true).await.unwrap();
    let created = app.call(Method::PUT, "/_synapse/admin/v2/users/@lee:test.local", Some(&token), Some(json!({"password": "pw", "displayname": "Lee"}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let modified = app.call(Method::PUT, "/_synapse/admin/v2/users/@lee:test.local", Some(&token), Some(json!({"admin": true}))).await;
    assert_eq!(modified.status, StatusCode::OK);
    assert_eq!(modified.body["admin"], true);
    let list = app.call(Method::GET, "/_synapse/admin/v2/users?limit=1", Some(&token), None).await;
    assert_eq!(list.body["total"], 2);
    assert_eq!(list.body["users"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["next_token"], "1");
    let deactivated = app.call(Method::POST, "/_synapse/admin/v1/deactivate/@lee:test.local", Some(&token), Some(json!({}))).await;
    assert_eq!(deactivated.status, StatusCode::OK);
    let lee = app.call(Method::GET, "/_synapse/admin/v2/users/@lee:test.local", Some(&token), None).await;
    assert_eq!(lee.body["deactivated"], true);
    app.call(Method::GET, "/_synapse/admin/v2/users/@nobody:test.local", Some(&token), None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "M_NOT_FOUND");
}
