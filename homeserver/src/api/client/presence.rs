//! `GET`/`PUT /_matrix/client/v3/presence/{userId}/status`.

use std::time::Duration;

use axum::extract::State;
use ruma::{
    api::client::presence::{get_presence, set_presence},
    presence::PresenceState,
};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse},
    service::presence,
};

/// The presence state a client names, as the service knows it.
pub fn state_of(presence: &PresenceState) -> presence::State {
    presence::State::parse(presence.as_str()).unwrap_or(presence::State::Online)
}

/// `PUT /_matrix/client/v3/presence/{userId}/status`
pub async fn set_presence_route(
    State(services): State<AppState>,
    request: Ruma<set_presence::v3::Request>,
) -> Result<RumaResponse<set_presence::v3::Response>> {
    let user = request.sender()?.user_id.clone();
    let body = request.body;
    if body.user_id != user {
        return Err(Error::forbidden("You can only set your own presence"));
    }
    let state = presence::State::parse(body.presence.as_str()).ok_or_else(|| Error::invalid_param("presence must be online, unavailable or offline"))?;
    services.presence.set_status(&user, state, body.status_msg).await?;
    Ok(RumaResponse(set_presence::v3::Response::new()))
}

/// `GET /_matrix/client/v3/presence/{userId}/status`
pub async fn get_presence_route(
    State(services): State<AppState>,
    request: Ruma<get_presence::v3::Request>,
) -> Result<RumaResponse<get_presence::v3::Response>> {
    let viewer = request.sender()?.user_id.clone();
    let content = services.presence.status(&viewer, &request.body.user_id)?;
    let state = content.get("presence").and_then(Value::as_str).map(PresenceState::from).unwrap_or(PresenceState::Offline);
    let mut response = get_presence::v3::Response::new(state);
    response.status_msg = content.get("status_msg").and_then(Value::as_str).map(ToOwned::to_owned);
    response.currently_active = content.get("currently_active").and_then(Value::as_bool);
    response.last_active_ago = content.get("last_active_ago").and_then(Value::as_u64).map(Duration::from_millis);
    Ok(RumaResponse(response))
}
