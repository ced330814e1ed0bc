//! The Synapse-compatible admin API and the `myelin-admin` CLI.

use complement_tests::*;

const SECRET: &str = "a-long-shared-secret-for-tests";
const SS_REGISTER: &str = "/_synapse/admin/v1/register";

pub(crate) fn admin_options() -> ServerOptions {
    ServerOptions::new().shared_secret(SECRET)
}

async fn nonce(server: &TestServer) -> String {
    let resp = server.get(SS_REGISTER, &NoAuth).await;
    resp.ok()["nonce"]
        .as_str()
        .unwrap_or_else(|| panic!("no nonce: {}", resp.text))
        .to_owned()
}

/// Registers through the shared-secret endpoint with a fresh nonce.
pub(crate) async fn shared_secret_register(
    server: &TestServer,
    username: &str,
    password: &str,
    admin: bool,
) -> Session {
    let nonce = nonce(server).await;
    let mac = shared_secret_mac(SECRET, &nonce, username, password, admin);
    let resp = server
        .post(
            SS_REGISTER,
            &NoAuth,
            &json!({"nonce": nonce, "username": username, "password": password, "admin": admin, "mac": mac}),
        )
        .await;
    let body = resp.ok();
    Session {
        user_id: body["user_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}"))
            .to_owned(),
        access_token: body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}"))
            .to_owned(),
        device_id: body["device_id"].as_str().unwrap_or_default().to_owned(),
        refresh_token: None,
        expires_in_ms: None,
    }
}

#[tokio::test]
async fn shared_secret_registration() {
    let server = TestServer::start(admin_options().registration("closed")).await;

    // Works even with closed registration.
    let root = shared_secret_register(&server, "root", "pw-root", true).await;
    assert_eq!(root.user_id, server.user_id("root"));
    assert_eq!(
        server.whoami(&root).await.ok()["user_id"],
        json!(root.user_id)
    );
    server.login("root", "pw-root").await;

    // A nonce is single-use.
    let nonce1 = nonce(&server).await;
    let nonce2 = nonce(&server).await;
    assert_ne!(nonce1, nonce2, "nonces must be unique");
    let body = |nonce: &str, user: &str| {
        json!({
            "nonce": nonce, "username": user, "password": "pw", "admin": false,
            "mac": shared_secret_mac(SECRET, nonce, user, "pw", false),
        })
    };
    server
        .post(SS_REGISTER, &NoAuth, &body(&nonce1, "user1"))
        .await
        .ok();
    let resp = server
        .post(SS_REGISTER, &NoAuth, &body(&nonce1, "user2"))
        .await;
    assert!(
        resp.status.is_client_error(),
        "reused nonce accepted: {} {}",
        resp.status,
        resp.text
    );
    assert!(resp.errcode().is_some(), "{}", resp.text);

    // A wrong MAC (here: computed for admin=true while asking admin=false) is refused.
    let mut forged = body(&nonce2, "user3");
    forged["mac"] = json!(shared_secret_mac(SECRET, &nonce2, "user3", "pw", true));
    let resp = server.post(SS_REGISTER, &NoAuth, &forged).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let nonce3 = nonce(&server).await;
    let mut wrong_secret = body(&nonce3, "user3");
    wrong_secret["mac"] = json!(shared_secret_mac(
        "not-the-secret",
        &nonce3,
        "user3",
        "pw",
        false
    ));
    let resp = server.post(SS_REGISTER, &NoAuth, &wrong_secret).await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_matrix_error(
        &server.login_raw("user3", "pw").await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );

    // An unknown nonce.
    let mut unknown = body("never-issued", "user4");
    unknown["mac"] = json!(shared_secret_mac(
        SECRET,
        "never-issued",
        "user4",
        "pw",
        false
    ));
    let resp = server.post(SS_REGISTER, &NoAuth, &unknown).await;
    assert!(
        resp.status.is_client_error(),
        "unknown nonce accepted: {} {}",
        resp.status,
        resp.text
    );

    // The admin flag is honoured: root is an admin, user1 is not.
    let user1 = server.login("user1", "pw").await;
    server.get("/_synapse/admin/v2/users", &root).await.ok();
    assert_matrix_error(
        &server.get("/_synapse/admin/v2/users", &user1).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
}

#[tokio::test]
async fn shared_secret_registration_is_off_without_a_secret() {
    let server = TestServer::start_default().await;
    let resp = server.get(SS_REGISTER, &NoAuth).await;
    assert!(
        resp.status.is_client_error(),
        "{} {}",
        resp.status,
        resp.text
    );
    let resp = server
        .post(
            SS_REGISTER,
            &NoAuth,
            &json!({"nonce": "x", "username": "u", "password": "p", "admin": true, "mac": "00"}),
        )
        .await;
    assert!(
        resp.status.is_client_error(),
        "{} {}",
        resp.status,
        resp.text
    );
    assert_matrix_error(
        &server.login_raw("u", "p").await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
}

#[tokio::test]
async fn admin_user_management() {
    let server = TestServer::start(admin_options()).await;
    let root = shared_secret_register(&server, "root", "pw", true).await;
    let alice = server.register("alice", "pw-alice").await;

    // Listing.
    let resp = server.get("/_synapse/admin/v2/users", &root).await;
    let names: Vec<&str> = resp.ok()["users"]
        .as_array()
        .unwrap_or_else(|| panic!("no users array: {}", resp.text))
        .iter()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert!(
        names.contains(&root.user_id.as_str()) && names.contains(&alice.user_id.as_str()),
        "{names:?}"
    );
    assert!(
        resp.body["total"].as_u64().is_some_and(|t| t >= 2),
        "{}",
        resp.text
    );
    assert_matrix_error(
        &server.get("/_synapse/admin/v2/users", &alice).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    assert_matrix_error(
        &server.get("/_synapse/admin/v2/users", &NoAuth).await,
        StatusCode::UNAUTHORIZED,
        "M_MISSING_TOKEN",
    );

    // One user.
    let path = |uid: &str| format!("/_synapse/admin/v2/users/{uid}");
    let resp = server.get(&path(&alice.user_id), &root).await;
    assert_eq!(resp.ok()["name"], json!(alice.user_id));
    assert_eq!(resp.ok()["admin"], false);
    assert_eq!(resp.ok()["deactivated"], false);
    let resp = server.get(&path(&root.user_id), &root).await;
    assert_eq!(resp.ok()["admin"], true);
    let resp = server.get(&path(&server.user_id("nobody")), &root).await;
    assert_matrix_error(&resp, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    assert_matrix_error(
        &server.get(&path(&root.user_id), &alice).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );

    // PUT creates (201), then modifies (200).
    let dave = server.user_id("dave");
    let resp = server
        .put(
            &path(&dave),
            &root,
            &json!({"password": "pw-dave", "displayname": "Dave"}),
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text);
    assert_eq!(resp.body["name"], json!(dave));
    let dave_session = server.login("dave", "pw-dave").await;
    let resp = server
        .get(
            &format!("/_matrix/client/v3/profile/{dave}/displayname"),
            &dave_session,
        )
        .await;
    assert_eq!(resp.ok()["displayname"], "Dave");
    let resp = server
        .put(
            &path(&dave),
            &root,
            &json!({"displayname": "David", "admin": true}),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text);
    assert_eq!(resp.body["admin"], true, "{}", resp.text);
    let resp = server
        .get(
            &format!("/_matrix/client/v3/profile/{dave}/displayname"),
            &dave_session,
        )
        .await;
    assert_eq!(resp.ok()["displayname"], "David");
    server
        .get("/_synapse/admin/v2/users", &dave_session)
        .await
        .ok();
    // Non-admins cannot create users.
    let resp = server
        .put(
            &path(&server.user_id("eve")),
            &alice,
            &json!({"password": "pw"}),
        )
        .await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_matrix_error(
        &server.login_raw("eve", "pw").await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );

    // Reset password: old one stops working, new one works.
    let resp = server
        .post(
            &format!("/_synapse/admin/v1/reset_password/{}", alice.user_id),
            &root,
            &json!({"new_password": "reset-pw"}),
        )
        .await;
    resp.ok();
    assert_matrix_error(
        &server.login_raw("alice", "pw-alice").await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    let alice2 = server.login("alice", "reset-pw").await;
    let resp = server
        .post(
            &format!("/_synapse/admin/v1/reset_password/{}", alice.user_id),
            &alice2,
            &json!({"new_password": "x"}),
        )
        .await;
    assert_matrix_error(&resp, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    // Deactivate.
    let resp = server
        .post(
            &format!("/_synapse/admin/v1/deactivate/{}", alice.user_id),
            &root,
            &json!({"erase": false}),
        )
        .await;
    resp.ok();
    assert_matrix_error(
        &server.whoami(&alice2).await,
        StatusCode::UNAUTHORIZED,
        "M_UNKNOWN_TOKEN",
    );
    let resp = server.login_raw("alice", "reset-pw").await;
    assert_eq!(resp.status, StatusCode::FORBIDDEN, "{}", resp.text);
    let resp = server.get(&path(&alice.user_id), &root).await;
    assert_eq!(resp.ok()["deactivated"], true, "{}", resp.text);
    // Deactivated users are hidden from the list unless asked for.
    let resp = server.get("/_synapse/admin/v2/users", &root).await;
    assert!(
        !resp.text.contains(&alice.user_id),
        "deactivated users are not listed by default: {}",
        resp.text
    );
    let resp = server
        .get("/_synapse/admin/v2/users?deactivated=true", &root)
        .await;
    assert!(
        resp.ok()["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["name"] == json!(alice.user_id)),
        "{}",
        resp.text
    );
}

#[tokio::test]
async fn admin_server_version() {
    let server = TestServer::start(admin_options()).await;
    let root = shared_secret_register(&server, "root", "pw", true).await;
    let resp = server.get("/_synapse/admin/v1/server_version", &root).await;
    let version = resp.ok()["server_version"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", resp.text));
    assert!(!version.is_empty());
}

fn find_string(value: &Value, needle: &str) -> bool {
    match value {
        Value::String(s) => s == needle,
        Value::Array(items) => items.iter().any(|v| find_string(v, needle)),
        Value::Object(map) => map.values().any(|v| find_string(v, needle)),
        _ => false,
    }
}

#[tokio::test]
async fn admin_cli() {
    let server = TestServer::start(admin_options()).await;
    let url = server.url();
    let bob_id = server.user_id("bob");

    // Create the first admin with the shared secret.
    let out = myelin_admin(&[
        "--server",
        &url,
        "user",
        "create",
        "bob",
        "--shared-secret",
        SECRET,
        "--password",
        "pw-bob",
        "--admin",
    ])
    .await;
    out.success();
    let bob = server.login("bob", "pw-bob").await;
    let details = server
        .get(&format!("/_synapse/admin/v2/users/{bob_id}"), &bob)
        .await;
    assert_eq!(
        details.ok()["admin"],
        true,
        "--admin must create an admin: {}",
        details.text
    );

    // Creating it again fails.
    let out = myelin_admin(&[
        "--server",
        &url,
        "user",
        "create",
        "bob",
        "--shared-secret",
        SECRET,
        "--password",
        "pw-bob",
    ])
    .await;
    assert!(
        !out.status.success(),
        "creating an existing user must fail: {}",
        out.stdout
    );

    // login --password-stdin prints a working token.
    let out = myelin_admin_with_stdin(
        &["--server", &url, "login", "bob", "--password-stdin"],
        Some("pw-bob\n"),
    )
    .await;
    let token = out.success().trim().to_owned();
    assert_eq!(server.whoami(&token).await.ok()["user_id"], json!(bob_id));

    server.register("alice", "pw").await;
    // JSON list.
    let out = myelin_admin(&[
        "--server",
        &url,
        "--token",
        &bob.access_token,
        "user",
        "list",
        "--json",
    ])
    .await;
    let list: Value = serde_json::from_str(out.success())
        .unwrap_or_else(|e| panic!("--json output is not JSON ({e}): {}", out.stdout));
    assert!(list.is_array(), "user list --json prints an array: {list}");
    assert!(
        find_string(&list, &bob_id) && find_string(&list, &server.user_id("alice")),
        "{list}"
    );
    // Table.
    let out = myelin_admin(&[
        "--server",
        &url,
        "--token",
        &bob.access_token,
        "user",
        "list",
    ])
    .await;
    assert!(out.success().contains(&bob_id), "{}", out.stdout);
    // Environment instead of flags.
    let mut cmd = tokio::process::Command::new(admin_bin());
    cmd.env("MYELIN_ADMIN_SERVER", &url)
        .env("MYELIN_ADMIN_TOKEN", &bob.access_token)
        .args(["user", "show", "alice"]);
    let out = run_command(cmd, std::time::Duration::from_secs(30)).await;
    assert!(
        out.success().contains(&server.user_id("alice")),
        "{}",
        out.stdout
    );

    // Server version.
    let out = myelin_admin(&[
        "--server",
        &url,
        "--token",
        &bob.access_token,
        "server",
        "version",
    ])
    .await;
    assert!(!out.success().trim().is_empty());

    // Reset password and deactivate through the CLI.
    let out = myelin_admin(&[
        "--server",
        &url,
        "--token",
        &bob.access_token,
        "user",
        "reset-password",
        "alice",
        "--password",
        "new-pw",
    ])
    .await;
    out.success();
    server.login("alice", "new-pw").await;
    let out = myelin_admin(&[
        "--server",
        &url,
        "--token",
        &bob.access_token,
        "user",
        "deactivate",
        "alice",
    ])
    .await;
    out.success();
    assert_eq!(
        server.login_raw("alice", "new-pw").await.status,
        StatusCode::FORBIDDEN
    );

    // A wrong token: non-zero exit, a message about the token.
    let out = myelin_admin(&["--server", &url, "--token", "not-a-token", "user", "list"]).await;
    assert!(!out.status.success(), "{}", out.stdout);
    assert!(
        out.stderr.to_lowercase().contains("token"),
        "the error should mention the token: {}",
        out.stderr
    );

    // A non-admin's token.
    let carol = server.register("carol", "pw").await;
    let out = myelin_admin(&[
        "--server",
        &url,
        "--token",
        &carol.access_token,
        "user",
        "list",
    ])
    .await;
    assert!(!out.status.success(), "{}", out.stdout);
    assert!(
        out.stderr.to_lowercase().contains("admin"),
        "the error should say admin rights are missing: {}",
        out.stderr
    );
}

#[tokio::test]
async fn admin_cli_unreachable_server_exits_2() {
    // Nothing listens on a port we just freed.
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = myelin_admin(&["--server", &url, "--token", "t", "user", "list"]).await;
    assert_eq!(
        out.code(),
        Some(2),
        "stdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    assert!(
        !out.stderr.trim().is_empty(),
        "an explanation is printed on stderr"
    );
}
