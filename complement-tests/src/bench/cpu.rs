//! CPU time of the server (given its PID) and of the bench itself during a
//! timed phase, from `/proc/<pid>/stat`, and the server's memory and open
//! file descriptors, from `/proc/<pid>/status` and `/proc/<pid>/fd` (Linux;
//! elsewhere nothing is reported). Utilisation 1.0 means one core fully busy.

use std::time::Instant;

use serde_json::{Value, json};

/// Kernel clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on
/// every mainstream Linux architecture).
const TICKS_PER_SECOND: f64 = 100.0;

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces: fields are counted
    // after its closing parenthesis, where field 3 (state) has index 0.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A field of `/proc/<pid>/status`: a size in KiB (`VmRSS`, `VmHWM`) or a
/// count (`Threads`).
pub fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// How many file descriptors the process has open (its sockets included).
pub fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// A reading at the start of a timed phase.
pub struct CpuProbe {
    server_pid: Option<u32>,
    server: Option<u64>,
    bench: Option<u64>,
    at: Instant,
}

/// CPU seconds used during a timed phase.
#[derive(Debug, Clone, Copy)]
pub struct CpuUsage {
    pub wall_s: f64,
    pub server_s: Option<f64>,
    pub bench_s: Option<f64>,
}

impl CpuProbe {
    /// Starts measuring; `server_pid` is the server's process, if known.
    pub fn start(server_pid: Option<u32>) -> CpuProbe {
        CpuProbe {
            server_pid,
            server: server_pid.and_then(|pid| cpu_ticks(&pid.to_string())),
            bench: cpu_ticks("self"),
            at: Instant::now(),
        }
    }

    /// CPU used since [`CpuProbe::start`].
    pub fn finish(&self) -> CpuUsage {
        let delta = |before: Option<u64>, after: Option<u64>| {
            Some(after?.saturating_sub(before?) as f64 / TICKS_PER_SECOND)
        };
        CpuUsage {
            wall_s: self.at.elapsed().as_secs_f64(),
            server_s: delta(
                self.server,
                self.server_pid.and_then(|pid| cpu_ticks(&pid.to_string())),
            ),
            bench_s: delta(self.bench, cpu_ticks("self")),
        }
    }
}

impl CpuUsage {
    fn utilisation(&self, seconds: Option<f64>) -> Option<f64> {
        seconds.map(|s| s / self.wall_s.max(1e-9))
    }

    pub fn to_json(&self) -> Value {
        json!({
            "wall_s": self.wall_s,
            "server_cpu_s": self.server_s,
            "server_cores_busy": self.utilisation(self.server_s),
            "bench_cpu_s": self.bench_s,
            "bench_cores_busy": self.utilisation(self.bench_s),
        })
    }

    /// One line, e.g. `cpu during the timed phase: server 0.93 cores, bench 0.21 cores`.
    pub fn render(&self) -> String {
        let show = |seconds: Option<f64>| match (seconds, self.utilisation(seconds)) {
            (Some(s), Some(u)) => format!("{u:.2} cores ({s:.2} s)"),
            _ => "n/a".to_owned(),
        };
        format!(
            "  cpu during the timed phase ({:.2} s): server {}, bench {}\n",
            self.wall_s,
            show(self.server_s),
            show(self.bench_s)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_is_readable_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(cpu_ticks("self").is_some());
            let usage = CpuProbe::start(Some(std::process::id())).finish();
            assert!(usage.server_s.is_some() && usage.bench_s.is_some());
            let me = std::process::id();
            assert!(proc_status(me, "VmRSS").is_some_and(|kib| kib > 0));
            assert!(proc_status(me, "Threads").is_some_and(|n| n > 0));
            assert!(open_fds(me).is_some_and(|n| n > 0));
        }
    }
}
