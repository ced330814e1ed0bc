//! `myelin-bench`: a load generator for a running Myelin server.
//!
//! * [`http`]: the shared HTTP/1.1 client and [`http::Failure`], the exact
//!   request and response of anything that went wrong.
//! * [`setup`]: untimed accounts, rooms, joins and initial syncs.
//! * [`send`]: scenario S2, sequential message sends.
//! * [`fanout`]: scenario S4-lite, send-to-sync delivery latency to many
//!   long-polling receivers.
//! * [`federation`]: two federating servers — the wall time of joining a
//!   room with many state events, and the rate at which PDUs cross from one
//!   server to the other (`federation-join`, `federation-send`).
//! * [`stats`]: HDR latency histograms; [`text`]: generated message bodies;
//!   [`cpu`]: CPU time of the server and the bench during a timed phase.
//!
//! The binary is `src/bin/myelin-bench.rs`; `bench/run-myelin.sh` starts a
//! server and runs both scenarios against it; `bench/run-federation.sh`
//! starts two federating servers and runs the federation scenarios.

pub mod cpu;
pub mod fanout;
pub mod federation;
pub mod http;
pub mod send;
pub mod setup;
pub mod stats;
pub mod text;
