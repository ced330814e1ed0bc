//! The admin HTTP API, on Synapse's paths and shapes so existing tooling
//! (`register_new_matrix_user`, synapse-admin) works against Myelin.

mod register;
mod reports;
mod users;

use axum::{Json, Router, routing::{get, post}};

use crate::router::AppState;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route("/_synapse/admin/v1/server_version", get(server_version_route))
        .route("/_synapse/admin/v1/register", get(register::get_nonce_route).post(register::register_route))
        .route("/_synapse/admin/v2/users", get(users::list_users_route))
        .route("/_synapse/admin/v2/users/{user_id}", get(users::get_user_route).put(users::put_user_route))
        .route("/_synapse/admin/v1/deactivate/{user_id}", post(users::deactivate_user_route))
        .route("/_synapse/admin/v1/reset_password/{user_id}", post(users::reset_password_route))
        .route("/_synapse/admin/v1/event_reports", get(reports::list_event_reports_route))
        .route("/_synapse/admin/v1/event_reports/{id}", get(reports::get_report_route).delete(reports::delete_report_route))
        .route("/_synapse/admin/v1/room_reports", get(reports::list_room_reports_route))
}

/// `GET /_synapse/admin/v1/server_version`. Synapse serves it without authentication.
async fn server_version_route() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "server_version": crate::VERSION }))
}
