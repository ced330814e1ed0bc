//! Shared-secret registration, compatible with Synapse's `register_new_matrix_user`.

use axum::{Json, extract::State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    error::{Error, Result},
    router::{AppState, MatrixJson},
    service::shared_secret::SharedSecretRegistration,
};

fn require_secret(services: &AppState) -> Result<&str> {
    services
        .config
        .registration_shared_secret
        .as_deref()
        .ok_or_else(|| Error::matrix(http::StatusCode::BAD_REQUEST, ruma::api::error::ErrorKind::Unknown, "Shared secret registration is not enabled"))
}

/// `GET /_synapse/admin/v1/register`
pub async fn get_nonce_route(State(services): State<AppState>) -> Result<Json<Value>> {
    require_secret(&services)?;
    Ok(Json(json!({ "nonce": services.shared_secret.new_nonce() })))
}

#[derive(Deserialize)]
pub struct SharedSecretRegisterBody {
    nonce: String,
    username: String,
    password: String,
    #[serde(default)]
    admin: bool,
    displayname: Option<String>,
    mac: String,
}

/// `POST /_synapse/admin/v1/register`
pub async fn register_route(
    State(services): State<AppState>,
    MatrixJson(body): MatrixJson<SharedSecretRegisterBody>,
) -> Result<Json<Value>> {
    let secret = require_secret(&services)?;
    if !services.shared_secret.take_nonce(&body.nonce) {
        return Err(Error::invalid_param("Unrecognised nonce"));
    }
    if !SharedSecretRegistration::mac_is_valid(secret, &body.nonce, &body.username, &body.password, body.admin, &body.mac) {
        return Err(Error::forbidden("HMAC incorrect"));
    }
    let user_id = services.users.user_id_for_registration(&body.username)?;
    services.users.create(&user_id, Some(&body.password), body.admin, body.displayname).await?;
    let session = services.sessions.create_session(&user_id, None, None, false).await?;
    tracing::info!(%user_id, admin = body.admin, "registered an account with the shared secret");
    Ok(Json(json!({
        "user_id": user_id,
        "access_token": session.access_token,
        "device_id": session.device_id,
        "home_server": services.server_name,
    })))
}
