//! Presence: online, unavailable (idle) or offline, with `last_active_ago`, `currently_active`
//! and a status message; visible to users who share a room, shared with their servers as
//! `m.presence` EDUs. Liveness is kept in memory (it is stale after a restart anyway); the
//! status message a user set is stored.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use myelin_config::PresenceConfig;
use myelin_storage::{Batch, Database, Table};
use ruma::{OwnedServerName, OwnedUserId, ServerName, UserId};
use serde_json::{Value, json};

use super::{federation_sender::FederationSender, rooms::Rooms};
use crate::{
    error::{Error, Result},
    util::now_millis,
};

const STATUS_MESSAGES: Table<String, String> = Table::new("userid_presencestatus");
pub const TABLES: &[&str] = &["userid_presencestatus"];

/// How often idle and offline transitions are looked for.
const SWEEP_INTERVAL: Duration = Duration::from_secs(2);
/// A remote user is shown offline if their server stops telling us otherwise for this long.
const REMOTE_PRESENCE_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// "Currently active" means active within this window, as Synapse reports it.
const CURRENTLY_ACTIVE_WINDOW_MS: u64 = 60_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Online,
    Unavailable,
    Offline,
}

impl State {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "online" => Some(Self::Online),
            "unavailable" => Some(Self::Unavailable),
            "offline" => Some(Self::Offline),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Unavailable => "unavailable",
            Self::Offline => "offline",
        }
    }
}

#[derive(Clone, Debug)]
struct UserPresence {
    state: State,
    /// The state the user chose (`PUT /presence` or `set_presence`); idleness only ever
    /// lowers it.
    chosen: State,
    status_msg: Option<String>,
    last_active_ms: u64,
    /// For local users: their last sync. For remote users: when their server last told us.
    last_seen_ms: u64,
    /// Stream position of the latest change.
    changed_at: u64,
}

#[derive(Clone)]
pub struct Presence {
    db: Database,
    rooms: Rooms,
    sender: FederationSender,
    server_name: OwnedServerName,
    config: PresenceConfig,
    users: Arc<Mutex<HashMap<OwnedUserId, UserPresence>>>,
    /// The sweeping task, stopped at shutdown: it holds the database.
    sweeper: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Presence {
    pub fn new(db: Database, rooms: Rooms, sender: FederationSender, server_name: OwnedServerName, config: PresenceConfig) -> Self {
        Self { db, rooms, sender, server_name, config, users: Arc::default(), sweeper: Arc::default() }
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// Starts the task that turns idle users unavailable and silent users offline.
    pub fn start(&self) {
        if !self.config.enabled {
            return;
        }
        let this = self.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
            loop {
                ticks.tick().await;
                this.sweep().await;
            }
        });
        if let Ok(mut sweeper) = self.sweeper.lock() {
            *sweeper = Some(task);
        }
    }

    /// Stops the sweeping task and waits for it to let go of the database.
    pub async fn shutdown(&self) {
        let task = self.sweeper.lock().ok().and_then(|mut sweeper| sweeper.take());
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// `PUT /presence/{userId}/status` by a local user.
    pub async fn set_status(&self, user: &UserId, state: State, status_msg: Option<String>) -> Result<()> {
        if !self.config.enabled {
            return Ok(());
        }
        let mut batch = Batch::new();
        match &status_msg {
            Some(message) => STATUS_MESSAGES.put(&mut batch, &user.to_string(), message)?,
            None => STATUS_MESSAGES.delete(&mut batch, &user.to_string()),
        }
        self.db.write_async(batch).await?;
        let now = now_millis();
        self.update(user, |presence| {
            presence.chosen = state;
            presence.state = state;
            presence.status_msg = status_msg;
            if state == State::Online {
                presence.last_active_ms = now;
            }
            presence.last_seen_ms = now;
        })
        .await
    }

    /// A local user synced, asking to appear as `state` (`set_presence`, default online).
    pub async fn synced(&self, user: &UserId, state: State) -> Result<()> {
        if !self.config.enabled {
            return Ok(());
        }
        let now = now_millis();
        self.update(user, |presence| {
            presence.last_seen_ms = now;
            // An explicit "unavailable" chosen with PUT stays until the user picks again.
            // Syncing keeps a user online but is not activity: an open, untouched client goes
            // idle. Coming online from offline counts as activity.
            if state == State::Online && presence.chosen != State::Unavailable {
                if presence.state == State::Offline {
                    presence.state = State::Online;
                    presence.last_active_ms = now;
                }
                presence.chosen = State::Online;
            } else if state != State::Online {
                presence.state = state;
                presence.chosen = state;
            }
        })
        .await
    }

    /// A local user did something (sent an event): they are active now.
    pub async fn active(&self, user: &UserId) -> Result<()> {
        if !self.config.enabled {
            return Ok(());
        }
        let now = now_millis();
        self.update(user, |presence| {
            presence.last_active_ms = now;
            if presence.state == State::Unavailable && presence.chosen == State::Online {
                presence.state = State::Online;
            }
        })
        .await
    }

    /// An `m.presence` EDU from `origin` about one of its users.
    pub async fn set_remote(&self, origin: &ServerName, update: &Value) -> Result<()> {
        if !self.config.enabled {
            return Ok(());
        }
        let user = update.get("user_id").and_then(Value::as_str).and_then(|u| UserId::parse(u).ok()).ok_or_else(|| Error::bad_json("presence without user_id"))?;
        if user.server_name() != origin {
            return Err(Error::forbidden("A server can only report its own users' presence"));
        }
        let state = update.get("presence").and_then(Value::as_str).and_then(State::parse).unwrap_or(State::Offline);
        let now = now_millis();
        let last_active_ago = update.get("last_active_ago").and_then(Value::as_u64).unwrap_or(0);
        let status_msg = update.get("status_msg").and_then(Value::as_str).map(ToOwned::to_owned);
        self.store(&user, |presence| {
            presence.state = state;
            presence.chosen = state;
            presence.status_msg = status_msg;
            presence.last_active_ms = now.saturating_sub(last_active_ago);
            presence.last_seen_ms = now;
        })
        .map(|_| ())
    }

    /// Applies a change to a local user and, if it shows, announces it to the other servers.
    async fn update(&self, user: &UserId, change: impl FnOnce(&mut UserPresence)) -> Result<()> {
        if let Some(event) = self.store(user, change)? {
            self.announce(user, event).await;
        }
        Ok(())
    }

    /// Applies a change; when what others see changed, bumps the stream, wakes whoever shares
    /// a room with the user, and returns the user's new presence content.
    fn store(&self, user: &UserId, change: impl FnOnce(&mut UserPresence)) -> Result<Option<Value>> {
        let stored_status = || STATUS_MESSAGES.get(&self.db, &user.to_string()).ok().flatten();
        // A stream position is taken only when what others see changes: every sync lands
        // here, and positions are not free (every 64th persists the counter with an fsync on
        // the caller's thread), so a thousand long-polling clients taking one per sync kept
        // the server waiting on the disk.
        let (ticket, content) = {
            let mut users = self.users.lock().map_err(|_| Error::internal("presence state poisoned"))?;
            let presence = users.entry(user.to_owned()).or_insert_with(|| UserPresence {
                state: State::Offline,
                chosen: State::Offline,
                status_msg: stored_status(),
                last_active_ms: 0,
                last_seen_ms: 0,
                changed_at: 0,
            });
            let before = (presence.state, presence.status_msg.clone());
            change(presence);
            if before == (presence.state, presence.status_msg.clone()) {
                (None, None)
            } else {
                let ticket = self.rooms.stream.allocate()?;
                presence.changed_at = ticket.position;
                (Some(ticket), Some(content_of(user, presence, now_millis())))
            }
        };
        if let Some(ticket) = ticket {
            let position = ticket.position;
            drop(ticket);
            let audience = self.audience(user)?;
            self.rooms.notifier.notify(audience.iter().map(|u| u.as_str()), position);
        }
        Ok(content)
    }

    /// The users who may see `user`'s presence: those sharing a joined room, and themselves.
    fn audience(&self, user: &UserId) -> Result<HashSet<String>> {
        let mut audience = HashSet::from([user.to_string()]);
        for (room_id, entry) in self.rooms.membership.rooms_of(user.as_str())? {
            if entry.membership != "join" {
                continue;
            }
            for (member, entry) in self.rooms.membership.members(&room_id)?.iter() {
                if entry.membership == "join" {
                    audience.insert(member.clone());
                }
            }
        }
        Ok(audience)
    }

    /// Sends a local user's presence to the servers of everyone who shares a room with them.
    async fn announce(&self, user: &UserId, content: Value) {
        if user.server_name() != self.server_name {
            return;
        }
        let Ok(audience) = self.audience(user) else { return };
        let servers: HashSet<OwnedServerName> = audience
            .iter()
            .filter_map(|member| UserId::parse(member.as_str()).ok())
            .map(|member| member.server_name().to_owned())
            .filter(|server| *server != self.server_name)
            .collect();
        let edu = json!({ "edu_type": "m.presence", "content": { "push": [content] } });
        for server in servers {
            if let Err(error) = self.sender.enqueue_edu(server, edu.clone()).await {
                tracing::warn!(%error, "cannot queue a presence update");
            }
        }
    }

    /// Idle users become unavailable; users who stopped syncing (or whose server went quiet)
    /// become offline.
    async fn sweep(&self) {
        let now = now_millis();
        let idle_ms = self.config.idle_after_secs.saturating_mul(1000);
        let offline_ms = self.config.offline_after_secs.saturating_mul(1000);
        let due: Vec<(OwnedUserId, State)> = {
            let Ok(users) = self.users.lock() else { return };
            users
                .iter()
                .filter_map(|(user, presence)| {
                    let local = user.server_name() == self.server_name;
                    let silent_for = now.saturating_sub(presence.last_seen_ms);
                    let gone = if local { silent_for > offline_ms } else { silent_for > REMOTE_PRESENCE_LIFETIME.as_millis() as u64 };
                    if presence.state != State::Offline && gone {
                        Some((user.clone(), State::Offline))
                    } else if local && presence.state == State::Online && now.saturating_sub(presence.last_active_ms) > idle_ms {
                        Some((user.clone(), State::Unavailable))
                    } else {
                        None
                    }
                })
                .collect()
        };
        for (user, state) in due {
            let result = self
                .update(&user, |presence| {
                    presence.state = state;
                    if state == State::Offline {
                        presence.chosen = State::Offline;
                    }
                })
                .await;
            if let Err(error) = result {
                tracing::warn!(%user, %error, "cannot update presence");
            }
        }
    }

    /// `GET /presence/{userId}/status` for `viewer`: 403 unless they share a room (or it is
    /// themselves).
    pub fn status(&self, viewer: &UserId, user: &UserId) -> Result<Value> {
        if viewer != user && !self.audience(user)?.contains(viewer.as_str()) {
            return Err(Error::forbidden("You do not share a room with this user"));
        }
        let users = self.users.lock().map_err(|_| Error::internal("presence state poisoned"))?;
        let now = now_millis();
        Ok(match users.get(user) {
            Some(presence) if self.config.enabled => content_of(user, presence, now),
            _ => json!({ "presence": "offline" }),
        })
    }

    /// The presence events for `viewer`'s sync: users sharing a room with them whose presence
    /// changed in (since, up_to] (all known ones on an initial sync).
    pub fn sync_events(&self, viewer: &UserId, since: Option<u64>, up_to: u64) -> Result<Vec<Value>> {
        if !self.config.enabled {
            return Ok(Vec::new());
        }
        let changed: Vec<(OwnedUserId, Value)> = {
            let users = self.users.lock().map_err(|_| Error::internal("presence state poisoned"))?;
            let now = now_millis();
            users
                .iter()
                .filter(|(_, p)| p.changed_at <= up_to && since.is_none_or(|since| p.changed_at > since))
                .map(|(user, p)| (user.clone(), content_of(user, p, now)))
                .collect()
        };
        if changed.is_empty() {
            return Ok(Vec::new());
        }
        let audience = self.sharing_with(viewer)?;
        Ok(changed
            .into_iter()
            .filter(|(user, _)| audience.contains(user.as_str()))
            .map(|(user, mut content)| {
                if let Some(object) = content.as_object_mut() {
                    object.remove("user_id");
                }
                json!({ "type": "m.presence", "sender": user, "content": content })
            })
            .collect())
    }

    /// Everyone `viewer` shares a joined room with, themselves included.
    fn sharing_with(&self, viewer: &UserId) -> Result<HashSet<String>> {
        self.audience(viewer)
    }
}

/// The presence content others see.
fn content_of(user: &UserId, presence: &UserPresence, now: u64) -> Value {
    let mut content = json!({ "user_id": user, "presence": presence.state.as_str() });
    if presence.last_active_ms > 0 {
        let ago = now.saturating_sub(presence.last_active_ms);
        content["last_active_ago"] = json!(ago);
        content["currently_active"] = json!(presence.state == State::Online && ago < CURRENTLY_ACTIVE_WINDOW_MS);
    }
    if let Some(message) = &presence.status_msg {
        content["status_msg"] = json!(message);
    }
    content
}
