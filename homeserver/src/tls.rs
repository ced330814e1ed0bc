//! TLS for the federation listener: the rustls server configuration (from PEM files, or a
//! self-signed certificate generated once and kept under `<database_path>/tls/`) and a
//! listener that hands `axum::serve` connections whose TLS handshake is complete.

use std::{
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use myelin_config::Config;
use rustls::{
    ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
    task::JoinHandle,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

use crate::error::{Error, Result};

/// A client that has not finished its TLS handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for `axum::serve` to pick them up.
const ACCEPT_QUEUE: usize = 64;

/// Directory (under the database path) and file names of the generated certificate.
const SELF_SIGNED_DIR: &str = "tls";
const SELF_SIGNED_CERT: &str = "federation-self-signed.crt";
const SELF_SIGNED_KEY: &str = "federation-self-signed.key";

/// The federation listener's TLS configuration: `federation.tls_certificate` and
/// `federation.tls_private_key` when set, otherwise (with
/// `federation.generate_self_signed_certificate`) the generated certificate.
pub fn server_config(config: &Config) -> Result<Arc<ServerConfig>> {
    let federation = &config.federation;
    match (&federation.tls_certificate, &federation.tls_private_key) {
        (Some(cert), Some(key)) => load_pem(cert, key),
        (None, None) if federation.generate_self_signed_certificate => {
            let (cert, key) = self_signed_files(config)?;
            load_pem(&cert, &key)
        }
        (None, None) => Err(Error::internal(
            "federation.listen is set, but the federation listener serves TLS and has no \
             certificate: set federation.tls_certificate and federation.tls_private_key, or set \
             federation.generate_self_signed_certificate = true (local testing only)",
        )),
        _ => Err(Error::internal(
            "federation.tls_certificate and federation.tls_private_key must be set together",
        )),
    }
}

/// A rustls server configuration (aws-lc-rs, HTTP/2 and HTTP/1.1 via ALPN) from a PEM
/// certificate chain (leaf first) and a PEM private key.
pub fn load_pem(cert_path: &Path, key_path: &Path) -> Result<Arc<ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            Error::internal(format!(
                "cannot read the TLS certificate chain {} (federation.tls_certificate): {e}",
                cert_path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::internal(format!(
            "the TLS certificate file {} (federation.tls_certificate) holds no PEM certificate",
            cert_path.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
        Error::internal(format!(
            "cannot read the TLS private key {} (federation.tls_private_key): {e}",
            key_path.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::internal(format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            Error::internal(format!(
                "the TLS certificate {} and private key {} are not usable together: {e}",
                cert_path.display(),
                key_path.display()
            ))
        })?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}

/// The generated certificate and key files, created on first use (for the server name's
/// host, `localhost` and `127.0.0.1`) and reused afterwards.
fn self_signed_files(config: &Config) -> Result<(PathBuf, PathBuf)> {
    let dir = config.database_path.join(SELF_SIGNED_DIR);
    let cert_path = dir.join(SELF_SIGNED_CERT);
    let key_path = dir.join(SELF_SIGNED_KEY);
    if cert_path.is_file() && key_path.is_file() {
        return Ok((cert_path, key_path));
    }

    let host = config.server_name_host();
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let mut names = vec![host.to_owned()];
    for extra in ["localhost", "127.0.0.1"] {
        if !names.iter().any(|name| name == extra) {
            names.push(extra.to_owned());
        }
    }
    let generated = rcgen::generate_simple_self_signed(names.clone()).map_err(|e| {
        Error::internal(format!("cannot generate a self-signed certificate for {names:?}: {e}"))
    })?;

    let io_error = |path: &Path, e: io::Error| {
        Error::internal(format!("cannot write the self-signed certificate {}: {e}", path.display()))
    };
    std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    // The key first: the pair counts as present only once the certificate exists too.
    write_atomically(&key_path, generated.signing_key.serialize_pem().as_bytes(), true)
        .map_err(|e| io_error(&key_path, e))?;
    write_atomically(&cert_path, generated.cert.pem().as_bytes(), false)
        .map_err(|e| io_error(&cert_path, e))?;
    tracing::warn!(
        certificate = %cert_path.display(),
        ?names,
        "generated a self-signed federation TLS certificate; other servers will not trust it"
    );
    Ok((cert_path, key_path))
}

/// Writes `contents` to a temporary file next to `path`, then renames it into place.
/// `private` files are readable by the owner only (on Unix).
fn write_atomically(path: &Path, contents: &[u8], private: bool) -> io::Result<()> {
    use std::io::Write as _;

    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// An [`axum::serve::Listener`] yielding TLS streams. A background task accepts TCP
/// connections and runs each handshake in its own task (with a timeout), so a slow
/// client never holds up the others. Dropping the listener (as `axum::serve` does on
/// graceful shutdown) stops accepting and closes the socket.
pub struct TlsListener {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    accepting: JoinHandle<()>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, tls: Arc<ServerConfig>) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (queue, ready) = mpsc::channel(ACCEPT_QUEUE);
        let accepting = tokio::spawn(accept_loop(listener, TlsAcceptor::from(tls), queue));
        Ok(Self { local_addr, ready, accepting })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept loop only ends when this listener is dropped, or if it panicked.
            None => {
                tracing::error!(addr = %self.local_addr, "federation TLS accept loop ended");
                std::future::pending().await
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    queue: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // e.g. out of file descriptors: back off instead of spinning
                tracing::error!(error = %e, "federation listener cannot accept connections");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let queue = queue.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    // Fails only once the listener is gone; the connection is then dropped.
                    let _ = queue.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
