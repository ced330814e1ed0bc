use serde_json::json;

use super::*;

fn allowed(content: Value, server: &str) -> bool {
    is_server_allowed(Some(&content), server)
}

#[test]
fn no_acl_event_allows_everyone() {
    for server in ["example.org", "1.2.3.4", "[::1]:8448", "evil.example:1234"] {
        assert!(is_server_allowed(None, server), "{server}");
    }
}

#[test]
fn a_missing_allow_list_denies_everyone() {
    assert!(!allowed(json!({}), "example.org"));
    assert!(!allowed(json!({"deny": []}), "example.org"));
    assert!(!allowed(json!({"allow": []}), "example.org"));
}

#[test]
fn allow_star_allows_everyone_but_the_denied() {
    let acl = json!({"allow": ["*"], "deny": ["evil.example", "*.evil.example"]});
    assert!(allowed(acl.clone(), "good.example"));
    assert!(allowed(acl.clone(), "1.2.3.4"));
    assert!(!allowed(acl.clone(), "evil.example"));
    assert!(!allowed(acl.clone(), "sub.evil.example"));
    assert!(!allowed(acl.clone(), "deep.sub.evil.example"));
    // A glob is anchored: a suffix alone is not a match.
    assert!(allowed(acl.clone(), "notevil.example"));
    assert!(allowed(acl, "evil.example.org"));
}

#[test]
fn deny_wins_over_allow() {
    let acl = json!({"allow": ["good.example", "*.example"], "deny": ["good.example"]});
    assert!(!allowed(acl.clone(), "good.example"));
    assert!(allowed(acl, "other.example"));
    // Even an exact allow loses to a wildcard deny.
    assert!(!allowed(json!({"allow": ["a.example"], "deny": ["*"]}), "a.example"));
}

#[test]
fn only_listed_servers_are_allowed() {
    let acl = json!({"allow": ["a.example", "b.example"]});
    assert!(allowed(acl.clone(), "a.example"));
    assert!(allowed(acl.clone(), "b.example"));
    assert!(!allowed(acl.clone(), "c.example"));
    assert!(!allowed(acl, "a.example.evil"));
}

#[test]
fn ports_are_ignored() {
    let acl = json!({"allow": ["a.example", "[::1]", "10.0.0.1"], "deny": ["bad.example"]});
    assert!(allowed(acl.clone(), "a.example:8448"));
    assert!(allowed(acl.clone(), "a.example:1"));
    assert!(!allowed(acl.clone(), "bad.example:8448"));
    assert!(allowed(acl.clone(), "[::1]:8448"));
    assert!(allowed(acl.clone(), "10.0.0.1:443"));
    // A glob naming a port matches nothing: the port is gone before matching.
    assert!(!allowed(json!({"allow": ["a.example:8448"]}), "a.example:8448"));
    assert!(!allowed(json!({"allow": ["*:8448"]}), "a.example:8448"));
}

#[test]
fn matching_is_case_insensitive_both_ways() {
    let acl = json!({"allow": ["Good.EXAMPLE"], "deny": ["EVIL.*"]});
    assert!(allowed(acl.clone(), "good.example"));
    assert!(allowed(acl.clone(), "GOOD.Example:8448"));
    assert!(!allowed(json!({"allow": ["*"], "deny": ["EVIL.*"]}), "evil.example"));
    assert!(!allowed(json!({"allow": ["*"], "deny": ["evil.*"]}), "EVIL.Example"));
}

#[test]
fn question_mark_matches_exactly_one_character() {
    let acl = json!({"allow": ["server?.example"]});
    assert!(allowed(acl.clone(), "server1.example"));
    assert!(allowed(acl.clone(), "serverX.example"));
    assert!(!allowed(acl.clone(), "server.example"));
    assert!(!allowed(acl, "server12.example"));
    assert!(allowed(json!({"allow": ["??"]}), "ab"));
    assert!(!allowed(json!({"allow": ["??"]}), "a"));
    assert!(!allowed(json!({"allow": ["??"]}), "abc"));
}

#[test]
fn glob_corner_cases() {
    assert!(glob_matches("*", ""));
    assert!(glob_matches("", ""));
    assert!(!glob_matches("", "a"));
    assert!(glob_matches("**", "anything"));
    assert!(glob_matches("a*", "a"));
    assert!(glob_matches("*a", "a"));
    assert!(glob_matches("*.example", ".example"));
    assert!(!glob_matches("*.example", "example"));
    assert!(glob_matches("a*b*c", "a-b-b-c"));
    assert!(glob_matches("a*b*c", "abc"));
    assert!(!glob_matches("a*b*c", "a-c-b"));
    assert!(glob_matches("*?", "x"));
    assert!(!glob_matches("?*", ""));
    assert!(glob_matches("*x*y*", "axbxcy"));
    // Characters special to regular expressions are plain characters here.
    assert!(glob_matches("a.b", "a.b"));
    assert!(!glob_matches("a.b", "axb"));
    assert!(glob_matches("[::1]", "[::1]"));
    assert!(glob_matches("a+b(c)", "A+B(C)"));
}

#[test]
fn pathological_globs_stay_fast() {
    let pattern = "*a".repeat(50) + "b";
    let text = "a".repeat(5_000);
    let started = std::time::Instant::now();
    assert!(!glob_matches(&pattern, &text));
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn ip_literals_are_denied_only_when_asked() {
    let deny_ips = json!({"allow": ["*"], "allow_ip_literals": false});
    for ip in ["1.2.3.4", "1.2.3.4:8448", "127.0.0.1", "[::1]", "[2001:db8::1]:8448", "010.001.1.1"] {
        assert!(!allowed(deny_ips.clone(), ip), "{ip}");
        assert!(allowed(json!({"allow": ["*"]}), ip), "{ip} (default allows IP literals)");
        assert!(allowed(json!({"allow": ["*"], "allow_ip_literals": true}), ip), "{ip}");
    }
    // Names that merely look numeric are hostnames.
    for name in ["1.2.3.example", "1.2.3", "1.2.3.4.5", "1234.1.1.1", "example.org"] {
        assert!(allowed(deny_ips.clone(), name), "{name}");
    }
    // Even an explicit allow entry cannot let an IP literal through.
    assert!(!allowed(json!({"allow": ["1.2.3.4"], "allow_ip_literals": false}), "1.2.3.4"));
}

#[test]
fn malformed_content_is_read_leniently() {
    // `allow` not a list: empty, so nobody is allowed.
    assert!(!allowed(json!({"allow": "*"}), "a.example"));
    // Non-string entries are skipped, the rest still count.
    assert!(allowed(json!({"allow": [1, null, {"x": 1}, "a.example"]}), "a.example"));
    assert!(!allowed(json!({"allow": ["*"], "deny": [1, "a.example"]}), "a.example"));
    // `deny` not a list: empty.
    assert!(allowed(json!({"allow": ["*"], "deny": "a.example"}), "a.example"));
    // `allow_ip_literals` not a boolean: true.
    assert!(allowed(json!({"allow": ["*"], "allow_ip_literals": "false"}), "1.2.3.4"));
    assert!(allowed(json!({"allow": ["*"], "allow_ip_literals": 0}), "1.2.3.4"));
    // Content that is not even an object: no allow list, nobody is allowed.
    assert!(!allowed(json!(null), "a.example"));
    assert!(!allowed(json!([]), "a.example"));
}

#[test]
fn hosts_and_ip_literals() {
    assert_eq!(host_of("example.org"), "example.org");
    assert_eq!(host_of("example.org:8448"), "example.org");
    assert_eq!(host_of("1.2.3.4:80"), "1.2.3.4");
    assert_eq!(host_of("[::1]"), "[::1]");
    assert_eq!(host_of("[::1]:8448"), "[::1]");
    assert_eq!(host_of("[2001:db8::1]:1"), "[2001:db8::1]");
    assert!(is_ip_literal("1.2.3.4"));
    assert!(is_ip_literal("[::1]"));
    assert!(!is_ip_literal("example.org"));
    assert!(!is_ip_literal("1.2.3.a"));
    assert!(!is_ip_literal(""));
}

#[test]
fn a_parsed_acl_evaluates_many_servers() {
    let acl = ServerAcl::from_content(&json!({"allow": ["*.example", "example"], "deny": ["spam*.example"]}));
    assert!(acl.is_allowed("example"));
    assert!(acl.is_allowed("a.example"));
    assert!(!acl.is_allowed("spam.example"));
    assert!(!acl.is_allowed("spammer.example:8448"));
    assert!(!acl.is_allowed("example.org"));
}
