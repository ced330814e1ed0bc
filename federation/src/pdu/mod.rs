//! Persistent data units: building, identifying, verifying, redacting and presenting room events.
//!
//! A PDU lives in this crate as the exact `CanonicalJsonObject` that goes over federation,
//! because signatures and hashes cover that JSON byte for byte: any typed round trip would risk
//! dropping an unknown field and invalidating the event. [`Pdu`] wraps such an object with the
//! few fields the authorization rules and state resolution need, parsed once.
//!
//! Event IDs depend on the room version: v1/v2 carry an `event_id` field (`$random:origin`),
//! v3+ derive it from the reference hash (see [`event_id_of`]). Consequently a v3+ PDU must be
//! stored and hashed *without* an `event_id` field.

mod build;
mod client;
mod format;

use std::{fmt, sync::Arc};

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, EventId, MilliSecondsSinceUnixEpoch, OwnedEventId,
    OwnedRoomId, OwnedUserId, RoomId, RoomVersionId, UInt, UserId,
    events::TimelineEventType,
    room_version_rules::{EventIdFormatVersion, RoomVersionRules},
    signatures,
};
use serde_json::value::RawValue as RawJsonValue;

pub use self::{
    build::{
        BuiltPdu, PduTemplate, build_pdu, build_pdu_with_reference_hashes,
        create_event_id_from_room_id, hash_and_sign_pdu, prepare_pdu, room_id_from_create_event_id,
        sign_pdu,
    },
    client::{client_event, merge_unsigned},
    format::{Verified, check_pdu_format, redact_pdu, required_signing_servers, verify_pdu},
};
use crate::{Error, Result, room_version::room_version_rules};

/// The reference hash of a PDU ([spec]): sha256 over the redacted event without `signatures`
/// and `unsigned`, unpadded base64 (standard alphabet up to v3, URL-safe from v4).
///
/// For v1/v2 rooms this is the hash that goes next to an event ID in `prev_events` /
/// `auth_events`; from v3 it *is* the event ID (see [`reference_event_id`]).
///
/// [spec]: https://spec.matrix.org/latest/server-server-api/#calculating-the-reference-hash-for-an-event
pub fn reference_hash_of(version: &RoomVersionId, json: &CanonicalJsonObject) -> Result<String> {
    let rules = room_version_rules(version)?;
    reference_hash_with(&rules, json)
}

pub(crate) fn reference_hash_with(
    rules: &RoomVersionRules,
    json: &CanonicalJsonObject,
) -> Result<String> {
    signatures::reference_hash(json, rules).map_err(|e| Error::InvalidPdu(e.to_string()))
}

/// The event ID of a v3+ PDU: `$` followed by its reference hash. Fails for v1/v2, whose IDs are
/// not hashes (use [`event_id_of`]).
pub fn reference_event_id(
    version: &RoomVersionId,
    json: &CanonicalJsonObject,
) -> Result<OwnedEventId> {
    let rules = room_version_rules(version)?;
    if rules.event_id_format == EventIdFormatVersion::V1 {
        return Err(Error::InvalidPdu(format!(
            "room version {version} event IDs are not reference hashes"
        )));
    }
    hash_event_id(&rules, json)
}

pub(crate) fn hash_event_id(
    rules: &RoomVersionRules,
    json: &CanonicalJsonObject,
) -> Result<OwnedEventId> {
    let hash = reference_hash_with(rules, json)?;
    EventId::parse(format!("${hash}")).map_err(|e| Error::InvalidPdu(e.to_string()))
}

/// The event ID of any PDU: the `event_id` field for v1/v2, the reference hash from v3.
pub fn event_id_of(version: &RoomVersionId, json: &CanonicalJsonObject) -> Result<OwnedEventId> {
    let rules = room_version_rules(version)?;
    if rules.event_id_format == EventIdFormatVersion::V1 {
        let raw = string_field(json, "event_id")?
            .ok_or_else(|| Error::InvalidPdu("missing `event_id` field".to_owned()))?;
        return EventId::parse(raw).map_err(|e| Error::InvalidPdu(format!("`event_id`: {e}")));
    }
    hash_event_id(&rules, json)
}

/// A PDU as ruma's authorization rules and state resolution consume it.
///
/// Built from an event ID and the federation JSON; the fields those algorithms read are parsed
/// once. Cloning is an `Arc` bump. The `rejected` flag must be set by the caller for events that
/// failed the checks on receipt, because state resolution treats them differently.
#[derive(Clone)]
pub struct Pdu(Arc<Inner>);

#[derive(Clone)]
struct Inner {
    event_id: OwnedEventId,
    room_id: Option<OwnedRoomId>,
    sender: OwnedUserId,
    origin_server_ts: MilliSecondsSinceUnixEpoch,
    event_type: TimelineEventType,
    content: Box<RawJsonValue>,
    state_key: Option<String>,
    prev_events: Vec<OwnedEventId>,
    auth_events: Vec<OwnedEventId>,
    redacts: Option<OwnedEventId>,
    depth: u64,
    rejected: bool,
    json: CanonicalJsonObject,
}

impl fmt::Debug for Pdu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pdu")
            .field("event_id", &self.0.event_id)
            .field("type", &self.0.event_type)
            .field("state_key", &self.0.state_key)
            .field("sender", &self.0.sender)
            .field("rejected", &self.0.rejected)
            .finish_non_exhaustive()
    }
}

impl Pdu {
    /// Parses the fields of `json` that the protocol algorithms need, without knowing the room
    /// version.
    ///
    /// `prev_events`/`auth_events` are accepted in both the v1/v2 pair format and the v3+ string
    /// format. `redacts` is read from the top level and, failing that, from `content.redacts`:
    /// exact for v1–v10 (the only versions whose auth rules read it) and for every well-formed
    /// v11+ redaction; prefer [`Pdu::for_version`] when the version is at hand.
    pub fn from_json(event_id: OwnedEventId, json: CanonicalJsonObject) -> Result<Self> {
        Self::parse(event_id, json, None)
    }

    /// [`Pdu::from_json`] reading `redacts` exactly where `version` puts it.
    pub fn for_version(
        version: &RoomVersionId,
        event_id: OwnedEventId,
        json: CanonicalJsonObject,
    ) -> Result<Self> {
        let rules = room_version_rules(version)?;
        Self::parse(event_id, json, Some(rules.redaction.content_field_redacts))
    }

    /// [`Pdu::for_version`] with the event ID derived per room version ([`event_id_of`]).
    pub fn from_json_for_version(
        version: &RoomVersionId,
        json: CanonicalJsonObject,
    ) -> Result<Self> {
        let event_id = event_id_of(version, &json)?;
        Self::for_version(version, event_id, json)
    }

    fn parse(
        event_id: OwnedEventId,
        json: CanonicalJsonObject,
        content_field_redacts: Option<bool>,
    ) -> Result<Self> {
        let room_id = string_field(&json, "room_id")?
            .map(|raw| RoomId::parse(raw).map_err(|e| Error::InvalidPdu(format!("`room_id`: {e}"))))
            .transpose()?;
        let sender = UserId::parse(required_string(&json, "sender")?)
            .map_err(|e| Error::InvalidPdu(format!("`sender`: {e}")))?;
        let event_type = TimelineEventType::from(required_string(&json, "type")?);
        let origin_server_ts = MilliSecondsSinceUnixEpoch(
            UInt::new(non_negative(&json, "origin_server_ts")?)
                .ok_or_else(|| Error::InvalidPdu("`origin_server_ts` out of range".to_owned()))?,
        );
        let depth = non_negative(&json, "depth")?;
        let content_object = match json.get("content") {
            Some(CanonicalJsonValue::Object(content)) => content,
            _ => {
                return Err(Error::InvalidPdu(
                    "`content` is missing or not an object".to_owned(),
                ));
            }
        };
        let content = RawJsonValue::from_string(
            serde_json::to_string(content_object).map_err(|e| Error::Json(e.to_string()))?,
        )
        .map_err(|e| Error::Json(e.to_string()))?;
        let state_key = string_field(&json, "state_key")?.map(ToOwned::to_owned);
        let prev_events = event_refs(&json, "prev_events")?;
        let auth_events = event_refs(&json, "auth_events")?;
        let redacts = redacts_field(&json, content_field_redacts)
            .map(EventId::parse)
            .transpose()
            .map_err(|e| Error::InvalidPdu(format!("`redacts`: {e}")))?;

        Ok(Self(Arc::new(Inner {
            event_id,
            room_id,
            sender,
            origin_server_ts,
            event_type,
            content,
            state_key,
            prev_events,
            auth_events,
            redacts,
            depth,
            rejected: false,
            json,
        })))
    }

    /// Marks the event as rejected (or not) by the checks on receipt of a PDU.
    #[must_use]
    pub fn with_rejected(self, rejected: bool) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.0);
        inner.rejected = rejected;
        Self(Arc::new(inner))
    }

    pub fn event_id(&self) -> &EventId {
        &self.0.event_id
    }

    /// The `room_id` field; `None` only for a v12 `m.room.create` event.
    pub fn room_id(&self) -> Option<&RoomId> {
        self.0.room_id.as_deref()
    }

    pub fn sender(&self) -> &UserId {
        &self.0.sender
    }

    pub fn event_type(&self) -> &TimelineEventType {
        &self.0.event_type
    }

    pub fn state_key(&self) -> Option<&str> {
        self.0.state_key.as_deref()
    }

    pub fn origin_server_ts(&self) -> u64 {
        self.0.origin_server_ts.get().into()
    }

    pub fn depth(&self) -> u64 {
        self.0.depth
    }

    pub fn prev_event_ids(&self) -> &[OwnedEventId] {
        &self.0.prev_events
    }

    pub fn auth_event_ids(&self) -> &[OwnedEventId] {
        &self.0.auth_events
    }

    pub fn redacts(&self) -> Option<&EventId> {
        self.0.redacts.as_deref()
    }

    pub fn is_rejected(&self) -> bool {
        self.0.rejected
    }

    /// The event's `content` object.
    pub fn content_object(&self) -> &CanonicalJsonObject {
        match self.0.json.get("content") {
            Some(CanonicalJsonValue::Object(content)) => content,
            _ => unreachable!("checked in Pdu::from_json"),
        }
    }

    /// The full PDU JSON as received or built.
    pub fn json(&self) -> &CanonicalJsonObject {
        &self.0.json
    }
}

impl ruma::state_res::Event for Pdu {
    type Id = OwnedEventId;

    fn event_id(&self) -> &Self::Id {
        &self.0.event_id
    }

    fn room_id(&self) -> Option<&RoomId> {
        self.0.room_id.as_deref()
    }

    fn sender(&self) -> &UserId {
        &self.0.sender
    }

    fn origin_server_ts(&self) -> MilliSecondsSinceUnixEpoch {
        self.0.origin_server_ts
    }

    fn event_type(&self) -> &TimelineEventType {
        &self.0.event_type
    }

    fn content(&self) -> &RawJsonValue {
        &self.0.content
    }

    fn state_key(&self) -> Option<&str> {
        self.0.state_key.as_deref()
    }

    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.0.prev_events.iter())
    }

    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.0.auth_events.iter())
    }

    fn redacts(&self) -> Option<&Self::Id> {
        self.0.redacts.as_ref()
    }

    fn rejected(&self) -> bool {
        self.0.rejected
    }
}

/// The event a redaction event redacts, read where `version` puts it: top-level `redacts`
/// before v11, `content.redacts` from v11 (the only signed location there). `None` for other
/// events or a malformed value.
pub fn redacted_event_id(
    version: &RoomVersionId,
    json: &CanonicalJsonObject,
) -> Result<Option<OwnedEventId>> {
    let rules = room_version_rules(version)?;
    Ok(
        redacts_field(json, Some(rules.redaction.content_field_redacts))
            .and_then(|raw| EventId::parse(raw).ok()),
    )
}

/// `redacts` at the top level (`Some(false)`), in `content` (`Some(true)`), or top level first
/// then content (`None`, version unknown).
pub(crate) fn redacts_field(
    json: &CanonicalJsonObject,
    content_field_redacts: Option<bool>,
) -> Option<&str> {
    let top_level = || json.get("redacts").and_then(CanonicalJsonValue::as_str);
    let in_content = || {
        json.get("content")
            .and_then(CanonicalJsonValue::as_object)
            .and_then(|content| content.get("redacts"))
            .and_then(CanonicalJsonValue::as_str)
    };
    match content_field_redacts {
        Some(true) => in_content(),
        Some(false) => top_level(),
        None => top_level().or_else(in_content),
    }
}

/// An optional string field; present with another type is an error.
pub(crate) fn string_field<'a>(
    json: &'a CanonicalJsonObject,
    key: &str,
) -> Result<Option<&'a str>> {
    match json.get(key) {
        None => Ok(None),
        Some(CanonicalJsonValue::String(value)) => Ok(Some(value)),
        Some(_) => Err(Error::InvalidPdu(format!("`{key}` is not a string"))),
    }
}

fn required_string<'a>(json: &'a CanonicalJsonObject, key: &str) -> Result<&'a str> {
    string_field(json, key)?.ok_or_else(|| Error::InvalidPdu(format!("missing `{key}` field")))
}

fn non_negative(json: &CanonicalJsonObject, key: &str) -> Result<u64> {
    match json.get(key) {
        Some(CanonicalJsonValue::Integer(value)) => u64::try_from(i64::from(*value))
            .map_err(|_| Error::InvalidPdu(format!("`{key}` is negative"))),
        _ => Err(Error::InvalidPdu(format!(
            "`{key}` is missing or not an integer"
        ))),
    }
}

/// The event IDs of `prev_events`/`auth_events`: `["$id", …]` (v3+) or `[["$id", {hashes}], …]`
/// (v1/v2).
fn event_refs(json: &CanonicalJsonObject, key: &str) -> Result<Vec<OwnedEventId>> {
    let Some(CanonicalJsonValue::Array(items)) = json.get(key) else {
        return Err(Error::InvalidPdu(format!(
            "`{key}` is missing or not an array"
        )));
    };
    items
        .iter()
        .map(|item| {
            let raw = match item {
                CanonicalJsonValue::String(id) => Some(id.as_str()),
                CanonicalJsonValue::Array(pair) => {
                    pair.first().and_then(CanonicalJsonValue::as_str)
                }
                _ => None,
            }
            .ok_or_else(|| Error::InvalidPdu(format!("malformed entry in `{key}`")))?;
            EventId::parse(raw).map_err(|e| Error::InvalidPdu(format!("`{key}`: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests;
