//! Scenario `fanout` (S4-lite): C receivers long-poll `/sync` in one room
//! while a sender posts M messages at a fixed interval; every receiver
//! records, per message, the time from the start of the send to the sync
//! response that carried it.
//!
//! Each message carries its send time (nanoseconds of the bench process's
//! monotonic clock since the scenario began) in
//! `content["org.myelin.bench"]`, so receivers need no shared state with the
//! sender. The sender is open-loop: each send starts on its schedule, in its
//! own task, whatever the latency of the previous one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use super::cpu::{CpuProbe, CpuUsage};
use super::http::{Api, Failed, Failure, FailureLog, check_json};
use super::send::send_message;
use super::setup::{self, Registration, User};
use super::stats::{Latencies, latency_table};
use super::text::Lines;

/// Long-poll timeout of the receivers' `/sync`, in ms.
const SYNC_TIMEOUT_MS: u64 = 30_000;
/// Client-side timeout of one `/sync` request: the long-poll plus a margin.
const SYNC_REQUEST_TIMEOUT: Duration = Duration::from_millis(SYNC_TIMEOUT_MS + 15_000);
/// Pause after a failed `/sync` before retrying with the same `since`.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Concurrency of the untimed setup requests.
const SETUP_CONCURRENCY: usize = 8;
/// Key of the benchmark's metadata in message contents.
const META: &str = "org.myelin.bench";
/// How many missing sequence numbers are listed per receiver.
const LISTED_MISSING: usize = 20;

/// Parameters of the `fanout` scenario.
#[derive(Debug, Clone)]
pub struct FanoutParams {
    /// Receivers, each with its own account and sync loop.
    pub clients: usize,
    /// Messages sent.
    pub messages: usize,
    /// Interval between the starts of two sends.
    pub interval: Duration,
    /// Pause between starting the receivers' sync loops and the first send.
    pub settle: Duration,
    /// How long receivers may still wait for messages after the last send
    /// has completed.
    pub grace: Duration,
}

/// What one receiver saw.
struct Receiver {
    latencies: Latencies,
    /// `seen[seq]`: message `seq` was delivered.
    seen: Vec<bool>,
    duplicates: u64,
    /// Sync responses whose timeline of the room was `limited`.
    limited: u64,
    syncs: u64,
    /// When the last missing message arrived (all were received).
    completed_at: Option<Instant>,
}

/// What the `fanout` scenario measured.
pub struct FanoutReport {
    pub params: FanoutParams,
    pub room_id: String,
    /// Send start → sync response received, over all receivers.
    pub delivery: Latencies,
    /// Latency of the sender's PUTs.
    pub send: Latencies,
    /// How late each send started with respect to its schedule.
    pub sender_lag: Latencies,
    pub expected: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub limited: u64,
    pub sync_requests: u64,
    /// `(receiver index, user ID, missing sequence numbers)`.
    pub missing: Vec<(usize, String, Vec<usize>)>,
    pub receivers_complete: usize,
    pub send_failures: FailureLog,
    pub sync_failures: FailureLog,
    /// Setup oddities (e.g. the room absent from an initial sync).
    pub warnings: Vec<String>,
    /// First send start → last send completed.
    pub send_phase: Duration,
    /// Last send completed → last delivery (when everything arrived).
    pub drain: Option<Duration>,
    /// CPU used from the first send until every receiver stopped.
    pub cpu: CpuUsage,
}

fn filter(limit: usize) -> String {
    json!({"room": {"timeline": {"limit": limit}}}).to_string()
}

/// Runs the scenario: setup (untimed), then the timed send/receive phase.
pub async fn run(
    api: &Api,
    registration: &Registration,
    params: FanoutParams,
    server_pid: Option<u32>,
) -> anyhow::Result<FanoutReport> {
    let run = setup::run_id();
    let mut warnings = Vec::new();

    // ---- setup -----------------------------------------------------------
    let sender = setup::register_many(api, registration, &format!("bench-{run}-sender"), 1, 1)
        .await?
        .remove(0);
    let receivers = setup::register_many(
        api,
        registration,
        &format!("bench-{run}-rx"),
        params.clients,
        SETUP_CONCURRENCY,
    )
    .await?;
    let room_id = setup::create_room(api, &sender, &format!("myelin-bench fanout {run}")).await?;
    setup::join_all(api, &receivers, &room_id, SETUP_CONCURRENCY).await?;

    let initial_filter = json!({"room": {"timeline": {"limit": 1}}});
    let mut tokens = vec![String::new(); receivers.len()];
    {
        let permits = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
        let mut tasks = JoinSet::new();
        for (i, user) in receivers.iter().enumerate() {
            let (api, user, filter, permits) = (
                api.clone(),
                user.clone(),
                initial_filter.clone(),
                permits.clone(),
            );
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await?;
                let (next_batch, body) = setup::initial_sync(&api, &user, &filter).await?;
                anyhow::Ok((i, next_batch, body))
            });
        }
        while let Some(done) = tasks.join_next().await {
            let (i, next_batch, body) = done??;
            if body["rooms"]["join"].get(&room_id).is_none() {
                warnings.push(format!(
                    "the initial sync of {} does not list the joined room {room_id} under rooms.join",
                    receivers[i].user_id
                ));
            }
            tokens[i] = next_batch;
        }
    }

    // ---- timed phase -----------------------------------------------------
    let epoch = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let sync_failures = Arc::new(Mutex::new(FailureLog::default()));
    // Large enough that no sync response can be truncated (`limited`).
    let loop_filter = filter(params.messages + 50);
    let mut receiving = JoinSet::new();
    for (i, (user, since)) in receivers.iter().zip(tokens).enumerate() {
        let job = ReceiveJob {
            api: api.clone(),
            user: user.clone(),
            room_id: room_id.clone(),
            run: run.clone(),
            messages: params.messages,
            epoch,
            since,
            filter: loop_filter.clone(),
            stop: stop_rx.clone(),
            failures: sync_failures.clone(),
        };
        receiving.spawn(async move { (i, job.run().await) });
    }
    tokio::time::sleep(params.settle).await;

    let probe = CpuProbe::start(server_pid);
    let sent = send_all(api, &sender, &room_id, &run, &params, epoch).await;
    let sends_done = Instant::now();

    let mut outcomes: Vec<Option<Receiver>> = (0..receivers.len()).map(|_| None).collect();
    let deadline = tokio::time::Instant::from_std(sends_done + params.grace);
    let mut stopped = false;
    loop {
        tokio::select! {
            done = receiving.join_next() => match done {
                None => break,
                Some(done) => {
                    let (i, outcome) = done.context("a receiver task panicked")?;
                    outcomes[i] = Some(outcome);
                }
            },
            () = tokio::time::sleep_until(deadline), if !stopped => {
                stopped = true;
                let _ = stop_tx.send(true);
            }
        }
    }
    drop(stop_tx);
    let cpu = probe.finish();

    // ---- figures -----------------------------------------------------------
    let mut report = FanoutReport {
        expected: (params.clients * params.messages) as u64,
        params,
        room_id,
        delivery: Latencies::new(),
        send: sent.latencies,
        sender_lag: sent.lag,
        delivered: 0,
        duplicates: 0,
        limited: 0,
        sync_requests: 0,
        missing: Vec::new(),
        receivers_complete: 0,
        send_failures: sent.failures,
        sync_failures: std::mem::take(&mut *sync_failures.lock().expect("failure log lock")),
        warnings,
        send_phase: sends_done.duration_since(sent.first_start.unwrap_or(sends_done)),
        drain: None,
        cpu,
    };
    let mut last_completion: Option<Instant> = None;
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let outcome = outcome.context("a receiver returned nothing")?;
        report.delivery.merge(&outcome.latencies);
        report.delivered += outcome.seen.iter().filter(|s| **s).count() as u64;
        report.duplicates += outcome.duplicates;
        report.limited += outcome.limited;
        report.sync_requests += outcome.syncs;
        let missing: Vec<usize> = (0..outcome.seen.len())
            .filter(|s| !outcome.seen[*s])
            .collect();
        if missing.is_empty() {
            report.receivers_complete += 1;
        } else {
            report
                .missing
                .push((i, receivers[i].user_id.clone(), missing));
        }
        last_completion = match (last_completion, outcome.completed_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    if report.missing.is_empty() {
        report.drain = last_completion.map(|t| t.saturating_duration_since(sends_done));
    }
    Ok(report)
}

/// What the sender measured.
struct Sent {
    latencies: Latencies,
    lag: Latencies,
    failures: FailureLog,
    first_start: Option<Instant>,
}

/// Sends `params.messages` messages, one every `params.interval`, each in
/// its own task; returns when all have completed.
async fn send_all(
    api: &Api,
    sender: &User,
    room_id: &str,
    run: &str,
    params: &FanoutParams,
    epoch: Instant,
) -> Sent {
    let mut lines = Lines::new(0xFA40);
    let mut ticker = tokio::time::interval(params.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut lag = Latencies::new();
    let mut tasks = JoinSet::new();
    let mut first_start = None;
    let mut schedule_start = None;
    for seq in 0..params.messages {
        let tick = ticker.tick().await.into_std();
        let origin = *schedule_start.get_or_insert(tick);
        let planned = origin + params.interval * u32::try_from(seq).unwrap_or(u32::MAX);
        lag.record(Instant::now().saturating_duration_since(planned));
        first_start.get_or_insert_with(Instant::now);
        let (api, sender, room_id, run) = (
            api.clone(),
            sender.clone(),
            room_id.to_owned(),
            run.to_owned(),
        );
        let line = lines.next_line();
        tasks.spawn(async move {
            let t_ns = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let content = json!({
                "msgtype": "m.text",
                "body": format!("{line} [#{seq} t={t_ns}ns]"),
                META: {"run": run, "seq": seq, "t_ns": t_ns},
            });
            send_message(&api, &sender, &room_id, &format!("{run}-f{seq}"), &content).await
        });
    }
    let mut sent = Sent {
        latencies: Latencies::new(),
        lag,
        failures: FailureLog::default(),
        first_start,
    };
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(latency)) => sent.latencies.record(latency),
            Ok(Err(failure)) => sent.failures.push(failure),
            Err(join_error) => sent.failures.push(Box::new(Failure {
                method: "PUT".to_owned(),
                url: "(send task)".to_owned(),
                request_body: None,
                status: None,
                response_body: None,
                error: Some(format!("the send task died: {join_error}")),
                elapsed: Duration::ZERO,
            })),
        }
    }
    sent
}

/// One receiver's sync loop.
struct ReceiveJob {
    api: Api,
    user: User,
    room_id: String,
    run: String,
    messages: usize,
    epoch: Instant,
    since: String,
    filter: String,
    stop: watch::Receiver<bool>,
    failures: Arc<Mutex<FailureLog>>,
}

impl ReceiveJob {
    /// Long-polls `/sync` until every message arrived or `stop` is raised.
    async fn run(mut self) -> Receiver {
        let mut out = Receiver {
            latencies: Latencies::new(),
            seen: vec![false; self.messages],
            duplicates: 0,
            limited: 0,
            syncs: 0,
            completed_at: None,
        };
        let mut received = 0usize;
        let timeout = SYNC_TIMEOUT_MS.to_string();
        while received < self.messages {
            if *self.stop.borrow_and_update() {
                break;
            }
            let url = self.api.url(
                "/_matrix/client/v3/sync",
                &[
                    ("since", &self.since),
                    ("timeout", &timeout),
                    ("filter", &self.filter),
                ],
            );
            let started = Instant::now();
            let request = self.api.raw(
                Method::GET,
                url.clone(),
                Some(&self.user.token),
                None,
                SYNC_REQUEST_TIMEOUT,
            );
            let reply = tokio::select! {
                biased;
                _ = self.stop.changed() => break,
                reply = request => reply,
            };
            out.syncs += 1;
            let body = reply.and_then(|reply| {
                check_json(&Method::GET, &url, None, &reply, started).map(|b| (reply.done, b))
            });
            let (done, body) = match body {
                Ok(ok) => ok,
                Err(failure) => {
                    self.fail(failure);
                    if self.pause().await {
                        break;
                    }
                    continue;
                }
            };
            let Some(next_batch) = body["next_batch"].as_str() else {
                self.fail(Box::new(Failure {
                    method: "GET".to_owned(),
                    url: url.to_string(),
                    request_body: None,
                    status: Some(200),
                    response_body: Some(body.to_string().chars().take(2048).collect()),
                    error: Some("the sync response has no next_batch".to_owned()),
                    elapsed: done.duration_since(started),
                }));
                if self.pause().await {
                    break;
                }
                continue;
            };
            self.since = next_batch.to_owned();
            let arrived_ns = done.duration_since(self.epoch).as_nanos();
            let timeline = &body["rooms"]["join"][&self.room_id]["timeline"];
            if timeline["limited"].as_bool() == Some(true) {
                out.limited += 1;
            }
            for event in timeline["events"].as_array().into_iter().flatten() {
                let meta = &event["content"][META];
                if meta["run"].as_str() != Some(&self.run) {
                    continue;
                }
                let (Some(seq), Some(t_ns)) = (meta["seq"].as_u64(), meta["t_ns"].as_u64()) else {
                    continue;
                };
                let Some(seen) = usize::try_from(seq).ok().and_then(|s| out.seen.get_mut(s)) else {
                    continue;
                };
                if *seen {
                    out.duplicates += 1;
                    continue;
                }
                *seen = true;
                received += 1;
                let latency_ns = arrived_ns.saturating_sub(u128::from(t_ns));
                out.latencies
                    .record_us(u64::try_from(latency_ns / 1_000).unwrap_or(u64::MAX));
            }
            if received == self.messages {
                out.completed_at = Some(done);
            }
        }
        out
    }

    fn fail(&self, failure: Failed) {
        if let Ok(mut log) = self.failures.lock() {
            log.push(failure);
        }
    }

    /// Waits [`RETRY_PAUSE`]; true when told to stop meanwhile.
    async fn pause(&mut self) -> bool {
        tokio::select! {
            _ = self.stop.changed() => true,
            () = tokio::time::sleep(RETRY_PAUSE) => false,
        }
    }
}

impl FanoutReport {
    pub fn missing_count(&self) -> u64 {
        self.expected - self.delivered
    }

    /// Every delivery arrived exactly once and no request failed.
    pub fn healthy(&self) -> bool {
        self.missing_count() == 0
            && self.duplicates == 0
            && self.send_failures.count == 0
            && self.sync_failures.count == 0
            && self.warnings.is_empty()
    }

    pub fn to_json(&self) -> Value {
        let p = &self.params;
        json!({
            "scenario": "fanout",
            "params": {
                "clients": p.clients,
                "messages": p.messages,
                "interval_ms": p.interval.as_secs_f64() * 1e3,
                "settle_ms": p.settle.as_secs_f64() * 1e3,
                "grace_s": p.grace.as_secs_f64(),
                "sync_timeout_ms": SYNC_TIMEOUT_MS,
            },
            "room_id": self.room_id,
            "deliveries": {
                "expected": self.expected,
                "delivered": self.delivered,
                "missing": self.missing_count(),
                "duplicates": self.duplicates,
                "receivers_complete": self.receivers_complete,
                "missing_by_receiver": self.missing.iter().map(|(i, user, seqs)| json!({
                    "receiver": i, "user_id": user, "count": seqs.len(), "seqs": seqs,
                })).collect::<Vec<_>>(),
            },
            "delivery_latency": self.delivery.summary().to_json(),
            "send_latency": self.send.summary().to_json(),
            "sender_schedule_lag": self.sender_lag.summary().to_json(),
            "sync_requests": self.sync_requests,
            "limited_timelines": self.limited,
            "send_phase_s": self.send_phase.as_secs_f64(),
            "drain_ms": self.drain.map(|d| d.as_secs_f64() * 1e3),
            "send_failures": self.send_failures.to_json(),
            "sync_failures": self.sync_failures.to_json(),
            "warnings": self.warnings,
            "cpu": self.cpu.to_json(),
            "healthy": self.healthy(),
        })
    }

    pub fn render(&self) -> String {
        let p = &self.params;
        let mut out = format!(
            "fanout: {} receivers x {} messages, one every {:.1} ms -> {} deliveries expected\n",
            p.clients,
            p.messages,
            p.interval.as_secs_f64() * 1e3,
            self.expected
        );
        out.push_str(&format!(
            "  delivered {} ({:.2} %), missing {}, duplicates {}, receivers complete {}/{}\n",
            self.delivered,
            100.0 * self.delivered as f64 / (self.expected.max(1)) as f64,
            self.missing_count(),
            self.duplicates,
            self.receivers_complete,
            p.clients,
        ));
        out.push_str(&format!(
            "  sync requests {} ({:.1}/receiver), limited timelines {}, send phase {:.2} s, drain {}\n",
            self.sync_requests,
            self.sync_requests as f64 / p.clients.max(1) as f64,
            self.limited,
            self.send_phase.as_secs_f64(),
            self.drain
                .map_or_else(|| "n/a".to_owned(), |d| format!("{:.1} ms", d.as_secs_f64() * 1e3)),
        ));
        out.push_str(&latency_table(&[
            ("delivery", self.delivery.summary()),
            ("send", self.send.summary()),
            ("sender lag", self.sender_lag.summary()),
        ]));
        out.push_str(&self.cpu.render());
        if self.missing_count() > 0 {
            out.push_str(&format!(
                "  !! MISSING {} of {} deliveries ({} receivers incomplete):\n",
                self.missing_count(),
                self.expected,
                self.missing.len()
            ));
            for (i, user, seqs) in self.missing.iter().take(LISTED_MISSING) {
                let listed: Vec<String> = seqs
                    .iter()
                    .take(LISTED_MISSING)
                    .map(usize::to_string)
                    .collect();
                let more = if seqs.len() > LISTED_MISSING {
                    ", …"
                } else {
                    ""
                };
                out.push_str(&format!(
                    "     receiver {i} {user}: {} missing: seq {}{more}\n",
                    seqs.len(),
                    listed.join(", ")
                ));
            }
        }
        if self.duplicates > 0 {
            out.push_str(&format!("  !! {} duplicate deliveries\n", self.duplicates));
        }
        for warning in &self.warnings {
            out.push_str(&format!("  !! {warning}\n"));
        }
        out.push_str(&self.send_failures.render("send"));
        out.push_str(&self.sync_failures.render("sync"));
        out
    }
}
