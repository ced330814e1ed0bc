//! `AdminClient`: typed access to the Myelin admin and client HTTP APIs.
//!
//! All transport and HTTP error handling lives here, so commands only ever
//! see [`Error`] values that already say what went wrong.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::api::{
    ClientVersions, RegistrationNonce, ServerVersion, Session, SharedSecretRegistration,
    UserDetails, UserSummary, UserUpsert, Whoami,
};
use crate::error::{Error, Result};

/// A decoded response together with the JSON it came from (for `--json`).
#[derive(Debug)]
pub struct Typed<T> {
    pub raw: Value,
    pub data: T,
}

/// One page of `GET /_synapse/admin/v2/users`.
#[derive(Debug)]
pub struct UsersPage {
    pub users: Vec<Typed<UserSummary>>,
    /// Where the next page starts; `None` on the last page.
    pub next_token: Option<String>,
}

/// Query of `GET /_synapse/admin/v2/users`.
#[derive(Debug)]
pub struct UserListQuery<'a> {
    pub from: &'a str,
    pub limit: u64,
    pub name: Option<&'a str>,
    pub deactivated: bool,
}

/// Result of `PUT /_synapse/admin/v2/users/{userId}`.
#[derive(Debug)]
pub struct Upserted {
    pub user: Typed<UserDetails>,
    /// 201 (created) rather than 200 (modified an existing account).
    pub created: bool,
}

/// What one purge request deleted.
#[derive(Debug)]
pub struct PurgeBatch {
    pub deleted: u64,
    /// The media IDs (local purges only).
    pub deleted_media: Vec<String>,
    /// How many more match (a Myelin extension); `None` from a server that purges everything
    /// in one request.
    pub remaining: Option<u64>,
}

/// How a request authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// Fail with [`Error::MissingToken`] before sending if there is no token.
    Required,
    /// Send the token if there is one.
    IfAvailable,
    /// Never send the token (login, shared-secret registration, ...).
    Never,
}

/// A Matrix error body: `{"errcode": "...", "error": "..."}`.
#[derive(Debug, Deserialize)]
struct MatrixError {
    errcode: String,
    #[serde(default)]
    error: String,
}

pub struct AdminClient {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
    timeout_secs: u64,
}

impl AdminClient {
    pub fn new(base: Url, token: Option<String>, timeout_secs: u64) -> Result<Self> {
        let timeout = Duration::from_secs(timeout_secs);
        let http = reqwest::Client::builder()
            .user_agent(concat!("myelin-admin/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|err| Error::Http {
                url: base.to_string(),
                reason: format!("cannot set up the HTTP client: {}", error_chain(&err)),
            })?;
        // An empty MYELIN_ADMIN_TOKEN= is the same as no token at all.
        let token = token.filter(|token| !token.trim().is_empty());
        Ok(Self {
            http,
            base,
            token,
            timeout_secs,
        })
    }

    /// The server URL as the user would write it (no trailing slash).
    pub fn server(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    // ---- server -------------------------------------------------------

    pub async fn server_version(&self) -> Result<Typed<ServerVersion>> {
        let path = ["_synapse", "admin", "v1", "server_version"];
        let (_, raw) = self
            .call(Method::GET, &path, &[], None, Auth::IfAvailable)
            .await?;
        decode(raw, &path)
    }

    pub async fn client_versions(&self) -> Result<Typed<ClientVersions>> {
        let path = ["_matrix", "client", "versions"];
        let (_, raw) = self
            .call(Method::GET, &path, &[], None, Auth::Never)
            .await?;
        decode(raw, &path)
    }

    pub async fn whoami(&self) -> Result<Typed<Whoami>> {
        let path = ["_matrix", "client", "v3", "account", "whoami"];
        let (_, raw) = self
            .call(Method::GET, &path, &[], None, Auth::Required)
            .await?;
        decode(raw, &path)
    }

    // ---- users --------------------------------------------------------

    pub async fn list_users_page(&self, query: &UserListQuery<'_>) -> Result<UsersPage> {
        let path = ["_synapse", "admin", "v2", "users"];
        let mut params = vec![
            ("from", query.from.to_owned()),
            ("limit", query.limit.to_string()),
            ("guests", "false".to_owned()),
            ("deactivated", query.deactivated.to_string()),
        ];
        if let Some(name) = query.name {
            params.push(("name", name.to_owned()));
        }
        let (_, raw) = self
            .call(Method::GET, &path, &params, None, Auth::Required)
            .await?;

        let Some(entries) = raw.get("users").and_then(Value::as_array) else {
            return Err(shape_error(&path, "missing `users` array"));
        };
        let users = entries
            .iter()
            .map(|entry| decode(entry.clone(), &path))
            .collect::<Result<Vec<_>>>()?;
        let next_token = next_token(&raw, &path)?;
        Ok(UsersPage { users, next_token })
    }

    pub async fn user(&self, user_id: &str) -> Result<Typed<UserDetails>> {
        let path = ["_synapse", "admin", "v2", "users", user_id];
        let (_, raw) = self
            .call(Method::GET, &path, &[], None, Auth::Required)
            .await?;
        decode(raw, &path)
    }

    /// Like [`Self::user`], but an unknown user is `Ok(None)`.
    pub async fn find_user(&self, user_id: &str) -> Result<Option<Typed<UserDetails>>> {
        match self.user(user_id).await {
            Ok(user) => Ok(Some(user)),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }

    pub async fn put_user(&self, user_id: &str, body: &UserUpsert<'_>) -> Result<Upserted> {
        let path = ["_synapse", "admin", "v2", "users", user_id];
        let body = encode(body)?;
        let (status, raw) = self
            .call(Method::PUT, &path, &[], Some(body), Auth::Required)
            .await?;
        Ok(Upserted {
            user: decode(raw, &path)?,
            created: status == StatusCode::CREATED,
        })
    }

    pub async fn deactivate_user(&self, user_id: &str, erase: bool) -> Result<Value> {
        let path = ["_synapse", "admin", "v1", "deactivate", user_id];
        let body = json!({ "erase": erase });
        let (_, raw) = self
            .call(Method::POST, &path, &[], Some(body), Auth::Required)
            .await?;
        Ok(raw)
    }

    pub async fn reset_password(
        &self,
        user_id: &str,
        new_password: &str,
        logout_devices: bool,
    ) -> Result<Value> {
        let path = ["_synapse", "admin", "v1", "reset_password", user_id];
        let body = json!({ "new_password": new_password, "logout_devices": logout_devices });
        let (_, raw) = self
            .call(Method::POST, &path, &[], Some(body), Auth::Required)
            .await?;
        Ok(raw)
    }

    // ---- media --------------------------------------------------------

    /// `POST /_synapse/admin/v1/media/{quarantine,unquarantine}/{server}/{id}`
    pub async fn set_media_quarantine(&self, server: &str, media_id: &str, quarantine: bool) -> Result<Value> {
        let action = if quarantine { "quarantine" } else { "unquarantine" };
        let path = ["_synapse", "admin", "v1", "media", action, server, media_id];
        let (_, raw) = self.call(Method::POST, &path, &[], Some(json!({})), Auth::Required).await?;
        Ok(raw)
    }

    /// One page of `GET /_synapse/admin/v1/users/{userId}/media` (newest first): the media
    /// objects and where the next page starts.
    pub async fn user_media_page(&self, user_id: &str, from: &str, limit: u64) -> Result<(Vec<Value>, Option<String>)> {
        let path = ["_synapse", "admin", "v1", "users", user_id, "media"];
        let params = [("from", from.to_owned()), ("limit", limit.to_string())];
        let (_, raw) = self.call(Method::GET, &path, &params, None, Auth::Required).await?;
        let Some(media) = raw.get("media").and_then(Value::as_array) else {
            return Err(shape_error(&path, "missing `media` array"));
        };
        Ok((media.clone(), next_token(&raw, &path)?))
    }

    /// `DELETE /_synapse/admin/v1/media/{server}/{id}`
    pub async fn delete_media(&self, server: &str, media_id: &str) -> Result<Value> {
        let path = ["_synapse", "admin", "v1", "media", server, media_id];
        let (_, raw) = self.call(Method::DELETE, &path, &[], Some(json!({})), Auth::Required).await?;
        Ok(raw)
    }

    /// One batch of `POST /_synapse/admin/v1/media/delete` (local media) or, with `remote`,
    /// of `POST /_synapse/admin/v1/purge_media_cache`.
    pub async fn purge_media_batch(&self, remote: bool, params: &[(&str, String)]) -> Result<PurgeBatch> {
        let path: &[&str] = if remote {
            &["_synapse", "admin", "v1", "purge_media_cache"]
        } else {
            &["_synapse", "admin", "v1", "media", "delete"]
        };
        let (_, raw) = self.call(Method::POST, path, params, Some(json!({})), Auth::Required).await?;
        let deleted_media = match raw.get("deleted_media") {
            None => Vec::new(),
            Some(ids) => serde_json::from_value(ids.clone()).map_err(|_| shape_error(path, "`deleted_media` is not a list of strings"))?,
        };
        let deleted = match raw.get("deleted").or_else(|| raw.get("total")).and_then(Value::as_u64) {
            Some(count) => count,
            None => return Err(shape_error(path, "missing `total`/`deleted` count")),
        };
        let remaining = raw.get("remaining").and_then(Value::as_u64);
        Ok(PurgeBatch { deleted, deleted_media, remaining })
    }

    // ---- sessions -----------------------------------------------------

    pub async fn registration_nonce(&self) -> Result<Typed<RegistrationNonce>> {
        let path = ["_synapse", "admin", "v1", "register"];
        let (_, raw) = self
            .call(Method::GET, &path, &[], None, Auth::Never)
            .await?;
        decode(raw, &path)
    }

    pub async fn register_with_shared_secret(
        &self,
        body: &SharedSecretRegistration<'_>,
    ) -> Result<Typed<Session>> {
        let path = ["_synapse", "admin", "v1", "register"];
        let body = encode(body)?;
        let (_, raw) = self
            .call(Method::POST, &path, &[], Some(body), Auth::Never)
            .await?;
        decode(raw, &path)
    }

    pub async fn login_with_password(&self, user: &str, password: &str) -> Result<Typed<Session>> {
        let path = ["_matrix", "client", "v3", "login"];
        let body = json!({
            "type": "m.login.password",
            "identifier": { "type": "m.id.user", "user": user },
            "password": password,
            "initial_device_display_name": "myelin-admin",
        });
        let (_, raw) = self
            .call(Method::POST, &path, &[], Some(body), Auth::Never)
            .await?;
        decode(raw, &path)
    }

    // ---- transport ----------------------------------------------------

    /// Sends one request and returns the status and JSON body of a 2xx
    /// answer; every other outcome becomes the matching [`Error`].
    async fn call(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, String)],
        body: Option<Value>,
        auth: Auth,
    ) -> Result<(StatusCode, Value)> {
        let url = self.endpoint(path)?;
        let mut request = self.http.request(method, url);
        if !query.is_empty() {
            request = request.query(query);
        }
        let sent_token = match (auth, &self.token) {
            (Auth::Required, None) => return Err(Error::MissingToken),
            (Auth::Never, _) | (Auth::IfAvailable, None) => false,
            (Auth::Required | Auth::IfAvailable, Some(token)) => {
                request = request.bearer_auth(token);
                true
            }
        };
        if let Some(body) = body {
            request = request.json(&body);
        }

        let response = request
            .send()
            .await
            .map_err(|err| self.transport_error(path, &err))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|err| self.transport_error(path, &err))?;

        if !status.is_success() {
            return Err(error_response(path, status, &bytes, auth, sent_token));
        }
        let raw = serde_json::from_slice(&bytes).map_err(|err| Error::UnexpectedResponse {
            url: display_path(path),
            status: status.as_u16(),
            detail: format!("the body is not JSON ({err}): {}", snippet(&bytes)),
        })?;
        Ok((status, raw))
    }

    /// `base` + percent-encoded path segments (keeps any path prefix of `base`).
    fn endpoint(&self, path: &[&str]) -> Result<Url> {
        let mut url = self.base.clone();
        match url.path_segments_mut() {
            Ok(mut segments) => {
                segments.pop_if_empty().extend(path);
            }
            Err(()) => {
                return Err(Error::Usage(format!(
                    "--server {} cannot be used as a base URL",
                    self.server()
                )));
            }
        }
        Ok(url)
    }

    fn transport_error(&self, path: &[&str], err: &reqwest::Error) -> Error {
        let server = self.server().to_owned();
        if err.is_connect() {
            let reason = if err.is_timeout() {
                format!("connection timed out after {}s", self.timeout_secs)
            } else {
                connect_failure_reason(err)
            };
            Error::Unreachable { server, reason }
        } else if err.is_timeout() {
            Error::Timeout {
                server,
                secs: self.timeout_secs,
            }
        } else {
            Error::Http {
                url: display_path(path),
                reason: error_chain(err),
            }
        }
    }
}

/// Classifies a non-2xx answer.
fn error_response(
    path: &[&str],
    status: StatusCode,
    body: &[u8],
    auth: Auth,
    sent_token: bool,
) -> Error {
    let Ok(matrix) = serde_json::from_slice::<MatrixError>(body) else {
        return Error::UnexpectedResponse {
            url: display_path(path),
            status: status.as_u16(),
            detail: snippet(body),
        };
    };
    match status {
        StatusCode::UNAUTHORIZED if sent_token => Error::TokenRejected {
            errcode: matrix.errcode,
            message: matrix.error,
        },
        // The server wants a token for an endpoint we hoped was public.
        StatusCode::UNAUTHORIZED if auth != Auth::Never => Error::MissingToken,
        StatusCode::FORBIDDEN if sent_token && matrix.errcode == "M_FORBIDDEN" => Error::NotAdmin {
            errcode: matrix.errcode,
            message: matrix.error,
        },
        _ => Error::Matrix {
            status: status.as_u16(),
            errcode: matrix.errcode,
            message: matrix.error,
        },
    }
}

/// A listing's `next_token`: a string, or the offset as a number; `None` on the last page.
fn next_token(raw: &Value, path: &[&str]) -> Result<Option<String>> {
    match raw.get("next_token") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(token)) => Ok(Some(token.clone())),
        Some(Value::Number(token)) => Ok(Some(token.to_string())),
        Some(other) => Err(shape_error(path, &format!("`next_token` is {other}"))),
    }
}

fn decode<T: DeserializeOwned>(raw: Value, path: &[&str]) -> Result<Typed<T>> {
    match T::deserialize(&raw) {
        Ok(data) => Ok(Typed { raw, data }),
        Err(err) => Err(shape_error(path, &err.to_string())),
    }
}

fn encode<T: serde::Serialize>(body: &T) -> Result<Value> {
    serde_json::to_value(body)
        .map_err(|err| Error::Usage(format!("cannot encode the request: {err}")))
}

fn shape_error(path: &[&str], detail: &str) -> Error {
    Error::UnexpectedResponse {
        url: display_path(path),
        status: 200,
        detail: format!("the JSON does not have the expected shape: {detail}"),
    }
}

fn display_path(path: &[&str]) -> String {
    let mut out = String::new();
    for segment in path {
        out.push('/');
        out.push_str(segment);
    }
    out
}

/// A short, single-line preview of a response body for error messages.
fn snippet(body: &[u8]) -> String {
    const MAX_CHARS: usize = 200;
    let text = String::from_utf8_lossy(body);
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        return "empty body".to_owned();
    }
    let mut preview: String = collapsed.chars().take(MAX_CHARS).collect();
    if collapsed.chars().count() > MAX_CHARS {
        preview.push('…');
    }
    preview
}

/// Why a connection could not be made, in a few lowercase words when the
/// cause is a well-known socket error.
fn connect_failure_reason(err: &reqwest::Error) -> String {
    let mut deepest: &dyn StdError = err;
    let mut current: Option<&dyn StdError> = Some(err);
    while let Some(cause) = current {
        if let Some(io_err) = cause.downcast_ref::<io::Error>() {
            match io_err.kind() {
                io::ErrorKind::ConnectionRefused => return "connection refused".to_owned(),
                io::ErrorKind::ConnectionReset => return "connection reset".to_owned(),
                io::ErrorKind::TimedOut => return "connection timed out".to_owned(),
                io::ErrorKind::HostUnreachable => return "host unreachable".to_owned(),
                io::ErrorKind::NetworkUnreachable => return "network unreachable".to_owned(),
                _ => {}
            }
        }
        deepest = cause;
        current = cause.source();
    }
    deepest.to_string()
}

/// `outer: inner: innermost`, skipping causes that repeat their parent.
fn error_chain(err: &dyn StdError) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&dyn StdError> = Some(err);
    while let Some(cause) = current {
        let text = cause.to_string();
        if parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
        current = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> AdminClient {
        let url = Url::parse(base).expect("valid test URL");
        AdminClient::new(url, Some("tok".into()), 5).expect("client builds")
    }

    #[test]
    fn endpoint_encodes_segments_and_keeps_prefix() {
        let plain = client("http://127.0.0.1:8008");
        let url = plain
            .endpoint(&["_synapse", "admin", "v2", "users", "@a:hs"])
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8008/_synapse/admin/v2/users/@a:hs"
        );

        let prefixed = client("https://example.org/matrix/");
        let url = prefixed
            .endpoint(&["_matrix", "client", "versions"])
            .unwrap();
        assert_eq!(
            url.as_str(),
            "https://example.org/matrix/_matrix/client/versions"
        );

        let odd = plain.endpoint(&["users", "@we/ird name:hs"]).unwrap();
        assert_eq!(odd.path(), "/users/@we%2Fird%20name:hs");
    }

    #[test]
    fn error_classification() {
        let path = ["x"];
        let body = br#"{"errcode":"M_UNKNOWN_TOKEN","error":"Invalid token"}"#;
        let err = error_response(&path, StatusCode::UNAUTHORIZED, body, Auth::Required, true);
        assert!(matches!(err, Error::TokenRejected { .. }), "{err:?}");

        let err = error_response(
            &path,
            StatusCode::UNAUTHORIZED,
            body,
            Auth::IfAvailable,
            false,
        );
        assert!(matches!(err, Error::MissingToken), "{err:?}");

        let forbidden = br#"{"errcode":"M_FORBIDDEN","error":"You are not a server admin"}"#;
        let err = error_response(
            &path,
            StatusCode::FORBIDDEN,
            forbidden,
            Auth::Required,
            true,
        );
        assert!(matches!(err, Error::NotAdmin { .. }), "{err:?}");

        // A wrong password at login is an ordinary Matrix error, not a token problem.
        let err = error_response(&path, StatusCode::FORBIDDEN, forbidden, Auth::Never, false);
        assert!(matches!(err, Error::Matrix { status: 403, .. }), "{err:?}");

        let err = error_response(
            &path,
            StatusCode::BAD_GATEWAY,
            b"<html>bad gateway</html>",
            Auth::Required,
            true,
        );
        assert!(
            matches!(err, Error::UnexpectedResponse { status: 502, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn snippet_is_short_and_single_line() {
        assert_eq!(snippet(b""), "empty body");
        assert_eq!(snippet(b"a\n  b\tc"), "a b c");
        let long = "x".repeat(500);
        assert_eq!(snippet(long.as_bytes()).chars().count(), 201);
    }
}
