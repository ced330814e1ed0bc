//! `PUT /_matrix/client/v3/sendToDevice/{eventType}/{txnId}`

use axum::extract::State;
use ruma::{UserId, api::client::to_device::send_event_to_device, to_device::DeviceIdOrAllDevices};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse},
    service::{Services, e2ee::to_device::Recipients},
};

/// Sends to-device messages; `*` names all of a user's devices. Repeating a transaction ID
/// (a retry) is answered without sending again.
pub async fn send_to_device_route(
    State(services): State<AppState>,
    request: Ruma<send_event_to_device::v3::Request>,
) -> Result<RumaResponse<send_event_to_device::v3::Response>> {
    let sender = request.sender()?.clone();
    let body = request.body;
    let mut local = Recipients::new();
    let mut remote = Recipients::new();
    for (user, messages) in body.messages {
        for (target, content) in messages {
            let content: Value = serde_json::from_str(content.json().get()).map_err(|e| Error::bad_json(e.to_string()))?;
            if !content.is_object() {
                return Err(Error::bad_json("A to-device message's content must be an object"));
            }
            if user.server_name() != services.server_name {
                let device = match target {
                    DeviceIdOrAllDevices::DeviceId(device) => device,
                    DeviceIdOrAllDevices::AllDevices => "*".into(),
                };
                remote.entry(user.clone()).or_default().insert(device, content);
                continue;
            }
            add_local_recipient(&services, &mut local, &user, target, content)?;
        }
    }
    let event_type = body.event_type.to_string();
    // A retried transaction was sent the first time, to other servers too.
    if services.e2ee.send_to_device(&sender.user_id, &sender.device_id, Some(body.txn_id.as_str()), &event_type, local).await? {
        services.e2ee.send_to_remote_devices(&sender.user_id, &event_type, body.txn_id.as_str(), remote).await?;
    }
    Ok(RumaResponse(send_event_to_device::v3::Response::new()))
}

/// Adds a message for a local user's device (or all their devices, for `*`) to `recipients`.
/// Messages to devices that do not exist are dropped, as the spec allows.
pub(crate) fn add_local_recipient(services: &Services, recipients: &mut Recipients, user: &UserId, target: DeviceIdOrAllDevices, content: Value) -> Result<()> {
    let devices = match target {
        DeviceIdOrAllDevices::DeviceId(device) => vec![device],
        DeviceIdOrAllDevices::AllDevices => services.sessions.devices(user)?.into_iter().map(|(device, _)| device).collect(),
    };
    for device in devices {
        if services.sessions.device(user, &device)?.is_some() {
            recipients.entry(user.to_owned()).or_default().insert(device, content.clone());
        }
    }
    Ok(())
}
