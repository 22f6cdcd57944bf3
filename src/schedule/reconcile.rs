//! One reconcile of a `SnapshotExportSchedule`: observe (its runs, and AWS only when a run is
//! due), decide (`plan.rs`, `choose.rs`, `retention.rs`, pure), act (create the run, delete old
//! runs and intermediate snapshots), then write the status only if it changed and requeue at the
//! next scheduled time: between runs, no AWS call and no write.

use super::aws::{self as sched_aws, CacheRef, SharedLooks};
use super::choose::{choose, Choice};
use super::clock::Clock;
use super::names;
use super::plan::{plan, Facts, Plan};
use super::retention::{objects_to_prune, runs_to_delete, RunFacts, RunState, SeenObject};
use super::status::{compose, RunView};
use super::timetable::Timetable;
use crate::api::conditions::{find, STALLED};
use crate::api::schedule::*;
use crate::api::schedule_validation::validate_schedule;
use crate::api::{Phase, SnapshotExport, SnapshotExportSpec};
use crate::aws::{AwsError, SdkSnapshots, SnapshotApi};
use crate::events::Events;
use crate::metrics::{Metrics, ScheduleLabels, ScheduleOutcomeLabels};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Client, Resource, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

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
    pub clock: Clock,
    /// The longest a reconcile waits, in real time (a safety net while runs are in flight).
    pub safety_requeue: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Aws(#[from] AwsError),
}

pub async fn reconcile(obj: Arc<SnapshotExportSchedule>, ctx: Arc<ScheduleContext>) -> Result<Action, ScheduleError> {
    let mut obj = (*obj).clone();
    if obj.metadata.deletion_timestamp.is_some() {
        // Its runs go with it (ownerReferences): nothing to do.
        return Ok(Action::await_change());
    }
    let (name, ns, uid) = (obj.name_any(), obj.namespace().unwrap_or_default(), obj.uid().unwrap_or_default());
    let now = ctx.clock.now();
    let old = obj.status.clone().unwrap_or_default();
    let problems = validate_schedule(&name, &obj.spec);
    if !problems.is_empty() {
        let message = format!("The spec is invalid: {}. Fix the SnapshotExportSchedule; no run starts until then.", problems.join("; "));
        let status = compose(old.clone(), &[], Some(("InvalidSpec", message.clone())), None, obj.metadata.generation, now);
        if write_status(&ctx, &mut obj, status).await? {
            warning(&ctx, &obj, "InvalidSpec", &message).await;
        }
        return Ok(Action::await_change());
    }
    let timetable = Timetable::new(&obj.spec.schedule, obj.spec.zone_name()).expect("validated above");
    let cache = match (&obj.spec.source.replication_group_id, &obj.spec.source.cache_cluster_id) {
        (Some(rg), _) => CacheRef::ReplicationGroup(rg.clone()),
        (None, Some(cc)) => CacheRef::CacheCluster(cc.clone()),
        (None, None) => unreachable!("validated above"),
    };
    let exports: Api<SnapshotExport> = Api::namespaced(ctx.client.clone(), &ns);
    let mut runs = observe_runs(&exports, &name, &uid).await?;
    let mut status = old.clone();
    let mut stall: Option<(&str, String)> = None;

    // CreateSnapshot mode: a run whose snapshot was being taken when we last stopped.
    if let Some(pending) = status.pending_snapshot.clone() {
        match finish_pending(&ctx, &obj, &exports, &cache, &pending).await {
            Ok(()) => status.pending_snapshot = None,
            Err(ScheduleError::Aws(AwsError::Fault { fault, .. })) => stall = Some(("CreateSnapshotRefused", fault.to_string())),
            Err(other) => return Err(other),
        }
        runs = observe_runs(&exports, &name, &uid).await?;
    }

    let in_flight = runs.iter().any(|r| r.facts.state == RunState::InFlight) || status.pending_snapshot.is_some();
    let annotations = obj.metadata.annotations.clone().unwrap_or_default();
    let facts = Facts {
        now,
        name: &name,
        created: obj.metadata.creation_timestamp.as_ref().map_or(now, |t| ctx.clock.at(t.0)),
        last_schedule_time: status.last_schedule_time.as_ref().map(|t| t.0),
        suspend: obj.spec.suspend,
        starting_deadline_seconds: obj.spec.starting_deadline_seconds,
        run_now: annotations.get(RUN_NOW_ANNOTATION).map(String::as_str),
        last_run_now: status.last_run_now.as_deref(),
        in_flight,
    };
    let decision = plan(&timetable, &facts);
    let outcome = match decision.plan {
        Plan::Idle => None,
        Plan::Skip { scheduled, reason, run_now, message } => {
            record_handled(&mut status, scheduled, run_now);
            status.last_run = Some(LastRun { name: None, scheduled_time: Some(Time(scheduled)), phase: None, skip_reason: Some(reason) });
            Some((false, reason.as_str().to_string(), message))
        }
        Plan::Start { scheduled, run_name, run_now } => {
            let started = start_run(&ctx, &mut obj, &exports, &cache, &timetable, &runs, &mut status, scheduled, &run_name, run_now).await;
            match started {
                Ok(outcome) => Some(outcome),
                Err(ScheduleError::Aws(AwsError::Fault { fault, .. })) => {
                    let message = format!("The run for {scheduled} could not start: {fault}. Check the source cache and the operator's IAM policy; it is tried again.");
                    stall = Some(("SourceUnavailable", message.clone()));
                    Some((true, "SourceUnavailable".into(), message))
                }
                Err(other) => return Err(other),
            }
        }
    };
    if let Some((started, reason, message)) = &outcome {
        count(&ctx, &ns, &name, reason);
        if *started {
            publish(&ctx, &obj, false, reason, message).await;
        } else {
            warning(&ctx, &obj, reason, message).await;
        }
        runs = observe_runs(&exports, &name, &uid).await?;
    }

    cleanup_intermediates(&ctx, &obj, &exports, &runs).await?;
    prune(&ctx, &obj, &exports, &runs).await?;
    let status = compose(status, &runs, stall.clone(), decision.next, obj.metadata.generation, now);
    let labels = ScheduleLabels { schedule_namespace: ns.clone(), schedule: name.clone() };
    if let Some(t) = &status.last_successful_time {
        ctx.metrics.schedule_last_success.get_or_create(&labels).set(t.0.as_second());
    }
    if let Some(after) = decision.next.and_then(|n| timetable.next_after(n).map(|a| a.duration_since(n).as_secs())) {
        ctx.metrics.schedule_interval.get_or_create(&labels).set(after);
    }
    count_finished(&ctx, &ns, &name, &old, &status, &runs);
    write_status(&ctx, &mut obj, status).await?;
    if stall.is_some() {
        return Ok(Action::requeue(ctx.safety_requeue));
    }
    let wait = decision.next.map_or(ctx.safety_requeue, |next| ctx.clock.until(next)).min(ctx.safety_requeue.max(Duration::from_secs(1)));
    // Just after the scheduled minute, not a hair before it (the clock may run fast in tests).
    Ok(Action::requeue(wait + Duration::from_millis(50)))
}

fn record_handled(status: &mut SnapshotExportScheduleStatus, scheduled: Timestamp, run_now: Option<String>) {
    match run_now {
        Some(value) => status.last_run_now = Some(value),
        None => status.last_schedule_time = Some(Time(scheduled)),
    }
}

/// Create the run for `scheduled`: find or take its snapshot, then its SnapshotExport.
/// Returns `(started, reason, message)` for the Event.
#[allow(clippy::too_many_arguments)]
async fn start_run(
    ctx: &ScheduleContext,
    obj: &mut SnapshotExportSchedule,
    exports: &Api<SnapshotExport>,
    cache: &CacheRef,
    timetable: &Timetable,
    runs: &[RunView],
    status: &mut SnapshotExportScheduleStatus,
    scheduled: Timestamp,
    run_name: &str,
    run_now: Option<String>,
) -> Result<(bool, String, String), ScheduleError> {
    let name = obj.name_any();
    let template = obj.spec.template.target_snapshot_name_template.as_deref();
    let target = names::run_target_name(template, &name, cache.id(), scheduled, timetable.zone(), run_now.as_deref())
        .map_err(|e| AwsError::Fault { operation: "template", fault: crate::aws::CopyFault::InvalidParameterValue { message: e } })?;
    match obj.spec.source.mode {
        SourceMode::LatestAutomatic => {
            let snaps = ctx.looks.automatic_snapshots(&ctx.aws, cache, scheduled).await?;
            let exported: Vec<&str> = runs.iter().map(|r| r.source.as_str()).collect();
            let last = status.source.as_ref().and_then(|s| s.snapshot_create_time.as_ref()).map(|t| t.0);
            match choose(&snaps, last, &exported) {
                Choice::NoNewSnapshot { newest } => {
                    record_handled(status, scheduled, run_now);
                    status.last_run = Some(LastRun {
                        name: None,
                        scheduled_time: Some(Time(scheduled)),
                        phase: None,
                        skip_reason: Some(SkipReason::NoNewSnapshot),
                    });
                    let newest = newest.map_or("there is none".to_string(), |n| format!("the newest is {n}, exported already"));
                    let message = format!("The run for {scheduled} was skipped: no available automatic backup of {} is newer than the last export ({newest}). Check the cache's backup window and retention.", cache.id());
                    Ok((false, "NoNewSnapshot".into(), message))
                }
                Choice::Export(snap) => {
                    create_run(exports, obj, run_name, scheduled, &snap.name, &target, None).await?;
                    status.source = Some(ResolvedSource {
                        cache_id: cache.id().into(),
                        snapshot_name: Some(snap.name.clone()),
                        snapshot_create_time: snap.created.map(Time),
                    });
                    record_handled(status, scheduled, run_now);
                    status.last_run = Some(LastRun {
                        name: Some(run_name.into()),
                        scheduled_time: Some(Time(scheduled)),
                        phase: Some("Pending".into()),
                        skip_reason: None,
                    });
                    info!(schedule = %name, run = %run_name, snapshot = %snap.name, "started a run");
                    Ok((true, "RunStarted".into(), format!("Started {run_name}: exporting {} as {target}.", snap.name)))
                }
            }
        }
        SourceMode::CreateSnapshot => {
            let pending = PendingSnapshot {
                run_name: run_name.into(),
                snapshot_name: names::intermediate_snapshot_name(&obj.uid().unwrap_or_default(), run_name),
                target_snapshot_name: target.clone(),
                scheduled_time: Time(scheduled),
            };
            // The intent first: after a crash the run is finished from it, never started twice.
            status.pending_snapshot = Some(pending.clone());
            record_handled(status, scheduled, run_now);
            status.last_run = Some(LastRun {
                name: Some(run_name.into()),
                scheduled_time: Some(Time(scheduled)),
                phase: Some("Pending".into()),
                skip_reason: None,
            });
            status.source = Some(ResolvedSource {
                cache_id: cache.id().into(),
                snapshot_name: Some(pending.snapshot_name.clone()),
                snapshot_create_time: None,
            });
            write_status(ctx, obj, status.clone()).await?;
            finish_pending(ctx, obj, exports, cache, &pending).await?;
            status.pending_snapshot = None;
            Ok((true, "RunStarted".into(), format!("Started {run_name}: took snapshot {} to export as {target}.", pending.snapshot_name)))
        }
    }
}

/// CreateSnapshot mode, after the intent is recorded: the intermediate snapshot (taken once:
/// when it exists it must carry our tag), then the run that exports it (it waits for the
/// snapshot to become available).
async fn finish_pending(
    ctx: &ScheduleContext,
    obj: &SnapshotExportSchedule,
    exports: &Api<SnapshotExport>,
    cache: &CacheRef,
    pending: &PendingSnapshot,
) -> Result<(), ScheduleError> {
    let uid = obj.uid().unwrap_or_default();
    let target = &pending.target_snapshot_name;
    // A run that exists already was started after its snapshot was: nothing left to do.
    if exports.get_opt(&pending.run_name).await?.is_none() {
        match ctx.aws.describe_snapshot(&pending.snapshot_name).await? {
            None => {
                sched_aws::create_snapshot(&ctx.aws, &pending.snapshot_name, cache, &uid).await?;
            }
            Some(info) => {
                let tag = match &info.arn {
                    Some(arn) => sched_aws::schedule_tag(&ctx.aws, arn).await?,
                    None => None,
                };
                if tag.as_deref() != Some(uid.as_str()) {
                    return Err(AwsError::Fault {
                        operation: "CreateSnapshot",
                        fault: crate::aws::CopyFault::SnapshotAlreadyExists {
                            message: format!(
                                "a snapshot named {} exists and does not carry this schedule's {SCHEDULE_TAG_KEY} tag; it is not used",
                                pending.snapshot_name
                            ),
                        },
                    }
                    .into());
                }
            }
        }
        create_run(exports, obj, &pending.run_name, pending.scheduled_time.0, &pending.snapshot_name, target, Some(&pending.snapshot_name))
            .await?;
    }
    Ok(())
}

/// Create one run object; AlreadyExists means it was created before (exactly once).
async fn create_run(
    exports: &Api<SnapshotExport>,
    obj: &SnapshotExportSchedule,
    run_name: &str,
    scheduled: Timestamp,
    source: &str,
    target: &str,
    intermediate: Option<&str>,
) -> Result<(), ScheduleError> {
    let t = &obj.spec.template;
    let mut spec = SnapshotExportSpec::new(source, target, t.target_bucket.as_deref());
    spec.kms_key_id = t.kms_key_id.clone();
    spec.tags = t.tags.clone();
    spec.deletion_policy = t.deletion_policy;
    let mut annotations = BTreeMap::from([(SCHEDULED_TIME_ANNOTATION.to_string(), scheduled.to_string())]);
    if let (Some(snap), false) = (intermediate, obj.spec.source.keep_intermediate_snapshot) {
        annotations.insert(INTERMEDIATE_ANNOTATION.into(), snap.into());
    }
    let run = SnapshotExport {
        metadata: ObjectMeta {
            name: Some(run_name.into()),
            namespace: obj.namespace(),
            labels: Some(BTreeMap::from([(SCHEDULE_LABEL.to_string(), names::label_value(&obj.name_any()))])),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: SnapshotExportSchedule::api_version(&()).into(),
                kind: SnapshotExportSchedule::kind(&()).into(),
                name: obj.name_any(),
                uid: obj.uid().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..Default::default()
        },
        spec,
        status: None,
    };
    match exports.create(&PostParams::default(), &run).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// This schedule's runs (labelled with it and owned by this very object).
async fn observe_runs(exports: &Api<SnapshotExport>, name: &str, uid: &str) -> Result<Vec<RunView>, ScheduleError> {
    let selector = format!("{SCHEDULE_LABEL}={}", names::label_value(name));
    let list = exports.list(&ListParams::default().labels(&selector)).await?;
    Ok(list.items.into_iter().filter(|r| r.owner_references().iter().any(|o| o.uid == uid)).map(view).collect())
}

fn view(run: SnapshotExport) -> RunView {
    let annotations = run.metadata.annotations.clone().unwrap_or_default();
    let scheduled = annotations
        .get(SCHEDULED_TIME_ANNOTATION)
        .and_then(|t| t.parse().ok())
        .or(run.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let status = run.status.clone().unwrap_or_default();
    let state = match status.phase {
        Some(Phase::Completed) => RunState::Succeeded,
        Some(Phase::Failed) => RunState::Failed,
        _ => RunState::InFlight,
    };
    let failure = find(&status.conditions, STALLED).filter(|c| c.status == "True").map(|c| (c.reason.clone(), c.message.clone()));
    RunView {
        facts: RunFacts { name: run.name_any(), scheduled, state },
        phase: status.phase.map(|p| format!("{p:?}")),
        completed_at: status.completed_at.map(|t| t.0),
        failure,
        source: run.spec.source_snapshot_name.clone(),
        intermediate: annotations.get(INTERMEDIATE_ANNOTATION).cloned(),
        exported_objects: status.exported_objects.clone(),
        requested_at: status.copy_requested_at.map(|t| t.0),
    }
}

/// Delete the intermediate snapshot of each completed run, only when it carries our tag.
async fn cleanup_intermediates(
    ctx: &ScheduleContext,
    obj: &SnapshotExportSchedule,
    exports: &Api<SnapshotExport>,
    runs: &[RunView],
) -> Result<(), ScheduleError> {
    let uid = obj.uid().unwrap_or_default();
    for run in runs.iter().filter(|r| r.facts.state == RunState::Succeeded) {
        let Some(snap) = &run.intermediate else { continue };
        if let Some(info) = ctx.aws.describe_snapshot(snap).await? {
            let tag = match &info.arn {
                Some(arn) => sched_aws::schedule_tag(&ctx.aws, arn).await?,
                None => None,
            };
            if tag.as_deref() == Some(uid.as_str()) {
                ctx.aws.delete_snapshot(snap).await?;
                publish(
                    ctx,
                    obj,
                    false,
                    "IntermediateSnapshotDeleted",
                    &format!("Deleted the intermediate snapshot {snap} of {} after its export completed.", run.facts.name),
                )
                .await;
            } else {
                warning(
                    ctx,
                    obj,
                    "IntermediateSnapshotNotOurs",
                    &format!(
                        "The snapshot {snap} of {} does not carry this schedule's {SCHEDULE_TAG_KEY} tag, so it was not deleted.",
                        run.facts.name
                    ),
                )
                .await;
            }
        }
        let patch = serde_json::json!({"metadata": {"annotations": {INTERMEDIATE_ANNOTATION: null}}});
        exports.patch(&run.facts.name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    }
    Ok(())
}

/// Retention: delete old runs (and, with pruneExportedObjects, the objects each provably wrote).
async fn prune(
    ctx: &ScheduleContext,
    obj: &SnapshotExportSchedule,
    exports: &Api<SnapshotExport>,
    runs: &[RunView],
) -> Result<(), ScheduleError> {
    let doomed = runs_to_delete(&runs.iter().map(|r| r.facts.clone()).collect::<Vec<_>>(), obj.spec.retention.keep_last);
    for name in doomed {
        let Some(run) = runs.iter().find(|r| r.facts.name == name) else { continue };
        if obj.spec.retention.prune_exported_objects {
            let mut seen = Vec::new();
            for url in &run.exported_objects {
                let Some((bucket, key)) = url.strip_prefix("s3://").and_then(|r| r.split_once('/')) else { continue };
                seen.push(SeenObject { url: url.clone(), last_modified: sched_aws::object_written(&ctx.aws, bucket, key).await? });
            }
            for url in objects_to_prune(&run.exported_objects, run.requested_at, &seen) {
                let (bucket, key) = url.strip_prefix("s3://").and_then(|r| r.split_once('/')).expect("checked above");
                sched_aws::delete_object(&ctx.aws, bucket, key).await?;
            }
        }
        match exports.delete(&name, &DeleteParams::background()).await {
            Ok(_) => info!(schedule = %obj.name_any(), run = %name, "deleted an old run (retention)"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Count runs that finished since the last status (by the phase recorded for the last run).
fn count_finished(
    ctx: &ScheduleContext,
    ns: &str,
    name: &str,
    old: &SnapshotExportScheduleStatus,
    new: &SnapshotExportScheduleStatus,
    runs: &[RunView],
) {
    let phase = |s: &SnapshotExportScheduleStatus| s.last_run.as_ref().and_then(|l| l.phase.clone());
    let same_run = old.last_run.as_ref().and_then(|l| l.name.clone()) == new.last_run.as_ref().and_then(|l| l.name.clone());
    if same_run && phase(old) == phase(new) {
        return;
    }
    let Some(run) = new.last_run.as_ref().and_then(|l| l.name.as_ref()).and_then(|n| runs.iter().find(|r| &r.facts.name == n)) else {
        return;
    };
    match run.facts.state {
        RunState::Succeeded => count(ctx, ns, name, "Succeeded"),
        RunState::Failed => count(ctx, ns, name, "Failed"),
        RunState::InFlight => {}
    }
}

fn count(ctx: &ScheduleContext, ns: &str, name: &str, outcome: &str) {
    let outcome = if outcome == "RunStarted" { "Started" } else { outcome };
    let labels = ScheduleOutcomeLabels { schedule_namespace: ns.into(), schedule: name.into(), outcome: outcome.into() };
    ctx.metrics.schedule_runs.get_or_create(&labels).inc();
}

/// Replace the status when it changed (guarded by the resourceVersion, so a second leader's
/// stale write fails); `obj` becomes what the API server stored. True when written.
async fn write_status(
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
    *obj = api.replace_status(&obj.name_any(), &PostParams::default(), &desired).await?;
    Ok(true)
}

async fn warning(ctx: &ScheduleContext, obj: &SnapshotExportSchedule, reason: &str, note: &str) {
    publish(ctx, obj, true, reason, note).await;
}

async fn publish(ctx: &ScheduleContext, obj: &SnapshotExportSchedule, warning: bool, reason: &str, note: &str) {
    if warning {
        warn!(schedule = %obj.name_any(), %reason, "{note}");
    }
    ctx.events.publish_about(&obj.object_ref(&()), warning, reason, "Schedule", note).await;
}
