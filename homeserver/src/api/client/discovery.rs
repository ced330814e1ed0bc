//! Discovery: `/versions` and the `.well-known` documents.

use std::collections::BTreeMap;

use axum::{Json, extract::State};
use ruma::api::client::discovery::{discover_homeserver, get_supported_versions};

use crate::{
    error::Result,
    router::{AppState, Ruma, RumaResponse},
};

/// Every spec version whose client-server API we serve: r0 for older clients such as
/// Hydrogen, then v1.1 through v1.16.
const SUPPORTED_VERSIONS: &[&str] = &[
    "r0.0.1", "r0.1.0", "r0.2.0", "r0.3.0", "r0.4.0", "r0.5.0", "r0.6.0", "r0.6.1", "v1.1", "v1.2", "v1.3",
    "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11", "v1.12", "v1.13", "v1.14", "v1.15",
    "v1.16",
];

/// `GET /_matrix/client/versions`
pub async fn get_supported_versions_route(
    _: Ruma<get_supported_versions::Request>,
) -> Result<RumaResponse<get_supported_versions::Response>> {
    let mut response =
        get_supported_versions::Response::new(SUPPORTED_VERSIONS.iter().map(|v| (*v).to_owned()).collect());
    // Unstable features are advertised as they land; clients treat a missing key as "no".
    response.unstable_features = BTreeMap::from([
        ("org.matrix.msc2432".to_owned(), false),
        ("uk.tcpip.msc4133".to_owned(), true),
        ("uk.tcpip.msc4133.stable".to_owned(), true),
        // Delivery receipts ("delivered" ticks): see service/receipts.rs.
        (crate::service::receipts::DELIVERY_FEATURE.to_owned(), true),
    ]);
    Ok(RumaResponse(response))
}

/// `GET /.well-known/matrix/client`
pub async fn discover_homeserver_route(
    State(services): State<AppState>,
    _: Ruma<discover_homeserver::Request>,
) -> Result<RumaResponse<discover_homeserver::Response>> {
    let base_url = services.config.well_known_client_base_url();
    Ok(RumaResponse(discover_homeserver::Response::new(discover_homeserver::HomeserverInfo::new(base_url))))
}

/// `GET /.well-known/matrix/server`: where other servers reach our federation API.
pub async fn well_known_server_route(State(services): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "m.server": services.config.well_known_server() }))
}
