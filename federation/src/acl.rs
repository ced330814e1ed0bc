//! Server ACLs ([`m.room.server_acl`]): which servers may take part in a room.
//!
//! The spec's evaluation, on the server's *hostname* (the server name without its port):
//!
//! 1. no `m.room.server_acl` event in the room's state → allowed;
//! 2. `allow_ip_literals` is `false` and the hostname is an IP literal → denied;
//! 3. the hostname matches a `deny` glob → denied (deny wins over allow);
//! 4. the hostname matches an `allow` glob → allowed;
//! 5. otherwise → denied (a missing `allow` list therefore denies everyone).
//!
//! Globs know `*` (zero or more characters) and `?` (exactly one character); everything else
//! matches itself, case-insensitively. Malformed content is read the way Synapse reads it:
//! an `allow`/`deny` that is not a list counts as empty, non-string entries are ignored, and
//! an `allow_ip_literals` that is not a boolean counts as `true`.
//!
//! [`m.room.server_acl`]: https://spec.matrix.org/v1.16/client-server-api/#mroomserver_acl

use serde_json::Value;

/// A parsed `m.room.server_acl` content, ready to evaluate many server names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerAcl {
    allow: Vec<Glob>,
    deny: Vec<Glob>,
    allow_ip_literals: bool,
}

impl ServerAcl {
    /// Reads an ACL event's `content` (leniently, see the module documentation).
    pub fn from_content(content: &Value) -> Self {
        let globs = |field: &str| -> Vec<Glob> {
            content
                .get(field)
                .and_then(Value::as_array)
                .map(|entries| entries.iter().filter_map(Value::as_str).map(Glob::new).collect())
                .unwrap_or_default()
        };
        Self {
            allow: globs("allow"),
            deny: globs("deny"),
            allow_ip_literals: content.get("allow_ip_literals").and_then(Value::as_bool).unwrap_or(true),
        }
    }

    /// Whether `server_name` (with or without a port) may take part in the room.
    pub fn is_allowed(&self, server_name: &str) -> bool {
        let host = host_of(server_name);
        if !self.allow_ip_literals && is_ip_literal(host) {
            return false;
        }
        if self.deny.iter().any(|glob| glob.matches(host)) {
            return false;
        }
        self.allow.iter().any(|glob| glob.matches(host))
    }
}

/// Whether `server_name` may take part in a room whose current `m.room.server_acl` content is
/// `acl_content` (`None`: the room has no ACL, which allows every server).
pub fn is_server_allowed(acl_content: Option<&Value>, server_name: &str) -> bool {
    acl_content.is_none_or(|content| ServerAcl::from_content(content).is_allowed(server_name))
}

/// The hostname of a server name: without its `:port`. IPv6 literals keep their brackets.
pub fn host_of(server_name: &str) -> &str {
    if server_name.starts_with('[') {
        return match server_name.find(']') {
            Some(end) => &server_name[..=end],
            None => server_name,
        };
    }
    server_name.split_once(':').map_or(server_name, |(host, _)| host)
}

/// Whether a hostname is an IP literal in the spec's server-name grammar: a dotted quad of
/// 1–3 digit groups, or a bracketed IPv6 address.
pub fn is_ip_literal(host: &str) -> bool {
    if host.starts_with('[') && host.ends_with(']') {
        return true;
    }
    let groups: Vec<&str> = host.split('.').collect();
    groups.len() == 4 && groups.iter().all(|g| (1..=3).contains(&g.len()) && g.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `text` matches the glob `pattern` (`*`, `?`), case-insensitively.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    Glob::new(pattern).matches(text)
}

/// A glob, lower-cased once.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Glob(Vec<char>);

impl Glob {
    fn new(pattern: &str) -> Self {
        Self(pattern.to_lowercase().chars().collect())
    }

    /// The classic linear-backtracking matcher: on a mismatch, only the most recent `*` is
    /// retried one character further, so no pattern can make it exponential (O(len²) at worst).
    fn matches(&self, text: &str) -> bool {
        let pattern = &self.0;
        let text: Vec<char> = text.to_lowercase().chars().collect();
        let (mut p, mut t) = (0, 0);
        // The position after the last `*` seen, and where in the text it started matching.
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match pattern.get(p) {
                Some('*') => {
                    p += 1;
                    star = Some((p, t));
                }
                Some(&c) if c == '?' || c == text[t] => {
                    p += 1;
                    t += 1;
                }
                _ => match star {
                    Some((after_star, from)) => {
                        p = after_star;
                        t = from + 1;
                        star = Some((after_star, from + 1));
                    }
                    None => return false,
                },
            }
        }
        pattern[p..].iter().all(|c| *c == '*')
    }
}

#[cfg(test)]
mod tests;
