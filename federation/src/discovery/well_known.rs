//! `/.well-known/matrix/server`: its URL, its body, and how long an answer may be cached.
//!
//! The spec asks requesting servers to cache every answer, successful or not: respect the
//! response's cache headers, default to 24 hours, cap at 48 hours, cache errors for up to an
//! hour with exponential back-off. The lifetimes are computed here from the headers and a
//! clock reading, so the homeserver's cache only stores `now + ttl`.

use std::time::{Duration, SystemTime};

use http::{
    HeaderMap,
    header::{AGE, CACHE_CONTROL, DATE, EXPIRES},
};
use ruma::{OwnedServerName, ServerName, http_headers::http_date_to_system_time};

/// How long a valid answer without caching headers is kept (the spec's recommendation).
pub const WELL_KNOWN_DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// The longest a valid answer is kept, whatever its headers say (the spec's recommendation).
pub const WELL_KNOWN_MAX_TTL: Duration = Duration::from_secs(48 * 60 * 60);
/// The shortest a valid answer is kept, even with `no-store`, `max-age=0` or a past `Expires`:
/// a floor so that one remote's headers cannot make every request to it fetch `.well-known`
/// again. (The spec sets no floor; this is Myelin's choice.)
pub const WELL_KNOWN_MIN_TTL: Duration = Duration::from_secs(5 * 60);
/// The longest a failure (no answer, error status, invalid body) is kept before retrying.
pub const WELL_KNOWN_ERROR_TTL: Duration = Duration::from_secs(60 * 60);
/// The first failure's lifetime; each further consecutive failure doubles it, up to
/// [`WELL_KNOWN_ERROR_TTL`].
const WELL_KNOWN_FIRST_ERROR_TTL: Duration = Duration::from_secs(5 * 60);
/// The most of a response body worth reading: a real answer is a few dozen bytes, and a body
/// beyond this is treated as invalid rather than buffered.
pub const WELL_KNOWN_MAX_BODY_BYTES: usize = 64 * 1024;

/// `https://<hostname>/.well-known/matrix/server`, for a hostname without port.
pub fn well_known_url(hostname: &str) -> String {
    format!("https://{hostname}/.well-known/matrix/server")
}

/// The delegated server name (`m.server`) of a `.well-known` response body, or `None` if the
/// body is not a JSON object, lacks `m.server`, or that is not a valid server name (hostname or
/// IP literal, optional port: no scheme, no path).
pub fn parse_well_known(body: &[u8]) -> Option<OwnedServerName> {
    if body.len() > WELL_KNOWN_MAX_BODY_BYTES {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let server = json.as_object()?.get("m.server")?.as_str()?;
    ServerName::parse(server).ok()
}

/// How long to cache a valid `.well-known` answer received at `now` with these headers.
///
/// `Cache-Control` comes first: `no-store` or `no-cache` mean as short as allowed, `max-age`
/// (less any `Age`) is the lifetime; an invalid `max-age` makes the answer stale. Without
/// `max-age`, `Expires` is measured from the response's `Date` (or `now` without one); an
/// invalid `Expires` (such as `0`) means already expired. Without either, the spec's 24-hour
/// default applies. The result always lies within [`WELL_KNOWN_MIN_TTL`] and
/// [`WELL_KNOWN_MAX_TTL`].
pub fn well_known_ttl(headers: &HeaderMap, now: SystemTime) -> Duration {
    freshness(headers, now).clamp(WELL_KNOWN_MIN_TTL, WELL_KNOWN_MAX_TTL)
}

/// How long to cache the `consecutive_failures`-th failure in a row to fetch `.well-known`:
/// 5 minutes, then 10, 20, 40, and an hour from the fifth on. `0` counts as the first.
pub fn well_known_error_ttl(consecutive_failures: u32) -> Duration {
    let doublings = consecutive_failures.saturating_sub(1).min(16);
    WELL_KNOWN_FIRST_ERROR_TTL.saturating_mul(1 << doublings).min(WELL_KNOWN_ERROR_TTL)
}

/// The freshness lifetime per RFC 9111 §4.2.1, before the bounds; zero when stale.
fn freshness(headers: &HeaderMap, now: SystemTime) -> Duration {
    let directives = CacheControl::parse(headers);
    if directives.no_store || directives.no_cache {
        return Duration::ZERO;
    }
    if let Some(max_age) = directives.max_age {
        let Some(max_age) = max_age else { return Duration::ZERO };
        let age = headers
            .get(AGE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| delta_seconds(value.trim()))
            .unwrap_or(0);
        return Duration::from_secs(max_age.saturating_sub(age));
    }
    if let Some(expires) = headers.get(EXPIRES) {
        let Ok(expires) = http_date_to_system_time(expires) else { return Duration::ZERO };
        let date =
            headers.get(DATE).and_then(|date| http_date_to_system_time(date).ok()).unwrap_or(now);
        return expires.duration_since(date).unwrap_or(Duration::ZERO);
    }
    WELL_KNOWN_DEFAULT_TTL
}

/// The `Cache-Control` directives that matter to a private cache, over every header line.
#[derive(Debug, Default)]
struct CacheControl {
    no_store: bool,
    no_cache: bool,
    /// The first `max-age`: `Some(None)` when its value is invalid.
    max_age: Option<Option<u64>>,
}

impl CacheControl {
    fn parse(headers: &HeaderMap) -> Self {
        let mut directives = Self::default();
        let lines = headers.get_all(CACHE_CONTROL).iter().filter_map(|line| line.to_str().ok());
        for directive in lines.flat_map(|line| line.split(',')) {
            let (name, value) = match directive.split_once('=') {
                Some((name, value)) => (name.trim(), Some(value.trim())),
                None => (directive.trim(), None),
            };
            if name.eq_ignore_ascii_case("no-store") {
                directives.no_store = true;
            } else if name.eq_ignore_ascii_case("no-cache") {
                // `no-cache="field"` only forbids reusing those fields; without revalidation
                // there is nothing smaller to reuse, so any form counts.
                directives.no_cache = true;
            } else if name.eq_ignore_ascii_case("max-age") && directives.max_age.is_none() {
                let value = value
                    .map(|v| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v));
                directives.max_age = Some(value.and_then(delta_seconds));
            }
        }
        directives
    }
}

/// RFC 9111 delta-seconds: ASCII digits only; values too large for `u64` saturate.
fn delta_seconds(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(value.parse().unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests;
