//! Reading a room's past over federation (`/event`, `/state`, `/state_ids`, `/event_auth`,
//! `/backfill`, `/get_missing_events`, `query/directory`) between two Myelins over TLS.
//!
//! Inbound joins do not exist yet, so no remote server can be in a room: the access rules
//! themselves (server ACL, presence at the event, history visibility) are unit-tested in
//! `homeserver/src/service/rooms/federation_read.rs`. Here: every endpoint is served on the
//! federation listener and refuses requests that are not X-Matrix-signed by their origin.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use complement_tests::{HttpPeer, Method, StatusCode, assert_matrix_error, canonical_json};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::json;

use crate::federation_rooms::federating_myelin;
use crate::room_support::{enc, public_room, send_text};


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

#[tokio::test]
async fn an_openid_token_identifies_its_user_to_third_parties_until_it_is_unknown() {
    let server = federating_myelin().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let issued = server.post(&format!("/_matrix/client/v3/user/{}/openid/request_token", alice.user_id.replace('@', "%40").replace(':', "%3A")), &alice, &json!({})).await;
    let issued = issued.ok().clone();
    assert_eq!(issued["token_type"], "Bearer");
    assert_eq!(issued["matrix_server_name"], server.server_name());
    assert!(issued["expires_in"].as_u64().is_some_and(|s| s > 0));
    let token = issued["access_token"].as_str().unwrap_or_default().to_owned();

    // Someone else's token cannot be requested.
    let refused = server.post(&format!("/_matrix/client/v3/user/{}/openid/request_token", alice.user_id.replace('@', "%40").replace(':', "%3A")), &bob, &json!({})).await;
    assert_eq!(refused.status, 403, "{:?}", refused.body);

    // The third party asks the federation API, without any signature.
    let tls = reqwest::Client::builder().danger_accept_invalid_certs(true).no_proxy().build().unwrap();
    let userinfo = |token: String| {
        let url = format!("https://{}/_matrix/federation/v1/openid/userinfo?access_token={token}", server.server_name());
        HttpPeer::send(&server, tls.get(url))
    };
    let known = userinfo(token).await;
    assert_eq!(known.ok()["sub"], alice.user_id.as_str());
    let unknown = userinfo("not-a-token".to_owned()).await;
    assert_eq!(unknown.status, 401, "{:?}", unknown.body);
    assert_eq!(unknown.errcode(), Some("M_UNKNOWN_TOKEN"));
}
