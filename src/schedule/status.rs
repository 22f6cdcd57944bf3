//! The schedule's status from what was observed: runs in flight, the last success, the last
//! run's phase, and the kstatus conditions. Pure; the reconciler writes it only when it changed.

use super::cleanup::CleanupFault;
use super::retention::{RunFacts, RunState};
use crate::api::conditions::{find, set_condition, set_health, Health};
use crate::api::schedule::{SkipReason, SnapshotExportScheduleStatus};
use crate::api::ExportedObject;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The condition saying the cleanup after runs (intermediate snapshots, retention) is failing.
pub const CLEANUP_FAILING: &str = "CleanupFailing";

/// What this reconcile's cleanup after runs came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cleanup {
    /// Nothing new to say: not tried (it failed lately and waits out its backoff), or failed
    /// only for want of an answer from AWS, not yet for long.
    NotDue,
    Done,
    /// The first fault (the others are logged).
    Failed(CleanupFault),
}

/// `CleanupFailing`: True while the cleanup fails, naming the call and what it needs; False once
/// it succeeds again; absent while it never failed. Untouched while a retry is not due.
pub fn set_cleanup(conditions: &mut Vec<Condition>, cleanup: &Cleanup, generation: Option<i64>, now: &Time) {
    match cleanup {
        Cleanup::NotDue => {}
        Cleanup::Failed(fault) => set_condition(conditions, CLEANUP_FAILING, "True", &fault.reason(), &fault.message(), generation, now),
        Cleanup::Done => {
            if find(conditions, CLEANUP_FAILING).is_some_and(|c| c.status == "True") {
                let message = "The cleanup after runs succeeded.";
                set_condition(conditions, CLEANUP_FAILING, "False", "CleanedUp", message, generation, now);
            }
        }
    }
}

/// What to tell when `CleanupFailing` changed between the stored status and the new one:
/// (warning, reason, message) when it starts failing or fails another way, and when it heals.
pub fn cleanup_change(old: &[Condition], new: &[Condition]) -> Option<(bool, String, String)> {
    let (was, now) = (find(old, CLEANUP_FAILING), find(new, CLEANUP_FAILING)?);
    let was_failing = was.filter(|c| c.status == "True");
    match (was_failing, now.status.as_str()) {
        (Some(w), "True") if w.message == now.message => None,
        (_, "True") => Some((true, "CleanupFailed".into(), now.message.clone())),
        (Some(_), _) => Some((false, "CleanedUp".into(), "The cleanup after runs that failed before has succeeded.".into())),
        (None, _) => None,
    }
}

/// The reason a run past `runTimeoutSeconds` is reported with.
pub const RUN_TIMED_OUT: &str = "RunTimedOut";

/// One run as the schedule sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunView {
    pub facts: RunFacts,
    /// The run object's UID: every write to it by name carries it as a precondition, so another
    /// object that took the name meanwhile (the run deleted by hand, say) is never changed.
    pub uid: String,
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
    /// The run is marked as exporting an automatic backup (`AUTOMATIC_SOURCE_ANNOTATION`).
    pub automatic_source: bool,
    /// The objects its export wrote, with the ETag, size and write time each had when it
    /// completed (empty for a run completed before operators recorded them).
    pub exported_objects: Vec<ExportedObject>,
    /// The objects its export wrote, as `s3://bucket/key`.
    pub exported_urls: Vec<String>,
    /// Being deleted (retention deleted it; a finalizer holds it).
    pub deleting: bool,
    /// AWS accepted the run's request. A run stalled before that is retried and may still
    /// export: it holds back later runs however long it takes (they would stall the same way).
    pub accepted: bool,
    /// When the run object was created, on the schedule's clock (its scheduled time when
    /// unknown): its timeout counts from here, which nobody can edit.
    pub created: Timestamp,
    /// The snapshot AWS is working on for the run (an export's source; a copy's target, or its
    /// source until the target shows) and its status when the run last saw it.
    pub last_seen: Option<(String, String)>,
}

impl RunView {
    /// AWS accepted it and it has been in flight for longer than `timeout` since it was created.
    pub fn is_past(&self, now: Timestamp, timeout: SignedDuration) -> bool {
        self.facts.state == RunState::InFlight && self.accepted && now.duration_since(self.created) > timeout
    }

    /// When it will be past `timeout`, if it can be (accepted, in flight, not past it yet).
    pub fn times_out_at(&self, now: Timestamp, timeout: SignedDuration) -> Option<Timestamp> {
        let accepted_in_flight = self.facts.state == RunState::InFlight && self.accepted;
        self.created.checked_add(timeout).ok().filter(|at| accepted_in_flight && *at >= now)
    }
}

/// The runs in flight past `runTimeoutSeconds`: those the status recorded so (`recorded`: each
/// is reported once, and a raised timeout does not make it hold back again) and those past it now.
pub fn timed_out<'a>(runs: &'a [RunView], recorded: &[String], now: Timestamp, timeout: SignedDuration) -> Vec<&'a RunView> {
    runs.iter().filter(|r| r.facts.state == RunState::InFlight && (recorded.contains(&r.facts.name) || r.is_past(now, timeout))).collect()
}

/// Whether a run in flight holds back the next scheduled time: every run in flight that has not
/// timed out (see [`timed_out`]).
pub fn holds_back(run: &RunView, timed_out: &[&RunView]) -> bool {
    run.facts.state == RunState::InFlight && !timed_out.iter().any(|t| t.facts.name == run.facts.name)
}

/// What a run past `runTimeoutSeconds` is reported with (the schedule's condition and Event).
pub fn timed_out_message(run: &RunView, timeout: SignedDuration) -> String {
    let name = &run.facts.name;
    let seen = match &run.last_seen {
        Some((snapshot, status)) => format!(
            "ElastiCache last showed its snapshot {snapshot} as {status} (aws elasticache describe-snapshots --snapshot-name {snapshot})"
        ),
        None => "ElastiCache has shown nothing of it yet".to_string(),
    };
    format!(
        "The run {name} has been in flight for more than runTimeoutSeconds ({}s) since it was created at {}: {seen}. It no longer holds back later runs; the operator still follows it to its end and never repeats its request. Delete the run to stop following it.",
        timeout.as_secs(),
        run.created
    )
}

/// Fold the runs into `status`. `stall` is a cause that needs a person (invalid spec, cache not
/// found, a refused CreateSnapshot); `next` the next scheduled time.
/// `timeout`: `runTimeoutSeconds`, past which a run in flight is `timedOut`.
pub fn compose(
    mut status: SnapshotExportScheduleStatus,
    runs: &[RunView],
    stall: Option<(&str, String)>,
    next: Option<Timestamp>,
    generation: Option<i64>,
    now: Timestamp,
    timeout: SignedDuration,
) -> SnapshotExportScheduleStatus {
    let mut by_time: Vec<&RunView> = runs.iter().collect();
    by_time.sort_by(|a, b| b.facts.scheduled.cmp(&a.facts.scheduled).then_with(|| b.facts.name.cmp(&a.facts.name)));
    let timed_out = timed_out(runs, &status.timed_out, now, timeout);
    let is_timed_out = |r: &RunView| timed_out.iter().any(|t| t.facts.name == r.facts.name);
    status.active = by_time.iter().rev().filter(|r| r.facts.state == RunState::InFlight).map(|r| r.facts.name.clone()).collect();
    status.timed_out = by_time.iter().rev().filter(|r| is_timed_out(r)).map(|r| r.facts.name.clone()).collect();
    let holding_back = by_time.iter().rev().find(|r| holds_back(r, &timed_out)).map(|r| r.facts.name.clone());
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
    let finished = by_time.iter().position(|r| r.facts.state != RunState::InFlight);
    // A timed-out run is the news only while no run after it has finished.
    let newest_timed_out = by_time.iter().position(|r| is_timed_out(r)).filter(|t| finished.is_none_or(|f| *t < f));
    let finished = finished.map(|f| by_time[f]);
    let still_out = if status.timed_out.is_empty() {
        String::new()
    } else {
        format!(" Still in flight past runTimeoutSeconds: {}.", status.timed_out.join(", "))
    };
    let name_taken = status.last_run.as_ref().filter(|l| l.skip_reason == Some(SkipReason::RunNameTaken));
    let (health, reason, message) = if let Some((reason, message)) = stall {
        (Health::Stalled, reason.to_string(), message)
    } else if holding_back.is_some() || status.pending_snapshot.is_some() {
        let what = holding_back.or_else(|| status.pending_snapshot.as_ref().map(|p| p.run_name.clone())).unwrap_or_default();
        (Health::Progressing, "RunInFlight".into(), format!("The run {what} is in flight."))
    } else if let Some(run) = newest_timed_out.map(|t| by_time[t]) {
        // Needs a person: ElastiCache has not ended the run in all that time.
        (Health::Stalled, RUN_TIMED_OUT.into(), timed_out_message(run, timeout))
    } else if let Some(skipped) = name_taken {
        // Until a run starts again: a person has to move the object that holds the name.
        let when = skipped.scheduled_time.as_ref().map(|t| t.0.to_string()).unwrap_or_default();
        let message = format!("The last run ({when}) was skipped: a SnapshotExport that is not a run of this schedule holds its name (the RunNameTaken Event names it). Delete that object, or recreate it under another name.{still_out}");
        (Health::Stalled, SkipReason::RunNameTaken.as_str().to_string(), message)
    } else {
        match finished {
            Some(run) if run.facts.state == RunState::Failed => {
                let (why, detail) = run.failure.clone().unwrap_or_else(|| ("Failed".into(), String::new()));
                (
                    Health::Stalled,
                    "LastRunFailed".into(),
                    format!(
                        "The last run {} failed ({why}): {detail} The next run starts on schedule; fix the cause before it.{still_out}",
                        run.facts.name
                    ),
                )
            }
            Some(run) => (Health::Ready, "LastRunSucceeded".into(), format!("The last run {} succeeded.{still_out}", run.facts.name)),
            None => (Health::Ready, "Scheduled".into(), "No run yet; see nextScheduleTime.".into()),
        }
    };
    set_health(&mut status.conditions, health, &reason, &message, generation, &Time(now));
    status
}

/// The runs that finished (succeeded or failed) since `old` was written: counted, and a failure
/// is a Warning, once each. A run `old` listed as active that is no longer in flight (a timed-out
/// run ending after newer ones started), and the last run when its phase changed (it may have
/// finished before it was ever recorded as active).
pub fn just_finished<'a>(old: &SnapshotExportScheduleStatus, new: &SnapshotExportScheduleStatus, runs: &'a [RunView]) -> Vec<&'a RunView> {
    let over = |r: &&RunView| r.facts.state != RunState::InFlight;
    let mut done: Vec<&RunView> = runs.iter().filter(over).filter(|r| old.active.contains(&r.facts.name)).collect();
    let last = |s: &SnapshotExportScheduleStatus| s.last_run.as_ref().map(|l| (l.name.clone(), l.phase.clone()));
    let last_name = new.last_run.as_ref().and_then(|l| l.name.as_ref()).filter(|_| last(old) != last(new));
    if let Some(last) = runs.iter().filter(over).find(|r| Some(&r.facts.name) == last_name) {
        if !done.iter().any(|r| r.facts.name == last.facts.name) {
            done.push(last);
        }
    }
    done
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
            uid: format!("uid-{name}"),
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
            automatic_source: true,
            exported_objects: vec![],
            exported_urls: vec![],
            deleting: false,
            accepted: true,
            created: scheduled,
            last_seen: (state == RunState::InFlight).then(|| ("s".to_string(), "exporting".to_string())),
        }
    }

    /// Longer than any test's runs have been in flight, unless a test says otherwise.
    const LONG: SignedDuration = SignedDuration::from_hours(24 * 365);

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
            let s = compose(SnapshotExportScheduleStatus::default(), &runs, stall, None, Some(1), now, LONG);
            let got = statuses(&s);
            assert_eq!((got.0.as_str(), got.1.as_str(), got.2.as_str(), got.3.as_str()), want, "{what}");
        }
    }

    #[test]
    fn a_time_skipped_for_a_taken_run_name_stalls_the_schedule_until_a_run_starts_again() {
        let now = ts("2026-11-03T04:00:00Z");
        let runs = vec![run("a", 1, RunState::Succeeded)];
        let skipped = SnapshotExportScheduleStatus {
            last_run: Some(LastRun {
                scheduled_time: Some(Time(ts("2026-11-03T03:00:00Z"))),
                skip_reason: Some(SkipReason::RunNameTaken),
                ..Default::default()
            }),
            ..Default::default()
        };
        let s = compose(skipped, &runs, None, None, Some(1), now, LONG);
        let stalled = find(&s.conditions, STALLED).unwrap();
        assert_eq!((stalled.status.as_str(), stalled.reason.as_str()), ("True", "RunNameTaken"));
        assert!(stalled.message.contains("2026-11-03T03:00:00Z") && stalled.message.contains("Delete that object"), "{}", stalled.message);
        // A run in flight is the news while it is.
        let busy = [run("a", 1, RunState::Succeeded), run("b", 2, RunState::InFlight)];
        assert_eq!(statuses(&compose(s.clone(), &busy, None, None, Some(1), now, LONG)).3, "RunInFlight");
        // The next time ran: the news is that run.
        let mut ran = s.clone();
        ran.last_run = Some(LastRun { name: Some("a".into()), ..Default::default() });
        let s = compose(ran, &runs, None, None, Some(1), now, LONG);
        assert_eq!(statuses(&s).3, "LastRunSucceeded");
    }

    #[test]
    fn a_run_past_the_timeout_stops_holding_back_and_stalls_the_schedule_until_a_newer_run_ends() {
        let four_hours = SignedDuration::from_hours(4);
        let stuck = run("stuck", 1, RunState::InFlight);
        // Created 2026-11-01T03:00Z: exactly four hours later it is not past the timeout yet.
        assert!(!stuck.is_past(ts("2026-11-01T07:00:00Z"), four_hours));
        assert_eq!(stuck.times_out_at(ts("2026-11-01T05:00:00Z"), four_hours), Some(ts("2026-11-01T07:00:00Z")));
        assert!(stuck.is_past(ts("2026-11-01T07:00:01Z"), four_hours));
        assert_eq!(stuck.times_out_at(ts("2026-11-01T07:00:01Z"), four_hours), None);
        assert!(!run("done", 1, RunState::Succeeded).is_past(ts("2026-11-09T00:00:00Z"), four_hours), "only runs in flight");
        // Stalled before AWS accepted it: retried, and it holds back however long it takes.
        let unaccepted = RunView { accepted: false, ..stuck.clone() };
        assert!(!unaccepted.is_past(ts("2026-11-09T00:00:00Z"), four_hours));
        assert_eq!(unaccepted.times_out_at(ts("2026-11-01T05:00:00Z"), four_hours), None);
        // Created late (the operator was down): the timeout counts from its creation.
        let late = RunView { created: ts("2026-11-01T09:00:00Z"), ..stuck.clone() };
        assert!(!late.is_past(ts("2026-11-01T12:00:00Z"), four_hours));
        // Recorded as timed out: it stays so while in flight, whatever the timeout is now.
        let recorded = vec!["stuck".to_string()];
        assert_eq!(timed_out(std::slice::from_ref(&stuck), &recorded, ts("2026-11-01T04:00:00Z"), four_hours).len(), 1);
        assert!(timed_out(&[run("stuck", 1, RunState::Failed)], &recorded, ts("2026-11-01T04:00:00Z"), four_hours).is_empty());

        let now = ts("2026-11-02T03:30:00Z");
        let alone = compose(SnapshotExportScheduleStatus::default(), std::slice::from_ref(&stuck), None, None, Some(1), now, four_hours);
        assert_eq!((alone.active.clone(), alone.timed_out.clone()), (vec!["stuck".to_string()], vec!["stuck".to_string()]));
        let stalled = find(&alone.conditions, STALLED).unwrap();
        assert_eq!((stalled.status.as_str(), stalled.reason.as_str()), ("True", RUN_TIMED_OUT));
        assert!(
            stalled.message.starts_with("The run stuck has been in flight for more than runTimeoutSeconds (14400s) since it was created at 2026-11-01T03:00:00Z: ElastiCache last showed its snapshot s as exporting"),
            "{}",
            stalled.message
        );
        // The next night's run is in flight beside it: that one is what the schedule is doing.
        let runs = vec![stuck.clone(), run("next", 2, RunState::InFlight)];
        let both = compose(SnapshotExportScheduleStatus::default(), &runs, None, None, Some(1), now, four_hours);
        assert_eq!(both.timed_out, vec!["stuck".to_string()]);
        let got = statuses(&both);
        assert_eq!((got.1.as_str(), got.3.as_str()), ("True", "RunInFlight"));
        assert!(find(&both.conditions, RECONCILING).unwrap().message.contains("next"));
        // The next run succeeded: Ready, saying which run is still out.
        let runs = vec![stuck.clone(), run("next", 2, RunState::Succeeded)];
        let later = compose(both.clone(), &runs, None, None, Some(1), ts("2026-11-03T00:00:00Z"), four_hours);
        let ready = find(&later.conditions, READY).unwrap();
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "LastRunSucceeded"));
        assert!(ready.message.ends_with("Still in flight past runTimeoutSeconds: stuck."), "{}", ready.message);
        // Once ElastiCache ends it, it is no longer listed, and its end is told.
        let ended = vec![run("stuck", 1, RunState::Failed), run("next", 2, RunState::Succeeded)];
        let after = compose(later.clone(), &ended, None, None, Some(1), now, four_hours);
        assert!(after.timed_out.is_empty() && after.active.is_empty());
        let told: Vec<&str> = just_finished(&later, &after, &ended).iter().map(|r| r.facts.name.as_str()).collect();
        assert_eq!(told, ["stuck"]);
        assert!(just_finished(&after, &after, &ended).is_empty(), "once");
    }

    #[test]
    fn a_run_finishes_once() {
        let runs = vec![run("a", 1, RunState::Failed)];
        let last = |phase: Option<&str>| SnapshotExportScheduleStatus {
            last_run: Some(LastRun { name: Some("a".into()), phase: phase.map(str::to_string), ..Default::default() }),
            ..Default::default()
        };
        let names = |v: Vec<&RunView>| v.iter().map(|r| r.facts.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(just_finished(&last(Some("Exporting")), &last(Some("Failed")), &runs)), ["a"]);
        assert!(just_finished(&last(Some("Failed")), &last(Some("Failed")), &runs).is_empty(), "not again");
        let in_flight = vec![run("a", 1, RunState::InFlight)];
        assert!(just_finished(&last(None), &last(Some("Exporting")), &in_flight).is_empty());
        // Listed as active and finished: told once, also when the last run names another.
        let active = SnapshotExportScheduleStatus { active: vec!["a".into()], ..last(Some("Exporting")) };
        assert_eq!(names(just_finished(&active, &last(Some("Failed")), &runs)), ["a"], "not twice");
    }

    #[test]
    fn active_last_success_and_last_run_phase() {
        let before = SnapshotExportScheduleStatus {
            last_run: Some(LastRun { name: Some("c".into()), ..Default::default() }),
            last_successful_time: Some(Time(ts("2026-10-01T00:00:00Z"))),
            ..Default::default()
        };
        let runs = vec![run("a", 1, RunState::Succeeded), run("b", 2, RunState::Succeeded), run("c", 3, RunState::InFlight)];
        let s = compose(before, &runs, None, Some(ts("2026-11-04T03:00:00Z")), Some(2), ts("2026-11-03T04:00:00Z"), LONG);
        assert_eq!(s.active, vec!["c".to_string()]);
        assert_eq!(s.last_successful_time, Some(Time(ts("2026-11-02T03:10:00Z"))));
        assert_eq!(s.last_run.as_ref().unwrap().phase.as_deref(), Some("Exporting"));
        assert_eq!(s.next_schedule_time, Some(Time(ts("2026-11-04T03:00:00Z"))));
        // The same inputs give the same status: nothing to write.
        let again = compose(s.clone(), &runs, None, Some(ts("2026-11-04T03:00:00Z")), Some(2), ts("2026-11-03T05:00:00Z"), LONG);
        assert_eq!(again, s);
    }

    #[test]
    fn a_failing_cleanup_names_its_call_and_permission_and_clears_once_it_succeeds() {
        let fault = |call: &str| CleanupFault {
            run: "r-1".into(),
            doing: "doing it".into(),
            call: call.into(),
            error: "denied".into(),
            transient: false,
        };
        let cases = [
            (
                "DeleteSnapshot",
                "DeleteSnapshotFailed",
                "the IAM action elasticache:DeleteSnapshot on snapshots tagged elasticache-export.io/schedule-uid",
            ),
            ("DeleteServerlessCacheSnapshot", "DeleteServerlessCacheSnapshotFailed", "elasticache:DeleteServerlessCacheSnapshot"),
            ("HeadObject", "HeadObjectFailed", "s3:GetObject on the exported objects, and s3:ListBucket"),
            ("DeleteObject", "DeleteObjectFailed", "s3:DeleteObject"),
            ("delete", "DeleteFailed", "RBAC verb delete on snapshotexports.elasticache-export.io"),
            ("patch", "PatchFailed", "RBAC verb patch"),
        ];
        for (call, reason, needs) in cases {
            assert_eq!(fault(call).reason(), reason);
            let message = fault(call).message();
            assert!(message.contains(needs) && message.contains("r-1") && message.contains("denied"), "{message}");
            assert!(message.contains("Scheduling goes on"), "{message}");
        }
        // AWS not answering is not a permission to grant.
        let unanswered = CleanupFault { transient: true, ..fault("HeadObject") }.message();
        assert!(unanswered.contains("AWS keeps failing to answer HeadObject") && !unanswered.contains("s3:GetObject"), "{unanswered}");

        let at = |s: &str| Time(ts(s));
        let mut conditions = Vec::new();
        set_cleanup(&mut conditions, &Cleanup::Done, Some(1), &at("2026-11-01T00:00:00Z"));
        assert!(conditions.is_empty(), "never failed: no condition");
        set_cleanup(&mut conditions, &Cleanup::Failed(fault("DeleteSnapshot")), Some(1), &at("2026-11-01T01:00:00Z"));
        let failing = find(&conditions, CLEANUP_FAILING).unwrap().clone();
        assert_eq!((failing.status.as_str(), failing.reason.as_str()), ("True", "DeleteSnapshotFailed"));
        set_cleanup(&mut conditions, &Cleanup::NotDue, Some(1), &at("2026-11-01T02:00:00Z"));
        assert_eq!(find(&conditions, CLEANUP_FAILING), Some(&failing), "waiting out its backoff: as it was");
        set_cleanup(&mut conditions, &Cleanup::Failed(fault("DeleteSnapshot")), Some(1), &at("2026-11-01T03:00:00Z"));
        assert_eq!(find(&conditions, CLEANUP_FAILING), Some(&failing), "the same fault again: unchanged (no status write)");
        set_cleanup(&mut conditions, &Cleanup::Done, Some(1), &at("2026-11-01T04:00:00Z"));
        let healed = find(&conditions, CLEANUP_FAILING).unwrap();
        assert_eq!((healed.status.as_str(), healed.reason.as_str()), ("False", "CleanedUp"));
        assert_eq!(healed.last_transition_time, at("2026-11-01T04:00:00Z"));

        // Told once when it starts failing (or fails another way), once when it heals.
        let failing_with = |call: &str| {
            let mut c = Vec::new();
            set_cleanup(&mut c, &Cleanup::Failed(fault(call)), Some(1), &at("2026-11-01T05:00:00Z"));
            c
        };
        let news = |old: &[Condition], new: &[Condition]| cleanup_change(old, new).map(|(w, r, _)| (w, r));
        assert_eq!(news(&[], &failing_with("DeleteSnapshot")), Some((true, "CleanupFailed".into())));
        assert_eq!(news(&failing_with("DeleteSnapshot"), &failing_with("DeleteSnapshot")), None);
        assert_eq!(news(&failing_with("DeleteSnapshot"), &failing_with("HeadObject")), Some((true, "CleanupFailed".into())));
        assert_eq!(news(&failing_with("DeleteSnapshot"), &conditions), Some((false, "CleanedUp".into())));
        assert_eq!(news(&conditions, &conditions), None);
        assert_eq!(news(&[], &[]), None);
    }
}
