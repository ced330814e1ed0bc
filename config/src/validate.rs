//! Semantic checks on a deserialized [`Config`], and load-time warnings.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::ConfigError;
use crate::model::{Config, RateLimit, RegistrationMode, UrlPreviewConfig, is_loopback, split_server_name};

/// Why `federation.listen` cannot be served without TLS material.
const MISSING_FEDERATION_TLS: &str = "the federation listener serves TLS and needs a \
    certificate: set federation.tls_certificate and federation.tls_private_key, or set \
    federation.generate_self_signed_certificate = true (local testing only)";

/// Room versions the server can create rooms in.
const SUPPORTED_ROOM_VERSIONS: &[&str] = &["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"];

impl Config {
    /// Checks every value and cross-key rule. Errors name the offending key;
    /// all problems are reported at once (as [`ConfigError::Multiple`] when
    /// there are several).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        let mut check = |key: &str, result: Result<(), String>| {
            if let Err(message) = result {
                errors.push(ConfigError::invalid(key, message));
            }
        };

        check("server_name", check_server_name(&self.server_name));
        check(
            "database_path",
            if self.database_path.as_os_str().is_empty() {
                Err("must not be empty".to_owned())
            } else {
                Ok(())
            },
        );
        check("listen", check_listen(&self.listen));
        if let Some(url) = &self.public_baseurl {
            check("public_baseurl", check_http_url(url));
        }
        check("registration", self.check_open_registration());
        check("registration_tokens", self.check_registration_tokens());
        if let Some(secret) = &self.registration_shared_secret {
            check("registration_shared_secret", not_blank(secret));
        }
        if !SUPPORTED_ROOM_VERSIONS.contains(&self.default_room_version.as_str()) {
            check(
                "default_room_version",
                Err(format!("{:?} is not a supported room version (1 to 12)", self.default_room_version)),
            );
        }
        if let Some(contact) = &self.admin_contact {
            check("admin_contact", not_blank(contact));
        }

        check("log.level", not_blank(&self.log.level));
        check(
            "limits.max_request_body_bytes",
            positive(self.limits.max_request_body_bytes),
        );

        let password = &self.password;
        check(
            "password.argon2_iterations",
            positive(password.argon2_iterations),
        );
        check(
            "password.argon2_parallelism",
            if (1..=0x00FF_FFFF).contains(&password.argon2_parallelism) {
                Ok(())
            } else {
                Err(format!(
                    "{} is out of range (1 to 16777215)",
                    password.argon2_parallelism
                ))
            },
        );
        let min_memory = 8u64 * u64::from(password.argon2_parallelism.max(1));
        check(
            "password.argon2_memory_kib",
            if u64::from(password.argon2_memory_kib) >= min_memory {
                Ok(())
            } else {
                Err(format!(
                    "{} KiB is too small: Argon2 needs at least 8 KiB per lane \
                     ({min_memory} KiB for password.argon2_parallelism = {})",
                    password.argon2_memory_kib, password.argon2_parallelism
                ))
            },
        );

        let sessions = &self.sessions;
        check(
            "sessions.refreshable_access_token_lifetime_ms",
            positive(sessions.refreshable_access_token_lifetime_ms),
        );
        if let Some(ms) = sessions.refresh_token_lifetime_ms {
            check("sessions.refresh_token_lifetime_ms", positive_or_unset(ms));
        }
        if let Some(ms) = sessions.nonrefreshable_access_token_lifetime_ms {
            check(
                "sessions.nonrefreshable_access_token_lifetime_ms",
                positive_or_unset(ms),
            );
        }

        let limits = &self.rate_limits;
        for (name, limit) in [
            ("login_per_ip", &limits.login_per_ip),
            ("login_per_account", &limits.login_per_account),
            ("registration_per_ip", &limits.registration_per_ip),
            (
                "login_failures_per_account",
                &limits.login_failures_per_account,
            ),
            ("media_upload_per_user", &limits.media_upload_per_user),
            ("url_preview_per_user", &limits.url_preview_per_user),
        ] {
            check_rate_limit(&mut check, name, limit);
        }

        if let Some(url) = &self.well_known.client {
            check("well_known.client", check_http_url(url));
        }
        if let Some(server) = &self.well_known.server {
            check("well_known.server", check_server_name(server));
        }

        self.check_federation(&mut check);

        let media = &self.media;
        check("media.max_upload_bytes", positive(media.max_upload_bytes));
        check("media.max_pending_uploads_per_user", positive(media.max_pending_uploads_per_user));
        check("media.unused_pending_upload_expiry_secs", positive(media.unused_pending_upload_expiry_secs));
        check("media.max_thumbnail_source_pixels", positive(media.max_thumbnail_source_pixels));
        check("media.max_concurrent_thumbnails", positive(media.max_concurrent_thumbnails));
        if media.path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            check("media.path", Err("must not be empty (leave the key unset instead)".to_owned()));
        }
        check("media.legacy_unauthenticated_before", media.legacy_unauthenticated_before_ms().map(drop));

        let preview = &self.url_preview;
        check("url_preview.ip_range_denylist", UrlPreviewConfig::parse_ip_ranges(&preview.ip_range_denylist).map(drop));
        check("url_preview.ip_range_allowlist", UrlPreviewConfig::parse_ip_ranges(&preview.ip_range_allowlist).map(drop));
        check("url_preview.max_body_bytes", positive(preview.max_body_bytes));
        check("url_preview.timeout_secs", positive(preview.timeout_secs));
        check("url_preview.cache_secs", positive(preview.cache_secs));

        ConfigError::combine(errors)
    }

    /// `[federation]`: listener address and its TLS material.
    fn check_federation(&self, check: &mut impl FnMut(&str, Result<(), String>)) {
        let federation = &self.federation;
        if let Some(listen) = &federation.listen {
            check("federation.listen", check_listen(listen));
        }
        for (key, path) in [
            ("federation.tls_certificate", &federation.tls_certificate),
            ("federation.tls_private_key", &federation.tls_private_key),
        ] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                check(key, Err("must not be empty (leave the key unset instead)".to_owned()));
            }
        }
        match (&federation.tls_certificate, &federation.tls_private_key) {
            (Some(_), None) => check(
                "federation.tls_private_key",
                Err("must be set together with federation.tls_certificate (set both or neither)"
                    .to_owned()),
            ),
            (None, Some(_)) => check(
                "federation.tls_certificate",
                Err("must be set together with federation.tls_private_key (set both or neither)"
                    .to_owned()),
            ),
            _ => {}
        }
        if federation.enabled
            && federation.listen.is_some()
            && federation.tls_certificate.is_none()
            && federation.tls_private_key.is_none()
            && !federation.generate_self_signed_certificate
        {
            check("federation.listen", Err(MISSING_FEDERATION_TLS.to_owned()));
        }
    }

    /// Non-fatal remarks about a valid configuration.
    pub(crate) fn semantic_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.registration == RegistrationMode::Open
            && let Some((_, listen)) = self.public_listener()
        {
            warnings.push(format!(
                "open registration is enabled on the non-loopback listener {listen:?}: anyone \
                 who can reach it can create accounts (allowed by \
                 allow_open_registration_on_public_listener = true)"
            ));
        }
        let federation = &self.federation;
        if federation.generate_self_signed_certificate
            && federation.tls_certificate.is_some()
            && federation.tls_private_key.is_some()
        {
            warnings.push(
                "federation.generate_self_signed_certificate is ignored because \
                 federation.tls_certificate and federation.tls_private_key are set"
                    .to_owned(),
            );
        }
        if federation.enabled && !federation.verify_tls {
            warnings.push(
                "federation.verify_tls = false: certificates of other servers are not \
                 verified on outbound federation requests (for tests only)"
                    .to_owned(),
            );
        }
        if self.registration != RegistrationMode::Token && !self.registration_tokens.is_empty() {
            warnings.push(format!(
                "registration_tokens is set but registration = {:?}; the tokens are not used \
                 (set registration = \"token\" to require them)",
                self.registration.as_str()
            ));
        }
        warnings
    }

    fn check_open_registration(&self) -> Result<(), String> {
        if self.registration != RegistrationMode::Open
            || self.allow_open_registration_on_public_listener
        {
            return Ok(());
        }
        let Some((key, listen)) = self.public_listener() else {
            return Ok(());
        };
        Err(format!(
            "\"open\" registration is refused because \"{key}\" = {listen:?} is not a loopback \
             address, so anyone who can reach it could create accounts; set registration to \
             \"token\" or \"closed\", listen on 127.0.0.1 / [::1] behind a reverse proxy, or \
             set \"allow_open_registration_on_public_listener\" = true to accept the risk"
        ))
    }

    /// The first listener (key and address) bound to a non-loopback IP: `listen`, or
    /// `federation.listen` when federation is enabled (it serves the same endpoints).
    /// Addresses that do not parse are skipped (reported elsewhere).
    fn public_listener(&self) -> Option<(&'static str, &str)> {
        let federation = self.federation.listen.as_deref().filter(|_| self.federation.enabled);
        [("listen", Some(self.listen.as_str())), ("federation.listen", federation)]
            .into_iter()
            .filter_map(|(key, listen)| Some((key, listen?)))
            .find(|(_, listen)| {
                listen.parse::<SocketAddr>().is_ok_and(|addr| !is_loopback(addr.ip()))
            })
    }

    fn check_registration_tokens(&self) -> Result<(), String> {
        if self.registration_tokens.iter().any(|t| t.trim().is_empty()) {
            return Err("tokens must not be empty".to_owned());
        }
        if self.registration == RegistrationMode::Token && self.registration_tokens.is_empty() {
            return Err(
                "registration = \"token\" requires at least one registration token; \
                 add tokens here or change registration"
                    .to_owned(),
            );
        }
        Ok(())
    }
}

fn check_rate_limit(
    check: &mut impl FnMut(&str, Result<(), String>),
    name: &str,
    limit: &RateLimit,
) {
    check(
        &format!("rate_limits.{name}.per_second"),
        if limit.per_second.is_finite() && limit.per_second > 0.0 {
            Ok(())
        } else {
            Err(format!(
                "{} is not a positive number of requests per second",
                limit.per_second
            ))
        },
    );
    check(&format!("rate_limits.{name}.burst"), positive(limit.burst));
}

fn positive<T: PartialEq + Default>(value: T) -> Result<(), String> {
    if value == T::default() {
        Err("must be greater than 0".to_owned())
    } else {
        Ok(())
    }
}

fn positive_or_unset(value: u64) -> Result<(), String> {
    if value == 0 {
        Err("must be greater than 0 (leave the key unset for no expiry)".to_owned())
    } else {
        Ok(())
    }
}

fn not_blank(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        Err("must not be empty (leave the key unset instead)".to_owned())
    } else {
        Ok(())
    }
}

/// `listen` must be an IP socket address.
pub(crate) fn check_listen(listen: &str) -> Result<(), String> {
    listen.parse::<SocketAddr>().map(drop).map_err(|_| {
        format!(
            "{listen:?} is not host:port (expected an IP address and port such as \
             \"127.0.0.1:8008\", \"0.0.0.0:8008\" or \"[::1]:8008\"; hostnames are not resolved)"
        )
    })
}

/// An absolute `http(s)://` URL without query or fragment.
pub(crate) fn check_http_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} contains whitespace"));
    }
    if url.contains(['?', '#']) {
        return Err(format!("{url:?} must not contain a query or fragment"));
    }
    Ok(())
}

/// A Matrix server name: hostname, IPv4 literal or `[IPv6]` literal, with an
/// optional `:port`; no scheme and no path.
pub(crate) fn check_server_name(name: &str) -> Result<(), String> {
    server_name_problem(name).map_or(Ok(()), |problem| {
        Err(format!("{name:?} is not a valid server name: {problem}"))
    })
}

fn server_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".to_owned());
    }
    if let Some((scheme, _)) = name.split_once("://") {
        return Some(format!(
            "remove the scheme \"{scheme}://\" (a server name is e.g. \"example.org\")"
        ));
    }
    if name.contains(['/', '?', '#']) {
        return Some("a server name has no path (e.g. \"example.org\")".to_owned());
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("it contains whitespace".to_owned());
    }
    if name.len() > 255 {
        return Some("it is longer than 255 characters".to_owned());
    }
    let (host, port) = split_server_name(name);
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p != 0);
        if !valid {
            return Some(format!("{port:?} is not a valid port (1-65535)"));
        }
    }
    if let Some(inner) = host.strip_prefix('[') {
        let Some(ip) = inner.strip_suffix(']') else {
            return Some("the IPv6 literal is missing its closing \"]\"".to_owned());
        };
        if ip.parse::<Ipv6Addr>().is_err() {
            return Some(format!("{ip:?} is not an IPv6 address"));
        }
        return None;
    }
    if host.contains([':', '[', ']']) {
        return Some("IPv6 addresses must be in brackets, e.g. \"[::1]:8448\"".to_owned());
    }
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        if host.parse::<Ipv4Addr>().is_err() {
            return Some(format!("{host:?} is not an IPv4 address"));
        }
        return None;
    }
    for label in host.split('.') {
        if label.is_empty() {
            return Some(
                "the host name has an empty label (\"..\" or a leading/trailing \".\")".to_owned(),
            );
        }
        if label.len() > 63 {
            return Some(format!(
                "the host name label {label:?} is longer than 63 characters"
            ));
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Some(format!(
                "{bad:?} is not allowed in a host name (letters, digits, '-' and '.' only)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!(
                "the host name label {label:?} starts or ends with '-'"
            ));
        }
    }
    None
}
