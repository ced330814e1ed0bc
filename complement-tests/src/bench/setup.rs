//! Untimed setup of a benchmark: accounts, rooms, memberships, initial syncs.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::http::{Api, encode_segment};
use crate::shared_secret_mac;

/// Timeout of each setup request (registration may hash a password).
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Password of every benchmark account.
const PASSWORD: &str = "myelin-bench-password";

/// How benchmark accounts are created.
#[derive(Debug, Clone)]
pub enum Registration {
    /// `/_synapse/admin/v1/register` with this shared secret.
    SharedSecret(String),
    /// `POST /_matrix/client/v3/register` with the `m.login.dummy` stage.
    Open,
}

/// A registered account and its access token.
#[derive(Debug, Clone)]
pub struct User {
    pub user_id: String,
    pub token: String,
}

/// A short identifier of this run, used in localparts and transaction IDs so
/// that runs against the same database never collide.
pub fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{:x}{:x}",
        nanos % 0x1_0000_0000_0000,
        std::process::id() % 0x1000
    )
}

fn user_from(body: &Value) -> anyhow::Result<User> {
    let field = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .with_context(|| format!("registration response has no {key:?}: {body}"))
    };
    Ok(User {
        user_id: field("user_id")?,
        token: field("access_token")?,
    })
}

/// Registers one account.
pub async fn register(api: &Api, how: &Registration, localpart: &str) -> anyhow::Result<User> {
    match how {
        Registration::SharedSecret(secret) => {
            let url = api.url("/_synapse/admin/v1/register", &[]);
            let nonce = api
                .json(Method::GET, url.clone(), None, None, SETUP_TIMEOUT)
                .await?;
            let nonce = nonce["nonce"]
                .as_str()
                .with_context(|| format!("GET {url} returned no nonce: {nonce}"))?;
            let mac = shared_secret_mac(secret, nonce, localpart, PASSWORD, false);
            let body = json!({
                "nonce": nonce,
                "username": localpart,
                "password": PASSWORD,
                "admin": false,
                "mac": mac,
            });
            let reply = api
                .json(Method::POST, url, None, Some(&body), SETUP_TIMEOUT)
                .await?;
            user_from(&reply)
        }
        Registration::Open => {
            let url = api.url("/_matrix/client/v3/register", &[]);
            let first = json!({"username": localpart, "password": PASSWORD});
            let reply = api
                .raw(Method::POST, url.clone(), None, Some(&first), SETUP_TIMEOUT)
                .await?;
            let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            if reply.status.is_success() {
                return user_from(&body);
            }
            if reply.status != StatusCode::UNAUTHORIZED {
                bail!(
                    "POST {url} {first} -> HTTP {}: {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                );
            }
            let session = body["session"].as_str().unwrap_or_default();
            let second = json!({
                "username": localpart,
                "password": PASSWORD,
                "auth": {"type": "m.login.dummy", "session": session},
            });
            let reply = api
                .json(Method::POST, url, None, Some(&second), SETUP_TIMEOUT)
                .await?;
            user_from(&reply)
        }
    }
}

/// Runs `task(i)` for every `i` in `0..count`, at most `concurrency` at a
/// time; returns the results in index order, or the first error.
pub async fn concurrently<T, F, Fut>(
    count: usize,
    concurrency: usize,
    task: F,
) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for i in 0..count {
        let (permits, work) = (permits.clone(), task(i));
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            anyhow::Ok((i, work.await?))
        });
    }
    let mut results: Vec<Option<T>> = (0..count).map(|_| None).collect();
    while let Some(done) = tasks.join_next().await {
        let (i, result) = done.context("a setup task panicked")??;
        results[i] = Some(result);
    }
    Ok(results.into_iter().flatten().collect())
}

/// Registers `count` accounts `<prefix>-<i>`, `concurrency` at a time, in
/// index order.
pub async fn register_many(
    api: &Api,
    how: &Registration,
    prefix: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<User>> {
    concurrently(count, concurrency, |i| {
        let (api, how) = (api.clone(), how.clone());
        let localpart = format!("{prefix}-{i}");
        async move {
            register(&api, &how, &localpart)
                .await
                .with_context(|| format!("registering {localpart}"))
        }
    })
    .await
}

/// Creates a `public_chat` room and returns its ID.
pub async fn create_room(api: &Api, creator: &User, name: &str) -> anyhow::Result<String> {
    create_room_of_version(api, creator, name, None).await
}

/// Creates a `public_chat` room, of `version` or the server's default, and returns its ID.
pub async fn create_room_of_version(
    api: &Api,
    creator: &User,
    name: &str,
    version: Option<&str>,
) -> anyhow::Result<String> {
    let url = api.url("/_matrix/client/v3/createRoom", &[]);
    let mut body = json!({"preset": "public_chat", "name": name});
    if let Some(version) = version {
        body["room_version"] = json!(version);
    }
    let reply = api
        .json(
            Method::POST,
            url,
            Some(&creator.token),
            Some(&body),
            SETUP_TIMEOUT,
        )
        .await?;
    reply["room_id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("createRoom returned no room_id: {reply}"))
}

/// Creates `count` `public_chat` rooms named `<name> <i>`, `concurrency` at
/// a time; their IDs in index order.
pub async fn create_rooms(
    api: &Api,
    creator: &User,
    name: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<Vec<String>> {
    concurrently(count, concurrency, |i| {
        let (api, creator, name) = (api.clone(), creator.clone(), format!("{name} {i}"));
        async move { create_room(&api, &creator, &name).await }
    })
    .await
}

/// Joins `user` to `room_id`.
pub async fn join(api: &Api, user: &User, room_id: &str) -> anyhow::Result<()> {
    let url = api.url(
        &format!("/_matrix/client/v3/join/{}", encode_segment(room_id)),
        &[],
    );
    api.json(
        Method::POST,
        url,
        Some(&user.token),
        Some(&json!({})),
        SETUP_TIMEOUT,
    )
    .await
    .with_context(|| format!("joining {} to {room_id}", user.user_id))?;
    Ok(())
}

/// Joins `users` to `room_id`, `concurrency` at a time.
pub async fn join_all(
    api: &Api,
    users: &[User],
    room_id: &str,
    concurrency: usize,
) -> anyhow::Result<()> {
    concurrently(users.len(), concurrency, |i| {
        let (api, user, room_id) = (api.clone(), users[i].clone(), room_id.to_owned());
        async move { join(&api, &user, &room_id).await }
    })
    .await?;
    Ok(())
}

/// An initial `/sync` with `filter`; returns `next_batch` and the body.
pub async fn initial_sync(
    api: &Api,
    user: &User,
    filter: &Value,
) -> anyhow::Result<(String, Value)> {
    let filter = filter.to_string();
    let url = api.url("/_matrix/client/v3/sync", &[("filter", filter.as_str())]);
    let body = api
        .json(Method::GET, url, Some(&user.token), None, SETUP_TIMEOUT)
        .await
        .with_context(|| format!("initial sync of {}", user.user_id))?;
    let next_batch = body["next_batch"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("initial sync of {} has no next_batch", user.user_id))?;
    Ok((next_batch, body))
}
