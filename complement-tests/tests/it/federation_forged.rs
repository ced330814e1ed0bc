//! Myelin's checks on inbound federation, probed by a fake peer written here: an HTTPS server
//! on `127.0.0.1:<port>` (self-signed certificate) whose server name is that address, which
//! publishes a signing key made in the test and signs its requests and events with the
//! sans-I/O `myelin_federation` crate, so it can also sign them *wrongly* on purpose.
//!
//! Scenario (room versions 10 and 12): a Myelin user creates a public room; `@mallory` of the
//! fake peer joins it through `make_join`/`send_join`, then the peer pushes transactions:
//!
//! 1. a valid message → `{}` in the answer, shown to the Myelin user;
//! 2. a message whose content changed after signing (content hash mismatch) → accepted, but
//!    shown redacted;
//! 3. a message whose signature is broken → not accepted, never shown;
//! 4. a message from `@eve` of the peer, who never joined → refused with an error entry,
//!    never shown;
//! 5. a transaction whose X-Matrix signature is broken → `401 M_UNAUTHORIZED`, its event
//!    never processed;
//! 6. a transaction ID sent again → the first answer again, nothing duplicated or processed.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    extract::State,
    http::{Method as AxumMethod, StatusCode as AxumStatus, Uri},
    routing::{get, put},
};
use complement_tests::{HttpPeer, Method, Resp, Session, StatusCode, TestServer, assert_matrix_error};
use myelin_federation::{
    ServerSigningKey,
    keys::to_canonical_object,
    pdu::{hash_and_sign_pdu, reference_event_id},
    xmatrix::sign_request,
};
use ruma::{CanonicalJsonObject, CanonicalJsonValue, OwnedServerName, RoomVersionId, ServerName};
use serde_json::{Value, json};

use crate::federation_rooms::federating_myelin;
use crate::room_support::{C, enc};

/// How long to wait for something Myelin should do soon.
const PATIENCE: Duration = Duration::from_secs(30);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

// ---------------------------------------------------------------------------
// The fake peer
// ---------------------------------------------------------------------------

/// A TLS listener for `axum::serve`: each accepted connection is handshaken before it is
/// handed over (a failed handshake is skipped). Only Myelin connects, so doing the handshake
/// inline is enough.
pub(crate) struct TlsListener {
    pub(crate) tcp: tokio::net::TcpListener,
    pub(crate) tls: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(10), self.tls.accept(tcp)).await {
                return (stream, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

pub(crate) fn self_signed_tls() -> Arc<rustls::ServerConfig> {
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let cert = generated.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

#[derive(Clone)]
struct PeerState {
    name: OwnedServerName,
    key: Arc<ServerSigningKey>,
    /// `METHOD path` of every request Myelin made to the peer, for failure messages.
    seen: Arc<Mutex<Vec<String>>>,
}

/// `GET /_matrix/key/v2/server`: the peer's key, self-signed, valid for a day.
async fn key_server(State(state): State<PeerState>) -> Json<Value> {
    state.seen.lock().unwrap().push("GET /_matrix/key/v2/server".to_owned());
    let response = state.key.server_key_response(state.name.as_str(), now_ms() + 24 * 3600 * 1000).unwrap();
    Json(serde_json::to_value(response).unwrap())
}

/// Transactions Myelin pushes to the peer are acknowledged (and otherwise ignored).
async fn transaction_sink(State(state): State<PeerState>, uri: Uri) -> Json<Value> {
    state.seen.lock().unwrap().push(format!("PUT {uri}"));
    Json(json!({"pdus": {}}))
}

async fn unknown(State(state): State<PeerState>, method: AxumMethod, uri: Uri) -> (AxumStatus, Json<Value>) {
    state.seen.lock().unwrap().push(format!("{method} {uri}"));
    (AxumStatus::NOT_FOUND, Json(json!({"errcode": "M_UNRECOGNIZED", "error": "the fake peer does not serve this"})))
}

/// A fake homeserver: a key server over TLS, and signing for its requests and events.
struct FakePeer {
    name: OwnedServerName,
    key: Arc<ServerSigningKey>,
    seen: Arc<Mutex<Vec<String>>>,
    /// Talks to Myelin's federation listener (its certificate is self-signed too).
    http: reqwest::Client,
    serving: tokio::task::JoinHandle<()>,
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

impl FakePeer {
    async fn start() -> FakePeer {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = tcp.local_addr().unwrap().port();
        let name = OwnedServerName::try_from(format!("127.0.0.1:{port}")).unwrap();
        let key = Arc::new(ServerSigningKey::generate().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = PeerState { name: name.clone(), key: key.clone(), seen: seen.clone() };
        let app = Router::new()
            .route("/_matrix/key/v2/server", get(key_server))
            .route("/_matrix/federation/v1/send/{txn}", put(transaction_sink))
            .fallback(unknown)
            .with_state(state);
        let listener = TlsListener { tcp, tls: tokio_rustls::TlsAcceptor::from(self_signed_tls()) };
        let serving = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let http = reqwest::Client::builder().danger_accept_invalid_certs(true).no_proxy().timeout(PATIENCE).build().unwrap();
        FakePeer { name, key, seen, http, serving }
    }

    fn user(&self, localpart: &str) -> String {
        format!("@{localpart}:{}", self.name)
    }

    fn requests_seen(&self) -> String {
        self.seen.lock().unwrap().join("\n")
    }

    /// The `Authorization: X-Matrix …` value for a request from this peer to `destination`.
    fn x_matrix(&self, destination: &str, method: &Method, path: &str, body: Option<&Value>) -> String {
        let destination = <&ServerName>::try_from(destination).unwrap();
        let body = body.map(|b| to_canonical_object(b).unwrap());
        let header = sign_request(&self.key, &self.name, destination, method, path, body.as_ref()).unwrap();
        header.to_str().unwrap().to_owned()
    }

    /// Sends a request to `myelin`'s federation listener with `authorization` as the header.
    async fn send_with(&self, myelin: &TestServer, method: Method, path: &str, body: Option<&Value>, authorization: String) -> Resp {
        let mut request = self.http.request(method, format!("https://{}{path}", myelin.server_name())).header("authorization", authorization);
        if let Some(body) = body {
            request = request.json(body);
        }
        HttpPeer::send(myelin, request).await
    }

    /// An X-Matrix-signed request to `myelin`.
    async fn signed(&self, myelin: &TestServer, method: Method, path: &str, body: Option<&Value>) -> Resp {
        let authorization = self.x_matrix(myelin.server_name(), &method, path, body);
        self.send_with(myelin, method, path, body, authorization).await
    }

    /// The body of `PUT /_matrix/federation/v1/send/{txnId}` carrying `pdus`.
    fn transaction(&self, pdus: &[&CanonicalJsonObject]) -> Value {
        json!({
            "origin": self.name.as_str(),
            "origin_server_ts": now_ms(),
            "pdus": pdus.iter().map(|pdu| serde_json::to_value(pdu).unwrap()).collect::<Vec<_>>(),
            "edus": [],
        })
    }

    async fn send_transaction(&self, myelin: &TestServer, txn_id: &str, body: &Value) -> Resp {
        self.signed(myelin, Method::PUT, &format!("/_matrix/federation/v1/send/{}", enc(txn_id)), Some(body)).await
    }
}

/// `text` with the character in its middle replaced by another base64 character. A middle
/// character of an unpadded base64 signature carries six bits of it (the last one may carry
/// padding bits only), so the decoded signature really changes.
fn corrupt_base64(text: &str) -> String {
    let middle = text.len() / 2;
    let replacement = if &text[middle..=middle] == "A" { "B" } else { "A" };
    format!("{}{replacement}{}", &text[..middle], &text[middle + 1..])
}

/// An X-Matrix header with its `sig` parameter (quoted or not) corrupted.
fn corrupt_x_matrix(header: &str) -> String {
    let mut start = header.find("sig=").expect("an X-Matrix header has a sig") + "sig=".len();
    if header[start..].starts_with('"') {
        start += 1;
    }
    let end = start + header[start..].find(['"', ',']).unwrap_or(header.len() - start);
    let corrupted = format!("{}{}{}", &header[..start], corrupt_base64(&header[start..end]), &header[end..]);
    assert_ne!(corrupted, header);
    corrupted
}

// ---------------------------------------------------------------------------
// Events of the fake peer
// ---------------------------------------------------------------------------

/// The point of the room graph the next event builds on.
#[derive(Clone)]
struct Tip {
    event_id: String,
    depth: u64,
}

/// Everything about the room the fake peer needs to write into it.
struct RoomView {
    version: RoomVersionId,
    room_id: String,
    create: String,
    power_levels: String,
}

impl RoomView {
    /// Auth events of a message: the create event (before v12, whose rooms never list it), the
    /// power levels, and the sender's membership if it has one.
    fn auth_events(&self, membership: Option<&str>) -> Vec<String> {
        let mut auth = Vec::new();
        if self.version != RoomVersionId::V12 {
            auth.push(self.create.clone());
        }
        auth.push(self.power_levels.clone());
        auth.extend(membership.map(ToOwned::to_owned));
        auth
    }
}

/// An `m.room.message` by `sender` on top of `tip`, hashed and signed by `peer`. Returns its
/// event ID (the reference hash) and the PDU.
fn message(peer: &FakePeer, room: &RoomView, sender: &str, tip: &Tip, auth_events: Vec<String>, body: &str) -> (String, CanonicalJsonObject) {
    let event = json!({
        "room_id": room.room_id,
        "sender": sender,
        "type": "m.room.message",
        "content": {"msgtype": "m.text", "body": body},
        "depth": tip.depth + 1,
        "origin_server_ts": now_ms(),
        "prev_events": [tip.event_id],
        "auth_events": auth_events,
    });
    let mut pdu = to_canonical_object(&event).unwrap();
    let event_id = hash_and_sign_pdu(&room.version, &mut pdu, &peer.name, &peer.key).unwrap();
    (event_id.to_string(), pdu)
}

/// Rewrites `content.body` of a signed PDU (its content hash no longer matches).
fn tamper_body(pdu: &mut CanonicalJsonObject, body: &str) {
    let Some(CanonicalJsonValue::Object(content)) = pdu.get_mut("content") else { panic!("a message has content") };
    content.insert("body".to_owned(), CanonicalJsonValue::String(body.to_owned()));
}

/// Corrupts the peer's signature on a signed PDU (its hashes, and so its event ID, stay).
fn break_signature(pdu: &mut CanonicalJsonObject, peer: &FakePeer) {
    let Some(CanonicalJsonValue::Object(signatures)) = pdu.get_mut("signatures") else { panic!("a signed PDU has signatures") };
    let Some(CanonicalJsonValue::Object(ours)) = signatures.get_mut(peer.name.as_str()) else { panic!("the peer signed it") };
    let Some(CanonicalJsonValue::String(sig)) = ours.get_mut(&peer.key.key_id()) else { panic!("signed with the peer's key") };
    *sig = corrupt_base64(sig);
}

// ---------------------------------------------------------------------------
// What the Myelin user sees
// ---------------------------------------------------------------------------

/// The room's latest 100 events as `who` sees them (`/messages`, newest first).
async fn timeline(myelin: &TestServer, who: &Session, room: &str) -> Vec<Value> {
    let resp = myelin.get(&format!("{C}/rooms/{}/messages?dir=b&limit=100", enc(room)), who).await;
    resp.body["chunk"].as_array().cloned().unwrap_or_default()
}

async fn timeline_event(myelin: &TestServer, who: &Session, room: &str, event_id: &str) -> Option<Value> {
    timeline(myelin, who, room).await.into_iter().find(|e| e["event_id"] == event_id)
}

/// `GET /rooms/{room}/event/{eventId}` as `who`.
async fn get_event(myelin: &TestServer, who: &Session, room: &str, event_id: &str) -> Resp {
    myelin.get(&format!("{C}/rooms/{}/event/{}", enc(room), enc(event_id)), who).await
}

async fn membership_of(myelin: &TestServer, who: &Session, room: &str, user: &str) -> Option<String> {
    let resp = myelin.get(&format!("{C}/rooms/{}/state/m.room.member/{}", enc(room), enc(user)), who).await;
    (resp.status == 200).then(|| resp.body["membership"].as_str().unwrap_or_default().to_owned())
}

/// Polls `check` every 100 ms until it returns `Some`, for at most [`PATIENCE`].
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>, context: impl Fn() -> String) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}\n{}", context());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts that `who` cannot see `event_id` at all: not in `/messages`, and 404 from
/// `/rooms/{room}/event/{eventId}`.
async fn assert_invisible(myelin: &TestServer, who: &Session, room: &str, event_id: &str, what: &str, logs: &impl Fn() -> String) {
    let seen = timeline_event(myelin, who, room, event_id).await;
    assert!(seen.is_none(), "{what} ({event_id}) must never be shown, but /messages has {seen:?}\n{}", logs());
    let fetched = get_event(myelin, who, room, event_id).await;
    assert_eq!(fetched.status, StatusCode::NOT_FOUND, "{what} ({event_id}) must not be served by /event: {}\n{}", fetched.text, logs());
}

/// The `pdus` entry of `event_id` in a transaction's answer (`None` when absent).
fn outcome<'a>(resp: &'a Resp, event_id: &str) -> Option<&'a Value> {
    resp.body["pdus"].get(event_id)
}

// ---------------------------------------------------------------------------
// The scenario
// ---------------------------------------------------------------------------

/// Mallory of `peer` joins a new public room of `alice` on `myelin` through `make_join` and
/// `send_join`. Returns what the peer needs to write into the room, and the tip of the graph
/// (mallory's join).
async fn join_as_mallory(myelin: &TestServer, alice: &Session, peer: &FakePeer, version: &str, logs: &impl Fn() -> String) -> (RoomView, Tip) {
    let created = myelin.post(&format!("{C}/createRoom"), alice, &json!({"preset": "public_chat", "room_version": version})).await;
    assert_eq!(created.status, 200, "createRoom: {}\n{}", created.text, logs());
    let room_id = created.str_field("room_id").to_owned();
    let room_version = RoomVersionId::try_from(version).unwrap();
    let mallory = peer.user("mallory");

    let path = format!("/_matrix/federation/v1/make_join/{}/{}?ver=10&ver=12", enc(&room_id), enc(&mallory));
    let made = peer.signed(myelin, Method::GET, &path, None).await;
    assert_eq!(made.status, 200, "make_join: {}\n{}", made.text, logs());
    assert_eq!(made.body["room_version"], version, "make_join must name the room's version: {}", made.text);
    let mut template = made.body["event"].clone();
    assert_eq!(template["sender"], mallory.as_str(), "the template is mallory's join: {template}");
    assert_eq!(template["content"]["membership"], "join", "the template is mallory's join: {template}");
    template["origin_server_ts"] = json!(now_ms());
    let depth = template["depth"].as_u64().expect("the template has a depth");

    let mut join = to_canonical_object(&template).unwrap();
    let join_id = hash_and_sign_pdu(&room_version, &mut join, &peer.name, &peer.key).unwrap().to_string();
    let path = format!("/_matrix/federation/v2/send_join/{}/{}", enc(&room_id), enc(&join_id));
    let joined = peer.signed(myelin, Method::PUT, &path, Some(&serde_json::to_value(&join).unwrap())).await;
    assert_eq!(joined.status, 200, "send_join: {}\n{}", joined.text, logs());

    // The room's create and power levels events, by their reference hashes.
    let state = joined.body["state"].as_array().cloned().unwrap_or_default();
    let id_of = |event_type: &str| {
        let event = state.iter().find(|e| e["type"] == event_type).unwrap_or_else(|| panic!("no {event_type} in the send_join state: {}", joined.text));
        reference_event_id(&room_version, &to_canonical_object(event).unwrap()).unwrap().to_string()
    };
    let (create, power_levels) = (id_of("m.room.create"), id_of("m.room.power_levels"));
    let view = RoomView { version: room_version, room_id: room_id.clone(), create, power_levels };

    eventually(
        "the Myelin user to see mallory joined",
        async || (membership_of(myelin, alice, &room_id, &mallory).await.as_deref() == Some("join")).then_some(()),
        logs,
    )
    .await;
    (view, Tip { event_id: join_id, depth })
}

async fn forged_events_are_caught(version: &str) {
    let myelin = federating_myelin().await;
    let peer = FakePeer::start().await;
    let alice = myelin.register("alice", "pw").await;
    let logs = || format!("--- requests Myelin made to the fake peer ---\n{}\n{}", peer.requests_seen(), myelin.all_logs());
    let logs = &logs;

    let (room, join) = join_as_mallory(&myelin, &alice, &peer, version, logs).await;
    let room_id = room.room_id.clone();
    let (mallory, eve) = (peer.user("mallory"), peer.user("eve"));

    // 1. A valid message: accepted (`{}`) and shown.
    let (valid, valid_pdu) = message(&peer, &room, &mallory, &join, room.auth_events(Some(&join.event_id)), "hello from mallory");
    let first_txn = peer.transaction(&[&valid_pdu]);
    let first = peer.send_transaction(&myelin, "txn-valid", &first_txn).await;
    assert_eq!(first.status, 200, "a valid transaction: {}\n{}", first.text, logs());
    assert_eq!(outcome(&first, &valid), Some(&json!({})), "the valid message must be accepted: {}\n{}", first.text, logs());
    let seen = eventually("the valid message in /messages", async || timeline_event(&myelin, &alice, &room_id, &valid).await, logs).await;
    assert_eq!(seen["sender"], mallory.as_str(), "{seen}");
    assert_eq!(seen["content"]["body"], "hello from mallory", "{seen}");
    let tip = Tip { event_id: valid.clone(), depth: join.depth + 1 };

    // 2. Content changed after signing: the hash no longer matches, so the event is used
    //    redacted. Its ID (the hash of the redacted form) and signature still hold.
    let (tampered, mut tampered_pdu) = message(&peer, &room, &mallory, &tip, room.auth_events(Some(&join.event_id)), "what mallory signed");
    tamper_body(&mut tampered_pdu, "what mallory swapped in");
    let resp = peer.send_transaction(&myelin, "txn-tampered", &peer.transaction(&[&tampered_pdu])).await;
    assert_eq!(resp.status, 200, "{}\n{}", resp.text, logs());
    assert_eq!(outcome(&resp, &tampered), Some(&json!({})), "a content hash mismatch is accepted (redacted): {}\n{}", resp.text, logs());
    let seen = eventually("the tampered message in /messages", async || timeline_event(&myelin, &alice, &room_id, &tampered).await, logs).await;
    assert_eq!(seen["content"], json!({}), "an event whose content hash does not match must be shown redacted: {seen}\n{}", logs());
    let fetched = get_event(&myelin, &alice, &room_id, &tampered).await;
    assert_eq!(fetched.status, 200, "{}", fetched.text);
    assert_eq!(fetched.body["content"], json!({}), "/event must serve it redacted too: {}", fetched.text);
    let tip = Tip { event_id: tampered.clone(), depth: tip.depth + 1 };

    // 3. A broken signature: the event must not be accepted.
    let (badly_signed, mut badly_signed_pdu) = message(&peer, &room, &mallory, &tip, room.auth_events(Some(&join.event_id)), "badly signed");
    break_signature(&mut badly_signed_pdu, &peer);
    let resp = peer.send_transaction(&myelin, "txn-bad-signature", &peer.transaction(&[&badly_signed_pdu])).await;
    assert_eq!(resp.status, 200, "a transaction is answered 200 whatever becomes of its PDUs: {}\n{}", resp.text, logs());
    let entry = outcome(&resp, &badly_signed);
    assert!(
        entry.is_some_and(|e| e["error"].is_string()),
        "an event with a broken signature must get an error entry, not {entry:?}: {}\n{}",
        resp.text,
        logs()
    );

    // 4. A sender who never joined: refused by the auth rules, with an error entry.
    let (by_eve, by_eve_pdu) = message(&peer, &room, &eve, &tip, room.auth_events(None), "eve was never here");
    let resp = peer.send_transaction(&myelin, "txn-eve", &peer.transaction(&[&by_eve_pdu])).await;
    assert_eq!(resp.status, 200, "{}\n{}", resp.text, logs());
    let entry = outcome(&resp, &by_eve);
    assert!(
        entry.is_some_and(|e| e["error"].is_string()),
        "an event from a sender who is not in the room must get an error entry, not {entry:?}: {}\n{}",
        resp.text,
        logs()
    );

    // A valid message after those: once it shows, the refused ones had their chance to.
    let (after, after_pdu) = message(&peer, &room, &mallory, &tip, room.auth_events(Some(&join.event_id)), "after the forgeries");
    let resp = peer.send_transaction(&myelin, "txn-after", &peer.transaction(&[&after_pdu])).await;
    assert_eq!(outcome(&resp, &after), Some(&json!({})), "{}\n{}", resp.text, logs());
    eventually("the message sent after the forgeries in /messages", async || timeline_event(&myelin, &alice, &room_id, &after).await, logs).await;
    assert_invisible(&myelin, &alice, &room_id, &badly_signed, "the event with a broken signature", logs).await;
    assert_invisible(&myelin, &alice, &room_id, &by_eve, "eve's event", logs).await;
    let tip = Tip { event_id: after.clone(), depth: tip.depth + 1 };

    // 5. A transaction whose X-Matrix signature is broken: 401, and its PDU is not processed.
    let (unsigned_txn_event, unsigned_txn_pdu) =
        message(&peer, &room, &mallory, &tip, room.auth_events(Some(&join.event_id)), "in a transaction with a forged X-Matrix");
    let body = peer.transaction(&[&unsigned_txn_pdu]);
    let path = format!("/_matrix/federation/v1/send/{}", enc("txn-forged-x-matrix"));
    let forged = corrupt_x_matrix(&peer.x_matrix(myelin.server_name(), &Method::PUT, &path, Some(&body)));
    let resp = peer.send_with(&myelin, Method::PUT, &path, Some(&body), forged).await;
    assert_matrix_error(&resp, StatusCode::UNAUTHORIZED, "M_UNAUTHORIZED");
    assert_invisible(&myelin, &alice, &room_id, &unsigned_txn_event, "the event of a transaction with a forged X-Matrix", logs).await;

    // 6. The first transaction again: the same answer, and the message shown once.
    let again = peer.send_transaction(&myelin, "txn-valid", &first_txn).await;
    assert_eq!((again.status, &again.body), (first.status, &first.body), "a replayed transaction must get the first answer\n{}", logs());
    let copies = timeline(&myelin, &alice, &room_id).await.iter().filter(|e| e["event_id"] == valid).count();
    assert_eq!(copies, 1, "the replayed message must be shown exactly once\n{}", logs());
    let bodies = timeline(&myelin, &alice, &room_id).await.iter().filter(|e| e["content"]["body"] == "hello from mallory").count();
    assert_eq!(bodies, 1, "the replayed message's body must appear exactly once\n{}", logs());
    //    Same ID, other PDUs: the transaction counts as seen (Myelin remembers the last
    //    1,024 per origin), so the first answer comes back and the new PDU is not processed.
    let reused = peer.send_transaction(&myelin, "txn-valid", &peer.transaction(&[&unsigned_txn_pdu])).await;
    assert_eq!((reused.status, &reused.body), (first.status, &first.body), "a reused transaction ID must get the first answer\n{}", logs());
    assert_invisible(&myelin, &alice, &room_id, &unsigned_txn_event, "a PDU sent under a transaction ID already used", logs).await;

    // The event refused with the forged X-Matrix, now properly signed in a new transaction:
    // accepted. The refusals above were about the forgeries only.
    let resp = peer.send_transaction(&myelin, "txn-final", &body).await;
    assert_eq!(outcome(&resp, &unsigned_txn_event), Some(&json!({})), "{}\n{}", resp.text, logs());
    let seen = eventually("the last message in /messages", async || timeline_event(&myelin, &alice, &room_id, &unsigned_txn_event).await, logs).await;
    assert_eq!(seen["content"]["body"], "in a transaction with a forged X-Matrix", "{seen}");
}

#[tokio::test]
async fn forged_federation_events_and_transactions_are_caught_in_a_v10_room() {
    forged_events_are_caught("10").await;
}

#[tokio::test]
async fn forged_federation_events_and_transactions_are_caught_in_a_v12_room() {
    forged_events_are_caught("12").await;
}

/// A redaction can reach us before the event it redacts (each on its own branch of the
/// graph): it must apply once the target arrives.
#[tokio::test]
async fn a_redaction_received_before_its_target_applies_when_the_target_arrives() {
    let myelin = federating_myelin().await;
    let peer = FakePeer::start().await;
    let alice = myelin.register("alice", "pw").await;
    let logs = || format!("--- requests Myelin made to the fake peer ---\n{}\n{}", peer.requests_seen(), myelin.all_logs());
    let logs = &logs;
    let (room, tip) = join_as_mallory(&myelin, &alice, &peer, "12", logs).await;
    let room_id = room.room_id.clone();
    let mallory = peer.user("mallory");

    let (target, target_pdu) = message(&peer, &room, &mallory, &tip, room.auth_events(Some(&tip.event_id)), "regret this");
    let redaction = json!({
        "room_id": room.room_id,
        "sender": mallory,
        "type": "m.room.redaction",
        "content": {"redacts": target, "reason": "oops"},
        "depth": tip.depth + 1,
        "origin_server_ts": now_ms(),
        "prev_events": [tip.event_id],
        "auth_events": room.auth_events(Some(&tip.event_id)),
    });
    let mut redaction_pdu = to_canonical_object(&redaction).unwrap();
    let redaction_id = hash_and_sign_pdu(&room.version, &mut redaction_pdu, &peer.name, &peer.key).unwrap().to_string();

    let resp = peer.send_transaction(&myelin, "txn-redaction-first", &peer.transaction(&[&redaction_pdu])).await;
    assert_eq!(outcome(&resp, &redaction_id), Some(&json!({})), "{}\n{}", resp.text, logs());
    let resp = peer.send_transaction(&myelin, "txn-target-second", &peer.transaction(&[&target_pdu])).await;
    assert_eq!(outcome(&resp, &target), Some(&json!({})), "{}\n{}", resp.text, logs());

    let fetched = get_event(&myelin, &alice, &room_id, &target).await;
    assert_eq!(fetched.status, 200, "{}", fetched.text);
    assert_eq!(fetched.body["content"], json!({}), "the early redaction did not apply: {}\n{}", fetched.text, logs());
    assert_eq!(fetched.body["unsigned"]["redacted_because"]["event_id"], redaction_id.as_str(), "{}", fetched.text);
}
