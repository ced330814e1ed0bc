use ruma::{RoomVersionId, events::StateEventType};
use serde_json::json;
use sha1::{Digest, Sha1};

use super::*;
use crate::testing::{Branch, TestRoom, user};

const TOPIC: StateEventType = StateEventType::RoomTopic;

fn resolve(room: &TestRoom, branches: &[&Branch]) -> StateMap<OwnedEventId> {
    let state_sets: Vec<_> = branches.iter().map(|branch| branch.state.clone()).collect();
    let chains = state_sets
        .iter()
        .map(|state| state_set_auth_chain(state, room.fetch()))
        .collect();
    let resolved = resolve_state(&room.version, &state_sets, chains, room.fetch()).unwrap();

    // The order of the forks must not matter.
    let reversed: Vec<_> = state_sets.iter().rev().cloned().collect();
    let chains = reversed
        .iter()
        .map(|state| state_set_auth_chain(state, room.fetch()))
        .collect();
    assert_eq!(
        resolve_state(&room.version, &reversed, chains, room.fetch()).unwrap(),
        resolved
    );
    resolved
}

fn get(
    state: &StateMap<OwnedEventId>,
    event_type: StateEventType,
    state_key: &str,
) -> OwnedEventId {
    state[&(event_type, state_key.to_owned())].clone()
}

/// Power levels giving `users` their levels, plus alice's 100 where creators are not implicit.
fn power_levels(room: &TestRoom, users: &[(&str, i64)]) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    if room.version != RoomVersionId::V12 {
        map.insert(room.creator.to_string(), 100.into());
    }
    for (name, level) in users {
        map.insert(user(name).to_string(), (*level).into());
    }
    json!({ "users": map })
}

/// (a) alice demotes bob on one fork while bob changes the topic on the other.
fn demoted_users_topic_loses(version: RoomVersionId) {
    let mut room = TestRoom::new(version.clone(), "public", &[("bob", 50)]);
    let mut main = room.main.clone();
    let alice = room.creator.clone();
    room.join(&mut main, "bob");
    let base_topic = room
        .send(
            &mut main,
            &alice,
            "m.room.topic",
            Some(""),
            json!({ "topic": "base" }),
        )
        .unwrap();

    let mut demotion = main.clone();
    let levels = power_levels(&room, &[]);
    let new_levels = room
        .send(
            &mut demotion,
            &alice,
            "m.room.power_levels",
            Some(""),
            levels,
        )
        .unwrap();
    let mut topic = main.clone();
    room.send(
        &mut topic,
        &user("bob"),
        "m.room.topic",
        Some(""),
        json!({ "topic": "bob's" }),
    )
    .unwrap();

    let resolved = resolve(&room, &[&demotion, &topic]);
    assert_eq!(
        get(&resolved, TOPIC, ""),
        base_topic.event_id(),
        "{version}"
    );
    assert_eq!(
        get(&resolved, StateEventType::RoomPowerLevels, ""),
        new_levels.event_id(),
        "{version}"
    );
    assert_eq!(resolved.len(), main.state.len(), "{version}");
}

/// (b) alice bans carol on one fork while carol updates her profile on the other.
fn ban_beats_the_banned_users_member_update(version: RoomVersionId) {
    let mut room = TestRoom::new(version.clone(), "public", &[]);
    let mut main = room.main.clone();
    let (alice, carol) = (room.creator.clone(), user("carol"));
    room.join(&mut main, "carol");

    let mut ban = main.clone();
    let ban_event = room
        .send(
            &mut ban,
            &alice,
            "m.room.member",
            Some(carol.as_str()),
            json!({ "membership": "ban" }),
        )
        .unwrap();
    let mut profile = main.clone();
    let rename = json!({ "membership": "join", "displayname": "Carol II" });
    room.send(
        &mut profile,
        &carol,
        "m.room.member",
        Some(carol.as_str()),
        rename,
    )
    .unwrap();
    room.send(
        &mut profile,
        &carol,
        "m.room.message",
        None,
        json!({ "body": "hi" }),
    )
    .unwrap();

    let resolved = resolve(&room, &[&ban, &profile]);
    assert_eq!(
        get(&resolved, StateEventType::RoomMember, carol.as_str()),
        ban_event.event_id(),
        "{version}"
    );
}

/// (c) bob and carol, equally powerful, change the topic on two forks.
fn equal_power_topics(
    version: RoomVersionId,
    bob_ts: u64,
    carol_ts: u64,
) -> (OwnedEventId, OwnedEventId, OwnedEventId) {
    let mut room = TestRoom::new(version, "public", &[("bob", 50), ("carol", 50)]);
    let mut main = room.main.clone();
    room.join(&mut main, "bob");
    room.join(&mut main, "carol");

    let mut left = main.clone();
    room.set_clock(bob_ts - 1);
    let bob_topic = room
        .send(
            &mut left,
            &user("bob"),
            "m.room.topic",
            Some(""),
            json!({ "topic": "bob" }),
        )
        .unwrap();
    let mut right = main.clone();
    room.set_clock(carol_ts - 1);
    let carol_topic = room
        .send(
            &mut right,
            &user("carol"),
            "m.room.topic",
            Some(""),
            json!({ "topic": "carol" }),
        )
        .unwrap();
    assert_eq!(
        (bob_topic.origin_server_ts(), carol_topic.origin_server_ts()),
        (bob_ts, carol_ts)
    );

    let resolved = resolve(&room, &[&left, &right]);
    (
        get(&resolved, TOPIC, ""),
        bob_topic.event_id().to_owned(),
        carol_topic.event_id().to_owned(),
    )
}

#[test]
fn a_demoted_users_concurrent_topic_loses() {
    for version in [
        RoomVersionId::V1,
        RoomVersionId::V2,
        RoomVersionId::V6,
        RoomVersionId::V10,
        RoomVersionId::V11,
        RoomVersionId::V12,
    ] {
        demoted_users_topic_loses(version);
    }
}

#[test]
fn a_ban_wins_over_the_banned_users_concurrent_member_event() {
    for version in [
        RoomVersionId::V1,
        RoomVersionId::V6,
        RoomVersionId::V11,
        RoomVersionId::V12,
    ] {
        ban_beats_the_banned_users_member_update(version);
    }
}

#[test]
fn equal_power_topics_resolve_by_timestamp_then_event_id() {
    for version in [RoomVersionId::V6, RoomVersionId::V12] {
        // Mainline positions tie, so the later origin_server_ts is applied last and wins, whichever
        // fork it is on.
        let (winner, bob, _) = equal_power_topics(version.clone(), 50_000, 40_000);
        assert_eq!(winner, bob, "{version}");
        let (winner, _, carol) = equal_power_topics(version.clone(), 40_000, 50_000);
        assert_eq!(winner, carol, "{version}");
        // Same timestamp: the greater event ID sorts last and wins.
        let (winner, bob, carol) = equal_power_topics(version.clone(), 60_000, 60_000);
        assert_eq!(winner, bob.clone().max(carol), "{version}");
    }
}

#[test]
fn v1_resolves_equal_depth_topics_by_lowest_sha1() {
    let sha1 = |id: &OwnedEventId| -> [u8; 20] { Sha1::digest(id.as_str().as_bytes()).into() };
    let (winner, bob, carol) = equal_power_topics(RoomVersionId::V1, 60_000, 70_000);
    let expected = if sha1(&bob) < sha1(&carol) {
        bob
    } else {
        carol
    };
    assert_eq!(winner, expected);
}

#[test]
fn a_single_state_set_resolves_to_itself() {
    let room = TestRoom::new(RoomVersionId::V12, "public", &[]);
    let state = room.main.state.clone();
    let chain = state_set_auth_chain(&state, room.fetch());
    assert_eq!(
        resolve_state(
            &RoomVersionId::V12,
            std::slice::from_ref(&state),
            vec![chain],
            room.fetch()
        )
        .unwrap(),
        state
    );
    let custom = RoomVersionId::try_from("org.example.custom").unwrap();
    assert!(resolve_state(&custom, &[state], vec![], room.fetch()).is_err());
}

#[test]
fn auth_chains_walk_auth_events_transitively() {
    for version in [RoomVersionId::V11, RoomVersionId::V12] {
        let mut room = TestRoom::new(version.clone(), "public", &[]);
        let mut main = room.main.clone();
        let bob_join = room.join(&mut main, "bob");
        let id = |event_type, state_key: &str| main.get(event_type, state_key).unwrap().clone();
        let (create, alice_join) = (
            id(StateEventType::RoomCreate, ""),
            id(StateEventType::RoomMember, "@alice:hs1"),
        );
        let (levels, join_rules) = (
            id(StateEventType::RoomPowerLevels, ""),
            id(StateEventType::RoomJoinRules, ""),
        );

        let chain = auth_chain([bob_join.event_id()], room.fetch());
        let mut expected = HashSet::from([alice_join, levels, join_rules]);
        if version != RoomVersionId::V12 {
            expected.insert(create);
        }
        assert_eq!(
            chain, expected,
            "{version}: v12 events never reach the create event"
        );
        assert!(!chain.contains(bob_join.event_id()));
    }
}

#[test]
fn the_conflicted_subgraph_holds_the_paths_between_conflicted_events() {
    let mut room = TestRoom::new(RoomVersionId::V12, "public", &[("bob", 50)]);
    let mut main = room.main.clone();
    let alice = room.creator.clone();
    let bob_join = room.join(&mut main, "bob");
    let base_topic = room
        .send(
            &mut main,
            &alice,
            "m.room.topic",
            Some(""),
            json!({ "topic": "a" }),
        )
        .unwrap();
    let base_levels = main
        .get(StateEventType::RoomPowerLevels, "")
        .unwrap()
        .clone();
    let join_rules = main.get(StateEventType::RoomJoinRules, "").unwrap().clone();

    let mut left = main.clone();
    let levels = power_levels(&room, &[]);
    let new_levels = room
        .send(&mut left, &alice, "m.room.power_levels", Some(""), levels)
        .unwrap();
    let mut right = main.clone();
    let bob_topic = room
        .send(
            &mut right,
            &user("bob"),
            "m.room.topic",
            Some(""),
            json!({ "topic": "b" }),
        )
        .unwrap();

    let conflicted = [
        new_levels.event_id().to_owned(),
        base_levels.clone(),
        base_topic.event_id().to_owned(),
        bob_topic.event_id().to_owned(),
    ];
    let subgraph = conflicted_state_subgraph(&conflicted, room.fetch());
    // bob's join and the join rules lie on bob_topic -> bob_join -> join_rules -> base_levels;
    // alice's join only leads to events outside the conflicted set.
    let mut expected: HashSet<OwnedEventId> = conflicted.iter().cloned().collect();
    expected.extend([bob_join.event_id().to_owned(), join_rules]);
    assert_eq!(subgraph, expected);
}
