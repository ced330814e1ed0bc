use std::collections::BTreeMap;

use ruma::{
    CanonicalJsonValue,
    serde::{Base64, base64::Standard},
};

use super::*;

fn public_key_map(server: &str, key: &ServerSigningKey) -> PublicKeyMap {
    let mut set = BTreeMap::new();
    set.insert(key.key_id(), Base64::<Standard, Vec<u8>>::parse(key.public_key_base64()).unwrap());
    BTreeMap::from([(server.to_owned(), set)])
}

#[test]
fn generated_key_survives_a_pkcs8_round_trip() {
    let key = ServerSigningKey::generate().unwrap();
    assert!(key.key_id().starts_with("ed25519:a_"));
    let again = ServerSigningKey::from_pkcs8(key.pkcs8(), key.version().to_owned()).unwrap();
    assert_eq!(again.public_key_base64(), key.public_key_base64());
    assert_eq!(again.key_id(), key.key_id());
}

#[test]
fn garbage_is_not_a_key() {
    assert!(matches!(
        ServerSigningKey::from_pkcs8(b"not a key", "x".into()),
        Err(Error::InvalidKey(_))
    ));
}

#[test]
fn signed_json_verifies_and_tampering_breaks_it() {
    let key = ServerSigningKey::generate().unwrap();
    let mut object = to_canonical_object(&serde_json::json!({"b": 1, "a": "x"})).unwrap();
    key.sign_json("example.org", &mut object).unwrap();
    verify_json(&public_key_map("example.org", &key), &object).unwrap();

    object.insert("a".into(), CanonicalJsonValue::String("y".into()));
    assert!(verify_json(&public_key_map("example.org", &key), &object).is_err());
}

#[test]
fn server_key_response_is_self_signed_with_the_published_key() {
    let key = ServerSigningKey::generate().unwrap();
    let response = key.server_key_response("hs.test", 4_000_000_000_000).unwrap();
    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(json["server_name"], "hs.test");
    assert_eq!(json["valid_until_ts"], 4_000_000_000_000u64);
    assert_eq!(json["verify_keys"][key.key_id()]["key"], key.public_key_base64());
    assert!(json["signatures"]["hs.test"][key.key_id()].is_string());
    verify_json(&public_key_map("hs.test", &key), &response).unwrap();
}

#[test]
fn debug_output_hides_the_private_key() {
    let key = ServerSigningKey::generate().unwrap();
    let debug = format!("{key:?}");
    assert!(debug.contains(&key.key_id()));
    assert!(!debug.contains(&format!("{:?}", key.pkcs8())));
}
