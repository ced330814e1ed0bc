//! Test fixtures: rooms made of real signed events (built with [`build_pdu`], auth events picked
//! with [`select_auth_events`]), held in memory maps. No mocks: the tests run ruma's actual
//! authorization rules and state resolution over these events.

use std::collections::HashMap;

use ruma::{
    CanonicalJsonObject, EventId, OwnedEventId, OwnedRoomId, OwnedServerName, OwnedUserId,
    RoomVersionId, UserId, events::StateEventType, room_id, server_name,
};
use serde_json::{Value, json};

use crate::{
    Pdu, PduTemplate, Result, ServerSigningKey, StateMap,
    auth::{auth_types_for, check_auth, select_auth_events},
    keys::to_canonical_object,
    pdu::build_pdu,
    room_version::room_version_rules,
};

/// One line of the DAG: the state after its last events, and those events.
#[derive(Clone, Debug, Default)]
pub(crate) struct Branch {
    pub state: StateMap<OwnedEventId>,
    pub prev: Vec<OwnedEventId>,
    pub depth: u64,
}

impl Branch {
    pub fn get(&self, event_type: StateEventType, state_key: &str) -> Option<&OwnedEventId> {
        self.state.get(&(event_type, state_key.to_owned()))
    }
}

pub(crate) struct TestRoom {
    pub version: RoomVersionId,
    pub server: OwnedServerName,
    pub key: ServerSigningKey,
    pub room_id: OwnedRoomId,
    pub creator: OwnedUserId,
    pub events: HashMap<OwnedEventId, Pdu>,
    pub main: Branch,
    clock: u64,
}

pub(crate) fn user(name: &str) -> OwnedUserId {
    UserId::parse(format!("@{name}:hs1")).unwrap()
}

pub(crate) fn object(value: Value) -> CanonicalJsonObject {
    to_canonical_object(&value).unwrap()
}

impl TestRoom {
    /// A room created by `@alice:hs1`: create, alice's join, power levels (alice 100 where the
    /// version does not make creators all-powerful, plus `extra_power`), join rules
    /// `join_rule`, history visibility `shared`. Every event passes `check_auth` or this panics.
    pub fn new(version: RoomVersionId, join_rule: &str, extra_power: &[(&str, i64)]) -> Self {
        let rules = room_version_rules(&version).unwrap();
        let creator = user("alice");
        let mut room = Self {
            version: version.clone(),
            server: server_name!("hs1").to_owned(),
            key: ServerSigningKey::generate().unwrap(),
            room_id: room_id!("!placeholder:hs1").to_owned(),
            creator: creator.clone(),
            events: HashMap::new(),
            main: Branch::default(),
            clock: 1_000,
        };

        let mut create_content = json!({ "room_version": version.as_str() });
        if !rules.authorization.use_room_create_sender {
            create_content["creator"] = creator.as_str().into();
        }
        let derived_room_id = rules.authorization.room_create_event_id_as_room_id;
        let create = room
            .build_template(
                &Branch::default(),
                (!derived_room_id).then(|| room_id!("!fixture:hs1").to_owned()),
                &creator,
                "m.room.create",
                Some(""),
                create_content,
            )
            .unwrap();
        room.room_id = create.1;
        let create = create.0;
        room.accept(&create);

        let mut users = serde_json::Map::new();
        if !rules.authorization.explicitly_privilege_room_creators {
            users.insert(creator.to_string(), 100.into());
        }
        for (name, level) in extra_power {
            users.insert(user(name).to_string(), (*level).into());
        }
        let mut main = room.main.clone();
        for (event_type, content) in [
            ("m.room.member", json!({ "membership": "join" })),
            ("m.room.power_levels", json!({ "users": users })),
            ("m.room.join_rules", json!({ "join_rule": join_rule })),
            (
                "m.room.history_visibility",
                json!({ "history_visibility": "shared" }),
            ),
        ] {
            let state_key = if event_type == "m.room.member" {
                creator.as_str()
            } else {
                ""
            };
            room.send(&mut main, &creator, event_type, Some(state_key), content)
                .unwrap();
        }
        room.main = main;
        room
    }

    pub fn fetch(&self) -> impl Fn(&EventId) -> Option<Pdu> + '_ {
        |id| self.events.get(id).cloned()
    }

    /// Sets the `origin_server_ts` of the next event.
    pub fn set_clock(&mut self, ts: u64) {
        self.clock = ts;
    }

    /// Builds an event on top of `branch` without checking or applying it.
    pub fn build(
        &mut self,
        branch: &Branch,
        sender: &UserId,
        event_type: &str,
        state_key: Option<&str>,
        content: Value,
    ) -> Result<Pdu> {
        let room_id = Some(self.room_id.clone());
        self.build_template(branch, room_id, sender, event_type, state_key, content)
            .map(|b| b.0)
    }

    /// Checks `pdu` against the state of `branch`.
    pub fn check(&self, pdu: &Pdu, branch: &Branch) -> Result<()> {
        check_auth(&self.version, pdu, self.fetch(), |event_type, state_key| {
            branch
                .get(event_type.clone(), state_key)
                .and_then(|id| self.events.get(id).cloned())
        })
    }

    /// Builds, checks and (if allowed) appends an event to `branch`.
    pub fn send(
        &mut self,
        branch: &mut Branch,
        sender: &UserId,
        event_type: &str,
        state_key: Option<&str>,
        content: Value,
    ) -> Result<Pdu> {
        let pdu = self.build(branch, sender, event_type, state_key, content)?;
        self.check(&pdu, branch)?;
        self.events.insert(pdu.event_id().to_owned(), pdu.clone());
        append(branch, &pdu);
        Ok(pdu)
    }

    /// A user's join on `branch` (the room must let them in).
    pub fn join(&mut self, branch: &mut Branch, name: &str) -> Pdu {
        let user = user(name);
        self.send(
            branch,
            &user,
            "m.room.member",
            Some(user.as_str()),
            json!({ "membership": "join" }),
        )
        .unwrap()
    }

    fn accept(&mut self, pdu: &Pdu) {
        self.check(pdu, &self.main.clone()).unwrap();
        self.events.insert(pdu.event_id().to_owned(), pdu.clone());
        let mut main = std::mem::take(&mut self.main);
        append(&mut main, pdu);
        self.main = main;
    }

    fn build_template(
        &mut self,
        branch: &Branch,
        room_id: Option<OwnedRoomId>,
        sender: &UserId,
        event_type: &str,
        state_key: Option<&str>,
        content: Value,
    ) -> Result<(Pdu, OwnedRoomId)> {
        let content = object(content);
        let types = auth_types_for(&self.version, event_type, sender, state_key, &content)?;
        let auth_events = select_auth_events(&self.version, &types, |event_type, state_key| {
            branch.get(event_type.clone(), state_key).cloned()
        })?;
        self.clock += 1;
        let template = PduTemplate {
            room_id,
            sender: sender.to_owned(),
            event_type: event_type.to_owned(),
            state_key: state_key.map(ToOwned::to_owned),
            content,
            redacts: None,
            prev_events: branch.prev.clone(),
            auth_events,
            depth: branch.depth + 1,
            origin_server_ts: self.clock,
        };
        let built = build_pdu(&self.version, template, &self.server, &self.key)?;
        Ok((built.to_pdu()?, built.room_id))
    }
}

fn append(branch: &mut Branch, pdu: &Pdu) {
    if let Some(state_key) = pdu.state_key() {
        let key = (
            StateEventType::from(pdu.event_type().to_string()),
            state_key.to_owned(),
        );
        branch.state.insert(key, pdu.event_id().to_owned());
    }
    branch.prev = vec![pdu.event_id().to_owned()];
    branch.depth = pdu.depth();
}

/// The public key map under which `key` verifies signatures of `server`.
pub(crate) fn public_keys(server: &str, key: &ServerSigningKey) -> ruma::signatures::PublicKeyMap {
    use ruma::serde::{Base64, base64::Standard};
    let key_bytes = Base64::<Standard, Vec<u8>>::parse(key.public_key_base64()).unwrap();
    let set = std::collections::BTreeMap::from([(key.key_id(), key_bytes)]);
    std::collections::BTreeMap::from([(server.to_owned(), set)])
}
