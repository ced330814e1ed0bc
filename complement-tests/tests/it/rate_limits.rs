//! Rate limiting of login and registration.

use std::time::Duration;

use complement_tests::*;

/// Checks a 429 response: `M_LIMIT_EXCEEDED`, `retry_after_ms` and a
/// consistent `Retry-After` header (whole seconds). Returns `retry_after_ms`.
#[track_caller]
fn assert_limited(resp: &Resp) -> u64 {
    let body = assert_matrix_error(resp, StatusCode::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED");
    let retry_ms = body["retry_after_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("no retry_after_ms: {body}"));
    assert!(retry_ms > 0, "{body}");
    let header = resp
        .header("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After header: {:?}", resp.headers));
    let secs: u64 = header
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After {header:?} is not a number of seconds"));
    assert!(
        secs * 1000 >= retry_ms,
        "Retry-After {secs}s is shorter than retry_after_ms {retry_ms}"
    );
    assert!(
        secs * 1000 < retry_ms + 2000,
        "Retry-After {secs}s is far longer than retry_after_ms {retry_ms}"
    );
    retry_ms
}

fn limited_server() -> ServerOptions {
    ServerOptions::new()
        .rate_limits(true)
        .env("MYELIN_RATE_LIMITS__REGISTRATION_PER_IP__BURST", "100")
        .env("MYELIN_RATE_LIMITS__REGISTRATION_PER_IP__PER_SECOND", "100")
        .env("MYELIN_RATE_LIMITS__LOGIN_PER_ACCOUNT__BURST", "100")
        .env("MYELIN_RATE_LIMITS__LOGIN_PER_ACCOUNT__PER_SECOND", "100")
        .env(
            "MYELIN_RATE_LIMITS__LOGIN_FAILURES_PER_ACCOUNT__BURST",
            "100",
        )
        .env(
            "MYELIN_RATE_LIMITS__LOGIN_FAILURES_PER_ACCOUNT__PER_SECOND",
            "100",
        )
}

#[tokio::test]
async fn login_is_limited_per_ip() {
    let server = TestServer::start(
        limited_server()
            .env("MYELIN_RATE_LIMITS__LOGIN_PER_IP__BURST", "2")
            .env("MYELIN_RATE_LIMITS__LOGIN_PER_IP__PER_SECOND", "0.1"),
    )
    .await;
    server.register("alice", "pw").await;
    server.register("bob", "pw").await;

    server.login("alice", "pw").await;
    // A failed attempt counts as an attempt.
    assert_matrix_error(
        &server.login_raw("alice", "wrong").await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    // The third attempt from this IP is refused, whatever the account or password.
    let retry = assert_limited(&server.login_raw("bob", "pw").await);
    assert!(
        retry > 1000,
        "at 0.1/s the wait is several seconds, got {retry} ms"
    );
    assert_limited(&server.login_raw("alice", "pw").await);
    assert_limited(&server.login_raw("alice", "wrong").await);

    // Only login is limited: other endpoints keep working.
    let carol = server.register("carol", "pw").await;
    server.whoami(&carol).await.ok();
    server.get("/_matrix/client/v3/login", &NoAuth).await.ok();
}

#[tokio::test]
async fn login_limit_refills() {
    let server = TestServer::start(
        limited_server()
            .env("MYELIN_RATE_LIMITS__LOGIN_PER_IP__BURST", "1")
            .env("MYELIN_RATE_LIMITS__LOGIN_PER_IP__PER_SECOND", "2"),
    )
    .await;
    server.register("alice", "pw").await;
    server.login("alice", "pw").await;
    let retry = assert_limited(&server.login_raw("alice", "pw").await);
    // One token every 500 ms (the server may round the advertised wait up to whole seconds).
    assert!(
        retry <= 1000,
        "one token every 500 ms: retry_after_ms {retry}"
    );
    // A refused attempt does not consume a token: 600 ms later one is available.
    tokio::time::sleep(Duration::from_millis(600)).await;
    server.login("alice", "pw").await;
    assert_limited(&server.login_raw("alice", "pw").await);
}

#[tokio::test]
async fn rate_limits_can_be_disabled() {
    let server = TestServer::start(
        ServerOptions::new()
            .rate_limits(false)
            .env("MYELIN_RATE_LIMITS__LOGIN_PER_IP__BURST", "1")
            .env("MYELIN_RATE_LIMITS__LOGIN_PER_IP__PER_SECOND", "0.1"),
    )
    .await;
    server.register("alice", "pw").await;
    for _ in 0..5 {
        server.login("alice", "pw").await;
    }
}

#[tokio::test]
async fn registration_is_limited_per_ip() {
    let server = TestServer::start(
        limited_server()
            .env("MYELIN_RATE_LIMITS__REGISTRATION_PER_IP__BURST", "2")
            .env("MYELIN_RATE_LIMITS__REGISTRATION_PER_IP__PER_SECOND", "0.1"),
    )
    .await;
    // A burst of 2 allows at least one complete registration (UIA round trip included).
    server.register("user0", "pw").await;
    let mut limited = None;
    for i in 1..6 {
        let resp = server
            .register_raw(json!({"username": format!("user{i}"), "password": "pw"}))
            .await;
        if resp.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(resp);
            break;
        }
        resp.ok();
    }
    let resp = limited.expect("registration was never rate limited");
    assert_limited(&resp);
}

fn ip(text: &str) -> std::net::IpAddr {
    text.parse().unwrap()
}

#[tokio::test]
async fn login_limit_is_per_client_ip() {
    let server = TestServer::start(
        limited_server()
            .env("MYELIN_RATE_LIMITS__LOGIN_PER_IP__BURST", "1")
            .env("MYELIN_RATE_LIMITS__LOGIN_PER_IP__PER_SECOND", "0.1"),
    )
    .await;
    server.register("alice", "pw").await;
    let first = server.client_from(ip("127.0.0.2"));
    let second = server.client_from(ip("127.0.0.3"));
    server.login_raw_via(&first, "alice", "pw").await.ok();
    assert_limited(&server.login_raw_via(&first, "alice", "pw").await);
    // Another address has its own budget.
    server.login_raw_via(&second, "alice", "pw").await.ok();
    assert_limited(&server.login_raw_via(&second, "alice", "pw").await);
}

#[tokio::test]
async fn forwarding_headers_do_not_bypass_the_ip_limit() {
    let server = TestServer::start(
        limited_server()
            .env("MYELIN_RATE_LIMITS__LOGIN_PER_IP__BURST", "2")
            .env("MYELIN_RATE_LIMITS__LOGIN_PER_IP__PER_SECOND", "0.1"),
    )
    .await;
    server.register("alice", "pw").await;
    let body = json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "pw"});
    let mut statuses = Vec::new();
    for i in 0..4 {
        let spoofed = format!("203.0.113.{}", i + 1);
        let resp = server
            .send(
                server
                    .request(Method::POST, "/_matrix/client/v3/login", &NoAuth)
                    .header("x-forwarded-for", &spoofed)
                    .header("x-real-ip", &spoofed)
                    .header("forwarded", format!("for={spoofed}"))
                    .json(&body),
            )
            .await;
        statuses.push(resp.status);
        if i >= 2 {
            assert_limited(&resp);
        }
    }
    assert_eq!(&statuses[..2], &[StatusCode::OK, StatusCode::OK]);
}

#[tokio::test]
async fn login_is_limited_per_account() {
    let server = TestServer::start(
        ServerOptions::new()
            .rate_limits(true)
            .env("MYELIN_RATE_LIMITS__REGISTRATION_PER_IP__BURST", "100")
            .env("MYELIN_RATE_LIMITS__LOGIN_PER_IP__BURST", "100")
            .env(
                "MYELIN_RATE_LIMITS__LOGIN_FAILURES_PER_ACCOUNT__BURST",
                "100",
            )
            .env("MYELIN_RATE_LIMITS__LOGIN_PER_ACCOUNT__BURST", "2")
            .env("MYELIN_RATE_LIMITS__LOGIN_PER_ACCOUNT__PER_SECOND", "0.1"),
    )
    .await;
    server.register("alice", "pw").await;
    server.register("bob", "pw").await;
    // Three different client addresses, one account.
    server
        .login_raw_via(&server.client_from(ip("127.0.0.2")), "alice", "pw")
        .await
        .ok();
    server
        .login_raw_via(&server.client_from(ip("127.0.0.3")), "alice", "pw")
        .await
        .ok();
    assert_limited(
        &server
            .login_raw_via(&server.client_from(ip("127.0.0.4")), "alice", "pw")
            .await,
    );
    // The full user ID names the same account.
    assert_limited(
        &server
            .login_raw_via(
                &server.client_from(ip("127.0.0.5")),
                &server.user_id("alice"),
                "pw",
            )
            .await,
    );
    // Other accounts are unaffected.
    server
        .login_raw_via(&server.client_from(ip("127.0.0.4")), "bob", "pw")
        .await
        .ok();
}

#[tokio::test]
async fn failed_logins_are_limited_per_account() {
    let server = TestServer::start(
        limited_server()
            .env("MYELIN_RATE_LIMITS__LOGIN_PER_IP__BURST", "100")
            .env("MYELIN_RATE_LIMITS__LOGIN_FAILURES_PER_ACCOUNT__BURST", "2")
            .env(
                "MYELIN_RATE_LIMITS__LOGIN_FAILURES_PER_ACCOUNT__PER_SECOND",
                "0.1",
            ),
    )
    .await;
    server.register("alice", "pw").await;
    server.register("bob", "pw").await;
    let a = server.client_from(ip("127.0.0.2"));
    let b = server.client_from(ip("127.0.0.3"));
    assert_matrix_error(
        &server.login_raw_via(&a, "alice", "guess1").await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    assert_matrix_error(
        &server.login_raw_via(&b, "alice", "guess2").await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    // Password guessing against alice is now refused, from any address.
    assert_limited(
        &server
            .login_raw_via(&server.client_from(ip("127.0.0.4")), "alice", "guess3")
            .await,
    );
    // bob's account is unaffected.
    server.login_raw_via(&a, "bob", "pw").await.ok();
}
