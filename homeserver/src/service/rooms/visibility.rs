//! History visibility: may this user see this event?
//!
//! The spec's algorithm, evaluated with the room state at the event:
//! 1. `world_readable` → yes;
//! 2. the user's membership then was `join` → yes;
//! 3. `shared`, and the user joined at any point after the event → yes;
//! 4. `invited`, and the user's membership then was `invite` → yes;
//! 5. otherwise no.
//!
//! For the user's own membership events, membership before *or* after the event counts; for
//! `m.room.history_visibility` events, visibility before *or* after counts.

use ruma::{RoomId, UserId};
use serde_json::Value;

use super::{Rooms, StoredEvent};
use crate::error::Result;

/// What visibility checks need to know about one user in one room, computed once per request.
pub struct Viewer<'a> {
    pub user: &'a UserId,
    /// Topological positions (depth, stream) of the user's joins to the room, newest first.
    /// Topological, not stream order: history backfilled from other servers is stored after
    /// the join but happened before it.
    joins: Vec<(u64, u64)>,
}

impl Rooms {
    pub fn history_visibility(&self, state_group: u64) -> Result<String> {
        Ok(self
            .state_event_shared(state_group, "m.room.history_visibility", "")?
            .and_then(|event| event.content().get("history_visibility").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| "shared".to_owned()))
    }

    fn membership_in(&self, state_group: u64, user: &UserId) -> Result<Option<String>> {
        Ok(self
            .state_event_shared(state_group, "m.room.member", user.as_str())?
            .and_then(|event| event.content().get("membership").and_then(Value::as_str).map(str::to_owned)))
    }

    /// Walks the user's membership events in the room (each replaces the previous one) to
    /// find every join.
    pub fn viewer<'a>(&self, room_id: &RoomId, user: &'a UserId) -> Result<Viewer<'a>> {
        let mut joins = Vec::new();
        let mut next = self.membership.get(room_id.as_str(), user.as_str())?.map(|entry| entry.event_id);
        let mut steps = 0;
        while let Some(event_id) = next.take() {
            let Some((_, event)) = self.event_shared(&event_id)? else { break };
            if event.content().get("membership").and_then(Value::as_str) == Some("join") {
                joins.push((event.depth, event.stream));
            }
            steps += 1;
            // A bound against a corrupt chain; real chains are a few membership changes long.
            if steps > 10_000 {
                break;
            }
            next = event.replaces_state.clone();
        }
        Ok(Viewer { user, joins })
    }

    pub fn can_see_event(&self, viewer: &Viewer<'_>, event: &StoredEvent) -> Result<bool> {
        let user = viewer.user;
        let mut visibilities = vec![self.history_visibility(event.state_before)?];
        if event.event_type() == "m.room.history_visibility"
            && let Some(after) = event.content().get("history_visibility").and_then(Value::as_str)
        {
            visibilities.push(after.to_owned());
        }
        let mut memberships = vec![self.membership_in(event.state_before, user)?];
        if event.event_type() == "m.room.member" && event.state_key() == Some(user.as_str()) {
            memberships.push(self.membership_in(event.state_after, user)?);
        }
        let joined_later = viewer.joined_after((event.depth, event.stream));
        Ok(visibilities
            .iter()
            .any(|visibility| memberships.iter().any(|membership| allowed(visibility, membership.as_deref(), joined_later))))
    }

    /// The history visibility and the user's membership in a state group: all that decides
    /// whether the user sees an ordinary event with that state before it (anything but a
    /// history visibility change or their own membership event), so callers that check many
    /// events compute it once per state group.
    pub fn visibility_inputs(&self, state_group: u64, user: &UserId) -> Result<(String, Option<String>)> {
        Ok((self.history_visibility(state_group)?, self.membership_in(state_group, user)?))
    }
}

impl Viewer<'_> {
    /// Whether the user joined the room after the topological position (depth, stream).
    pub fn joined_after(&self, position: (u64, u64)) -> bool {
        self.joins.iter().any(|join| *join > position)
    }
}

/// The spec's rule for one history visibility and the user's membership at the event.
pub fn allowed(visibility: &str, membership: Option<&str>, joined_later: bool) -> bool {
    visibility == "world_readable"
        || membership == Some("join")
        || (visibility == "shared" && joined_later)
        || (visibility == "invited" && membership == Some("invite"))
}
