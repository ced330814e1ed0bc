//! Real third-party client libraries against the server, each run as its own
//! process: matrix-js-sdk on Node (`clients/js/scenario.mjs`) and matrix-nio
//! on Python (`clients/python/scenario.py`).
//!
//! Each library's own scenario registers two users (UIA, `m.login.dummy`),
//! logs them in, runs the library's own `/sync` loop for both, creates a room,
//! invites and joins through the invite seen in sync, sends five messages that
//! must reach the other user's live timeline in order, and paginates them back
//! with `/messages` (the js-sdk one then reads an edit, a reaction and a thread
//! back through the SDK). The script exits 0 and prints a one-line JSON
//! summary, or exits non-zero with the failing step and the last HTTP
//! exchanges.
//!
//! The cross scenario (`scenario.mjs cross` and `scenario.py cross`, both at
//! once) puts one user on matrix-js-sdk and the other on matrix-nio in a room
//! this test prepares. Both run their library's sync loop and coordinate
//! through marker messages in the room (each says `ready` once it syncs, and
//! `typing-seen` when it saw the other type, which tells the typist to stop).
//! Each must see from the other, through its sync loop: a message, an edit
//! (js-sdk showing the replaced content, nio receiving `m.new_content`), a
//! reply (`m.in_reply_to`) and a reaction (`m.annotation`) to its own
//! message, an `m.read` receipt on its own message (the `m.receipt` ephemeral
//! event, then the library's room model), the other's presence with its
//! status message (`m.presence`), and the other typing, then no longer typing
//! (`m.typing`). A side that misses something exits 1 naming each missing
//! feature.
//!
//! `clients/js/e2ee.mjs` runs two matrix-js-sdk clients with its Rust crypto (the
//! WASM build of matrix-sdk-crypto, shipped with matrix-js-sdk) in an encrypted
//! room: each must decrypt the other's message.
//!
//! The libraries are installed by `./dev test` (its `ensure_prerequisites`):
//! `npm ci` in `clients/js` and a virtualenv in `clients/python/.venv`. When
//! they are missing these tests fail and say so; they never skip.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use complement_tests::*;
use tokio::io::AsyncReadExt;

/// The script is killed (and the test fails) after this long.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);
/// The number of messages each scenario sends and expects back.
const MESSAGES: u64 = 5;

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}

/// Panics with the install hint when `path` does not exist.
#[track_caller]
fn require_installed(path: &Path, what: &str) {
    assert!(
        path.exists(),
        "{what} is not installed ({} is missing). Run `./dev test` from the repository root: \
         it installs the real-client test dependencies (npm ci in complement-tests/clients/js, \
         a virtualenv in complement-tests/clients/python/.venv) before running the tests.",
        path.display()
    );
}

struct ScriptRun {
    status: Option<std::process::ExitStatus>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl ScriptRun {
    fn describe(&self) -> String {
        let status = match self.status {
            Some(status) => status.to_string(),
            None => format!("killed after the {SCRIPT_TIMEOUT:?} timeout"),
        };
        format!(
            "{status} after {:.1} s\n--- script stdout ---\n{}\n--- script stderr ---\n{}",
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `program args…` in `dir` with `MYELIN_URL` pointing at `server` and
/// `env` set, capturing its output; kills it after [`SCRIPT_TIMEOUT`].
async fn run_script(
    server: &TestServer,
    program: &Path,
    args: &[&str],
    dir: &Path,
    env: &[(&str, &str)],
) -> ScriptRun {
    let started = std::time::Instant::now();
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .env("MYELIN_URL", server.url())
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot start `{}` ({e}). Run `./dev test` from the repository root: it installs \
             Node.js and Python's venv module when they are missing, and the client libraries.",
            program.display()
        )
    });
    let mut stdout_pipe = child.stdout.take().expect("piped stdout");
    let mut stderr_pipe = child.stderr.take().expect("piped stderr");
    let stdout_task = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = stdout_pipe.read_to_end(&mut buf).await;
        buf
    });
    let stderr_task = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut buf).await;
        buf
    });
    let status = match tokio::time::timeout(SCRIPT_TIMEOUT, child.wait()).await {
        Ok(status) => Some(status.expect("wait for the client script")),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    };
    // The pipes close when the process is gone; don't hang on a stray grandchild.
    let collect = |task: tokio::task::JoinHandle<Vec<u8>>| async move {
        match tokio::time::timeout(Duration::from_secs(5), task).await {
            Ok(Ok(buf)) => String::from_utf8_lossy(&buf).into_owned(),
            _ => "<output not collected>".to_owned(),
        }
    };
    ScriptRun {
        status,
        stdout: collect(stdout_task).await,
        stderr: collect(stderr_task).await,
        elapsed: started.elapsed(),
    }
}

/// Asserts the script succeeded and printed a summary line saying so;
/// returns the summary.
#[track_caller]
fn assert_summary_ok(client: &str, run: &ScriptRun) -> Value {
    assert!(
        run.status.is_some_and(|s| s.success()),
        "the {client} scenario failed: {}",
        run.describe()
    );
    let summary: Value = run
        .stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line.trim()).ok())
        .unwrap_or_else(|| {
            panic!(
                "the {client} scenario printed no JSON summary: {}",
                run.describe()
            )
        });
    assert_eq!(summary["ok"], json!(true), "{client} summary: {summary}");
    // Visible with `--nocapture`.
    println!(
        "{client} scenario passed in {:.1} s: {summary}",
        run.elapsed.as_secs_f64()
    );
    summary
}

/// [`assert_summary_ok`] for the single-library scenarios, which must have
/// received every message live.
#[track_caller]
fn assert_success(client: &str, run: &ScriptRun) -> Value {
    let summary = assert_summary_ok(client, run);
    assert_eq!(
        summary["live_messages"],
        json!(MESSAGES),
        "{client} summary: {summary}"
    );
    summary
}

fn js_dir() -> PathBuf {
    let dir = clients_dir().join("js");
    require_installed(
        &dir.join("node_modules/matrix-js-sdk/package.json"),
        "matrix-js-sdk",
    );
    dir
}

/// The Python client folder and its virtualenv's interpreter.
fn python_dir_and_interpreter() -> (PathBuf, PathBuf) {
    let dir = clients_dir().join("python");
    let python = dir.join(".venv/bin/python");
    require_installed(&python, "the Python virtualenv for matrix-nio");
    let site_packages = std::fs::read_dir(dir.join(".venv/lib"))
        .ok()
        .and_then(|mut entries| entries.next())
        .and_then(Result::ok)
        .map(|entry| entry.path().join("site-packages/nio"))
        .unwrap_or_else(|| dir.join(".venv/lib/python3/site-packages/nio"));
    require_installed(&site_packages, "matrix-nio");
    (dir, python)
}

#[tokio::test]
async fn matrix_js_sdk_sync_invite_join_messages_pagination() {
    let dir = js_dir();
    let server = TestServer::start_default().await;
    let run = run_script(&server, Path::new("node"), &["scenario.mjs"], &dir, &[]).await;
    let summary = assert_success("matrix-js-sdk", &run);
    assert_eq!(summary["client"], "matrix-js-sdk");
    assert_eq!(summary["paginated_messages"], json!(MESSAGES), "{summary}");
}

#[tokio::test]
async fn matrix_js_sdk_rust_crypto_clients_decrypt_each_others_messages() {
    // matrix-js-sdk's Rust crypto (WASM) in Node: keys, one-time key claims, to-device room
    // keys and device lists on the server, as a second crypto implementation sees them.
    let dir = js_dir();
    let server = TestServer::start_default().await;
    let account = |session: &Session| json!({ "user_id": session.user_id, "access_token": session.access_token, "device_id": session.device_id });
    let (alice, bob) = (server.register("alice", "pw").await, server.register("bob", "pw").await);
    let accounts = json!({ "alice": account(&alice), "bob": account(&bob) }).to_string();
    let run = run_script(&server, Path::new("node"), &["e2ee.mjs", &accounts], &dir, &[]).await;
    let summary = assert_summary_ok("matrix-js-sdk (Rust crypto)", &run);
    assert_eq!(summary["bob_decrypted"], "hello bob, encrypted", "{summary}");
    assert_eq!(summary["alice_decrypted"], "hello alice, encrypted too", "{summary}");
}

#[tokio::test]
async fn matrix_nio_sync_invite_join_messages_pagination() {
    let (dir, python) = python_dir_and_interpreter();
    let server = TestServer::start_default().await;
    let run = run_script(&server, &python, &["scenario.py"], &dir, &[]).await;
    let summary = assert_success("matrix-nio", &run);
    assert_eq!(summary["client"], "matrix-nio");
}

/// What each side of the cross scenario must see from the other through its
/// sync loop (the keys of `CROSS_FEATURES` in both scripts).
const CROSS_FEATURES: [&str; 8] = [
    "message",
    "edit",
    "reply",
    "reaction",
    "read receipt",
    "presence",
    "typing",
    "typing stop",
];

/// matrix-js-sdk and matrix-nio, one user each, in one room at the same time:
/// each script runs its library's sync loop and must see the other's message,
/// edit, reply, reaction, read receipt, presence and typing (start and stop)
/// live.
#[tokio::test]
async fn matrix_js_sdk_and_matrix_nio_see_each_others_messaging_live() {
    let js_dir = js_dir();
    let (python_dir, python) = python_dir_and_interpreter();
    let server = TestServer::start_default().await;
    let js_user = server.register("js_user", "pw-js").await;
    let nio_user = server.register("nio_user", "pw-nio").await;
    let created = server
        .post(
            "/_matrix/client/v3/createRoom",
            &js_user,
            &json!({"preset": "private_chat", "name": "js-sdk and nio", "invite": [nio_user.user_id]}),
        )
        .await;
    let room_id = created.str_field("room_id").to_owned();
    server
        .post(
            &format!("/_matrix/client/v3/join/{room_id}"),
            &nio_user,
            &json!({}),
        )
        .await
        .ok();

    let js_env = [
        ("CROSS_USERNAME", "js_user"),
        ("CROSS_PASSWORD", "pw-js"),
        ("CROSS_PEER", nio_user.user_id.as_str()),
        ("CROSS_PEER_CLIENT", "matrix-nio"),
        ("CROSS_ROOM", room_id.as_str()),
    ];
    let nio_env = [
        ("CROSS_USERNAME", "nio_user"),
        ("CROSS_PASSWORD", "pw-nio"),
        ("CROSS_PEER", js_user.user_id.as_str()),
        ("CROSS_PEER_CLIENT", "matrix-js-sdk"),
        ("CROSS_ROOM", room_id.as_str()),
    ];
    let (js, nio) = tokio::join!(
        run_script(
            &server,
            Path::new("node"),
            &["scenario.mjs", "cross"],
            &js_dir,
            &js_env
        ),
        run_script(
            &server,
            &python,
            &["scenario.py", "cross"],
            &python_dir,
            &nio_env
        ),
    );
    // Either failure is reported with both outputs: a side that waited in vain
    // usually fails because of what the other did (or did not do).
    let both = format!(
        "\n=== matrix-js-sdk ===\n{}\n=== matrix-nio ===\n{}",
        js.describe(),
        nio.describe()
    );
    for (client, run) in [("matrix-js-sdk", &js), ("matrix-nio", &nio)] {
        assert!(
            run.status.is_some_and(|s| s.success()),
            "the {client} side of the cross scenario failed:{both}"
        );
        let summary = assert_summary_ok(client, run);
        assert_eq!(summary["mode"], "cross", "{summary}");
        assert_eq!(
            summary["unexpected_http_errors"],
            json!([]),
            "{client} got error answers"
        );
        for feature in CROSS_FEATURES {
            assert!(
                summary["seen"][feature].is_u64(),
                "{client} did not report seeing {feature:?}: {summary}{both}"
            );
        }
    }
}
