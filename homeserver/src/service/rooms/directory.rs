//! What the public room directory shows about a room, and alias management.

use ruma::{RoomId, UInt, UserId, directory::PublicRoomsChunk};
use serde_json::{Value, json};

use super::Rooms;
use crate::error::{Error, Result};

impl Rooms {
    /// A `publicRooms` chunk for the room, from its current state.
    pub fn public_chunk(&self, room_id: &RoomId) -> Result<Value> {
        let record = self.room(room_id)?;
        let group = record.current_state_group;
        let content_field = |event_type: &str, field: &str| -> Result<Option<Value>> {
            Ok(self.state_event(group, event_type, "")?.and_then(|e| e.content().get(field).cloned()))
        };
        let joined = self.membership.members_of(room_id.as_str())?.iter().filter(|(_, m)| m.membership == "join").count();
        let mut chunk = json!({
            "room_id": room_id,
            "num_joined_members": joined,
            "world_readable": self.history_visibility(group)? == "world_readable",
            "guest_can_join": content_field("m.room.guest_access", "guest_access")?.as_ref().and_then(Value::as_str) == Some("can_join"),
            "join_rule": content_field("m.room.join_rules", "join_rule")?.unwrap_or(json!("invite")),
        });
        for (event_type, field, key) in [
            ("m.room.name", "name", "name"),
            ("m.room.topic", "topic", "topic"),
            ("m.room.canonical_alias", "alias", "canonical_alias"),
            ("m.room.avatar", "url", "avatar_url"),
        ] {
            if let Some(value) = content_field(event_type, field)?.filter(|v| v.as_str().is_some_and(|s| !s.is_empty())) {
                chunk[key] = value;
            }
        }
        if let Some(room_type) = self.state_event(group, "m.room.create", "")?.and_then(|e| e.content().get("type").cloned()) {
            chunk["room_type"] = room_type;
        }
        Ok(chunk)
    }

    /// Whether `user` may manage the room's aliases and listing: enough power to send state
    /// (`state_default`), as the spec leaves this to the server and Synapse does the same.
    pub fn can_manage_room(&self, room_id: &RoomId, user: &UserId) -> Result<bool> {
        let record = self.room(room_id)?;
        self.has_power(record.current_state_group, user, "state_default", 50)
    }

    pub async fn create_alias(&self, alias: &str, room_id: &RoomId, creator: &UserId) -> Result<()> {
        self.room(room_id)?;
        if self.records.alias(alias)?.is_some() {
            return Err(Error::matrix(http::StatusCode::CONFLICT, ruma::api::error::ErrorKind::Unknown, "Room alias already exists"));
        }
        let mut batch = myelin_storage::Batch::new();
        self.records.put_alias(&mut batch, alias, room_id.as_str(), creator.as_str())?;
        Ok(self.db.write_async(batch).await?)
    }

    /// Deletes an alias if `user` created it or may manage the room (`is_admin`: server admins
    /// may always).
    pub async fn delete_alias(&self, alias: &str, user: &UserId, is_admin: bool) -> Result<()> {
        let room_id = self.records.alias(alias)?.ok_or_else(|| Error::not_found("Room alias not found"))?;
        let room = RoomId::parse(&room_id).map_err(|e| Error::internal(e.to_string()))?;
        let creator = self.records.aliases_of(&room_id)?.into_iter().find(|(a, _)| a == alias).map(|(_, c)| c);
        if !is_admin && creator.as_deref() != Some(user.as_str()) && !self.can_manage_room(&room, user)? {
            return Err(Error::forbidden("You may not delete this alias"));
        }
        let mut batch = myelin_storage::Batch::new();
        self.records.delete_alias(&mut batch, alias, &room_id);
        Ok(self.db.write_async(batch).await?)
    }

    pub async fn set_listed(&self, room_id: &RoomId, listed: bool) -> Result<()> {
        let mut batch = myelin_storage::Batch::new();
        self.records.set_published(&mut batch, room_id.as_str(), listed)?;
        Ok(self.db.write_async(batch).await?)
    }
}

impl Rooms {
    /// Sends a fresh join event into every room the user is joined to, carrying the new
    /// profile, so other members see the change (as the spec asks of profile updates).
    /// A room that refuses the event is logged and skipped: the profile change itself stands.
    pub async fn propagate_profile(&self, user: &UserId, displayname: Option<&str>, avatar_url: Option<&str>) -> Result<()> {
        for (room_id, entry) in self.membership.rooms_of(user.as_str())? {
            if entry.membership != "join" {
                continue;
            }
            let Ok(room) = RoomId::parse(&room_id) else { continue };
            let current = self.room(&room)?;
            let mut content = self
                .state_event(current.current_state_group, "m.room.member", user.as_str())?
                .map(|event| event.content().clone())
                .unwrap_or_else(|| json!({"membership": "join"}));
            let Some(object) = content.as_object_mut() else { continue };
            for (key, value) in [("displayname", displayname), ("avatar_url", avatar_url)] {
                match value {
                    Some(value) => object.insert(key.to_owned(), json!(value)),
                    None => object.remove(key),
                };
            }
            let draft = super::EventDraft::state("m.room.member", user.as_str(), content);
            if let Err(error) = self.append(&room, user, draft, None).await {
                tracing::warn!(%room_id, %error, "could not propagate a profile change");
            }
        }
        Ok(())
    }
}

impl Rooms {
    /// The state a user may read: the current state for members (and anyone when history is
    /// world-readable); for a user who left or was banned, the state when they left.
    pub fn readable_state_group(&self, room_id: &RoomId, user: &UserId) -> Result<u64> {
        let record = self.room(room_id)?;
        let entry = self.membership.get(room_id.as_str(), user.as_str())?;
        match entry {
            Some(entry) if entry.membership == "join" => Ok(record.current_state_group),
            _ if self.history_visibility(record.current_state_group)? == "world_readable" => Ok(record.current_state_group),
            Some(entry) if entry.membership == "leave" || entry.membership == "ban" => {
                let (_, event) = self.event(&entry.event_id)?.ok_or_else(|| Error::internal("membership event missing"))?;
                Ok(event.state_after)
            }
            _ => Err(Error::forbidden("You are not a member of this room")),
        }
    }
}

impl Rooms {
    /// Refuses a redaction the redacter may not make: someone else's event without the
    /// `redact` power level. (Unknown events may be redacted: the server might learn of them
    /// later.)
    pub fn check_may_redact(&self, room_id: &RoomId, target: &ruma::EventId, redacter: &UserId) -> Result<()> {
        let record = self.room(room_id)?;
        let Some((_, event)) = self.event(target.as_str())? else { return Ok(()) };
        if event.room_short != record.short || event.sender() == redacter.as_str() {
            return Ok(());
        }
        if !self.has_power(record.current_state_group, redacter, "redact", 50)? {
            return Err(Error::forbidden("You do not have the power to redact other users' events"));
        }
        Ok(())
    }
}

/// A page of the directory: listed rooms matching `search`, most members first. Tokens are
/// offsets (`o<n>`), which is enough for a directory of this size.
pub struct DirectoryPage {
    pub chunk: Vec<PublicRoomsChunk>,
    pub next: Option<String>,
    pub prev: Option<String>,
    pub total: usize,
}

impl Rooms {
    pub fn directory_page(&self, search: Option<&str>, since: Option<&str>, limit: Option<UInt>) -> Result<DirectoryPage> {
        let offset = match since {
            None => 0,
            Some(token) => token
                .strip_prefix('o')
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| Error::invalid_param("Invalid pagination token"))?,
        };
        let limit = limit.map_or(100, |l| usize::try_from(u64::from(l)).unwrap_or(100)).clamp(1, 500);
        let needle = search.map(str::to_lowercase).filter(|s| !s.is_empty());
        let mut chunks = Vec::new();
        for room_id in self.records.published_rooms()? {
            let Ok(room) = RoomId::parse(&room_id) else { continue };
            let chunk = self.public_chunk(&room)?;
            if let Some(needle) = &needle {
                let text = ["name", "topic", "canonical_alias"]
                    .iter()
                    .filter_map(|k| chunk.get(*k).and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase();
                if !text.contains(needle.as_str()) {
                    continue;
                }
            }
            chunks.push(chunk);
        }
        chunks.sort_by_key(|c| std::cmp::Reverse(c["num_joined_members"].as_u64().unwrap_or(0)));
        let total = chunks.len();
        let page: Vec<PublicRoomsChunk> = chunks
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|c| serde_json::from_value(c).map_err(|e| Error::internal(e.to_string())))
            .collect::<Result<_>>()?;
        let next = (offset + page.len() < total).then(|| format!("o{}", offset + page.len()));
        let prev = (offset > 0).then(|| format!("o{}", offset.saturating_sub(limit)));
        Ok(DirectoryPage { chunk: page, next, prev, total })
    }
}
