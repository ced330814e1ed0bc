//! Loading: built-in defaults → TOML file → `MYELIN_*` environment variables,
//! merged with figment.
//!
//! The file and the environment are turned into figment dictionaries here
//! rather than through figment's own `Toml`/`Env` providers, because:
//! - an explicitly given file that is missing must be an error (figment's
//!   `Toml::file` treats it as empty and searches parent directories);
//! - environment values are interpreted using the key's type from the
//!   metadata, so `MYELIN_LISTEN=127.0.0.1:0` or
//!   `MYELIN_REGISTRATION_SHARED_SECRET=12345` stay strings (figment's `Env`
//!   guesses types from the text);
//! - unknown keys must be reported as warnings, with their origin.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};

use crate::error::ConfigError;
use crate::model::Config;
use crate::schema::{FieldDoc, Lookup, ValueKind, join_key, lookup};

/// Prefix of environment variables that set configuration keys.
pub const ENV_PREFIX: &str = "MYELIN_";

/// Separator between nesting levels in environment variable names
/// (`MYELIN_LOG__FORMAT` sets `log.format`).
pub const ENV_SEPARATOR: &str = "__";

/// Environment variable naming the config file. It is read by the binary
/// (e.g. as a clap `env` fallback for `--config`), never as a config key.
pub const CONFIG_FILE_ENV: &str = "MYELIN_CONFIG";

/// `MYELIN_*` variables that are not configuration keys and are skipped
/// without a warning.
pub const NON_CONFIG_ENV_VARS: &[&str] = &[CONFIG_FILE_ENV, "MYELIN_BLESS"];

const DEFAULTS_NAME: &str = "built-in defaults";
const FILE_NAME: &str = "config file";
const ENV_NAME: &str = "environment variable";

/// A loaded, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedConfig {
    /// The configuration.
    pub config: Config,
    /// Non-fatal problems to log at startup, e.g.
    /// `unknown config key "foo.bar" (ignored) in config file myelin.toml`.
    pub warnings: Vec<String>,
}

impl Config {
    /// Loads the configuration: built-in defaults, then the TOML `file` (if
    /// given; it must exist), then `MYELIN_*` variables from the process
    /// environment. The result is validated.
    ///
    /// The caller resolves the file path (`--config FILE` or the
    /// [`CONFIG_FILE_ENV`] variable); `MYELIN_CONFIG` is not read here.
    pub fn load(file: Option<&Path>) -> Result<LoadedConfig, ConfigError> {
        let mut env = Vec::new();
        let mut warnings = Vec::new();
        for (key, value) in std::env::vars_os() {
            let Some(key) = key.to_str() else { continue };
            if strip_env_prefix(key).is_none() {
                continue;
            }
            match value.into_string() {
                Ok(value) => env.push((key.to_owned(), value)),
                Err(_) => warnings.push(format!(
                    "environment variable {key} is not valid UTF-8 (ignored)"
                )),
            }
        }
        let mut loaded = Self::load_from(file, &env)?;
        warnings.append(&mut loaded.warnings);
        loaded.warnings = warnings;
        Ok(loaded)
    }

    /// Like [`Config::load`], with the environment given explicitly as
    /// `(name, value)` pairs (variables without the `MYELIN_` prefix are
    /// ignored).
    pub fn load_from(
        file: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<LoadedConfig, ConfigError> {
        let mut warnings = Vec::new();

        let defaults = Value::serialize(Config::default())
            .ok()
            .and_then(|value| value.into_dict())
            .expect("the default config serializes to a dictionary");
        let mut figment = Figment::from(DictProvider {
            metadata: Metadata::named(DEFAULTS_NAME),
            dict: defaults,
        });

        if let Some(path) = file {
            let dict = read_file(path)?;
            let origin = format!("{FILE_NAME} {}", path.display());
            let mut unknown = Vec::new();
            unknown_keys(&dict, Config::FIELDS, "", &mut unknown);
            warnings.extend(
                unknown
                    .into_iter()
                    .map(|key| format!("unknown config key {key:?} (ignored) in {origin}")),
            );
            figment = figment.merge(DictProvider {
                metadata: Metadata::from(FILE_NAME, Source::File(path.to_path_buf())),
                dict,
            });
        }

        let env = EnvDict::build(env)?;
        warnings.extend(env.warnings);
        let var_names = Arc::new(env.var_names);
        figment = figment.merge(DictProvider {
            metadata: Metadata::named(ENV_NAME).interpolater(move |_: &Profile, keys: &[&str]| {
                let key = keys.join(".");
                var_names
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| env_var_name(keys))
            }),
            dict: env.dict,
        });

        let config: Config = figment.extract().map_err(figment_error)?;
        config
            .validate()
            .map_err(|e| e.with_origins(&|key| origin_of(&figment, key)))?;
        warnings.extend(config.semantic_warnings());
        Ok(LoadedConfig { config, warnings })
    }

    /// Every key of the configuration tree as a dotted path (sections
    /// included), e.g. `"rate_limits.login_per_ip.burst"`. Keys that are
    /// unset by default are included.
    pub fn known_keys() -> Vec<String> {
        let mut keys = Vec::new();
        crate::schema::collect_keys(Config::FIELDS, "", &mut keys);
        keys
    }
}

/// A figment provider for an already-built dictionary.
struct DictProvider {
    metadata: Metadata,
    dict: Dict,
}

impl Provider for DictProvider {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

fn read_file(path: &Path) -> Result<Dict, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::ReadFile {
        path: path.to_path_buf(),
        error,
    })?;
    toml::from_str::<Dict>(&text).map_err(|e| ConfigError::ParseFile {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_owned(),
    })
}

/// Pushes the dotted paths of keys in `dict` that are not in `fields`. An
/// unknown table is reported once, not key by key.
fn unknown_keys(dict: &Dict, fields: &'static [FieldDoc], prefix: &str, out: &mut Vec<String>) {
    for (key, value) in dict {
        let path = join_key(prefix, key);
        match fields.iter().find(|f| f.name == key) {
            None => out.push(path),
            Some(field) => {
                if let (ValueKind::Section(sub), Value::Dict(_, inner)) =
                    (field.kind.without_optional(), value)
                {
                    unknown_keys(inner, sub, &path, out);
                }
            }
        }
    }
}

/// The `MYELIN_*` variables as a nested dictionary.
struct EnvDict {
    dict: Dict,
    /// Dotted key → the variable that set it (for error messages).
    var_names: BTreeMap<String, String>,
    warnings: Vec<String>,
}

impl EnvDict {
    fn build(env: &[(String, String)]) -> Result<EnvDict, ConfigError> {
        let mut vars: Vec<&(String, String)> = env.iter().collect();
        vars.sort();

        let mut out = EnvDict {
            dict: Dict::new(),
            var_names: BTreeMap::new(),
            warnings: Vec::new(),
        };
        let mut errors = Vec::new();
        for (name, raw) in vars {
            let Some(rest) = strip_env_prefix(name) else {
                continue;
            };
            if NON_CONFIG_ENV_VARS
                .iter()
                .any(|v| v.eq_ignore_ascii_case(name))
            {
                continue;
            }
            let rest = rest.to_ascii_lowercase();
            let path: Vec<&str> = rest.split(ENV_SEPARATOR).collect();
            let key = path.join(".");
            let field = match lookup(Config::FIELDS, &path) {
                Lookup::Known(field) => field,
                Lookup::Unknown => {
                    out.warnings.push(format!(
                        "unknown config key {key:?} (ignored) in {ENV_NAME} {name}"
                    ));
                    continue;
                }
            };
            if let ValueKind::Section(_) = field.kind.without_optional() {
                errors.push(ConfigError::InvalidValue {
                    message: format!(
                        "{key:?} is a table; set its keys individually, e.g. \
                         {name}{ENV_SEPARATOR}<KEY>"
                    ),
                    key,
                    origin: Some(format!("{ENV_NAME} {name}")),
                });
                continue;
            }
            insert(&mut out.dict, &path, env_value(field.kind, raw));
            out.var_names.insert(key, name.clone());
        }
        ConfigError::combine(errors)?;
        Ok(out)
    }
}

/// The part after a case-insensitive `MYELIN_` prefix.
fn strip_env_prefix(name: &str) -> Option<&str> {
    let prefix = name.get(..ENV_PREFIX.len())?;
    prefix
        .eq_ignore_ascii_case(ENV_PREFIX)
        .then(|| &name[ENV_PREFIX.len()..])
}

/// `MYELIN_A__B` for the key path `["a", "b"]`.
fn env_var_name(keys: &[&str]) -> String {
    format!(
        "{ENV_PREFIX}{}",
        keys.join(ENV_SEPARATOR).to_ascii_uppercase()
    )
}

/// Interprets an environment value according to the key's kind. Text that
/// does not fit the kind is kept as a string, so deserialization reports a
/// type error naming the key.
fn env_value(kind: ValueKind, raw: &str) -> Value {
    let text = raw.trim();
    match kind {
        ValueKind::String | ValueKind::Path | ValueKind::Enum(_) | ValueKind::Section(_) => {
            Value::from(raw.to_owned())
        }
        ValueKind::Optional(inner) => env_value(*inner, raw),
        ValueKind::Bool => match text.to_ascii_lowercase().as_str() {
            "true" => Value::from(true),
            "false" => Value::from(false),
            _ => Value::from(raw.to_owned()),
        },
        ValueKind::Integer => {
            if let Ok(n) = text.parse::<u64>() {
                Value::from(n)
            } else if let Ok(n) = text.parse::<i64>() {
                Value::from(n)
            } else {
                Value::from(raw.to_owned())
            }
        }
        ValueKind::Float => text
            .parse::<f64>()
            .map_or_else(|_| Value::from(raw.to_owned()), Value::from),
        ValueKind::List(inner) => {
            if text.starts_with('[') {
                // A TOML array: `["a", "b"]`.
                toml::from_str::<Dict>(&format!("v = {text}"))
                    .ok()
                    .and_then(|mut d| d.remove("v"))
                    .unwrap_or_else(|| Value::from(raw.to_owned()))
            } else {
                // Comma-separated: `a,b`.
                Value::from(
                    text.split(',')
                        .map(str::trim)
                        .filter(|item| !item.is_empty())
                        .map(|item| env_value(*inner, item))
                        .collect::<Vec<Value>>(),
                )
            }
        }
    }
}

/// Inserts `value` at the nested `path`, creating tables on the way.
fn insert(dict: &mut Dict, path: &[&str], value: Value) {
    let (last, parents) = path.split_last().expect("non-empty key path");
    let mut current = dict;
    for part in parents {
        let entry = current
            .entry((*part).to_owned())
            .or_insert_with(|| Value::from(Dict::new()));
        if !matches!(entry, Value::Dict(..)) {
            *entry = Value::from(Dict::new());
        }
        let Value::Dict(_, inner) = entry else {
            unreachable!("just made a dictionary")
        };
        current = inner;
    }
    current.insert((*last).to_owned(), value);
}

/// Converts figment's extraction error(s), naming the key and the origin.
fn figment_error(error: figment::Error) -> ConfigError {
    let errors = error
        .into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                "(root)".to_owned()
            } else {
                e.path.join(".")
            };
            let origin = e.metadata.as_ref().map(|md| describe(md, &e.path));
            ConfigError::InvalidValue {
                key,
                message: kind_message(&e.kind),
                origin,
            }
        })
        .collect();
    match ConfigError::combine(errors) {
        Err(e) => e,
        Ok(()) => ConfigError::invalid("(root)", "invalid configuration"),
    }
}

/// figment's message for an error kind, with friendlier wording for enums.
fn kind_message(kind: &figment::error::Kind) -> String {
    use figment::error::Kind;
    let one_of = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match kind {
        Kind::UnknownVariant(found, expected) => {
            format!(
                "unknown value {found:?}, expected one of {}",
                one_of(expected)
            )
        }
        Kind::UnknownField(found, expected) => {
            format!(
                "unknown key {found:?}, expected one of {}",
                one_of(expected)
            )
        }
        other => other.to_string(),
    }
}

/// Where the value of `key` came from, e.g. `environment variable MYELIN_LISTEN`.
fn origin_of(figment: &Figment, key: &str) -> Option<String> {
    let metadata = figment.find_metadata(key)?;
    let path: Vec<String> = key.split('.').map(str::to_owned).collect();
    Some(describe(metadata, &path))
}

fn describe(metadata: &Metadata, path: &[String]) -> String {
    match (&metadata.source, metadata.name.as_ref()) {
        (Some(Source::File(file)), _) => format!("{FILE_NAME} {}", file.display()),
        (_, ENV_NAME) => format!(
            "{ENV_NAME} {}",
            metadata.interpolate(&Profile::Default, path)
        ),
        (_, DEFAULTS_NAME) => "the built-in default".to_owned(),
        (_, name) => name.to_owned(),
    }
}
