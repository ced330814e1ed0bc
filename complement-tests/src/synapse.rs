//! Synapse as a peer homeserver: [`SynapseServer::start`] runs the reference
//! implementation (PyPI `matrix-synapse`, pinned in
//! `complement-tests/synapse/requirements.txt`) from the virtualenv
//! `complement-tests/synapse/.venv`, which `./dev test` installs.
//!
//! Each server lives in its own temporary directory: a configuration written
//! from scratch (SQLite database, open registration, relaxed rate limits,
//! loopback federation allowed, no trusted key servers, presence off), the
//! signing key made by Synapse's `--generate-config`, and its log file
//! (printed when a test panics or the server does not come up).
//!
//! Listeners, all on 127.0.0.1:
//! * [`SynapseServer::url`]: plain HTTP with the `client` and `federation`
//!   resources;
//! * with [`SynapseOptions::tls_federation`], a second listener with only the
//!   `federation` resource over TLS with a self-signed certificate (what a
//!   federating server connects to); [`SynapseServer::federation_url`] points
//!   there, otherwise at the plain listener.
//!
//! [`SynapseServer::stop`] (SIGTERM) and [`SynapseServer::kill`] (SIGKILL) end the process
//! and keep its directory; [`SynapseServer::start_again`] resumes on the same ports,
//! database and signing key.
//!
//! `SYNAPSE_PYTHON` overrides the interpreter (it must have `synapse`
//! installed). When the virtualenv is missing the harness panics and says how
//! to install it; tests never skip.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Map;
use tempfile::TempDir;

use super::HttpPeer;
use super::{AsToken, Method, NoAuth, Resp, Session, StatusCode, Value, json};

/// Synapse needs several seconds to start (imports, SQLite schema setup).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Per-request timeout of the harness's HTTP clients.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Synapse may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Default server name of Synapse peers.
pub const DEFAULT_SYNAPSE_SERVER_NAME: &str = "synapse.test";

/// The directory holding `requirements.txt` and the `.venv`.
pub fn synapse_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("synapse")
}

/// The Python interpreter with Synapse installed: `SYNAPSE_PYTHON` or
/// `complement-tests/synapse/.venv/bin/python`. Panics with install
/// instructions when it is missing.
pub fn synapse_python() -> PathBuf {
    if let Some(path) = std::env::var_os("SYNAPSE_PYTHON") {
        return PathBuf::from(path);
    }
    let dir = synapse_dir();
    let python = dir.join(".venv/bin/python");
    assert!(
        python.is_file(),
        "Synapse is not installed: {} is missing. `./dev test` installs it; by hand: \
         python3 -m venv {venv} && {venv}/bin/pip install -r {req} (or point SYNAPSE_PYTHON \
         at an interpreter that has matrix-synapse)",
        python.display(),
        venv = dir.join(".venv").display(),
        req = dir.join("requirements.txt").display(),
    );
    python
}

/// How to configure a Synapse peer.
#[derive(Debug, Clone)]
pub struct SynapseOptions {
    server_name: String,
    tls_federation: bool,
    federation_port: Option<u16>,
    registration_shared_secret: String,
    overrides: Map<String, Value>,
}

impl Default for SynapseOptions {
    fn default() -> Self {
        Self {
            server_name: DEFAULT_SYNAPSE_SERVER_NAME.to_owned(),
            tls_federation: false,
            federation_port: None,
            registration_shared_secret: "synapse-test-shared-secret".to_owned(),
            overrides: Map::new(),
        }
    }
}

impl SynapseOptions {
    /// Server name `synapse.test`, plain HTTP listener only.
    pub fn new() -> Self {
        Self::default()
    }

    /// `server_name`.
    pub fn server_name(mut self, name: &str) -> Self {
        self.server_name = name.to_owned();
        self
    }

    /// Adds a TLS listener (self-signed certificate) serving federation.
    pub fn tls_federation(mut self, enabled: bool) -> Self {
        self.tls_federation = enabled;
        self
    }

    /// `registration_shared_secret` (used by [`SynapseServer::register`]).
    /// Serve TLS federation on this port (so the server name can be `127.0.0.1:<port>` and
    /// peers reach it directly); implies `tls_federation(true)`.
    pub fn federation_port(mut self, port: u16) -> Self {
        self.tls_federation = true;
        self.federation_port = Some(port);
        self
    }

    pub fn shared_secret(mut self, secret: &str) -> Self {
        self.registration_shared_secret = secret.to_owned();
        self
    }

    /// Sets (or replaces) one top-level key of `homeserver.yaml`.
    pub fn config(mut self, key: &str, value: Value) -> Self {
        self.overrides.insert(key.to_owned(), value);
        self
    }
}

/// One running Synapse process with its own ports, database and keys.
pub struct SynapseServer {
    dir: TempDir,
    options: SynapseOptions,
    port: u16,
    federation_port: Option<u16>,
    child: Option<Child>,
    http: reqwest::Client,
}

impl SynapseServer {
    /// Generates the configuration, spawns Synapse and waits (at most 60 s)
    /// until `GET /_matrix/client/versions` answers 200. Panics with the log
    /// when it does not.
    pub async fn start(options: SynapseOptions) -> SynapseServer {
        let dir = TempDir::with_prefix("synapse-test-").expect("create a temporary directory");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .danger_accept_invalid_certs(true)
            .build()
            .expect("build the HTTP client");
        let federation_port = options.tls_federation.then(|| options.federation_port.unwrap_or_else(super::free_port));
        let mut server = SynapseServer {
            dir,
            options,
            port: super::free_port(),
            federation_port,
            child: None,
            http,
        };
        if let Err(e) = server.try_start().await {
            server.kill_child();
            panic!("Synapse did not start: {e:#}\n{}", server.logs());
        }
        server
    }

    /// Starts with [`SynapseOptions::new`].
    pub async fn start_default() -> SynapseServer {
        Self::start(SynapseOptions::new()).await
    }

    async fn try_start(&mut self) -> anyhow::Result<()> {
        let python = synapse_python();
        let dir = self.dir.path().to_owned();
        let config_path = dir.join("homeserver.yaml");

        // Synapse's own generator makes the signing key (and a config we then
        // replace with our own, so nothing depends on its template).
        let output = Command::new(&python)
            .args(["-m", "synapse.app.homeserver", "--server-name"])
            .arg(&self.options.server_name)
            .arg("--config-path")
            .arg(&config_path)
            .arg("--data-directory")
            .arg(&dir)
            .args(["--generate-config", "--report-stats=no"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("run {} -m synapse.app.homeserver", python.display()))?;
        if !output.status.success() {
            bail!(
                "--generate-config failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let signing_key = dir.join(format!("{}.signing.key", self.options.server_name));
        if !signing_key.is_file() {
            bail!("--generate-config made no {}", signing_key.display());
        }

        if self.federation_port.is_some() {
            self.make_certificate(&python)?;
        }
        let log_config = dir.join("log.config.yaml");
        std::fs::write(&log_config, self.log_config())?;
        // JSON is YAML: serde_json writes the file, no YAML emitter needed.
        let config = self.config(&signing_key, &log_config);
        std::fs::write(&config_path, serde_json::to_string_pretty(&config)?)?;
        self.spawn_until_ready().await
    }

    /// Spawns Synapse on the configuration already in the directory and waits until
    /// `GET /_matrix/client/versions` answers 200. stdout and stderr are appended to, so the
    /// output of earlier runs stays in [`SynapseServer::logs`].
    async fn spawn_until_ready(&mut self) -> anyhow::Result<()> {
        let python = synapse_python();
        let dir = self.dir.path().to_owned();
        let config_path = dir.join("homeserver.yaml");
        let append = |name: &str| File::options().create(true).append(true).open(dir.join(name));
        let stdout = append("stdout.log")?;
        let stderr = append("stderr.log")?;
        let child = Command::new(&python)
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(&config_path)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .context("spawn synapse")?;
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        let versions = format!("{}/_matrix/client/versions", self.url());
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                bail!("synapse exited before becoming ready ({status})");
            }
            if let Ok(response) = self
                .http
                .get(&versions)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                && response.status() == StatusCode::OK
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("GET /_matrix/client/versions did not answer 200 within {READY_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `homeserver.yaml`, as a JSON value.
    fn config(&self, signing_key: &Path, log_config: &Path) -> Value {
        let dir = self.dir.path();
        let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let lenient = json!({"per_second": 10000, "burst_count": 100000});
        let mut listeners = vec![json!({
            "port": self.port,
            "bind_addresses": ["127.0.0.1"],
            "type": "http",
            "tls": false,
            "x_forwarded": false,
            "resources": [{"names": ["client", "federation"], "compress": false}],
        })];
        if let Some(port) = self.federation_port {
            listeners.push(json!({
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": true,
                "x_forwarded": false,
                "resources": [{"names": ["federation"], "compress": false}],
            }));
        }
        let mut config = json!({
            "server_name": self.options.server_name,
            "pid_file": path("homeserver.pid"),
            "listeners": listeners,
            "database": {"name": "sqlite3", "args": {"database": path("homeserver.db")}},
            "log_config": log_config.to_string_lossy(),
            "media_store_path": path("media_store"),
            "signing_key_path": signing_key.to_string_lossy(),
            "registration_shared_secret": self.options.registration_shared_secret,
            "macaroon_secret_key": "synapse-test-macaroon-secret",
            "form_secret": "synapse-test-form-secret",
            "report_stats": false,
            "enable_registration": true,
            "enable_registration_without_verification": true,
            "trusted_key_servers": [],
            "suppress_key_server_warning": true,
            "presence": {"enabled": false},
            "use_presence": false,
            // Peers are loopback processes with self-signed certificates.
            "federation_verify_certificates": false,
            "federation_ip_range_blacklist": [],
            "ip_range_blacklist": [],
            "ip_range_blocklist": [],
            "ip_range_whitelist": ["127.0.0.0/8", "::1/128"],
            "rc_message": lenient,
            "rc_registration": lenient,
            "rc_login": {"address": lenient, "account": lenient, "failed_attempts": lenient},
            "rc_joins": {"local": lenient, "remote": lenient},
            "rc_joins_per_room": lenient,
            "rc_invites": {"per_room": lenient, "per_user": lenient, "per_issuer": lenient},
            "rc_room_creation": lenient,
            "rc_admin_redaction": lenient,
            "rc_key_requests": lenient,
            "rc_profile": lenient,
            "rc_federation": {
                "window_size": 1000,
                "sleep_limit": 10000,
                "sleep_delay": 0,
                "reject_limit": 10000,
                "concurrent": 1000,
            },
        });
        if self.federation_port.is_some() {
            config["tls_certificate_path"] = json!(path("tls.crt"));
            config["tls_private_key_path"] = json!(path("tls.key"));
        }
        let map = config.as_object_mut().expect("an object");
        for (key, value) in &self.options.overrides {
            map.insert(key.clone(), value.clone());
        }
        config
    }

    /// Python logging configuration: everything at INFO into `homeserver.log`.
    fn log_config(&self) -> String {
        let log = self.dir.path().join("homeserver.log");
        serde_json::to_string_pretty(&json!({
            "version": 1,
            "formatters": {"precise": {
                "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s",
            }},
            "handlers": {"file": {
                "class": "logging.FileHandler",
                "formatter": "precise",
                "filename": log.to_string_lossy(),
                "encoding": "utf8",
            }},
            "loggers": {"synapse.storage.SQL": {"level": "INFO"}},
            "root": {"level": "INFO", "handlers": ["file"]},
            "disable_existing_loggers": false,
        }))
        .expect("serialize the log config")
    }

    /// A self-signed certificate for 127.0.0.1 and the server name
    /// (`tls.crt`, `tls.key`): with openssl when present, else with Python's
    /// `cryptography` (a Synapse dependency).
    fn make_certificate(&self, python: &Path) -> anyhow::Result<()> {
        let dir = self.dir.path();
        let host = self
            .options
            .server_name
            .rsplit_once(':')
            .map_or(self.options.server_name.as_str(), |(host, _)| host);
        let openssl = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-keyout", "tls.key", "-out", "tls.crt"])
            .arg("-subj")
            .arg(format!("/CN={host}"))
            .arg("-addext")
            .arg(format!("subjectAltName=DNS:{host},IP:127.0.0.1"))
            .current_dir(dir)
            .stdin(Stdio::null())
            .output();
        if let Ok(output) = &openssl
            && output.status.success()
        {
            return Ok(());
        }
        const SCRIPT: &str = r#"
import datetime, ipaddress, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
host = sys.argv[1]
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
now = datetime.datetime.now(datetime.timezone.utc)
san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
try:
    san.append(x509.IPAddress(ipaddress.ip_address(host)))
except ValueError:
    san.append(x509.DNSName(host))
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
    .public_key(key.public_key()).serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(hours=1))
    .not_valid_after(now + datetime.timedelta(days=2))
    .add_extension(x509.SubjectAlternativeName(san), critical=False)
    .sign(key, hashes.SHA256()))
open("tls.crt", "wb").write(cert.public_bytes(serialization.Encoding.PEM))
open("tls.key", "wb").write(key.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
"#;
        let output = Command::new(python)
            .args(["-c", SCRIPT, host])
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .context("run python to make a certificate")?;
        if !output.status.success() {
            bail!(
                "making a self-signed certificate failed (openssl: {:?}; python: {}):\n{}",
                openssl.map(|o| o.status),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    // -- Accessors ------------------------------------------------------------

    /// Client (and plain federation) base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The TLS federation listener (`https://127.0.0.1:<port>`) when enabled,
    /// else [`SynapseServer::url`] (which serves federation over HTTP too).
    pub fn federation_url(&self) -> String {
        match self.federation_port {
            Some(port) => format!("https://127.0.0.1:{port}"),
            None => self.url(),
        }
    }

    /// The port of the TLS federation listener, if any.
    pub fn federation_port(&self) -> Option<u16> {
        self.federation_port
    }

    /// The port of the client listener.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The configured server name.
    pub fn server_name(&self) -> &str {
        &self.options.server_name
    }

    /// `@localpart:server_name`.
    pub fn user_id(&self, localpart: &str) -> String {
        format!("@{localpart}:{}", self.server_name())
    }

    /// The server's temporary directory (config, database, keys, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// An HTTP client (no proxy, accepts the self-signed certificate).
    pub fn client(&self) -> &reqwest::Client {
        &self.http
    }

    /// `homeserver.log`, stdout and stderr of the process.
    pub fn logs(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!(
            "--- synapse homeserver.log ---\n{}\n--- synapse stdout ---\n{}\n--- synapse stderr ---\n{}",
            read("homeserver.log"),
            read("stdout.log"),
            read("stderr.log")
        )
    }

    // -- HTTP -----------------------------------------------------------------

    /// A request builder for `base` + `path`, authenticated when `auth` has a
    /// token.
    fn request_to(
        &self,
        base: &str,
        method: Method,
        path: &str,
        auth: &(impl AsToken + ?Sized),
    ) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, format!("{base}{path}"));
        match auth.access_token() {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// A request builder for the client listener.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        auth: &(impl AsToken + ?Sized),
    ) -> reqwest::RequestBuilder {
        self.request_to(&self.url(), method, path, auth)
    }

    /// An unauthenticated GET on the federation listener
    /// ([`SynapseServer::federation_url`]), e.g. `/_matrix/key/v2/server`.
    pub async fn federation_get(&self, path: &str) -> Resp {
        let base = self.federation_url();
        self.send(self.request_to(&base, Method::GET, path, &NoAuth))
            .await
    }

    // -- Accounts -------------------------------------------------------------

    /// Registers a user through the shared-secret admin API
    /// (`/_synapse/admin/v1/register`, the same HMAC as Myelin's) and returns
    /// the raw response.
    pub async fn register_raw(&self, username: &str, password: &str, admin: bool) -> Resp {
        let path = "/_synapse/admin/v1/register";
        let nonce_resp = self.get(path, &NoAuth).await;
        let nonce = nonce_resp.str_field("nonce").to_owned();
        let mac = super::shared_secret_mac(
            &self.options.registration_shared_secret,
            &nonce,
            username,
            password,
            admin,
        );
        let body = json!({
            "nonce": nonce,
            "username": username,
            "password": password,
            "admin": admin,
            "mac": mac,
        });
        self.post(path, &NoAuth, &body).await
    }

    /// [`SynapseServer::register_raw`] for a non-admin user; panics unless it
    /// succeeds.
    pub async fn register(&self, username: &str, password: &str) -> Session {
        Session::from_body(self.register_raw(username, password, false).await.ok())
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

    /// Logs in; panics unless it succeeds.
    pub async fn login(&self, username: &str, password: &str) -> Session {
        Session::from_body(self.login_raw(username, password).await.ok())
    }

    // -- Lifecycle ------------------------------------------------------------

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("synapse is not running").id()
    }

    /// SIGTERM, then SIGKILL after 5 s. The directory (configuration, SQLite database,
    /// signing key, logs) stays; [`SynapseServer::start_again`] resumes on it.
    pub async fn stop(&mut self) {
        let Some(child) = self.child.as_mut() else { return };
        super::signal(child.id(), "TERM");
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill_child();
    }

    /// SIGKILL: no chance to flush anything. The directory stays, as with
    /// [`SynapseServer::stop`].
    pub async fn kill(&mut self) {
        self.kill_child();
    }

    /// Starts the stopped or killed server again with the same configuration: same ports,
    /// server name, database and signing key. Panics (with the log) unless it comes up.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "stop synapse first");
        if let Err(e) = self.spawn_until_ready().await {
            self.kill_child();
            panic!("Synapse did not start again: {e:#}\n{}", self.logs());
        }
    }

    fn kill_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SynapseServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            super::signal(child.id(), "TERM");
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    self.child = None;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            self.kill_child();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

impl super::HttpPeer for SynapseServer {
    fn request(&self, method: Method, path: &str, auth: &(impl AsToken + ?Sized)) -> reqwest::RequestBuilder {
        SynapseServer::request(self, method, path, auth)
    }
}
