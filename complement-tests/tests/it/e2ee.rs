//! End-to-end encryption support, endpoint by endpoint: device keys, one-time and fallback
//! keys, cross-signing and signatures, device-list changes, to-device messages and key
//! backup. The keys are real ed25519 keys signed here, independently of the server's code.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use complement_tests::*;
use ed25519_dalek::{Signer, SigningKey};

use crate::room_support::*;

const KEYS: &str = "/_matrix/client/v3/keys";

/// An ed25519 key made from a seed, so each test's keys differ and stay reproducible.
fn key_pair(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn public_of(key: &SigningKey) -> String {
    STANDARD_NO_PAD.encode(key.verifying_key().as_bytes())
}

/// Signs `object` (its canonical JSON without `signatures` and `unsigned`) as `signer`'s key
/// `key_id`, keeping the signatures already there.
fn sign(mut object: Value, key: &SigningKey, signer: &str, key_id: &str) -> Value {
    let mut unsigned = object.clone();
    if let Some(map) = unsigned.as_object_mut() {
        map.remove("signatures");
        map.remove("unsigned");
    }
    let signature = STANDARD_NO_PAD.encode(key.sign(canonical_json(&unsigned).as_bytes()).to_bytes());
    if !object["signatures"].is_object() {
        object["signatures"] = json!({});
    }
    if !object["signatures"][signer].is_object() {
        object["signatures"][signer] = json!({});
    }
    object["signatures"][signer][key_id] = json!(signature);
    object
}

fn device_keys(session: &Session, key: &SigningKey) -> Value {
    let device = &session.device_id;
    let keys = json!({
        "user_id": session.user_id, "device_id": device,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": { format!("ed25519:{device}"): public_of(key), format!("curve25519:{device}"): format!("curve-{device}") },
    });
    sign(keys, key, &session.user_id, &format!("ed25519:{device}"))
}

fn one_time_keys(session: &Session, key: &SigningKey, names: impl IntoIterator<Item = String>) -> Value {
    let mut keys = json!({});
    for name in names {
        let signed = sign(json!({ "key": format!("otk-{name}") }), key, &session.user_id, &format!("ed25519:{}", session.device_id));
        keys[format!("signed_curve25519:{name}")] = signed;
    }
    keys
}

fn fallback_key(session: &Session, key: &SigningKey, name: &str) -> Value {
    let signed = sign(json!({ "key": format!("fallback-{name}"), "fallback": true }), key, &session.user_id, &format!("ed25519:{}", session.device_id));
    json!({ format!("signed_curve25519:{name}"): signed })
}

async fn upload(server: &impl HttpPeer, session: &Session, body: Value) -> Resp {
    server.post(&format!("{KEYS}/upload"), session, &body).await
}

async fn query(server: &impl HttpPeer, session: &Session, user: &str) -> Value {
    server.post(&format!("{KEYS}/query"), session, &json!({ "device_keys": { user: [] } })).await.ok().clone()
}

async fn claim(server: &impl HttpPeer, session: &Session, user: &str, device: &str) -> Value {
    let body = json!({ "one_time_keys": { user: { device: "signed_curve25519" } } });
    server.post(&format!("{KEYS}/claim"), session, &body).await.ok().clone()
}

/// The one key a claim handed out for `user`'s `device`, as (key ID, key).
fn claimed_key(answer: &Value, user: &str, device: &str) -> Option<(String, Value)> {
    let keys = answer["one_time_keys"][user][device].as_object()?;
    keys.iter().next().map(|(id, key)| (id.clone(), key.clone()))
}

fn changed(sync: &Value) -> Vec<String> {
    sync["device_lists"]["changed"].as_array().into_iter().flatten().filter_map(|u| u.as_str().map(str::to_owned)).collect()
}

fn left(sync: &Value) -> Vec<String> {
    sync["device_lists"]["left"].as_array().into_iter().flatten().filter_map(|u| u.as_str().map(str::to_owned)).collect()
}

#[tokio::test]
async fn device_keys_are_checked_stored_and_queried() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let key = key_pair(1);

    // Clients learn to upload keys from sync, so the counts are there from the start.
    let initial = sync(&server, &alice, "timeout=0").await;
    assert_eq!(initial["device_one_time_keys_count"], json!({"signed_curve25519": 0}), "{initial}");
    assert_eq!(initial["device_unused_fallback_key_types"], json!([]), "{initial}");

    // Keys for another device, another user, or with a broken self-signature are refused.
    let mut other_device = device_keys(&alice, &key);
    other_device["device_id"] = json!("SOMEONEELSE");
    assert_matrix_error(&upload(&server, &alice, json!({"device_keys": other_device})).await, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    assert_matrix_error(&upload(&server, &bob, json!({"device_keys": device_keys(&alice, &key)})).await, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let mut forged = device_keys(&alice, &key);
    forged["keys"][format!("curve25519:{}", alice.device_id)] = json!("swapped");
    assert_matrix_error(&upload(&server, &alice, json!({"device_keys": forged})).await, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    assert_matrix_error(&upload(&server, &alice, json!({"device_keys": {"user_id": 5}})).await, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    // A one-time key signed by another key is refused too.
    let bad_otks = one_time_keys(&alice, &key_pair(99), ["X".to_owned()]);
    assert_matrix_error(
        &upload(&server, &alice, json!({"device_keys": device_keys(&alice, &key), "one_time_keys": bad_otks})).await,
        StatusCode::BAD_REQUEST,
        "M_INVALID_PARAM",
    );

    let answer = upload(&server, &alice, json!({
        "device_keys": device_keys(&alice, &key),
        "one_time_keys": one_time_keys(&alice, &key, (0..5).map(|i| format!("K{i}"))),
        "fallback_keys": fallback_key(&alice, &key, "F1"),
    }))
    .await;
    assert_eq!(answer.ok()["one_time_key_counts"]["signed_curve25519"], 5, "{}", answer.text);
    // The same one-time key again is harmless; another key under the same ID is refused.
    let again = upload(&server, &alice, json!({"one_time_keys": one_time_keys(&alice, &key, ["K0".to_owned()])})).await;
    assert_eq!(again.ok()["one_time_key_counts"]["signed_curve25519"], 5);
    let mut clash = one_time_keys(&alice, &key, ["K0".to_owned()]);
    clash["signed_curve25519:K0"] = sign(json!({"key": "other"}), &key, &alice.user_id, &format!("ed25519:{}", alice.device_id));
    assert_matrix_error(&upload(&server, &alice, json!({"one_time_keys": clash})).await, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");

    let synced = sync(&server, &alice, "timeout=0").await;
    assert_eq!(synced["device_one_time_keys_count"]["signed_curve25519"], 5, "{synced}");
    assert_eq!(synced["device_unused_fallback_key_types"], json!(["signed_curve25519"]), "{synced}");

    // Bob sees Alice's device keys as she signed them, with the device's display name.
    let seen = query(&server, &bob, &alice.user_id).await;
    let device = &seen["device_keys"][&alice.user_id][&alice.device_id];
    assert_eq!(device["keys"], device_keys(&alice, &key)["keys"], "{seen}");
    assert_eq!(device["signatures"], device_keys(&alice, &key)["signatures"], "{seen}");
    assert!(device["unsigned"]["device_display_name"].is_string() || device["unsigned"].is_null(), "{seen}");
    // A user without keys is answered with no devices, not an error.
    let carol = server.register("carol", "pw").await;
    assert_eq!(query(&server, &bob, &carol.user_id).await["device_keys"][&carol.user_id], json!({}));
    // A remote server that cannot be reached is a failure, not an error.
    let remote = server.post(&format!("{KEYS}/query"), &bob, &json!({"device_keys": {"@x:unreachable.invalid": []}, "timeout": 2000})).await;
    assert!(remote.ok()["failures"]["unreachable.invalid"].is_object(), "{}", remote.text);
}

#[tokio::test]
async fn each_one_time_key_is_claimed_once_even_under_concurrent_claims() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let key = key_pair(2);
    upload(&server, &alice, json!({
        "device_keys": device_keys(&alice, &key),
        "one_time_keys": one_time_keys(&alice, &key, (0..10).map(|i| format!("K{i}"))),
        "fallback_keys": fallback_key(&alice, &key, "F1"),
    }))
    .await
    .ok();

    let claims = (0..20).map(|_| claim(&server, &bob, &alice.user_id, &alice.device_id));
    let answers = futures::future::join_all(claims).await;
    let mut one_time = Vec::new();
    let mut fallback = 0;
    for answer in &answers {
        let (id, key) = claimed_key(answer, &alice.user_id, &alice.device_id).unwrap_or_else(|| panic!("no key claimed: {answer}"));
        if id == "signed_curve25519:F1" {
            assert_eq!(key["fallback"], true, "{key}");
            fallback += 1;
        } else {
            one_time.push(id);
        }
    }
    let distinct: HashSet<&String> = one_time.iter().collect();
    assert_eq!(one_time.len(), 10, "every one-time key handed out once: {one_time:?}");
    assert_eq!(distinct.len(), 10, "no one-time key handed out twice: {one_time:?}");
    assert_eq!(fallback, 10);

    // The fallback key is now used: sync says so, until a new one is uploaded.
    let synced = sync(&server, &alice, "timeout=0").await;
    assert_eq!(synced["device_one_time_keys_count"]["signed_curve25519"], 0, "{synced}");
    assert_eq!(synced["device_unused_fallback_key_types"], json!([]), "{synced}");
    upload(&server, &alice, json!({"fallback_keys": fallback_key(&alice, &key, "F2")})).await.ok();
    let synced = sync(&server, &alice, "timeout=0").await;
    assert_eq!(synced["device_unused_fallback_key_types"], json!(["signed_curve25519"]), "{synced}");
    let answer = claim(&server, &bob, &alice.user_id, &alice.device_id).await;
    assert_eq!(claimed_key(&answer, &alice.user_id, &alice.device_id).map(|(id, _)| id), Some("signed_curve25519:F2".to_owned()));
    // Older clients name fallback keys by their unstable name (MSC2732).
    upload(&server, &alice, json!({"org.matrix.msc2732.fallback_keys": fallback_key(&alice, &key, "F3")})).await.ok();
    let synced = sync(&server, &alice, "timeout=0").await;
    assert_eq!(synced["device_unused_fallback_key_types"], json!(["signed_curve25519"]), "{synced}");
    let answer = claim(&server, &bob, &alice.user_id, &alice.device_id).await;
    assert_eq!(claimed_key(&answer, &alice.user_id, &alice.device_id).map(|(id, _)| id), Some("signed_curve25519:F3".to_owned()));

    // Claiming for a device without keys answers nothing for it.
    let none = claim(&server, &alice, &bob.user_id, &bob.device_id).await;
    assert!(claimed_key(&none, &bob.user_id, &bob.device_id).is_none(), "{none}");
}

/// A user's three cross-signing keys, the lower ones signed by the master key.
struct CrossSigning {
    master: SigningKey,
    self_signing: SigningKey,
    user_signing: SigningKey,
}

impl CrossSigning {
    fn new(seed: u8) -> Self {
        Self { master: key_pair(seed), self_signing: key_pair(seed + 1), user_signing: key_pair(seed + 2) }
    }

    fn key(&self, user: &str, usage: &str, key: &SigningKey) -> Value {
        let public = public_of(key);
        let object = json!({ "user_id": user, "usage": [usage], "keys": { format!("ed25519:{public}"): public } });
        if usage == "master" { object } else { sign(object, &self.master, user, &format!("ed25519:{}", public_of(&self.master))) }
    }

    fn upload_body(&self, user: &str) -> Value {
        json!({
            "master_key": self.key(user, "master", &self.master),
            "self_signing_key": self.key(user, "self_signing", &self.self_signing),
            "user_signing_key": self.key(user, "user_signing", &self.user_signing),
        })
    }
}

#[tokio::test]
async fn cross_signing_keys_and_signatures_follow_the_visibility_rules() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let carol = server.register("carol", "pw").await;
    let alice_device_key = key_pair(10);
    upload(&server, &alice, json!({"device_keys": device_keys(&alice, &alice_device_key)})).await.ok();
    let alice_cs = CrossSigning::new(20);
    let bob_cs = CrossSigning::new(30);
    let signing_upload = format!("{KEYS}/device_signing/upload");

    // A self-signing key not signed by the master key is refused.
    let mut unsigned = alice_cs.upload_body(&alice.user_id);
    unsigned["self_signing_key"]["signatures"] = json!({});
    assert_matrix_error(&server.post(&signing_upload, &alice, &unsigned).await, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    // The first upload needs no password; sending the same keys again neither.
    server.post(&signing_upload, &alice, &alice_cs.upload_body(&alice.user_id)).await.ok();
    server.post(&signing_upload, &alice, &alice_cs.upload_body(&alice.user_id)).await.ok();
    server.post(&signing_upload, &bob, &bob_cs.upload_body(&bob.user_id)).await.ok();
    // Replacing keys does.
    let replacement = CrossSigning::new(40);
    let replaced = server.with_password_uia(Method::POST, &signing_upload, &bob, replacement.upload_body(&bob.user_id), "pw").await;
    replaced.ok();
    let bob_cs = replacement;

    // Everyone sees master and self-signing keys; the user-signing key only its owner.
    let by_bob = query(&server, &bob, &alice.user_id).await;
    assert_eq!(by_bob["master_keys"][&alice.user_id]["keys"], alice_cs.key(&alice.user_id, "master", &alice_cs.master)["keys"]);
    assert!(by_bob["self_signing_keys"][&alice.user_id].is_object(), "{by_bob}");
    assert!(by_bob["user_signing_keys"].get(&alice.user_id).is_none(), "{by_bob}");
    let by_alice = query(&server, &alice, &alice.user_id).await;
    assert!(by_alice["user_signing_keys"][&alice.user_id].is_object(), "{by_alice}");

    // Alice signs her device with her self-signing key: everyone sees that signature.
    let ssk_id = format!("ed25519:{}", public_of(&alice_cs.self_signing));
    let signed_device = sign(device_keys(&alice, &alice_device_key), &alice_cs.self_signing, &alice.user_id, &ssk_id);
    let signatures_upload = format!("{KEYS}/signatures/upload");
    let answer = server.post(&signatures_upload, &alice, &json!({ alice.user_id.as_str(): { alice.device_id.as_str(): signed_device } })).await;
    assert_eq!(answer.ok().get("failures").cloned().unwrap_or(json!({})), json!({}), "{}", answer.text);
    let by_carol = query(&server, &carol, &alice.user_id).await;
    assert!(by_carol["device_keys"][&alice.user_id][&alice.device_id]["signatures"][&alice.user_id][&ssk_id].is_string(), "{by_carol}");

    // A forged signature is reported in `failures`, and the rest of the upload still counts.
    let mut forged = sign(device_keys(&alice, &alice_device_key), &key_pair(77), &alice.user_id, &ssk_id);
    forged["signatures"][&alice.user_id][&ssk_id] = json!(STANDARD_NO_PAD.encode([0u8; 64]));
    let answer = server.post(&signatures_upload, &alice, &json!({ alice.user_id.as_str(): { alice.device_id.as_str(): forged } })).await;
    assert_eq!(answer.ok()["failures"][&alice.user_id][&alice.device_id]["errcode"], "M_INVALID_SIGNATURE", "{}", answer.text);

    // Alice verifies Bob: her user-signing key signs his master key. Only Alice sees it.
    let bob_master_public = public_of(&bob_cs.master);
    let usk_id = format!("ed25519:{}", public_of(&alice_cs.user_signing));
    let bob_master = sign(bob_cs.key(&bob.user_id, "master", &bob_cs.master), &alice_cs.user_signing, &alice.user_id, &usk_id);
    let answer = server.post(&signatures_upload, &alice, &json!({ bob.user_id.as_str(): { bob_master_public.as_str(): bob_master } })).await;
    assert_eq!(answer.ok().get("failures").cloned().unwrap_or(json!({})), json!({}), "{}", answer.text);
    let by_alice = query(&server, &alice, &bob.user_id).await;
    assert!(by_alice["master_keys"][&bob.user_id]["signatures"][&alice.user_id][&usk_id].is_string(), "{by_alice}");
    let by_carol = query(&server, &carol, &bob.user_id).await;
    assert!(by_carol["master_keys"][&bob.user_id]["signatures"].get(&alice.user_id).is_none(), "{by_carol}");
    // Signing a key that is not Bob's master key fails for that key.
    let answer = server.post(&signatures_upload, &alice, &json!({ bob.user_id.as_str(): { "notakey": {"keys": {}} } })).await;
    assert_eq!(answer.ok()["failures"][&bob.user_id]["notakey"]["errcode"], "M_NOT_FOUND", "{}", answer.text);
}

#[tokio::test]
async fn device_list_changes_reach_those_who_share_a_room() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let carol = server.register("carol", "pw").await;
    let room = public_room(&server, &alice).await;
    join(&server, &bob, &room).await.ok();
    let bob_token = next_batch(&sync(&server, &bob, "timeout=0").await);
    let carol_token = next_batch(&sync(&server, &carol, "timeout=0").await);

    // Bob's long-poll wakes when Alice uploads keys, and names her.
    let waiting = {
        let url = format!("{}/_matrix/client/v3/sync?timeout=30000&since={bob_token}", server.url());
        let request = server.client().get(url).bearer_auth(&bob.access_token).send();
        tokio::spawn(request)
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    upload(&server, &alice, json!({"device_keys": device_keys(&alice, &key_pair(3))})).await.ok();
    let woken: Value = waiting.await.expect("sync task").expect("sync").json().await.expect("sync body");
    assert!(changed(&woken).contains(&alice.user_id), "{woken}");
    let after_upload = next_batch(&woken);
    let keys_changes = server.get(&format!("{KEYS}/changes?from={bob_token}&to={after_upload}"), &bob).await;
    assert_eq!(keys_changes.ok()["changed"], json!([alice.user_id]), "{}", keys_changes.text);
    // Carol shares no room with Alice and hears nothing.
    let for_carol = sync(&server, &carol, &format!("timeout=0&since={carol_token}")).await;
    assert!(!changed(&for_carol).contains(&alice.user_id), "{for_carol}");

    // Carol joins: Alice learns of her, and she of Alice and Bob.
    let alice_token = next_batch(&sync(&server, &alice, "timeout=0").await);
    join(&server, &carol, &room).await.ok();
    let for_alice = sync(&server, &alice, &format!("timeout=0&since={alice_token}")).await;
    assert!(changed(&for_alice).contains(&carol.user_id), "{for_alice}");
    let for_carol = sync(&server, &carol, &format!("timeout=0&since={carol_token}")).await;
    let carol_changed = changed(&for_carol);
    assert!(carol_changed.contains(&alice.user_id) && carol_changed.contains(&bob.user_id), "{for_carol}");

    // Bob leaves: he shares no room with Alice any more.
    let alice_token = next_batch(&for_alice);
    leave(&server, &bob, &room).await.ok();
    let for_alice = sync(&server, &alice, &format!("timeout=0&since={alice_token}")).await;
    assert_eq!(left(&for_alice), vec![bob.user_id.clone()], "{for_alice}");

    // Alice deletes a device with keys: Carol hears of it, and the keys are gone.
    let second = server.login("alice", "pw").await;
    upload(&server, &second, json!({"device_keys": device_keys(&second, &key_pair(4))})).await.ok();
    let carol_token = next_batch(&sync(&server, &carol, "timeout=0").await);
    let path = format!("/_matrix/client/v3/devices/{}", second.device_id);
    server.with_password_uia(Method::DELETE, &path, &alice, json!({}), "pw").await.ok();
    let for_carol = sync(&server, &carol, &format!("timeout=0&since={carol_token}")).await;
    assert!(changed(&for_carol).contains(&alice.user_id), "{for_carol}");
    let seen = query(&server, &carol, &alice.user_id).await;
    assert!(seen["device_keys"][&alice.user_id].get(&second.device_id).is_none(), "{seen}");
    assert!(seen["device_keys"][&alice.user_id].get(&alice.device_id).is_some(), "{seen}");

    let bad = server.get(&format!("{KEYS}/changes?from=nonsense&to={alice_token}"), &alice).await;
    assert_matrix_error(&bad, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
}

fn to_device_events(sync: &Value) -> Vec<Value> {
    sync["to_device"]["events"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn to_device_messages_survive_a_lost_sync_response() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let bob_phone = server.login("bob", "pw").await;
    let start = next_batch(&sync(&server, &bob, "timeout=0").await);
    let send = |txn: &str, messages: Value| {
        let path = format!("/_matrix/client/v3/sendToDevice/m.room_key_request/{txn}");
        let server = &server;
        let alice = &alice;
        async move { server.put(&path, alice, &json!({ "messages": messages })).await }
    };
    // A transaction retried, even several times at once, is delivered once.
    let retries = (0..5).map(|_| send("t1", json!({ bob.user_id.as_str(): { bob.device_id.as_str(): { "n": 1 } } })));
    for answer in futures::future::join_all(retries).await {
        answer.ok();
    }

    let first = sync(&server, &bob, &format!("timeout=0&since={start}")).await;
    let events = to_device_events(&first);
    assert_eq!(events.len(), 1, "{first}");
    assert_eq!(events[0], json!({"sender": alice.user_id, "type": "m.room_key_request", "content": {"n": 1}}));
    // The response was lost: the same token brings the same message again.
    let again = sync(&server, &bob, &format!("timeout=0&since={start}")).await;
    assert_eq!(to_device_events(&again), events, "{again}");
    // Syncing past it acknowledges it.
    let after = sync(&server, &bob, &format!("timeout=0&since={}", next_batch(&again))).await;
    assert!(to_device_events(&after).is_empty(), "{after}");

    // `*` reaches every device of the user; the other device got nothing before.
    let phone_start = next_batch(&sync(&server, &bob_phone, "timeout=0").await);
    send("t2", json!({ bob.user_id.as_str(): { "*": { "n": 2 } } })).await.ok();
    for device in [&bob, &bob_phone] {
        let since = if device.device_id == bob.device_id { next_batch(&after) } else { phone_start.clone() };
        let got = sync(&server, device, &format!("timeout=0&since={since}")).await;
        assert_eq!(to_device_events(&got).iter().map(|e| e["content"]["n"].clone()).collect::<Vec<_>>(), vec![json!(2)], "{got}");
    }

    // At most 100 per response; the rest follow.
    let token = next_batch(&sync(&server, &bob_phone, "timeout=0").await);
    let token = next_batch(&sync(&server, &bob_phone, &format!("timeout=0&since={token}")).await);
    for n in 0..130 {
        send(&format!("bulk{n}"), json!({ bob.user_id.as_str(): { bob_phone.device_id.as_str(): { "n": n } } })).await.ok();
    }
    let page1 = sync(&server, &bob_phone, &format!("timeout=0&since={token}")).await;
    let page2 = sync(&server, &bob_phone, &format!("timeout=10000&since={}", next_batch(&page1))).await;
    let numbers: Vec<Value> = to_device_events(&page1).iter().chain(to_device_events(&page2).iter()).map(|e| e["content"]["n"].clone()).collect();
    assert_eq!(to_device_events(&page1).len(), 100, "{page1}");
    assert_eq!(numbers, (0..130).map(|n| json!(n)).collect::<Vec<_>>());

    // A message that is too large is refused whole.
    let huge = "x".repeat(70_000);
    let refused = send("big", json!({ bob.user_id.as_str(): { bob.device_id.as_str(): { "blob": huge } } })).await;
    assert_matrix_error(&refused, StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");

    // Logging a device out drops what waited for it, and forgets the transaction IDs it sent.
    send("t3", json!({ bob.user_id.as_str(): { bob_phone.device_id.as_str(): { "n": 3 } } })).await.ok();
    let from_phone = |phone: &Session| {
        let path = "/_matrix/client/v3/sendToDevice/m.dummy/phone-txn";
        let body = json!({ "messages": { alice.user_id.as_str(): { alice.device_id.as_str(): { "from": "phone" } } } });
        let (server, phone) = (&server, phone.clone());
        async move { server.put(path, &phone, &body).await }
    };
    let alice_start = next_batch(&sync(&server, &alice, "timeout=0").await);
    from_phone(&bob_phone).await.ok();
    server.post("/_matrix/client/v3/logout", &bob_phone, &json!({})).await.ok();
    let relogged = server.send(server.request(Method::POST, "/_matrix/client/v3/login", &NoAuth).json(&json!({
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": "bob"}, "password": "pw", "device_id": bob_phone.device_id,
    }))).await;
    let relogged = Session::from_body(relogged.ok());
    let fresh = sync(&server, &relogged, "timeout=0").await;
    assert!(to_device_events(&fresh).is_empty(), "{fresh}");
    from_phone(&relogged).await.ok();
    let at_alice = sync(&server, &alice, &format!("timeout=0&since={alice_start}")).await;
    assert_eq!(to_device_events(&at_alice).len(), 2, "the new session's first transaction is new: {at_alice}");
}

#[tokio::test]
async fn key_backup_versions_and_keys() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let version_path = "/_matrix/client/v3/room_keys/version";
    assert_matrix_error(&server.get(version_path, &alice).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let algorithm = json!({"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": {"public_key": "abc", "signatures": {}}});
    let v1 = server.post(version_path, &alice, &algorithm).await.str_field("version").to_owned();
    let latest = server.get(version_path, &alice).await;
    assert_eq!(latest.ok()["version"], v1);
    assert_eq!(latest.ok()["count"], 0);
    assert_eq!(latest.ok()["auth_data"]["public_key"], "abc");
    let etag0 = latest.ok()["etag"].clone();

    let key = |verified: bool, index: u64, forwarded: u64| json!({
        "first_message_index": index, "forwarded_count": forwarded, "is_verified": verified,
        "session_data": {"ephemeral": "AAAA", "ciphertext": format!("c{index}{forwarded}{verified}"), "mac": "AAAA"},
    });
    let room = "!room:example.org";
    let keys_path = |rest: &str| format!("/_matrix/client/v3/room_keys/keys{rest}?version={v1}");
    let put = server.put(&keys_path(""), &alice, &json!({"rooms": {room: {"sessions": {"s1": key(false, 5, 0), "s2": key(true, 0, 0)}}}})).await;
    assert_eq!(put.ok()["count"], 2, "{}", put.text);
    assert_ne!(put.ok()["etag"], etag0);
    let session_path = keys_path(&format!("/{}/s1", enc(room)));
    // A worse copy is ignored; a better one replaces.
    server.put(&session_path, &alice, &key(false, 9, 0)).await.ok();
    assert_eq!(server.get(&session_path, &alice).await.ok()["first_message_index"], 5);
    server.put(&session_path, &alice, &key(false, 2, 0)).await.ok();
    assert_eq!(server.get(&session_path, &alice).await.ok()["first_message_index"], 2);
    server.put(&session_path, &alice, &key(true, 7, 3)).await.ok();
    let best = server.get(&session_path, &alice).await;
    assert_eq!((best.ok()["is_verified"].clone(), best.ok()["first_message_index"].clone()), (json!(true), json!(7)));
    server.put(&session_path, &alice, &key(true, 7, 1)).await.ok();
    assert_eq!(server.get(&session_path, &alice).await.ok()["forwarded_count"], 1);

    let all = server.get(&keys_path(""), &alice).await;
    assert_eq!(all.ok()["rooms"][room]["sessions"].as_object().map(|s| s.len()), Some(2), "{}", all.text);
    let by_room = server.get(&keys_path(&format!("/{}", enc(room))), &alice).await;
    assert!(by_room.ok()["sessions"]["s2"].is_object(), "{}", by_room.text);
    assert_matrix_error(&server.get(&keys_path(&format!("/{}/nope", enc(room))), &alice).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    assert_matrix_error(&server.put(&session_path, &alice, &json!({"nonsense": true})).await, StatusCode::BAD_REQUEST, "M_BAD_JSON");

    // A new version makes the old one stale for uploads.
    let v2 = server.post(version_path, &alice, &algorithm).await.str_field("version").to_owned();
    let stale = server.put(&session_path, &alice, &key(true, 0, 0)).await;
    let body = assert_matrix_error(&stale, StatusCode::FORBIDDEN, "M_WRONG_ROOM_KEYS_VERSION");
    assert_eq!(body["current_version"], v2);
    // Auth data can change, the algorithm cannot.
    let mut updated = algorithm.clone();
    updated["auth_data"]["public_key"] = json!("def");
    server.put(&format!("{version_path}/{v2}"), &alice, &updated).await.ok();
    assert_eq!(server.get(&format!("{version_path}/{v2}"), &alice).await.ok()["auth_data"]["public_key"], "def");
    let mut other_algorithm = updated.clone();
    other_algorithm["algorithm"] = json!("m.other");
    assert_matrix_error(&server.put(&format!("{version_path}/{v2}"), &alice, &other_algorithm).await, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");

    // Deleting keys and versions.
    let deleted = server.delete(&keys_path(&format!("/{}/s2", enc(room))), &alice, &json!({})).await;
    assert_eq!(deleted.ok()["count"], 1, "{}", deleted.text);
    server.delete(&format!("{version_path}/{v2}"), &alice, &json!({})).await.ok();
    assert_eq!(server.get(version_path, &alice).await.ok()["version"], v1, "the older version is current again");
    server.delete(&format!("{version_path}/{v1}"), &alice, &json!({})).await.ok();
    assert_matrix_error(&server.get(version_path, &alice).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    assert_matrix_error(&server.get(&format!("{version_path}/{v1}"), &alice).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    // Another user's backup is not Alice's business.
    let bob = server.register("bob", "pw").await;
    assert_matrix_error(&server.get(&format!("{version_path}/{v2}"), &bob).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

/// `/sync` on any server (Myelin or Synapse).
async fn peer_sync(server: &impl HttpPeer, who: &Session, query: &str) -> Value {
    server.get(&format!("/_matrix/client/v3/sync?{query}"), who).await.ok().clone()
}

#[tokio::test]
async fn keys_and_to_device_messages_between_two_myelins() {
    let myelin = crate::federation_rooms::federating_myelin().await;
    let other = crate::federation_rooms::federating_myelin().await;
    let bob = other.register("bob", "pw").await;
    keys_across_servers(&myelin, &other, &bob, || other.all_logs()).await;
}

#[tokio::test]
async fn keys_and_to_device_messages_between_myelin_and_synapse() {
    let myelin = crate::federation_rooms::federating_myelin().await;
    let synapse = crate::federation_rooms::federating_synapse().await;
    let bob = synapse.register("bob", "pw").await;
    keys_across_servers(&myelin, &synapse, &bob, || synapse.logs()).await;
}

/// Alice on `myelin`, Bob on `other` (Myelin or Synapse), in a room on Myelin: each reads and
/// claims the other's keys over federation, to-device messages go both ways, and a new device
/// of Alice's reaches Bob's sync and his queries.
async fn keys_across_servers(myelin: &TestServer, other: &impl HttpPeer, bob: &Session, other_logs: impl Fn() -> String) {
    use crate::federation_rooms::eventually;
    let alice = myelin.register("alice", "pw").await;
    let room = public_room(myelin, &alice).await;
    let via = myelin.server_name().to_owned();
    other.post(&format!("/_matrix/client/v3/join/{}?server_name={via}", enc(&room)), bob, &json!({})).await.ok();
    let (alice_key, bob_key) = (key_pair(60), key_pair(61));
    upload(myelin, &alice, json!({
        "device_keys": device_keys(&alice, &alice_key),
        "one_time_keys": one_time_keys(&alice, &alice_key, ["A1".to_owned()]),
    }))
    .await
    .ok();
    upload(other, bob, json!({
        "device_keys": device_keys(bob, &bob_key),
        "one_time_keys": one_time_keys(bob, &bob_key, ["B1".to_owned()]),
    }))
    .await
    .ok();
    let logs = || format!("myelin:\n{}\nother:\n{}", myelin.all_logs(), other_logs());

    // Each side reads the other's device keys and claims its one-time key over federation.
    let bob_seen = query(myelin, &alice, &bob.user_id).await;
    assert_eq!(bob_seen["device_keys"][&bob.user_id][&bob.device_id]["keys"], device_keys(bob, &bob_key)["keys"], "{bob_seen}\n{}", logs());
    let claimed = claim(myelin, &alice, &bob.user_id, &bob.device_id).await;
    assert_eq!(claimed_key(&claimed, &bob.user_id, &bob.device_id).map(|(id, _)| id).as_deref(), Some("signed_curve25519:B1"), "{claimed}");
    let alice_seen = query(other, bob, &alice.user_id).await;
    assert_eq!(alice_seen["device_keys"][&alice.user_id][&alice.device_id]["keys"], device_keys(&alice, &alice_key)["keys"], "{alice_seen}\n{}", logs());
    let claimed = claim(other, bob, &alice.user_id, &alice.device_id).await;
    assert_eq!(claimed_key(&claimed, &alice.user_id, &alice.device_id).map(|(id, _)| id).as_deref(), Some("signed_curve25519:A1"), "{claimed}");

    // Alice verifies Bob across servers: her user-signing key signs his master key, which
    // lives on his server. Her server keeps the signature and shows it to her alone.
    let (alice_cs, bob_cs) = (CrossSigning::new(63), CrossSigning::new(66));
    let signing_upload = format!("{KEYS}/device_signing/upload");
    myelin.post(&signing_upload, &alice, &alice_cs.upload_body(&alice.user_id)).await.ok();
    other.post(&signing_upload, bob, &bob_cs.upload_body(&bob.user_id)).await.ok();
    let bob_master = bob_cs.key(&bob.user_id, "master", &bob_cs.master);
    let usk_id = format!("ed25519:{}", public_of(&alice_cs.user_signing));
    let signed = sign(bob_master.clone(), &alice_cs.user_signing, &alice.user_id, &usk_id);
    let answer = myelin.post(&format!("{KEYS}/signatures/upload"), &alice, &json!({ bob.user_id.as_str(): { public_of(&bob_cs.master): signed } })).await;
    assert_eq!(answer.ok().get("failures").cloned().unwrap_or(json!({})), json!({}), "{}", answer.text);
    let by_alice = query(myelin, &alice, &bob.user_id).await;
    assert_eq!(by_alice["master_keys"][&bob.user_id]["keys"], bob_master["keys"], "{by_alice}\n{}", logs());
    assert!(by_alice["master_keys"][&bob.user_id]["signatures"][&alice.user_id][&usk_id].is_string(), "{by_alice}");
    let carol = myelin.register("carol", "pw").await;
    let by_carol = query(myelin, &carol, &bob.user_id).await;
    assert!(by_carol["master_keys"][&bob.user_id]["signatures"].get(&alice.user_id).is_none(), "{by_carol}");
    // A forged signature on a remote key is refused like a local one.
    let forged = sign(bob_master, &key_pair(99), &alice.user_id, &usk_id);
    let answer = myelin.post(&format!("{KEYS}/signatures/upload"), &alice, &json!({ bob.user_id.as_str(): { public_of(&bob_cs.master): forged } })).await;
    assert_eq!(answer.ok()["failures"][&bob.user_id][public_of(&bob_cs.master)]["errcode"], "M_INVALID_SIGNATURE", "{}", answer.text);

    // To-device messages both ways.
    let alice_token = next_batch(&sync(myelin, &alice, "timeout=0").await);
    let bob_token = peer_sync(other, bob, "timeout=0").await["next_batch"].as_str().unwrap_or_default().to_owned();
    let message = |to: &Session, n: u32| json!({ "messages": { to.user_id.as_str(): { to.device_id.as_str(): { "n": n } } } });
    myelin.put(&format!("/_matrix/client/v3/sendToDevice/m.room_key_request/{}", txn_id()), &alice, &message(bob, 1)).await.ok();
    other.put(&format!("/_matrix/client/v3/sendToDevice/m.room_key_request/{}", txn_id()), bob, &message(&alice, 2)).await.ok();
    let at_bob = eventually(
        "Alice's to-device message on Bob's server",
        async || to_device_events(&peer_sync(other, bob, &format!("timeout=1000&since={bob_token}")).await).first().cloned(),
        logs,
    )
    .await;
    assert_eq!((at_bob["sender"].clone(), at_bob["content"]["n"].clone()), (json!(alice.user_id), json!(1)), "{at_bob}");
    let at_alice = eventually(
        "Bob's to-device message on Alice's server",
        async || to_device_events(&sync(myelin, &alice, &format!("timeout=1000&since={alice_token}")).await).first().cloned(),
        logs,
    )
    .await;
    assert_eq!((at_alice["sender"].clone(), at_alice["content"]["n"].clone()), (json!(bob.user_id), json!(2)), "{at_alice}");

    // Alice adds a device: Bob's server hears of it (m.device_list_update) and tells Bob.
    let mut bob_token = peer_sync(other, bob, &format!("timeout=0&since={bob_token}")).await["next_batch"].as_str().unwrap_or_default().to_owned();
    let laptop = myelin.login("alice", "pw").await;
    upload(myelin, &laptop, json!({"device_keys": device_keys(&laptop, &key_pair(62))})).await.ok();
    eventually(
        "Alice's new device in Bob's sync",
        // Like a client, each sync goes on from the last one.
        async || {
            let got = peer_sync(other, bob, &format!("timeout=1000&since={bob_token}")).await;
            bob_token = got["next_batch"].as_str().unwrap_or_default().to_owned();
            changed(&got).contains(&alice.user_id).then_some(())
        },
        logs,
    )
    .await;
    let alice_seen = query(other, bob, &alice.user_id).await;
    assert!(alice_seen["device_keys"][&alice.user_id][&laptop.device_id].is_object(), "{alice_seen}\n{}", logs());
}

#[tokio::test]
async fn dehydrated_devices_hold_messages_until_a_client_collects_them() {
    let server = TestServer::start_default().await;
    let alice = server.register("alice", "pw").await;
    let bob = server.register("bob", "pw").await;
    let path = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device";
    assert_matrix_error(&server.get(path, &alice).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    // The dehydrated device's keys are checked like any device's.
    let parked = Session { device_id: "PARKED".to_owned(), ..alice.clone() };
    let key = key_pair(70);
    let data = json!({"algorithm": "org.matrix.msc3814.v1.olm", "device_pickle": "opaque"});
    let mut bad_keys = device_keys(&parked, &key);
    bad_keys["keys"]["curve25519:PARKED"] = json!("tampered");
    let refused = server.put(path, &alice, &json!({"device_id": "PARKED", "device_data": data, "device_keys": bad_keys})).await;
    assert_matrix_error(&refused, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    assert_matrix_error(&server.put(path, &alice, &json!({"device_id": alice.device_id, "device_data": data, "device_keys": device_keys(&alice, &key)})).await, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let created = server.put(path, &alice, &json!({
        "device_id": "PARKED", "initial_device_display_name": "dehydrated", "device_data": data,
        "device_keys": device_keys(&parked, &key), "one_time_keys": one_time_keys(&parked, &key, ["P1".to_owned()]),
    }))
    .await;
    assert_eq!(created.ok()["device_id"], "PARKED", "{}", created.text);
    let fetched = server.get(path, &alice).await;
    assert_eq!(fetched.ok()["device_data"], data);
    // Others see it as one of Alice's devices, with keys to claim.
    assert!(query(&server, &bob, &alice.user_id).await["device_keys"][&alice.user_id]["PARKED"].is_object());
    let claimed = claim(&server, &bob, &alice.user_id, "PARKED").await;
    assert!(claimed_key(&claimed, &alice.user_id, "PARKED").is_some(), "{claimed}");

    // Messages to it wait until a client collects them, a page at a time, each page
    // acknowledged by asking for the next.
    for n in 0..3 {
        let body = json!({ "messages": { alice.user_id.as_str(): { "PARKED": { "n": n } } } });
        server.put(&format!("/_matrix/client/v3/sendToDevice/m.room.encrypted/park{n}"), &bob, &body).await.ok();
    }
    let events_path = format!("{path}/PARKED/events");
    let first = server.post(&events_path, &alice, &json!({})).await;
    let numbers = |page: &Resp| page.body["events"].as_array().into_iter().flatten().map(|e| e["content"]["n"].clone()).collect::<Vec<_>>();
    assert_eq!(numbers(&first), vec![json!(0), json!(1), json!(2)], "{}", first.text);
    // Asking again without acknowledging gives the same page.
    assert_eq!(numbers(&server.post(&events_path, &alice, &json!({})).await), vec![json!(0), json!(1), json!(2)]);
    let next_batch = first.ok()["next_batch"].clone();
    let second = server.post(&events_path, &alice, &json!({"next_batch": next_batch})).await;
    assert!(numbers(&second).is_empty(), "{}", second.text);
    assert!(numbers(&server.post(&events_path, &alice, &json!({})).await).is_empty(), "acknowledged messages are gone");
    // Another user's device, or a device that is not the dehydrated one, is refused.
    assert_matrix_error(&server.post(&events_path, &bob, &json!({})).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_matrix_error(&server.post(&format!("{path}/{}/events", alice.device_id), &alice, &json!({})).await, StatusCode::FORBIDDEN, "M_FORBIDDEN");

    // A new dehydrated device replaces the old one, whose keys go.
    let replacement = Session { device_id: "PARKED2".to_owned(), ..alice.clone() };
    server.put(path, &alice, &json!({"device_id": "PARKED2", "device_data": data, "device_keys": device_keys(&replacement, &key_pair(71))})).await.ok();
    let seen = query(&server, &bob, &alice.user_id).await;
    assert!(seen["device_keys"][&alice.user_id].get("PARKED").is_none() && seen["device_keys"][&alice.user_id]["PARKED2"].is_object(), "{seen}");
    // Deleting it removes the device.
    assert_eq!(server.delete(path, &alice, &json!({})).await.ok()["device_id"], "PARKED2");
    assert_matrix_error(&server.get(path, &alice).await, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    assert!(query(&server, &bob, &alice.user_id).await["device_keys"][&alice.user_id].get("PARKED2").is_none());
    let devices = server.get("/_matrix/client/v3/devices", &alice).await;
    assert_eq!(devices.ok()["devices"].as_array().map(Vec::len), Some(1), "{}", devices.text);
}
