//! Account data, global and per room (`/user/{userId}/…/account_data/{type}`), and room tags
//! (`m.tag` room account data behind `/user/{userId}/rooms/{roomId}/tags`).

use axum::extract::State;
use http::StatusCode;
use ruma::{
    UserId,
    api::{
        client::{
            config::{get_global_account_data, get_room_account_data, set_global_account_data, set_room_account_data},
            tag::{create_tag, delete_tag, get_tags},
        },
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

/// The user's `m.tag` room account data content: `{"tags": {tag: {order}}}`.
fn tags_of(services: &crate::service::Services, user: &UserId, room: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
    let content = services.account_data.get(user, Some(room), "m.tag")?.unwrap_or_default();
    Ok(content.get("tags").and_then(serde_json::Value::as_object).cloned().unwrap_or_default())
}

async fn store_tags(services: &crate::service::Services, user: &UserId, room: &str, tags: serde_json::Map<String, serde_json::Value>) -> Result<()> {
    services.account_data.set(user, Some(room), "m.tag", &serde_json::json!({ "tags": tags })).await
}

/// `GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags`
pub async fn get_tags_route(
    State(services): State<AppState>,
    request: Ruma<get_tags::v3::Request>,
) -> Result<RumaResponse<get_tags::v3::Response>> {
    let body = &request.body;
    require_own(&request.sender()?.user_id, &body.user_id)?;
    let tags = tags_of(&services, &body.user_id, body.room_id.as_str())?;
    let tags = serde_json::from_value(serde_json::Value::Object(tags)).map_err(|e| Error::internal(format!("stored tags: {e}")))?;
    Ok(RumaResponse(get_tags::v3::Response::new(tags)))
}

/// `PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}`
pub async fn create_tag_route(
    State(services): State<AppState>,
    request: Ruma<create_tag::v3::Request>,
) -> Result<RumaResponse<create_tag::v3::Response>> {
    let body = &request.body;
    require_own(&request.sender()?.user_id, &body.user_id)?;
    let mut tags = tags_of(&services, &body.user_id, body.room_id.as_str())?;
    let info = serde_json::to_value(&body.tag_info).map_err(|e| Error::internal(e.to_string()))?;
    tags.insert(body.tag.clone(), info);
    store_tags(&services, &body.user_id, body.room_id.as_str(), tags).await?;
    Ok(RumaResponse(create_tag::v3::Response::new()))
}

/// `DELETE /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}`
pub async fn delete_tag_route(
    State(services): State<AppState>,
    request: Ruma<delete_tag::v3::Request>,
) -> Result<RumaResponse<delete_tag::v3::Response>> {
    let body = &request.body;
    require_own(&request.sender()?.user_id, &body.user_id)?;
    let mut tags = tags_of(&services, &body.user_id, body.room_id.as_str())?;
    if tags.remove(&body.tag).is_some() {
        store_tags(&services, &body.user_id, body.room_id.as_str(), tags).await?;
    }
    Ok(RumaResponse(delete_tag::v3::Response::new()))
}
