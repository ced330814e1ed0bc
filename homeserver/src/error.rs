//! The homeserver's one error type, and the one place it becomes a Matrix error response.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use http::StatusCode;
use ruma::api::{
    OutgoingResponseExt,
    client::uiaa::{UiaaInfo, UiaaResponse},
    error::{
        Error as RumaError, ErrorBody, ErrorKind, LimitExceededErrorData, RetryAfter,
        StandardErrorBody, UnknownTokenErrorData,
    },
};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A failure the client caused or must know about: sent to it as is.
    #[error("{status} {}: {message}", kind.errcode())]
    Matrix { status: StatusCode, kind: ErrorKind, message: String },
    /// User-interactive authentication must continue (HTTP 401 with the flows).
    #[error("user-interactive authentication required")]
    Uiaa(Box<UiaaInfo>),
    #[error("storage: {0}")]
    Storage(#[from] myelin_storage::Error),
    #[error("protocol core: {0}")]
    Protocol(#[from] myelin_federation::Error),
    /// A bug or an environment failure; the details are logged, never sent to the client.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    pub fn matrix(status: StatusCode, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::Matrix { status, kind, message: message.into() }
    }

    pub fn bad_json(message: impl Into<String>) -> Self {
        Self::matrix(StatusCode::BAD_REQUEST, ErrorKind::BadJson, message)
    }

    pub fn not_json(message: impl Into<String>) -> Self {
        Self::matrix(StatusCode::BAD_REQUEST, ErrorKind::NotJson, message)
    }

    pub fn invalid_param(message: impl Into<String>) -> Self {
        Self::matrix(StatusCode::BAD_REQUEST, ErrorKind::InvalidParam, message)
    }

    pub fn missing_param(message: impl Into<String>) -> Self {
        Self::matrix(StatusCode::BAD_REQUEST, ErrorKind::MissingParam, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::matrix(StatusCode::FORBIDDEN, ErrorKind::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::matrix(StatusCode::NOT_FOUND, ErrorKind::NotFound, message)
    }

    pub fn unrecognized(status: StatusCode) -> Self {
        Self::matrix(status, ErrorKind::Unrecognized, "Unrecognized request")
    }

    pub fn missing_token() -> Self {
        Self::matrix(StatusCode::UNAUTHORIZED, ErrorKind::MissingToken, "Missing access token")
    }

    pub fn unknown_token(soft_logout: bool) -> Self {
        let mut data = UnknownTokenErrorData::new();
        data.soft_logout = soft_logout;
        let message = if soft_logout { "Access token has expired" } else { "Unknown access token" };
        Self::matrix(StatusCode::UNAUTHORIZED, ErrorKind::UnknownToken(data), message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self::matrix(StatusCode::PAYLOAD_TOO_LARGE, ErrorKind::TooLarge, message)
    }

    /// 429 with `retry_after_ms` and a `Retry-After` header. The delay is rounded up to whole
    /// seconds so that the header (which only carries seconds) never says "retry in 0".
    pub fn limit_exceeded(retry_after: Duration) -> Self {
        let secs = retry_after.as_millis().div_ceil(1000).max(1) as u64;
        let mut data = LimitExceededErrorData::new();
        data.retry_after = Some(RetryAfter::Delay(Duration::from_secs(secs)));
        Self::matrix(StatusCode::TOO_MANY_REQUESTS, ErrorKind::LimitExceeded(data), "Too many requests")
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into())
    }

    /// The errcode this error is answered with, for logs and tests.
    pub fn errcode(&self) -> String {
        match self {
            Self::Matrix { kind, .. } => kind.errcode().to_string(),
            Self::Uiaa(_) => "M_UNAUTHORIZED".to_owned(),
            _ => "M_UNKNOWN".to_owned(),
        }
    }

    fn into_ruma(self) -> UiaaResponse {
        let (status, kind, message) = match self {
            Self::Uiaa(info) => return UiaaResponse::AuthResponse(*info),
            Self::Matrix { status, kind, message } => (status, kind, message),
            internal => {
                tracing::error!(error = %internal, "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Unknown, "Internal server error".to_owned())
            }
        };
        UiaaResponse::MatrixError(RumaError::new(
            status,
            ErrorBody::Standard(StandardErrorBody::new(kind, message)),
        ))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self.into_ruma().try_into_http_response::<BytesMut>() {
            Ok(response) => response.map(|body| axum::body::Body::from(body.freeze())).into_response(),
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise an error response");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}
