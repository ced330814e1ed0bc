//! The server-server API: keys, queries, transactions, membership and reading a room's past.

mod events;
mod key;
mod keys;
mod membership;
mod query;
mod transactions;

use axum::Router;
use ruma::api::federation::discovery::{get_server_keys, get_server_version};

use crate::{
    error::Result,
    router::{AppState, Ruma, RumaResponse, RumaRouter},
};

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = transactions::routes(membership::routes(events::routes(router)));
    router
        .ruma::<get_server_keys::v2::Request, _, _>(key::get_server_keys_route)
        .ruma::<get_server_version::v1::Request, _, _>(get_server_version_route)
        .ruma::<ruma::api::federation::discovery::get_remote_server_keys::v2::Request, _, _>(key::get_remote_server_keys_route)
        .ruma::<ruma::api::federation::discovery::get_remote_server_keys_batch::v2::Request, _, _>(key::get_remote_server_keys_batch_route)
        .ruma::<ruma::api::federation::query::get_profile_information::v1::Request, _, _>(query::get_profile_information_route)
        .ruma::<ruma::api::federation::openid::get_openid_userinfo::v1::Request, _, _>(query::get_openid_userinfo_route)
        .ruma::<ruma::api::federation::device::get_devices::v1::Request, _, _>(keys::get_devices_route)
        .ruma::<ruma::api::federation::keys::get_keys::v1::Request, _, _>(keys::get_keys_route)
        .ruma::<ruma::api::federation::keys::claim_keys::v1::Request, _, _>(keys::claim_keys_route)
}

/// `GET /_matrix/federation/v1/version`
async fn get_server_version_route(
    _: Ruma<get_server_version::v1::Request>,
) -> Result<RumaResponse<get_server_version::v1::Response>> {
    let mut server = get_server_version::v1::Server::new();
    server.name = Some("Myelin".to_owned());
    server.version = Some(env!("CARGO_PKG_VERSION").to_owned());
    let mut response = get_server_version::v1::Response::new();
    response.server = Some(server);
    Ok(RumaResponse(response))
}
