use std::collections::HashMap;

use ruma::{OwnedServerName, server_name};

use super::*;

fn direct(host: &str, port: u16, tls_name: &str, host_header: &str) -> Resolution {
    Resolution::Direct {
        host: host.to_owned(),
        port,
        tls_name: tls_name.to_owned(),
        host_header: host_header.to_owned(),
    }
}

fn srv(targets: &[(&str, u16)], name: &str) -> Resolution {
    Resolution::Srv {
        targets: targets
            .iter()
            .map(|(host, port)| SrvTarget { host: (*host).to_owned(), port: *port })
            .collect(),
        tls_name: name.to_owned(),
        host_header: name.to_owned(),
    }
}

/// Expected SRV targets, in order.
type Targets = &'static [(&'static str, u16)];

fn record(priority: u16, weight: u16, port: u16, target: &str) -> SrvRecord {
    SrvRecord { priority, weight, port, target: target.to_owned() }
}

fn name(s: &str) -> OwnedServerName {
    ServerName::parse(s).unwrap()
}

/// A resolver over canned answers, driving the steps exactly as the homeserver will, and
/// recording every query it made.
struct World {
    well_known: HashMap<String, &'static str>,
    srv: HashMap<String, Vec<SrvRecord>>,
    queries: Vec<String>,
}

impl World {
    fn new() -> Self {
        Self { well_known: HashMap::new(), srv: HashMap::new(), queries: Vec::new() }
    }

    fn well_known(mut self, host: &str, body: &'static str) -> Self {
        self.well_known.insert(well_known_url(host), body);
        self
    }

    fn srv(mut self, name: &str, records: Vec<SrvRecord>) -> Self {
        self.srv.insert(name.to_owned(), records);
        self
    }

    fn resolve(&mut self, server_name: &ServerName) -> Resolution {
        let mut step = plan(server_name);
        loop {
            step = match step {
                Step::Done(resolution) => return resolution,
                Step::FetchWellKnown { url } => {
                    self.queries.push(url.clone());
                    let delegated = self
                        .well_known
                        .get(&url)
                        .and_then(|body| parse_well_known(body.as_bytes()));
                    after_well_known(server_name, delegated.as_deref())
                }
                Step::LookupSrv(lookup) => {
                    self.queries.push(lookup.name().to_owned());
                    let records = self.srv.get(lookup.name()).cloned().unwrap_or_default();
                    after_srv(&lookup, &records)
                }
            };
        }
    }
}

#[test]
fn names_needing_no_lookup_resolve_directly() {
    // Spec steps 1 and 2: the Host header is the server name as written.
    let cases = [
        ("1.2.3.4", direct("1.2.3.4", 8448, "1.2.3.4", "1.2.3.4")),
        ("1.2.3.4:8080", direct("1.2.3.4", 8080, "1.2.3.4", "1.2.3.4:8080")),
        ("[2001:db8::1]", direct("2001:db8::1", 8448, "2001:db8::1", "[2001:db8::1]")),
        ("[2001:db8::1]:443", direct("2001:db8::1", 443, "2001:db8::1", "[2001:db8::1]:443")),
        ("[::ffff:1.2.3.4]:1", direct("::ffff:1.2.3.4", 1, "::ffff:1.2.3.4", "[::ffff:1.2.3.4]:1")),
        ("example.org:8448", direct("example.org", 8448, "example.org", "example.org:8448")),
        ("example.org:443", direct("example.org", 443, "example.org", "example.org:443")),
        ("localhost:8008", direct("localhost", 8008, "localhost", "localhost:8008")),
        // Not an IPv4 address, so a hostname (which DNS will not resolve).
        ("1.2.3.4.5:80", direct("1.2.3.4.5", 80, "1.2.3.4.5", "1.2.3.4.5:80")),
    ];
    for (server, expected) in cases {
        assert_eq!(plan(&name(server)), Step::Done(expected.clone()), "{server}");
        // No query at all, and after_well_known cannot be tricked into one.
        let mut world = World::new().well_known("example.org", r#"{"m.server": "evil.example"}"#);
        assert_eq!(world.resolve(&name(server)), expected, "{server}");
        assert!(world.queries.is_empty(), "{server}: {:?}", world.queries);
        assert_eq!(
            after_well_known(&name(server), Some(server_name!("evil.example"))),
            Step::Done(expected),
            "{server}"
        );
    }
}

#[test]
fn a_hostname_without_port_asks_well_known_first() {
    assert_eq!(
        plan(server_name!("example.org")),
        Step::FetchWellKnown { url: "https://example.org/.well-known/matrix/server".to_owned() }
    );
    assert_eq!(
        plan(server_name!("a-b.c.example")),
        Step::FetchWellKnown { url: "https://a-b.c.example/.well-known/matrix/server".to_owned() }
    );
}

#[test]
fn well_known_delegation_decides_the_next_step() {
    let origin = server_name!("example.org");
    let cases: [(Option<&str>, Step); 7] = [
        // 3.1: delegated IP literal, Host header the IP with its port if given.
        (Some("5.6.7.8"), Step::Done(direct("5.6.7.8", 8448, "5.6.7.8", "5.6.7.8"))),
        (Some("5.6.7.8:9000"), Step::Done(direct("5.6.7.8", 9000, "5.6.7.8", "5.6.7.8:9000"))),
        (
            Some("[2001:db8::2]:9000"),
            Step::Done(direct("2001:db8::2", 9000, "2001:db8::2", "[2001:db8::2]:9000")),
        ),
        // 3.2: delegated hostname with port, Host header `<delegated_hostname>:<port>`.
        (
            Some("matrix.example.net:443"),
            Step::Done(direct(
                "matrix.example.net",
                443,
                "matrix.example.net",
                "matrix.example.net:443",
            )),
        ),
        // 3.3: delegated hostname without port: SRV under the delegated name.
        (Some("matrix.example.net"), Step::LookupSrv(SrvLookup::new("matrix.example.net", false))),
        // Delegating to itself is not a loop: SRV on itself.
        (Some("example.org"), Step::LookupSrv(SrvLookup::new("example.org", false))),
        // 4: no valid answer: SRV under the original hostname.
        (None, Step::LookupSrv(SrvLookup::new("example.org", false))),
    ];
    for (delegated, expected) in cases {
        let delegated = delegated.map(name);
        assert_eq!(after_well_known(origin, delegated.as_deref()), expected, "{delegated:?}");
    }
}

#[test]
fn srv_lookups_go_current_then_legacy_then_port_8448() {
    let lookup = SrvLookup::new("example.org", false);
    assert_eq!(lookup.name(), "_matrix-fed._tcp.example.org");
    assert_eq!(lookup.hostname(), "example.org");
    assert!(!lookup.is_legacy());

    let Step::LookupSrv(legacy) = after_srv(&lookup, &[]) else { panic!("expected legacy SRV") };
    assert_eq!(legacy.name(), "_matrix._tcp.example.org");
    assert_eq!(legacy.hostname(), "example.org");
    assert!(legacy.is_legacy());

    // 3.5 and 6: the hostname itself on 8448, Host header without port.
    assert_eq!(
        after_srv(&legacy, &[]),
        Step::Done(direct("example.org", 8448, "example.org", "example.org"))
    );
}

#[test]
fn srv_records_become_ordered_targets_under_the_hostname() {
    let lookups = [SrvLookup::new("example.org", false), SrvLookup::new("example.org", true)];
    let cases: [(Vec<SrvRecord>, Targets); 7] = [
        (vec![record(10, 0, 8448, "matrix.example.org.")], &[("matrix.example.org", 8448)]),
        (vec![record(10, 0, 443, "matrix.example.org")], &[("matrix.example.org", 443)]),
        (
            // Lower priority first; within a priority, heavier first; stable otherwise.
            vec![
                record(20, 0, 1, "c.example."),
                record(10, 5, 2, "b.example."),
                record(10, 50, 3, "a.example."),
                record(10, 5, 4, "b2.example."),
            ],
            &[("a.example", 3), ("b.example", 2), ("b2.example", 4), ("c.example", 1)],
        ),
        // Unusable records are skipped, usable ones kept.
        (
            vec![record(0, 0, 0, "zero-port.example."), record(5, 0, 8448, "ok.example.")],
            &[("ok.example", 8448)],
        ),
        (vec![record(0, 0, 8448, "."), record(1, 0, 8448, "ok.example")], &[("ok.example", 8448)]),
        (vec![record(0, 0, 8448, "")], &[]),
        (vec![record(0, 0, 8448, ".")], &[]),
    ];
    for lookup in &lookups {
        for (records, targets) in &cases {
            let step = after_srv(lookup, records);
            if targets.is_empty() {
                assert!(
                    !matches!(step, Step::Done(Resolution::Srv { .. })),
                    "{records:?}: {step:?}"
                );
            } else {
                assert_eq!(step, Step::Done(srv(targets, "example.org")), "{records:?}");
            }
        }
    }
}

/// Every path of the spec's algorithm end to end, with the queries made along it.
#[test]
fn full_resolutions_follow_the_spec() {
    struct Case {
        server: &'static str,
        world: World,
        expected: Resolution,
        queries: &'static [&'static str],
    }
    const WK: &str = "https://example.org/.well-known/matrix/server";
    let cases = [
        Case {
            server: "example.org",
            world: World::new(),
            expected: direct("example.org", 8448, "example.org", "example.org"),
            queries: &[WK, "_matrix-fed._tcp.example.org", "_matrix._tcp.example.org"],
        },
        Case {
            server: "example.org",
            world: World::new()
                .srv("_matrix-fed._tcp.example.org", vec![record(0, 0, 443, "hs.example.org.")]),
            expected: srv(&[("hs.example.org", 443)], "example.org"),
            queries: &[WK, "_matrix-fed._tcp.example.org"],
        },
        Case {
            server: "example.org",
            world: World::new()
                .srv("_matrix._tcp.example.org", vec![record(0, 0, 8008, "old.example.org")]),
            expected: srv(&[("old.example.org", 8008)], "example.org"),
            queries: &[WK, "_matrix-fed._tcp.example.org", "_matrix._tcp.example.org"],
        },
        Case {
            server: "example.org",
            world: World::new()
                .srv("_matrix-fed._tcp.example.org", vec![record(0, 0, 1, "new.example.org")])
                .srv("_matrix._tcp.example.org", vec![record(0, 0, 2, "old.example.org")]),
            expected: srv(&[("new.example.org", 1)], "example.org"),
            queries: &[WK, "_matrix-fed._tcp.example.org"],
        },
        Case {
            // Invalid well-known: as if absent, SRV on the original name.
            server: "example.org",
            world: World::new()
                .well_known("example.org", r#"{"m.server": "https://hs.example.net"}"#)
                .srv("_matrix-fed._tcp.example.org", vec![record(0, 0, 443, "hs.example.org")]),
            expected: srv(&[("hs.example.org", 443)], "example.org"),
            queries: &[WK, "_matrix-fed._tcp.example.org"],
        },
        Case {
            server: "example.org",
            world: World::new().well_known("example.org", r#"{"m.server": "hs.example.net:443"}"#),
            expected: direct("hs.example.net", 443, "hs.example.net", "hs.example.net:443"),
            queries: &[WK],
        },
        Case {
            server: "example.org",
            world: World::new().well_known("example.org", r#"{"m.server": "[2001:db8::5]"}"#),
            expected: direct("2001:db8::5", 8448, "2001:db8::5", "[2001:db8::5]"),
            queries: &[WK],
        },
        Case {
            // Delegated without port: SRV under the delegated name, whose records win over
            // the original name's; TLS name and Host are the delegated hostname.
            server: "example.org",
            world: World::new()
                .well_known("example.org", r#"{"m.server": "hs.example.net"}"#)
                .srv("_matrix-fed._tcp.example.org", vec![record(0, 0, 1, "wrong.example")])
                .srv(
                    "_matrix-fed._tcp.hs.example.net",
                    vec![record(0, 0, 8443, "box.example.net.")],
                ),
            expected: srv(&[("box.example.net", 8443)], "hs.example.net"),
            queries: &[WK, "_matrix-fed._tcp.hs.example.net"],
        },
        Case {
            server: "example.org",
            world: World::new()
                .well_known("example.org", r#"{"m.server": "hs.example.net"}"#)
                .srv("_matrix._tcp.hs.example.net", vec![record(0, 0, 8008, "old.example.net")]),
            expected: srv(&[("old.example.net", 8008)], "hs.example.net"),
            queries: &[WK, "_matrix-fed._tcp.hs.example.net", "_matrix._tcp.hs.example.net"],
        },
        Case {
            server: "example.org",
            world: World::new().well_known("example.org", r#"{"m.server": "hs.example.net"}"#),
            expected: direct("hs.example.net", 8448, "hs.example.net", "hs.example.net"),
            queries: &[WK, "_matrix-fed._tcp.hs.example.net", "_matrix._tcp.hs.example.net"],
        },
        Case {
            // An explicit port skips well-known and SRV, however they are configured.
            server: "example.org:8448",
            world: World::new()
                .well_known("example.org", r#"{"m.server": "hs.example.net"}"#)
                .srv("_matrix-fed._tcp.example.org", vec![record(0, 0, 1, "wrong.example")]),
            expected: direct("example.org", 8448, "example.org", "example.org:8448"),
            queries: &[],
        },
    ];
    for Case { server, mut world, expected, queries } in cases {
        assert_eq!(world.resolve(&name(server)), expected, "{server} in {:?}", world.srv);
        assert_eq!(world.queries, queries, "{server}");
    }
}

#[test]
fn resolution_accessors() {
    let by_ip = direct("2001:db8::1", 8448, "2001:db8::1", "[2001:db8::1]");
    assert_eq!(by_ip.tls_name(), "2001:db8::1");
    assert_eq!(by_ip.sni(), None, "no SNI for an IP address");
    assert_eq!(by_ip.host_header(), "[2001:db8::1]");
    assert_eq!(by_ip.endpoints(), [("2001:db8::1", 8448)]);

    let v4 = direct("1.2.3.4", 1, "1.2.3.4", "1.2.3.4:1");
    assert_eq!(v4.sni(), None);

    let by_srv = srv(&[("a.example", 1), ("b.example", 2)], "example.org");
    assert_eq!(by_srv.tls_name(), "example.org");
    assert_eq!(by_srv.sni(), Some("example.org"));
    assert_eq!(by_srv.host_header(), "example.org");
    assert_eq!(by_srv.endpoints(), [("a.example", 1), ("b.example", 2)]);
}
