//! Outbound federation HTTP: server-name resolution driven by the sans-I/O plan in
//! `myelin_federation::discovery` (with real `.well-known` fetches and SRV lookups), the
//! outbound address deny list, and JSON requests signed with X-Matrix.

use std::{net::IpAddr, time::Duration};

use hickory_resolver::{TokioResolver, proto::rr::RData};
use myelin_federation::discovery::{self, SrvRecord, Step};
use ruma::{
    ServerName,
    api::{IncomingResponseExt, OutgoingRequest, OutgoingRequestExt, path_builder::SinglePath},
};
use ruma::api::federation::authentication::{ServerSignatures, XMatrixSigningInput};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    service::address_policy::{AddressPolicy, FilteringResolver, Routes},
};

/// Responses larger than this are refused: a peer must not be able to exhaust our memory.
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// The same bound for a room's whole state (`send_join`, `/state`), which is legitimately big.
const MAX_ROOM_STATE_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

#[derive(Clone)]
pub struct FederationClient {
    http: reqwest::Client,
    allow_private_addresses: bool,
    origin: ruma::OwnedServerName,
    key: std::sync::Arc<myelin_federation::ServerSigningKey>,
    /// The system's DNS resolver for SRV records; `None` where none is configured, and SRV
    /// steps then find nothing (resolution falls back to port 8448, the spec's last step).
    dns: Option<TokioResolver>,
    resolutions: ResolutionCache,
    /// SRV-delegated names → their target's addresses, for the HTTP client's resolver.
    routes: Routes,
}

/// Resolved base URLs by server name, each until its `.well-known` lifetime ends, and the
/// consecutive `.well-known` failures per server (whose cache lifetime grows with each).
#[derive(Clone, Default)]
struct ResolutionCache {
    entries: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<ruma::OwnedServerName, (String, std::time::Instant)>>>,
    failures: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<ruma::OwnedServerName, u32>>>,
}

impl ResolutionCache {
    fn fresh(&self, server: &ServerName) -> Option<String> {
        let entries = self.entries.lock().ok()?;
        entries.get(server).filter(|(_, until)| *until > std::time::Instant::now()).map(|(base, _)| base.clone())
    }

    fn insert(&self, server: &ServerName, base: String, lifetime: Duration) {
        if let Ok(mut entries) = self.entries.lock() {
            // Bounded: expired entries go first once the map grows.
            if entries.len() > 10_000 {
                let now = std::time::Instant::now();
                entries.retain(|_, (_, until)| *until > now);
            }
            entries.insert(server.to_owned(), (base, std::time::Instant::now() + lifetime));
        }
    }

    fn succeeded(&self, server: &ServerName) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(server);
        }
    }

    /// How long to cache this server's latest `.well-known` failure.
    fn failure_ttl(&self, server: &ServerName) -> Duration {
        let Ok(mut failures) = self.failures.lock() else { return discovery::well_known_error_ttl(1) };
        let count = failures.entry(server.to_owned()).or_default();
        *count = count.saturating_add(1);
        discovery::well_known_error_ttl(*count)
    }
}

impl FederationClient {
    pub fn new(
        origin: ruma::OwnedServerName,
        key: std::sync::Arc<myelin_federation::ServerSigningKey>,
        verify_tls: bool,
        allow_private_addresses: bool,
    ) -> Result<Self> {
        // Every hostname the client connects to is resolved here and denied addresses are
        // dropped: checking a name once and letting the connection resolve it again would let
        // a DNS answer that changes in between (rebinding) reach a private address. SRV
        // delegations are routed here too (see `discover`).
        let policy = if allow_private_addresses { AddressPolicy::allow_all() } else { AddressPolicy::public_only() };
        let routes = Routes::default();
        let resolver = FilteringResolver::new(policy).with_routes(routes.clone());
        let http = reqwest::Client::builder()
            .dns_resolver(std::sync::Arc::new(resolver))
            .danger_accept_invalid_certs(!verify_tls)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(crate::VERSION)
            .build()
            .map_err(|e| Error::internal(format!("cannot build the federation HTTP client: {e}")))?;
        let dns = match TokioResolver::builder_tokio().and_then(|builder| builder.build()) {
            Ok(resolver) => Some(resolver),
            Err(error) => {
                tracing::warn!(%error, "no DNS resolver configuration: SRV lookups disabled");
                None
            }
        };
        Ok(Self { http, allow_private_addresses, origin, key, dns, resolutions: ResolutionCache::default(), routes })
    }

    /// The base URL (`https://host:port`) at which `server` serves its federation API, from
    /// the cache while its `.well-known` answer (or failure) is fresh.
    pub async fn resolve(&self, server: &ServerName) -> Result<String> {
        if let Some(base) = self.resolutions.fresh(server) {
            return Ok(base);
        }
        let mut lifetime = None;
        let base = self.discover(server, &mut lifetime).await?;
        if let Some(lifetime) = lifetime {
            self.resolutions.insert(server, base.clone(), lifetime);
        }
        Ok(base)
    }

    /// Runs discovery; `lifetime` is set when a `.well-known` lookup made it worth caching.
    async fn discover(&self, server: &ServerName, lifetime: &mut Option<Duration>) -> Result<String> {
        // A route from an earlier SRV answer must not answer this discovery's own lookups
        // (the `.well-known` request goes to the hostname's own addresses).
        self.routes.remove(server.host());
        let mut step = discovery::plan(server);
        loop {
            step = match step {
                Step::Done(resolution) => {
                    let (host, port) = resolution
                        .endpoints()
                        .first()
                        .map(|(host, port)| ((*host).to_owned(), *port))
                        .ok_or_else(|| unreachable_server(server, "no endpoint"))?;
                    self.check_address(server, &host, port).await?;
                    if let discovery::Resolution::Srv { tls_name, .. } = &resolution {
                        // SRV: connect to the target, but as the delegated hostname, which the
                        // certificate must name (the spec's SNI rule).
                        let addresses = tokio::net::lookup_host((host.as_str(), port))
                            .await
                            .map_err(|e| unreachable_server(server, &format!("cannot resolve {host}: {e}")))?
                            .collect();
                        self.routes.set(tls_name, addresses);
                        return Ok(format!("https://{tls_name}:{port}"));
                    }
                    let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host };
                    return Ok(format!("https://{host}:{port}"));
                }
                Step::FetchWellKnown { url } => {
                    let (delegated, ttl) = match self.fetch_well_known(&url).await {
                        Some((delegated, ttl)) => {
                            self.resolutions.succeeded(server);
                            (Some(delegated), ttl)
                        }
                        None => (None, self.resolutions.failure_ttl(server)),
                    };
                    *lifetime = Some(ttl);
                    discovery::after_well_known(server, delegated.as_deref())
                }
                Step::LookupSrv(lookup) => {
                    let records = self.srv_records(lookup.name()).await;
                    discovery::after_srv(&lookup, &records)
                }
            };
        }
    }

    /// SRV records for `name`; none on any DNS failure (NXDOMAIN is the common case).
    async fn srv_records(&self, name: &str) -> Vec<SrvRecord> {
        let Some(dns) = &self.dns else { return Vec::new() };
        let Ok(lookup) = dns.srv_lookup(name).await else { return Vec::new() };
        lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::SRV(srv) => Some(SrvRecord {
                    priority: srv.priority,
                    weight: srv.weight,
                    port: srv.port,
                    target: srv.target.to_utf8().trim_end_matches('.').to_owned(),
                }),
                _ => None,
            })
            .collect()
    }

    /// The server name `.well-known` delegates to and how long that answer stays fresh.
    async fn fetch_well_known(&self, url: &str) -> Option<(ruma::OwnedServerName, Duration)> {
        let response = self.http.get(url).timeout(Duration::from_secs(10)).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let ttl = discovery::well_known_ttl(response.headers(), std::time::SystemTime::now());
        let body = response.bytes().await.ok()?;
        Some((discovery::parse_well_known(&body)?, ttl))
    }

    /// Refuses loopback, private and link-local destinations unless configured to allow them.
    async fn check_address(&self, server: &ServerName, host: &str, port: u16) -> Result<()> {
        if self.allow_private_addresses {
            return Ok(());
        }
        let addresses: Vec<IpAddr> = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| unreachable_server(server, &format!("cannot resolve {host}: {e}")))?
                .map(|addr| addr.ip())
                .collect(),
        };
        if let Some(denied) = addresses.iter().find(|ip| discovery::is_denied_ip(**ip)) {
            return Err(unreachable_server(server, &format!("{denied} is in a denied address range")));
        }
        Ok(())
    }

    /// `GET` an unauthenticated federation path (the key server) and parse its JSON.
    pub async fn get_json(&self, server: &ServerName, path: &str) -> Result<Value> {
        let url = format!("{}{path}", self.resolve(server).await?);
        self.receive_json(server, path, self.http.get(&url)).await
    }

    /// `GET` a federation path signed with our key (X-Matrix) and parse its JSON.
    pub async fn get_signed_json(&self, server: &ServerName, path_and_query: &str) -> Result<Value> {
        let url = format!("{}{path_and_query}", self.resolve(server).await?);
        let authorization =
            myelin_federation::xmatrix::sign_request(&self.key, &self.origin, server, &http::Method::GET, path_and_query, None)?;
        self.receive_json(server, path_and_query, self.http.get(&url).header(http::header::AUTHORIZATION, authorization)).await
    }

    /// Sends a typed federation request (ruma's types give the path, method and body), signed
    /// with X-Matrix, and parses the typed response. A Matrix error from the peer keeps its
    /// errcode; a failure to reach it is 502.
    pub async fn send<R>(&self, server: &ServerName, request: R) -> Result<R::IncomingResponse>
    where
        R: OutgoingRequest<Authentication = ServerSignatures, PathBuilder = SinglePath>,
    {
        let base = self.resolve(server).await?;
        let input = XMatrixSigningInput::new(self.origin.clone(), server.to_owned(), self.key.key_pair());
        let request: http::Request<Vec<u8>> = request
            .try_into_http_request(&base, input, ())
            .map_err(|e| Error::internal(format!("cannot build a request to {server}: {e}")))?;
        let path = request.uri().path().to_owned();
        let (parts, body) = request.into_parts();
        let url = parts.uri.to_string();
        let mut outbound = self.http.request(parts.method, url).headers(parts.headers).body(body);
        let mut max_response_bytes = MAX_RESPONSE_BYTES;
        if parts.uri.path().starts_with("/_matrix/federation/v2/send_join") || parts.uri.path().contains("/state") {
            // Joins of big rooms and state snapshots are big (a 20,000-event state is ~15 MB)
            // and take long to compute and transfer.
            outbound = outbound.timeout(Duration::from_secs(300));
            max_response_bytes = MAX_ROOM_STATE_RESPONSE_BYTES;
        }
        let response = outbound.send().await.map_err(|e| unreachable_server(server, &e.to_string()))?;
        let status = response.status();
        if response.content_length().is_some_and(|length| length as usize > max_response_bytes) {
            return Err(unreachable_server(server, "response too large"));
        }
        let body = response.bytes().await.map_err(|e| unreachable_server(server, &e.to_string()))?;
        if body.len() > max_response_bytes {
            return Err(unreachable_server(server, "response too large"));
        }
        if !status.is_success() {
            return Err(remote_error(server, &path, status, &body));
        }
        let response = http::Response::builder().status(status).body(body.as_ref()).map_err(|e| Error::internal(e.to_string()))?;
        R::IncomingResponse::try_from_http_response(response)
            .map_err(|e| unreachable_server(server, &format!("{path}: unexpected response: {e}")))
    }

    async fn receive_json(&self, server: &ServerName, path: &str, request: reqwest::RequestBuilder) -> Result<Value> {
        let response = request.send().await.map_err(|e| unreachable_server(server, &e.to_string()))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(Error::not_found(format!("{server} has no such resource")));
        }
        if !response.status().is_success() {
            return Err(unreachable_server(server, &format!("{path} answered {}", response.status())));
        }
        if response.content_length().is_some_and(|length| length as usize > MAX_RESPONSE_BYTES) {
            return Err(unreachable_server(server, "response too large"));
        }
        let body = response.bytes().await.map_err(|e| unreachable_server(server, &e.to_string()))?;
        if body.len() > MAX_RESPONSE_BYTES {
            return Err(unreachable_server(server, "response too large"));
        }
        serde_json::from_slice(&body).map_err(|e| unreachable_server(server, &format!("invalid JSON: {e}")))
    }
}

/// Streaming requests, for bodies too large to hold in memory (media).
impl FederationClient {
    /// `GET` a federation path signed with X-Matrix and hand back the answer with its body
    /// unread. A non-2xx answer is an error, as with [`FederationClient::send`].
    pub async fn get_signed_streaming(&self, server: &ServerName, path_and_query: &str, timeout: Duration) -> Result<reqwest::Response> {
        let url = format!("{}{path_and_query}", self.resolve(server).await?);
        let authorization =
            myelin_federation::xmatrix::sign_request(&self.key, &self.origin, server, &http::Method::GET, path_and_query, None)?;
        let request = self.http.get(&url).header(http::header::AUTHORIZATION, authorization).timeout(timeout);
        self.streaming_answer(server, path_and_query, request).await
    }

    /// `GET` a URL another server pointed us to (a media `Location`), unsigned, refused on
    /// denied addresses like any federation destination.
    pub async fn get_url_streaming(&self, server: &ServerName, url: &str, timeout: Duration) -> Result<reqwest::Response> {
        let parsed = reqwest::Url::parse(url).map_err(|e| unreachable_server(server, &format!("bad URL {url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(unreachable_server(server, &format!("refusing to fetch {url:?}")));
        }
        let host = parsed.host_str().ok_or_else(|| unreachable_server(server, &format!("no host in {url:?}")))?;
        self.check_address(server, host, parsed.port_or_known_default().unwrap_or(443)).await?;
        self.streaming_answer(server, parsed.path(), self.http.get(parsed.clone()).timeout(timeout)).await
    }

    async fn streaming_answer(&self, server: &ServerName, path: &str, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let mut response = request.send().await.map_err(|e| unreachable_server(server, &e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        // An error body is small; read at most 64 KiB of it.
        let mut body = Vec::new();
        while body.len() < 64 * 1024
            && let Ok(Some(chunk)) = response.chunk().await
        {
            body.extend_from_slice(&chunk);
        }
        Err(remote_error(server, path, status, &body))
    }
}

/// A peer's error answer, keeping its Matrix errcode where it sent one (a 403 `M_FORBIDDEN`
/// from a resident server is the joining user's answer, not a gateway failure).
fn remote_error(server: &ServerName, path: &str, status: http::StatusCode, body: &[u8]) -> Error {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let kind = parsed.as_ref().and_then(|v| serde_json::from_value::<ruma::api::error::ErrorKind>(v.clone()).ok());
    let message = parsed.as_ref().and_then(|v| v.get("error")).and_then(Value::as_str).unwrap_or("no message");
    match (status.as_u16(), kind) {
        (400..=499, Some(kind)) if status != http::StatusCode::UNAUTHORIZED && status != http::StatusCode::TOO_MANY_REQUESTS => {
            Error::matrix(status, kind, format!("{server}: {message}"))
        }
        _ => unreachable_server(server, &format!("{path} answered {status}: {message}")),
    }
}

fn unreachable_server(server: &ServerName, why: &str) -> Error {
    Error::matrix(
        http::StatusCode::BAD_GATEWAY,
        ruma::api::error::ErrorKind::Unknown,
        format!("Cannot reach {server}: {why}"),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ruma::server_name;

    use super::ResolutionCache;

    #[test]
    fn resolutions_are_cached_for_their_lifetime_and_failures_back_off() {
        let cache = ResolutionCache::default();
        let server = server_name!("example.org");
        assert_eq!(cache.fresh(server), None);
        cache.insert(server, "https://matrix.example.org:443".to_owned(), Duration::from_secs(60));
        assert_eq!(cache.fresh(server).as_deref(), Some("https://matrix.example.org:443"));
        cache.insert(server, "https://old.example.org:443".to_owned(), Duration::ZERO);
        assert_eq!(cache.fresh(server), None, "an expired answer is not used");

        let first = cache.failure_ttl(server);
        let second = cache.failure_ttl(server);
        assert!(second > first, "consecutive failures are cached longer: {first:?} then {second:?}");
        cache.succeeded(server);
        assert_eq!(cache.failure_ttl(server), first, "a success resets the back-off");
    }
}
