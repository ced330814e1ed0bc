//! End-to-end tests of the `myelin-admin` binary. None needs a Myelin
//! server: they use a closed port or the canned responder in `stub.rs`.

mod stub;

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha1::Sha1;

use stub::{Reply, Request, Stub};

const ENV_VARS: [&str; 5] = [
    "MYELIN_ADMIN_SERVER",
    "MYELIN_ADMIN_TOKEN",
    "MYELIN_ADMIN_JSON",
    "MYELIN_ADMIN_TIMEOUT",
    "MYELIN_REGISTRATION_SHARED_SECRET",
];

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_myelin-admin"));
    for var in ENV_VARS {
        command.env_remove(var);
    }
    command.args(args);
    command
}

fn run(args: &[&str]) -> Outcome {
    run_with(command(args), None)
}

fn run_with_stdin(args: &[&str], stdin: &str) -> Outcome {
    run_with(command(args), Some(stdin))
}

fn run_with(mut command: Command, stdin: Option<&str>) -> Outcome {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn myelin-admin");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    let output = child.wait_with_output().expect("wait for myelin-admin");
    let outcome = Outcome {
        code: output.status.code().expect("exited normally"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        !outcome.stderr.contains("panicked") && !outcome.stderr.contains("backtrace"),
        "the binary panicked:\n{}",
        outcome.stderr
    );
    outcome
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

fn matrix_error(status: u16, errcode: &str, error: &str) -> Reply {
    Reply::json(status, json!({ "errcode": errcode, "error": error }))
}

fn not_found() -> Reply {
    matrix_error(404, "M_UNRECOGNIZED", "Unrecognized request")
}

fn hmac_sha1_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("any key length works");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

fn user(name: &str, display: &str, created_ms: i64) -> Value {
    json!({
        "name": name, "displayname": display, "avatar_url": null, "admin": false,
        "deactivated": false, "is_guest": false, "user_type": null,
        "creation_ts": created_ms, "locked": false, "erased": false,
    })
}

/// Two pages: `from=0` offers `next_token`, `from=2` is the last.
fn paginated_users(request: &Request) -> Reply {
    if request.path() != "/_synapse/admin/v2/users" {
        return not_found();
    }
    if request.header("authorization") != Some("Bearer secret-token") {
        return matrix_error(401, "M_MISSING_TOKEN", "Missing access token");
    }
    match request.query("from") {
        Some("0") => Reply::json(
            200,
            json!({
                "users": [user("@alice:hs", "Alice", 1_700_000_000_000), user("@bob:hs", "Bob", 1_700_000_060_000)],
                "next_token": "2",
                "total": 3,
            }),
        ),
        Some("2") => Reply::json(
            200,
            json!({ "users": [user("@carol:hs", "Carol", 1_700_000_120_000)], "total": 3 }),
        ),
        _ => matrix_error(400, "M_INVALID_PARAM", "bad from"),
    }
}

// ---- help -----------------------------------------------------------------

#[test]
fn help_works_for_every_subcommand() {
    let commands: &[&[&str]] = &[
        &[],
        &["server"],
        &["server", "version"],
        &["server", "ping"],
        &["user"],
        &["user", "create"],
        &["user", "list"],
        &["user", "show"],
        &["user", "deactivate"],
        &["user", "reset-password"],
        &["login"],
    ];
    for words in commands {
        let mut args = words.to_vec();
        args.push("--help");
        let outcome = run(&args);
        assert_eq!(outcome.code, 0, "{args:?}: {}", outcome.stderr);
        assert!(
            outcome.stdout.contains("Usage: myelin-admin"),
            "{args:?}: {}",
            outcome.stdout
        );
        assert!(
            outcome.stdout.contains("--server"),
            "{args:?}: global options are listed"
        );
    }
    let version = run(&["--version"]);
    assert_eq!(version.code, 0);
    assert!(version.stdout.starts_with("myelin-admin "));
}

#[test]
fn help_never_shows_secret_env_values() {
    let mut command = command(&["user", "create", "--help"]);
    command.env("MYELIN_ADMIN_TOKEN", "tok-should-stay-hidden");
    command.env(
        "MYELIN_REGISTRATION_SHARED_SECRET",
        "secret-should-stay-hidden",
    );
    let outcome = run_with(command, None);
    assert_eq!(outcome.code, 0);
    assert!(outcome.stdout.contains("MYELIN_ADMIN_TOKEN"));
    assert!(
        !outcome.stdout.contains("should-stay-hidden"),
        "{}",
        outcome.stdout
    );
}

#[test]
fn usage_errors_exit_2() {
    let outcome = run(&["user"]);
    assert_eq!(outcome.code, 2);

    let outcome = run(&["--server", "localhost:8008", "server", "version"]);
    assert_eq!(outcome.code, 2);
    assert!(
        outcome
            .stderr
            .contains("did you mean http://localhost:8008"),
        "{}",
        outcome.stderr
    );

    let outcome = run(&[
        "user",
        "create",
        "bob",
        "--password",
        "x",
        "--password-stdin",
    ]);
    assert_eq!(outcome.code, 2, "{}", outcome.stderr);
}

// ---- transport and token errors --------------------------------------------

#[test]
fn unreachable_server_exits_2_with_hint() {
    let server = format!("http://127.0.0.1:{}", closed_port());
    for args in [
        vec!["--server", &server, "server", "version"],
        vec!["--server", &server, "--token", "t", "user", "list"],
    ] {
        let outcome = run(&args);
        assert_eq!(outcome.code, 2, "{args:?}: {}", outcome.stderr);
        let expected = format!(
            "error: cannot reach the Myelin server at {server}: connection refused \
             (is it running? set --server or MYELIN_ADMIN_SERVER)"
        );
        assert_eq!(outcome.stderr.trim_end(), expected);
        assert!(outcome.stdout.is_empty());
    }
}

#[test]
fn silent_server_times_out_with_exit_2() {
    // Bound but never accepted: the connection opens, no answer ever comes.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let server = format!("http://{}", listener.local_addr().expect("address"));
    let outcome = run(&["--server", &server, "--timeout", "1", "server", "version"]);
    assert_eq!(outcome.code, 2, "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("did not answer within 1s"),
        "{}",
        outcome.stderr
    );
    assert!(outcome.stderr.contains("--timeout"), "{}", outcome.stderr);
    drop(listener);
}

#[test]
fn server_is_also_taken_from_the_environment() {
    let server = format!("http://127.0.0.1:{}", closed_port());
    let mut command = command(&["server", "version"]);
    command.env("MYELIN_ADMIN_SERVER", &server);
    let outcome = run_with(command, None);
    assert_eq!(outcome.code, 2);
    assert!(outcome.stderr.contains(&server), "{}", outcome.stderr);
}

#[test]
fn missing_token_exits_2_before_any_request() {
    // The port is closed: a request attempt would report "cannot reach".
    let server = format!("http://127.0.0.1:{}", closed_port());
    for args in [
        vec!["--server", &server, "user", "list"],
        vec!["--server", &server, "user", "show", "@a:hs"],
        vec!["--server", &server, "user", "deactivate", "@a:hs"],
    ] {
        let outcome = run(&args);
        assert_eq!(outcome.code, 2, "{args:?}: {}", outcome.stderr);
        assert!(outcome.stderr.contains("--token"), "{}", outcome.stderr);
        assert!(
            outcome.stderr.contains("MYELIN_ADMIN_TOKEN"),
            "{}",
            outcome.stderr
        );
        assert!(
            !outcome.stderr.contains("cannot reach"),
            "{}",
            outcome.stderr
        );
    }

    let mut empty = command(&["--server", &server, "user", "list"]);
    empty.env("MYELIN_ADMIN_TOKEN", "");
    let outcome = run_with(empty, None);
    assert_eq!(outcome.code, 2);
    assert!(
        outcome.stderr.contains("MYELIN_ADMIN_TOKEN"),
        "{}",
        outcome.stderr
    );

    let outcome = run(&["--server", &server, "user", "create", "bob"]);
    assert_eq!(outcome.code, 2);
    assert!(
        outcome.stderr.contains("--shared-secret"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn rejected_token_exits_3() {
    let stub = Stub::start(|_| matrix_error(401, "M_UNKNOWN_TOKEN", "Invalid token"));
    let outcome = run(&["--server", &stub.url(), "--token", "stale", "user", "list"]);
    assert_eq!(outcome.code, 3, "{}", outcome.stderr);
    assert_eq!(
        outcome.stderr.trim_end(),
        "error: the server rejected the access token (M_UNKNOWN_TOKEN): Invalid token"
    );
    let requests = stub.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("authorization"), Some("Bearer stale"));
}

#[test]
fn token_from_environment_is_sent() {
    let stub = Stub::start(|_| matrix_error(401, "M_UNKNOWN_TOKEN", "Invalid token"));
    let mut command = command(&["--server", &stub.url(), "user", "show", "@a:hs"]);
    command.env("MYELIN_ADMIN_TOKEN", "from-env");
    let outcome = run_with(command, None);
    assert_eq!(outcome.code, 3);
    assert_eq!(
        stub.requests()[0].header("authorization"),
        Some("Bearer from-env")
    );
}

#[test]
fn non_admin_token_exits_3() {
    let stub = Stub::start(|_| matrix_error(403, "M_FORBIDDEN", "You are not a server admin"));
    let outcome = run(&[
        "--server",
        &stub.url(),
        "--token",
        "t",
        "user",
        "show",
        "@a:hs",
    ]);
    assert_eq!(outcome.code, 3, "{}", outcome.stderr);
    assert!(
        outcome.stderr.starts_with("error: not a server admin"),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("You are not a server admin"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn other_matrix_errors_exit_1() {
    let stub = Stub::start(|_| matrix_error(404, "M_NOT_FOUND", "User not found"));
    let outcome = run(&[
        "--server",
        &stub.url(),
        "--token",
        "t",
        "user",
        "show",
        "@ghost:hs",
    ]);
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("M_NOT_FOUND: User not found"),
        "{}",
        outcome.stderr
    );
    assert_eq!(
        stub.requests()[0].path(),
        "/_synapse/admin/v2/users/@ghost:hs"
    );
}

#[test]
fn non_json_error_page_exits_1() {
    let stub = Stub::start(|_| Reply {
        status: 502,
        body: "<html><body>Bad Gateway</body></html>".to_owned(),
    });
    let outcome = run(&["--server", &stub.url(), "server", "version"]);
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("unexpected response"),
        "{}",
        outcome.stderr
    );
    assert!(outcome.stderr.contains("HTTP 502"), "{}", outcome.stderr);
    assert!(outcome.stderr.contains("Bad Gateway"), "{}", outcome.stderr);
}

// ---- server ---------------------------------------------------------------

#[test]
fn server_version_table_and_json() {
    let stub = Stub::start(|request| match request.path() {
        "/_synapse/admin/v1/server_version" => {
            Reply::json(200, json!({ "server_version": "myelin 0.1.0" }))
        }
        "/_matrix/client/versions" => Reply::json(200, json!({ "versions": ["v1.11", "v1.12"] })),
        _ => not_found(),
    });
    let table = run(&["--server", &stub.url(), "server", "version"]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(table.stdout.contains("myelin 0.1.0"), "{}", table.stdout);

    let raw = run(&["--server", &stub.url(), "server", "version", "--json"]);
    assert_eq!(raw.code, 0, "{}", raw.stderr);
    let parsed: Value = serde_json::from_str(&raw.stdout).expect("JSON output");
    assert_eq!(parsed, json!({ "server_version": "myelin 0.1.0" }));

    let mut from_env = command(&["--server", &stub.url(), "server", "version"]);
    from_env.env("MYELIN_ADMIN_JSON", "1");
    let raw = run_with(from_env, None);
    assert_eq!(raw.code, 0, "{}", raw.stderr);
    assert!(
        raw.stdout.starts_with('{'),
        "MYELIN_ADMIN_JSON=1 selects JSON: {}",
        raw.stdout
    );

    let ping = run(&["--server", &stub.url(), "server", "ping"]);
    assert_eq!(ping.code, 0, "{}", ping.stderr);
    assert!(ping.stdout.contains("v1.11, v1.12"), "{}", ping.stdout);
}

// ---- user list --------------------------------------------------------------

#[test]
fn user_list_json_follows_pagination() {
    let stub = Stub::start(paginated_users);
    let outcome = run(&[
        "--server",
        &stub.url(),
        "--token",
        "secret-token",
        "--json",
        "user",
        "list",
    ]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);

    let users: Value = serde_json::from_str(&outcome.stdout).expect("JSON array");
    let names: Vec<&str> = users
        .as_array()
        .expect("array")
        .iter()
        .map(|user| user["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["@alice:hs", "@bob:hs", "@carol:hs"]);
    // The raw objects are passed through untouched.
    assert_eq!(users[0], user("@alice:hs", "Alice", 1_700_000_000_000));

    let requests = stub.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].query("from"), Some("0"));
    assert_eq!(requests[1].query("from"), Some("2"));
    for request in &requests {
        assert_eq!(request.method, "GET");
        assert_eq!(request.query("guests"), Some("false"));
        assert_eq!(request.query("deactivated"), Some("false"));
        assert_eq!(request.query("limit"), Some("100"));
    }
}

#[test]
fn user_list_table_shows_utc_dates_and_passes_filters() {
    let stub = Stub::start(paginated_users);
    let outcome = run(&[
        "--server",
        &stub.url(),
        "--token",
        "secret-token",
        "user",
        "list",
        "--name",
        "al",
        "--deactivated",
    ]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    for expected in [
        "@alice:hs",
        "Alice",
        "@carol:hs",
        "2023-11-14 22:13:20",
        "3 users",
    ] {
        assert!(
            outcome.stdout.contains(expected),
            "missing {expected}:\n{}",
            outcome.stdout
        );
    }
    let first = &stub.requests()[0];
    assert_eq!(first.query("name"), Some("al"));
    assert_eq!(first.query("deactivated"), Some("true"));
}

#[test]
fn user_list_limit_stops_early() {
    let stub = Stub::start(paginated_users);
    let outcome = run(&[
        "--server",
        &stub.url(),
        "--token",
        "secret-token",
        "--json",
        "user",
        "list",
        "--limit",
        "2",
    ]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    let users: Value = serde_json::from_str(&outcome.stdout).expect("JSON array");
    assert_eq!(users.as_array().map(Vec::len), Some(2));
    let requests = stub.requests();
    assert_eq!(requests.len(), 1, "no second page needed");
    assert_eq!(requests[0].query("limit"), Some("2"));
}

// ---- user create ------------------------------------------------------------

#[test]
fn shared_secret_registration_sends_a_valid_mac() {
    let stub = Stub::start(|request| match (request.method.as_str(), request.path()) {
        ("GET", "/_synapse/admin/v1/register") => Reply::json(200, json!({ "nonce": "n0nce" })),
        ("POST", "/_synapse/admin/v1/register") => Reply::json(
            200,
            json!({
                "user_id": "@root:hs", "access_token": "fresh-token",
                "device_id": "DEV", "home_server": "hs",
            }),
        ),
        _ => not_found(),
    });
    let outcome = run_with_stdin(
        &[
            "--server",
            &stub.url(),
            "user",
            "create",
            "root",
            "--admin",
            "--password-stdin",
            "--displayname",
            "Root",
            "--shared-secret",
            "s3cret",
        ],
        "wonderland\n",
    );
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert!(outcome.stdout.contains("@root:hs"), "{}", outcome.stdout);
    assert!(outcome.stdout.contains("fresh-token"), "{}", outcome.stdout);

    let requests = stub.requests();
    assert_eq!(requests.len(), 2);
    assert!(
        requests
            .iter()
            .all(|request| request.header("authorization").is_none())
    );
    let body = requests[1].json();
    let expected_mac = hmac_sha1_hex(b"s3cret", b"n0nce\0root\0wonderland\0admin");
    assert_eq!(
        body,
        json!({
            "nonce": "n0nce", "username": "root", "password": "wonderland",
            "admin": true, "displayname": "Root", "mac": expected_mac,
        })
    );
}

#[test]
fn shared_secret_from_env_and_generated_password_in_json() {
    let stub = Stub::start(|request| match (request.method.as_str(), request.path()) {
        ("GET", "/_synapse/admin/v1/register") => Reply::json(200, json!({ "nonce": "abc" })),
        ("POST", "/_synapse/admin/v1/register") => Reply::json(
            200,
            json!({ "user_id": "@bob:hs", "access_token": "t", "device_id": "D", "home_server": "hs" }),
        ),
        _ => not_found(),
    });
    let mut command = command(&[
        "--server",
        &stub.url(),
        "--json",
        "user",
        "create",
        "@bob:hs",
    ]);
    command.env("MYELIN_REGISTRATION_SHARED_SECRET", "env-secret");
    let outcome = run_with(command, None);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);

    let printed: Value = serde_json::from_str(&outcome.stdout).expect("JSON output");
    let generated = printed["generated_password"]
        .as_str()
        .expect("generated password printed");
    assert!(generated.len() >= 20, "{generated}");

    let body = stub.requests()[1].json();
    assert_eq!(body["username"], "bob");
    assert_eq!(body["password"], generated);
    assert_eq!(body["admin"], false);
    let message = format!("abc\0bob\0{generated}\0notadmin");
    assert_eq!(
        body["mac"],
        hmac_sha1_hex(b"env-secret", message.as_bytes())
    );
}

#[test]
fn create_with_token_uses_the_token_users_server_name() {
    let stub = Stub::start(|request| match (request.method.as_str(), request.path()) {
        ("GET", "/_matrix/client/v3/account/whoami") => {
            Reply::json(200, json!({ "user_id": "@admin:example.org:8448" }))
        }
        ("GET", "/_synapse/admin/v2/users/@bob:example.org:8448") => {
            matrix_error(404, "M_NOT_FOUND", "User not found")
        }
        ("PUT", "/_synapse/admin/v2/users/@bob:example.org:8448") => Reply::json(
            201,
            json!({
                "name": "@bob:example.org:8448", "displayname": "Bob", "admin": true,
                "deactivated": false, "erased": false, "creation_ts": 1_700_000_000_000_i64,
                "threepids": [], "external_ids": [],
            }),
        ),
        _ => not_found(),
    });
    let outcome = run(&[
        "--server",
        &stub.url(),
        "--token",
        "adm",
        "user",
        "create",
        "bob",
        "--password",
        "hunter2",
        "--admin",
        "--displayname",
        "Bob",
    ]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    assert!(
        outcome.stdout.contains("@bob:example.org:8448"),
        "{}",
        outcome.stdout
    );
    assert!(
        !outcome.stdout.contains("hunter2"),
        "a given password is not echoed"
    );

    let requests = stub.requests();
    let put = requests
        .iter()
        .find(|request| request.method == "PUT")
        .expect("PUT sent");
    assert_eq!(put.header("authorization"), Some("Bearer adm"));
    assert_eq!(
        put.json(),
        json!({ "password": "hunter2", "displayname": "Bob", "admin": true })
    );
}

#[test]
fn create_refuses_to_overwrite_an_existing_user() {
    let stub = Stub::start(|request| match (request.method.as_str(), request.path()) {
        ("GET", "/_synapse/admin/v2/users/@bob:hs") => Reply::json(
            200,
            json!({ "name": "@bob:hs", "admin": false, "deactivated": false }),
        ),
        _ => not_found(),
    });
    let outcome = run(&[
        "--server",
        &stub.url(),
        "--token",
        "adm",
        "user",
        "create",
        "@bob:hs",
        "--password",
        "x",
    ]);
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("already exists"),
        "{}",
        outcome.stderr
    );
    assert!(
        stub.requests()
            .iter()
            .all(|request| request.method != "PUT")
    );
}

// ---- other user commands -------------------------------------------------------

#[test]
fn reset_password_deactivate_and_show() {
    let stub = Stub::start(|request| match (request.method.as_str(), request.path()) {
        ("POST", "/_synapse/admin/v1/reset_password/@bob:hs") => Reply::json(200, json!({})),
        ("POST", "/_synapse/admin/v1/deactivate/@bob:hs") => {
            Reply::json(200, json!({ "id_server_unbind_result": "success" }))
        }
        ("GET", "/_synapse/admin/v2/users/@bob:hs") => Reply::json(
            200,
            json!({
                "name": "@bob:hs", "displayname": "Bob", "avatar_url": null, "admin": false,
                "deactivated": true, "erased": true, "creation_ts": 951_782_400_000_i64,
                "user_type": null, "is_guest": false, "locked": false,
                "threepids": [{ "medium": "email", "address": "bob@example.org" }],
                "external_ids": [],
            }),
        ),
        _ => not_found(),
    });
    let server = stub.url();

    let reset = run_with_stdin(
        &[
            "--server",
            &server,
            "--token",
            "t",
            "user",
            "reset-password",
            "@bob:hs",
            "--password-stdin",
            "--keep-devices",
        ],
        "n3w\r\n",
    );
    assert_eq!(reset.code, 0, "{}", reset.stderr);
    let deactivate = run(&[
        "--server",
        &server,
        "--token",
        "t",
        "user",
        "deactivate",
        "@bob:hs",
        "--erase",
    ]);
    assert_eq!(deactivate.code, 0, "{}", deactivate.stderr);
    assert!(deactivate.stdout.contains("@bob:hs"));
    let show = run(&[
        "--server", &server, "--token", "t", "user", "show", "@bob:hs",
    ]);
    assert_eq!(show.code, 0, "{}", show.stderr);
    for expected in ["Bob", "2000-02-29 00:00:00", "email: bob@example.org"] {
        assert!(
            show.stdout.contains(expected),
            "missing {expected}:\n{}",
            show.stdout
        );
    }

    let requests = stub.requests();
    assert_eq!(
        requests[0].json(),
        json!({ "new_password": "n3w", "logout_devices": false })
    );
    assert_eq!(requests[1].json(), json!({ "erase": true }));
}

#[test]
fn login_prints_only_the_token() {
    let stub = Stub::start(|request| match (request.method.as_str(), request.path()) {
        ("POST", "/_matrix/client/v3/login") => {
            let body = request.json();
            if body["password"] == "pw" && body["identifier"]["user"] == "admin" {
                Reply::json(
                    200,
                    json!({ "access_token": "syt_abc", "user_id": "@admin:hs", "device_id": "D" }),
                )
            } else {
                matrix_error(403, "M_FORBIDDEN", "Invalid username or password")
            }
        }
        _ => not_found(),
    });
    let good = run_with_stdin(
        &[
            "--server",
            &stub.url(),
            "login",
            "admin",
            "--password-stdin",
        ],
        "pw\n",
    );
    assert_eq!(good.code, 0, "{}", good.stderr);
    assert_eq!(good.stdout, "syt_abc\n");

    let bad = run_with_stdin(
        &[
            "--server",
            &stub.url(),
            "login",
            "admin",
            "--password-stdin",
        ],
        "nope\n",
    );
    assert_eq!(
        bad.code, 1,
        "a wrong password is not a token problem: {}",
        bad.stderr
    );
    assert!(
        bad.stderr
            .contains("M_FORBIDDEN: Invalid username or password"),
        "{}",
        bad.stderr
    );

    let body = stub.requests()[0].json();
    assert_eq!(body["type"], "m.login.password");
    assert_eq!(
        body["identifier"],
        json!({ "type": "m.id.user", "user": "admin" })
    );
    assert!(
        stub.requests()
            .iter()
            .all(|request| request.header("authorization").is_none())
    );
}

#[test]
fn login_without_a_password_source_is_a_usage_error() {
    let server = format!("http://127.0.0.1:{}", closed_port());
    let outcome = run(&["--server", &server, "login", "admin"]);
    assert_eq!(outcome.code, 2, "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("--password-stdin"),
        "{}",
        outcome.stderr
    );
}
