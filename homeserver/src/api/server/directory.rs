//! The room directory over federation: `GET /_matrix/federation/v1/query/directory`.

use axum::{Router, extract::State};
use ruma::api::federation::query::get_room_information;

use crate::{
    error::Result,
    router::{AppState, Ruma, RumaResponse, RumaRouter},
};

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router.ruma::<get_room_information::v1::Request, _, _>(get_room_information_route)
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
