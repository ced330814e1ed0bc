//! Membership: join, invite, leave, forget, kick, ban, unban, and member lists.

use std::collections::BTreeMap;

use axum::extract::State;
use ruma::{
    OwnedRoomId, OwnedServerName, RoomAliasId, RoomId, UserId,
    api::{client::knock::knock_room, federation::query::get_room_information},
    api::client::membership::{
        ban_user, forget_room, get_member_events, invite_user, join_room_by_id, join_room_by_id_or_alias,
        joined_members, joined_rooms, kick_user, leave_room, unban_user,
    },
};
use serde_json::{Value, json};

use super::to_raw;
use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse},
    service::{Services, rooms::EventDraft},
};

/// Sends a member event for `target` in `room_id`, carrying the target's profile on joins.
async fn set_membership(
    services: &Services,
    room_id: &RoomId,
    sender: &UserId,
    target: &UserId,
    membership: &str,
    reason: Option<String>,
    is_direct: bool,
) -> Result<()> {
    let mut content = json!({ "membership": membership });
    if (membership == "join" || membership == "invite")
        && let Some(account) = services.users.get(target)?
    {
        if let Some(name) = account.displayname {
            content["displayname"] = json!(name);
        }
        if let Some(url) = account.avatar_url {
            content["avatar_url"] = json!(url);
        }
    }
    if let Some(reason) = reason {
        content["reason"] = json!(reason);
    }
    if is_direct {
        content["is_direct"] = json!(true);
    }
    services.rooms.room(room_id)?;
    services.rooms.append(room_id, sender, EventDraft::state("m.room.member", target.as_str(), content), None).await?;
    Ok(())
}

/// Whether one of our users is in the room, so we hold its current state and can change
/// memberships locally; otherwise they go through a server that is in it.
fn resident(services: &Services, room_id: &RoomId) -> Result<bool> {
    Ok(services.rooms.records.room(room_id.as_str())?.is_some()
        && services.rooms.joined_servers(room_id)?.contains(&services.server_name))
}

async fn join(services: &Services, room_id: &RoomId, user: &UserId, reason: Option<String>, via: &[OwnedServerName]) -> Result<()> {
    if resident(services, room_id)? {
        return set_membership(services, room_id, user, user, "join", reason, false).await;
    }
    let servers = services.federation_rooms.join_candidates(room_id, user, via)?;
    if servers.iter().all(|server| *server == services.server_name) {
        return Err(Error::not_found("Unknown room"));
    }
    services.federation_rooms.join_remote(room_id, user, &servers).await
}

/// A room alias's room and the servers to join it through: ours from the directory, others'
/// by asking their server.
async fn resolve_alias(services: &Services, alias: &RoomAliasId) -> Result<(OwnedRoomId, Vec<OwnedServerName>)> {
    if alias.server_name() != services.server_name {
        let answer = services
            .federation
            .send(alias.server_name(), get_room_information::v1::Request::new(alias.to_owned()))
            .await?;
        return Ok((answer.room_id, answer.servers));
    }
    let room_id = services.rooms.records.alias(alias.as_str())?.ok_or_else(|| Error::not_found("Room alias not found"))?;
    Ok((RoomId::parse(room_id).map_err(|e| Error::internal(e.to_string()))?, Vec::new()))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/join`
pub async fn join_room_by_id_route(
    State(services): State<AppState>,
    request: Ruma<join_room_by_id::v3::Request>,
) -> Result<RumaResponse<join_room_by_id::v3::Response>> {
    let user = request.sender()?.user_id.clone();
    let body = request.body;
    join(&services, &body.room_id, &user, body.reason, &[]).await?;
    Ok(RumaResponse(join_room_by_id::v3::Response::new(body.room_id)))
}

/// `POST /_matrix/client/v3/join/{roomIdOrAlias}`
pub async fn join_room_by_id_or_alias_route(
    State(services): State<AppState>,
    request: Ruma<join_room_by_id_or_alias::v3::Request>,
) -> Result<RumaResponse<join_room_by_id_or_alias::v3::Response>> {
    let user = request.sender()?.user_id.clone();
    let body = request.body;
    let (room_id, mut servers) = match <&RoomId>::try_from(&*body.room_id_or_alias) {
        Ok(room_id) => (room_id.to_owned(), Vec::new()),
        Err(alias) => resolve_alias(&services, alias).await?,
    };
    servers.splice(0..0, body.via);
    join(&services, &room_id, &user, body.reason, &servers).await?;
    Ok(RumaResponse(join_room_by_id_or_alias::v3::Response::new(room_id)))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/invite`
pub async fn invite_user_route(
    State(services): State<AppState>,
    request: Ruma<invite_user::v3::Request>,
) -> Result<RumaResponse<invite_user::v3::Response>> {
    let sender = request.sender()?.user_id.clone();
    let body = request.body;
    let invite_user::v3::InvitationRecipient::UserId(recipient) = body.recipient else {
        return Err(Error::forbidden("Third-party invites are not supported"));
    };
    if !services.users.is_local(&recipient.user_id) {
        let current = services.rooms.membership.membership(body.room_id.as_str(), recipient.user_id.as_str())?;
        if matches!(current.as_deref(), Some("join" | "ban")) {
            return Err(Error::forbidden(format!("{} is {} in the room", recipient.user_id, current.unwrap_or_default())));
        }
        let mut content = json!({ "membership": "invite" });
        if let Some(reason) = recipient.reason {
            content["reason"] = json!(reason);
        }
        services.federation_rooms.invite_remote(&body.room_id, &sender, &recipient.user_id, content).await?;
        return Ok(RumaResponse(invite_user::v3::Response::new()));
    }
    if !services.users.exists(&recipient.user_id)? {
        return Err(Error::not_found("Unknown user"));
    }
    let current = services.rooms.membership.membership(body.room_id.as_str(), recipient.user_id.as_str())?;
    if current.as_deref() == Some("join") {
        return Err(Error::forbidden(format!("{} is already in the room", recipient.user_id)));
    }
    set_membership(&services, &body.room_id, &sender, &recipient.user_id, "invite", recipient.reason, false).await?;
    Ok(RumaResponse(invite_user::v3::Response::new()))
}

/// `POST /_matrix/client/v3/knock/{roomIdOrAlias}`: asks to be let into a room whose join
/// rule allows knocking, here or through a server in it.
pub async fn knock_room_route(
    State(services): State<AppState>,
    request: Ruma<knock_room::v3::Request>,
) -> Result<RumaResponse<knock_room::v3::Response>> {
    let user = request.sender()?.user_id.clone();
    let body = request.body;
    let (room_id, mut servers) = match <&RoomId>::try_from(&*body.room_id_or_alias) {
        Ok(room_id) => (room_id.to_owned(), Vec::new()),
        Err(alias) => resolve_alias(&services, alias).await?,
    };
    if matches!(services.rooms.membership.membership(room_id.as_str(), user.as_str())?.as_deref(), Some("join" | "ban")) {
        return Err(Error::forbidden("You are already in (or banned from) this room"));
    }
    if resident(&services, &room_id)? {
        set_membership(&services, &room_id, &user, &user, "knock", body.reason, false).await?;
    } else {
        servers.splice(0..0, body.via);
        let servers = services.federation_rooms.join_candidates(&room_id, &user, &servers)?;
        services.federation_rooms.knock_remote(&room_id, &user, &servers).await?;
    }
    Ok(RumaResponse(knock_room::v3::Response::new(room_id)))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/leave`
pub async fn leave_room_route(
    State(services): State<AppState>,
    request: Ruma<leave_room::v3::Request>,
) -> Result<RumaResponse<leave_room::v3::Response>> {
    let user = request.sender()?.user_id.clone();
    let body = request.body;
    match services.rooms.membership.membership(body.room_id.as_str(), user.as_str())?.as_deref() {
        Some("join" | "invite" | "knock") => {}
        // Leaving twice is harmless; leaving a room one never knew is not.
        Some(_) => return Ok(RumaResponse(leave_room::v3::Response::new())),
        None => return Err(Error::forbidden("You are not a member of this room")),
    }
    if !resident(&services, &body.room_id)? {
        // Declining an invite to (or withdrawing a knock on) a room held elsewhere.
        let servers = services.federation_rooms.join_candidates(&body.room_id, &user, &[])?;
        services.federation_rooms.leave_remote(&body.room_id, &user, &servers).await?;
        return Ok(RumaResponse(leave_room::v3::Response::new()));
    }
    set_membership(&services, &body.room_id, &user, &user, "leave", body.reason, false).await?;
    Ok(RumaResponse(leave_room::v3::Response::new()))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/forget`
pub async fn forget_room_route(
    State(services): State<AppState>,
    request: Ruma<forget_room::v3::Request>,
) -> Result<RumaResponse<forget_room::v3::Response>> {
    let user = request.sender()?.user_id.clone();
    services.rooms.forget(&request.body.room_id, &user).await?;
    Ok(RumaResponse(forget_room::v3::Response::new()))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/kick`
pub async fn kick_user_route(
    State(services): State<AppState>,
    request: Ruma<kick_user::v3::Request>,
) -> Result<RumaResponse<kick_user::v3::Response>> {
    let sender = request.sender()?.user_id.clone();
    let body = request.body;
    let current = services.rooms.membership.membership(body.room_id.as_str(), body.user_id.as_str())?;
    if !matches!(current.as_deref(), Some("join" | "invite" | "knock")) {
        return Err(Error::forbidden(format!("{} is not in the room", body.user_id)));
    }
    set_membership(&services, &body.room_id, &sender, &body.user_id, "leave", body.reason, false).await?;
    Ok(RumaResponse(kick_user::v3::Response::new()))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/ban`
pub async fn ban_user_route(
    State(services): State<AppState>,
    request: Ruma<ban_user::v3::Request>,
) -> Result<RumaResponse<ban_user::v3::Response>> {
    let sender = request.sender()?.user_id.clone();
    let body = request.body;
    set_membership(&services, &body.room_id, &sender, &body.user_id, "ban", body.reason, false).await?;
    Ok(RumaResponse(ban_user::v3::Response::new()))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/unban`
pub async fn unban_user_route(
    State(services): State<AppState>,
    request: Ruma<unban_user::v3::Request>,
) -> Result<RumaResponse<unban_user::v3::Response>> {
    let sender = request.sender()?.user_id.clone();
    let body = request.body;
    let current = services.rooms.membership.membership(body.room_id.as_str(), body.user_id.as_str())?;
    if current.as_deref() != Some("ban") {
        return Err(Error::forbidden(format!("{} is not banned", body.user_id)));
    }
    set_membership(&services, &body.room_id, &sender, &body.user_id, "leave", body.reason, false).await?;
    Ok(RumaResponse(unban_user::v3::Response::new()))
}

/// `GET /_matrix/client/v3/joined_rooms`
pub async fn joined_rooms_route(
    State(services): State<AppState>,
    request: Ruma<joined_rooms::v3::Request>,
) -> Result<RumaResponse<joined_rooms::v3::Response>> {
    let user = &request.sender()?.user_id;
    let rooms = services
        .rooms
        .membership
        .rooms_of(user.as_str())?
        .into_iter()
        .filter(|(_, entry)| entry.membership == "join")
        .filter_map(|(room_id, _)| RoomId::parse(room_id).ok())
        .collect();
    Ok(RumaResponse(joined_rooms::v3::Response::new(rooms)))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/members`
pub async fn get_member_events_route(
    State(services): State<AppState>,
    request: Ruma<get_member_events::v3::Request>,
) -> Result<RumaResponse<get_member_events::v3::Response>> {
    let sender = request.sender()?;
    let body = &request.body;
    let mut group = services.rooms.readable_state_group(&body.room_id, &sender.user_id)?;
    if let Some(at) = &body.at {
        group = services.rooms.state_group_at_token(&body.room_id, at)?;
    }
    let state = services.rooms.state_map(group)?;
    let mut chunk = Vec::new();
    for ((event_type, _), event_id) in state.iter() {
        if event_type != "m.room.member" {
            continue;
        }
        let Some((_, event)) = services.rooms.event(event_id)? else { continue };
        let membership = event.content().get("membership").and_then(Value::as_str).unwrap_or_default();
        // Given together, the two filters are an "or" (spec: either matches membership or
        // differs from not_membership).
        let wanted = body.membership.as_ref().map(|m| m.as_str() == membership);
        let not_unwanted = body.not_membership.as_ref().map(|m| m.as_str() != membership);
        let keep = match (wanted, not_unwanted) {
            (None, None) => true,
            (Some(a), None) | (None, Some(a)) => a,
            (Some(a), Some(b)) => a || b,
        };
        if !keep {
            continue;
        }
        chunk.push(to_raw(&services.rooms.client_event(&event, None)?)?);
    }
    Ok(RumaResponse(get_member_events::v3::Response::new(chunk)))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/joined_members`
pub async fn joined_members_route(
    State(services): State<AppState>,
    request: Ruma<joined_members::v3::Request>,
) -> Result<RumaResponse<joined_members::v3::Response>> {
    let sender = request.sender()?;
    let group = services.rooms.readable_state_group(&request.body.room_id, &sender.user_id)?;
    let state = services.rooms.state_map(group)?;
    let mut joined = BTreeMap::new();
    for ((event_type, state_key), event_id) in state.iter() {
        if event_type != "m.room.member" {
            continue;
        }
        let Some((_, event)) = services.rooms.event(event_id)? else { continue };
        if event.content().get("membership").and_then(Value::as_str) != Some("join") {
            continue;
        }
        let Ok(user_id) = UserId::parse(state_key.as_str()) else { continue };
        let mut member = joined_members::v3::RoomMember::new();
        member.display_name = event.content().get("displayname").and_then(Value::as_str).map(str::to_owned);
        member.avatar_url = event.content().get("avatar_url").and_then(Value::as_str).map(Into::into);
        joined.insert(user_id, member);
    }
    Ok(RumaResponse(joined_members::v3::Response::new(joined)))
}

