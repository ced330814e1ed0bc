use std::collections::BTreeMap;

use ruma::{
    CanonicalJsonValue, OwnedEventId, RoomVersionId, event_id, owned_room_id, server_name,
    signatures::content_hash,
};
use serde_json::json;

use super::*;
use crate::{
    ServerSigningKey,
    room_version::supported_room_versions,
    testing::{object, public_keys, user},
};

fn template(
    room_id: Option<OwnedRoomId>,
    event_type: &str,
    state_key: Option<&str>,
) -> PduTemplate {
    PduTemplate {
        room_id,
        sender: user("alice"),
        event_type: event_type.to_owned(),
        state_key: state_key.map(ToOwned::to_owned),
        content: object(json!({ "body": "hi", "msgtype": "m.text" })),
        redacts: None,
        prev_events: vec![],
        auth_events: vec![],
        depth: 1,
        origin_server_ts: 1_700_000_000_000,
    }
}

fn room_for(version: &RoomVersionId) -> Option<OwnedRoomId> {
    (*version != RoomVersionId::V12).then(|| owned_room_id!("!room:hs1"))
}

/// A create event and a message on top of it, in `version`.
fn create_and_message(version: &RoomVersionId, key: &ServerSigningKey) -> (BuiltPdu, BuiltPdu) {
    let origin = server_name!("hs1");
    let mut create = template(room_for(version), "m.room.create", Some(""));
    create.content = object(json!({ "creator": "@alice:hs1", "room_version": version.as_str() }));
    let create = build_pdu(version, create, origin, key).unwrap();
    let mut message = template(Some(create.room_id.clone()), "m.room.message", None);
    message.prev_events = vec![create.event_id.clone()];
    if *version != RoomVersionId::V12 {
        message.auth_events = vec![create.event_id.clone()];
    }
    message.depth = 2;
    let message = build_pdu(version, message, origin, key).unwrap();
    (create, message)
}

#[test]
fn every_version_builds_hashed_signed_events_with_its_id_format() {
    let key = ServerSigningKey::generate().unwrap();
    let keys = public_keys("hs1", &key);
    for version in supported_room_versions() {
        let rules = version.rules().unwrap();
        let (create, message) = create_and_message(version, &key);
        for built in [&create, &message] {
            let json = &built.json;
            let id = built.event_id.as_str();
            match version {
                RoomVersionId::V1 | RoomVersionId::V2 => {
                    assert!(
                        id.starts_with('$') && id.ends_with(":hs1"),
                        "{version}: {id}"
                    );
                    assert_eq!(json["event_id"], CanonicalJsonValue::String(id.to_owned()));
                }
                _ => {
                    assert_eq!(id.len(), 44, "{version}: {id}");
                    assert!(!json.contains_key("event_id"), "{version}");
                    assert_eq!(reference_event_id(version, json).unwrap(), built.event_id);
                }
            }
            assert_eq!(
                event_id_of(version, json).unwrap(),
                built.event_id,
                "{version}"
            );

            let hashes = json["hashes"].as_object().unwrap();
            let expected = content_hash(json).unwrap().encode();
            assert_eq!(
                hashes["sha256"].as_str(),
                Some(expected.as_str()),
                "{version}"
            );
            assert_eq!(
                verify_pdu(version, json, &keys).unwrap(),
                Verified::All,
                "{version}"
            );
            check_pdu_format(version, json).unwrap();

            assert_eq!(
                json.contains_key("origin"),
                rules.redaction.keep_origin_membership_prev_state,
                "{version}: origin only where the redaction algorithm keeps (signs) it"
            );
            for field in [
                "sender",
                "type",
                "content",
                "depth",
                "origin_server_ts",
                "signatures",
            ] {
                assert!(json.contains_key(field), "{version}: {field}");
            }
        }
        assert_eq!(
            create.json["state_key"],
            CanonicalJsonValue::String(String::new())
        );
        assert!(!message.json.contains_key("state_key"));

        let prev = message.json["prev_events"].as_array().unwrap();
        match version {
            RoomVersionId::V1 | RoomVersionId::V2 => {
                let pair = prev[0].as_array().unwrap();
                assert_eq!(pair[0].as_str(), Some(create.event_id.as_str()));
                assert_eq!(pair[1], CanonicalJsonValue::Object(Default::default()));
            }
            _ => assert_eq!(prev[0].as_str(), Some(create.event_id.as_str())),
        }

        if *version == RoomVersionId::V12 {
            assert!(!create.json.contains_key("room_id"));
            let hash = create.event_id.as_str().strip_prefix('$').unwrap();
            assert_eq!(create.room_id.as_str(), format!("!{hash}"));
            assert_eq!(
                room_id_from_create_event_id(&create.event_id).unwrap(),
                create.room_id
            );
            assert_eq!(
                create_event_id_from_room_id(&create.room_id).unwrap(),
                create.event_id
            );
            assert_eq!(
                message.json["room_id"].as_str(),
                Some(create.room_id.as_str())
            );
        } else {
            assert_eq!(create.json["room_id"].as_str(), Some("!room:hs1"));
        }
    }
}

#[test]
fn v3_ids_use_standard_base64_and_v4_ids_url_safe_base64() {
    let key = ServerSigningKey::generate().unwrap();
    for (version, expected, forbidden) in [
        (RoomVersionId::V3, ['+', '/'], ['-', '_']),
        (RoomVersionId::V4, ['-', '_'], ['+', '/']),
    ] {
        let mut seen_expected = false;
        for ts in 0..64 {
            let mut message = template(room_for(&version), "m.room.message", None);
            message.origin_server_ts = ts;
            let id = build_pdu(&version, message, server_name!("hs1"), &key)
                .unwrap()
                .event_id;
            assert!(!id.as_str().contains(forbidden), "{version}: {id}");
            assert!(!id.as_str().contains('='), "unpadded: {id}");
            seen_expected |= id.as_str().contains(expected);
        }
        assert!(seen_expected, "{version}: 64 IDs without {expected:?}");
    }
}

#[test]
fn v1_references_carry_the_supplied_reference_hashes() {
    let key = ServerSigningKey::generate().unwrap();
    let (create, _) = create_and_message(&RoomVersionId::V1, &key);
    let create_hash = reference_hash_of(&RoomVersionId::V1, &create.json).unwrap();
    assert!(reference_event_id(&RoomVersionId::V1, &create.json).is_err());

    let mut message = template(Some(create.room_id.clone()), "m.room.message", None);
    let unknown = OwnedEventId::try_from("$unknown:hs2").unwrap();
    message.prev_events = vec![create.event_id.clone(), unknown.clone()];
    message.auth_events = vec![create.event_id.clone()];
    let hashes = BTreeMap::from([(create.event_id.clone(), create_hash.clone())]);
    let built = build_pdu_with_reference_hashes(
        &RoomVersionId::V1,
        message,
        &hashes,
        server_name!("hs1"),
        &key,
    )
    .unwrap();

    let expected = serde_json::json!([
        [create.event_id.as_str(), { "sha256": create_hash }],
        [unknown.as_str(), {}],
    ]);
    assert_eq!(
        serde_json::Value::from(built.json["prev_events"].clone()),
        expected
    );
    let pdu = built.to_pdu().unwrap();
    assert_eq!(pdu.prev_event_ids(), [create.event_id.clone(), unknown]);
    assert_eq!(pdu.auth_event_ids(), [create.event_id]);
}

#[test]
fn templates_that_break_the_version_format_are_refused() {
    let key = ServerSigningKey::generate().unwrap();
    let origin = server_name!("hs1");
    let v12 = RoomVersionId::V12;

    let with_room = template(Some(owned_room_id!("!x:hs1")), "m.room.create", Some(""));
    assert!(matches!(
        build_pdu(&v12, with_room, origin, &key),
        Err(Error::InvalidPdu(_))
    ));
    let without_room = template(None, "m.room.message", None);
    assert!(matches!(
        build_pdu(&RoomVersionId::V11, without_room, origin, &key),
        Err(Error::InvalidPdu(_))
    ));

    let mut foreign = template(room_for(&RoomVersionId::V10), "m.room.message", None);
    foreign.sender = ruma::owned_user_id!("@mallory:elsewhere");
    assert!(matches!(
        build_pdu(&RoomVersionId::V10, foreign, origin, &key),
        Err(Error::InvalidPdu(_))
    ));

    let (create, _) = create_and_message(&v12, &key);
    let mut lists_create = template(Some(create.room_id.clone()), "m.room.message", None);
    lists_create.auth_events = vec![create.event_id.clone()];
    assert!(matches!(
        build_pdu(&v12, lists_create, origin, &key),
        Err(Error::InvalidPdu(_))
    ));

    let mut redacts_message = template(room_for(&RoomVersionId::V10), "m.room.message", None);
    redacts_message.redacts = Some(create.event_id);
    assert!(matches!(
        build_pdu(&RoomVersionId::V10, redacts_message, origin, &key),
        Err(Error::InvalidPdu(_))
    ));

    let custom = RoomVersionId::try_from("org.example.custom").unwrap();
    let message = template(room_for(&RoomVersionId::V10), "m.room.message", None);
    assert!(matches!(
        build_pdu(&custom, message, origin, &key),
        Err(Error::UnsupportedRoomVersion(_))
    ));
}

#[test]
fn v12_format_check_rejects_the_create_event_in_auth_events() {
    let key = ServerSigningKey::generate().unwrap();
    let (create, mut message) = create_and_message(&RoomVersionId::V12, &key);
    check_pdu_format(&RoomVersionId::V12, &message.json).unwrap();
    message.json.insert(
        "auth_events".to_owned(),
        CanonicalJsonValue::Array(vec![create.event_id.to_string().into()]),
    );
    assert!(check_pdu_format(&RoomVersionId::V12, &message.json).is_err());
}

#[test]
fn tampered_content_verifies_signatures_only_and_tampered_signed_fields_fail() {
    let key = ServerSigningKey::generate().unwrap();
    let keys = public_keys("hs1", &key);
    for version in [
        RoomVersionId::V1,
        RoomVersionId::V6,
        RoomVersionId::V11,
        RoomVersionId::V12,
    ] {
        let (_, message) = create_and_message(&version, &key);

        let mut content_changed = message.json.clone();
        content_changed.insert(
            "content".to_owned(),
            object(json!({ "body": "evil" })).into(),
        );
        assert_eq!(
            verify_pdu(&version, &content_changed, &keys).unwrap(),
            Verified::SignaturesOnly
        );
        let redacted = redact_pdu(&version, content_changed, None).unwrap();
        assert_eq!(
            verify_pdu(&version, &redacted, &keys).unwrap(),
            Verified::SignaturesOnly
        );

        let mut ts_changed = message.json.clone();
        ts_changed.insert(
            "origin_server_ts".to_owned(),
            CanonicalJsonValue::Integer(5u32.into()),
        );
        assert!(matches!(
            verify_pdu(&version, &ts_changed, &keys),
            Err(Error::Verification(_))
        ));

        let other_key = ServerSigningKey::generate().unwrap();
        let wrong_keys = public_keys("hs1", &other_key);
        assert!(verify_pdu(&version, &message.json, &wrong_keys).is_err());
        assert_eq!(
            required_signing_servers(&version, &message.json)
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            [server_name!("hs1").to_owned()]
        );
    }
}

#[test]
fn a_second_server_can_cosign_without_breaking_the_first_signature() {
    let key = ServerSigningKey::generate().unwrap();
    let resident = ServerSigningKey::generate().unwrap();
    let (_, mut message) = create_and_message(&RoomVersionId::V10, &key);
    sign_pdu(
        &RoomVersionId::V10,
        &mut message.json,
        server_name!("hs2"),
        &resident,
    )
    .unwrap();
    let mut keys = public_keys("hs1", &key);
    keys.extend(public_keys("hs2", &resident));
    assert_eq!(
        verify_pdu(&RoomVersionId::V10, &message.json, &keys).unwrap(),
        Verified::All
    );
    assert!(
        message.json["signatures"]
            .as_object()
            .unwrap()
            .contains_key("hs2")
    );
    assert_eq!(
        event_id_of(&RoomVersionId::V10, &message.json).unwrap(),
        message.event_id
    );
}

#[test]
fn redaction_follows_each_versions_algorithm() {
    let key = ServerSigningKey::generate().unwrap();
    let origin = server_name!("hs1");
    let build = |version: &RoomVersionId, event_type: &str, state_key: Option<&str>, content| {
        let derived = *version == RoomVersionId::V12 && event_type == "m.room.create";
        let room_id = (!derived).then(|| owned_room_id!("!room:hs1"));
        let mut t = template(room_id, event_type, state_key);
        t.content = object(content);
        build_pdu(version, t, origin, &key).unwrap().json
    };
    let content = |json: &CanonicalJsonObject| serde_json::Value::from(json["content"].clone());

    // m.room.create: v1 keeps only `creator`, v11 keeps the whole content.
    let create_content =
        json!({ "creator": "@alice:hs1", "room_version": "1", "m.federate": false });
    let v1 = redact_pdu(
        &RoomVersionId::V1,
        build(
            &RoomVersionId::V1,
            "m.room.create",
            Some(""),
            create_content.clone(),
        ),
        None,
    )
    .unwrap();
    assert_eq!(content(&v1), json!({ "creator": "@alice:hs1" }));
    let v11 = redact_pdu(
        &RoomVersionId::V11,
        build(
            &RoomVersionId::V11,
            "m.room.create",
            Some(""),
            create_content.clone(),
        ),
        None,
    )
    .unwrap();
    assert_eq!(content(&v11), create_content);

    // Top-level `origin` and `membership`: kept before v11, dropped from v11.
    for (version, kept) in [(RoomVersionId::V1, true), (RoomVersionId::V11, false)] {
        let mut member = build(
            &version,
            "m.room.member",
            Some("@alice:hs1"),
            json!({ "membership": "join" }),
        );
        member.insert("origin".to_owned(), "hs1".into());
        member.insert("membership".to_owned(), "join".into());
        member.insert("unsigned".to_owned(), object(json!({ "age": 5 })).into());
        let redacted = redact_pdu(&version, member, None).unwrap();
        assert_eq!(redacted.contains_key("origin"), kept, "{version}");
        assert_eq!(redacted.contains_key("membership"), kept, "{version}");
        assert!(!redacted.contains_key("unsigned"));
        for field in [
            "hashes",
            "signatures",
            "depth",
            "prev_events",
            "auth_events",
            "sender",
            "room_id",
        ] {
            assert!(redacted.contains_key(field), "{version}: {field}");
        }
    }

    // m.room.power_levels `invite`: dropped before v11, kept from v11.
    let levels = json!({ "ban": 50, "invite": 50, "users": { "@alice:hs1": 100 }, "notifications": { "room": 50 } });
    for (version, kept) in [(RoomVersionId::V10, false), (RoomVersionId::V11, true)] {
        let redacted = redact_pdu(
            &version,
            build(&version, "m.room.power_levels", Some(""), levels.clone()),
            None,
        )
        .unwrap();
        let content = content(&redacted);
        assert_eq!(content.get("invite").is_some(), kept, "{version}");
        assert_eq!(content["ban"], 50);
        assert!(content.get("notifications").is_none());
    }

    // join_authorised_via_users_server: kept from v9.
    let join = json!({ "membership": "join", "displayname": "A", "join_authorised_via_users_server": "@bob:hs1" });
    for (version, kept) in [
        (RoomVersionId::V8, false),
        (RoomVersionId::V9, true),
        (RoomVersionId::V12, true),
    ] {
        let redacted = redact_pdu(
            &version,
            build(&version, "m.room.member", Some("@alice:hs1"), join.clone()),
            None,
        )
        .unwrap();
        let content = content(&redacted);
        assert_eq!(
            content.get("join_authorised_via_users_server").is_some(),
            kept,
            "{version}"
        );
        assert!(content.get("displayname").is_none());
        assert_eq!(content["membership"], "join");
    }

    // A message loses its content; redacted_because lands in unsigned.
    let because = object(json!({ "type": "m.room.redaction", "event_id": "$r:hs1" }));
    let message = build(
        &RoomVersionId::V10,
        "m.room.message",
        None,
        json!({ "body": "secret" }),
    );
    let redacted = redact_pdu(&RoomVersionId::V10, message, Some(because.clone())).unwrap();
    assert_eq!(content(&redacted), json!({}));
    assert_eq!(
        redacted["unsigned"].as_object().unwrap()["redacted_because"],
        because
    );
}

#[test]
fn redacts_is_placed_per_version_and_rendered_for_clients() {
    let key = ServerSigningKey::generate().unwrap();
    let target = event_id!("$target:hs1").to_owned();
    for (version, in_content) in [
        (RoomVersionId::V1, false),
        (RoomVersionId::V10, false),
        (RoomVersionId::V11, true),
        (RoomVersionId::V12, true),
    ] {
        let room_id = owned_room_id!("!room:hs1");
        let mut t = template(Some(room_id.clone()), "m.room.redaction", None);
        t.content = object(json!({ "reason": "spam" }));
        t.redacts = Some(target.clone());
        let built = build_pdu(&version, t, server_name!("hs1"), &key).unwrap();
        let content = built.json["content"].as_object().unwrap();
        assert_eq!(content.contains_key("redacts"), in_content, "{version}");
        assert_eq!(built.json.contains_key("redacts"), !in_content, "{version}");

        let pdu = built.to_pdu().unwrap();
        assert_eq!(pdu.redacts(), Some(&*target), "{version}");
        assert_eq!(
            redacted_event_id(&version, &built.json).unwrap().as_ref(),
            Some(&target)
        );

        // A second, conflicting location is ignored where the version does not read it.
        let mut both = built.json.clone();
        let decoy = CanonicalJsonValue::String("$decoy:hs2".to_owned());
        if in_content {
            both.insert("redacts".to_owned(), decoy);
        } else {
            let content = both.get_mut("content").unwrap().as_object_mut().unwrap();
            content.insert("redacts".to_owned(), decoy);
        }
        let pdu = Pdu::for_version(&version, built.event_id.clone(), both.clone()).unwrap();
        assert_eq!(pdu.redacts(), Some(&*target), "{version}");
        let event = client_event(&both, &built.event_id, 0, &version);
        assert_eq!(event["redacts"], target.as_str(), "{version}");

        let event = client_event(&built.json, &built.event_id, 1_700_000_000_500, &version);
        assert_eq!(event["redacts"], target.as_str(), "{version}");
        if in_content {
            assert_eq!(event["content"]["redacts"], target.as_str());
        }
    }
}

#[test]
fn client_events_keep_client_fields_and_compute_age() {
    let key = ServerSigningKey::generate().unwrap();
    let mut t = template(Some(owned_room_id!("!room:hs1")), "m.room.topic", Some(""));
    t.content = object(json!({ "topic": "hello" }));
    let mut built = build_pdu(&RoomVersionId::V10, t, server_name!("hs1"), &key).unwrap();
    built.json.insert(
        "unsigned".to_owned(),
        object(json!({ "age_ts": 1, "replaces_state": "$old:hs1" })).into(),
    );

    let mut event = client_event(
        &built.json,
        &built.event_id,
        1_700_000_001_000,
        &RoomVersionId::V10,
    );
    assert_eq!(
        event,
        json!({
            "content": { "topic": "hello" },
            "event_id": built.event_id.as_str(),
            "origin_server_ts": 1_700_000_000_000u64,
            "room_id": "!room:hs1",
            "sender": "@alice:hs1",
            "state_key": "",
            "type": "m.room.topic",
            "unsigned": { "age": 1000, "replaces_state": "$old:hs1" },
        })
    );
    let extra = json!({ "transaction_id": "t1", "prev_content": { "topic": "before" } });
    merge_unsigned(&mut event, extra.as_object().unwrap().clone());
    assert_eq!(event["unsigned"]["transaction_id"], "t1");
    assert_eq!(event["unsigned"]["age"], 1000);
    assert_eq!(event["unsigned"]["prev_content"]["topic"], "before");

    // Clock skew never yields a negative age.
    let early = client_event(&built.json, &built.event_id, 0, &RoomVersionId::V10);
    assert_eq!(early["unsigned"]["age"], 0);
}

#[test]
fn a_v12_create_event_gets_its_derived_room_id_in_client_format() {
    let key = ServerSigningKey::generate().unwrap();
    let (create, _) = create_and_message(&RoomVersionId::V12, &key);
    let event = client_event(&create.json, &create.event_id, 0, &RoomVersionId::V12);
    assert_eq!(event["room_id"], create.room_id.as_str());
    assert!(event.get("hashes").is_none() && event.get("auth_events").is_none());
}

#[test]
fn pdus_parse_what_state_resolution_reads() {
    let key = ServerSigningKey::generate().unwrap();
    let (create, message) = create_and_message(&RoomVersionId::V12, &key);
    let create = create.to_pdu().unwrap();
    assert_eq!(create.room_id(), None);
    assert_eq!(create.state_key(), Some(""));
    let pdu = Pdu::from_json_for_version(&RoomVersionId::V12, message.json.clone()).unwrap();
    assert_eq!(pdu.event_id(), message.event_id);
    assert_eq!(pdu.room_id(), Some(&*message.room_id));
    assert_eq!(pdu.origin_server_ts(), 1_700_000_000_000);
    assert_eq!(pdu.depth(), 2);
    assert_eq!(pdu.prev_event_ids(), [create.event_id().to_owned()]);
    assert!(pdu.auth_event_ids().is_empty());
    assert!(!pdu.is_rejected());
    let rejected = pdu.clone().with_rejected(true);
    assert!(rejected.is_rejected() && !pdu.is_rejected());
    let raw: serde_json::Value =
        serde_json::from_str(ruma::state_res::Event::content(&pdu).get()).unwrap();
    assert_eq!(raw["body"], "hi");

    let mut broken = message.json;
    broken.remove("sender");
    assert!(matches!(
        Pdu::from_json(message.event_id, broken),
        Err(Error::InvalidPdu(_))
    ));
}
