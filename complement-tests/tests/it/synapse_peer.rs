//! Synapse as a peer: the harness of `complement_tests::synapse` (Synapse
//! starts, accounts, rooms) and the server-key format both implementations
//! publish. Myelin↔Synapse federation scenarios come once Myelin federates.
//!
//! Needs the virtualenv `complement-tests/synapse/.venv` (`./dev test`
//! installs it); without it these tests fail and say so.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use complement_tests::synapse::{SynapseOptions, SynapseServer};
use complement_tests::*;
use ed25519_dalek::{Signature, VerifyingKey};

/// Checks a `/_matrix/key/v2/server` body the way a key fetcher must: the
/// server name, `valid_until_ts` in the future, every `verify_keys` entry an
/// unpadded-base64 ed25519 key, and the self-signature of every current key
/// verifying over the canonical JSON without `signatures` (and `unsigned`).
/// Returns the verified `(key_id, public key)` pairs.
fn verify_key_response(body: &Value, server_name: &str) -> Vec<(String, String)> {
    assert_eq!(body["server_name"], server_name, "{body}");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let valid_until = body["valid_until_ts"]
        .as_u64()
        .unwrap_or_else(|| panic!("no integer valid_until_ts: {body}"));
    assert!(valid_until > now_ms, "valid_until_ts in the past: {body}");

    let verify_keys = body["verify_keys"]
        .as_object()
        .unwrap_or_else(|| panic!("no verify_keys object: {body}"));
    assert!(!verify_keys.is_empty(), "no current key: {body}");
    if let Some(old) = body.get("old_verify_keys") {
        assert!(old.is_object(), "old_verify_keys must be an object: {body}");
    }

    let mut signed = body.clone();
    signed.as_object_mut().unwrap().remove("signatures");
    signed.as_object_mut().unwrap().remove("unsigned");
    let message = canonical_json(&signed);

    let mut verified = Vec::new();
    for (key_id, key) in verify_keys {
        let (algorithm, version) = key_id
            .split_once(':')
            .unwrap_or_else(|| panic!("key id {key_id:?} is not algorithm:version"));
        assert_eq!(algorithm, "ed25519", "{body}");
        assert!(
            !version.is_empty()
                && version
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "key version {version:?} must be [a-zA-Z0-9_]+"
        );
        let public = key["key"]
            .as_str()
            .unwrap_or_else(|| panic!("verify key without `key`: {body}"));
        let public_bytes: [u8; 32] = STANDARD_NO_PAD
            .decode(public)
            .unwrap_or_else(|e| panic!("public key {public:?} is not unpadded base64: {e}"))
            .try_into()
            .expect("an ed25519 public key is 32 bytes");
        let signature = body["signatures"][server_name][key_id]
            .as_str()
            .unwrap_or_else(|| panic!("no signatures.{server_name}.{key_id}: {body}"));
        let signature_bytes: [u8; 64] = STANDARD_NO_PAD
            .decode(signature)
            .unwrap_or_else(|e| panic!("signature {signature:?} is not unpadded base64: {e}"))
            .try_into()
            .expect("an ed25519 signature is 64 bytes");
        VerifyingKey::from_bytes(&public_bytes)
            .expect("a valid ed25519 point")
            .verify_strict(message.as_bytes(), &Signature::from_bytes(&signature_bytes))
            .unwrap_or_else(|e| panic!("self-signature of {key_id} does not verify ({e}): {body}"));
        verified.push((key_id.clone(), public.to_owned()));
    }
    verified
}

/// The JSON type of every top-level field, plus the nesting of
/// `verify_keys` and `signatures`, with the key ids abstracted away.
fn key_response_shape(body: &Value) -> Value {
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_u64() => "uint",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let verify_key_fields: Vec<Value> = body["verify_keys"]
        .as_object()
        .map(|keys| {
            keys.values()
                .map(|key| {
                    let fields: serde_json::Map<String, Value> = key
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), json!(kind(v))))
                        .collect();
                    Value::Object(fields)
                })
                .collect()
        })
        .unwrap_or_default();
    let signature_kinds: Vec<&str> = body["signatures"]
        .as_object()
        .into_iter()
        .flat_map(|servers| servers.values())
        .flat_map(|keys| keys.as_object().unwrap().values())
        .map(kind)
        .collect();
    json!({
        "server_name": kind(&body["server_name"]),
        "valid_until_ts": kind(&body["valid_until_ts"]),
        "verify_keys": kind(&body["verify_keys"]),
        "verify_key_fields": verify_key_fields[0],
        "signatures": kind(&body["signatures"]),
        "signature_servers": body["signatures"].as_object().map(|s| s.len()),
        "signature_kinds": signature_kinds.iter().all(|k| *k == "string"),
    })
}

#[tokio::test]
async fn synapse_starts_registers_logs_in_and_creates_a_room() {
    let synapse = SynapseServer::start(SynapseOptions::new().server_name("syn-a.test")).await;
    let versions = synapse.get("/_matrix/client/versions", &NoAuth).await;
    assert!(
        versions.ok()["versions"]
            .as_array()
            .is_some_and(|v| !v.is_empty()),
        "{}",
        versions.text
    );

    let alice = synapse.register("alice", "pw-alice").await;
    assert_eq!(alice.user_id, "@alice:syn-a.test");

    let session = synapse.login("alice", "pw-alice").await;
    assert_eq!(session.user_id, alice.user_id);
    assert_ne!(session.access_token, alice.access_token);
    let whoami = synapse
        .get("/_matrix/client/v3/account/whoami", &session)
        .await;
    assert_eq!(whoami.ok()["user_id"], alice.user_id);

    // An admin via the same API; a wrong MAC is refused.
    let admin = synapse.register_raw("root", "pw-root", true).await;
    assert_eq!(admin.ok()["user_id"], "@root:syn-a.test");
    let nonce = synapse.get("/_synapse/admin/v1/register", &NoAuth).await;
    let bad_mac = shared_secret_mac("wrong-secret", nonce.str_field("nonce"), "eve", "pw", false);
    let refused = synapse
        .post(
            "/_synapse/admin/v1/register",
            &NoAuth,
            &json!({"nonce": nonce.str_field("nonce"), "username": "eve",
                    "password": "pw", "admin": false, "mac": bad_mac}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);

    let created = synapse
        .post(
            "/_matrix/client/v3/createRoom",
            &session,
            &json!({"name": "harness", "preset": "private_chat"}),
        )
        .await;
    let room_id = created.ok()["room_id"].as_str().unwrap().to_owned();
    assert!(room_id.starts_with('!'), "{room_id}");

    let sent = synapse
        .put(
            &format!("/_matrix/client/v3/rooms/{room_id}/send/m.room.message/txn1"),
            &session,
            &json!({"msgtype": "m.text", "body": "hello from synapse"}),
        )
        .await;
    assert!(sent.ok()["event_id"].as_str().is_some(), "{}", sent.text);

    let joined = synapse
        .get("/_matrix/client/v3/joined_rooms", &session)
        .await;
    assert_eq!(joined.ok()["joined_rooms"], json!([room_id]));
}

#[tokio::test]
async fn synapse_server_key_is_self_signed_ed25519() {
    let synapse = SynapseServer::start(
        SynapseOptions::new()
            .server_name("syn-keys.test")
            .tls_federation(true),
    )
    .await;
    assert!(synapse.federation_url().starts_with("https://127.0.0.1:"));

    // Over the TLS federation listener (self-signed certificate)…
    let over_tls = synapse.federation_get("/_matrix/key/v2/server").await;
    let keys = verify_key_response(over_tls.ok(), "syn-keys.test");
    assert_eq!(keys.len(), 1, "{}", over_tls.text);
    // …and over the plain listener: the same key.
    let plain = synapse.get("/_matrix/key/v2/server", &NoAuth).await;
    assert_eq!(verify_key_response(plain.ok(), "syn-keys.test"), keys);

    // The key is the one in Synapse's signing key file
    // ("ed25519 <version> <unpadded base64 seed>").
    let key_file = std::fs::read_to_string(synapse.dir().join("syn-keys.test.signing.key"))
        .expect("read the signing key");
    let mut parts = key_file.split_whitespace();
    assert_eq!(parts.next(), Some("ed25519"));
    let version = parts.next().expect("a key version");
    let seed: [u8; 32] = STANDARD_NO_PAD
        .decode(parts.next().expect("a seed"))
        .expect("unpadded base64")
        .try_into()
        .expect("a 32-byte seed");
    let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    assert_eq!(
        keys[0],
        (
            format!("ed25519:{version}"),
            STANDARD_NO_PAD.encode(public.as_bytes())
        )
    );
}

#[tokio::test]
async fn myelin_and_synapse_publish_server_keys_of_the_same_shape() {
    let (synapse, myelin) = tokio::join!(
        SynapseServer::start(SynapseOptions::new().server_name("syn-shape.test")),
        TestServer::start(ServerOptions::new().server_name("myelin-shape.test")),
    );
    let synapse_body = synapse
        .get("/_matrix/key/v2/server", &NoAuth)
        .await
        .ok()
        .clone();
    let myelin_body = myelin
        .get("/_matrix/key/v2/server", &NoAuth)
        .await
        .ok()
        .clone();

    verify_key_response(&synapse_body, "syn-shape.test");
    verify_key_response(&myelin_body, "myelin-shape.test");
    assert_eq!(
        key_response_shape(&myelin_body),
        key_response_shape(&synapse_body),
        "Myelin: {myelin_body}\nSynapse: {synapse_body}"
    );
}
