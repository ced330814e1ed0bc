//! `myelin-bench`: load scenarios against a running Myelin server.
//!
//! ```text
//! myelin-bench --url http://127.0.0.1:8008 --shared-secret S send [--messages N] [--warmup W]
//! myelin-bench --url http://127.0.0.1:8008 --open-registration fanout [--clients C] [--messages M]
//!              [--interval-ms MS] [--json out.json] [--smoke]
//! myelin-bench --shared-secret S federation-join --home URL --away URL [--state-events 20000]
//!              [--concurrency 4] [--home-pid PID] [--away-pid PID]
//! myelin-bench --shared-secret S federation-send --home URL --away URL [-n 3000] [--concurrency 4]
//! ```
//!
//! The federation scenarios talk to two servers that federate with each
//! other (`bench/run-federation.sh` starts them); `--shared-secret` and
//! `--open-registration` apply to both, unless `--away-shared-secret` gives
//! the away server its own secret.
//!
//! Setup (accounts, rooms, joins, initial syncs) is never timed. Results go
//! to stdout as a table and, with `--json`, to a file. Exit status: 0 when
//! the run was clean, 3 when the server misbehaved (failed requests, missing
//! or duplicate deliveries), 1 when the benchmark could not run, 2 for a
//! command-line error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use complement_tests::bench::fanout::{self, FanoutParams};
use complement_tests::bench::federation::{self, FedSendParams, JoinParams, Server};
use complement_tests::bench::http::Api;
use complement_tests::bench::send::{self, SendParams};
use complement_tests::bench::setup::Registration;
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(
    name = "myelin-bench",
    version,
    about = "Load scenarios against a running Myelin server"
)]
struct Cli {
    /// Base URL of the server, e.g. http://127.0.0.1:8008.
    #[arg(long, global = true, env = "MYELIN_BENCH_URL")]
    url: Option<String>,

    /// Register accounts through /_synapse/admin/v1/register with this secret.
    #[arg(
        long,
        global = true,
        env = "MYELIN_BENCH_SHARED_SECRET",
        hide_env_values = true
    )]
    shared_secret: Option<String>,

    /// Register accounts through open registration (m.login.dummy).
    #[arg(long, global = true, conflicts_with = "shared_secret")]
    open_registration: bool,

    /// Also write every figure and the parameters to this JSON file.
    #[arg(long, global = true, value_name = "FILE")]
    json: Option<PathBuf>,

    /// PID of the server, to report its CPU time during the timed phase
    /// (read from /proc; Linux only).
    #[arg(long, global = true, value_name = "PID")]
    server_pid: Option<u32>,

    /// Tiny sizes for CI (send: N=50; fanout: C=5, M=10; federation-join: S=200;
    /// federation-send: N=100); explicit sizes win.
    #[arg(long, global = true)]
    smoke: bool,

    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// S2: one client sends N messages sequentially; per-request latency.
    Send(SendArgs),
    /// S4-lite: C long-polling receivers, M messages at a fixed interval;
    /// send-to-delivery latency.
    Fanout(FanoutArgs),
    /// Two servers: a room with S state events on home, joined from away;
    /// wall time of the join request.
    FederationJoin(FederationJoinArgs),
    /// Two servers: N messages sent on home as fast as it accepts them,
    /// received by a /sync on away; home's send rate and away's arrival rate.
    FederationSend(FederationSendArgs),
}

#[derive(Args, Debug)]
struct PeerArgs {
    /// Client API base URL of the server holding the room.
    #[arg(long)]
    home: String,
    /// Client API base URL of the server that joins over federation.
    #[arg(long)]
    away: String,
    /// PID of the home server (CPU time, memory).
    #[arg(long, value_name = "PID")]
    home_pid: Option<u32>,
    /// PID of the away server (CPU time, memory).
    #[arg(long, value_name = "PID")]
    away_pid: Option<u32>,
    /// Registration shared secret of the away server, when it differs from
    /// --shared-secret.
    #[arg(long, hide_env_values = true, env = "MYELIN_BENCH_AWAY_SHARED_SECRET")]
    away_shared_secret: Option<String>,
}

#[derive(Args, Debug)]
struct FederationJoinArgs {
    #[command(flatten)]
    peers: PeerArgs,
    /// Custom state events put in the room before the join [default: 20000, smoke 200].
    #[arg(long, short = 's')]
    state_events: Option<usize>,
    /// Connections putting them.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Room version of the room [default: the home server's default].
    #[arg(long)]
    room_version: Option<String>,
    /// Client-side timeout of the join request, in seconds.
    #[arg(long, default_value_t = 600)]
    join_timeout_secs: u64,
}

#[derive(Args, Debug)]
struct FederationSendArgs {
    #[command(flatten)]
    peers: PeerArgs,
    /// Messages sent on home [default: 3000, smoke 100].
    #[arg(long, short = 'n')]
    messages: Option<usize>,
    /// Connections sending them.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// How long to wait on away for missing messages after the last send, in seconds.
    #[arg(long, default_value_t = 60)]
    grace_secs: u64,
    /// Stop away (SIGSTOP, needs --away-pid) while home accepts the messages,
    /// then continue it: away's arrival rate is then its intake rate of a
    /// backlog, whatever home's send rate.
    #[arg(long)]
    pause_away: bool,
}

#[derive(Args, Debug)]
struct SendArgs {
    /// Recorded messages [default: 3000, smoke 50].
    #[arg(long, short = 'n')]
    messages: Option<usize>,
    /// Unrecorded warm-up messages [default: 100, smoke 10].
    #[arg(long)]
    warmup: Option<usize>,
}

#[derive(Args, Debug)]
struct FanoutArgs {
    /// Receiving clients [default: 100, smoke 5].
    #[arg(long, short = 'c')]
    clients: Option<usize>,
    /// Messages sent [default: 200, smoke 10].
    #[arg(long, short = 'm')]
    messages: Option<usize>,
    /// Interval between two sends, in ms.
    #[arg(long, default_value_t = 20.0)]
    interval_ms: f64,
    /// Pause between starting the receivers and the first send, in ms.
    #[arg(long, default_value_t = 500)]
    settle_ms: u64,
    /// How long receivers may wait for missing messages after the last send,
    /// in seconds [default: 30, smoke 10].
    #[arg(long)]
    grace_secs: Option<u64>,
}

fn size(explicit: Option<usize>, smoke: bool, smoke_value: usize, full: usize) -> usize {
    explicit.unwrap_or(if smoke { smoke_value } else { full })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!(
                "myelin-bench: the server misbehaved during the run (see the !! lines above)"
            );
            ExitCode::from(3)
        }
        Err(error) => {
            eprintln!("myelin-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chosen scenario; `Ok(healthy)`.
async fn run(cli: Cli) -> anyhow::Result<bool> {
    let registration = match (&cli.shared_secret, cli.open_registration) {
        (Some(secret), false) => Registration::SharedSecret(secret.clone()),
        (None, true) => Registration::Open,
        _ => bail!("give either --shared-secret SECRET or --open-registration"),
    };
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();

    let needs_url = || cli.url.clone().context("--url is required");
    let peers = |peers: &PeerArgs| -> anyhow::Result<(Server, Server)> {
        let away_registration = match &peers.away_shared_secret {
            Some(secret) => Registration::SharedSecret(secret.clone()),
            None => registration.clone(),
        };
        Ok((
            Server {
                api: Api::new(&peers.home, 32)?,
                registration: registration.clone(),
                pid: peers.home_pid,
            },
            Server {
                api: Api::new(&peers.away, 32)?,
                registration: away_registration,
                pid: peers.away_pid,
            },
        ))
    };
    let url = match &cli.scenario {
        Scenario::FederationJoin(FederationJoinArgs { peers, .. })
        | Scenario::FederationSend(FederationSendArgs { peers, .. }) => {
            format!("home {} away {}", peers.home, peers.away)
        }
        _ => needs_url()?,
    };

    let (healthy, result): (bool, Value) = match &cli.scenario {
        Scenario::FederationJoin(args) => {
            let (home, away) = peers(&args.peers)?;
            let params = JoinParams {
                state_events: size(args.state_events, cli.smoke, 200, 20_000),
                concurrency: args.concurrency.max(1),
                room_version: args.room_version.clone(),
                join_timeout: Duration::from_secs(args.join_timeout_secs),
            };
            println!("myelin-bench federation-join: {url}");
            let report = federation::run_join(&home, &away, params).await?;
            print!("{}", report.render());
            (report.healthy(), report.to_json())
        }
        Scenario::FederationSend(args) => {
            let (home, away) = peers(&args.peers)?;
            let params = FedSendParams {
                messages: size(args.messages, cli.smoke, 100, 3000),
                concurrency: args.concurrency.max(1),
                grace: Duration::from_secs(args.grace_secs),
                pause_away: args.pause_away,
            };
            println!("myelin-bench federation-send: {url}");
            let report = federation::run_send(&home, &away, params).await?;
            print!("{}", report.render());
            (report.healthy(), report.to_json())
        }
        Scenario::Send(args) => {
            let params = SendParams {
                messages: size(args.messages, cli.smoke, 50, 3000),
                warmup: size(args.warmup, cli.smoke, 10, 100),
            };
            let api = Api::new(&url, 16)?;
            println!("myelin-bench send against {url}");
            let report = send::run(&api, &registration, params, cli.server_pid).await?;
            print!("{}", report.render());
            (report.healthy(), report.to_json())
        }
        Scenario::Fanout(args) => {
            if !(args.interval_ms.is_finite() && args.interval_ms > 0.0) {
                bail!("--interval-ms must be a positive number");
            }
            let params = FanoutParams {
                clients: size(args.clients, cli.smoke, 5, 100),
                messages: size(args.messages, cli.smoke, 10, 200),
                interval: Duration::from_secs_f64(args.interval_ms / 1e3),
                settle: Duration::from_millis(args.settle_ms),
                grace: Duration::from_secs(args.grace_secs.unwrap_or(if cli.smoke {
                    10
                } else {
                    30
                })),
            };
            // Every receiver holds a long-poll open at once, plus the sender.
            let api = Api::new(&url, params.clients + 16)?;
            println!("myelin-bench fanout against {url}");
            let report = fanout::run(&api, &registration, params, cli.server_pid).await?;
            print!("{}", report.render());
            (report.healthy(), report.to_json())
        }
    };

    if let Some(path) = &cli.json {
        let document = json!({
            "tool": "myelin-bench",
            "version": env!("CARGO_PKG_VERSION"),
            "url": url,
            "registration": match registration {
                Registration::SharedSecret(_) => "shared-secret",
                Registration::Open => "open",
            },
            "smoke": cli.smoke,
            "started_at_unix": started_unix,
            "result": result,
        });
        let text = serde_json::to_string_pretty(&document)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        println!("  (figures written to {})", path.display());
    }
    Ok(healthy)
}
