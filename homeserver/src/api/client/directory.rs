//! Room aliases and the public room directory.

use axum::extract::State;
use ruma::{
    RoomAliasId, RoomId, UInt,
    api::client::{
        alias::{create_alias, delete_alias, get_alias},
        directory::{get_public_rooms, get_public_rooms_filtered, get_room_visibility, set_room_visibility},
        room::{Visibility, aliases},
    },
};

use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse},
    service::Services,
};

fn require_local_alias(services: &Services, alias: &RoomAliasId) -> Result<()> {
    if alias.server_name() != services.server_name {
        return Err(Error::invalid_param("Aliases of other servers cannot be managed here"));
    }
    Ok(())
}

/// `PUT /_matrix/client/v3/directory/room/{roomAlias}`
pub async fn create_alias_route(
    State(services): State<AppState>,
    request: Ruma<create_alias::v3::Request>,
) -> Result<RumaResponse<create_alias::v3::Response>> {
    let user = request.sender()?.user_id.clone();
    let body = request.body;
    require_local_alias(&services, &body.room_alias)?;
    super::message::require_joined(&services, &body.room_id, &user)?;
    services.rooms.create_alias(body.room_alias.as_str(), &body.room_id, &user).await?;
    Ok(RumaResponse(create_alias::v3::Response::new()))
}

/// `GET /_matrix/client/v3/directory/room/{roomAlias}`
pub async fn get_alias_route(
    State(services): State<AppState>,
    request: Ruma<get_alias::v3::Request>,
) -> Result<RumaResponse<get_alias::v3::Response>> {
    let alias = &request.body.room_alias;
    let room_id = services.rooms.records.alias(alias.as_str())?.ok_or_else(|| Error::not_found("Room alias not found"))?;
    let room_id = RoomId::parse(room_id).map_err(|e| Error::internal(e.to_string()))?;
    Ok(RumaResponse(get_alias::v3::Response::new(room_id, vec![services.server_name.clone()])))
}

/// `DELETE /_matrix/client/v3/directory/room/{roomAlias}`
pub async fn delete_alias_route(
    State(services): State<AppState>,
    request: Ruma<delete_alias::v3::Request>,
) -> Result<RumaResponse<delete_alias::v3::Response>> {
    let user = request.sender()?.user_id.clone();
    require_local_alias(&services, &request.body.room_alias)?;
    let is_admin = services.users.is_admin(&user)?;
    services.rooms.delete_alias(request.body.room_alias.as_str(), &user, is_admin).await?;
    Ok(RumaResponse(delete_alias::v3::Response::new()))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/aliases`
pub async fn get_room_aliases_route(
    State(services): State<AppState>,
    request: Ruma<aliases::v3::Request>,
) -> Result<RumaResponse<aliases::v3::Response>> {
    let user = &request.sender()?.user_id;
    let room_id = &request.body.room_id;
    let record = services.rooms.room(room_id)?;
    let joined = services.rooms.membership.membership(room_id.as_str(), user.as_str())?.as_deref() == Some("join");
    if !joined && services.rooms.history_visibility(record.current_state_group)? != "world_readable" {
        return Err(Error::forbidden("You are not a member of this room"));
    }
    let aliases = services
        .rooms
        .records
        .aliases_of(room_id.as_str())?
        .into_iter()
        .filter_map(|(alias, _)| RoomAliasId::parse(alias).ok())
        .collect();
    Ok(RumaResponse(aliases::v3::Response::new(aliases)))
}

/// `GET /_matrix/client/v3/directory/list/room/{roomId}`
pub async fn get_room_visibility_route(
    State(services): State<AppState>,
    request: Ruma<get_room_visibility::v3::Request>,
) -> Result<RumaResponse<get_room_visibility::v3::Response>> {
    let room_id = &request.body.room_id;
    services.rooms.room(room_id)?;
    let visibility = if services.rooms.records.is_published(room_id.as_str())? { Visibility::Public } else { Visibility::Private };
    Ok(RumaResponse(get_room_visibility::v3::Response::new(visibility)))
}

/// `PUT /_matrix/client/v3/directory/list/room/{roomId}`
pub async fn set_room_visibility_route(
    State(services): State<AppState>,
    request: Ruma<set_room_visibility::v3::Request>,
) -> Result<RumaResponse<set_room_visibility::v3::Response>> {
    let user = request.sender()?.user_id.clone();
    let body = request.body;
    if !matches!(body.visibility, Visibility::Public | Visibility::Private) {
        return Err(Error::invalid_param("visibility must be \"public\" or \"private\""));
    }
    if !services.rooms.can_manage_room(&body.room_id, &user)? && !services.users.is_admin(&user)? {
        return Err(Error::forbidden("You may not change this room's directory listing"));
    }
    services.rooms.set_listed(&body.room_id, body.visibility == Visibility::Public).await?;
    Ok(RumaResponse(set_room_visibility::v3::Response::new()))
}

/// `GET /_matrix/client/v3/publicRooms`
pub async fn get_public_rooms_route(
    State(services): State<AppState>,
    request: Ruma<get_public_rooms::v3::Request>,
) -> Result<RumaResponse<get_public_rooms::v3::Response>> {
    let body = &request.body;
    if let Some(server) = body.server.as_ref().filter(|server| **server != services.server_name) {
        // Another server's directory, asked for over federation.
        let mut remote = ruma::api::federation::directory::get_public_rooms::v1::Request::new();
        remote.limit = body.limit;
        remote.since = body.since.clone();
        let answer = services.federation.send(server, remote).await?;
        let mut response = get_public_rooms::v3::Response::new(answer.chunk);
        response.next_batch = answer.next_batch;
        response.prev_batch = answer.prev_batch;
        response.total_room_count_estimate = answer.total_room_count_estimate;
        return Ok(RumaResponse(response));
    }
    let page = services.rooms.directory_page(None, body.since.as_deref(), body.limit)?;
    let mut response = get_public_rooms::v3::Response::new(page.chunk);
    response.next_batch = page.next;
    response.prev_batch = page.prev;
    response.total_room_count_estimate = UInt::new(page.total as u64);
    Ok(RumaResponse(response))
}

/// `POST /_matrix/client/v3/publicRooms`
pub async fn get_public_rooms_filtered_route(
    State(services): State<AppState>,
    request: Ruma<get_public_rooms_filtered::v3::Request>,
) -> Result<RumaResponse<get_public_rooms_filtered::v3::Response>> {
    let body = &request.body;
    if let Some(server) = body.server.as_ref().filter(|server| **server != services.server_name) {
        let mut remote = ruma::api::federation::directory::get_public_rooms_filtered::v1::Request::new();
        remote.limit = body.limit;
        remote.since = body.since.clone();
        remote.filter = body.filter.clone();
        let answer = services.federation.send(server, remote).await?;
        let mut response = get_public_rooms_filtered::v3::Response::new();
        response.chunk = answer.chunk;
        response.next_batch = answer.next_batch;
        response.prev_batch = answer.prev_batch;
        response.total_room_count_estimate = answer.total_room_count_estimate;
        return Ok(RumaResponse(response));
    }
    let page = services.rooms.directory_page(body.filter.generic_search_term.as_deref(), body.since.as_deref(), body.limit)?;
    let mut response = get_public_rooms_filtered::v3::Response::new();
    response.chunk = page.chunk;
    response.next_batch = page.next;
    response.prev_batch = page.prev;
    response.total_room_count_estimate = UInt::new(page.total as u64);
    Ok(RumaResponse(response))
}
