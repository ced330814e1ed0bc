//! History visibility: may this user see this event?
//!
//! Decided from the room state at the event (its history visibility and the user's membership
//! then) and the user's membership now, per the spec's rules for `world_readable`, `shared`,
//! `invited` and `joined`.

use ruma::UserId;
use serde_json::Value;

use super::{Rooms, StoredEvent};
use crate::error::Result;

impl Rooms {
    pub fn history_visibility(&self, state_group: u64) -> Result<String> {
        Ok(self
            .state_event(state_group, "m.room.history_visibility", "")?
            .and_then(|event| event.content().get("history_visibility").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| "shared".to_owned()))
    }

    fn membership_in(&self, state_group: u64, user: &UserId) -> Result<Option<String>> {
        Ok(self
            .state_event(state_group, "m.room.member", user.as_str())?
            .and_then(|event| event.content().get("membership").and_then(Value::as_str).map(str::to_owned)))
    }

    /// `current_membership` is the user's membership in the room now (None if never a member).
    pub fn can_see_event(&self, user: &UserId, event: &StoredEvent, current_membership: Option<&str>) -> Result<bool> {
        let visibility = self.history_visibility(event.state_before)?;
        if visibility == "world_readable" {
            return Ok(true);
        }
        // A user's own membership change is judged by the state it creates, so people see
        // their own join (and invite) events.
        let own_membership_event = event.event_type() == "m.room.member" && event.state_key() == Some(user.as_str());
        let group = if own_membership_event { event.state_after } else { event.state_before };
        let membership_then = self.membership_in(group, user)?;
        Ok(match membership_then.as_deref() {
            Some("join") => true,
            Some("invite") if visibility == "invited" || visibility == "shared" => true,
            _ => visibility == "shared" && current_membership == Some("join"),
        })
    }
}
