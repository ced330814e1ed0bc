use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| panic!("{s} is not an IP address"))
}

#[test]
fn special_purpose_addresses_are_denied() {
    let cases = [
        // IPv4
        ("0.0.0.0", "this network (unspecified)"),
        ("0.1.2.3", "this network (unspecified)"),
        ("10.0.0.1", "private"),
        ("10.255.255.255", "private"),
        ("100.64.0.1", "shared address space (carrier-grade NAT)"),
        ("100.127.255.255", "shared address space (carrier-grade NAT)"),
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("169.254.169.254", "link-local"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.0.0.8", "IETF protocol assignments"),
        ("192.0.2.1", "documentation"),
        ("192.88.99.1", "6to4 relay anycast"),
        ("192.168.1.1", "private"),
        ("198.18.0.1", "benchmarking"),
        ("198.19.255.255", "benchmarking"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.200", "documentation"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.254", "reserved"),
        ("255.255.255.255", "broadcast"),
        // IPv6
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("::8.8.8.8", "IPv4-compatible (deprecated)"),
        ("64:ff9b:1::1", "local-use NAT64"),
        ("100::1", "discard-only"),
        ("2001:2::1", "benchmarking"),
        ("2001:db8::1", "documentation"),
        ("2001:db8:ffff::1", "documentation"),
        ("3fff::1", "documentation"),
        ("3fff:fff::1", "documentation"),
        ("fc00::1", "unique local"),
        ("fd12:3456::1", "unique local"),
        ("fe80::1", "link-local"),
        ("febf::1", "link-local"),
        ("fec0::1", "site-local (deprecated)"),
        ("ff02::1", "multicast"),
        ("ff0e::1", "multicast"),
        // IPv6 carrying a denied IPv4 address.
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:0.0.0.0", "this network (unspecified)"),
        ("::ffff:255.255.255.255", "broadcast"),
        ("64:ff9b::192.168.0.1", "private"),
        ("64:ff9b::7f00:1", "loopback"),
        ("2002:7f00:1::", "loopback"),
        ("2002:c0a8:101:1::1", "private"),
        ("2002:a9fe:a9fe::", "link-local"),
    ];
    for (address, why) in cases {
        assert_eq!(denied_ip_reason(ip(address)), Some(why), "{address}");
        assert!(is_denied_ip(ip(address)), "{address}");
    }
}

#[test]
fn public_addresses_are_allowed() {
    let cases = [
        "1.1.1.1",
        "8.8.8.8",
        "9.255.255.255",
        "11.0.0.1",
        "100.63.255.255",
        "100.128.0.1",
        "126.255.255.255",
        "128.0.0.1",
        "169.253.255.255",
        "169.255.0.1",
        "172.15.255.255",
        "172.32.0.1",
        "192.0.1.1",
        "192.0.3.1",
        "192.88.98.1",
        "192.167.255.255",
        "192.169.0.1",
        "198.17.255.255",
        "198.20.0.1",
        "203.0.112.1",
        "223.255.255.255",
        "2001:4860:4860::8888",
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::200e",
        "2001:db7:ffff::1",
        "2001:db9::1",
        "2001:3::1",
        "3fff:1000::1",
        "fbff::1",
        "fe00::1",
        "64:ff9b::8.8.8.8",
        "64:ff9b:2::1",
        "::ffff:8.8.8.8",
        "::ffff:1.1.1.1",
        "2002:808:808::1",
        "101::1",
    ];
    for address in cases {
        assert_eq!(denied_ip_reason(ip(address)), None, "{address}");
        assert!(!is_denied_ip(ip(address)), "{address}");
    }
}

#[test]
fn prefixes_match_bitwise() {
    let a = Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0).to_bits();
    assert!(prefix_matches(a, Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1).to_bits(), 7));
    assert!(!prefix_matches(a, Ipv6Addr::new(0xfe00, 0, 0, 0, 0, 0, 0, 0).to_bits(), 7));
    assert!(prefix_matches(a, 0, 0), "a zero-length prefix matches everything");
    assert!(prefix_matches(a, a, 128));
    assert!(!prefix_matches(a, a + 1, 128));
}
