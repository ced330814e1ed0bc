//! State resolution: merging the room states of forked DAG branches into one.
//!
//! Room versions 2–12 use ruma's implementation of state resolution v2; this module feeds it
//! [`Pdu`]s and computes what ruma asks the caller for: auth chains, and from v12 the
//! *conflicted state subgraph*. Room version 1, which ruma does not implement, gets the original
//! algorithm in [`v1`]. Storage stays outside: every event is reached through `fetch_event`.

mod v1;

use std::collections::{HashMap, HashSet, VecDeque};

use ruma::{
    EventId, OwnedEventId, RoomVersionId,
    room_version_rules::StateResolutionVersion,
    state_res::{self, utils::event_id_set::EventIdSet},
};

pub use ruma::state_res::StateMap;

use crate::{Error, Pdu, Result, room_version::room_version_rules};

/// Resolves the states after each fork (`state_sets`) into the room state.
///
/// `auth_chain_sets[i]` must be the full auth chain of `state_sets[i]` (see
/// [`state_set_auth_chain`]); v1 rooms ignore it. Events that `fetch_event` cannot find are not
/// honoured, as the spec requires for events a server cannot verify; a rejected event must come
/// back from `fetch_event` with [`Pdu::with_rejected`] set.
pub fn resolve_state(
    version: &RoomVersionId,
    state_sets: &[StateMap<OwnedEventId>],
    auth_chain_sets: Vec<HashSet<OwnedEventId>>,
    fetch_event: impl Fn(&EventId) -> Option<Pdu>,
) -> Result<StateMap<OwnedEventId>> {
    let rules = room_version_rules(version)?;
    match &rules.state_res {
        StateResolutionVersion::V2(state_res_rules) => {
            let auth_chains = auth_chain_sets
                .into_iter()
                .map(|chain| chain.into_iter().collect::<EventIdSet<_>>())
                .collect();
            state_res::resolve(
                &rules.authorization,
                state_res_rules,
                state_sets.iter(),
                auth_chains,
                &fetch_event,
                |conflicted: &StateMap<Vec<OwnedEventId>>| {
                    let subgraph =
                        conflicted_state_subgraph(conflicted.values().flatten(), &fetch_event);
                    Some(subgraph.into_iter().collect())
                },
            )
            .map_err(|e| Error::StateResolution(e.to_string()))
        }
        StateResolutionVersion::V1 => v1::resolve(&rules.authorization, state_sets, &fetch_event),
        _ => Err(Error::UnsupportedRoomVersion(version.to_string())),
    }
}

/// The auth chain of the given events: their `auth_events`, and theirs, recursively (the events
/// themselves are included only if another one's chain reaches them). Unknown events end a path.
pub fn auth_chain<I>(
    event_ids: I,
    fetch_event: impl Fn(&EventId) -> Option<Pdu>,
) -> HashSet<OwnedEventId>
where
    I: IntoIterator,
    I::Item: AsRef<EventId>,
{
    let mut chain = HashSet::new();
    let mut queue: VecDeque<OwnedEventId> = VecDeque::new();
    for id in event_ids {
        if let Some(pdu) = fetch_event(id.as_ref()) {
            queue.extend(pdu.auth_event_ids().iter().cloned());
        }
    }
    while let Some(id) = queue.pop_front() {
        if chain.contains(&id) {
            continue;
        }
        if let Some(pdu) = fetch_event(&id) {
            queue.extend(
                pdu.auth_event_ids()
                    .iter()
                    .filter(|a| !chain.contains(*a))
                    .cloned(),
            );
        }
        chain.insert(id);
    }
    chain
}

/// The full auth chain of a state set: the union of its events' auth chains.
pub fn state_set_auth_chain(
    state: &StateMap<OwnedEventId>,
    fetch_event: impl Fn(&EventId) -> Option<Pdu>,
) -> HashSet<OwnedEventId> {
    auth_chain(state.values(), fetch_event)
}

/// The v12 *conflicted state subgraph*: every event on an `auth_events` path from one
/// conflicted event to another, endpoints included.
///
/// Walks down from the conflicted events to collect everything they reach, then keeps the events
/// from which a conflicted event is reachable (a reverse walk over the collected edges), so it is
/// linear in the size of the auth chains involved.
pub fn conflicted_state_subgraph<'a>(
    conflicted: impl IntoIterator<Item = &'a OwnedEventId>,
    fetch_event: impl Fn(&EventId) -> Option<Pdu>,
) -> HashSet<OwnedEventId> {
    let conflicted: HashSet<OwnedEventId> = conflicted.into_iter().cloned().collect();

    // Everything reachable from a conflicted event, with the reversed edges among it.
    let mut reached: HashSet<OwnedEventId> = HashSet::new();
    let mut children: HashMap<OwnedEventId, Vec<OwnedEventId>> = HashMap::new();
    let mut stack: Vec<OwnedEventId> = conflicted.iter().cloned().collect();
    while let Some(id) = stack.pop() {
        if !reached.insert(id.clone()) {
            continue;
        }
        if let Some(pdu) = fetch_event(&id) {
            for auth_id in pdu.auth_event_ids() {
                children
                    .entry(auth_id.clone())
                    .or_default()
                    .push(id.clone());
                if !reached.contains(auth_id) {
                    stack.push(auth_id.clone());
                }
            }
        }
    }

    // Walking the reversed edges up from the conflicted events finds every reached event that
    // leads down to a conflicted event; being reached, it also hangs below one, and the two
    // differ because the graph is acyclic. The conflicted events themselves come along as
    // endpoints (harmless: they are in the full conflicted set anyway).
    let mut subgraph: HashSet<OwnedEventId> = HashSet::new();
    let mut stack: Vec<OwnedEventId> = conflicted.into_iter().collect();
    while let Some(id) = stack.pop() {
        if !subgraph.insert(id.clone()) {
            continue;
        }
        for parent in children.get(&id).into_iter().flatten() {
            if !subgraph.contains(parent) {
                stack.push(parent.clone());
            }
        }
    }
    subgraph
}

#[cfg(test)]
mod tests;
