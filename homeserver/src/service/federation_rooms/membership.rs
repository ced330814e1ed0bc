//! Membership that crosses servers: joining, leaving and inviting as the user's server, and
//! answering `make_*`/`send_*`/`invite` as the server that holds the room.

use std::collections::{HashMap, HashSet};

use myelin_federation::{
    auth::check_auth_against_auth_events,
    pdu::{Pdu, hash_and_sign_pdu, sign_pdu},
    room_version::{is_supported_room_version, supported_room_versions},
};
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, EventId, OwnedEventId, OwnedServerName, RoomId, RoomVersionId,
    ServerName, UserId,
    api::federation::membership::{
        RawStrippedState, create_invite, create_join_event, create_knock_event, create_leave_event, prepare_join_event,
        prepare_knock_event, prepare_leave_event,
    },
};
use serde_json::{Value, json, value::RawValue};

use super::{Federation, canonical_object};
use crate::{
    error::{Error, Result},
    service::rooms::{EventDraft, Received, StateBefore},
    util::now_millis,
};

/// What a resident server hands a joining server: the state before the join and its auth
/// chain, as federation PDUs.
pub struct JoinedState {
    pub state: Vec<Box<RawValue>>,
    pub auth_chain: Vec<Box<RawValue>>,
    /// The join as countersigned by us, for restricted joins.
    pub event: Option<Box<RawValue>>,
    pub servers_in_room: Vec<String>,
}

impl Federation {
    /// Joins a local user to a room held by other servers, trying `servers` in order:
    /// `make_join`, sign, `send_join`, then take the room's state from the answer.
    pub async fn join_remote(&self, room_id: &RoomId, user: &UserId, servers: &[OwnedServerName]) -> Result<()> {
        let mut last_error = Error::not_found("No server to join the room through");
        for server in dedup_servers(servers, &self.server_name) {
            match self.join_through(&server, room_id, user).await {
                Ok(()) => return Ok(()),
                Err(error) => {
                    tracing::info!(%server, %room_id, %error, "remote join failed");
                    let refused = matches!(&error, Error::Matrix { status, .. } if *status == http::StatusCode::FORBIDDEN || *status == http::StatusCode::BAD_REQUEST);
                    last_error = error;
                    if refused {
                        break;
                    }
                }
            }
        }
        Err(last_error)
    }

    async fn join_through(&self, server: &ServerName, room_id: &RoomId, user: &UserId) -> Result<()> {
        let mut request = prepare_join_event::v1::Request::new(room_id.to_owned(), user.to_owned());
        request.ver = supported_room_versions().to_vec();
        let template = self.client.send(server, request).await?;
        let version = template.room_version.unwrap_or(RoomVersionId::V1);
        if !is_supported_room_version(&version) {
            return Err(incompatible_room_version(&version, format!("Room version {version} is not supported")));
        }
        let (event_id, json) = self.sign_membership_template(&version, &template.event, user, "join")?;
        let request = create_join_event::v2::Request::new(room_id.to_owned(), event_id.clone(), to_raw(&json)?);
        let answer = self.client.send(server, request).await?.room_state;
        // A restricted join comes back countersigned by the resident server: use that copy.
        let join_json = match &answer.event {
            Some(raw) => canonical_object(raw)?,
            None => json,
        };
        let join = self.verify_event(&version, join_json).await?;
        if join.event_id() != event_id {
            return Err(Error::forbidden(format!("{server} returned a different join event")));
        }
        let state = self.verified_pdus(&version, room_id, &answer.state).await;
        let auth_chain = self.verified_pdus(&version, room_id, &answer.auth_chain).await;
        let (state, auth_chain) = check_join_state(&version, room_id, state, auth_chain)?;
        let started = std::time::Instant::now();
        self.rooms.persist_join(&version, room_id, &state, &auth_chain, join).await?;
        tracing::info!(%room_id, %server, state = state.len(), auth_chain = auth_chain.len(), elapsed_ms = started.elapsed().as_millis() as u64, "joined a remote room");
        Ok(())
    }

    /// Turns a resident server's `make_join`/`make_leave` template into our user's signed
    /// event: our profile in a join, our timestamp, our hashes and signature.
    fn sign_membership_template(&self, version: &RoomVersionId, template: &RawValue, user: &UserId, membership: &str) -> Result<(OwnedEventId, CanonicalJsonObject)> {
        let mut json = canonical_object(template)?;
        let is_expected = json.get("type").and_then(CanonicalJsonValue::as_str) == Some("m.room.member")
            && json.get("state_key").and_then(CanonicalJsonValue::as_str) == Some(user.as_str())
            && json.get("sender").and_then(CanonicalJsonValue::as_str) == Some(user.as_str());
        if !is_expected {
            return Err(Error::forbidden("The resident server returned an unexpected membership template"));
        }
        let mut content = match json.remove("content") {
            Some(CanonicalJsonValue::Object(content)) => content,
            _ => CanonicalJsonObject::new(),
        };
        content.insert("membership".to_owned(), membership.into());
        if membership == "join"
            && let Some(account) = self.users.get(user)?
        {
            if let Some(name) = account.displayname {
                content.insert("displayname".to_owned(), name.into());
            }
            if let Some(url) = account.avatar_url {
                content.insert("avatar_url".to_owned(), url.into());
            }
        }
        json.insert("content".to_owned(), CanonicalJsonValue::Object(content));
        json.insert("origin_server_ts".to_owned(), CanonicalJsonValue::Integer(ruma::Int::try_from(now_millis()).unwrap_or_default()));
        if json.contains_key("origin") {
            json.insert("origin".to_owned(), self.server_name.to_string().into());
        }
        for field in ["signatures", "hashes", "unsigned"] {
            json.remove(field);
        }
        let rules = myelin_federation::room_version_rules(version)?;
        if rules.event_id_format != ruma::room_version_rules::EventIdFormatVersion::V1 {
            json.remove("event_id");
        }
        let event_id = hash_and_sign_pdu(version, &mut json, &self.server_name, &self.signing_key)?;
        Ok((event_id, json))
    }

    /// Verifies a list of federation PDUs of one room, dropping (and logging) those that fail.
    async fn verified_pdus(&self, version: &RoomVersionId, room_id: &RoomId, raws: &[Box<RawValue>]) -> Vec<Pdu> {
        let jsons: Vec<CanonicalJsonObject> = raws.iter().filter_map(|raw| canonical_object(raw).ok()).collect();
        let results = self.verify_events(version, jsons).await;
        let mut out = Vec::with_capacity(results.len());
        for result in results {
            match result {
                Ok(pdu) if super::backfill::belongs_to(&pdu, room_id) => out.push(pdu),
                Ok(pdu) => tracing::info!(event_id = %pdu.event_id(), "dropped an event of another room"),
                Err(error) => tracing::info!(%error, "dropped an event that failed verification"),
            }
        }
        out
    }

    /// Knocks on a room we do not hold: `make_knock`, sign, `send_knock`; the answer's room
    /// preview is kept for the user's sync.
    pub async fn knock_remote(&self, room_id: &RoomId, user: &UserId, servers: &[OwnedServerName]) -> Result<()> {
        let mut last_error = Error::not_found("No server to knock through");
        for server in dedup_servers(servers, &self.server_name) {
            let attempt = async {
                let mut request = prepare_knock_event::v1::Request::new(room_id.to_owned(), user.to_owned());
                request.ver = supported_room_versions().to_vec();
                let template = self.client.send(&server, request).await?;
                let version = template.room_version;
                if !is_supported_room_version(&version) {
                    return Err(incompatible_room_version(&version, format!("Room version {version} is not supported")));
                }
                let (event_id, json) = self.sign_membership_template(&version, &template.event, user, "knock")?;
                let answer = self.client.send(&server, create_knock_event::v1::Request::new(room_id.to_owned(), event_id.clone(), to_raw(&json)?)).await?;
                let knock = Pdu::for_version(&version, event_id, json)?;
                let preview = answer.knock_room_state.iter().filter_map(stripped_from_raw).collect();
                self.rooms.store_remote_membership(room_id, &knock, "knock", preview).await
            };
            match attempt.await {
                Ok(()) => return Ok(()),
                Err(error) => {
                    tracing::info!(%server, %room_id, %error, "remote knock failed");
                    let refused = matches!(&error, Error::Matrix { status, .. } if *status == http::StatusCode::FORBIDDEN);
                    last_error = error;
                    if refused {
                        break;
                    }
                }
            }
        }
        Err(last_error)
    }

    /// Leaves a room we do not hold (declining an invite, withdrawing a knock) through the
    /// server that invited us, or any of `servers`.
    pub async fn leave_remote(&self, room_id: &RoomId, user: &UserId, servers: &[OwnedServerName]) -> Result<()> {
        let mut last_error = Error::not_found("No server to leave the room through");
        for server in dedup_servers(servers, &self.server_name) {
            let attempt = async {
                let template = self.client.send(&server, prepare_leave_event::v1::Request::new(room_id.to_owned(), user.to_owned())).await?;
                let version = template.room_version.unwrap_or(RoomVersionId::V1);
                let (event_id, json) = self.sign_membership_template(&version, &template.event, user, "leave")?;
                self.client.send(&server, create_leave_event::v2::Request::new(room_id.to_owned(), event_id.clone(), to_raw(&json)?)).await?;
                let leave = Pdu::for_version(&version, event_id, json)?;
                self.rooms.store_remote_leave(room_id, user, &leave).await
            };
            match attempt.await {
                Ok(()) => return Ok(()),
                Err(error) => {
                    tracing::info!(%server, %room_id, %error, "remote leave failed");
                    last_error = error;
                }
            }
        }
        Err(last_error)
    }

    /// Invites a user of another server to a room we hold: their server countersigns the
    /// invite (`/invite`), then it is stored and sent to the room like any local event.
    pub async fn invite_remote(&self, room_id: &RoomId, sender: &UserId, invitee: &UserId, content: Value) -> Result<()> {
        let (version, invite) = self.rooms.build_local(room_id, sender, EventDraft::state("m.room.member", invitee.as_str(), content)).await?;
        let invite_room_state = self.room_preview(room_id)?;
        let request = create_invite::v2::Request::new(
            room_id.to_owned(),
            invite.event_id().to_owned(),
            version.clone(),
            to_raw(invite.json())?,
            invite_room_state,
        );
        let answer = self.client.send(invitee.server_name(), request).await?;
        let signed = self.verify_event(&version, canonical_object(&answer.event)?).await?;
        let countersigned = signed
            .json()
            .get("signatures")
            .and_then(|s| if let CanonicalJsonValue::Object(s) = s { s.get(invitee.server_name().as_str()) } else { None })
            .is_some();
        if signed.event_id() != invite.event_id() || !countersigned {
            return Err(Error::forbidden(format!("{} did not countersign the invite", invitee.server_name())));
        }
        match self.rooms.accept_remote(room_id, signed, StateBefore::PrevEvents, false).await? {
            Received::SoftFailed => Err(Error::forbidden("The invite is no longer allowed by the room's state")),
            Received::Accepted(_) | Received::Known => Ok(()),
        }
    }

    /// The room's public face for an invite or knock preview, as full PDUs (spec v1.16).
    pub fn room_preview(&self, room_id: &RoomId) -> Result<Vec<RawStrippedState>> {
        let record = self.rooms.room(room_id)?;
        let mut out = Vec::new();
        for event_type in crate::service::sync::INVITE_STATE_TYPES {
            if let Some(event) = self.rooms.state_event(record.current_state_group, event_type, "")? {
                out.push(RawStrippedState::Pdu(to_raw_value(&federation_pdu(&event.pdu))?));
            }
        }
        Ok(out)
    }

    /// Answers another server's `/invite` for one of our users: checks and countersigns the
    /// invite, and records it so the user sees it.
    pub async fn receive_invite(&self, origin: &ServerName, request: &create_invite::v2::Request) -> Result<Box<RawValue>> {
        let version = &request.room_version;
        if !is_supported_room_version(version) {
            return Err(incompatible_room_version(version, format!("Room version {version} is not supported")));
        }
        let invite = self.verify_event(version, canonical_object(&request.event)?).await?;
        let target = invite.state_key().and_then(|key| UserId::parse(key).ok()).ok_or_else(|| Error::bad_json("The invite has no valid state_key"))?;
        let is_invite = invite.event_type().to_string() == "m.room.member" && content_str(invite.json(), "membership") == Some("invite");
        if !is_invite || invite.event_id() != request.event_id || invite.room_id() != Some(&request.room_id) {
            return Err(Error::bad_json("Not an invite for this room and event ID"));
        }
        if invite.sender().server_name() != origin {
            return Err(Error::forbidden("The invite's sender is not a user of the requesting server"));
        }
        if !self.users.is_local(&target) || !self.users.exists(&target)? {
            return Err(Error::not_found("The invited user does not exist here"));
        }
        let mut json = invite.json().clone();
        sign_pdu(version, &mut json, &self.server_name, &self.signing_key)?;
        let signed = Pdu::for_version(version, invite.event_id().to_owned(), json.clone())?;
        let stripped: Vec<Value> = request.invite_room_state.iter().filter_map(stripped_from_raw).collect();
        let room_held_with_us_in_it = self.rooms.records.room(request.room_id.as_str())?.is_some()
            && self.rooms.joined_servers(&request.room_id)?.contains(&self.server_name);
        if !room_held_with_us_in_it {
            self.rooms.store_remote_membership(&request.room_id, &signed, "invite", stripped).await?;
        }
        to_raw(&json)
    }

    /// `make_join`/`make_leave` as the resident server: the event template for a remote user.
    pub async fn membership_template_for(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        user: &UserId,
        membership: &str,
        supported_versions: Option<&[RoomVersionId]>,
    ) -> Result<(RoomVersionId, Box<RawValue>)> {
        if user.server_name() != origin {
            return Err(Error::forbidden("The user is not a user of the requesting server"));
        }
        self.ensure_resident(room_id, origin)?;
        let record = self.rooms.room(room_id)?;
        let version = self.rooms.room_version(&record)?;
        if let Some(supported) = supported_versions
            && !supported.contains(&version)
        {
            return Err(incompatible_room_version(&version, format!("The room is version {version}, which the joining server does not support")));
        }
        let mut content = json!({ "membership": membership });
        if membership == "join"
            && let Some(authoriser) = self.restricted_join_authoriser(room_id, user)?
        {
            content["join_authorised_via_users_server"] = json!(authoriser);
        }
        let (version, json) = self.rooms.membership_template(room_id, user, content).await?;
        Ok((version, to_raw(&json)?))
    }

    /// For a restricted room a user is not yet invited to or joined: one of our users who
    /// may invite, to vouch for the join, if the user is in one of the rooms that allow it.
    fn restricted_join_authoriser(&self, room_id: &RoomId, user: &UserId) -> Result<Option<String>> {
        let record = self.rooms.room(room_id)?;
        let Some(join_rules) = self.rooms.state_event(record.current_state_group, "m.room.join_rules", "")? else { return Ok(None) };
        let rule = join_rules.content().get("join_rule").and_then(Value::as_str).unwrap_or_default();
        if rule != "restricted" && rule != "knock_restricted" {
            return Ok(None);
        }
        if matches!(self.rooms.membership.membership(room_id.as_str(), user.as_str())?.as_deref(), Some("join" | "invite")) {
            return Ok(None);
        }
        let allowed_rooms: Vec<&str> = join_rules
            .content()
            .get("allow")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|rule| rule.get("type").and_then(Value::as_str) == Some("m.room_membership"))
            .filter_map(|rule| rule.get("room_id").and_then(Value::as_str))
            .collect();
        let qualifies = allowed_rooms
            .iter()
            .any(|allowed| self.rooms.membership.membership(allowed, user.as_str()).ok().flatten().as_deref() == Some("join"));
        if !qualifies {
            return Err(Error::forbidden("You are not in any of the rooms that allow joining this one"));
        }
        for (member, entry) in self.rooms.membership.members(room_id.as_str())?.iter() {
            let Ok(member) = UserId::parse(member.as_str()) else { continue };
            if entry.membership == "join" && self.users.is_local(&member) && self.rooms.has_power(record.current_state_group, &member, "invite", 0)? {
                return Ok(Some(member.to_string()));
            }
        }
        Err(Error::forbidden("No user here may authorise the join"))
    }

    /// `send_join`/`send_leave` as the resident server: checks the signed membership event
    /// and stores it; a join returns the state the joining server needs.
    pub async fn receive_membership(&self, origin: &ServerName, room_id: &RoomId, event_id: &EventId, raw: &RawValue, membership: &str) -> Result<Option<JoinedState>> {
        self.ensure_resident(room_id, origin)?;
        let record = self.rooms.room(room_id)?;
        let version = self.rooms.room_version(&record)?;
        let mut json = canonical_object(raw)?;
        // A restricted join names one of our users as its authoriser: our countersignature is
        // one the checks require, so it goes on first, once the user still qualifies.
        let authoriser = content_str(&json, "join_authorised_via_users_server").and_then(|user| UserId::parse(user).ok());
        let countersigned = authoriser.as_ref().is_some_and(|user| self.users.is_local(user));
        if countersigned {
            let joining = json.get("sender").and_then(CanonicalJsonValue::as_str).and_then(|user| UserId::parse(user).ok());
            let joining = joining.ok_or_else(|| Error::bad_json("The event has no valid sender"))?;
            self.restricted_join_authoriser(room_id, &joining)?;
            sign_pdu(&version, &mut json, &self.server_name, &self.signing_key)?;
        }
        let event = self.verify_event(&version, json.clone()).await?;
        let well_formed = event.event_type().to_string() == "m.room.member"
            && event.state_key() == Some(event.sender().as_str())
            && content_str(event.json(), "membership") == Some(membership)
            && event.room_id() == Some(room_id)
            && event.event_id() == event_id;
        if !well_formed {
            return Err(Error::bad_json(format!("Not a {membership} event of the sender for this room and event ID")));
        }
        if event.sender().server_name() != origin {
            return Err(Error::forbidden("The sender is not a user of the requesting server"));
        }
        match self.rooms.accept_remote(room_id, event.clone(), StateBefore::PrevEvents, false).await? {
            Received::SoftFailed => return Err(Error::forbidden("The event is not allowed by the room's current state")),
            Received::Accepted(_) | Received::Known => {}
        }
        // Everyone else in the room learns of it from us, the server it was sent through.
        let others: Vec<OwnedServerName> = self.rooms.joined_servers(room_id)?.into_iter().filter(|s| s != origin).collect();
        self.sender.enqueue_pdu(others, event.json()).await?;
        if membership != "join" {
            return Ok(None);
        }
        let (_, stored) = self.rooms.event(event_id.as_str())?.ok_or_else(|| Error::internal("the join vanished"))?;
        let state_events = self.rooms.state_before_event(&stored)?;
        let chain = self.rooms.auth_chain_of(room_id, &version, record.short, &state_events)?;
        let state = state_events.iter().map(|event| to_raw_value(&federation_pdu(&event.pdu))).collect::<Result<Vec<_>>>()?;
        let auth_chain = chain.iter().map(|event| to_raw_value(&federation_pdu(&event.pdu))).collect::<Result<Vec<_>>>()?;
        Ok(Some(JoinedState {
            state,
            auth_chain,
            event: if countersigned { Some(to_raw(&json)?) } else { None },
            servers_in_room: self.rooms.joined_servers(room_id)?.iter().map(ToString::to_string).collect(),
        }))
    }

    /// We can only answer for a room if one of our users is in it.
    /// and the room's server ACL must admit the requesting server.
    fn ensure_resident(&self, room_id: &RoomId, origin: &ServerName) -> Result<()> {
        let Some(record) = self.rooms.records.room(room_id.as_str())? else {
            return Err(Error::not_found("This server is not in that room"));
        };
        if !self.rooms.joined_servers(room_id)?.contains(&self.server_name) {
            return Err(Error::not_found("This server is not in that room"));
        }
        self.rooms.ensure_server_allowed(&record, origin)
    }

    /// Servers to reach a room through, for a local user about to join it: those given, the
    /// server of whoever invited them, and the server in the room ID (before v12).
    pub fn join_candidates(&self, room_id: &RoomId, user: &UserId, given: &[OwnedServerName]) -> Result<Vec<OwnedServerName>> {
        let mut servers: Vec<OwnedServerName> = given.to_vec();
        if let Some(entry) = self.rooms.membership.get(room_id.as_str(), user.as_str())?
            && let Some((_, invite)) = self.rooms.event(&entry.event_id)?
            && let Ok(inviter) = UserId::parse(invite.sender())
        {
            servers.push(inviter.server_name().to_owned());
        }
        if let Some(server) = room_id.server_name() {
            servers.push(server.to_owned());
        }
        Ok(servers)
    }
}

/// The servers to try, each once, never ourselves.
fn dedup_servers(servers: &[OwnedServerName], own: &ServerName) -> Vec<OwnedServerName> {
    let mut seen = HashSet::new();
    servers.iter().filter(|s| s.as_str() != own.as_str() && seen.insert(s.as_str().to_owned())).cloned().collect()
}

/// Checks a join's state and auth chain against their own auth events (oldest first) and
/// keeps what passes. The room's create event must be there, for the room we asked about.
fn check_join_state(version: &RoomVersionId, room_id: &RoomId, state: Vec<Pdu>, auth_chain: Vec<Pdu>) -> Result<(Vec<Pdu>, Vec<Pdu>)> {
    let mut all: HashMap<OwnedEventId, Pdu> = HashMap::new();
    for pdu in auth_chain.iter().chain(state.iter()) {
        all.insert(pdu.event_id().to_owned(), pdu.clone());
    }
    let mut ordered: Vec<Pdu> = all.values().cloned().collect();
    ordered.sort_by_key(Pdu::depth);
    let mut accepted: HashSet<OwnedEventId> = HashSet::new();
    let fetch = |id: &EventId| all.get(id).cloned();
    for pdu in &ordered {
        match check_auth_against_auth_events(version, pdu, fetch) {
            Ok(()) => {
                accepted.insert(pdu.event_id().to_owned());
            }
            Err(error) => tracing::info!(event_id = %pdu.event_id(), %error, "dropped a state event failing its auth events"),
        }
    }
    let state: Vec<Pdu> = state.into_iter().filter(|p| accepted.contains(p.event_id())).collect();
    let create = state
        .iter()
        .find(|p| p.event_type().to_string() == "m.room.create" && p.state_key() == Some(""))
        .ok_or_else(|| Error::forbidden("The room's state has no valid m.room.create event"))?;
    let create_version = content_str(create.json(), "room_version").unwrap_or("1");
    if create_version != version.as_str() || create.room_id().is_some_and(|id| id != room_id) {
        return Err(Error::forbidden("The room's create event does not match the room"));
    }
    let auth_chain = auth_chain.into_iter().filter(|p| accepted.contains(p.event_id())).collect();
    Ok((state, auth_chain))
}

/// A string field of a PDU's content.
fn content_str<'a>(json: &'a CanonicalJsonObject, field: &str) -> Option<&'a str> {
    match json.get("content") {
        Some(CanonicalJsonValue::Object(content)) => content.get(field).and_then(CanonicalJsonValue::as_str),
        _ => None,
    }
}

/// A stored PDU as it goes over federation: never `unsigned`.
pub fn federation_pdu(pdu: &Value) -> Value {
    let mut pdu = pdu.clone();
    if let Some(object) = pdu.as_object_mut() {
        object.remove("unsigned");
    }
    pdu
}

fn to_raw(json: &CanonicalJsonObject) -> Result<Box<RawValue>> {
    serde_json::value::to_raw_value(json).map_err(|e| Error::internal(e.to_string()))
}

fn to_raw_value(value: &Value) -> Result<Box<RawValue>> {
    serde_json::value::to_raw_value(value).map_err(|e| Error::internal(e.to_string()))
}

/// An invite preview entry in the stripped form clients read, from either wire form.
fn stripped_from_raw(raw: &RawStrippedState) -> Option<Value> {
    let json: Value = match raw {
        RawStrippedState::Pdu(raw) => serde_json::from_str(raw.get()).ok()?,
        #[allow(deprecated)]
        RawStrippedState::Stripped(raw) => serde_json::from_str(raw.json().get()).ok()?,
        _ => return None,
    };
    Some(json!({
        "type": json.get("type")?,
        "state_key": json.get("state_key").cloned().unwrap_or(json!("")),
        "content": json.get("content").cloned().unwrap_or(json!({})),
        "sender": json.get("sender").cloned().unwrap_or(Value::Null),
    }))
}

/// 400 `M_INCOMPATIBLE_ROOM_VERSION`, naming the room's version.
fn incompatible_room_version(version: &RoomVersionId, message: String) -> Error {
    let data = ruma::api::error::IncompatibleRoomVersionErrorData::new(version.clone());
    Error::matrix(http::StatusCode::BAD_REQUEST, ruma::api::error::ErrorKind::IncompatibleRoomVersion(data), message)
}
