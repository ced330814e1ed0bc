//! Events and the two orderings of a room.
//!
//! - Each event's PDU JSON is stored once, by short event id, with its metadata.
//! - The *stream* ordering is global and monotonic; sync tokens are stream positions.
//! - The *topological* ordering (depth, then stream) drives `/messages`.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
};

use myelin_storage::{Batch, Database, Direction, Table};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::service::cache::SharedCache;
use crate::error::{Error, Result};

/// Events kept decoded in memory: recent ones are read by every syncing member of their room,
/// and state events (power levels, members, visibility) by every visibility check.
const EVENT_CACHE_CAPACITY: usize = 8192;

/// One stored event.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredEvent {
    pub event_id: String,
    pub room_short: u64,
    /// The PDU as signed (or, once redacted, its redacted form).
    pub pdu: Value,
    pub stream: u64,
    pub depth: u64,
    /// State group before and after this event (equal for non-state events).
    pub state_before: u64,
    pub state_after: u64,
    /// The device and transaction ID of the local sender, for `unsigned.transaction_id`.
    #[serde(default)]
    pub txn: Option<(String, String)>,
    /// The redaction that removed this event's content, if any.
    #[serde(default)]
    pub redacted_because: Option<String>,
    /// For state events: the event this one replaced, for `unsigned.prev_content`.
    #[serde(default)]
    pub replaces_state: Option<String>,
    /// An event we hold without its place in the room's graph (the state and auth chain a
    /// join hands us, auth events fetched on demand): it is in no timeline index, has stream
    /// position 0 and no state groups (0). It can serve as an auth or state event and be
    /// fetched by ID, and is promoted to a timeline event if it later arrives as one.
    #[serde(default)]
    pub outlier: bool,
}

impl StoredEvent {
    pub fn event_type(&self) -> &str {
        self.pdu.get("type").and_then(Value::as_str).unwrap_or_default()
    }

    pub fn sender(&self) -> &str {
        self.pdu.get("sender").and_then(Value::as_str).unwrap_or_default()
    }

    pub fn state_key(&self) -> Option<&str> {
        self.pdu.get("state_key").and_then(Value::as_str)
    }

    pub fn content(&self) -> &Value {
        self.pdu.get("content").unwrap_or(&Value::Null)
    }

    pub fn origin_server_ts(&self) -> u64 {
        self.pdu.get("origin_server_ts").and_then(Value::as_u64).unwrap_or_default()
    }
}

const EVENTS: Table<u64, StoredEvent> = Table::new("shorteventid_event");
/// (room, stream) → event: a room's events in stream order (sync).
const ROOM_STREAM: Table<(u64, u64), u64> = Table::new("roomstream_shorteventid");
/// (room, depth, stream) → event: a room's events in topological order (`/messages`).
const ROOM_TOPO: Table<(u64, u64, u64), u64> = Table::new("roomtopo_shorteventid");
/// stream → (room, event): all events in stream order (incremental sync across rooms).
const STREAM: Table<u64, (u64, u64)> = Table::new("stream_roomevent");

pub const TABLES: &[&str] = &["shorteventid_event", "roomstream_shorteventid", "roomtopo_shorteventid", "stream_roomevent"];

/// The gap just past `position` when walking in `direction`: where the next page starts.
pub fn gap_after(position: (u64, u64), direction: Direction) -> (u64, u64) {
    match direction {
        Direction::Forward => (position.0, position.1 + 1),
        Direction::Reverse => position,
    }
}

/// Hands out stream positions and knows which are still being written.
///
/// Appends to different rooms commit concurrently, so position 7 can reach the disk before 6.
/// A reader that trusted "the highest written position" would skip 6 forever. Readers use
/// [`StreamPositions::safe`] instead: the highest position below which nothing is in flight.
#[derive(Clone)]
pub struct StreamPositions {
    db: Database,
    state: Arc<Mutex<Allocator>>,
}

struct Allocator {
    last_allocated: u64,
    in_flight: BTreeSet<u64>,
}

impl StreamPositions {
    pub fn new(db: Database) -> Result<Self> {
        // Positions handed out before a restart were either committed or lost with their
        // append; either way everything up to the persisted high-water mark is settled.
        let last_allocated = db.current_id("stream")?;
        Ok(Self { db, state: Arc::new(Mutex::new(Allocator { last_allocated, in_flight: BTreeSet::new() })) })
    }

    pub fn allocate(&self) -> Result<StreamTicket> {
        let mut state = self.state.lock().map_err(|_| Error::internal("stream allocator poisoned"))?;
        let position = self.db.next_id("stream")?;
        state.last_allocated = state.last_allocated.max(position);
        state.in_flight.insert(position);
        Ok(StreamTicket { position, positions: self.clone() })
    }

    /// The position up to which every event is committed (or abandoned).
    pub fn safe(&self) -> u64 {
        let Ok(state) = self.state.lock() else { return 0 };
        match state.in_flight.first() {
            Some(first) => first - 1,
            None => state.last_allocated,
        }
    }

    fn finish(&self, position: u64) {
        if let Ok(mut state) = self.state.lock() {
            state.in_flight.remove(&position);
        }
    }
}

/// A reserved stream position; dropping it (committed or not) releases it.
pub struct StreamTicket {
    pub position: u64,
    positions: StreamPositions,
}

impl Drop for StreamTicket {
    fn drop(&mut self) {
        self.positions.finish(self.position);
    }
}

#[derive(Clone)]
pub struct Timeline {
    db: Database,
    events: SharedCache<u64, Arc<StoredEvent>>,
}

impl Timeline {
    pub fn new(db: Database) -> Self {
        Self { db, events: SharedCache::new(EVENT_CACHE_CAPACITY) }
    }

    pub fn get(&self, short: u64) -> Result<Option<StoredEvent>> {
        Ok(self.get_shared(short)?.map(|event| event.as_ref().clone()))
    }

    /// Like [`Timeline::get`], without copying the event out of the cache.
    pub fn get_shared(&self, short: u64) -> Result<Option<Arc<StoredEvent>>> {
        if let Some(event) = self.events.get(&short) {
            return Ok(Some(event));
        }
        let ticket = self.events.ticket();
        let Some(event) = EVENTS.get(&self.db, &short)? else { return Ok(None) };
        let event = Arc::new(event);
        self.events.insert(ticket, short, event.clone());
        Ok(Some(event))
    }

    /// Stages an event and its index entries. The caller must call [`Timeline::committed`]
    /// once the batch is written (or failed).
    pub fn insert(&self, batch: &mut Batch, short: u64, event: &StoredEvent) -> Result<()> {
        self.events.begin_change(short);
        EVENTS.put(batch, &short, event)?;
        ROOM_STREAM.put(batch, &(event.room_short, event.stream), &short)?;
        ROOM_TOPO.put(batch, &(event.room_short, event.depth, event.stream), &short)?;
        STREAM.put(batch, &event.stream, &(event.room_short, short))?;
        Ok(())
    }

    /// Stages an event fetched to fill a room's history: in the topological index that
    /// `/messages` reads, not in the stream indexes sync reads (it is old news). The caller
    /// must call [`Timeline::committed`] once the batch is written (or failed).
    pub fn insert_backfilled(&self, batch: &mut Batch, short: u64, event: &StoredEvent) -> Result<()> {
        self.events.begin_change(short);
        EVENTS.put(batch, &short, event)?;
        Ok(ROOM_TOPO.put(batch, &(event.room_short, event.depth, event.stream), &short)?)
    }

    /// Stages an outlier: the event by short ID only, in no timeline index. The caller must
    /// call [`Timeline::committed`] once the batch is written (or failed).
    pub fn insert_outlier(&self, batch: &mut Batch, short: u64, event: &StoredEvent) -> Result<()> {
        self.events.begin_change(short);
        Ok(EVENTS.put(batch, &short, event)?)
    }

    /// Replaces an event's stored JSON (redaction), keeping its positions. The caller must call
    /// [`Timeline::committed`] once the batch is written (or failed); until then the event is
    /// read from the store.
    pub fn replace(&self, batch: &mut Batch, short: u64, event: &StoredEvent) -> Result<()> {
        self.events.begin_change(short);
        Ok(EVENTS.put(batch, &short, event)?)
    }

    /// Ends a change staged with [`Timeline::insert`] or [`Timeline::replace`].
    pub fn committed(&self, short: u64) {
        self.events.end_change(&short);
    }

    /// Every stored event (outliers too) in short ID order, from `from` on: for building an
    /// index over what was stored before the index existed.
    pub fn all_from(&self, from: u64) -> Result<impl Iterator<Item = Result<(u64, StoredEvent)>> + '_> {
        Ok(EVENTS.iter_from(&self.db, &from, Direction::Forward)?.map(|entry| entry.map_err(Error::from)))
    }

    /// Events of one room with stream position in (after, up_to], newest first, at most `limit`.
    pub fn room_events_desc(&self, room_short: u64, after: u64, up_to: u64, limit: usize) -> Result<Vec<(u64, u64)>> {
        let mut out = Vec::new();
        for entry in ROOM_STREAM.iter_from(&self.db, &(room_short, up_to), Direction::Reverse)? {
            let ((room, stream), short) = entry?;
            if room != room_short || stream <= after || out.len() >= limit {
                break;
            }
            out.push((stream, short));
        }
        Ok(out)
    }

    /// Every event in the stream after `after` up to `up_to` (all rooms), oldest first.
    pub fn stream_since(&self, after: u64, up_to: u64) -> Result<Vec<(u64, u64, u64)>> {
        let mut out = Vec::new();
        for entry in STREAM.iter_from(&self.db, &(after + 1), Direction::Forward)? {
            let (stream, (room, short)) = entry?;
            if stream > up_to {
                break;
            }
            out.push((stream, room, short));
        }
        Ok(out)
    }

    /// A page of a room in topological order from the gap `from`. Positions are
    /// (depth, stream); a *gap* `g` lies just before position `g`, so forwards yields positions
    /// `>= g` and backwards positions `< g`. Pagination tokens are gaps, so pages neither
    /// overlap nor skip an event whichever direction the next page goes.
    pub fn room_topological(
        &self,
        room_short: u64,
        from: (u64, u64),
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<((u64, u64), u64)>> {
        let mut out = Vec::new();
        for entry in ROOM_TOPO.iter_from(&self.db, &(room_short, from.0, from.1), direction)? {
            let ((room, depth, stream), short) = entry?;
            if room != room_short {
                break;
            }
            if direction == Direction::Reverse && (depth, stream) == from {
                continue;
            }
            if out.len() >= limit {
                break;
            }
            out.push(((depth, stream), short));
        }
        Ok(out)
    }
}
