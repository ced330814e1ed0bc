//! URL previews: `GET /_matrix/client/v1/media/preview_url` and the deprecated (still
//! authenticated) `/_matrix/media/{v3,r0}/preview_url`.
//!
//! `ts` is accepted and ignored: one preview per URL is kept, the latest.

use axum::extract::State;
use ruma::api::client::{authenticated_media, media};

use crate::{
    error::Result,
    router::{AppState, Ruma, RumaResponse, RumaRouter},
};

#[allow(deprecated)]
pub fn routes(router: axum::Router<AppState>) -> axum::Router<AppState> {
    router
        .ruma::<authenticated_media::get_media_preview::v1::Request, _, _>(get_media_preview_route)
        .ruma::<media::get_media_preview::v3::Request, _, _>(get_legacy_media_preview_route)
}

/// `GET /_matrix/client/v1/media/preview_url`
async fn get_media_preview_route(
    State(services): State<AppState>,
    body: Ruma<authenticated_media::get_media_preview::v1::Request>,
) -> Result<RumaResponse<authenticated_media::get_media_preview::v1::Response>> {
    let og = preview(&services, &body.sender()?.user_id, &body.body.url).await?;
    Ok(RumaResponse(authenticated_media::get_media_preview::v1::Response::from_raw_value(og)))
}

/// `GET /_matrix/media/v3/preview_url` (deprecated)
#[allow(deprecated)]
async fn get_legacy_media_preview_route(
    State(services): State<AppState>,
    body: Ruma<media::get_media_preview::v3::Request>,
) -> Result<RumaResponse<media::get_media_preview::v3::Response>> {
    let og = preview(&services, &body.sender()?.user_id, &body.body.url).await?;
    Ok(RumaResponse(media::get_media_preview::v3::Response::from_raw_value(og)))
}

async fn preview(services: &AppState, user: &ruma::UserId, url: &str) -> Result<Box<serde_json::value::RawValue>> {
    services.rate_limits.url_preview_per_user.check(user.as_str())?;
    let og = services.url_previews.preview(&services.media, user, url).await?;
    serde_json::value::to_raw_value(&og).map_err(|e| crate::error::Error::internal(format!("cannot serialise a preview: {e}")))
}
