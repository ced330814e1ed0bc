//! The room engine: rooms are Matrix event graphs of signed PDUs.
//!
//! Local sends take the path federated PDUs will take: build → auth check against the current
//! state → persist → notify. Appends to one room are serialised by a per-room lock, so
//! concurrent local sends never fork the graph by accident.

pub mod membership;
pub mod records;
mod resolve;
pub mod short;
pub mod state;
pub mod timeline;
mod create;
mod directory;
mod federation_read;
mod filter;
mod remote;
pub mod search;
pub mod search_index;
mod spaces;
mod format;
pub mod notifications;
pub mod relations;
mod upgrade;
pub mod tokens;
mod visibility;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use myelin_federation::{
    ServerSigningKey,
    auth::{auth_types_for, check_auth, select_auth_events},
    pdu::{Pdu, PduTemplate, build_pdu, redact_pdu},
};
use myelin_storage::{Batch, Database};
use rand::{Rng, distributions::Alphanumeric};
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, EventId, OwnedEventId, OwnedRoomId, OwnedServerName, OwnedUserId, RoomId,
    RoomVersionId, UserId, events::StateEventType,
};
use serde_json::Value;

pub use self::{
    filter::event_matches,
    create::{Preset, RoomSpec},
    directory::DirectoryPage,
    membership::{Membership, MembershipEntry},
    records::{Records, RoomRecord},
    remote::{Received, StateBefore},
    short::ShortIds,
    state::StateStore,
    timeline::{StoredEvent, StreamPositions, Timeline},
    visibility::Viewer,
};
use super::{account_data::AccountData, federation_sender::FederationSender, notifier::Notifier};
use crate::{
    error::{Error, Result},
    util::now_millis,
};

/// Every table of the room engine.
pub fn tables() -> impl Iterator<Item = &'static str> {
    [short::TABLES, state::TABLES, timeline::TABLES, membership::TABLES, records::TABLES, remote::TABLES, relations::TABLES, notifications::TABLES, search_index::TABLES, EARLY_REDACTION_TABLES].into_iter().flatten().copied()
}

/// Redactions whose target we did not hold yet: target event ID → (redaction ID, redacter).
const EARLY_REDACTIONS: myelin_storage::Table<String, (String, String)> = myelin_storage::Table::new("eventid_earlyredaction");
const EARLY_REDACTION_TABLES: &[&str] = &["eventid_earlyredaction"];

/// The largest PDU the spec allows, in canonical JSON bytes.
pub const MAX_PDU_BYTES: usize = 65_536;

/// A generous bound on everything a PDU carries besides its content (IDs, references,
/// hashes, signature), used to refuse oversized content before signing.
const PDU_ENVELOPE_BYTES: usize = 2048;

/// What a local user asks to send.
#[derive(Clone, Debug)]
pub struct EventDraft {
    pub event_type: String,
    pub state_key: Option<String>,
    pub content: Value,
    pub redacts: Option<OwnedEventId>,
}

impl EventDraft {
    pub fn message(event_type: impl Into<String>, content: Value) -> Self {
        Self { event_type: event_type.into(), state_key: None, content, redacts: None }
    }

    pub fn state(event_type: impl Into<String>, state_key: impl Into<String>, content: Value) -> Self {
        Self { event_type: event_type.into(), state_key: Some(state_key.into()), content, redacts: None }
    }
}

/// Who sent a local event from which device and transaction, for idempotency and
/// `unsigned.transaction_id`.
#[derive(Clone, Debug)]
pub struct Transaction {
    pub device_id: String,
    pub txn_id: String,
}

/// One event to append: where, on what, by whom, and with which parents (the forward
/// extremities unless given).
struct Append<'a> {
    room_id: Option<OwnedRoomId>,
    record: Option<RoomRecord>,
    sender: &'a UserId,
    draft: EventDraft,
    transaction: Option<Transaction>,
    parents: Option<Vec<OwnedEventId>>,
}

/// Where a checked event goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    /// A new event at the room's edge: timeline, extremities, current state, sync.
    Live,
    /// An older event fetched to fill history: `/messages` only.
    Backfilled,
}

/// An event that passed its checks, ready for [`Rooms::commit`].
struct Checked<'a> {
    room_id: OwnedRoomId,
    /// The room as it stands, or `None` for a create event.
    record: Option<RoomRecord>,
    event_id: OwnedEventId,
    json: CanonicalJsonObject,
    pdu: Pdu,
    draft: EventDraft,
    sender: &'a UserId,
    transaction: Option<Transaction>,
    prev_events: Vec<OwnedEventId>,
    state_before: Option<u64>,
    depth: u64,
    placement: Placement,
}

#[derive(Clone)]
pub struct Rooms {
    db: Database,
    server_name: OwnedServerName,
    signing_key: Arc<ServerSigningKey>,
    pub short: ShortIds,
    pub state: StateStore,
    pub timeline: Timeline,
    pub stream: StreamPositions,
    pub membership: Membership,
    pub records: Records,
    pub notifier: Notifier,
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    /// Parsed PDUs by event ID, for auth checks (which read the same few auth events on
    /// every append). Only redaction changes a stored PDU.
    pdus: crate::service::cache::SharedCache<OwnedEventId, Pdu>,
    /// Where our events go to reach the other servers in their rooms.
    outbound: Option<FederationSender>,
    /// Read for `m.ignored_user_list`: aggregations leave out the viewer's ignored users.
    account_data: AccountData,
    /// The newest create-event timestamp given out, see [`Rooms::create_timestamp`].
    last_create_ts: Arc<AtomicU64>,
}

/// PDUs kept parsed in memory for auth checks.
const PDU_CACHE_CAPACITY: usize = 4096;

/// A room's current state as (type, state_key) → event ID.
pub type StateMap = HashMap<(String, String), String>;

impl Rooms {
    pub fn new(
        db: Database,
        server_name: OwnedServerName,
        signing_key: Arc<ServerSigningKey>,
        stream: StreamPositions,
        notifier: Notifier,
    ) -> Self {
        Self {
            account_data: AccountData::new(db.clone(), stream.clone(), notifier.clone()),
            short: ShortIds::new(db.clone()),
            state: StateStore::new(db.clone()),
            timeline: Timeline::new(db.clone()),
            stream,
            membership: Membership::new(db.clone()),
            records: Records::new(db.clone()),
            notifier,
            locks: Arc::default(),
            pdus: crate::service::cache::SharedCache::new(PDU_CACHE_CAPACITY),
            db,
            server_name,
            signing_key,
            outbound: None,
            last_create_ts: Arc::default(),
        }
    }

    /// Sends our events to the other servers in their rooms through `sender`.
    #[must_use]
    pub fn with_outbound(mut self, sender: FederationSender) -> Self {
        self.outbound = Some(sender);
        self
    }

    /// A timestamp for a create event after every earlier one of this process, so that two
    /// rooms created by one user in one millisecond get different (hash-derived) IDs.
    fn create_timestamp(&self, now: u64) -> u64 {
        let mut last = self.last_create_ts.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self.last_create_ts.compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return next,
                Err(current) => last = current,
            }
        }
    }

    pub fn server_name(&self) -> &ruma::ServerName {
        &self.server_name
    }

    fn room_lock(&self, room_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        locks.entry(room_id.to_owned()).or_default().clone()
    }

    /// The room's record, or 404 `M_NOT_FOUND`.
    pub fn room(&self, room_id: &RoomId) -> Result<RoomRecord> {
        self.records.room(room_id.as_str())?.ok_or_else(|| Error::not_found("Unknown room"))
    }

    pub fn room_version(&self, record: &RoomRecord) -> Result<RoomVersionId> {
        RoomVersionId::try_from(record.version.as_str()).map_err(|e| Error::internal(format!("stored room version: {e}")))
    }

    /// The state of a state group as (type, state_key) → event ID.
    pub fn state_map(&self, group: u64) -> Result<StateMap> {
        let short_state = self.state.load(group)?;
        let mut map = HashMap::with_capacity(short_state.len());
        for (key, event) in short_state.iter() {
            map.insert(self.short.state_key_of(*key)?, self.short.event_id(*event)?);
        }
        Ok(map)
    }

    /// One state event of a group, if set.
    /// The account data service the room engine reads (ignore lists, push rules); the rest of
    /// the server shares it.
    pub fn account_data(&self) -> &AccountData {
        &self.account_data
    }

    pub fn state_event(&self, group: u64, event_type: &str, state_key: &str) -> Result<Option<StoredEvent>> {
        Ok(self.state_event_shared(group, event_type, state_key)?.map(|event| event.as_ref().clone()))
    }

    /// Like [`Rooms::state_event`], without copying the event out of the cache.
    pub fn state_event_shared(&self, group: u64, event_type: &str, state_key: &str) -> Result<Option<Arc<StoredEvent>>> {
        let Some(key) = self.short.state_key(&(event_type.to_owned(), state_key.to_owned()))? else {
            return Ok(None);
        };
        let Some(short) = self.state.load(group)?.get(&key).copied() else { return Ok(None) };
        self.timeline.get_shared(short)
    }

    pub fn event(&self, event_id: &str) -> Result<Option<(u64, StoredEvent)>> {
        let Some(short) = self.short.event(event_id)? else { return Ok(None) };
        Ok(self.timeline.get(short)?.map(|event| (short, event)))
    }

    /// Like [`Rooms::event`], without copying the event out of the cache.
    pub fn event_shared(&self, event_id: &str) -> Result<Option<(u64, Arc<StoredEvent>)>> {
        let Some(short) = self.short.event(event_id)? else { return Ok(None) };
        Ok(self.timeline.get_shared(short)?.map(|event| (short, event)))
    }

    fn pdu_of(&self, event_id: &EventId) -> Option<Pdu> {
        if let Some(pdu) = self.pdus.get(event_id) {
            return Some(pdu);
        }
        let ticket = self.pdus.ticket();
        let (_, stored) = self.event(event_id.as_str()).ok()??;
        let json = canonical(&stored.pdu).ok()?;
        let pdu = Pdu::from_json(event_id.to_owned(), json).ok()?;
        self.pdus.insert(ticket, event_id.to_owned(), pdu.clone());
        Some(pdu)
    }

    /// Appends a local event to an existing room and returns its ID. A send repeated with the
    /// same device and transaction ID returns the first event's ID instead of sending again.
    pub async fn append(
        &self,
        room_id: &RoomId,
        sender: &UserId,
        draft: EventDraft,
        transaction: Option<Transaction>,
    ) -> Result<OwnedEventId> {
        let lock = self.room_lock(room_id.as_str());
        let _guard = lock.lock().await;
        if let Some(txn) = &transaction
            && let Some(event_id) = self.records.txn(sender.as_str(), &txn.device_id, &txn.txn_id)?
        {
            return EventId::parse(event_id).map_err(|e| Error::internal(e.to_string()));
        }
        // Under the lock, so two identical reactions cannot both pass the duplicate check.
        self.check_new_relation(room_id, sender, &draft.event_type, &draft.content)?;
        let record = self.room(room_id)?;
        let version = self.room_version(&record)?;
        let (_, event_id) =
            self.append_locked(&version, Append { room_id: Some(room_id.to_owned()), record: Some(record), sender, draft, transaction, parents: None }).await?;
        Ok(event_id)
    }

    /// Appends an event whose parents are given instead of the room's forward extremities, the
    /// way federation delivers events. Its state is the (resolved) state after those parents,
    /// and if the room ends up with several forward extremities, its current state is their
    /// state resolution. Tests use it to build forked graphs.
    pub async fn append_with_prev_events(
        &self,
        room_id: &RoomId,
        sender: &UserId,
        draft: EventDraft,
        prev_events: Vec<OwnedEventId>,
    ) -> Result<OwnedEventId> {
        let lock = self.room_lock(room_id.as_str());
        let _guard = lock.lock().await;
        let record = self.room(room_id)?;
        let version = self.room_version(&record)?;
        let (_, event_id) =
            self.append_locked(&version, Append { room_id: Some(room_id.to_owned()), record: Some(record), sender, draft, transaction: None, parents: Some(prev_events) }).await?;
        Ok(event_id)
    }

    /// Creates a room from its create event and the events that follow it, in order.
    pub async fn create_room(
        &self,
        version: &RoomVersionId,
        creator: &UserId,
        create_content: Value,
        following: Vec<EventDraft>,
    ) -> Result<OwnedRoomId> {
        let uses_derived_room_id = room_id_is_derived(version);
        let room_id = if uses_derived_room_id {
            None
        } else {
            let localpart: String = rand::thread_rng().sample_iter(&Alphanumeric).take(18).map(char::from).collect();
            Some(RoomId::parse(format!("!{localpart}:{}", self.server_name)).map_err(|e| Error::internal(e.to_string()))?)
        };
        let create = EventDraft::state("m.room.create", "", create_content);
        let (room_id, _) = self.append_locked(version, Append { room_id, record: None, sender: creator, draft: create, transaction: None, parents: None }).await?;
        // Nobody else knows the room yet, but invites at the end make it visible: hold the lock
        // while the initial events land so nothing interleaves with them.
        let lock = self.room_lock(room_id.as_str());
        let _guard = lock.lock().await;
        for draft in following {
            let record = self.room(&room_id)?;
            self.append_locked(version, Append { room_id: Some(room_id.clone()), record: Some(record), sender: creator, draft, transaction: None, parents: None }).await?;
        }
        Ok(room_id)
    }

    /// Builds, authorises, persists and announces one event. The caller holds the room lock
    /// (or is creating the room, which nobody else can name yet).
    async fn append_locked(&self, version: &RoomVersionId, append: Append<'_>) -> Result<(OwnedRoomId, OwnedEventId)> {
        let (batch, checked) = self.prepare_local(version, append)?;
        let room_id = checked.room_id.clone();
        let event_id = checked.event_id.clone();
        self.commit(batch, version, checked).await?;
        Ok((room_id, event_id))
    }

    /// Builds a local event without storing it, for an invite that the invited user's server
    /// must countersign first. It is checked against the room's current state.
    pub async fn build_local(&self, room_id: &RoomId, sender: &UserId, draft: EventDraft) -> Result<(RoomVersionId, Pdu)> {
        let lock = self.room_lock(room_id.as_str());
        let _guard = lock.lock().await;
        let record = self.room(room_id)?;
        let version = self.room_version(&record)?;
        let append = Append { room_id: Some(room_id.to_owned()), record: Some(record), sender, draft, transaction: None, parents: None };
        let (_, checked) = self.prepare_local(&version, append)?;
        Ok((version, checked.pdu))
    }

    /// Builds, signs and authorises a local event, staging any state resolution it needs.
    fn prepare_local<'a>(&self, version: &RoomVersionId, append: Append<'a>) -> Result<(Batch, Checked<'a>)> {
        let Append { room_id, record, sender, draft, transaction, parents } = append;
        let mut batch = Batch::new();
        // The parents are the forward extremities (whose resolved state is the room's current
        // state) unless the caller names others, whose state must then be resolved here.
        let (prev_events, state_before, depth) = match (&record, parents) {
            (None, _) => (Vec::new(), None, 1),
            (Some(record), None) => (
                record.forward_extremities.iter().filter_map(|id| EventId::parse(id).ok()).collect(),
                Some(record.current_state_group),
                record.max_depth + 1,
            ),
            (Some(_), Some(parents)) => {
                let mut groups = Vec::new();
                let mut max_depth = 0;
                for parent in &parents {
                    let (_, event) = self.event(parent.as_str())?.ok_or_else(|| Error::not_found(format!("Unknown prev event {parent}")))?;
                    groups.push(event.state_after);
                    max_depth = max_depth.max(event.depth);
                }
                let group = self.resolve_groups(&mut batch, version, &groups, None)?;
                (parents, Some(group), max_depth + 1)
            }
        };
        // Only a handful of state entries matter to an append (auth events, the entry a state
        // event replaces): look them up by short id instead of materialising the whole state.
        let current_short = match state_before {
            Some(group) => self.state.load(group)?,
            None => Arc::default(),
        };
        let current_state = |event_type: &str, state_key: &str| -> Option<String> {
            let key = self.short.state_key(&(event_type.to_owned(), state_key.to_owned())).ok()??;
            self.short.event_id(*current_short.get(&key)?).ok()
        };
        let content = canonical(&draft.content)?;
        let auth_types = auth_types_for(version, &draft.event_type, sender, draft.state_key.as_deref(), &content)
            .map_err(|e| Error::bad_json(format!("invalid event: {e}")))?;
        let auth_events = select_auth_events(version, &auth_types, |event_type: &StateEventType, state_key: &str| {
            current_state(&event_type.to_string(), state_key).and_then(|id| EventId::parse(id).ok())
        })?;
        let creates_derived_room = record.is_none() && room_id.is_none();
        let mut template = PduTemplate {
            room_id: room_id.clone(),
            sender: sender.to_owned(),
            event_type: draft.event_type.clone(),
            state_key: draft.state_key.clone(),
            content,
            redacts: draft.redacts.clone(),
            prev_events: prev_events.clone(),
            auth_events,
            depth,
            origin_server_ts: now_millis(),
        };
        if creates_derived_room {
            template.origin_server_ts = self.create_timestamp(template.origin_server_ts);
        }
        // Hashes, signature and origin add at most a few hundred bytes; refuse before signing
        // so an oversized event is the client's M_TOO_LARGE, not a signing failure.
        let unsigned_size = serde_json::to_vec(&template.content).map_or(usize::MAX, |c| c.len()) + PDU_ENVELOPE_BYTES;
        if unsigned_size > MAX_PDU_BYTES {
            return Err(Error::too_large(format!("Event is over the {MAX_PDU_BYTES}-byte limit")));
        }
        let retry_template = creates_derived_room.then(|| template.clone());
        let mut built = build_pdu(version, template, &self.server_name, &self.signing_key)?;
        // The room ID is the create event's hash (v12): an identical create event (same
        // creator, content and millisecond) would name an existing room. Timestamps of
        // creations are made unique above; this catches a clock that went back.
        if let Some(mut template) = retry_template {
            while self.records.room(built.room_id.as_str())?.is_some() {
                template.origin_server_ts = self.create_timestamp(template.origin_server_ts);
                built = build_pdu(version, template.clone(), &self.server_name, &self.signing_key)?;
            }
        }
        let size = serde_json::to_vec(&built.json).map_or(usize::MAX, |bytes| bytes.len());
        if size > MAX_PDU_BYTES {
            return Err(Error::too_large(format!("Event is {size} bytes, over the {MAX_PDU_BYTES}-byte limit")));
        }
        let pdu = built.to_pdu()?;
        let fetch_state = |event_type: &StateEventType, state_key: &str| {
            current_state(&event_type.to_string(), state_key).and_then(|id| EventId::parse(id).ok()).and_then(|id| self.pdu_of(&id))
        };
        check_auth(version, &pdu, |id: &EventId| self.pdu_of(id), fetch_state)
            .map_err(|e| Error::forbidden(e.to_string()))?;
        let checked = Checked {
            room_id: built.room_id.clone(),
            record,
            event_id: built.event_id,
            json: built.json,
            pdu,
            draft,
            sender,
            transaction,
            prev_events,
            state_before,
            depth,
            placement: Placement::Live,
        };
        Ok((batch, checked))
    }

    /// Stores an event that passed its checks (built here, or received and checked), moves the
    /// room's extremities and state, updates the membership index, applies redactions, and
    /// wakes whoever it concerns. Returns the event's stream position.
    async fn commit(&self, mut batch: Batch, version: &RoomVersionId, checked: Checked<'_>) -> Result<u64> {
        let Checked { room_id, record, event_id, json, pdu, draft, sender, transaction, prev_events, state_before, depth, placement } = checked;
        let current_state = |event_type: &str, state_key: &str| -> Option<String> {
            let group = state_before?;
            let key = self.short.state_key(&(event_type.to_owned(), state_key.to_owned())).ok()??;
            self.short.event_id(*self.state.load(group).ok()?.get(&key)?).ok()
        };
        let room_short = match &record {
            Some(record) => record.short,
            None => self.short.intern_room(&mut batch, room_id.as_str())?,
        };
        let event_short = self.short.intern_event(&mut batch, event_id.as_str())?;
        let ticket = self.stream.allocate()?;
        let (state_after, replaces_state) = match &draft.state_key {
            Some(state_key) => {
                let key = self.short.intern_state_key(&(draft.event_type.clone(), state_key.clone()))?;
                let group = self.state.create(&mut batch, state_before, &[(key, event_short)], &[])?;
                (group, current_state(&draft.event_type, state_key))
            }
            None => (state_before.ok_or_else(|| Error::internal("a room must start with a state event"))?, None),
        };
        let mut stored = StoredEvent {
            event_id: event_id.to_string(),
            room_short,
            pdu: serde_json::to_value(&json).map_err(|e| Error::internal(e.to_string()))?,
            stream: ticket.position,
            depth,
            state_before: state_before.unwrap_or(state_after),
            state_after,
            txn: transaction.as_ref().map(|t| (t.device_id.clone(), t.txn_id.clone())),
            redacted_because: None,
            replaces_state,
            outlier: false,
        };
        // A redaction that arrived before this event (federation delivers in any order)
        // applies now, before anything indexes the content.
        self.apply_early_redaction(&mut batch, version, &mut stored)?;
        self.stage_relation(&mut batch, event_short, &stored)?;
        self.stage_search(&mut batch, event_short, &stored)?;
        super::user_directory::stage_member_event(&self.db, &mut batch, &self.server_name, &stored)?;
        if placement != Placement::Backfilled
            && let Err(error) = self.stage_notifications(&mut batch, &room_id, version, &stored).await
        {
            // Counts are a convenience; the event itself must not be refused over them.
            tracing::warn!(%room_id, %event_id, %error, "cannot work out who this event notifies");
        }
        let mut redacted = None;
        if draft.event_type == "m.room.redaction"
            && let Some(target) = &draft.redacts
        {
            redacted = self.stage_redaction(&mut batch, version, target, &event_id, sender)?;
        }
        if placement == Placement::Backfilled {
            // History from before what we hold: reachable by /messages, never new to sync, and
            // no extremity (later events already point past it).
            self.timeline.insert_backfilled(&mut batch, event_short, &stored)?;
            let written = self.db.write_async(batch).await;
            self.timeline.committed(event_short);
            if let Some((short, target)) = &redacted {
                self.timeline.committed(*short);
                self.pdus.end_change(target);
            }
            written?;
            return Ok(ticket.position);
        }
        self.timeline.insert(&mut batch, event_short, &stored)?;
        // The new event replaces its parents as extremities; others remain (a fork).
        let mut forward_extremities: Vec<String> = record
            .as_ref()
            .map(|r| r.forward_extremities.iter().filter(|id| !prev_events.iter().any(|p| p.as_str() == id.as_str())).cloned().collect())
            .unwrap_or_default();
        forward_extremities.push(event_id.to_string());
        let current_state_group = if forward_extremities.len() == 1 {
            state_after
        } else {
            let mut groups = Vec::new();
            for id in &forward_extremities {
                if id == event_id.as_str() {
                    groups.push(state_after);
                } else if let Some((_, event)) = self.event(id)? {
                    groups.push(event.state_after);
                }
            }
            self.resolve_groups(&mut batch, version, &groups, Some((&pdu, event_short)))?
        };
        let new_record = RoomRecord {
            short: room_short,
            version: version.to_string(),
            forward_extremities,
            max_depth: record.as_ref().map_or(depth, |r| r.max_depth.max(depth)),
            current_state_group,
        };
        self.records.put_room(&mut batch, room_id.as_str(), &new_record)?;
        let mut also_notify = Vec::new();
        // Membership entries staged in this batch, to settle the members cache after the write.
        let mut membership_changes = 0;
        if draft.event_type == "m.room.member"
            && let Some(target) = &draft.state_key
        {
            let membership = draft.content.get("membership").and_then(Value::as_str).unwrap_or("leave").to_owned();
            let entry = MembershipEntry { membership, event_id: event_id.to_string(), stream: ticket.position };
            self.membership.set(&mut batch, room_id.as_str(), target, &entry)?;
            membership_changes += 1;
            also_notify.push(target.clone());
        }
        if current_state_group != state_after {
            // State resolution may have overruled memberships (a ban beating a concurrent join):
            // the indexes follow the resolved state, not the order events arrived in.
            membership_changes += self.reconcile_membership(&mut batch, room_id.as_str(), current_state_group, (&event_id, &draft, event_short), ticket.position)?;
        }
        if let Some(txn) = &transaction {
            self.records.put_txn(&mut batch, sender.as_str(), &txn.device_id, &txn.txn_id, event_id.as_str())?;
        }
        let written = self.db.write_async(batch).await;
        // Written or not, the staged changes are settled: caches may read them again.
        self.membership.committed(room_id.as_str(), membership_changes);
        self.timeline.committed(event_short);
        if let Some((short, target)) = &redacted {
            self.timeline.committed(*short);
            self.pdus.end_change(target);
        }
        written?;
        let position = ticket.position;
        drop(ticket);

        let members = self.membership.members(room_id.as_str())?;
        let interested = members
            .iter()
            .filter(|(_, entry)| matches!(entry.membership.as_str(), "join" | "invite" | "knock"))
            .map(|(user, _)| user.as_str())
            .chain(also_notify.iter().map(String::as_str));
        self.notifier.notify(interested, position);
        tracing::debug!(room_id = %room_id, event_id = %event_id, event_type = %draft.event_type, "appended");
        if sender.server_name() == self.server_name {
            self.send_to_room_servers(&room_id, &draft, &json).await;
        }
        Ok(position)
    }

    /// Queues one of our events for every other server in the room, and for the server of a
    /// user it removes (kick, ban), who is no longer "in the room" to receive it otherwise.
    async fn send_to_room_servers(&self, room_id: &RoomId, draft: &EventDraft, json: &CanonicalJsonObject) {
        let Some(outbound) = &self.outbound else { return };
        let mut destinations = match self.joined_servers(room_id) {
            Ok(servers) => servers,
            Err(error) => {
                tracing::error!(%room_id, %error, "cannot list the room's servers to send an event to");
                return;
            }
        };
        let removes_member = draft.event_type == "m.room.member"
            && matches!(draft.content.get("membership").and_then(Value::as_str), Some("leave" | "ban"));
        if removes_member
            && let Some(target) = draft.state_key.as_deref().and_then(|key| UserId::parse(key).ok())
            && !destinations.iter().any(|s| s == target.server_name())
        {
            destinations.push(target.server_name().to_owned());
        }
        // The event is stored; a failure here is retried by no one, so it must be loud. Peers
        // still reach the event through the prev_events of our next one.
        if let Err(error) = outbound.enqueue_pdu(destinations, json).await {
            tracing::error!(%room_id, %error, "cannot queue an event for federation");
        }
    }

    /// Applies a redaction to its target, if the target is in this room and the redacter may
    /// redact it: the original sender, or someone with the `redact` power level. A redaction
    /// that may not apply is still stored (the spec keeps it) but changes nothing.
    /// Returns the target's short id and ID when it stages a change, which the caller settles
    /// with `Timeline::committed` and the PDU cache's `end_change` once the batch is written.
    fn stage_redaction(
        &self,
        batch: &mut Batch,
        version: &RoomVersionId,
        target: &EventId,
        redaction_id: &EventId,
        redacter: &UserId,
    ) -> Result<Option<(u64, OwnedEventId)>> {
        let Some((short, mut stored)) = self.event(target.as_str())? else {
            // Not here yet: the target applies it when it arrives.
            EARLY_REDACTIONS.put(batch, &target.to_string(), &(redaction_id.to_string(), redacter.to_string()))?;
            return Ok(None);
        };
        if stored.redacted_because.is_some() {
            return Ok(None);
        }
        let allowed = stored.sender() == redacter.as_str() || self.has_power(stored.state_after, redacter, "redact", 50)?;
        if !allowed {
            return Ok(None);
        }
        self.unstage_relation(batch, &stored)?;
        self.unstage_search(batch, short, &stored)?;
        let redacted = redact_pdu(version, canonical(&stored.pdu)?, None)?;
        stored.pdu = serde_json::to_value(&redacted).map_err(|e| Error::internal(e.to_string()))?;
        stored.redacted_because = Some(redaction_id.to_string());
        self.pdus.begin_change(target.to_owned());
        self.timeline.replace(batch, short, &stored)?;
        Ok(Some((short, target.to_owned())))
    }

    /// Redacts `stored` (an event being stored) if a redaction of it arrived first and its
    /// sender may redact it, as [`Rooms::stage_redaction`] would have.
    fn apply_early_redaction(&self, batch: &mut Batch, version: &RoomVersionId, stored: &mut StoredEvent) -> Result<()> {
        let Some((redaction_id, redacter)) = EARLY_REDACTIONS.get(&self.db, &stored.event_id)? else { return Ok(()) };
        EARLY_REDACTIONS.delete(batch, &stored.event_id);
        let Ok(redacter) = UserId::parse(redacter) else { return Ok(()) };
        let allowed = stored.sender() == redacter.as_str() || self.has_power(stored.state_after, &redacter, "redact", 50)?;
        if allowed {
            let redacted = redact_pdu(version, canonical(&stored.pdu)?, None)?;
            stored.pdu = serde_json::to_value(&redacted).map_err(|e| Error::internal(e.to_string()))?;
            stored.redacted_because = Some(redaction_id);
        }
        Ok(())
    }

    /// Whether `user` has at least the power level named `action` (e.g. "redact", "ban") in
    /// the given state, with the spec's default when the room's power levels omit it.
    pub fn has_power(&self, state_group: u64, user: &UserId, action: &str, default_required: i64) -> Result<bool> {
        let levels = self.state_event(state_group, "m.room.power_levels", "")?;
        let content = levels.as_ref().map(|e| e.content().clone()).unwrap_or(Value::Null);
        let required = content.get(action).and_then(as_int).unwrap_or(default_required);
        Ok(self.user_power(state_group, user, &content)? >= required)
    }

    /// The user's power level in the given state. Room creators of v12 rooms rank above all.
    pub fn user_power(&self, state_group: u64, user: &UserId, power_levels: &Value) -> Result<i64> {
        if let Some(create) = self.state_event(state_group, "m.room.create", "")? {
            let version = create.content().get("room_version").and_then(Value::as_str).unwrap_or("1");
            if room_id_is_derived(&RoomVersionId::try_from(version).unwrap_or(RoomVersionId::V1)) {
                let additional = create.content().get("additional_creators").and_then(Value::as_array);
                let is_creator = create.sender() == user.as_str()
                    || additional.is_some_and(|list| list.iter().any(|u| u.as_str() == Some(user.as_str())));
                if is_creator {
                    return Ok(i64::MAX);
                }
            }
            if power_levels.is_null() {
                // Without power levels, the creator has 100 and everyone else 0.
                return Ok(if create.sender() == user.as_str() { 100 } else { 0 });
            }
        }
        let users_default = power_levels.get("users_default").and_then(as_int).unwrap_or(0);
        Ok(power_levels.get("users").and_then(|u| u.get(user.as_str())).and_then(as_int).unwrap_or(users_default))
    }

    /// The sender of `m.room.create`, who is the only user allowed to do anything before
    /// power levels exist.
    pub fn creator_of(&self, state_group: u64) -> Result<Option<OwnedUserId>> {
        Ok(self
            .state_event(state_group, "m.room.create", "")?
            .and_then(|event| UserId::parse(event.sender()).ok()))
    }
}

/// Whether the version derives room IDs from the create event (v12, MSC4291); such rooms
/// also treat their creators as more powerful than any power level.
pub fn room_id_is_derived(version: &RoomVersionId) -> bool {
    version
        .rules()
        .is_some_and(|rules| rules.room_id_format == ruma::room_version_rules::RoomIdFormatVersion::V2)
}

/// Power levels may be integers or (in old rooms) strings holding integers.
pub fn as_int(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

/// Converts client JSON into canonical JSON (integers only, in range), which is what PDUs are
/// made of; anything else is the client's mistake.
pub fn canonical(value: &Value) -> Result<CanonicalJsonObject> {
    match CanonicalJsonValue::try_from(value.clone()) {
        Ok(CanonicalJsonValue::Object(object)) => Ok(object),
        Ok(_) => Err(Error::bad_json("Event content must be a JSON object")),
        Err(e) => Err(Error::bad_json(format!("Event content is not canonical JSON: {e}"))),
    }
}
