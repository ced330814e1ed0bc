//! Our users' device keys for other servers: `/user/devices/{userId}`, `/user/keys/query`,
//! `/user/keys/claim`. Other servers see what any user may see: no user-signing keys, no
//! signatures private to one of our users.

use std::collections::BTreeMap;

use axum::extract::State;
use ruma::{
    OwnedDeviceId, OwnedUserId, UInt,
    api::federation::{
        device::get_devices,
        keys::{claim_keys, get_keys},
    },
};

use crate::{
    api::client::{claimed_keys_to_ruma, to_raw},
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse},
    service::{Services, e2ee::query::KeysAnswer},
};

fn only_local<T>(services: &Services, requests: BTreeMap<OwnedUserId, T>) -> BTreeMap<OwnedUserId, T> {
    requests.into_iter().filter(|(user, _)| user.server_name() == services.server_name).collect()
}

fn display_names(services: &Services) -> impl Fn(&ruma::UserId, &ruma::DeviceId) -> Option<String> + Sync + '_ {
    |user, device| services.sessions.device(user, device).ok().flatten().and_then(|device| device.display_name)
}

/// `GET /_matrix/federation/v1/user/devices/{userId}`
pub async fn get_devices_route(
    State(services): State<AppState>,
    request: Ruma<get_devices::v1::Request>,
) -> Result<RumaResponse<get_devices::v1::Response>> {
    let user = request.body.user_id;
    if user.server_name() != services.server_name {
        return Err(Error::invalid_param("Not a user of this server"));
    }
    let mut answer = KeysAnswer::default();
    services.e2ee.query_local(&mut answer, None, &BTreeMap::from([(user.clone(), Vec::new())]), &display_names(&services))?;
    let mut devices = Vec::new();
    for (device_id, keys) in answer.device_keys.remove(&user).unwrap_or_default() {
        let mut device = get_devices::v1::UserDevice::new(device_id.clone(), to_raw(&keys)?);
        device.device_display_name = services.sessions.device(&user, &device_id)?.and_then(|device| device.display_name);
        devices.push(device);
    }
    let stream_id = UInt::new_saturating(services.e2ee.device_list_position(&user)?);
    let mut response = get_devices::v1::Response::new(user.clone(), stream_id);
    response.devices = devices;
    response.master_key = answer.master_keys.remove(&user).map(|key| to_raw(&key)).transpose()?;
    response.self_signing_key = answer.self_signing_keys.remove(&user).map(|key| to_raw(&key)).transpose()?;
    Ok(RumaResponse(response))
}

/// `POST /_matrix/federation/v1/user/keys/query`
pub async fn get_keys_route(
    State(services): State<AppState>,
    request: Ruma<get_keys::v1::Request>,
) -> Result<RumaResponse<get_keys::v1::Response>> {
    let users = only_local(&services, request.body.device_keys);
    let mut answer = KeysAnswer::default();
    services.e2ee.query_local(&mut answer, None, &users, &display_names(&services))?;
    let mut device_keys = BTreeMap::new();
    for (user, devices) in answer.device_keys {
        let devices: BTreeMap<OwnedDeviceId, _> = devices.into_iter().map(|(device, keys)| Ok((device, to_raw(&keys)?))).collect::<Result<_>>()?;
        device_keys.insert(user, devices);
    }
    let mut response = get_keys::v1::Response::new(device_keys);
    for (user, key) in answer.master_keys {
        response.master_keys.insert(user, to_raw(&key)?);
    }
    for (user, key) in answer.self_signing_keys {
        response.self_signing_keys.insert(user, to_raw(&key)?);
    }
    Ok(RumaResponse(response))
}

/// `POST /_matrix/federation/v1/user/keys/claim`
pub async fn claim_keys_route(
    State(services): State<AppState>,
    request: Ruma<claim_keys::v1::Request>,
) -> Result<RumaResponse<claim_keys::v1::Response>> {
    let requests: BTreeMap<OwnedUserId, BTreeMap<OwnedDeviceId, String>> = only_local(&services, request.body.one_time_keys)
        .into_iter()
        .map(|(user, devices)| (user, devices.into_iter().map(|(device, algorithm)| (device, algorithm.to_string())).collect()))
        .collect();
    let one_time_keys = claimed_keys_to_ruma(services.e2ee.claim_local_keys(&requests).await?)?;
    Ok(RumaResponse(claim_keys::v1::Response::new(one_time_keys)))
}
