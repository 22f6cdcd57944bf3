//! A client-side rate limit for AWS calls: at most `per_second` calls a second on average, with
//! bursts of `burst`, so ten thousand new objects never burst the (per-account) ElastiCache API.

use super::AwsError;
use crate::metrics::Metrics;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
// tokio's clock, so paused-time tests see the same time the limiter does.
use tokio::time::Instant;

/// The gate every AWS call of the operator passes (ElastiCache and S3, the reconciler's and the
/// preflight's): it waits for the one shared rate limit, and its outcome is counted.
#[derive(Clone, Default)]
pub struct Pacer {
    limit: Option<Arc<RateLimit>>,
    metrics: Option<Arc<Metrics>>,
}

impl Pacer {
    pub fn new(limit: Option<RateLimit>, metrics: Option<Arc<Metrics>>) -> Self {
        Self { limit: limit.map(Arc::new), metrics }
    }

    /// Run one AWS call: wait for the rate limit, then count its outcome.
    pub async fn call<T>(&self, operation: &'static str, call: impl Future<Output = Result<T, AwsError>>) -> Result<T, AwsError> {
        if let Some(limit) = &self.limit {
            limit.acquire().await;
        }
        let result = call.await;
        if let Some(metrics) = &self.metrics {
            let outcome = match &result {
                Ok(_) => "ok",
                Err(e) if e.is_transient() => "transient",
                Err(_) => "refused",
            };
            metrics.aws_call(operation, outcome);
        }
        result
    }
}

pub struct RateLimit {
    interval: Duration,
    burst: u32,
    /// When the bucket of calls would be empty again at the current pace (generic cell rate
    /// algorithm: the theoretical arrival time of the next call).
    next: Mutex<Instant>,
}

impl RateLimit {
    pub fn new(per_second: f64, burst: u32) -> Self {
        let per_second = if per_second.is_finite() && per_second > 0.0 { per_second } else { 1.0 };
        Self { interval: Duration::from_secs_f64(1.0 / per_second), burst: burst.max(1), next: Mutex::new(Instant::now()) }
    }

    /// Wait for a slot.
    pub async fn acquire(&self) {
        let wait = {
            let mut next = self.next.lock().expect("rate limit lock");
            let now = Instant::now();
            if *next < now {
                *next = now;
            }
            // Up to `burst` calls may run ahead of the pace; later ones wait for their turn.
            let wait = next.duration_since(now).saturating_sub(self.interval * (self.burst - 1));
            *next += self.interval;
            wait
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bursts_then_paces() {
        let limit = RateLimit::new(10.0, 5);
        let start = tokio::time::Instant::now();
        for _ in 0..5 {
            limit.acquire().await;
        }
        assert!(start.elapsed() < Duration::from_millis(5), "the burst is immediate");
        for _ in 0..10 {
            limit.acquire().await;
        }
        let paced = start.elapsed();
        assert!(paced >= Duration::from_millis(950) && paced <= Duration::from_millis(1100), "{paced:?}");
    }
}
