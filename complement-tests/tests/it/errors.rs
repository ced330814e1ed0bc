//! Error responses for client mistakes: unknown endpoints, wrong methods,
//! malformed bodies, oversized bodies, missing or unknown tokens. None of
//! them may produce a 5xx.

use std::time::Duration;

use complement_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn unknown_endpoint_is_404_unrecognized() {
    let server = TestServer::start_default().await;
    for path in [
        "/_matrix/client/v3/this/does/not/exist",
        "/_matrix/client/v3/loginn",
        "/_matrix/client/v99/login",
        "/_matrix/federation/v1/nope",
    ] {
        let resp = server.get(path, &NoAuth).await;
        assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_UNRECOGNIZED");
    }
    // An authenticated request to an unknown endpoint is still a 404, not a 401.
    let alice = server.register("alice", "pw").await;
    let resp = server
        .post("/_matrix/client/v3/frobnicate", &alice, &json!({}))
        .await;
    assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_UNRECOGNIZED");
}

#[tokio::test]
async fn wrong_method_is_405_unrecognized() {
    let server = TestServer::start_default().await;
    let resp = server
        .put("/_matrix/client/v3/login", &NoAuth, &json!({}))
        .await;
    assert_matrix_error(&resp, StatusCode::METHOD_NOT_ALLOWED, "M_UNRECOGNIZED");
    let resp = server
        .delete("/_matrix/client/versions", &NoAuth, &json!({}))
        .await;
    assert_matrix_error(&resp, StatusCode::METHOD_NOT_ALLOWED, "M_UNRECOGNIZED");
    let resp = server
        .post("/_matrix/client/v3/account/whoami", &NoAuth, &json!({}))
        .await;
    assert_matrix_error(&resp, StatusCode::METHOD_NOT_ALLOWED, "M_UNRECOGNIZED");
}

#[tokio::test]
async fn body_that_is_not_json_is_m_not_json() {
    let server = TestServer::start_default().await;
    for body in [
        "this is not json",
        "{\"type\": \"m.login.password\",",
        "\u{0}\u{1}",
    ] {
        let resp = server
            .send(
                server
                    .request(Method::POST, "/_matrix/client/v3/login", &NoAuth)
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_NOT_JSON");
    }
    // Same on an authenticated endpoint.
    let alice = server.register("alice", "pw").await;
    let resp = server
        .send(
            server
                .request(
                    Method::PUT,
                    &format!("/_matrix/client/v3/profile/{}/displayname", alice.user_id),
                    &alice,
                )
                .header("content-type", "application/json")
                .body("displayname=Alice"),
        )
        .await;
    assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_NOT_JSON");
}

#[tokio::test]
async fn json_of_the_wrong_shape_is_m_bad_json_naming_the_field() {
    let server = TestServer::start_default().await;
    server.register("alice", "pw").await;

    let resp = server
        .post(
            "/_matrix/client/v3/login",
            &NoAuth,
            &json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": 5}),
        )
        .await;
    let body = assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("password"),
        "the error should name `password`: {body}"
    );

    let resp = server
        .post(
            "/_matrix/client/v3/login",
            &NoAuth,
            &json!({"identifier": {"type": "m.id.user", "user": "alice"}, "password": "pw"}),
        )
        .await;
    let body = assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    assert!(
        body["error"].as_str().unwrap_or_default().contains("type"),
        "the error should name `type`: {body}"
    );

    // Valid JSON, but not an object at all.
    let resp = server
        .post(
            "/_matrix/client/v3/login",
            &NoAuth,
            &json!(["m.login.password"]),
        )
        .await;
    assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_BAD_JSON");

    // Wrong type in a registration body.
    let resp = server
        .post(
            "/_matrix/client/v3/register",
            &NoAuth,
            &json!({"username": 42, "password": "pw"}),
        )
        .await;
    let body = assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("username"),
        "the error should name `username`: {body}"
    );
}

#[tokio::test]
async fn missing_and_unknown_tokens() {
    let server = TestServer::start_default().await;
    let resp = server.whoami(&NoAuth).await;
    assert_matrix_error(&resp, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");

    let resp = server.whoami("syt_definitely_not_a_token").await;
    let body = assert_matrix_error(&resp, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    assert!(
        body.get("soft_logout").is_none() || body["soft_logout"] == false,
        "an unknown token is a hard logout: {body}"
    );

    // The token may also be given in the query string (deprecated, still specified).
    let alice = server.register("alice", "pw").await;
    let resp = server
        .send(
            server
                .request(Method::GET, "/_matrix/client/v3/account/whoami", &NoAuth)
                .query(&[("access_token", &alice.access_token)]),
        )
        .await;
    assert_eq!(resp.ok()["user_id"], json!(alice.user_id));
}

#[tokio::test]
async fn oversized_body_is_413_too_large() {
    const LIMIT: usize = 1024;
    let server = TestServer::start(
        ServerOptions::new().env("MYELIN_LIMITS__MAX_REQUEST_BODY_BYTES", LIMIT.to_string()),
    )
    .await;
    server.register("alice", "pw").await;

    // Just under the limit: processed normally (wrong password → 403).
    let padding = "x".repeat(LIMIT - 200);
    let small = json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": padding});
    assert!(serde_json::to_vec(&small).unwrap().len() < LIMIT);
    let resp = server
        .post("/_matrix/client/v3/login", &NoAuth, &small)
        .await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    // Over the limit, with a Content-Length.
    let big = json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "x".repeat(LIMIT * 4)});
    let resp = server.post("/_matrix/client/v3/login", &NoAuth, &big).await;
    assert_matrix_error(&resp, StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");

    // Over the limit, chunked (no Content-Length): must be cut off as well.
    let payload = serde_json::to_vec(&big).unwrap();
    let mut request = format!(
        "POST /_matrix/client/v3/login HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        server.port()
    )
    .into_bytes();
    for chunk in payload.chunks(512) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let response = raw_http(server.port(), &request).await;
    let status_line = response.lines().next().unwrap_or_default();
    assert!(
        status_line.contains(" 413 "),
        "chunked oversized body: got {response:?}"
    );
    assert!(
        response.contains("M_TOO_LARGE"),
        "chunked oversized body: got {response:?}"
    );
}

/// Sends raw bytes on a new connection and returns everything the server
/// answers until it closes the connection (or 10 s pass).
async fn raw_http(port: u16, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    // The server may answer (and close) before reading everything: ignore write errors.
    let _ = stream.write_all(request).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn client_mistakes_never_cause_5xx() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let uid = alice.user_id.clone();
    let cases: Vec<(Method, String, Option<&str>)> = vec![
        (
            Method::GET,
            "/_matrix/client/v3/profile/not-a-user-id/displayname".into(),
            None,
        ),
        (
            Method::GET,
            "/_matrix/client/v3/profile/%40%3A/displayname".into(),
            None,
        ),
        (
            Method::PUT,
            format!("/_matrix/client/v3/profile/{uid}/displayname"),
            Some("{\"displayname\": 12}"),
        ),
        (
            Method::PUT,
            format!("/_matrix/client/v3/profile/{uid}/displayname"),
            Some("[]"),
        ),
        (
            Method::PUT,
            format!("/_matrix/client/v3/user/{uid}/account_data/m.test"),
            Some("\"string\""),
        ),
        (
            Method::POST,
            format!("/_matrix/client/v3/user/{uid}/filter"),
            Some("{\"room\": 7}"),
        ),
        (
            Method::GET,
            format!("/_matrix/client/v3/user/{uid}/filter/%00"),
            None,
        ),
        (
            Method::GET,
            "/_matrix/client/v3/devices/%FF%FE".into(),
            None,
        ),
        (
            Method::PUT,
            "/_matrix/client/v3/devices/NOPE".into(),
            Some("{\"display_name\": []}"),
        ),
        (
            Method::POST,
            "/_matrix/client/v3/delete_devices".into(),
            Some("{\"devices\": \"ABC\"}"),
        ),
        (
            Method::POST,
            "/_matrix/client/v3/account/password".into(),
            Some("{}"),
        ),
        (
            Method::POST,
            "/_matrix/client/v3/refresh".into(),
            Some("{}"),
        ),
        (
            Method::POST,
            "/_matrix/client/v3/register".into(),
            Some("{\"auth\": {\"type\": \"m.login.dummy\", \"session\": \"nope\"}}"),
        ),
        (
            Method::POST,
            "/_matrix/client/v3/register".into(),
            Some("{\"auth\": 3}"),
        ),
        (
            Method::POST,
            "/_matrix/client/v3/login".into(),
            Some(
                "{\"type\": \"m.login.password\", \"identifier\": {\"type\": \"m.id.thirdparty\"}}",
            ),
        ),
        (
            Method::POST,
            "/_matrix/client/v3/login".into(),
            Some("{\"type\": \"m.login.token\", \"token\": \"x\"}"),
        ),
        (
            Method::POST,
            "/_matrix/client/v3/login".into(),
            Some("{\"type\": \"m.login.password\", \"user\": \"@:::\", \"password\": \"x\"}"),
        ),
        (
            Method::GET,
            "/_matrix/client/v3/register/available?username=".into(),
            None,
        ),
        (
            Method::GET,
            "/_matrix/client/v3/register/available".into(),
            None,
        ),
        (
            Method::GET,
            format!("/_matrix/client/v3/user/{uid}/account_data/"),
            None,
        ),
    ];
    for (method, path, body) in cases {
        let mut request = server.request(method.clone(), &path, &alice);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let resp = server.send(request).await;
        assert!(
            resp.status.is_client_error(),
            "{method} {path} {body:?}: expected a 4xx for a client mistake, got {} {}",
            resp.status,
            resp.text
        );
        assert!(
            resp.errcode().is_some_and(|c| c.starts_with("M_")),
            "{method} {path}: no Matrix errcode: {}",
            resp.text
        );
    }
    // The server is still healthy afterwards.
    server.whoami(&alice).await.ok();
}
