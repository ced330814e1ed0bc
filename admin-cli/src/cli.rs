//! Command-line surface: clap types only, no behaviour.

use clap::builder::FalseyValueParser;
use clap::{Args, Parser, Subcommand};
use reqwest::Url;

pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8008";

/// Administer a Myelin homeserver through its admin HTTP API.
///
/// Every command talks to the server over HTTP; point it at the server with
/// --server (or MYELIN_ADMIN_SERVER) and authenticate with an admin access
/// token via --token (or MYELIN_ADMIN_TOKEN).
///
/// Exit codes: 0 success, 1 the server refused or failed the request,
/// 2 usage/configuration problem or server unreachable,
/// 3 access token rejected or not a server admin.
#[derive(Debug, Parser)]
#[command(name = "myelin-admin", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Base URL of the Myelin server's client API listener
    #[arg(
        long,
        global = true,
        env = "MYELIN_ADMIN_SERVER",
        default_value = DEFAULT_SERVER,
        value_name = "URL",
        value_parser = parse_server_url,
    )]
    pub server: Url,

    /// Access token of a server admin (see `myelin-admin login`)
    #[arg(
        long,
        global = true,
        env = "MYELIN_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,

    /// Print the server's JSON responses (pretty-printed) instead of tables
    #[arg(
        long,
        global = true,
        env = "MYELIN_ADMIN_JSON",
        value_parser = FalseyValueParser::new(),
    )]
    pub json: bool,

    /// Give up on a request after this many seconds
    #[arg(
        long,
        global = true,
        env = "MYELIN_ADMIN_TIMEOUT",
        default_value_t = 10,
        value_name = "SECS",
        value_parser = clap::value_parser!(u64).range(1..=3600),
    )]
    pub timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect the server
    #[command(subcommand)]
    Server(ServerCommand),

    /// Manage user accounts
    #[command(subcommand)]
    User(UserCommand),

    /// Quarantine, list, delete and purge media
    #[command(subcommand)]
    Media(MediaCommand),

    /// Log in with a password and print the new access token
    ///
    /// For scripts: export MYELIN_ADMIN_TOKEN=$(myelin-admin login admin --password-stdin <<< "$PW")
    Login(LoginArgs),
}

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Print the server's software version
    Version,

    /// Check that the server answers Matrix client API requests (no token needed)
    Ping,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user account
    ///
    /// With --shared-secret the account is registered through the
    /// shared-secret registration endpoint, which needs no access token: use
    /// it to create the first admin. Otherwise the admin API is used with
    /// --token. Without --password/--password-stdin a random password is
    /// generated and printed.
    Create(CreateArgs),

    /// List user accounts (all pages)
    List(ListArgs),

    /// Show one user account
    Show(UserArg),

    /// Deactivate a user account
    Deactivate(DeactivateArgs),

    /// Set a new password for a user
    ///
    /// Without --password/--password-stdin a random password is generated and
    /// printed. The user's devices are logged out unless --keep-devices.
    ResetPassword(ResetPasswordArgs),
}

/// Where a password comes from. Giving neither option means "generate one"
/// (or "prompt" for `login`).
#[derive(Debug, Args)]
pub struct PasswordSource {
    /// The password (visible to other local users in the process list; prefer --password-stdin)
    #[arg(long, value_name = "PASSWORD", conflicts_with = "password_stdin")]
    pub password: Option<String>,

    /// Read the password from the first line of standard input
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Localpart (`alice`) or full user ID (`@alice:example.org`)
    pub user: String,

    #[command(flatten)]
    pub password: PasswordSource,

    /// Make the new user a server admin
    #[arg(long)]
    pub admin: bool,

    /// Display name of the new user
    #[arg(long, value_name = "NAME")]
    pub displayname: Option<String>,

    /// Register with the server's registration shared secret instead of an access token
    #[arg(
        long,
        env = "MYELIN_REGISTRATION_SHARED_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub shared_secret: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only users whose user ID or display name contains this text
    #[arg(long, value_name = "SUBSTR")]
    pub name: Option<String>,

    /// Include deactivated users
    #[arg(long)]
    pub deactivated: bool,

    /// Stop after this many users (default: all)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
}

#[derive(Debug, Args)]
pub struct UserArg {
    /// Localpart (`alice`) or full user ID (`@alice:example.org`)
    pub user: String,
}

#[derive(Debug, Args)]
pub struct DeactivateArgs {
    /// Localpart (`alice`) or full user ID (`@alice:example.org`)
    pub user: String,

    /// Also erase the user's profile and hide their messages from new room members (irreversible)
    #[arg(long)]
    pub erase: bool,
}

#[derive(Debug, Args)]
pub struct ResetPasswordArgs {
    /// Localpart (`alice`) or full user ID (`@alice:example.org`)
    pub user: String,

    #[command(flatten)]
    pub password: PasswordSource,

    /// Do not log out the user's existing devices
    #[arg(long)]
    pub keep_devices: bool,
}

#[derive(Debug, Subcommand)]
pub enum MediaCommand {
    /// Stop serving a media item (to clients and to other servers) until unquarantined
    Quarantine(MxcArg),

    /// Serve a quarantined media item again
    Unquarantine(MxcArg),

    /// List the media a local user uploaded, newest first
    List(MediaListArgs),

    /// Delete a local media item (its file goes when no other item shares it)
    Delete(MxcArg),

    /// Delete local media stored before a date, in batches, with progress on stderr
    Purge(PurgeArgs),

    /// Delete cached copies of other servers' media fetched before a date, in batches
    PurgeRemote(PurgeRemoteArgs),
}

#[derive(Debug, Args)]
pub struct MxcArg {
    /// The media's URI: mxc://server.name/mediaId
    pub mxc: String,
}

#[derive(Debug, Args)]
pub struct MediaListArgs {
    /// Localpart (`alice`) or full user ID (`@alice:example.org`)
    #[arg(long)]
    pub user: String,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Only media stored before this: a date (2024-09-01, 2024-09-01T12:00:00Z), milliseconds
    /// since the epoch, or an age (30d, 12h, 90m, 2w)
    #[arg(long, value_name = "WHEN")]
    pub before: String,

    /// Only media larger than this many bytes
    #[arg(long, value_name = "BYTES")]
    pub size_gt: Option<u64>,

    /// Only this user's media (localpart or full user ID)
    #[arg(long)]
    pub user: Option<String>,

    /// Also delete media that users have as their profile picture
    #[arg(long)]
    pub include_profiles: bool,

    /// Media deleted per request
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub batch_size: u64,
}

#[derive(Debug, Args)]
pub struct PurgeRemoteArgs {
    /// Only media fetched before this (same forms as `purge --before`)
    #[arg(long, value_name = "WHEN")]
    pub before: String,

    /// Media deleted per request
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub batch_size: u64,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Localpart (`admin`) or full user ID (`@admin:example.org`)
    pub user: String,

    /// Read the password from the first line of standard input (otherwise you are prompted)
    #[arg(long)]
    pub password_stdin: bool,
}

/// Accepts only absolute http(s) URLs, with a hint for the common
/// `host:port` mistake.
fn parse_server_url(raw: &str) -> Result<Url, String> {
    let hint = || format!("expected a URL such as {DEFAULT_SERVER} or https://matrix.example.org");
    let url = match Url::parse(raw) {
        Ok(url) => url,
        Err(err) => return Err(format!("{err}; {}", hint())),
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "unsupported scheme `{}`; {} (did you mean http://{raw}?)",
            url.scheme(),
            hint()
        ));
    }
    if url.cannot_be_a_base() || url.host_str().is_none_or(str::is_empty) {
        return Err(format!("the URL has no host; {}", hint()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "the URL must not have a query or fragment; {}",
            hint()
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn server_url_validation() {
        assert!(parse_server_url("http://127.0.0.1:8008").is_ok());
        assert!(parse_server_url("https://matrix.example.org/prefix/").is_ok());
        let err = parse_server_url("localhost:8008").unwrap_err();
        assert!(err.contains("did you mean http://localhost:8008"), "{err}");
        assert!(parse_server_url("127.0.0.1:8008").is_err());
        assert!(parse_server_url("ftp://example.org").is_err());
        assert!(parse_server_url("http://example.org/?x=1").is_err());
    }
}
