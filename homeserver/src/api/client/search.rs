//! Server-side search (`POST /search`), `room_events` category.

use axum::{Json, extract::State};
use ruma::api::client::search::search_events::v3::{self, GroupingKey, OrderBy, SearchKeys};
use serde_json::{Map, Value, json};

use crate::{
    error::{Error, Result},
    router::{AppState, Ruma},
    service::rooms::{
        search::{GroupBy, SearchOrder, SearchRequest},
        search_index::SearchKey,
    },
};

/// Results per page when the filter names no limit (Synapse's default).
const DEFAULT_LIMIT: usize = 10;
/// The most results one page returns, whatever the client asks: each carries its context.
const MAX_LIMIT: usize = 100;
/// The most context events on either side of a result.
const MAX_CONTEXT: usize = 100;

/// `POST /_matrix/client/v3/search`
///
/// The response is built as JSON rather than with ruma's type, which leaves out an empty
/// `results` list that clients (matrix-js-sdk) read unconditionally.
pub async fn search_route(State(services): State<AppState>, request: Ruma<v3::Request>) -> Result<Json<Value>> {
    let sender = request.sender()?;
    let criteria = request
        .body
        .search_categories
        .room_events
        .as_ref()
        .ok_or_else(|| Error::invalid_param("Unknown or missing search category: only room_events is supported"))?;
    let keys = match &criteria.keys {
        None => SearchKey::ALL.to_vec(),
        Some(keys) => keys
            .iter()
            .map(|key: &SearchKeys| SearchKey::parse(key.as_str()).ok_or_else(|| Error::invalid_param(format!("Unknown search key {}", key.as_str()))))
            .collect::<Result<_>>()?,
    };
    let order = match &criteria.order_by {
        None | Some(OrderBy::Rank) => SearchOrder::Rank,
        Some(OrderBy::Recent) => SearchOrder::Recent,
        Some(other) => return Err(Error::invalid_param(format!("Unknown order_by {}", other.as_str()))),
    };
    let groupings = criteria
        .groupings
        .group_by
        .iter()
        .filter_map(|grouping| grouping.key.as_ref())
        .map(|key| match key {
            GroupingKey::RoomId => Ok(GroupBy::RoomId),
            GroupingKey::Sender => Ok(GroupBy::Sender),
            other => Err(Error::invalid_param(format!("Unknown group_by key {}", other.as_str()))),
        })
        .collect::<Result<Vec<_>>>()?;
    let limit = criteria.filter.limit.map_or(DEFAULT_LIMIT, |l| usize::try_from(u64::from(l)).unwrap_or(MAX_LIMIT)).min(MAX_LIMIT);
    let page = services.rooms.search(&SearchRequest {
        user: &sender.user_id,
        term: &criteria.search_term,
        keys: &keys,
        filter: &criteria.filter,
        order,
        limit,
        next_batch: request.body.next_batch.as_deref(),
        groupings: &groupings,
    })?;

    let viewer = Some((&*sender.user_id, &*sender.device_id));
    // ruma cannot tell an absent `event_context` from one with the default limits; an absent
    // one is far more common, so the defaults alone ask for no context.
    let context = &criteria.event_context;
    let wants_context = !context.is_default();
    let limit_of = |n: ruma::UInt| usize::try_from(u64::from(n)).unwrap_or(MAX_CONTEXT).min(MAX_CONTEXT);
    let mut results = Vec::with_capacity(page.results.len());
    for result in &page.results {
        let mut entry = json!({"rank": result.rank, "result": services.rooms.client_event(&result.event, viewer)?});
        if wants_context {
            let around = services.rooms.search_context(
                &sender.user_id,
                result,
                (limit_of(context.before_limit), limit_of(context.after_limit)),
                context.include_profile,
                &criteria.filter,
            )?;
            let to_client = |events: &[_]| events.iter().map(|e| services.rooms.client_event(e, viewer)).collect::<Result<Vec<_>>>();
            let mut object = json!({
                "events_before": to_client(&around.before)?,
                "events_after": to_client(&around.after)?,
                "start": around.start,
                "end": around.end,
            });
            if context.include_profile {
                object["profile_info"] = Value::Object(around.profiles.into_iter().collect());
            }
            entry["context"] = object;
        }
        results.push(entry);
    }

    let mut room_events = json!({
        "count": page.count,
        "results": results,
        "highlights": page.highlights,
    });
    if let Some(next_batch) = page.next_batch {
        room_events["next_batch"] = json!(next_batch);
    }
    if !page.groups.is_empty() {
        let groups: Map<String, Value> = page
            .groups
            .into_iter()
            .map(|(by, groups)| {
                let by_key: Map<String, Value> = groups
                    .into_iter()
                    .map(|group| {
                        let mut value = json!({"results": group.event_ids, "order": group.order});
                        if let Some(next_batch) = group.next_batch {
                            value["next_batch"] = json!(next_batch);
                        }
                        (group.key, value)
                    })
                    .collect();
                (by.as_str().to_owned(), Value::Object(by_key))
            })
            .collect();
        room_events["groups"] = Value::Object(groups);
    }
    if criteria.include_state == Some(true) {
        let mut state = Map::new();
        for result in &page.results {
            if state.contains_key(&result.room_id) {
                continue;
            }
            let room_id = ruma::RoomId::parse(&result.room_id).map_err(|e| Error::internal(e.to_string()))?;
            let record = services.rooms.room(&room_id)?;
            let events = services
                .rooms
                .state_map(record.current_state_group)?
                .values()
                .filter_map(|id| services.rooms.event(id).transpose())
                .map(|found| found.and_then(|(_, e)| services.rooms.client_event(&e, None)))
                .collect::<Result<Vec<_>>>()?;
            state.insert(result.room_id.clone(), Value::Array(events));
        }
        room_events["state"] = Value::Object(state);
    }
    Ok(Json(json!({"search_categories": {"room_events": room_events}})))
}
