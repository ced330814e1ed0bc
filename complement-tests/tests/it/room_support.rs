//! Helpers shared by the room and `/sync` scenarios: thin wrappers around
//! the client-server endpoints that the room tests call over and over, plus
//! small accessors for the JSON they return.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use complement_tests::*;

/// Prefix of the client-server API.
pub const C: &str = "/_matrix/client/v3";

/// Percent-encodes one path segment or query value: everything except the
/// RFC 3986 unreserved characters is escaped, so `$abc/d+e` (an event ID of
/// room version 3) and `#alias:server` survive the trip.
pub fn enc(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// A transaction ID that is unique within this test process.
pub fn txn_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("txn{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// `/_matrix/client/v3/rooms/{room}{rest}` with the room ID encoded.
pub fn room_path(room: &str, rest: &str) -> String {
    format!("{C}/rooms/{}{rest}", enc(room))
}

/// `POST /createRoom`; panics unless it succeeds. Returns the room ID.
pub async fn create_room(server: &TestServer, who: &Session, body: Value) -> String {
    let resp = server.post(&format!("{C}/createRoom"), who, &body).await;
    resp.ok();
    resp.str_field("room_id").to_owned()
}

/// A public room (`preset: public_chat`) created by `who`.
pub async fn public_room(server: &TestServer, who: &Session) -> String {
    create_room(server, who, json!({"preset": "public_chat"})).await
}

/// `PUT /rooms/{room}/send/{type}/{txn}` with a fresh transaction ID.
pub async fn send_event_raw(
    server: &TestServer,
    who: &Session,
    room: &str,
    event_type: &str,
    content: &Value,
) -> Resp {
    let path = room_path(room, &format!("/send/{}/{}", enc(event_type), txn_id()));
    server.put(&path, who, content).await
}

/// Sends an `m.room.message` (`m.text`) and returns its event ID.
pub async fn send_text(server: &TestServer, who: &Session, room: &str, body: &str) -> String {
    let resp = send_event_raw(
        server,
        who,
        room,
        "m.room.message",
        &json!({"msgtype": "m.text", "body": body}),
    )
    .await;
    resp.ok();
    resp.str_field("event_id").to_owned()
}

/// `PUT /rooms/{room}/state/{type}/{key}`.
pub async fn put_state_raw(
    server: &TestServer,
    who: &Session,
    room: &str,
    event_type: &str,
    state_key: &str,
    content: &Value,
) -> Resp {
    let path = room_path(
        room,
        &format!("/state/{}/{}", enc(event_type), enc(state_key)),
    );
    server.put(&path, who, content).await
}

/// Sets a state event; panics unless it succeeds. Returns the event ID.
pub async fn put_state(
    server: &TestServer,
    who: &Session,
    room: &str,
    event_type: &str,
    state_key: &str,
    content: &Value,
) -> String {
    let resp = put_state_raw(server, who, room, event_type, state_key, content).await;
    resp.ok();
    resp.str_field("event_id").to_owned()
}

/// `GET /rooms/{room}/state/{type}/{key}` (the content).
pub async fn get_state(
    server: &TestServer,
    who: &Session,
    room: &str,
    event_type: &str,
    state_key: &str,
) -> Resp {
    let path = room_path(
        room,
        &format!("/state/{}/{}", enc(event_type), enc(state_key)),
    );
    server.get(&path, who).await
}

/// `GET /rooms/{room}/state/{type}/{key}?format=event` (the whole event);
/// panics unless it succeeds.
pub async fn get_state_event(
    server: &TestServer,
    who: &Session,
    room: &str,
    event_type: &str,
    state_key: &str,
) -> Value {
    let path = room_path(
        room,
        &format!("/state/{}/{}?format=event", enc(event_type), enc(state_key)),
    );
    server.get(&path, who).await.ok().clone()
}

/// `POST /rooms/{room}/join`.
pub async fn join(server: &TestServer, who: &Session, room: &str) -> Resp {
    server
        .post(&room_path(room, "/join"), who, &json!({}))
        .await
}

/// `POST /rooms/{room}/invite`.
pub async fn invite(server: &TestServer, who: &Session, room: &str, user_id: &str) -> Resp {
    server
        .post(
            &room_path(room, "/invite"),
            who,
            &json!({"user_id": user_id}),
        )
        .await
}

/// `POST /rooms/{room}/leave`.
pub async fn leave(server: &TestServer, who: &Session, room: &str) -> Resp {
    server
        .post(&room_path(room, "/leave"), who, &json!({}))
        .await
}

/// `POST /rooms/{room}/{action}` for kick/ban/unban.
pub async fn moderate(
    server: &TestServer,
    who: &Session,
    room: &str,
    action: &str,
    user_id: &str,
    reason: Option<&str>,
) -> Resp {
    let mut body = json!({"user_id": user_id});
    if let Some(reason) = reason {
        body["reason"] = json!(reason);
    }
    server
        .post(&room_path(room, &format!("/{action}")), who, &body)
        .await
}

/// `GET /sync?{query}`; panics unless it succeeds.
pub async fn sync(server: &TestServer, who: &Session, query: &str) -> Value {
    sync_raw(server, who, query).await.ok().clone()
}

/// `GET /sync?{query}`.
pub async fn sync_raw(server: &TestServer, who: &Session, query: &str) -> Resp {
    server.get(&format!("{C}/sync?{query}"), who).await
}

/// A `filter=` query parameter carrying `filter` inline.
pub fn filter_param(filter: &Value) -> String {
    format!("filter={}", enc(&filter.to_string()))
}

/// `GET /rooms/{room}/messages?{query}`.
pub async fn messages(server: &TestServer, who: &Session, room: &str, query: &str) -> Resp {
    server
        .get(&room_path(room, &format!("/messages?{query}")), who)
        .await
}

/// Pages through `/messages` in direction `dir` starting at `from` (or at the
/// edge of the room when `None`), `limit` events per page, until the server
/// omits `end`. Returns every event in the order received. Panics after
/// `max_pages` pages (a server that never stops) or on a repeated event.
pub async fn paginate(
    server: &TestServer,
    who: &Session,
    room: &str,
    dir: &str,
    from: Option<&str>,
    limit: usize,
    max_pages: usize,
) -> Vec<Value> {
    let mut events = Vec::new();
    let mut seen = HashSet::new();
    let mut from = from.map(str::to_owned);
    for _ in 0..max_pages {
        let mut query = format!("dir={dir}&limit={limit}");
        if let Some(from) = &from {
            let _ = write!(query, "&from={}", enc(from));
        }
        let resp = messages(server, who, room, &query).await;
        let body = resp.ok();
        let chunk = body["chunk"]
            .as_array()
            .unwrap_or_else(|| panic!("/messages without a chunk: {}", resp.text));
        assert!(
            chunk.len() <= limit,
            "/messages returned {} events for limit={limit}",
            chunk.len()
        );
        for event in chunk {
            let id = event["event_id"].as_str().unwrap_or_default().to_owned();
            assert!(
                seen.insert(id.clone()),
                "event {id} returned twice while paginating {dir}"
            );
            events.push(event.clone());
        }
        match body.get("end").and_then(Value::as_str) {
            Some(end) => from = Some(end.to_owned()),
            None => return events,
        }
    }
    panic!("/messages still had an `end` token after {max_pages} pages");
}

/// The events of a `{"events": [...]}` batch (or of an array) as a slice;
/// empty when absent.
pub fn events_of(batch: &Value) -> &[Value] {
    let list = if batch.is_array() {
        batch
    } else {
        &batch["events"]
    };
    list.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// The `event_id`s of a list of events.
pub fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The `content.body` of every `m.room.message` in a list of events.
pub fn bodies(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
        .collect()
}

/// The state event of a type and key in a list of events.
pub fn find_state<'a>(events: &'a [Value], event_type: &str, state_key: &str) -> Option<&'a Value> {
    events
        .iter()
        .find(|e| e["type"] == event_type && e["state_key"] == state_key)
}

/// `rooms.join[room]` of a sync response (`Value::Null` when absent).
pub fn joined<'a>(sync: &'a Value, room: &str) -> &'a Value {
    &sync["rooms"]["join"][room]
}

/// Whether a sync response mentions `room` in `section` (join/invite/leave).
pub fn in_section(sync: &Value, section: &str, room: &str) -> bool {
    sync["rooms"][section].get(room).is_some()
}

/// The `next_batch` token of a sync response.
#[track_caller]
pub fn next_batch(sync: &Value) -> String {
    sync["next_batch"]
        .as_str()
        .unwrap_or_else(|| panic!("sync response without next_batch: {sync}"))
        .to_owned()
}

/// The user IDs in `GET /rooms/{room}/joined_members`, sorted.
pub async fn joined_member_ids(server: &TestServer, who: &Session, room: &str) -> Vec<String> {
    let resp = server.get(&room_path(room, "/joined_members"), who).await;
    let mut users: Vec<String> = resp.ok()["joined"]
        .as_object()
        .unwrap_or_else(|| panic!("joined_members without `joined`: {}", resp.text))
        .keys()
        .cloned()
        .collect();
    users.sort();
    users
}

/// The room IDs of `GET /joined_rooms`.
pub async fn joined_rooms(server: &TestServer, who: &Session) -> Vec<String> {
    let resp = server.get(&format!("{C}/joined_rooms"), who).await;
    resp.ok()["joined_rooms"]
        .as_array()
        .unwrap_or_else(|| panic!("no joined_rooms array: {}", resp.text))
        .iter()
        .map(|r| r.as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The `membership` of `user_id` according to the room state, if any.
pub async fn membership_of(
    server: &TestServer,
    who: &Session,
    room: &str,
    user_id: &str,
) -> Option<String> {
    let resp = get_state(server, who, room, "m.room.member", user_id).await;
    if resp.status == StatusCode::NOT_FOUND {
        return None;
    }
    resp.ok()["membership"].as_str().map(str::to_owned)
}

/// Registers several users with the password `pw`.
pub async fn users<const N: usize>(server: &TestServer, names: [&str; N]) -> [Session; N] {
    let mut sessions = Vec::with_capacity(N);
    for name in names {
        sessions.push(server.register(name, "pw").await);
    }
    sessions
        .try_into()
        .unwrap_or_else(|_| unreachable!("N sessions"))
}

/// Asserts a refused read by a user who has no business seeing the data:
/// `403 M_FORBIDDEN` or `404 M_NOT_FOUND` (the spec uses both for
/// non-members, depending on the endpoint).
#[track_caller]
pub fn assert_denied(resp: &Resp) {
    let code = (resp.status, resp.errcode());
    assert!(
        code == (StatusCode::FORBIDDEN, Some("M_FORBIDDEN"))
            || code == (StatusCode::NOT_FOUND, Some("M_NOT_FOUND")),
        "expected 403 M_FORBIDDEN or 404 M_NOT_FOUND, got {} {}",
        resp.status,
        resp.text
    );
}
