//! Router tests (`oneshot` against the real router and a real RocksDB in a temporary
//! directory) and full-server tests through `Server::start`.

mod rooms;
mod router;
mod server;
mod support;
