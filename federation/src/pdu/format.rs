//! Checks on a received PDU's shape and signatures, and the redaction algorithm.
//!
//! These are steps 1–3 of the spec's "checks performed on receipt of a PDU" (format, signatures
//! and hashes, redaction on hash mismatch), expressed as pure functions over the federation JSON
//! so the homeserver decides where public keys come from.

use std::collections::BTreeSet;

use ruma::{
    CanonicalJsonObject, OwnedServerName, RoomVersionId,
    canonical_json::{RedactedBecause, redact},
    signatures::{self, PublicKeyMap},
};

use crate::{Error, Result, room_version::room_version_rules};

/// The outcome of a successful [`verify_pdu`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verified {
    /// Signatures and the content hash are valid.
    All,
    /// Signatures are valid but the content hash does not match: the content was altered (or the
    /// event was redacted) after signing. The caller must store and use the redacted form
    /// ([`redact_pdu`]).
    SignaturesOnly,
}

/// The servers whose signatures [`verify_pdu`] requires (the sender's server; the `event_id`'s
/// server in v1/v2; the `join_authorised_via_users_server`'s server for restricted joins): fetch
/// their keys before verifying.
pub fn required_signing_servers(
    version: &RoomVersionId,
    json: &CanonicalJsonObject,
) -> Result<BTreeSet<OwnedServerName>> {
    let rules = room_version_rules(version)?;
    signatures::required_server_signatures_to_verify_event(json, &rules.signatures)
        .map_err(|e| Error::Verification(e.to_string()))
}

/// Verifies the signatures and content hash of a PDU.
///
/// A bad or missing signature of a required server is an [`Error::Verification`]: the event must
/// be dropped. A content-hash mismatch alone is [`Verified::SignaturesOnly`].
pub fn verify_pdu(
    version: &RoomVersionId,
    json: &CanonicalJsonObject,
    public_keys: &PublicKeyMap,
) -> Result<Verified> {
    let rules = room_version_rules(version)?;
    match signatures::verify_event(public_keys, json, &rules) {
        Ok(signatures::Verified::All) => Ok(Verified::All),
        Ok(signatures::Verified::Signatures) => Ok(Verified::SignaturesOnly),
        Err(e) => Err(Error::Verification(e.to_string())),
    }
}

/// Checks the PDU's shape and size limits for its room version (ruma's `check_pdu_format`):
/// required fields, ID lengths, at most 20 `prev_events` and 10 `auth_events`, a non-negative
/// `depth`, and from v12 no `m.room.create` in `auth_events`.
pub fn check_pdu_format(version: &RoomVersionId, json: &CanonicalJsonObject) -> Result<()> {
    let rules = room_version_rules(version)?;
    ruma::state_res::check_pdu_format(json, &rules.event_format).map_err(Error::InvalidPdu)
}

/// Redacts a PDU with the room version's redaction algorithm.
///
/// Top-level keys outside the version's allow-list (including `unsigned`) are removed and
/// `content` is cut down per event type. With `redacted_because` (the redaction event, in the
/// form the caller stores or serves), `unsigned.redacted_because` is set on the result.
pub fn redact_pdu(
    version: &RoomVersionId,
    json: CanonicalJsonObject,
    redacted_because: Option<CanonicalJsonObject>,
) -> Result<CanonicalJsonObject> {
    let rules = room_version_rules(version)?;
    redact(
        json,
        &rules.redaction,
        redacted_because.map(RedactedBecause::from_json),
    )
    .map_err(|e| Error::InvalidPdu(e.to_string()))
}
