//! Extractors for endpoints ruma does not type (the Synapse admin API).

use axum::extract::{FromRequest, FromRequestParts, Request};
use http::request::Parts;
use serde::de::DeserializeOwned;

use super::{AppState, access_token, client_ip, read_body, ruma::{bad_json_naming_field, check_json_syntax}};
use crate::{error::{Error, Result}, service::sessions::AuthedUser};

/// A JSON body whose failures are Matrix errors: `M_NOT_JSON`, `M_BAD_JSON` naming the
/// field, `M_TOO_LARGE`.
pub struct MatrixJson<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<AppState> for MatrixJson<T> {
    type Rejection = Error;

    async fn from_request(request: Request, state: &AppState) -> Result<Self> {
        let (parts, body) = request.into_parts();
        let bytes = read_body(body, state.config.limits.max_request_body_bytes).await?;
        let bytes = if bytes.is_empty() { bytes::Bytes::from_static(b"{}") } else { bytes };
        check_json_syntax(&parts.method, &bytes)?;
        serde_json::from_slice(&bytes).map(MatrixJson).map_err(|e| bad_json_naming_field(&e, &bytes))
    }
}

/// The user of an access token, for handlers that cannot use `Ruma<T>` (media uploads, whose
/// bodies are streamed rather than buffered).
pub struct ClientUser(pub AuthedUser);

impl FromRequestParts<AppState> for ClientUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = access_token(parts)?.ok_or_else(Error::missing_token)?;
        let user = state.sessions.authenticate(&token, client_ip(parts))?;
        tracing::Span::current().record("user", user.user_id.as_str());
        Ok(Self(user))
    }
}

/// An authenticated server admin; anybody else gets 403 `M_FORBIDDEN`.
pub struct AdminUser(pub AuthedUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let ClientUser(user) = ClientUser::from_request_parts(parts, state).await?;
        if !state.users.is_admin(&user.user_id)? {
            return Err(Error::forbidden("You are not a server admin"));
        }
        Ok(Self(user))
    }
}
