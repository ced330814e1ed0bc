//! `/sync` v3: what changed for a user since a token.
//!
//! The token is a stream position (`s<position>`). Rooms, membership and account data all
//! take positions from the one global stream, so "what changed since" is one range per
//! source. A sync with nothing to say waits on the user's notifier, never on a polling loop.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use ruma::{DeviceId, RoomId, UserId, api::client::filter::FilterDefinition};
use serde_json::{Map, Value, json};

use super::{
    Services,
    rooms::{StateMap, StoredEvent, event_matches, notifications::Counts, tokens::Token},
};
use crate::error::{Error, Result};

/// Sync's default timeline length, as Synapse's.
const DEFAULT_TIMELINE_LIMIT: usize = 10;
/// State events invite previews carry (the spec's recommended set).
pub const INVITE_STATE_TYPES: &[&str] =
    &["m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar", "m.room.canonical_alias", "m.room.encryption", "m.room.topic"];

pub struct SyncRequest<'a> {
    pub user: &'a UserId,
    pub device: &'a DeviceId,
    pub since: Option<u64>,
    pub full_state: bool,
    pub timeout: Duration,
    pub filter: FilterDefinition,
    /// The users whose events and invites the user ignores (filled in by [`sync`]).
    pub ignored: std::collections::HashSet<String>,
}

pub fn parse_since(since: Option<&str>) -> Result<Option<u64>> {
    match since.map(Token::parse).transpose()? {
        None => Ok(None),
        Some(Token::Stream(position)) => Ok(Some(position)),
        Some(Token::Topological { .. }) => Err(Error::invalid_param("Not a sync token")),
    }
}

pub async fn sync(services: &Services, mut request: SyncRequest<'_>) -> Result<Value> {
    let rooms = &services.rooms;
    let deadline = tokio::time::Instant::now() + request.timeout;
    request.ignored = services.account_data.ignored_users(request.user)?;
    // Repeating a token acknowledges the to-device messages of the response that handed it out.
    if let Some(since) = request.since {
        services.e2ee.acknowledge_to_device(request.user, request.device, since).await?;
    }
    // Subscribe before reading the position, so a change in between still wakes us.
    let mut wake = rooms.notifier.subscribe(request.user.as_str());
    loop {
        let mut now = rooms.stream.safe();
        if let Some(since) = request.since
            && since >= now
            && !request.full_state
            && !request.timeout.is_zero()
            && !services.e2ee.has_to_device(request.user, request.device, now)?
        {
            let wait = async {
                while wake.changed().await.is_ok() {
                    // The change may still have an older append in flight before it.
                    for _ in 0..50 {
                        if rooms.stream.safe() > since {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
            };
            let _ = tokio::time::timeout_at(deadline, wait).await;
            now = rooms.stream.safe();
        }
        let response = build_response(services, &request, now)?;
        // The stream moved for something that is nothing to this user (another room's event,
        // their own delivery receipt): keep waiting from here rather than answer empty.
        let keep_waiting =
            request.since.is_some() && !request.full_state && is_empty(&response) && tokio::time::Instant::now() < deadline;
        if keep_waiting {
            request.since = Some(now);
            continue;
        }
        record_deliveries(services, request.user, &response).await;
        if response["to_device"]["events"].as_array().is_some_and(|events| !events.is_empty()) {
            services.e2ee.sync_sent(request.user, request.device, now).await?;
        }
        return Ok(response);
    }
}

/// Whether an invite came from someone the user ignores (such invites are not shown).
fn invited_by_ignored(services: &Services, request: &SyncRequest<'_>, invite_event_id: &str) -> Result<bool> {
    if request.ignored.is_empty() {
        return Ok(false);
    }
    Ok(services.rooms.event_shared(invite_event_id)?.is_some_and(|(_, event)| request.ignored.contains(event.sender())))
}

/// Whether a sync response carries nothing new.
fn is_empty(response: &Value) -> bool {
    let rooms_empty = ["join", "invite", "leave", "knock"].iter().all(|section| response["rooms"][section].as_object().is_none_or(Map::is_empty));
    let events_empty = ["account_data", "presence", "to_device"].iter().all(|section| response[section]["events"].as_array().is_none_or(Vec::is_empty));
    let device_lists_empty = ["changed", "left"].iter().all(|list| response["device_lists"][list].as_array().is_none_or(Vec::is_empty));
    rooms_empty && events_empty && device_lists_empty
}

/// Delivery receipts for what this sync handed the user: in each joined room, the newest
/// timeline event someone else sent (see service/receipts.rs).
async fn record_deliveries(services: &Services, user: &UserId, response: &Value) {
    let Some(joined) = response["rooms"]["join"].as_object() else { return };
    for (room_id, room) in joined {
        let newest_from_others = room["timeline"]["events"]
            .as_array()
            .into_iter()
            .flatten()
            .rev()
            .find(|event| event["sender"].as_str().is_some_and(|sender| sender != user.as_str()))
            .and_then(|event| event["event_id"].as_str());
        let (Some(event_id), Ok(room_id)) = (newest_from_others, RoomId::parse(room_id)) else { continue };
        let Ok(Some((_, event))) = services.rooms.event_shared(event_id) else { continue };
        if let Err(error) = services.receipts.set_delivered(&room_id, user, event_id, event.stream).await {
            tracing::warn!(%room_id, %error, "cannot record a delivery receipt");
        }
    }
}

fn build_response(services: &Services, request: &SyncRequest<'_>, now: u64) -> Result<Value> {
    let mut join = Map::new();
    let mut invite = Map::new();
    let mut leave = Map::new();
    let mut knock = Map::new();
    let room_filter = &request.filter.room;
    let room_data = services.account_data.changes(request.user, request.since, now)?;
    let mut global_account_data = Vec::new();
    let mut room_account_data: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    // Clients read their push rules from sync; until a user changes them they are the server
    // defaults, which are not stored, so an initial sync adds them.
    if request.since.is_none() && !room_data.iter().any(|(room, t, _)| room.is_empty() && t == super::push_rules::EVENT_TYPE) {
        global_account_data.push(services.push_rules.account_data_event(request.user)?);
    }
    for (room, event_type, content) in room_data {
        let event = json!({"type": event_type, "content": content});
        if room.is_empty() {
            global_account_data.push(event);
        } else {
            room_account_data.entry(room).or_default().push(event);
        }
    }

    // On an incremental sync, only rooms with events since the token can have a timeline to
    // send: find them once from the global stream instead of probing every joined room.
    let rooms_with_events: Option<std::collections::HashSet<u64>> = match request.since {
        Some(since) if !request.full_state => {
            Some(services.rooms.timeline.stream_since(since, now)?.into_iter().map(|(_, room, _)| room).collect())
        }
        _ => None,
    };
    // Rooms where someone started or stopped typing, or set a receipt, since the token.
    let rooms_with_ephemeral: std::collections::HashSet<String> = match request.since {
        Some(since) => {
            let mut rooms = services.receipts.rooms_changed(since, now)?;
            rooms.extend(services.typing.rooms_changed(since, now).into_iter().map(|room| room.to_string()));
            rooms
        }
        None => std::collections::HashSet::new(),
    };
    for (room_id, entry) in services.rooms.membership.rooms_of(request.user.as_str())? {
        if room_filter.not_rooms.iter().any(|r| r.as_str() == room_id)
            || room_filter.rooms.as_ref().is_some_and(|rooms| !rooms.iter().any(|r| r.as_str() == room_id))
        {
            continue;
        }
        let changed_since = request.since.is_none_or(|since| entry.stream > since);
        if entry.stream > now {
            continue;
        }
        let Ok(room) = RoomId::parse(&room_id) else { continue };
        let account_data = room_account_data.remove(&room_id).unwrap_or_default();
        match entry.membership.as_str() {
            "join" => {
                let quiet = !request.full_state && rooms_with_events.as_ref().is_some_and(|active| {
                    !changed_since
                        && account_data.is_empty()
                        && !rooms_with_ephemeral.contains(&room_id)
                        && services.rooms.short.room(&room_id).ok().flatten().is_none_or(|short| !active.contains(&short))
                });
                if quiet {
                    continue;
                }
                if let Some(section) = joined_room(services, request, &room, now, changed_since, account_data)? {
                    join.insert(room_id, section);
                }
            }
            "invite" if changed_since && !invited_by_ignored(services, request, &entry.event_id)? => {
                invite.insert(room_id, json!({ "invite_state": { "events": stripped_state(services, &entry.event_id)? } }));
            }
            "knock" if changed_since => {
                knock.insert(room_id, json!({ "knock_state": { "events": stripped_state(services, &entry.event_id)? } }));
            }
            "leave" | "ban" if changed_since && (request.since.is_some() || room_filter.include_leave) => {
                leave.insert(room_id, left_room(services, request, &room, &entry.event_id)?);
            }
            _ => {}
        }
    }

    let mut response = json!({
        "next_batch": Token::Stream(now).to_string(),
        "rooms": { "join": join, "invite": invite, "leave": leave, "knock": knock },
        "account_data": { "events": global_account_data },
        "presence": { "events": services.presence.sync_events(request.user, request.since, now)? },
    });
    // to_device, device_lists, device_one_time_keys_count, device_unused_fallback_key_types
    if let (Some(out), Value::Object(fields)) = (response.as_object_mut(), services.e2ee.sync_fields(request.user, request.device, request.since, now)?) {
        out.extend(fields);
    }
    Ok(response)
}

fn joined_room(
    services: &Services,
    request: &SyncRequest<'_>,
    room_id: &RoomId,
    now: u64,
    joined_since_token: bool,
    account_data: Vec<Value>,
) -> Result<Option<Value>> {
    let rooms = &services.rooms;
    let record = rooms.room(room_id)?;
    let timeline_filter = &request.filter.room.timeline;
    let limit = timeline_filter.limit.map_or(DEFAULT_TIMELINE_LIMIT, |l| usize::try_from(u64::from(l)).unwrap_or(usize::MAX)).max(1);
    // A room the user joined after the token is sent whole, as in an initial sync. With
    // `full_state` the timeline still starts at the token; only the state is sent whole.
    let room_since = if joined_since_token && request.since.is_some() { None } else { request.since };
    let whole_state = room_since.is_none() || request.full_state;

    let mut newest_first = rooms.timeline.room_events_desc(record.short, room_since.unwrap_or(0), now, limit + 1)?;
    let ephemeral = ephemeral_events(services, room_id, request.user, room_since, now)?;
    if room_since.is_some() && newest_first.is_empty() && account_data.is_empty() && ephemeral.is_empty() && !request.full_state {
        return Ok(None);
    }
    let limited = newest_first.len() > limit;
    newest_first.truncate(limit);
    let mut timeline_events: Vec<Arc<StoredEvent>> = Vec::with_capacity(newest_first.len());
    for (_, short) in newest_first.iter().rev() {
        if let Some(event) = rooms.timeline.get_shared(*short)? {
            timeline_events.push(event);
        }
    }
    // The state before the timeline: in full for a new room, as a delta for a gappy one.
    let start_group = match timeline_events.first() {
        Some(first) => first.state_before,
        None => rooms.state_group_at_stream(record.short, now)?.unwrap_or(record.current_state_group),
    };
    let state_ids: Vec<String> = match room_since {
        _ if whole_state => rooms.state_map(start_group)?.into_values().collect(),
        None => Vec::new(),
        Some(since) if limited => {
            let before = match rooms.state_group_at_stream(record.short, since)? {
                Some(group) => rooms.state_map(group)?,
                None => StateMap::new(),
            };
            rooms.state_map(start_group)?.into_iter().filter(|(key, id)| before.get(key) != Some(id)).map(|(_, id)| id).collect()
        }
        Some(_) => Vec::new(),
    };
    let visibility = rooms.viewer(room_id, request.user)?;
    let viewer = Some((request.user, request.device));
    let fields = request.filter.event_fields.as_deref();
    let mut timeline = Vec::new();
    for event in &timeline_events {
        if event_matches(timeline_filter, event) && !request.ignored.contains(event.sender()) && rooms.can_see_event(&visibility, event)? {
            timeline.push(restrict_fields(without_room_id(rooms.client_event(event, viewer)?), fields));
        }
    }
    let lazy = !request.filter.room.state.lazy_load_options.is_disabled();
    let summary = summary(services, room_id, request.user)?;
    // Lazy-loading clients get the members they need to render what they are shown: the
    // timeline's senders and the heroes (and themselves), even when nothing else changed.
    let mut needed_members: Vec<String> = timeline_events.iter().map(|e| e.sender().to_owned()).collect();
    needed_members.extend(summary["m.heroes"].as_array().into_iter().flatten().filter_map(|h| h.as_str().map(str::to_owned)));
    needed_members.push(request.user.to_string());
    let mut state = Vec::new();
    let mut sent_members = std::collections::HashSet::new();
    for event_id in state_ids {
        let Some((_, event)) = rooms.event(&event_id)? else { continue };
        if event.event_type() == "m.room.member" {
            let member = event.state_key().unwrap_or_default().to_owned();
            if lazy && !needed_members.contains(&member) {
                continue;
            }
            sent_members.insert(member);
        }
        if event_matches(&request.filter.room.state, &event) {
            state.push(restrict_fields(without_room_id(rooms.client_event(&event, None)?), fields));
        }
    }
    if lazy {
        for member in needed_members {
            if !sent_members.insert(member.clone()) {
                continue;
            }
            if let Some(event) = rooms.state_event(start_group, "m.room.member", &member)? {
                state.push(restrict_fields(without_room_id(rooms.client_event(&event, None)?), fields));
            }
        }
    }
    // Thread counts are separate only for clients that ask (MSC3773); others get one sum.
    let by_thread = timeline_filter.unread_thread_notifications;
    let read = services.receipts.read_positions(room_id, request.user)?;
    let counts = rooms.unread_counts(request.user, record.short, &read, by_thread)?;
    let thread_counts: Map<String, Value> = counts.threads.iter().map(|(root, c)| (root.clone(), counts_json(*c))).collect();
    let prev_batch = match timeline_events.first() {
        Some(first) => Token::Topological { depth: first.depth, stream: first.stream }.to_string(),
        None => Token::Stream(now).to_string(),
    };
    Ok(Some(json!({
        "timeline": { "events": timeline, "limited": limited, "prev_batch": prev_batch },
        "state": { "events": state },
        "account_data": { "events": account_data },
        "ephemeral": { "events": ephemeral },
        "summary": summary,
        "unread_notifications": counts_json(counts.main),
        "unread_thread_notifications": thread_counts,
    })))
}

fn counts_json(counts: Counts) -> Value {
    json!({ "notification_count": counts.notifications, "highlight_count": counts.highlights })
}

/// Typing and receipts in a joined room since the token (all of them on an initial sync).
fn ephemeral_events(services: &Services, room_id: &RoomId, user: &UserId, since: Option<u64>, now: u64) -> Result<Vec<Value>> {
    let mut events = Vec::new();
    if let Some(typing) = services.typing.typing_since(room_id, since) {
        events.push(json!({ "type": "m.typing", "content": { "user_ids": typing } }));
    }
    if let Some(receipts) = services.receipts.receipt_event(room_id, user, since, now)? {
        events.push(receipts);
    }
    Ok(events)
}

fn left_room(services: &Services, request: &SyncRequest<'_>, room_id: &RoomId, leave_event_id: &str) -> Result<Value> {
    let rooms = &services.rooms;
    let record = rooms.room(room_id)?;
    let Some((_, leave_event)) = rooms.event(leave_event_id)? else {
        return Ok(json!({"timeline": {"events": []}, "state": {"events": []}}));
    };
    let limit = request.filter.room.timeline.limit.map_or(DEFAULT_TIMELINE_LIMIT, |l| usize::try_from(u64::from(l)).unwrap_or(usize::MAX)).max(1);
    let mut timeline = Vec::new();
    let up_to = leave_event.stream;
    let visibility = rooms.viewer(room_id, request.user)?;
    for (_, short) in rooms.timeline.room_events_desc(record.short, request.since.unwrap_or(0), up_to, limit)?.iter().rev() {
        if let Some(event) = rooms.timeline.get(*short)?
            && rooms.can_see_event(&visibility, &event)?
        {
            timeline.push(without_room_id(rooms.client_event(&event, Some((request.user, request.device)))?));
        }
    }
    Ok(json!({
        "timeline": { "events": timeline, "limited": false, "prev_batch": Token::Stream(up_to).to_string() },
        "state": { "events": [] },
        "account_data": { "events": [] },
    }))
}

/// Stripped state for invite and knock previews: the room's public face, plus the membership
/// event itself.
fn stripped_state(services: &Services, membership_event_id: &str) -> Result<Vec<Value>> {
    let rooms = &services.rooms;
    if let Some(preview) = rooms.remote_invite_state(membership_event_id)? {
        // An invite to a room we do not hold: the inviting server sent its preview.
        let mut events = preview;
        if let Some((_, invite)) = rooms.event(membership_event_id)? {
            events.push(super::rooms::Rooms::stripped_event(&invite));
        }
        return Ok(events);
    }
    let Some((_, membership_event)) = rooms.event(membership_event_id)? else { return Ok(Vec::new()) };
    let mut events = Vec::new();
    for event_type in INVITE_STATE_TYPES {
        if let Some(event) = rooms.state_event(membership_event.state_after, event_type, "")? {
            events.push(super::rooms::Rooms::stripped_event(&event));
        }
    }
    if let Some(inviter) = rooms.state_event(membership_event.state_after, "m.room.member", membership_event.sender())? {
        events.push(super::rooms::Rooms::stripped_event(&inviter));
    }
    events.push(super::rooms::Rooms::stripped_event(&membership_event));
    Ok(events)
}

/// Heroes and member counts, for clients to name rooms without a name.
fn summary(services: &Services, room_id: &RoomId, user: &UserId) -> Result<Value> {
    let all_members = services.rooms.membership.members(room_id.as_str())?;
    let mut members: Vec<&(String, super::rooms::MembershipEntry)> = all_members.iter().collect();
    // Heroes in the order people joined, as the spec suggests.
    members.sort_by_key(|(_, entry)| entry.stream);
    let joined = members.iter().filter(|(_, m)| m.membership == "join").count();
    let invited = members.iter().filter(|(_, m)| m.membership == "invite").count();
    let heroes: Vec<&str> = members
        .iter()
        .filter(|(u, m)| u != user.as_str() && (m.membership == "join" || m.membership == "invite"))
        .map(|(u, _)| u.as_str())
        .take(5)
        .collect();
    Ok(json!({ "m.heroes": heroes, "m.joined_member_count": joined, "m.invited_member_count": invited }))
}

/// Splits an `event_fields` entry into its path, honouring `\.` for a literal dot.
fn field_path(field: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = field.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                chars.next();
                if let Some(last) = parts.last_mut() {
                    last.push('.');
                }
            }
            '.' => parts.push(String::new()),
            other => {
                if let Some(last) = parts.last_mut() {
                    last.push(other);
                }
            }
        }
    }
    parts
}

/// Keeps only the fields a filter's `event_fields` names (all of them when it names none).
pub fn restrict_fields(event: Value, fields: Option<&[String]>) -> Value {
    let Some(fields) = fields else { return event };
    let mut out = Value::Object(Map::new());
    for field in fields {
        let path = field_path(field);
        let mut source = &event;
        let mut found = true;
        for part in &path {
            match source.get(part) {
                Some(next) => source = next,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if !found {
            continue;
        }
        insert_path(&mut out, &path, source.clone());
    }
    out
}

fn insert_path(target: &mut Value, path: &[String], value: Value) {
    let Some(object) = target.as_object_mut() else { return };
    match path {
        [] => {}
        [last] => {
            object.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            insert_path(object.entry(first.clone()).or_insert_with(|| Value::Object(Map::new())), rest, value);
        }
    }
}

/// Sync omits `room_id` from events: the room is the key they sit under.
fn without_room_id(mut event: Value) -> Value {
    if let Some(object) = event.as_object_mut() {
        object.remove("room_id");
    }
    event
}


#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::restrict_fields;

    #[test]
    fn event_fields_keep_only_the_named_paths() {
        let event = json!({"type": "m.room.message", "sender": "@a:x", "content": {"body": "hi", "msgtype": "m.text", "m.dotted": 1}});
        let fields = vec!["type".to_owned(), "content.body".to_owned(), "content.m\\.dotted".to_owned(), "missing.path".to_owned()];
        assert_eq!(
            restrict_fields(event.clone(), Some(&fields)),
            json!({"type": "m.room.message", "content": {"body": "hi", "m.dotted": 1}})
        );
        assert_eq!(restrict_fields(event.clone(), None), event);
    }
}
