//! Sync filters (`/user/{userId}/filter`).

use axum::extract::State;
use ruma::{UserId, api::client::filter::{FilterDefinition, create_filter, get_filter}};

use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse},
};

fn require_own(sender: &UserId, target: &UserId) -> Result<()> {
    if sender != target {
        return Err(Error::forbidden("Cannot access another user's filters"));
    }
    Ok(())
}

/// `POST /_matrix/client/v3/user/{userId}/filter`
pub async fn create_filter_route(
    State(services): State<AppState>,
    request: Ruma<create_filter::v3::Request>,
) -> Result<RumaResponse<create_filter::v3::Response>> {
    let body = &request.body;
    require_own(&request.sender()?.user_id, &body.user_id)?;
    let filter = serde_json::to_value(&body.filter).map_err(|e| Error::internal(e.to_string()))?;
    let filter_id = services.filters.create(&body.user_id, &filter).await?;
    Ok(RumaResponse(create_filter::v3::Response::new(filter_id)))
}

/// `GET /_matrix/client/v3/user/{userId}/filter/{filterId}`
pub async fn get_filter_route(
    State(services): State<AppState>,
    request: Ruma<get_filter::v3::Request>,
) -> Result<RumaResponse<get_filter::v3::Response>> {
    let body = &request.body;
    require_own(&request.sender()?.user_id, &body.user_id)?;
    let stored = services.filters.get(&body.user_id, &body.filter_id)?.ok_or_else(|| Error::not_found("Filter not found"))?;
    let filter: FilterDefinition = serde_json::from_value(stored).map_err(|e| Error::internal(e.to_string()))?;
    Ok(RumaResponse(get_filter::v3::Response::new(filter)))
}
