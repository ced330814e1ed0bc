//! Events other servers push to us in transactions, and the gaps they leave in our graph.

use std::collections::{BTreeMap, HashSet};

use myelin_federation::pdu::Pdu;
use ruma::{
    CanonicalJsonObject, EventId, OwnedEventId, RoomId, RoomVersionId, ServerName, UInt,
    api::federation::event::{get_event, get_missing_events, get_room_state_ids},
};
use serde_json::value::RawValue;

use super::{Federation, REMEMBERED_TRANSACTIONS, canonical_object};
use crate::{
    error::{Error, Result},
    service::rooms::{Received, StateBefore},
};

/// Per-PDU results of a transaction, as the spec's response carries them.
pub type TransactionOutcome = BTreeMap<OwnedEventId, std::result::Result<(), String>>;

/// How many missing events we ask a peer for before falling back to its state at the event.
const MISSING_EVENTS_LIMIT: u32 = 20;

impl Federation {
    /// Processes the PDUs of a transaction from `origin`, in order. A transaction seen before
    /// gets its first answer again.
    pub async fn handle_transaction(&self, origin: &ServerName, txn_id: &str, pdus: &[Box<RawValue>]) -> TransactionOutcome {
        let key = (origin.to_owned(), txn_id.to_owned());
        if let Some(outcome) = self.transactions.lock().ok().and_then(|t| t.outcomes.get(&key).cloned()) {
            return outcome;
        }
        let mut outcome = TransactionOutcome::new();
        for raw in pdus {
            match self.handle_raw_pdu(origin, raw).await {
                Ok(Some(event_id)) => {
                    outcome.insert(event_id, Ok(()));
                }
                Ok(None) => {}
                Err((Some(event_id), error)) => {
                    tracing::info!(%origin, %event_id, %error, "refused a PDU");
                    outcome.insert(event_id, Err(error.to_string()));
                }
                Err((None, error)) => tracing::info!(%origin, %error, "dropped an unparseable PDU"),
            }
        }
        if let Ok(mut recent) = self.transactions.lock() {
            recent.order.push_back(key.clone());
            recent.outcomes.insert(key, outcome.clone());
            while recent.order.len() > REMEMBERED_TRANSACTIONS {
                if let Some(old) = recent.order.pop_front() {
                    recent.outcomes.remove(&old);
                }
            }
        }
        outcome
    }

    async fn handle_raw_pdu(&self, origin: &ServerName, raw: &RawValue) -> std::result::Result<Option<OwnedEventId>, (Option<OwnedEventId>, Error)> {
        let json = canonical_object(raw).map_err(|e| (None, e))?;
        let room_id = json
            .get("room_id")
            .and_then(|v| v.as_str())
            .and_then(|id| RoomId::parse(id).ok())
            .ok_or_else(|| (None, Error::bad_json("PDU without a valid room_id")))?;
        // We only take events for rooms we are in; anything else is noise (or an attack).
        let Some(record) = self.rooms.records.room(room_id.as_str()).map_err(|e| (None, e))? else {
            return Err((None, Error::not_found(format!("not in room {room_id}"))));
        };
        let version = self.rooms.room_version(&record).map_err(|e| (None, e))?;
        self.rooms.ensure_server_allowed(&record, origin).map_err(|e| (None, e))?;
        // The ID is known before the checks, so a refused event gets its error entry.
        let claimed_id = myelin_federation::pdu::event_id_of(&version, &json).ok();
        let pdu = self.verify_event(&version, json).await.map_err(|e| (claimed_id, e))?;
        let event_id = pdu.event_id().to_owned();
        self.handle_pdu(origin, &room_id, &version, pdu).await.map_err(|e| (Some(event_id.clone()), e))?;
        Ok(Some(event_id))
    }

    /// Takes a verified live event into its room: fetches what it builds on that we lack,
    /// then runs the auth checks and stores it.
    pub async fn handle_pdu(&self, origin: &ServerName, room_id: &RoomId, version: &RoomVersionId, pdu: Pdu) -> Result<Received> {
        if self.rooms.has_event(pdu.event_id().as_str())? {
            return Ok(Received::Known);
        }
        let missing_prev = self.missing_prev_events(&pdu)?;
        if !missing_prev.is_empty() {
            self.fill_gap(origin, room_id, version, &pdu).await;
        }
        self.accept_with_state(origin, room_id, version, pdu).await
    }

    fn missing_prev_events(&self, pdu: &Pdu) -> Result<Vec<OwnedEventId>> {
        let mut missing = Vec::new();
        for prev in pdu.prev_event_ids() {
            if !self.rooms.has_event(prev.as_str())? {
                missing.push(prev.clone());
            }
        }
        Ok(missing)
    }

    /// Asks `origin` for the events between our extremities and `pdu` and takes them in,
    /// oldest first. Whatever cannot be filled this way is left to the state fallback.
    async fn fill_gap(&self, origin: &ServerName, room_id: &RoomId, version: &RoomVersionId, pdu: &Pdu) {
        let Ok(record) = self.rooms.room(room_id) else { return };
        let earliest: Vec<OwnedEventId> = record.forward_extremities.iter().filter_map(|id| EventId::parse(id).ok()).collect();
        let mut request = get_missing_events::v1::Request::new(room_id.to_owned(), earliest, vec![pdu.event_id().to_owned()]);
        request.limit = UInt::from(MISSING_EVENTS_LIMIT);
        request.min_depth = UInt::try_from(record.max_depth.saturating_sub(MISSING_EVENTS_LIMIT as u64)).unwrap_or_default();
        let response = match self.client.send(origin, request).await {
            Ok(response) => response,
            Err(error) => {
                tracing::info!(%origin, %room_id, %error, "get_missing_events failed");
                return;
            }
        };
        let jsons: Vec<CanonicalJsonObject> = response.events.iter().filter_map(|raw| canonical_object(raw).ok()).collect();
        let mut fetched: Vec<Pdu> = self.verify_events(version, jsons).await.into_iter().filter_map(Result::ok).collect();
        fetched.sort_by_key(Pdu::depth);
        for event in fetched {
            if event.room_id() != Some(room_id) || self.rooms.has_event(event.event_id().as_str()).unwrap_or(true) {
                continue;
            }
            let event_id = event.event_id().to_owned();
            if let Err(error) = self.accept_with_state(origin, room_id, version, event).await {
                tracing::info!(%event_id, %error, "refused a missing event");
            }
        }
    }

    /// The auth checks and storage of an event whose gap is filled as far as it will be: the
    /// state before it comes from its prev_events if we hold them all, else from `origin`'s
    /// `/state_ids` at the event.
    async fn accept_with_state(&self, origin: &ServerName, room_id: &RoomId, version: &RoomVersionId, pdu: Pdu) -> Result<Received> {
        self.fetch_auth_events(origin, room_id, version, &pdu).await?;
        let state = if self.missing_prev_events(&pdu)?.is_empty() {
            StateBefore::PrevEvents
        } else {
            StateBefore::Ids(self.remote_state_at(origin, room_id, version, pdu.event_id()).await?)
        };
        self.rooms.accept_remote(room_id, pdu, state, false).await
    }

    /// Fetches (from `origin`) and stores as outliers the auth events of `pdu` that we lack,
    /// and theirs, each checked against its own auth events.
    pub(super) async fn fetch_auth_events(&self, origin: &ServerName, room_id: &RoomId, version: &RoomVersionId, pdu: &Pdu) -> Result<()> {
        let mut wanted: Vec<OwnedEventId> = pdu.auth_event_ids().to_vec();
        let mut fetched: Vec<Pdu> = Vec::new();
        let mut seen = HashSet::new();
        while let Some(id) = wanted.pop() {
            if !seen.insert(id.clone()) || self.rooms.knows_event(id.as_str())? {
                continue;
            }
            let event = self.fetch_event(origin, version, &id).await?;
            wanted.extend(event.auth_event_ids().iter().cloned());
            fetched.push(event);
        }
        if fetched.is_empty() {
            return Ok(());
        }
        self.store_checked_outliers(room_id, version, fetched).await
    }

    /// Stores events as outliers after checking each against its own auth events, oldest
    /// first; those that fail are dropped.
    pub(super) async fn store_checked_outliers(&self, room_id: &RoomId, version: &RoomVersionId, mut events: Vec<Pdu>) -> Result<()> {
        events.sort_by_key(Pdu::depth);
        let by_id: std::collections::HashMap<OwnedEventId, Pdu> = events.iter().map(|p| (p.event_id().to_owned(), p.clone())).collect();
        let mut accepted = Vec::new();
        for event in &events {
            let fetch = |id: &EventId| by_id.get(id).cloned().or_else(|| self.rooms.pdu(id));
            match myelin_federation::auth::check_auth_against_auth_events(version, event, fetch) {
                Ok(()) => accepted.push(event.clone()),
                Err(error) => tracing::info!(event_id = %event.event_id(), %error, "rejected a fetched auth event"),
            }
        }
        self.rooms.store_outliers(room_id, &accepted).await
    }

    /// One event by ID from `server`, verified.
    pub(super) async fn fetch_event(&self, server: &ServerName, version: &RoomVersionId, event_id: &EventId) -> Result<Pdu> {
        let response = self.client.send(server, get_event::v1::Request::new(event_id.to_owned())).await?;
        let pdu = self.verify_event(version, canonical_object(&response.pdu)?).await?;
        if pdu.event_id() != event_id {
            return Err(Error::forbidden(format!("{server} answered {} for {event_id}", pdu.event_id())));
        }
        Ok(pdu)
    }

    /// The state before `event_id` according to `server`, every event of it held (fetched as
    /// outliers where we lacked them).
    async fn remote_state_at(&self, server: &ServerName, room_id: &RoomId, version: &RoomVersionId, event_id: &EventId) -> Result<Vec<OwnedEventId>> {
        let response = self.client.send(server, get_room_state_ids::v1::Request::new(event_id.to_owned(), room_id.to_owned())).await?;
        let mut missing = Vec::new();
        for id in response.auth_chain_ids.iter().chain(response.pdu_ids.iter()) {
            if !self.rooms.knows_event(id.as_str())? {
                missing.push(id.clone());
            }
        }
        let mut fetched = Vec::new();
        for id in missing {
            match self.fetch_event(server, version, &id).await {
                Ok(pdu) => fetched.push(pdu),
                Err(error) => tracing::info!(%id, %error, "could not fetch a state event"),
            }
        }
        self.store_checked_outliers(room_id, version, fetched).await?;
        Ok(response.pdu_ids.into_iter().filter(|id| self.rooms.knows_event(id.as_str()).unwrap_or(false)).collect())
    }
}
