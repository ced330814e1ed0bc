//! Scenario `paginate` (S6): a room holding E messages; one client walks
//! back through all of it with `GET /rooms/{room}/messages?dir=b&limit=L`,
//! each page starting at the previous page's `end`; the latency of every
//! page is recorded.
//!
//! Preparation (timed apart, not part of the figure): C accounts join the
//! room and send E/C messages each, concurrently — a room fills faster so
//! on both servers, though each serialises the appends to one room. The
//! walk starts at the live end (no `from`) and stops when a page has no
//! `end`, or after the configured number of pages; every message must be
//! seen exactly once when the walk reaches the start of the room.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use super::http::{Api, FailureLog, encode_segment};
use super::send::send_message;
use super::setup::{self, Registration};
use super::stats::{Latencies, latency_table};
use super::text::Lines;

/// Concurrency of the untimed joins.
const SETUP_CONCURRENCY: usize = 8;
/// Timeout of one page.
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Parameters of the `paginate` scenario.
#[derive(Debug, Clone)]
pub struct PaginateParams {
    /// Messages in the room.
    pub events: usize,
    /// Accounts filling the room concurrently.
    pub fillers: usize,
    /// Events per page (`limit`).
    pub page: usize,
    /// Stop after this many pages (all of the room when absent).
    pub max_pages: Option<usize>,
}

/// What the `paginate` scenario measured.
pub struct PaginateReport {
    pub params: PaginateParams,
    /// Filling the room: wall time and failed sends.
    pub fill: Duration,
    pub fill_failures: FailureLog,
    pub latencies: Latencies,
    pub pages: usize,
    /// Distinct messages of the fill seen by the walk.
    pub seen: usize,
    pub duplicates: usize,
    /// The walk reached the start of the room (a page without `end`).
    pub reached_start: bool,
    pub failures: FailureLog,
}

/// Runs the scenario.
pub async fn run(
    api: &Api,
    registration: &Registration,
    params: PaginateParams,
) -> anyhow::Result<PaginateReport> {
    let run = setup::run_id();
    let fillers = params.fillers.clamp(1, params.events.max(1));
    let users = setup::register_many(
        api,
        registration,
        &format!("bench-{run}-fill"),
        fillers,
        SETUP_CONCURRENCY,
    )
    .await?;
    let reader = &users[0];
    let room_id = setup::create_room(api, reader, &format!("myelin-bench paginate {run}")).await?;
    setup::join_all(api, &users[1..], &room_id, SETUP_CONCURRENCY).await?;

    let fill_started = Instant::now();
    let logs = setup::concurrently(fillers, fillers, |f| {
        let (api, user, room_id, run) =
            (api.clone(), users[f].clone(), room_id.clone(), run.clone());
        let mine: Vec<usize> = (f..params.events).step_by(fillers).collect();
        async move {
            let mut lines = Lines::new(0xBAC + f as u64);
            let mut failures = FailureLog::default();
            for seq in mine {
                let content = json!({
                    "msgtype": "m.text",
                    "body": lines.next_line(),
                    "org.myelin.bench": {"run": run, "seq": seq},
                });
                if let Err(failure) =
                    send_message(&api, &user, &room_id, &format!("{run}-{seq}"), &content).await
                {
                    failures.push(failure);
                }
            }
            Ok(failures)
        }
    })
    .await?;
    let fill = fill_started.elapsed();
    let mut fill_failures = FailureLog::default();
    for log in logs {
        fill_failures.absorb(log);
    }
    println!(
        "  fill: {} messages by {fillers} senders in {:.1} s ({:.0} msg/s), {} failed",
        params.events,
        fill.as_secs_f64(),
        params.events as f64 / fill.as_secs_f64().max(1e-9),
        fill_failures.count
    );

    let path = format!(
        "/_matrix/client/v3/rooms/{}/messages",
        encode_segment(&room_id)
    );
    let limit = params.page.to_string();
    let mut report = PaginateReport {
        params,
        fill,
        fill_failures,
        latencies: Latencies::new(),
        pages: 0,
        seen: 0,
        duplicates: 0,
        reached_start: false,
        failures: FailureLog::default(),
    };
    let mut seen = HashSet::new();
    let mut from: Option<String> = None;
    loop {
        if report
            .params
            .max_pages
            .is_some_and(|max| report.pages >= max)
        {
            break;
        }
        let mut query = vec![("dir", "b"), ("limit", limit.as_str())];
        if let Some(from) = &from {
            query.push(("from", from.as_str()));
        }
        let url = api.url(&path, &query);
        let started = Instant::now();
        let body = match api
            .json(Method::GET, url, Some(&reader.token), None, PAGE_TIMEOUT)
            .await
        {
            Ok(body) => body,
            Err(failure) => {
                report.failures.push(failure);
                break;
            }
        };
        report.latencies.record(started.elapsed());
        report.pages += 1;
        for event in body["chunk"].as_array().into_iter().flatten() {
            let meta = &event["content"]["org.myelin.bench"];
            if meta["run"].as_str() != Some(run.as_str()) {
                continue;
            }
            if let Some(seq) = meta["seq"].as_u64()
                && !seen.insert(seq)
            {
                report.duplicates += 1;
            }
        }
        let chunk_empty = body["chunk"].as_array().is_none_or(Vec::is_empty);
        match body["end"].as_str() {
            Some(end) if !chunk_empty => from = Some(end.to_owned()),
            _ => {
                report.reached_start = true;
                break;
            }
        }
    }
    report.seen = seen.len();
    Ok(report)
}

impl PaginateReport {
    /// Messages the fill stored (sent without failure).
    fn stored(&self) -> usize {
        self.params.events - usize::try_from(self.fill_failures.count).unwrap_or(0)
    }

    /// No failed request, no duplicate, and a complete walk saw every message.
    pub fn healthy(&self) -> bool {
        self.failures.count == 0
            && self.fill_failures.count == 0
            && self.duplicates == 0
            && (!self.reached_start || self.seen == self.stored())
    }

    pub fn to_json(&self) -> Value {
        json!({
            "scenario": "paginate",
            "params": {
                "events": self.params.events,
                "fillers": self.params.fillers,
                "page": self.params.page,
                "max_pages": self.params.max_pages,
            },
            "fill_s": self.fill.as_secs_f64(),
            "fill_msg_per_s": self.params.events as f64 / self.fill.as_secs_f64().max(1e-9),
            "fill_failures": self.fill_failures.to_json(),
            "pages": self.pages,
            "latency": self.latencies.summary().to_json(),
            "seen": self.seen,
            "duplicates": self.duplicates,
            "reached_start": self.reached_start,
            "failures": self.failures.to_json(),
            "healthy": self.healthy(),
        })
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "paginate: a room of {} messages (filled by {} senders in {:.1} s, untimed), \
             {} pages of {} walked back, {} messages seen{}\n",
            self.params.events,
            self.params.fillers,
            self.fill.as_secs_f64(),
            self.pages,
            self.params.page,
            self.seen,
            if self.reached_start {
                ", start of the room reached"
            } else {
                ""
            },
        );
        out.push_str(&latency_table(&[("page", self.latencies.summary())]));
        if self.reached_start && self.seen != self.stored() {
            out.push_str(&format!(
                "  !! the walk saw {} of the {} messages stored\n",
                self.seen,
                self.stored()
            ));
        }
        if self.duplicates > 0 {
            out.push_str(&format!("  !! {} messages seen twice\n", self.duplicates));
        }
        out.push_str(&self.fill_failures.render("fill send"));
        out.push_str(&self.failures.render("messages"));
        out
    }
}
