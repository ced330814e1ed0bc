//! Merging the state of several branches of a room with state resolution.

use std::collections::HashMap;

use myelin_federation::{
    pdu::Pdu,
    state_res::{StateMap, resolve_state, state_set_auth_chain},
};
use myelin_storage::Batch;
use ruma::{EventId, OwnedEventId, RoomVersionId, events::StateEventType};

use super::{Rooms, state::ShortState};
use crate::error::{Error, Result};

impl Rooms {
    /// The state group holding the resolution of `groups`' states. `pending` is an event staged
    /// in the same batch (not readable from storage yet) with its short id.
    pub(super) fn resolve_groups(
        &self,
        batch: &mut Batch,
        version: &RoomVersionId,
        groups: &[u64],
        pending: Option<(&Pdu, u64)>,
    ) -> Result<u64> {
        let Some(first) = groups.first().copied() else {
            return Err(Error::internal("state resolution of no branches"));
        };
        if groups.iter().all(|group| *group == first) {
            return Ok(first);
        }
        let pending_id = pending.map(|(pdu, short)| (pdu.event_id().to_owned(), short));
        let event_id_of = |short: u64| -> Result<OwnedEventId> {
            match &pending_id {
                Some((id, pending_short)) if *pending_short == short => Ok(id.clone()),
                _ => EventId::parse(self.short.event_id(short)?).map_err(|e| Error::internal(e.to_string())),
            }
        };
        let fetch_event = |id: &EventId| -> Option<Pdu> {
            match pending {
                Some((pdu, _)) if pdu.event_id() == id => Some(pdu.clone()),
                _ => self.pdu_of(id),
            }
        };
        let mut state_sets: Vec<StateMap<OwnedEventId>> = Vec::with_capacity(groups.len());
        for group in groups {
            let mut set = HashMap::new();
            for (key, event) in self.state.load(*group)?.iter() {
                let (event_type, state_key) = self.short.state_key_of(*key)?;
                set.insert((StateEventType::from(event_type), state_key), event_id_of(*event)?);
            }
            state_sets.push(set);
        }
        let auth_chains = state_sets.iter().map(|set| state_set_auth_chain(set, fetch_event)).collect();
        let resolved = resolve_state(version, &state_sets, auth_chains, fetch_event)?;
        let mut short_state = ShortState::new();
        for ((event_type, state_key), event_id) in resolved {
            let key = self.short.intern_state_key(&(event_type.to_string(), state_key))?;
            let short = match &pending_id {
                Some((id, short)) if *id == event_id => *short,
                _ => self.short.event(event_id.as_str())?.ok_or_else(|| Error::internal(format!("resolved to unknown event {event_id}")))?,
            };
            short_state.insert(key, short);
        }
        self.state.create_from_full(batch, Some(first), &short_state)
    }
}

impl Rooms {
    /// Rewrites the membership index of every member whose entry disagrees with `group`.
    /// `pending` is the event staged in the same batch (ID, draft, short id). Returns how many
    /// entries it staged, for [`super::Membership::committed`].
    pub(super) fn reconcile_membership(
        &self,
        batch: &mut Batch,
        room_id: &str,
        group: u64,
        pending: (&EventId, &super::EventDraft, u64),
        stream: u64,
    ) -> Result<usize> {
        let (pending_id, pending_draft, pending_short) = pending;
        let mut staged = 0;
        for (key, event) in self.state.load(group)?.iter() {
            let (event_type, member) = self.short.state_key_of(*key)?;
            if event_type != "m.room.member" {
                continue;
            }
            let (event_id, membership) = if *event == pending_short {
                (pending_id.to_string(), pending_draft.content.get("membership").and_then(|m| m.as_str()).unwrap_or("leave").to_owned())
            } else {
                let Some(stored) = self.timeline.get(*event)? else { continue };
                let membership = stored.content().get("membership").and_then(|m| m.as_str()).unwrap_or("leave").to_owned();
                (stored.event_id, membership)
            };
            // The pending event's own index entry is staged in this batch already.
            let staged_here = pending_draft.event_type == "m.room.member" && pending_draft.state_key.as_deref() == Some(member.as_str());
            let indexed = if staged_here {
                Some(pending_id.to_string())
            } else {
                self.membership.get(room_id, &member)?.map(|entry| entry.event_id)
            };
            if indexed.as_deref() == Some(event_id.as_str()) {
                continue;
            }
            let entry = super::MembershipEntry { membership, event_id, stream };
            self.membership.set(batch, room_id, &member, &entry)?;
            staged += 1;
        }
        Ok(staged)
    }
}
