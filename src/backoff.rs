//! Per-object backoff after transient errors, shared by the controllers: exponential from `min`
//! to `max`, jittered in its upper half (objects that failed together do not retry together),
//! reset when the object succeeds or is done.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// `min` doubled `step` times, at most `max`.
pub fn exponential(min: Duration, max: Duration, step: u32) -> Duration {
    min.saturating_mul(1u32 << step.min(20)).min(max)
}

/// A periodic retry's next wait: `period` stretched by up to a quarter at random, so objects
/// that stalled together drift apart instead of retrying (and calling AWS) together.
pub fn spread(period: Duration) -> Duration {
    period.mul_f64(rand::random_range(1.0..1.25))
}

/// Consecutive transient errors by object UID.
pub struct Backoff {
    min: Duration,
    max: Duration,
    errors: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self { min, max, errors: Mutex::default() }
    }

    /// The wait before retrying `uid` after one more transient error.
    pub fn next(&self, uid: &str) -> Duration {
        let mut map = self.errors.lock().expect("backoff lock");
        let count = map.entry(uid.to_string()).or_default();
        let delay = exponential(self.min, self.max, *count);
        *count = count.saturating_add(1);
        delay.mul_f64(rand::random_range(0.5..=1.0))
    }

    /// `uid` succeeded (or is gone): its next error starts from `min` again.
    pub fn reset(&self, uid: &str) {
        self.errors.lock().expect("backoff lock").remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_to_its_bound_with_jitter_and_starts_over_after_a_success() {
        let s = Duration::from_secs;
        assert_eq!((0..6).map(|n| exponential(s(5), s(60), n).as_secs()).collect::<Vec<_>>(), [5, 10, 20, 40, 60, 60]);
        assert_eq!(exponential(s(1), s(300), 40), s(300), "no overflow");
        let backoff = Backoff::new(s(5), s(60));
        let waits: Vec<Duration> = (0..5).map(|_| backoff.next("a")).collect();
        for (wait, full) in waits.iter().zip([5, 10, 20, 40, 60]) {
            assert!(*wait >= s(full) / 2 && *wait <= s(full), "{wait:?} for {full} s");
        }
        assert!(backoff.next("b") <= s(5), "each object has its own count");
        backoff.reset("a");
        assert!(backoff.next("a") <= s(5), "a success starts over");
    }

    #[test]
    fn a_periodic_retry_waits_at_least_its_period_and_at_most_a_quarter_more() {
        let waits: Vec<Duration> = (0..200).map(|_| spread(Duration::from_secs(300))).collect();
        assert!(waits.iter().all(|w| *w >= Duration::from_secs(300) && *w < Duration::from_secs(375)), "{waits:?}");
        assert!(waits.iter().any(|w| *w != waits[0]), "spread apart");
    }
}
