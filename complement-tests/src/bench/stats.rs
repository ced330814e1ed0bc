//! Latency histograms (HDR, microsecond resolution) and their summaries.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Largest recordable latency: one hour, in µs; larger values are clamped.
const HIGHEST_US: u64 = 3_600_000_000;

/// Latencies in microseconds, 3 significant digits; exact min and max.
#[derive(Clone)]
pub struct Latencies {
    hist: Histogram<u64>,
    min_us: u64,
    max_us: u64,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies::new()
    }
}

impl Latencies {
    pub fn new() -> Latencies {
        Latencies {
            hist: Histogram::new_with_bounds(1, HIGHEST_US, 3)
                .expect("static histogram bounds are valid"),
            min_us: u64::MAX,
            max_us: 0,
        }
    }

    pub fn record(&mut self, latency: Duration) {
        self.record_us(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// Records one latency in µs (0 counts as 1 µs, the histogram's floor).
    pub fn record_us(&mut self, us: u64) {
        let us = us.clamp(1, HIGHEST_US);
        self.hist.saturating_record(us);
        self.min_us = self.min_us.min(us);
        self.max_us = self.max_us.max(us);
    }

    pub fn merge(&mut self, other: &Latencies) {
        self.hist
            .add(&other.hist)
            .expect("histograms with the same bounds can be added");
        self.min_us = self.min_us.min(other.min_us);
        self.max_us = self.max_us.max(other.max_us);
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    pub fn summary(&self) -> Summary {
        // HDR reports the highest value equivalent to a bucket, which can
        // exceed the exact extremes: keep the percentiles within them.
        let q = |quantile: f64| {
            self.hist
                .value_at_quantile(quantile)
                .clamp(self.min_us, self.max_us)
        };
        if self.hist.is_empty() {
            return Summary::default();
        }
        Summary {
            count: self.hist.len(),
            min_us: self.min_us,
            mean_us: self.hist.mean(),
            p50_us: q(0.50),
            p90_us: q(0.90),
            p95_us: q(0.95),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: self.max_us,
        }
    }
}

/// Percentiles of a [`Latencies`] (HDR values: within 0.1 %), in µs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub count: u64,
    pub min_us: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Summary {
    pub fn to_json(&self) -> Value {
        json!({
            "count": self.count,
            "unit": "us",
            "min": self.min_us,
            "mean": (self.mean_us * 10.0).round() / 10.0,
            "p50": self.p50_us,
            "p90": self.p90_us,
            "p95": self.p95_us,
            "p99": self.p99_us,
            "p99_9": self.p999_us,
            "max": self.max_us,
        })
    }
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1e3)
}

/// A fixed-width table of latency summaries, in milliseconds.
pub fn latency_table(rows: &[(&str, Summary)]) -> String {
    let width = rows
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0)
        .max(7);
    let mut out = format!(
        "  {:<width$} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "(ms)", "count", "min", "mean", "p50", "p90", "p95", "p99", "p99.9", "max"
    );
    for (name, s) in rows {
        let _ = writeln!(
            out,
            "  {:<width$} {:>7} {:>9} {:>9.3} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            name,
            s.count,
            ms(s.min_us),
            s.mean_us / 1e3,
            ms(s.p50_us),
            ms(s.p90_us),
            ms(s.p95_us),
            ms(s.p99_us),
            ms(s.p999_us),
            ms(s.max_us),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_exact_extremes() {
        let mut l = Latencies::new();
        for us in 1..=1000 {
            l.record(Duration::from_micros(us));
        }
        let s = l.summary();
        assert_eq!((s.count, s.min_us, s.max_us), (1000, 1, 1000));
        assert!((499..=501).contains(&s.p50_us), "{s:?}");
        assert!((989..=991).contains(&s.p99_us), "{s:?}");

        let mut other = Latencies::new();
        other.record(Duration::from_secs(2));
        l.merge(&other);
        assert_eq!(l.summary().max_us, 2_000_000);
        assert_eq!(l.count(), 1001);
    }

    #[test]
    fn empty_summary_is_zero() {
        assert_eq!(Latencies::new().summary().count, 0);
    }
}
