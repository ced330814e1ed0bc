//! Room aliases and the public room directory.

use axum::extract::State;
use ruma::{
    RoomAliasId, RoomId, UInt,
    api::client::{
        alias::{create_alias, delete_alias, get_alias},
        directory::{get_public_rooms, get_public_rooms_filtered, get_room_visibility, set_room_visibility},
        room::{Visibility, aliases},
    },
    directory::PublicRoomsChunk,
};
use serde_json::Value;

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

/// A page of the directory: listed rooms matching `search`, most members first. Tokens are
/// offsets (`o<n>`), which is enough for a directory of this size.
struct DirectoryPage {
    chunk: Vec<PublicRoomsChunk>,
    next: Option<String>,
    prev: Option<String>,
    total: usize,
}

fn directory_page(services: &Services, search: Option<&str>, since: Option<&str>, limit: Option<UInt>) -> Result<DirectoryPage> {
    let offset = match since {
        None => 0,
        Some(token) => token
            .strip_prefix('o')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| Error::invalid_param("Invalid pagination token"))?,
    };
    let limit = limit.map_or(100, |l| usize::try_from(u64::from(l)).unwrap_or(100)).clamp(1, 500);
    let needle = search.map(str::to_lowercase).filter(|s| !s.is_empty());
    let mut chunks = Vec::new();
    for room_id in services.rooms.records.published_rooms()? {
        let Ok(room) = RoomId::parse(&room_id) else { continue };
        let chunk = services.rooms.public_chunk(&room)?;
        if let Some(needle) = &needle {
            let text = ["name", "topic", "canonical_alias"]
                .iter()
                .filter_map(|k| chunk.get(*k).and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase();
            if !text.contains(needle.as_str()) {
                continue;
            }
        }
        chunks.push(chunk);
    }
    chunks.sort_by_key(|c| std::cmp::Reverse(c["num_joined_members"].as_u64().unwrap_or(0)));
    let total = chunks.len();
    let page: Vec<PublicRoomsChunk> = chunks
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|c| serde_json::from_value(c).map_err(|e| Error::internal(e.to_string())))
        .collect::<Result<_>>()?;
    let next = (offset + page.len() < total).then(|| format!("o{}", offset + page.len()));
    let prev = (offset > 0).then(|| format!("o{}", offset.saturating_sub(limit)));
    Ok(DirectoryPage { chunk: page, next, prev, total })
}

/// `GET /_matrix/client/v3/publicRooms`
pub async fn get_public_rooms_route(
    State(services): State<AppState>,
    request: Ruma<get_public_rooms::v3::Request>,
) -> Result<RumaResponse<get_public_rooms::v3::Response>> {
    let body = &request.body;
    let page = directory_page(&services, None, body.since.as_deref(), body.limit)?;
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
    let page = directory_page(&services, body.filter.generic_search_term.as_deref(), body.since.as_deref(), body.limit)?;
    let mut response = get_public_rooms_filtered::v3::Response::new();
    response.chunk = page.chunk;
    response.next_batch = page.next;
    response.prev_batch = page.prev;
    response.total_room_count_estimate = UInt::new(page.total as u64);
    Ok(RumaResponse(response))
}
