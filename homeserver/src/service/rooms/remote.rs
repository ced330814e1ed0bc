//! Events from other servers, once their signatures and hashes are checked: accepted after
//! the auth checks on receipt, kept as outliers, or taken whole from a join; plus the
//! templates of remote users' membership events and invites to rooms we do not hold.

use std::collections::{BTreeMap, HashMap, HashSet};

use myelin_federation::{
    auth::{auth_types_for, check_auth, check_auth_against_auth_events, select_auth_events},
    pdu::{Pdu, PduTemplate, prepare_pdu},
};
use myelin_storage::{Batch, Table};
use ruma::{CanonicalJsonObject, EventId, OwnedEventId, RoomId, RoomVersionId, UserId, events::StateEventType};
use serde_json::Value;

use super::{Checked, EventDraft, MembershipEntry, Placement, RoomRecord, Rooms, StoredEvent, canonical, state::ShortState};
use crate::{
    error::{Error, Result},
    util::now_millis,
};

/// Stripped state that came with an invite to a room we do not hold, by invite event ID.
const INVITE_STATE: Table<String, Vec<Value>> = Table::new("eventid_invitestate");
pub const TABLES: &[&str] = &["eventid_invitestate"];

/// What became of a received event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// Stored in the room at this stream position.
    Accepted(u64),
    /// Allowed by the state before it but not by the room's current state: kept (other events
    /// may build on it) but not shown to clients and not built upon.
    SoftFailed,
    /// We already hold it.
    Known,
}

/// Where a received event's state before it comes from.
pub enum StateBefore {
    /// The resolved state after its `prev_events`, which we hold.
    PrevEvents,
    /// The state a peer gave for it (`/state_ids`), as event IDs we hold (outliers or not).
    Ids(Vec<OwnedEventId>),
    /// A state group we already have (history filled in below a known event).
    Group(u64),
}

impl Rooms {
    /// Whether the event is in the room graph (an outlier does not count).
    pub fn has_event(&self, event_id: &str) -> Result<bool> {
        Ok(self.event_shared(event_id)?.is_some_and(|(_, event)| !event.outlier))
    }

    /// Whether we hold the event at all, as an outlier or in the graph.
    pub fn knows_event(&self, event_id: &str) -> Result<bool> {
        Ok(self.short.event(event_id)?.is_some())
    }

    /// The parsed PDU of an event we hold (outliers included).
    pub fn pdu(&self, event_id: &EventId) -> Option<Pdu> {
        self.pdu_of(event_id)
    }

    /// Stores checked events as outliers: auth events and state fetched on demand. Events we
    /// already hold are left alone.
    pub async fn store_outliers(&self, room_id: &RoomId, pdus: &[Pdu]) -> Result<()> {
        let mut batch = Batch::new();
        let room_short = match self.short.room(room_id.as_str())? {
            Some(short) => short,
            None => self.short.intern_room(&mut batch, room_id.as_str())?,
        };
        let staged = self.stage_outliers(&mut batch, room_short, pdus)?;
        let written = self.db.write_async(batch).await;
        for (_, short) in staged {
            self.timeline.committed(short);
        }
        written?;
        Ok(())
    }

    /// Stages the events we do not hold yet as outliers; returns the short IDs it staged, by
    /// event ID (not readable from the store until the batch is written).
    fn stage_outliers(&self, batch: &mut Batch, room_short: u64, pdus: &[Pdu]) -> Result<Vec<(OwnedEventId, u64)>> {
        let mut staged = Vec::new();
        let mut seen = HashSet::new();
        for pdu in pdus {
            if !seen.insert(pdu.event_id().to_owned()) || self.knows_event(pdu.event_id().as_str())? {
                continue;
            }
            let short = self.short.intern_event(batch, pdu.event_id().as_str())?;
            let stored = StoredEvent {
                event_id: pdu.event_id().to_string(),
                room_short,
                pdu: serde_json::to_value(pdu.json()).map_err(|e| Error::internal(e.to_string()))?,
                stream: 0,
                depth: pdu.depth(),
                state_before: 0,
                state_after: 0,
                txn: None,
                redacted_because: None,
                replaces_state: None,
                outlier: true,
            };
            self.timeline.insert_outlier(batch, short, &stored)?;
            staged.push((pdu.event_id().to_owned(), short));
        }
        Ok(staged)
    }

    /// Takes an event received from another server (signatures and hashes checked, its auth
    /// events held) through the auth checks on receipt: against its own auth events, against
    /// the state before it, and — for live events — against the room's current state, where
    /// failing means soft-failing. A rejected event is `M_FORBIDDEN` and not stored.
    pub async fn accept_remote(&self, room_id: &RoomId, pdu: Pdu, state: StateBefore, placement_backfill: bool) -> Result<Received> {
        let lock = self.room_lock(room_id.as_str());
        let _guard = lock.lock().await;
        if self.has_event(pdu.event_id().as_str())? {
            return Ok(Received::Known);
        }
        let record = self.room(room_id)?;
        let version = self.room_version(&record)?;
        let fetch_event = |id: &EventId| self.pdu_of(id);
        check_auth_against_auth_events(&version, &pdu, fetch_event)
            .map_err(|e| Error::forbidden(format!("{} rejected by its auth events: {e}", pdu.event_id())))?;

        let mut batch = Batch::new();
        // History filled in below what we hold borrows its child's state: good enough for
        // visibility, not for the auth rules, so only its auth events judge it.
        let state_is_exact = !matches!(state, StateBefore::Group(_));
        let state_before = match state {
            StateBefore::Group(group) => group,
            StateBefore::PrevEvents => {
                let mut groups = Vec::new();
                for prev in pdu.prev_event_ids() {
                    match self.event_shared(prev.as_str())? {
                        Some((_, event)) if !event.outlier => groups.push(event.state_after),
                        _ => return Err(Error::internal(format!("prev event {prev} of {} is not held", pdu.event_id()))),
                    }
                }
                self.resolve_groups(&mut batch, &version, &groups, None)?
            }
            StateBefore::Ids(ids) => {
                let mut full = ShortState::new();
                for id in ids {
                    let (short, event) = self.event_shared(id.as_str())?.ok_or_else(|| Error::internal(format!("state event {id} is not held")))?;
                    let Some(state_key) = event.state_key() else { continue };
                    let key = self.short.intern_state_key(&(event.event_type().to_owned(), state_key.to_owned()))?;
                    full.insert(key, short);
                }
                self.state.create_from_full(&mut batch, Some(record.current_state_group), &full)?
            }
        };
        let state_lookup = |group: u64| {
            move |event_type: &StateEventType, state_key: &str| -> Option<Pdu> {
                let key = self.short.state_key(&(event_type.to_string(), state_key.to_owned())).ok()??;
                let short = *self.state.load(group).ok()?.get(&key)?;
                let id = EventId::parse(self.short.event_id(short).ok()?).ok()?;
                self.pdu_of(&id)
            }
        };
        if state_is_exact {
            check_auth(&version, &pdu, fetch_event, state_lookup(state_before))
                .map_err(|e| Error::forbidden(format!("{} rejected by the state before it: {e}", pdu.event_id())))?;
        }
        if !placement_backfill
            && let Err(error) = check_auth(&version, &pdu, fetch_event, state_lookup(record.current_state_group))
        {
            tracing::info!(event_id = %pdu.event_id(), %error, "soft-failed a received event");
            self.store_outliers_locked(record.short, &pdu).await?;
            return Ok(Received::SoftFailed);
        }

        let draft = draft_of(&pdu);
        let placement = if placement_backfill { Placement::Backfilled } else { Placement::Live };
        let position = self
            .commit(
                batch,
                &version,
                Checked {
                    room_id: room_id.to_owned(),
                    event_id: pdu.event_id().to_owned(),
                    json: pdu.json().clone(),
                    draft,
                    sender: pdu.sender(),
                    transaction: None,
                    prev_events: pdu.prev_event_ids().to_vec(),
                    state_before: Some(state_before),
                    depth: pdu.depth(),
                    placement,
                    record: Some(record),
                    pdu: pdu.clone(),
                },
            )
            .await?;
        Ok(Received::Accepted(position))
    }

    async fn store_outliers_locked(&self, room_short: u64, pdu: &Pdu) -> Result<()> {
        let mut batch = Batch::new();
        let staged = self.stage_outliers(&mut batch, room_short, std::slice::from_ref(pdu))?;
        let written = self.db.write_async(batch).await;
        for (_, short) in staged {
            self.timeline.committed(short);
        }
        written?;
        Ok(())
    }

    /// Takes a room whole from a `send_join` answer: the state before our join and its auth
    /// chain (checked by the caller) become outliers and the join's state, and the join event
    /// becomes the room's only extremity. Returns the join's stream position.
    pub async fn persist_join(&self, version: &RoomVersionId, room_id: &RoomId, state: &[Pdu], auth_chain: &[Pdu], join: Pdu) -> Result<u64> {
        let lock = self.room_lock(room_id.as_str());
        let _guard = lock.lock().await;
        let mut batch = Batch::new();
        let existing = self.records.room(room_id.as_str())?;
        let room_short = match &existing {
            Some(record) => record.short,
            None => self.short.intern_room(&mut batch, room_id.as_str())?,
        };
        let all: Vec<Pdu> = auth_chain.iter().chain(state.iter()).cloned().collect();
        let staged = self.stage_outliers(&mut batch, room_short, &all)?;
        // Shorts staged in this batch are not readable yet: resolve them from what we staged.
        let mut staged_shorts: HashMap<OwnedEventId, u64> = staged.iter().cloned().collect();
        for pdu in &all {
            if !staged_shorts.contains_key(pdu.event_id())
                && let Some(short) = self.short.event(pdu.event_id().as_str())?
            {
                staged_shorts.insert(pdu.event_id().to_owned(), short);
            }
        }
        let mut full = ShortState::new();
        let mut by_key: HashMap<(String, String), Pdu> = HashMap::new();
        let state_events: Vec<&Pdu> = state.iter().filter(|pdu| pdu.state_key().is_some()).collect();
        let keys: Vec<(String, String)> =
            state_events.iter().map(|pdu| (pdu.event_type().to_string(), pdu.state_key().unwrap_or_default().to_owned())).collect();
        let short_keys = self.short.intern_state_keys(&keys)?;
        for ((pdu, key), short_key) in state_events.into_iter().zip(keys).zip(short_keys) {
            let short = *staged_shorts.get(pdu.event_id()).ok_or_else(|| Error::internal("state event not interned"))?;
            full.insert(short_key, short);
            by_key.insert(key, pdu.clone());
        }
        let group = self.state.create_from_full(&mut batch, None, &full)?;
        // The room's members, indexed from the state we were handed (the events are staged in
        // this batch, so the engine's own reindexing could not read them yet).
        let mut members_staged = 0;
        for pdu in by_key.values().filter(|pdu| pdu.event_type().to_string() == "m.room.member") {
            let Some(member) = pdu.state_key() else { continue };
            let content = draft_of(pdu).content;
            let membership = content.get("membership").and_then(Value::as_str).unwrap_or("leave").to_owned();
            crate::service::user_directory::stage_member(&self.db, &mut batch, &self.server_name, member, &content)?;
            let entry = MembershipEntry { membership, event_id: pdu.event_id().to_string(), stream: 0 };
            self.membership.set(&mut batch, room_id.as_str(), member, &entry)?;
            members_staged += 1;
        }
        let by_id: HashMap<OwnedEventId, Pdu> = all.iter().map(|pdu| (pdu.event_id().to_owned(), pdu.clone())).collect();
        let fetch_event = |id: &EventId| by_id.get(id).cloned().or_else(|| self.pdu_of(id));
        check_auth(version, &join, fetch_event, |event_type: &StateEventType, state_key: &str| {
            by_key.get(&(event_type.to_string(), state_key.to_owned())).cloned()
        })
        .map_err(|e| Error::forbidden(format!("the join is not allowed by the room's state: {e}")))?;
        let record = RoomRecord {
            short: room_short,
            version: version.to_string(),
            forward_extremities: join.prev_event_ids().iter().map(ToString::to_string).collect(),
            max_depth: existing.as_ref().map_or(0, |r| r.max_depth),
            current_state_group: group,
        };
        let result = self
            .commit(
                batch,
                version,
                Checked {
                    room_id: room_id.to_owned(),
                    record: Some(record),
                    event_id: join.event_id().to_owned(),
                    json: join.json().clone(),
                    draft: draft_of(&join),
                    sender: join.sender(),
                    transaction: None,
                    prev_events: join.prev_event_ids().to_vec(),
                    state_before: Some(group),
                    depth: join.depth(),
                    placement: Placement::Live,
                    pdu: join.clone(),
                },
            )
            .await;
        self.membership.committed(room_id.as_str(), members_staged);
        for (_, short) in staged {
            self.timeline.committed(short);
        }
        result
    }

    /// The unsigned event a remote user would send to change their membership (`make_join`,
    /// `make_leave`, `make_knock`), built on the room's current extremities and checked
    /// against its current state so a refused join is refused here, not after signing.
    pub async fn membership_template(&self, room_id: &RoomId, user: &UserId, content: Value) -> Result<(RoomVersionId, CanonicalJsonObject)> {
        let lock = self.room_lock(room_id.as_str());
        let _guard = lock.lock().await;
        let record = self.room(room_id)?;
        let version = self.room_version(&record)?;
        let content = canonical(&content)?;
        let current = |event_type: &StateEventType, state_key: &str| -> Option<OwnedEventId> {
            let key = self.short.state_key(&(event_type.to_string(), state_key.to_owned())).ok()??;
            let short = *self.state.load(record.current_state_group).ok()?.get(&key)?;
            EventId::parse(self.short.event_id(short).ok()?).ok()
        };
        let auth_types = auth_types_for(&version, "m.room.member", user, Some(user.as_str()), &content)
            .map_err(|e| Error::bad_json(format!("invalid event: {e}")))?;
        let auth_events = select_auth_events(&version, &auth_types, current)?;
        let template = PduTemplate {
            room_id: Some(room_id.to_owned()),
            sender: user.to_owned(),
            event_type: "m.room.member".to_owned(),
            state_key: Some(user.to_string()),
            content,
            redacts: None,
            prev_events: record.forward_extremities.iter().filter_map(|id| EventId::parse(id).ok()).collect(),
            auth_events,
            depth: record.max_depth + 1,
            origin_server_ts: now_millis(),
        };
        let json = prepare_pdu(&version, template, &BTreeMap::new(), user.server_name())?;
        // Check it as if signed: a placeholder ID is enough for the auth rules.
        let placeholder = EventId::parse(format!("$template:{}", self.server_name)).map_err(|e| Error::internal(e.to_string()))?;
        let pdu = Pdu::for_version(&version, placeholder, json.clone())?;
        check_auth(&version, &pdu, |id: &EventId| self.pdu_of(id), |event_type: &StateEventType, state_key: &str| {
            current(event_type, state_key).and_then(|id| self.pdu_of(&id))
        })
        .map_err(|e| Error::forbidden(e.to_string()))?;
        Ok((version, json))
    }

    /// Records an invite of a local user to (or their knock on) a room we do not hold: the
    /// membership event as an outlier, the room preview that came with it, and the membership
    /// that puts it in the user's sync.
    pub async fn store_remote_membership(&self, room_id: &RoomId, invite: &Pdu, membership: &str, stripped_state: Vec<Value>) -> Result<()> {
        let lock = self.room_lock(room_id.as_str());
        let _guard = lock.lock().await;
        let target = invite.state_key().ok_or_else(|| Error::bad_json("A membership event must have a state_key"))?.to_owned();
        let mut batch = Batch::new();
        let room_short = match self.short.room(room_id.as_str())? {
            Some(short) => short,
            None => self.short.intern_room(&mut batch, room_id.as_str())?,
        };
        let staged = self.stage_outliers(&mut batch, room_short, std::slice::from_ref(invite))?;
        INVITE_STATE.put(&mut batch, &invite.event_id().to_string(), &stripped_state)?;
        let ticket = self.stream.allocate()?;
        let entry = MembershipEntry { membership: membership.to_owned(), event_id: invite.event_id().to_string(), stream: ticket.position };
        self.membership.set(&mut batch, room_id.as_str(), &target, &entry)?;
        let written = self.db.write_async(batch).await;
        self.membership.committed(room_id.as_str(), 1);
        for (_, short) in staged {
            self.timeline.committed(short);
        }
        written?;
        let position = ticket.position;
        drop(ticket);
        self.notifier.notify(std::iter::once(target.as_str()), position);
        Ok(())
    }

    /// The room preview that came with an invite or knock over federation, if it did.
    pub fn remote_invite_state(&self, invite_event_id: &str) -> Result<Option<Vec<Value>>> {
        Ok(INVITE_STATE.get(&self.db, &invite_event_id.to_owned())?)
    }

    /// Records that a local user's invite to or knock on a room we do not hold ended (they
    /// declined or the remote leave went through): the membership becomes `leave`.
    pub async fn store_remote_leave(&self, room_id: &RoomId, user: &UserId, leave: &Pdu) -> Result<()> {
        let lock = self.room_lock(room_id.as_str());
        let _guard = lock.lock().await;
        let mut batch = Batch::new();
        let room_short = match self.short.room(room_id.as_str())? {
            Some(short) => short,
            None => self.short.intern_room(&mut batch, room_id.as_str())?,
        };
        let staged = self.stage_outliers(&mut batch, room_short, std::slice::from_ref(leave))?;
        let ticket = self.stream.allocate()?;
        let entry = MembershipEntry { membership: "leave".to_owned(), event_id: leave.event_id().to_string(), stream: ticket.position };
        self.membership.set(&mut batch, room_id.as_str(), user.as_str(), &entry)?;
        let written = self.db.write_async(batch).await;
        self.membership.committed(room_id.as_str(), 1);
        for (_, short) in staged {
            self.timeline.committed(short);
        }
        written?;
        let position = ticket.position;
        drop(ticket);
        self.notifier.notify(std::iter::once(user.as_str()), position);
        Ok(())
    }

    /// The servers with a joined member in the room's current state, ours included.
    pub fn joined_servers(&self, room_id: &RoomId) -> Result<Vec<ruma::OwnedServerName>> {
        let mut servers: Vec<ruma::OwnedServerName> = Vec::new();
        for (user, entry) in self.membership.members(room_id.as_str())?.iter() {
            if entry.membership != "join" {
                continue;
            }
            if let Ok(user) = UserId::parse(user.as_str())
                && !servers.iter().any(|s| s == user.server_name())
            {
                servers.push(user.server_name().to_owned());
            }
        }
        Ok(servers)
    }
}

/// The draft an event would have had, for the bookkeeping [`Rooms::commit`] shares with
/// local sends.
fn draft_of(pdu: &Pdu) -> EventDraft {
    let content = pdu.json().get("content").and_then(|c| serde_json::to_value(c).ok()).unwrap_or(Value::Null);
    EventDraft {
        event_type: pdu.event_type().to_string(),
        state_key: pdu.state_key().map(ToOwned::to_owned),
        content,
        redacts: pdu.redacts().map(ToOwned::to_owned),
    }
}
