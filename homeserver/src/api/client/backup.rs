//! Server-side key backup (spec: "Server-side key backups"): versions, and the encrypted
//! session keys in each.

use std::collections::BTreeMap;

use axum::extract::State;
use ruma::{
    OwnedRoomId, UInt, UserId,
    api::client::backup::{
        RoomKeyBackup, add_backup_keys, add_backup_keys_for_room, add_backup_keys_for_session, create_backup_version,
        delete_backup_keys, delete_backup_keys_for_room, delete_backup_keys_for_session, delete_backup_version, get_backup_info,
        get_backup_keys, get_backup_keys_for_room, get_backup_keys_for_session, get_latest_backup_info, update_backup_version,
    },
    serde::Raw,
};
use serde_json::Value;

use super::to_raw;
use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse},
    service::e2ee::backup::{BackupKeys, BackupVersion},
};

fn value_of<T>(raw: &Raw<T>) -> Result<Value> {
    // The typed parse refuses what is not a backup algorithm or key data (M_BAD_JSON).
    raw.deserialize_as_unchecked::<Value>().map_err(|e| Error::bad_json(e.to_string()))
}

fn typed_key<T: serde::de::DeserializeOwned>(raw: &Raw<T>) -> Result<Value> {
    raw.deserialize().map_err(|e| Error::bad_json(e.to_string()))?;
    value_of(raw)
}

fn sessions_of(sessions: &BTreeMap<String, Raw<ruma::api::client::backup::KeyBackupData>>) -> Result<BTreeMap<String, Value>> {
    sessions.iter().map(|(session, key)| Ok((session.clone(), typed_key(key)?))).collect()
}

fn etag_and_count(backup: &BackupVersion) -> (String, UInt) {
    (backup.etag.to_string(), UInt::new_saturating(backup.count))
}

fn raw_sessions(sessions: BTreeMap<String, Value>) -> Result<BTreeMap<String, Raw<ruma::api::client::backup::KeyBackupData>>> {
    sessions.into_iter().map(|(session, key)| Ok((session, to_raw(&key)?))).collect()
}

fn user(request_sender: &crate::service::sessions::AuthedUser) -> &UserId {
    &request_sender.user_id
}

/// `POST /_matrix/client/v3/room_keys/version`
pub async fn create_backup_version_route(
    State(services): State<AppState>,
    request: Ruma<create_backup_version::v3::Request>,
) -> Result<RumaResponse<create_backup_version::v3::Response>> {
    let algorithm = typed_key(&request.body.algorithm)?;
    let version = services.e2ee.create_backup(user(request.sender()?), algorithm).await?;
    Ok(RumaResponse(create_backup_version::v3::Response::new(version)))
}

/// `GET /_matrix/client/v3/room_keys/version`
pub async fn get_latest_backup_info_route(
    State(services): State<AppState>,
    request: Ruma<get_latest_backup_info::v3::Request>,
) -> Result<RumaResponse<get_latest_backup_info::v3::Response>> {
    let (version, backup) = services.e2ee.latest_backup(user(request.sender()?))?.ok_or_else(|| Error::not_found("No backup"))?;
    let (etag, count) = etag_and_count(&backup);
    Ok(RumaResponse(get_latest_backup_info::v3::Response::new(to_raw(&backup.algorithm)?, count, etag, version)))
}

/// `GET /_matrix/client/v3/room_keys/version/{version}`
pub async fn get_backup_info_route(
    State(services): State<AppState>,
    request: Ruma<get_backup_info::v3::Request>,
) -> Result<RumaResponse<get_backup_info::v3::Response>> {
    let version = request.body.version.clone();
    let backup = services.e2ee.backup(user(request.sender()?), &version)?;
    let (etag, count) = etag_and_count(&backup);
    Ok(RumaResponse(get_backup_info::v3::Response::new(to_raw(&backup.algorithm)?, count, etag, version)))
}

/// `PUT /_matrix/client/v3/room_keys/version/{version}`
pub async fn update_backup_version_route(
    State(services): State<AppState>,
    request: Ruma<update_backup_version::v3::Request>,
) -> Result<RumaResponse<update_backup_version::v3::Response>> {
    let mut algorithm = typed_key(&request.body.algorithm)?;
    // The body may repeat the version; it must then be the one in the path.
    if let Some(version) = algorithm.as_object_mut().and_then(|object| object.remove("version"))
        && version.as_str() != Some(request.body.version.as_str())
    {
        return Err(Error::invalid_param("The version in the body is not the one in the path"));
    }
    services.e2ee.update_backup(user(request.sender()?), &request.body.version, algorithm).await?;
    Ok(RumaResponse(update_backup_version::v3::Response::new()))
}

/// `DELETE /_matrix/client/v3/room_keys/version/{version}`
pub async fn delete_backup_version_route(
    State(services): State<AppState>,
    request: Ruma<delete_backup_version::v3::Request>,
) -> Result<RumaResponse<delete_backup_version::v3::Response>> {
    services.e2ee.delete_backup(user(request.sender()?), &request.body.version).await?;
    Ok(RumaResponse(delete_backup_version::v3::Response::new()))
}

/// `PUT /_matrix/client/v3/room_keys/keys`
pub async fn add_backup_keys_route(
    State(services): State<AppState>,
    request: Ruma<add_backup_keys::v3::Request>,
) -> Result<RumaResponse<add_backup_keys::v3::Response>> {
    let keys: BackupKeys =
        request.body.rooms.iter().map(|(room, backup)| Ok((room.to_string(), sessions_of(&backup.sessions)?))).collect::<Result<_>>()?;
    let backup = services.e2ee.add_backup_keys(user(request.sender()?), &request.body.version, keys).await?;
    let (etag, count) = etag_and_count(&backup);
    Ok(RumaResponse(add_backup_keys::v3::Response::new(etag, count)))
}

/// `PUT /_matrix/client/v3/room_keys/keys/{roomId}`
pub async fn add_backup_keys_for_room_route(
    State(services): State<AppState>,
    request: Ruma<add_backup_keys_for_room::v3::Request>,
) -> Result<RumaResponse<add_backup_keys_for_room::v3::Response>> {
    let body = &request.body;
    let keys = BackupKeys::from([(body.room_id.to_string(), sessions_of(&body.sessions)?)]);
    let backup = services.e2ee.add_backup_keys(user(request.sender()?), &body.version, keys).await?;
    let (etag, count) = etag_and_count(&backup);
    Ok(RumaResponse(add_backup_keys_for_room::v3::Response::new(etag, count)))
}

/// `PUT /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}`
pub async fn add_backup_keys_for_session_route(
    State(services): State<AppState>,
    request: Ruma<add_backup_keys_for_session::v3::Request>,
) -> Result<RumaResponse<add_backup_keys_for_session::v3::Response>> {
    let body = &request.body;
    let session = BTreeMap::from([(body.session_id.clone(), typed_key(&body.session_data)?)]);
    let keys = BackupKeys::from([(body.room_id.to_string(), session)]);
    let backup = services.e2ee.add_backup_keys(user(request.sender()?), &body.version, keys).await?;
    let (etag, count) = etag_and_count(&backup);
    Ok(RumaResponse(add_backup_keys_for_session::v3::Response::new(etag, count)))
}

/// `GET /_matrix/client/v3/room_keys/keys`
pub async fn get_backup_keys_route(
    State(services): State<AppState>,
    request: Ruma<get_backup_keys::v3::Request>,
) -> Result<RumaResponse<get_backup_keys::v3::Response>> {
    let keys = services.e2ee.backup_keys(user(request.sender()?), &request.body.version, None, None)?;
    let mut rooms = BTreeMap::new();
    for (room, sessions) in keys {
        let Ok(room) = OwnedRoomId::try_from(room) else { continue };
        rooms.insert(room, RoomKeyBackup::new(raw_sessions(sessions)?));
    }
    Ok(RumaResponse(get_backup_keys::v3::Response::new(rooms)))
}

/// `GET /_matrix/client/v3/room_keys/keys/{roomId}`
pub async fn get_backup_keys_for_room_route(
    State(services): State<AppState>,
    request: Ruma<get_backup_keys_for_room::v3::Request>,
) -> Result<RumaResponse<get_backup_keys_for_room::v3::Response>> {
    let body = &request.body;
    let mut keys = services.e2ee.backup_keys(user(request.sender()?), &body.version, Some(body.room_id.as_str()), None)?;
    let sessions = keys.remove(body.room_id.as_str()).unwrap_or_default();
    Ok(RumaResponse(get_backup_keys_for_room::v3::Response::new(raw_sessions(sessions)?)))
}

/// `GET /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}`
pub async fn get_backup_keys_for_session_route(
    State(services): State<AppState>,
    request: Ruma<get_backup_keys_for_session::v3::Request>,
) -> Result<RumaResponse<get_backup_keys_for_session::v3::Response>> {
    let body = &request.body;
    let mut keys = services.e2ee.backup_keys(user(request.sender()?), &body.version, Some(body.room_id.as_str()), Some(&body.session_id))?;
    let key = keys
        .remove(body.room_id.as_str())
        .and_then(|mut sessions| sessions.remove(&body.session_id))
        .ok_or_else(|| Error::not_found("No backed-up key for this session"))?;
    Ok(RumaResponse(get_backup_keys_for_session::v3::Response::new(to_raw(&key)?)))
}

/// `DELETE /_matrix/client/v3/room_keys/keys`
pub async fn delete_backup_keys_route(
    State(services): State<AppState>,
    request: Ruma<delete_backup_keys::v3::Request>,
) -> Result<RumaResponse<delete_backup_keys::v3::Response>> {
    let backup = services.e2ee.delete_backup_keys(user(request.sender()?), &request.body.version, None, None).await?;
    let (etag, count) = etag_and_count(&backup);
    Ok(RumaResponse(delete_backup_keys::v3::Response::new(etag, count)))
}

/// `DELETE /_matrix/client/v3/room_keys/keys/{roomId}`
pub async fn delete_backup_keys_for_room_route(
    State(services): State<AppState>,
    request: Ruma<delete_backup_keys_for_room::v3::Request>,
) -> Result<RumaResponse<delete_backup_keys_for_room::v3::Response>> {
    let body = &request.body;
    let backup = services.e2ee.delete_backup_keys(user(request.sender()?), &body.version, Some(body.room_id.as_str()), None).await?;
    let (etag, count) = etag_and_count(&backup);
    Ok(RumaResponse(delete_backup_keys_for_room::v3::Response::new(etag, count)))
}

/// `DELETE /_matrix/client/v3/room_keys/keys/{roomId}/{sessionId}`
pub async fn delete_backup_keys_for_session_route(
    State(services): State<AppState>,
    request: Ruma<delete_backup_keys_for_session::v3::Request>,
) -> Result<RumaResponse<delete_backup_keys_for_session::v3::Response>> {
    let body = &request.body;
    let backup = services
        .e2ee
        .delete_backup_keys(user(request.sender()?), &body.version, Some(body.room_id.as_str()), Some(&body.session_id))
        .await?;
    let (etag, count) = etag_and_count(&backup);
    Ok(RumaResponse(delete_backup_keys_for_session::v3::Response::new(etag, count)))
}
