//! Membership over federation as the resident server: `make_join`/`send_join`,
//! `make_leave`/`send_leave`, `make_knock`/`send_knock`, and `invite` as the invited server.

use axum::{Router, extract::State};
use ruma::api::federation::membership::{
    create_invite, create_join_event, create_knock_event, create_leave_event, prepare_join_event, prepare_knock_event,
    prepare_leave_event,
};

use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse, RumaRouter},
};

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .ruma::<prepare_join_event::v1::Request, _, _>(make_join_route)
        .ruma::<create_join_event::v2::Request, _, _>(send_join_route)
        .ruma::<prepare_leave_event::v1::Request, _, _>(make_leave_route)
        .ruma::<create_leave_event::v2::Request, _, _>(send_leave_route)
        .ruma::<create_invite::v2::Request, _, _>(invite_route)
        .ruma::<prepare_knock_event::v1::Request, _, _>(make_knock_route)
        .ruma::<create_knock_event::v1::Request, _, _>(send_knock_route)
}

/// `GET /_matrix/federation/v1/make_knock/{roomId}/{userId}`
async fn make_knock_route(
    State(services): State<AppState>,
    request: Ruma<prepare_knock_event::v1::Request>,
) -> Result<RumaResponse<prepare_knock_event::v1::Response>> {
    let origin = request.origin()?.to_owned();
    let body = request.body;
    let (version, event) =
        services.federation_rooms.membership_template_for(&origin, &body.room_id, &body.user_id, "knock", Some(&body.ver)).await?;
    Ok(RumaResponse(prepare_knock_event::v1::Response::new(version, event)))
}

/// `PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}`
async fn send_knock_route(
    State(services): State<AppState>,
    request: Ruma<create_knock_event::v1::Request>,
) -> Result<RumaResponse<create_knock_event::v1::Response>> {
    let origin = request.origin()?.to_owned();
    let body = request.body;
    services.federation_rooms.receive_membership(&origin, &body.room_id, &body.event_id, &body.pdu, "knock").await?;
    let preview = services.federation_rooms.room_preview(&body.room_id)?;
    Ok(RumaResponse(create_knock_event::v1::Response::new(preview)))
}

/// `GET /_matrix/federation/v1/make_join/{roomId}/{userId}`
async fn make_join_route(
    State(services): State<AppState>,
    request: Ruma<prepare_join_event::v1::Request>,
) -> Result<RumaResponse<prepare_join_event::v1::Response>> {
    let origin = request.origin()?.to_owned();
    let body = request.body;
    // No `ver` means the joining server only knows room version 1.
    let supported = if body.ver.is_empty() { vec![ruma::RoomVersionId::V1] } else { body.ver };
    let (version, event) =
        services.federation_rooms.membership_template_for(&origin, &body.room_id, &body.user_id, "join", Some(&supported)).await?;
    let mut response = prepare_join_event::v1::Response::new(event);
    response.room_version = Some(version);
    Ok(RumaResponse(response))
}

/// `PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}`
async fn send_join_route(
    State(services): State<AppState>,
    request: Ruma<create_join_event::v2::Request>,
) -> Result<RumaResponse<create_join_event::v2::Response>> {
    let origin = request.origin()?.to_owned();
    let body = request.body;
    let joined = services
        .federation_rooms
        .receive_membership(&origin, &body.room_id, &body.event_id, &body.pdu, "join")
        .await?
        .ok_or_else(|| Error::internal("a join answered without state"))?;
    let mut state = create_join_event::v2::RoomState::new();
    state.state = joined.state;
    state.auth_chain = joined.auth_chain;
    state.event = joined.event;
    state.servers_in_room = Some(joined.servers_in_room);
    Ok(RumaResponse(create_join_event::v2::Response::new(state)))
}

/// `GET /_matrix/federation/v1/make_leave/{roomId}/{userId}`
async fn make_leave_route(
    State(services): State<AppState>,
    request: Ruma<prepare_leave_event::v1::Request>,
) -> Result<RumaResponse<prepare_leave_event::v1::Response>> {
    let origin = request.origin()?.to_owned();
    let body = request.body;
    let (version, event) = services.federation_rooms.membership_template_for(&origin, &body.room_id, &body.user_id, "leave", None).await?;
    Ok(RumaResponse(prepare_leave_event::v1::Response::new(Some(version), event)))
}

/// `PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}`
async fn send_leave_route(
    State(services): State<AppState>,
    request: Ruma<create_leave_event::v2::Request>,
) -> Result<RumaResponse<create_leave_event::v2::Response>> {
    let origin = request.origin()?.to_owned();
    let body = request.body;
    services.federation_rooms.receive_membership(&origin, &body.room_id, &body.event_id, &body.pdu, "leave").await?;
    Ok(RumaResponse(create_leave_event::v2::Response::new()))
}

/// `PUT /_matrix/federation/v2/invite/{roomId}/{eventId}`
async fn invite_route(
    State(services): State<AppState>,
    request: Ruma<create_invite::v2::Request>,
) -> Result<RumaResponse<create_invite::v2::Response>> {
    let origin = request.origin()?.to_owned();
    let event = services.federation_rooms.receive_invite(&origin, &request.body).await?;
    Ok(RumaResponse(create_invite::v2::Response::new(event)))
}
