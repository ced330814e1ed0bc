//! Room creation: the events a new room starts with, per the spec's presets.

use ruma::{OwnedRoomId, OwnedUserId, RoomVersionId, UserId};
use serde_json::{Map, Value, json};

use super::{EventDraft, Rooms, room_id_is_derived};
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    PrivateChat,
    TrustedPrivateChat,
    PublicChat,
}

/// Everything `createRoom` asked for, already parsed.
pub struct RoomSpec {
    pub version: RoomVersionId,
    pub preset: Preset,
    pub creation_content: Map<String, Value>,
    pub power_level_override: Option<Map<String, Value>>,
    pub initial_state: Vec<EventDraft>,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub invite: Vec<OwnedUserId>,
    pub is_direct: bool,
    pub canonical_alias: Option<String>,
    pub creator_profile: (Option<String>, Option<String>),
}

impl Rooms {
    pub async fn create_from_spec(&self, creator: &UserId, spec: RoomSpec) -> Result<OwnedRoomId> {
        let (create_content, following) = initial_events(creator, spec)?;
        let version = create_content
            .get("room_version")
            .and_then(Value::as_str)
            .and_then(|v| RoomVersionId::try_from(v).ok())
            .ok_or_else(|| Error::internal("create content lost its room version"))?;
        self.create_room(&version, creator, Value::Object(create_content), following).await
    }
}

impl Rooms {
    /// Records a new room's alias and directory listing, as `createRoom` asks.
    pub async fn publish(&self, room_id: &ruma::RoomId, alias: Option<&str>, creator: &UserId, listed: bool) -> Result<()> {
        let mut batch = myelin_storage::Batch::new();
        if let Some(alias) = alias {
            self.records.put_alias(&mut batch, alias, room_id.as_str(), creator.as_str())?;
        }
        if listed {
            self.records.set_published(&mut batch, room_id.as_str(), true)?;
        }
        if !batch.is_empty() {
            self.db.write_async(batch).await?;
        }
        Ok(())
    }
}

/// The create event's content and the events after it, in the order the spec gives:
/// creator's join, power levels, alias, preset state, initial_state, name, topic, invites.
fn initial_events(creator: &UserId, spec: RoomSpec) -> Result<(Map<String, Value>, Vec<EventDraft>)> {
    let mut create = spec.creation_content.clone();
    create.insert("room_version".to_owned(), json!(spec.version.as_str()));
    // From v11 the creator is the create event's sender; earlier versions name it.
    let names_creator = matches!(
        spec.version,
        RoomVersionId::V1
            | RoomVersionId::V2
            | RoomVersionId::V3
            | RoomVersionId::V4
            | RoomVersionId::V5
            | RoomVersionId::V6
            | RoomVersionId::V7
            | RoomVersionId::V8
            | RoomVersionId::V9
            | RoomVersionId::V10
    );
    if names_creator {
        create.insert("creator".to_owned(), json!(creator));
    } else {
        create.remove("creator");
    }
    // In v12 rooms, trusted private chats make the invitees co-creators (MSC4289) instead of
    // giving them power level 100.
    if spec.preset == Preset::TrustedPrivateChat && room_id_is_derived(&spec.version) && !spec.invite.is_empty() {
        create.insert("additional_creators".to_owned(), json!(spec.invite));
    }

    let mut events = Vec::new();
    let mut member = json!({"membership": "join"});
    if let Some(name) = &spec.creator_profile.0 {
        member["displayname"] = json!(name);
    }
    if let Some(url) = &spec.creator_profile.1 {
        member["avatar_url"] = json!(url);
    }
    events.push(EventDraft::state("m.room.member", creator.as_str(), member));
    events.push(EventDraft::state("m.room.power_levels", "", power_levels(creator, &spec)));
    if let Some(alias) = &spec.canonical_alias {
        events.push(EventDraft::state("m.room.canonical_alias", "", json!({"alias": alias})));
    }
    let (join_rule, guest_access) = match spec.preset {
        Preset::PublicChat => ("public", "forbidden"),
        Preset::PrivateChat | Preset::TrustedPrivateChat => ("invite", "can_join"),
    };
    let preset_state = [
        EventDraft::state("m.room.join_rules", "", json!({"join_rule": join_rule})),
        EventDraft::state("m.room.history_visibility", "", json!({"history_visibility": "shared"})),
        EventDraft::state("m.room.guest_access", "", json!({"guest_access": guest_access})),
    ];
    // initial_state wins over the preset for the same (type, state_key).
    let overridden = |draft: &EventDraft| {
        spec.initial_state.iter().any(|s| s.event_type == draft.event_type && s.state_key == draft.state_key)
    };
    events.extend(preset_state.into_iter().filter(|draft| !overridden(draft)));
    events.extend(spec.initial_state.iter().cloned());
    if let Some(name) = &spec.name {
        events.push(EventDraft::state("m.room.name", "", json!({"name": name})));
    }
    if let Some(topic) = &spec.topic {
        events.push(EventDraft::state("m.room.topic", "", json!({"topic": topic})));
    }
    for invitee in &spec.invite {
        let mut content = json!({"membership": "invite"});
        if spec.is_direct {
            content["is_direct"] = json!(true);
        }
        events.push(EventDraft::state("m.room.member", invitee.as_str(), content));
    }
    Ok((create, events))
}

fn power_levels(creator: &UserId, spec: &RoomSpec) -> Value {
    let mut users = Map::new();
    // v12 creators outrank every power level and must not be listed.
    if !room_id_is_derived(&spec.version) {
        users.insert(creator.to_string(), json!(100));
    }
    if spec.preset == Preset::TrustedPrivateChat && !room_id_is_derived(&spec.version) {
        for invitee in &spec.invite {
            users.insert(invitee.to_string(), json!(100));
        }
    }
    let mut content = json!({
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 0,
        "notifications": {"room": 50},
    });
    if let (Some(overrides), Some(object)) = (&spec.power_level_override, content.as_object_mut()) {
        for (key, value) in overrides {
            object.insert(key.clone(), value.clone());
        }
    }
    content
}
