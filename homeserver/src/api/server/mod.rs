//! The server-server API. Today: the key server, which federation builds on.

mod key;

use axum::Router;
use ruma::api::federation::discovery::get_server_keys;

use crate::router::{AppState, RumaRouter};

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router.ruma::<get_server_keys::v2::Request, _, _>(key::get_server_keys_route)
}
