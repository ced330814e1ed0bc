//! The axum router: layers that every request passes, and the table of endpoints.

mod extract;
mod json_path;
mod layers;
mod ruma;

use axum::{Router, routing::get};
use http::StatusCode;

pub use self::extract::{AdminUser, ClientUser, MatrixJson};
pub use self::ruma::{AppState, AuthMode, Ruma, RumaResponse, RumaRouter, access_token, client_ip, read_body};
use crate::{api, error::Error};

/// Builds the whole HTTP surface of the server.
pub fn build(state: AppState) -> Router {
    let router = Router::new().route("/health", get(|| async { "OK" }));
    let router = api::client::routes(router);
    let router = api::admin::routes(router);
    let router = api::server::routes(router);
    let router = api::media::routes(router);
    let router = api::media_preview::routes(router);
    let router = router
        .fallback(|| async { Error::unrecognized(StatusCode::NOT_FOUND) })
        .method_not_allowed_fallback(|| async { Error::unrecognized(StatusCode::METHOD_NOT_ALLOWED) });
    layers::apply(router, state.clone()).with_state(state)
}
