//! Other servers' signing keys: fetched from their key server, verified against their own
//! signature, cached in RocksDB until `valid_until_ts`.

use std::collections::BTreeMap;

use base64::Engine;
use myelin_federation::{ServerSigningKey, keys::to_canonical_object};
use myelin_storage::{Batch, Database, Table};
use ruma::{ServerName, serde::Base64, signatures::PublicKeyMap};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::federation_client::FederationClient;
use crate::{
    error::{Error, Result},
    util::now_millis,
};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct CachedKey {
    /// Unpadded standard base64, as published.
    key: String,
    valid_until_ts: u64,
    /// Set for keys the server lists as old: usable for events signed before this time.
    expired_ts: Option<u64>,
}

const KEYS: Table<(String, String), CachedKey> = Table::new("servername_keyid_verifykey");
/// The last verified key-server response of each server, kept whole (with its own
/// signatures) so we can serve it as a notary.
const RESPONSES: Table<String, Value> = Table::new("servername_keyresponse");
pub const TABLES: &[&str] = &["servername_keyid_verifykey", "servername_keyresponse"];

#[derive(Clone)]
pub struct RemoteKeys {
    db: Database,
    own_name: ruma::OwnedServerName,
    own_key: std::sync::Arc<ServerSigningKey>,
    client: FederationClient,
}

fn unauthorized(message: impl Into<String>) -> Error {
    Error::matrix(http::StatusCode::UNAUTHORIZED, ruma::api::error::ErrorKind::Unauthorized, message)
}

impl RemoteKeys {
    pub fn new(db: Database, own_name: ruma::OwnedServerName, own_key: std::sync::Arc<ServerSigningKey>, client: FederationClient) -> Self {
        Self { db, own_name, own_key, client }
    }

    /// The raw public key `server` signs with under `key_id`, valid now: from our own key, the
    /// cache, or the server's key server.
    pub async fn current_key(&self, server: &ServerName, key_id: &str) -> Result<Vec<u8>> {
        if server == self.own_name {
            if key_id != self.own_key.key_id() {
                return Err(unauthorized(format!("Unknown key {key_id} for {server}")));
            }
            return decode(&self.own_key.public_key_base64());
        }
        let key = (server.to_string(), key_id.to_owned());
        if let Some(cached) = KEYS.get(&self.db, &key)?
            && cached.expired_ts.is_none()
            && cached.valid_until_ts > now_millis()
        {
            return decode(&cached.key);
        }
        self.fetch(server).await?;
        match KEYS.get(&self.db, &key)? {
            Some(fetched) if fetched.expired_ts.is_none() && fetched.valid_until_ts > now_millis() => decode(&fetched.key),
            _ => Err(unauthorized(format!("{server} does not publish a current key {key_id}"))),
        }
    }

    /// Fetches `server`'s keys from `/_matrix/key/v2/server`, checks its self-signature, and
    /// caches every key it lists.
    pub async fn fetch(&self, server: &ServerName) -> Result<()> {
        let response = self.client.get_json(server, "/_matrix/key/v2/server").await?;
        let keys = verified_keys(server, &response)?;
        let mut batch = Batch::new();
        for (key_id, cached) in keys {
            KEYS.put(&mut batch, &(server.to_string(), key_id), &cached)?;
        }
        RESPONSES.put(&mut batch, &server.to_string(), &response)?;
        self.db.write_async(batch).await?;
        Ok(())
    }

    /// `server`'s key response valid until at least `minimum_valid_until_ts`, countersigned
    /// by us, as a notary serves it. `None` when the server cannot be reached.
    pub async fn notarised(&self, server: &ServerName, minimum_valid_until_ts: u64) -> Result<Option<Value>> {
        let response = if server == self.own_name {
            serde_json::to_value(self.own_key.server_key_response(server.as_str(), now_millis() + OWN_KEY_VALIDITY_MS)?)
                .map_err(|e| Error::internal(e.to_string()))?
        } else {
            let fresh_enough = |r: &Value| r.get("valid_until_ts").and_then(Value::as_u64).is_some_and(|ts| ts >= minimum_valid_until_ts);
            match RESPONSES.get(&self.db, &server.to_string())?.filter(fresh_enough) {
                Some(cached) => cached,
                None => {
                    if let Err(error) = self.fetch(server).await {
                        tracing::debug!(%server, %error, "notary could not fetch keys");
                    }
                    match RESPONSES.get(&self.db, &server.to_string())? {
                        Some(fetched) => fetched,
                        None => return Ok(None),
                    }
                }
            }
        };
        let mut object = to_canonical_object(&response)?;
        if server != self.own_name {
            self.own_key.sign_json(self.own_name.as_str(), &mut object)?;
        }
        Ok(Some(serde_json::to_value(object).map_err(|e| Error::internal(e.to_string()))?))
    }
}

/// How long peers may cache our own key (also what `/_matrix/key/v2/server` publishes).
pub const OWN_KEY_VALIDITY_MS: u64 = 7 * 24 * 60 * 60 * 1000;

fn decode(key: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(key.trim_end_matches('='))
        .map_err(|e| Error::internal(format!("stored key is not base64: {e}")))
}

/// The keys in a key-server response, after checking it names `server` and is signed by one
/// of its own current keys. Sans-I/O, so it is tested with plain JSON.
fn verified_keys(server: &ServerName, response: &Value) -> Result<BTreeMap<String, CachedKey>> {
    let invalid = |why: &str| unauthorized(format!("Invalid key response from {server}: {why}"));
    if response.get("server_name").and_then(Value::as_str) != Some(server.as_str()) {
        return Err(invalid("server_name does not match"));
    }
    let valid_until_ts = response.get("valid_until_ts").and_then(Value::as_u64).ok_or_else(|| invalid("no valid_until_ts"))?;
    let mut keys = BTreeMap::new();
    let mut public_keys = BTreeMap::new();
    for (key_id, entry) in response.get("verify_keys").and_then(Value::as_object).ok_or_else(|| invalid("no verify_keys"))? {
        let key = entry.get("key").and_then(Value::as_str).ok_or_else(|| invalid("verify key without key"))?;
        let parsed = Base64::parse(key).map_err(|_| invalid("key is not base64"))?;
        public_keys.insert(key_id.clone(), parsed);
        keys.insert(key_id.clone(), CachedKey { key: key.to_owned(), valid_until_ts, expired_ts: None });
    }
    if keys.is_empty() {
        return Err(invalid("no verify keys"));
    }
    for (key_id, entry) in response.get("old_verify_keys").and_then(Value::as_object).into_iter().flatten() {
        if let (Some(key), Some(expired)) = (entry.get("key").and_then(Value::as_str), entry.get("expired_ts").and_then(Value::as_u64)) {
            keys.entry(key_id.clone())
                .or_insert(CachedKey { key: key.to_owned(), valid_until_ts: expired, expired_ts: Some(expired) });
        }
    }
    let object = to_canonical_object(response).map_err(|_| invalid("not canonical JSON"))?;
    let map: PublicKeyMap = BTreeMap::from([(server.to_string(), public_keys)]);
    myelin_federation::keys::verify_json(&map, &object).map_err(|_| invalid("self-signature does not verify"))?;
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_self_signed_response_and_rejects_tampering() {
        let key = ServerSigningKey::generate().unwrap();
        let server = ruma::server_name!("peer.test");
        let signed = serde_json::to_value(key.server_key_response("peer.test", now_millis() + 60_000).unwrap()).unwrap();
        let keys = verified_keys(server, &signed).unwrap();
        assert_eq!(keys[&key.key_id()].key, key.public_key_base64());

        let mut tampered = signed.clone();
        tampered["valid_until_ts"] = serde_json::json!(now_millis() + 999_999_999);
        assert!(verified_keys(server, &tampered).is_err());
        assert!(verified_keys(ruma::server_name!("other.test"), &signed).is_err());
        let mut unsigned = signed;
        unsigned.as_object_mut().unwrap().remove("signatures");
        assert!(verified_keys(server, &unsigned).is_err());
    }
}
