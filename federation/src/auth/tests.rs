use ruma::{RoomVersionId, events::StateEventType};
use serde_json::json;

use super::*;
use crate::{
    pdu::create_event_id_from_room_id,
    testing::{TestRoom, object, user},
};

const VERSIONS: [RoomVersionId; 5] = [
    RoomVersionId::V1,
    RoomVersionId::V6,
    RoomVersionId::V10,
    RoomVersionId::V11,
    RoomVersionId::V12,
];

fn reason(result: Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(Error::Auth(reason)) => reason,
        other => panic!("expected an auth rejection, got {other:?}"),
    }
}

#[test]
fn fresh_rooms_pass_auth_and_select_auth_events_per_version() {
    for version in VERSIONS {
        for join_rule in ["invite", "public"] {
            // TestRoom::new runs check_auth on every event against the state before it.
            let room = TestRoom::new(version.clone(), join_rule, &[]);
            let create_id = room
                .main
                .get(StateEventType::RoomCreate, "")
                .unwrap()
                .clone();
            assert_eq!(room.events.len(), 5, "{version}");
            for pdu in room.events.values() {
                check_auth_against_auth_events(&version, pdu, room.fetch()).unwrap();
                if pdu.event_id() == create_id {
                    continue;
                }
                let lists_create = pdu.auth_event_ids().contains(&create_id);
                assert_eq!(
                    lists_create,
                    version != RoomVersionId::V12,
                    "{version}: {pdu:?}"
                );
                let power_levels = room.main.get(StateEventType::RoomPowerLevels, "").unwrap();
                if *pdu.event_type() == TimelineEventType::RoomHistoryVisibility {
                    assert!(pdu.auth_event_ids().contains(power_levels), "{version}");
                }
            }
            if version == RoomVersionId::V12 {
                assert_eq!(
                    create_event_id_from_room_id(&room.room_id).unwrap(),
                    create_id
                );
            }
        }
    }
}

#[test]
fn strangers_cannot_send_messages() {
    for version in VERSIONS {
        let mut room = TestRoom::new(version.clone(), "public", &[]);
        let mut main = room.main.clone();
        let dave = user("dave");
        let message = json!({ "msgtype": "m.text", "body": "hi" });
        let result = room.send(&mut main, &dave, "m.room.message", None, message.clone());
        assert!(
            reason(result).contains("membership is not `join`"),
            "{version}"
        );
        room.send(
            &mut main,
            &room.creator.clone(),
            "m.room.message",
            None,
            message,
        )
        .unwrap();
    }
}

#[test]
fn members_without_power_cannot_rename_the_room() {
    for version in VERSIONS {
        let mut room = TestRoom::new(version.clone(), "public", &[]);
        let mut main = room.main.clone();
        room.join(&mut main, "bob");
        let name = json!({ "name": "Bob's room" });
        let result = room.send(
            &mut main,
            &user("bob"),
            "m.room.name",
            Some(""),
            name.clone(),
        );
        let reason = reason(result);
        assert!(
            reason.contains("not have enough power"),
            "{version}: {reason}"
        );
        assert!(reason.contains("m.room.name"), "{version}: {reason}");
        room.send(
            &mut main,
            &room.creator.clone(),
            "m.room.name",
            Some(""),
            name,
        )
        .unwrap();
    }
}

#[test]
fn joins_follow_the_join_rule() {
    for version in VERSIONS {
        let mut public = TestRoom::new(version.clone(), "public", &[]);
        let mut main = public.main.clone();
        public.join(&mut main, "carol");
        assert!(main.get(StateEventType::RoomMember, "@carol:hs1").is_some());

        let mut private = TestRoom::new(version.clone(), "invite", &[]);
        let mut main = private.main.clone();
        let carol = user("carol");
        let join = json!({ "membership": "join" });
        let result = private.send(
            &mut main,
            &carol,
            "m.room.member",
            Some(carol.as_str()),
            join.clone(),
        );
        assert!(matches!(result, Err(Error::Auth(_))), "{version}");

        let alice = private.creator.clone();
        let invite = json!({ "membership": "invite" });
        private
            .send(
                &mut main,
                &alice,
                "m.room.member",
                Some(carol.as_str()),
                invite,
            )
            .unwrap();
        private
            .send(
                &mut main,
                &carol,
                "m.room.member",
                Some(carol.as_str()),
                join,
            )
            .unwrap();
    }
}

#[test]
fn moderators_can_ban_and_members_cannot() {
    for version in VERSIONS {
        let mut room = TestRoom::new(version.clone(), "public", &[("bob", 50)]);
        let mut main = room.main.clone();
        room.join(&mut main, "bob");
        room.join(&mut main, "carol");
        let (bob, carol) = (user("bob"), user("carol"));

        let kick = json!({ "membership": "leave" });
        let result = room.send(&mut main, &carol, "m.room.member", Some(bob.as_str()), kick);
        assert!(matches!(result, Err(Error::Auth(_))), "{version}");

        let ban = json!({ "membership": "ban", "reason": "spam" });
        room.send(&mut main, &bob, "m.room.member", Some(carol.as_str()), ban)
            .unwrap();
        let message = json!({ "msgtype": "m.text", "body": "let me back" });
        let result = room.send(&mut main, &carol, "m.room.message", None, message);
        assert!(matches!(result, Err(Error::Auth(_))), "{version}");
        let rejoin = json!({ "membership": "join" });
        let result = room.send(
            &mut main,
            &carol,
            "m.room.member",
            Some(carol.as_str()),
            rejoin,
        );
        assert!(matches!(result, Err(Error::Auth(_))), "{version}");
    }
}

#[test]
fn auth_types_depend_on_event_and_version() {
    let bob = user("bob");
    let join = object(json!({ "membership": "join" }));
    let types = auth_types_for(
        &RoomVersionId::V11,
        "m.room.member",
        &bob,
        Some("@bob:hs1"),
        &join,
    )
    .unwrap();
    assert!(types.contains(&(StateEventType::RoomCreate, String::new())));
    assert!(types.contains(&(StateEventType::RoomJoinRules, String::new())));
    assert!(types.contains(&(StateEventType::RoomMember, "@bob:hs1".to_owned())));

    let types = auth_types_for(
        &RoomVersionId::V12,
        "m.room.member",
        &bob,
        Some("@bob:hs1"),
        &join,
    )
    .unwrap();
    assert!(!types.contains(&(StateEventType::RoomCreate, String::new())));

    let message = object(json!({ "body": "x" }));
    let types = auth_types_for(&RoomVersionId::V6, "m.room.message", &bob, None, &message).unwrap();
    assert!(!types.contains(&(StateEventType::RoomJoinRules, String::new())));
    assert!(
        auth_types_for(
            &RoomVersionId::V6,
            "m.room.create",
            &bob,
            Some(""),
            &message
        )
        .unwrap()
        .is_empty()
    );

    let no_membership = object(json!({}));
    let malformed = auth_types_for(
        &RoomVersionId::V6,
        "m.room.member",
        &bob,
        Some("@bob:hs1"),
        &no_membership,
    );
    assert!(matches!(malformed, Err(Error::InvalidPdu(_))));

    // Selection skips missing state, duplicates and, in v12, an explicitly requested create event.
    let state = |event_type: &StateEventType, _: &str| -> Option<OwnedEventId> {
        match event_type {
            StateEventType::RoomCreate => Some(ruma::owned_event_id!("$create")),
            StateEventType::RoomPowerLevels => Some(ruma::owned_event_id!("$pl")),
            _ => None,
        }
    };
    let types = vec![
        (StateEventType::RoomCreate, String::new()),
        (StateEventType::RoomPowerLevels, String::new()),
        (StateEventType::RoomPowerLevels, String::new()),
        (StateEventType::RoomMember, "@bob:hs1".to_owned()),
    ];
    assert_eq!(
        select_auth_events(&RoomVersionId::V11, &types, state)
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        select_auth_events(&RoomVersionId::V12, &types, state).unwrap(),
        [ruma::owned_event_id!("$pl")]
    );
}

#[test]
fn a_create_event_naming_an_unknown_room_version_is_rejected() {
    let mut room = TestRoom::new(RoomVersionId::V10, "public", &[]);
    let content = json!({ "creator": "@alice:hs1", "room_version": "org.example.unknown" });
    let alice = room.creator.clone();
    let fresh = crate::testing::Branch::default();
    let create = room
        .build(&fresh, &alice, "m.room.create", Some(""), content)
        .unwrap();
    assert!(reason(room.check(&create, &fresh)).contains("room_version"));
}
