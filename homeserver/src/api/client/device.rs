//! Device management. Deleting devices requires the account password (UIA).

use axum::extract::State;
use ruma::{
    DeviceId, MilliSecondsSinceUnixEpoch, OwnedDeviceId, UInt, UserId,
    api::client::device::{self as api, delete_device, delete_devices, get_device, get_devices, update_device},
};

use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse},
    service::{Services, sessions},
};

fn to_api_device(services: &Services, user_id: &UserId, device_id: &DeviceId, device: sessions::Device) -> api::Device {
    let mut out = api::Device::new(device_id.to_owned());
    out.display_name = device.display_name;
    match services.sessions.last_seen(user_id, device_id) {
        Some(seen) => {
            out.last_seen_ip = Some(seen.ip.to_string());
            out.last_seen_ts = Some(MilliSecondsSinceUnixEpoch(UInt::new_saturating(seen.ts)));
        }
        None => out.last_seen_ts = Some(MilliSecondsSinceUnixEpoch(UInt::new_saturating(device.created_ts))),
    }
    out
}

/// `GET /_matrix/client/v3/devices`
pub async fn get_devices_route(
    State(services): State<AppState>,
    request: Ruma<get_devices::v3::Request>,
) -> Result<RumaResponse<get_devices::v3::Response>> {
    let user_id = &request.sender()?.user_id;
    let devices = services
        .sessions
        .devices(user_id)?
        .into_iter()
        .map(|(device_id, device)| to_api_device(&services, user_id, &device_id, device))
        .collect();
    Ok(RumaResponse(get_devices::v3::Response::new(devices)))
}

/// `GET /_matrix/client/v3/devices/{deviceId}`
pub async fn get_device_route(
    State(services): State<AppState>,
    request: Ruma<get_device::v3::Request>,
) -> Result<RumaResponse<get_device::v3::Response>> {
    let user_id = &request.sender()?.user_id;
    let device_id = &request.body.device_id;
    let device = services.sessions.device(user_id, device_id)?.ok_or_else(|| Error::not_found("Device not found"))?;
    Ok(RumaResponse(get_device::v3::Response::new(to_api_device(&services, user_id, device_id, device))))
}

/// `PUT /_matrix/client/v3/devices/{deviceId}`
pub async fn update_device_route(
    State(services): State<AppState>,
    request: Ruma<update_device::v3::Request>,
) -> Result<RumaResponse<update_device::v3::Response>> {
    let user_id = &request.sender()?.user_id;
    services.sessions.rename_device(user_id, &request.body.device_id, request.body.display_name.clone()).await?;
    Ok(RumaResponse(update_device::v3::Response::new()))
}

/// `DELETE /_matrix/client/v3/devices/{deviceId}`
pub async fn delete_device_route(
    State(services): State<AppState>,
    request: Ruma<delete_device::v3::Request>,
) -> Result<RumaResponse<delete_device::v3::Response>> {
    let user_id = request.sender()?.user_id.clone();
    let body = request.body;
    if services.sessions.device(&user_id, &body.device_id)?.is_none() {
        return Err(Error::not_found("Device not found"));
    }
    services.uiaa.require_password(&services.users, &user_id, body.auth.as_ref()).await?;
    services.sessions.delete_devices(&user_id, &[body.device_id]).await?;
    Ok(RumaResponse(delete_device::v3::Response::new()))
}

/// `POST /_matrix/client/v3/delete_devices`
pub async fn delete_devices_route(
    State(services): State<AppState>,
    request: Ruma<delete_devices::v3::Request>,
) -> Result<RumaResponse<delete_devices::v3::Response>> {
    let user_id = request.sender()?.user_id.clone();
    let body = request.body;
    services.uiaa.require_password(&services.users, &user_id, body.auth.as_ref()).await?;
    let devices: Vec<OwnedDeviceId> = body.devices;
    services.sessions.delete_devices(&user_id, &devices).await?;
    Ok(RumaResponse(delete_devices::v3::Response::new()))
}
