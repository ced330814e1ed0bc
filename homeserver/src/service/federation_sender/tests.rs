//! The sender against a real RocksDB and a fake peer: an HTTPS server on 127.0.0.1 (self-signed
//! certificate) that records the transactions it accepts and can be told to fail.

use std::{
    net::SocketAddr,
    path::Path,
    sync::atomic::{AtomicUsize, Ordering},
    time::Instant,
};

use axum::{
    Json, Router,
    extract::{Path as UrlPath, State},
    http::StatusCode,
    routing::put,
};
use myelin_federation::ServerSigningKey;
use myelin_storage::Catalog;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::*;

const ORIGIN: &str = "origin.test";

/// How the fake peer answers `PUT /send/{txnId}`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Accept,
    /// 500 `M_UNKNOWN`, recording nothing.
    Fail,
    /// Waits until the mode changes, then answers as the new mode says: lets a test queue
    /// rows while the first transaction is in flight.
    Hold,
}

#[derive(Debug, Clone)]
struct Received {
    txn_id: String,
    pdus: Vec<Value>,
    edus: Vec<Value>,
}

struct PeerState {
    mode: watch::Sender<Mode>,
    /// Every request, accepted or not.
    attempts: AtomicUsize,
    /// Transaction IDs of requests answered with an error, in order.
    failed_txn_ids: Mutex<Vec<String>>,
    /// Accepted transactions, in order.
    received: Mutex<Vec<Received>>,
    /// Refuse every PDU in the response body (still 200), as a peer may.
    refuse_pdus: bool,
}

struct Peer {
    name: OwnedServerName,
    state: Arc<PeerState>,
    serving: JoinHandle<()>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

impl Peer {
    /// A peer listening on `port` (0: any free port), answering as `mode` says.
    async fn start(port: u16, mode: Mode, refuse_pdus: bool) -> Self {
        let tcp = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let addr: SocketAddr = tcp.local_addr().unwrap();
        let state = Arc::new(PeerState {
            mode: watch::channel(mode).0,
            attempts: AtomicUsize::new(0),
            failed_txn_ids: Mutex::new(Vec::new()),
            received: Mutex::new(Vec::new()),
            refuse_pdus,
        });
        let app = Router::new().route("/_matrix/federation/v1/send/{txn_id}", put(receive)).with_state(state.clone());
        let listener = crate::tls::TlsListener::new(tcp, self_signed_tls()).unwrap();
        let serving = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let name = OwnedServerName::try_from(format!("127.0.0.1:{}", addr.port())).unwrap();
        Self { name, state, serving }
    }

    fn set_mode(&self, mode: Mode) {
        self.state.mode.send_replace(mode);
    }

    fn attempts(&self) -> usize {
        self.state.attempts.load(Ordering::SeqCst)
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    fn failed_txn_ids(&self) -> Vec<String> {
        self.state.failed_txn_ids.lock().unwrap().clone()
    }

    fn received_pdus(&self) -> Vec<u64> {
        self.received().iter().flat_map(|txn| txn.pdus.iter().map(index)).collect()
    }

    fn received_edus(&self) -> Vec<u64> {
        self.received().iter().flat_map(|txn| txn.edus.iter().map(|edu| edu["content"]["index"].as_u64().unwrap())).collect()
    }
}

async fn receive(
    State(state): State<Arc<PeerState>>,
    UrlPath(txn_id): UrlPath<String>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    state.attempts.fetch_add(1, Ordering::SeqCst);
    let mut mode = state.mode.subscribe();
    let mode = *mode.wait_for(|mode| *mode != Mode::Hold).await.unwrap();
    if mode == Mode::Fail {
        state.failed_txn_ids.lock().unwrap().push(txn_id);
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"errcode": "M_UNKNOWN", "error": "down"})));
    }
    assert_eq!(body["origin"], ORIGIN);
    assert!(body["origin_server_ts"].as_u64().unwrap() > 0);
    let list = |field: &str| body.get(field).and_then(Value::as_array).cloned().unwrap_or_default();
    let (pdus, edus) = (list("pdus"), list("edus"));
    let answers: serde_json::Map<String, Value> = if state.refuse_pdus {
        pdus.iter().map(|pdu| (format!("$event{}", index(pdu)), json!({"error": "refused"}))).collect()
    } else {
        serde_json::Map::new()
    };
    state.received.lock().unwrap().push(Received { txn_id, pdus, edus });
    (StatusCode::OK, Json(json!({ "pdus": answers })))
}

fn self_signed_tls() -> Arc<rustls::ServerConfig> {
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    crate::tls::load_pem(&cert, &key).unwrap()
}

fn open_db(path: &Path) -> Database {
    let catalog = TABLES.iter().copied().fold(Catalog::new(crate::service::SCHEMA_VERSION), Catalog::table);
    Database::open_rocksdb(path, &catalog).unwrap()
}

fn sender(db: &Database, retry_initial: Duration, retry_max: Duration) -> FederationSender {
    let origin = OwnedServerName::try_from(ORIGIN).unwrap();
    let key = Arc::new(ServerSigningKey::generate().unwrap());
    let client = FederationClient::new(origin.clone(), key, false, true).unwrap();
    FederationSender::new(db.clone(), client, origin, retry_initial, retry_max)
}

/// Short intervals, so retries happen within a test.
fn fast_sender(db: &Database) -> FederationSender {
    sender(db, Duration::from_millis(50), Duration::from_millis(400))
}

fn pdu(index: u64) -> CanonicalJsonObject {
    let value = json!({
        "type": "m.room.message",
        "room_id": "!room:origin.test",
        "sender": "@alice:origin.test",
        "origin_server_ts": 1_700_000_000_000u64 + index,
        "depth": index,
        "content": {"body": format!("message {index}"), "index": index},
    });
    serde_json::from_value(value).unwrap()
}

fn index(pdu: &Value) -> u64 {
    pdu["content"]["index"].as_u64().unwrap()
}

fn edu(index: u64) -> Value {
    json!({"edu_type": "m.typing", "content": {"room_id": "!room:origin.test", "user_id": "@alice:origin.test", "typing": true, "index": index}})
}

/// All rows of the four tables, to check the queue is empty.
fn queued_rows(db: &Database) -> usize {
    PDUS.iter_all(db).unwrap().count()
        + DESTINATION_PDUS.iter_all(db).unwrap().count()
        + PDU_DESTINATIONS.iter_all(db).unwrap().count()
        + DESTINATION_EDUS.iter_all(db).unwrap().count()
}

async fn eventually(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdus_are_delivered_in_order_in_transactions_of_at_most_50() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let sender = fast_sender(&db);
    // Refusing every PDU must not make the sender send them again (spec).
    let peer = Peer::start(0, Mode::Hold, true).await;

    sender.enqueue_pdu([peer.name.clone()], &pdu(0)).await.unwrap();
    // The first transaction is held in flight while the rest queue up behind it.
    eventually("the first transaction arrives", PATIENCE, || peer.attempts() == 1).await;
    for i in 1..120 {
        sender.enqueue_pdu([peer.name.clone()], &pdu(i)).await.unwrap();
    }
    peer.set_mode(Mode::Accept);
    eventually("all PDUs arrive", PATIENCE, || peer.received_pdus().len() >= 120).await;
    eventually("the queue is empty", PATIENCE, || queued_rows(&db) == 0).await;

    assert_eq!(peer.received_pdus(), (0..120).collect::<Vec<_>>(), "every PDU once, in queue order");
    let sizes: Vec<usize> = peer.received().iter().map(|txn| txn.pdus.len()).collect();
    assert_eq!(sizes, [1, 50, 50, 19], "the backlog goes in full transactions");
    assert_eq!(peer.attempts(), 4, "no transaction was sent twice");
    let ids: BTreeSet<String> = peer.received().into_iter().map(|txn| txn.txn_id).collect();
    assert_eq!(ids.len(), 4, "transaction IDs are unique");
    assert!(peer.received().iter().all(|txn| txn.edus.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edus_are_batched_by_at_most_100() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let sender = fast_sender(&db);
    let peer = Peer::start(0, Mode::Hold, false).await;

    sender.enqueue_edu(peer.name.clone(), edu(0)).await.unwrap();
    eventually("the first transaction arrives", PATIENCE, || peer.attempts() == 1).await;
    for i in 1..250 {
        sender.enqueue_edu(peer.name.clone(), edu(i)).await.unwrap();
    }
    // Mixed in: PDUs ride along in the same transactions, up to their own limit.
    for i in 0..3 {
        sender.enqueue_pdu([peer.name.clone()], &pdu(i)).await.unwrap();
    }
    peer.set_mode(Mode::Accept);
    eventually("all EDUs arrive", PATIENCE, || peer.received_edus().len() >= 250).await;
    eventually("the queue is empty", PATIENCE, || queued_rows(&db) == 0).await;

    assert_eq!(peer.received_edus(), (0..250).collect::<Vec<_>>());
    let sizes: Vec<usize> = peer.received().iter().map(|txn| txn.edus.len()).collect();
    assert_eq!(sizes, [1, 100, 100, 49]);
    assert_eq!(peer.received_pdus(), [0, 1, 2]);
    assert_eq!(peer.received()[1].pdus.len(), 3, "PDUs share the first transaction they fit in");
    assert_eq!(peer.received()[1].edus[0]["edu_type"], "m.typing", "EDUs arrive as queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_peer_gets_the_same_transaction_again_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let sender = fast_sender(&db);
    let peer = Peer::start(0, Mode::Fail, false).await;

    sender.enqueue_pdu([peer.name.clone()], &pdu(0)).await.unwrap();
    eventually("the first attempt fails", PATIENCE, || peer.attempts() == 1).await;
    for i in 1..30 {
        sender.enqueue_pdu([peer.name.clone()], &pdu(i)).await.unwrap();
    }
    sender.enqueue_edu(peer.name.clone(), edu(0)).await.unwrap();
    let failing_since = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let attempts = peer.attempts();
    // Delays ≈ 50, 100, 200, 400, 400… ms: about 6 attempts in 1.5 s. Without backoff there
    // would be dozens; new enqueues must not have cut the waits short either.
    assert!((3..=10).contains(&attempts), "{attempts} attempts in {:?}", failing_since.elapsed());
    assert!(peer.received().is_empty());
    let failed = peer.failed_txn_ids();
    assert!(failed.iter().all(|id| *id == failed[0]), "a retry reuses the transaction ID: {failed:?}");

    peer.set_mode(Mode::Accept);
    eventually("everything arrives", PATIENCE, || peer.received_pdus().len() >= 30 && peer.received_edus().len() == 1)
        .await;
    eventually("the queue is empty", PATIENCE, || queued_rows(&db) == 0).await;
    let received = peer.received();
    assert_eq!(received[0].txn_id, failed[0], "the retried transaction finally went through under its ID");
    assert_eq!(received[0].pdus.iter().map(index).collect::<Vec<_>>(), [0], "with the same content");
    assert_eq!(peer.received_pdus(), (0..30).collect::<Vec<_>>(), "each PDU accepted exactly once");
    assert_eq!(peer.received_edus(), [0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_is_back_cuts_the_backoff_short_and_enqueue_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let sender = sender(&db, Duration::from_secs(20), Duration::from_secs(60));
    let peer = Peer::start(0, Mode::Fail, false).await;

    sender.enqueue_pdu([peer.name.clone()], &pdu(0)).await.unwrap();
    eventually("the first attempt fails", PATIENCE, || peer.attempts() == 1).await;
    peer.set_mode(Mode::Accept);
    sender.enqueue_pdu([peer.name.clone()], &pdu(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(peer.attempts(), 1, "a new enqueue waits for the backoff");

    let back_at = Instant::now();
    sender.peer_is_back(&peer.name);
    eventually("both PDUs arrive", Duration::from_secs(10), || peer.received_pdus().len() == 2).await;
    assert!(back_at.elapsed() < Duration::from_secs(10), "retried long before the 20 s backoff");
    assert_eq!(peer.received_pdus(), [0, 1]);
    // Other destinations are not affected, and a server with no queue is a no-op.
    sender.peer_is_back(ruma::server_name!("idle.test"));
}

#[test]
fn queued_rows_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // A port with nothing listening: the peer is down until the second run brings it up.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let destination = OwnedServerName::try_from(format!("127.0.0.1:{port}")).unwrap();
    let other = OwnedServerName::try_from("127.0.0.1:1").unwrap();

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let db = open_db(dir.path());
        let sender = fast_sender(&db);
        for i in 0..60 {
            // Also queued for this server itself, which is skipped.
            let destinations = [destination.clone(), OwnedServerName::try_from(ORIGIN).unwrap()];
            sender.enqueue_pdu(destinations, &pdu(i)).await.unwrap();
        }
        for i in 0..10 {
            sender.enqueue_edu(destination.clone(), edu(i)).await.unwrap();
        }
        sender.enqueue_edu(OwnedServerName::try_from(ORIGIN).unwrap(), edu(99)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(DESTINATION_PDUS.iter_all(&db).unwrap().count(), 60, "one row per PDU, none for ourselves");
        assert_eq!(DESTINATION_EDUS.iter_all(&db).unwrap().count(), 10);
        sender.shutdown().await;
        // Only the queue keeps this destination's rows after a shutdown.
        sender.enqueue_edu(other.clone(), edu(0)).await.unwrap();
        assert!(lock(&sender.inner.workers).is_empty(), "no worker runs after shutdown");
    });
    drop(runtime);

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let db = open_db(dir.path());
        let sender = fast_sender(&db);
        // Stored JSON that no row points at, as a crash after a delivery leaves it.
        let mut batch = Batch::new();
        PDUS.put(&mut batch, &u64::MAX, &b"{}".to_vec()).unwrap();
        db.write(batch).unwrap();

        sender.start();
        assert!(PDUS.get(&db, &u64::MAX).unwrap().is_none(), "start removes orphaned PDU JSON");
        assert!(lock(&sender.inner.workers).contains_key(&destination), "start resumes the destination");
        assert!(lock(&sender.inner.workers).contains_key(&other));

        let peer = Peer::start(port, Mode::Accept, false).await;
        eventually("everything arrives", PATIENCE, || peer.received_pdus().len() >= 60 && peer.received_edus().len() >= 10)
            .await;
        let destination_rows = |db: &Database| {
            DESTINATION_PDUS.iter_prefix(db, &destination.to_string(), Direction::Forward).unwrap().count()
                + DESTINATION_EDUS.iter_prefix(db, &destination.to_string(), Direction::Forward).unwrap().count()
        };
        eventually("its queue is empty", PATIENCE, || destination_rows(&db) == 0 && PDUS.iter_all(&db).unwrap().count() == 0)
            .await;
        assert_eq!(peer.received_pdus(), (0..60).collect::<Vec<_>>());
        assert_eq!(peer.received_edus(), (0..10).collect::<Vec<_>>());
        assert!(peer.received().iter().all(|txn| txn.pdus.len() <= 50));
        sender.shutdown().await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdu_for_two_destinations_is_kept_until_both_have_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = open_db(dir.path());
    let sender = fast_sender(&db);
    let up = Peer::start(0, Mode::Accept, false).await;
    let down = Peer::start(0, Mode::Fail, false).await;

    sender.enqueue_pdu([up.name.clone(), down.name.clone()], &pdu(7)).await.unwrap();
    eventually("the reachable peer has it", PATIENCE, || up.received_pdus() == [7]).await;
    eventually("the reachable peer's row is gone", PATIENCE, || {
        DESTINATION_PDUS.iter_prefix(&db, &up.name.to_string(), Direction::Forward).unwrap().count() == 0
    })
    .await;
    eventually("the other peer failed", PATIENCE, || down.attempts() >= 2).await;
    assert_eq!(PDUS.iter_all(&db).unwrap().count(), 1, "the JSON stays for the other destination");

    down.set_mode(Mode::Accept);
    eventually("the other peer has it", PATIENCE, || down.received_pdus() == [7]).await;
    eventually("the queue is empty", PATIENCE, || queued_rows(&db) == 0).await;
    assert_eq!(up.received_pdus(), [7], "sent once to the peer that took it");
}

#[test]
fn backoff_doubles_up_to_the_maximum_with_jitter() {
    let (initial, max) = (Duration::from_millis(100), Duration::from_millis(1000));
    for (failures, expected) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (40, 1000)] {
        for _ in 0..50 {
            let delay = backoff(initial, max, failures).as_secs_f64() * 1000.0;
            let expected = expected as f64;
            assert!(delay >= expected * 0.9 - 0.001 && delay <= expected * 1.1 + 0.001, "{failures}: {delay}");
        }
    }
}

#[test]
fn transaction_ids_follow_the_rows() {
    assert_eq!(transaction_id(&[3, 4], &[5]), transaction_id(&[3, 4], &[5]));
    assert_ne!(transaction_id(&[3, 5], &[]), transaction_id(&[3, 4, 5], &[]), "same ends, other rows");
    assert_ne!(transaction_id(&[3], &[4]), transaction_id(&[4], &[3]));
    assert!(transaction_id(&[3, 9], &[5]).as_str().starts_with("3-9-"));
}

/// Handlers and spawned tasks need `Send` futures.
#[allow(dead_code)]
fn futures_are_send(sender: FederationSender, pdu: CanonicalJsonObject, destination: OwnedServerName) {
    fn send<T: Send>(_: T) {}
    send(async move {
        sender.enqueue_pdu(vec![destination.clone()], &pdu).await.unwrap();
        sender.enqueue_edu(destination, json!({})).await.unwrap();
        sender.shutdown().await;
    });
}
