//! The search index over room events: an inverted index in RocksDB, ranked with BM25.
//!
//! Its rows are staged in the batch that stores the event (local, remote and backfilled
//! alike), so an event is searchable exactly when it is stored: a crash can never leave a
//! stored event out of the index, and there is no second store to keep in step (see
//! ARCHITECTURE.md for why this is not tantivy).
//!
//! - `(room, word, event) → Posting`: the postings, grouped by room so that a search reads
//!   only the rooms its user may search, and ordered by word so that one range scan per room
//!   also finds the words a query word begins ("meet" finds "meeting"). Each carries, in 42
//!   bytes, what ranking, ordering, the filter's type and URL conditions and history
//!   visibility need of its event (key, length, timestamp, position, the state before it), so
//!   a common word's thousands of candidates are judged without a second read each;
//! - `event → SearchDoc`: the sender (read only when a filter or grouping asks for it) and
//!   what redaction needs to find the rows again;
//! - `room → RoomStats`: documents and words per room, BM25's collection statistics, summed
//!   over exactly the rooms searched. Appends to a room hold its lock, so the read-modify-write
//!   of its row never races.
//!
//! Only `content.body` of `m.room.message`, `content.name` of `m.room.name` and
//! `content.topic` of `m.room.topic` are indexed, as the spec's search keys name them.
//! Redaction deletes an event's rows; should a posting outlive its event's redaction (say, a
//! tokenizer that changed between versions finds other words to delete), the page leaves the
//! redacted event out.

use std::collections::{BTreeMap, HashMap, hash_map::Entry};

use myelin_storage::{Batch, Direction, Table, ValueCodec, prefix_of};
use ruma::api::client::filter::RoomEventFilter;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Rooms, StoredEvent, Viewer, filter::fields_match, visibility::allowed};
use crate::{error::Result, util::words::words};

/// (room, word, event) → the word's frequency in the event, and what a search needs of it.
const POSTINGS: Table<(u64, String, u64), Posting, PostingCodec> = Table::new("roomwordevent_posting");
/// event → what a search needs to know of an indexed event.
const DOCS: Table<u64, SearchDoc> = Table::new("shorteventid_searchdoc");
/// room → BM25 collection statistics of the room.
const STATS: Table<u64, RoomStats> = Table::new("roomshort_searchstats");

/// `BUILT` → the index version the events stored before it were indexed with.
const META: Table<String, u64> = Table::new("searchindex_meta");
const BUILT: &str = "built";
/// Bumped when what the index holds changes, so that start-up indexes stored events again.
const INDEX_VERSION: u64 = 1;
/// Operations per write while indexing stored events at start-up.
const BUILD_BATCH_OPS: usize = 20_000;

pub const TABLES: &[&str] = &["roomwordevent_posting", "shorteventid_searchdoc", "roomshort_searchstats", "searchindex_meta"];

/// BM25's term-frequency saturation and length normalisation, the usual values.
const K1: f64 = 1.2;
const B: f64 = 0.75;
/// A word found only as the beginning of a longer word counts for this much of an exact
/// occurrence, so "cat" ranks a message about a cat above one about a category.
const PREFIX_WEIGHT: f64 = 0.5;

/// Which text of an event a search looks in: the spec's `keys`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SearchKey {
    /// `content.body` of `m.room.message`.
    Body = 0,
    /// `content.name` of `m.room.name`.
    Name = 1,
    /// `content.topic` of `m.room.topic`.
    Topic = 2,
}

impl SearchKey {
    pub const ALL: [SearchKey; 3] = [SearchKey::Body, SearchKey::Name, SearchKey::Topic];

    /// The key as the spec names it (`content.body`), if it is one we index.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "content.body" => Some(SearchKey::Body),
            "content.name" => Some(SearchKey::Name),
            "content.topic" => Some(SearchKey::Topic),
            _ => None,
        }
    }

    /// The one event type whose text this key indexes.
    pub fn event_type(self) -> &'static str {
        match self {
            SearchKey::Body => "m.room.message",
            SearchKey::Name => "m.room.name",
            SearchKey::Topic => "m.room.topic",
        }
    }

    fn field(self) -> &'static str {
        match self {
            SearchKey::Body => "body",
            SearchKey::Name => "name",
            SearchKey::Topic => "topic",
        }
    }

    /// The key and text an event is indexed under, if any.
    pub fn of(event: &StoredEvent) -> Option<(SearchKey, &str)> {
        let key = SearchKey::ALL.into_iter().find(|key| key.event_type() == event.event_type())?;
        // A state event's text is indexed whatever its state key; clients only send "".
        Some((key, event.content().get(key.field())?.as_str()?))
    }
}

/// What redaction and sender filters need of an indexed event.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchDoc {
    pub room: u64,
    pub sender: String,
    /// How many words the text has (BM25's document length).
    pub words: u64,
}

/// One word of one event: its frequency there, and what a search needs of the event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Posting {
    /// How often the word occurs in the event's text.
    pub count: u32,
    /// How many words the text has (BM25's document length).
    pub words: u32,
    pub key: SearchKey,
    /// Whether the content has a `url` (the filter's `contains_url`).
    pub url: bool,
    pub origin_server_ts: u64,
    pub depth: u64,
    pub stream: u64,
    pub state_before: u64,
}

/// Postings in a fixed binary layout: a common word has one per event, and decoding JSON for
/// each would cost more than reading it.
struct PostingCodec;

const POSTING_BYTES: usize = 4 + 4 + 1 + 1 + 8 * 4;

impl ValueCodec<Posting> for PostingCodec {
    fn encode_value(posting: &Posting) -> myelin_storage::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(POSTING_BYTES);
        out.extend_from_slice(&posting.count.to_be_bytes());
        out.extend_from_slice(&posting.words.to_be_bytes());
        out.push(posting.key as u8);
        out.push(u8::from(posting.url));
        for field in [posting.origin_server_ts, posting.depth, posting.stream, posting.state_before] {
            out.extend_from_slice(&field.to_be_bytes());
        }
        Ok(out)
    }

    fn decode_value(bytes: &[u8]) -> myelin_storage::Result<Posting> {
        let corrupt = || myelin_storage::Error::Corrupt(format!("posting of {} bytes", bytes.len()));
        let (head, tail) = bytes.split_at_checked(10).ok_or_else(corrupt)?;
        let u32_at = |at: usize| head[at..at + 4].try_into().map(u32::from_be_bytes).map_err(|_| corrupt());
        let u64_at = |at: usize| tail.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).ok_or_else(corrupt);
        let key = match head[8] {
            0 => SearchKey::Body,
            1 => SearchKey::Name,
            2 => SearchKey::Topic,
            _ => return Err(corrupt()),
        };
        Ok(Posting {
            count: u32_at(0)?,
            words: u32_at(4)?,
            key,
            url: head[9] != 0,
            origin_server_ts: u64_at(0)?,
            depth: u64_at(8)?,
            stream: u64_at(16)?,
            state_before: u64_at(24)?,
        })
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct RoomStats {
    docs: u64,
    words: u64,
}

/// One room to search, as its searcher sees it.
pub struct SearchRoom<'a> {
    pub short: u64,
    pub viewer: Viewer<'a>,
}

/// An event that matches every query word, passes the filter and is visible to the searcher.
#[derive(Clone, Debug)]
pub struct Hit {
    pub short: u64,
    pub room: u64,
    /// What the index knows of the event (the first query word's posting).
    pub posting: Posting,
    /// Read only when the search needs senders (a sender filter or grouping).
    pub sender: Option<String>,
    /// BM25 relevance.
    pub score: f64,
}

/// The postings of one query word in one room, by event: (event, weighted frequency,
/// posting), sorted by event and one per event.
type Postings = Vec<(u64, f64, Posting)>;

/// Hashes a `u64` key as itself: state group IDs are already well spread, and SipHash on
/// every candidate of a common word showed in profiles.
#[derive(Default)]
struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type U64Map<V> = HashMap<u64, V, std::hash::BuildHasherDefault<IdentityHasher>>;

impl Rooms {
    /// Stages the index rows of a newly stored event whose text is searchable.
    pub(super) fn stage_search(&self, batch: &mut Batch, short: u64, event: &StoredEvent) -> Result<()> {
        let Some(total) = self.stage_search_rows(batch, short, event)? else { return Ok(()) };
        self.change_stats(batch, event.room_short, |stats| {
            stats.docs += 1;
            stats.words += total;
        })
    }

    /// Stages an event's postings and document row, and returns its number of words; `None`
    /// when it has no searchable text or is indexed already.
    fn stage_search_rows(&self, batch: &mut Batch, short: u64, event: &StoredEvent) -> Result<Option<u64>> {
        let Some((key, text)) = SearchKey::of(event) else { return Ok(None) };
        // An event is stored once, but be safe against counting it twice in the statistics.
        if DOCS.contains(&self.db, &short)? {
            return Ok(None);
        }
        let counts = word_counts(text);
        if counts.is_empty() {
            return Ok(None);
        }
        let total: u64 = counts.values().sum();
        let mut posting = Posting {
            count: 0,
            words: u32::try_from(total).unwrap_or(u32::MAX),
            key,
            url: event.content().get("url").is_some_and(Value::is_string),
            origin_server_ts: event.origin_server_ts(),
            depth: event.depth,
            stream: event.stream,
            state_before: event.state_before,
        };
        for (word, count) in counts {
            posting.count = u32::try_from(count).unwrap_or(u32::MAX);
            POSTINGS.put(batch, &(event.room_short, word, short), &posting)?;
        }
        DOCS.put(batch, &short, &SearchDoc { room: event.room_short, sender: event.sender().to_owned(), words: total })?;
        Ok(Some(total))
    }

    /// Indexes what a database from before the text indexes holds: every timeline event's
    /// text, and the remote members the user directory should know. Runs once, at start-up
    /// before any request (so no append races it), and is marked done; if interrupted it
    /// resumes, skipping the events already indexed.
    pub fn build_text_indexes(&self) -> Result<()> {
        if META.get(&self.db, &BUILT.to_owned())?.is_some_and(|version| version >= INDEX_VERSION) {
            return Ok(());
        }
        let mut stats: HashMap<u64, RoomStats> = HashMap::new();
        let mut batch = Batch::new();
        let mut indexed = 0u64;
        for entry in self.timeline.all_from(0)? {
            let (short, event) = entry?;
            if event.outlier || event.redacted_because.is_some() {
                continue;
            }
            crate::service::user_directory::stage_member_event(&self.db, &mut batch, &self.server_name, &event)?;
            if let Some(total) = self.stage_search_rows(&mut batch, short, &event)? {
                let room = match stats.entry(event.room_short) {
                    Entry::Occupied(entry) => entry.into_mut(),
                    Entry::Vacant(entry) => entry.insert(STATS.get(&self.db, &event.room_short)?.unwrap_or_default()),
                };
                room.docs += 1;
                room.words += total;
                indexed += 1;
            }
            if batch.len() >= BUILD_BATCH_OPS {
                for (room, room_stats) in &stats {
                    STATS.put(&mut batch, room, room_stats)?;
                }
                self.db.write(std::mem::take(&mut batch))?;
            }
        }
        for (room, room_stats) in &stats {
            STATS.put(&mut batch, room, room_stats)?;
        }
        META.put(&mut batch, &BUILT.to_owned(), &INDEX_VERSION)?;
        self.db.write(batch)?;
        if indexed > 0 {
            tracing::info!(indexed, "indexed the text of events stored before the search index existed");
        }
        Ok(())
    }

    /// Drops the index rows of an event about to be redacted (`event` as it was before).
    pub(super) fn unstage_search(&self, batch: &mut Batch, short: u64, event: &StoredEvent) -> Result<()> {
        let Some(doc) = DOCS.get(&self.db, &short)? else { return Ok(()) };
        if let Some((_, text)) = SearchKey::of(event) {
            for word in word_counts(text).into_keys() {
                POSTINGS.delete(batch, &(doc.room, word, short));
            }
        }
        DOCS.delete(batch, &short);
        self.change_stats(batch, doc.room, |stats| {
            stats.docs = stats.docs.saturating_sub(1);
            stats.words = stats.words.saturating_sub(doc.words);
        })
    }

    fn change_stats(&self, batch: &mut Batch, room: u64, change: impl FnOnce(&mut RoomStats)) -> Result<()> {
        let mut stats = STATS.get(&self.db, &room)?.unwrap_or_default();
        change(&mut stats);
        Ok(STATS.put(batch, &room, &stats)?)
    }

    /// The events of `rooms` whose text (under one of `keys`) has every query word, as a word
    /// or the beginning of one, that pass `filter` and that the searcher may see, scored with
    /// BM25 over the rooms searched. With `senders`, each hit carries its sender.
    pub fn search_matches(
        &self,
        rooms: &[SearchRoom<'_>],
        terms: &[String],
        keys: &[SearchKey],
        filter: &RoomEventFilter,
        senders: bool,
    ) -> Result<Vec<Hit>> {
        if terms.is_empty() || rooms.is_empty() {
            return Ok(Vec::new());
        }
        let shorts: Vec<u64> = rooms.iter().map(|room| room.short).collect();
        let (docs, total_words) = STATS
            .multi_get(&self.db, &shorts)?
            .into_iter()
            .flatten()
            .fold((0, 0), |(docs, words), stats| (docs + stats.docs, words + stats.words));
        let average_length = if docs == 0 { 1.0 } else { total_words as f64 / docs as f64 };
        let needs_sender = senders || filter.senders.is_some() || !filter.not_senders.is_empty();
        let mut document_frequency = vec![0u64; terms.len()];
        // Hits, and the weighted frequency of each term in each (`terms.len()` per hit), kept
        // apart until scoring, which needs every room's document frequencies.
        let mut hits: Vec<Hit> = Vec::new();
        let mut frequencies: Vec<f64> = Vec::new();
        for room in rooms {
            let mut per_term: Vec<Postings> = Vec::with_capacity(terms.len());
            for (term_index, term) in terms.iter().enumerate() {
                let postings = self.postings(room.short, term)?;
                document_frequency[term_index] += postings.len() as u64;
                per_term.push(postings);
            }
            // Every term must match: walk the rarest term's events and look the others up.
            let Some(rarest) = (0..per_term.len()).min_by_key(|i| per_term[*i].len()) else { continue };
            // Per state group: visible if the user joined later, and visible otherwise.
            let mut visibility: U64Map<(bool, bool)> = U64Map::default();
            let first_new = hits.len();
            'candidates: for (short, _, posting) in &per_term[rarest] {
                if !keys.contains(&posting.key) {
                    continue;
                }
                let at = frequencies.len();
                for postings in &per_term {
                    match postings.binary_search_by_key(short, |(event, _, _)| *event) {
                        Ok(found) => frequencies.push(postings[found].1),
                        Err(_) => {
                            frequencies.truncate(at);
                            continue 'candidates;
                        }
                    }
                }
                let visible = match visibility.get(&posting.state_before) {
                    Some(visible) => *visible,
                    None => {
                        let (history, membership) = self.visibility_inputs(posting.state_before, room.viewer.user)?;
                        let visible = (allowed(&history, membership.as_deref(), true), allowed(&history, membership.as_deref(), false));
                        visibility.insert(posting.state_before, visible);
                        visible
                    }
                };
                let visible = if room.viewer.joined_after((posting.depth, posting.stream)) { visible.0 } else { visible.1 };
                if !visible {
                    frequencies.truncate(at);
                    continue;
                }
                hits.push(Hit { short: *short, room: room.short, posting: *posting, sender: None, score: 0.0 });
            }
            if needs_sender {
                let shorts: Vec<u64> = hits[first_new..].iter().map(|hit| hit.short).collect();
                for (hit, doc) in hits[first_new..].iter_mut().zip(DOCS.multi_get(&self.db, &shorts)?) {
                    hit.sender = doc.map(|doc| doc.sender);
                }
            }
        }
        let idf: Vec<f64> = document_frequency
            .iter()
            .map(|df| {
                let df = *df as f64;
                // Never below zero, should the statistics ever lag the postings.
                (1.0 + ((docs as f64 - df + 0.5) / (df + 0.5)).max(0.0)).ln()
            })
            .collect();
        // Score, then drop what the filter's type, URL and sender conditions refuse.
        let mut kept = 0;
        for index in 0..hits.len() {
            let hit = &hits[index];
            let sender = hit.sender.as_deref();
            if (needs_sender && sender.is_none()) || !fields_match(filter, hit.posting.key.event_type(), sender.unwrap_or_default(), hit.posting.url) {
                continue;
            }
            let length = f64::from(hit.posting.words) / average_length;
            let score = frequencies[index * terms.len()..(index + 1) * terms.len()]
                .iter()
                .zip(&idf)
                .map(|(tf, idf)| idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * length)))
                .sum();
            hits.swap(kept, index);
            hits[kept].score = score;
            kept += 1;
        }
        hits.truncate(kept);
        Ok(hits)
    }

    /// The events of one room with a word that is, or begins with, `term`.
    fn postings(&self, room: u64, term: &str) -> Result<Postings> {
        // `prefix_of` ends the word with its terminator; without it the scan also covers
        // every longer word that begins with the term.
        let mut prefix = prefix_of(&(room, term.to_owned()));
        prefix.pop();
        let mut postings = Postings::new();
        let mut in_order = true;
        for entry in POSTINGS.iter_prefix_bytes(&self.db, &prefix, Direction::Forward)? {
            let ((_, word, short), posting) = entry?;
            let weight = if word == term { 1.0 } else { PREFIX_WEIGHT };
            in_order &= postings.last().is_none_or(|(last, _, _)| *last < short);
            postings.push((short, weight * f64::from(posting.count), posting));
        }
        // One word's postings come in event order; several words (a prefix) interleave, and
        // an event with two of them counts once, with both frequencies.
        if !in_order {
            postings.sort_unstable_by_key(|(short, _, _)| *short);
            postings.dedup_by(|later, earlier| {
                let same = later.0 == earlier.0;
                if same {
                    earlier.1 += later.1;
                }
                same
            });
        }
        Ok(postings)
    }
}

/// The words of `text` that a query's words match (are, or begin with): what to highlight.
pub fn matched_words<'a>(text: &str, terms: &'a [String]) -> impl Iterator<Item = String> + use<'a> {
    words(text).into_iter().filter(move |word| terms.iter().any(|term| word.starts_with(term.as_str())))
}

/// Each distinct word of the text with how often it occurs.
fn word_counts(text: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for word in words(text) {
        *counts.entry(word).or_default() += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use myelin_federation::ServerSigningKey;
    use myelin_storage::{Batch, Database, ValueCodec};
    use ruma::{RoomVersionId, UserId, api::client::filter::RoomEventFilter};
    use serde_json::json;

    use super::{DOCS, META, POSTINGS, POSTING_BYTES, Posting, PostingCodec, STATS, SearchKey, SearchRoom};
    use crate::service::{
        notifier::Notifier,
        rooms::{EventDraft, Preset, RoomSpec, Rooms, StreamPositions},
    };

    /// A database whose events were stored before the index existed gets them indexed once
    /// at start-up, with the same statistics as indexing them as they came.
    #[tokio::test]
    async fn the_start_up_build_indexes_events_stored_before_the_index() {
        let db = Database::in_memory(&crate::service::catalog()).expect("database");
        let key = Arc::new(ServerSigningKey::generate().expect("key"));
        let server = ruma::OwnedServerName::try_from("test.local").expect("server name");
        let rooms = Rooms::new(db.clone(), server, key, StreamPositions::new(db.clone()).expect("stream"), Notifier::default());
        let alice = UserId::parse("@alice:test.local").expect("user");
        let spec = RoomSpec {
            version: RoomVersionId::V11,
            preset: Preset::PrivateChat,
            creation_content: serde_json::Map::new(),
            power_level_override: None,
            initial_state: Vec::new(),
            name: Some("Orchard".to_owned()),
            topic: None,
            invite: Vec::new(),
            is_direct: false,
            canonical_alias: None,
            creator_profile: (None, None),
        };
        let room_id = rooms.create_from_spec(&alice, spec).await.expect("room");
        for body in ["quince jam", "quince tart", "plum"] {
            rooms.append(&room_id, &alice, EventDraft::message("m.room.message", json!({"msgtype": "m.text", "body": body})), None).await.expect("send");
        }
        let record = rooms.room(&room_id).expect("record");
        let search = |term: &str| {
            let room = SearchRoom { short: record.short, viewer: rooms.viewer(&room_id, &alice).expect("viewer") };
            rooms.search_matches(&[room], &[term.to_owned()], &SearchKey::ALL, &RoomEventFilter::default(), false).expect("search").len()
        };
        assert_eq!((search("quince"), search("orchard")), (2, 1));
        let stats = STATS.get(&db, &record.short).expect("stats");

        // Forget the index, as a database from before it would be.
        let mut batch = Batch::new();
        for entry in POSTINGS.iter_all(&db).expect("postings") {
            POSTINGS.delete(&mut batch, &entry.expect("posting").0);
        }
        for entry in DOCS.iter_all(&db).expect("docs") {
            DOCS.delete(&mut batch, &entry.expect("doc").0);
        }
        STATS.delete(&mut batch, &record.short);
        META.delete(&mut batch, &super::BUILT.to_owned());
        db.write(batch).expect("write");
        assert_eq!(search("quince"), 0);

        rooms.build_text_indexes().expect("build");
        assert_eq!((search("quince"), search("orchard"), search("plum")), (2, 1, 1));
        let rebuilt = STATS.get(&db, &record.short).expect("stats");
        assert_eq!(rebuilt.map(|s| (s.docs, s.words)), stats.map(|s| (s.docs, s.words)));
        // Built once: a second start finds the mark and does nothing.
        rooms.build_text_indexes().expect("build again");
        assert_eq!(STATS.get(&db, &record.short).expect("stats").map(|s| s.docs), rebuilt.map(|s| s.docs));
    }

    #[test]
    fn postings_round_trip_in_their_binary_layout() {
        let posting = Posting {
            count: 3,
            words: 12,
            key: SearchKey::Topic,
            url: true,
            origin_server_ts: 1_700_000_000_000,
            depth: 42,
            stream: u64::MAX,
            state_before: 7,
        };
        let bytes = PostingCodec::encode_value(&posting).expect("encodes");
        assert_eq!(bytes.len(), POSTING_BYTES);
        assert_eq!(PostingCodec::decode_value(&bytes).expect("decodes"), posting);
        assert!(PostingCodec::decode_value(&bytes[..POSTING_BYTES - 1]).is_err());
        let mut bad_key = bytes.clone();
        bad_key[8] = 9;
        assert!(PostingCodec::decode_value(&bad_key).is_err());
    }
}
