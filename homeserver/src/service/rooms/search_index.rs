//! The search index over room events: an inverted index in RocksDB, ranked with BM25.
//!
//! Its rows are staged in the batch that stores the event (local, remote and backfilled
//! alike), so an event is searchable exactly when it is stored: a crash can never leave a
//! stored event out of the index, and there is no second store to keep in step (see
//! ARCHITECTURE.md for why this is not tantivy).
//!
//! - `(room, word, event) → term frequency`: the postings, grouped by room so that a search
//!   reads only the rooms its user may search, and ordered by word so that one range scan per
//!   room also finds the words a query word begins ("meet" finds "meeting");
//! - `event → SearchDoc`: what filtering, ranking and visibility need (key, sender, length,
//!   timestamp, position, the state before it), so candidates are judged without loading
//!   their events;
//! - `room → RoomStats`: documents and words per room, BM25's collection statistics, summed
//!   over exactly the rooms searched. Appends to a room hold its lock, so the read-modify-write
//!   of its row never races.
//!
//! Only `content.body` of `m.room.message`, `content.name` of `m.room.name` and
//! `content.topic` of `m.room.topic` are indexed, as the spec's search keys name them.
//! Redaction deletes an event's rows. A posting whose document row is gone is ignored, so a
//! posting left behind (say, by a tokenizer that changed between versions) never surfaces an
//! event.

use std::collections::{BTreeMap, HashMap, hash_map::Entry};

use myelin_storage::{Batch, Direction, Raw, Table, prefix_of};
use ruma::api::client::filter::RoomEventFilter;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Rooms, StoredEvent, Viewer, filter::fields_match, visibility::allowed};
use crate::{error::Result, util::words::words};

/// (room, word, event) → how often the word occurs in the event's text.
const POSTINGS: Table<(u64, String, u64), u64, Raw> = Table::new("roomwordevent_termfreq");
/// event → what a search needs to know of an indexed event.
const DOCS: Table<u64, SearchDoc> = Table::new("shorteventid_searchdoc");
/// room → BM25 collection statistics of the room.
const STATS: Table<u64, RoomStats> = Table::new("roomshort_searchstats");

pub const TABLES: &[&str] = &["roomwordevent_termfreq", "shorteventid_searchdoc", "roomshort_searchstats"];

/// BM25's term-frequency saturation and length normalisation, the usual values.
const K1: f64 = 1.2;
const B: f64 = 0.75;
/// A word found only as the beginning of a longer word counts for this much of an exact
/// occurrence, so "cat" ranks a message about a cat above one about a category.
const PREFIX_WEIGHT: f64 = 0.5;

/// Which text of an event a search looks in: the spec's `keys`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchKey {
    /// `content.body` of `m.room.message`.
    Body,
    /// `content.name` of `m.room.name`.
    Name,
    /// `content.topic` of `m.room.topic`.
    Topic,
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
    fn of(event: &StoredEvent) -> Option<(SearchKey, &str)> {
        let key = SearchKey::ALL.into_iter().find(|key| key.event_type() == event.event_type())?;
        // A state event's text is indexed whatever its state key; clients only send "".
        Some((key, event.content().get(key.field())?.as_str()?))
    }
}

/// What a search knows of an indexed event without loading it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SearchDoc {
    pub key: SearchKey,
    pub room: u64,
    pub sender: String,
    /// How many words the text has (BM25's document length).
    pub words: u64,
    pub origin_server_ts: u64,
    pub depth: u64,
    pub stream: u64,
    pub state_before: u64,
    /// Whether the content has a `url` (for the filter's `contains_url`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub url: bool,
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
    pub doc: SearchDoc,
    /// BM25 relevance.
    pub score: f64,
    /// Indexes into [`Matches::words`] of the words this event matched.
    pub matched: Vec<usize>,
}

/// Every hit of a query, unordered, and the indexed words the query matched.
#[derive(Debug, Default)]
pub struct Matches {
    pub hits: Vec<Hit>,
    pub words: Vec<String>,
}

/// The postings of one query word in one room: event → (weighted frequency, matched words).
type Postings = HashMap<u64, (f64, Vec<usize>)>;

impl Rooms {
    /// Stages the index rows of a newly stored event whose text is searchable.
    pub(super) fn stage_search(&self, batch: &mut Batch, short: u64, event: &StoredEvent) -> Result<()> {
        let Some((key, text)) = SearchKey::of(event) else { return Ok(()) };
        // An event is stored once, but be safe against counting it twice in the statistics.
        if DOCS.contains(&self.db, &short)? {
            return Ok(());
        }
        let counts = word_counts(text);
        if counts.is_empty() {
            return Ok(());
        }
        let total: u64 = counts.values().sum();
        for (word, count) in counts {
            POSTINGS.put(batch, &(event.room_short, word, short), &count)?;
        }
        let doc = SearchDoc {
            key,
            room: event.room_short,
            sender: event.sender().to_owned(),
            words: total,
            origin_server_ts: event.origin_server_ts(),
            depth: event.depth,
            stream: event.stream,
            state_before: event.state_before,
            url: event.content().get("url").is_some_and(Value::is_string),
        };
        DOCS.put(batch, &short, &doc)?;
        self.change_stats(batch, event.room_short, |stats| {
            stats.docs += 1;
            stats.words += total;
        })
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
    /// BM25 over the rooms searched.
    pub fn search_matches(&self, rooms: &[SearchRoom<'_>], query: &str, keys: &[SearchKey], filter: &RoomEventFilter) -> Result<Matches> {
        let mut terms = words(query);
        terms.sort();
        terms.dedup();
        let mut matches = Matches::default();
        if terms.is_empty() || rooms.is_empty() {
            return Ok(matches);
        }
        let shorts: Vec<u64> = rooms.iter().map(|room| room.short).collect();
        let (docs, total_words) = STATS
            .multi_get(&self.db, &shorts)?
            .into_iter()
            .flatten()
            .fold((0, 0), |(docs, words), stats| (docs + stats.docs, words + stats.words));
        let average_length = if docs == 0 { 1.0 } else { total_words as f64 / docs as f64 };
        let mut word_ids: HashMap<String, usize> = HashMap::new();
        let mut document_frequency = vec![0u64; terms.len()];
        // (hit, weighted frequency of each term) before scoring, which needs every room's
        // document frequencies.
        let mut candidates: Vec<(Hit, Vec<f64>)> = Vec::new();
        for room in rooms {
            let mut per_term: Vec<Postings> = Vec::with_capacity(terms.len());
            for (term_index, term) in terms.iter().enumerate() {
                let postings = self.postings(room.short, term, &mut word_ids, &mut matches.words)?;
                document_frequency[term_index] += postings.len() as u64;
                per_term.push(postings);
            }
            // Every term must match: walk the rarest term's events and look the others up.
            let Some(rarest) = (0..per_term.len()).min_by_key(|i| per_term[*i].len()) else { continue };
            let mut in_all: Vec<u64> = per_term[rarest].keys().copied().filter(|short| per_term.iter().all(|p| p.contains_key(short))).collect();
            in_all.sort_unstable();
            let found = DOCS.multi_get(&self.db, &in_all)?;
            let mut visibility: HashMap<u64, (String, Option<String>)> = HashMap::new();
            for (short, doc) in in_all.into_iter().zip(found) {
                let Some(doc) = doc else { continue };
                if !keys.contains(&doc.key) || !fields_match(filter, doc.key.event_type(), &doc.sender, doc.url) {
                    continue;
                }
                let (history, membership) = match visibility.entry(doc.state_before) {
                    Entry::Occupied(entry) => entry.into_mut(),
                    Entry::Vacant(entry) => entry.insert(self.visibility_inputs(doc.state_before, room.viewer.user)?),
                };
                if !allowed(history, membership.as_deref(), room.viewer.joined_after((doc.depth, doc.stream))) {
                    continue;
                }
                let mut frequencies = Vec::with_capacity(terms.len());
                let mut matched = Vec::new();
                for postings in &per_term {
                    if let Some((frequency, words)) = postings.get(&short) {
                        frequencies.push(*frequency);
                        matched.extend(words.iter().copied());
                    }
                }
                matched.sort_unstable();
                matched.dedup();
                candidates.push((Hit { short, doc, score: 0.0, matched }, frequencies));
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
        matches.hits = candidates
            .into_iter()
            .map(|(mut hit, frequencies)| {
                let length = hit.doc.words as f64 / average_length;
                hit.score = frequencies
                    .iter()
                    .zip(&idf)
                    .map(|(tf, idf)| idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * length)))
                    .sum();
                hit
            })
            .collect();
        Ok(matches)
    }

    /// The events of one room with a word that is, or begins with, `term`.
    fn postings(&self, room: u64, term: &str, word_ids: &mut HashMap<String, usize>, words: &mut Vec<String>) -> Result<Postings> {
        // `prefix_of` ends the word with its terminator; without it the scan also covers
        // every longer word that begins with the term.
        let mut prefix = prefix_of(&(room, term.to_owned()));
        prefix.pop();
        let mut postings = Postings::new();
        for entry in POSTINGS.iter_prefix_bytes(&self.db, &prefix, Direction::Forward)? {
            let ((_, word, short), count) = entry?;
            let weight = if word == term { 1.0 } else { PREFIX_WEIGHT };
            let id = match word_ids.get(&word) {
                Some(id) => *id,
                None => {
                    words.push(word.clone());
                    word_ids.insert(word, words.len() - 1);
                    words.len() - 1
                }
            };
            let (frequency, matched) = postings.entry(short).or_default();
            *frequency += weight * count as f64;
            matched.push(id);
        }
        Ok(postings)
    }
}

/// Each distinct word of the text with how often it occurs.
fn word_counts(text: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for word in words(text) {
        *counts.entry(word).or_default() += 1;
    }
    counts
}
