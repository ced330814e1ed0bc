//! Scenario `concurrent-sends` (S3): for every cell of a matrix of S
//! senders × R rooms, the S senders send messages back to back (closed
//! loop: each starts its next send when the previous one answered), sender
//! `i` into room `i mod R`, for a fixed time; messages/s and the latency of
//! the sends are recorded per cell.
//!
//! Setup (untimed): max(S) accounts; for every R, R rooms created by one
//! more account, and sender `i` joined to room `i mod R`. Each cell first
//! sends for a short unrecorded warm-up, then records for the cell's
//! duration: sends that start within it count; the throughput is those
//! that succeeded divided by the time from the start of the recording to
//! the last answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::http::{Api, FailureLog};
use super::send::send_message;
use super::setup::{self, Registration, User};
use super::stats::{Latencies, Summary};
use super::text::Lines;

/// Concurrency of the untimed setup requests.
const SETUP_CONCURRENCY: usize = 8;

/// Parameters of the `concurrent-sends` scenario.
#[derive(Debug, Clone)]
pub struct ConcurrentParams {
    /// Sender counts of the matrix's rows.
    pub senders: Vec<usize>,
    /// Room counts of the matrix's columns.
    pub rooms: Vec<usize>,
    /// Recorded time of each cell.
    pub duration: Duration,
    /// Unrecorded sending before each cell's recording.
    pub warmup: Duration,
}

/// One cell of the matrix.
pub struct Cell {
    pub senders: usize,
    pub rooms: usize,
    pub latencies: Latencies,
    pub failures: FailureLog,
    /// Start of the recording → last answer.
    pub elapsed: Duration,
}

/// What the `concurrent-sends` scenario measured.
pub struct ConcurrentReport {
    pub params: ConcurrentParams,
    pub cells: Vec<Cell>,
    /// Untimed preparation (accounts, rooms, joins).
    pub setup: Duration,
    /// Setup oddities (e.g. two new rooms with the same ID).
    pub warnings: Vec<String>,
}

impl Cell {
    pub fn throughput(&self) -> f64 {
        self.latencies.count() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs the matrix, rooms outermost.
pub async fn run(
    api: &Api,
    registration: &Registration,
    params: ConcurrentParams,
) -> anyhow::Result<ConcurrentReport> {
    let run = setup::run_id();
    let setup_started = Instant::now();
    let most = params.senders.iter().copied().max().unwrap_or(1);
    let senders = setup::register_many(
        api,
        registration,
        &format!("bench-{run}-snd"),
        most,
        SETUP_CONCURRENCY,
    )
    .await?;
    let creator = setup::register(api, registration, &format!("bench-{run}-owner")).await?;
    let mut room_sets = Vec::new();
    let mut warnings = Vec::new();
    for &rooms in &params.rooms {
        let name = format!("myelin-bench concurrent {run} R{rooms}");
        let ids =
            setup::create_rooms(api, &creator, &name, rooms.max(1), SETUP_CONCURRENCY).await?;
        setup::concurrently(senders.len(), SETUP_CONCURRENCY, |i| {
            let (api, user, room) = (api.clone(), senders[i].clone(), ids[i % ids.len()].clone());
            async move { setup::join(&api, &user, &room).await }
        })
        .await?;
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        if distinct.len() != ids.len() {
            warnings.push(format!(
                "{} createRoom calls returned only {} distinct room IDs",
                ids.len(),
                distinct.len()
            ));
        }
        room_sets.push(ids);
    }
    let setup = setup_started.elapsed();
    println!(
        "  setup: {most} senders, rooms {:?}, joins done in {:.1} s",
        params.rooms,
        setup.as_secs_f64()
    );

    let mut cells = Vec::new();
    for ids in &room_sets {
        for &count in &params.senders {
            let tag = format!("{run}-s{count}-r{}", ids.len());
            let cell = run_cell(api, &senders[..count.max(1)], ids, &tag, &params).await;
            println!(
                "  {:>4} senders x {:>4} rooms: {:>8.1} msg/s, p50 {:.2} ms, p99 {:.2} ms, {} failed",
                count,
                ids.len(),
                cell.throughput(),
                cell.latencies.summary().p50_us as f64 / 1e3,
                cell.latencies.summary().p99_us as f64 / 1e3,
                cell.failures.count
            );
            cells.push(cell);
        }
    }
    Ok(ConcurrentReport {
        params,
        cells,
        setup,
        warnings,
    })
}

/// What one sender of a cell measured.
struct SenderOutcome {
    latencies: Latencies,
    failures: FailureLog,
    last_answer: Instant,
}

async fn run_cell(
    api: &Api,
    senders: &[User],
    rooms: &[String],
    tag: &str,
    params: &ConcurrentParams,
) -> Cell {
    let started = Instant::now();
    let recording = started + params.warmup;
    let end = recording + params.duration;
    let tag: Arc<str> = tag.into();
    let mut tasks = JoinSet::new();
    for (i, user) in senders.iter().enumerate() {
        let (api, user, room, tag) = (
            api.clone(),
            user.clone(),
            rooms[i % rooms.len()].clone(),
            tag.clone(),
        );
        tasks.spawn(async move {
            let mut lines = Lines::new(0xC0C0 + i as u64);
            let mut outcome = SenderOutcome {
                latencies: Latencies::new(),
                failures: FailureLog::default(),
                last_answer: Instant::now(),
            };
            let mut n = 0u64;
            loop {
                let start = Instant::now();
                if start >= end {
                    break;
                }
                let content = json!({"msgtype": "m.text", "body": lines.next_line()});
                let sent =
                    send_message(&api, &user, &room, &format!("{tag}-{i}-{n}"), &content).await;
                n += 1;
                outcome.last_answer = Instant::now();
                if start < recording {
                    continue;
                }
                match sent {
                    Ok(latency) => outcome.latencies.record(latency),
                    Err(failure) => outcome.failures.push(failure),
                }
            }
            outcome
        });
    }
    let mut cell = Cell {
        senders: senders.len(),
        rooms: rooms.len(),
        latencies: Latencies::new(),
        failures: FailureLog::default(),
        elapsed: Duration::ZERO,
    };
    let mut last_answer = recording;
    while let Some(done) = tasks.join_next().await {
        let Ok(outcome) = done else { continue };
        cell.latencies.merge(&outcome.latencies);
        cell.failures.absorb(outcome.failures);
        last_answer = last_answer.max(outcome.last_answer);
    }
    cell.elapsed = last_answer.saturating_duration_since(recording);
    cell
}

impl ConcurrentReport {
    /// No failed request.
    pub fn healthy(&self) -> bool {
        self.cells.iter().all(|c| c.failures.count == 0) && self.warnings.is_empty()
    }

    /// The cell with the highest throughput among those whose p99 is below
    /// `p99_limit`.
    pub fn best_within(&self, p99_limit: Duration) -> Option<&Cell> {
        let limit = u64::try_from(p99_limit.as_micros()).unwrap_or(u64::MAX);
        self.cells
            .iter()
            .filter(|c| c.latencies.count() > 0 && c.latencies.summary().p99_us < limit)
            .max_by(|a, b| a.throughput().total_cmp(&b.throughput()))
    }

    pub fn to_json(&self) -> Value {
        let cell_json = |c: &Cell| {
            json!({
                "senders": c.senders,
                "rooms": c.rooms,
                "sent": c.latencies.count(),
                "elapsed_s": c.elapsed.as_secs_f64(),
                "throughput_msg_per_s": c.throughput(),
                "latency": c.latencies.summary().to_json(),
                "failures": c.failures.to_json(),
            })
        };
        json!({
            "scenario": "concurrent-sends",
            "params": {
                "senders": self.params.senders,
                "rooms": self.params.rooms,
                "duration_s": self.params.duration.as_secs_f64(),
                "warmup_s": self.params.warmup.as_secs_f64(),
            },
            "setup_s": self.setup.as_secs_f64(),
            "cells": self.cells.iter().map(cell_json).collect::<Vec<_>>(),
            "best_p99_under_50ms": self.best_within(Duration::from_millis(50)).map(cell_json),
            "best_any_p99": self.best_within(Duration::MAX).map(cell_json),
            "warnings": self.warnings,
            "healthy": self.healthy(),
        })
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "concurrent-sends: senders {:?} x rooms {:?}, {:.1} s recorded per cell after {:.1} s warm-up\n",
            self.params.senders,
            self.params.rooms,
            self.params.duration.as_secs_f64(),
            self.params.warmup.as_secs_f64(),
        );
        out.push_str(&format!(
            "  {:>7} {:>6} {:>9} {:>10} {:>9} {:>9} {:>9} {:>7}\n",
            "senders", "rooms", "sent", "msg/s", "p50 ms", "p99 ms", "max ms", "failed"
        ));
        for cell in &self.cells {
            let s: Summary = cell.latencies.summary();
            out.push_str(&format!(
                "  {:>7} {:>6} {:>9} {:>10.1} {:>9.3} {:>9.3} {:>9.3} {:>7}\n",
                cell.senders,
                cell.rooms,
                s.count,
                cell.throughput(),
                s.p50_us as f64 / 1e3,
                s.p99_us as f64 / 1e3,
                s.max_us as f64 / 1e3,
                cell.failures.count,
            ));
        }
        for warning in &self.warnings {
            out.push_str(&format!("  !! {warning}\n"));
        }
        for cell in &self.cells {
            out.push_str(&cell.failures.render(&format!(
                "send ({} senders, {} rooms)",
                cell.senders, cell.rooms
            )));
        }
        out
    }
}
