//! The load generator's HTTP layer: one shared `reqwest` client (HTTP/1.1,
//! large idle pool, no proxy) and requests whose failures carry the exact
//! request and response, so that a misbehaving server can be reported as is.

use std::fmt;
use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode, Url};
use serde_json::{Value, json};

/// At most this much of a request or response body is kept in a [`Failure`].
const MAX_KEPT_BODY: usize = 2048;

/// A server under load, reached through one shared connection pool.
#[derive(Clone)]
pub struct Api {
    client: Client,
    base: Url,
}

/// A response whose body has been read completely.
pub struct RawReply {
    pub status: StatusCode,
    pub body: Vec<u8>,
    /// When the last byte of the body had been received.
    pub done: Instant,
}

/// What the fallible requests return: [`Failure`] is large, so it is boxed.
pub type Failed = Box<Failure>;

/// A request that failed: transport error, timeout, non-2xx status or a body
/// that is not the expected JSON. Everything needed to reproduce it by hand.
#[derive(Debug, Clone)]
pub struct Failure {
    pub method: String,
    /// Full URL, query string included (access tokens travel in a header and
    /// are never part of it).
    pub url: String,
    /// The JSON request body, if any (truncated).
    pub request_body: Option<String>,
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// The response body (truncated), when a response arrived.
    pub response_body: Option<String>,
    /// Transport error, timeout, or why a 2xx body was rejected.
    pub error: Option<String>,
    /// How long the request took until it failed.
    pub elapsed: Duration,
}

impl Failure {
    /// The failure as JSON, for the `--json` report.
    pub fn to_json(&self) -> Value {
        json!({
            "method": self.method,
            "url": self.url,
            "request_body": self.request_body,
            "status": self.status,
            "response_body": self.response_body,
            "error": self.error,
            "elapsed_ms": self.elapsed.as_secs_f64() * 1e3,
        })
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.url)?;
        if let Some(body) = &self.request_body {
            write!(f, " body={body}")?;
        }
        match self.status {
            Some(status) => write!(f, " -> HTTP {status}")?,
            None => write!(f, " -> no response")?,
        }
        if let Some(body) = &self.response_body {
            write!(f, " {body}")?;
        }
        if let Some(error) = &self.error {
            write!(f, " ({error})")?;
        }
        write!(f, " after {:.1} ms", self.elapsed.as_secs_f64() * 1e3)
    }
}

impl std::error::Error for Failure {}

fn truncate(text: &str) -> String {
    if text.len() <= MAX_KEPT_BODY {
        return text.to_owned();
    }
    let mut end = MAX_KEPT_BODY;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

/// How many failures a [`FailureLog`] keeps verbatim.
const KEPT_FAILURES: usize = 20;

/// Counts failures and keeps the first few verbatim.
#[derive(Debug, Default)]
pub struct FailureLog {
    pub count: u64,
    pub samples: Vec<Failed>,
}

impl FailureLog {
    pub fn push(&mut self, failure: Failed) {
        self.count += 1;
        if self.samples.len() < KEPT_FAILURES {
            self.samples.push(failure);
        }
    }

    /// Adds the failures of `other`, keeping the first samples.
    pub fn absorb(&mut self, other: FailureLog) {
        self.count += other.count;
        let room = KEPT_FAILURES.saturating_sub(self.samples.len());
        self.samples.extend(other.samples.into_iter().take(room));
    }

    pub fn to_json(&self) -> Value {
        json!({
            "count": self.count,
            "first": self.samples.iter().map(|f| f.to_json()).collect::<Vec<_>>(),
        })
    }

    /// Human lines, one per kept failure.
    pub fn render(&self, what: &str) -> String {
        if self.count == 0 {
            return String::new();
        }
        let mut out = format!(
            "  !! {} failed {what} request(s); first {}:\n",
            self.count,
            self.samples.len()
        );
        for failure in &self.samples {
            out.push_str(&format!("     {failure}\n"));
        }
        out
    }
}

/// Percent-encodes one path segment (room IDs, transaction IDs).
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl Api {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:8008`) that
    /// keeps up to `pool` idle connections, speaks HTTP/1.1 only and ignores
    /// proxy settings of the environment.
    pub fn new(base: &str, pool: usize) -> anyhow::Result<Api> {
        let base = Url::parse(base).map_err(|e| anyhow::anyhow!("bad --url {base:?}: {e}"))?;
        let client = Client::builder()
            .http1_only()
            .pool_max_idle_per_host(pool)
            .pool_idle_timeout(Duration::from_secs(120))
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10))
            .no_proxy()
            .build()?;
        Ok(Api { client, base })
    }

    /// A client for the same server with a pool of its own: connections
    /// opened through it are never shared with this one's.
    pub fn with_own_pool(&self, pool: usize) -> anyhow::Result<Api> {
        Api::new(self.base.as_str(), pool)
    }

    /// `base` + `path` with the query parameters appended.
    pub fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        // `path` is already percent-encoded where needed; keep it verbatim.
        url.set_path(path);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Sends a request and reads the whole body, whatever the status.
    /// Transport errors and timeouts become a [`Failure`].
    pub async fn raw(
        &self,
        method: Method,
        url: Url,
        token: Option<&str>,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<RawReply, Failed> {
        let started = Instant::now();
        let failure = |error: String, status: Option<u16>, response: Option<String>| {
            Box::new(Failure {
                method: method.to_string(),
                url: url.to_string(),
                request_body: body.map(|b| truncate(&b.to_string())),
                status,
                response_body: response,
                error: Some(error),
                elapsed: started.elapsed(),
            })
        };
        let mut request = self
            .client
            .request(method.clone(), url.clone())
            .timeout(timeout);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| failure(error_chain(&e), None, None))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| {
            failure(
                format!("reading the body: {}", error_chain(&e)),
                Some(status.as_u16()),
                None,
            )
        })?;
        Ok(RawReply {
            status,
            body: bytes.to_vec(),
            done: Instant::now(),
        })
    }

    /// Sends a request and requires a 2xx status with a JSON object body.
    pub async fn json(
        &self,
        method: Method,
        url: Url,
        token: Option<&str>,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, Failed> {
        let started = Instant::now();
        let reply = self
            .raw(method.clone(), url.clone(), token, body, timeout)
            .await?;
        check_json(&method, &url, body, &reply, started)
    }
}

/// The JSON body of a 2xx `reply`, or the [`Failure`] describing it.
pub fn check_json(
    method: &Method,
    url: &Url,
    request_body: Option<&Value>,
    reply: &RawReply,
    started: Instant,
) -> Result<Value, Failed> {
    let failure = |error: Option<String>| {
        Box::new(Failure {
            method: method.to_string(),
            url: url.to_string(),
            request_body: request_body.map(|b| truncate(&b.to_string())),
            status: Some(reply.status.as_u16()),
            response_body: Some(truncate(&String::from_utf8_lossy(&reply.body))),
            error,
            elapsed: reply.done.duration_since(started),
        })
    };
    if !reply.status.is_success() {
        return Err(failure(None));
    }
    match serde_json::from_slice::<Value>(&reply.body) {
        Ok(value) if value.is_object() => Ok(value),
        Ok(_) => Err(failure(Some("the body is not a JSON object".to_owned()))),
        Err(e) => Err(failure(Some(format!("the body is not JSON: {e}")))),
    }
}

/// An error with its sources, e.g. "error sending request: connection refused".
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if error.is_timeout() {
        text.push_str(" [timeout]");
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("!abc:example.org"), "%21abc%3Aexample.org");
        assert_eq!(encode_segment("txn-1_a.b~"), "txn-1_a.b~");
    }

    #[test]
    fn long_bodies_are_truncated_on_a_char_boundary() {
        let text = "é".repeat(MAX_KEPT_BODY);
        let kept = truncate(&text);
        assert!(kept.len() < text.len());
        assert!(kept.ends_with(&format!("({} bytes in all)", text.len())));
    }
}
