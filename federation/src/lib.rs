//! The Matrix protocol core of Myelin.
//!
//! Everything here is sans-I/O: it computes, signs and verifies, and leaves storage and
//! networking to the homeserver. This keeps the protocol rules unit-testable with plain JSON
//! fixtures and lets the homeserver choose where keys live.
//!
//! Today it holds the server's ed25519 signing key and the canonical-JSON signing that the key
//! server (`/_matrix/key/v2/server`), PDUs and X-Matrix requests are built on.

mod error;
pub mod keys;

pub use error::{Error, Result};
pub use keys::{ServerKeyResponse, ServerSigningKey};
