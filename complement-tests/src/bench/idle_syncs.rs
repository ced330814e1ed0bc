//! Scenario `idle-syncs` (S4, memory): N accounts each hold one long-polling
//! `/sync` open on nothing happening; the figure is how much the server's
//! resident memory (`VmRSS` of its process) grows while they are held.
//!
//! Setup (untimed): N accounts, and an initial sync of each, so that the
//! held requests carry a `since` token and have nothing to return. Then the
//! server's memory and open file descriptors are read (the baseline), the N
//! long-polls are opened at a bounded rate (a burst of thousands of
//! connects would overflow the server's listen backlog), held for a while,
//! and read again. A long-poll that returns anyway is counted and opened
//! again at once, so N stay open throughout. The server's open file
//! descriptors show how many connections it really holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::cpu::{open_fds, proc_status};
use super::http::{Api, FailureLog, check_json};
use super::setup::{self, Registration};

/// Concurrency of the untimed setup requests.
const SETUP_CONCURRENCY: usize = 16;
/// Pause after a failed `/sync` before opening it again.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Pause between the setup and the baseline reading.
const QUIET: Duration = Duration::from_secs(2);
/// How often the memory is sampled while the connections are held.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// Parameters of the `idle-syncs` scenario.
#[derive(Debug, Clone)]
pub struct IdleParams {
    /// Long-polls held at once, one account each.
    pub connections: usize,
    /// New long-polls opened per second.
    pub ramp_per_s: f64,
    /// How long all of them are held once opened.
    pub hold: Duration,
    /// PID of the server process whose memory is read.
    pub server_pid: u32,
}

/// The server's figures at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reading {
    pub rss_kib: Option<u64>,
    pub fds: Option<usize>,
}

impl Reading {
    fn take(pid: u32) -> Reading {
        Reading {
            rss_kib: proc_status(pid, "VmRSS"),
            fds: open_fds(pid),
        }
    }

    fn to_json(self) -> Value {
        json!({"rss_kib": self.rss_kib, "open_fds": self.fds})
    }
}

/// What the `idle-syncs` scenario measured.
pub struct IdleReport {
    pub params: IdleParams,
    pub setup: Duration,
    pub baseline: Reading,
    /// At the end of the hold.
    pub held: Reading,
    /// Highest `VmRSS` sampled from the first connect to the end of the hold.
    pub peak_rss_kib: Option<u64>,
    /// First connect → last connect opened.
    pub ramp: Duration,
    /// Long-polls that answered before being released.
    pub early_returns: u64,
    pub failures: FailureLog,
}

/// Runs the scenario.
pub async fn run(
    api: &Api,
    registration: &Registration,
    params: IdleParams,
) -> anyhow::Result<IdleReport> {
    let run = setup::run_id();
    let setup_started = Instant::now();
    // Setup connections are closed before the baseline, so the held
    // long-polls each open a connection of their own.
    let setup_api = api.with_own_pool(SETUP_CONCURRENCY)?;
    let users = setup::register_many(
        &setup_api,
        registration,
        &format!("bench-{run}-idle"),
        params.connections,
        SETUP_CONCURRENCY,
    )
    .await?;
    let filter = json!({"room": {"timeline": {"limit": 1}}});
    let tokens = setup::concurrently(users.len(), SETUP_CONCURRENCY, |i| {
        let (api, user, filter) = (setup_api.clone(), users[i].clone(), filter.clone());
        async move { Ok(setup::initial_sync(&api, &user, &filter).await?.0) }
    })
    .await?;
    let setup = setup_started.elapsed();
    println!(
        "  setup: {} accounts registered and synced in {:.1} s",
        users.len(),
        setup.as_secs_f64()
    );

    drop(setup_api);
    tokio::time::sleep(QUIET).await;
    let baseline = Reading::take(params.server_pid);

    let ramp_time = Duration::from_secs_f64(params.connections as f64 / params.ramp_per_s);
    // Long enough that no long-poll times out before it is released.
    let timeout = ramp_time + params.hold + Duration::from_secs(60);
    let timeout_ms = timeout.as_millis().to_string();
    let request_timeout = timeout + Duration::from_secs(30);
    let (stop_tx, stop_rx) = watch::channel(false);
    let early = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(Mutex::new(FailureLog::default()));
    let mut holders = JoinSet::new();
    let mut peak = baseline.rss_kib;
    let sample = |peak: &mut Option<u64>| {
        let now = proc_status(params.server_pid, "VmRSS");
        *peak = (*peak).max(now);
    };

    let ramp_started = Instant::now();
    let mut next_sample = ramp_started;
    for (i, (user, since)) in users.into_iter().zip(tokens).enumerate() {
        let due = ramp_started + Duration::from_secs_f64(i as f64 / params.ramp_per_s);
        tokio::time::sleep_until(due.into()).await;
        if Instant::now() >= next_sample {
            sample(&mut peak);
            next_sample += SAMPLE_EVERY;
        }
        let (api, mut stop, early, failures, timeout_ms) = (
            api.clone(),
            stop_rx.clone(),
            early.clone(),
            failures.clone(),
            timeout_ms.clone(),
        );
        holders.spawn(async move {
            let mut since = since;
            loop {
                let url = api.url(
                    "/_matrix/client/v3/sync",
                    &[("since", since.as_str()), ("timeout", timeout_ms.as_str())],
                );
                let started = Instant::now();
                let reply = tokio::select! {
                    _ = stop.changed() => return,
                    reply = api.raw(Method::GET, url.clone(), Some(&user.token), None, request_timeout) => reply,
                };
                match reply.and_then(|r| check_json(&Method::GET, &url, None, &r, started)) {
                    Ok(body) => {
                        early.fetch_add(1, Ordering::Relaxed);
                        if let Some(next) = body["next_batch"].as_str() {
                            since = next.to_owned();
                        }
                    }
                    Err(failure) => {
                        if let Ok(mut log) = failures.lock() {
                            log.push(failure);
                        }
                        tokio::select! {
                            _ = stop.changed() => return,
                            () = tokio::time::sleep(RETRY_PAUSE) => {}
                        }
                    }
                }
            }
        });
    }
    let ramp = ramp_started.elapsed();
    let hold_end = Instant::now() + params.hold;
    while Instant::now() < hold_end {
        sample(&mut peak);
        tokio::time::sleep(SAMPLE_EVERY.min(hold_end.saturating_duration_since(Instant::now())))
            .await;
    }
    let held = Reading::take(params.server_pid);
    peak = peak.max(held.rss_kib);
    let _ = stop_tx.send(true);
    while holders.join_next().await.is_some() {}

    let failures = std::mem::take(&mut *failures.lock().ok().context("failure log lock")?);
    Ok(IdleReport {
        params,
        setup,
        baseline,
        held,
        peak_rss_kib: peak,
        ramp,
        early_returns: early.load(Ordering::Relaxed),
        failures,
    })
}

impl IdleReport {
    /// `VmRSS` growth while the connections were held, in KiB.
    pub fn rss_increase_kib(&self) -> Option<i64> {
        Some(i64::try_from(self.held.rss_kib?).ok()? - i64::try_from(self.baseline.rss_kib?).ok()?)
    }

    /// No failed request.
    pub fn healthy(&self) -> bool {
        self.failures.count == 0
    }

    pub fn to_json(&self) -> Value {
        let per_connection = self
            .rss_increase_kib()
            .map(|kib| kib as f64 * 1024.0 / self.params.connections.max(1) as f64);
        json!({
            "scenario": "idle-syncs",
            "params": {
                "connections": self.params.connections,
                "ramp_per_s": self.params.ramp_per_s,
                "hold_s": self.params.hold.as_secs_f64(),
            },
            "setup_s": self.setup.as_secs_f64(),
            "ramp_s": self.ramp.as_secs_f64(),
            "baseline": self.baseline.to_json(),
            "held": self.held.to_json(),
            "peak_rss_kib": self.peak_rss_kib,
            "rss_increase_kib": self.rss_increase_kib(),
            "rss_increase_bytes_per_connection": per_connection,
            "early_returns": self.early_returns,
            "failures": self.failures.to_json(),
            "healthy": self.healthy(),
        })
    }

    pub fn render(&self) -> String {
        let mib = |kib: Option<u64>| {
            kib.map_or_else(
                || "n/a".to_owned(),
                |k| format!("{:.1} MiB", k as f64 / 1024.0),
            )
        };
        let fds = |n: Option<usize>| n.map_or_else(|| "n/a".to_owned(), |n| n.to_string());
        let mut out = format!(
            "idle-syncs: {} long-polling /sync held for {:.1} s (opened in {:.1} s)\n",
            self.params.connections,
            self.params.hold.as_secs_f64(),
            self.ramp.as_secs_f64()
        );
        out.push_str(&format!(
            "  server VmRSS {} before, {} held (peak {}): {}; open fds {} -> {}\n",
            mib(self.baseline.rss_kib),
            mib(self.held.rss_kib),
            mib(self.peak_rss_kib),
            self.rss_increase_kib().map_or_else(
                || "n/a".to_owned(),
                |kib| format!(
                    "+{:.1} MiB, {:.1} KiB per connection",
                    kib as f64 / 1024.0,
                    kib as f64 / self.params.connections.max(1) as f64
                )
            ),
            fds(self.baseline.fds),
            fds(self.held.fds),
        ));
        if self.early_returns > 0 {
            out.push_str(&format!(
                "  note: {} long-polls answered before they were released (opened again)\n",
                self.early_returns
            ));
        }
        out.push_str(&self.failures.render("sync"));
        out
    }
}
