use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::example::render_example;
use crate::schema::{FieldDoc, ValueKind};
use crate::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn toml_file(contents: &str) -> NamedTempFile {
    let mut file = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .expect("create temp file");
    file.write_all(contents.as_bytes())
        .expect("write temp file");
    file
}

fn load(file: Option<&NamedTempFile>, vars: &[(&str, &str)]) -> Result<LoadedConfig, ConfigError> {
    Config::load_from(file.map(NamedTempFile::path), &env(vars))
}

fn load_ok(file: Option<&NamedTempFile>, vars: &[(&str, &str)]) -> LoadedConfig {
    load(file, vars).unwrap_or_else(|e| panic!("config should load: {e}"))
}

fn load_err(file: Option<&NamedTempFile>, vars: &[(&str, &str)]) -> ConfigError {
    match load(file, vars) {
        Ok(loaded) => panic!("config should fail to load, got {:#?}", loaded.config),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------- defaults

#[test]
fn defaults_are_as_documented() {
    let c = Config::default();
    assert_eq!(c.server_name, "localhost");
    assert_eq!(c.database_path, PathBuf::from("./myelin-data"));
    assert_eq!(c.listen, "127.0.0.1:8008");
    assert_eq!(c.public_baseurl, None);
    assert_eq!(c.registration, RegistrationMode::Open);
    assert!(c.registration_tokens.is_empty());
    assert_eq!(c.registration_shared_secret, None);
    assert!(!c.allow_open_registration_on_public_listener);
    assert_eq!(c.admin_contact, None);
    assert_eq!(c.log.format, LogFormat::Text);
    assert_eq!(c.log.level, "info");
    assert_eq!(c.limits.max_request_body_bytes, 1_048_576);
    assert_eq!(c.password.argon2_memory_kib, 19_456);
    assert_eq!(c.password.argon2_iterations, 2);
    assert_eq!(c.password.argon2_parallelism, 1);
    assert_eq!(c.password.min_length, 0);
    assert_eq!(c.sessions.refreshable_access_token_lifetime_ms, 300_000);
    assert_eq!(c.sessions.refresh_token_lifetime_ms, None);
    assert_eq!(c.sessions.nonrefreshable_access_token_lifetime_ms, None);
    assert!(c.rate_limits.enabled);
    for limit in [
        &c.rate_limits.login_per_ip,
        &c.rate_limits.login_per_account,
        &c.rate_limits.registration_per_ip,
        &c.rate_limits.login_failures_per_account,
    ] {
        assert_eq!(
            *limit,
            RateLimit {
                per_second: 0.17,
                burst: 3
            }
        );
    }
    assert_eq!(c.well_known.client, None);
    assert_eq!(c.well_known.server, None);
    assert!(c.federation.enabled);
    assert_eq!(c.federation.listen, None);
    assert_eq!(c.federation.tls_certificate, None);
    assert_eq!(c.federation.tls_private_key, None);
    assert!(!c.federation.generate_self_signed_certificate);
    assert!(c.federation.verify_tls);
    assert!(!c.federation.allow_private_addresses);
    assert!(c.federation.allowed_servers.is_empty());
    assert!(c.federation.denied_servers.is_empty());

    assert_eq!(
        c.listen_addr(),
        "127.0.0.1:8008".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.client_base_url(), "http://127.0.0.1:8008");
    assert_eq!(c.well_known_client_base_url(), "http://127.0.0.1:8008");
    assert_eq!(c.well_known_server(), "localhost:8448");
}

#[test]
fn defaults_are_valid_and_load_without_warnings() {
    Config::default().validate().expect("defaults validate");
    let loaded = load_ok(None, &[]);
    assert_eq!(loaded.config, Config::default());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

// ---------------------------------------------------------------- layering

#[test]
fn file_overrides_defaults() {
    let file = toml_file(
        r#"
        server_name = "example.org"
        listen = "[::1]:9000"
        registration = "closed"

        [log]
        format = "json"

        [rate_limits.login_per_ip]
        per_second = 1
        burst = 10

        [sessions]
        refresh_token_lifetime_ms = 86400000
        "#,
    );
    let loaded = load_ok(Some(&file), &[]);
    let c = &loaded.config;
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(c.server_name, "example.org");
    assert_eq!(c.listen_addr(), "[::1]:9000".parse::<SocketAddr>().unwrap());
    assert_eq!(c.registration, RegistrationMode::Closed);
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.log.level, "info", "untouched keys keep their default");
    assert_eq!(c.rate_limits.login_per_ip, RateLimit::new(1.0, 10));
    assert_eq!(c.rate_limits.login_per_account, RateLimit::new(0.17, 3));
    assert_eq!(c.sessions.refresh_token_lifetime_ms, Some(86_400_000));
    assert_eq!(c.client_base_url(), "http://[::1]:9000");
}

#[test]
fn env_overrides_file() {
    let file = toml_file(
        r#"
        server_name = "file.example.org"
        registration = "closed"
        [log]
        format = "json"
        level = "debug"
        "#,
    );
    let loaded = load_ok(
        Some(&file),
        &[
            ("MYELIN_SERVER_NAME", "env.example.org"),
            ("MYELIN_LOG__FORMAT", "text"),
            ("MYELIN_REGISTRATION", "open"),
            ("UNRELATED", "x"),
        ],
    );
    let c = &loaded.config;
    assert_eq!(c.server_name, "env.example.org");
    assert_eq!(c.log.format, LogFormat::Text);
    assert_eq!(c.log.level, "debug", "file value kept where env is silent");
    assert_eq!(c.registration, RegistrationMode::Open);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn env_nesting_with_double_underscore() {
    let loaded = load_ok(
        None,
        &[
            ("MYELIN_LOG__FORMAT", "json"),
            ("MYELIN_RATE_LIMITS__LOGIN_PER_IP__BURST", "7"),
            ("MYELIN_RATE_LIMITS__LOGIN_PER_IP__PER_SECOND", "0.5"),
            ("MYELIN_RATE_LIMITS__ENABLED", "false"),
            (
                "MYELIN_SESSIONS__NONREFRESHABLE_ACCESS_TOKEN_LIFETIME_MS",
                "60000",
            ),
            ("MYELIN_PASSWORD__MIN_LENGTH", "12"),
            ("MYELIN_WELL_KNOWN__SERVER", "matrix.example.org:443"),
        ],
    );
    let c = &loaded.config;
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.rate_limits.login_per_ip, RateLimit::new(0.5, 7));
    assert!(!c.rate_limits.enabled);
    assert_eq!(
        c.sessions.nonrefreshable_access_token_lifetime_ms,
        Some(60_000)
    );
    assert_eq!(c.password.min_length, 12);
    assert_eq!(c.well_known_server(), "matrix.example.org:443");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn env_values_that_look_like_other_types_stay_strings() {
    let loaded = load_ok(
        None,
        &[
            ("MYELIN_LISTEN", "127.0.0.1:0"),
            ("MYELIN_SERVER_NAME", "localhost:8448"),
            ("MYELIN_REGISTRATION_SHARED_SECRET", "12345"),
            ("MYELIN_ADMIN_CONTACT", "true"),
            ("MYELIN_DATABASE_PATH", "/var/lib/myelin"),
            ("MYELIN_LOG__LEVEL", "info,myelin=debug"),
        ],
    );
    let c = &loaded.config;
    assert_eq!(c.listen, "127.0.0.1:0");
    assert_eq!(c.listen_addr().port(), 0);
    assert_eq!(c.server_name, "localhost:8448");
    assert_eq!(c.well_known_server(), "localhost:8448");
    assert_eq!(c.registration_shared_secret.as_deref(), Some("12345"));
    assert_eq!(c.admin_contact.as_deref(), Some("true"));
    assert_eq!(c.database_path, PathBuf::from("/var/lib/myelin"));
    assert_eq!(c.log.level, "info,myelin=debug");
}

#[test]
fn env_lists_comma_separated_or_toml_array() {
    let c = load_ok(
        None,
        &[
            ("MYELIN_REGISTRATION", "token"),
            ("MYELIN_REGISTRATION_TOKENS", "abc, def,,ghi"),
        ],
    )
    .config;
    assert_eq!(c.registration, RegistrationMode::Token);
    assert_eq!(c.registration_tokens, ["abc", "def", "ghi"]);

    let c = load_ok(
        None,
        &[
            ("MYELIN_REGISTRATION", "token"),
            ("MYELIN_REGISTRATION_TOKENS", r#"["a,b", "c"]"#),
        ],
    )
    .config;
    assert_eq!(c.registration_tokens, ["a,b", "c"]);
}

#[test]
fn config_file_variable_is_not_a_key() {
    let loaded = load_ok(
        None,
        &[
            ("MYELIN_CONFIG", "/etc/myelin/myelin.toml"),
            ("MYELIN_BLESS", "1"),
        ],
    );
    assert_eq!(loaded.config, Config::default());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn env_prefix_is_case_insensitive() {
    let c = load_ok(None, &[("myelin_server_name", "example.org")]).config;
    assert_eq!(c.server_name, "example.org");
}

// ---------------------------------------------------------------- errors

fn assert_invalid(error: &ConfigError, key: &str, fragments: &[&str]) {
    assert!(
        error.keys().contains(&key),
        "error should name key {key:?}: {error}"
    );
    let text = error.to_string();
    assert!(
        text.contains(&format!("invalid value for \"{key}\"")),
        "error should name key {key:?}: {text}"
    );
    for fragment in fragments {
        assert!(
            text.contains(fragment),
            "error should mention {fragment:?}: {text}"
        );
    }
}

#[test]
fn bad_listen_names_the_key() {
    let file = toml_file(r#"listen = "nope""#);
    let error = load_err(Some(&file), &[]);
    let path = file.path().display().to_string();
    assert_invalid(&error, "listen", &["\"nope\" is not host:port", &path]);

    let error = load_err(None, &[("MYELIN_LISTEN", "localhost:8008")]);
    assert_invalid(
        &error,
        "listen",
        &["\"localhost:8008\" is not host:port", "MYELIN_LISTEN"],
    );
}

#[test]
fn bad_registration_mode_names_the_key() {
    let file = toml_file(r#"registration = "maybe""#);
    let error = load_err(Some(&file), &[]);
    assert_invalid(
        &error,
        "registration",
        &["maybe", "open", "token", "closed"],
    );

    let error = load_err(None, &[("MYELIN_REGISTRATION", "maybe")]);
    assert_invalid(&error, "registration", &["maybe", "MYELIN_REGISTRATION"]);
}

#[test]
fn bad_number_type_names_the_key() {
    let file = toml_file(
        r#"
        [rate_limits.login_per_ip]
        burst = "three"
        "#,
    );
    let error = load_err(Some(&file), &[]);
    assert_invalid(&error, "rate_limits.login_per_ip.burst", &["three", "u32"]);

    let error = load_err(None, &[("MYELIN_RATE_LIMITS__LOGIN_PER_IP__BURST", "lots")]);
    assert_invalid(
        &error,
        "rate_limits.login_per_ip.burst",
        &["lots", "MYELIN_RATE_LIMITS__LOGIN_PER_IP__BURST"],
    );

    let error = load_err(None, &[("MYELIN_LIMITS__MAX_REQUEST_BODY_BYTES", "-1")]);
    assert_invalid(&error, "limits.max_request_body_bytes", &["-1"]);

    let error = load_err(None, &[("MYELIN_FEDERATION__ENABLED", "yes please")]);
    assert_invalid(&error, "federation.enabled", &["yes please"]);
}

#[test]
fn out_of_range_values_name_the_key() {
    let file = toml_file(
        r#"
        [password]
        argon2_iterations = 0
        [rate_limits.registration_per_ip]
        per_second = 0
        [sessions]
        refresh_token_lifetime_ms = 0
        "#,
    );
    let error = load_err(Some(&file), &[]);
    assert!(matches!(error, ConfigError::Multiple(_)), "{error}");
    for key in [
        "password.argon2_iterations",
        "rate_limits.registration_per_ip.per_second",
        "sessions.refresh_token_lifetime_ms",
    ] {
        assert_invalid(&error, key, &[]);
    }
}

#[test]
fn setting_a_table_from_env_is_an_error() {
    let error = load_err(None, &[("MYELIN_LOG", "json")]);
    assert_invalid(&error, "log", &["MYELIN_LOG__<KEY>"]);
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("does-not-exist.toml");
    let error = Config::load_from(Some(&path), &[]).unwrap_err();
    assert!(matches!(error, ConfigError::ReadFile { .. }), "{error:?}");
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
}

#[test]
fn toml_syntax_error_names_the_file() {
    let file = toml_file("server_name = \n");
    let error = load_err(Some(&file), &[]);
    assert!(matches!(error, ConfigError::ParseFile { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains(&file.path().display().to_string()), "{text}");
    assert!(text.contains("line 1"), "{text}");
}

// ---------------------------------------------------------------- unknown keys

#[test]
fn unknown_keys_in_file_are_warned() {
    let file = toml_file(
        r#"
        foo = 1
        [log]
        colour = true
        [rate_limits.login_per_ip]
        burst = 5
        window = 3
        [bogus]
        a = 1
        b = { c = 2 }
        "#,
    );
    let loaded = load_ok(Some(&file), &[]);
    assert_eq!(loaded.config.rate_limits.login_per_ip.burst, 5);
    let mut keys: Vec<&str> = loaded
        .warnings
        .iter()
        .map(|w| {
            assert!(w.contains("(ignored)"), "{w}");
            assert!(w.contains(&file.path().display().to_string()), "{w}");
            w.split('"').nth(1).unwrap()
        })
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "bogus",
            "foo",
            "log.colour",
            "rate_limits.login_per_ip.window"
        ]
    );
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.starts_with("unknown config key \"log.colour\" (ignored)")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn unknown_keys_in_env_are_warned() {
    let loaded = load_ok(
        None,
        &[
            ("MYELIN_FOO", "1"),
            ("MYELIN_LOG__COLOUR", "always"),
            ("MYELIN_LISTEN__PORT", "80"),
            ("MYELIN_SERVER_NAME", "example.org"),
        ],
    );
    assert_eq!(loaded.config.server_name, "example.org");
    assert_eq!(
        loaded.config.listen, "127.0.0.1:8008",
        "unknown env keys change nothing"
    );
    let expected = [
        "unknown config key \"foo\" (ignored) in environment variable MYELIN_FOO",
        "unknown config key \"listen.port\" (ignored) in environment variable MYELIN_LISTEN__PORT",
        "unknown config key \"log.colour\" (ignored) in environment variable MYELIN_LOG__COLOUR",
    ];
    assert_eq!(loaded.warnings, expected);
}

#[test]
fn known_keys_include_unset_options() {
    let keys = Config::known_keys();
    for key in [
        "server_name",
        "public_baseurl",
        "registration_shared_secret",
        "admin_contact",
        "sessions.refresh_token_lifetime_ms",
        "sessions.nonrefreshable_access_token_lifetime_ms",
        "well_known",
        "well_known.client",
        "well_known.server",
        "rate_limits.login_failures_per_account.burst",
    ] {
        assert!(keys.iter().any(|k| k == key), "missing {key}");
    }
    // Options set in a file are not "unknown".
    let file = toml_file(
        r#"
        public_baseurl = "https://matrix.example.org/"
        registration_shared_secret = "s3cret-s3cret"
        [well_known]
        client = "https://matrix.example.org"
        server = "matrix.example.org:443"
        "#,
    );
    let loaded = load_ok(Some(&file), &[]);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        loaded.config.client_base_url(),
        "https://matrix.example.org"
    );
}

// ---------------------------------------------------------------- registration rules

#[test]
fn open_registration_on_public_listener_needs_opt_in() {
    for listen in ["0.0.0.0:8008", "[::]:8008", "192.0.2.10:8008"] {
        let error = load_err(None, &[("MYELIN_LISTEN", listen)]);
        assert_invalid(
            &error,
            "registration",
            &[
                "listen",
                "allow_open_registration_on_public_listener",
                listen,
            ],
        );

        let loaded = load_ok(
            None,
            &[
                ("MYELIN_LISTEN", listen),
                ("MYELIN_ALLOW_OPEN_REGISTRATION_ON_PUBLIC_LISTENER", "true"),
            ],
        );
        assert!(loaded.config.allow_open_registration_on_public_listener);
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.contains("open registration")),
            "{:?}",
            loaded.warnings
        );

        for mode in ["closed", "token"] {
            let loaded = load_ok(
                None,
                &[
                    ("MYELIN_LISTEN", listen),
                    ("MYELIN_REGISTRATION", mode),
                    ("MYELIN_REGISTRATION_TOKENS", "tok"),
                ],
            );
            assert_eq!(loaded.config.registration.as_str(), mode);
        }
    }
    for loopback in [
        "127.0.0.1:8008",
        "127.1.2.3:80",
        "[::1]:8008",
        "[::ffff:127.0.0.1]:8008",
    ] {
        load_ok(None, &[("MYELIN_LISTEN", loopback)]);
    }
}

#[test]
fn token_mode_without_tokens_fails() {
    let error = load_err(None, &[("MYELIN_REGISTRATION", "token")]);
    assert_invalid(&error, "registration_tokens", &["at least one"]);

    let file = toml_file(
        r#"
        registration = "token"
        registration_tokens = ["s3cret"]
        "#,
    );
    let c = load_ok(Some(&file), &[]).config;
    assert_eq!(c.registration_tokens, ["s3cret"]);
}

#[test]
fn unused_tokens_are_warned() {
    let loaded = load_ok(None, &[("MYELIN_REGISTRATION_TOKENS", "tok")]);
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("registration_tokens")),
        "{:?}",
        loaded.warnings
    );
}

// ---------------------------------------------------------------- federation

#[test]
fn federation_keys_load_from_file_and_env() {
    let file = toml_file(
        r#"
        [federation]
        listen = "127.0.0.1:8448"
        tls_certificate = "/tls/cert.pem"
        tls_private_key = "/tls/key.pem"
        verify_tls = false
        allow_private_addresses = true
        allowed_servers = ["a.example"]
        "#,
    );
    let loaded = load_ok(
        Some(&file),
        &[("MYELIN_FEDERATION__DENIED_SERVERS", "b.example,c.example")],
    );
    let f = &loaded.config.federation;
    assert_eq!(f.listen.as_deref(), Some("127.0.0.1:8448"));
    assert_eq!(f.tls_certificate, Some(PathBuf::from("/tls/cert.pem")));
    assert_eq!(f.tls_private_key, Some(PathBuf::from("/tls/key.pem")));
    assert!(!f.verify_tls);
    assert!(f.allow_private_addresses);
    assert_eq!(f.allowed_servers, ["a.example"]);
    assert_eq!(f.denied_servers, ["b.example", "c.example"]);
    assert!(
        loaded.warnings.iter().any(|w| w.contains("federation.verify_tls")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn bad_federation_listen_names_the_key() {
    let error = load_err(
        None,
        &[
            ("MYELIN_FEDERATION__LISTEN", "matrix.example.org:8448"),
            ("MYELIN_FEDERATION__GENERATE_SELF_SIGNED_CERTIFICATE", "true"),
        ],
    );
    assert_invalid(
        &error,
        "federation.listen",
        &["is not host:port", "MYELIN_FEDERATION__LISTEN"],
    );
}

#[test]
fn federation_certificate_and_key_go_together() {
    let mut c = Config::default();
    c.federation.tls_certificate = Some(PathBuf::from("/tls/cert.pem"));
    assert_invalid(
        &c.validate().unwrap_err(),
        "federation.tls_private_key",
        &["federation.tls_certificate", "both or neither"],
    );
    c.federation.tls_certificate = None;
    c.federation.tls_private_key = Some(PathBuf::from("/tls/key.pem"));
    assert_invalid(
        &c.validate().unwrap_err(),
        "federation.tls_certificate",
        &["federation.tls_private_key", "both or neither"],
    );
    c.federation.tls_certificate = Some(PathBuf::new());
    assert_invalid(&c.validate().unwrap_err(), "federation.tls_certificate", &["empty"]);
    c.federation.tls_certificate = Some(PathBuf::from("/tls/cert.pem"));
    c.validate().unwrap();
}

#[test]
fn federation_listen_needs_tls_material() {
    let mut c = Config::default();
    c.federation.listen = Some("127.0.0.1:8448".to_owned());
    assert_invalid(
        &c.validate().unwrap_err(),
        "federation.listen",
        &[
            "federation.tls_certificate",
            "federation.tls_private_key",
            "federation.generate_self_signed_certificate",
        ],
    );

    c.federation.generate_self_signed_certificate = true;
    c.validate().unwrap();

    c.federation.generate_self_signed_certificate = false;
    c.federation.tls_certificate = Some(PathBuf::from("/tls/cert.pem"));
    c.federation.tls_private_key = Some(PathBuf::from("/tls/key.pem"));
    c.validate().unwrap();

    // With federation disabled the listener is not started; it needs nothing.
    let mut c = Config::default();
    c.federation.enabled = false;
    c.federation.listen = Some("127.0.0.1:8448".to_owned());
    c.validate().unwrap();
}

#[test]
fn self_signed_generation_is_ignored_with_certificate_files() {
    let loaded = load_ok(
        None,
        &[
            ("MYELIN_FEDERATION__LISTEN", "127.0.0.1:8448"),
            ("MYELIN_FEDERATION__TLS_CERTIFICATE", "/tls/cert.pem"),
            ("MYELIN_FEDERATION__TLS_PRIVATE_KEY", "/tls/key.pem"),
            ("MYELIN_FEDERATION__GENERATE_SELF_SIGNED_CERTIFICATE", "true"),
        ],
    );
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("generate_self_signed_certificate is ignored")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn open_registration_on_public_federation_listener_needs_opt_in() {
    let mut c = Config::default();
    c.federation.listen = Some("0.0.0.0:8448".to_owned());
    c.federation.generate_self_signed_certificate = true;
    assert_invalid(
        &c.validate().unwrap_err(),
        "registration",
        &["federation.listen", "0.0.0.0:8448", "allow_open_registration_on_public_listener"],
    );
    c.registration = RegistrationMode::Closed;
    c.validate().unwrap();
    c.registration = RegistrationMode::Open;
    c.allow_open_registration_on_public_listener = true;
    c.validate().unwrap();
    c.allow_open_registration_on_public_listener = false;
    c.federation.enabled = false;
    c.validate().unwrap();
    c.federation.enabled = true;
    c.federation.listen = Some("[::1]:8448".to_owned());
    c.validate().unwrap();
}

// ---------------------------------------------------------------- values and derived URLs

#[test]
fn server_name_validation() {
    let mut c = Config::default();
    for good in [
        "localhost",
        "example.org",
        "matrix.example.org:8448",
        "1.2.3.4",
        "1.2.3.4:1234",
        "[::1]",
        "[2001:db8::1]:8448",
        "my-server.example",
    ] {
        c.server_name = good.to_owned();
        c.validate()
            .unwrap_or_else(|e| panic!("{good:?} should be valid: {e}"));
    }
    for (bad, reason) in [
        ("", "empty"),
        ("https://example.org", "scheme"),
        ("example.org/matrix", "path"),
        ("example.org:0", "port"),
        ("example.org:99999", "port"),
        ("example.org:", "port"),
        ("::1", "brackets"),
        ("[::1", "closing"),
        ("[nope]:80", "IPv6"),
        ("1.2.3.400", "IPv4"),
        ("exa mple.org", "whitespace"),
        ("example..org", "empty label"),
        ("under_score.org", "not allowed"),
        ("-bad.org", "'-'"),
    ] {
        c.server_name = bad.to_owned();
        let error = c.validate().expect_err(bad);
        assert_invalid(&error, "server_name", &[reason]);
    }
}

#[test]
fn url_validation() {
    let mut c = Config {
        public_baseurl: Some("matrix.example.org".to_owned()),
        ..Config::default()
    };
    assert_invalid(&c.validate().unwrap_err(), "public_baseurl", &["http"]);
    c.public_baseurl = Some("https://matrix.example.org/base/".to_owned());
    c.validate().unwrap();
    assert_eq!(c.client_base_url(), "https://matrix.example.org/base");

    c.well_known.client = Some("ftp://x".to_owned());
    assert_invalid(&c.validate().unwrap_err(), "well_known.client", &[]);
    c.well_known.client = None;
    c.well_known.server = Some("https://matrix.example.org".to_owned());
    assert_invalid(&c.validate().unwrap_err(), "well_known.server", &["scheme"]);
}

#[test]
fn client_base_url_derivation() {
    let mut c = Config {
        server_name: "example.org:8448".to_owned(),
        listen: "0.0.0.0:8008".to_owned(),
        ..Config::default()
    };
    assert_eq!(c.client_base_url(), "http://example.org:8008");
    c.listen = "[::]:8080".to_owned();
    assert_eq!(c.client_base_url(), "http://example.org:8080");
    c.listen = "192.0.2.1:80".to_owned();
    assert_eq!(c.client_base_url(), "http://192.0.2.1:80");
    c.server_name = "[2001:db8::1]".to_owned();
    c.listen = "0.0.0.0:8008".to_owned();
    assert_eq!(c.client_base_url(), "http://[2001:db8::1]:8008");
    assert_eq!(c.well_known_server(), "[2001:db8::1]:8448");
    c.well_known.client = Some("https://client.example.org/".to_owned());
    assert_eq!(c.well_known_client_base_url(), "https://client.example.org");
}

// ---------------------------------------------------------------- docs and example

fn all_fields(fields: &'static [FieldDoc], prefix: &str, out: &mut Vec<(String, FieldDoc)>) {
    for field in fields {
        let path = crate::schema::join_key(prefix, field.name);
        out.push((path.clone(), *field));
        if let ValueKind::Section(sub) = field.kind.without_optional() {
            all_fields(sub, &path, out);
        }
    }
}

#[test]
fn every_key_is_documented_with_its_default() {
    let mut fields = Vec::new();
    all_fields(Config::field_docs(), "", &mut fields);
    assert!(fields.len() > 30);
    for (path, field) in &fields {
        let doc = field.doc_text();
        assert!(!doc.trim().is_empty(), "{path} has no doc comment");
        let is_section = matches!(field.kind, ValueKind::Section(_));
        assert!(
            is_section || doc.contains("Default"),
            "{path}: doc does not state the default"
        );
        if matches!(field.kind, ValueKind::Optional(_)) {
            assert!(
                field.example.is_some(),
                "{path}: optional key needs an example"
            );
        }
    }
    assert!(
        Config::field_docs()
            .iter()
            .find(|f| f.name == "listen")
            .unwrap()
            .doc_text()
            .contains("127.0.0.1:8008")
    );
}

#[test]
fn example_parses_back_to_defaults() {
    let example = Config::example_toml();
    let parsed: Config = toml::from_str(&example).expect("example is valid TOML");
    assert_eq!(parsed, Config::default());
    assert!(
        example.contains("\n# registration_shared_secret = \""),
        "{example}"
    );
    assert!(example.contains("\n[log]\n"), "{example}");
    assert!(
        example.contains("\n[rate_limits.login_per_ip]\n"),
        "{example}"
    );
    assert!(
        example.contains("# Default: \"127.0.0.1:8008\""),
        "{example}"
    );

    // Loading the example as a file gives the defaults, without warnings.
    let file = toml_file(&example);
    let loaded = load_ok(Some(&file), &[]);
    assert_eq!(loaded.config, Config::default());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn example_values_of_unset_keys_are_valid() {
    let activated = render_example(true);
    let file = toml_file(&activated);
    let loaded = load_ok(Some(&file), &[]);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = loaded.config;
    assert!(c.public_baseurl.is_some());
    assert!(c.registration_shared_secret.is_some());
    assert!(c.admin_contact.is_some());
    assert!(c.sessions.refresh_token_lifetime_ms.is_some());
    assert!(c.sessions.nonrefreshable_access_token_lifetime_ms.is_some());
    assert!(c.well_known.client.is_some());
    assert!(c.well_known.server.is_some());
    assert!(c.federation.listen.is_some());
    assert!(c.federation.tls_certificate.is_some());
    assert!(c.federation.tls_private_key.is_some());
}

#[test]
fn checked_in_example_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("myelin.example.toml");
    let expected = Config::example_toml();
    if std::env::var_os("MYELIN_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &expected).expect("write example file");
        return;
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "{} is out of date with the config docs/defaults; run \
         `cargo run -p myelin -- generate-config > config/myelin.example.toml` \
         (or `MYELIN_BLESS=1 cargo test -p myelin-config`) to regenerate it",
        path.display()
    );
}

#[test]
fn media_keys_and_the_legacy_cutoff() {
    let c = Config::default();
    assert_eq!(c.media.max_upload_bytes, 52_428_800);
    assert_eq!(c.media.path, None);
    assert_eq!(c.media.legacy_unauthenticated_before, None);
    assert_eq!(c.media.max_pending_uploads_per_user, 5);
    assert_eq!(c.media.unused_pending_upload_expiry_secs, 86_400);
    assert_eq!(c.media.max_thumbnail_source_pixels, 32_000_000);
    assert_eq!(c.media.max_concurrent_thumbnails, 4);
    assert_eq!(c.media.legacy_unauthenticated_before_ms(), Ok(None));

    let loaded = load_ok(None, &[("MYELIN_MEDIA__LEGACY_UNAUTHENTICATED_BEFORE", "2024-09-01")]);
    assert_eq!(loaded.config.media.legacy_unauthenticated_before_ms(), Ok(Some(1_725_148_800_000)));
    let loaded = load_ok(None, &[("MYELIN_MEDIA__LEGACY_UNAUTHENTICATED_BEFORE", "2000-02-29T23:59:59Z")]);
    assert_eq!(loaded.config.media.legacy_unauthenticated_before_ms(), Ok(Some(951_868_799_000)));

    for bad in ["2023-02-29", "yesterday", "2024-9-1", "2024-09-01T25:00:00Z"] {
        let error = load_err(None, &[("MYELIN_MEDIA__LEGACY_UNAUTHENTICATED_BEFORE", bad)]);
        assert_invalid(&error, "media.legacy_unauthenticated_before", &[bad]);
    }
    let error = load_err(None, &[("MYELIN_MEDIA__MAX_UPLOAD_BYTES", "0")]);
    assert_invalid(&error, "media.max_upload_bytes", &[]);
}

#[test]
fn url_preview_defaults_and_ip_ranges() {
    let c = Config::default();
    assert!(c.url_preview.enabled);
    assert_eq!((c.url_preview.max_body_bytes, c.url_preview.timeout_secs, c.url_preview.max_redirects), (10_485_760, 10, 5));
    let ranges = crate::UrlPreviewConfig::parse_ip_ranges(&["127.0.0.1".to_owned(), "fc00::/7".to_owned(), " 10.0.0.0/8 ".to_owned()]);
    assert_eq!(
        ranges.unwrap(),
        vec![("127.0.0.1".parse().unwrap(), 32), ("fc00::".parse().unwrap(), 7), ("10.0.0.0".parse().unwrap(), 8)]
    );
    for bad in ["10.0.0.0/33", "example.org", "::1/129", ""] {
        assert!(crate::UrlPreviewConfig::parse_ip_ranges(&[bad.to_owned()]).is_err(), "{bad}");
    }
    let error = load_err(None, &[("MYELIN_URL_PREVIEW__IP_RANGE_ALLOWLIST", "10.0.0.0/99")]);
    assert!(error.to_string().contains("url_preview.ip_range_allowlist"), "{error}");
}
