//! Process lifecycle: durability across restarts and SIGKILL, graceful
//! shutdown, the database lock, configuration loading and errors, and the
//! stability of the server's signing key.

use std::time::Duration;

use complement_tests::*;

use crate::discovery::fetch_and_verify_server_key;

#[tokio::test]
async fn data_survives_a_graceful_restart() {
    let mut server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let uid = alice.user_id.clone();
    server
        .put(
            &format!("/_matrix/client/v3/profile/{uid}/displayname"),
            &alice,
            &json!({"displayname": "Alice"}),
        )
        .await
        .ok();
    server
        .put(
            &format!("/_matrix/client/v3/user/{uid}/account_data/org.example.k"),
            &alice,
            &json!({"v": 1}),
        )
        .await
        .ok();
    let filter = server
        .post(
            &format!("/_matrix/client/v3/user/{uid}/filter"),
            &alice,
            &json!({"room": {"timeline": {"limit": 3}}}),
        )
        .await;
    let filter_id = filter.ok()["filter_id"].as_str().unwrap().to_owned();
    let logged_out = server.login("alice", "pw").await;
    server
        .post("/_matrix/client/v3/logout", &logged_out, &json!({}))
        .await
        .ok();

    server.restart().await;

    // The existing token still works, and so does the password.
    assert_eq!(
        server.whoami(&alice).await.ok()["device_id"],
        json!(alice.device_id)
    );
    server.login("alice", "pw").await;
    assert_matrix_error(
        &server.whoami(&logged_out).await,
        StatusCode::UNAUTHORIZED,
        "M_UNKNOWN_TOKEN",
    );
    let resp = server
        .get(
            &format!("/_matrix/client/v3/profile/{uid}/displayname"),
            &alice,
        )
        .await;
    assert_eq!(resp.ok()["displayname"], "Alice");
    let resp = server
        .get(
            &format!("/_matrix/client/v3/user/{uid}/account_data/org.example.k"),
            &alice,
        )
        .await;
    assert_eq!(resp.ok(), &json!({"v": 1}));
    let resp = server
        .get(
            &format!("/_matrix/client/v3/user/{uid}/filter/{filter_id}"),
            &alice,
        )
        .await;
    assert_eq!(resp.ok()["room"]["timeline"]["limit"], 3);
    // The name is still taken.
    let resp = server
        .get(
            "/_matrix/client/v3/register/available?username=alice",
            &NoAuth,
        )
        .await;
    assert_matrix_error(&resp, StatusCode::BAD_REQUEST, "M_USER_IN_USE");
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    let mut server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let uid = alice.user_id.clone();
    server
        .put(
            &format!("/_matrix/client/v3/profile/{uid}/displayname"),
            &alice,
            &json!({"displayname": "Durable"}),
        )
        .await
        .ok();
    let second = server.login("alice", "pw").await;
    // No grace: SIGKILL right after the last 200.
    server.kill().await;
    server.start_again().await;

    assert_eq!(server.whoami(&alice).await.ok()["user_id"], json!(uid));
    assert_eq!(
        server.whoami(&second).await.ok()["device_id"],
        json!(second.device_id)
    );
    server.login("alice", "pw").await;
    let resp = server
        .get(
            &format!("/_matrix/client/v3/profile/{uid}/displayname"),
            &alice,
        )
        .await;
    assert_eq!(resp.ok()["displayname"], "Durable");

    // And again, for a registration that is the very last thing acknowledged.
    let bob = server.register("bob", "pw").await;
    server.kill().await;
    server.start_again().await;
    server.whoami(&bob).await.ok();
    server.login("bob", "pw").await;
}

#[tokio::test]
async fn sigterm_exits_zero_promptly() {
    let mut server = TestServer::start_default().await;
    server.register("alice", "pw").await;
    let took = server.stop_gracefully().await;
    assert!(
        took < Duration::from_secs(5),
        "graceful shutdown took {took:?}"
    );
    assert!(
        server.current_log().to_lowercase().contains("shut")
            || server.current_log().to_lowercase().contains("stop"),
        "shutdown should be logged:\n{}",
        server.current_log()
    );
    // It comes back on the same database.
    server.start_again().await;
    server.login("alice", "pw").await;
}

#[tokio::test]
async fn a_second_server_on_the_same_database_refuses_to_start() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let options = server.options().clone().env(
        "MYELIN_DATABASE_PATH",
        server.database_path().to_string_lossy(),
    );
    let out = run_myelin_to_exit(&options, &[]).await;
    assert!(
        !out.status.success(),
        "a second server started on a database in use:\n{}",
        out.stderr
    );
    let stderr = out.stderr.to_lowercase();
    assert!(
        stderr.contains("lock") || stderr.contains("in use") || stderr.contains("already"),
        "the message should say the database is in use: {}",
        out.stderr
    );
    assert!(
        stderr.contains("database"),
        "the message should name the database: {}",
        out.stderr
    );
    // The first server is unharmed.
    server.whoami(&alice).await.ok();
}

#[tokio::test]
async fn invalid_configuration_is_refused_naming_the_key() {
    let cases = [
        ("MYELIN_LISTEN", "nope", "listen"),
        ("MYELIN_REGISTRATION", "maybe", "registration"),
        ("MYELIN_RATE_LIMITS__LOGIN_PER_IP__BURST", "lots", "burst"),
        ("MYELIN_SERVER_NAME", "https://bad name/", "server_name"),
    ];
    for (key, value, named) in cases {
        let options = ServerOptions::new().env(key, value);
        for args in [&[][..], &["check-config"][..]] {
            let out = run_myelin_to_exit(&options, args).await;
            assert!(
                !out.status.success(),
                "{key}={value} {args:?} was accepted:\n{}",
                out.stderr
            );
            assert!(
                out.stderr.to_lowercase().contains(named),
                "{key}={value} {args:?}: the error should name `{named}`: {}",
                out.stderr
            );
        }
    }
    // Token registration without any token.
    let out = run_myelin_to_exit(
        &ServerOptions::new().registration("token"),
        &["check-config"],
    )
    .await;
    assert!(
        !out.status.success(),
        "token registration without tokens was accepted"
    );
    assert!(out.stderr.contains("registration_tokens"), "{}", out.stderr);
    // A config file that does not exist.
    let out = run_myelin_to_exit(
        &ServerOptions::new(),
        &["--config", "/nonexistent/myelin.toml", "check-config"],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("/nonexistent/myelin.toml"),
        "{}",
        out.stderr
    );
    // A config file that is not TOML.
    let out = run_myelin_to_exit(
        &ServerOptions::new().config_toml("listen = = 3\n"),
        &["check-config"],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("myelin.toml"),
        "the error should name the file: {}",
        out.stderr
    );
}

#[tokio::test]
async fn open_registration_on_a_public_listener_needs_an_opt_in() {
    let public = ServerOptions::new()
        .registration("open")
        .env("MYELIN_LISTEN", format!("0.0.0.0:{}", free_port()));
    let out = run_myelin_to_exit(&public, &[]).await;
    assert!(
        !out.status.success(),
        "started with open registration on 0.0.0.0:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.to_lowercase().contains("registration"),
        "{}",
        out.stderr
    );

    // With the opt-in, the configuration is accepted.
    let opted_in = public
        .clone()
        .env("MYELIN_ALLOW_OPEN_REGISTRATION_ON_PUBLIC_LISTENER", "true");
    run_myelin_to_exit(&opted_in, &["check-config"])
        .await
        .success();
    // Closed or token registration on a public listener needs no opt-in.
    let closed = public.registration("closed");
    run_myelin_to_exit(&closed, &["check-config"])
        .await
        .success();
}

#[tokio::test]
async fn generated_config_is_valid() {
    let out = run_myelin_to_exit(&ServerOptions::new(), &["generate-config"]).await;
    let example = out.success().to_owned();
    assert!(example.contains("server_name"), "{example}");
    assert!(example.contains("registration"), "{example}");
    assert!(
        example
            .lines()
            .filter(|l| l.trim_start().starts_with('#'))
            .count()
            > 10,
        "the example documents its keys"
    );
    // Loaded back as a config file (no environment overrides), it is valid.
    let mut bare = ServerOptions::new();
    for key in [
        "MYELIN_SERVER_NAME",
        "MYELIN_REGISTRATION",
        "MYELIN_RATE_LIMITS__ENABLED",
        "MYELIN_PASSWORD__ARGON2_MEMORY_KIB",
        "MYELIN_PASSWORD__ARGON2_ITERATIONS",
        "MYELIN_LOG__FORMAT",
        "MYELIN_LOG__LEVEL",
    ] {
        bare = bare.without_env(key);
    }
    let out = run_myelin_to_exit(&bare.config_toml(&example), &["check-config"]).await;
    out.success();
}

#[tokio::test]
async fn config_file_and_environment_precedence() {
    let toml = "server_name = \"from-file.test\"\nregistration = \"closed\"\n\n[limits]\nmax_request_body_bytes = 4096\n";

    // --config FILE.
    let server = TestServer::start(
        ServerOptions::new()
            .without_env("MYELIN_SERVER_NAME")
            .without_env("MYELIN_REGISTRATION")
            .config_toml(toml),
    )
    .await;
    let resp = server.get("/.well-known/matrix/server", &NoAuth).await;
    assert_eq!(resp.ok()["m.server"], "from-file.test:8448");
    let resp = server
        .post(
            "/_matrix/client/v3/register",
            &NoAuth,
            &json!({"username": "alice", "password": "pw"}),
        )
        .await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    drop(server);

    // Environment variables override the file.
    let server = TestServer::start(
        ServerOptions::new()
            .server_name("from-env.test")
            .config_toml(toml)
            .registration("open"),
    )
    .await;
    let alice = server.register("alice", "pw").await;
    assert_eq!(alice.user_id, "@alice:from-env.test");
    let resp = server
        .post(
            "/_matrix/client/v3/login",
            &NoAuth,
            &json!({"type": "m.login.password", "password": "x".repeat(5000)}),
        )
        .await;
    assert_matrix_error(&resp, StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");
    drop(server);

    // MYELIN_CONFIG names the file too.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("via-env.toml");
    std::fs::write(&path, "server_name = \"via-env-var.test\"\n").unwrap();
    let server = TestServer::start(
        ServerOptions::new()
            .without_env("MYELIN_SERVER_NAME")
            .env("MYELIN_CONFIG", path.to_string_lossy()),
    )
    .await;
    let resp = server.get("/.well-known/matrix/server", &NoAuth).await;
    assert_eq!(resp.ok()["m.server"], "via-env-var.test:8448");
}

#[tokio::test]
async fn json_logs() {
    let mut server = TestServer::start(
        ServerOptions::new()
            .env("MYELIN_LOG__FORMAT", "json")
            .env("MYELIN_LOG__LEVEL", "info"),
    )
    .await;
    server.register("alice", "pw").await;
    server.stop_gracefully().await;
    let log = server.current_log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no log output");
    for line in lines {
        let parsed: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
        assert!(parsed.get("level").is_some(), "{line}");
    }
}

#[tokio::test]
async fn signing_key_is_stable_across_restarts() {
    let mut server = TestServer::start(ServerOptions::new().server_name("stable-key.test")).await;
    let before = fetch_and_verify_server_key(&server).await;
    server.restart().await;
    let after = fetch_and_verify_server_key(&server).await;
    assert_eq!(before, after, "the signing key changed across a restart");
    server.kill().await;
    server.start_again().await;
    assert_eq!(
        before,
        fetch_and_verify_server_key(&server).await,
        "the signing key changed across a SIGKILL"
    );
}
