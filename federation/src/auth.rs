//! Authorization: which state events authorise a new event, and whether an event passes the
//! room version's authorization rules.
//!
//! The rules themselves are ruma-state-res's; this module binds them to [`Pdu`] and to the room
//! version, and adds the two things ruma leaves to the server: picking `auth_events` for a local
//! event out of the current state (never the create event from v12, MSC4291), and assembling the
//! state implied by an event's own `auth_events` for the first check on receipt.

use std::collections::HashMap;

use ruma::{
    CanonicalJsonObject, EventId, OwnedEventId, RoomVersionId, UserId,
    events::{StateEventType, TimelineEventType},
    state_res,
};
use serde_json::value::RawValue as RawJsonValue;

use crate::{
    Error, Pdu, Result,
    pdu::create_event_id_from_room_id,
    room_version::{is_supported_room_version, room_version_rules},
};

/// The `(type, state_key)` pairs of the state events that authorise an event
/// ([auth events selection]); excludes `m.room.create` from v12.
///
/// Fails if the version is unsupported or if `content` is malformed for the event type (e.g. an
/// `m.room.member` event without `membership`).
///
/// [auth events selection]: https://spec.matrix.org/latest/server-server-api/#auth-events-selection
pub fn auth_types_for(
    version: &RoomVersionId,
    event_type: &str,
    sender: &UserId,
    state_key: Option<&str>,
    content: &CanonicalJsonObject,
) -> Result<Vec<(StateEventType, String)>> {
    let rules = room_version_rules(version)?;
    let content = RawJsonValue::from_string(
        serde_json::to_string(content).map_err(|e| Error::Json(e.to_string()))?,
    )
    .map_err(|e| Error::Json(e.to_string()))?;
    state_res::auth_types_for_event(
        &TimelineEventType::from(event_type),
        sender,
        state_key,
        &content,
        &rules.authorization,
    )
    .map_err(Error::InvalidPdu)
}

/// Picks the `auth_events` of a new local event: the current state event for each of `types`
/// (from [`auth_types_for`]) that exists, without duplicates, never the `m.room.create` event in
/// a room version where the room ID stands for it (v12+).
pub fn select_auth_events(
    version: &RoomVersionId,
    types: &[(StateEventType, String)],
    current_state: impl Fn(&StateEventType, &str) -> Option<OwnedEventId>,
) -> Result<Vec<OwnedEventId>> {
    let rules = room_version_rules(version)?;
    let mut selected: Vec<OwnedEventId> = Vec::with_capacity(types.len());
    for (event_type, state_key) in types {
        if *event_type == StateEventType::RoomCreate
            && !rules.event_format.allow_room_create_in_auth_events
        {
            continue;
        }
        if let Some(event_id) = current_state(event_type, state_key)
            && !selected.contains(&event_id)
        {
            selected.push(event_id);
        }
    }
    Ok(selected)
}

/// Checks `event` against the authorization rules of `version`.
///
/// * `fetch_event` resolves the event's `auth_events` (and from v12 the create event named by the
///   room ID); the state-independent rules check those.
/// * `fetch_state` answers from the state the event is checked against: its auth events, the
///   state before it, or the current state — the three checks on receipt of a PDU.
///
/// The error is [`Error::Auth`] carrying ruma's reason, e.g. "sender does not have enough power
/// to send event of type `m.room.name`".
pub fn check_auth(
    version: &RoomVersionId,
    event: &Pdu,
    fetch_event: impl Fn(&EventId) -> Option<Pdu>,
    fetch_state: impl Fn(&StateEventType, &str) -> Option<Pdu>,
) -> Result<()> {
    let rules = room_version_rules(version)?;
    if *event.event_type() == TimelineEventType::RoomCreate {
        check_create_room_version(event)?;
    }
    state_res::check_state_independent_auth_rules(&rules.authorization, event, &fetch_event)
        .map_err(Error::Auth)?;
    state_res::check_state_dependent_auth_rules(&rules.authorization, event, fetch_state)
        .map_err(Error::Auth)
}

/// [`check_auth`] against the state formed by the event's own `auth_events` (plus, from v12, the
/// create event named by the room ID): the first check on receipt of a PDU.
pub fn check_auth_against_auth_events(
    version: &RoomVersionId,
    event: &Pdu,
    fetch_event: impl Fn(&EventId) -> Option<Pdu>,
) -> Result<()> {
    let rules = room_version_rules(version)?;
    let mut state: HashMap<(StateEventType, String), Pdu> = HashMap::new();
    let mut add = |pdu: Pdu| {
        if let Some(state_key) = pdu.state_key() {
            let key = (
                StateEventType::from(pdu.event_type().to_string()),
                state_key.to_owned(),
            );
            state.insert(key, pdu);
        }
    };
    for id in event.auth_event_ids() {
        if let Some(pdu) = fetch_event(id) {
            add(pdu);
        }
    }
    if rules.authorization.room_create_event_id_as_room_id
        && let Some(room_id) = event.room_id()
        && let Some(create) = fetch_event(&create_event_id_from_room_id(room_id)?)
    {
        add(create);
    }
    check_auth(version, event, &fetch_event, |event_type, state_key| {
        state
            .get(&(event_type.clone(), state_key.to_owned()))
            .cloned()
    })
}

/// "If `content.room_version` is present and is not a recognised version, reject." ruma leaves
/// this rule to the caller.
fn check_create_room_version(event: &Pdu) -> Result<()> {
    let Some(value) = event.content_object().get("room_version") else {
        return Ok(());
    };
    let recognised = value
        .as_str()
        .and_then(|raw| RoomVersionId::try_from(raw).ok())
        .is_some_and(|version| is_supported_room_version(&version));
    if recognised {
        Ok(())
    } else {
        Err(Error::Auth(
            "`m.room.create` event has an unrecognised `room_version`".to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests;
