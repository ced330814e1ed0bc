use std::collections::BTreeMap;

use ruma::{
    api::federation::authentication::XMatrixSigningInput,
    serde::{Base64, base64::Standard},
    server_name,
};
use serde_json::json;

use super::*;
use crate::keys::{to_canonical_object, verify_json};

const TXN_URI: &str = "/_matrix/federation/v1/send/1700000000000?x=1%202";

fn key() -> ServerSigningKey {
    ServerSigningKey::generate().unwrap()
}

fn public_key(key: &ServerSigningKey) -> Vec<u8> {
    Base64::<Standard, Vec<u8>>::parse(key.public_key_base64()).unwrap().into_inner()
}

fn txn_body() -> CanonicalJsonObject {
    to_canonical_object(&json!({
        "origin": "origin.example",
        "origin_server_ts": 1_700_000_000_000u64,
        "pdus": [],
        "edus": [{"edu_type": "m.typing", "content": {"typing": true}}],
    }))
    .unwrap()
}

fn body_bytes(body: &CanonicalJsonObject) -> Vec<u8> {
    serde_json::to_vec(body).unwrap()
}

/// Signs, then parses the header back as a receiving server would.
fn signed(
    key: &ServerSigningKey,
    method: &Method,
    uri: &str,
    body: Option<&CanonicalJsonObject>,
) -> XMatrix {
    let header = sign_request(
        key,
        server_name!("origin.example"),
        server_name!("dest.example"),
        method,
        uri,
        body,
    )
    .unwrap();
    parse_authorization(&header).unwrap()
}

fn verify(
    auth: &XMatrix,
    our_name: &ServerName,
    method: &Method,
    uri: &str,
    body: Option<&[u8]>,
    key: &ServerSigningKey,
) -> Result<()> {
    verify_request(auth, our_name, method, uri, body, &public_key(key))
}

fn assert_unauthorized(result: Result<impl std::fmt::Debug>, needle: &str) {
    match result {
        Err(Error::Unauthorized(message)) => {
            assert!(message.contains(needle), "{message:?} does not mention {needle:?}")
        }
        other => panic!("expected Unauthorized({needle:?}), got {other:?}"),
    }
}

#[test]
fn header_has_the_spec_shape() {
    let key = key();
    let header = sign_request(
        &key,
        server_name!("origin.example"),
        server_name!("dest.example:8448"),
        &Method::GET,
        "/_matrix/federation/v1/version",
        None,
    )
    .unwrap();
    let text = header.to_str().unwrap();
    assert!(text.starts_with("X-Matrix "), "{text}");
    assert!(!text.starts_with("X-Matrix  "), "one space after the scheme: {text}");
    assert!(text.contains("origin=origin.example"), "{text}");
    assert!(text.contains("destination=\"dest.example:8448\""), "{text}");
    assert!(text.contains(&format!("key=\"{}\"", key.key_id())), "{text}");
    assert!(!text.contains(", ") && !text.contains('\\'), "compatible with old parsers: {text}");

    let auth = parse_authorization(&header).unwrap();
    assert_eq!(auth.origin, "origin.example");
    assert_eq!(auth.destination.as_deref().map(ServerName::as_str), Some("dest.example:8448"));
    assert_eq!(auth.key.as_str(), key.key_id());
    assert_eq!(auth.sig.as_bytes().len(), 64, "an ed25519 signature");
}

#[test]
fn get_without_body_round_trips() {
    let key = key();
    let auth = signed(&key, &Method::GET, "/_matrix/federation/v1/version", None);
    let dest = server_name!("dest.example");
    verify(&auth, dest, &Method::GET, "/_matrix/federation/v1/version", None, &key).unwrap();
    // An empty body is no body.
    verify(&auth, dest, &Method::GET, "/_matrix/federation/v1/version", Some(b""), &key).unwrap();
}

#[test]
fn put_with_body_round_trips() {
    let key = key();
    let body = txn_body();
    let auth = signed(&key, &Method::PUT, TXN_URI, Some(&body));
    let dest = server_name!("dest.example");
    verify(&auth, dest, &Method::PUT, TXN_URI, Some(&body_bytes(&body)), &key).unwrap();

    // The receiver sees the body as the sender wrote it, not canonicalised: whitespace and key
    // order do not matter.
    let pretty = serde_json::to_vec_pretty(&json!({
        "pdus": [],
        "origin_server_ts": 1_700_000_000_000u64,
        "edus": [{"content": {"typing": true}, "edu_type": "m.typing"}],
        "origin": "origin.example",
    }))
    .unwrap();
    verify(&auth, dest, &Method::PUT, TXN_URI, Some(&pretty), &key).unwrap();
}

#[test]
fn tampering_with_any_signed_part_fails() {
    let key = key();
    let body = txn_body();
    let bytes = body_bytes(&body);
    let auth = signed(&key, &Method::PUT, TXN_URI, Some(&body));
    let dest = server_name!("dest.example");

    let mut other_body = body.clone();
    other_body.insert("origin_server_ts".into(), CanonicalJsonValue::Integer(1.into()));
    let other_bytes = body_bytes(&other_body);

    let cases: [(&str, &Method, &str, Option<&[u8]>); 6] = [
        ("method", &Method::POST, TXN_URI, Some(&bytes)),
        (
            "uri path",
            &Method::PUT,
            "/_matrix/federation/v1/send/1700000000001?x=1%202",
            Some(&bytes),
        ),
        (
            "uri query",
            &Method::PUT,
            "/_matrix/federation/v1/send/1700000000000?x=1+2",
            Some(&bytes),
        ),
        (
            "uri query dropped",
            &Method::PUT,
            "/_matrix/federation/v1/send/1700000000000",
            Some(&bytes),
        ),
        ("body changed", &Method::PUT, TXN_URI, Some(&other_bytes)),
        ("body dropped", &Method::PUT, TXN_URI, None),
    ];
    for (what, method, uri, body) in cases {
        let result = verify(&auth, dest, method, uri, body, &key);
        assert!(matches!(result, Err(Error::Unauthorized(_))), "{what}: {result:?}");
    }

    // A body added to a request signed without one.
    let auth = signed(&key, &Method::GET, "/_matrix/federation/v1/version", None);
    assert_unauthorized(
        verify(&auth, dest, &Method::GET, "/_matrix/federation/v1/version", Some(b"{}"), &key),
        "signature",
    );
}

#[test]
fn a_different_origin_or_destination_fails() {
    let key = key();
    let auth = signed(&key, &Method::GET, "/_matrix/federation/v1/version", None);
    let uri = "/_matrix/federation/v1/version";

    // The header names another server than us: refused before any cryptography.
    assert_unauthorized(
        verify(&auth, server_name!("other.example"), &Method::GET, uri, None, &key),
        "this server is other.example",
    );

    // Someone claims another origin with the same signature.
    let mut forged = auth.clone();
    forged.origin = server_name!("evil.example").to_owned();
    assert_unauthorized(
        verify(&forged, server_name!("dest.example"), &Method::GET, uri, None, &key),
        "signature",
    );

    // The destination stripped off (as an old server would send it) and replayed to another
    // server: that server's name is in the object it checks, so the signature fails there.
    let mut replayed = auth.clone();
    replayed.destination = None;
    verify(&replayed, server_name!("dest.example"), &Method::GET, uri, None, &key).unwrap();
    assert_unauthorized(
        verify(&replayed, server_name!("other.example"), &Method::GET, uri, None, &key),
        "signature",
    );
}

#[test]
fn a_wrong_or_malformed_key_fails() {
    let key = key();
    let auth = signed(&key, &Method::GET, "/_matrix/federation/v1/version", None);
    let dest = server_name!("dest.example");
    let uri = "/_matrix/federation/v1/version";

    assert_unauthorized(verify(&auth, dest, &Method::GET, uri, None, &self::key()), "invalid");
    assert_unauthorized(
        verify_request(&auth, dest, &Method::GET, uri, None, &[1, 2, 3]),
        "invalid",
    );

    let mut curve = auth.clone();
    curve.key = "curve25519:abc".try_into().unwrap();
    assert_unauthorized(
        verify(&curve, dest, &Method::GET, uri, None, &key),
        "unsupported key algorithm",
    );

    let mut bad_sig = auth;
    bad_sig.sig = Base64::new(vec![0; 64]);
    assert_unauthorized(verify(&bad_sig, dest, &Method::GET, uri, None, &key), "signature");
}

#[test]
fn a_body_that_is_not_canonical_json_is_refused() {
    let key = key();
    let auth = signed(&key, &Method::PUT, TXN_URI, Some(&txn_body()));
    let dest = server_name!("dest.example");
    for body in [&b"not json"[..], b"{\"a\":", b"{\"a\": 1.5}", b"{\"a\": 9007199254740992}"] {
        assert_unauthorized(
            verify(&auth, dest, &Method::PUT, TXN_URI, Some(body), &key),
            "not canonical JSON",
        );
    }
}

/// The object in the spec, written out by hand: what `sign_request` signed must be exactly it,
/// so the signature from the header verifies as the object's `signatures` entry.
#[test]
fn the_signed_object_is_the_one_in_the_spec() {
    let key = key();
    let body = json!({"membership": "join", "nested": {"b": [1, "two"], "a": null}});
    let auth =
        signed(&key, &Method::POST, "/target?q=1", Some(&to_canonical_object(&body).unwrap()));

    let by_hand = json!({
        "method": "POST",
        "uri": "/target?q=1",
        "origin": "origin.example",
        "destination": "dest.example",
        "content": body,
        "signatures": {
            "origin.example": { auth.key.as_str(): auth.sig.encode() }
        }
    });
    let keys = BTreeMap::from([(
        "origin.example".to_owned(),
        BTreeMap::from([(key.key_id(), Base64::parse(key.public_key_base64()).unwrap())]),
    )]);
    verify_json(&keys, &to_canonical_object(&by_hand).unwrap()).unwrap();

    // Without the body the object has no `content` at all (not `"content": null`).
    let auth = signed(&key, &Method::GET, "/target", None);
    let by_hand = json!({
        "method": "GET",
        "uri": "/target",
        "origin": "origin.example",
        "destination": "dest.example",
        "signatures": { "origin.example": { auth.key.as_str(): auth.sig.encode() } }
    });
    verify_json(&keys, &to_canonical_object(&by_hand).unwrap()).unwrap();
}

/// ruma's own request signing and verification agree with ours in both directions.
#[test]
fn interoperates_with_rumas_http_request_signing() {
    let key = key();
    let body = txn_body();
    let request = http::Request::builder()
        .method(Method::PUT)
        .uri(format!("https://dest.example{TXN_URI}"))
        .body(body_bytes(&body))
        .unwrap();
    let keys = BTreeMap::from([(
        "origin.example".to_owned(),
        BTreeMap::from([(key.key_id(), Base64::parse(key.public_key_base64()).unwrap())]),
    )]);

    let ours = signed(&key, &Method::PUT, TXN_URI, Some(&body));
    ours.verify_http_request(&request, server_name!("dest.example"), &keys).unwrap();

    let input = XMatrixSigningInput::new(
        server_name!("origin.example").to_owned(),
        server_name!("dest.example").to_owned(),
        key.key_pair(),
    );
    let theirs = XMatrix::sign_http_request(&request, input).unwrap();
    let theirs = parse_authorization(&HeaderValue::from(&theirs)).unwrap();
    let bytes = body_bytes(&body);
    verify(&theirs, server_name!("dest.example"), &Method::PUT, TXN_URI, Some(&bytes), &key)
        .unwrap();
    assert_eq!(theirs.sig, ours.sig, "ed25519 is deterministic: same object, same signature");
}

#[test]
fn header_variants_parse() {
    // sig "dGVzdA" is base64 of "test".
    let cases = [
        r#"X-Matrix origin="hs1",destination="hs2",key="ed25519:a",sig="dGVzdA""#,
        r#"X-Matrix origin=hs1,destination=hs2,key="ed25519:a",sig=dGVzdA"#,
        r#"x-matrix origin=hs1,destination=hs2,key="ed25519:a",sig="dGVzdA""#,
        r#"X-MATRIX ORIGIN=hs1,Destination=hs2,KEY="ed25519:a",Sig="dGVzdA""#,
        r#"X-Matrix sig="dGVzdA",key="ed25519:a",destination="hs2",origin="hs1""#,
        "X-Matrix   origin=hs1 ,\tdestination=hs2 , key=\"ed25519:a\",  sig=\"dGVzdA\"",
        r#"X-Matrix origin="h\s1",destination="hs2",key="ed25519:a",sig="dGVzdA==""#,
        r#"X-Matrix origin=hs1,destination=hs2,key="ed25519:a",sig="dGVzdA",unknown="x, y""#,
        r#"X-Matrix origin=hs1,destination=hs2,key="ed25519:a",sig=dGVzdA,"#,
        // Old servers: colons (and base64 padding) without quotes.
        r#"X-Matrix origin=hs1,destination=hs2,key=ed25519:a,sig=dGVzdA=="#,
        r#"X-Matrix origin=hs1,destination=hs2,key=ed25519:a,sig="dGVzdA",x="a,b""#,
        "X-Matrix origin=hs1 , destination=hs2 ,key=ed25519:a , sig=dGVzdA",
    ];
    for case in cases {
        let auth = parse_authorization(&HeaderValue::from_static(case))
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(auth.origin, "hs1", "{case}");
        assert_eq!(auth.destination.as_deref().map(ServerName::as_str), Some("hs2"), "{case}");
        assert_eq!(auth.key, "ed25519:a", "{case}");
        assert_eq!(auth.sig.as_bytes(), b"test", "{case}");
    }
}

#[test]
fn header_variants_with_ports_and_no_destination_parse() {
    let cases = [
        (r#"X-Matrix origin=hs1,key="ed25519:a",sig="dGVzdA""#, "hs1", None),
        (r#"X-Matrix origin="hs1:8448",key="ed25519:a",sig="dGVzdA""#, "hs1:8448", None),
        (
            "X-Matrix origin=hs1:8448,destination=hs2:443,key=ed25519:a,sig=dGVzdA",
            "hs1:8448",
            Some("hs2:443"),
        ),
        ("X-Matrix origin=[::1]:8448,key=ed25519:a,sig=dGVzdA", "[::1]:8448", None),
        (
            r#"X-Matrix origin="1.2.3.4",destination="[2001:db8::1]",key="ed25519:a",sig="dGVzdA""#,
            "1.2.3.4",
            Some("[2001:db8::1]"),
        ),
    ];
    for (case, origin, destination) in cases {
        let auth = parse_authorization(&HeaderValue::from_static(case))
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(auth.origin, origin, "{case}");
        assert_eq!(auth.destination.as_deref().map(ServerName::as_str), destination, "{case}");
    }
}

#[test]
fn broken_headers_are_unauthorized() {
    let cases = [
        ("", "invalid X-Matrix header"),
        ("Bearer abc", ""),
        (r#"Bearer token="abc""#, "not found"),
        (r#"X-Matrix key="ed25519:a",sig="dGVzdA""#, "missing parameter 'origin'"),
        (r#"X-Matrix origin=hs1,sig="dGVzdA""#, "missing parameter 'key'"),
        (r#"X-Matrix origin=hs1,key="ed25519:a""#, "missing parameter 'sig'"),
        (
            r#"X-Matrix origin=hs1,origin=hs2,key="ed25519:a",sig="dGVzdA""#,
            "duplicate parameter 'origin'",
        ),
        (r#"X-Matrix origin="not a name",key="ed25519:a",sig="dGVzdA""#, ""),
        (r#"X-Matrix origin=hs1,key="ed25519:a",sig="!!notbase64""#, ""),
        (r#"X-Matrix origin=hs1,key="nocolon",sig="dGVzdA""#, ""),
        (r#"X-Matrix origin="hs1,key="ed25519:a",sig="dGVzdA""#, ""),
        ("X-Matrix origin=hs 1,key=ed25519:a,sig=dGVzdA", ""),
        ("X-Matrix", ""),
        ("X-Matrixorigin=hs1,key=ed25519:a,sig=dGVzdA", ""),
        // Bare values fixed up, then the real problem is reported.
        ("X-Matrix origin=hs1:8448,key=ed25519:a", "missing parameter 'sig'"),
    ];
    for (case, needle) in cases {
        let result = parse_authorization(&HeaderValue::from_static(case));
        assert!(matches!(result, Err(Error::Unauthorized(_))), "{case}: {result:?}");
        assert_unauthorized(result, needle);
    }

    let not_ascii = HeaderValue::from_bytes("X-Matrix origin=hé".as_bytes()).unwrap();
    assert_unauthorized(parse_authorization(&not_ascii), "not visible ASCII");
}

#[test]
fn bare_values_are_quoted_only_when_needed() {
    let cases = [
        ("X-Matrix origin=hs1,key=ed25519:a", Some(r#"X-Matrix origin=hs1,key="ed25519:a""#)),
        (r#"x-matrix  a="x,\"y",b=c"#, Some(r#"X-Matrix a="x,\"y",b=c"#)),
        ("X-Matrix a=b:c , ", Some(r#"X-Matrix a="b:c""#)),
        ("Bearer a=b:c", None),
        ("X-Matrix a", None),
        ("X-Matrix =b", None),
        ("X-Matrix a=", None),
        (r#"X-Matrix a="unterminated"#, None),
        ("X-Matrix a=b c", None),
    ];
    for (input, expected) in cases {
        assert_eq!(quote_bare_values(input).as_deref(), expected, "{input}");
    }
}
