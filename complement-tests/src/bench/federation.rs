//! Scenarios across two federating servers, *home* (holds the room) and *away*
//! (joins it over federation):
//!
//! * `federation-join`: home's user creates a public room and fills it with
//!   S custom state events (`org.example.bench`, distinct state keys, through
//!   `PUT /rooms/{room}/state/…` on a few connections: timed as the *build*);
//!   then away's user joins it with `POST /join/{room}?server_name=<home>`,
//!   whose wall time is *the* figure (make_join, send_join, verifying every
//!   returned PDU, storing the state). Afterwards (untimed) the away server's
//!   copy of the state is counted.
//! * `federation-send`: away's user joins a small room of home; home's user
//!   sends N messages on C connections as fast as home accepts them; away's
//!   user long-polls `/sync` on away. Home's send rate and away's arrival rate
//!   (first to last arrival) show which side is the bottleneck; every message
//!   crosses home's outbound queue and away's `PUT /federation/v1/send`.
//!
//! Both servers are reached through their client API only; the benchmark
//! never speaks federation itself. The server names come from the user IDs
//! the servers hand out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::cpu::{CpuProbe, CpuUsage};
use super::http::{Api, Failed, FailureLog, check_json, encode_segment};
use super::send::send_message;
use super::setup::{self, Registration, User};
use super::stats::{Latencies, latency_table};
use super::text::Lines;

/// Event type of the filler state events.
pub const STATE_TYPE: &str = "org.example.bench";
/// Key of the benchmark's metadata in message contents.
const META: &str = "org.myelin.bench";
/// Timeout of one state PUT while building the room.
const STATE_TIMEOUT: Duration = Duration::from_secs(60);
/// Timeout of the untimed checks (e.g. reading 20,000 state events back).
const CHECK_TIMEOUT: Duration = Duration::from_secs(300);
/// Long-poll timeout of the receiver's `/sync`, in ms.
const SYNC_TIMEOUT_MS: u64 = 30_000;
/// Unrecorded messages sent (and awaited on away) before the timed phase.
const WARMUP_MESSAGES: usize = 10;

/// One of the two servers.
#[derive(Clone)]
pub struct Server {
    pub api: Api,
    pub registration: Registration,
    /// PID of its process, to report its CPU time and memory.
    pub pid: Option<u32>,
}

/// The server name part of a user ID (`@u:127.0.0.1:8448` → `127.0.0.1:8448`).
pub fn server_name_of(user_id: &str) -> anyhow::Result<String> {
    user_id
        .split_once(':')
        .map(|(_, server)| server.to_owned())
        .with_context(|| format!("{user_id:?} is not a user ID"))
}

/// `VmRSS` and `VmHWM` of a process, in kB (Linux).
pub fn memory_kb(pid: Option<u32>) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Adds the failures of `other` to `log` (which keeps its first few verbatim).
fn absorb(log: &mut FailureLog, other: FailureLog) {
    let extra = other.count.saturating_sub(other.samples.len() as u64);
    for sample in other.samples {
        log.push(sample);
    }
    log.count += extra;
}

fn cpu_line(label: &str, home: &CpuUsage, away: &CpuUsage) -> String {
    let show = |seconds: Option<f64>| match seconds {
        Some(s) => format!("{s:.2} s ({:.2} cores)", s / home.wall_s.max(1e-9)),
        None => "n/a".to_owned(),
    };
    format!(
        "  cpu during {label} ({:.2} s): home {}, away {}, bench {}\n",
        home.wall_s,
        show(home.server_s),
        show(away.server_s),
        show(home.bench_s),
    )
}

fn cpu_json(home: &CpuUsage, away: &CpuUsage) -> Value {
    json!({
        "wall_s": home.wall_s,
        "home_cpu_s": home.server_s,
        "away_cpu_s": away.server_s,
        "bench_cpu_s": home.bench_s,
    })
}

fn memory_json(memory: Option<(u64, u64)>) -> Value {
    match memory {
        Some((rss, hwm)) => json!({"vm_rss_kb": rss, "vm_hwm_kb": hwm}),
        None => Value::Null,
    }
}

fn render_memory(label: &str, memory: Option<(u64, u64)>) -> String {
    match memory {
        Some((rss, hwm)) => format!(
            "  {label}: VmRSS {:.1} MB, VmHWM {:.1} MB\n",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        ),
        None => String::new(),
    }
}

/// `POST /join/{room}?server_name=<via>&via=<via>`; the wall time of the
/// request, or the failure.
async fn join_over_federation(
    api: &Api,
    user: &User,
    room_id: &str,
    via: &str,
    timeout: Duration,
) -> Result<Duration, Failed> {
    let path = format!("/_matrix/client/v3/join/{}", encode_segment(room_id));
    let url = api.url(&path, &[("server_name", via), ("via", via)]);
    let body = json!({});
    let started = Instant::now();
    let reply = api
        .raw(
            Method::POST,
            url.clone(),
            Some(&user.token),
            Some(&body),
            timeout,
        )
        .await?;
    let elapsed = reply.done.duration_since(started);
    check_json(&Method::POST, &url, Some(&body), &reply, started)?;
    Ok(elapsed)
}

/// The membership of `target` in `room_id` as `viewer` sees it on `api`.
async fn membership(api: &Api, viewer: &User, room_id: &str, target: &str) -> Option<String> {
    let path = format!(
        "/_matrix/client/v3/rooms/{}/state/m.room.member/{}",
        encode_segment(room_id),
        encode_segment(target)
    );
    let body = api
        .json(
            Method::GET,
            api.url(&path, &[]),
            Some(&viewer.token),
            None,
            CHECK_TIMEOUT,
        )
        .await
        .ok()?;
    body["membership"].as_str().map(str::to_owned)
}

/// Polls until `target` is joined to `room_id` as `viewer` sees it on `api`;
/// how long that took, or `None` after `patience`.
async fn wait_for_join(
    api: &Api,
    viewer: &User,
    room_id: &str,
    target: &str,
    patience: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    loop {
        if membership(api, viewer, room_id, target).await.as_deref() == Some("join") {
            return Some(started.elapsed());
        }
        if started.elapsed() > patience {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------
// federation-join

/// Parameters of the `federation-join` scenario.
#[derive(Debug, Clone)]
pub struct JoinParams {
    /// Filler state events in the room before the join.
    pub state_events: usize,
    /// Connections filling the room.
    pub concurrency: usize,
    /// `room_version` of the room (the home server's default when `None`).
    pub room_version: Option<String>,
    /// Client-side timeout of the join request.
    pub join_timeout: Duration,
}

/// What the `federation-join` scenario measured.
pub struct JoinReport {
    pub params: JoinParams,
    pub home_server: String,
    pub away_server: String,
    pub room_id: String,
    /// Wall time of filling the room, and the latency of each state PUT.
    pub build: Duration,
    pub build_latencies: Latencies,
    pub build_failures: FailureLog,
    pub build_cpu: CpuUsage,
    /// Memory of the home server after the build.
    pub home_memory_built: Option<(u64, u64)>,
    /// Wall time of the join request, or why it failed.
    pub join: Result<Duration, Failed>,
    pub join_cpu: (CpuUsage, CpuUsage),
    /// How long after the join returned home showed the user as joined.
    pub join_seen_on_home: Option<Duration>,
    /// Filler state events the away server returns in `GET /rooms/{room}/state`
    /// after the join, and how long that request took.
    pub away_state: Option<(usize, Duration)>,
    /// Memory of each server after the join.
    pub home_memory: Option<(u64, u64)>,
    pub away_memory: Option<(u64, u64)>,
}

/// Fills `room_id` with `count` filler state events on `concurrency`
/// connections.
async fn fill_room(
    api: &Api,
    user: &User,
    room_id: &str,
    count: usize,
    concurrency: usize,
) -> (Latencies, FailureLog) {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (api, user, room_id, next) =
            (api.clone(), user.clone(), room_id.to_owned(), next.clone());
        tasks.spawn(async move {
            let mut latencies = Latencies::new();
            let mut failures = FailureLog::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                if count >= 10 && i % (count / 10) == 0 && i > 0 {
                    eprintln!("  … {i} / {count} state events");
                }
                let path = format!(
                    "/_matrix/client/v3/rooms/{}/state/{STATE_TYPE}/k{i:06}",
                    encode_segment(&room_id)
                );
                let url = api.url(&path, &[]);
                let body = json!({"n": i});
                let started = Instant::now();
                let outcome = match api
                    .raw(
                        Method::PUT,
                        url.clone(),
                        Some(&user.token),
                        Some(&body),
                        STATE_TIMEOUT,
                    )
                    .await
                {
                    Ok(reply) => check_json(&Method::PUT, &url, Some(&body), &reply, started)
                        .map(|_| reply.done.duration_since(started)),
                    Err(failure) => Err(failure),
                };
                match outcome {
                    Ok(latency) => latencies.record(latency),
                    Err(failure) => failures.push(failure),
                }
            }
            (latencies, failures)
        });
    }
    let mut latencies = Latencies::new();
    let mut failures = FailureLog::default();
    while let Some(done) = tasks.join_next().await {
        if let Ok((l, f)) = done {
            latencies.merge(&l);
            absorb(&mut failures, f);
        }
    }
    (latencies, failures)
}

/// Counts the filler state events in `GET /rooms/{room}/state` on `api`.
async fn count_filler_state(
    api: &Api,
    user: &User,
    room_id: &str,
) -> anyhow::Result<(usize, Duration)> {
    let path = format!("/_matrix/client/v3/rooms/{}/state", encode_segment(room_id));
    let started = Instant::now();
    let reply = api
        .raw(
            Method::GET,
            api.url(&path, &[]),
            Some(&user.token),
            None,
            CHECK_TIMEOUT,
        )
        .await?;
    let elapsed = started.elapsed();
    if !reply.status.is_success() {
        bail!(
            "GET {path} -> HTTP {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body[..reply.body.len().min(500)])
        );
    }
    let events: Vec<Value> =
        serde_json::from_slice(&reply.body).context("the state is not a JSON array")?;
    let count = events.iter().filter(|e| e["type"] == STATE_TYPE).count();
    Ok((count, elapsed))
}

/// What both federation scenarios start from: a user on each server and a public room on
/// home, not yet joined from away.
struct Meeting {
    run: String,
    alice: User,
    bob: User,
    home_server: String,
    away_server: String,
    room_id: String,
}

/// Registers alice on home and bob on away and has alice create the scenario's room.
async fn meet(
    home: &Server,
    away: &Server,
    scenario: &str,
    room_version: Option<&str>,
) -> anyhow::Result<Meeting> {
    let run = setup::run_id();
    let alice = setup::register(&home.api, &home.registration, &format!("bench-{run}-home"))
        .await
        .context("registering on home")?;
    let bob = setup::register(&away.api, &away.registration, &format!("bench-{run}-away"))
        .await
        .context("registering on away")?;
    let home_server = server_name_of(&alice.user_id)?;
    let away_server = server_name_of(&bob.user_id)?;
    let name = format!("myelin-bench {scenario} {run}");
    let room_id = setup::create_room_of_version(&home.api, &alice, &name, room_version).await?;
    Ok(Meeting { run, alice, bob, home_server, away_server, room_id })
}

/// Runs `federation-join`.
pub async fn run_join(
    home: &Server,
    away: &Server,
    params: JoinParams,
) -> anyhow::Result<JoinReport> {
    let Meeting { alice, bob, home_server, away_server, room_id, .. } =
        meet(home, away, "federation-join", params.room_version.as_deref()).await?;
    eprintln!(
        "  building {room_id} on {home_server}: {} state events on {} connections",
        params.state_events, params.concurrency
    );

    let probe = CpuProbe::start(home.pid);
    let started = Instant::now();
    let (build_latencies, build_failures) = fill_room(
        &home.api,
        &alice,
        &room_id,
        params.state_events,
        params.concurrency,
    )
    .await;
    let build = started.elapsed();
    let build_cpu = probe.finish();
    let home_memory_built = memory_kb(home.pid);
    eprintln!(
        "  built in {:.2} s; {away_server} joins through {home_server}",
        build.as_secs_f64()
    );

    let (home_probe, away_probe) = (CpuProbe::start(home.pid), CpuProbe::start(away.pid));
    let join =
        join_over_federation(&away.api, &bob, &room_id, &home_server, params.join_timeout).await;
    let join_cpu = (home_probe.finish(), away_probe.finish());
    let (home_memory, away_memory) = (memory_kb(home.pid), memory_kb(away.pid));

    let (join_seen_on_home, away_state) = if join.is_ok() {
        let seen = wait_for_join(
            &home.api,
            &alice,
            &room_id,
            &bob.user_id,
            Duration::from_secs(30),
        )
        .await;
        let state = count_filler_state(&away.api, &bob, &room_id).await;
        if let Err(error) = &state {
            eprintln!("  !! reading the state back on away failed: {error:#}");
        }
        (seen, state.ok())
    } else {
        (None, None)
    };

    Ok(JoinReport {
        params,
        home_server,
        away_server,
        room_id,
        build,
        build_latencies,
        build_failures,
        build_cpu,
        home_memory_built,
        join,
        join_cpu,
        join_seen_on_home,
        away_state,
        home_memory,
        away_memory,
    })
}

impl JoinReport {
    /// The join succeeded, away holds every filler state event and the build
    /// had no failure.
    pub fn healthy(&self) -> bool {
        self.join.is_ok()
            && self.build_failures.count == 0
            && self
                .away_state
                .is_some_and(|(count, _)| count == self.params.state_events)
            && self.join_seen_on_home.is_some()
    }

    pub fn to_json(&self) -> Value {
        let p = &self.params;
        json!({
            "scenario": "federation-join",
            "params": {
                "state_events": p.state_events,
                "concurrency": p.concurrency,
                "room_version": p.room_version,
                "join_timeout_s": p.join_timeout.as_secs_f64(),
            },
            "home_server": self.home_server,
            "away_server": self.away_server,
            "room_id": self.room_id,
            "build": {
                "wall_s": self.build.as_secs_f64(),
                "state_events_per_s": self.build_latencies.count() as f64 / self.build.as_secs_f64().max(1e-9),
                "latency": self.build_latencies.summary().to_json(),
                "failures": self.build_failures.to_json(),
                "home_cpu_s": self.build_cpu.server_s,
                "home_memory_after": memory_json(self.home_memory_built),
            },
            "join": match &self.join {
                Ok(wall) => json!({"ok": true, "wall_s": wall.as_secs_f64()}),
                Err(failure) => json!({"ok": false, "failure": failure.to_json()}),
            },
            "join_cpu": cpu_json(&self.join_cpu.0, &self.join_cpu.1),
            "join_seen_on_home_s": self.join_seen_on_home.map(|d| d.as_secs_f64()),
            "away_state": self.away_state.map(|(count, took)| json!({
                "filler_state_events": count,
                "read_s": took.as_secs_f64(),
            })),
            "home_memory_after_join": memory_json(self.home_memory),
            "away_memory_after_join": memory_json(self.away_memory),
            "healthy": self.healthy(),
        })
    }

    pub fn render(&self) -> String {
        let p = &self.params;
        let mut out = format!(
            "federation-join: {} joins a room of {} holding {} {STATE_TYPE} state events (room version {})\n",
            self.away_server,
            self.home_server,
            p.state_events,
            p.room_version.as_deref().unwrap_or("default"),
        );
        out.push_str(&format!(
            "  build: {} state PUTs on {} connections in {:.2} s ({:.0}/s), {} failed\n",
            self.build_latencies.count(),
            p.concurrency,
            self.build.as_secs_f64(),
            self.build_latencies.count() as f64 / self.build.as_secs_f64().max(1e-9),
            self.build_failures.count,
        ));
        out.push_str(&latency_table(&[(
            "state PUT",
            self.build_latencies.summary(),
        )]));
        if let Some(cpu) = self.build_cpu.server_s {
            out.push_str(&format!("  home cpu during the build: {cpu:.2} s\n"));
        }
        out.push_str(&render_memory(
            "home after the build",
            self.home_memory_built,
        ));
        match &self.join {
            Ok(wall) => out.push_str(&format!("  JOIN: {:.3} s wall time\n", wall.as_secs_f64())),
            Err(failure) => out.push_str(&format!("  !! JOIN FAILED: {failure}\n")),
        }
        out.push_str(&cpu_line("the join", &self.join_cpu.0, &self.join_cpu.1));
        out.push_str(&render_memory("home after the join", self.home_memory));
        out.push_str(&render_memory("away after the join", self.away_memory));
        if self.join.is_ok() {
            match self.join_seen_on_home {
                Some(d) => out.push_str(&format!(
                    "  home shows the member joined {:.0} ms after the join returned\n",
                    d.as_secs_f64() * 1e3
                )),
                None => out.push_str("  !! home does not show the member joined within 30 s\n"),
            }
            match self.away_state {
                Some((count, took)) if count == p.state_events => out.push_str(&format!(
                    "  away holds all {count} filler state events (GET /state took {:.2} s)\n",
                    took.as_secs_f64()
                )),
                Some((count, _)) => out.push_str(&format!(
                    "  !! away holds {count} of {} filler state events\n",
                    p.state_events
                )),
                None => out.push_str("  !! the state could not be read back on away\n"),
            }
        }
        out.push_str(&self.build_failures.render("state PUT"));
        out
    }
}

// ---------------------------------------------------------------------------
// federation-send

/// Parameters of the `federation-send` scenario.
#[derive(Debug, Clone)]
pub struct FedSendParams {
    /// Messages sent on home.
    pub messages: usize,
    /// Connections sending them.
    pub concurrency: usize,
    /// How long to wait for missing messages on away after the last send.
    pub grace: Duration,
    /// Stop the away process (SIGSTOP) while home accepts the messages and
    /// continue it (SIGCONT) once they are all accepted: home's queue then
    /// holds a backlog, and away's arrival rate after the resume is its own
    /// intake rate rather than home's send rate.
    pub pause_away: bool,
}

/// Sends `signal` (`STOP`, `CONT`) to `pid` with kill(1).
fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill -{signal} {pid} failed ({status})");
    }
    Ok(())
}

/// A stopped process, continued when dropped (whatever happens meanwhile).
struct Paused(Option<u32>);

impl Paused {
    fn new(pid: u32) -> anyhow::Result<Paused> {
        signal(pid, "STOP")?;
        Ok(Paused(Some(pid)))
    }

    fn resume(&mut self) -> anyhow::Result<()> {
        match self.0.take() {
            Some(pid) => signal(pid, "CONT"),
            None => Ok(()),
        }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = signal(pid, "CONT");
        }
    }
}

/// What the `federation-send` scenario measured.
pub struct FedSendReport {
    pub params: FedSendParams,
    pub home_server: String,
    pub away_server: String,
    pub room_id: String,
    /// Wall time of the (untimed) join of away's user.
    pub join: Duration,
    /// Latency of home's send PUTs, failures, first start → last completion.
    pub send: Latencies,
    pub send_failures: FailureLog,
    pub send_phase: Duration,
    /// Send start on home → arrival in a `/sync` response on away.
    pub delivery: Latencies,
    pub delivered: usize,
    pub duplicates: u64,
    pub limited: u64,
    pub sync_failures: FailureLog,
    /// First send start → first arrival, first → last arrival, first send start → last arrival.
    pub first_arrival: Option<Duration>,
    pub arrival_span: Option<Duration>,
    pub end_to_end: Option<Duration>,
    /// Last send completed → last arrival.
    pub drain: Option<Duration>,
    /// With `pause_away`: when away was continued (since the first send), and
    /// from then to the last arrival.
    pub resumed: Option<Duration>,
    pub backlog_drain: Option<Duration>,
    pub cpu: (CpuUsage, CpuUsage),
    pub home_memory: Option<(u64, u64)>,
    pub away_memory: Option<(u64, u64)>,
}

/// What the receiver on away saw.
#[derive(Default)]
struct Arrivals {
    /// `at[seq]`: when message `seq` first arrived.
    at: Vec<Option<Instant>>,
    duplicates: u64,
    limited: u64,
    failures: FailureLog,
}

/// Long-polls `/sync` on away from `since`, recording the arrival of every
/// message of run `run` (sequence numbers `< expected`) until all arrived or
/// `stop` turns true.
async fn receive(
    api: Api,
    user: User,
    room_id: String,
    run: String,
    expected: usize,
    mut since: String,
    mut stop: watch::Receiver<bool>,
) -> Arrivals {
    let mut out = Arrivals {
        at: vec![None; expected],
        ..Arrivals::default()
    };
    let filter = json!({"room": {"timeline": {"limit": expected + 50}}}).to_string();
    let timeout = SYNC_TIMEOUT_MS.to_string();
    let mut received = 0;
    while received < expected && !*stop.borrow() {
        let url = api.url(
            "/_matrix/client/v3/sync",
            &[
                ("since", since.as_str()),
                ("timeout", &timeout),
                ("filter", &filter),
            ],
        );
        let started = Instant::now();
        let request = api.raw(
            Method::GET,
            url.clone(),
            Some(&user.token),
            None,
            Duration::from_millis(SYNC_TIMEOUT_MS + 15_000),
        );
        let reply = tokio::select! {
            reply = request => reply,
            _ = stop.changed() => break,
        };
        let body = match reply.and_then(|r| {
            let body = check_json(&Method::GET, &url, None, &r, started)?;
            Ok((r.done, body))
        }) {
            Ok(ok) => ok,
            Err(failure) => {
                out.failures.push(failure);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let (done, body) = body;
        if let Some(next) = body["next_batch"].as_str() {
            since = next.to_owned();
        }
        let timeline = &body["rooms"]["join"][&room_id]["timeline"];
        if timeline["limited"] == true {
            out.limited += 1;
        }
        for event in timeline["events"].as_array().into_iter().flatten() {
            let meta = &event["content"][META];
            if meta["run"].as_str() != Some(run.as_str()) {
                continue;
            }
            let Some(seq) = meta["seq"].as_u64().and_then(|s| usize::try_from(s).ok()) else {
                continue;
            };
            match out.at.get_mut(seq) {
                Some(slot @ None) => {
                    *slot = Some(done);
                    received += 1;
                }
                Some(Some(_)) => out.duplicates += 1,
                None => {}
            }
        }
    }
    out
}

/// Runs `federation-send`.
pub async fn run_send(
    home: &Server,
    away: &Server,
    params: FedSendParams,
) -> anyhow::Result<FedSendReport> {
    let Meeting { run, alice, bob, home_server, away_server, room_id } =
        meet(home, away, "federation-send", None).await?;
    let join = join_over_federation(
        &away.api,
        &bob,
        &room_id,
        &home_server,
        Duration::from_secs(120),
    )
    .await
    .map_err(|failure| anyhow::anyhow!("the join of {} failed: {failure}", bob.user_id))?;
    if wait_for_join(
        &home.api,
        &alice,
        &room_id,
        &bob.user_id,
        Duration::from_secs(30),
    )
    .await
    .is_none()
    {
        bail!(
            "{home_server} does not show {} joined to {room_id}",
            bob.user_id
        );
    }

    // Warm-up: connections, keys and caches, then a fresh `since`.
    let (_, initial) = setup::initial_sync(
        &away.api,
        &bob,
        &json!({"room": {"timeline": {"limit": 1}}}),
    )
    .await?;
    let warm_run = format!("{run}-warm");
    let (stop_tx, stop_rx) = watch::channel(false);
    let warm = tokio::spawn(receive(
        away.api.clone(),
        bob.clone(),
        room_id.clone(),
        warm_run.clone(),
        WARMUP_MESSAGES,
        initial["next_batch"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        stop_rx.clone(),
    ));
    for seq in 0..WARMUP_MESSAGES {
        let content =
            json!({"msgtype": "m.text", "body": "warm-up", META: {"run": warm_run, "seq": seq}});
        send_message(
            &home.api,
            &alice,
            &room_id,
            &format!("{warm_run}-{seq}"),
            &content,
        )
        .await
        .map_err(|failure| anyhow::anyhow!("warm-up send failed: {failure}"))?;
    }
    let warmed = tokio::time::timeout(Duration::from_secs(60), warm).await;
    match warmed {
        Ok(Ok(arrivals)) if arrivals.at.iter().all(Option::is_some) => {}
        _ => bail!(
            "the {WARMUP_MESSAGES} warm-up messages did not all reach {away_server} within 60 s"
        ),
    }
    drop(stop_tx);
    let (since, _) = setup::initial_sync(
        &away.api,
        &bob,
        &json!({"room": {"timeline": {"limit": 1}}}),
    )
    .await?;

    // ---- timed phase -------------------------------------------------------
    let (stop_tx, stop_rx) = watch::channel(false);
    let receiver = tokio::spawn(receive(
        away.api.clone(),
        bob.clone(),
        room_id.clone(),
        run.clone(),
        params.messages,
        since,
        stop_rx,
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut paused = match (params.pause_away, away.pid) {
        (false, _) => None,
        (true, Some(pid)) => Some(Paused::new(pid)?),
        (true, None) => bail!("pausing away needs its PID (--away-pid)"),
    };
    let (home_probe, away_probe) = (CpuProbe::start(home.pid), CpuProbe::start(away.pid));
    let epoch = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut senders = JoinSet::new();
    for worker in 0..params.concurrency.max(1) {
        let (api, alice, room_id, run, next) = (
            home.api.clone(),
            alice.clone(),
            room_id.clone(),
            run.clone(),
            next.clone(),
        );
        let messages = params.messages;
        senders.spawn(async move {
            let mut lines = Lines::new(0xFEDE + worker as u64);
            let mut latencies = Latencies::new();
            let mut failures = FailureLog::default();
            let mut starts = Vec::new();
            loop {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                if seq >= messages {
                    break;
                }
                starts.push((seq, Instant::now()));
                let content = json!({
                    "msgtype": "m.text",
                    "body": lines.next_line(),
                    META: {"run": run, "seq": seq},
                });
                match send_message(&api, &alice, &room_id, &format!("{run}-{seq}"), &content).await
                {
                    Ok(latency) => latencies.record(latency),
                    Err(failure) => failures.push(failure),
                }
            }
            (latencies, failures, starts)
        });
    }
    let mut send = Latencies::new();
    let mut send_failures = FailureLog::default();
    let mut started_at: Vec<Option<Instant>> = vec![None; params.messages];
    while let Some(done) = senders.join_next().await {
        let (latencies, failures, starts) = done.context("a sender task panicked")?;
        send.merge(&latencies);
        absorb(&mut send_failures, failures);
        for (seq, at) in starts {
            started_at[seq] = Some(at);
        }
    }
    let sends_done = Instant::now();
    let send_phase = sends_done.duration_since(epoch);
    eprintln!(
        "  home accepted {} messages in {:.2} s; waiting for them on {away_server}",
        send.count(),
        send_phase.as_secs_f64()
    );
    let resumed_at = match paused.as_mut() {
        Some(paused) => {
            paused.resume()?;
            eprintln!("  {away_server} continued (SIGCONT)");
            Some(Instant::now())
        }
        None => None,
    };

    let grace = tokio::time::sleep(params.grace);
    tokio::pin!(grace);
    let mut receiver = receiver;
    let arrivals = tokio::select! {
        done = &mut receiver => done.context("the receiver panicked")?,
        () = &mut grace => {
            let _ = stop_tx.send(true);
            receiver.await.context("the receiver panicked")?
        }
    };
    let cpu = (home_probe.finish(), away_probe.finish());
    let (home_memory, away_memory) = (memory_kb(home.pid), memory_kb(away.pid));

    let mut delivery = Latencies::new();
    for (seq, arrived) in arrivals.at.iter().enumerate() {
        if let (Some(arrived), Some(started)) = (arrived, started_at[seq]) {
            delivery.record(arrived.saturating_duration_since(started));
        }
    }
    let arrived: Vec<Instant> = arrivals.at.iter().flatten().copied().collect();
    let first = arrived.iter().min().copied();
    let last = arrived.iter().max().copied();
    let complete = arrived.len() == params.messages;
    Ok(FedSendReport {
        home_server,
        away_server,
        room_id,
        join,
        send,
        send_failures,
        send_phase,
        delivery,
        delivered: arrived.len(),
        duplicates: arrivals.duplicates,
        limited: arrivals.limited,
        sync_failures: arrivals.failures,
        first_arrival: first.map(|f| f.saturating_duration_since(epoch)),
        arrival_span: first.zip(last).map(|(f, l)| l.saturating_duration_since(f)),
        end_to_end: last.map(|l| l.saturating_duration_since(epoch)),
        drain: last
            .filter(|_| complete)
            .map(|l| l.saturating_duration_since(sends_done)),
        resumed: resumed_at.map(|r| r.saturating_duration_since(epoch)),
        backlog_drain: resumed_at
            .zip(last)
            .map(|(r, l)| l.saturating_duration_since(r)),
        cpu,
        home_memory,
        away_memory,
        params,
    })
}

impl FedSendReport {
    fn rate(count: usize, span: Option<Duration>) -> Option<f64> {
        span.map(|s| count as f64 / s.as_secs_f64().max(1e-9))
    }

    /// Messages accepted by home per second (first send start → last send done).
    pub fn send_rate(&self) -> f64 {
        self.send.count() as f64 / self.send_phase.as_secs_f64().max(1e-9)
    }

    /// Messages arriving on away per second, first to last arrival.
    pub fn arrival_rate(&self) -> Option<f64> {
        Self::rate(self.delivered.saturating_sub(1), self.arrival_span)
    }

    /// Messages per second from the first send on home to the last arrival on away.
    pub fn end_to_end_rate(&self) -> Option<f64> {
        Self::rate(self.delivered, self.end_to_end)
    }

    /// With `pause_away`: messages per second from the resume to the last arrival.
    pub fn backlog_rate(&self) -> Option<f64> {
        Self::rate(self.delivered, self.backlog_drain)
    }

    pub fn healthy(&self) -> bool {
        self.delivered == self.params.messages
            && self.duplicates == 0
            && self.send_failures.count == 0
            && self.sync_failures.count == 0
    }

    pub fn to_json(&self) -> Value {
        let p = &self.params;
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
        json!({
            "scenario": "federation-send",
            "params": {
                "messages": p.messages,
                "concurrency": p.concurrency,
                "grace_s": p.grace.as_secs_f64(),
                "pause_away": p.pause_away,
            },
            "home_server": self.home_server,
            "away_server": self.away_server,
            "room_id": self.room_id,
            "setup_join_s": self.join.as_secs_f64(),
            "home_send": {
                "accepted": self.send.count(),
                "wall_s": self.send_phase.as_secs_f64(),
                "msg_per_s": self.send_rate(),
                "latency": self.send.summary().to_json(),
                "failures": self.send_failures.to_json(),
            },
            "away_arrivals": {
                "delivered": self.delivered,
                "missing": p.messages - self.delivered,
                "duplicates": self.duplicates,
                "limited_timelines": self.limited,
                "first_arrival_s": secs(self.first_arrival),
                "first_to_last_arrival_s": secs(self.arrival_span),
                "arrival_msg_per_s": self.arrival_rate(),
                "first_send_to_last_arrival_s": secs(self.end_to_end),
                "end_to_end_msg_per_s": self.end_to_end_rate(),
                "drain_after_last_send_s": secs(self.drain),
                "resumed_s": secs(self.resumed),
                "resume_to_last_arrival_s": secs(self.backlog_drain),
                "backlog_msg_per_s": self.backlog_rate(),
                "delivery_latency": self.delivery.summary().to_json(),
                "sync_failures": self.sync_failures.to_json(),
            },
            "cpu": cpu_json(&self.cpu.0, &self.cpu.1),
            "home_memory": memory_json(self.home_memory),
            "away_memory": memory_json(self.away_memory),
            "healthy": self.healthy(),
        })
    }

    pub fn render(&self) -> String {
        let p = &self.params;
        let mut out = format!(
            "federation-send: {} messages sent on {} ({} connections), received on {}{} (setup join {:.0} ms)\n",
            p.messages,
            self.home_server,
            p.concurrency,
            self.away_server,
            if p.pause_away {
                ", stopped until home accepted them all"
            } else {
                ""
            },
            self.join.as_secs_f64() * 1e3,
        );
        out.push_str(&format!(
            "  home accepted {} in {:.2} s: {:.0} msg/s ({} failed)\n",
            self.send.count(),
            self.send_phase.as_secs_f64(),
            self.send_rate(),
            self.send_failures.count,
        ));
        let fmt_s = |d: Option<Duration>| {
            d.map_or_else(|| "n/a".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()))
        };
        let fmt_rate =
            |r: Option<f64>| r.map_or_else(|| "n/a".to_owned(), |r| format!("{r:.0} msg/s"));
        out.push_str(&format!(
            "  away received {} / {} (duplicates {}, limited timelines {}): first arrival at {}, \
             first→last {} = {}\n",
            self.delivered,
            p.messages,
            self.duplicates,
            self.limited,
            fmt_s(self.first_arrival),
            fmt_s(self.arrival_span),
            fmt_rate(self.arrival_rate()),
        ));
        out.push_str(&format!(
            "  END TO END: first send → last arrival {} = {}; drain after the last send {}\n",
            fmt_s(self.end_to_end),
            fmt_rate(self.end_to_end_rate()),
            fmt_s(self.drain),
        ));
        if let (Some(resumed), Some(drain)) = (self.resumed, self.backlog_drain) {
            out.push_str(&format!(
                "  BACKLOG: away was stopped during the sends and continued at {:.2} s; \
                 resume → last arrival {:.2} s = {}\n",
                resumed.as_secs_f64(),
                drain.as_secs_f64(),
                fmt_rate(self.backlog_rate()),
            ));
        }
        out.push_str(&latency_table(&[
            ("send (home)", self.send.summary()),
            ("send→away sync", self.delivery.summary()),
        ]));
        out.push_str(&cpu_line("the timed phase", &self.cpu.0, &self.cpu.1));
        out.push_str(&render_memory("home", self.home_memory));
        out.push_str(&render_memory("away", self.away_memory));
        if self.delivered < p.messages {
            out.push_str(&format!(
                "  !! {} of {} messages never reached away\n",
                p.messages - self.delivered,
                p.messages
            ));
        }
        out.push_str(&self.send_failures.render("send"));
        out.push_str(&self.sync_failures.render("sync (away)"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_come_from_user_ids() {
        assert_eq!(
            server_name_of("@a:127.0.0.1:8448").unwrap(),
            "127.0.0.1:8448"
        );
        assert_eq!(
            server_name_of("@bench-1-home:example.org").unwrap(),
            "example.org"
        );
        assert!(server_name_of("nobody").is_err());
    }

    #[test]
    fn own_memory_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            let (rss, hwm) = memory_kb(Some(std::process::id())).expect("VmRSS and VmHWM");
            assert!(rss > 0 && hwm >= rss);
        }
    }

    #[test]
    fn absorbed_failure_logs_keep_counts() {
        let mut log = FailureLog::default();
        let other = FailureLog {
            count: 25,
            samples: Vec::new(),
        };
        absorb(&mut log, other);
        assert_eq!(log.count, 25);
    }
}
