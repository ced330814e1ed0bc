//! Building and signing local PDUs in the format of each room version.
//!
//! Decisions worth knowing:
//!
//! * **v1/v2 references.** `prev_events`/`auth_events` are `[event_id, {"sha256": hash}]` pairs.
//!   The builder does not hold the referenced events, so [`build_pdu_with_reference_hashes`]
//!   takes their reference hashes (computed with [`super::reference_hash_of`] when the events
//!   were stored); an event missing from that map is written with an empty hashes object `{}`.
//!   [`build_pdu`] writes `{}` for every reference. That is what Synapse itself emits and
//!   receivers only read the event ID, so it interoperates; supply the hashes when you have them.
//! * **`origin`.** Written for v1–v10, where the redaction algorithm keeps it (so it is signed);
//!   omitted from v11, whose format dropped it.
//! * **`redacts`.** Top level before v11, `content.redacts` from v11 (never both), following
//!   `RedactionRules::content_field_redacts`.
//! * **v12 (MSC4291).** The `m.room.create` event has no `room_id`; the room ID is its event ID
//!   with `!` for `$` ([`room_id_from_create_event_id`]). Other events must not list the create
//!   event in `auth_events`; the builder refuses to.

use std::collections::BTreeMap;

use rand::{Rng, distributions::Alphanumeric};
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, EventId, Int, OwnedEventId, OwnedRoomId, OwnedUserId,
    RoomId, RoomVersionId, ServerName,
    room_version_rules::{EventIdFormatVersion, EventsReferenceFormatVersion, RoomVersionRules},
    signatures,
};

use super::{Pdu, hash_event_id, string_field};
use crate::{Error, Result, ServerSigningKey, room_version::room_version_rules};

/// Everything a local event needs before it is hashed, signed and given an ID.
#[derive(Clone, Debug)]
pub struct PduTemplate {
    /// `None` only for the `m.room.create` event of a v12+ room, whose room ID is derived.
    pub room_id: Option<OwnedRoomId>,
    /// Must be a user of the `origin` server passed to [`build_pdu`].
    pub sender: OwnedUserId,
    pub event_type: String,
    /// `Some` makes it a state event.
    pub state_key: Option<String>,
    /// Use [`crate::keys::to_canonical_object`] to convert any serialisable content.
    pub content: CanonicalJsonObject,
    /// For `m.room.redaction` only; placed per room version (see the module docs).
    pub redacts: Option<OwnedEventId>,
    pub prev_events: Vec<OwnedEventId>,
    /// Pick these with [`crate::auth::select_auth_events`].
    pub auth_events: Vec<OwnedEventId>,
    pub depth: u64,
    pub origin_server_ts: u64,
}

/// A signed local PDU.
#[derive(Clone, Debug)]
pub struct BuiltPdu {
    pub event_id: OwnedEventId,
    pub room_id: OwnedRoomId,
    /// The full signed PDU exactly as sent over federation (v3+: without `event_id`).
    pub json: CanonicalJsonObject,
}

impl BuiltPdu {
    /// The event as the auth rules and state resolution consume it.
    pub fn to_pdu(&self) -> Result<Pdu> {
        Pdu::from_json(self.event_id.clone(), self.json.clone())
    }
}

/// Builds, hashes and signs a local event; v1/v2 references carry `{}` hashes (module docs).
pub fn build_pdu(
    version: &RoomVersionId,
    template: PduTemplate,
    origin: &ServerName,
    key: &ServerSigningKey,
) -> Result<BuiltPdu> {
    build_pdu_with_reference_hashes(version, template, &BTreeMap::new(), origin, key)
}

/// [`build_pdu`], writing `{"sha256": hash}` next to each v1/v2 reference found in
/// `reference_hashes` (event ID → reference hash). Ignored from v3.
pub fn build_pdu_with_reference_hashes(
    version: &RoomVersionId,
    template: PduTemplate,
    reference_hashes: &BTreeMap<OwnedEventId, String>,
    origin: &ServerName,
    key: &ServerSigningKey,
) -> Result<BuiltPdu> {
    let rules = room_version_rules(version)?;
    let template_room_id = template.room_id.clone();
    let mut json = prepare_pdu(version, template, reference_hashes, origin)?;
    let event_id = hash_and_sign_with(&rules, &mut json, origin, key)?;
    let room_id = match template_room_id {
        Some(room_id) => room_id,
        None => room_id_from_create_event_id(&event_id)?,
    };
    Ok(BuiltPdu { event_id, room_id, json })
}

/// The event of `template` in its room version's format, before hashing and signing: what a
/// resident server answers to `make_join`/`make_leave`/`make_knock`, with `origin` the
/// joining server (whose user is the sender and who will hash and sign it).
pub fn prepare_pdu(
    version: &RoomVersionId,
    template: PduTemplate,
    reference_hashes: &BTreeMap<OwnedEventId, String>,
    origin: &ServerName,
) -> Result<CanonicalJsonObject> {
    let rules = room_version_rules(version)?;
    let is_create = template.event_type == "m.room.create";
    let room_id_is_derived = rules.authorization.room_create_event_id_as_room_id;

    if template.sender.server_name() != origin {
        return Err(Error::InvalidPdu(format!(
            "sender {} is not a user of the origin server {origin}",
            template.sender
        )));
    }
    if template.event_type.is_empty() {
        return Err(Error::InvalidPdu("empty event type".to_owned()));
    }
    match (&template.room_id, is_create && room_id_is_derived) {
        (Some(_), true) => {
            return Err(Error::InvalidPdu(format!(
                "the m.room.create event of a room version {version} room has no room_id"
            )));
        }
        (None, false) => return Err(Error::InvalidPdu("missing room_id".to_owned())),
        (Some(room_id), false) if room_id_is_derived => {
            let create_id = create_event_id_from_room_id(room_id)?;
            if template.auth_events.contains(&create_id) {
                return Err(Error::InvalidPdu(format!(
                    "room version {version} events must not list the m.room.create event in auth_events"
                )));
            }
        }
        _ => {}
    }

    let mut json = CanonicalJsonObject::new();
    let mut content = template.content;
    if let Some(redacts) = template.redacts {
        if template.event_type != "m.room.redaction" {
            return Err(Error::InvalidPdu(
                "`redacts` is only valid on m.room.redaction".to_owned(),
            ));
        }
        if rules.redaction.content_field_redacts {
            content.insert("redacts".to_owned(), redacts.to_string().into());
        } else {
            json.insert("redacts".to_owned(), redacts.to_string().into());
        }
    }
    if let Some(room_id) = &template.room_id {
        json.insert("room_id".to_owned(), room_id.to_string().into());
    }
    json.insert("sender".to_owned(), template.sender.to_string().into());
    json.insert("type".to_owned(), template.event_type.into());
    if let Some(state_key) = template.state_key {
        json.insert("state_key".to_owned(), state_key.into());
    }
    json.insert("content".to_owned(), CanonicalJsonValue::Object(content));
    json.insert("depth".to_owned(), integer(template.depth, "depth")?);
    json.insert(
        "origin_server_ts".to_owned(),
        integer(template.origin_server_ts, "origin_server_ts")?,
    );
    if rules.redaction.keep_origin_membership_prev_state {
        json.insert("origin".to_owned(), origin.to_string().into());
    }
    json.insert(
        "prev_events".to_owned(),
        references(&rules, &template.prev_events, reference_hashes),
    );
    json.insert(
        "auth_events".to_owned(),
        references(&rules, &template.auth_events, reference_hashes),
    );
    if rules.event_id_format == EventIdFormatVersion::V1 {
        json.insert("event_id".to_owned(), random_event_id(origin).into());
    }
    Ok(json)
}

/// Adds the content hash and this server's signature to a prepared PDU (e.g. the template a
/// resident server returned from `make_join`) and returns its event ID: the `event_id` field for
/// v1/v2 (which must be present), the reference hash from v3.
pub fn hash_and_sign_pdu(
    version: &RoomVersionId,
    json: &mut CanonicalJsonObject,
    origin: &ServerName,
    key: &ServerSigningKey,
) -> Result<OwnedEventId> {
    let rules = room_version_rules(version)?;
    hash_and_sign_with(&rules, json, origin, key)
}

/// Adds this server's signature to an already hashed PDU without touching its hashes, as a
/// resident server does on `send_join` and an invited server on `invite`.
pub fn sign_pdu(
    version: &RoomVersionId,
    json: &mut CanonicalJsonObject,
    origin: &ServerName,
    key: &ServerSigningKey,
) -> Result<()> {
    let rules = room_version_rules(version)?;
    signatures::sign_event(origin.as_str(), key.key_pair(), json, &rules.redaction)
        .map_err(|e| Error::Json(e.to_string()))
}

/// The room ID of a v12+ room: the `m.room.create` event ID with `!` instead of `$`.
pub fn room_id_from_create_event_id(create_event_id: &EventId) -> Result<OwnedRoomId> {
    let hash = create_event_id
        .as_str()
        .strip_prefix('$')
        .unwrap_or(create_event_id.as_str());
    if hash.contains(':') {
        return Err(Error::InvalidPdu(format!(
            "{create_event_id} is not a reference-hash event ID"
        )));
    }
    RoomId::parse(format!("!{hash}")).map_err(|e| Error::InvalidPdu(e.to_string()))
}

/// The `m.room.create` event ID of a v12+ room: the room ID with `$` instead of `!`.
pub fn create_event_id_from_room_id(room_id: &RoomId) -> Result<OwnedEventId> {
    EventId::parse(format!("${}", room_id.strip_sigil()))
        .map_err(|e| Error::InvalidPdu(e.to_string()))
}

fn hash_and_sign_with(
    rules: &RoomVersionRules,
    json: &mut CanonicalJsonObject,
    origin: &ServerName,
    key: &ServerSigningKey,
) -> Result<OwnedEventId> {
    signatures::hash_and_sign_event(origin.as_str(), key.key_pair(), json, &rules.redaction)
        .map_err(|e| Error::Json(e.to_string()))?;
    if rules.event_id_format == EventIdFormatVersion::V1 {
        let raw = string_field(json, "event_id")?
            .ok_or_else(|| Error::InvalidPdu("missing `event_id` field".to_owned()))?;
        EventId::parse(raw).map_err(|e| Error::InvalidPdu(format!("`event_id`: {e}")))
    } else {
        hash_event_id(rules, json)
    }
}

fn references(
    rules: &RoomVersionRules,
    ids: &[OwnedEventId],
    reference_hashes: &BTreeMap<OwnedEventId, String>,
) -> CanonicalJsonValue {
    let items = ids.iter().map(|id| {
        let id_value = CanonicalJsonValue::String(id.to_string());
        if rules.events_reference_format == EventsReferenceFormatVersion::V1 {
            let mut hashes = CanonicalJsonObject::new();
            if let Some(hash) = reference_hashes.get(id) {
                hashes.insert("sha256".to_owned(), hash.clone().into());
            }
            CanonicalJsonValue::Array(vec![id_value, CanonicalJsonValue::Object(hashes)])
        } else {
            id_value
        }
    });
    CanonicalJsonValue::Array(items.collect())
}

fn integer(value: u64, field: &str) -> Result<CanonicalJsonValue> {
    Int::try_from(value)
        .map(CanonicalJsonValue::Integer)
        .map_err(|_| Error::InvalidPdu(format!("`{field}` does not fit a canonical JSON integer")))
}

/// A v1/v2 event ID, `$<24 random alphanumerics>:<origin>`.
fn random_event_id(origin: &ServerName) -> String {
    let local: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    format!("${local}:{origin}")
}
