//! The client-server ("ClientEvent") view of a PDU.
//!
//! Clients never see federation-only fields (`hashes`, `signatures`, `auth_events`,
//! `prev_events`, `depth`, `origin`); the PDU JSON stays the single stored form and this view is
//! computed on the way out, with `unsigned.age` relative to the serving time.

use ruma::{CanonicalJsonObject, CanonicalJsonValue, EventId, RoomVersionId};
use serde_json::{Map, Value};

use super::{build::room_id_from_create_event_id, redacts_field};

/// Top-level PDU fields copied verbatim into the client event.
const COPIED_FIELDS: [&str; 6] = [
    "content",
    "origin_server_ts",
    "room_id",
    "sender",
    "type",
    "state_key",
];

/// Renders a PDU as a client event.
///
/// * `redacts` is set top-level for every room version; from v11 it is read from (and mirrors)
///   `content.redacts`, which is where the signed value lives.
/// * A v12 `m.room.create` event, which has no `room_id`, gets the derived one.
/// * `unsigned` is the PDU's own `unsigned` (minus the federation-only `age_ts`) plus
///   `age = now_ms - origin_server_ts` (0 if the clocks disagree). Add `transaction_id`,
///   `prev_content`, `redacted_because`, … with [`merge_unsigned`].
pub fn client_event(
    pdu_json: &CanonicalJsonObject,
    event_id: &EventId,
    now_ms: u64,
    version: &RoomVersionId,
) -> Value {
    let mut event = Map::new();
    for field in COPIED_FIELDS {
        if let Some(value) = pdu_json.get(field) {
            event.insert(field.to_owned(), value.clone().into());
        }
    }
    event.insert("event_id".to_owned(), event_id.as_str().into());

    if !event.contains_key("room_id")
        && pdu_json.get("type").and_then(CanonicalJsonValue::as_str) == Some("m.room.create")
        && let Ok(room_id) = room_id_from_create_event_id(event_id)
    {
        event.insert("room_id".to_owned(), room_id.as_str().into());
    }

    let content_field_redacts = version
        .rules()
        .map(|rules| rules.redaction.content_field_redacts);
    if let Some(redacts) = redacts_field(pdu_json, content_field_redacts) {
        event.insert("redacts".to_owned(), redacts.into());
    }

    let mut unsigned = match pdu_json.get("unsigned") {
        Some(CanonicalJsonValue::Object(unsigned)) => unsigned
            .iter()
            .filter(|(key, _)| key.as_str() != "age_ts")
            .map(|(key, value)| (key.clone(), Value::from(value.clone())))
            .collect(),
        _ => Map::new(),
    };
    let origin_server_ts = pdu_json
        .get("origin_server_ts")
        .and_then(CanonicalJsonValue::as_integer)
        .and_then(|ts| u64::try_from(i64::from(ts)).ok())
        .unwrap_or(now_ms);
    unsigned.insert(
        "age".to_owned(),
        now_ms.saturating_sub(origin_server_ts).into(),
    );
    event.insert("unsigned".to_owned(), Value::Object(unsigned));

    Value::Object(event)
}

/// Adds `extra` to the event's `unsigned` object (created if missing), replacing equal keys.
pub fn merge_unsigned(event: &mut Value, extra: Map<String, Value>) {
    let Value::Object(event) = event else { return };
    let unsigned = event
        .entry("unsigned")
        .or_insert_with(|| Value::Object(Map::new()));
    if !unsigned.is_object() {
        *unsigned = Value::Object(Map::new());
    }
    if let Value::Object(unsigned) = unsigned {
        unsigned.extend(extra);
    }
}
