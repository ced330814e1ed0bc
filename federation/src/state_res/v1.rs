//! The state resolution algorithm of room version 1, which ruma does not implement.
//!
//! Implemented from the room version 1 specification: unconflicted entries first; then the
//! conflicts of `m.room.power_levels`, `m.room.join_rules` and `m.room.member` in that order,
//! each replayed from the lowest depth and stopping at the first event the partial state does
//! not authorise; then every other conflict goes to the deepest event that is authorised. Ties
//! break on the SHA-1 of the event ID. Points the spec leaves open are decided here:
//!
//! * conflicted keys of one type are processed in `state_key` order, other types in
//!   `(type, state_key)` order, so the result is deterministic;
//! * if no candidate of an "other" conflict is authorised, the lowest-ordered one is kept (the
//!   key never disappears from the state);
//! * events `fetch_event` cannot find are not candidates.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BTreeSet},
};

use ruma::{
    EventId, OwnedEventId,
    events::StateEventType,
    room_version_rules::AuthorizationRules,
    state_res::{StateMap, check_state_dependent_auth_rules},
};
use sha1::{Digest, Sha1};

use crate::{Pdu, Result};

type Key = (StateEventType, String);

pub(super) fn resolve(
    rules: &AuthorizationRules,
    state_sets: &[StateMap<OwnedEventId>],
    fetch_event: impl Fn(&EventId) -> Option<Pdu>,
) -> Result<StateMap<OwnedEventId>> {
    // Distinct values per key; the string form of the type keeps the order total and stable.
    let mut values: BTreeMap<(String, String), (Key, BTreeSet<OwnedEventId>)> = BTreeMap::new();
    for state in state_sets {
        for (key, id) in state {
            values
                .entry((key.0.to_string(), key.1.clone()))
                .or_insert_with(|| (key.clone(), BTreeSet::new()))
                .1
                .insert(id.clone());
        }
    }

    let mut resolved: StateMap<OwnedEventId> = StateMap::new();
    let mut conflicts: Vec<(Key, Vec<Pdu>)> = Vec::new();
    for (key, ids) in values.into_values() {
        if ids.len() == 1 {
            resolved.insert(key, ids.into_iter().next().expect("one element"));
        } else {
            let events = ids
                .iter()
                .filter_map(|id| fetch_event(id))
                .collect::<Vec<_>>();
            if !events.is_empty() {
                conflicts.push((key, events));
            }
        }
    }

    let auth_types = [
        StateEventType::RoomPowerLevels,
        StateEventType::RoomJoinRules,
        StateEventType::RoomMember,
    ];
    for auth_type in &auth_types {
        for (key, events) in conflicts.iter_mut().filter(|(key, _)| key.0 == *auth_type) {
            // Ascending depth, then descending SHA-1 of the event ID.
            events.sort_by_cached_key(|event| (event.depth(), Reverse(sha1_of(event.event_id()))));
            resolved.insert(key.clone(), events[0].event_id().to_owned());
            for event in &events[1..] {
                if !allowed(rules, event, &resolved, &fetch_event) {
                    break;
                }
                resolved.insert(key.clone(), event.event_id().to_owned());
            }
        }
    }

    for (key, events) in conflicts
        .iter_mut()
        .filter(|(key, _)| !auth_types.contains(&key.0))
    {
        // Descending depth, then ascending SHA-1 of the event ID.
        events.sort_by_cached_key(|event| (Reverse(event.depth()), sha1_of(event.event_id())));
        let winner = events
            .iter()
            .find(|event| allowed(rules, event, &resolved, &fetch_event))
            .or(events.last())
            .expect("conflicts are never empty");
        resolved.insert(key.clone(), winner.event_id().to_owned());
    }

    Ok(resolved)
}

fn allowed(
    rules: &AuthorizationRules,
    event: &Pdu,
    state: &StateMap<OwnedEventId>,
    fetch_event: &impl Fn(&EventId) -> Option<Pdu>,
) -> bool {
    check_state_dependent_auth_rules(rules, event, |event_type, state_key| {
        state
            .get(&(event_type.clone(), state_key.to_owned()))
            .and_then(|id| fetch_event(id))
    })
    .is_ok()
}

fn sha1_of(event_id: &EventId) -> [u8; 20] {
    Sha1::digest(event_id.as_str().as_bytes()).into()
}
