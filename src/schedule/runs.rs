//! A schedule's runs: observing them (its labelled, owned SnapshotExports), starting one
//! (LatestAutomatic: the chosen backup; CreateSnapshot: the intent recorded, the tagged
//! intermediate snapshot taken once), and creating the run object exactly once.

use super::aws::{self as sched_aws, CacheRef};
use super::choose::{choose, Choice};
use super::clock::Clock;
use super::names;
use super::plan::RunNow;
use super::reconcile::{record_handled, write_status, ScheduleContext, ScheduleError, INTERMEDIATE_ANNOTATION};
use super::retention::{RunFacts, RunState};
use super::status::RunView;
use super::timetable::Timetable;
use crate::api::conditions::{find, STALLED};
use crate::api::schedule::*;
use crate::api::{
    Phase, SnapshotExport, SnapshotExportSpec, SnapshotExportStatus, AUTOMATIC_SOURCE_ANNOTATION, WAIT_FOR_SOURCE_ANNOTATION,
};
use crate::aws::AwsError;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::api::{Api, ListParams, PostParams};
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;
use tracing::info;

/// Create the run for `scheduled`: find or take its snapshot, then its SnapshotExport.
/// Returns `(started, reason, message)` for the Event.
#[allow(clippy::too_many_arguments)]
pub(super) async fn start_run(
    ctx: &ScheduleContext,
    obj: &mut SnapshotExportSchedule,
    exports: &Api<SnapshotExport>,
    cache: &CacheRef,
    timetable: &Timetable,
    runs: &[RunView],
    status: &mut SnapshotExportScheduleStatus,
    scheduled: Timestamp,
    run_name: &str,
    run_now: Option<RunNow>,
) -> Result<(bool, String, String), ScheduleError> {
    let name = obj.name_any();
    let template = obj.spec.template.target_snapshot_name_template.as_deref();
    let target =
        names::run_target_name(template, &name, cache.id(), scheduled, timetable, run_now.as_ref().map(|r| (r.value.as_str(), r.seq)))
            .map_err(|e| AwsError::Fault { operation: "template", fault: crate::aws::CopyFault::InvalidParameterValue { message: e } })?;
    if let Some(run) = runs.iter().find(|r| r.facts.name == run_name) {
        // Created before its time was recorded (the status write failed, or a crash): the
        // run is ours and under way, so record it as started; nothing is requested again.
        let created = match obj.spec.source.mode {
            SourceMode::LatestAutomatic => {
                let snaps = ctx.looks.automatic_snapshots(&ctx.aws, cache, scheduled).await?;
                snaps.iter().find(|s| s.name == run.source).and_then(|s| s.created)
            }
            SourceMode::CreateSnapshot => None,
        };
        status.source = Some(ResolvedSource {
            cache_id: cache.id().into(),
            snapshot_name: Some(run.source.clone()),
            snapshot_create_time: created.map(Time),
        });
        record_handled(status, scheduled, run_now);
        status.last_run = Some(pending_run(run_name, scheduled));
        info!(schedule = %name, run = %run_name, snapshot = %run.source, "recorded a run started before");
        return Ok((true, "RunStarted".into(), format!("Started {run_name}: exporting {} as {target}.", run.source)));
    }
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
                    create_run(exports, obj, run_name, scheduled, RunSource::Automatic(&snap.name), &target).await?;
                    status.source = Some(ResolvedSource {
                        cache_id: cache.id().into(),
                        snapshot_name: Some(snap.name.clone()),
                        snapshot_create_time: snap.created.map(Time),
                    });
                    record_handled(status, scheduled, run_now);
                    status.last_run = Some(pending_run(run_name, scheduled));
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
            // Its name and the policy before anything is recorded or taken: a run that cannot
            // start leaves nothing behind.
            name_is_free(exports, obj, run_name).await?;
            allowed(ctx, obj, cache, &pending.snapshot_name)?;
            // The intent first: after a crash the run is finished from it, never started twice.
            status.pending_snapshot = Some(pending.clone());
            record_handled(status, scheduled, run_now);
            status.last_run = Some(pending_run(run_name, scheduled));
            status.source = Some(ResolvedSource {
                cache_id: cache.id().into(),
                snapshot_name: Some(pending.snapshot_name.clone()),
                snapshot_create_time: None,
            });
            write_status(ctx, obj, status.clone()).await?;
            finish_pending(ctx, obj, exports, cache, &pending, true, false).await?;
            status.pending_snapshot = None;
            Ok((true, "RunStarted".into(), format!("Started {run_name}: took snapshot {} to export as {target}.", pending.snapshot_name)))
        }
    }
}

/// What became of a recorded intent.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Finished {
    /// Its run exists (created now or before).
    Started,
    /// Past its starting deadline and its snapshot never taken: dropped, nothing in AWS.
    Dropped,
}

/// CreateSnapshot mode, after the intent is recorded: the intermediate snapshot (taken once:
/// when it exists it must carry our tag), then the run that exports it (it waits for the
/// snapshot to become available). `just_recorded`: this reconcile wrote the intent (and asked
/// the policy), so the snapshot is normally not there yet. `stale`: the intent is past
/// `startingDeadlineSeconds`, so a snapshot not taken yet is not taken for that old time.
pub(super) async fn finish_pending(
    ctx: &ScheduleContext,
    obj: &SnapshotExportSchedule,
    exports: &Api<SnapshotExport>,
    cache: &CacheRef,
    pending: &PendingSnapshot,
    just_recorded: bool,
    stale: bool,
) -> Result<Finished, ScheduleError> {
    let uid = obj.uid().unwrap_or_default();
    let target = &pending.target_snapshot_name;
    // A run of ours that exists already was started after its snapshot was: nothing left to do
    // (one that is not ours is refused by `create_run`, by owner UID).
    let existing_run = exports.get_opt(&pending.run_name).await?;
    if !existing_run.is_some_and(|run| run.owner_references().iter().any(|o| o.uid == uid)) {
        // A fresh intent: one CreateSnapshot takes it, tagged, with no look first (a run costs at
        // most two AWS calls beyond its export's: this and the DeleteSnapshot). AlreadyExists,
        // or an intent found later (after a crash or a refusal): look, and use it only if tagged.
        let serverless = cache.is_serverless();
        let taken = just_recorded && sched_aws::create_snapshot(&ctx.aws, &pending.snapshot_name, cache, &uid).await?;
        let found = if taken { None } else { sched_aws::find_snapshot(&ctx.aws, serverless, &pending.snapshot_name).await? };
        if found.is_none() && !taken {
            if stale {
                return Ok(Finished::Dropped);
            }
            // Not taken yet: only if the policy still allows the run (the intent stays until it does).
            allowed(ctx, obj, cache, &pending.snapshot_name)?;
        }
        let existing = match found {
            _ if taken => None,
            // Our CreateSnapshot just answered AlreadyExists and the look finds nothing.
            None if just_recorded => return Err(exists_but_not_found(&pending.snapshot_name).into()),
            // Not there: take it. AlreadyExists means it appeared meanwhile: look at it again.
            None if sched_aws::create_snapshot(&ctx.aws, &pending.snapshot_name, cache, &uid).await? => None,
            None => match sched_aws::find_snapshot(&ctx.aws, serverless, &pending.snapshot_name).await? {
                Some(arn) => Some(arn),
                // "Exists" with nothing to be found proves nothing about whose it is: never a
                // run without the tag check; ask again after the backoff.
                None => return Err(exists_but_not_found(&pending.snapshot_name).into()),
            },
            Some(arn) => Some(arn),
        };
        if let Some(arn) = existing {
            let tag = match &arn {
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
        create_run(exports, obj, &pending.run_name, pending.scheduled_time.0, RunSource::Intermediate(&pending.snapshot_name), target)
            .await?;
    }
    Ok(Finished::Started)
}

/// CreateSnapshot answered AlreadyExists, yet the snapshot cannot be found (deleted meanwhile,
/// or not visible yet): transient, so the schedule asks again rather than start a run on it.
fn exists_but_not_found(snapshot: &str) -> AwsError {
    AwsError::Transient {
        operation: "CreateSnapshot",
        code: "AlreadyExistsButNotFound".into(),
        message: format!(
            "CreateSnapshot answered that {snapshot} already exists, but DescribeSnapshots finds no such snapshot; trying again"
        ),
    }
}

/// The export policy's word on the run that will export `snapshot` (see `policy.rs`).
fn allowed(ctx: &ScheduleContext, obj: &SnapshotExportSchedule, cache: &CacheRef, snapshot: &str) -> Result<(), ScheduleError> {
    let namespace = obj.namespace().unwrap_or_default();
    super::policy::check_run(&ctx.policy, &namespace, snapshot, obj.spec.template.target_bucket.as_deref(), cache)
        .map_err(ScheduleError::ExportNotAllowed)
}

/// `RunNameTaken` when `run`, named as this schedule's run `run_name`, is not one of its runs
/// (no ownerReference with its UID: names prove nothing).
fn taken_by(obj: &SnapshotExportSchedule, run_name: &str, run: &SnapshotExport) -> Option<ScheduleError> {
    let uid = obj.uid().unwrap_or_default();
    if run.owner_references().iter().any(|o| o.uid == uid) {
        return None;
    }
    let owner = match run.owner_references().first() {
        Some(o) => format!("owned by {} {} with UID {}", o.kind, o.name, o.uid),
        None => "no owner".to_string(),
    };
    Some(ScheduleError::RunNameTaken { run: run_name.into(), owner })
}

/// Fails with `RunNameTaken` when another object holds the run's name: looked at before a
/// snapshot is taken for the run, so that none is taken for a run that cannot start.
async fn name_is_free(exports: &Api<SnapshotExport>, obj: &SnapshotExportSchedule, run_name: &str) -> Result<(), ScheduleError> {
    match exports.get_opt(run_name).await? {
        Some(run) => taken_by(obj, run_name, &run).map_or(Ok(()), Err),
        None => Ok(()),
    }
}

/// What a run exports.
#[derive(Clone, Copy, Debug)]
pub(super) enum RunSource<'a> {
    /// An automatic backup of the cache: ElastiCache deletes it when its retention ends.
    Automatic(&'a str),
    /// The snapshot the run took (CreateSnapshot), deleted after the run unless kept.
    Intermediate(&'a str),
}

/// Create one run object; AlreadyExists means it was created before (exactly once).
pub(super) async fn create_run(
    exports: &Api<SnapshotExport>,
    obj: &SnapshotExportSchedule,
    run_name: &str,
    scheduled: Timestamp,
    source: RunSource<'_>,
    target: &str,
) -> Result<(), ScheduleError> {
    let mut annotations = BTreeMap::from([(SCHEDULED_TIME_ANNOTATION.to_string(), scheduled.to_string())]);
    let source = match source {
        RunSource::Automatic(snap) => {
            annotations.insert(AUTOMATIC_SOURCE_ANNOTATION.into(), "true".into());
            snap
        }
        RunSource::Intermediate(snap) => {
            // Just taken: the run asks for its export once the snapshot is available.
            annotations.insert(WAIT_FOR_SOURCE_ANNOTATION.into(), "true".into());
            if !obj.spec.source.keep_intermediate_snapshot {
                annotations.insert(INTERMEDIATE_ANNOTATION.into(), snap.into());
            }
            snap
        }
    };
    let spec = run_spec(&obj.spec, source, target);
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
        // AlreadyExists: our own run from before a crash, or another object that took the name;
        // only a run owned by this schedule (by UID, not by name) counts as started.
        Err(kube::Error::Api(e)) if e.code == 409 => match exports.get_opt(run_name).await? {
            Some(run) => taken_by(obj, run_name, &run).map_or(Ok(()), Err),
            // Deleted meanwhile: the next reconcile creates it.
            None => Err(kube::Error::Api(e).into()),
        },
        Err(e) => Err(e.into()),
    }
}

/// The spec of a run exporting `source` as `target` (pure): the template's fields, and for a
/// serverless cache `sourceKind: Serverless` (its S3 export takes no target name, so the name
/// is left out; an in-region copy keeps it).
pub(super) fn run_spec(schedule: &SnapshotExportScheduleSpec, source: &str, target: &str) -> SnapshotExportSpec {
    let t = &schedule.template;
    let mut spec = SnapshotExportSpec::new(source, target, t.target_bucket.as_deref());
    if schedule.source.serverless_cache_name.is_some() {
        spec = spec.serverless();
    }
    spec.kms_key_id = t.kms_key_id.clone();
    spec.tags = t.tags.clone();
    spec.deletion_policy = t.deletion_policy;
    spec
}

/// This schedule's runs (labelled with it and owned by this very object).
/// `clock`: the schedule's, on which the runs' creation times are read.
pub(super) async fn observe_runs(
    exports: &Api<SnapshotExport>,
    name: &str,
    uid: &str,
    clock: &Clock,
) -> Result<Vec<RunView>, ScheduleError> {
    let selector = format!("{SCHEDULE_LABEL}={}", names::label_value(name));
    let list = exports.list(&ListParams::default().labels(&selector)).await?;
    Ok(list.items.into_iter().filter(|r| r.owner_references().iter().any(|o| o.uid == uid)).map(|r| view(r, clock)).collect())
}

pub(super) fn view(run: SnapshotExport, clock: &Clock) -> RunView {
    let annotations = run.metadata.annotations.clone().unwrap_or_default();
    let scheduled = annotations
        .get(SCHEDULED_TIME_ANNOTATION)
        .and_then(|t| t.parse().ok())
        .or(run.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let status = run.status.clone().unwrap_or_default();
    let (accepted, last_seen) = (status.is_accepted(), last_seen(&run.spec, &status));
    let state = run_state(&status);
    let over_for_good = state == RunState::Succeeded || status.is_terminal();
    let failure = find(&status.conditions, STALLED).filter(|c| c.status == "True").map(|c| (c.reason.clone(), c.message.clone()));
    RunView {
        facts: RunFacts { name: run.name_any(), scheduled, state },
        uid: run.uid().unwrap_or_default(),
        phase: status.phase.map(|p| format!("{p:?}")),
        completed_at: status.completed_at.map(|t| t.0),
        failure,
        source: run.spec.source_snapshot_name.clone(),
        // Released for deletion only once no edit can make the run use it again: it completed, or
        // failed for good after AWS accepted it (a spec stall is healed by reverting the edit,
        // and then needs its source).
        intermediate: annotations.get(INTERMEDIATE_ANNOTATION).filter(|_| over_for_good).cloned(),
        annotated_intermediate: annotations.get(INTERMEDIATE_ANNOTATION).cloned(),
        serverless: run.spec.is_serverless(),
        automatic_source: annotations.get(AUTOMATIC_SOURCE_ANNOTATION).is_some_and(|v| v == "true"),
        exported_objects: status.exported_object_details.clone(),
        exported_urls: status.exported_objects.clone(),
        deleting: run.metadata.deletion_timestamp.is_some(),
        accepted,
        created: run.metadata.creation_timestamp.as_ref().map_or(scheduled, |t| clock.at(t.0)),
        last_seen,
    }
}

/// Merge `patch` into the run, only if it is still the object listed (its UID is sent as a
/// precondition, as the garbage collector does): `false` when it is gone, or another object has
/// its name now, which is left alone.
pub(super) async fn patch_run(exports: &Api<SnapshotExport>, run: &RunView, mut patch: serde_json::Value) -> Result<bool, kube::Error> {
    patch["metadata"]["uid"] = serde_json::Value::String(run.uid.clone());
    match exports.patch(&run.facts.name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await {
        Ok(_) => Ok(true),
        // Another object's UID is refused as an immutable field (422 on metadata.uid); no
        // resourceVersion is sent, so a conflict can only be about the UID too.
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 || (e.code == 422 && e.message.contains("metadata.uid")) => {
            info!(run = %run.facts.name, code = e.code, "the run is gone (or another object has its name); not changed");
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Mark the runs in flight of a LatestAutomatic schedule that were created before runs were
/// marked (an upgrade) as exporting an automatic backup, so that one whose backup expires ends
/// (`SourceSnapshotExpired`) instead of holding back the schedule for ever. A run whose source is
/// the snapshot this schedule takes itself (its mode was CreateSnapshot) is not one.
pub(super) async fn mark_automatic_sources(
    exports: &Api<SnapshotExport>,
    obj: &SnapshotExportSchedule,
    runs: &mut Vec<RunView>,
) -> Result<(), ScheduleError> {
    if obj.spec.source.mode != SourceMode::LatestAutomatic {
        return Ok(());
    }
    let uid = obj.uid().unwrap_or_default();
    let mark = serde_json::json!({"metadata": {"annotations": {AUTOMATIC_SOURCE_ANNOTATION: "true"}}});
    let mut gone = Vec::new();
    for run in runs.iter_mut().filter(|r| r.facts.state == RunState::InFlight && !r.automatic_source && !r.deleting) {
        if run.source == names::intermediate_snapshot_name(&uid, &run.facts.name) || run.annotated_intermediate.is_some() {
            continue;
        }
        run.automatic_source = patch_run(exports, run, mark.clone()).await?;
        if !run.automatic_source {
            gone.push(run.uid.clone());
        }
    }
    // Gone (or another object has its name): no run of ours, and it must not hold back the next
    // scheduled time.
    runs.retain(|r| !gone.contains(&r.uid));
    Ok(())
}

/// The snapshot AWS works on for a run and its status as the run last saw it: an export's
/// source; a copy's target, or its source until the target shows.
fn last_seen(spec: &SnapshotExportSpec, status: &SnapshotExportStatus) -> Option<(String, String)> {
    let source = || status.source_snapshot_status.clone().map(|s| (spec.source_snapshot_name.clone(), s));
    match &status.target_snapshot_status {
        Some(target) if !spec.is_export() => Some((spec.target_snapshot_name.clone(), target.clone())),
        _ => source(),
    }
}

/// A run is over only when it completed or failed for good: a run stalled before AWS accepted
/// its request is retried and may still export, so the next run waits for it and retention
/// keeps it.
fn run_state(status: &SnapshotExportStatus) -> RunState {
    if status.phase == Some(Phase::Completed) {
        RunState::Succeeded
    } else if status.is_failed_for_good() {
        RunState::Failed
    } else {
        RunState::InFlight
    }
}

/// The last run as it stands right after it was started.
fn pending_run(run_name: &str, scheduled: Timestamp) -> LastRun {
    LastRun { name: Some(run_name.into()), scheduled_time: Some(Time(scheduled)), phase: Some("Pending".into()), skip_reason: None }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::LastError;
    use k8s_openapi::jiff::Timestamp as T;

    #[test]
    fn run_specs_follow_the_source_kind_and_pass_the_snapshot_export_rules() {
        let schedule = |source: serde_json::Value, template: serde_json::Value| -> SnapshotExportScheduleSpec {
            serde_json::from_value(serde_json::json!({"schedule": "@daily", "source": source, "template": template})).unwrap()
        };
        let cases = [
            (schedule(serde_json::json!({"replicationGroupId": "rg"}), serde_json::json!({"targetBucket": "bkt"})), false, "t"),
            (schedule(serde_json::json!({"serverlessCacheName": "s"}), serde_json::json!({"targetBucket": "bkt"})), true, ""),
            (schedule(serde_json::json!({"serverlessCacheName": "s"}), serde_json::json!({"kmsKeyId": "k"})), true, "t"),
        ];
        for (sched, serverless, target) in cases {
            let spec = run_spec(&sched, "src", "t");
            assert_eq!((spec.is_serverless(), spec.target_snapshot_name.as_str()), (serverless, target), "{sched:?}");
            assert_eq!(spec.target_bucket, sched.template.target_bucket);
            assert_eq!(spec.kms_key_id, sched.template.kms_key_id);
            assert!(
                crate::api::validation::validate_spec(&spec).is_empty(),
                "{spec:?}: {:?}",
                crate::api::validation::validate_spec(&spec)
            );
        }
    }

    /// A run stalled for `reason`, after AWS accepted its request or before.
    fn stalled(reason: &str, accepted: bool) -> SnapshotExportStatus {
        SnapshotExportStatus {
            phase: Some(Phase::Failed),
            copy_accepted_at: accepted.then_some(Time(T::UNIX_EPOCH)),
            last_error: Some(LastError { reason: reason.into(), message: String::new() }),
            ..Default::default()
        }
    }

    #[test]
    fn a_run_is_over_only_when_completed_or_failed_for_good() {
        let cases = [
            (SnapshotExportStatus { phase: Some(Phase::Completed), ..Default::default() }, RunState::Succeeded),
            (SnapshotExportStatus { phase: Some(Phase::Exporting), ..Default::default() }, RunState::InFlight),
            (SnapshotExportStatus::default(), RunState::InFlight),
            (stalled("ExportFailed", true), RunState::Failed),
            (stalled("InvalidSpec", false), RunState::Failed),
            // Never requested twice (issue 30): the next run exports again.
            (stalled("RequestOutcomeUnknown", false), RunState::Failed),
            // Retried slowly: fixing the bucket or the policy heals it, so it is not over.
            (stalled("S3ReadAcpPermissionMissing", false), RunState::InFlight),
            (stalled("ExportNotAllowed", false), RunState::InFlight),
        ];
        for (status, want) in cases {
            assert_eq!(run_state(&status), want, "{status:?}");
        }
    }
    /// A CreateSnapshot run's snapshot is handed to cleanup only when no edit can make the run
    /// use it again: a spec stall (healed by reverting the edit) keeps it.
    #[test]
    fn the_intermediate_snapshot_is_released_only_when_no_edit_can_revive_the_run() {
        let run = |status: SnapshotExportStatus| -> SnapshotExport {
            let mut run: SnapshotExport = serde_json::from_value(serde_json::json!({
                "apiVersion": "elasticache-export.io/v1alpha1", "kind": "SnapshotExport",
                "metadata": {"name": "r", "annotations": {INTERMEDIATE_ANNOTATION: "ecx-snap"}},
                "spec": {"sourceSnapshotName": "ecx-snap", "targetSnapshotName": "t", "targetBucket": "b"},
            }))
            .unwrap();
            run.status = Some(status);
            run
        };
        let cases = [
            (SnapshotExportStatus { phase: Some(Phase::Completed), ..Default::default() }, true),
            (stalled("ExportFailed", true), true),
            (stalled("RequestOutcomeUnknown", false), true),
            (stalled("SpecChanged", true), false),
            (stalled("InvalidSpec", false), false),
            (SnapshotExportStatus { phase: Some(Phase::Exporting), ..Default::default() }, false),
        ];
        for (status, released) in cases {
            let view = view(run(status.clone()), &Clock::real());
            assert_eq!(view.intermediate.is_some(), released, "{status:?}");
        }
    }
}
