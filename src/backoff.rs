//! Per-object backoff after transient errors, shared by the controllers: exponential from `min`
//! to `max`, jittered in its upper half (objects that failed together do not retry together),
//! reset when the object succeeds or is done.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

    /// How many errors in a row `uid` has had.
    pub fn count(&self, uid: &str) -> u32 {
        self.errors.lock().expect("backoff lock").get(uid).copied().unwrap_or_default()
    }

    /// `uid` succeeded (or is gone): its next error starts from `min` again.
    pub fn reset(&self, uid: &str) {
        self.errors.lock().expect("backoff lock").remove(uid);
    }
}

/// Work for an object that failed (a schedule's cleanup after its runs) waits out a growing delay
/// before it is tried again, however often the object is reconciled meanwhile: its other work
/// goes on, and a call AWS keeps refusing is made less and less often.
pub struct RetryGate {
    backoff: Backoff,
    due: Mutex<HashMap<String, Instant>>,
}

impl RetryGate {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self { backoff: Backoff::new(min, max), due: Mutex::default() }
    }

    /// How long until `uid`'s work may be tried again; `None` when it may be now.
    pub fn wait(&self, uid: &str) -> Option<Duration> {
        let due = self.due.lock().expect("retry gate lock");
        due.get(uid).and_then(|at| at.checked_duration_since(Instant::now())).filter(|d| !d.is_zero())
    }

    /// `uid`'s work failed once more: it waits longer before the next try. Returns the wait and
    /// how many times in a row it has failed now.
    pub fn failed(&self, uid: &str) -> (Duration, u32) {
        let delay = self.backoff.next(uid);
        self.due.lock().expect("retry gate lock").insert(uid.to_string(), Instant::now() + delay);
        (delay, self.backoff.count(uid))
    }

    /// `uid`'s work succeeded (or the object is gone): it runs whenever asked again.
    pub fn succeeded(&self, uid: &str) {
        self.backoff.reset(uid);
        self.due.lock().expect("retry gate lock").remove(uid);
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

    #[test]
    fn failed_work_waits_out_its_backoff_whatever_the_reconciles_and_runs_again_after_a_success() {
        let gate = RetryGate::new(Duration::from_secs(60), Duration::from_secs(600));
        assert_eq!(gate.wait("a"), None, "never failed: due now");
        let (first, streak) = gate.failed("a");
        assert_eq!(streak, 1);
        let left = gate.wait("a").expect("not due right after a failure");
        assert!(left <= first && left >= Duration::from_secs(29), "{left:?} of {first:?}");
        assert_eq!(gate.wait("b"), None, "each object has its own");
        let (second, streak) = gate.failed("a");
        assert!(second >= Duration::from_secs(60) && streak == 2, "it grows: {second:?}");
        gate.succeeded("a");
        assert_eq!(gate.wait("a"), None);
        assert_eq!(gate.failed("a").1, 1, "a success starts over");
        let zero = RetryGate::new(Duration::ZERO, Duration::ZERO);
        zero.failed("z");
        assert_eq!(zero.wait("z"), None, "no backoff: due at once");
    }
}
