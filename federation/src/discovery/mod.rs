//! Server discovery (server-server API, "Resolving server names"), as decisions without I/O.
//!
//! Turning a server name into somewhere to connect takes up to one HTTPS request
//! (`/.well-known/matrix/server`) and two SRV lookups, and each answer decides what comes next
//! and which TLS name and `Host` header the connection must use. Those rules are easy to get
//! subtly wrong (the `Host` header differs between the delegated and SRV cases), so they live
//! here as a small state machine over plain values that is tested branch by branch; the
//! homeserver's resolver only performs the I/O each [`Step`] asks for:
//!
//! ```text
//! let mut step = discovery::plan(&server_name);
//! let resolution = loop {
//!     step = match step {
//!         Step::Done(resolution) => break resolution,
//!         Step::FetchWellKnown { url } => {
//!             // GET url (following redirects); `None` for any failure, non-200 or bad body.
//!             let delegated = fetch(&url).await.and_then(|body| parse_well_known(&body));
//!             discovery::after_well_known(&server_name, delegated.as_deref())
//!         }
//!         Step::LookupSrv(lookup) => {
//!             // SRV query for lookup.name(); no records, NXDOMAIN or an error give `&[]`.
//!             discovery::after_srv(&lookup, &srv_records(lookup.name()).await)
//!         }
//!     }
//! };
//! ```
//!
//! The resolver then looks up A/AAAA for the [`Resolution`]'s hosts, refuses addresses for
//! which [`is_denied_ip`] holds (unless configured otherwise), and connects with
//! [`Resolution::tls_name`], [`Resolution::sni`] and [`Resolution::host_header`]. Caching of
//! `.well-known` answers follows [`well_known_ttl`] and [`well_known_error_ttl`].

mod ip;
mod well_known;

pub use ip::{denied_ip_reason, is_denied_ip};
use ruma::ServerName;
pub use well_known::{
    WELL_KNOWN_DEFAULT_TTL, WELL_KNOWN_ERROR_TTL, WELL_KNOWN_MAX_BODY_BYTES, WELL_KNOWN_MAX_TTL,
    WELL_KNOWN_MIN_TTL, parse_well_known, well_known_error_ttl, well_known_ttl, well_known_url,
};

/// The port of federation when nothing names another one.
pub const DEFAULT_PORT: u16 = 8448;

/// The SRV service of spec v1.8 and later, tried first.
const SRV_SERVICE: &str = "_matrix-fed._tcp";
/// The deprecated SRV service, tried when the current one has no records.
const LEGACY_SRV_SERVICE: &str = "_matrix._tcp";

/// Where and how to connect to a server, once discovery is over.
///
/// Hosts are either IP addresses (written without brackets) or hostnames still to be resolved
/// with A/AAAA records (following CNAMEs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// One host and port: an IP literal, an explicit port, or the fallback to port 8448.
    Direct {
        host: String,
        port: u16,
        /// The name the server's certificate must be valid for: a hostname or an IP address.
        tls_name: String,
        /// The value of the `Host` header of every request.
        host_header: String,
    },
    /// The targets of SRV records, in the order to try them: by priority, then heaviest first.
    Srv { targets: Vec<SrvTarget>, tls_name: String, host_header: String },
}

/// One SRV target: a hostname (never an IP literal, per RFC 2782) and a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvTarget {
    pub host: String,
    pub port: u16,
}

impl Resolution {
    /// The name the server's certificate must be valid for.
    pub fn tls_name(&self) -> &str {
        match self {
            Self::Direct { tls_name, .. } | Self::Srv { tls_name, .. } => tls_name,
        }
    }

    /// The name to send as TLS SNI: the TLS name, except that an IP address is not sent.
    pub fn sni(&self) -> Option<&str> {
        let name = self.tls_name();
        name.parse::<std::net::IpAddr>().is_err().then_some(name)
    }

    /// The `Host` header of every request to this server.
    pub fn host_header(&self) -> &str {
        match self {
            Self::Direct { host_header, .. } | Self::Srv { host_header, .. } => host_header,
        }
    }

    /// The host and port pairs to try, in order.
    pub fn endpoints(&self) -> Vec<(&str, u16)> {
        match self {
            Self::Direct { host, port, .. } => vec![(host.as_str(), *port)],
            Self::Srv { targets, .. } => {
                targets.iter().map(|target| (target.host.as_str(), target.port)).collect()
            }
        }
    }
}

/// What discovery needs next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Discovery is over.
    Done(Resolution),
    /// GET this URL (`https://<hostname>/.well-known/matrix/server`), following 30x redirects
    /// but not loops, then call [`after_well_known`] with the delegated server name that
    /// [`parse_well_known`] found, or `None` for any failure.
    FetchWellKnown { url: String },
    /// Query one SRV name, then call [`after_srv`] with the records found (none for NXDOMAIN,
    /// an empty answer or a DNS error).
    LookupSrv(SrvLookup),
}

/// A pending SRV query. It carries which hostname the answer is for, so [`after_srv`] can pick
/// the TLS name and `Host` header and the next name to try without the caller keeping state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvLookup {
    name: String,
    hostname: String,
    legacy: bool,
}

impl SrvLookup {
    fn new(hostname: &str, legacy: bool) -> Self {
        let service = if legacy { LEGACY_SRV_SERVICE } else { SRV_SERVICE };
        Self { name: format!("{service}.{hostname}"), hostname: hostname.to_owned(), legacy }
    }

    /// The DNS name to query, e.g. `_matrix-fed._tcp.example.org`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's hostname (after `.well-known` delegation, if any): the TLS name and `Host`
    /// header of whatever the SRV records point at.
    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// Whether this is the deprecated `_matrix._tcp` service, the last SRV name tried.
    pub fn is_legacy(&self) -> bool {
        self.legacy
    }
}

/// One SRV record as DNS returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// The target hostname, with or without the trailing dot of a fully qualified name.
    pub target: String,
}

/// The first step for `server_name` (spec steps 1–3).
///
/// An IP literal or an explicit port needs no lookup beyond A/AAAA: the `Host` header is the
/// server name as written (with its port, if any). Otherwise `.well-known` comes first.
pub fn plan(server_name: &ServerName) -> Step {
    let host = server_name.host();
    if server_name.is_ip_literal() {
        let ip = unbracket(host);
        return Step::Done(Resolution::Direct {
            host: ip.to_owned(),
            port: server_name.port().unwrap_or(DEFAULT_PORT),
            tls_name: ip.to_owned(),
            host_header: server_name.as_str().to_owned(),
        });
    }
    if let Some(port) = server_name.port() {
        return Step::Done(Resolution::Direct {
            host: host.to_owned(),
            port,
            tls_name: host.to_owned(),
            host_header: server_name.as_str().to_owned(),
        });
    }
    Step::FetchWellKnown { url: well_known_url(host) }
}

/// The step after the `.well-known` request for `server_name` (spec steps 3.1–3.3 and 4).
///
/// `delegated` is the `m.server` of a valid response; `None` (no response, an error status,
/// an invalid body) falls through to SRV on the original hostname. A delegated name with an IP
/// literal or a port is used as is, with itself (port included) as `Host` header; one without
/// either goes through SRV like an undelegated name, but under the delegated hostname.
///
/// For a `server_name` that needs no `.well-known` (IP literal, explicit port) this returns
/// [`plan`]'s answer and ignores `delegated`.
pub fn after_well_known(server_name: &ServerName, delegated: Option<&ServerName>) -> Step {
    if !matches!(plan(server_name), Step::FetchWellKnown { .. }) {
        return plan(server_name);
    }
    match delegated {
        None => Step::LookupSrv(SrvLookup::new(server_name.host(), false)),
        Some(delegated) if delegated.is_ip_literal() || delegated.port().is_some() => {
            plan(delegated)
        }
        Some(delegated) => Step::LookupSrv(SrvLookup::new(delegated.host(), false)),
    }
}

/// The step after an SRV query (spec steps 3.3–3.5 and 4–6).
///
/// Usable records end discovery: their targets, ordered by priority then weight (heaviest
/// first, so the order is deterministic; RFC 2782's weighted random choice is left to callers
/// that spread load), with the hostname as TLS name and `Host` header, never the target's.
/// Without usable records, `_matrix-fed._tcp` falls back to the deprecated `_matrix._tcp`, and
/// that to the hostname itself on port 8448.
///
/// Unusable records are ignored: the target `.` (RFC 2782's "service not available here",
/// treated like no record at all) and port 0.
pub fn after_srv(lookup: &SrvLookup, records: &[SrvRecord]) -> Step {
    let mut usable: Vec<&SrvRecord> = records
        .iter()
        .filter(|record| record.port != 0 && !record.target.trim_end_matches('.').is_empty())
        .collect();
    usable.sort_by_key(|record| (record.priority, std::cmp::Reverse(record.weight)));

    let hostname = lookup.hostname.clone();
    if !usable.is_empty() {
        let targets = usable
            .into_iter()
            .map(|record| SrvTarget {
                host: record.target.trim_end_matches('.').to_owned(),
                port: record.port,
            })
            .collect();
        return Step::Done(Resolution::Srv {
            targets,
            tls_name: hostname.clone(),
            host_header: hostname,
        });
    }
    if !lookup.legacy {
        return Step::LookupSrv(SrvLookup::new(&lookup.hostname, true));
    }
    Step::Done(Resolution::Direct {
        host: hostname.clone(),
        port: DEFAULT_PORT,
        tls_name: hostname.clone(),
        host_header: hostname,
    })
}

/// `[2001:db8::1]` → `2001:db8::1`; anything else unchanged.
fn unbracket(host: &str) -> &str {
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

#[cfg(test)]
mod tests;
