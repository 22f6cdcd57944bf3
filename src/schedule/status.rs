//! The schedule's status from what was observed: runs in flight, the last success, the last
//! run's phase, and the kstatus conditions. Pure; the reconciler writes it only when it changed.

use super::retention::{RunFacts, RunState};
use crate::api::conditions::{set_health, Health};
use crate::api::schedule::SnapshotExportScheduleStatus;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// One run as the schedule sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunView {
    pub facts: RunFacts,
    pub phase: Option<String>,
    pub completed_at: Option<Timestamp>,
    /// Why it failed (its Stalled condition's reason and message).
    pub failure: Option<(String, String)>,
    pub source: String,
    /// CreateSnapshot mode: the intermediate snapshot to delete now (its run is over for good).
    pub intermediate: Option<String>,
    /// CreateSnapshot mode: the intermediate snapshot the run still names, over or not (deleted
    /// with the run when retention deletes a run stalled for its spec).
    pub annotated_intermediate: Option<String>,
    /// The run's source is a serverless snapshot (so is its intermediate one).
    pub serverless: bool,
    pub exported_objects: Vec<String>,
    pub requested_at: Option<Timestamp>,
}

/// Fold the runs into `status`. `stall` is a cause that needs a person (invalid spec, cache not
/// found, a refused CreateSnapshot); `next` the next scheduled time.
pub fn compose(
    mut status: SnapshotExportScheduleStatus,
    runs: &[RunView],
    stall: Option<(&str, String)>,
    next: Option<Timestamp>,
    generation: Option<i64>,
    now: Timestamp,
) -> SnapshotExportScheduleStatus {
    let mut by_time: Vec<&RunView> = runs.iter().collect();
    by_time.sort_by(|a, b| b.facts.scheduled.cmp(&a.facts.scheduled).then_with(|| b.facts.name.cmp(&a.facts.name)));
    status.active = by_time.iter().rev().filter(|r| r.facts.state == RunState::InFlight).map(|r| r.facts.name.clone()).collect();
    let newest_success = runs.iter().filter_map(|r| r.completed_at.filter(|_| r.facts.state == RunState::Succeeded)).max();
    let previous = status.last_successful_time.as_ref().map(|t| t.0);
    status.last_successful_time = newest_success.max(previous).map(Time);
    if let Some(last) = status.last_run.as_mut() {
        if let Some(run) = last.name.as_ref().and_then(|n| runs.iter().find(|r| &r.facts.name == n)) {
            last.phase = run.phase.clone();
        }
    }
    status.next_schedule_time = next.map(Time);
    status.observed_generation = generation;
    let finished = by_time.iter().find(|r| r.facts.state != RunState::InFlight);
    let (health, reason, message) = if let Some((reason, message)) = stall {
        (Health::Stalled, reason.to_string(), message)
    } else if !status.active.is_empty() || status.pending_snapshot.is_some() {
        let what =
            status.active.first().cloned().or_else(|| status.pending_snapshot.as_ref().map(|p| p.run_name.clone())).unwrap_or_default();
        (Health::Progressing, "RunInFlight".into(), format!("The run {what} is in flight."))
    } else {
        match finished {
            Some(run) if run.facts.state == RunState::Failed => {
                let (why, detail) = run.failure.clone().unwrap_or_else(|| ("Failed".into(), String::new()));
                (
                    Health::Stalled,
                    "LastRunFailed".into(),
                    format!(
                        "The last run {} failed ({why}): {detail} The next run starts on schedule; fix the cause before it.",
                        run.facts.name
                    ),
                )
            }
            Some(run) => (Health::Ready, "LastRunSucceeded".into(), format!("The last run {} succeeded.", run.facts.name)),
            None => (Health::Ready, "Scheduled".into(), "No run yet; see nextScheduleTime.".into()),
        }
    };
    set_health(&mut status.conditions, health, &reason, &message, generation, &Time(now));
    status
}

/// The last run, when it finished (succeeded or failed) since `old` was written: counted, and a
/// failure is a Warning, once.
pub fn just_finished<'a>(
    old: &SnapshotExportScheduleStatus,
    new: &SnapshotExportScheduleStatus,
    runs: &'a [RunView],
) -> Option<&'a RunView> {
    let last = |s: &SnapshotExportScheduleStatus| s.last_run.as_ref().map(|l| (l.name.clone(), l.phase.clone()));
    if last(old) == last(new) {
        return None;
    }
    let name = new.last_run.as_ref()?.name.as_ref()?;
    runs.iter().find(|r| &r.facts.name == name && r.facts.state != RunState::InFlight)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::{find, READY, RECONCILING, STALLED};
    use crate::api::schedule::LastRun;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn run(name: &str, day: u32, state: RunState) -> RunView {
        let scheduled = ts(&format!("2026-11-{day:02}T03:00:00Z"));
        RunView {
            facts: RunFacts { name: name.into(), scheduled, state },
            phase: Some(
                match state {
                    RunState::InFlight => "Exporting",
                    RunState::Succeeded => "Completed",
                    RunState::Failed => "Failed",
                }
                .into(),
            ),
            completed_at: (state == RunState::Succeeded).then(|| scheduled + jiff::SignedDuration::from_mins(10)),
            failure: (state == RunState::Failed).then(|| ("ExportFailed".into(), "no objects.".into())),
            source: "s".into(),
            intermediate: None,
            annotated_intermediate: None,
            serverless: false,
            exported_objects: vec![],
            requested_at: None,
        }
    }

    fn statuses(s: &SnapshotExportScheduleStatus) -> (String, String, String, String) {
        let get = |t| find(&s.conditions, t).map(|c| c.status.clone()).unwrap_or_default();
        (get(READY), get(RECONCILING), get(STALLED), find(&s.conditions, READY).unwrap().reason.clone())
    }

    #[test]
    fn conditions_follow_the_runs() {
        let now = ts("2026-11-10T00:00:00Z");
        type Case<'a> = (&'a str, Vec<RunView>, Option<(&'a str, String)>, (&'a str, &'a str, &'a str, &'a str));
        let cases: Vec<Case> = vec![
            ("no run yet", vec![], None, ("True", "False", "False", "Scheduled")),
            (
                "last succeeded",
                vec![run("a", 1, RunState::Failed), run("b", 2, RunState::Succeeded)],
                None,
                ("True", "False", "False", "LastRunSucceeded"),
            ),
            (
                "last failed",
                vec![run("a", 1, RunState::Succeeded), run("b", 2, RunState::Failed)],
                None,
                ("False", "False", "True", "LastRunFailed"),
            ),
            (
                "in flight",
                vec![run("a", 1, RunState::Succeeded), run("b", 2, RunState::InFlight)],
                None,
                ("False", "True", "False", "RunInFlight"),
            ),
            (
                "needs a person",
                vec![run("a", 1, RunState::Succeeded)],
                Some(("CacheNotFound", "x".into())),
                ("False", "False", "True", "CacheNotFound"),
            ),
        ];
        for (what, runs, stall, want) in cases {
            let s = compose(SnapshotExportScheduleStatus::default(), &runs, stall, None, Some(1), now);
            let got = statuses(&s);
            assert_eq!((got.0.as_str(), got.1.as_str(), got.2.as_str(), got.3.as_str()), want, "{what}");
        }
    }

    #[test]
    fn a_run_finishes_once() {
        let runs = vec![run("a", 1, RunState::Failed)];
        let last = |phase: Option<&str>| SnapshotExportScheduleStatus {
            last_run: Some(LastRun { name: Some("a".into()), phase: phase.map(str::to_string), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(just_finished(&last(Some("Exporting")), &last(Some("Failed")), &runs).map(|r| r.facts.name.as_str()), Some("a"));
        assert!(just_finished(&last(Some("Failed")), &last(Some("Failed")), &runs).is_none(), "not again");
        let in_flight = vec![run("a", 1, RunState::InFlight)];
        assert!(just_finished(&last(None), &last(Some("Exporting")), &in_flight).is_none());
    }

    #[test]
    fn active_last_success_and_last_run_phase() {
        let before = SnapshotExportScheduleStatus {
            last_run: Some(LastRun { name: Some("c".into()), ..Default::default() }),
            last_successful_time: Some(Time(ts("2026-10-01T00:00:00Z"))),
            ..Default::default()
        };
        let runs = vec![run("a", 1, RunState::Succeeded), run("b", 2, RunState::Succeeded), run("c", 3, RunState::InFlight)];
        let s = compose(before, &runs, None, Some(ts("2026-11-04T03:00:00Z")), Some(2), ts("2026-11-03T04:00:00Z"));
        assert_eq!(s.active, vec!["c".to_string()]);
        assert_eq!(s.last_successful_time, Some(Time(ts("2026-11-02T03:10:00Z"))));
        assert_eq!(s.last_run.as_ref().unwrap().phase.as_deref(), Some("Exporting"));
        assert_eq!(s.next_schedule_time, Some(Time(ts("2026-11-04T03:00:00Z"))));
        // The same inputs give the same status: nothing to write.
        let again = compose(s.clone(), &runs, None, Some(ts("2026-11-04T03:00:00Z")), Some(2), ts("2026-11-03T05:00:00Z"));
        assert_eq!(again, s);
    }
}
