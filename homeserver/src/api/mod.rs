//! HTTP handlers, one file per endpoint group. Handlers check permissions and call services;
//! they never touch a table.

pub mod admin;
pub mod client;
pub mod media;
pub mod media_preview;
pub mod server;
