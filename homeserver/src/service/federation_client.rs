//! Outbound federation HTTP: server-name resolution driven by the sans-I/O plan in
//! `myelin_federation::discovery`, the outbound address deny list, and JSON requests.
//!
//! Not yet here: SRV lookups (a resolver crate comes with the sending queue; until then the
//! SRV step finds no records and resolution falls back to port 8448, as the spec's last step).

use std::{net::IpAddr, time::Duration};

use myelin_federation::discovery::{self, Step};
use ruma::ServerName;
use serde_json::Value;

use crate::error::{Error, Result};

/// Responses larger than this are refused: a peer must not be able to exhaust our memory.
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

#[derive(Clone)]
pub struct FederationClient {
    http: reqwest::Client,
    allow_private_addresses: bool,
    origin: ruma::OwnedServerName,
    key: std::sync::Arc<myelin_federation::ServerSigningKey>,
}

impl FederationClient {
    pub fn new(
        origin: ruma::OwnedServerName,
        key: std::sync::Arc<myelin_federation::ServerSigningKey>,
        verify_tls: bool,
        allow_private_addresses: bool,
    ) -> Result<Self> {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(!verify_tls)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(crate::VERSION)
            .build()
            .map_err(|e| Error::internal(format!("cannot build the federation HTTP client: {e}")))?;
        Ok(Self { http, allow_private_addresses, origin, key })
    }

    /// The base URL (`https://host:port`) at which `server` serves its federation API.
    pub async fn resolve(&self, server: &ServerName) -> Result<String> {
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
                    let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host };
                    return Ok(format!("https://{host}:{port}"));
                }
                Step::FetchWellKnown { url } => {
                    let delegated = self.fetch_well_known(&url).await;
                    discovery::after_well_known(server, delegated.as_deref())
                }
                Step::LookupSrv(lookup) => discovery::after_srv(&lookup, &[]),
            };
        }
    }

    async fn fetch_well_known(&self, url: &str) -> Option<ruma::OwnedServerName> {
        let response = self.http.get(url).timeout(Duration::from_secs(10)).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = response.bytes().await.ok()?;
        discovery::parse_well_known(&body)
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

fn unreachable_server(server: &ServerName, why: &str) -> Error {
    Error::matrix(
        http::StatusCode::BAD_GATEWAY,
        ruma::api::error::ErrorKind::Unknown,
        format!("Cannot reach {server}: {why}"),
    )
}
