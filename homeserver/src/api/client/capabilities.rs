//! `GET /_matrix/client/v3/capabilities`

use axum::extract::State;
use ruma::{
    RoomVersionId,
    api::client::discovery::get_capabilities::v3::{self as caps, Capabilities, ProfileFieldsCapability, RoomVersionStability},
};

use crate::{
    error::Result,
    router::{AppState, Ruma, RumaResponse},
};

/// Room versions that rooms will be created with once the room engine lands; 12 is the default,
/// as on Synapse.
const ROOM_VERSIONS: &[RoomVersionId] = &[
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

pub async fn get_capabilities_route(
    State(_services): State<AppState>,
    _: Ruma<caps::Request>,
) -> Result<RumaResponse<caps::Response>> {
    let mut capabilities = Capabilities::new();
    capabilities.change_password.enabled = true;
    capabilities.profile_fields = Some(ProfileFieldsCapability::new(true));
    // Clients older than v1.16 still read the per-field capabilities.
    #[allow(deprecated)]
    {
        capabilities.set_displayname.enabled = true;
        capabilities.set_avatar_url.enabled = true;
    }
    capabilities.thirdparty_id_changes.enabled = false;
    capabilities.get_login_token.enabled = false;
    capabilities.room_versions.default = RoomVersionId::V12;
    capabilities.room_versions.available =
        ROOM_VERSIONS.iter().map(|v| (v.clone(), RoomVersionStability::Stable)).collect();
    Ok(RumaResponse(caps::Response::new(capabilities)))
}
