//! Configuration errors.

use std::io;
use std::path::PathBuf;

/// Why a configuration could not be loaded.
///
/// Errors about a value always name the key as a dotted path (e.g.
/// `rate_limits.login_per_ip.burst`) and, when loaded, where the value came
/// from (config file or environment variable).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read (e.g. it does not exist).
    #[error("cannot read config file {}: {error}", path.display())]
    ReadFile {
        /// The file that was given.
        path: PathBuf,
        /// The I/O error.
        error: io::Error,
    },

    /// The config file is not valid TOML.
    #[error("cannot parse config file {}: {message}", path.display())]
    ParseFile {
        /// The file that was given.
        path: PathBuf,
        /// The TOML parser's message (with line and column).
        message: String,
    },

    /// A key has a value of the wrong type or an unacceptable value.
    #[error("invalid value for \"{key}\": {message}{}", origin_suffix(origin.as_deref()))]
    InvalidValue {
        /// Dotted key path, e.g. `log.format`.
        key: String,
        /// What is wrong with the value.
        message: String,
        /// Where the value came from, e.g. `config file /etc/myelin.toml` or
        /// `environment variable MYELIN_LISTEN`, when known.
        origin: Option<String>,
    },

    /// Several problems at once.
    #[error("{} configuration errors:\n{}", .0.len(), list(.0))]
    Multiple(Vec<ConfigError>),
}

impl ConfigError {
    pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::InvalidValue {
            key: key.into(),
            message: message.into(),
            origin: None,
        }
    }

    /// Combines errors: `Ok` for none, the error itself for one, otherwise
    /// [`ConfigError::Multiple`] (flattened).
    pub(crate) fn combine(errors: Vec<ConfigError>) -> Result<(), ConfigError> {
        let mut flat = Vec::with_capacity(errors.len());
        for error in errors {
            match error {
                ConfigError::Multiple(inner) => flat.extend(inner),
                other => flat.push(other),
            }
        }
        match flat.len() {
            0 => Ok(()),
            1 => Err(flat.pop().expect("one element")),
            _ => Err(ConfigError::Multiple(flat)),
        }
    }

    /// The individual errors (one, or the members of
    /// [`ConfigError::Multiple`]).
    pub fn errors(&self) -> Vec<&ConfigError> {
        match self {
            ConfigError::Multiple(errors) => errors.iter().flat_map(|e| e.errors()).collect(),
            other => vec![other],
        }
    }

    /// The dotted keys of all invalid values in this error.
    pub fn keys(&self) -> Vec<&str> {
        self.errors()
            .into_iter()
            .filter_map(|e| match e {
                ConfigError::InvalidValue { key, .. } => Some(key.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Fills in the origin of `InvalidValue` errors that have none, using
    /// `find` (key → description of where its value came from).
    pub(crate) fn with_origins(self, find: &dyn Fn(&str) -> Option<String>) -> Self {
        match self {
            ConfigError::InvalidValue {
                key,
                message,
                origin: None,
            } => {
                let origin = find(&key);
                ConfigError::InvalidValue {
                    key,
                    message,
                    origin,
                }
            }
            ConfigError::Multiple(errors) => {
                ConfigError::Multiple(errors.into_iter().map(|e| e.with_origins(find)).collect())
            }
            other => other,
        }
    }
}

fn origin_suffix(origin: Option<&str>) -> String {
    origin.map(|o| format!(" (from {o})")).unwrap_or_default()
}

fn list(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}
