//! Media administration on Synapse's admin paths (`docs/admin_api/media_admin_api.md` and the
//! user media endpoints of `user_admin_api.md`): quarantine and protection, listings, deletion
//! of local media and purges of the remote cache.
//!
//! Two Myelin extensions, which Synapse ignores: the purges (`POST /media/delete`,
//! `/purge_media_cache`) take `limit` (delete at most this many) and answer `remaining` (how
//! many more match), so a client can purge in batches and show real progress; and
//! `POST /media/delete` takes `user_id` to purge one user's media by age and size.

use std::collections::HashSet;

use axum::{
    Json,
    extract::{Path, RawQuery, State},
};
use ruma::{OwnedServerName, OwnedUserId, RoomId, ServerName, UserId};
use serde_json::{Value, json};

use crate::{
    error::{Error, Result},
    router::{AdminUser, AppState},
    service::{
        media::{
            admin::{LocalPurge, MediaInfo, MediaOrder, Purged, media_of_room, sort_media, split_mxc},
            is_valid_media_id,
        },
        users::ListFilter,
    },
};

/// Timestamps below this are in seconds by mistake (Dec 1970 in ms, year 2920 in s), as
/// Synapse reasons.
const SMALLEST_PLAUSIBLE_MS: u64 = 30_000_000_000;

/// A query string whose bad values are Matrix errors (`M_INVALID_PARAM`, `M_MISSING_PARAM`).
struct Params(Vec<(String, String)>);

impl Params {
    fn new(raw: Option<String>) -> Self {
        Self(form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    fn number(&self, name: &str) -> Result<Option<u64>> {
        self.get(name)
            .map(|value| value.parse().map_err(|_| Error::invalid_param(format!("{name} must be a non-negative integer"))))
            .transpose()
    }

    fn flag(&self, name: &str, default: bool) -> Result<bool> {
        match self.get(name) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(_) => Err(Error::invalid_param(format!("{name} must be true or false"))),
        }
    }

    /// A required millisecond timestamp that is not in seconds by mistake.
    fn before_ts(&self) -> Result<u64> {
        let before = self.number("before_ts")?.ok_or_else(|| Error::missing_param("Missing integer query parameter before_ts"))?;
        if before < SMALLEST_PLAUSIBLE_MS {
            return Err(Error::invalid_param("before_ts is from 1970: it must be in milliseconds"));
        }
        Ok(before)
    }

    /// How many a batch may delete: `limit`, or everything.
    fn batch_limit(&self) -> Result<usize> {
        Ok(self.number("limit")?.map_or(usize::MAX, |limit| usize::try_from(limit).unwrap_or(usize::MAX)))
    }
}

fn server_name(raw: &str) -> Result<OwnedServerName> {
    ServerName::parse(raw).map_err(|e| Error::invalid_param(format!("Invalid server name: {e}")))
}

fn media_id(raw: &str) -> Result<&str> {
    if is_valid_media_id(raw) { Ok(raw) } else { Err(Error::not_found("Unknown media")) }
}

fn room_id(raw: &str) -> Result<&RoomId> {
    <&RoomId>::try_from(raw).map_err(|e| Error::invalid_param(format!("Invalid room ID: {e}")))
}

/// A local user who exists, as Synapse requires of the user media endpoints.
fn local_user(services: &AppState, raw: &str) -> Result<OwnedUserId> {
    let user_id = UserId::parse(raw).map_err(|e| Error::invalid_param(format!("Invalid user ID: {e}")))?;
    if !services.users.is_local(&user_id) {
        return Err(Error::invalid_param("Can only look up local users"));
    }
    if !services.users.exists(&user_id)? {
        return Err(Error::not_found("Unknown user"));
    }
    Ok(user_id)
}

fn local_media_only(services: &AppState, server: &ServerName) -> Result<()> {
    if server != services.server_name {
        return Err(Error::invalid_param("Can only delete local media"));
    }
    Ok(())
}

/// `POST /_synapse/admin/v1/media/quarantine/{serverName}/{mediaId}`
pub async fn quarantine_media_route(
    State(services): State<AppState>,
    AdminUser(admin): AdminUser,
    Path((server, id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    services.media.set_quarantine(&server_name(&server)?, media_id(&id)?, Some(&admin.user_id)).await?;
    Ok(Json(json!({})))
}

/// `POST /_synapse/admin/v1/media/unquarantine/{serverName}/{mediaId}`
pub async fn unquarantine_media_route(
    State(services): State<AppState>,
    _: AdminUser,
    Path((server, id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    services.media.set_quarantine(&server_name(&server)?, media_id(&id)?, None).await?;
    Ok(Json(json!({})))
}

/// `POST /_synapse/admin/v1/room/{roomId}/media/quarantine` (and the older
/// `/_synapse/admin/v1/quarantine_media/{roomId}`)
pub async fn quarantine_room_media_route(
    State(services): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(room): Path<String>,
) -> Result<Json<Value>> {
    let uris = media_of_room(&services.rooms, room_id(&room)?)?;
    let count = services.media.quarantine_uris(uris, &admin.user_id).await?;
    Ok(Json(json!({ "num_quarantined": count })))
}

/// `POST /_synapse/admin/v1/user/{userId}/media/quarantine`
pub async fn quarantine_user_media_route(
    State(services): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(user): Path<String>,
) -> Result<Json<Value>> {
    let user_id = local_user(&services, &user)?;
    let count = services.media.quarantine_uploaded_by(&user_id, &admin.user_id).await?;
    Ok(Json(json!({ "num_quarantined": count })))
}

/// `POST /_synapse/admin/v1/media/protect/{mediaId}`
pub async fn protect_media_route(State(services): State<AppState>, _: AdminUser, Path(id): Path<String>) -> Result<Json<Value>> {
    services.media.set_protected(media_id(&id)?, true).await?;
    Ok(Json(json!({})))
}

/// `POST /_synapse/admin/v1/media/unprotect/{mediaId}`
pub async fn unprotect_media_route(State(services): State<AppState>, _: AdminUser, Path(id): Path<String>) -> Result<Json<Value>> {
    services.media.set_protected(media_id(&id)?, false).await?;
    Ok(Json(json!({})))
}

/// One item of a user's media list (Synapse's shape; access is not tracked).
fn listed_json(info: &MediaInfo) -> Value {
    json!({
        "media_id": info.media_id,
        "created_ts": info.record.created_ms,
        "last_access_ts": null,
        "media_length": info.size(),
        "media_type": info.record.content_type,
        "upload_name": info.record.filename,
        "quarantined_by": info.flags.quarantined_by,
        "safe_from_quarantine": info.flags.protected,
    })
}

/// A user's media in the order and page the query asks for, and the total before paging.
fn user_media_page(services: &AppState, user_id: &UserId, params: &Params) -> Result<(Vec<MediaInfo>, usize, usize)> {
    let from = params.number("from")?.map_or(0, |from| usize::try_from(from).unwrap_or(usize::MAX));
    let limit = params.number("limit")?.map_or(100, |limit| usize::try_from(limit).unwrap_or(usize::MAX));
    let order = match params.get("order_by") {
        None => MediaOrder::CreatedTs,
        Some(name) => MediaOrder::parse(name).ok_or_else(|| Error::invalid_param(format!("Unknown order_by {name:?}")))?,
    };
    // Newest first unless an order or a direction is asked for.
    let descending = match params.get("dir") {
        None => params.get("order_by").is_none(),
        Some("f") => false,
        Some("b") => true,
        Some(_) => return Err(Error::invalid_param("dir must be f or b")),
    };
    let mut media = services.media.uploaded_by(user_id)?;
    sort_media(&mut media, order, descending);
    let total = media.len();
    let page = media.into_iter().skip(from).take(limit).collect();
    Ok((page, total, from))
}

/// `GET /_synapse/admin/v1/users/{userId}/media`
pub async fn list_user_media_route(
    State(services): State<AppState>,
    _: AdminUser,
    Path(user): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>> {
    let user_id = local_user(&services, &user)?;
    let (page, total, from) = user_media_page(&services, &user_id, &Params::new(query))?;
    let mut body = json!({ "media": page.iter().map(listed_json).collect::<Vec<_>>(), "total": total });
    if from + page.len() < total {
        body["next_token"] = json!(from + page.len());
    }
    Ok(Json(body))
}

/// `DELETE /_synapse/admin/v1/users/{userId}/media`: deletes the page the same query would
/// list (100 by default).
pub async fn delete_user_media_route(
    State(services): State<AppState>,
    _: AdminUser,
    Path(user): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>> {
    let user_id = local_user(&services, &user)?;
    let (page, _, _) = user_media_page(&services, &user_id, &Params::new(query))?;
    let keys: Vec<_> = page.into_iter().map(|info| (info.server_name, info.media_id)).collect();
    let deleted = services.media.delete(&keys).await?;
    Ok(Json(deleted_json(deleted.into_iter().map(|(_, id)| id).collect(), None)))
}

/// `GET /_synapse/admin/v1/room/{roomId}/media`
pub async fn list_room_media_route(State(services): State<AppState>, _: AdminUser, Path(room): Path<String>) -> Result<Json<Value>> {
    let uris = media_of_room(&services.rooms, room_id(&room)?)?;
    let (local, remote): (Vec<String>, Vec<String>) =
        uris.into_iter().partition(|uri| split_mxc(uri).is_some_and(|(server, _)| server == services.server_name.as_str()));
    Ok(Json(json!({ "local": local, "remote": remote })))
}

/// `GET /_synapse/admin/v1/media/{serverName}/{mediaId}`
pub async fn get_media_info_route(
    State(services): State<AppState>,
    _: AdminUser,
    Path((server, id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let info = services.media.info(&server_name(&server)?, media_id(&id)?)?;
    let mut media_info = listed_json(&info);
    media_info["media_origin"] = json!(info.server_name);
    media_info["user_id"] = json!(info.record.uploader);
    media_info["sha256"] = json!(info.record.file.as_ref().map(|file| &file.sha256));
    media_info["filesystem_id"] = media_info["sha256"].clone();
    media_info["url_cache"] = Value::Null;
    media_info["authenticated"] = json!(true);
    Ok(Json(json!({ "media_info": media_info })))
}

/// `DELETE /_synapse/admin/v1/media/{serverName}/{mediaId}`
pub async fn delete_media_route(
    State(services): State<AppState>,
    _: AdminUser,
    Path((server, id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let server = server_name(&server)?;
    local_media_only(&services, &server)?;
    let deleted = services.media.delete(&[(server.to_string(), media_id(&id)?.to_owned())]).await?;
    if deleted.is_empty() {
        return Err(Error::not_found("Unknown media"));
    }
    Ok(Json(deleted_json(deleted.into_iter().map(|(_, id)| id).collect(), None)))
}

/// `POST /_synapse/admin/v1/media/delete?before_ts=&size_gt=&keep_profiles=` (and the older
/// `/_synapse/admin/v1/media/{serverName}/delete`): local media stored before `before_ts`.
pub async fn purge_local_media_route(
    State(services): State<AppState>,
    _: AdminUser,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>> {
    purge_local(&services, &Params::new(query)).await
}

/// `POST /_synapse/admin/v1/media/{serverName}/delete` (deprecated in Synapse)
pub async fn purge_local_media_on_route(
    State(services): State<AppState>,
    _: AdminUser,
    Path(server): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>> {
    local_media_only(&services, &server_name(&server)?)?;
    purge_local(&services, &Params::new(query)).await
}

async fn purge_local(services: &AppState, params: &Params) -> Result<Json<Value>> {
    let before_ms = params.before_ts()?;
    let size_gt = params.number("size_gt")?.unwrap_or(0);
    let uploader = params.get("user_id").map(|user| local_user(services, user)).transpose()?;
    let keep = if params.flag("keep_profiles", true)? { profile_media(services)? } else { HashSet::new() };
    let purge = LocalPurge { before_ms, size_gt, uploader: uploader.map(|user| user.to_string()), keep, limit: params.batch_limit()? };
    let Purged { deleted, remaining } = services.media.purge_local(&purge).await?;
    Ok(Json(deleted_json(deleted, Some(remaining))))
}

/// The IDs of local media that are users' avatars, which `keep_profiles` keeps. Room avatars
/// and per-room member avatars are not looked at yet.
fn profile_media(services: &AppState) -> Result<HashSet<String>> {
    let filter = ListFilter { name_contains: None, include_deactivated: true };
    let (users, _) = services.users.list(&filter, 0, usize::MAX)?;
    Ok(users
        .iter()
        .filter_map(|(_, account)| split_mxc(account.avatar_url.as_deref()?))
        .filter(|(server, _)| *server == services.server_name.as_str())
        .map(|(_, media_id)| media_id.to_owned())
        .collect())
}

/// `POST /_synapse/admin/v1/purge_media_cache?before_ts=`: cached remote media fetched before
/// `before_ts`.
pub async fn purge_media_cache_route(
    State(services): State<AppState>,
    _: AdminUser,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>> {
    let params = Params::new(query);
    let Purged { deleted, remaining } = services.media.purge_remote(params.before_ts()?, params.batch_limit()?).await?;
    Ok(Json(json!({ "deleted": deleted.len(), "remaining": remaining })))
}

fn deleted_json(deleted: Vec<String>, remaining: Option<usize>) -> Value {
    let mut body = json!({ "total": deleted.len(), "deleted_media": deleted });
    if let Some(remaining) = remaining {
        body["remaining"] = json!(remaining);
    }
    body
}
