//! Request and response bodies of the endpoints the CLI drives.
//!
//! Response types are deliberately lenient (`#[serde(default)]`) so that an
//! extra or missing optional field never breaks a command; the raw JSON is
//! kept alongside for `--json` output.

use serde::{Deserialize, Serialize};

/// `GET /_synapse/admin/v1/server_version`
#[derive(Debug, Deserialize)]
pub struct ServerVersion {
    pub server_version: String,
}

/// `GET /_matrix/client/versions`
#[derive(Debug, Deserialize)]
pub struct ClientVersions {
    pub versions: Vec<String>,
}

/// `GET /_matrix/client/v3/account/whoami`
#[derive(Debug, Deserialize)]
pub struct Whoami {
    pub user_id: String,
}

/// One entry of `GET /_synapse/admin/v2/users`.
#[derive(Debug, Deserialize)]
pub struct UserSummary {
    pub name: String,
    #[serde(default)]
    pub displayname: Option<String>,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub deactivated: bool,
    /// Milliseconds since the Unix epoch.
    #[serde(default)]
    pub creation_ts: Option<i64>,
}

/// `GET /_synapse/admin/v2/users/{userId}` (also the body of `PUT`).
#[derive(Debug, Deserialize)]
pub struct UserDetails {
    pub name: String,
    #[serde(default)]
    pub displayname: Option<String>,
    #[serde(default)]
    pub avatar_url: Option<String>,
    #[serde(default)]
    pub admin: bool,
    #[serde(default)]
    pub deactivated: bool,
    #[serde(default)]
    pub erased: bool,
    #[serde(default)]
    pub locked: bool,
    #[serde(default)]
    pub is_guest: bool,
    #[serde(default)]
    pub user_type: Option<String>,
    /// Milliseconds since the Unix epoch.
    #[serde(default)]
    pub creation_ts: Option<i64>,
    #[serde(default)]
    pub threepids: Vec<Threepid>,
    #[serde(default)]
    pub external_ids: Vec<ExternalId>,
}

#[derive(Debug, Deserialize)]
pub struct Threepid {
    pub medium: String,
    pub address: String,
}

#[derive(Debug, Deserialize)]
pub struct ExternalId {
    pub auth_provider: String,
    pub external_id: String,
}

/// Body of `PUT /_synapse/admin/v2/users/{userId}`; absent fields are left unchanged.
#[derive(Debug, Default, Serialize)]
pub struct UserUpsert<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub displayname: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deactivated: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logout_devices: Option<bool>,
}

/// `GET /_synapse/admin/v1/register`
#[derive(Debug, Deserialize)]
pub struct RegistrationNonce {
    pub nonce: String,
}

/// Body of `POST /_synapse/admin/v1/register`.
#[derive(Debug, Serialize)]
pub struct SharedSecretRegistration<'a> {
    pub nonce: &'a str,
    pub username: &'a str,
    pub password: &'a str,
    pub admin: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub displayname: Option<&'a str>,
    pub mac: &'a str,
}

/// Answer of shared-secret registration and of password login.
#[derive(Debug, Deserialize)]
pub struct Session {
    pub user_id: String,
    pub access_token: String,
    #[serde(default)]
    pub device_id: Option<String>,
}
