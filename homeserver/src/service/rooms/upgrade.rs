//! Room upgrades: a new room of a newer version replaces an old one.
//!
//! The new room points back to the old (`predecessor` in its create event) and carries over
//! the state that defines it; the old room gets a tombstone pointing forward, is locked down
//! so only moderators can speak, and hands its local aliases over.

use ruma::{OwnedRoomId, OwnedUserId, RoomId, RoomVersionId, UserId};
use serde_json::{Map, Value, json};

use super::{EventDraft, Rooms, room_id_is_derived};
use crate::error::{Error, Result};

/// State that defines a room and follows it into its replacement.
const CARRIED_STATE: &[&str] = &[
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.encryption",
    "m.room.server_acl",
    "m.room.related_groups",
    "m.room.pinned_events",
];

impl Rooms {
    pub async fn upgrade(
        &self,
        old_room: &RoomId,
        user: &UserId,
        new_version: &RoomVersionId,
        additional_creators: Vec<OwnedUserId>,
    ) -> Result<OwnedRoomId> {
        let record = self.room(old_room)?;
        let group = record.current_state_group;
        // Only those who may send a tombstone may upgrade; checked before anything is created.
        if !self.has_power_for_event(group, user, "m.room.tombstone", true)? {
            return Err(Error::forbidden("You do not have the power to upgrade this room"));
        }
        let old_create = self.state_event(group, "m.room.create", "")?.ok_or_else(|| Error::internal("room without create"))?;
        let last_event = record.forward_extremities.first().cloned().unwrap_or_default();

        let mut create = Map::new();
        for key in ["type", "m.federate"] {
            if let Some(value) = old_create.content().get(key) {
                create.insert(key.to_owned(), value.clone());
            }
        }
        create.insert("room_version".to_owned(), json!(new_version.as_str()));
        let mut predecessor = json!({ "room_id": old_room });
        if !room_id_is_derived(new_version) {
            predecessor["event_id"] = json!(last_event);
        }
        create.insert("predecessor".to_owned(), predecessor);
        if room_id_is_derived(new_version) && !additional_creators.is_empty() {
            create.insert("additional_creators".to_owned(), json!(additional_creators));
        } else if !room_id_is_derived(new_version) {
            create.insert("creator".to_owned(), json!(user));
        }

        let mut following = Vec::new();
        let member = self.state_event(group, "m.room.member", user.as_str())?.map(|e| e.content().clone());
        following.push(EventDraft::state("m.room.member", user.as_str(), member.unwrap_or_else(|| json!({"membership": "join"}))));
        let mut power_levels = self
            .state_event(group, "m.room.power_levels", "")?
            .map(|e| e.content().clone())
            .unwrap_or_else(|| json!({}));
        if let Some(users) = power_levels.get_mut("users").and_then(Value::as_object_mut) {
            if room_id_is_derived(new_version) {
                // v12 creators outrank power levels and must not be listed in them.
                users.remove(user.as_str());
                for creator in &additional_creators {
                    users.remove(creator.as_str());
                }
            } else {
                users.insert(user.to_string(), json!(100));
            }
        }
        following.push(EventDraft::state("m.room.power_levels", "", power_levels));
        for event_type in CARRIED_STATE {
            if let Some(event) = self.state_event(group, event_type, "")? {
                following.push(EventDraft::state(*event_type, "", event.content().clone()));
            }
        }
        if let Some(alias) = self.state_event(group, "m.room.canonical_alias", "")? {
            following.push(EventDraft::state("m.room.canonical_alias", "", alias.content().clone()));
        }
        let version = new_version.clone();
        let new_room = self.create_room(&version, user, Value::Object(create), following).await?;

        let tombstone = json!({ "body": "This room has been replaced", "replacement_room": new_room });
        self.append(old_room, user, EventDraft::state("m.room.tombstone", "", tombstone), None).await?;
        self.restrict_old_room(old_room, user).await?;
        self.move_aliases(old_room, &new_room).await?;
        if self.records.is_published(old_room.as_str())? {
            self.set_listed(old_room, false).await?;
            self.set_listed(&new_room, true).await?;
        }
        Ok(new_room)
    }

    /// Raises `events_default` and `invite` in the old room so ordinary members can no longer
    /// talk there, as the spec recommends.
    async fn restrict_old_room(&self, room: &RoomId, user: &UserId) -> Result<()> {
        let record = self.room(room)?;
        let Some(levels) = self.state_event(record.current_state_group, "m.room.power_levels", "")? else { return Ok(()) };
        let mut content = levels.content().clone();
        let restricted = content.get("events_default").and_then(super::as_int).unwrap_or(0).max(50);
        content["events_default"] = json!(restricted);
        content["invite"] = json!(content.get("invite").and_then(super::as_int).unwrap_or(0).max(50));
        if let Err(error) = self.append(room, user, EventDraft::state("m.room.power_levels", "", content), None).await {
            tracing::warn!(%room, %error, "could not restrict the old room after an upgrade");
        }
        Ok(())
    }

    async fn move_aliases(&self, old_room: &RoomId, new_room: &RoomId) -> Result<()> {
        let mut batch = myelin_storage::Batch::new();
        for (alias, creator) in self.records.aliases_of(old_room.as_str())? {
            self.records.delete_alias(&mut batch, &alias, old_room.as_str());
            self.records.put_alias(&mut batch, &alias, new_room.as_str(), &creator)?;
        }
        Ok(self.db.write_async(batch).await?)
    }

    /// Whether `user` may send an event of `event_type` by the room's power levels.
    pub fn has_power_for_event(&self, state_group: u64, user: &UserId, event_type: &str, is_state: bool) -> Result<bool> {
        let levels = self.state_event(state_group, "m.room.power_levels", "")?;
        let content = levels.as_ref().map(|e| e.content().clone()).unwrap_or(Value::Null);
        let default = if is_state { content.get("state_default").and_then(super::as_int).unwrap_or(50) } else {
            content.get("events_default").and_then(super::as_int).unwrap_or(0)
        };
        let required = content.get("events").and_then(|e| e.get(event_type)).and_then(super::as_int).unwrap_or(default);
        Ok(self.user_power(state_group, user, &content)? >= required)
    }
}
