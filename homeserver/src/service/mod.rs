//! Services own the logic and their tables; handlers call them and never touch a table.
//!
//! `Services` is built once at start-up and handed to handlers as axum state. Services that
//! need each other get explicit handles at construction, never a global lookup.

pub mod account_data;
pub mod filters;
pub mod password;
pub mod rate_limit;
pub mod server_keys;
pub mod sessions;
pub mod shared_secret;
pub mod uiaa;
pub mod users;

use std::sync::Arc;

use myelin_config::Config;
use myelin_federation::ServerSigningKey;
use myelin_storage::{Catalog, Database};
use ruma::OwnedServerName;

use crate::error::{Error, Result};

/// Bumped when the meaning of stored data changes; migrations bring old databases forward.
pub const SCHEMA_VERSION: u64 = 1;

/// Every table of the homeserver. Each service declares its own tables privately; this list
/// only names them so the engine can create one column family per table.
pub fn catalog() -> Catalog {
    Catalog::new(SCHEMA_VERSION)
        .table("userid_account")
        .table("userid_deviceid_device")
        .table("tokenhash_session")
        .table("userid_type_accountdata")
        .table("userid_filterid_filter")
        .table("server_signingkey")
}

pub struct RateLimits {
    pub login_per_ip: rate_limit::RateLimiter,
    pub login_per_account: rate_limit::RateLimiter,
    pub login_failures_per_account: rate_limit::RateLimiter,
    pub registration_per_ip: rate_limit::RateLimiter,
}

pub struct Services {
    pub config: Arc<Config>,
    pub server_name: OwnedServerName,
    pub db: Database,
    pub signing_key: Arc<ServerSigningKey>,
    pub users: users::Users,
    pub sessions: sessions::Sessions,
    pub uiaa: uiaa::Uiaa,
    pub account_data: account_data::AccountData,
    pub filters: filters::Filters,
    pub rate_limits: RateLimits,
    pub shared_secret: shared_secret::SharedSecretRegistration,
}

impl Services {
    pub fn build(config: Arc<Config>, db: Database) -> Result<Self> {
        let server_name = OwnedServerName::try_from(config.server_name.as_str())
            .map_err(|e| Error::internal(format!("invalid server_name: {e}")))?;
        let passwords = password::Passwords::new(&config.password)?;
        let limits = &config.rate_limits;
        let limiter = |limit: &myelin_config::RateLimit| rate_limit::RateLimiter::new(limits.enabled, limit.clone());
        Ok(Self {
            signing_key: server_keys::load_or_generate(&db)?,
            users: users::Users::new(db.clone(), server_name.clone(), passwords),
            sessions: sessions::Sessions::new(db.clone(), config.sessions.clone()),
            uiaa: uiaa::Uiaa::default(),
            account_data: account_data::AccountData::new(db.clone()),
            filters: filters::Filters::new(db.clone()),
            rate_limits: RateLimits {
                login_per_ip: limiter(&limits.login_per_ip),
                login_per_account: limiter(&limits.login_per_account),
                login_failures_per_account: limiter(&limits.login_failures_per_account),
                registration_per_ip: limiter(&limits.registration_per_ip),
            },
            shared_secret: shared_secret::SharedSecretRegistration::default(),
            server_name,
            config,
            db,
        })
    }
}
