//! The pure decision of one schedule reconcile: is a run due, and does it start or is it
//! skipped (and why)? Time is injected; nothing here calls out.
//!
//! Missed runs (the operator was down, or a reconcile was late): only the one most recent
//! scheduled time after the last handled one is considered, so a long outage never starts a
//! burst of catch-up runs (a Kubernetes CronJob counts up to 100 missed times and then gives up
//! with an error; this needs no such limit). With `startingDeadlineSeconds` that one is skipped
//! (`MissedDeadline`) when it is later than the deadline.
//!
//! Suspend: scheduled times that pass while suspended are recorded as skipped (`Suspended`), so
//! resuming never starts a run for a time that passed while suspended (a Velero Schedule does,
//! velero#6517). A run-now annotation still starts a run when suspended, as `kubectl create job
//! --from=cronjob/...` does for a suspended CronJob.

use super::names;
use super::timetable::Timetable;
use crate::api::schedule::SkipReason;
use jiff::Timestamp;

/// What the planner needs to know.
#[derive(Clone, Debug)]
pub struct Facts<'a> {
    pub now: Timestamp,
    /// The schedule's name.
    pub name: &'a str,
    /// When the schedule was created: no run is due for a time before it.
    pub created: Timestamp,
    /// The most recent scheduled time already handled (run or skipped).
    pub last_schedule_time: Option<Timestamp>,
    pub suspend: bool,
    pub starting_deadline_seconds: Option<i64>,
    /// The run-now annotation's value, the last value acted on, and how many were.
    pub run_now: Option<&'a str>,
    pub last_run_now: Option<&'a str>,
    pub run_now_count: u32,
    /// A run of this schedule is in flight (or its intermediate snapshot is being taken).
    pub in_flight: bool,
    /// The names of this schedule's runs (owned by it): a planned run that exists was started
    /// already (its status write was lost), so it is reported started, never skipped.
    pub runs: &'a [String],
}

/// A run-now value to act on, and its sequence number (the count of values acted on, this one
/// included): the run's name comes from both, so a value used again is a new run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunNow {
    pub value: String,
    pub seq: u32,
}

/// The decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Nothing is due.
    Idle,
    /// Start the run `run_name` for `scheduled` (for a run-now, `run_now` is the value to record).
    Start { scheduled: Timestamp, run_name: String, run_now: Option<RunNow> },
    /// Record `scheduled` as handled without a run.
    Skip { scheduled: Timestamp, reason: SkipReason, run_now: Option<RunNow>, message: String },
}

/// The plan and the next scheduled time (where to requeue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub plan: Plan,
    pub next: Option<Timestamp>,
}

/// How far a recorded `lastScheduleTime` may be ahead of the clock before it is taken for a clock
/// that jumped (replicas' clocks differ by seconds, not minutes).
pub const CLOCK_TOLERANCE: jiff::SignedDuration = jiff::SignedDuration::from_mins(5);

/// The recorded `lastScheduleTime` when it is ahead of `now` by more than [`CLOCK_TOLERANCE`]:
/// the clock jumped forward and back (or the status was edited), and every later time would wait
/// until the clock reached it.
pub fn ahead_of_clock(last_schedule_time: Option<Timestamp>, now: Timestamp) -> Option<Timestamp> {
    last_schedule_time.filter(|t| t.duration_since(now) > CLOCK_TOLERANCE)
}

pub fn plan(timetable: &Timetable, facts: &Facts<'_>) -> Decision {
    let next = timetable.next_after(facts.now);
    Decision { plan: decide(timetable, facts), next }
}

fn decide(timetable: &Timetable, facts: &Facts<'_>) -> Plan {
    // Run-now first: a person asked for it.
    if let Some(value) = facts.run_now.filter(|v| !v.is_empty() && Some(*v) != facts.last_run_now) {
        let seq = facts.run_now_count.saturating_add(1);
        let run_now = Some(RunNow { value: value.to_string(), seq });
        let run_name = names::run_now_name(facts.name, value, seq);
        if facts.in_flight && !facts.runs.contains(&run_name) {
            return Plan::Skip {
                scheduled: facts.now,
                reason: SkipReason::PreviousRunInFlight,
                run_now,
                message: format!("The run asked for by {}={value:?} did not start: the previous run is still in flight. Set a new value once it finished.", crate::api::schedule::RUN_NOW_ANNOTATION),
            };
        }
        return Plan::Start { scheduled: facts.now, run_name, run_now };
    }
    let since = facts.last_schedule_time.map_or(facts.created, |t| t.max(facts.created));
    // A schedule created exactly at a run time runs it: start just before creation.
    let since = if facts.last_schedule_time.is_none() { since - jiff::SignedDuration::from_secs(1) } else { since };
    let Some(scheduled) = timetable.latest_in(since, facts.now) else {
        return Plan::Idle;
    };
    let run_name = names::run_name(facts.name, scheduled);
    if facts.runs.contains(&run_name) {
        // Started before its time was recorded (a lost status write, a crash): record it now.
        return Plan::Start { scheduled, run_name, run_now: None };
    }
    let late = facts.now.duration_since(scheduled).as_secs();
    if facts.suspend {
        return Plan::Skip {
            scheduled,
            reason: SkipReason::Suspended,
            run_now: None,
            message: format!("The run scheduled for {scheduled} was skipped: the schedule is suspended (spec.suspend)."),
        };
    }
    if let Some(deadline) = facts.starting_deadline_seconds.filter(|d| late > *d) {
        return Plan::Skip {
            scheduled,
            reason: SkipReason::MissedDeadline,
            run_now: None,
            message: format!(
                "The run scheduled for {scheduled} was skipped: it is {late}s late, more than startingDeadlineSeconds ({deadline}s); the next run starts on time."
            ),
        };
    }
    if facts.in_flight {
        return Plan::Skip {
            scheduled,
            reason: SkipReason::PreviousRunInFlight,
            run_now: None,
            message: format!("The run scheduled for {scheduled} was skipped: the previous run is still in flight."),
        };
    }
    Plan::Start { scheduled, run_name, run_now: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn facts(now: &str, last: Option<&str>) -> Facts<'static> {
        Facts {
            now: ts(now),
            name: "nightly",
            created: ts("2026-11-01T12:00:00Z"),
            last_schedule_time: last.map(ts),
            suspend: false,
            starting_deadline_seconds: None,
            run_now: None,
            last_run_now: None,
            run_now_count: 0,
            in_flight: false,
            runs: &[],
        }
    }

    fn now(run_now: &Option<RunNow>) -> String {
        run_now.as_ref().map_or("None".into(), |r| format!("{}#{}", r.value, r.seq))
    }

    fn show(d: &Decision) -> String {
        match &d.plan {
            Plan::Idle => "Idle".into(),
            Plan::Start { scheduled, run_name, run_now } => format!("Start {scheduled} {run_name} {}", now(run_now)),
            Plan::Skip { scheduled, reason, run_now, .. } => format!("Skip {scheduled} {} {}", reason.as_str(), now(run_now)),
        }
    }

    #[test]
    fn decisions() {
        let nightly = Timetable::new("0 3 * * *", "UTC").unwrap();
        let with = |f: &dyn Fn(&mut Facts<'static>), now: &str, last: Option<&str>| {
            let mut x = facts(now, last);
            f(&mut x);
            show(&plan(&nightly, &x))
        };
        let none = |_: &mut Facts<'static>| {};
        let cases: Vec<(&str, String, &str)> = vec![
            ("before the first run", with(&none, "2026-11-02T02:59:59Z", None), "Idle"),
            ("the first run, on time", with(&none, "2026-11-02T03:00:00Z", None), "Start 2026-11-02T03:00:00Z nightly-20261102-0300 None"),
            ("handled already", with(&none, "2026-11-02T10:00:00Z", Some("2026-11-02T03:00:00Z")), "Idle"),
            (
                "down for a week: only the latest",
                with(&none, "2026-11-09T10:00:00Z", Some("2026-11-02T03:00:00Z")),
                "Start 2026-11-09T03:00:00Z nightly-20261109-0300 None",
            ),
            (
                "deadline edge: exactly at it runs",
                with(&|f| f.starting_deadline_seconds = Some(600), "2026-11-09T03:10:00Z", Some("2026-11-08T03:00:00Z")),
                "Start 2026-11-09T03:00:00Z nightly-20261109-0300 None",
            ),
            (
                "deadline edge: one second past it skips",
                with(&|f| f.starting_deadline_seconds = Some(600), "2026-11-09T03:10:01Z", Some("2026-11-08T03:00:00Z")),
                "Skip 2026-11-09T03:00:00Z MissedDeadline None",
            ),
            (
                "suspended",
                with(&|f| f.suspend = true, "2026-11-09T03:00:05Z", Some("2026-11-08T03:00:00Z")),
                "Skip 2026-11-09T03:00:00Z Suspended None",
            ),
            (
                "in flight",
                with(&|f| f.in_flight = true, "2026-11-09T03:00:05Z", Some("2026-11-08T03:00:00Z")),
                "Skip 2026-11-09T03:00:00Z PreviousRunInFlight None",
            ),
            (
                "run now",
                with(&|f| f.run_now = Some("a"), "2026-11-09T12:00:00Z", Some("2026-11-09T03:00:00Z")),
                format!("Start 2026-11-09T12:00:00Z {} a#1", names::run_now_name("nightly", "a", 1)).leak(),
            ),
            (
                "run now, same value again",
                with(
                    &|f| {
                        f.run_now = Some("a");
                        f.last_run_now = Some("a")
                    },
                    "2026-11-09T12:00:00Z",
                    Some("2026-11-09T03:00:00Z"),
                ),
                "Idle",
            ),
            (
                "run now while suspended",
                with(
                    &|f| {
                        f.run_now = Some("b");
                        f.suspend = true
                    },
                    "2026-11-09T12:00:00Z",
                    Some("2026-11-09T03:00:00Z"),
                ),
                format!("Start 2026-11-09T12:00:00Z {} b#1", names::run_now_name("nightly", "b", 1)).leak(),
            ),
            (
                "run now while in flight",
                with(
                    &|f| {
                        f.run_now = Some("c");
                        f.in_flight = true
                    },
                    "2026-11-09T12:00:00Z",
                    Some("2026-11-09T03:00:00Z"),
                ),
                "Skip 2026-11-09T12:00:00Z PreviousRunInFlight c#1",
            ),
            (
                "a value used again after another: a new run, not the first",
                with(
                    &|f| {
                        f.run_now = Some("a");
                        f.last_run_now = Some("b");
                        f.run_now_count = 2
                    },
                    "2026-11-09T12:00:00Z",
                    Some("2026-11-09T03:00:00Z"),
                ),
                format!("Start 2026-11-09T12:00:00Z {} a#3", names::run_now_name("nightly", "a", 3)).leak(),
            ),
            (
                "run now whose run exists, in flight (its status write was lost): started, not skipped",
                with(
                    &|f| {
                        f.run_now = Some("c");
                        f.in_flight = true;
                        f.runs = Vec::leak(vec![names::run_now_name("nightly", "c", 1)])
                    },
                    "2026-11-09T12:00:00Z",
                    Some("2026-11-09T03:00:00Z"),
                ),
                format!("Start 2026-11-09T12:00:00Z {} c#1", names::run_now_name("nightly", "c", 1)).leak(),
            ),
            (
                "run now while another run with that value's earlier name is in flight",
                with(
                    &|f| {
                        f.run_now = Some("c");
                        f.last_run_now = Some("b");
                        f.run_now_count = 2;
                        f.in_flight = true;
                        f.runs = Vec::leak(vec![names::run_now_name("nightly", "c", 1)])
                    },
                    "2026-11-09T12:00:00Z",
                    Some("2026-11-09T03:00:00Z"),
                ),
                "Skip 2026-11-09T12:00:00Z PreviousRunInFlight c#3",
            ),
            (
                "scheduled run that exists, in flight, its time not recorded: started, not skipped",
                with(
                    &|f| {
                        f.in_flight = true;
                        f.runs = Vec::leak(vec!["nightly-20261109-0300".to_string()])
                    },
                    "2026-11-09T03:00:05Z",
                    Some("2026-11-08T03:00:00Z"),
                ),
                "Start 2026-11-09T03:00:00Z nightly-20261109-0300 None",
            ),
            (
                "the same, found only after its deadline and while suspended: still started",
                with(
                    &|f| {
                        f.in_flight = true;
                        f.suspend = true;
                        f.starting_deadline_seconds = Some(60);
                        f.runs = Vec::leak(vec!["nightly-20261109-0300".to_string()])
                    },
                    "2026-11-09T05:00:00Z",
                    Some("2026-11-08T03:00:00Z"),
                ),
                "Start 2026-11-09T03:00:00Z nightly-20261109-0300 None",
            ),
            ("created after today's time", with(&|f| f.created = ts("2026-11-09T04:00:00Z"), "2026-11-09T05:00:00Z", None), "Idle"),
            (
                "created exactly at a run time",
                with(&|f| f.created = ts("2026-11-09T03:00:00Z"), "2026-11-09T03:00:00Z", None),
                "Start 2026-11-09T03:00:00Z nightly-20261109-0300 None",
            ),
        ];
        for (what, got, want) in cases {
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn the_next_time_is_where_to_requeue() {
        let nightly = Timetable::new("0 3 * * *", "Europe/Berlin").unwrap();
        let d = plan(&nightly, &facts("2026-11-09T12:00:00Z", Some("2026-11-09T02:00:00Z")));
        assert_eq!(d, Decision { plan: Plan::Idle, next: Some(ts("2026-11-10T02:00:00Z")) });
    }

    #[test]
    fn a_recorded_time_ahead_of_the_clock_is_found_beyond_the_tolerance_only() {
        let now = ts("2026-12-07T03:00:00Z");
        for (last, want) in [
            (None, None),
            (Some("2026-12-07T02:00:00Z"), None),
            (Some("2026-12-07T03:04:00Z"), None),
            (Some("2026-12-07T03:06:00Z"), Some("2026-12-07T03:06:00Z")),
            (Some("2027-06-01T03:00:00Z"), Some("2027-06-01T03:00:00Z")),
        ] {
            assert_eq!(ahead_of_clock(last.map(ts), now), want.map(ts), "{last:?}");
        }
        // Without it, a time ahead of the clock holds every run until the clock reaches it.
        let timetable = Timetable::new("0 3 * * *", "UTC").unwrap();
        let held = facts("2026-12-08T03:01:00Z", Some("2027-06-01T03:00:00Z"));
        assert_eq!(plan(&timetable, &held).plan, Plan::Idle);
    }
}
