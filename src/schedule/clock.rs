//! The time schedules run by: real time, or, FOR TESTS ONLY, a virtual clock that starts at a
//! given instant and runs a given number of times faster, so an end-to-end test can run a week
//! of nightly runs in seconds. Set by the environment of the `run` subcommand:
//! `ECX_TEST_CLOCK_START` (the RFC 3339 instant the virtual clock shows at the real instant
//! `ECX_TEST_CLOCK_ORIGIN`, default: when the operator started) and `ECX_TEST_CLOCK_SCALE`
//! (virtual seconds per real second). With a fixed origin, restarted operators agree on the
//! time. Never set them in production: schedules would run at the wrong times. Only schedules
//! use it; exports run in real time.

use jiff::{SignedDuration, Timestamp};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Clock {
    /// Real instant at which the virtual clock shows `virtual_start`.
    origin: Timestamp,
    virtual_start: Option<Timestamp>,
    scale: f64,
}

impl Clock {
    pub fn real() -> Self {
        Self { origin: Timestamp::now(), virtual_start: None, scale: 1.0 }
    }

    /// The virtual test clock: shows `start` at the real instant `origin`, and runs `scale`
    /// times faster than real time.
    pub fn scaled(start: Timestamp, origin: Timestamp, scale: f64) -> Self {
        Self { origin, virtual_start: Some(start), scale }
    }

    /// The clock the environment asks for (real unless the test-only variables are set).
    pub fn from_env() -> Result<Self, String> {
        let (Ok(start), scale) = (std::env::var("ECX_TEST_CLOCK_START"), std::env::var("ECX_TEST_CLOCK_SCALE")) else {
            return Ok(Self::real());
        };
        let start: Timestamp = start.parse().map_err(|e| format!("ECX_TEST_CLOCK_START {start:?} is not an RFC 3339 instant: {e}"))?;
        let scale: f64 = scale.unwrap_or_else(|_| "1".into()).parse().map_err(|_| "ECX_TEST_CLOCK_SCALE must be a number".to_string())?;
        if !(scale.is_finite() && scale > 0.0) {
            return Err("ECX_TEST_CLOCK_SCALE must be a positive number".into());
        }
        let origin = match std::env::var("ECX_TEST_CLOCK_ORIGIN") {
            Ok(o) => o.parse().map_err(|e| format!("ECX_TEST_CLOCK_ORIGIN {o:?} is not an RFC 3339 instant: {e}"))?,
            Err(_) => Timestamp::now(),
        };
        tracing::warn!(%start, %origin, scale, "TEST CLOCK: schedules run on a virtual clock (ECX_TEST_CLOCK_*); never use this in production");
        Ok(Self::scaled(start, origin, scale))
    }

    pub fn now(&self) -> Timestamp {
        match self.virtual_start {
            None => Timestamp::now(),
            Some(_) => self.at(Timestamp::now()),
        }
    }

    /// What the clock showed at the real instant `real` (object creation times are real).
    pub fn at(&self, real: Timestamp) -> Timestamp {
        match self.virtual_start {
            None => real,
            Some(start) => start + SignedDuration::from_secs_f64(real.duration_since(self.origin).as_secs_f64() * self.scale),
        }
    }

    /// The real time to wait until the clock shows `at` (zero when it already does).
    pub fn until(&self, at: Timestamp) -> Duration {
        let ahead = at.duration_since(self.now()).as_secs_f64();
        Duration::from_secs_f64((ahead / self.scale).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scaled_clock_runs_faster_and_waits_shorter() {
        let start: Timestamp = "2026-11-23T00:00:00Z".parse().unwrap();
        let clock = Clock::scaled(start, Timestamp::now(), 3600.0);
        let now = clock.now();
        assert!(now >= start && now < start + SignedDuration::from_secs(3600), "{now}");
        let wait = clock.until(start + SignedDuration::from_hours(24));
        assert!(wait <= Duration::from_secs(24) && wait > Duration::from_secs(23), "{wait:?}");
        assert_eq!(clock.until(start - SignedDuration::from_hours(1)), Duration::ZERO);
    }
}
