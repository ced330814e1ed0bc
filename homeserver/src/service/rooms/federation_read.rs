//! What other servers may read of a room: single events, state at an event, auth chains,
//! backfill and missing events, each checked against the requesting server's right to see it.
//!
//! Access, for a requesting server `origin`, evaluated per request with a [`ServerReader`]:
//!
//! 1. the room's current `m.room.server_acl` must allow `origin` (403 otherwise);
//! 2. for each event a request is *about* (the event of `/event`, `/state`, `/state_ids`,
//!    `/event_auth`; the starting events of `/backfill` and `/get_missing_events`), `origin`
//!    must be in the room at that event — one of its users joined in the state before or after
//!    it — or the history visibility there is `world_readable`, or `shared` while `origin` is
//!    in the room now, or `invited` while one of its users was invited then (403 otherwise).
//!    Outliers have no state: only a server in the room now may read them. Unknown rooms and
//!    events are 404, and so is a walk none of whose starting events is known in the room.
//!
//! Events a walk reaches beyond the requested ones (backfill, missing events) that `origin`
//! may not see by history visibility are served redacted, as the spec asks. State and auth
//! chains are never redacted: the requester needs them whole to check the room's auth rules.
//!
//! The servers "in the room" are found through the membership index: the users of `origin`
//! the room has ever had, each looked up in the state group concerned (one map lookup each).

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap, HashSet},
    sync::{Arc, Mutex},
};

use myelin_federation::{
    acl::is_server_allowed,
    pdu::{create_event_id_from_room_id, redact_pdu, room_id_from_create_event_id},
};
use ruma::{
    EventId, OwnedEventId, OwnedRoomId, OwnedServerName, RoomAliasId, RoomId, RoomVersionId, ServerName, UserId,
    room_version_rules::EventIdFormatVersion,
};
use serde_json::{Value, value::RawValue};

use super::{RoomRecord, Rooms, StoredEvent, canonical, room_id_is_derived};
use crate::error::{Error, Result};

/// The most events one `/backfill` answers with.
pub const BACKFILL_MAX: usize = 100;
/// The most events one `/get_missing_events` answers with.
pub const MISSING_EVENTS_MAX: usize = 20;

/// A PDU in federation format, ready for a ruma response.
pub type RawPdu = Box<RawValue>;

/// Stored events, shared with the event cache.
type Events = Vec<Arc<StoredEvent>>;

/// What one server may read of one room, worked out once per request.
struct ServerReader {
    room_id: OwnedRoomId,
    record: RoomRecord,
    version: RoomVersionId,
    /// Short state keys of `(m.room.member, user)` for every user of the requesting server
    /// the room has seen.
    member_keys: Vec<u64>,
    in_room_now: bool,
    /// (joined, invited) of the server's users per state group, as groups repeat across events.
    memberships: Mutex<HashMap<u64, (bool, bool)>>,
}

impl Rooms {
    /// `GET /_matrix/federation/v1/event/{eventId}`: the event as a federation PDU.
    pub fn federation_event(&self, origin: &ServerName, event_id: &EventId) -> Result<RawPdu> {
        let (_, event) = self.event_shared(event_id.as_str())?.ok_or_else(|| Error::not_found("Unknown event"))?;
        let room_id = room_of(&event)?;
        let reader = self.server_reader(&room_id, origin)?;
        if event.room_short != reader.record.short {
            return Err(Error::not_found("Unknown event"));
        }
        self.require_readable(&reader, &event)?;
        let redact = !self.server_may_see(&reader, &event)?;
        federation_pdu(&reader.version, &event, redact)
    }

    /// `GET /_matrix/federation/v1/state_ids/{roomId}?event_id=`: the IDs of the state before
    /// the event and of its full auth chain.
    pub fn federation_state_ids(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        event_id: &EventId,
    ) -> Result<(Vec<OwnedEventId>, Vec<OwnedEventId>)> {
        let (_, state, chain) = self.state_and_chain(origin, room_id, event_id)?;
        Ok((ids_of(&state)?, ids_of(&chain)?))
    }

    /// `GET /_matrix/federation/v1/state/{roomId}?event_id=`: the state before the event and
    /// its full auth chain, as PDUs.
    pub fn federation_state(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        event_id: &EventId,
    ) -> Result<(Vec<RawPdu>, Vec<RawPdu>)> {
        let (reader, state, chain) = self.state_and_chain(origin, room_id, event_id)?;
        let pdus = |events: &[Arc<StoredEvent>]| -> Result<Vec<RawPdu>> {
            events.iter().map(|event| federation_pdu(&reader.version, event, false)).collect()
        };
        Ok((pdus(&state)?, pdus(&chain)?))
    }

    /// `GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}`: the event's full auth chain.
    pub fn federation_event_auth(&self, origin: &ServerName, room_id: &RoomId, event_id: &EventId) -> Result<Vec<RawPdu>> {
        let reader = self.server_reader(room_id, origin)?;
        let event = self.room_event(&reader, event_id)?;
        self.require_readable(&reader, &event)?;
        let chain = self.auth_chain_of(&reader.room_id, &reader.version, reader.record.short, std::slice::from_ref(&event))?;
        chain.iter().map(|event| federation_pdu(&reader.version, event, false)).collect()
    }

    /// `GET /_matrix/federation/v1/backfill/{roomId}?v=&limit=`: the given events and those
    /// before them, newest first, at most `limit` (capped at [`BACKFILL_MAX`]).
    pub fn federation_backfill(&self, origin: &ServerName, room_id: &RoomId, from: &[OwnedEventId], limit: u64) -> Result<Vec<RawPdu>> {
        let reader = self.server_reader(room_id, origin)?;
        self.require_readable_starts(&reader, from)?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX).min(BACKFILL_MAX);
        let events = self.backfill_from(reader.record.short, from, limit)?;
        self.served_as_seen(&reader, &events)
    }

    /// `POST /_matrix/federation/v1/get_missing_events/{roomId}`: the events before
    /// `latest` and after `earliest`, at or above `min_depth`, oldest first, at most `limit`
    /// (capped at [`MISSING_EVENTS_MAX`]).
    pub fn federation_missing_events(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        earliest: &[OwnedEventId],
        latest: &[OwnedEventId],
        limit: u64,
        min_depth: u64,
    ) -> Result<Vec<RawPdu>> {
        let reader = self.server_reader(room_id, origin)?;
        self.require_readable_starts(&reader, latest)?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX).min(MISSING_EVENTS_MAX);
        let events = self.missing_events_between(reader.record.short, earliest, latest, limit, min_depth)?;
        self.served_as_seen(&reader, &events)
    }

    /// `GET /_matrix/federation/v1/query/directory?room_alias=`: the room a local alias names
    /// and the servers with joined members, this one first.
    pub fn federation_alias(&self, alias: &RoomAliasId) -> Result<(OwnedRoomId, Vec<OwnedServerName>)> {
        let not_found = || Error::not_found("Room alias not found");
        if alias.server_name() != self.server_name {
            return Err(not_found());
        }
        let room_id = self.records.alias(alias.as_str())?.ok_or_else(not_found)?;
        let room_id = RoomId::parse(room_id).map_err(|e| Error::internal(e.to_string()))?;
        let mut servers = vec![self.server_name.clone()];
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
        Ok((room_id, servers))
    }

    /// The state before an event and that state's auth chain, after the access checks.
    fn state_and_chain(
        &self,
        origin: &ServerName,
        room_id: &RoomId,
        event_id: &EventId,
    ) -> Result<(ServerReader, Events, Events)> {
        let reader = self.server_reader(room_id, origin)?;
        let event = self.room_event(&reader, event_id)?;
        self.require_readable(&reader, &event)?;
        let state = self.state_before_event(&event)?;
        let chain = self.auth_chain_of(&reader.room_id, &reader.version, reader.record.short, &state)?;
        Ok((reader, state, chain))
    }

    /// Events as `origin` may see them: redacted where history visibility hides them.
    fn served_as_seen(&self, reader: &ServerReader, events: &[Arc<StoredEvent>]) -> Result<Vec<RawPdu>> {
        events
            .iter()
            .map(|event| {
                let redact = !self.server_may_see(reader, event)?;
                federation_pdu(&reader.version, event, redact)
            })
            .collect()
    }
}

/// The room graph, read without any access check.
impl Rooms {
    /// The state before `event`, as stored events (in no particular order). The create event
    /// has none; an outlier's state is unknown (404).
    pub fn state_before_event(&self, event: &StoredEvent) -> Result<Vec<Arc<StoredEvent>>> {
        if event.outlier {
            return Err(Error::not_found("No state is known at this event"));
        }
        if is_create_event(event) {
            return Ok(Vec::new());
        }
        let state = self.state.load(event.state_before)?;
        state
            .values()
            .map(|short| self.timeline.get_shared(*short)?.ok_or_else(|| Error::internal(format!("state event {short} is missing"))))
            .collect()
    }

    /// The full auth chain of `events`: their `auth_events`, and theirs, recursively; the given
    /// events themselves only if another one's chain reaches them. In rooms whose create event
    /// is implied by the room ID (v12), the create event belongs to every chain but its own.
    /// Each event is read and parsed once; events unknown here or of another room end a path.
    /// Sorted by depth, then ID.
    pub fn auth_chain_of(
        &self,
        room_id: &RoomId,
        version: &RoomVersionId,
        room_short: u64,
        events: &[Arc<StoredEvent>],
    ) -> Result<Vec<Arc<StoredEvent>>> {
        // The starting events (a whole state, for /state_ids) hold most of the chain already:
        // look them up here before asking the store.
        let given: HashMap<&str, &Arc<StoredEvent>> = events.iter().map(|event| (event.event_id.as_str(), event)).collect();
        let mut visited: HashSet<String> = HashSet::new();
        let mut pending: Vec<String> = Vec::new();
        let enqueue_auth_events = |event: &StoredEvent, visited: &mut HashSet<String>, pending: &mut Vec<String>| {
            for id in event_refs(&event.pdu, "auth_events") {
                if !visited.contains(id) {
                    visited.insert(id.to_owned());
                    pending.push(id.to_owned());
                }
            }
        };
        for event in events {
            enqueue_auth_events(event, &mut visited, &mut pending);
        }
        if room_id_is_derived(version) {
            let create = create_event_id_from_room_id(room_id)?.to_string();
            if events.iter().any(|event| event.event_id != create) && visited.insert(create.clone()) {
                pending.push(create);
            }
        }
        let mut chain = Vec::new();
        while let Some(id) = pending.pop() {
            let event = match given.get(id.as_str()) {
                Some(event) => Arc::clone(event),
                None => match self.event_shared(&id)? {
                    Some((_, event)) => event,
                    None => continue,
                },
            };
            if event.room_short != room_short {
                continue;
            }
            enqueue_auth_events(&event, &mut visited, &mut pending);
            chain.push(event);
        }
        chain.sort_by(|a, b| (a.depth, &a.event_id).cmp(&(b.depth, &b.event_id)));
        Ok(chain)
    }

    /// The events `from` and those before them, following `prev_events` highest depth first,
    /// at most `limit`. Unknown events, outliers and events of other rooms are skipped.
    pub fn backfill_from(&self, room_short: u64, from: &[OwnedEventId], limit: usize) -> Result<Vec<Arc<StoredEvent>>> {
        let mut walk = GraphWalk::new(room_short);
        for id in from {
            walk.push(self, id.as_str(), 0)?;
        }
        let mut out = Vec::new();
        while out.len() < limit
            && let Some(event) = walk.pop()
        {
            for prev in event_refs(&event.pdu, "prev_events") {
                walk.push(self, prev, 0)?;
            }
            out.push(event);
        }
        Ok(out)
    }

    /// The events before `latest` (not those themselves) that are not `earliest` nor before
    /// them, down to `min_depth`, at most `limit`: walked breadth-first from `latest`, highest
    /// depth first, so the events nearest `latest` come first, and returned oldest first.
    pub fn missing_events_between(
        &self,
        room_short: u64,
        earliest: &[OwnedEventId],
        latest: &[OwnedEventId],
        limit: usize,
        min_depth: u64,
    ) -> Result<Vec<Arc<StoredEvent>>> {
        let mut walk = GraphWalk::new(room_short);
        walk.seen.extend(earliest.iter().map(ToString::to_string));
        walk.seen.extend(latest.iter().map(ToString::to_string));
        for id in latest {
            if let Some((_, event)) = self.event_shared(id.as_str())?
                && event.room_short == room_short
            {
                for prev in event_refs(&event.pdu, "prev_events") {
                    walk.push(self, prev, min_depth)?;
                }
            }
        }
        let mut out = Vec::new();
        while out.len() < limit
            && let Some(event) = walk.pop()
        {
            for prev in event_refs(&event.pdu, "prev_events") {
                walk.push(self, prev, min_depth)?;
            }
            out.push(event);
        }
        out.sort_by_key(|event| (event.depth, event.stream));
        Ok(out)
    }
}

/// A walk backwards through `prev_events`, always taking the deepest event not taken yet.
struct GraphWalk {
    room_short: u64,
    seen: HashSet<String>,
    /// (depth, stream, index into `events`): the deepest (then latest) on top.
    queue: BinaryHeap<(u64, u64, Reverse<usize>)>,
    events: Vec<Option<Arc<StoredEvent>>>,
}

impl GraphWalk {
    fn new(room_short: u64) -> Self {
        Self { room_short, seen: HashSet::new(), queue: BinaryHeap::new(), events: Vec::new() }
    }

    /// Queues an event once, if it is a timeline event of the room at or above `min_depth`.
    fn push(&mut self, rooms: &Rooms, event_id: &str, min_depth: u64) -> Result<()> {
        if !self.seen.insert(event_id.to_owned()) {
            return Ok(());
        }
        let Some((_, event)) = rooms.event_shared(event_id)? else { return Ok(()) };
        if event.room_short != self.room_short || event.outlier || event.depth < min_depth {
            return Ok(());
        }
        self.queue.push((event.depth, event.stream, Reverse(self.events.len())));
        self.events.push(Some(event));
        Ok(())
    }

    fn pop(&mut self) -> Option<Arc<StoredEvent>> {
        let (_, _, Reverse(index)) = self.queue.pop()?;
        self.events.get_mut(index)?.take()
    }
}

/// Access checks for one requesting server.
impl Rooms {
    /// 403 `M_FORBIDDEN` if the room's current server ACL refuses `origin`.
    pub fn ensure_server_allowed(&self, record: &RoomRecord, origin: &ServerName) -> Result<()> {
        let acl = self.state_event_shared(record.current_state_group, "m.room.server_acl", "")?;
        if !is_server_allowed(acl.as_ref().map(|event| event.content()), origin.as_str()) {
            return Err(Error::forbidden("Server is banned from this room by its server ACL"));
        }
        Ok(())
    }

    /// The room (404 if unknown) as `origin` may read it: 403 if the room's server ACL
    /// refuses `origin`.
    fn server_reader(&self, room_id: &RoomId, origin: &ServerName) -> Result<ServerReader> {
        let record = self.room(room_id)?;
        let version = self.room_version(&record)?;
        self.ensure_server_allowed(&record, origin)?;
        let mut member_keys = Vec::new();
        for (user, _) in self.membership.members(room_id.as_str())?.iter() {
            let of_origin = UserId::parse(user.as_str()).is_ok_and(|user| user.server_name() == origin);
            if of_origin && let Some(key) = self.short.state_key(&("m.room.member".to_owned(), user.clone()))? {
                member_keys.push(key);
            }
        }
        let mut reader = ServerReader {
            room_id: room_id.to_owned(),
            in_room_now: false,
            member_keys,
            memberships: Mutex::default(),
            version,
            record,
        };
        reader.in_room_now = self.server_membership(&reader, reader.record.current_state_group)?.0;
        Ok(reader)
    }

    /// An event of the reader's room (404 if unknown or of another room).
    fn room_event(&self, reader: &ServerReader, event_id: &EventId) -> Result<Arc<StoredEvent>> {
        match self.event_shared(event_id.as_str())? {
            Some((_, event)) if event.room_short == reader.record.short => Ok(event),
            _ => Err(Error::not_found("Unknown event")),
        }
    }

    /// The starting events of a walk: those of the room must all be readable (403), and at
    /// least one must be of the room (404 otherwise); unknown ones are ignored.
    fn require_readable_starts(&self, reader: &ServerReader, starts: &[OwnedEventId]) -> Result<()> {
        let mut known = false;
        for event_id in starts {
            if let Some((_, event)) = self.event_shared(event_id.as_str())?
                && event.room_short == reader.record.short
            {
                self.require_readable(reader, &event)?;
                known = true;
            }
        }
        if known { Ok(()) } else { Err(Error::not_found("None of the events is known in this room")) }
    }

    /// Whether any user of the reader's server is (joined, invited) in a state group.
    fn server_membership(&self, reader: &ServerReader, group: u64) -> Result<(bool, bool)> {
        if let Some(known) = reader.memberships.lock().ok().and_then(|cache| cache.get(&group).copied()) {
            return Ok(known);
        }
        let state = self.state.load(group)?;
        let (mut joined, mut invited) = (false, false);
        for key in &reader.member_keys {
            let Some(short) = state.get(key) else { continue };
            let Some(member) = self.timeline.get_shared(*short)? else { continue };
            match member.content().get("membership").and_then(Value::as_str) {
                Some("join") => {
                    joined = true;
                    break;
                }
                Some("invite") => invited = true,
                _ => {}
            }
        }
        if let Ok(mut cache) = reader.memberships.lock() {
            cache.insert(group, (joined, invited));
        }
        Ok((joined, invited))
    }

    /// The history visibilities that apply to an event: the one before it, and for a change
    /// of visibility, the new one too.
    fn visibilities_at(&self, event: &StoredEvent) -> Result<Vec<String>> {
        let mut visibilities = vec![self.history_visibility(event.state_before)?];
        if event.event_type() == "m.room.history_visibility"
            && let Some(after) = event.content().get("history_visibility").and_then(Value::as_str)
        {
            visibilities.push(after.to_owned());
        }
        Ok(visibilities)
    }

    /// The server's users' (joined, invited) at an event: in the state before or after it.
    fn server_membership_at(&self, reader: &ServerReader, event: &StoredEvent) -> Result<(bool, bool)> {
        let before = self.server_membership(reader, event.state_before)?;
        let after = if event.state_after == event.state_before { before } else { self.server_membership(reader, event.state_after)? };
        Ok((before.0 || after.0, before.1 || after.1))
    }

    /// 403 unless the reader's server may ask about `event` (see the module documentation).
    fn require_readable(&self, reader: &ServerReader, event: &StoredEvent) -> Result<()> {
        let readable = if event.outlier {
            reader.in_room_now
        } else {
            let (joined, invited) = self.server_membership_at(reader, event)?;
            joined
                || self.visibilities_at(event)?.iter().any(|visibility| match visibility.as_str() {
                    "world_readable" => true,
                    "shared" => reader.in_room_now,
                    "invited" => invited,
                    _ => false,
                })
        };
        if readable { Ok(()) } else { Err(Error::forbidden("Server is not in the room at this event")) }
    }

    /// Whether the reader's server may see `event` unredacted: `world_readable` or `shared`
    /// history, or one of its users joined at the event (or invited, for `invited` history).
    fn server_may_see(&self, reader: &ServerReader, event: &StoredEvent) -> Result<bool> {
        if event.outlier {
            return Ok(true);
        }
        let visibilities = self.visibilities_at(event)?;
        if visibilities.iter().any(|v| v == "world_readable" || v == "shared") {
            return Ok(true);
        }
        let (joined, invited) = self.server_membership_at(reader, event)?;
        Ok(joined || (invited && visibilities.iter().any(|v| v == "invited")))
    }
}

/// The stored PDU in federation format: without `unsigned`; with `event_id` in room versions
/// 1–2 and without it from v3; redacted if asked (and not redacted already).
fn federation_pdu(version: &RoomVersionId, event: &StoredEvent, redact: bool) -> Result<RawPdu> {
    let mut pdu = event.pdu.clone();
    if redact && event.redacted_because.is_none() {
        let redacted = redact_pdu(version, canonical(&pdu)?, None)?;
        pdu = serde_json::to_value(redacted).map_err(|e| Error::internal(e.to_string()))?;
    }
    if let Some(object) = pdu.as_object_mut() {
        object.remove("unsigned");
        let carries_event_id = version.rules().is_some_and(|rules| rules.event_id_format == EventIdFormatVersion::V1);
        if carries_event_id {
            object.entry("event_id").or_insert_with(|| Value::String(event.event_id.clone()));
        } else {
            object.remove("event_id");
        }
    }
    serde_json::value::to_raw_value(&pdu).map_err(|e| Error::internal(e.to_string()))
}

/// The event IDs a PDU lists under `field` (`prev_events`, `auth_events`), in either format:
/// v1/v2 `[id, {hashes}]` pairs or v3+ plain IDs.
fn event_refs<'a>(pdu: &'a Value, field: &str) -> impl Iterator<Item = &'a str> {
    pdu.get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.as_str().or_else(|| entry.get(0).and_then(Value::as_str)))
}

/// The room a stored event belongs to: its `room_id`, or for a v12 create event (which has
/// none), the room ID its own ID implies.
fn room_of(event: &StoredEvent) -> Result<OwnedRoomId> {
    if let Some(room_id) = event.pdu.get("room_id").and_then(Value::as_str) {
        return RoomId::parse(room_id).map_err(|e| Error::internal(format!("stored room_id: {e}")));
    }
    let event_id = EventId::parse(event.event_id.as_str()).map_err(|e| Error::internal(e.to_string()))?;
    Ok(room_id_from_create_event_id(&event_id)?)
}

fn is_create_event(event: &StoredEvent) -> bool {
    event.event_type() == "m.room.create" && event.state_key() == Some("") && event_refs(&event.pdu, "prev_events").next().is_none()
}

fn ids_of(events: &[Arc<StoredEvent>]) -> Result<Vec<OwnedEventId>> {
    events.iter().map(|event| EventId::parse(event.event_id.as_str()).map_err(|e| Error::internal(e.to_string()))).collect()
}


#[cfg(test)]
// Slices of one cloned ID read better than `std::slice::from_ref` in assertions.
#[allow(clippy::cloned_ref_to_slice_refs)]
mod tests {
    use std::time::Instant;

    use myelin_federation::{ServerSigningKey, pdu::Pdu};
    use myelin_storage::Database;
    use ruma::{OwnedUserId, server_name};
    use serde_json::{Map, json};
    use tempfile::TempDir;

    use super::*;
    use crate::service::{
        catalog,
        notifier::Notifier,
        rooms::{EventDraft, Preset, RoomSpec, StreamPositions},
    };

    /// One database seen by several servers' room engines: each server signs its own users'
    /// events (the protocol core refuses anything else), and every read goes through a fresh
    /// `local.test` engine, so no engine's caches miss what another one wrote.
    struct Fixture {
        db: Database,
        stream: StreamPositions,
        notifier: Notifier,
        keys: Mutex<HashMap<String, Arc<ServerSigningKey>>>,
        alice: OwnedUserId,
        _dir: TempDir,
    }

    fn fixture() -> Fixture {
        let dir = TempDir::new().unwrap();
        let db = Database::open_rocksdb(&dir.path().join("db"), &catalog()).unwrap();
        let stream = StreamPositions::new(db.clone()).unwrap();
        Fixture {
            db,
            stream,
            notifier: Notifier::default(),
            keys: Mutex::default(),
            alice: UserId::parse("@alice:local.test").unwrap(),
            _dir: dir,
        }
    }

    fn user(id: &str) -> OwnedUserId {
        UserId::parse(id).unwrap()
    }

    fn remote() -> &'static ServerName {
        server_name!("remote.test")
    }

    fn stranger() -> &'static ServerName {
        server_name!("stranger.test")
    }

    impl Fixture {
        /// The room engine of `server`, signing with that server's key.
        fn server(&self, server: &ServerName) -> Rooms {
            let key = self
                .keys
                .lock()
                .unwrap()
                .entry(server.to_string())
                .or_insert_with(|| Arc::new(ServerSigningKey::generate().unwrap()))
                .clone();
            Rooms::new(self.db.clone(), server.to_owned(), key, self.stream.clone(), self.notifier.clone())
        }

        /// This server's room engine, as the endpoints use it.
        fn rooms(&self) -> Rooms {
            self.server(server_name!("local.test"))
        }

        async fn room(&self, version: RoomVersionId, history_visibility: &str) -> OwnedRoomId {
            let spec = RoomSpec {
                version,
                preset: Preset::PublicChat,
                creation_content: Map::new(),
                power_level_override: None,
                initial_state: vec![EventDraft::state("m.room.history_visibility", "", json!({"history_visibility": history_visibility}))],
                name: Some("Past".to_owned()),
                topic: None,
                invite: Vec::new(),
                is_direct: false,
                canonical_alias: None,
                creator_profile: (None, None),
            };
            self.rooms().create_from_spec(&self.alice, spec).await.unwrap()
        }

        async fn say(&self, room: &RoomId, text: &str) -> OwnedEventId {
            let draft = EventDraft::message("m.room.message", json!({"msgtype": "m.text", "body": text}));
            self.rooms().append(room, &self.alice, draft, None).await.unwrap()
        }

        async fn say_after(&self, room: &RoomId, text: &str, prev: &EventId) -> OwnedEventId {
            let draft = EventDraft::message("m.room.message", json!({"msgtype": "m.text", "body": text}));
            self.rooms().append_with_prev_events(room, &self.alice, draft, vec![prev.to_owned()]).await.unwrap()
        }

        async fn set_state(&self, room: &RoomId, event_type: &str, content: Value) -> OwnedEventId {
            self.rooms().append(room, &self.alice, EventDraft::state(event_type, "", content), None).await.unwrap()
        }

        async fn membership(&self, room: &RoomId, member: &UserId, membership: &str) -> OwnedEventId {
            let draft = EventDraft::state("m.room.member", member.as_str(), json!({"membership": membership}));
            self.server(member.server_name()).append(room, member, draft, None).await.unwrap()
        }

        fn stored(&self, event_id: &EventId) -> Arc<StoredEvent> {
            self.rooms().event_shared(event_id.as_str()).unwrap().unwrap().1
        }

        fn body_of(&self, event_id: &EventId) -> String {
            self.stored(event_id).content()["body"].as_str().unwrap().to_owned()
        }

        fn record(&self, room: &RoomId) -> RoomRecord {
            self.rooms().room(room).unwrap()
        }
    }

    fn json_of(raw: &RawPdu) -> Value {
        serde_json::from_str(raw.get()).unwrap()
    }

    fn assert_refused<T: std::fmt::Debug>(result: Result<T>, status: u16, errcode: &str) {
        match result {
            Err(Error::Matrix { status: got, kind, message }) => {
                assert_eq!((got.as_u16(), kind.errcode().to_string()), (status, errcode.to_owned()), "{message}");
            }
            other => panic!("expected {status} {errcode}, got {other:?}"),
        }
    }

    fn ids(events: &[Arc<StoredEvent>]) -> Vec<String> {
        events.iter().map(|event| event.event_id.clone()).collect()
    }

    /// Every auth event of the state and of the chain is in the chain, checked with the
    /// protocol core's own parser (which reads both reference formats).
    fn assert_chain_closed(state: &[Arc<StoredEvent>], chain: &[Arc<StoredEvent>]) {
        let chain_ids: HashSet<&str> = chain.iter().map(|event| event.event_id.as_str()).collect();
        assert_eq!(chain_ids.len(), chain.len(), "the chain lists an event twice");
        for event in state.iter().chain(chain) {
            let pdu = Pdu::from_json(EventId::parse(&event.event_id).unwrap(), canonical(&event.pdu).unwrap()).unwrap();
            for auth in pdu.auth_event_ids() {
                assert!(chain_ids.contains(auth.as_str()), "{auth} (auth event of {}) missing from the chain", event.event_id);
            }
        }
    }

    #[tokio::test]
    async fn state_ids_are_the_state_before_the_event_and_its_closed_auth_chain() {
        for version in [RoomVersionId::V1, RoomVersionId::V3, RoomVersionId::V10, RoomVersionId::V12] {
            let f = fixture();
            let room = f.room(version.clone(), "shared").await;
            let bob = user("@bob:remote.test");
            let join = f.membership(&room, &bob, "join").await;
            let topic = f.set_state(&room, "m.room.topic", json!({"topic": "history"})).await;
            let message = f.say(&room, "hello").await;

            let (pdu_ids, chain_ids) = f.rooms().federation_state_ids(remote(), &room, &message).unwrap();
            let expected: HashSet<String> =
                f.rooms().state_map(f.stored(&message).state_before).unwrap().into_values().collect();
            let got: HashSet<String> = pdu_ids.iter().map(ToString::to_string).collect();
            assert_eq!(got, expected, "v{version}");
            assert!(got.contains(topic.as_str()) && got.contains(join.as_str()));
            assert!(!got.contains(message.as_str()));

            // The state before the topic lacks it; the topic's own auth chain is closed too.
            let (before_topic, _) = f.rooms().federation_state_ids(remote(), &room, &topic).unwrap();
            assert!(!before_topic.contains(&topic) && before_topic.contains(&join));

            let state = f.rooms().state_before_event(&f.stored(&message)).unwrap();
            let chain = f.rooms().auth_chain_of(&room, &version, f.record(&room).short, &state).unwrap();
            assert_eq!(ids(&chain), chain_ids.iter().map(ToString::to_string).collect::<Vec<_>>());
            assert_chain_closed(&state, &chain);
            let create = f.rooms().state_event(f.record(&room).current_state_group, "m.room.create", "").unwrap().unwrap();
            assert!(chain_ids.iter().any(|id| id.as_str() == create.event_id), "v{version}: the create event is in the chain");
            assert!(chain.windows(2).all(|pair| pair[0].depth <= pair[1].depth), "sorted by depth");

            // The create event has no state before it and an empty auth chain.
            let create_id = EventId::parse(&create.event_id).unwrap();
            let (state_at_create, chain_at_create) = f.rooms().federation_state_ids(remote(), &room, &create_id).unwrap();
            assert!(state_at_create.is_empty() && chain_at_create.is_empty(), "v{version}");

            // /event_auth: the join's chain holds the create event, power levels and join rules.
            let join_chain: Vec<String> =
                f.rooms().federation_event_auth(remote(), &room, &join).unwrap().iter().map(|raw| json_of(raw)["type"].as_str().unwrap().to_owned()).collect();
            for needed in ["m.room.create", "m.room.power_levels", "m.room.join_rules"] {
                assert!(join_chain.iter().any(|t| t == needed), "v{version}: {needed} missing from {join_chain:?}");
            }

            // /state answers the same events as full PDUs in federation format.
            let (pdus, chain_pdus) = f.rooms().federation_state(remote(), &room, &message).unwrap();
            assert_eq!(pdus.len(), pdu_ids.len());
            assert_eq!(chain_pdus.len(), chain_ids.len());
            for pdu in pdus.iter().chain(&chain_pdus) {
                let pdu = json_of(pdu);
                assert!(pdu.get("unsigned").is_none());
                let carries_id = matches!(version, RoomVersionId::V1 | RoomVersionId::V2);
                assert_eq!(pdu.get("event_id").is_some(), carries_id, "v{version}: {pdu}");
                let sender_server = pdu["sender"].as_str().unwrap().split_once(':').unwrap().1;
                assert!(pdu["signatures"][sender_server].is_object(), "{pdu}");
            }
        }
    }

    #[tokio::test]
    async fn v12_chains_hold_the_create_event_they_do_not_list() {
        let f = fixture();
        let room = f.room(RoomVersionId::V12, "shared").await;
        let join = f.membership(&room, &user("@bob:remote.test"), "join").await;
        let create_id = create_event_id_from_room_id(&room).unwrap();
        assert!(event_refs(&f.stored(&join).pdu, "auth_events").all(|id| id != create_id.as_str()));
        let chain = f.rooms().auth_chain_of(&room, &RoomVersionId::V12, f.record(&room).short, &[f.stored(&join)]).unwrap();
        assert!(ids(&chain).contains(&create_id.to_string()));
        // The create event itself has an empty chain, not itself.
        assert!(f.rooms().auth_chain_of(&room, &RoomVersionId::V12, f.record(&room).short, &[f.stored(&create_id)]).unwrap().is_empty());
        // /event finds a v12 create event, which names no room_id.
        assert_eq!(json_of(&f.rooms().federation_event(remote(), &create_id).unwrap())["type"], "m.room.create");
    }

    #[tokio::test]
    async fn servers_not_in_the_room_are_refused_and_unknown_things_are_not_found() {
        let f = fixture();
        let room = f.room(RoomVersionId::V10, "shared").await;
        let message = f.say(&room, "members only").await;
        assert_refused(f.rooms().federation_event(remote(), &message), 403, "M_FORBIDDEN");
        assert_refused(f.rooms().federation_state_ids(remote(), &room, &message), 403, "M_FORBIDDEN");
        assert_refused(f.rooms().federation_state(remote(), &room, &message), 403, "M_FORBIDDEN");
        assert_refused(f.rooms().federation_event_auth(remote(), &room, &message), 403, "M_FORBIDDEN");
        assert_refused(f.rooms().federation_backfill(remote(), &room, &[message.clone()], 10), 403, "M_FORBIDDEN");
        assert_refused(f.rooms().federation_missing_events(remote(), &room, &[], &[message.clone()], 10, 0), 403, "M_FORBIDDEN");

        let unknown_room = RoomId::parse("!nowhere:local.test").unwrap();
        let unknown_event = EventId::parse("$nothing").unwrap();
        assert_refused(f.rooms().federation_state_ids(remote(), &unknown_room, &message), 404, "M_NOT_FOUND");
        assert_refused(f.rooms().federation_backfill(remote(), &unknown_room, &[message.clone()], 10), 404, "M_NOT_FOUND");
        assert_refused(f.rooms().federation_event(remote(), &unknown_event), 404, "M_NOT_FOUND");
        assert_refused(f.rooms().federation_state_ids(remote(), &room, &unknown_event), 404, "M_NOT_FOUND");
        assert_refused(f.rooms().federation_event_auth(remote(), &room, &unknown_event), 404, "M_NOT_FOUND");

        // An event of another room is unknown in this one, even to a server in both.
        let other = f.room(RoomVersionId::V10, "shared").await;
        f.membership(&room, &user("@bob:remote.test"), "join").await;
        f.membership(&other, &user("@bob:remote.test"), "join").await;
        let elsewhere = f.say(&other, "elsewhere").await;
        assert_refused(f.rooms().federation_state_ids(remote(), &room, &elsewhere), 404, "M_NOT_FOUND");
        assert_refused(f.rooms().federation_backfill(remote(), &room, &[elsewhere.clone()], 10), 404, "M_NOT_FOUND");
        assert_refused(f.rooms().federation_missing_events(remote(), &room, &[], &[elsewhere, unknown_event.clone()], 10, 0), 404, "M_NOT_FOUND");
        // Once in, the server reads the shared history from before its join.
        assert_eq!(json_of(&f.rooms().federation_event(remote(), &message).unwrap())["content"]["body"], "members only");
        // A server that left reads nothing it did not see, and no longer the shared past.
        let bob = user("@bob:remote.test");
        f.membership(&room, &bob, "leave").await;
        let after_leave = f.say(&room, "after the leave").await;
        assert_refused(f.rooms().federation_event(remote(), &after_leave), 403, "M_FORBIDDEN");
        assert_refused(f.rooms().federation_event(remote(), &message), 403, "M_FORBIDDEN");
        assert_refused(f.rooms().federation_event(stranger(), &message), 403, "M_FORBIDDEN");
    }

    #[tokio::test]
    async fn history_visibility_decides_what_a_server_reads_and_backfill_redacts_the_rest() {
        let f = fixture();
        let bob = user("@bob:remote.test");
        let room = f.room(RoomVersionId::V10, "joined").await;
        let secret = f.say(&room, "before bob").await;
        let join = f.membership(&room, &bob, "join").await;
        let hello = f.say(&room, "after bob").await;

        assert_refused(f.rooms().federation_event(remote(), &secret), 403, "M_FORBIDDEN");
        assert_refused(f.rooms().federation_state_ids(remote(), &room, &secret), 403, "M_FORBIDDEN");
        assert_eq!(json_of(&f.rooms().federation_event(remote(), &join).unwrap())["content"]["membership"], "join");
        assert_eq!(json_of(&f.rooms().federation_event(remote(), &hello).unwrap())["content"]["body"], "after bob");

        let pdus: Vec<Value> = f.rooms().federation_backfill(remote(), &room, &[hello.clone()], 100).unwrap().iter().map(json_of).collect();
        let by_id = |id: &EventId| {
            let served_id = |pdu: &Value| myelin_federation::pdu::event_id_of(&RoomVersionId::V10, &canonical(pdu).unwrap()).unwrap();
            pdus.iter().find(|pdu| served_id(pdu) == id).cloned().unwrap()
        };
        assert_eq!(by_id(&hello)["content"]["body"], "after bob");
        let redacted = by_id(&secret);
        assert_eq!(redacted["content"], json!({}), "served redacted: {redacted}");
        assert!(redacted["signatures"].is_object() && redacted["hashes"].is_object());
        // State events keep what redaction keeps: the history visibility is still readable.
        assert!(pdus.iter().any(|pdu| pdu["type"] == "m.room.history_visibility" && pdu["content"]["history_visibility"] == "joined"));
        // The stored event is untouched.
        assert_eq!(f.body_of(&secret), "before bob");
        // get_missing_events redacts the same way.
        let missing: Vec<Value> = f.rooms().federation_missing_events(remote(), &room, &[], &[hello.clone()], 20, 0).unwrap().iter().map(json_of).collect();
        assert!(missing.iter().all(|pdu| pdu["content"].get("body").is_none()), "{missing:?}");

        // With shared history, the server in the room now reads everything.
        let shared = f.room(RoomVersionId::V10, "shared").await;
        let early = f.say(&shared, "early").await;
        f.membership(&shared, &bob, "join").await;
        assert_eq!(json_of(&f.rooms().federation_event(remote(), &early).unwrap())["content"]["body"], "early");

        // World-readable history is open to every server not refused by the ACL.
        let open = f.room(RoomVersionId::V10, "world_readable").await;
        let public = f.say(&open, "for everyone").await;
        assert_eq!(json_of(&f.rooms().federation_event(stranger(), &public).unwrap())["content"]["body"], "for everyone");
        assert_eq!(f.rooms().federation_backfill(stranger(), &open, &[public], 3).unwrap().len(), 3);
    }

    #[tokio::test]
    async fn the_server_acl_refuses_denied_servers_whatever_their_port() {
        let f = fixture();
        let bob = user("@bob:remote.test");
        let room = f.room(RoomVersionId::V10, "world_readable").await;
        f.membership(&room, &bob, "join").await;
        let message = f.say(&room, "hi").await;
        assert!(f.rooms().federation_event(remote(), &message).is_ok());

        f.set_state(&room, "m.room.server_acl", json!({"allow": ["*"], "deny": ["remote.test", "*.evil.test"]})).await;
        assert_refused(f.rooms().federation_event(remote(), &message), 403, "M_FORBIDDEN");
        assert_refused(f.rooms().federation_state_ids(remote(), &room, &message), 403, "M_FORBIDDEN");
        assert_refused(f.rooms().federation_backfill(remote(), &room, &[message.clone()], 5), 403, "M_FORBIDDEN");
        assert_refused(f.rooms().federation_event(server_name!("remote.test:8448"), &message), 403, "M_FORBIDDEN");
        assert_refused(f.rooms().federation_event(server_name!("a.evil.test"), &message), 403, "M_FORBIDDEN");
        // The history is world-readable: an allowed stranger still reads it.
        assert!(f.rooms().federation_event(stranger(), &message).is_ok());

        f.set_state(&room, "m.room.server_acl", json!({"allow": ["*"]})).await;
        assert!(f.rooms().federation_event(remote(), &message).is_ok());
        f.set_state(&room, "m.room.server_acl", json!({"allow": ["*"], "allow_ip_literals": false})).await;
        assert_refused(f.rooms().federation_event(server_name!("10.1.2.3:8448"), &message), 403, "M_FORBIDDEN");
        assert!(f.rooms().federation_event(remote(), &message).is_ok());
    }

    #[tokio::test]
    async fn backfill_walks_prev_events_deepest_first_up_to_the_limit() {
        let f = fixture();
        let room = f.room(RoomVersionId::V10, "shared").await;
        let mut chain = Vec::new();
        for i in 0..10 {
            chain.push(f.say(&room, &format!("m{i}")).await);
        }
        let short = f.record(&room).short;
        let three = f.rooms().backfill_from(short, &[chain[9].clone()], 3).unwrap();
        assert_eq!(ids(&three), vec![chain[9].to_string(), chain[8].to_string(), chain[7].to_string()]);
        assert!(f.rooms().backfill_from(short, &[chain[9].clone()], 0).unwrap().is_empty());
        // Unknown starting points are skipped; the walk goes down to the create event.
        let all = f.rooms().backfill_from(short, &[EventId::parse("$unknown").unwrap(), chain[9].clone()], 1000).unwrap();
        let create = all.last().unwrap();
        assert_eq!(create.event_type(), "m.room.create");
        assert_eq!(all.len() as u64, f.record(&room).max_depth);
        assert!(all.windows(2).all(|pair| pair[0].depth > pair[1].depth));

        // A fork: both branches, each event once, deepest first.
        let base = chain[9].clone();
        let a1 = f.say_after(&room, "a1", &base).await;
        let b1 = f.say_after(&room, "b1", &base).await;
        let b2 = f.say_after(&room, "b2", &b1).await;
        let walked = f.rooms().backfill_from(short, &[a1.clone(), b2.clone()], 5).unwrap();
        assert_eq!(ids(&walked), vec![b2.to_string(), b1.to_string(), a1.to_string(), base.to_string(), chain[8].to_string()]);
        // Starting from an event and its ancestor lists the ancestor once.
        let overlap = f.rooms().backfill_from(short, &[b2.clone(), b1.clone(), b1.clone()], 10).unwrap();
        assert_eq!(ids(&overlap).iter().filter(|id| id.as_str() == b1.as_str()).count(), 1);

        // The endpoint caps the limit at 100.
        f.membership(&room, &user("@bob:remote.test"), "join").await;
        for i in 0..100 {
            f.say(&room, &format!("more {i}")).await;
        }
        let tip = EventId::parse(&f.record(&room).forward_extremities[0]).unwrap();
        assert_eq!(f.rooms().federation_backfill(remote(), &room, &[tip.clone()], 1000).unwrap().len(), BACKFILL_MAX);
        assert_eq!(f.rooms().federation_backfill(remote(), &room, &[tip], 7).unwrap().len(), 7);
    }

    #[tokio::test]
    async fn missing_events_stop_at_earliest_events_min_depth_and_the_limit() {
        let f = fixture();
        let room = f.room(RoomVersionId::V10, "shared").await;
        let mut m = Vec::new();
        for i in 0..10 {
            m.push(f.say(&room, &format!("m{i}")).await);
        }
        let short = f.record(&room).short;
        let bodies = |events: Vec<Arc<StoredEvent>>| -> Vec<String> {
            events.iter().map(|e| e.content()["body"].as_str().unwrap_or(e.event_type()).to_owned()).collect()
        };
        let between = f.rooms().missing_events_between(short, &[m[3].clone()], &[m[9].clone()], 10, 0).unwrap();
        assert_eq!(bodies(between), ["m4", "m5", "m6", "m7", "m8"]);
        // The limit keeps the events nearest the latest ones, still returned oldest first.
        let two = f.rooms().missing_events_between(short, &[m[3].clone()], &[m[9].clone()], 2, 0).unwrap();
        assert_eq!(bodies(two), ["m7", "m8"]);
        // min_depth: nothing below it.
        let depth_m6 = f.stored(&m[6]).depth;
        let shallow = f.rooms().missing_events_between(short, &[], &[m[9].clone()], 20, depth_m6).unwrap();
        assert_eq!(bodies(shallow), ["m6", "m7", "m8"]);
        // Without earliest events the walk goes back to the room's start, within the limit.
        let capped = f.rooms().federation_missing_events(stranger(), &room, &[], &[m[9].clone()], 1000, 0);
        assert_refused(capped, 403, "M_FORBIDDEN");
        f.membership(&room, &user("@bob:remote.test"), "join").await;
        let capped = f.rooms().federation_missing_events(remote(), &room, &[], &[m[9].clone()], 1000, 0).unwrap();
        assert_eq!(capped.len(), MISSING_EVENTS_MAX.min(f.stored(&m[9]).depth as usize - 1));
        let depths: Vec<u64> = capped.iter().map(|raw| json_of(raw)["depth"].as_u64().unwrap()).collect();
        assert!(depths.windows(2).all(|pair| pair[0] < pair[1]), "oldest first: {depths:?}");

        // A fork: the walk follows every branch but never crosses the earliest events.
        let base = m[9].clone();
        let a1 = f.say_after(&room, "a1", &base).await;
        let a2 = f.say_after(&room, "a2", &a1).await;
        let b1 = f.say_after(&room, "b1", &base).await;
        let b2 = f.say_after(&room, "b2", &b1).await;
        let merged = f.rooms().missing_events_between(short, &[base.clone()], &[a2.clone(), b2.clone()], 10, 0).unwrap();
        let mut got = bodies(merged);
        got.sort();
        assert_eq!(got, ["a1", "b1"]);
        // Latest events that are unknown or of another room yield nothing.
        assert!(f.rooms().missing_events_between(short, &[], &[EventId::parse("$unknown").unwrap()], 10, 0).unwrap().is_empty());
    }

    #[tokio::test]
    async fn alias_queries_name_the_room_and_the_servers_in_it() {
        let f = fixture();
        let room = f.room(RoomVersionId::V10, "shared").await;
        let alias = RoomAliasId::parse("#past:local.test").unwrap();
        f.rooms().publish(&room, Some(alias.as_str()), &f.alice, false).await.unwrap();
        f.membership(&room, &user("@bob:remote.test"), "join").await;
        f.membership(&room, &user("@carol:remote.test"), "join").await;
        f.membership(&room, &user("@dave:gone.test"), "join").await;
        f.membership(&room, &user("@dave:gone.test"), "leave").await;
        let (room_id, servers) = f.rooms().federation_alias(&alias).unwrap();
        assert_eq!(room_id, room);
        assert_eq!(servers, vec![server_name!("local.test").to_owned(), remote().to_owned()]);
        assert_refused(f.rooms().federation_alias(&RoomAliasId::parse("#nope:local.test").unwrap()), 404, "M_NOT_FOUND");
        assert_refused(f.rooms().federation_alias(&RoomAliasId::parse("#past:remote.test").unwrap()), 404, "M_NOT_FOUND");
    }

    #[tokio::test]
    async fn pdus_are_served_without_unsigned_and_with_event_id_only_in_v1_and_v2() {
        let f = fixture();
        for (version, carries_id) in [(RoomVersionId::V1, true), (RoomVersionId::V2, true), (RoomVersionId::V3, false), (RoomVersionId::V11, false)] {
            let room = f.room(version.clone(), "world_readable").await;
            let message = f.say(&room, "format").await;
            let mut event = f.stored(&message).as_ref().clone();
            let object = event.pdu.as_object_mut().unwrap();
            object.insert("unsigned".to_owned(), json!({"age": 5, "transaction_id": "t"}));
            if carries_id {
                // A v1/v2 PDU missing its event_id gets it back.
                object.remove("event_id");
            } else {
                object.insert("event_id".to_owned(), json!(message));
            }
            let served = json_of(&federation_pdu(&version, &event, false).unwrap());
            assert!(served.get("unsigned").is_none());
            assert_eq!(served.get("event_id").and_then(Value::as_str), carries_id.then_some(message.as_str()), "v{version}");
            assert_eq!(served["content"]["body"], "format");
            let redacted = json_of(&federation_pdu(&version, &event, true).unwrap());
            assert_eq!(redacted["content"], json!({}));
            assert!(redacted.get("unsigned").is_none());
            // What /event serves verifies as the stored event: same reference hash input.
            let served = json_of(&f.rooms().federation_event(stranger(), &message).unwrap());
            let mut stored = f.stored(&message).pdu.clone();
            stored.as_object_mut().unwrap().remove("unsigned");
            assert_eq!(served, stored, "v{version}");
        }
    }

    #[tokio::test]
    async fn state_ids_of_a_large_room_are_quick() {
        let f = fixture();
        let room = f.room(RoomVersionId::V10, "shared").await;
        // MYELIN_TEST_MEMBERS scales it up by hand (20,000 takes minutes to build).
        let members = std::env::var("MYELIN_TEST_MEMBERS").ok().and_then(|n| n.parse().ok()).unwrap_or(400);
        for i in 0..members {
            f.membership(&room, &user(&format!("@u{i}:remote.test")), "join").await;
        }
        let message = f.say(&room, "crowded").await;
        let started = Instant::now();
        let (pdu_ids, chain_ids) = f.rooms().federation_state_ids(remote(), &room, &message).unwrap();
        let elapsed = started.elapsed();
        eprintln!("state_ids of {} state events and {} chain events: {elapsed:?}", pdu_ids.len(), chain_ids.len());
        assert!(pdu_ids.len() > members);
        let state = f.rooms().state_before_event(&f.stored(&message)).unwrap();
        let chain = f.rooms().auth_chain_of(&room, &RoomVersionId::V10, f.record(&room).short, &state).unwrap();
        assert_eq!(chain.len(), chain_ids.len());
        assert_chain_closed(&state, &chain);
        assert!(elapsed.as_millis() < 2_000, "state_ids took {elapsed:?}");
    }
}
