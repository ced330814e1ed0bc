//! Black-box scenarios against spawned `myelin` processes.
//!
//! Each test starts its own server(s) (own port, own temporary database) via
//! the `complement_tests` harness, so tests run in parallel. Build the
//! binaries first: `cargo build -p myelin -p myelin-admin` (`cargo test
//! --workspace` does it too).

mod account_features;
mod admin;
mod discovery;
mod e2ee;
mod e2ee_sdk;
mod errors;
mod federation_forged;
mod federation_rooms;
mod federation_read;
mod federation_synapse;
mod lifecycle;
mod media;
mod media_thumbnails;
mod media_admin;
mod media_preview;
mod other_clients;
mod presence;
mod profile_account_data;
mod rate_limits;
mod real_client;
mod real_client_messaging;
mod real_client_rooms;
mod receipts_typing;
mod registration;
mod relations;
mod room_directory;
mod room_durability;
mod room_membership;
mod room_messages;
mod room_support;
mod room_visibility;
mod reports;
mod rooms;
mod search;
mod sessions;
mod spaces;
mod synapse_peer;
mod sync;
mod user_directory;
