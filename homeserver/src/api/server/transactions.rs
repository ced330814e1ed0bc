//! `PUT /_matrix/federation/v1/send/{txnId}`: PDUs and EDUs pushed by other servers.

use axum::Router;

use crate::router::AppState;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
}
