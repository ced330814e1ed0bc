use myelin::Server;
use tempfile::TempDir;

use crate::support::test_config;

#[tokio::test]
async fn start_serves_and_shutdown_releases_the_database() {
    let dir = TempDir::new().unwrap();
    let server = Server::start(test_config(&dir)).await.unwrap();
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");

    // a second server on the same database is refused while the first runs
    let error = match Server::start(test_config(&dir)).await {
        Ok(_) => panic!("a second server opened the same database"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains("in use"), "{error}");

    server.shutdown().await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    // and after shutdown the database can be opened again, with the same signing key
    let again = Server::start(test_config(&dir)).await.unwrap();
    again.shutdown().await.unwrap();
}

#[tokio::test]
async fn signing_key_is_kept_across_restarts() {
    let dir = TempDir::new().unwrap();
    let first = Server::start(test_config(&dir)).await.unwrap();
    let key_id = first.services().signing_key.key_id();
    first.shutdown().await.unwrap();
    let second = Server::start(test_config(&dir)).await.unwrap();
    assert_eq!(second.services().signing_key.key_id(), key_id);
    second.shutdown().await.unwrap();
}
