//! The admin HTTP API, on Synapse's paths and shapes so existing tooling
//! (`register_new_matrix_user`, synapse-admin) works against Myelin.

mod media;
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
        .route("/_synapse/admin/v1/media/quarantine/{server_name}/{media_id}", post(media::quarantine_media_route))
        .route("/_synapse/admin/v1/media/unquarantine/{server_name}/{media_id}", post(media::unquarantine_media_route))
        .route("/_synapse/admin/v1/room/{room_id}/media/quarantine", post(media::quarantine_room_media_route))
        .route("/_synapse/admin/v1/quarantine_media/{room_id}", post(media::quarantine_room_media_route))
        .route("/_synapse/admin/v1/user/{user_id}/media/quarantine", post(media::quarantine_user_media_route))
        .route("/_synapse/admin/v1/media/protect/{media_id}", post(media::protect_media_route))
        .route("/_synapse/admin/v1/media/unprotect/{media_id}", post(media::unprotect_media_route))
        .route("/_synapse/admin/v1/users/{user_id}/media", get(media::list_user_media_route).delete(media::delete_user_media_route))
        .route("/_synapse/admin/v1/room/{room_id}/media", get(media::list_room_media_route))
        .route("/_synapse/admin/v1/media/{server_name}/{media_id}", get(media::get_media_info_route).delete(media::delete_media_route))
        .route("/_synapse/admin/v1/media/delete", post(media::purge_local_media_route))
        .route("/_synapse/admin/v1/media/{server_name}/delete", post(media::purge_local_media_on_route))
        .route("/_synapse/admin/v1/purge_media_cache", post(media::purge_media_cache_route))
}

/// `GET /_synapse/admin/v1/server_version`. Synapse serves it without authentication.
async fn server_version_route() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "server_version": crate::VERSION }))
}
