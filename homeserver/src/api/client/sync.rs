//! `GET /_matrix/client/v3/sync`

use std::time::Duration;

use axum::{Json, extract::State};
use ruma::api::client::{filter::FilterDefinition, sync::sync_events};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    router::{AppState, Ruma},
    service::sync::{SyncRequest, parse_since, sync},
};

/// Long-polls are capped so a client cannot hold a connection for hours.
const MAX_TIMEOUT: Duration = Duration::from_secs(300);

pub async fn sync_events_route(
    State(services): State<AppState>,
    request: Ruma<sync_events::v3::Request>,
) -> Result<Json<Value>> {
    let sender = request.sender()?.clone();
    let body = request.body;
    let filter = match body.filter {
        None => FilterDefinition::default(),
        Some(sync_events::v3::Filter::FilterDefinition(definition)) => definition,
        // A filter starting with `{` is inline JSON that did not parse, not a filter ID.
        Some(sync_events::v3::Filter::FilterId(id)) if id.trim_start().starts_with('{') => {
            return Err(Error::bad_json("filter is not a valid filter definition"));
        }
        Some(sync_events::v3::Filter::FilterId(id)) => {
            let stored = services.filters.get(&sender.user_id, &id)?.ok_or_else(|| Error::not_found("Unknown filter"))?;
            serde_json::from_value(stored).map_err(|e| Error::internal(format!("stored filter: {e}")))?
        }
        Some(_) => FilterDefinition::default(),
    };
    // Syncing is how a client says it is open; `set_presence` says how to appear.
    services.presence.synced(&sender.user_id, super::presence::state_of(&body.set_presence)).await?;
    let sync_request = SyncRequest {
        user: &sender.user_id,
        device: &sender.device_id,
        since: parse_since(body.since.as_deref())?,
        full_state: body.full_state,
        timeout: body.timeout.unwrap_or_default().min(MAX_TIMEOUT),
        filter,
        ignored: Default::default(),
    };
    Ok(Json(sync(&services, sync_request).await?))
}
