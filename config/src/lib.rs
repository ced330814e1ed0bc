//! Myelin's configuration: the [`Config`] tree, its loading (built-in
//! defaults → TOML file → `MYELIN_*` environment variables, via figment),
//! validation, and the generated example file.
//!
//! ```no_run
//! # use std::path::Path;
//! let loaded = myelin_config::Config::load(Some(Path::new("myelin.toml")))?;
//! for warning in &loaded.warnings {
//!     eprintln!("warning: {warning}");
//! }
//! let addr = loaded.config.listen_addr();
//! # let _ = addr;
//! # Ok::<(), myelin_config::ConfigError>(())
//! ```
//!
//! Environment variables use `__` for nesting: `MYELIN_LOG__FORMAT=json`
//! sets `log.format`, `MYELIN_RATE_LIMITS__LOGIN_PER_IP__BURST=3` sets
//! `rate_limits.login_per_ip.burst`. Values are read according to the key's
//! type, so `MYELIN_LISTEN=127.0.0.1:0` stays a string; lists are
//! comma-separated (`MYELIN_REGISTRATION_TOKENS=a,b`) or a TOML array.

#[macro_use]
mod schema;

mod error;
mod example;
mod load;
mod model;
mod validate;

#[cfg(test)]
mod tests;

pub use error::ConfigError;
pub use load::{CONFIG_FILE_ENV, ENV_PREFIX, ENV_SEPARATOR, LoadedConfig, NON_CONFIG_ENV_VARS};
pub use model::{
    Config, DEFAULT_FEDERATION_PORT, FederationConfig, LimitsConfig, LogConfig, LogFormat,
    PasswordConfig, PresenceConfig, RateLimit, RateLimitsConfig, RegistrationMode, SessionConfig, UrlPreviewConfig,
    UserDirectoryConfig,
    WellKnownConfig,
};
pub use schema::{ConfigType, FieldDoc, ValueKind};
