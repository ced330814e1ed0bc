//! `GET /_matrix/key/v2/server`

use axum::extract::State;
use ruma::{api::federation::discovery::get_server_keys, serde::Raw};

use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse},
    util::now_millis,
};

use crate::service::remote_keys::OWN_KEY_VALIDITY_MS as KEY_VALIDITY_MS;

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

/// `GET /_matrix/key/v2/query/{serverName}`: another server's keys, through us as a notary.
pub async fn get_remote_server_keys_route(
    State(services): State<AppState>,
    request: Ruma<ruma::api::federation::discovery::get_remote_server_keys::v2::Request>,
) -> Result<RumaResponse<ruma::api::federation::discovery::get_remote_server_keys::v2::Response>> {
    let body = &request.body;
    let minimum = u64::from(body.minimum_valid_until_ts.0);
    let keys = services.remote_keys.notarised(&body.server_name, minimum).await?.into_iter().map(to_raw).collect::<Result<_>>()?;
    Ok(RumaResponse(ruma::api::federation::discovery::get_remote_server_keys::v2::Response::new(keys)))
}

/// `POST /_matrix/key/v2/query`: several servers' keys at once.
pub async fn get_remote_server_keys_batch_route(
    State(services): State<AppState>,
    request: Ruma<ruma::api::federation::discovery::get_remote_server_keys_batch::v2::Request>,
) -> Result<RumaResponse<ruma::api::federation::discovery::get_remote_server_keys_batch::v2::Response>> {
    let mut keys = Vec::new();
    // A bound on the work one request can cause.
    for (server, criteria) in request.body.server_keys.iter().take(100) {
        let minimum = criteria
            .values()
            .filter_map(|c| c.minimum_valid_until_ts.map(|ts| u64::from(ts.0)))
            .max()
            .unwrap_or_else(now_millis);
        if let Some(response) = services.remote_keys.notarised(server, minimum).await? {
            keys.push(to_raw(response)?);
        }
    }
    Ok(RumaResponse(ruma::api::federation::discovery::get_remote_server_keys_batch::v2::Response::new(keys)))
}

fn to_raw<T>(value: serde_json::Value) -> Result<Raw<T>> {
    let json = serde_json::value::to_raw_value(&value).map_err(|e| Error::internal(e.to_string()))?;
    Ok(Raw::from_json(json))
}
