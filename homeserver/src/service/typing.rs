//! Who is typing in which room: in memory only (it is stale within seconds), each change on
//! the global stream so `/sync` wakes and tokens order it, and shared with the other servers
//! in the room as `m.typing` EDUs.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use ruma::{OwnedRoomId, OwnedServerName, OwnedUserId, RoomId, ServerName, UserId};
use serde_json::json;

use super::{federation_sender::FederationSender, rooms::Rooms};
use crate::error::{Error, Result};

/// The longest a client may say it will keep typing; longer requests are cut to this.
pub const MAX_TYPING_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a remote user's typing lasts without news: servers repeat it (Synapse every
/// 30 s or so) while the user types.
const REMOTE_TYPING_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Typing {
    rooms: Rooms,
    sender: FederationSender,
    server_name: OwnedServerName,
    state: Arc<Mutex<HashMap<OwnedRoomId, RoomTyping>>>,
    /// The task that ends expired typing, stopped at shutdown: it holds the database.
    expirer: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

/// How often expired typing is looked for.
const EXPIRY_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Default)]
struct RoomTyping {
    /// Who is typing and until when.
    typers: HashMap<OwnedUserId, Instant>,
    /// Stream position of the latest change.
    changed_at: u64,
}

impl Typing {
    pub fn new(rooms: Rooms, sender: FederationSender, server_name: OwnedServerName) -> Self {
        Self { rooms, sender, server_name, state: Arc::default(), expirer: Arc::default() }
    }

    /// A local user starts (for at most `timeout`) or stops typing. They must be joined.
    pub async fn set_local(&self, room_id: &RoomId, user: &UserId, typing: bool, timeout: Duration) -> Result<()> {
        if self.rooms.membership.membership(room_id.as_str(), user.as_str())?.as_deref() != Some("join") {
            return Err(Error::forbidden("You are not in this room"));
        }
        let timeout = timeout.min(MAX_TYPING_TIMEOUT);
        if self.change(room_id, user, typing.then(|| Instant::now() + timeout))? {
            self.announce(room_id, user, typing).await;
        }
        Ok(())
    }

    /// An `m.typing` EDU from `origin` about one of its users, who must be joined.
    pub fn set_remote(&self, origin: &ServerName, room_id: &RoomId, user: &UserId, typing: bool) -> Result<()> {
        if user.server_name() != origin {
            return Err(Error::forbidden("A server can only report its own users typing"));
        }
        if self.rooms.membership.membership(room_id.as_str(), user.as_str())?.as_deref() != Some("join") {
            return Err(Error::forbidden("The user is not in the room"));
        }
        self.change(room_id, user, typing.then(|| Instant::now() + REMOTE_TYPING_TIMEOUT))?;
        Ok(())
    }

    /// Applies a change; returns whether anything changed (and if so, wakes the room).
    fn change(&self, room_id: &RoomId, user: &UserId, until: Option<Instant>) -> Result<bool> {
        let ticket = self.rooms.stream.allocate()?;
        let changed = {
            let mut state = self.state.lock().map_err(|_| Error::internal("typing state poisoned"))?;
            let room = state.entry(room_id.to_owned()).or_default();
            let was_typing = room.typers.contains_key(user);
            match until {
                Some(until) => {
                    room.typers.insert(user.to_owned(), until);
                }
                None => {
                    room.typers.remove(user);
                }
            }
            let changed = was_typing != until.is_some();
            if changed {
                room.changed_at = ticket.position;
            }
            changed
        };
        let position = ticket.position;
        drop(ticket);
        if changed {
            self.wake_room(room_id, position)?;
        }
        Ok(changed)
    }

    fn wake_room(&self, room_id: &RoomId, position: u64) -> Result<()> {
        let members = self.rooms.membership.members(room_id.as_str())?;
        let joined = members.iter().filter(|(_, entry)| entry.membership == "join").map(|(user, _)| user.as_str());
        self.rooms.notifier.notify(joined, position);
        Ok(())
    }

    /// Starts the task that ends typing whose timeout has passed.
    pub fn start(&self) {
        let this = self.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(EXPIRY_INTERVAL);
            loop {
                ticks.tick().await;
                this.expire().await;
            }
        });
        if let Ok(mut expirer) = self.expirer.lock() {
            *expirer = Some(task);
        }
    }

    /// Stops the expiry task and waits for it to let go of the database.
    pub async fn shutdown(&self) {
        let task = self.expirer.lock().ok().and_then(|mut expirer| expirer.take());
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    async fn expire(&self) {
        let now = Instant::now();
        let expired: Vec<(OwnedRoomId, OwnedUserId)> = {
            let Ok(state) = self.state.lock() else { return };
            state
                .iter()
                .flat_map(|(room, typing)| typing.typers.iter().filter(|(_, until)| **until <= now).map(move |(user, _)| (room.clone(), user.clone())))
                .collect()
        };
        for (room_id, user) in expired {
            if self.change(&room_id, &user, None).unwrap_or(false) && user.server_name() == self.server_name {
                self.announce(&room_id, &user, false).await;
            }
        }
    }

    /// Tells the other servers in the room about a local user's typing.
    async fn announce(&self, room_id: &RoomId, user: &UserId, typing: bool) {
        let Ok(servers) = self.rooms.joined_servers(room_id) else { return };
        let edu = json!({ "edu_type": "m.typing", "content": { "room_id": room_id, "user_id": user, "typing": typing } });
        for server in servers.into_iter().filter(|s| *s != self.server_name) {
            if let Err(error) = self.sender.enqueue_edu(server, edu.clone()).await {
                tracing::warn!(%room_id, %error, "cannot queue a typing notification");
            }
        }
    }

    /// Who is typing in the room now, if that changed after `since` (always on an initial
    /// sync, where `since` is `None`).
    pub fn typing_since(&self, room_id: &RoomId, since: Option<u64>) -> Option<Vec<OwnedUserId>> {
        let state = self.state.lock().ok()?;
        let room = state.get(room_id)?;
        if since.is_some_and(|since| room.changed_at <= since) {
            return None;
        }
        let now = Instant::now();
        Some(room.typers.iter().filter(|(_, until)| **until > now).map(|(user, _)| user.clone()).collect())
    }

    /// Rooms whose typing changed in (since, up_to].
    pub fn rooms_changed(&self, since: u64, up_to: u64) -> HashSet<OwnedRoomId> {
        let Ok(state) = self.state.lock() else { return HashSet::new() };
        state.iter().filter(|(_, room)| room.changed_at > since && room.changed_at <= up_to).map(|(id, _)| id.clone()).collect()
    }
}
