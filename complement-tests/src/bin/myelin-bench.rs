//! `myelin-bench`: load scenarios against a running Myelin server.
//!
//! ```text
//! myelin-bench --url http://127.0.0.1:8008 --shared-secret S send [--messages N] [--warmup W]
//! myelin-bench --url http://127.0.0.1:8008 --open-registration fanout [--clients C] [--messages M]
//!              [--interval-ms MS] [--json out.json] [--smoke]
//! ```
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

    /// Tiny sizes for CI (send: N=50; fanout: C=5, M=10); explicit sizes win.
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
    let url = cli.url.clone().context("--url is required")?;
    let registration = match (&cli.shared_secret, cli.open_registration) {
        (Some(secret), false) => Registration::SharedSecret(secret.clone()),
        (None, true) => Registration::Open,
        _ => bail!("give either --shared-secret SECRET or --open-registration"),
    };
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();

    let (healthy, result): (bool, Value) = match &cli.scenario {
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
