//! `GET /_matrix/key/v2/server`

use axum::extract::State;
use ruma::{api::federation::discovery::get_server_keys, serde::Raw};

use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse},
    util::now_millis,
};

/// Peers cache our key until then; a week, as Synapse publishes.
const KEY_VALIDITY_MS: u64 = 7 * 24 * 60 * 60 * 1000;

pub async fn get_server_keys_route(
    State(services): State<AppState>,
    _: Ruma<get_server_keys::v2::Request>,
) -> Result<RumaResponse<get_server_keys::v2::Response>> {
    let signed = services
        .signing_key
        .server_key_response(services.server_name.as_str(), now_millis() + KEY_VALIDITY_MS)?;
    let json = serde_json::value::to_raw_value(&signed).map_err(|e| Error::internal(e.to_string()))?;
    Ok(RumaResponse(get_server_keys::v2::Response::new(Raw::from_json(json))))
}
