//! The addresses outbound federation requests must not reach (server-side request forgery).
//!
//! Any remote server can name any host, through its server name, its `.well-known`, its SRV
//! records or plain DNS. Without a check, "fetch the keys of `evil.example`" becomes a request
//! to the homeserver's own loopback, the cloud metadata service at 169.254.169.254, or the
//! private network behind it. The resolver refuses every resolved address listed here unless
//! the configuration allows it (test federations on one machine or one LAN need that).
//!
//! The lists are the special-purpose ranges of the IANA IPv4 and IPv6 registries that are not
//! globally reachable, plus multicast. IPv6 forms that carry an IPv4 address (IPv4-mapped,
//! NAT64 and 6to4) are judged by that IPv4 address, so `::ffff:127.0.0.1` is loopback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Denied IPv4 ranges: network, prefix length, why.
const DENIED_V4: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "this network (unspecified)"),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "shared address space (carrier-grade NAT)"),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "IETF protocol assignments"),
    (Ipv4Addr::new(192, 0, 2, 0), 24, "documentation"),
    (Ipv4Addr::new(192, 88, 99, 0), 24, "6to4 relay anycast"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking"),
    (Ipv4Addr::new(198, 51, 100, 0), 24, "documentation"),
    (Ipv4Addr::new(203, 0, 113, 0), 24, "documentation"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(255, 255, 255, 255), 32, "broadcast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved"),
];

/// Denied IPv6 ranges: network, prefix length, why. Ranges embedding IPv4 addresses are
/// handled before this list.
const DENIED_V6: &[(Ipv6Addr, u8, &str)] = &[
    (Ipv6Addr::UNSPECIFIED, 128, "unspecified"),
    (Ipv6Addr::LOCALHOST, 128, "loopback"),
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96, "IPv4-compatible (deprecated)"),
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48, "local-use NAT64"),
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64, "discard-only"),
    (Ipv6Addr::new(0x2001, 0x2, 0, 0, 0, 0, 0, 0), 48, "benchmarking"),
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32, "documentation"),
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20, "documentation"),
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, "unique local"),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local"),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, "site-local (deprecated)"),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "multicast"),
];

/// Whether outbound federation must not connect to `ip` unless configured to.
pub fn is_denied_ip(ip: IpAddr) -> bool {
    denied_ip_reason(ip).is_some()
}

/// Why `ip` is denied (e.g. `"loopback"`, `"private"`), for logs and errors; `None` if it is a
/// public address.
pub fn denied_ip_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => denied_v4(ip),
        IpAddr::V6(ip) => match embedded_v4(ip) {
            Some(v4) => denied_v4(v4),
            None => DENIED_V6
                .iter()
                .find(|(net, len, _)| prefix_matches(ip.to_bits(), net.to_bits(), *len))
                .map(|(_, _, why)| *why),
        },
    }
}

fn denied_v4(ip: Ipv4Addr) -> Option<&'static str> {
    DENIED_V4
        .iter()
        .find(|(net, len, _)| {
            prefix_matches(u128::from(ip.to_bits()) << 96, u128::from(net.to_bits()) << 96, *len)
        })
        .map(|(_, _, why)| *why)
}

/// The IPv4 address carried by an IPv4-mapped (`::ffff:0:0/96`), NAT64 well-known prefix
/// (`64:ff9b::/96`) or 6to4 (`2002::/16`) address: packets to those reach that IPv4 host.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = ip.to_bits();
    let low32 = Ipv4Addr::from_bits(bits as u32);
    if prefix_matches(bits, Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0).to_bits(), 96)
        || prefix_matches(bits, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0).to_bits(), 96)
    {
        return Some(low32);
    }
    if prefix_matches(bits, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0).to_bits(), 16) {
        return Some(Ipv4Addr::from_bits((bits >> 80) as u32));
    }
    None
}

/// Whether the first `len` bits of `a` and `b` (left-aligned in a `u128`) are equal.
fn prefix_matches(a: u128, b: u128, len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    a & mask == b & mask
}

#[cfg(test)]
mod tests;
