use std::sync::Arc;

use axum::{Router, body::Body};
use http::{Method, Request, StatusCode};
use myelin::{router, service::{self, Services}};
use myelin_config::Config;
use myelin_storage::Database;
use serde_json::{Value, json};
use tempfile::TempDir;
use tower::ServiceExt;

/// A configuration for tests: a throw-away database, a cheap password hash, no rate limits.
pub fn test_config(dir: &TempDir) -> Config {
    let mut config = Config {
        server_name: "test.local".to_owned(),
        database_path: dir.path().join("db"),
        listen: "127.0.0.1:0".to_owned(),
        ..Config::default()
    };
    config.password.argon2_memory_kib = 64;
    config.password.argon2_iterations = 1;
    config.rate_limits.enabled = false;
    config
}

/// The real router over real storage, driven without a socket.
pub struct TestApp {
    pub router: Router,
    pub services: Arc<Services>,
    _dir: TempDir,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn assert_error(&self, status: StatusCode, errcode: &str) {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.body["errcode"], errcode, "body: {}", self.body);
    }
}

impl TestApp {
    pub fn new() -> Self {
        Self::with_config(|_| {})
    }

    pub fn with_config(change: impl FnOnce(&mut Config)) -> Self {
        let dir = TempDir::new().unwrap();
        let mut config = test_config(&dir);
        change(&mut config);
        let db = Database::open_rocksdb(&config.database_path, &service::catalog()).unwrap();
        let services = Arc::new(Services::build(Arc::new(config), db).unwrap());
        Self { router: router::build(services.clone()), services, _dir: dir }
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned())) };
        Reply { status, headers, body }
    }

    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                builder = builder.header("content-type", "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        self.send(builder.body(body).unwrap()).await
    }

    /// Registers through the two-step dummy-auth flow and returns the login reply body.
    pub async fn register(&self, username: &str, password: &str) -> Value {
        let first = self
            .call(Method::POST, "/_matrix/client/v3/register", None, Some(json!({"username": username, "password": password})))
            .await;
        assert_eq!(first.status, StatusCode::UNAUTHORIZED, "{}", first.body);
        let session = first.body["session"].as_str().unwrap().to_owned();
        let second = self
            .call(
                Method::POST,
                "/_matrix/client/v3/register",
                None,
                Some(json!({"username": username, "password": password, "auth": {"type": "m.login.dummy", "session": session}})),
            )
            .await;
        assert_eq!(second.status, StatusCode::OK, "{}", second.body);
        second.body
    }

    pub async fn register_token(&self, username: &str) -> String {
        self.register(username, "correct horse").await["access_token"].as_str().unwrap().to_owned()
    }
}
