//! Scenario `send` (S2): one client sends messages sequentially; the latency
//! of each `PUT …/send/m.room.message/{txn}` is recorded.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use super::cpu::{CpuProbe, CpuUsage};
use super::http::{Api, Failed, Failure, FailureLog, check_json, encode_segment};
use super::setup::{self, Registration, User};
use super::stats::{Latencies, latency_table};
use super::text::Lines;

/// Timeout of one send request.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Parameters of the `send` scenario.
#[derive(Debug, Clone)]
pub struct SendParams {
    /// Recorded messages.
    pub messages: usize,
    /// Messages sent first and not recorded.
    pub warmup: usize,
}

/// What the `send` scenario measured.
pub struct SendReport {
    pub params: SendParams,
    pub room_id: String,
    pub latencies: Latencies,
    pub failures: FailureLog,
    pub warmup_failures: FailureLog,
    /// Wall time of the recorded phase.
    pub elapsed: Duration,
    /// CPU used during the recorded phase.
    pub cpu: CpuUsage,
}

/// `PUT /_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}` with
/// `content`; returns the latency until the response body was received.
/// Anything but a 2xx JSON body with an `event_id` is a [`Failure`].
pub async fn send_message(
    api: &Api,
    user: &User,
    room_id: &str,
    txn: &str,
    content: &Value,
) -> Result<Duration, Failed> {
    let path = format!(
        "/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
        encode_segment(room_id),
        encode_segment(txn)
    );
    let url = api.url(&path, &[]);
    let started = Instant::now();
    let reply = api
        .raw(
            Method::PUT,
            url.clone(),
            Some(&user.token),
            Some(content),
            SEND_TIMEOUT,
        )
        .await?;
    let latency = reply.done.duration_since(started);
    let body = check_json(&Method::PUT, &url, Some(content), &reply, started)?;
    if !body["event_id"].is_string() {
        return Err(Box::new(Failure {
            method: "PUT".to_owned(),
            url: url.to_string(),
            request_body: Some(content.to_string()),
            status: Some(reply.status.as_u16()),
            response_body: Some(body.to_string()),
            error: Some("the response has no event_id".to_owned()),
            elapsed: latency,
        }));
    }
    Ok(latency)
}

/// Runs the scenario: setup (untimed), warm-up, then the recorded sends.
pub async fn run(
    api: &Api,
    registration: &Registration,
    params: SendParams,
    server_pid: Option<u32>,
) -> anyhow::Result<SendReport> {
    let run = setup::run_id();
    let users = setup::register_many(api, registration, &format!("bench-{run}-send"), 1, 1).await?;
    let user = &users[0];
    let room_id = setup::create_room(api, user, &format!("myelin-bench send {run}")).await?;

    let mut lines = Lines::new(0x5EED);
    let mut warmup_failures = FailureLog::default();
    for i in 0..params.warmup {
        let content = json!({"msgtype": "m.text", "body": lines.next_line()});
        if let Err(failure) =
            send_message(api, user, &room_id, &format!("{run}-w{i}"), &content).await
        {
            warmup_failures.push(failure);
        }
    }

    let mut latencies = Latencies::new();
    let mut failures = FailureLog::default();
    let probe = CpuProbe::start(server_pid);
    let started = Instant::now();
    for i in 0..params.messages {
        let content = json!({"msgtype": "m.text", "body": lines.next_line()});
        match send_message(api, user, &room_id, &format!("{run}-{i}"), &content).await {
            Ok(latency) => latencies.record(latency),
            Err(failure) => failures.push(failure),
        }
    }
    let elapsed = started.elapsed();
    let cpu = probe.finish();

    Ok(SendReport {
        params,
        room_id,
        latencies,
        failures,
        warmup_failures,
        elapsed,
        cpu,
    })
}

impl SendReport {
    /// Successful recorded sends per second of wall time.
    pub fn throughput(&self) -> f64 {
        self.latencies.count() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// No failed request.
    pub fn healthy(&self) -> bool {
        self.failures.count == 0 && self.warmup_failures.count == 0
    }

    pub fn to_json(&self) -> Value {
        json!({
            "scenario": "send",
            "params": {"messages": self.params.messages, "warmup": self.params.warmup},
            "room_id": self.room_id,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "throughput_msg_per_s": self.throughput(),
            "latency": self.latencies.summary().to_json(),
            "failures": self.failures.to_json(),
            "warmup_failures": self.warmup_failures.to_json(),
            "cpu": self.cpu.to_json(),
            "healthy": self.healthy(),
        })
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "send: {} messages sequentially (warm-up {} not recorded), {} ok, {} failed, \
             {:.2} s, {:.1} msg/s\n",
            self.params.messages,
            self.params.warmup,
            self.latencies.count(),
            self.failures.count,
            self.elapsed.as_secs_f64(),
            self.throughput(),
        );
        out.push_str(&latency_table(&[("send", self.latencies.summary())]));
        out.push_str(&self.cpu.render());
        out.push_str(&self.warmup_failures.render("warm-up send"));
        out.push_str(&self.failures.render("send"));
        out
    }
}
