//! Relations (`/relations`) and threads (`/threads`).

use axum::extract::State;
use ruma::{
    EventId, RoomId, UInt,
    api::{
        Direction,
        client::{
            relations::{get_relating_events, get_relating_events_with_rel_type, get_relating_events_with_rel_type_and_event_type},
            threads::get_threads,
        },
    },
    serde::Raw,
};

use super::to_raw;
use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse},
    service::{
        Services,
        rooms::relations::{RECURSION_DEPTH, RelationsQuery},
        sessions::AuthedUser,
    },
};

/// `/relations` pages when the client names no limit (Synapse's default).
const DEFAULT_RELATIONS_LIMIT: usize = 5;
/// The most events one `/relations` page returns, whatever the client asks.
const MAX_RELATIONS_LIMIT: usize = 1000;
/// `/threads` pages when the client names no limit (Synapse's default).
const DEFAULT_THREADS_LIMIT: usize = 5;
/// The most thread roots one `/threads` page returns: each comes with its thread summary.
const MAX_THREADS_LIMIT: usize = 100;

/// A page of `/relations`, shared by its three paths.
struct RelationsPage<T> {
    chunk: Vec<Raw<T>>,
    next_batch: Option<String>,
    prev_batch: Option<String>,
    recursion_depth: Option<UInt>,
}

/// The parameters every `/relations` path has, and the filters its longer paths add.
struct RelationsParams<'a> {
    room_id: &'a RoomId,
    event_id: &'a EventId,
    rel_type: Option<String>,
    event_type: Option<String>,
    from: Option<&'a str>,
    to: Option<&'a str>,
    limit: Option<UInt>,
    dir: Direction,
    recurse: bool,
}

fn relations_page<T>(services: &Services, sender: &AuthedUser, params: RelationsParams<'_>) -> Result<RelationsPage<T>> {
    let limit = params.limit.map_or(DEFAULT_RELATIONS_LIMIT, |l| usize::try_from(u64::from(l)).unwrap_or(MAX_RELATIONS_LIMIT)).min(MAX_RELATIONS_LIMIT);
    let query = RelationsQuery {
        rel_type: params.rel_type.as_deref(),
        event_type: params.event_type.as_deref(),
        from: params.from,
        to: params.to,
        limit,
        forward: params.dir == Direction::Forward,
        recurse: params.recurse,
    };
    let page = services.rooms.relations(params.room_id, &sender.user_id, params.event_id.as_str(), &query)?;
    let viewer = Some((&*sender.user_id, &*sender.device_id));
    let chunk = page.events.iter().map(|event| services.rooms.client_event(event, viewer).and_then(|e| to_raw(&e))).collect::<Result<_>>()?;
    Ok(RelationsPage {
        chunk,
        next_batch: page.next_batch,
        prev_batch: params.from.map(str::to_owned),
        recursion_depth: params.recurse.then(|| UInt::from(RECURSION_DEPTH)),
    })
}

/// One handler per `/relations` path: ruma gives each its own request and response types,
/// which carry the same fields.
macro_rules! relations_route {
    ($(#[$doc:meta])* $name:ident, $endpoint:ident, |$body:ident| ($rel_type:expr, $event_type:expr)) => {
        $(#[$doc])*
        pub async fn $name(
            State(services): State<AppState>,
            request: Ruma<$endpoint::v1::Request>,
        ) -> Result<RumaResponse<$endpoint::v1::Response>> {
            let sender = request.sender()?;
            let $body = &request.body;
            let params = RelationsParams {
                room_id: &$body.room_id,
                event_id: &$body.event_id,
                rel_type: $rel_type,
                event_type: $event_type,
                from: $body.from.as_deref(),
                to: $body.to.as_deref(),
                limit: $body.limit,
                dir: $body.dir,
                recurse: $body.recurse,
            };
            let page = relations_page(&services, sender, params)?;
            let mut response = $endpoint::v1::Response::new(page.chunk);
            response.next_batch = page.next_batch;
            response.prev_batch = page.prev_batch;
            response.recursion_depth = page.recursion_depth;
            Ok(RumaResponse(response))
        }
    };
}

relations_route!(
    /// `GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}`
    get_relating_events_route, get_relating_events, |body| (None, None)
);
relations_route!(
    /// `GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}`
    get_relating_events_with_rel_type_route, get_relating_events_with_rel_type, |body| (Some(body.rel_type.to_string()), None)
);
relations_route!(
    /// `GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}`
    get_relating_events_with_rel_type_and_event_type_route,
    get_relating_events_with_rel_type_and_event_type,
    |body| (Some(body.rel_type.to_string()), Some(body.event_type.to_string()))
);

/// `GET /_matrix/client/v1/rooms/{roomId}/threads`
pub async fn get_threads_route(
    State(services): State<AppState>,
    request: Ruma<get_threads::v1::Request>,
) -> Result<RumaResponse<get_threads::v1::Response>> {
    let sender = request.sender()?;
    let body = &request.body;
    let limit = match body.limit {
        None => DEFAULT_THREADS_LIMIT,
        Some(limit) if limit == UInt::MIN => return Err(Error::invalid_param("limit must be greater than zero")),
        Some(limit) => usize::try_from(u64::from(limit)).unwrap_or(MAX_THREADS_LIMIT).min(MAX_THREADS_LIMIT),
    };
    let participated = body.include == get_threads::v1::IncludeThreads::Participated;
    let page = services.rooms.threads(&body.room_id, &sender.user_id, participated, body.from.as_deref(), limit)?;
    let viewer = Some((&*sender.user_id, &*sender.device_id));
    let chunk = page.events.iter().map(|event| services.rooms.client_event(event, viewer).and_then(|e| to_raw(&e))).collect::<Result<_>>()?;
    let mut response = get_threads::v1::Response::new(chunk);
    response.next_batch = page.next_batch;
    Ok(RumaResponse(response))
}
