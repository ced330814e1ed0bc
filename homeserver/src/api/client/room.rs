//! `POST /_matrix/client/v3/createRoom`

use axum::extract::State;
use ruma::{
    RoomAliasId, RoomVersionId,
    api::client::room::{Visibility, create_room},
};
use serde_json::{Map, Value};

use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse},
    service::rooms::{EventDraft, Preset, RoomSpec},
};

pub async fn create_room_route(
    State(services): State<AppState>,
    request: Ruma<create_room::v3::Request>,
) -> Result<RumaResponse<create_room::v3::Response>> {
    let sender = request.sender()?.user_id.clone();
    let body = request.body;
    let version = match body.room_version {
        Some(version) => version,
        None => RoomVersionId::try_from(services.config.default_room_version.as_str())
            .map_err(|e| Error::internal(format!("default_room_version: {e}")))?,
    };
    if !myelin_federation::room_version::is_supported_room_version(&version) {
        return Err(Error::matrix(
            http::StatusCode::BAD_REQUEST,
            ruma::api::error::ErrorKind::UnsupportedRoomVersion,
            format!("Room version {version} is not supported"),
        ));
    }
    let preset = match body.preset {
        Some(create_room::v3::RoomPreset::PublicChat) => Preset::PublicChat,
        Some(create_room::v3::RoomPreset::TrustedPrivateChat) => Preset::TrustedPrivateChat,
        Some(create_room::v3::RoomPreset::PrivateChat) => Preset::PrivateChat,
        Some(_) => return Err(Error::bad_json("Unknown preset")),
        None if body.visibility == Visibility::Public => Preset::PublicChat,
        None => Preset::PrivateChat,
    };
    let canonical_alias = match &body.room_alias_name {
        Some(name) => {
            let alias = RoomAliasId::parse(format!("#{name}:{}", services.server_name))
                .map_err(|e| Error::invalid_param(format!("Invalid room_alias_name: {e}")))?;
            if services.rooms.records.alias(alias.as_str())?.is_some() {
                return Err(Error::matrix(
                    http::StatusCode::BAD_REQUEST,
                    ruma::api::error::ErrorKind::RoomInUse,
                    "Room alias already taken",
                ));
            }
            Some(alias)
        }
        None => None,
    };
    let creation_content = raw_object(body.creation_content.as_ref().map(|raw| raw.json().get()), "creation_content")?;
    let power_level_override = body
        .power_level_content_override
        .as_ref()
        .map(|raw| raw_object(Some(raw.json().get()), "power_level_content_override"))
        .transpose()?;
    let mut initial_state = Vec::new();
    for raw in &body.initial_state {
        let event: Value = serde_json::from_str(raw.json().get()).map_err(|e| Error::bad_json(e.to_string()))?;
        let event_type = event.get("type").and_then(Value::as_str).ok_or_else(|| Error::bad_json("initial_state: missing type"))?;
        let state_key = event.get("state_key").and_then(Value::as_str).unwrap_or_default();
        let content = event.get("content").cloned().unwrap_or_else(|| Value::Object(Map::new()));
        initial_state.push(EventDraft::state(event_type, state_key, content));
    }
    for invitee in &body.invite {
        if !services.users.is_local(invitee) {
            return Err(Error::forbidden("Inviting users of other servers needs federation, which is not enabled yet"));
        }
    }
    let account = services.users.get(&sender)?;
    let spec = RoomSpec {
        version,
        preset,
        creation_content,
        power_level_override,
        initial_state,
        name: body.name,
        topic: body.topic,
        invite: body.invite,
        is_direct: body.is_direct,
        canonical_alias: canonical_alias.as_ref().map(ToString::to_string),
        creator_profile: account.map(|a| (a.displayname, a.avatar_url)).unwrap_or_default(),
    };
    let room_id = services.rooms.create_from_spec(&sender, spec).await?;
    services
        .rooms
        .publish(&room_id, canonical_alias.as_ref().map(|a| a.as_str()), &sender, body.visibility == Visibility::Public)
        .await?;
    tracing::info!(%room_id, creator = %sender, "created a room");
    Ok(RumaResponse(create_room::v3::Response::new(room_id)))
}

fn raw_object(json: Option<&str>, field: &str) -> Result<Map<String, Value>> {
    match json {
        None => Ok(Map::new()),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(Error::bad_json(format!("{field} must be an object"))),
            Err(e) => Err(Error::bad_json(format!("{field}: {e}"))),
        },
    }
}

/// `POST /_matrix/client/v3/rooms/{roomId}/upgrade`
pub async fn upgrade_room_route(
    State(services): State<AppState>,
    request: Ruma<ruma::api::client::room::upgrade_room::v3::Request>,
) -> Result<RumaResponse<ruma::api::client::room::upgrade_room::v3::Response>> {
    let user = request.sender()?.user_id.clone();
    let body = request.body;
    if !myelin_federation::room_version::is_supported_room_version(&body.new_version) {
        return Err(Error::matrix(
            http::StatusCode::BAD_REQUEST,
            ruma::api::error::ErrorKind::UnsupportedRoomVersion,
            format!("Room version {} is not supported", body.new_version),
        ));
    }
    super::message::require_joined(&services, &body.room_id, &user)?;
    let replacement = services.rooms.upgrade(&body.room_id, &user, &body.new_version, body.additional_creators).await?;
    Ok(RumaResponse(ruma::api::client::room::upgrade_room::v3::Response::new(replacement)))
}

/// `GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event`
pub async fn timestamp_to_event_route(
    State(services): State<AppState>,
    request: Ruma<ruma::api::client::room::get_event_by_timestamp::v1::Request>,
) -> Result<RumaResponse<ruma::api::client::room::get_event_by_timestamp::v1::Response>> {
    let sender = request.sender()?;
    let body = &request.body;
    let forward = body.dir == ruma::api::Direction::Forward;
    let (event_id, ts) = services.rooms.event_near_timestamp(&body.room_id, &sender.user_id, u64::from(body.ts.0), forward)?;
    let event_id = ruma::EventId::parse(event_id).map_err(|e| Error::internal(e.to_string()))?;
    Ok(RumaResponse(ruma::api::client::room::get_event_by_timestamp::v1::Response::new(
        event_id,
        ruma::MilliSecondsSinceUnixEpoch(ruma::UInt::new_saturating(ts)),
    )))
}

/// `GET /_matrix/client/v1/room_summary/{roomIdOrAlias}` (and MSC3266's unstable path, which
/// Element Call uses): a room's preview, for rooms held here.
pub async fn get_summary_route(
    State(services): State<AppState>,
    request: Ruma<ruma::api::client::room::get_summary::v1::Request>,
) -> Result<RumaResponse<ruma::api::client::room::get_summary::v1::Response>> {
    let viewer = request.sender.as_ref().map(|sender| sender.user_id.clone());
    let body = request.body;
    let room_id = match <&ruma::RoomId>::try_from(&*body.room_id_or_alias) {
        Ok(room_id) => room_id.to_owned(),
        Err(alias) => {
            let room_id = services.rooms.records.alias(alias.as_str())?.ok_or_else(|| Error::not_found("Room alias not found"))?;
            ruma::RoomId::parse(room_id).map_err(|e| Error::internal(e.to_string()))?
        }
    };
    let (chunk, membership) = services.rooms.room_summary(&room_id, viewer.as_deref())?;
    let summary = serde_json::from_value(chunk).map_err(|e| Error::internal(format!("room summary: {e}")))?;
    let mut response = ruma::api::client::room::get_summary::v1::Response::new(summary);
    response.membership = membership.map(|m| ruma::events::room::member::MembershipState::from(m.as_str()));
    Ok(RumaResponse(response))
}

/// `GET /_matrix/client/v1/rooms/{roomId}/hierarchy`
pub async fn get_hierarchy_route(
    State(services): State<AppState>,
    request: Ruma<ruma::api::client::space::get_hierarchy::v1::Request>,
) -> Result<RumaResponse<ruma::api::client::space::get_hierarchy::v1::Response>> {
    let user = request.sender()?.user_id.clone();
    let body = request.body;
    let from = match body.from.as_deref() {
        None => 0,
        Some(token) => token.parse::<usize>().map_err(|_| Error::invalid_param("Invalid pagination token"))?,
    };
    let limit = body.limit.map_or(50, |limit| usize::try_from(u64::from(limit)).unwrap_or(50)).clamp(1, 500);
    let max_depth = body.max_depth.map(|depth| usize::try_from(u64::from(depth)).unwrap_or(usize::MAX));
    let (rooms, next) = services.rooms.hierarchy(&body.room_id, &user, max_depth, body.suggested_only, from, limit)?;
    let mut response = ruma::api::client::space::get_hierarchy::v1::Response::new();
    response.rooms = rooms
        .into_iter()
        .map(|room| serde_json::from_value(room).map_err(|e| Error::internal(format!("hierarchy room: {e}"))))
        .collect::<Result<_>>()?;
    response.next_batch = next.map(|n| n.to_string());
    Ok(RumaResponse(response))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/report/{eventId}`: 404 unless the reporter can see
/// the event, so reports cannot probe for events.
pub async fn report_event_route(
    State(services): State<AppState>,
    request: Ruma<ruma::api::client::room::report_content::v3::Request>,
) -> Result<RumaResponse<ruma::api::client::room::report_content::v3::Response>> {
    let reporter = request.sender()?.user_id.clone();
    let body = request.body;
    let not_found = || Error::not_found("Event not found");
    let (_, event) = services.rooms.event(body.event_id.as_str())?.ok_or_else(not_found)?;
    let record = services.rooms.room(&body.room_id).map_err(|_| not_found())?;
    if event.room_short != record.short || event.outlier || !services.rooms.can_see_event(&services.rooms.viewer(&body.room_id, &reporter)?, &event)? {
        return Err(not_found());
    }
    services
        .reports
        .file(body.room_id.as_str(), Some(body.event_id.as_str()), reporter.as_str(), body.reason, Some(event.sender().to_owned()))
        .await?;
    Ok(RumaResponse(ruma::api::client::room::report_content::v3::Response::new()))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/report`: a whole room, which must exist here.
pub async fn report_room_route(
    State(services): State<AppState>,
    request: Ruma<ruma::api::client::room::report_room::v3::Request>,
) -> Result<RumaResponse<ruma::api::client::room::report_room::v3::Response>> {
    let reporter = request.sender()?.user_id.clone();
    let body = request.body;
    services.rooms.room(&body.room_id)?;
    services.reports.file(body.room_id.as_str(), None, reporter.as_str(), Some(body.reason), None).await?;
    Ok(RumaResponse(ruma::api::client::room::report_room::v3::Response::new()))
}
