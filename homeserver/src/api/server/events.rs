//! Reading a room's past over federation: `/event`, `/state`, `/state_ids`, `/event_auth`,
//! `/backfill`, `/get_missing_events`.

use axum::Router;

use crate::router::AppState;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
}
