//! The `Ruma<T>` extractor and the route registration that takes paths from ruma's metadata.
//!
//! No endpoint path is written by hand: every path a ruma request type knows (stable, legacy r0
//! and unstable) is registered, so Hydrogen's r0 calls reach the same handler as v3 ones.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::{
    Router,
    extract::{ConnectInfo, FromRequest, FromRequestParts, RawPathParams, Request},
    handler::Handler,
    response::{IntoResponse, Response},
    routing::{MethodFilter, on},
};
use bytes::BytesMut;
use http::{Method, StatusCode, request::Parts};
use ruma::api::{
    IncomingRequest, IncomingRequestExt, Metadata, OutgoingResponse, OutgoingResponseExt,
    auth_scheme,
    error::{DeserializationError, FromHttpRequestError},
    path_builder::PathBuilder,
};

use crate::{
    error::{Error, Result},
    service::{Services, sessions::AuthedUser},
};

pub type AppState = std::sync::Arc<Services>;

/// Whether an endpoint needs, accepts or ignores an access token.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AuthMode {
    Required,
    Optional,
    None,
    /// A federation request signed with X-Matrix.
    Server,
}

/// Maps ruma's authentication scheme of an endpoint onto what the extractor must check.
pub trait AuthRequirement {
    const MODE: AuthMode;
}

impl AuthRequirement for auth_scheme::AccessToken {
    const MODE: AuthMode = AuthMode::Required;
}
impl AuthRequirement for auth_scheme::AccessTokenOptional {
    const MODE: AuthMode = AuthMode::Optional;
}
impl AuthRequirement for auth_scheme::NoAuthentication {
    const MODE: AuthMode = AuthMode::None;
}
impl AuthRequirement for auth_scheme::NoAccessToken {
    const MODE: AuthMode = AuthMode::None;
}
// Application services are not supported yet; their optional token is treated as a user's.
impl AuthRequirement for auth_scheme::AppserviceTokenOptional {
    const MODE: AuthMode = AuthMode::Optional;
}
impl AuthRequirement for auth_scheme::AppserviceToken {
    const MODE: AuthMode = AuthMode::Required;
}
impl AuthRequirement for ruma::api::federation::authentication::ServerSignatures {
    const MODE: AuthMode = AuthMode::Server;
}

/// A parsed, authenticated client-server request.
pub struct Ruma<T> {
    pub body: T,
    pub sender: Option<AuthedUser>,
    /// The server that signed a federation request.
    pub origin: Option<ruma::OwnedServerName>,
    pub client_ip: IpAddr,
    /// The body as received, for the rare field ruma does not type (an unstable name of a
    /// stable field).
    pub raw_body: bytes::Bytes,
}

impl<T> Ruma<T> {
    /// The authenticated user; only `None` on endpoints whose token is optional.
    pub fn sender(&self) -> Result<&AuthedUser> {
        self.sender.as_ref().ok_or_else(Error::missing_token)
    }

    /// The server that signed a federation request.
    pub fn origin(&self) -> Result<&ruma::ServerName> {
        self.origin.as_deref().ok_or_else(|| Error::matrix(http::StatusCode::UNAUTHORIZED, ruma::api::error::ErrorKind::Unauthorized, "Missing X-Matrix signature"))
    }
}

impl<T> FromRequest<AppState> for Ruma<T>
where
    T: IncomingRequest + Send + 'static,
    T::Authentication: AuthRequirement,
{
    type Rejection = Error;

    async fn from_request(request: Request, state: &AppState) -> Result<Self> {
        let (mut parts, body) = request.into_parts();
        let path_args: Vec<String> = RawPathParams::from_request_parts(&mut parts, state)
            .await
            .map(|params| params.iter().map(|(_, value)| value.to_owned()).collect())
            .map_err(|e| Error::invalid_param(format!("invalid path parameter: {e}")))?;
        let client_ip = client_ip(&parts);
        let mut bytes = read_body(body, body_limit(state, parts.uri.path())).await?;
        if bytes.is_empty() && expects_json_body(&parts) {
            // Clients such as matrix-nio send no body where the spec wants `{}`; some of ruma's
            // hand-written parsers (join by alias, knock) refuse an empty body.
            bytes = bytes::Bytes::from_static(b"{}");
        }
        check_json_syntax(&parts.method, &bytes)?;

        let mode = <T::Authentication as AuthRequirement>::MODE;
        let origin = if mode == AuthMode::Server { Some(verify_x_matrix(state, &parts, &bytes).await?) } else { None };
        // Endpoints without authentication ignore whatever credentials come along (Synapse signs
        // even its key-server fetches with X-Matrix).
        let token = if matches!(mode, AuthMode::Required | AuthMode::Optional) { access_token(&parts)? } else { None };
        let sender = match (mode, token) {
            (AuthMode::None | AuthMode::Server, _) | (AuthMode::Optional, None) => None,
            (AuthMode::Required, None) => return Err(Error::missing_token()),
            (_, Some(token)) => Some(state.sessions.authenticate(&token, client_ip)?),
        };
        if let Some(user) = &sender {
            tracing::Span::current().record("user", user.user_id.as_str());
        }

        let mut args: Vec<&str> = path_args.iter().map(String::as_str).collect();
        // Routes registered by `RumaRouter::ruma_empty_last` omit the last parameter (an empty
        // state key); ruma still expects it.
        let expected = T::PATH_BUILDER.all_paths().next().map_or(0, |p| p.matches('{').count());
        while args.len() < expected {
            args.push("");
        }
        let http_request = http::Request::from_parts(parts, &bytes[..]);
        // Some ruma parsers index into the body and panic on a missing key (`/login` without
        // `type`, ruma-client-api 0.25). A client's malformed body must be M_BAD_JSON, never a
        // 500, so parsing runs behind a panic guard.
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| T::try_from_http_request(http_request, &args)));
        let body = match parsed {
            Ok(result) => result.map_err(|e| parse_error(e, &bytes))?,
            Err(_) => return Err(malformed_body(&bytes)),
        };
        Ok(Self { body, sender, origin, client_ip, raw_body: bytes })
    }
}

/// Checks a federation request's X-Matrix signature against the origin's published key and
/// returns the origin. Any failure is 401 `M_UNAUTHORIZED`.
async fn verify_x_matrix(state: &AppState, parts: &Parts, body: &[u8]) -> Result<ruma::OwnedServerName> {
    let unauthorized = |message: String| Error::matrix(StatusCode::UNAUTHORIZED, ruma::api::error::ErrorKind::Unauthorized, message);
    let header = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("Missing X-Matrix authorization".to_owned()))?;
    let auth = myelin_federation::xmatrix::parse_authorization(header).map_err(|e| unauthorized(e.to_string()))?;
    let key = state.remote_keys.current_key(&auth.origin, auth.key.as_str()).await?;
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let body = (!body.is_empty()).then_some(body);
    myelin_federation::xmatrix::verify_request(&auth, &state.server_name, &parts.method, path_and_query, body, &key)
        .map_err(|e| unauthorized(e.to_string()))?;
    tracing::Span::current().record("user", auth.origin.as_str());
    Ok(auth.origin)
}

/// Reads the whole body, refusing bodies over `limit` (413 `M_TOO_LARGE`). A declared
/// Content-Length over the limit has already been refused by the body-limit layer.
/// A full federation transaction: 50 PDUs of up to 64 KiB each, and 100 EDUs.
const FEDERATION_BODY_BYTES: u64 = 8 * 1024 * 1024;

/// The largest request body accepted on `path`: the configured limit, raised for federation,
/// whose transactions and joins legitimately carry more than a client request.
pub fn body_limit(state: &AppState, path: &str) -> u64 {
    let configured = state.config.limits.max_request_body_bytes;
    if path.starts_with("/_matrix/federation/") { configured.max(FEDERATION_BODY_BYTES) } else { configured }
}

pub async fn read_body(body: axum::body::Body, limit: u64) -> Result<bytes::Bytes> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>()) {
            Error::too_large("Request body is too large")
        } else {
            Error::bad_json(format!("cannot read request body: {e}"))
        }
    })
}

/// POST/PUT bodies are JSON unless the client says otherwise (media uploads carry their own
/// content type, and an empty upload must stay empty).
fn expects_json_body(parts: &Parts) -> bool {
    let json_or_unset = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("application/json"));
    matches!(parts.method, Method::POST | Method::PUT) && json_or_unset
}

/// Tells "not JSON at all" (`M_NOT_JSON`) apart from "JSON of the wrong shape" (`M_BAD_JSON`),
/// which ruma's parser would report alike.
pub fn check_json_syntax(method: &Method, bytes: &[u8]) -> Result<()> {
    let has_body = matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    if has_body && !bytes.is_empty() {
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
            .map_err(|e| Error::not_json(format!("Content not JSON: {e}")))?;
    }
    Ok(())
}

fn parse_error(error: FromHttpRequestError, body: &[u8]) -> Error {
    match error {
        FromHttpRequestError::MethodMismatch { .. } => Error::unrecognized(StatusCode::METHOD_NOT_ALLOWED),
        FromHttpRequestError::Deserialization(DeserializationError::Json(e)) => bad_json_naming_field(&e, body),
        FromHttpRequestError::Deserialization(DeserializationError::Ident(e)) => {
            Error::invalid_param(format!("invalid identifier: {e}"))
        }
        // A required query parameter that is absent (e.g. `url` of `/preview_url`).
        FromHttpRequestError::Deserialization(DeserializationError::Query(e)) if e.to_string().starts_with("missing field") => {
            Error::missing_param(e.to_string())
        }
        FromHttpRequestError::Deserialization(e) => Error::invalid_param(e.to_string()),
        other => Error::bad_json(other.to_string()),
    }
}

/// The error for a body ruma's parser choked on: the usual culprit is a missing `type`.
fn malformed_body(body: &[u8]) -> Error {
    let has_type = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .is_some_and(|json| json.get("type").is_some_and(serde_json::Value::is_string));
    if has_type { Error::bad_json("Malformed request body") } else { Error::bad_json("type: missing field `type`") }
}

/// `M_BAD_JSON` whose message names the offending field, e.g. `password: invalid type: …`.
pub fn bad_json_naming_field(error: &serde_json::Error, body: &[u8]) -> Error {
    // A missing field is reported where its object ends, which says nothing reliable about
    // where it belonged; serde's message already names it.
    if error.to_string().starts_with("missing field") {
        return Error::bad_json(error.to_string());
    }
    let path = super::json_path::path_at(body, error.line(), error.column())
        .or_else(|| super::json_path::path_of_unexpected_value(body, &error.to_string()));
    match path {
        Some(path) => Error::bad_json(format!("{path}: {error}")),
        None => Error::bad_json(error.to_string()),
    }
}

/// The token from `Authorization: Bearer …` or the deprecated `access_token` query parameter.
pub fn access_token(parts: &Parts) -> Result<Option<String>> {
    if let Some(value) = parts.headers.get(http::header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| Error::unknown_token(false))?;
        return match value.strip_prefix("Bearer ") {
            Some(token) if !token.trim().is_empty() => Ok(Some(token.trim().to_owned())),
            // Another scheme (X-Matrix) carries no access token.
            _ => Ok(None),
        };
    }
    Ok(parts.uri.query().and_then(|query| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(key, _)| key == "access_token")
            .map(|(_, value)| value.into_owned())
    }))
}

pub fn client_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// A ruma response, serialised by ruma.
pub struct RumaResponse<T>(pub T);

impl<T: OutgoingResponse> IntoResponse for RumaResponse<T> {
    fn into_response(self) -> Response {
        match self.0.try_into_http_response::<BytesMut>() {
            Ok(response) => response.map(|body| axum::body::Body::from(body.freeze())).into_response(),
            Err(e) => Error::internal(format!("cannot serialise response: {e}")).into_response(),
        }
    }
}

/// Registers a handler under every path and the method of ruma request type `Req`.
pub trait RumaRouter {
    fn ruma<Req, H, X>(self, handler: H) -> Self
    where
        Req: Metadata,
        H: Handler<X, AppState>,
        X: 'static;

    /// Like [`RumaRouter::ruma`], and also serves the paths with the last parameter empty
    /// (`…/state/m.room.name/` and `…/state/m.room.name`): the empty state key.
    fn ruma_empty_last<Req, H, X>(self, handler: H) -> Self
    where
        Req: Metadata,
        H: Handler<X, AppState>,
        X: 'static;
}

impl RumaRouter for Router<AppState> {
    fn ruma<Req, H, X>(self, handler: H) -> Self
    where
        Req: Metadata,
        H: Handler<X, AppState>,
        X: 'static,
    {
        let paths: Vec<String> = Req::PATH_BUILDER.all_paths().map(str::to_owned).collect();
        route_all::<Req, H, X>(self, paths, handler)
    }

    fn ruma_empty_last<Req, H, X>(self, handler: H) -> Self
    where
        Req: Metadata,
        H: Handler<X, AppState>,
        X: 'static,
    {
        let mut paths = Vec::new();
        for path in Req::PATH_BUILDER.all_paths() {
            if let Some((prefix, last)) = path.rsplit_once('/')
                && last.starts_with('{')
            {
                paths.push(format!("{prefix}/"));
                paths.push(prefix.to_owned());
            }
            paths.push(path.to_owned());
        }
        route_all::<Req, H, X>(self, paths, handler)
    }
}

/// Registers `handler` under each path with `Req`'s method.
fn route_all<Req, H, X>(mut router: Router<AppState>, paths: Vec<String>, handler: H) -> Router<AppState>
where
    Req: Metadata,
    H: Handler<X, AppState>,
    X: 'static,
{
    let filter = MethodFilter::try_from(Req::METHOD)
        .unwrap_or_else(|_| panic!("ruma endpoint with non-standard method {}", Req::METHOD));
    for path in paths {
        router = router.route(&path, on(filter, handler.clone()));
    }
    router
}
