//! `POST /search` over room events: which rooms a user searches, ordering, pagination,
//! groups and the context around each result. The index itself is `search_index.rs`.
//!
//! A search gathers every hit of its query (the index answers with all of them, scored), so
//! `count` is exact and pages never overlap: a `next_batch` token names the sort key of the
//! last result handed out, and the next page starts below it. A group's `next_batch` does
//! the same within one room or sender.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use base64::Engine as _;
use myelin_storage::Direction;
use ruma::{RoomId, UserId, api::client::filter::RoomEventFilter};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    Rooms, StoredEvent,
    filter::event_matches,
    search_index::{Hit, SearchKey, SearchRoom, matched_words},
    timeline::gap_after,
    tokens::Token,
};
use crate::{
    error::{Error, Result},
    util::words::words,
};

/// How results are ordered (`order_by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchOrder {
    /// By relevance (BM25), the spec's default.
    Rank,
    /// Newest first, by `origin_server_ts`: the one order that means the same across rooms.
    Recent,
}

/// What results can be grouped by (`groupings.group_by[].key`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    RoomId,
    Sender,
}

impl GroupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::RoomId => "room_id",
            GroupBy::Sender => "sender",
        }
    }
}

/// One `room_events` search.
pub struct SearchRequest<'a> {
    pub user: &'a UserId,
    pub term: &'a str,
    pub keys: &'a [SearchKey],
    pub filter: &'a RoomEventFilter,
    pub order: SearchOrder,
    pub limit: usize,
    pub next_batch: Option<&'a str>,
    pub groupings: &'a [GroupBy],
}

/// One result: the event, its room and its relevance.
pub struct SearchResult {
    pub rank: f64,
    pub room_id: String,
    pub event: StoredEvent,
}

/// One group of a page: the results of one room or sender.
pub struct SearchGroup {
    pub key: String,
    pub event_ids: Vec<String>,
    /// Higher comes first: groups whose best result ranks higher order higher.
    pub order: u64,
    /// Continues this group alone, if it has more results.
    pub next_batch: Option<String>,
}

/// One page of results.
pub struct SearchPage {
    /// How many results the whole search has (within the group a group token names).
    pub count: usize,
    pub results: Vec<SearchResult>,
    pub next_batch: Option<String>,
    /// The indexed words the page's results matched, for clients to highlight.
    pub highlights: Vec<String>,
    pub groups: BTreeMap<GroupBy, Vec<SearchGroup>>,
}

/// The events around one result, as `event_context` asks.
pub struct SearchContext {
    pub before: Vec<StoredEvent>,
    pub after: Vec<StoredEvent>,
    /// Topological tokens: just before the oldest event shown and just after the newest.
    pub start: String,
    pub end: String,
    /// The senders' display names and avatars as of the newest event shown.
    pub profiles: BTreeMap<String, Value>,
}

/// A result's place in its order; pages continue strictly below the last one handed out.
/// The stream position is unique per event, so no two results share a key.
type SortKey = (f64, u64);
/// Hits with their sort keys.
type Ranked = Vec<(SortKey, Hit)>;

/// What a `next_batch` token carries.
#[derive(Serialize, Deserialize)]
struct Cursor {
    order: SearchOrder,
    /// The sort key with its score as bits: JSON does not promise to bring a float back
    /// exactly, and the next page must start exactly past the last result.
    #[serde(with = "sort_key_bits")]
    after: SortKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group: Option<(GroupBy, String)>,
}

impl Cursor {
    fn encode(&self) -> Result<String> {
        let json = serde_json::to_vec(self).map_err(|e| Error::internal(e.to_string()))?;
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
    }

    fn decode(token: &str) -> Result<Self> {
        let invalid = || Error::invalid_param("Invalid next_batch token");
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        serde_json::from_slice(&json).map_err(|_| invalid())
    }
}

mod sort_key_bits {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(key: &super::SortKey, serializer: S) -> Result<S::Ok, S::Error> {
        (key.0.to_bits(), key.1).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<super::SortKey, D::Error> {
        let (bits, stream) = <(u64, u64)>::deserialize(deserializer)?;
        Ok((f64::from_bits(bits), stream))
    }
}

fn sort_key(order: SearchOrder, hit: &Hit) -> SortKey {
    match order {
        SearchOrder::Rank => (hit.score, hit.posting.stream),
        // Timestamps in milliseconds are far below 2^53: exact as f64.
        SearchOrder::Recent => (hit.posting.origin_server_ts as f64, hit.posting.stream),
    }
}

fn descending(a: &SortKey, b: &SortKey) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(b.1.cmp(&a.1))
}

/// Splits `hits` into the page that follows `after` (at most `limit`, unsorted) and the hits
/// after that page (unsorted); hits up to `after` are dropped. Linear, where sorting every
/// hit of a common word would not be.
fn page_of(hits: Ranked, after: Option<SortKey>, limit: usize) -> (Ranked, Ranked) {
    let mut following: Ranked = match after {
        Some(after) => hits.into_iter().filter(|(key, _)| descending(key, &after).is_gt()).collect(),
        None => hits,
    };
    if following.len() > limit {
        following.select_nth_unstable_by(limit, |a, b| descending(&a.0, &b.0));
    }
    let rest = following.split_off(limit.min(following.len()));
    (following, rest)
}

impl Rooms {
    /// One page of a `room_events` search over the rooms `request.user` is joined to.
    pub fn search(&self, request: &SearchRequest<'_>) -> Result<SearchPage> {
        let cursor = request.next_batch.map(Cursor::decode).transpose()?;
        if let Some(cursor) = &cursor
            && cursor.order != request.order
        {
            return Err(Error::invalid_param("next_batch belongs to a search with another order_by"));
        }
        let group = cursor.as_ref().and_then(|cursor| cursor.group.clone());
        let mut room_ids: HashMap<u64, String> = HashMap::new();
        let mut rooms = Vec::new();
        for (room_id, entry) in self.membership.rooms_of(request.user.as_str())? {
            let wanted = entry.membership == "join"
                && request.filter.rooms.as_ref().is_none_or(|rooms| rooms.iter().any(|r| r.as_str() == room_id))
                && !request.filter.not_rooms.iter().any(|r| r.as_str() == room_id)
                && group.as_ref().is_none_or(|(by, key)| *by != GroupBy::RoomId || *key == room_id);
            if !wanted {
                continue;
            }
            let Ok(parsed) = RoomId::parse(&room_id) else { continue };
            let Some(record) = self.records.room(&room_id)? else { continue };
            rooms.push(SearchRoom { short: record.short, viewer: self.viewer(&parsed, request.user)? });
            room_ids.insert(record.short, room_id);
        }
        let mut terms = words(request.term);
        terms.sort();
        terms.dedup();
        let by_sender = request.groupings.contains(&GroupBy::Sender) || group.as_ref().is_some_and(|(by, _)| *by == GroupBy::Sender);
        let hits = self.search_matches(&rooms, &terms, request.keys, request.filter, by_sender)?;
        let hits: Ranked = hits
            .into_iter()
            .filter(|hit| group.as_ref().is_none_or(|(by, key)| *by != GroupBy::Sender || hit.sender.as_deref() == Some(key.as_str())))
            .map(|hit| (sort_key(request.order, &hit), hit))
            .collect();
        let count = hits.len();
        // Only the page needs sorting: everything after it is only counted and grouped.
        let (mut page, rest) = page_of(hits, cursor.as_ref().map(|cursor| cursor.after), request.limit);
        page.sort_by(|a, b| descending(&a.0, &b.0));
        let next_batch = match page.last() {
            Some((key, _)) if !rest.is_empty() => Some(Cursor { order: request.order, after: *key, group: group.clone() }.encode()?),
            _ => None,
        };
        let mut highlights = BTreeSet::new();
        let mut results = Vec::with_capacity(page.len());
        for (_, hit) in &page {
            let Some(event) = self.timeline.get(hit.short)? else { continue };
            if event.redacted_because.is_some() {
                continue;
            }
            if let Some((_, text)) = SearchKey::of(&event) {
                highlights.extend(matched_words(text, &terms));
            }
            let room_id = room_ids.get(&hit.room).cloned().unwrap_or_default();
            results.push(SearchResult { rank: hit.score, room_id, event });
        }
        let mut groups = BTreeMap::new();
        for by in request.groupings {
            groups.insert(*by, self.groups(request.order, *by, (&page, &rest), count - page.len() - rest.len(), &room_ids)?);
        }
        Ok(SearchPage { count, results, next_batch, highlights: highlights.into_iter().collect(), groups })
    }

    /// The groups of a page, each with a token for its own next page if `rest` (what follows
    /// the page) holds more of it. `skipped` hits came before the page.
    fn groups(
        &self,
        order: SearchOrder,
        by: GroupBy,
        (page, rest): (&Ranked, &Ranked),
        skipped: usize,
        room_ids: &HashMap<u64, String>,
    ) -> Result<Vec<SearchGroup>> {
        let key_of = |hit: &'_ Hit| -> String {
            match by {
                GroupBy::RoomId => room_ids.get(&hit.room).cloned().unwrap_or_default(),
                GroupBy::Sender => hit.sender.clone().unwrap_or_default(),
            }
        };
        let continuing: HashSet<String> = rest.iter().map(|(_, hit)| key_of(hit)).collect();
        let total = skipped + page.len() + rest.len();
        let mut groups: Vec<SearchGroup> = Vec::new();
        for (index, (sort_key, hit)) in page.iter().enumerate() {
            let key = key_of(hit);
            let event_id = self.short.event_id(hit.short)?;
            let more = continuing.contains(&key);
            let next_batch = || -> Result<Option<String>> {
                more.then(|| Cursor { order, after: *sort_key, group: Some((by, key.clone())) }.encode()).transpose()
            };
            match groups.iter_mut().find(|group| group.key == key) {
                Some(group) => {
                    group.event_ids.push(event_id);
                    group.next_batch = next_batch()?;
                }
                None => groups.push(SearchGroup {
                    key: key.clone(),
                    event_ids: vec![event_id],
                    order: (total - skipped - index) as u64,
                    next_batch: next_batch()?,
                }),
            }
        }
        Ok(groups)
    }

    /// Up to `before` and `after` events around a result that `user` may see and that pass
    /// the search's filter, with the senders' profiles when asked.
    pub fn search_context(
        &self,
        user: &UserId,
        result: &SearchResult,
        (before, after): (usize, usize),
        include_profile: bool,
        filter: &RoomEventFilter,
    ) -> Result<SearchContext> {
        let room_id = RoomId::parse(&result.room_id).map_err(|e| Error::internal(e.to_string()))?;
        let viewer = self.viewer(&room_id, user)?;
        let position = (result.event.depth, result.event.stream);
        let collect = |direction: Direction, wanted: usize| -> Result<(Vec<StoredEvent>, (u64, u64))> {
            let mut out = Vec::new();
            let mut cursor = gap_after(position, direction);
            if wanted == 0 {
                return Ok((out, cursor));
            }
            for (at, short) in self.timeline.room_topological(result.event.room_short, cursor, direction, wanted * 4)? {
                if out.len() >= wanted {
                    break;
                }
                cursor = gap_after(at, direction);
                if let Some(event) = self.timeline.get(short)?
                    && event_matches(filter, &event)
                    && self.can_see_event(&viewer, &event)?
                {
                    out.push(event);
                }
            }
            Ok((out, cursor))
        };
        // As `/context` does: the events before newest first, the events after oldest first.
        let (before_events, start) = collect(Direction::Reverse, before)?;
        let (after_events, end) = collect(Direction::Forward, after)?;
        let mut profiles = BTreeMap::new();
        if include_profile {
            let newest = after_events.last().unwrap_or(&result.event);
            let senders: BTreeSet<&str> =
                before_events.iter().chain(&after_events).chain(std::iter::once(&result.event)).map(StoredEvent::sender).collect();
            for sender in senders {
                let Some(member) = self.state_event_shared(newest.state_after, "m.room.member", sender)? else { continue };
                let profile: Map<String, Value> = ["displayname", "avatar_url"]
                    .into_iter()
                    .filter_map(|field| member.content().get(field).filter(|v| v.is_string()).map(|v| (field.to_owned(), v.clone())))
                    .collect();
                profiles.insert(sender.to_owned(), Value::Object(profile));
            }
        }
        Ok(SearchContext {
            before: before_events,
            after: after_events,
            start: Token::Topological { depth: start.0, stream: start.1 }.to_string(),
            end: Token::Topological { depth: end.0, stream: end.1 }.to_string(),
            profiles,
        })
    }
}
