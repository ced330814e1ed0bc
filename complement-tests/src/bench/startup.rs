//! Scenario `startup` (S1): the bench spawns the server command itself, R
//! times one after the other, and measures for each run the wall time from
//! the spawn to the first `200` of `GET /_matrix/client/versions` (polled
//! every few ms), then, after the server has been idle for a while, its
//! resident memory (`VmRSS`). Each run ends with SIGTERM.
//!
//! The same command line serves any server (Myelin, Synapse) and is given
//! as is, so whatever wraps it (`taskset`) is part of what is measured. The
//! caller decides what the first run finds on disk: `vs-synapse.sh` gives it
//! an empty data directory, so run 1 creates the database and later runs
//! open an existing one; the two are reported apart.

use std::fs::File;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};

use super::cpu::proc_status;
use super::http::Api;
use super::stats::{Latencies, latency_table};

/// Timeout of one `/versions` probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a server may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Parameters of the `startup` scenario.
#[derive(Debug, Clone)]
pub struct StartupParams {
    /// The server's command line: program and arguments.
    pub command: Vec<String>,
    /// Starts measured, one after the other.
    pub runs: usize,
    /// Pause between two `/versions` probes.
    pub poll: Duration,
    /// Idle time between the first answer and the memory reading.
    pub settle: Duration,
    /// Longest wait for the first answer.
    pub ready_timeout: Duration,
    /// Where the server's stdout and stderr go (appended), if anywhere.
    pub log: Option<PathBuf>,
}

/// One start of the server.
#[derive(Debug, Clone)]
pub struct StartupRun {
    pub ready: Duration,
    /// `/versions` probes sent until the first answer.
    pub probes: u64,
    pub rss_kib: Option<u64>,
    pub hwm_kib: Option<u64>,
    pub threads: Option<u64>,
    /// How long the server took to exit after SIGTERM.
    pub stop: Duration,
    /// It had to be killed.
    pub killed: bool,
}

/// What the `startup` scenario measured.
pub struct StartupReport {
    pub params: StartupParams,
    pub runs: Vec<StartupRun>,
}

/// Runs the scenario against the server at `api`'s base URL.
pub async fn run(api: &Api, params: StartupParams) -> anyhow::Result<StartupReport> {
    let (program, args) = params
        .command
        .split_first()
        .context("startup needs the server's command line after --")?;
    let mut runs = Vec::with_capacity(params.runs);
    for n in 1..=params.runs {
        let output = || -> anyhow::Result<Stdio> {
            Ok(match &params.log {
                Some(path) => File::options()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?
                    .into(),
                None => Stdio::null(),
            })
        };
        let started = Instant::now();
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(output()?)
            .stderr(output()?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {program}"))?;
        let pid = child.id().context("the server exited at once")?;

        let url = api.url("/_matrix/client/versions", &[]);
        let mut probes = 0;
        let ready = loop {
            probes += 1;
            let reply = api
                .raw(Method::GET, url.clone(), None, None, PROBE_TIMEOUT)
                .await;
            if reply.is_ok_and(|r| r.status.is_success()) {
                break started.elapsed();
            }
            if let Some(status) = child.try_wait()? {
                bail!("run {n}: the server exited with {status} before answering {url}");
            }
            if started.elapsed() > params.ready_timeout {
                bail!(
                    "run {n}: {url} did not answer within {:?}",
                    params.ready_timeout
                );
            }
            tokio::time::sleep(params.poll).await;
        };

        tokio::time::sleep(params.settle).await;
        let rss_kib = proc_status(pid, "VmRSS");
        let hwm_kib = proc_status(pid, "VmHWM");
        let threads = proc_status(pid, "Threads");

        let stopping = Instant::now();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let killed = match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(status) => {
                status?;
                false
            }
            Err(_) => {
                child.kill().await?;
                true
            }
        };
        let run = StartupRun {
            ready,
            probes,
            rss_kib,
            hwm_kib,
            threads,
            stop: stopping.elapsed(),
            killed,
        };
        println!(
            "  run {n}: first /versions after {:.1} ms ({} probes), VmRSS {} after {:.1} s idle",
            ready.as_secs_f64() * 1e3,
            run.probes,
            mib(run.rss_kib),
            params.settle.as_secs_f64()
        );
        runs.push(run);
    }
    Ok(StartupReport { params, runs })
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "n/a".to_owned(),
        |k| format!("{:.1} MiB", k as f64 / 1024.0),
    )
}

/// The median of `values` (the lower one of an even count).
fn median(mut values: Vec<u64>) -> Option<u64> {
    values.sort_unstable();
    values.get(values.len().checked_sub(1)? / 2).copied()
}

impl StartupReport {
    /// Every start answered and every server stopped on SIGTERM.
    pub fn healthy(&self) -> bool {
        self.runs.len() == self.params.runs && self.runs.iter().all(|r| !r.killed)
    }

    fn ready_of(runs: &[StartupRun]) -> Latencies {
        let mut latencies = Latencies::new();
        for run in runs {
            latencies.record(run.ready);
        }
        latencies
    }

    pub fn to_json(&self) -> Value {
        let first = self.runs.first();
        let later = self.runs.get(1..).unwrap_or_default();
        json!({
            "scenario": "startup",
            "params": {
                "command": self.params.command,
                "runs": self.params.runs,
                "poll_ms": self.params.poll.as_secs_f64() * 1e3,
                "settle_s": self.params.settle.as_secs_f64(),
            },
            "first_run_ready_ms": first.map(|r| r.ready.as_secs_f64() * 1e3),
            "later_runs_ready": Self::ready_of(later).summary().to_json(),
            "idle_rss_kib_median": median(self.runs.iter().filter_map(|r| r.rss_kib).collect()),
            "runs": self.runs.iter().map(|r| json!({
                "ready_ms": r.ready.as_secs_f64() * 1e3,
                "probes": r.probes,
                "rss_kib": r.rss_kib,
                "hwm_kib": r.hwm_kib,
                "threads": r.threads,
                "stop_ms": r.stop.as_secs_f64() * 1e3,
                "killed": r.killed,
            })).collect::<Vec<_>>(),
            "healthy": self.healthy(),
        })
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "startup: {} runs of `{}`; run 1 is the first start on the data directory\n",
            self.runs.len(),
            self.params.command.join(" ")
        );
        let first = Self::ready_of(self.runs.get(..1).unwrap_or_default());
        let later = Self::ready_of(self.runs.get(1..).unwrap_or_default());
        out.push_str(&latency_table(&[
            ("ready, run 1", first.summary()),
            ("ready, later", later.summary()),
        ]));
        out.push_str(&format!(
            "  idle VmRSS, median of the runs: {}\n",
            mib(median(self.runs.iter().filter_map(|r| r.rss_kib).collect()))
        ));
        for (n, run) in self.runs.iter().enumerate() {
            if run.killed {
                out.push_str(&format!(
                    "  !! run {}: the server ignored SIGTERM for {STOP_TIMEOUT:?} and was killed\n",
                    n + 1
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_takes_the_lower_middle() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![5]), Some(5));
        assert_eq!(median(vec![9, 1, 5]), Some(5));
        assert_eq!(median(vec![4, 1, 3, 2]), Some(2));
    }
}
