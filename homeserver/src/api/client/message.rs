//! Sending, reading and paginating events.

use axum::extract::State;
use ruma::{
    EventId, RoomId, UserId,
    api::{
        Direction,
        client::{
            context::get_context,
            message::{get_message_events, send_message_event},
            redact::redact_event,
            room::get_room_event,
        },
    },
};
use serde_json::{Value, json};

use super::to_raw;
use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse},
    service::{
        Services,
        rooms::{EventDraft, StoredEvent, Transaction, event_matches, timeline::gap_after, tokens::Token},
    },
};

/// `PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}`
pub async fn send_message_event_route(
    State(services): State<AppState>,
    request: Ruma<send_message_event::v3::Request>,
) -> Result<RumaResponse<send_message_event::v3::Response>> {
    let sender = request.sender()?.clone();
    let body = request.body;
    let content: Value = serde_json::from_str(body.body.json().get()).map_err(|e| Error::bad_json(e.to_string()))?;
    if !content.is_object() {
        return Err(Error::bad_json("Event content must be a JSON object"));
    }
    require_joined(&services, &body.room_id, &sender.user_id)?;
    let transaction = Transaction { device_id: sender.device_id.to_string(), txn_id: body.txn_id.to_string() };
    let event_id = services
        .rooms
        .append(&body.room_id, &sender.user_id, EventDraft::message(body.event_type.to_string(), content), Some(transaction))
        .await?;
    services.presence.active(&sender.user_id).await?;
    Ok(RumaResponse(send_message_event::v3::Response::new(event_id)))
}

/// `PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}`
pub async fn redact_event_route(
    State(services): State<AppState>,
    request: Ruma<redact_event::v3::Request>,
) -> Result<RumaResponse<redact_event::v3::Response>> {
    let sender = request.sender()?.clone();
    let body = request.body;
    require_joined(&services, &body.room_id, &sender.user_id)?;
    services.rooms.check_may_redact(&body.room_id, &body.event_id, &sender.user_id)?;
    let mut content = json!({ "redacts": body.event_id });
    if let Some(reason) = body.reason {
        content["reason"] = json!(reason);
    }
    let draft = EventDraft { event_type: "m.room.redaction".to_owned(), state_key: None, content, redacts: Some(body.event_id.clone()) };
    let transaction = Transaction { device_id: sender.device_id.to_string(), txn_id: body.txn_id.to_string() };
    let event_id = services.rooms.append(&body.room_id, &sender.user_id, draft, Some(transaction)).await?;
    Ok(RumaResponse(redact_event::v3::Response::new(event_id)))
}

/// Senders must be joined; anything else is `M_FORBIDDEN` (and an unknown room `M_NOT_FOUND`).
pub fn require_joined(services: &Services, room_id: &RoomId, user: &UserId) -> Result<()> {
    services.rooms.room(room_id)?;
    match services.rooms.membership.membership(room_id.as_str(), user.as_str())?.as_deref() {
        Some("join") => Ok(()),
        _ => Err(Error::forbidden(format!("{user} is not joined to {room_id}"))),
    }
}

/// The event if `user` may see it; a hidden event is reported as not found, so its existence
/// does not leak.
fn visible_event(services: &Services, room_id: &RoomId, event_id: &EventId, user: &UserId) -> Result<StoredEvent> {
    services.rooms.visible_event(room_id, event_id.as_str(), &services.rooms.viewer(room_id, user)?)
}

/// `GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}`
pub async fn get_room_event_route(
    State(services): State<AppState>,
    request: Ruma<get_room_event::v3::Request>,
) -> Result<RumaResponse<get_room_event::v3::Response>> {
    let sender = request.sender()?;
    let body = &request.body;
    let event = visible_event(&services, &body.room_id, &body.event_id, &sender.user_id)?;
    let client = services.rooms.client_event(&event, Some((&sender.user_id, &sender.device_id)))?;
    Ok(RumaResponse(get_room_event::v3::Response::new(to_raw(&client)?)))
}

/// How many times one `/messages` request asks other servers for older history.
const MAX_BACKFILLS_PER_PAGE: usize = 3;

/// The most events one `/messages` page returns, whatever the client asks.
const MAX_PAGE: usize = 1000;

/// `GET /_matrix/client/v3/rooms/{roomId}/messages`
pub async fn get_message_events_route(
    State(services): State<AppState>,
    request: Ruma<get_message_events::v3::Request>,
) -> Result<RumaResponse<get_message_events::v3::Response>> {
    let sender = request.sender()?;
    let body = &request.body;
    let record = services.rooms.room(&body.room_id)?;
    let membership = services.rooms.membership.membership(body.room_id.as_str(), sender.user_id.as_str())?;
    let world_readable = services.rooms.history_visibility(record.current_state_group)? == "world_readable";
    if membership.is_none() && !world_readable {
        return Err(Error::forbidden("You are not a member of this room"));
    }
    let viewer = services.rooms.viewer(&body.room_id, &sender.user_id)?;
    let ignored = services.account_data.ignored_users(&sender.user_id)?;
    let limit = usize::try_from(u64::from(body.limit)).unwrap_or(MAX_PAGE).min(MAX_PAGE);
    let direction = match body.dir {
        Direction::Backward => myelin_storage::Direction::Reverse,
        Direction::Forward => myelin_storage::Direction::Forward,
    };
    let from = match &body.from {
        Some(token) => services.rooms.topological_gap(record.short, Token::parse(token)?)?,
        // Without `from`, backwards starts after the newest event and forwards before the oldest.
        None if body.dir == Direction::Backward => (u64::MAX, u64::MAX),
        None => (0, 0),
    };
    let to = body.to.as_deref().map(Token::parse).transpose()?.map(|t| services.rooms.topological_gap(record.short, t)).transpose()?;

    let mut chunk = Vec::new();
    let mut cursor = from;
    let mut exhausted = limit == 0;
    let mut backfills = 0;
    let mut history_elsewhere = false;
    // Invisible or filtered events are skipped without counting; keep reading pages until the
    // chunk is full or the room (or `to`) ends. Going back past the oldest event we hold, ask
    // the other servers in the room for more history, a few times per request at most.
    loop {
        if exhausted && backfills < MAX_BACKFILLS_PER_PAGE && to.is_none() && body.dir == Direction::Backward && chunk.len() < limit {
            backfills += 1;
            history_elsewhere = services.federation_rooms.backfill(&body.room_id, limit - chunk.len()).await.unwrap_or(0) > 0;
            if history_elsewhere {
                exhausted = false;
            }
        }
        if chunk.len() >= limit || exhausted {
            break;
        }
        let page = services.rooms.timeline.room_topological(record.short, cursor, direction, limit)?;
        exhausted = page.len() < limit;
        for (position, short) in page {
            let beyond_to = to.is_some_and(|to| match body.dir {
                Direction::Backward => position < to,
                Direction::Forward => position >= to,
            });
            if beyond_to {
                exhausted = true;
                break;
            }
            cursor = gap_after(position, direction);
            let Some(event) = services.rooms.timeline.get(short)? else { continue };
            if !event_matches(&body.filter, &event) || ignored.contains(event.sender()) || !services.rooms.can_see_event(&viewer, &event)? {
                continue;
            }
            chunk.push(event);
            if chunk.len() >= limit {
                break;
            }
        }
    }

    let mut response = get_message_events::v3::Response::new();
    response.start = body.from.clone().unwrap_or_else(|| Token::Stream(services.rooms.stream.safe()).to_string());
    // Another server may hold more history than this page reached: the client may page on.
    response.end = (!exhausted || history_elsewhere || (limit > 0 && chunk.len() >= limit)).then(|| Token::Topological { depth: cursor.0, stream: cursor.1 }.to_string());
    if !body.filter.lazy_load_options.is_disabled() {
        response.state = lazy_members(&services, &body.room_id, &chunk)?;
    }
    response.chunk = chunk
        .iter()
        .map(|event| services.rooms.client_event(event, Some((&sender.user_id, &sender.device_id))).and_then(|e| to_raw(&e)))
        .collect::<Result<_>>()?;
    Ok(RumaResponse(response))
}

/// The member events of the senders in `events`, as lazy-loading clients need them.
fn lazy_members<T>(services: &Services, room_id: &RoomId, events: &[StoredEvent]) -> Result<Vec<ruma::serde::Raw<T>>> {
    let record = services.rooms.room(room_id)?;
    let mut senders: Vec<&str> = events.iter().map(StoredEvent::sender).collect();
    senders.sort_unstable();
    senders.dedup();
    let mut out = Vec::new();
    for sender in senders {
        if let Some(member) = services.rooms.state_event(record.current_state_group, "m.room.member", sender)? {
            out.push(to_raw(&services.rooms.client_event(&member, None)?)?);
        }
    }
    Ok(out)
}

/// `GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}`
pub async fn get_context_route(
    State(services): State<AppState>,
    request: Ruma<get_context::v3::Request>,
) -> Result<RumaResponse<get_context::v3::Response>> {
    let sender = request.sender()?;
    let body = &request.body;
    let event = visible_event(&services, &body.room_id, &body.event_id, &sender.user_id)?;
    let record = services.rooms.room(&body.room_id)?;
    let visibility_viewer = services.rooms.viewer(&body.room_id, &sender.user_id)?;
    let limit = usize::try_from(u64::from(body.limit)).unwrap_or(MAX_PAGE).min(MAX_PAGE);
    let before_limit = limit / 2;
    let after_limit = limit - before_limit;
    let position = (event.depth, event.stream);
    let viewer = Some((&*sender.user_id, &*sender.device_id));
    // Tokens are gaps: `start` just before the oldest event shown, `end` just after the newest.
    let collect = |direction, wanted: usize| -> Result<(Vec<StoredEvent>, (u64, u64))> {
        let mut out = Vec::new();
        let mut cursor = gap_after(position, direction);
        for (pos, short) in services.rooms.timeline.room_topological(record.short, cursor, direction, wanted.max(1) * 4)? {
            if out.len() >= wanted {
                break;
            }
            cursor = gap_after(pos, direction);
            if let Some(candidate) = services.rooms.timeline.get(short)?
                && event_matches(&body.filter, &candidate)
                && services.rooms.can_see_event(&visibility_viewer, &candidate)?
            {
                out.push(candidate);
            }
        }
        Ok((out, cursor))
    };
    let (before, start) = collect(myelin_storage::Direction::Reverse, before_limit)?;
    let (after, end) = collect(myelin_storage::Direction::Forward, after_limit)?;
    let to_client = |e: &StoredEvent| services.rooms.client_event(e, viewer).and_then(|v| to_raw(&v));
    let mut response = get_context::v3::Response::new();
    response.event = Some(to_client(&event)?);
    response.events_before = before.iter().map(to_client).collect::<Result<_>>()?;
    response.events_after = after.iter().map(to_client).collect::<Result<_>>()?;
    response.start = Some(Token::Topological { depth: start.0, stream: start.1 }.to_string());
    response.end = Some(Token::Topological { depth: end.0, stream: end.1 }.to_string());
    let mut shown: Vec<StoredEvent> = before;
    shown.push(event.clone());
    shown.extend(after);
    response.state = if body.filter.lazy_load_options.is_disabled() {
        services
            .rooms
            .state_map(event.state_after)?
            .values()
            .filter_map(|id| services.rooms.event(id).transpose())
            .map(|found| found.and_then(|(_, e)| services.rooms.client_event(&e, None)).and_then(|v| to_raw(&v)))
            .collect::<Result<_>>()?
    } else {
        lazy_members(&services, &body.room_id, &shown)?
    };
    Ok(RumaResponse(response))
}
