//! Rooms shared with other servers: events they push to us (the checks on receipt of a PDU,
//! filling gaps in the graph), and membership that crosses servers (joins, invites, leaves)
//! both as the server of the user and as the server holding the room.
//!
//! The protocol decisions (formats, signatures, auth rules, state resolution) live in the
//! sans-I/O `myelin_federation`; this service does the I/O around them: fetching keys and
//! events from peers, and storing what passed through the room engine.

mod backfill;
mod inbound;
mod membership;

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use myelin_federation::{
    ServerSigningKey,
    pdu::{Pdu, Verified, check_pdu_format, event_id_of, redact_pdu, required_signing_servers, verify_pdu},
};
use ruma::{CanonicalJsonObject, CanonicalJsonValue, OwnedServerName, RoomVersionId, ServerName, serde::Base64, signatures::PublicKeyMap};

use super::{federation_client::FederationClient, federation_sender::FederationSender, remote_keys::RemoteKeys, rooms::Rooms, users::Users};
use crate::error::{Error, Result};

pub use self::{inbound::TransactionOutcome, membership::JoinedState};

/// Transactions remembered per origin for idempotency: a retried transaction gets the first
/// answer without its PDUs being processed again.
const REMEMBERED_TRANSACTIONS: usize = 1024;

#[derive(Clone)]
pub struct Federation {
    server_name: OwnedServerName,
    signing_key: Arc<ServerSigningKey>,
    rooms: Rooms,
    users: Users,
    keys: RemoteKeys,
    client: FederationClient,
    sender: FederationSender,
    transactions: Arc<Mutex<RecentTransactions>>,
}

#[derive(Default)]
struct RecentTransactions {
    order: VecDeque<(OwnedServerName, String)>,
    outcomes: HashMap<(OwnedServerName, String), TransactionOutcome>,
}

impl Federation {
    pub fn new(
        server_name: OwnedServerName,
        signing_key: Arc<ServerSigningKey>,
        rooms: Rooms,
        users: Users,
        keys: RemoteKeys,
        client: FederationClient,
        sender: FederationSender,
    ) -> Self {
        Self { server_name, signing_key, rooms, users, keys, client, sender, transactions: Arc::default() }
    }

    /// The public keys that the required signatures of `events` need, fetched once per key.
    async fn keys_for(&self, version: &RoomVersionId, events: &[&CanonicalJsonObject]) -> PublicKeyMap {
        let mut wanted: BTreeMap<OwnedServerName, Vec<String>> = BTreeMap::new();
        for json in events {
            let Ok(servers) = required_signing_servers(version, json) else { continue };
            for server in servers {
                let key_ids = signature_key_ids(json, &server);
                let entry = wanted.entry(server).or_default();
                for key_id in key_ids {
                    if !entry.contains(&key_id) {
                        entry.push(key_id);
                    }
                }
            }
        }
        let mut map = PublicKeyMap::new();
        for (server, key_ids) in wanted {
            let mut set = BTreeMap::new();
            for key_id in key_ids {
                match self.keys.current_key(&server, &key_id).await {
                    Ok(key) => {
                        set.insert(key_id, Base64::new(key));
                    }
                    Err(error) => tracing::debug!(%server, %key_id, %error, "no key to verify an event with"),
                }
            }
            map.insert(server.to_string(), set);
        }
        map
    }

    /// The checks on receipt of a PDU that need no room state: format, signatures, and the
    /// content hash (a mismatch means the event is used redacted). Verification runs on the
    /// blocking pool, split across the cores, as it dominates the cost of a big join.
    pub async fn verify_events(&self, version: &RoomVersionId, events: Vec<CanonicalJsonObject>) -> Vec<Result<Pdu>> {
        let keys = Arc::new(self.keys_for(version, &events.iter().collect::<Vec<_>>()).await);
        let workers = std::thread::available_parallelism().map_or(2, usize::from).max(1);
        let chunk = events.len().div_ceil(workers).max(1);
        let mut tasks = Vec::new();
        let mut events = events;
        while !events.is_empty() {
            let rest = events.split_off(chunk.min(events.len()));
            let part = std::mem::replace(&mut events, rest);
            let keys = keys.clone();
            let version = version.clone();
            tasks.push(tokio::task::spawn_blocking(move || {
                part.into_iter().map(|json| verify_one(&version, json, &keys)).collect::<Vec<_>>()
            }));
        }
        let mut out = Vec::new();
        for task in tasks {
            match task.await {
                Ok(results) => out.extend(results),
                Err(e) => out.push(Err(Error::internal(format!("verification task failed: {e}")))),
            }
        }
        out
    }

    /// [`Federation::verify_events`] for one event.
    pub async fn verify_event(&self, version: &RoomVersionId, json: CanonicalJsonObject) -> Result<Pdu> {
        self.verify_events(version, vec![json]).await.pop().unwrap_or_else(|| Err(Error::internal("no verification result")))
    }

    pub fn is_local(&self, server: &ServerName) -> bool {
        server == self.server_name
    }
}

fn verify_one(version: &RoomVersionId, mut json: CanonicalJsonObject, keys: &PublicKeyMap) -> Result<Pdu> {
    // `unsigned` is the sender's annotation, never signed: drop it before anything else.
    json.remove("unsigned");
    check_pdu_format(version, &json).map_err(|e| Error::bad_json(format!("invalid PDU: {e}")))?;
    let event_id = event_id_of(version, &json).map_err(|e| Error::bad_json(format!("invalid PDU: {e}")))?;
    let json = match verify_pdu(version, &json, keys).map_err(|e| Error::forbidden(format!("{event_id}: {e}")))? {
        Verified::All => json,
        Verified::SignaturesOnly => {
            tracing::info!(%event_id, "content hash mismatch: using the event redacted");
            redact_pdu(version, json, None)?
        }
    };
    Pdu::for_version(version, event_id, json).map_err(|e| Error::bad_json(format!("invalid PDU: {e}")))
}

/// The `ed25519:` key IDs `server` signed `json` with.
fn signature_key_ids(json: &CanonicalJsonObject, server: &ServerName) -> Vec<String> {
    match json.get("signatures") {
        Some(CanonicalJsonValue::Object(signatures)) => match signatures.get(server.as_str()) {
            Some(CanonicalJsonValue::Object(by_key)) => by_key.keys().filter(|k| k.starts_with("ed25519:")).cloned().collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Parses federation JSON into canonical JSON, or `M_BAD_JSON`.
pub fn canonical_object(raw: &serde_json::value::RawValue) -> Result<CanonicalJsonObject> {
    serde_json::from_str::<CanonicalJsonObject>(raw.get()).map_err(|e| Error::bad_json(format!("invalid PDU JSON: {e}")))
}
