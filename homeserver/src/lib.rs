//! Myelin, a federated Matrix homeserver.
//!
//! A request goes router → `Ruma<T>` extractor → handler (`api`) → service (`service`) →
//! typed table (`myelin_storage`). [`Server::start`] wires it together; the binary in
//! `main.rs` and the tests use the same entry point.

pub mod api;
pub mod error;
pub mod router;
pub mod server;
pub mod service;
pub mod tls;
pub mod util;

pub use error::{Error, Result};
pub use server::{Server, ServerHandle};

/// The version string the server reports (`/_synapse/admin/v1/server_version`, logs).
pub const VERSION: &str = concat!("myelin ", env!("CARGO_PKG_VERSION"));
