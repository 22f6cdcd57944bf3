//! One reconcile of a `SnapshotExportSchedule`: observe (its runs, and AWS only when a run is
//! due), decide (`plan.rs`, `choose.rs`, `retention.rs`, pure), act (start a run: `runs.rs`;
//! delete old runs and intermediate snapshots: `cleanup.rs`), then write the status only if it
//! changed and requeue at the next scheduled time: between runs, no AWS call and no write.

use super::aws::{CacheRef, SharedLooks};
use super::clock::Clock;
use super::plan::{plan, Facts, Plan, RunNow};
use super::retention::RunState;
use super::status::{
    cleanup_change, compose, holds_back, just_finished, set_cleanup, timed_out, timed_out_message, Cleanup, RunView, RUN_TIMED_OUT,
};
use super::timetable::Timetable;
use super::{cleanup, runs};
use crate::api::schedule::*;
use crate::api::schedule_validation::validate_schedule;
use crate::api::SnapshotExport;
use crate::aws::{AwsError, SdkSnapshots};
use crate::events::Events;
use crate::metrics::{Metrics, ScheduleLabels, ScheduleOutcomeLabels};
use crate::safety::policy::Refusal;
use crate::safety::policy_file::PolicySource;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::{Client, Resource, ResourceExt};
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// The annotation on a CreateSnapshot-mode run naming its intermediate snapshot; removed once
/// the snapshot is deleted (or kept, with `keepIntermediateSnapshot`).
pub const INTERMEDIATE_ANNOTATION: &str = "elasticache-export.io/intermediate-snapshot";

/// Shared by every schedule reconcile.
pub struct ScheduleContext {
    pub client: Client,
    pub aws: SdkSnapshots,
    pub events: Events,
    pub metrics: Arc<Metrics>,
    pub looks: SharedLooks,
    /// The export policy, asked for a CreateSnapshot run before its snapshot is taken: the
    /// SnapshotExport gate's own (one source, so both read the same content).
    pub policy: Arc<PolicySource>,
    pub clock: Clock,
    /// The longest a reconcile waits, in real time (a safety net while runs are in flight).
    pub safety_requeue: Duration,
    /// Per schedule: the wait after a transient error, growing while they repeat (an AWS that
    /// keeps failing is asked less and less often, not every 5 s).
    pub errors: crate::backoff::Backoff,
    /// Per schedule: the cleanup after runs, once it failed, waits out a growing backoff
    /// (reconciles in between schedule as usual).
    pub cleanup: crate::backoff::RetryGate,
    /// Intermediate snapshots deleted whose run still names them (removing the annotation
    /// failed), by run UID and snapshot: the retry only removes the annotation, and never deletes
    /// by that name again. Lost on a restart, when one more DeleteSnapshot finds it gone.
    pub deleted_intermediates: std::sync::Mutex<std::collections::HashSet<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Aws(#[from] AwsError),
    /// A SnapshotExport with the run's name exists and is not this schedule's (no ownerReference
    /// with its UID): it is never taken for the run.
    #[error("a SnapshotExport named {run} exists and is not a run of this schedule ({owner})")]
    RunNameTaken { run: String, owner: String },
    /// The export policy refuses the run (CreateSnapshot mode: asked before the snapshot is taken).
    #[error("{0}")]
    ExportNotAllowed(String),
}

pub async fn reconcile(obj: Arc<SnapshotExportSchedule>, ctx: Arc<ScheduleContext>) -> Result<Action, ScheduleError> {
    let mut obj = (*obj).clone();
    if obj.metadata.deletion_timestamp.is_some() {
        // Its runs go with it (ownerReferences): nothing to do, nothing to keep for it.
        ctx.cleanup.succeeded(&obj.uid().unwrap_or_default());
        return Ok(Action::await_change());
    }
    let (name, ns) = (obj.name_any(), obj.namespace().unwrap_or_default());
    // Read it afresh: the watch cache may not show our last status write yet, and deciding on
    // a stale `lastScheduleTime` would plan the same scheduled time twice.
    let api: Api<SnapshotExportSchedule> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(fresh) = api.get_opt(&name).await? else {
        ctx.cleanup.succeeded(&obj.uid().unwrap_or_default());
        return Ok(Action::await_change());
    };
    obj = fresh;
    let uid = obj.uid().unwrap_or_default();
    let now = ctx.clock.now();
    let old = obj.status.clone().unwrap_or_default();
    let problems = validate_schedule(&name, &obj.spec);
    if !problems.is_empty() {
        let message = format!("The spec is invalid: {}. Fix the SnapshotExportSchedule; no run starts until then.", problems.join("; "));
        let timeout = obj.spec.run_timeout();
        let mut status = compose(old.clone(), &[], Some(("InvalidSpec", message.clone())), None, obj.metadata.generation, now, timeout);
        // Its runs were not looked at: what the status says of them stands.
        (status.active, status.timed_out) = (old.active.clone(), old.timed_out.clone());
        if write_status(&ctx, &mut obj, status).await? {
            warning(&ctx, &obj, "InvalidSpec", &message).await;
        }
        return Ok(Action::await_change());
    }
    let timetable = Timetable::new(&obj.spec.schedule, obj.spec.zone_name()).expect("validated above");
    let cache = CacheRef::of(&obj.spec.source).expect("validated above: exactly one cache");
    let exports: Api<SnapshotExport> = Api::namespaced(ctx.client.clone(), &ns);
    let mut runs = runs::observe_runs(&exports, &name, &uid, &ctx.clock).await?;
    runs::mark_automatic_sources(&exports, &obj, &mut runs).await?;
    let mut status = old.clone();
    let mut stall: Option<(&str, String)> = None;
    // A recorded intent that cannot be carried out now (told once, as a start that fails is),
    // and whether the export policy is what refuses it.
    let mut intent_stalled = false;
    let mut intent_refused = false;
    let mut dropped: Option<String> = None;

    // CreateSnapshot mode: a run whose snapshot was being taken when we last stopped.
    if let Some(pending) = status.pending_snapshot.clone() {
        let late = now.duration_since(pending.scheduled_time.0).as_secs();
        // The deadline is for scheduled times; a run-now value asked for a run, whenever it starts.
        let scheduled_run = pending.run_name == super::names::run_name(&name, pending.scheduled_time.0);
        let deadline = obj.spec.starting_deadline_seconds.filter(|d| scheduled_run && late > *d);
        match runs::finish_pending(&ctx, &obj, &exports, &cache, &pending, false, deadline.is_some()).await {
            Ok(runs::Finished::Started) => status.pending_snapshot = None,
            // Its snapshot was never taken and its time is long past (the policy refused it,
            // or the operator was down): no run for that time; the plan picks the next one.
            Ok(runs::Finished::Dropped) => {
                status.pending_snapshot = None;
                status.last_run = Some(LastRun {
                    name: None,
                    scheduled_time: Some(pending.scheduled_time.clone()),
                    phase: None,
                    skip_reason: Some(SkipReason::MissedDeadline),
                });
                dropped = Some(format!(
                    "The run {} was skipped: its snapshot was not taken within startingDeadlineSeconds ({}s) of {}; the next run starts on time.",
                    pending.run_name,
                    deadline.unwrap_or_default(),
                    pending.scheduled_time.0
                ));
            }
            // The intent stays: the run for that time starts once the cause is fixed.
            Err(ScheduleError::Aws(AwsError::Fault { fault, .. })) => {
                let message = format!("The run {} could not take its snapshot: {fault}. Check the source cache and the operator's IAM policy; it is tried again.", pending.run_name);
                stall = Some(("SourceUnavailable", message));
            }
            Err(err @ ScheduleError::RunNameTaken { .. }) => {
                stall = Some((
                    "RunNameTaken",
                    format!("The run {} could not start: {err}; delete or rename it, and the run starts.", pending.run_name),
                ))
            }
            Err(ScheduleError::ExportNotAllowed(message)) => {
                intent_refused = true;
                stall = Some((Refusal::REASON, format!("The run {} did not start: {message}", pending.run_name)))
            }
            Err(other) => return Err(other),
        }
        intent_stalled = stall.is_some();
        runs = runs::observe_runs(&exports, &name, &uid, &ctx.clock).await?;
    }

    // A recorded time ahead of the clock (it jumped forward and back, or the status was edited)
    // would hold every run until the clock reached it: said once, and set back to the newest
    // scheduled time one of its runs stands for (not a run-now's), so no time run already is
    // handled again; with none, the latest time due is considered as after an outage.
    let mut ahead = None;
    if let Some(recorded) = super::plan::ahead_of_clock(status.last_schedule_time.as_ref().map(|t| t.0), now) {
        let scheduled_runs = runs.iter().filter(|r| r.facts.name == super::names::run_name(&name, r.facts.scheduled));
        let back = scheduled_runs.map(|r| r.facts.scheduled).filter(|t| *t <= now).max();
        status.last_schedule_time = back.map(Time);
        let to = back.map_or("cleared (the latest scheduled time due is considered as after an outage)".to_string(), |t| {
            format!("set back to {t}, its newest run's time")
        });
        ahead = Some(format!(
            "status.lastScheduleTime {recorded} is ahead of the operator's clock ({now}) by {}s, so every run would have waited for the clock to reach it; it was {to}. A clock that jumped forward and back, or an edited status? Check the nodes' clocks (NTP) if this repeats.",
            recorded.duration_since(now).as_secs()
        ));
    }

    // A run past runTimeoutSeconds no longer holds back the next one (it is still followed).
    let timeout = obj.spec.run_timeout();
    let in_flight = {
        let timed_out = timed_out(&runs, &old.timed_out, now, timeout);
        runs.iter().any(|r| holds_back(r, &timed_out))
    } || status.pending_snapshot.is_some();
    let annotations = obj.metadata.annotations.clone().unwrap_or_default();
    let run_names: Vec<String> = runs.iter().map(|r| r.facts.name.clone()).collect();
    let facts = Facts {
        now,
        name: &name,
        created: obj.metadata.creation_timestamp.as_ref().map_or(now, |t| ctx.clock.at(t.0)),
        last_schedule_time: status.last_schedule_time.as_ref().map(|t| t.0),
        suspend: obj.spec.suspend,
        starting_deadline_seconds: obj.spec.starting_deadline_seconds,
        run_now: annotations.get(RUN_NOW_ANNOTATION).map(String::as_str),
        last_run_now: status.last_run_now.as_deref(),
        run_now_count: status.run_now_count,
        in_flight,
        runs: &run_names,
    };
    let mut decision = plan(&timetable, &facts);
    if intent_refused {
        // The policy holds up the recorded run: later times wait for it (and a run-now value is
        // acted on once it is settled) rather than be skipped as "the previous run is in
        // flight", which blames a run that never started.
        decision.plan = Plan::Idle;
    }
    let outcome = match decision.plan {
        Plan::Idle => None,
        Plan::Skip { scheduled, reason, run_now, message } => {
            record_handled(&mut status, scheduled, run_now);
            status.last_run = Some(LastRun { name: None, scheduled_time: Some(Time(scheduled)), phase: None, skip_reason: Some(reason) });
            Some((false, reason.as_str().to_string(), message))
        }
        Plan::Start { scheduled, run_name, run_now } => {
            // A run-now's time is the reconcile's: it stays out of a message stored in the
            // status, or each retry would rewrite it.
            let the_run = match &run_now {
                Some(r) => format!("The run asked for by {RUN_NOW_ANNOTATION}={:?}", r.value),
                None => format!("The run for {scheduled}"),
            };
            let asked = run_now.clone();
            let started =
                runs::start_run(&ctx, &mut obj, &exports, &cache, &timetable, &runs, &mut status, scheduled, &run_name, run_now).await;
            match started {
                Ok(outcome) => Some(outcome),
                Err(ScheduleError::Aws(AwsError::Fault { operation, fault })) => {
                    // A Warning, and Stalled: a person has to fix the template, the cache or IAM.
                    let (reason, fix) = if operation == "template" {
                        ("InvalidTemplate", "Fix template.targetSnapshotNameTemplate")
                    } else {
                        ("SourceUnavailable", "Check the source cache and the operator's IAM policy")
                    };
                    let message = format!("{the_run} could not start: {fault}. {fix}; it is tried again.");
                    stall = Some((reason, message.clone()));
                    Some((false, reason.to_string(), message))
                }
                // Its snapshot taken already (CreateSnapshot mode; the name was taken between
                // the look and the create): the intent stays, and the run starts once the name
                // is free, so that snapshot is exported.
                Err(err @ ScheduleError::RunNameTaken { .. }) if status.pending_snapshot.is_some() => {
                    let message = format!(
                        "{the_run} could not start: {err}. Delete that object, or recreate it under another name, and the run starts."
                    );
                    stall = Some(("RunNameTaken", message.clone()));
                    Some((false, "RunNameTaken".to_string(), message))
                }
                // Otherwise recorded as skipped, not retried: the next time's run has another
                // name, and a retry would hold back every later time (each is run or skipped).
                Err(err @ ScheduleError::RunNameTaken { .. }) => {
                    let again = if asked.is_some() {
                        format!("set a new {RUN_NOW_ANNOTATION} value to ask again")
                    } else {
                        "the next scheduled time runs as usual".into()
                    };
                    let message = format!("{the_run} was skipped: {err}. Delete that object, or recreate it under another name; {again}.");
                    record_handled(&mut status, scheduled, asked);
                    let skip_reason = Some(SkipReason::RunNameTaken);
                    status.last_run = Some(LastRun { name: None, scheduled_time: Some(Time(scheduled)), phase: None, skip_reason });
                    Some((false, SkipReason::RunNameTaken.as_str().to_string(), message))
                }
                // Not recorded as handled: the run starts once the policy allows it.
                Err(ScheduleError::ExportNotAllowed(why)) => {
                    let message = format!("{the_run} did not start: {why}");
                    stall = Some((Refusal::REASON, message.clone()));
                    Some((false, Refusal::REASON.to_string(), message))
                }
                Err(other) => return Err(other),
            }
        }
    };
    if outcome.is_some() {
        runs = runs::observe_runs(&exports, &name, &uid, &ctx.clock).await?;
    }
    let outcome = outcome.or_else(|| stall.clone().filter(|_| intent_stalled).map(|(r, m)| (false, r.to_string(), m)));

    // Never in the way of scheduling: a fault is reported, and the status written all the same.
    let cleanup = clean_up(&ctx, &obj, &exports, &runs, &uid).await;
    let mut status = compose(status, &runs, stall.clone(), decision.next, obj.metadata.generation, now, timeout);
    set_cleanup(&mut status.conditions, &cleanup, obj.metadata.generation, &Time(now));
    let cleanup_news = cleanup_change(&old.conditions, &status.conditions);
    let newly_timed_out: Vec<RunView> =
        runs.iter().filter(|r| status.timed_out.contains(&r.facts.name) && !old.timed_out.contains(&r.facts.name)).cloned().collect();
    let labels = ScheduleLabels { schedule_namespace: ns.clone(), schedule: name.clone() };
    if let Some(t) = &status.last_successful_time {
        ctx.metrics.schedule_last_success.get_or_create(&labels).set(t.0.as_second());
    }
    if let Some(after) = decision.next.and_then(|n| timetable.next_after(n).map(|a| a.duration_since(n).as_secs())) {
        ctx.metrics.schedule_interval.get_or_create(&labels).set(after);
    }
    let finished: Vec<RunView> = just_finished(&old, &status, &runs).into_iter().cloned().collect();
    let written = write_status(&ctx, &mut obj, status).await?;
    // Told and counted only once the status recording it is stored: a reconcile whose write
    // fails (409 from a concurrent one) says nothing, and one that finds the same stall as the
    // last (its status unchanged) says nothing again.
    if let Some((started, reason, message)) = outcome.as_ref().filter(|_| written) {
        count(&ctx, &ns, &name, reason);
        if *started {
            publish(&ctx, &obj, false, reason, message).await;
        } else {
            warning(&ctx, &obj, reason, message).await;
        }
    }
    // Told and counted once: the status records which runs were.
    for run in newly_timed_out.iter().filter(|_| written) {
        count(&ctx, &ns, &name, RUN_TIMED_OUT);
        warning(&ctx, &obj, RUN_TIMED_OUT, &timed_out_message(run, timeout)).await;
    }
    if let Some((failing, reason, message)) = cleanup_news.filter(|_| written) {
        publish(&ctx, &obj, failing, &reason, &message).await;
    }
    if let Some(message) = ahead.filter(|_| written) {
        warning(&ctx, &obj, "LastScheduleTimeInFuture", &message).await;
    }
    if let Some(message) = dropped.filter(|_| written) {
        count(&ctx, &ns, &name, SkipReason::MissedDeadline.as_str());
        warning(&ctx, &obj, SkipReason::MissedDeadline.as_str(), &message).await;
    }
    for run in finished {
        match (&run.facts.state, &run.failure) {
            (RunState::Failed, failure) => {
                count(&ctx, &ns, &name, "Failed");
                let (why, detail) = failure.clone().unwrap_or_default();
                warning(&ctx, &obj, "RunFailed", &format!("The run {} failed ({why}): {detail}", run.facts.name)).await;
            }
            _ => count(&ctx, &ns, &name, "Succeeded"),
        }
    }
    // A failed cleanup is tried again once its backoff is over (real time, as every backoff).
    let cleanup_due = ctx.cleanup.wait(&uid);
    if stall.is_some() {
        return Ok(Action::requeue(cleanup_due.map_or(ctx.safety_requeue, |d| d.min(ctx.safety_requeue))));
    }
    // Also when a run holding back the next one reaches its timeout, to report it then.
    let timing_out = runs.iter().filter_map(|r| r.times_out_at(now, timeout)).min();
    let wake = [decision.next, timing_out].into_iter().flatten().min();
    let wait = wake.map_or(ctx.safety_requeue, |at| ctx.clock.until(at)).min(ctx.safety_requeue.max(Duration::from_secs(1)));
    let wait = cleanup_due.map_or(wait, |d| d.min(wait));
    // Just after the scheduled minute, not a hair before it (the clock may run fast in tests).
    Ok(Action::requeue(wait + Duration::from_millis(50)))
}

/// The cleanup after runs (intermediate snapshots, retention), unless it failed lately and waits
/// out its backoff. Every run's is tried, past one run's fault.
async fn clean_up(
    ctx: &ScheduleContext,
    obj: &SnapshotExportSchedule,
    exports: &Api<SnapshotExport>,
    runs: &[RunView],
    uid: &str,
) -> Cleanup {
    if ctx.cleanup.wait(uid).is_some() {
        return Cleanup::NotDue;
    }
    let mut faults = cleanup::cleanup_intermediates(ctx, obj, exports, runs).await;
    faults.extend(cleanup::prune(ctx, obj, exports, runs).await);
    let Some(first) = faults.iter().find(|f| !f.transient).or(faults.first()).cloned() else {
        ctx.cleanup.succeeded(uid);
        return Cleanup::Done;
    };
    let (retry_in, streak) = ctx.cleanup.failed(uid);
    warn!(schedule = %obj.name_any(), run = %first.run, call = %first.call, error = %first.error, failed = faults.len(), ?retry_in, "the cleanup after runs failed; scheduling goes on");
    // AWS not answering once or twice is not news: told when it lasts, a refusal at once.
    if first.transient && streak < TRANSIENT_CLEANUP_FAULTS_TOLD {
        return Cleanup::NotDue;
    }
    Cleanup::Failed(first)
}

/// Failed cleanups in a row, each only for want of an answer from AWS, before it is reported.
const TRANSIENT_CLEANUP_FAULTS_TOLD: u32 = 3;

pub(super) fn record_handled(status: &mut SnapshotExportScheduleStatus, scheduled: Timestamp, run_now: Option<RunNow>) {
    match run_now {
        Some(RunNow { value, seq }) => {
            status.last_run_now = Some(value);
            status.run_now_count = seq;
        }
        None => status.last_schedule_time = Some(Time(scheduled)),
    }
}

fn count(ctx: &ScheduleContext, ns: &str, name: &str, outcome: &str) {
    let outcome = if outcome == "RunStarted" { "Started" } else { outcome };
    let labels = ScheduleOutcomeLabels { schedule_namespace: ns.into(), schedule: name.into(), outcome: outcome.into() };
    ctx.metrics.schedule_runs.get_or_create(&labels).inc();
}

/// Replace the status when it changed (guarded by the resourceVersion, so a second leader's
/// stale write fails); `obj` becomes what the API server stored. True when written.
pub(super) async fn write_status(
    ctx: &ScheduleContext,
    obj: &mut SnapshotExportSchedule,
    status: SnapshotExportScheduleStatus,
) -> Result<bool, ScheduleError> {
    if obj.status.as_ref() == Some(&status) || (obj.status.is_none() && status == SnapshotExportScheduleStatus::default()) {
        return Ok(false);
    }
    let api: Api<SnapshotExportSchedule> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let mut desired = obj.clone();
    desired.status = Some(status);
    desired.metadata.managed_fields = None;
    match api.replace_status(&obj.name_any(), &PostParams::default(), &desired).await {
        Ok(written) => *obj = written,
        // A CRD installed before the RunNameTaken skip reason existed (Helm never upgrades its
        // `crds/`): the skip is recorded without its reason rather than not at all.
        Err(kube::Error::Api(e)) if e.code == 422 && e.message.contains("skipReason") => {
            warn!(schedule = %obj.name_any(), error = %e.message, "the installed SnapshotExportSchedule CRD is older than this operator: apply the CRD of this version (see the chart's README); the skip is recorded without its reason");
            if let Some(last) = desired.status.as_mut().and_then(|s| s.last_run.as_mut()) {
                last.skip_reason = None;
            }
            *obj = api.replace_status(&obj.name_any(), &PostParams::default(), &desired).await?;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(true)
}

pub(super) async fn warning(ctx: &ScheduleContext, obj: &SnapshotExportSchedule, reason: &str, note: &str) {
    publish(ctx, obj, true, reason, note).await;
}

pub(super) async fn publish(ctx: &ScheduleContext, obj: &SnapshotExportSchedule, warning: bool, reason: &str, note: &str) {
    if warning {
        warn!(schedule = %obj.name_any(), %reason, "{note}");
    }
    ctx.events.publish_event(&obj.object_ref(&()), warning, reason, "Schedule", note).await;
}
