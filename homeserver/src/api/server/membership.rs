//! Membership over federation as the resident server: `make_join`/`send_join`,
//! `make_leave`/`send_leave`, `make_knock`/`send_knock`, and `invite` as the invited server.

use axum::Router;

use crate::router::AppState;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
}
