//! Read receipts, read markers and typing notifications.

use std::time::Duration;

use axum::extract::State;
use ruma::{
    EventId, RoomId, UserId,
    api::client::{
        read_marker::set_read_marker,
        receipt::create_receipt::{self, v3::ReceiptType},
        typing::create_typing_event::{self, v3::Typing},
    },
    events::receipt::ReceiptThread,
};
use serde_json::json;

use super::message::require_joined;
use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse},
    service::{
        Services,
        receipts::{READ, READ_PRIVATE},
    },
};

/// Moves the user's `m.fully_read` marker, which lives in room account data.
async fn set_fully_read(services: &Services, room_id: &RoomId, user: &UserId, event_id: &EventId) -> Result<()> {
    if services.rooms.event_shared(event_id.as_str())?.is_none() {
        return Err(Error::not_found("Unknown event"));
    }
    services.account_data.set(user, Some(room_id.as_str()), "m.fully_read", &json!({ "event_id": event_id })).await
}

/// `POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}`
pub async fn create_receipt_route(
    State(services): State<AppState>,
    request: Ruma<create_receipt::v3::Request>,
) -> Result<RumaResponse<create_receipt::v3::Response>> {
    let user = request.sender()?.user_id.clone();
    let body = request.body;
    require_joined(&services, &body.room_id, &user)?;
    let thread = match &body.thread {
        ReceiptThread::Unthreaded => None,
        thread => thread.as_str().map(ToOwned::to_owned),
    };
    match body.receipt_type {
        ReceiptType::FullyRead => {
            if thread.is_some() {
                return Err(Error::invalid_param("m.fully_read takes no thread_id"));
            }
            set_fully_read(&services, &body.room_id, &user, &body.event_id).await?;
        }
        ReceiptType::Read => services.receipts.set_local(&body.room_id, &user, READ, body.event_id.as_str(), thread.as_deref()).await?,
        ReceiptType::ReadPrivate => {
            services.receipts.set_local(&body.room_id, &user, READ_PRIVATE, body.event_id.as_str(), thread.as_deref()).await?;
        }
        _ => return Err(Error::invalid_param("Unknown receipt type")),
    }
    Ok(RumaResponse(create_receipt::v3::Response::new()))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/read_markers`
pub async fn set_read_marker_route(
    State(services): State<AppState>,
    request: Ruma<set_read_marker::v3::Request>,
) -> Result<RumaResponse<set_read_marker::v3::Response>> {
    let user = request.sender()?.user_id.clone();
    let body = request.body;
    require_joined(&services, &body.room_id, &user)?;
    if let Some(event_id) = &body.fully_read {
        set_fully_read(&services, &body.room_id, &user, event_id).await?;
    }
    if let Some(event_id) = &body.read_receipt {
        services.receipts.set_local(&body.room_id, &user, READ, event_id.as_str(), None).await?;
    }
    if let Some(event_id) = &body.private_read_receipt {
        services.receipts.set_local(&body.room_id, &user, READ_PRIVATE, event_id.as_str(), None).await?;
    }
    Ok(RumaResponse(set_read_marker::v3::Response::new()))
}

/// `PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}`
pub async fn create_typing_event_route(
    State(services): State<AppState>,
    request: Ruma<create_typing_event::v3::Request>,
) -> Result<RumaResponse<create_typing_event::v3::Response>> {
    let user = request.sender()?.user_id.clone();
    let body = request.body;
    if body.user_id != user {
        return Err(Error::forbidden("You can only set your own typing state"));
    }
    match body.state {
        Typing::Yes(info) => services.typing.set_local(&body.room_id, &user, true, info.timeout).await?,
        _ => services.typing.set_local(&body.room_id, &user, false, Duration::ZERO).await?,
    }
    Ok(RumaResponse(create_typing_event::v3::Response::new()))
}
