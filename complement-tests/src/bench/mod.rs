//! `myelin-bench`: a load generator for a running Myelin server.
//!
//! * [`http`]: the shared HTTP/1.1 client and [`http::Failure`], the exact
//!   request and response of anything that went wrong.
//! * [`setup`]: untimed accounts, rooms, joins and initial syncs.
//! * [`send`]: scenario S2, sequential message sends.
//! * [`startup`]: scenario S1, cold start to the first `/versions` answer
//!   and idle memory, of a server command the bench spawns itself.
//! * [`concurrent`]: scenario S3, senders × rooms sending at once.
//! * [`fanout`]: scenario S4, send-to-sync delivery latency to many
//!   long-polling receivers; [`idle_syncs`]: S4's memory of many held
//!   long-polls.
//! * [`initial_sync`]: scenario S5, initial sync of an account in many rooms.
//! * [`paginate`]: scenario S6, `/messages` back through a long room.
//! * [`report`]: the markdown table of a `vs-synapse.sh` run, Myelin beside
//!   Synapse.
//! * [`federation`]: two federating servers — the wall time of joining a
//!   room with many state events, and the rate at which PDUs cross from one
//!   server to the other (`federation-join`, `federation-send`).
//! * [`stats`]: HDR latency histograms; [`text`]: generated message bodies;
//!   [`cpu`]: CPU time of the server and the bench during a timed phase.
//!
//! The binary is `src/bin/myelin-bench.rs`; `bench/vs-synapse.sh` runs
//! S1–S6 against Myelin and Synapse and writes the comparison;
//! `bench/run-myelin.sh` starts a server and runs `send` and `fanout`
//! against it; `bench/run-federation.sh` starts two federating servers and
//! runs the federation scenarios.

pub mod concurrent;
pub mod cpu;
pub mod fanout;
pub mod federation;
pub mod http;
pub mod idle_syncs;
pub mod initial_sync;
pub mod paginate;
pub mod report;
pub mod send;
pub mod setup;
pub mod startup;
pub mod stats;
pub mod text;
