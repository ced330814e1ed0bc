//! Reading a room's past over federation: `/event`, `/state`, `/state_ids`, `/event_auth`,
//! `/backfill`, `/get_missing_events`. The access rules (server ACL, the requesting server's
//! presence in the room, history visibility) live in `service/rooms/federation_read.rs`.

use axum::{Router, extract::State};
use ruma::{
    MilliSecondsSinceUnixEpoch, OwnedServerName,
    api::federation::{
        authorization::get_event_authorization,
        backfill::get_backfill,
        event::{get_event, get_missing_events, get_room_state, get_room_state_ids},
    },
};

use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse, RumaRouter},
};

// Declared here rather than in `server/mod.rs`: the room directory over federation.
#[path = "directory.rs"]
mod directory;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    directory::routes(router)
        .ruma::<get_event::v1::Request, _, _>(get_event_route)
        .ruma::<get_room_state::v1::Request, _, _>(get_room_state_route)
        .ruma::<get_room_state_ids::v1::Request, _, _>(get_room_state_ids_route)
        .ruma::<get_event_authorization::v1::Request, _, _>(get_event_authorization_route)
        .ruma::<get_backfill::v1::Request, _, _>(get_backfill_route)
        .ruma::<get_missing_events::v1::Request, _, _>(get_missing_events_route)
}

/// The server that signed the request (always set on `ServerSignatures` endpoints).
pub(super) fn origin<T>(request: &Ruma<T>) -> Result<OwnedServerName> {
    request.origin.clone().ok_or_else(|| Error::internal("federation request without a verified origin"))
}

/// `GET /_matrix/federation/v1/event/{eventId}`
async fn get_event_route(
    State(services): State<AppState>,
    request: Ruma<get_event::v1::Request>,
) -> Result<RumaResponse<get_event::v1::Response>> {
    let origin = origin(&request)?;
    let pdu = services.rooms.federation_event(&origin, &request.body.event_id)?;
    Ok(RumaResponse(get_event::v1::Response::new(services.server_name.clone(), MilliSecondsSinceUnixEpoch::now(), pdu)))
}

/// `GET /_matrix/federation/v1/state/{roomId}?event_id=`
async fn get_room_state_route(
    State(services): State<AppState>,
    request: Ruma<get_room_state::v1::Request>,
) -> Result<RumaResponse<get_room_state::v1::Response>> {
    let origin = origin(&request)?;
    let body = &request.body;
    let (pdus, auth_chain) = services.rooms.federation_state(&origin, &body.room_id, &body.event_id)?;
    Ok(RumaResponse(get_room_state::v1::Response::new(auth_chain, pdus)))
}

/// `GET /_matrix/federation/v1/state_ids/{roomId}?event_id=`
async fn get_room_state_ids_route(
    State(services): State<AppState>,
    request: Ruma<get_room_state_ids::v1::Request>,
) -> Result<RumaResponse<get_room_state_ids::v1::Response>> {
    let origin = origin(&request)?;
    let body = &request.body;
    let (pdu_ids, auth_chain_ids) = services.rooms.federation_state_ids(&origin, &body.room_id, &body.event_id)?;
    Ok(RumaResponse(get_room_state_ids::v1::Response::new(auth_chain_ids, pdu_ids)))
}

/// `GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}`
async fn get_event_authorization_route(
    State(services): State<AppState>,
    request: Ruma<get_event_authorization::v1::Request>,
) -> Result<RumaResponse<get_event_authorization::v1::Response>> {
    let origin = origin(&request)?;
    let body = &request.body;
    let auth_chain = services.rooms.federation_event_auth(&origin, &body.room_id, &body.event_id)?;
    Ok(RumaResponse(get_event_authorization::v1::Response::new(auth_chain)))
}

/// `GET /_matrix/federation/v1/backfill/{roomId}?v=&limit=`
async fn get_backfill_route(
    State(services): State<AppState>,
    request: Ruma<get_backfill::v1::Request>,
) -> Result<RumaResponse<get_backfill::v1::Response>> {
    let origin = origin(&request)?;
    let body = &request.body;
    let pdus = services.rooms.federation_backfill(&origin, &body.room_id, &body.v, u64::from(body.limit))?;
    Ok(RumaResponse(get_backfill::v1::Response::new(services.server_name.clone(), MilliSecondsSinceUnixEpoch::now(), pdus)))
}

/// `POST /_matrix/federation/v1/get_missing_events/{roomId}`
async fn get_missing_events_route(
    State(services): State<AppState>,
    request: Ruma<get_missing_events::v1::Request>,
) -> Result<RumaResponse<get_missing_events::v1::Response>> {
    let origin = origin(&request)?;
    let body = &request.body;
    let events = services.rooms.federation_missing_events(
        &origin,
        &body.room_id,
        &body.earliest_events,
        &body.latest_events,
        u64::from(body.limit),
        u64::from(body.min_depth),
    )?;
    Ok(RumaResponse(get_missing_events::v1::Response::new(events)))
}
