//! Checking the ed25519 signatures clients put on their keys (sans-I/O: plain JSON in, a
//! verdict out).
//!
//! Device keys are signed by the device's own ed25519 key, one-time keys by the device, the
//! self-signing and user-signing keys by the master key, devices by the self-signing key, and
//! other users' master keys by a user-signing key. Every one of them is the spec's
//! "signing JSON": the canonical JSON of the object without `signatures` and `unsigned`.

use ruma::{CanonicalJsonObject, CanonicalJsonValue, SigningKeyAlgorithm, serde::Base64};
use serde_json::Value;

/// Why a signature does not hold.
#[derive(Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// The object is not a JSON object, or has a value canonical JSON forbids (floats, …).
    NotCanonical,
    /// No signature by `signer` with `key_id` is on the object.
    Missing,
    /// The public key or the signature is not valid unpadded base64 of the right length.
    Malformed,
    /// The signature does not match.
    Invalid,
}

/// Converts a JSON object into canonical JSON, refusing what canonical JSON cannot hold.
pub fn canonical_object(value: &Value) -> Result<CanonicalJsonObject, SignatureError> {
    match CanonicalJsonValue::try_from(value.clone()) {
        Ok(CanonicalJsonValue::Object(object)) => Ok(object),
        _ => Err(SignatureError::NotCanonical),
    }
}

/// The signature `signer` made with `key_id` (`ed25519:<id>`) on `object`, if any.
pub fn signature_of<'a>(object: &'a Value, signer: &str, key_id: &str) -> Option<&'a str> {
    object.get("signatures")?.get(signer)?.get(key_id)?.as_str()
}

/// Verifies that `signer`'s key `key_id` with the public key `public_key` (unpadded base64)
/// signed `object`.
pub fn verify(object: &Value, signer: &str, key_id: &str, public_key: &str) -> Result<(), SignatureError> {
    let signature = signature_of(object, signer, key_id).ok_or(SignatureError::Missing)?;
    let canonical = canonical_object(object)?;
    let message = ruma::signatures::to_canonical_json_string_for_signing(&canonical).map_err(|_| SignatureError::NotCanonical)?;
    let public_key = Base64::<ruma::serde::base64::Standard>::parse(public_key).map_err(|_| SignatureError::Malformed)?;
    let signature = Base64::<ruma::serde::base64::Standard>::parse(signature).map_err(|_| SignatureError::Malformed)?;
    ruma::signatures::verify_canonical_json_bytes(&SigningKeyAlgorithm::Ed25519, public_key.as_bytes(), signature.as_bytes(), message.as_bytes())
        .map_err(|_| SignatureError::Invalid)
}

/// The single ed25519 public key of a cross-signing key object, with its key ID.
pub fn cross_signing_public_key(key: &Value) -> Option<(String, String)> {
    let keys = key.get("keys")?.as_object()?;
    if keys.len() != 1 {
        return None;
    }
    let (key_id, public_key) = keys.iter().next()?;
    let public_key = public_key.as_str()?;
    (key_id.strip_prefix("ed25519:")? == public_key).then(|| (key_id.clone(), public_key.to_owned()))
}

/// The object without its signatures (and `unsigned`): what two uploads of the same key
/// must agree on.
pub fn unsigned_part(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("signatures");
        map.remove("unsigned");
    }
    object
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};
    use serde_json::json;

    use super::*;

    fn b64(bytes: &[u8]) -> String {
        Base64::<ruma::serde::base64::Standard, _>::new(bytes.to_vec()).encode()
    }

    fn signed(key: &SigningKey, mut object: Value, signer: &str, key_id: &str) -> Value {
        let canonical = canonical_object(&object).unwrap();
        let message = ruma::signatures::to_canonical_json_string_for_signing(&canonical).unwrap();
        let signature = b64(&key.sign(message.as_bytes()).to_bytes());
        object["signatures"] = json!({ signer: { key_id: signature } });
        object
    }

    #[test]
    fn a_device_self_signature_verifies_and_tampering_breaks_it() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = b64(key.verifying_key().as_bytes());
        let device = json!({
            "user_id": "@a:x", "device_id": "DEV", "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
            "keys": { "ed25519:DEV": public, "curve25519:DEV": "abc" },
            "unsigned": { "device_display_name": "ignored by the signature" },
        });
        let device = signed(&key, device, "@a:x", "ed25519:DEV");
        assert_eq!(verify(&device, "@a:x", "ed25519:DEV", &public), Ok(()));
        assert_eq!(verify(&device, "@a:x", "ed25519:OTHER", &public), Err(SignatureError::Missing));
        let mut tampered = device.clone();
        tampered["keys"]["curve25519:DEV"] = json!("abd");
        assert_eq!(verify(&tampered, "@a:x", "ed25519:DEV", &public), Err(SignatureError::Invalid));
        assert_eq!(verify(&device, "@a:x", "ed25519:DEV", "not base64!"), Err(SignatureError::Malformed));
    }

    #[test]
    fn cross_signing_keys_name_their_one_public_key() {
        assert_eq!(
            cross_signing_public_key(&json!({"keys": {"ed25519:abc": "abc"}})),
            Some(("ed25519:abc".to_owned(), "abc".to_owned()))
        );
        assert_eq!(cross_signing_public_key(&json!({"keys": {"ed25519:abc": "abd"}})), None);
        assert_eq!(cross_signing_public_key(&json!({"keys": {"ed25519:a": "a", "ed25519:b": "b"}})), None);
    }
}
