//! Reading a room's past over federation (`/event`, `/state`, `/state_ids`, `/event_auth`,
//! `/backfill`, `/get_missing_events`, `query/directory`) between two Myelins over TLS.
//!
//! Inbound joins do not exist yet, so no remote server can be in a room: the access rules
//! themselves (server ACL, presence at the event, history visibility) are unit-tested in
//! `homeserver/src/service/rooms/federation_read.rs`. Here: every endpoint is served on the
//! federation listener and refuses requests that are not X-Matrix-signed by their origin.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use complement_tests::{HttpPeer, Method, ServerOptions, StatusCode, TestServer, assert_matrix_error, canonical_json, free_port};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::json;

use crate::room_support::{enc, public_room, send_text};

/// A Myelin whose server name is its own TLS federation address.
async fn federating_myelin() -> TestServer {
    let port = free_port();
    TestServer::start(
        ServerOptions::new()
            .server_name(&format!("127.0.0.1:{port}"))
            .env("MYELIN_FEDERATION__LISTEN", format!("127.0.0.1:{port}"))
            .env("MYELIN_FEDERATION__GENERATE_SELF_SIGNED_CERTIFICATE", "true")
            .env("MYELIN_FEDERATION__VERIFY_TLS", "false")
            .env("MYELIN_FEDERATION__ALLOW_PRIVATE_ADDRESSES", "true"),
    )
    .await
}

/// An `X-Matrix` header claiming `origin` and its real key ID, signed by some other key.
fn forged_x_matrix(method: &str, uri: &str, origin: &str, destination: &str, key_id: &str) -> String {
    let signed = json!({"method": method, "uri": uri, "origin": origin, "destination": destination});
    let signature = SigningKey::from_bytes(&[7; 32]).sign(canonical_json(&signed).as_bytes());
    let sig = STANDARD_NO_PAD.encode(signature.to_bytes());
    format!(r#"X-Matrix origin="{origin}",destination="{destination}",key="{key_id}",sig="{sig}""#)
}

#[tokio::test]
async fn room_history_endpoints_refuse_unsigned_and_forged_requests() {
    let a = federating_myelin().await;
    let b = federating_myelin().await;
    let alice = a.register("alice", "pw").await;
    let room = public_room(&a, &alice).await;
    let event = send_text(&a, &alice, &room, "history").await;
    let alias_name = format!("#history:{}", a.server_name());
    a.put(&format!("/_matrix/client/v3/directory/room/{}", enc(&alias_name)), &alice, &json!({"room_id": room})).await.ok();

    let tls = reqwest::Client::builder().danger_accept_invalid_certs(true).no_proxy().build().unwrap();
    let (room, event) = (enc(&room), enc(&event));
    let f = "/_matrix/federation/v1";
    let requests = [
        (Method::GET, format!("{f}/event/{event}"), None),
        (Method::GET, format!("{f}/state/{room}?event_id={event}"), None),
        (Method::GET, format!("{f}/state_ids/{room}?event_id={event}"), None),
        (Method::GET, format!("{f}/event_auth/{room}/{event}"), None),
        (Method::GET, format!("{f}/backfill/{room}?v={event}&limit=10"), None),
        (Method::POST, format!("{f}/get_missing_events/{room}"), Some(json!({"earliest_events": [], "latest_events": [event]}))),
        (Method::GET, format!("{f}/query/directory?room_alias={}", enc(&alias_name)), None),
        (Method::GET, format!("{f}/state_ids/{}?event_id={event}", enc("!unknown:nowhere")), None),
    ];

    // B's real key ID: A fetches B's key to check the signature, which no key of B's made.
    let b_keys = HttpPeer::send(&a, tls.get(format!("https://{}/_matrix/key/v2/server", b.server_name()))).await;
    let b_key_id = b_keys.ok()["verify_keys"].as_object().unwrap().keys().next().unwrap().clone();

    for (method, path, body) in requests {
        let url = format!("https://{}{path}", a.server_name());
        let mut unsigned = tls.request(method.clone(), &url);
        if let Some(body) = &body {
            unsigned = unsigned.json(body);
        }
        let resp = HttpPeer::send(&a, unsigned).await;
        assert_matrix_error(&resp, StatusCode::UNAUTHORIZED, "M_UNAUTHORIZED");

        let header = forged_x_matrix(method.as_str(), &path, b.server_name(), a.server_name(), &b_key_id);
        let mut forged = tls.request(method.clone(), &url).header("authorization", header);
        if let Some(body) = &body {
            forged = forged.json(body);
        }
        let resp = HttpPeer::send(&a, forged).await;
        assert_matrix_error(&resp, StatusCode::UNAUTHORIZED, "M_UNAUTHORIZED");
    }
}
