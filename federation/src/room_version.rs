//! The room versions this server implements, and the per-version rules behind them.
//!
//! Every algorithm in this crate (event format, event IDs, redaction, authorization, state
//! resolution) is parameterised by ruma's [`RoomVersionRules`]; this module is the single place
//! that decides which versions we accept, so an unknown or custom version fails early with one
//! error instead of somewhere deep inside an algorithm.

use ruma::{RoomVersionId, room_version_rules::RoomVersionRules};

use crate::{Error, Result};

static SUPPORTED: [RoomVersionId; 12] = [
    RoomVersionId::V1,
    RoomVersionId::V2,
    RoomVersionId::V3,
    RoomVersionId::V4,
    RoomVersionId::V5,
    RoomVersionId::V6,
    RoomVersionId::V7,
    RoomVersionId::V8,
    RoomVersionId::V9,
    RoomVersionId::V10,
    RoomVersionId::V11,
    RoomVersionId::V12,
];

/// The stable room versions 1 through 12, oldest first.
pub fn supported_room_versions() -> &'static [RoomVersionId] {
    &SUPPORTED
}

/// Whether `version` is one of [`supported_room_versions`].
pub fn is_supported_room_version(version: &RoomVersionId) -> bool {
    SUPPORTED.contains(version)
}

/// The rules of a supported room version, or [`Error::UnsupportedRoomVersion`].
pub fn room_version_rules(version: &RoomVersionId) -> Result<RoomVersionRules> {
    if !is_supported_room_version(version) {
        return Err(Error::UnsupportedRoomVersion(version.to_string()));
    }
    version
        .rules()
        .ok_or_else(|| Error::UnsupportedRoomVersion(version.to_string()))
}

/// Fails with [`Error::UnsupportedRoomVersion`] unless `version` is supported.
pub fn ensure_supported_room_version(version: &RoomVersionId) -> Result<()> {
    room_version_rules(version).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_one_to_twelve_are_supported_and_custom_ones_are_not() {
        assert_eq!(supported_room_versions().len(), 12);
        for version in supported_room_versions() {
            assert!(room_version_rules(version).is_ok(), "{version}");
        }
        let custom = RoomVersionId::try_from("org.example.custom").unwrap();
        assert!(matches!(
            ensure_supported_room_version(&custom),
            Err(Error::UnsupportedRoomVersion(v)) if v == "org.example.custom"
        ));
    }
}
