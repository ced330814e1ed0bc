//! The room directory over federation: `query/directory` and `publicRooms`.

use axum::{Router, extract::State};
use ruma::{
    UInt,
    api::federation::{
        directory::{get_public_rooms, get_public_rooms_filtered},
        query::get_room_information,
    },
};

use crate::{
    error::Result,
    router::{AppState, Ruma, RumaResponse, RumaRouter},
};

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .ruma::<get_room_information::v1::Request, _, _>(get_room_information_route)
        .ruma::<get_public_rooms::v1::Request, _, _>(get_public_rooms_route)
        .ruma::<get_public_rooms_filtered::v1::Request, _, _>(get_public_rooms_filtered_route)
}

/// `GET /_matrix/federation/v1/publicRooms`: our public room directory, for other servers'
/// users.
async fn get_public_rooms_route(
    State(services): State<AppState>,
    request: Ruma<get_public_rooms::v1::Request>,
) -> Result<RumaResponse<get_public_rooms::v1::Response>> {
    let body = &request.body;
    let page = services.rooms.directory_page(None, body.since.as_deref(), body.limit)?;
    let mut response = get_public_rooms::v1::Response::new();
    response.chunk = page.chunk;
    response.next_batch = page.next;
    response.prev_batch = page.prev;
    response.total_room_count_estimate = UInt::new(page.total as u64);
    Ok(RumaResponse(response))
}

/// `POST /_matrix/federation/v1/publicRooms`: the same, with a search term.
async fn get_public_rooms_filtered_route(
    State(services): State<AppState>,
    request: Ruma<get_public_rooms_filtered::v1::Request>,
) -> Result<RumaResponse<get_public_rooms_filtered::v1::Response>> {
    let body = &request.body;
    let page = services.rooms.directory_page(body.filter.generic_search_term.as_deref(), body.since.as_deref(), body.limit)?;
    let mut response = get_public_rooms_filtered::v1::Response::new();
    response.chunk = page.chunk;
    response.next_batch = page.next;
    response.prev_batch = page.prev;
    response.total_room_count_estimate = UInt::new(page.total as u64);
    Ok(RumaResponse(response))
}

/// `GET /_matrix/federation/v1/query/directory?room_alias=`: the room a local alias names and
/// servers likely to be in it.
async fn get_room_information_route(
    State(services): State<AppState>,
    request: Ruma<get_room_information::v1::Request>,
) -> Result<RumaResponse<get_room_information::v1::Response>> {
    let (room_id, servers) = services.rooms.federation_alias(&request.body.room_alias)?;
    Ok(RumaResponse(get_room_information::v1::Response::new(room_id, servers)))
}
