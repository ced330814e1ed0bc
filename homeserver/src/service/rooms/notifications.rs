//! Unread notification counts (`unread_notifications`, `unread_thread_notifications` in sync).
//!
//! When an event is stored as part of a room's live timeline, each local joined member other
//! than its sender has their push rules evaluated against it (ruma's evaluator, with the room's
//! member count, the member's display name and the power levels). A row is staged in the same
//! batch for each member the rules say to notify, marked with whether it highlights and which
//! thread it belongs to. A count is then the number of rows after the member's read receipt:
//! rows are never counted twice and a crash cannot lose one, because they land with the event.
//!
//! Threads (MSC3771/MSC3773): a row's thread is the root of an `m.thread` relation, or the
//! thread of the event an annotation/edit points at. An unthreaded receipt reads everything up
//! to its event; a threaded one (`thread_id` = root, or `main` for the main timeline) reads only
//! that thread. When a client asks for thread counts, `unread_notifications` keeps the main
//! timeline's and `unread_thread_notifications` has one entry per thread with unread rows;
//! otherwise everything is summed into `unread_notifications`.
//!
//! Rows at or before a member's unthreaded read receipt can never count again, so storing such
//! a receipt deletes them ([`Rooms::forget_read_notifications`]).

use std::collections::{BTreeMap, HashMap};

use myelin_storage::{Batch, Direction, Table};
use ruma::{
    OwnedRoomId, OwnedUserId, RoomId, RoomVersionId, UInt, UserId,
    events::room::power_levels::{RoomPowerLevels, RoomPowerLevelsEventContent, RoomPowerLevelsSource},
    push::{Action, FlattenedJson, PushConditionPowerLevelsCtx, PushConditionRoomCtx},
    serde::Raw,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Rooms, StoredEvent, relations::relates_to};
use crate::error::{Error, Result};

/// The thread ID of the main timeline in threaded receipts.
pub const MAIN_THREAD: &str = "main";
const THREAD: &str = "m.thread";

/// A notification one event gave one member.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Notified {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    highlight: bool,
    /// The thread root, or `None` for the main timeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    thread: Option<String>,
}

/// (user, room short id, event stream position) → the notification.
const NOTIFIED: Table<(String, u64, u64), Notified> = Table::new("userid_roomshort_stream_notified");
pub const TABLES: &[&str] = &["userid_roomshort_stream_notified"];

/// How far a member has read a room: the stream positions of the events their receipts point at.
#[derive(Clone, Debug, Default)]
pub struct ReadPositions {
    /// The newest unthreaded receipt (public or private).
    pub unthreaded: Option<u64>,
    /// Threaded receipts by thread ID ([`MAIN_THREAD`] or a root event ID).
    pub threads: HashMap<String, u64>,
}

impl ReadPositions {
    /// Records a receipt at `position`, keeping the newest per thread.
    pub fn record(&mut self, thread: Option<&str>, position: u64) {
        let slot = match thread {
            None | Some("") => &mut self.unthreaded,
            Some(thread) => {
                let newest = self.threads.entry(thread.to_owned()).or_insert(position);
                *newest = (*newest).max(position);
                return;
            }
        };
        *slot = Some(slot.map_or(position, |current| current.max(position)));
    }

    fn read_up_to(&self, thread: Option<&str>) -> u64 {
        let threaded = self.threads.get(thread.unwrap_or(MAIN_THREAD)).copied().unwrap_or(0);
        self.unthreaded.unwrap_or(0).max(threaded)
    }
}

/// Unread counts of one room for one member.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub notifications: u64,
    pub highlights: u64,
}

impl Counts {
    fn add(&mut self, highlight: bool) {
        self.notifications += 1;
        self.highlights += u64::from(highlight);
    }
}

/// A room's counts: the main timeline's (or everything, when threads are not asked for) and
/// each thread's.
#[derive(Clone, Debug, Default)]
pub struct RoomCounts {
    pub main: Counts,
    pub threads: BTreeMap<String, Counts>,
}

impl Rooms {
    /// Stages a notification row for each local member whose push rules say `event` notifies.
    pub(super) async fn stage_notifications(&self, batch: &mut Batch, room_id: &RoomId, version: &RoomVersionId, event: &StoredEvent) -> Result<()> {
        let members = self.membership.members(room_id.as_str())?;
        let joined: Vec<&str> = members.iter().filter(|(_, entry)| entry.membership == "join").map(|(user, _)| user.as_str()).collect();
        let recipients: Vec<OwnedUserId> = joined
            .iter()
            .filter(|user| **user != event.sender())
            .filter_map(|user| UserId::parse(*user).ok())
            .filter(|user| user.server_name() == self.server_name)
            .collect();
        if recipients.is_empty() {
            return Ok(());
        }
        let raw: Raw<Value> = Raw::new(&event.pdu).map_err(|e| Error::internal(format!("event as raw JSON: {e}")))?;
        // Flattened once for all members: ruma's `get_actions` would flatten it per member.
        let flattened = FlattenedJson::from_raw(&raw);
        let member_count = UInt::try_from(joined.len()).unwrap_or(UInt::MAX);
        let mut context = PushConditionRoomCtx::new(OwnedRoomId::from(room_id), member_count, recipients[0].clone(), String::new());
        if let Some(power_levels) = self.push_power_levels(version, event.state_before)? {
            context = context.with_power_levels(power_levels);
        }
        let thread = self.thread_of(event)?;
        for user in recipients {
            let settings = self.account_data.push_settings(&user)?;
            if settings.ignored.contains(event.sender()) {
                continue;
            }
            context.user_display_name = self
                .state_event_shared(event.state_before, "m.room.member", user.as_str())?
                .and_then(|member| member.content().get("displayname").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| user.localpart().to_owned());
            context.user_id = user;
            let mut actions: &[Action] = &[];
            for rule in settings.ruleset.iter() {
                if rule.applies(&flattened, &context).await {
                    actions = rule.actions();
                    break;
                }
            }
            if actions.iter().any(Action::should_notify) {
                let highlight = actions.iter().any(Action::is_highlight);
                NOTIFIED.put(batch, &(context.user_id.to_string(), event.room_short, event.stream), &Notified { highlight, thread: thread.clone() })?;
            }
        }
        Ok(())
    }

    /// The power levels as push conditions need them (`sender_notification_permission`), or
    /// `None` when the room's are unreadable (those conditions then never match).
    fn push_power_levels(&self, version: &RoomVersionId, state_group: u64) -> Result<Option<PushConditionPowerLevelsCtx>> {
        let Some(rules) = version.rules() else { return Ok(None) };
        let source = match self.state_event(state_group, "m.room.power_levels", "")? {
            Some(event) => match serde_json::from_value::<RoomPowerLevelsEventContent>(event.content().clone()) {
                Ok(content) => RoomPowerLevelsSource::Original(content),
                Err(_) => return Ok(None),
            },
            None => RoomPowerLevelsSource::None,
        };
        let creators: Vec<OwnedUserId> = self.creator_of(state_group)?.into_iter().collect();
        Ok(Some(RoomPowerLevels::new(source, &rules.authorization, creators).into()))
    }

    /// The thread an event belongs to: the root of its `m.thread` relation, or the thread of
    /// the event it annotates or edits.
    fn thread_of(&self, event: &StoredEvent) -> Result<Option<String>> {
        let Some(relation) = relates_to(event.content()) else { return Ok(None) };
        if relation.rel_type == THREAD {
            return Ok(Some(relation.parent.to_owned()));
        }
        let Some((_, parent)) = self.event_shared(relation.parent)? else { return Ok(None) };
        Ok(relates_to(parent.content()).filter(|r| r.rel_type == THREAD).map(|r| r.parent.to_owned()))
    }

    /// The member's unread counts in a room, given how far they have read it; per thread when
    /// `by_thread`, else all summed into [`RoomCounts::main`].
    pub fn unread_counts(&self, user: &UserId, room_short: u64, read: &ReadPositions, by_thread: bool) -> Result<RoomCounts> {
        let mut counts = RoomCounts::default();
        let start = (user.to_string(), room_short, read.unthreaded.map_or(0, |p| p + 1));
        let end = (user.to_string(), room_short + 1, 0);
        for entry in NOTIFIED.iter_range(&self.db, Some(&start), Some(&end), Direction::Forward)? {
            let ((_, _, position), notified) = entry?;
            if position <= read.read_up_to(notified.thread.as_deref()) {
                continue;
            }
            match (&notified.thread, by_thread) {
                (Some(thread), true) => counts.threads.entry(thread.clone()).or_default().add(notified.highlight),
                _ => counts.main.add(notified.highlight),
            }
        }
        Ok(counts)
    }

    /// Deletes the member's rows at or before `position`, which an unthreaded read receipt
    /// there has made unreadable-again.
    pub async fn forget_read_notifications(&self, user: &UserId, room_short: u64, position: u64) -> Result<()> {
        let mut batch = Batch::new();
        let start = (user.to_string(), room_short, 0);
        let end = (user.to_string(), room_short, position.saturating_add(1));
        for entry in NOTIFIED.iter_range(&self.db, Some(&start), Some(&end), Direction::Forward)? {
            let (key, _) = entry?;
            NOTIFIED.delete(&mut batch, &key);
        }
        if !batch.is_empty() {
            self.db.write_async(batch).await?;
        }
        Ok(())
    }
}
