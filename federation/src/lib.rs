//! The Matrix protocol core of Myelin.
//!
//! Everything here is sans-I/O: it computes, signs and verifies, and leaves storage and
//! networking to the homeserver. This keeps the protocol rules unit-testable with plain JSON
//! fixtures and lets the homeserver choose where keys and events live; every place that needs
//! more events or state takes a closure.
//!
//! * [`keys`]: the server's ed25519 signing key and canonical-JSON signing.
//! * [`room_version`]: the supported room versions (1–12) and their rules.
//! * [`pdu`]: building, identifying, verifying, redacting and client-formatting room events.
//! * [`auth`]: auth event selection and the authorization rules.
//! * [`state_res`]: state resolution (v2 through ruma, v1 here) and auth chains.
//! * [`acl`]: server ACLs (`m.room.server_acl`): which servers may take part in a room.
//! * [`xmatrix`]: signing and verifying the `X-Matrix` authorization of federation requests.
//! * [`discovery`]: the decisions of server name resolution (`.well-known`, SRV, port 8448),
//!   the `.well-known` cache lifetime, and which IP addresses outbound requests must avoid.

pub mod acl;
pub mod auth;
pub mod discovery;
mod error;
pub mod keys;
pub mod pdu;
pub mod room_version;
pub mod state_res;
#[cfg(test)]
mod testing;
pub mod xmatrix;

pub use error::{Error, Result};
pub use keys::{ServerKeyResponse, ServerSigningKey};
pub use pdu::{BuiltPdu, Pdu, PduTemplate, Verified};
pub use room_version::{
    ensure_supported_room_version, is_supported_room_version, room_version_rules,
    supported_room_versions,
};
pub use state_res::StateMap;
