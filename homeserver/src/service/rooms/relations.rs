//! The relations index: which events point at which through `content.m.relates_to`.
//!
//! Every event with a `rel_type` and a parent `event_id` gets two rows, staged in the batch
//! that stores it (local, remote and backfilled events alike): one ordered by the child's
//! topological position under its parent, one under (parent, rel_type). Redacting a child
//! deletes its rows, because redaction strips `m.relates_to` and breaks the relationship.
//! Rows carry what aggregation needs (sender, type, timestamp, whether an edit has
//! `m.new_content`), so validating edits and summarising threads never loads the children.
//!
//! Threads also get an activity index: (room, position of the thread's latest event) → root,
//! which `/threads` walks newest first.
//!
//! Writes happen under the room's append lock, so read-modify-write of the thread activity
//! rows sees every earlier append of the room.

use std::{cmp::Reverse, collections::HashSet};

use myelin_federation::pdu::redact_pdu;
use myelin_storage::{Batch, Direction, Table};
use ruma::{RoomId, UserId, api::error::ErrorKind};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Rooms, StoredEvent, Viewer, canonical, timeline::gap_after, tokens::Token};
use crate::error::{Error, Result};

/// A child event as its parent's aggregations need it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Relation {
    pub rel_type: String,
    /// The child's short event id.
    pub child: u64,
    pub event_id: String,
    pub event_type: String,
    pub sender: String,
    pub origin_server_ts: u64,
    /// State events cannot be edits.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_state: bool,
    /// Whether the cleartext content has an `m.new_content` object, which an edit of an
    /// unencrypted event needs to be valid.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub new_content: bool,
    /// An annotation's key (the reaction), for refusing duplicates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// (room, parent event ID): rows are keyed under the child's room, so a child naming a parent
/// in another room never matches the real parent.
type Parent = (u64, String);
/// (depth, stream): a topological position, as in the room's `/messages` order.
type Position = (u64, u64);
/// Children of one parent in topological order, as [`Rooms::children`] walks them.
type Children<'a> = Box<dyn Iterator<Item = Result<(Position, Relation)>> + 'a>;

/// ((room, parent), depth, stream) → child: all of a parent's children in topological order.
const CHILDREN: Table<(Parent, u64, u64), Relation> = Table::new("roomparentpos_relation");
/// ((room, parent), rel_type, (depth, stream)) → child: one relation type's children.
const BY_REL_TYPE: Table<(Parent, String, Position), Relation> = Table::new("roomparentreltypepos_relation");
/// (room, depth, stream) → thread root: threads by the position of their latest event.
const THREADS: Table<(u64, u64, u64), String> = Table::new("roomthreadpos_rootid");
/// (room, thread root) → position of the thread's latest event, to move its `THREADS` row.
const THREAD_LATEST: Table<(u64, String), Position> = Table::new("roomroot_threadpos");

pub const TABLES: &[&str] =
    &["roomparentpos_relation", "roomparentreltypepos_relation", "roomthreadpos_rootid", "roomroot_threadpos"];

pub const REPLACE: &str = "m.replace";
pub const ANNOTATION: &str = "m.annotation";
pub const THREAD: &str = "m.thread";
pub const REFERENCE: &str = "m.reference";

/// How deep `recurse=true` follows relations of relations (the spec asks for at least 3).
pub const RECURSION_DEPTH: u32 = 3;
/// A bound on the events one recursive `/relations` request gathers before paging them.
const MAX_RECURSED: usize = 10_000;
/// Annotation keys longer than this are refused, as Synapse does.
const MAX_ANNOTATION_KEY_BYTES: usize = 500;

/// The parsed `content.m.relates_to` of an event with a relation type. Replies
/// (`m.in_reply_to` without `rel_type`) are not relations for the server.
#[derive(Debug, PartialEq, Eq)]
pub struct RelatesTo<'a> {
    pub rel_type: &'a str,
    pub parent: &'a str,
    pub key: Option<&'a str>,
}

/// The relation an event's content declares, if it is well formed.
pub fn relates_to(content: &Value) -> Option<RelatesTo<'_>> {
    let relation = content.get("m.relates_to")?;
    let rel_type = relation.get("rel_type")?.as_str()?;
    let parent = relation.get("event_id")?.as_str()?;
    let key = if rel_type == ANNOTATION { relation.get("key").and_then(Value::as_str) } else { None };
    Some(RelatesTo { rel_type, parent, key })
}

/// What `/relations` asks for.
#[derive(Clone, Debug)]
pub struct RelationsQuery<'a> {
    pub rel_type: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub limit: usize,
    pub forward: bool,
    pub recurse: bool,
}

/// One page of events with the token for the next, if more may follow.
pub struct Page {
    pub events: Vec<StoredEvent>,
    pub next_batch: Option<String>,
}

/// What one user may see in one room, worked out only when an aggregation needs it.
struct LazyViewer<'a> {
    room_id: Option<ruma::OwnedRoomId>,
    user: &'a UserId,
    viewer: Option<Viewer<'a>>,
    ignored: Option<HashSet<String>>,
}

impl<'a> LazyViewer<'a> {
    fn new(event: &StoredEvent, user: &'a UserId) -> Self {
        let room_id = event.pdu.get("room_id").and_then(Value::as_str).and_then(|id| RoomId::parse(id).ok());
        Self { room_id, user, viewer: None, ignored: None }
    }

    /// Whether the user ignores `sender`: the spec leaves ignored users out of aggregations.
    fn ignores(&mut self, rooms: &Rooms, sender: &str) -> Result<bool> {
        if self.ignored.is_none() {
            self.ignored = Some(rooms.account_data.ignored_users(self.user)?);
        }
        Ok(self.ignored.as_ref().is_some_and(|ignored| ignored.contains(sender)))
    }

    fn can_see(&mut self, rooms: &Rooms, event: &StoredEvent) -> Result<bool> {
        if self.viewer.is_none() {
            let Some(room_id) = &self.room_id else { return Ok(false) };
            self.viewer = Some(rooms.viewer(room_id, self.user)?);
        }
        match &self.viewer {
            Some(viewer) => rooms.can_see_event(viewer, event),
            None => Ok(false),
        }
    }
}

impl Rooms {
    /// Stages the index rows of a newly stored event that relates to another.
    pub(super) fn stage_relation(&self, batch: &mut Batch, event_short: u64, event: &StoredEvent) -> Result<()> {
        let Some(relation) = relates_to(event.content()) else { return Ok(()) };
        let row = Relation {
            rel_type: relation.rel_type.to_owned(),
            child: event_short,
            event_id: event.event_id.clone(),
            event_type: event.event_type().to_owned(),
            sender: event.sender().to_owned(),
            origin_server_ts: event.origin_server_ts(),
            is_state: event.state_key().is_some(),
            new_content: event.content().get("m.new_content").is_some_and(Value::is_object),
            key: relation.key.map(str::to_owned),
        };
        let parent: Parent = (event.room_short, relation.parent.to_owned());
        let position = (event.depth, event.stream);
        CHILDREN.put(batch, &(parent.clone(), position.0, position.1), &row)?;
        BY_REL_TYPE.put(batch, &(parent.clone(), row.rel_type.clone(), position), &row)?;
        if row.rel_type == THREAD {
            let previous = THREAD_LATEST.get(&self.db, &parent)?;
            // A backfilled reply is older than what the thread already holds.
            if previous.is_none_or(|previous| previous < position) {
                self.move_thread(batch, &parent, previous, Some(position))?;
            }
        }
        Ok(())
    }

    /// Drops the index rows of an event about to be redacted (`event` as it was before),
    /// so it leaves every aggregation; a thread whose latest reply goes falls back to the
    /// reply before, and disappears from `/threads` with its last reply.
    pub(super) fn unstage_relation(&self, batch: &mut Batch, event: &StoredEvent) -> Result<()> {
        if event.outlier {
            return Ok(());
        }
        let Some(relation) = relates_to(event.content()) else { return Ok(()) };
        let parent: Parent = (event.room_short, relation.parent.to_owned());
        let position = (event.depth, event.stream);
        CHILDREN.delete(batch, &(parent.clone(), position.0, position.1));
        BY_REL_TYPE.delete(batch, &(parent.clone(), relation.rel_type.to_owned(), position));
        if relation.rel_type == THREAD && THREAD_LATEST.get(&self.db, &parent)? == Some(position) {
            let mut remaining = self.children(&parent, Some(THREAD), (u64::MAX, u64::MAX), Direction::Reverse)?;
            let replacement = loop {
                match remaining.next().transpose()? {
                    Some((other, _)) if other == position => continue,
                    found => break found.map(|(other, _)| other),
                }
            };
            self.move_thread(batch, &parent, Some(position), replacement)?;
        }
        Ok(())
    }

    /// Moves a thread's row in the activity index from `from` to `to` (either may be absent).
    fn move_thread(&self, batch: &mut Batch, parent: &Parent, from: Option<Position>, to: Option<Position>) -> Result<()> {
        if let Some((depth, stream)) = from {
            THREADS.delete(batch, &(parent.0, depth, stream));
        }
        match to {
            Some((depth, stream)) => {
                THREADS.put(batch, &(parent.0, depth, stream), &parent.1)?;
                THREAD_LATEST.put(batch, parent, &(depth, stream))?;
            }
            None => THREAD_LATEST.delete(batch, parent),
        }
        Ok(())
    }

    /// A parent's children (of one relation type, or all) from the gap `from` in `direction`:
    /// forwards yields positions `>= from`, backwards positions `< from`, as `/messages` does.
    fn children<'a>(
        &'a self,
        parent: &Parent,
        rel_type: Option<&str>,
        from: Position,
        direction: Direction,
    ) -> Result<Children<'a>> {
        let owned_parent = parent.clone();
        let rows: Box<dyn Iterator<Item = Result<(Parent, Position, Relation)>> + 'a> = match rel_type {
            None => Box::new(
                CHILDREN
                    .iter_from(&self.db, &(parent.clone(), from.0, from.1), direction)?
                    .map(|entry| entry.map(|((parent, depth, stream), row)| (parent, (depth, stream), row)).map_err(Error::from)),
            ),
            Some(rel_type) => {
                let owned_type = rel_type.to_owned();
                Box::new(
                    BY_REL_TYPE
                        .iter_from(&self.db, &(parent.clone(), rel_type.to_owned(), from), direction)?
                        .map_while(move |entry| match entry {
                            Ok(((parent, rel_type, position), row)) => (rel_type == owned_type).then_some(Ok((parent, position, row))),
                            Err(error) => Some(Err(Error::from(error))),
                        }),
                )
            }
        };
        Ok(Box::new(
            rows.map_while(move |entry| match entry {
                Ok((parent, position, row)) => (parent == owned_parent).then_some(Ok((position, row))),
                Err(error) => Some(Err(error)),
            })
            .filter(move |entry| !(direction == Direction::Reverse && matches!(entry, Ok((position, _)) if *position == from))),
        ))
    }

    /// Whether anything relates to the event: one seek, so events without relations (most of
    /// them) cost sync almost nothing.
    fn has_children(&self, parent: &Parent) -> Result<bool> {
        Ok(self.children(parent, None, (0, 0), Direction::Forward)?.next().transpose()?.is_some())
    }

    /// `unsigned.m.relations` for `event` as `user` sees it: the latest valid edit
    /// (`m.replace`), the thread summary (`m.thread`) and the references (`m.reference`).
    /// Annotations are not aggregated (spec v1.7+). `None` when there is nothing to bundle.
    pub(super) fn bundled_aggregations(&self, event: &StoredEvent, viewer: (&UserId, &ruma::DeviceId)) -> Result<Option<Value>> {
        // State events get no aggregations; edits and reactions can have none of their own.
        if event.state_key().is_some() || event.outlier {
            return Ok(None);
        }
        let own = relates_to(event.content());
        if own.as_ref().is_some_and(|own| matches!(own.rel_type, REPLACE | ANNOTATION)) {
            return Ok(None);
        }
        let parent: Parent = (event.room_short, event.event_id.clone());
        if !self.has_children(&parent)? {
            return Ok(None);
        }
        let (user, _) = viewer;
        let mut visibility = LazyViewer::new(event, user);
        let mut relations = serde_json::Map::new();
        // The spec bundles no edit with a redacted original, whatever the edits.
        if event.redacted_because.is_none()
            && let Some(edit) = self.latest_edit(&parent, event, &mut visibility)?
        {
            relations.insert(REPLACE.to_owned(), self.client_event(&edit, Some(viewer))?);
        }
        // A thread cannot start from an event that is itself a relation.
        if own.is_none()
            && let Some(summary) = self.thread_summary(&parent, event, viewer, &mut visibility)?
        {
            relations.insert(THREAD.to_owned(), summary);
        }
        let mut references = Vec::new();
        for entry in self.children(&parent, Some(REFERENCE), (0, 0), Direction::Forward)? {
            let (_, row) = entry?;
            if !visibility.ignores(self, &row.sender)? {
                references.push(json!({ "event_id": row.event_id }));
            }
        }
        if !references.is_empty() {
            relations.insert(REFERENCE.to_owned(), json!({ "chunk": references }));
        }
        Ok((!relations.is_empty()).then_some(Value::Object(relations)))
    }

    /// The most recent valid, visible edit of `original`: same sender, same type, not a state
    /// event, with `m.new_content` unless encrypted (where it sits in the ciphertext). Most
    /// recent by `origin_server_ts`, ties broken by the larger event ID, as the spec says.
    fn latest_edit(&self, parent: &Parent, original: &StoredEvent, visibility: &mut LazyViewer<'_>) -> Result<Option<StoredEvent>> {
        let mut edits: Vec<Relation> = Vec::new();
        for entry in self.children(parent, Some(REPLACE), (0, 0), Direction::Forward)? {
            let (_, row) = entry?;
            if is_valid_edit(&row, original) {
                edits.push(row);
            }
        }
        edits.sort_by(|a, b| (b.origin_server_ts, &b.event_id).cmp(&(a.origin_server_ts, &a.event_id)));
        for row in edits {
            if let Some(edit) = self.timeline.get(row.child)?
                && visibility.can_see(self, &edit)?
            {
                return Ok(Some(edit));
            }
        }
        Ok(None)
    }

    /// The thread summary of a root: its latest visible reply (formatted with its own
    /// aggregations), how many replies it has, and whether the viewer took part; replies of
    /// ignored users count for nothing.
    fn thread_summary(
        &self,
        parent: &Parent,
        root: &StoredEvent,
        viewer: (&UserId, &ruma::DeviceId),
        visibility: &mut LazyViewer<'_>,
    ) -> Result<Option<Value>> {
        let (user, _) = viewer;
        let mut participated = root.sender() == user.as_str();
        let mut replies = Vec::new();
        for entry in self.children(parent, Some(THREAD), (0, 0), Direction::Forward)? {
            let (_, row) = entry?;
            participated |= row.sender == user.as_str();
            if !visibility.ignores(self, &row.sender)? {
                replies.push(row.child);
            }
        }
        let count = replies.len();
        let mut latest = None;
        for child in replies.into_iter().rev() {
            if let Some(reply) = self.timeline.get(child)?
                && visibility.can_see(self, &reply)?
            {
                latest = Some(reply);
                break;
            }
        }
        let Some(latest) = latest else { return Ok(None) };
        Ok(Some(json!({
            "latest_event": self.client_event(&latest, Some(viewer))?,
            "count": count,
            "current_user_participated": participated,
        })))
    }

    /// Whether `user` sent the root or a reply of a thread.
    fn participated(&self, parent: &Parent, root: &StoredEvent, user: &UserId) -> Result<bool> {
        if root.sender() == user.as_str() {
            return Ok(true);
        }
        for entry in self.children(parent, Some(THREAD), (0, 0), Direction::Forward)? {
            if entry?.1.sender == user.as_str() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Refuses a local event whose relation the spec (and Synapse) rejects: a parent in
    /// another room or unknown to us, an annotation without a key or with one the sender
    /// already used on that parent (`M_DUPLICATE_ANNOTATION`), a thread started from an
    /// event that is itself a relation.
    pub fn check_new_relation(&self, room_id: &RoomId, sender: &UserId, event_type: &str, content: &Value) -> Result<()> {
        let Some(relation) = relates_to(content) else { return Ok(()) };
        let bad_request = |message: &str| Error::matrix(http::StatusCode::BAD_REQUEST, ErrorKind::Unknown, message);
        let record = self.room(room_id)?;
        let parent: Parent = (record.short, relation.parent.to_owned());
        let parent_event = match self.event(relation.parent)? {
            Some((_, event)) if event.room_short != record.short => return Err(bad_request("Relations must be in the same room")),
            Some((_, event)) => Some(event),
            // A parent we lack that others already relate to is known to exist (federation).
            None if self.has_children(&parent)? => None,
            None => return Err(bad_request("Can't send a relation to an unknown event")),
        };
        match relation.rel_type {
            ANNOTATION => {
                let key = relation.key.ok_or_else(|| bad_request("An annotation needs a key"))?;
                if key.len() > MAX_ANNOTATION_KEY_BYTES {
                    return Err(bad_request("The annotation key is too long"));
                }
                for entry in self.children(&parent, Some(ANNOTATION), (0, 0), Direction::Forward)? {
                    let (_, row) = entry?;
                    if row.sender == sender.as_str() && row.event_type == event_type && row.key.as_deref() == Some(key) {
                        return Err(Error::matrix(
                            http::StatusCode::BAD_REQUEST,
                            ErrorKind::DuplicateAnnotation,
                            "You already sent this annotation",
                        ));
                    }
                }
            }
            THREAD if parent_event.as_ref().is_some_and(|parent| relates_to(parent.content()).is_some()) => {
                return Err(bad_request("Cannot start a thread from an event with a relation"));
            }
            _ => {}
        }
        Ok(())
    }

    /// The event `event_id` of `room_id` if `viewer` may see it; otherwise (or if unknown)
    /// 404 `M_NOT_FOUND`, so a hidden event's existence does not leak.
    pub fn visible_event(&self, room_id: &RoomId, event_id: &str, viewer: &Viewer<'_>) -> Result<StoredEvent> {
        let record = self.room(room_id)?;
        let not_found = || Error::not_found("Event not found");
        let (_, event) = self.event(event_id)?.ok_or_else(not_found)?;
        if event.room_short != record.short || !self.can_see_event(viewer, &event)? {
            return Err(not_found());
        }
        Ok(event)
    }

    /// A page of the events relating to `parent_id` that `user` may see, most recent first
    /// unless `forward` (`GET /relations`). With `recurse`, relations of relations are
    /// followed [`RECURSION_DEPTH`] levels deep, through children matching the filters only.
    pub fn relations(&self, room_id: &RoomId, user: &UserId, parent_id: &str, query: &RelationsQuery<'_>) -> Result<Page> {
        let record = self.room(room_id)?;
        let viewer = self.viewer(room_id, user)?;
        self.visible_event(room_id, parent_id, &viewer)?;
        if query.limit == 0 {
            return Ok(Page { events: Vec::new(), next_batch: None });
        }
        let direction = if query.forward { Direction::Forward } else { Direction::Reverse };
        let from = match query.from {
            Some(token) => self.topological_gap(record.short, Token::parse(token)?)?,
            None if query.forward => (0, 0),
            None => (u64::MAX, u64::MAX),
        };
        let to = query.to.map(Token::parse).transpose()?.map(|token| self.topological_gap(record.short, token)).transpose()?;
        let parent: Parent = (record.short, parent_id.to_owned());
        let ignored = self.account_data.ignored_users(user)?;
        let matches = |row: &Relation| query.event_type.is_none_or(|wanted| row.event_type == wanted);
        let candidates: Children<'_> = if query.recurse {
            Box::new(self.relation_tree(&parent, query.rel_type, &matches, from, direction)?.into_iter().map(Ok))
        } else {
            Box::new(self.children(&parent, query.rel_type, from, direction)?.filter(|entry| entry.as_ref().map_or(true, |(_, row)| matches(row))))
        };
        let beyond_to = |position: Position| {
            to.is_some_and(|to| if query.forward { position >= to } else { position < to })
        };
        let mut events = Vec::new();
        let mut cursor = from;
        let mut more = false;
        for entry in candidates {
            let (position, row) = entry?;
            if beyond_to(position) {
                break;
            }
            if events.len() >= query.limit {
                more = true;
                break;
            }
            cursor = gap_after(position, direction);
            if ignored.contains(&row.sender) {
                continue;
            }
            if let Some(event) = self.timeline.get(row.child)?
                && self.can_see_event(&viewer, &event)?
            {
                events.push(event);
            }
        }
        let next_batch = more.then(|| Token::Topological { depth: cursor.0, stream: cursor.1 }.to_string());
        Ok(Page { events, next_batch })
    }

    /// Every relation under `parent` down to [`RECURSION_DEPTH`] levels (only through children
    /// of the wanted relation type and event type), past the gap `from`, in `direction`.
    fn relation_tree(
        &self,
        parent: &Parent,
        rel_type: Option<&str>,
        matches: &dyn Fn(&Relation) -> bool,
        from: Position,
        direction: Direction,
    ) -> Result<Vec<(Position, Relation)>> {
        let mut found = Vec::new();
        let mut level = vec![parent.1.clone()];
        for _ in 0..RECURSION_DEPTH {
            let mut next = Vec::new();
            for id in &level {
                for entry in self.children(&(parent.0, id.clone()), rel_type, (0, 0), Direction::Forward)? {
                    let (position, row) = entry?;
                    if !matches(&row) || found.len() >= MAX_RECURSED {
                        continue;
                    }
                    next.push(row.event_id.clone());
                    found.push((position, row));
                }
            }
            level = next;
        }
        found.retain(|(position, _)| match direction {
            Direction::Forward => *position >= from,
            Direction::Reverse => *position < from,
        });
        match direction {
            Direction::Forward => found.sort_by_key(|(position, _)| *position),
            Direction::Reverse => found.sort_by_key(|(position, _)| Reverse(*position)),
        }
        // Relations cannot form cycles (a child is always newer than its parent), but a
        // malformed graph must not return an event twice.
        found.dedup_by(|a, b| a.0 == b.0);
        Ok(found)
    }

    /// A page of the room's thread roots that `user` may see, the most recently active first
    /// (`GET /threads`); only threads the user took part in when `participated_only`.
    pub fn threads(&self, room_id: &RoomId, user: &UserId, participated_only: bool, from: Option<&str>, limit: usize) -> Result<Page> {
        let record = self.room(room_id)?;
        let membership = self.membership.membership(room_id.as_str(), user.as_str())?;
        if membership.is_none() && self.history_visibility(record.current_state_group)? != "world_readable" {
            return Err(Error::forbidden("You are not allowed to view this room"));
        }
        let viewer = self.viewer(room_id, user)?;
        let ignored = self.account_data.ignored_users(user)?;
        let version = self.room_version(&record)?;
        let from = match from {
            Some(token) => self.topological_gap(record.short, Token::parse(token)?)?,
            None => (u64::MAX, u64::MAX),
        };
        let mut events = Vec::new();
        let mut cursor = from;
        let mut more = false;
        for entry in THREADS.iter_from(&self.db, &(record.short, from.0, from.1), Direction::Reverse)? {
            let ((room, depth, stream), root_id) = entry?;
            if room != record.short {
                break;
            }
            if (depth, stream) == from {
                continue;
            }
            if events.len() >= limit {
                more = true;
                break;
            }
            cursor = (depth, stream);
            let Some((_, root)) = self.event(&root_id)? else { continue };
            let parent: Parent = (record.short, root_id);
            let is_root = root.room_short == record.short && relates_to(root.content()).is_none() && root.state_key().is_none();
            if !is_root || !self.can_see_event(&viewer, &root)? {
                continue;
            }
            if participated_only && !self.participated(&parent, &root, user)? {
                continue;
            }
            // The spec's rule, mimicking a client that aggregates locally: a thread whose
            // root an ignored user sent is listed with the root redacted.
            if ignored.contains(root.sender()) && root.redacted_because.is_none() {
                let mut redacted = root;
                redacted.pdu = serde_json::to_value(redact_pdu(&version, canonical(&redacted.pdu)?, None)?).map_err(|e| Error::internal(e.to_string()))?;
                events.push(redacted);
                continue;
            }
            events.push(root);
        }
        let next_batch = more.then(|| Token::Topological { depth: cursor.0, stream: cursor.1 }.to_string());
        Ok(Page { events, next_batch })
    }
}

/// The spec's validity rules for an edit that the index can check without the child's
/// content: same sender and type as the original, neither a state event, and `m.new_content`
/// present unless the edit is encrypted. (An original that is itself an edit gets no
/// aggregations at all, so it never reaches this check.)
fn is_valid_edit(edit: &Relation, original: &StoredEvent) -> bool {
    edit.sender == original.sender()
        && edit.event_type == original.event_type()
        && !edit.is_state
        && original.state_key().is_none()
        && (edit.new_content || edit.event_type == "m.room.encrypted")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{RelatesTo, relates_to};

    #[test]
    fn relates_to_needs_a_type_and_a_parent() {
        let edit = json!({"m.relates_to": {"rel_type": "m.replace", "event_id": "$a"}});
        assert_eq!(relates_to(&edit), Some(RelatesTo { rel_type: "m.replace", parent: "$a", key: None }));
        let reaction = json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": "$a", "key": "👍"}});
        assert_eq!(relates_to(&reaction).and_then(|r| r.key), Some("👍"));
        // Replies are not relations for the server; malformed relations are ignored.
        for content in [
            json!({"m.relates_to": {"m.in_reply_to": {"event_id": "$a"}}}),
            json!({"m.relates_to": {"rel_type": "m.thread"}}),
            json!({"m.relates_to": {"rel_type": 5, "event_id": "$a"}}),
            json!({"m.relates_to": "$a"}),
            json!({}),
        ] {
            assert_eq!(relates_to(&content), None, "{content}");
        }
    }
}
