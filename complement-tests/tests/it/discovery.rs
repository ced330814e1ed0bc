//! Discovery and unauthenticated metadata: /versions, .well-known, /health,
//! login flows, capabilities, the federation key server, CORS, r0 aliases.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use complement_tests::*;
use ed25519_dalek::{Signature, VerifyingKey};

#[tokio::test]
async fn health_answers_ok() {
    let server = TestServer::start_default().await;
    let resp = server.get("/health", &NoAuth).await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.text.trim(), "OK");
}

#[tokio::test]
async fn versions_lists_every_stable_version() {
    let server = TestServer::start_default().await;
    let resp = server.get("/_matrix/client/versions", &NoAuth).await;
    let body = resp.ok();
    let versions: Vec<&str> = body["versions"]
        .as_array()
        .unwrap_or_else(|| panic!("`versions` must be an array: {body}"))
        .iter()
        .map(|v| v.as_str().expect("versions are strings"))
        .collect();
    for minor in 1..=16 {
        let version = format!("v1.{minor}");
        assert!(
            versions.contains(&version.as_str()),
            "{version} missing from {versions:?}"
        );
    }
    assert!(
        versions.iter().any(|v| v.starts_with("r0.")),
        "no r0.x version in {versions:?}"
    );
    assert!(
        body["unstable_features"].is_object(),
        "`unstable_features` must be an object: {body}"
    );
    assert!(
        resp.header("content-type")
            .unwrap_or_default()
            .starts_with("application/json"),
        "content-type: {:?}",
        resp.header("content-type")
    );
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("*"),
        "CORS header missing on /versions"
    );

    // Authentication is optional on /versions: a valid token must not hurt.
    let alice = server.register("alice", "pw-alice").await;
    assert_eq!(
        server.get("/_matrix/client/versions", &alice).await.ok()["versions"],
        body["versions"]
    );
}

#[tokio::test]
async fn well_known_client_and_server() {
    let server = TestServer::start_default().await;
    let resp = server.get("/.well-known/matrix/client", &NoAuth).await;
    let base_url = resp.ok()["m.homeserver"]["base_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no m.homeserver.base_url: {}", resp.text));
    assert_eq!(
        base_url.trim_end_matches('/'),
        server.url(),
        "the derived base URL is the listener's"
    );
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("*"),
        "the spec asks for CORS headers on .well-known"
    );
    assert!(
        resp.header("content-type")
            .unwrap_or_default()
            .starts_with("application/json")
    );

    let resp = server.get("/.well-known/matrix/server", &NoAuth).await;
    assert_eq!(
        resp.ok()["m.server"],
        json!(format!("{DEFAULT_SERVER_NAME}:8448"))
    );
}

#[tokio::test]
async fn well_known_follows_configuration() {
    let server = TestServer::start(
        ServerOptions::new()
            .env("MYELIN_WELL_KNOWN__CLIENT", "https://matrix.example.org/")
            .env("MYELIN_WELL_KNOWN__SERVER", "fed.example.org:443"),
    )
    .await;
    let client = server.get("/.well-known/matrix/client", &NoAuth).await;
    assert_eq!(
        client.ok()["m.homeserver"]["base_url"]
            .as_str()
            .map(|u| u.trim_end_matches('/')),
        Some("https://matrix.example.org")
    );
    let fed = server.get("/.well-known/matrix/server", &NoAuth).await;
    assert_eq!(fed.ok()["m.server"], "fed.example.org:443");
}

#[tokio::test]
async fn login_flows_offer_password() {
    let server = TestServer::start_default().await;
    for path in ["/_matrix/client/v3/login", "/_matrix/client/r0/login"] {
        let resp = server.get(path, &NoAuth).await;
        let flows = resp.ok()["flows"]
            .as_array()
            .unwrap_or_else(|| panic!("{path}: no flows: {}", resp.text))
            .clone();
        assert!(
            flows.iter().any(|f| f["type"] == "m.login.password"),
            "{path}: m.login.password not offered: {}",
            resp.text
        );
    }
}

#[tokio::test]
async fn capabilities() {
    let server = TestServer::start_default().await;
    let unauthenticated = server.get("/_matrix/client/v3/capabilities", &NoAuth).await;
    assert_matrix_error(
        &unauthenticated,
        StatusCode::UNAUTHORIZED,
        "M_MISSING_TOKEN",
    );

    let alice = server.register("alice", "pw-alice").await;
    let resp = server.get("/_matrix/client/v3/capabilities", &alice).await;
    let caps = &resp.ok()["capabilities"];
    // "When not listed, clients should assume the user is able to change their password."
    assert!(
        caps.get("m.change_password").is_none() || caps["m.change_password"]["enabled"] == true,
        "password changes are supported: {}",
        resp.text
    );
    assert_eq!(caps["m.room_versions"]["default"], "12", "{}", resp.text);
    let available = caps["m.room_versions"]["available"]
        .as_object()
        .unwrap_or_else(|| panic!("m.room_versions.available must be an object: {}", resp.text));
    assert_eq!(
        available.get("12"),
        Some(&json!("stable")),
        "the default room version must be available and stable"
    );
    for (version, stability) in available {
        assert!(
            stability == "stable" || stability == "unstable",
            "room version {version} has stability {stability}"
        );
    }
}

/// Fetches `/_matrix/key/v2/server`, checks its shape and its self-signature,
/// and returns `(key_id, public key)`.
pub async fn fetch_and_verify_server_key(server: &TestServer) -> (String, String) {
    let resp = server.get("/_matrix/key/v2/server", &NoAuth).await;
    let body = resp.ok().clone();
    assert_eq!(body["server_name"], server.server_name(), "{body}");

    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let valid_until = body["valid_until_ts"]
        .as_u64()
        .unwrap_or_else(|| panic!("no valid_until_ts: {body}"));
    assert!(
        valid_until > now_ms,
        "valid_until_ts {valid_until} is not in the future (now {now_ms})"
    );

    let verify_keys = body["verify_keys"]
        .as_object()
        .unwrap_or_else(|| panic!("no verify_keys: {body}"));
    assert_eq!(
        verify_keys.len(),
        1,
        "exactly one current key expected: {body}"
    );
    let (key_id, key) = verify_keys.iter().next().unwrap();
    assert!(
        key_id.starts_with("ed25519:") && key_id.len() > "ed25519:".len(),
        "key id {key_id}"
    );
    let public = key["key"]
        .as_str()
        .unwrap_or_else(|| panic!("verify key without `key`: {body}"));
    let public_bytes: [u8; 32] = STANDARD_NO_PAD
        .decode(public)
        .unwrap_or_else(|e| panic!("public key {public:?} is not unpadded base64: {e}"))
        .try_into()
        .expect("an ed25519 public key is 32 bytes");

    let signature = body["signatures"][server.server_name()][key_id]
        .as_str()
        .unwrap_or_else(|| panic!("no signatures.{}.{key_id}: {body}", server.server_name()));
    let signature_bytes: [u8; 64] = STANDARD_NO_PAD
        .decode(signature)
        .unwrap_or_else(|e| panic!("signature {signature:?} is not unpadded base64: {e}"))
        .try_into()
        .expect("an ed25519 signature is 64 bytes");

    let mut signed = body.clone();
    signed.as_object_mut().unwrap().remove("signatures");
    signed.as_object_mut().unwrap().remove("unsigned");
    let message = canonical_json(&signed);
    VerifyingKey::from_bytes(&public_bytes)
        .expect("a valid ed25519 point")
        .verify_strict(message.as_bytes(), &Signature::from_bytes(&signature_bytes))
        .unwrap_or_else(|e| {
            panic!("the key response's self-signature does not verify ({e}) over {message}")
        });
    (key_id.clone(), public.to_owned())
}

#[tokio::test]
async fn server_keys_are_published_and_self_signed() {
    let server = TestServer::start(ServerOptions::new().server_name("keys.test")).await;
    let (key_id, key) = fetch_and_verify_server_key(&server).await;
    // Stable while the server runs.
    assert_eq!(fetch_and_verify_server_key(&server).await, (key_id, key));
}

#[tokio::test]
async fn cors_preflight_allows_authorization() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw-alice").await;
    for path in [
        "/_matrix/client/v3/login",
        "/_matrix/client/v3/account/whoami",
        "/_matrix/client/v3/logout",
    ] {
        let resp = server
            .send(
                server
                    .request(Method::OPTIONS, path, &NoAuth)
                    .header("origin", "https://app.example.org")
                    .header("access-control-request-method", "POST")
                    .header(
                        "access-control-request-headers",
                        "authorization, content-type",
                    ),
            )
            .await;
        assert!(
            resp.status.is_success(),
            "OPTIONS {path}: {} {}",
            resp.status,
            resp.text
        );
        assert_eq!(
            resp.header("access-control-allow-origin"),
            Some("*"),
            "OPTIONS {path}"
        );
        let headers = resp
            .header("access-control-allow-headers")
            .unwrap_or_default()
            .to_ascii_lowercase();
        // `*` does not cover Authorization in the Fetch standard: it must be named.
        assert!(
            headers.contains("authorization"),
            "OPTIONS {path}: allow-headers {headers:?} lacks Authorization"
        );
        let methods = resp
            .header("access-control-allow-methods")
            .unwrap_or_default()
            .to_ascii_uppercase();
        for method in ["GET", "POST", "PUT", "DELETE"] {
            assert!(
                methods.contains(method) || methods == "*",
                "OPTIONS {path}: allow-methods {methods:?} lacks {method}"
            );
        }
    }

    // OPTIONS must not run the endpoint's logic: this must not log alice out.
    let resp = server
        .send(server.request(Method::OPTIONS, "/_matrix/client/v3/logout", &alice))
        .await;
    assert!(
        resp.status.is_success(),
        "OPTIONS with a token: {} {}",
        resp.status,
        resp.text
    );
    server.whoami(&alice).await.ok();

    // Ordinary responses, including errors, carry the CORS header.
    let resp = server
        .send(
            server
                .request(Method::GET, "/_matrix/client/v3/account/whoami", &alice)
                .header("origin", "https://app.example.org"),
        )
        .await;
    resp.ok();
    assert_eq!(resp.header("access-control-allow-origin"), Some("*"));
    let resp = server
        .send(
            server
                .request(Method::GET, "/_matrix/client/v3/account/whoami", &NoAuth)
                .header("origin", "https://app.example.org"),
        )
        .await;
    assert_matrix_error(&resp, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
    assert_eq!(
        resp.header("access-control-allow-origin"),
        Some("*"),
        "error responses need CORS headers too"
    );
}

#[tokio::test]
async fn legacy_r0_aliases() {
    let server = TestServer::start_default().await;
    server.register("alice", "pw-alice").await;
    let login = server
        .post(
            "/_matrix/client/r0/login",
            &NoAuth,
            &json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "alice"}, "password": "pw-alice"}),
        )
        .await;
    let session = Session::from_body(login.ok());
    let whoami = server
        .get("/_matrix/client/r0/account/whoami", &session)
        .await;
    assert_eq!(whoami.ok()["user_id"], json!(session.user_id));
    let v3 = server.whoami(&session).await;
    assert_eq!(v3.ok()["device_id"], json!(session.device_id));
}
