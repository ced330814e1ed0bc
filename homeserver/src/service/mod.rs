//! Services own the logic and their tables; handlers call them and never touch a table.
//!
//! `Services` is built once at start-up and handed to handlers as axum state. Services that
//! need each other get explicit handles at construction, never a global lookup.

pub mod account_data;
pub mod address_policy;
pub(crate) mod cache;
pub mod e2ee;
pub mod federation_client;
pub mod federation_rooms;
pub mod federation_sender;
pub mod filters;
pub mod media;
pub mod notifier;
pub mod password;
pub mod presence;
pub mod push_rules;
pub mod receipts;
pub mod reports;
pub mod rate_limit;
pub mod remote_keys;
pub mod rooms;
pub mod server_keys;
pub mod sessions;
pub mod shared_secret;
pub mod sync;
pub mod typing;
pub mod uiaa;
pub mod user_directory;
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
    let tables = ["userid_account", "userid_deviceid_device", "tokenhash_session", "openidtokenhash_user", "userid_filterid_filter", "server_signingkey"];
    tables
        .into_iter()
        .chain(account_data::TABLES.iter().copied())
        .chain(remote_keys::TABLES.iter().copied())
        .chain(receipts::TABLES.iter().copied())
        .chain(presence::TABLES.iter().copied())
        .chain(reports::TABLES.iter().copied())
        .chain(federation_sender::TABLES.iter().copied())
        .chain(media::TABLES.iter().copied())
        .chain(media::preview::TABLES.iter().copied())
        .chain(media::thumbnail::TABLES.iter().copied())
        .chain(rooms::tables())
        .chain(user_directory::TABLES.iter().copied())
        .chain(e2ee::TABLES.iter().copied())
        .fold(Catalog::new(SCHEMA_VERSION), Catalog::table)
}

pub struct RateLimits {
    pub login_per_ip: rate_limit::RateLimiter,
    pub login_per_account: rate_limit::RateLimiter,
    pub login_failures_per_account: rate_limit::RateLimiter,
    pub registration_per_ip: rate_limit::RateLimiter,
    pub media_upload_per_user: rate_limit::RateLimiter,
    pub url_preview_per_user: rate_limit::RateLimiter,
}

pub struct Services {
    pub config: Arc<Config>,
    pub server_name: OwnedServerName,
    pub db: Database,
    pub signing_key: Arc<ServerSigningKey>,
    pub users: users::Users,
    pub user_directory: user_directory::UserDirectory,
    pub sessions: sessions::Sessions,
    pub e2ee: e2ee::E2ee,
    pub uiaa: uiaa::Uiaa,
    pub account_data: account_data::AccountData,
    pub rooms: rooms::Rooms,
    pub push_rules: push_rules::PushRules,
    pub remote_keys: remote_keys::RemoteKeys,
    pub federation: federation_client::FederationClient,
    pub sender: federation_sender::FederationSender,
    pub federation_rooms: federation_rooms::Federation,
    pub typing: typing::Typing,
    pub receipts: receipts::Receipts,
    pub presence: presence::Presence,
    pub reports: reports::Reports,
    pub filters: filters::Filters,
    pub media: media::Media,
    pub url_previews: media::preview::UrlPreviews,
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
        let signing_key = server_keys::load_or_generate(&db)?;
        let stream = rooms::StreamPositions::new(db.clone())?;
        let notifier = notifier::Notifier::default();
        let federation = federation_client::FederationClient::new(
            server_name.clone(),
            signing_key.clone(),
            config.federation.verify_tls,
            config.federation.allow_private_addresses,
        )?;
        let sender = federation_sender::FederationSender::new(
            db.clone(),
            federation.clone(),
            server_name.clone(),
            std::time::Duration::from_millis(config.federation.retry_initial_ms),
            std::time::Duration::from_millis(config.federation.retry_max_ms),
        );
        let remote_keys = remote_keys::RemoteKeys::new(db.clone(), server_name.clone(), signing_key.clone(), federation.clone());
        let rooms = rooms::Rooms::new(db.clone(), server_name.clone(), signing_key.clone(), stream.clone(), notifier.clone())
            .with_outbound(sender.clone());
        let users = users::Users::new(db.clone(), server_name.clone(), passwords);
        let federation_rooms = federation_rooms::Federation::new(
            server_name.clone(),
            signing_key.clone(),
            rooms.clone(),
            users.clone(),
            remote_keys.clone(),
            federation.clone(),
            sender.clone(),
        );
        let media = media::Media::new(db.clone(), &config, server_name.clone(), federation.clone())?;
        let typing = typing::Typing::new(rooms.clone(), sender.clone(), server_name.clone());
        let receipts = receipts::Receipts::new(db.clone(), rooms.clone(), sender.clone(), server_name.clone());
        let presence = presence::Presence::new(db.clone(), rooms.clone(), sender.clone(), server_name.clone(), config.presence.clone());
        let e2ee = e2ee::E2ee::new(db.clone(), rooms.clone(), sender.clone(), federation.clone(), server_name.clone());
        let user_directory = user_directory::UserDirectory::new(db.clone(), rooms.clone(), config.user_directory.search_all_users);
        // Databases from before the text indexes existed get them before the first request.
        rooms.build_text_indexes()?;
        user_directory.build()?;
        // One account data service for all, so its cache of parsed push settings is shared.
        let account_data = rooms.account_data().clone();
        Ok(Self {
            user_directory,
            reports: reports::Reports::new(db.clone()),
            presence,
            typing,
            receipts,
            sender,
            federation_rooms,
            remote_keys,
            federation,
            rooms,
            push_rules: push_rules::PushRules::new(account_data.clone()),
            account_data,
            signing_key,
            users,
            sessions: sessions::Sessions::new(db.clone(), config.sessions.clone(), e2ee.clone()),
            e2ee,
            uiaa: uiaa::Uiaa::default(),
            filters: filters::Filters::new(db.clone()),
            media,
            url_previews: media::preview::UrlPreviews::new(db.clone(), &config)?,
            rate_limits: RateLimits {
                login_per_ip: limiter(&limits.login_per_ip),
                login_per_account: limiter(&limits.login_per_account),
                login_failures_per_account: limiter(&limits.login_failures_per_account),
                registration_per_ip: limiter(&limits.registration_per_ip),
                media_upload_per_user: limiter(&limits.media_upload_per_user),
                url_preview_per_user: limiter(&limits.url_preview_per_user),
            },
            shared_secret: shared_secret::SharedSecretRegistration::default(),
            server_name,
            config,
            db,
        })
    }
}
