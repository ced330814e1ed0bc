//! Router tests (`oneshot` against the real router and a real RocksDB in a temporary
//! directory) and full-server tests through `Server::start`.

mod federation;
mod federation_listener;
mod rooms;
mod router;
mod server;
mod support;
