//! Scenario `initial-sync` (S5): one account joined to R rooms; the latency
//! of K initial `/sync` requests (no `since`), one after the other.
//!
//! Setup (untimed): the account creates the R rooms (`public_chat`). Each
//! timed request carries an inline filter (timeline limit 10, the usual
//! default) that differs from the others only by a `not_types` entry no
//! event has: Synapse answers identical concurrent or recent initial syncs
//! from a response cache, so without it every run after the first would
//! measure the cache. The filter is the same for both servers.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use super::http::{Api, FailureLog, check_json};
use super::setup::{self, Registration};
use super::stats::{Latencies, latency_table};

/// Concurrency of the untimed room creation.
const SETUP_CONCURRENCY: usize = 8;
/// Timeout of one timed initial sync.
const SYNC_TIMEOUT: Duration = Duration::from_secs(300);
/// Timeline events per room in the timed syncs.
const TIMELINE_LIMIT: u64 = 10;

/// Parameters of the `initial-sync` scenario.
#[derive(Debug, Clone)]
pub struct InitialSyncParams {
    /// Rooms the account is joined to.
    pub rooms: usize,
    /// Timed initial syncs.
    pub runs: usize,
}

/// What the `initial-sync` scenario measured.
pub struct InitialSyncReport {
    pub params: InitialSyncParams,
    /// Untimed: registering and creating the rooms.
    pub setup: Duration,
    pub latencies: Latencies,
    /// Latency of the first timed sync alone (the coldest caches).
    pub first: Option<Duration>,
    /// Size of the last response body.
    pub response_bytes: usize,
    /// Runs whose response listed another number of joined rooms than R.
    pub wrong_room_counts: Vec<usize>,
    /// When some sync listed too few rooms: how many `/joined_rooms` lists.
    pub joined_rooms_endpoint: Option<usize>,
    pub failures: FailureLog,
}

/// Runs the scenario.
pub async fn run(
    api: &Api,
    registration: &Registration,
    params: InitialSyncParams,
) -> anyhow::Result<InitialSyncReport> {
    let run = setup::run_id();
    let setup_started = Instant::now();
    let user = setup::register(api, registration, &format!("bench-{run}-many")).await?;
    setup::create_rooms(
        api,
        &user,
        &format!("myelin-bench initial-sync {run}"),
        params.rooms,
        SETUP_CONCURRENCY,
    )
    .await?;
    let setup = setup_started.elapsed();
    println!(
        "  setup: {} rooms created in {:.1} s",
        params.rooms,
        setup.as_secs_f64()
    );

    let mut report = InitialSyncReport {
        params,
        setup,
        latencies: Latencies::new(),
        first: None,
        response_bytes: 0,
        wrong_room_counts: Vec::new(),
        joined_rooms_endpoint: None,
        failures: FailureLog::default(),
    };
    for i in 0..report.params.runs {
        let filter = json!({"room": {"timeline": {
            "limit": TIMELINE_LIMIT,
            "not_types": [format!("org.myelin.bench.never.{run}.{i}")],
        }}})
        .to_string();
        let url = api.url("/_matrix/client/v3/sync", &[("filter", filter.as_str())]);
        let started = Instant::now();
        let reply = api
            .raw(
                Method::GET,
                url.clone(),
                Some(&user.token),
                None,
                SYNC_TIMEOUT,
            )
            .await
            .and_then(|reply| {
                let body = check_json(&Method::GET, &url, None, &reply, started)?;
                Ok((reply, body))
            });
        match reply {
            Ok((reply, body)) => {
                let latency = reply.done.duration_since(started);
                report.latencies.record(latency);
                report.first.get_or_insert(latency);
                report.response_bytes = reply.body.len();
                let joined = body["rooms"]["join"]
                    .as_object()
                    .map_or(0, |rooms| rooms.len());
                if joined != report.params.rooms {
                    report.wrong_room_counts.push(joined);
                }
                println!(
                    "  run {}: {:.1} ms, {} rooms, {} KiB",
                    i + 1,
                    latency.as_secs_f64() * 1e3,
                    joined,
                    reply.body.len() / 1024
                );
            }
            Err(failure) => report.failures.push(failure),
        }
    }
    if !report.wrong_room_counts.is_empty() {
        // Tells a sync that leaves rooms out from rooms that were never joined.
        let url = api.url("/_matrix/client/v3/joined_rooms", &[]);
        let body = api
            .json(Method::GET, url, Some(&user.token), None, SYNC_TIMEOUT)
            .await?;
        report.joined_rooms_endpoint = body["joined_rooms"].as_array().map(Vec::len);
    }
    Ok(report)
}

impl InitialSyncReport {
    /// Every sync answered and listed every room.
    pub fn healthy(&self) -> bool {
        self.failures.count == 0 && self.wrong_room_counts.is_empty()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "scenario": "initial-sync",
            "params": {
                "rooms": self.params.rooms,
                "runs": self.params.runs,
                "timeline_limit": TIMELINE_LIMIT,
            },
            "setup_s": self.setup.as_secs_f64(),
            "first_ms": self.first.map(|d| d.as_secs_f64() * 1e3),
            "latency": self.latencies.summary().to_json(),
            "response_bytes": self.response_bytes,
            "wrong_room_counts": self.wrong_room_counts,
            "joined_rooms_endpoint": self.joined_rooms_endpoint,
            "failures": self.failures.to_json(),
            "healthy": self.healthy(),
        })
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "initial-sync: an account in {} rooms, {} initial syncs (timeline limit {}), \
             {} KiB each; setup {:.1} s untimed\n",
            self.params.rooms,
            self.params.runs,
            TIMELINE_LIMIT,
            self.response_bytes / 1024,
            self.setup.as_secs_f64(),
        );
        out.push_str(&latency_table(&[("sync", self.latencies.summary())]));
        if !self.wrong_room_counts.is_empty() {
            out.push_str(&format!(
                "  !! {} syncs listed another number of joined rooms than {}: {:?} \
                 (GET /joined_rooms lists {})\n",
                self.wrong_room_counts.len(),
                self.params.rooms,
                self.wrong_room_counts,
                self.joined_rooms_endpoint
                    .map_or_else(|| "?".to_owned(), |n| n.to_string()),
            ));
        }
        out.push_str(&self.failures.render("sync"));
        out
    }
}
