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

pub async fn get_capabilities_route(
    State(services): State<AppState>,
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
    capabilities.room_versions.default =
        RoomVersionId::try_from(services.config.default_room_version.as_str()).unwrap_or(RoomVersionId::V12);
    capabilities.room_versions.available = myelin_federation::supported_room_versions()
        .iter()
        .map(|v| (v.clone(), RoomVersionStability::Stable))
        .collect();
    Ok(RumaResponse(caps::Response::new(capabilities)))
}
