//! The federation listener: the same router over TLS, with a generated self-signed
//! certificate that is kept across restarts.

use std::net::SocketAddr;

use myelin::{Server, ServerHandle};
use myelin_config::Config;
use tempfile::TempDir;

use crate::support::test_config;

fn federation_config(dir: &TempDir) -> Config {
    let mut config = test_config(dir);
    config.federation.listen = Some("127.0.0.1:0".to_owned());
    config.federation.generate_self_signed_certificate = true;
    config
}

fn tls_client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .tls_info(true)
        .build()
        .unwrap()
}

/// GETs the key server over TLS; returns the JSON body and the server's leaf certificate.
async fn fetch_keys(addr: SocketAddr) -> (serde_json::Value, Vec<u8>) {
    let response = tls_client()
        .get(format!("https://{addr}/_matrix/key/v2/server"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let certificate = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("peer certificate")
        .to_vec();
    (response.json().await.unwrap(), certificate)
}

fn federation_addr(server: &ServerHandle) -> SocketAddr {
    let addr = server.federation_addr().expect("federation listener started");
    assert_ne!(addr.port(), 0);
    assert_ne!(addr, server.local_addr());
    addr
}

#[tokio::test]
async fn serves_the_key_server_over_tls_and_keeps_the_certificate() {
    let dir = TempDir::new().unwrap();
    let server = Server::start(federation_config(&dir)).await.unwrap();
    let addr = federation_addr(&server);

    let (keys, certificate) = fetch_keys(addr).await;
    assert_eq!(keys["server_name"], "test.local", "{keys}");

    // plain HTTP on the TLS port gets no HTTP answer
    let plain = reqwest::Client::new().get(format!("http://{addr}/_matrix/key/v2/server")).send().await;
    assert!(plain.is_err(), "{plain:?}");
    // and the TLS port still works afterwards
    fetch_keys(addr).await;

    server.shutdown().await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "federation listener still open");
    assert!(dir.path().join("db/tls").is_dir());

    let again = Server::start(federation_config(&dir)).await.unwrap();
    let (_, certificate_again) = fetch_keys(federation_addr(&again)).await;
    assert_eq!(certificate_again, certificate, "the self-signed certificate was not reused");
    again.shutdown().await.unwrap();
}

#[tokio::test]
async fn no_federation_listener_unless_configured() {
    let dir = TempDir::new().unwrap();
    let server = Server::start(test_config(&dir)).await.unwrap();
    assert_eq!(server.federation_addr(), None);
    server.shutdown().await.unwrap();

    let mut config = federation_config(&dir);
    config.federation.enabled = false;
    let server = Server::start(config).await.unwrap();
    assert_eq!(server.federation_addr(), None);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn listen_without_certificate_fails_to_start() {
    let dir = TempDir::new().unwrap();
    let mut config = federation_config(&dir);
    config.federation.generate_self_signed_certificate = false;
    let error = match Server::start(config).await {
        Ok(_) => panic!("started a TLS listener without a certificate"),
        Err(e) => e.to_string(),
    };
    for key in [
        "federation.listen",
        "federation.tls_certificate",
        "federation.tls_private_key",
        "federation.generate_self_signed_certificate",
    ] {
        assert!(error.contains(key), "{key} not named: {error}");
    }
    // the failed start released the database
    Server::start(test_config(&dir)).await.unwrap().shutdown().await.unwrap();
}

#[tokio::test]
async fn unreadable_certificate_files_are_named() {
    let dir = TempDir::new().unwrap();
    let mut config = federation_config(&dir);
    let missing = dir.path().join("missing.pem");
    config.federation.tls_certificate = Some(missing.clone());
    config.federation.tls_private_key = Some(dir.path().join("key.pem"));
    let error = match Server::start(config).await {
        Ok(_) => panic!("started with a missing certificate file"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains(&missing.display().to_string()), "{error}");
    assert!(error.contains("federation.tls_certificate"), "{error}");
}

#[tokio::test]
async fn configured_pem_files_are_served() {
    // Use the generated pair as if it were an operator-provided certificate.
    let dir = TempDir::new().unwrap();
    let first = Server::start(federation_config(&dir)).await.unwrap();
    let (_, generated) = fetch_keys(federation_addr(&first)).await;
    first.shutdown().await.unwrap();

    let other = TempDir::new().unwrap();
    let mut config = test_config(&other);
    config.federation.listen = Some("127.0.0.1:0".to_owned());
    config.federation.tls_certificate = Some(dir.path().join("db/tls/federation-self-signed.crt"));
    config.federation.tls_private_key = Some(dir.path().join("db/tls/federation-self-signed.key"));
    let server = Server::start(config).await.unwrap();
    let (_, served) = fetch_keys(federation_addr(&server)).await;
    assert_eq!(served, generated);
    server.shutdown().await.unwrap();
}
