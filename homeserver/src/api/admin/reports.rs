//! Reports users filed, on Synapse's admin paths: `/_synapse/admin/v1/event_reports` (and
//! `/{id}`), plus `room_reports` for reports of whole rooms.

use axum::{
    Json,
    extract::{Path, Query, State},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    error::{Error, Result},
    router::{AdminUser, AppState},
    service::reports::Report,
};

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    from: usize,
    #[serde(default = "default_limit")]
    limit: usize,
    /// `b` (newest first, the default) or `f`.
    #[serde(default)]
    dir: Option<String>,
    user_id: Option<String>,
    room_id: Option<String>,
}

fn default_limit() -> usize {
    100
}

fn report_json(report: &Report) -> Value {
    json!({
        "id": report.id,
        "received_ts": report.received_ts,
        "room_id": report.room_id,
        "event_id": report.event_id,
        "user_id": report.user_id,
        "reason": report.reason,
        "sender": report.sender,
    })
}

fn list(state: &AppState, query: &ListQuery, of_events: bool, key: &str) -> Result<Json<Value>> {
    let newest_first = query.dir.as_deref() != Some("f");
    let limit = query.limit.clamp(1, 1000);
    let keep = |report: &Report| {
        report.event_id.is_some() == of_events
            && query.user_id.as_deref().is_none_or(|user| report.user_id.contains(user))
            && query.room_id.as_deref().is_none_or(|room| report.room_id.contains(room))
    };
    let (page, total) = state.reports.list(keep, newest_first, query.from, limit)?;
    let mut body = json!({ key: page.iter().map(report_json).collect::<Vec<_>>(), "total": total });
    if query.from + page.len() < total {
        body["next_token"] = json!(query.from + page.len());
    }
    Ok(Json(body))
}

/// `GET /_synapse/admin/v1/event_reports`
pub async fn list_event_reports_route(State(state): State<AppState>, _: AdminUser, Query(query): Query<ListQuery>) -> Result<Json<Value>> {
    list(&state, &query, true, "event_reports")
}

/// `GET /_synapse/admin/v1/room_reports`
pub async fn list_room_reports_route(State(state): State<AppState>, _: AdminUser, Query(query): Query<ListQuery>) -> Result<Json<Value>> {
    list(&state, &query, false, "room_reports")
}

/// `GET /_synapse/admin/v1/event_reports/{id}`
pub async fn get_report_route(State(state): State<AppState>, _: AdminUser, Path(id): Path<u64>) -> Result<Json<Value>> {
    let report = state.reports.get(id)?.ok_or_else(|| Error::not_found("Report not found"))?;
    let mut body = report_json(&report);
    if let Some(event_id) = &report.event_id
        && let Some((_, event)) = state.rooms.event(event_id)?
    {
        body["event_json"] = event.pdu.clone();
    }
    Ok(Json(body))
}

/// `DELETE /_synapse/admin/v1/event_reports/{id}`
pub async fn delete_report_route(State(state): State<AppState>, _: AdminUser, Path(id): Path<u64>) -> Result<Json<Value>> {
    if !state.reports.delete(id).await? {
        return Err(Error::not_found("Report not found"));
    }
    Ok(Json(json!({})))
}
