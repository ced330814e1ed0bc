//! Token-bucket rate limits, keyed by what is being limited (an IP, an account).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use myelin_config::RateLimit;

use crate::error::{Error, Result};

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// One limiter per kind of action; each key gets its own bucket.
#[derive(Clone)]
pub struct RateLimiter {
    enabled: bool,
    limit: RateLimit,
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
}

/// Buckets are swept once the map grows past this, so a flood of distinct keys cannot grow
/// memory without bound.
const SWEEP_THRESHOLD: usize = 10_000;

impl RateLimiter {
    pub fn new(enabled: bool, limit: RateLimit) -> Self {
        Self { enabled, limit, buckets: Arc::default() }
    }

    /// Takes one token for `key`, or answers `M_LIMIT_EXCEEDED` with the wait until one frees.
    pub fn check(&self, key: &str) -> Result<()> {
        if !self.enabled || self.limit.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let burst = f64::from(self.limit.burst.max(1));
        let mut buckets = self.buckets.lock().map_err(|_| Error::internal("rate limiter poisoned"))?;
        if buckets.len() > SWEEP_THRESHOLD {
            let per_second = self.limit.per_second;
            buckets.retain(|_, b| b.tokens + now.duration_since(b.updated).as_secs_f64() * per_second < burst);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket { tokens: burst, updated: now });
        let refilled = bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * self.limit.per_second;
        bucket.tokens = refilled.min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.limit.per_second;
            Err(Error::limit_exceeded(Duration::from_secs_f64(wait)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refuses_with_a_wait() {
        let limiter = RateLimiter::new(true, RateLimit { per_second: 0.5, burst: 2 });
        limiter.check("a").unwrap();
        limiter.check("a").unwrap();
        let error = limiter.check("a").unwrap_err();
        assert_eq!(error.errcode(), "M_LIMIT_EXCEEDED");
        // another key has its own bucket
        limiter.check("b").unwrap();
    }

    #[test]
    fn disabled_never_limits() {
        let limiter = RateLimiter::new(false, RateLimit { per_second: 0.001, burst: 1 });
        for _ in 0..100 {
            limiter.check("a").unwrap();
        }
    }
}
