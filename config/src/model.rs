//! The configuration tree. Every key's `///` doc comment is part of the
//! metadata (see [`crate::FieldDoc`]) and is rendered into the example file,
//! so keep each one accurate: what the key means and its default.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::schema::{ConfigType, ValueKind};

config_section! {
    /// Myelin's configuration.
    ///
    /// Load it with [`Config::load`]; the defaults are safe for a local test
    /// server (loopback listener, nothing exposed).
    pub struct Config {
        /// The server name: the domain part of user IDs (`@alice:example.org`)
        /// and room aliases. A hostname, IPv4 address or bracketed IPv6
        /// address, with an optional `:port`; no scheme, no path. It cannot be
        /// changed once users exist.
        /// Default: "localhost".
        pub server_name: String = "localhost".to_owned(),

        /// Directory holding the database. Created if missing.
        /// Default: "./myelin-data".
        pub database_path: PathBuf = PathBuf::from("./myelin-data"),

        /// Address the HTTP listener binds to, as IP:port (e.g. "0.0.0.0:8008"
        /// or "[::]:8008"); hostnames are not resolved. Port 0 picks a free port.
        /// Default: "127.0.0.1:8008" (loopback only).
        pub listen: String = "127.0.0.1:8008".to_owned(),

        /// Base URL clients use to reach this server (e.g. when it sits behind
        /// a reverse proxy), such as "https://matrix.example.org".
        /// Default: unset, derived as "http://<listen>"; when listening on
        /// 0.0.0.0 or [::], the host part is the server name's host instead.
        pub public_baseurl: Option<String> = None; example = "\"https://matrix.example.org\"",

        /// Who may create accounts via the client-server API: "open" (anyone),
        /// "token" (only with one of `registration_tokens`) or "closed" (only
        /// administrators). Open registration on a non-loopback `listen`
        /// address additionally requires
        /// `allow_open_registration_on_public_listener = true`.
        /// Default: "open".
        pub registration: RegistrationMode = RegistrationMode::Open,

        /// Registration tokens accepted when `registration = "token"`; that mode
        /// requires at least one. From the environment, give a comma-separated
        /// list: MYELIN_REGISTRATION_TOKENS=tok1,tok2.
        /// Default: [] (none).
        pub registration_tokens: Vec<String> = Vec::new(),

        /// Shared secret for Synapse-compatible admin registration
        /// (`/_synapse/admin/v1/register`). Anyone who knows it can create
        /// admin accounts: use a long random value and keep it private.
        /// Default: unset (the endpoint is disabled).
        pub registration_shared_secret: Option<String> = None; example = "\"<a long random string>\"",

        /// Set to true to allow `registration = "open"` while `listen` is not a
        /// loopback address. Without it such a configuration is refused, so a
        /// server is never exposed with open registration by accident.
        /// Default: false.
        pub allow_open_registration_on_public_listener: bool = false,

        /// Contact address for the server's administrator, e.g. an email
        /// address or a Matrix user ID.
        /// Default: unset.
        pub admin_contact: Option<String> = None; example = "\"mailto:admin@example.org\"",

        /// Room version of rooms created without an explicit `room_version`,
        /// one of "1" to "12".
        /// Default: "12" (as Synapse).
        pub default_room_version: String = "12".to_owned(),

        /// Logging.
        pub log: LogConfig = LogConfig::default(),

        /// Request size limits.
        pub limits: LimitsConfig = LimitsConfig::default(),

        /// Password hashing (Argon2id) and password policy.
        pub password: PasswordConfig = PasswordConfig::default(),

        /// Access and refresh token lifetimes.
        pub sessions: SessionConfig = SessionConfig::default(),

        /// Rate limiting of login and registration. Each limit is a token
        /// bucket: `burst` requests at once, refilled at `per_second`.
        pub rate_limits: RateLimitsConfig = RateLimitsConfig::default(),

        /// Responses served under /.well-known/matrix/.
        pub well_known: WellKnownConfig = WellKnownConfig::default(),

        /// Federation with other Matrix servers.
        pub federation: FederationConfig = FederationConfig::default(),

        /// Presence: online, idle and offline, shown to users who share a room.
        pub presence: PresenceConfig = PresenceConfig::default(),

        /// The media repository: uploads and downloads.
        pub media: MediaConfig = MediaConfig::default(),

        /// URL previews (/_matrix/client/v1/media/preview_url): which pages
        /// the server fetches on its users' behalf, and the limits of a fetch.
        pub url_preview: UrlPreviewConfig = UrlPreviewConfig::default(),

        /// The user directory: who `/user_directory/search` finds.
        pub user_directory: UserDirectoryConfig = UserDirectoryConfig::default(),
    }
}

config_section! {
    /// `[log]`: logging output.
    pub struct LogConfig {
        /// Log output format: "text" (human-readable) or "json" (one JSON
        /// object per line).
        /// Default: "text".
        pub format: LogFormat = LogFormat::Text,

        /// Which events to log, as a tracing EnvFilter directive such as
        /// "info" or "info,myelin=debug".
        /// Default: "info".
        pub level: String = "info".to_owned(),
    }
}

config_section! {
    /// `[limits]`: request limits.
    pub struct LimitsConfig {
        /// Maximum size of a request body in bytes; larger requests are
        /// rejected.
        /// Default: 1048576 (1 MiB).
        pub max_request_body_bytes: u64 = 1_048_576,
    }
}

config_section! {
    /// `[password]`: password hashing parameters and policy.
    pub struct PasswordConfig {
        /// Argon2id memory cost in KiB. Must be at least 8 × parallelism.
        /// Default: 19456 (19 MiB, the OWASP recommendation).
        pub argon2_memory_kib: u32 = 19_456,

        /// Argon2id iteration count (time cost). Must be at least 1.
        /// Default: 2.
        pub argon2_iterations: u32 = 2,

        /// Argon2id degree of parallelism (lanes). Must be at least 1.
        /// Default: 1.
        pub argon2_parallelism: u32 = 1,

        /// Minimum password length in characters for new passwords; 0 disables
        /// the check.
        /// Default: 0 (no minimum).
        pub min_length: usize = 0,
    }
}

config_section! {
    /// `[sessions]`: token lifetimes.
    pub struct SessionConfig {
        /// Lifetime in milliseconds of access tokens issued together with a
        /// refresh token (clients that support refresh tokens). Must be > 0.
        /// Default: 300000 (5 minutes).
        pub refreshable_access_token_lifetime_ms: u64 = 300_000,

        /// Lifetime in milliseconds of refresh tokens. Must be > 0 when set.
        /// Default: unset (refresh tokens do not expire).
        pub refresh_token_lifetime_ms: Option<u64> = None; example = "2592000000",

        /// Lifetime in milliseconds of access tokens issued without a refresh
        /// token. Must be > 0 when set.
        /// Default: unset (such access tokens never expire).
        pub nonrefreshable_access_token_lifetime_ms: Option<u64> = None; example = "86400000",
    }
}

config_section! {
    /// `[rate_limits]`: request rate limits.
    pub struct RateLimitsConfig {
        /// Whether rate limiting is applied at all.
        /// Default: true.
        pub enabled: bool = true,

        /// Login attempts per client IP address.
        /// Default: per_second = 0.17, burst = 3.
        pub login_per_ip: RateLimit = RateLimit::new(0.17, 3),

        /// Login attempts per account (whatever the client IP).
        /// Default: per_second = 0.17, burst = 3.
        pub login_per_account: RateLimit = RateLimit::new(0.17, 3),

        /// Registration requests per client IP address.
        /// Default: per_second = 0.17, burst = 3.
        pub registration_per_ip: RateLimit = RateLimit::new(0.17, 3),

        /// Failed login attempts per account.
        /// Default: per_second = 0.17, burst = 3.
        pub login_failures_per_account: RateLimit = RateLimit::new(0.17, 3),

        /// Media uploads (/upload, /create and the asynchronous PUT) per
        /// user.
        /// Default: per_second = 1.0, burst = 20.
        pub media_upload_per_user: RateLimit = RateLimit::new(1.0, 20),

        /// URL preview requests per user (answers from the cache count too).
        /// Default: per_second = 1.0, burst = 10.
        pub url_preview_per_user: RateLimit = RateLimit::new(1.0, 10),
    }
}

config_section! {
    /// A token-bucket rate limit.
    pub struct RateLimit {
        /// Sustained rate: requests allowed per second, on average (may be
        /// fractional, e.g. 0.17 is about one every 6 seconds). Must be > 0.
        /// Default: 0.17.
        pub per_second: f64 = 0.17,

        /// Requests allowed in a burst before the sustained rate applies.
        /// Must be at least 1.
        /// Default: 3.
        pub burst: u32 = 3,
    }
}

impl RateLimit {
    /// A limit of `burst` requests at once, refilled at `per_second`.
    pub const fn new(per_second: f64, burst: u32) -> Self {
        Self { per_second, burst }
    }
}

config_section! {
    /// `[well_known]`: server discovery responses.
    pub struct WellKnownConfig {
        /// Homeserver base URL advertised to clients in
        /// /.well-known/matrix/client.
        /// Default: unset (the client base URL, see `public_baseurl`).
        pub client: Option<String> = None; example = "\"https://matrix.example.org\"",

        /// Delegated federation endpoint ("host" or "host:port") advertised in
        /// /.well-known/matrix/server.
        /// Default: unset (the server name, with port 8448 unless it has one).
        pub server: Option<String> = None; example = "\"matrix.example.org:443\"",
    }
}

config_section! {
    /// `[presence]`: who is online, shared with users (and servers) in the same rooms.
    pub struct PresenceConfig {
        /// Whether presence is tracked and shared at all. When off, everyone
        /// appears offline and no presence is sent to other servers.
        /// Default: true.
        pub enabled: bool = true,

        /// Seconds without activity (sending events, syncing with
        /// `set_presence=online`) after which an online user becomes
        /// "unavailable".
        /// Default: 300 (5 minutes).
        pub idle_after_secs: u64 = 300,

        /// Seconds after a user's last sync after which they become
        /// "offline" (clients sync continuously while open).
        /// Default: 60.
        pub offline_after_secs: u64 = 60,
    }
}

config_section! {
    /// `[user_directory]`: finding users by name.
    pub struct UserDirectoryConfig {
        /// Whether a search finds every local user. When false, it finds only
        /// users who share a room with the searcher or sit in a room anyone
        /// may join (join rule "public"), local or remote.
        /// Default: false.
        pub search_all_users: bool = false,
    }
}

config_section! {
    /// `[federation]`: talking to other Matrix servers.
    pub struct FederationConfig {
        /// Whether federation with other servers is enabled.
        /// Default: true.
        pub enabled: bool = true,

        /// Address of the separate federation listener, which serves the same
        /// endpoints over TLS, as IP:port (e.g. "0.0.0.0:8448"); hostnames are
        /// not resolved and port 0 picks a free port. It needs
        /// `tls_certificate` and `tls_private_key`, or
        /// `generate_self_signed_certificate = true`. Like `listen`, a
        /// non-loopback address with `registration = "open"` requires
        /// `allow_open_registration_on_public_listener = true`. Ignored when
        /// `enabled = false`.
        /// Default: unset (no separate federation listener).
        pub listen: Option<String> = None; example = "\"127.0.0.1:8448\"",

        /// PEM file with the federation listener's certificate chain (leaf
        /// certificate first). Set together with `tls_private_key`.
        /// Default: unset.
        pub tls_certificate: Option<PathBuf> = None; example = "\"/etc/myelin/tls/fullchain.pem\"",

        /// PEM file with the private key of `tls_certificate` (PKCS#8, PKCS#1
        /// or SEC1). Set together with `tls_certificate`.
        /// Default: unset.
        pub tls_private_key: Option<PathBuf> = None; example = "\"/etc/myelin/tls/privkey.pem\"",

        /// When `listen` is set but `tls_certificate`/`tls_private_key` are
        /// not, generate a self-signed certificate for the server name (plus
        /// "localhost" and "127.0.0.1") at start. It is stored under
        /// "<database_path>/tls/" and reused on restart. Other servers will
        /// not trust it: for local testing only.
        /// Default: false.
        pub generate_self_signed_certificate: bool = false,

        /// Whether the TLS certificates of other servers are verified on
        /// outbound federation requests. Switch off only for tests.
        /// Default: true.
        pub verify_tls: bool = true,

        /// Whether outbound federation requests may reach loopback, private
        /// and link-local addresses (127.0.0.0/8, 10.0.0.0/8, 192.168.0.0/16,
        /// fe80::/10, ...). Needed for tests on one machine.
        /// Default: false.
        pub allow_private_addresses: bool = false,

        /// Delay in milliseconds before the first retry of a transaction to a
        /// server that could not be reached; it doubles with each further
        /// failure, up to `retry_max_ms` (with ±10% jitter).
        /// Default: 2000 (2 seconds).
        pub retry_initial_ms: u64 = 2000,

        /// Longest delay in milliseconds between retries of a transaction to
        /// an unreachable server.
        /// Default: 600000 (10 minutes).
        pub retry_max_ms: u64 = 600_000,

        /// Placeholder for the federation ACL, not enforced yet: server names
        /// that will be allowed to federate with this server.
        /// Default: [] (none listed).
        pub allowed_servers: Vec<String> = Vec::new(),

        /// Placeholder for the federation ACL, not enforced yet: server names
        /// that will be refused federation with this server.
        /// Default: [] (none listed).
        pub denied_servers: Vec<String> = Vec::new(),
    }
}

config_section! {
    /// `[media]`: the media repository.
    pub struct MediaConfig {
        /// Largest file in bytes that may be uploaded, and that is fetched
        /// from another server; larger uploads get 413 M_TOO_LARGE.
        /// Default: 52428800 (50 MiB).
        pub max_upload_bytes: u64 = 52_428_800,

        /// Directory holding the media files. Created if missing.
        /// Default: unset ("media" inside `database_path`).
        pub path: Option<PathBuf> = None; example = "\"/var/lib/myelin/media\"",

        /// Media stored before this moment is still served on the legacy
        /// unauthenticated paths (/_matrix/media/v3/download/...); anything
        /// newer needs the authenticated /_matrix/client/v1/media/ paths, as
        /// with Synapse's media freeze. A UTC date ("2024-09-01") or date and
        /// time ("2024-09-01T12:00:00Z").
        /// Default: unset (the legacy paths serve nothing).
        pub legacy_unauthenticated_before: Option<String> = None; example = "\"2024-09-01\"",

        /// How many media IDs created with /_matrix/media/v1/create a user
        /// may hold without having uploaded their content; more get 429
        /// M_LIMIT_EXCEEDED. Must be at least 1.
        /// Default: 5.
        pub max_pending_uploads_per_user: u32 = 5,

        /// Seconds a media ID created with /_matrix/media/v1/create stays
        /// usable for its upload. Must be > 0.
        /// Default: 86400 (24 hours, as the spec recommends).
        pub unused_pending_upload_expiry_secs: u64 = 86_400,

        /// Largest image, in pixels (width x height as its header declares),
        /// that is thumbnailed; larger images are refused with 413
        /// M_TOO_LARGE before they are decoded, so that a small file
        /// declaring huge dimensions cannot exhaust memory. It also bounds
        /// the pixels decoded across all frames of an animated thumbnail.
        /// Default: 32000000 (32 megapixels, as Synapse's max_image_pixels).
        pub max_thumbnail_source_pixels: u64 = 32_000_000,

        /// How many thumbnails may be generated at the same time; further
        /// requests wait for a slot. Must be at least 1.
        /// Default: 4.
        pub max_concurrent_thumbnails: u32 = 4,
    }
}

config_section! {
    /// `[url_preview]`: URL previews. The server fetches the pages its users
    /// ask about, so every address it connects to, at every redirect, is
    /// checked first: loopback, private (RFC 1918), carrier-grade NAT,
    /// link-local (cloud metadata at 169.254.169.254), multicast, broadcast,
    /// reserved and documentation ranges, and their IPv6 counterparts
    /// (::1, fc00::/7, fe80::/10, IPv4-mapped ...) are always refused unless
    /// listed in `ip_range_allowlist`.
    pub struct UrlPreviewConfig {
        /// Whether URL previews are served. When false, the preview_url
        /// paths answer 404 M_UNRECOGNIZED, as Synapse's do when previews
        /// are off. On by default (Synapse's default is off because it has no
        /// built-in address deny list; Myelin has one).
        /// Default: true.
        pub enabled: bool = true,

        /// More address ranges (CIDR, e.g. "203.0.113.0/24", or single
        /// addresses) that previews must never connect to, on top of the
        /// built-in list.
        /// Default: [] (the built-in list only).
        pub ip_range_denylist: Vec<String> = Vec::new(),

        /// Address ranges (CIDR or single addresses) previews may connect to
        /// even though they are denied, e.g. an intranet wiki at
        /// "10.1.2.3/32". Listing "127.0.0.0/8" lets users make the server
        /// fetch its own loopback services: think twice.
        /// Default: [] (none).
        pub ip_range_allowlist: Vec<String> = Vec::new(),

        /// Hosts never previewed: an entry matches that host name and every
        /// name under it ("example.com" also denies "www.example.com").
        /// Default: [] (none).
        pub host_denylist: Vec<String> = Vec::new(),

        /// Largest response body in bytes read for a preview (the page, or
        /// the image it names); reading stops there and the preview fails
        /// with 502 M_TOO_LARGE.
        /// Default: 10485760 (10 MiB).
        pub max_body_bytes: u64 = 10_485_760,

        /// Seconds a fetch may take in all, redirects included. Must be > 0.
        /// Default: 10.
        pub timeout_secs: u64 = 10,

        /// Redirects followed per fetch; each hop is checked like the first
        /// URL.
        /// Default: 5.
        pub max_redirects: u32 = 5,

        /// Seconds a preview is kept and served again without a new fetch.
        /// Must be > 0.
        /// Default: 3600 (1 hour, as Synapse).
        pub cache_secs: u64 = 3_600,
    }
}

impl UrlPreviewConfig {
    /// `ranges` (one of the IP range lists) as (network address, prefix
    /// length) pairs; `Err` names the first entry that is not an address or
    /// CIDR range.
    pub fn parse_ip_ranges(ranges: &[String]) -> Result<Vec<(IpAddr, u8)>, String> {
        ranges
            .iter()
            .map(|range| {
                let invalid = || format!("{range:?} is not an IP address or CIDR range (\"10.0.0.0/8\", \"fc00::/7\")");
                let (address, length) = match range.trim().split_once('/') {
                    Some((address, length)) => (address, Some(length)),
                    None => (range.trim(), None),
                };
                let address: IpAddr = address.parse().map_err(|_| invalid())?;
                let max = if address.is_ipv4() { 32 } else { 128 };
                let length = match length {
                    Some(length) => length.parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(invalid)?,
                    None => max,
                };
                Ok((address, length))
            })
            .collect()
    }
}

impl MediaConfig {
    /// `legacy_unauthenticated_before` in milliseconds since the Unix epoch;
    /// `Ok(None)` when unset, `Err` with the reason when it does not parse.
    pub fn legacy_unauthenticated_before_ms(&self) -> Result<Option<u64>, String> {
        self.legacy_unauthenticated_before.as_deref().map(parse_utc_timestamp_ms).transpose()
    }
}

/// Parses "YYYY-MM-DD", "YYYY-MM-DDTHH:MM:SSZ" or "YYYY-MM-DD HH:MM:SS" (UTC)
/// into milliseconds since the Unix epoch.
fn parse_utc_timestamp_ms(text: &str) -> Result<u64, String> {
    let invalid = || format!("{text:?} is not a UTC date (\"2024-09-01\") or date and time (\"2024-09-01T12:00:00Z\")");
    let text = text.trim();
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((date, time)) => (date, Some(time.strip_suffix('Z').unwrap_or(time))),
        None => (text, None),
    };
    let number = |part: Option<&str>, digits: usize| -> Result<u64, String> {
        part.filter(|p| p.len() == digits && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse().ok())
            .ok_or_else(invalid)
    };
    let mut parts = date.split('-');
    let (year, month, day) = (number(parts.next(), 4)?, number(parts.next(), 2)?, number(parts.next(), 2)?);
    if parts.next().is_some() || year < 1970 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(invalid());
    }
    let seconds_of_day = match time {
        None => 0,
        Some(time) => {
            let mut parts = time.split(':');
            let (h, m, s) = (number(parts.next(), 2)?, number(parts.next(), 2)?, number(parts.next(), 2)?);
            if parts.next().is_some() || h > 23 || m > 59 || s > 59 {
                return Err(invalid());
            }
            h * 3600 + m * 60 + s
        }
    };
    let days = (1970..year).map(|y| if is_leap(y) { 366 } else { 365 }).sum::<u64>()
        + (1..month).map(|m| days_in_month(year, m)).sum::<u64>()
        + (day - 1);
    Ok((days * 86_400 + seconds_of_day) * 1000)
}

fn is_leap(year: u64) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Who may register accounts. Serialized lowercase: `open`, `token`, `closed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationMode {
    /// Anyone may register.
    #[default]
    Open,
    /// Registration requires one of the configured registration tokens.
    Token,
    /// Only administrators can create accounts.
    Closed,
}

impl RegistrationMode {
    /// The configuration spelling: `"open"`, `"token"` or `"closed"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RegistrationMode::Open => "open",
            RegistrationMode::Token => "token",
            RegistrationMode::Closed => "closed",
        }
    }
}

impl ConfigType for RegistrationMode {
    const KIND: ValueKind = ValueKind::Enum(&["open", "token", "closed"]);
}

impl fmt::Display for RegistrationMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Log output format. Serialized lowercase: `text`, `json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The configuration spelling: `"text"` or `"json"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl ConfigType for LogFormat {
    const KIND: ValueKind = ValueKind::Enum(&["text", "json"]);
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Default federation port, used when neither the server name nor
/// `well_known.server` names one.
pub const DEFAULT_FEDERATION_PORT: u16 = 8448;

impl Config {
    /// The listener address.
    ///
    /// # Panics
    ///
    /// If `listen` is not an IP socket address. A config returned by
    /// [`Config::load`] has been validated, so this cannot happen for it.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.parse().unwrap_or_else(|_| {
            panic!(
                "invalid `listen` address {:?}; validate the config first",
                self.listen
            )
        })
    }

    /// The base URL clients use to reach this server, without a trailing
    /// slash: `public_baseurl` when set, otherwise `http://<listen>`, with the
    /// server name's host in place of an unspecified (0.0.0.0 / [::]) IP.
    pub fn client_base_url(&self) -> String {
        if let Some(url) = &self.public_baseurl {
            return url.trim_end_matches('/').to_owned();
        }
        match self.listen.parse::<SocketAddr>() {
            Ok(addr) if addr.ip().is_unspecified() => {
                format!("http://{}:{}", self.server_name_host(), addr.port())
            }
            Ok(addr) => format!("http://{addr}"),
            Err(_) => format!("http://{}", self.listen),
        }
    }

    /// The base URL advertised in `/.well-known/matrix/client`:
    /// `well_known.client` when set, otherwise [`Config::client_base_url`].
    pub fn well_known_client_base_url(&self) -> String {
        match &self.well_known.client {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => self.client_base_url(),
        }
    }

    /// The `m.server` value for `/.well-known/matrix/server`:
    /// `well_known.server` when set, otherwise the server name, with port
    /// 8448 appended when it has no port.
    pub fn well_known_server(&self) -> String {
        match &self.well_known.server {
            Some(server) => server.clone(),
            None if server_name_has_port(&self.server_name) => self.server_name.clone(),
            None => format!("{}:{DEFAULT_FEDERATION_PORT}", self.server_name),
        }
    }

    /// The host part of the server name (without any port; IPv6 literals keep
    /// their brackets).
    pub fn server_name_host(&self) -> &str {
        split_server_name(&self.server_name).0
    }

    /// Whether `listen` is a loopback address (127.0.0.0/8 or ::1). `false`
    /// when it does not parse.
    pub fn listen_is_loopback(&self) -> bool {
        self.listen
            .parse::<SocketAddr>()
            .is_ok_and(|addr| is_loopback(addr.ip()))
    }
}

/// Loopback check that also treats IPv4-mapped IPv6 loopback as loopback.
pub(crate) fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// Splits a server name into host and optional port text (brackets of an
/// IPv6 literal stay with the host). Does not validate.
pub(crate) fn split_server_name(name: &str) -> (&str, Option<&str>) {
    if name.starts_with('[') {
        match name.find(']') {
            Some(end) => {
                let (host, rest) = name.split_at(end + 1);
                (host, rest.strip_prefix(':'))
            }
            None => (name, None),
        }
    } else {
        match name.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (name, None),
        }
    }
}

fn server_name_has_port(name: &str) -> bool {
    split_server_name(name).1.is_some()
}
