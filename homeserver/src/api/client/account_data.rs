//! Global account data (`/user/{userId}/account_data/{type}`).

use axum::extract::State;
use http::StatusCode;
use ruma::{
    UserId,
    api::{
        client::config::{get_global_account_data, set_global_account_data},
        error::ErrorKind,
    },
    serde::Raw,
};

use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse},
};

fn require_own(sender: &UserId, target: &UserId) -> Result<()> {
    if sender != target {
        return Err(Error::forbidden("Cannot access another user's account data"));
    }
    Ok(())
}

/// `GET /_matrix/client/v3/user/{userId}/account_data/{type}`
pub async fn get_global_account_data_route(
    State(services): State<AppState>,
    request: Ruma<get_global_account_data::v3::Request>,
) -> Result<RumaResponse<get_global_account_data::v3::Response>> {
    let body = &request.body;
    require_own(&request.sender()?.user_id, &body.user_id)?;
    let content = services
        .account_data
        .get(&body.user_id, None, &body.event_type.to_string())?
        .ok_or_else(|| Error::not_found("Account data not found"))?;
    let raw = Raw::new(&content).map_err(|e| Error::internal(e.to_string()))?.cast_unchecked();
    Ok(RumaResponse(get_global_account_data::v3::Response::new(raw)))
}

/// `PUT /_matrix/client/v3/user/{userId}/account_data/{type}`
pub async fn set_global_account_data_route(
    State(services): State<AppState>,
    request: Ruma<set_global_account_data::v3::Request>,
) -> Result<RumaResponse<set_global_account_data::v3::Response>> {
    let body = &request.body;
    require_own(&request.sender()?.user_id, &body.user_id)?;
    let event_type = body.event_type.to_string();
    // The spec reserves these two for their own endpoints.
    if event_type == "m.fully_read" || event_type == "m.push_rules" {
        return Err(Error::matrix(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::BadJson,
            format!("Cannot set {event_type} through this API"),
        ));
    }
    let content: serde_json::Value =
        serde_json::from_str(body.data.json().get()).map_err(|e| Error::bad_json(e.to_string()))?;
    if !content.is_object() {
        return Err(Error::bad_json("Account data content must be a JSON object"));
    }
    services.account_data.set(&body.user_id, None, &event_type, &content).await?;
    Ok(RumaResponse(set_global_account_data::v3::Response::new()))
}
