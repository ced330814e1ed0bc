//! The server's ed25519 signing key and canonical-JSON signing.
//!
//! The key is generated once and persisted by the homeserver as its PKCS#8 document; this module
//! never touches storage, so the same code serves the key server, PDU signing and X-Matrix.

use std::collections::BTreeMap;

use rand::{Rng, distributions::Alphanumeric};
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue,
    serde::{Base64, base64::Standard},
    signatures::{self, Ed25519KeyPair, KeyPair, PublicKeyMap},
};
use serde::Serialize;

use crate::{Error, Result};

/// The server's signing key: an ed25519 pair plus its version (the part after `ed25519:`).
pub struct ServerSigningKey {
    pair: Ed25519KeyPair,
    pkcs8: Vec<u8>,
}

impl std::fmt::Debug for ServerSigningKey {
    // The private half must never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSigningKey").field("key_id", &self.key_id()).finish_non_exhaustive()
    }
}

impl ServerSigningKey {
    /// Generates a fresh key with a random version such as `a_Xk3f`, as Synapse names its keys.
    pub fn generate() -> Result<Self> {
        let document = Ed25519KeyPair::generate();
        let suffix: String =
            rand::thread_rng().sample_iter(&Alphanumeric).take(4).map(char::from).collect();
        Self::from_pkcs8(&document, format!("a_{suffix}"))
    }

    /// Rebuilds a key from the PKCS#8 document that [`Self::pkcs8`] returned.
    pub fn from_pkcs8(document: &[u8], version: String) -> Result<Self> {
        let pair = Ed25519KeyPair::from_der(document, version)
            .map_err(|e| Error::InvalidKey(e.to_string()))?;
        Ok(Self { pair, pkcs8: document.to_vec() })
    }

    /// The PKCS#8 document to persist. Treat it as a secret.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    pub fn version(&self) -> &str {
        self.pair.version()
    }

    /// The key ID as it appears in signatures, e.g. `ed25519:a_Xk3f`.
    pub fn key_id(&self) -> String {
        format!("ed25519:{}", self.pair.version())
    }

    /// The public key in unpadded standard base64, as the key server publishes it.
    pub fn public_key_base64(&self) -> String {
        Base64::<Standard, _>::new(self.pair.public_key().to_vec()).encode()
    }

    /// Adds this server's signature to `object` (existing signatures are kept).
    pub fn sign_json(&self, server_name: &str, object: &mut CanonicalJsonObject) -> Result<()> {
        signatures::sign_json(server_name, &self.pair, object).map_err(|e| Error::Json(e.to_string()))
    }

    /// The ed25519 pair itself, for ruma's event hashing and signing and its X-Matrix
    /// request signing.
    pub fn key_pair(&self) -> &Ed25519KeyPair {
        &self.pair
    }

    /// Signs arbitrary bytes; X-Matrix request signing builds its own canonical message.
    pub fn sign_bytes(&self, message: &[u8]) -> String {
        self.pair.sign(message).base64()
    }

    /// The signed body of `GET /_matrix/key/v2/server`.
    pub fn server_key_response(
        &self,
        server_name: &str,
        valid_until_ts: u64,
    ) -> Result<CanonicalJsonObject> {
        let response = ServerKeyResponse {
            server_name: server_name.to_owned(),
            valid_until_ts,
            verify_keys: BTreeMap::from([(
                self.key_id(),
                VerifyKey { key: self.public_key_base64() },
            )]),
            old_verify_keys: BTreeMap::new(),
        };
        let mut object = to_canonical_object(&response)?;
        self.sign_json(server_name, &mut object)?;
        Ok(object)
    }
}

/// The body the key server publishes, before signing.
#[derive(Debug, Serialize)]
pub struct ServerKeyResponse {
    pub server_name: String,
    pub valid_until_ts: u64,
    pub verify_keys: BTreeMap<String, VerifyKey>,
    pub old_verify_keys: BTreeMap<String, VerifyKey>,
}

#[derive(Debug, Serialize)]
pub struct VerifyKey {
    pub key: String,
}

/// Converts any serialisable value into a canonical JSON object.
pub fn to_canonical_object<T: Serialize>(value: &T) -> Result<CanonicalJsonObject> {
    let json = serde_json::to_value(value).map_err(|e| Error::Json(e.to_string()))?;
    match CanonicalJsonValue::try_from(json).map_err(|e| Error::Json(e.to_string()))? {
        CanonicalJsonValue::Object(object) => Ok(object),
        _ => Err(Error::Json("expected a JSON object".to_owned())),
    }
}

/// Verifies that every entity that signed `object` did so with a key in `keys`.
pub fn verify_json(keys: &PublicKeyMap, object: &CanonicalJsonObject) -> Result<()> {
    signatures::verify_json(keys, object).map_err(|e| Error::Verification(e.to_string()))
}

#[cfg(test)]
mod tests;
