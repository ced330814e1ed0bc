//! `myelin-bench`: load scenarios against a running Myelin server.
//!
//! ```text
//! myelin-bench --url http://127.0.0.1:8008 --shared-secret S send [--messages N] [--warmup W]
//! myelin-bench --url http://127.0.0.1:8008 --open-registration fanout [--clients C] [--messages M]
//!              [--interval-ms MS] [--json out.json] [--smoke]
//! myelin-bench --shared-secret S federation-join --home URL --away URL [--state-events 20000]
//!              [--concurrency 4] [--home-pid PID] [--away-pid PID]
//! myelin-bench --shared-secret S federation-send --home URL --away URL [-n 3000] [--concurrency 4]
//! myelin-bench --url URL startup [--runs 5] [--log FILE] -- SERVER-COMMAND...
//! myelin-bench --url URL --shared-secret S concurrent-sends [--senders 1,4,16,64,256] [--rooms 1,10,100]
//! myelin-bench --url URL --shared-secret S idle-syncs --server-pid PID [-n 10000]
//! myelin-bench --url URL --shared-secret S initial-sync [--rooms 1000] [--runs 5]
//! myelin-bench --url URL --shared-secret S paginate [--events 100000] [--fillers 8] [--page 100]
//! myelin-bench report --dir RESULTS [--docs docs/benchmarks.md] [--date …] [--machine …] …
//! ```
//!
//! `complement-tests/bench/vs-synapse.sh` runs S1–S6 against Myelin and
//! Synapse and calls `report` to write the comparison.
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
use complement_tests::bench::concurrent::{self, ConcurrentParams};
use complement_tests::bench::fanout::{self, FanoutParams};
use complement_tests::bench::federation::{self, FedSendParams, JoinParams, Server};
use complement_tests::bench::http::Api;
use complement_tests::bench::idle_syncs::{self, IdleParams};
use complement_tests::bench::initial_sync::{self, InitialSyncParams};
use complement_tests::bench::paginate::{self, PaginateParams};
use complement_tests::bench::report::{self, RunInfo};
use complement_tests::bench::send::{self, SendParams};
use complement_tests::bench::setup::Registration;
use complement_tests::bench::startup::{self, StartupParams};
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
    /// federation-send: N=100; startup: 2 runs; concurrent-sends: 1,4 senders
    /// x 1,2 rooms for 1 s; idle-syncs: 20; initial-sync: 5 rooms; paginate:
    /// 200 events); explicit sizes win.
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
    /// S1: spawns the server command R times; cold start to the first
    /// /versions answer, and idle VmRSS.
    Startup(StartupArgs),
    /// S3: S senders x R rooms sending back to back, for each cell of the
    /// matrix; msg/s and latency.
    ConcurrentSends(ConcurrentArgs),
    /// S4 memory: N long-polling /sync held open; the server's VmRSS increase.
    IdleSyncs(IdleArgs),
    /// S5: initial /sync of one account joined to R rooms.
    InitialSync(InitialSyncArgs),
    /// S6: /messages?dir=b back through a room of E events, page by page.
    Paginate(PaginateArgs),
    /// The markdown comparison of a vs-synapse.sh results directory.
    Report(ReportArgs),
}

#[derive(Args, Debug)]
struct StartupArgs {
    /// Starts measured [default: 5, smoke 2].
    #[arg(long)]
    runs: Option<usize>,
    /// Idle time before reading the memory, in ms [default: 2000, smoke 1000].
    #[arg(long)]
    settle_ms: Option<u64>,
    /// Pause between two /versions probes, in ms.
    #[arg(long, default_value_t = 2)]
    poll_ms: u64,
    /// Longest wait for the first answer, in seconds.
    #[arg(long, default_value_t = 120)]
    ready_timeout_secs: u64,
    /// Append the server's output to this file.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// The server's command line.
    #[arg(last = true, required = true, value_name = "SERVER-COMMAND")]
    command: Vec<String>,
}

#[derive(Args, Debug)]
struct ConcurrentArgs {
    /// Sender counts [default: 1,4,16,64,256; smoke 1,4].
    #[arg(long, value_delimiter = ',')]
    senders: Option<Vec<usize>>,
    /// Room counts [default: 1,10,100; smoke 1,2].
    #[arg(long, value_delimiter = ',')]
    rooms: Option<Vec<usize>>,
    /// Recorded seconds per cell [default: 10, smoke 1].
    #[arg(long)]
    duration_secs: Option<f64>,
    /// Unrecorded warm-up seconds per cell [default: 2, smoke 0.5].
    #[arg(long)]
    warmup_secs: Option<f64>,
}

#[derive(Args, Debug)]
struct IdleArgs {
    /// Long-polls held [default: 10000, smoke 20].
    #[arg(long, short = 'n')]
    connections: Option<usize>,
    /// Long-polls opened per second.
    #[arg(long, default_value_t = 1000.0)]
    ramp_per_s: f64,
    /// Seconds all of them are held [default: 10, smoke 2].
    #[arg(long)]
    hold_secs: Option<f64>,
}

#[derive(Args, Debug)]
struct InitialSyncArgs {
    /// Rooms the account is in [default: 1000, smoke 5].
    #[arg(long)]
    rooms: Option<usize>,
    /// Timed initial syncs [default: 5, smoke 2].
    #[arg(long)]
    runs: Option<usize>,
}

#[derive(Args, Debug)]
struct PaginateArgs {
    /// Messages in the room [default: 100000, smoke 200].
    #[arg(long)]
    events: Option<usize>,
    /// Accounts filling the room concurrently.
    #[arg(long, default_value_t = 8)]
    fillers: usize,
    /// Events per page.
    #[arg(long, default_value_t = 100)]
    page: usize,
    /// Stop after this many pages [default: the whole room].
    #[arg(long)]
    max_pages: Option<usize>,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// Results of vs-synapse.sh: myelin/*.json and synapse/*.json.
    #[arg(long)]
    dir: PathBuf,
    /// Put the section into this markdown file (replacing the previous one).
    #[arg(long, value_name = "FILE")]
    docs: Option<PathBuf>,
    #[arg(long, default_value = "?")]
    date: String,
    #[arg(long, default_value = "?")]
    machine: String,
    /// Myelin's build, as shown.
    #[arg(long, default_value = "?")]
    myelin: String,
    /// Synapse's version and database, as shown.
    #[arg(long, default_value = "?")]
    synapse: String,
    /// How the processes were pinned to cores.
    #[arg(long, default_value = "no pinning")]
    pinning: String,
    /// The command that reproduces the run.
    #[arg(long, default_value = "complement-tests/bench/vs-synapse.sh")]
    command: String,
    /// A paragraph put under the heading (repeatable).
    #[arg(long)]
    note: Vec<String>,
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

fn size<T>(explicit: Option<T>, smoke: bool, smoke_value: T, full: T) -> T {
    explicit.unwrap_or(if smoke { smoke_value } else { full })
}

fn seconds(
    explicit: Option<f64>,
    smoke: bool,
    smoke_value: f64,
    full: f64,
) -> anyhow::Result<Duration> {
    let value = size(explicit, smoke, smoke_value, full);
    Duration::try_from_secs_f64(value)
        .map_err(|_| anyhow::anyhow!("{value} is not a number of seconds"))
}

/// Writes the comparison section; the one scenario that needs no server.
fn write_report(args: &ReportArgs) -> anyhow::Result<()> {
    let info = RunInfo {
        date: args.date.clone(),
        machine: args.machine.clone(),
        myelin: args.myelin.clone(),
        synapse: args.synapse.clone(),
        pinning: args.pinning.clone(),
        command: args.command.clone(),
        notes: args.note.clone(),
    };
    let section = report::render(&args.dir, &info)?;
    print!("{section}");
    if let Some(path) = &args.docs {
        let document = std::fs::read_to_string(path).unwrap_or_default();
        std::fs::write(path, report::splice(&document, &section))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("(section written into {})", path.display());
    }
    Ok(())
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
    if let Scenario::Report(args) = &cli.scenario {
        write_report(args)?;
        return Ok(true);
    }
    let registration = match (&cli.shared_secret, cli.open_registration) {
        (Some(secret), false) => Registration::SharedSecret(secret.clone()),
        (None, true) => Registration::Open,
        // Starting a server registers nobody.
        _ if matches!(cli.scenario, Scenario::Startup(_)) => Registration::Open,
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
        Scenario::Startup(args) => {
            let params = StartupParams {
                command: args.command.clone(),
                runs: size(args.runs, cli.smoke, 2, 5).max(1),
                poll: Duration::from_millis(args.poll_ms),
                settle: Duration::from_millis(size(args.settle_ms, cli.smoke, 1000, 2000)),
                ready_timeout: Duration::from_secs(args.ready_timeout_secs),
                log: args.log.clone(),
            };
            println!("myelin-bench startup against {url}");
            let report = startup::run(&Api::new(&url, 1)?, params).await?;
            print!("{}", report.render());
            (report.healthy(), report.to_json())
        }
        Scenario::ConcurrentSends(args) => {
            let params = ConcurrentParams {
                senders: size(
                    args.senders.clone(),
                    cli.smoke,
                    vec![1, 4],
                    vec![1, 4, 16, 64, 256],
                ),
                rooms: size(args.rooms.clone(), cli.smoke, vec![1, 2], vec![1, 10, 100]),
                duration: seconds(args.duration_secs, cli.smoke, 1.0, 10.0)?,
                warmup: seconds(args.warmup_secs, cli.smoke, 0.5, 2.0)?,
            };
            let most = params.senders.iter().copied().max().unwrap_or(1);
            let api = Api::new(&url, most + 16)?;
            println!("myelin-bench concurrent-sends against {url}");
            let report = concurrent::run(&api, &registration, params).await?;
            print!("{}", report.render());
            (report.healthy(), report.to_json())
        }
        Scenario::IdleSyncs(args) => {
            if !(args.ramp_per_s.is_finite() && args.ramp_per_s > 0.0) {
                bail!("--ramp-per-s must be a positive number");
            }
            let params = IdleParams {
                connections: size(args.connections, cli.smoke, 20, 10_000),
                ramp_per_s: args.ramp_per_s,
                hold: seconds(args.hold_secs, cli.smoke, 2.0, 10.0)?,
                server_pid: cli
                    .server_pid
                    .context("idle-syncs reads the server's memory: give --server-pid")?,
            };
            let api = Api::new(&url, params.connections + 16)?;
            println!("myelin-bench idle-syncs against {url}");
            let report = idle_syncs::run(&api, &registration, params).await?;
            print!("{}", report.render());
            (report.healthy(), report.to_json())
        }
        Scenario::InitialSync(args) => {
            let params = InitialSyncParams {
                rooms: size(args.rooms, cli.smoke, 5, 1000),
                runs: size(args.runs, cli.smoke, 2, 5).max(1),
            };
            println!("myelin-bench initial-sync against {url}");
            let report = initial_sync::run(&Api::new(&url, 16)?, &registration, params).await?;
            print!("{}", report.render());
            (report.healthy(), report.to_json())
        }
        Scenario::Paginate(args) => {
            let params = PaginateParams {
                events: size(args.events, cli.smoke, 200, 100_000),
                fillers: args.fillers.max(1),
                page: args.page.max(1),
                max_pages: args.max_pages,
            };
            let api = Api::new(&url, params.fillers + 16)?;
            println!("myelin-bench paginate against {url}");
            let report = paginate::run(&api, &registration, params).await?;
            print!("{}", report.render());
            (report.healthy(), report.to_json())
        }
        Scenario::Report(_) => unreachable!("handled before any server is contacted"),
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
