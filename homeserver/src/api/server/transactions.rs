//! `PUT /_matrix/federation/v1/send/{txnId}`: PDUs and EDUs pushed by other servers.

use axum::{Router, extract::State};
use ruma::api::federation::transactions::send_transaction_message;

use crate::{
    error::{Error, Result},
    router::{AppState, Ruma, RumaResponse, RumaRouter},
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
    if !body.edus.is_empty() {
        tracing::debug!(%origin, count = body.edus.len(), "EDUs received and not yet handled");
    }
    Ok(RumaResponse(send_transaction_message::v1::Response::new(outcome)))
}
