//! Room state: read all of it, read one event, set one event.

use axum::extract::State;
use ruma::{
    RoomId, UserId,
    api::client::state::{get_state_event_for_key, get_state_events, send_state_event},
};
use serde_json::Value;

use super::{message::require_joined, to_raw};
use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse},
    service::{Services, rooms::EventDraft},
};

fn readable_state(services: &Services, room_id: &RoomId, user: &UserId) -> Result<u64> {
    services.rooms.readable_state_group(room_id, user)
}

/// `GET /_matrix/client/v3/rooms/{roomId}/state`
pub async fn get_state_events_route(
    State(services): State<AppState>,
    request: Ruma<get_state_events::v3::Request>,
) -> Result<RumaResponse<get_state_events::v3::Response>> {
    let sender = request.sender()?;
    let group = readable_state(&services, &request.body.room_id, &sender.user_id)?;
    let mut events = Vec::new();
    for event_id in services.rooms.state_map(group)?.values() {
        if let Some((_, event)) = services.rooms.event(event_id)? {
            events.push(to_raw(&services.rooms.client_event(&event, None)?)?);
        }
    }
    Ok(RumaResponse(get_state_events::v3::Response::new(events)))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`
pub async fn get_state_event_for_key_route(
    State(services): State<AppState>,
    request: Ruma<get_state_event_for_key::v3::Request>,
) -> Result<RumaResponse<get_state_event_for_key::v3::Response>> {
    let sender = request.sender()?;
    let body = &request.body;
    let group = readable_state(&services, &body.room_id, &sender.user_id)?;
    let event = services
        .rooms
        .state_event(group, &body.event_type.to_string(), &body.state_key)?
        .ok_or_else(|| Error::not_found("State event not found"))?;
    let value = match body.format {
        get_state_event_for_key::v3::StateEventFormat::Event => services.rooms.client_event(&event, None)?,
        _ => event.content().clone(),
    };
    let raw = serde_json::value::to_raw_value(&value).map_err(|e| Error::internal(e.to_string()))?;
    Ok(RumaResponse(get_state_event_for_key::v3::Response::new(raw)))
}

/// `PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`
pub async fn send_state_event_route(
    State(services): State<AppState>,
    request: Ruma<send_state_event::v3::Request>,
) -> Result<RumaResponse<send_state_event::v3::Response>> {
    let sender = request.sender()?.clone();
    let body = request.body;
    let content: Value = serde_json::from_str(body.body.json().get()).map_err(|e| Error::bad_json(e.to_string()))?;
    if !content.is_object() {
        return Err(Error::bad_json("State content must be a JSON object"));
    }
    let event_type = body.event_type.to_string();
    // A member event is how one joins: it must not require being joined already.
    if event_type != "m.room.member" {
        require_joined(&services, &body.room_id, &sender.user_id)?;
    }
    // Sending the same content again is a no-op that returns the existing event, as Synapse does.
    let record = services.rooms.room(&body.room_id)?;
    if let Some(existing) = services.rooms.state_event(record.current_state_group, &event_type, &body.state_key)?
        && existing.sender() == sender.user_id.as_str()
        && existing.content() == &content
    {
        let event_id = ruma::EventId::parse(&existing.event_id).map_err(|e| Error::internal(e.to_string()))?;
        return Ok(RumaResponse(send_state_event::v3::Response::new(event_id)));
    }
    let event_id = services
        .rooms
        .append(&body.room_id, &sender.user_id, EventDraft::state(event_type, body.state_key, content), None)
        .await?;
    Ok(RumaResponse(send_state_event::v3::Response::new(event_id)))
}

