//! `PUT /_matrix/federation/v1/send/{txnId}`: PDUs and EDUs pushed by other servers.

use axum::{Router, extract::State};
use ruma::api::federation::transactions::{edu::Edu, send_transaction_message};

use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse, RumaRouter},
    service::Services,
};

/// The spec's limits on one transaction.
const MAX_PDUS: usize = 50;
const MAX_EDUS: usize = 100;

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router.ruma::<send_transaction_message::v1::Request, _, _>(send_transaction_route)
}

async fn send_transaction_route(
    State(services): State<AppState>,
    request: Ruma<send_transaction_message::v1::Request>,
) -> Result<RumaResponse<send_transaction_message::v1::Response>> {
    let origin = request.origin()?.to_owned();
    let body = request.body;
    if body.origin != origin {
        return Err(Error::forbidden("The transaction's origin is not the server that signed the request"));
    }
    if body.pdus.len() > MAX_PDUS || body.edus.len() > MAX_EDUS {
        return Err(Error::bad_json(format!("A transaction carries at most {MAX_PDUS} PDUs and {MAX_EDUS} EDUs")));
    }
    // A peer that talks to us is up: whatever we queued for it can go now.
    services.sender.peer_is_back(&origin);
    let outcome = services.federation_rooms.handle_transaction(&origin, body.transaction_id.as_str(), &body.pdus).await;
    for edu in &body.edus {
        match edu.deserialize() {
            Ok(edu) => handle_edu(&services, &origin, edu).await,
            Err(error) => tracing::debug!(%origin, %error, "dropped an unparseable EDU"),
        }
    }
    Ok(RumaResponse(send_transaction_message::v1::Response::new(outcome)))
}

/// EDUs carry no per-item answer: one that does not check out is logged and dropped.
async fn handle_edu(services: &Services, origin: &ruma::ServerName, edu: Edu) {
    let result = match edu {
        Edu::Typing(typing) => services.typing.set_remote(origin, &typing.room_id, &typing.user_id, typing.typing),
        Edu::Receipt(receipts) => {
            let mut result = Ok(());
            for (room_id, map) in receipts.receipts {
                for (user, data) in map.read {
                    let ts = data.data.ts.map_or_else(crate::util::now_millis, |ts| u64::from(ts.0));
                    let thread = data.data.thread.as_str().map(ToOwned::to_owned);
                    // A receipt names one event; several are a legacy form, of which the last counts.
                    let Some(event_id) = data.event_ids.last() else { continue };
                    if let Err(error) = services.receipts.set_remote(origin, &room_id, &user, event_id.as_str(), thread.as_deref(), ts).await {
                        result = Err(error);
                    }
                }
            }
            result
        }
        Edu::Presence(presence) => {
            let mut result = Ok(());
            for update in &presence.push {
                let update = serde_json::to_value(update).unwrap_or_default();
                if let Err(error) = services.presence.set_remote(origin, &update).await {
                    result = Err(error);
                }
            }
            result
        }
        Edu::DirectToDevice(content) => receive_to_device(services, origin, content).await,
        Edu::DeviceListUpdate(update) if update.user_id.server_name() == origin => services.e2ee.remote_device_list_changed(&update.user_id).await,
        Edu::SigningKeyUpdate(update) if update.user_id.server_name() == origin => services.e2ee.remote_device_list_changed(&update.user_id).await,
        other => {
            tracing::debug!(%origin, edu = ?std::mem::discriminant(&other), "EDU type not handled yet");
            Ok(())
        }
    };
    if let Err(error) = result {
        tracing::debug!(%origin, %error, "dropped an EDU");
    }
}

/// An `m.direct_to_device` EDU: messages from one of the origin's users to our users' devices,
/// delivered once per message ID.
async fn receive_to_device(services: &Services, origin: &ruma::ServerName, content: ruma::api::federation::transactions::edu::DirectDeviceContent) -> Result<()> {
    if content.sender.server_name() != origin {
        return Err(Error::forbidden("A server can only send its own users' to-device messages"));
    }
    // Remote senders have no device here; their message IDs are kept under an empty one.
    let no_device: &ruma::DeviceId = "".into();
    let mut recipients = crate::service::e2ee::to_device::Recipients::new();
    for (user, messages) in content.messages {
        if user.server_name() != services.server_name {
            continue;
        }
        for (target, message) in messages {
            let Ok(message) = serde_json::from_str(message.json().get()) else { continue };
            crate::api::client::add_local_recipient(services, &mut recipients, &user, target, message)?;
        }
    }
    let event_type = content.ev_type.to_string();
    services.e2ee.send_to_device(&content.sender, no_device, Some(content.message_id.as_str()), &event_type, recipients).await?;
    Ok(())
}
