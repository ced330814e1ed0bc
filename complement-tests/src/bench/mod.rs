//! `myelin-bench`: a load generator for a running Myelin server.
//!
//! * [`http`]: the shared HTTP/1.1 client and [`http::Failure`], the exact
//!   request and response of anything that went wrong.
//! * [`setup`]: untimed accounts, rooms, joins and initial syncs.
//! * [`send`]: scenario S2, sequential message sends.
//! * [`fanout`]: scenario S4-lite, send-to-sync delivery latency to many
//!   long-polling receivers.
//! * [`stats`]: HDR latency histograms; [`text`]: generated message bodies;
//!   [`cpu`]: CPU time of the server and the bench during a timed phase.
//!
//! The binary is `src/bin/myelin-bench.rs`; `bench/run-myelin.sh` starts a
//! server and runs both scenarios against it.

pub mod cpu;
pub mod fanout;
pub mod http;
pub mod send;
pub mod setup;
pub mod stats;
pub mod text;
