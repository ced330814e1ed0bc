//! Global account data (`/user/{userId}/account_data/{type}`).

use axum::extract::State;
use http::StatusCode;
use ruma::{
    UserId,
    api::{
        client::config::{get_global_account_data, get_room_account_data, set_global_account_data, set_room_account_data},
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
    let raw = stored(&services, &body.user_id, None, &body.event_type.to_string())?;
    Ok(RumaResponse(get_global_account_data::v3::Response::new(raw)))
}

fn stored<T>(services: &crate::service::Services, user: &UserId, room: Option<&str>, event_type: &str) -> Result<Raw<T>> {
    let content = services.account_data.get(user, room, event_type)?.ok_or_else(|| Error::not_found("Account data not found"))?;
    Ok(Raw::new(&content).map_err(|e| Error::internal(e.to_string()))?.cast_unchecked())
}

/// The spec reserves `m.fully_read` and `m.push_rules` for their own endpoints.
fn parse_settable(event_type: &str, json: &str) -> Result<serde_json::Value> {
    if event_type == "m.fully_read" || event_type == "m.push_rules" {
        return Err(Error::matrix(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::BadJson,
            format!("Cannot set {event_type} through this API"),
        ));
    }
    let content: serde_json::Value = serde_json::from_str(json).map_err(|e| Error::bad_json(e.to_string()))?;
    if !content.is_object() {
        return Err(Error::bad_json("Account data content must be a JSON object"));
    }
    Ok(content)
}

/// `GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}`
pub async fn get_room_account_data_route(
    State(services): State<AppState>,
    request: Ruma<get_room_account_data::v3::Request>,
) -> Result<RumaResponse<get_room_account_data::v3::Response>> {
    let body = &request.body;
    require_own(&request.sender()?.user_id, &body.user_id)?;
    let raw = stored(&services, &body.user_id, Some(body.room_id.as_str()), &body.event_type.to_string())?;
    Ok(RumaResponse(get_room_account_data::v3::Response::new(raw)))
}

/// `PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/account_data/{type}`
pub async fn set_room_account_data_route(
    State(services): State<AppState>,
    request: Ruma<set_room_account_data::v3::Request>,
) -> Result<RumaResponse<set_room_account_data::v3::Response>> {
    let body = &request.body;
    require_own(&request.sender()?.user_id, &body.user_id)?;
    services.rooms.room(&body.room_id)?;
    let event_type = body.event_type.to_string();
    let content = parse_settable(&event_type, body.data.json().get())?;
    services.account_data.set(&body.user_id, Some(body.room_id.as_str()), &event_type, &content).await?;
    Ok(RumaResponse(set_room_account_data::v3::Response::new()))
}

/// `PUT /_matrix/client/v3/user/{userId}/account_data/{type}`
pub async fn set_global_account_data_route(
    State(services): State<AppState>,
    request: Ruma<set_global_account_data::v3::Request>,
) -> Result<RumaResponse<set_global_account_data::v3::Response>> {
    let body = &request.body;
    require_own(&request.sender()?.user_id, &body.user_id)?;
    let event_type = body.event_type.to_string();
    let content = parse_settable(&event_type, body.data.json().get())?;
    services.account_data.set(&body.user_id, None, &event_type, &content).await?;
    Ok(RumaResponse(set_global_account_data::v3::Response::new()))
}
