//! Events as clients see them: the client-server "ClientEvent" format.

use ruma::{DeviceId, UserId};
use serde_json::{Map, Value, json};

use super::{Rooms, StoredEvent};
use crate::{error::Result, util::now_millis};

/// PDU fields that exist for servers only.
const SERVER_ONLY_FIELDS: &[&str] = &["hashes", "signatures", "auth_events", "prev_events", "depth", "origin", "prev_state", "membership"];

impl Rooms {
    /// The client format of `event` for `viewer` (whose device sees its own `transaction_id`),
    /// with its bundled aggregations (`unsigned.m.relations`) when there is a viewer.
    pub fn client_event(&self, event: &StoredEvent, viewer: Option<(&UserId, &DeviceId)>) -> Result<Value> {
        let mut object: Map<String, Value> = event.pdu.as_object().cloned().unwrap_or_default();
        for field in SERVER_ONLY_FIELDS {
            object.remove(*field);
        }
        object.insert("event_id".to_owned(), json!(event.event_id));
        // A v12 create event has no room_id: its room ID is derived from its event ID.
        if !object.contains_key("room_id")
            && let Ok(event_id) = ruma::EventId::parse(&event.event_id)
            && let Ok(room_id) = myelin_federation::pdu::room_id_from_create_event_id(&event_id)
        {
            object.insert("room_id".to_owned(), json!(room_id));
        }
        // From v11 `redacts` lives in the content; clients read it at the top level too.
        if event.event_type() == "m.room.redaction"
            && !object.contains_key("redacts")
            && let Some(redacts) = event.content().get("redacts")
        {
            object.insert("redacts".to_owned(), redacts.clone());
        }
        let mut unsigned: Map<String, Value> = object.remove("unsigned").and_then(|u| u.as_object().cloned()).unwrap_or_default();
        unsigned.insert("age".to_owned(), json!(now_millis().saturating_sub(event.origin_server_ts())));
        if let (Some((user, device)), Some((txn_device, txn_id))) = (viewer, &event.txn)
            && event.sender() == user.as_str()
            && txn_device == device.as_str()
        {
            unsigned.insert("transaction_id".to_owned(), json!(txn_id));
        }
        if let Some(replaced) = &event.replaces_state
            && let Some((_, previous)) = self.event(replaced)?
        {
            unsigned.insert("prev_content".to_owned(), previous.content().clone());
            unsigned.insert("replaces_state".to_owned(), json!(replaced));
        }
        if let Some(redaction_id) = &event.redacted_because
            && let Some((_, redaction)) = self.event(redaction_id)?
        {
            unsigned.insert("redacted_because".to_owned(), self.client_event(&redaction, None)?);
        }
        // Aggregations are ours to compute: never pass on what another server put there.
        unsigned.remove("m.relations");
        if let Some(viewer) = viewer
            && let Some(relations) = self.bundled_aggregations(event, viewer)?
        {
            unsigned.insert("m.relations".to_owned(), relations);
        }
        object.insert("unsigned".to_owned(), Value::Object(unsigned));
        Ok(Value::Object(object))
    }

    /// The stripped form used in invite state and for previews: type, state_key, content, sender.
    pub fn stripped_event(event: &StoredEvent) -> Value {
        json!({
            "type": event.event_type(),
            "state_key": event.state_key().unwrap_or_default(),
            "content": event.content(),
            "sender": event.sender(),
        })
    }
}
