//! Dehydrated devices (MSC3814, unstable): `/_matrix/client/unstable/org.matrix.msc3814.v1/
//! dehydrated_device` and its `/{deviceId}/events`.

use axum::extract::State;
use ruma::api::client::dehydrated_device::{delete_dehydrated_device, get_dehydrated_device, get_events, put_dehydrated_device};

use super::{keys::{key_map, raw_to_value}, to_raw};
use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse},
    service::e2ee::{dehydrated::DehydratedDevice, keys::KeyUpload},
};

/// `PUT …/dehydrated_device`: replaces the user's dehydrated device with a new one, its keys
/// checked like any device's.
pub async fn put_dehydrated_device_route(
    State(services): State<AppState>,
    request: Ruma<put_dehydrated_device::unstable::Request>,
) -> Result<RumaResponse<put_dehydrated_device::unstable::Response>> {
    let user = request.sender()?.user_id.clone();
    let body = request.body;
    let device_id = body.device_id.clone();
    let current = services.e2ee.dehydrated_device(&user)?;
    let is_current = current.as_ref().is_some_and(|dehydrated| dehydrated.device_id == device_id.as_str());
    if !is_current && services.sessions.device(&user, &device_id)?.is_some() {
        return Err(Error::invalid_param("A device with this ID exists already"));
    }
    let upload = KeyUpload {
        device_keys: Some(raw_to_value(&body.device_keys)?),
        one_time_keys: key_map(&body.one_time_keys)?,
        fallback_keys: key_map(&body.fallback_keys)?,
    };
    // The keys are checked (and stored) before the device exists, so bad keys leave nothing.
    services.e2ee.upload_keys(&user, &device_id, upload).await?;
    services.sessions.create_device_without_token(&user, &device_id, body.initial_device_display_name.clone()).await?;
    let dehydrated = DehydratedDevice { device_id: device_id.to_string(), device_data: raw_to_value(&body.device_data)? };
    if let Some(previous) = services.e2ee.set_dehydrated_device(&user, dehydrated).await? {
        services.sessions.delete_devices(&user, &[previous]).await?;
    }
    Ok(RumaResponse(put_dehydrated_device::unstable::Response::new(device_id)))
}

/// `GET …/dehydrated_device`
pub async fn get_dehydrated_device_route(
    State(services): State<AppState>,
    request: Ruma<get_dehydrated_device::unstable::Request>,
) -> Result<RumaResponse<get_dehydrated_device::unstable::Response>> {
    let user = &request.sender()?.user_id;
    let dehydrated = services.e2ee.dehydrated_device(user)?.ok_or_else(|| Error::not_found("No dehydrated device"))?;
    Ok(RumaResponse(get_dehydrated_device::unstable::Response::new(dehydrated.device_id.into(), to_raw(&dehydrated.device_data)?)))
}

/// `DELETE …/dehydrated_device`: deletes the device with its keys and queue.
pub async fn delete_dehydrated_device_route(
    State(services): State<AppState>,
    request: Ruma<delete_dehydrated_device::unstable::Request>,
) -> Result<RumaResponse<delete_dehydrated_device::unstable::Response>> {
    let user = request.sender()?.user_id.clone();
    let device_id = services.e2ee.remove_dehydrated_device(&user).await?;
    services.sessions.delete_devices(&user, std::slice::from_ref(&device_id)).await?;
    Ok(RumaResponse(delete_dehydrated_device::unstable::Response::new(device_id)))
}

/// `POST …/dehydrated_device/{deviceId}/events`: the device's to-device messages, a page at a
/// time; passing a page's `next_batch` acknowledges it.
pub async fn get_dehydrated_events_route(
    State(services): State<AppState>,
    request: Ruma<get_events::unstable::Request>,
) -> Result<RumaResponse<get_events::unstable::Response>> {
    let user = request.sender()?.user_id.clone();
    let body = request.body;
    let (events, next_batch) = services.e2ee.dehydrated_device_events(&user, &body.device_id, body.next_batch.as_deref()).await?;
    let mut response = get_events::unstable::Response::new(events.iter().map(to_raw).collect::<Result<_>>()?);
    response.next_batch = next_batch;
    Ok(RumaResponse(response))
}
