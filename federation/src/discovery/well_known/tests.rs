use std::time::UNIX_EPOCH;

use http::HeaderValue;

use super::*;

const HOUR: u64 = 60 * 60;

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

/// Sun, 06 Nov 1994 08:49:37 GMT, the RFC's example date.
fn rfc_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(784_111_777)
}

#[test]
fn well_known_bodies() {
    let cases: &[(&[u8], Option<&str>)] = &[
        (br#"{"m.server": "matrix.example.org"}"#, Some("matrix.example.org")),
        (br#"{"m.server": "matrix.example.org:443"}"#, Some("matrix.example.org:443")),
        (br#"{"m.server": "1.2.3.4:8448"}"#, Some("1.2.3.4:8448")),
        (br#"{"m.server": "[2001:db8::1]"}"#, Some("[2001:db8::1]")),
        (br#"{"m.server": "a.example", "extra": {"x": 1}}"#, Some("a.example")),
        (b"  {\"m.server\":\"a.example\"}\n", Some("a.example")),
        (b"", None),
        (b"not json", None),
        (b"<html>404</html>", None),
        (br#"{"m.server": "a.example""#, None),
        (br#"["m.server", "a.example"]"#, None),
        (br#""a.example""#, None),
        (br#"{}"#, None),
        (br#"{"m.homeserver": {"base_url": "https://a.example"}}"#, None),
        (br#"{"m.server": null}"#, None),
        (br#"{"m.server": 8448}"#, None),
        (br#"{"m.server": ""}"#, None),
        (br#"{"m.server": "https://a.example"}"#, None),
        (br#"{"m.server": "a.example/path"}"#, None),
        (br#"{"m.server": "a.example:99999"}"#, None),
        (br#"{"m.server": "a.example:"}"#, None),
        (br#"{"m.server": "under_score.example"}"#, None),
        (br#"{"m.server": " a.example"}"#, None),
        (br#"{"m.server": "[not-ipv6]"}"#, None),
    ];
    for (body, expected) in cases {
        assert_eq!(
            parse_well_known(body).as_deref().map(ServerName::as_str),
            *expected,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn an_oversized_body_is_invalid() {
    let padding = " ".repeat(WELL_KNOWN_MAX_BODY_BYTES);
    let body = format!(r#"{{"m.server": "a.example"}}{padding}"#);
    assert_eq!(parse_well_known(body.as_bytes()), None);
}

#[test]
fn the_url_is_the_https_well_known_of_the_hostname() {
    assert_eq!(well_known_url("example.org"), "https://example.org/.well-known/matrix/server");
}

#[test]
fn cache_lifetimes_follow_the_headers_within_bounds() {
    let min = WELL_KNOWN_MIN_TTL.as_secs();
    let max = WELL_KNOWN_MAX_TTL.as_secs();
    let cases: &[(&[(&'static str, &'static str)], u64)] = &[
        // No caching headers: the spec's default.
        (&[], 24 * HOUR),
        (&[("content-type", "application/json")], 24 * HOUR),
        (&[("cache-control", "public")], 24 * HOUR),
        (&[("cache-control", "private, must-revalidate")], 24 * HOUR),
        // max-age, in its forms.
        (&[("cache-control", "max-age=3600")], HOUR),
        (&[("cache-control", "public, max-age=7200")], 2 * HOUR),
        (&[("cache-control", "MAX-AGE = 7200")], 2 * HOUR),
        (&[("cache-control", "max-age=\"7200\"")], 2 * HOUR),
        (&[("cache-control", "public"), ("cache-control", "max-age=7200")], 2 * HOUR),
        (&[("cache-control", "max-age=7200, max-age=60")], 2 * HOUR),
        (&[("cache-control", "s-maxage=60, max-age=7200")], 2 * HOUR),
        // Age counts against max-age.
        (&[("cache-control", "max-age=7200"), ("age", "3600")], HOUR),
        (&[("cache-control", "max-age=7200"), ("age", "9999")], min),
        (&[("cache-control", "max-age=7200"), ("age", "junk")], 2 * HOUR),
        // Bounds.
        (&[("cache-control", "max-age=60")], min),
        (&[("cache-control", "max-age=0")], min),
        (&[("cache-control", "max-age=604800")], max),
        (&[("cache-control", "max-age=99999999999999999999999")], max),
        // No storing, no reuse without revalidation, invalid max-age: as short as allowed.
        (&[("cache-control", "no-store")], min),
        (&[("cache-control", "no-cache")], min),
        (&[("cache-control", "No-Cache=\"Set-Cookie\", max-age=7200")], min),
        (&[("cache-control", "max-age=7200"), ("cache-control", "no-store")], min),
        (&[("cache-control", "max-age=soon")], min),
        (&[("cache-control", "max-age=-1")], min),
        (&[("cache-control", "max-age")], min),
        // Expires, measured from Date when present, else from now; max-age wins over it.
        (&[("expires", "Sun, 06 Nov 1994 10:49:37 GMT")], 2 * HOUR),
        (&[("expires", "Sunday, 06-Nov-94 10:49:37 GMT")], 2 * HOUR),
        (&[("expires", "Sun Nov  6 10:49:37 1994")], 2 * HOUR),
        (
            &[
                ("expires", "Sun, 06 Nov 1994 10:49:37 GMT"),
                ("date", "Sun, 06 Nov 1994 09:49:37 GMT"),
            ],
            HOUR,
        ),
        (&[("expires", "Sun, 06 Nov 1994 10:49:37 GMT"), ("date", "garbage")], 2 * HOUR),
        (&[("expires", "Sun, 13 Nov 1994 08:49:37 GMT")], max),
        (&[("expires", "Sun, 06 Nov 1994 08:00:00 GMT")], min),
        (&[("expires", "0")], min),
        (&[("expires", "never")], min),
        (&[("expires", "Sun, 06 Nov 1994 10:49:37 GMT"), ("cache-control", "max-age=3600")], HOUR),
        (&[("expires", "Sun, 06 Nov 1994 10:49:37 GMT"), ("cache-control", "no-store")], min),
    ];
    for (pairs, expected) in cases {
        assert_eq!(
            well_known_ttl(&headers(pairs), rfc_now()),
            Duration::from_secs(*expected),
            "{pairs:?}"
        );
    }
}

#[test]
fn non_ascii_cache_control_is_ignored() {
    let mut map = HeaderMap::new();
    map.append(CACHE_CONTROL, HeaderValue::from_bytes("max-age=60, é".as_bytes()).unwrap());
    assert_eq!(well_known_ttl(&map, rfc_now()), WELL_KNOWN_DEFAULT_TTL);
}

#[test]
fn failures_back_off_exponentially_up_to_an_hour() {
    let minutes = |m: u64| Duration::from_secs(m * 60);
    let cases = [
        (0, minutes(5)),
        (1, minutes(5)),
        (2, minutes(10)),
        (3, minutes(20)),
        (4, minutes(40)),
        (5, minutes(60)),
        (6, minutes(60)),
        (40, minutes(60)),
        (u32::MAX, minutes(60)),
    ];
    for (failures, expected) in cases {
        assert_eq!(well_known_error_ttl(failures), expected, "{failures}");
    }
    assert_eq!(well_known_error_ttl(u32::MAX), WELL_KNOWN_ERROR_TTL);
}
