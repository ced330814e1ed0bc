//! Filling in a room's history from other servers when a client pages past what we hold.

use std::collections::{HashMap, HashSet};

use myelin_federation::pdu::Pdu;
use myelin_storage::Direction;
use ruma::{OwnedEventId, RoomId, UInt, api::federation::backfill::get_backfill};

use super::{Federation, canonical_object};
use crate::{
    error::Result,
    service::rooms::{Received, StateBefore},
};

/// How many of a room's oldest events are examined for parents we lack.
const OLDEST_EVENTS_EXAMINED: usize = 20;

impl Federation {
    /// Asks the other servers in the room for up to `limit` events before the oldest ones we
    /// hold and stores them as history. Returns how many were stored; 0 when the room's start
    /// is reached or nobody answers.
    pub async fn backfill(&self, room_id: &RoomId, limit: usize) -> Result<usize> {
        let record = self.rooms.room(room_id)?;
        let version = self.rooms.room_version(&record)?;
        // The oldest events whose parents we lack are where our history ends ("backward
        // extremities"); each parent inherits its child's state as an approximation, which is
        // what visibility checks on old history need.
        let oldest = self.rooms.timeline.room_topological(record.short, (0, 0), Direction::Forward, OLDEST_EVENTS_EXAMINED)?;
        let mut frontier: Vec<OwnedEventId> = Vec::new();
        let mut state_of_child: HashMap<OwnedEventId, u64> = HashMap::new();
        for (_, short) in oldest {
            let Some(event) = self.rooms.timeline.get_shared(short)? else { continue };
            let Some(pdu) = self.rooms.pdu(&ruma::EventId::parse(&event.event_id).map_err(|e| crate::error::Error::internal(e.to_string()))?) else { continue };
            let mut lacks_parent = false;
            for prev in pdu.prev_event_ids() {
                if !self.rooms.has_event(prev.as_str())? {
                    lacks_parent = true;
                    state_of_child.entry(prev.clone()).or_insert(event.state_before);
                }
            }
            if lacks_parent {
                frontier.push(pdu.event_id().to_owned());
            }
        }
        if frontier.is_empty() {
            return Ok(0);
        }
        // The answer includes the events we start from, which we hold already.
        let limit = UInt::try_from((limit + frontier.len()).clamp(10, 100) as u64).unwrap_or_default();
        for server in self.rooms.joined_servers(room_id)?.into_iter().filter(|s| *s != self.server_name) {
            let request = get_backfill::v1::Request::new(room_id.to_owned(), frontier.clone(), limit);
            let answer = match self.client.send(&server, request).await {
                Ok(answer) => answer,
                Err(error) => {
                    tracing::info!(%server, %room_id, %error, "backfill failed");
                    continue;
                }
            };
            let jsons = answer.pdus.iter().filter_map(|raw| canonical_object(raw).ok()).collect();
            let mut events: Vec<Pdu> = self.verify_events(&version, jsons).await.into_iter().filter_map(Result::ok).collect();
            // Newest first, so each event's child (whose state it borrows) is stored before it.
            events.sort_by_key(|pdu| std::cmp::Reverse(pdu.depth()));
            let mut stored = 0;
            let mut seen = HashSet::new();
            for pdu in events {
                if !belongs_to(&pdu, room_id) || !seen.insert(pdu.event_id().to_owned()) || self.rooms.has_event(pdu.event_id().as_str())? {
                    continue;
                }
                let Some(group) = state_of_child.get(pdu.event_id()).copied() else { continue };
                if let Err(error) = self.fetch_auth_events(&server, room_id, &version, &pdu).await {
                    tracing::info!(event_id = %pdu.event_id(), %error, "cannot fetch a backfilled event's auth events");
                    continue;
                }
                let event_id = pdu.event_id().to_owned();
                let parents = pdu.prev_event_ids().to_vec();
                match self.rooms.accept_remote(room_id, pdu, StateBefore::Group(group), true).await {
                    Ok(Received::Accepted(_)) => {
                        stored += 1;
                        let state_before = self.rooms.event_shared(event_id.as_str())?.map_or(group, |(_, e)| e.state_before);
                        for parent in parents {
                            state_of_child.entry(parent).or_insert(state_before);
                        }
                    }
                    Ok(_) => {}
                    Err(error) => tracing::info!(%event_id, %error, "refused a backfilled event"),
                }
            }
            if stored > 0 {
                tracing::info!(%room_id, %server, stored, "backfilled history");
                return Ok(stored);
            }
        }
        Ok(0)
    }
}

/// Whether the event is of this room: by its `room_id`, or, for the create event of a v12
/// room (which has none), by the room ID derived from its event ID.
pub(super) fn belongs_to(pdu: &Pdu, room_id: &RoomId) -> bool {
    match pdu.room_id() {
        Some(id) => id == room_id,
        None => myelin_federation::pdu::room_id_from_create_event_id(pdu.event_id()).is_ok_and(|derived| derived == room_id),
    }
}
