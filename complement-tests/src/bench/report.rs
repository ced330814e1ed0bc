//! `myelin-bench report`: the side-by-side table of a `vs-synapse.sh` run.
//!
//! The run leaves `<dir>/myelin/<scenario>.json` and
//! `<dir>/synapse/<scenario>.json` (the `--json` documents of the
//! scenarios); this module turns them into a markdown section — figures of
//! both servers, Myelin's advantage, the goals of issue 8 — and can put it
//! into a document between [`BEGIN`] and [`END`], replacing what a previous
//! run wrote there (or, the first time, after the document's title).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde_json::Value;

/// Opens the generated section of the document.
pub const BEGIN: &str = "<!-- vs-synapse:begin — written by complement-tests/bench/vs-synapse.sh; a rerun replaces everything up to vs-synapse:end -->";
/// Closes the generated section.
pub const END: &str = "<!-- vs-synapse:end -->";

/// What the section says about the run, besides the figures.
pub struct RunInfo {
    pub date: String,
    pub machine: String,
    pub myelin: String,
    pub synapse: String,
    pub pinning: String,
    pub command: String,
    /// Free text put under the heading (e.g. "preliminary").
    pub notes: Vec<String>,
}

/// The scenario documents of one server.
struct Results {
    docs: Vec<(String, Value)>,
}

impl Results {
    fn load(dir: &Path) -> anyhow::Result<Results> {
        let mut docs = Vec::new();
        if dir.is_dir() {
            for entry in
                std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?
            {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "json") {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    let doc: Value = serde_json::from_str(&text)
                        .with_context(|| format!("parsing {}", path.display()))?;
                    let name = path
                        .file_stem()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned();
                    docs.push((name, doc));
                }
            }
        }
        Ok(Results { docs })
    }

    /// `pointer` in the result of `scenario`.
    fn get(&self, scenario: &str, pointer: &str) -> Option<&Value> {
        let (_, doc) = self.docs.iter().find(|(name, _)| name == scenario)?;
        doc["result"].pointer(pointer)
    }

    fn number(&self, scenario: &str, pointer: &str) -> Option<f64> {
        self.get(scenario, pointer)?.as_f64()
    }

    fn unhealthy(&self, scenario: &str) -> bool {
        self.get(scenario, "/healthy")
            .is_some_and(|h| h.as_bool() == Some(false))
    }
}

/// What a JSON figure measures, and how it is shown.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// A latency in µs, shown in ms; lower is better.
    LatencyUs,
    /// A duration in ms; lower is better.
    DurationMs,
    /// A size in KiB, shown in MB (10⁶ bytes, the unit of the goals);
    /// lower is better.
    MemoryKib,
    /// Messages per second; higher is better.
    Rate,
}

impl Kind {
    /// The factor from the JSON value to the shown unit, and the unit.
    fn unit(self) -> (f64, &'static str) {
        match self {
            Kind::LatencyUs => (1e-3, "ms"),
            Kind::DurationMs => (1.0, "ms"),
            Kind::MemoryKib => (1024.0 / 1e6, "MB"),
            Kind::Rate => (1.0, "msg/s"),
        }
    }

    fn lower_is_better(self) -> bool {
        self != Kind::Rate
    }
}

/// A goal of issue 8 for Myelin's figure.
struct Goal {
    text: &'static str,
    /// The scenario parameter and value the goal is stated for: at other
    /// sizes the goal is not judged.
    size: Option<(&'static str, f64)>,
    /// The bound on Myelin's figure, in the row's unit, and the least
    /// advantage over Synapse.
    bound: Option<f64>,
    advantage: Option<f64>,
}

struct Row {
    scenario: &'static str,
    label: String,
    pointer: &'static str,
    kind: Kind,
    goal: Option<Goal>,
}

fn row(scenario: &'static str, label: String, pointer: &'static str, kind: Kind) -> Row {
    Row {
        scenario,
        label,
        pointer,
        kind,
        goal: None,
    }
}

impl Row {
    fn goal(mut self, text: &'static str, bound: Option<f64>, advantage: Option<f64>) -> Row {
        self.goal = Some(Goal {
            text,
            size: None,
            advantage,
            bound,
        });
        self
    }

    /// The goal holds for this value of the scenario's `param`.
    fn at(mut self, param: &'static str, value: f64) -> Row {
        if let Some(goal) = &mut self.goal {
            goal.size = Some((param, value));
        }
        self
    }
}

fn format_value(value: f64, unit: &str) -> String {
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let mut text = format!("{value:.digits$}");
    if value >= 10_000.0 {
        // Thousands separators for the big counts.
        let mut grouped = String::new();
        for (i, c) in text.chars().enumerate() {
            if i > 0 && (text.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        text = grouped;
    }
    format!("{text} {unit}")
}

/// A parameter of a scenario, for the labels ("?" when absent).
fn param(results: &Results, scenario: &str, name: &str) -> String {
    match results.get(scenario, &format!("/params/{name}")) {
        Some(Value::Number(n)) => {
            let n = n.as_f64().unwrap_or_default();
            if n >= 1000.0 && n.fract() == 0.0 {
                format_value(n, "").trim().to_owned()
            } else {
                n.to_string()
            }
        }
        Some(other) => other.to_string(),
        None => "?".to_owned(),
    }
}

/// The markdown section of a run in `dir`.
pub fn render(dir: &Path, info: &RunInfo) -> anyhow::Result<String> {
    let myelin = Results::load(&dir.join("myelin"))?;
    let synapse = Results::load(&dir.join("synapse"))?;
    let p = |scenario: &str, name: &str| param(&myelin, scenario, name);
    use Kind::{DurationMs, LatencyUs, MemoryKib, Rate};
    #[rustfmt::skip]
    let rows = vec![
        row("startup", "S1 idle RSS after start-up".into(), "/idle_rss_kib_median", MemoryKib)
            .goal("≤ 30 MB", Some(30.0), None),
        row("startup", "S1 cold start → first `/versions`, empty data directory".into(), "/first_run_ready_ms", DurationMs)
            .goal("< 100 ms", Some(100.0), None),
        row("startup", "S1 cold start → first `/versions`, existing data (median)".into(), "/later_runs_ready/p50", LatencyUs)
            .goal("< 100 ms", Some(100.0), None),
        row("send", format!("S2 sequential sends ({}), p50", p("send", "messages")), "/latency/p50", LatencyUs)
            .goal("≤ 1 ms, ≥ 25× Synapse", Some(1.0), Some(25.0)).at("messages", 3000.0),
        row("send", "S2 sequential sends, p99".into(), "/latency/p99", LatencyUs),
        row("send", "S2 sequential sends, throughput".into(), "/throughput_msg_per_s", Rate),
        row("concurrent-sends", "S3 concurrent sends, best cell with p99 < 50 ms".into(), "/best_p99_under_50ms/throughput_msg_per_s", Rate)
            .goal("≥ 5,000 msg/s at p99 < 50 ms", Some(5000.0), None),
        row("concurrent-sends", "S3 concurrent sends, best cell whatever its p99".into(), "/best_any_p99/throughput_msg_per_s", Rate)
            .goal("≥ 30× Synapse", None, Some(30.0)),
        row("fanout", format!("S4 send → delivery, {} long-polling clients, p50", p("fanout", "clients")), "/delivery_latency/p50", LatencyUs),
        row("fanout", format!("S4 send → delivery, {} clients, p99", p("fanout", "clients")), "/delivery_latency/p99", LatencyUs)
            .goal("< 10 ms (1,000 clients)", Some(10.0), None).at("clients", 1000.0),
        row("idle-syncs", format!("S4 RSS increase, {} idle `/sync` connections", p("idle-syncs", "connections")), "/rss_increase_kib", MemoryKib)
            .goal("< 100 MB (10,000)", Some(100.0), None).at("connections", 10_000.0),
        row("initial-sync", format!("S5 initial sync, {} rooms, p50", p("initial-sync", "rooms")), "/latency/p50", LatencyUs)
            .goal("< 1 s (1,000 rooms)", Some(1000.0), None).at("rooms", 1000.0),
        row("initial-sync", "S5 initial sync, max".into(), "/latency/max", LatencyUs),
        row("paginate", format!("S6 `/messages` back, {}-event pages, room of {}, p50", p("paginate", "page"), p("paginate", "events")), "/latency/p50", LatencyUs),
        row("paginate", "S6 `/messages` back, p99".into(), "/latency/p99", LatencyUs)
            .goal("< 20 ms per page (100,000 events)", Some(20.0), None).at("events", 100_000.0),
    ];

    let mut out = String::new();
    let _ = writeln!(out, "{BEGIN}\n");
    let _ = writeln!(out, "## Myelin and Synapse side by side\n");
    for note in &info.notes {
        let _ = writeln!(out, "{note}\n");
    }
    let _ = writeln!(
        out,
        "Measured {} on {}. Myelin: {}. Synapse: {}. Pinning: {}.\n",
        info.date, info.machine, info.myelin, info.synapse, info.pinning
    );
    let _ = writeln!(out, "```sh\n{}\n```\n", info.command);
    let _ = writeln!(
        out,
        "\"Myelin's advantage\" is Synapse's figure divided by Myelin's where lower is better \
         (latency, memory) and Myelin's divided by Synapse's where higher is better \
         (throughput): above 1× Myelin is ahead. \"–\": not run. ⚠: the run reported failed \
         requests or missing deliveries (see its JSON).\n"
    );
    let _ = writeln!(
        out,
        "| scenario | Myelin | Synapse | Myelin's advantage | goal (issue 8) | goal met |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for r in &rows {
        let (scale, unit) = r.kind.unit();
        let lower_is_better = r.kind.lower_is_better();
        let value = |results: &Results| results.number(r.scenario, r.pointer).map(|v| v * scale);
        let shown = |results: &Results| match value(results) {
            Some(v) => format!(
                "{}{}",
                format_value(v, unit),
                if results.unhealthy(r.scenario) {
                    " ⚠"
                } else {
                    ""
                }
            ),
            None => "–".to_owned(),
        };
        let (m, s) = (value(&myelin), value(&synapse));
        let advantage = match (m, s) {
            (Some(m), Some(s)) if lower_is_better && m > 0.0 => Some(s / m),
            (Some(m), Some(s)) if !lower_is_better && s > 0.0 => Some(m / s),
            _ => None,
        };
        let other_size = |goal: &Goal| {
            goal.size.is_some_and(|(param, want)| {
                myelin.number(r.scenario, &format!("/params/{param}")) != Some(want)
            })
        };
        let (goal, met) = match (&r.goal, m) {
            (Some(goal), Some(_)) if other_size(goal) => (goal.text, "not at this size"),
            (Some(goal), Some(m)) => {
                let bound_ok = goal
                    .bound
                    .is_none_or(|b| if lower_is_better { m <= b } else { m >= b });
                let ratio_ok = goal
                    .advantage
                    .is_none_or(|want| advantage.is_some_and(|a| a >= want));
                (goal.text, if bound_ok && ratio_ok { "yes" } else { "no" })
            }
            (Some(goal), None) => (goal.text, "–"),
            (None, _) => ("", ""),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {goal} | {met} |",
            r.label,
            shown(&myelin),
            shown(&synapse),
            advantage.map_or_else(|| "–".to_owned(), |a| format!("{a:.1}×")),
        );
    }
    out.push_str(&matrix(&myelin, &synapse));
    out.push_str(&preparation(&myelin, &synapse));
    let _ = writeln!(out, "{END}");
    Ok(out)
}

/// The S3 matrix, cell by cell.
fn matrix(myelin: &Results, synapse: &Results) -> String {
    let cells = |results: &Results| -> Vec<Value> {
        results
            .get("concurrent-sends", "/cells")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (mine, theirs) = (cells(myelin), cells(synapse));
    if mine.is_empty() && theirs.is_empty() {
        return String::new();
    }
    let key = |c: &Value| (c["senders"].as_u64(), c["rooms"].as_u64());
    let mut out = String::from(
        "\n### S3: concurrent sends, every cell\n\n\
         | senders | rooms | Myelin msg/s | Synapse msg/s | Myelin's advantage | Myelin p99 | Synapse p99 |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let base = if mine.is_empty() { &theirs } else { &mine };
    for cell in base {
        let find = |list: &[Value]| list.iter().find(|c| key(c) == key(cell)).cloned();
        let (m, s) = (find(&mine), find(&theirs));
        let rate = |c: &Option<Value>| c.as_ref().and_then(|c| c["throughput_msg_per_s"].as_f64());
        let p99 = |c: &Option<Value>| {
            c.as_ref()
                .and_then(|c| c["latency"]["p99"].as_f64())
                .map_or_else(
                    || "–".to_owned(),
                    |us| {
                        let (scale, unit) = Kind::LatencyUs.unit();
                        format_value(us * scale, unit)
                    },
                )
        };
        let advantage = match (rate(&m), rate(&s)) {
            (Some(m), Some(s)) if s > 0.0 => format!("{:.1}×", m / s),
            _ => "–".to_owned(),
        };
        let shown = |r: Option<f64>| r.map_or_else(|| "–".to_owned(), |r| format_value(r, ""));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {advantage} | {} | {} |",
            cell["senders"],
            cell["rooms"],
            shown(rate(&m)).trim(),
            shown(rate(&s)).trim(),
            p99(&m),
            p99(&s),
        );
    }
    out
}

/// The untimed preparation, which is telling too (how long filling took).
fn preparation(myelin: &Results, synapse: &Results) -> String {
    let line = |name: &str, results: &Results| {
        let seconds = |scenario: &str, pointer: &str| {
            results
                .number(scenario, pointer)
                .map_or_else(|| "–".to_owned(), |s| format!("{s:.1} s"))
        };
        format!(
            "| {name} | {} | {} | {} | {} ({}) |\n",
            seconds("concurrent-sends", "/setup_s"),
            seconds("idle-syncs", "/setup_s"),
            seconds("initial-sync", "/setup_s"),
            seconds("paginate", "/fill_s"),
            results
                .number("paginate", "/fill_msg_per_s")
                .map_or_else(|| "–".to_owned(), |r| format!("{r:.0} msg/s")),
        )
    };
    format!(
        "\n### Untimed preparation\n\n\
         | server | S3 accounts, rooms, joins | S4 idle accounts + initial syncs | S5 creating the rooms | S6 filling the room |\n\
         |---|---|---|---|---|\n{}{}",
        line("Myelin", myelin),
        line("Synapse", synapse)
    )
}

/// Puts `section` into `document`: in place of the previous section, or
/// after the first heading line.
pub fn splice(document: &str, section: &str) -> String {
    let section = section.trim_end();
    if let (Some(begin), Some(end)) = (document.find(BEGIN), document.find(END))
        && begin < end
    {
        let rest = document[end + END.len()..].trim_start_matches('\n');
        return format!("{}{section}\n\n{rest}", &document[..begin]);
    }
    match document.find('\n') {
        Some(title_end) if document.starts_with('#') => {
            let rest = document[title_end..].trim_start_matches('\n');
            format!("{}\n\n{section}\n\n{rest}", &document[..title_end])
        }
        _ => format!("{section}\n\n{document}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rerun_replaces_the_previous_section() {
        let document = "# Benchmarks\n\nOlder text.\n";
        let first = splice(document, &format!("{BEGIN}\none\n{END}\n"));
        assert_eq!(
            first,
            format!("# Benchmarks\n\n{BEGIN}\none\n{END}\n\nOlder text.\n")
        );
        let second = splice(&first, &format!("{BEGIN}\ntwo\n{END}\n"));
        assert_eq!(
            second,
            format!("# Benchmarks\n\n{BEGIN}\ntwo\n{END}\n\nOlder text.\n")
        );
    }

    #[test]
    fn values_are_rounded_by_magnitude() {
        assert_eq!(format_value(0.9412, "ms"), "0.94 ms");
        assert_eq!(format_value(51.04, "ms"), "51.0 ms");
        assert_eq!(format_value(932.4, "msg/s"), "932 msg/s");
        assert_eq!(format_value(123_456.0, "msg/s"), "123,456 msg/s");
    }
}
