//! Black-box test harness for Myelin.
//!
//! Every scenario spawns a real `myelin` process (the binary built by Cargo)
//! on its own port with its own temporary database, and talks to it over
//! HTTP only. Nothing here links against the server's crates.
//!
//! * [`TestServer::start`] spawns a server configured by [`ServerOptions`]
//!   (environment variables, optionally a TOML file) and waits until
//!   `GET /health` answers `200 OK`.
//! * [`TestServer::get`], [`TestServer::post`], … send a request and return a
//!   [`Resp`] (status, JSON body, headers); [`assert_matrix_error`] checks a
//!   Matrix error response.
//! * [`TestServer::register`] / [`TestServer::login`] return a [`Session`].
//! * [`TestServer::stop_gracefully`], [`TestServer::kill`] and
//!   [`TestServer::restart`] drive the process lifecycle; the database
//!   directory survives all of them.
//!
//! When a test panics while a [`TestServer`] is alive, the server's stderr
//! (all runs) is printed so that the failure can be diagnosed from the test
//! output alone.
//!
//! Binaries: `MYELIN_BIN` / `MYELIN_ADMIN_BIN` override the paths; by default
//! they are looked up next to the test executable's directory
//! (`target/debug/deps/../myelin`).

use std::collections::BTreeMap;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hmac::{Hmac, Mac};
pub use reqwest::header::HeaderMap;
pub use reqwest::{Method, StatusCode};
pub use serde_json::{Value, json};
use tempfile::TempDir;

pub mod bench;
pub mod synapse;

/// How long a server may take to answer `/health` after being spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-request timeout of the harness's HTTP client.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Default server name of test servers.
pub const DEFAULT_SERVER_NAME: &str = "myelin.test";

// ---------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------

/// Path of the `myelin` server binary (`MYELIN_BIN` or next to the test exe).
pub fn myelin_bin() -> PathBuf {
    locate_binary("MYELIN_BIN", "myelin", "cargo build -p myelin")
}

/// Path of the `myelin-admin` binary (`MYELIN_ADMIN_BIN` or next to the test exe).
pub fn admin_bin() -> PathBuf {
    locate_binary(
        "MYELIN_ADMIN_BIN",
        "myelin-admin",
        "cargo build -p myelin-admin",
    )
}

fn locate_binary(env: &str, name: &str, build_hint: &str) -> PathBuf {
    let path = match std::env::var_os(env) {
        Some(path) => PathBuf::from(path),
        None => {
            let exe = std::env::current_exe().expect("path of the current test executable");
            // target/<profile>/deps/it-<hash> → target/<profile>/<name>
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("the test executable lives in target/<profile>/deps/");
            profile_dir.join(name)
        }
    };
    assert!(
        path.is_file(),
        "the `{name}` binary was not found at {}: build it with `{build_hint}` \
         (with the same CARGO_TARGET_DIR), or point {env} at it",
        path.display()
    );
    path
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/// How to configure a test server: `MYELIN_*` environment variables and an
/// optional TOML configuration file.
///
/// The defaults keep tests fast and deterministic: open registration, rate
/// limits off, very cheap Argon2 parameters. The harness itself always sets
/// `MYELIN_DATABASE_PATH` (a temporary directory) and `MYELIN_LISTEN` (a free
/// loopback port) unless the options set them explicitly. Inherited
/// `MYELIN_*` variables of the test process are never passed on.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    env: BTreeMap<String, String>,
    config_toml: Option<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        let mut env = BTreeMap::new();
        for (key, value) in [
            ("MYELIN_SERVER_NAME", DEFAULT_SERVER_NAME),
            ("MYELIN_REGISTRATION", "open"),
            ("MYELIN_RATE_LIMITS__ENABLED", "false"),
            ("MYELIN_PASSWORD__ARGON2_MEMORY_KIB", "64"),
            ("MYELIN_PASSWORD__ARGON2_ITERATIONS", "1"),
            ("MYELIN_LOG__FORMAT", "text"),
            ("MYELIN_LOG__LEVEL", "info,myelin=debug"),
        ] {
            env.insert(key.to_owned(), value.to_owned());
        }
        Self {
            env,
            config_toml: None,
        }
    }
}

impl ServerOptions {
    /// The defaults described on [`ServerOptions`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (or overrides) one environment variable.
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.insert(key.to_owned(), value.into());
        self
    }

    /// Removes a variable the defaults would set.
    pub fn without_env(mut self, key: &str) -> Self {
        self.env.remove(key);
        self
    }

    /// Writes `toml` to a file in the server's directory and passes
    /// `--config <file>`.
    pub fn config_toml(mut self, toml: &str) -> Self {
        self.config_toml = Some(toml.to_owned());
        self
    }

    /// `MYELIN_SERVER_NAME`.
    pub fn server_name(self, name: &str) -> Self {
        self.env("MYELIN_SERVER_NAME", name)
    }

    /// `MYELIN_REGISTRATION` (`open`, `token` or `closed`).
    pub fn registration(self, mode: &str) -> Self {
        self.env("MYELIN_REGISTRATION", mode)
    }

    /// `MYELIN_REGISTRATION_SHARED_SECRET`.
    pub fn shared_secret(self, secret: &str) -> Self {
        self.env("MYELIN_REGISTRATION_SHARED_SECRET", secret)
    }

    /// `MYELIN_RATE_LIMITS__ENABLED`.
    pub fn rate_limits(self, enabled: bool) -> Self {
        self.env("MYELIN_RATE_LIMITS__ENABLED", enabled.to_string())
    }

    /// The value a variable will have, if set by these options.
    pub fn get_env(&self, key: &str) -> Option<&str> {
        self.env.get(key).map(String::as_str)
    }

    /// The `myelin` command for these options, with `dir` as the working
    /// directory and home of the database and config file. `port` is used for
    /// `MYELIN_LISTEN` unless the options set it.
    fn command(&self, dir: &Path, port: u16, args: &[&str]) -> Command {
        let mut cmd = Command::new(myelin_bin());
        for (key, _) in std::env::vars_os() {
            if key
                .to_string_lossy()
                .to_ascii_uppercase()
                .starts_with("MYELIN_")
            {
                cmd.env_remove(key);
            }
        }
        cmd.env_remove("RUST_LOG");
        cmd.env("MYELIN_DATABASE_PATH", dir.join("db"));
        cmd.env("MYELIN_LISTEN", format!("127.0.0.1:{port}"));
        cmd.envs(&self.env);
        if let Some(toml) = &self.config_toml {
            let path = dir.join("myelin.toml");
            std::fs::write(&path, toml).expect("write the test config file");
            cmd.arg("--config").arg(path);
        }
        cmd.args(args);
        cmd.current_dir(dir);
        cmd.stdin(Stdio::null());
        cmd
    }
}

// ---------------------------------------------------------------------------
// Responses, sessions, authentication
// ---------------------------------------------------------------------------

/// A response: status, body parsed as JSON (`Value::Null` when empty, a JSON
/// string holding the raw text when it is not JSON), headers.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: StatusCode,
    pub body: Value,
    pub headers: HeaderMap,
    /// The raw body text.
    pub text: String,
}

impl Resp {
    async fn read(response: reqwest::Response) -> Resp {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()))
        };
        Resp {
            status,
            body,
            headers,
            text,
        }
    }

    /// Asserts the status is `expected` and returns the body.
    #[track_caller]
    pub fn expect(&self, expected: StatusCode) -> &Value {
        assert_eq!(
            self.status, expected,
            "unexpected status; response body: {}",
            self.text
        );
        &self.body
    }

    /// Asserts a 200 and returns the body.
    #[track_caller]
    pub fn ok(&self) -> &Value {
        self.expect(StatusCode::OK)
    }

    /// The `errcode` of an error body, if any.
    pub fn errcode(&self) -> Option<&str> {
        self.body.get("errcode").and_then(Value::as_str)
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `body[key]` as a string, panicking with the body when absent.
    #[track_caller]
    pub fn str_field(&self, key: &str) -> &str {
        self.body
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("response has no string field {key:?}: {}", self.text))
    }
}

/// Asserts `resp` is a Matrix error with this status and `errcode`, and that
/// it carries a human-readable `error` string (the spec's standard error
/// body). Returns the body.
#[track_caller]
pub fn assert_matrix_error(resp: &Resp, status: StatusCode, errcode: &str) -> Value {
    assert_eq!(
        (resp.status, resp.errcode()),
        (status, Some(errcode)),
        "expected a {status} {errcode} error, got: {}",
        resp.text
    );
    let content_type = resp.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "error responses must be JSON, got content-type {content_type:?}"
    );
    if let Some(error) = resp.body.get("error") {
        assert!(error.is_string(), "`error` must be a string: {}", resp.text);
    }
    resp.body.clone()
}

/// What the login/register endpoints return.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: String,
    pub access_token: String,
    pub device_id: String,
    pub refresh_token: Option<String>,
    pub expires_in_ms: Option<u64>,
}

impl Session {
    /// Extracts a session from a successful login/register/refresh-like body.
    #[track_caller]
    pub fn from_body(body: &Value) -> Session {
        let field = |key: &str| {
            body.get(key)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("no string {key:?} in {body}"))
                .to_owned()
        };
        Session {
            user_id: field("user_id"),
            access_token: field("access_token"),
            device_id: field("device_id"),
            refresh_token: body
                .get("refresh_token")
                .and_then(Value::as_str)
                .map(str::to_owned),
            expires_in_ms: body.get("expires_in_ms").and_then(Value::as_u64),
        }
    }

    /// The localpart of the user ID (`alice` for `@alice:server`).
    pub fn localpart(&self) -> &str {
        self.user_id
            .trim_start_matches('@')
            .split(':')
            .next()
            .unwrap_or_default()
    }
}

/// Something that can authenticate a request (or not).
pub trait AsToken {
    /// The access token to send as `Authorization: Bearer …`, if any.
    fn access_token(&self) -> Option<&str>;
}

/// No authentication: `server.get(path, &NoAuth)`.
pub struct NoAuth;

impl AsToken for NoAuth {
    fn access_token(&self) -> Option<&str> {
        None
    }
}

impl AsToken for Session {
    fn access_token(&self) -> Option<&str> {
        Some(&self.access_token)
    }
}

impl AsToken for str {
    fn access_token(&self) -> Option<&str> {
        Some(self)
    }
}

impl AsToken for String {
    fn access_token(&self) -> Option<&str> {
        Some(self)
    }
}

/// `auth` for User-Interactive Authentication with a password (identifier
/// form), for the given UIA `session`.
pub fn password_auth(user: &str, password: &str, session: Option<&str>) -> Value {
    let mut auth = json!({
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
    });
    if let Some(session) = session {
        auth["session"] = json!(session);
    }
    auth
}

/// Whether a UIA 401 body offers a flow consisting of exactly `stages`.
pub fn has_flow(body: &Value, stages: &[&str]) -> bool {
    body["flows"].as_array().is_some_and(|flows| {
        flows.iter().any(|flow| {
            flow["stages"].as_array().is_some_and(|s| {
                s.iter()
                    .map(|v| v.as_str().unwrap_or_default())
                    .eq(stages.iter().copied())
            })
        })
    })
}

/// The Synapse-compatible shared-secret registration MAC: hex of
/// HMAC-SHA1(secret, nonce NUL username NUL password NUL "admin"|"notadmin").
pub fn shared_secret_mac(
    secret: &str,
    nonce: &str,
    username: &str,
    password: &str,
    admin: bool,
) -> String {
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(nonce.as_bytes());
    mac.update(b"\0");
    mac.update(username.as_bytes());
    mac.update(b"\0");
    mac.update(password.as_bytes());
    mac.update(b"\0");
    mac.update(if admin {
        b"admin".as_slice()
    } else {
        b"notadmin".as_slice()
    });
    hex::encode(mac.finalize().into_bytes())
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// Output of a finished command.
#[derive(Debug)]
pub struct CmdOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    /// The exit code (`None` when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Asserts exit code 0 and returns stdout.
    #[track_caller]
    pub fn success(&self) -> &str {
        assert!(
            self.status.success(),
            "command failed ({}): stdout: {}\nstderr: {}",
            self.status,
            self.stdout,
            self.stderr
        );
        &self.stdout
    }
}

/// Runs a command to completion (at most `timeout`), capturing its output.
/// Panics when it does not finish in time (after killing it).
pub async fn run_command(cmd: tokio::process::Command, timeout: Duration) -> CmdOutput {
    run_command_with_stdin(cmd, None, timeout).await
}

/// [`run_command`], writing `stdin` to the command's standard input first.
pub async fn run_command_with_stdin(
    mut cmd: tokio::process::Command,
    stdin: Option<&str>,
    timeout: Duration,
) -> CmdOutput {
    use tokio::io::AsyncWriteExt;
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .await
            .expect("write to the command's stdin");
        drop(pipe);
    }
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => CmdOutput {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        },
        Ok(Err(e)) => panic!("waiting for {cmd:?}: {e}"),
        Err(_) => panic!("{cmd:?} did not finish within {timeout:?}"),
    }
}

/// Runs `myelin-admin <args>` (with no inherited `MYELIN_*` variables) and
/// returns its output.
pub async fn myelin_admin(args: &[&str]) -> CmdOutput {
    myelin_admin_with_stdin(args, None).await
}

/// [`myelin_admin`] with text on standard input (for `--password-stdin`).
pub async fn myelin_admin_with_stdin(args: &[&str], stdin: Option<&str>) -> CmdOutput {
    let mut cmd = tokio::process::Command::new(admin_bin());
    for (key, _) in std::env::vars_os() {
        if key
            .to_string_lossy()
            .to_ascii_uppercase()
            .starts_with("MYELIN_")
        {
            cmd.env_remove(key);
        }
    }
    cmd.args(args);
    run_command_with_stdin(cmd, stdin, Duration::from_secs(30)).await
}

/// Runs `myelin <args>` with `options` in a fresh temporary directory and
/// waits (at most 15 s) for it to exit. For commands that are expected to
/// exit by themselves (`generate-config`, `check-config`, refused start-ups).
/// If the process is still running after the timeout it is killed and the
/// test fails: a server that should have refused to start did not.
pub async fn run_myelin_to_exit(options: &ServerOptions, args: &[&str]) -> CmdOutput {
    let dir = TempDir::with_prefix("myelin-run-").expect("create a temporary directory");
    let std_cmd = options.command(dir.path(), free_port(), args);
    let cmd = tokio::process::Command::from(std_cmd);
    run_command(cmd, Duration::from_secs(15)).await
}

/// One spawned `myelin` process with its own port and database directory.
pub struct TestServer {
    dir: TempDir,
    options: ServerOptions,
    port: u16,
    child: Option<Child>,
    runs: u32,
    http: reqwest::Client,
}

impl TestServer {
    /// Spawns a server with `options` and waits until it is ready. Panics
    /// (with the server's stderr) when it does not become ready.
    pub async fn start(options: ServerOptions) -> TestServer {
        let dir = TempDir::with_prefix("myelin-test-").expect("create a temporary directory");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("build the HTTP client");
        // A port given in the options wins (e.g. when the server name must contain it).
        let port = options
            .get_env("MYELIN_LISTEN")
            .and_then(|listen| listen.parse::<std::net::SocketAddr>().ok())
            .map_or_else(free_port, |addr| addr.port());
        let mut server = TestServer {
            dir,
            options,
            port,
            child: None,
            runs: 0,
            http,
        };
        server.spawn_until_ready().await;
        server
    }

    /// A server with the default options.
    pub async fn start_default() -> TestServer {
        Self::start(ServerOptions::new()).await
    }

    /// Spawns the process and waits for `/health`, retrying on a fresh port
    /// when another process grabbed ours in between.
    async fn spawn_until_ready(&mut self) {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.try_spawn().await {
                Ok(()) => return,
                Err(e) => {
                    let log = self.current_log();
                    let port_taken =
                        log.contains("Address already in use") || log.contains("address in use");
                    if port_taken && attempts < 4 {
                        self.port = free_port();
                        continue;
                    }
                    panic!("myelin did not start: {e:#}\n--- stderr ---\n{log}");
                }
            }
        }
    }

    async fn try_spawn(&mut self) -> anyhow::Result<()> {
        assert!(self.child.is_none(), "the server is already running");
        self.runs += 1;
        let stderr = File::create(self.log_path(self.runs)).context("create the stderr log")?;
        let stdout = File::create(self.dir.path().join(format!("stdout-{}.log", self.runs)))?;
        let mut cmd = self.options.command(self.dir.path(), self.port, &[]);
        cmd.stdout(stdout).stderr(stderr);
        let child = cmd.spawn().with_context(|| format!("spawn {cmd:?}"))?;
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        let health = format!("{}/health", self.url());
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                bail!("the process exited before becoming ready ({status})");
            }
            if let Ok(response) = self
                .http
                .get(&health)
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                if status == StatusCode::OK {
                    if text.trim() != "OK" {
                        bail!("GET /health answered 200 with body {text:?} instead of \"OK\"");
                    }
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                self.kill_child();
                bail!("GET /health did not answer 200 within {READY_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_path(&self, run: u32) -> PathBuf {
        self.dir.path().join(format!("stderr-{run}.log"))
    }

    /// The stderr of the current (or last) run.
    pub fn current_log(&self) -> String {
        std::fs::read_to_string(self.log_path(self.runs)).unwrap_or_default()
    }

    /// The stderr of every run so far, concatenated.
    pub fn all_logs(&self) -> String {
        (1..=self.runs)
            .map(|run| {
                format!(
                    "--- myelin stderr, run {run} ---\n{}",
                    std::fs::read_to_string(self.log_path(run)).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The listening port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The configured server name.
    pub fn server_name(&self) -> &str {
        self.options
            .get_env("MYELIN_SERVER_NAME")
            .unwrap_or("localhost")
    }

    /// `@localpart:server_name`.
    pub fn user_id(&self, localpart: &str) -> String {
        format!("@{localpart}:{}", self.server_name())
    }

    /// The options this server was started with.
    pub fn options(&self) -> &ServerOptions {
        &self.options
    }

    /// The database directory (kept across restarts).
    pub fn database_path(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is not running").id()
    }

    /// The shared HTTP client (no proxy, 30 s timeout).
    pub fn client(&self) -> &reqwest::Client {
        &self.http
    }

    /// An HTTP client whose connections come from `source` (any 127.x.y.z
    /// address works on Linux loopback), to act as distinct client IPs.
    pub fn client_from(&self, source: std::net::IpAddr) -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .local_address(source)
            .build()
            .expect("build the HTTP client")
    }

    /// [`TestServer::login_raw`] over a given client (see [`TestServer::client_from`]).
    pub async fn login_raw_via(
        &self,
        client: &reqwest::Client,
        username: &str,
        password: &str,
    ) -> Resp {
        let body = json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": username},
            "password": password,
        });
        self.send(
            client
                .post(format!("{}/_matrix/client/v3/login", self.url()))
                .json(&body),
        )
        .await
    }

    // -- HTTP ---------------------------------------------------------------

    /// A request builder for `path` (which starts with `/`), authenticated
    /// with `auth` when it has a token. Send it with [`TestServer::send`].
    pub fn request(
        &self,
        method: Method,
        path: &str,
        auth: &(impl AsToken + ?Sized),
    ) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.url()));
        match auth.access_token() {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub async fn delete(&self, path: &str, auth: &(impl AsToken + ?Sized), body: &Value) -> Resp {
        self.send(self.request(Method::DELETE, path, auth).json(body))
            .await
    }

    // -- Accounts -----------------------------------------------------------

    /// `POST /_matrix/client/v3/register` through the `m.login.dummy` UIA
    /// flow: sends `body` without `auth`, expects a 401 with a session, then
    /// sends it again with `auth: {type: m.login.dummy, session}`. Returns
    /// the final response (or the first one, when it was not a 401).
    pub async fn register_raw(&self, body: Value) -> Resp {
        self.register_with_auth(body, "m.login.dummy", None).await
    }

    /// Like [`TestServer::register_raw`] with an arbitrary auth stage type;
    /// `extra` fields are merged into the `auth` object (e.g. `token`).
    pub async fn register_with_auth(&self, body: Value, stage: &str, extra: Option<Value>) -> Resp {
        let path = "/_matrix/client/v3/register";
        let first = self.post(path, &NoAuth, &body).await;
        if first.status != StatusCode::UNAUTHORIZED {
            return first;
        }
        let Some(session) = first.body.get("session").and_then(Value::as_str) else {
            panic!("register 401 without a UIA session: {}", first.text);
        };
        let mut auth = json!({"type": stage, "session": session});
        if let Some(Value::Object(extra)) = extra {
            for (key, value) in extra {
                auth[key] = value;
            }
        }
        let mut body = body;
        body["auth"] = auth;
        self.post(path, &NoAuth, &body).await
    }

    /// Registers `username` with `password` (open registration) and returns
    /// the new session. Panics when registration fails.
    pub async fn register(&self, username: &str, password: &str) -> Session {
        let resp = self
            .register_raw(json!({"username": username, "password": password}))
            .await;
        Session::from_body(resp.ok())
    }

    /// Logs in with `m.login.password` and an `m.id.user` identifier.
    pub async fn login_raw(&self, username: &str, password: &str) -> Resp {
        let body = json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": username},
            "password": password,
        });
        self.post("/_matrix/client/v3/login", &NoAuth, &body).await
    }

    /// Logs in (see [`TestServer::login_raw`]); panics unless it succeeds.
    pub async fn login(&self, username: &str, password: &str) -> Session {
        Session::from_body(self.login_raw(username, password).await.ok())
    }

    /// Sends a request that needs User-Interactive Authentication with a
    /// password: first without `auth` (which must answer 401 offering an
    /// `m.login.password` flow and a session), then with password auth for
    /// `user`. Returns the second response.
    pub async fn with_password_uia(
        &self,
        method: Method,
        path: &str,
        session: &Session,
        body: Value,
        password: &str,
    ) -> Resp {
        let first = self
            .send(self.request(method.clone(), path, session).json(&body))
            .await;
        assert_eq!(
            first.status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without auth must start UIA: {}",
            first.text
        );
        assert!(
            has_flow(&first.body, &["m.login.password"]),
            "no m.login.password flow offered: {}",
            first.text
        );
        let uia_session = first.body.get("session").and_then(Value::as_str);
        let mut body = body;
        body["auth"] = password_auth(session.localpart(), password, uia_session);
        self.send(self.request(method, path, session).json(&body))
            .await
    }

    /// `GET /_matrix/client/v3/account/whoami`.
    pub async fn whoami(&self, auth: &(impl AsToken + ?Sized)) -> Resp {
        self.get("/_matrix/client/v3/account/whoami", auth).await
    }

    // -- Lifecycle ----------------------------------------------------------

    /// Sends SIGTERM and waits for the process to exit; asserts it exits
    /// with status 0 within 10 s. Returns how long it took.
    pub async fn stop_gracefully(&mut self) -> Duration {
        let pid = self.pid();
        let started = Instant::now();
        signal(pid, "TERM");
        let status = self.wait_exit(STOP_TIMEOUT).await;
        let Some(status) = status else {
            let log = self.all_logs();
            self.kill_child();
            panic!("myelin did not exit within {STOP_TIMEOUT:?} after SIGTERM\n{log}");
        };
        assert!(
            status.success(),
            "myelin exited with {status} after SIGTERM (expected 0)\n{}",
            self.all_logs()
        );
        started.elapsed()
    }

    /// SIGKILL: no chance to flush anything.
    pub async fn kill(&mut self) {
        self.kill_child();
    }

    /// Graceful stop then start again on the same database.
    pub async fn restart(&mut self) {
        self.stop_gracefully().await;
        self.start_again().await;
    }

    /// Starts the (stopped or killed) server again on the same database.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "stop the server first");
        self.spawn_until_ready().await;
    }

    /// Polls for the exit of the process for at most `timeout`.
    async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().expect("the server is not running");
            if let Some(status) = child.try_wait().expect("wait for myelin") {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn kill_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // Ask nicely first so RocksDB can close cleanly, then insist.
            signal(child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            self.kill_child();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.all_logs());
        }
    }
}

/// `kill -<sig> <pid>`.
fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Matrix canonical JSON (keys sorted, no insignificant whitespace), as signatures cover it:
/// the tests check servers' signatures independently of the server crates.
pub fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let members: Vec<String> = keys
                .into_iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::to_string(k).unwrap(),
                        canonical_json(&map[k])
                    )
                })
                .collect();
            format!("{{{}}}", members.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(canonical_json)
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => serde_json::to_string(other).unwrap(),
    }
}

/// What the Myelin and Synapse harnesses share: build a request to the server, send it, read
/// the whole answer.
#[allow(async_fn_in_trait)]
pub trait HttpPeer {
    fn request(&self, method: Method, path: &str, auth: &(impl AsToken + ?Sized)) -> reqwest::RequestBuilder;

    /// Sends a request and reads the whole response.
    async fn send(&self, builder: reqwest::RequestBuilder) -> Resp {
        let response = builder.send().await.unwrap_or_else(|e| panic!("request failed: {e:#?}"));
        Resp::read(response).await
    }

    async fn get(&self, path: &str, auth: &(impl AsToken + ?Sized)) -> Resp {
        self.send(self.request(Method::GET, path, auth)).await
    }

    async fn post(&self, path: &str, auth: &(impl AsToken + ?Sized), body: &Value) -> Resp {
        self.send(self.request(Method::POST, path, auth).json(body)).await
    }

    async fn put(&self, path: &str, auth: &(impl AsToken + ?Sized), body: &Value) -> Resp {
        self.send(self.request(Method::PUT, path, auth).json(body)).await
    }
}

impl HttpPeer for TestServer {
    fn request(&self, method: Method, path: &str, auth: &(impl AsToken + ?Sized)) -> reqwest::RequestBuilder {
        TestServer::request(self, method, path, auth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_secret_mac_matches_an_independent_computation() {
        // Computed with Python's hmac module.
        assert_eq!(
            shared_secret_mac("secret", "nonce", "alice", "pw", true),
            "d7b3ebc9fec30d9bed19eb81e3902aa4ad214333"
        );
        assert_eq!(
            shared_secret_mac("secret", "nonce", "alice", "pw", false),
            "f9b5e1dbfecb7b1d1b89cbd7a2fd60853cf609f4"
        );
    }

    #[test]
    fn uia_flow_matching() {
        let body = json!({"flows": [{"stages": ["m.login.dummy"]}, {"stages": ["a", "b"]}]});
        assert!(has_flow(&body, &["m.login.dummy"]));
        assert!(has_flow(&body, &["a", "b"]));
        assert!(!has_flow(&body, &["a"]));
        assert!(!has_flow(&json!({}), &["m.login.dummy"]));
    }
}
