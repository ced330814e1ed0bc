//! Which addresses the server's outbound HTTP may connect to (server-side request forgery).
//!
//! Outbound federation and URL previews both connect to hosts that others name. Both judge
//! every address with one [`AddressPolicy`], in the DNS resolver of their HTTP client
//! ([`FilteringResolver`]): the addresses judged are exactly the ones connected to, so a DNS
//! answer that changes between a check and the connection (rebinding) cannot slip through.
//! A resolver is never asked about IP-literal URLs, so their callers check those with
//! [`AddressPolicy::check`] before each request (and each redirect hop).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, RwLock},
};

use ipnet::IpNet;
use myelin_federation::discovery;

/// Addresses refused: the built-in special-purpose ranges
/// ([`myelin_federation::discovery::denied_ip_reason`]) plus configured ones, except the
/// configured exceptions.
#[derive(Clone, Debug, Default)]
pub struct AddressPolicy {
    also_denied: Vec<IpNet>,
    allowed: Vec<IpNet>,
}

impl AddressPolicy {
    /// The built-in deny list alone.
    pub fn public_only() -> Self {
        Self::default()
    }

    /// Every address allowed (tests and private federations, `allow_private_addresses`).
    pub fn allow_all() -> Self {
        let everything = [(IpAddr::from([0u8; 4]), 0), (IpAddr::from([0u16; 8]), 0)];
        Self::new(&[], &everything)
    }

    /// The built-in list plus `also_denied`, minus `allowed` (which wins over both), given as
    /// (network, prefix length) pairs.
    pub fn new(also_denied: &[(IpAddr, u8)], allowed: &[(IpAddr, u8)]) -> Self {
        let nets = |ranges: &[(IpAddr, u8)]| ranges.iter().filter_map(|(ip, len)| IpNet::new(*ip, *len).ok()).collect();
        Self { also_denied: nets(also_denied), allowed: nets(allowed) }
    }

    /// `Err` with the reason (e.g. "loopback") when `ip` must not be connected to.
    pub fn check(&self, ip: IpAddr) -> Result<(), &'static str> {
        // An IPv4-mapped IPv6 address reaches the IPv4 host: it is judged (and listed) as that.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        if self.allowed.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        if self.also_denied.iter().any(|net| net.contains(&ip)) {
            return Err("configured deny list");
        }
        discovery::denied_ip_reason(ip).map_or(Ok(()), Err)
    }
}

/// A DNS resolver for reqwest that resolves with the system's resolver and drops the
/// addresses its policy refuses; a name with none left fails to resolve.
pub struct FilteringResolver {
    policy: Arc<AddressPolicy>,
    routes: Routes,
}

impl FilteringResolver {
    pub fn new(policy: AddressPolicy) -> Self {
        Self { policy: Arc::new(policy), routes: Routes::default() }
    }

    /// Answers the names in `routes` with their routed addresses instead of asking DNS.
    #[must_use]
    pub fn with_routes(mut self, routes: Routes) -> Self {
        self.routes = routes;
        self
    }
}

/// Names reached at addresses found another way than their own DNS records: a server
/// delegated through an SRV record is connected to at the SRV target, but under its own name,
/// which the TLS certificate is checked against (spec, "Resolving server names").
#[derive(Clone, Default)]
pub struct Routes(Arc<RwLock<HashMap<String, Vec<SocketAddr>>>>);

impl Routes {
    pub fn set(&self, name: &str, addresses: Vec<SocketAddr>) {
        if let Ok(mut routes) = self.0.write() {
            routes.insert(name.to_ascii_lowercase(), addresses);
        }
    }

    pub fn remove(&self, name: &str) {
        if let Ok(mut routes) = self.0.write() {
            routes.remove(&name.to_ascii_lowercase());
        }
    }

    fn get(&self, name: &str) -> Option<Vec<SocketAddr>> {
        self.0.read().ok()?.get(&name.to_ascii_lowercase()).cloned()
    }
}

/// The resolver's error when every address of a name is refused, recognisable in the error
/// chain of a failed request.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to denied addresses")]
pub struct OnlyDeniedAddresses {
    host: String,
}

impl reqwest::dns::Resolve for FilteringResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let policy = self.policy.clone();
        let routed = self.routes.get(&host);
        Box::pin(async move {
            let found: Vec<SocketAddr> = match routed {
                Some(addresses) => addresses,
                None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
            };
            let addresses: Vec<SocketAddr> = found.into_iter().filter(|address| policy.check(address.ip()).is_ok()).collect();
            if addresses.is_empty() {
                return Err(Box::new(OnlyDeniedAddresses { host }) as Box<dyn std::error::Error + Send + Sync>);
            }
            let addresses: reqwest::dns::Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an IP address")
    }

    #[test]
    fn built_in_ranges_are_denied_and_lists_adjust_them() {
        let default = AddressPolicy::public_only();
        for denied in ["127.0.0.1", "10.1.2.3", "100.64.0.1", "169.254.169.254", "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "fd00::1", "fe80::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254"] {
            assert!(default.check(ip(denied)).is_err(), "{denied}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1"] {
            assert_eq!(default.check(ip(public)), Ok(()), "{public}");
        }
        let policy = AddressPolicy::new(&[(ip("93.184.0.0"), 16)], &[(ip("127.0.0.1"), 32)]);
        assert_eq!(policy.check(ip("127.0.0.1")), Ok(()), "allowed wins over the built-in list");
        assert_eq!(policy.check(ip("::ffff:127.0.0.1")), Ok(()), "the mapped form is the same host");
        assert!(policy.check(ip("127.0.0.2")).is_err(), "only the listed address is allowed");
        assert_eq!(policy.check(ip("93.184.216.34")), Err("configured deny list"));
    }

    #[tokio::test]
    async fn hostnames_resolving_to_denied_addresses_are_not_connected_to() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().expect("a valid name");
        let Err(error) = FilteringResolver::new(AddressPolicy::public_only()).resolve(name).await else {
            panic!("localhost must not resolve")
        };
        assert!(error.to_string().contains("denied"), "{error}");
    }

    #[tokio::test]
    async fn routed_names_resolve_to_their_route_and_still_pass_the_policy() {
        use reqwest::dns::Resolve;
        let routes = Routes::default();
        let target: SocketAddr = "127.0.0.7:0".parse().expect("an address");
        routes.set("Example.ORG", vec![target]);
        let name = || "example.org".parse::<reqwest::dns::Name>().expect("a valid name");
        let open = FilteringResolver::new(AddressPolicy::allow_all()).with_routes(routes.clone());
        let found: Vec<SocketAddr> = open.resolve(name()).await.map(Iterator::collect).unwrap_or_default();
        assert_eq!(found, vec![target]);
        // A route cannot smuggle a denied address past the policy.
        let guarded = FilteringResolver::new(AddressPolicy::public_only()).with_routes(routes.clone());
        assert!(guarded.resolve(name()).await.is_err());
        routes.remove("example.org");
        assert!(routes.get("example.org").is_none());
    }
}
