//! After runs finish: intermediate snapshots deleted (ours by construction, see below), and
//! retention (old runs deleted, with `pruneExportedObjects` the objects each provably wrote).

use super::aws as sched_aws;
use super::names;
use super::reconcile::{publish, warning, ScheduleContext, ScheduleError, INTERMEDIATE_ANNOTATION};
use super::retention::{objects_to_prune, runs_to_delete, RunState, SeenObject};
use super::status::RunView;
use crate::api::schedule::SnapshotExportSchedule;
use crate::api::SnapshotExport;
use crate::aws::{AwsError, CopyFault};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::ResourceExt;
use std::collections::HashSet;
use tracing::info;

/// `s3://bucket/key` as (bucket, key).
fn split_url(url: &str) -> Option<(&str, &str)> {
    url.strip_prefix("s3://").and_then(|r| r.split_once('/'))
}

/// Delete the intermediate snapshot of each finished run (completed, or failed for good: no
/// request of it can be in flight, so the snapshot would be kept for nothing): one
/// DeleteSnapshot, no look first. It is ours: a run exists only once its snapshot was taken
/// with our tag or found carrying it (`runs::finish_pending`), its name derives from this
/// schedule's UID, and the IAM policy lets the operator delete only snapshots carrying the
/// schedule tag. The run's annotation naming it is editable by anyone who may edit the run, so
/// it is trusted only when it names the snapshot this schedule takes for that run (the name
/// derives from the schedule's UID and the run's name); any other is a Warning, the annotation
/// is removed, and nothing is deleted. Already gone is fine; a snapshot still busy (e.g.
/// `exporting`) is tried again.
pub(super) async fn cleanup_intermediates(
    ctx: &ScheduleContext,
    obj: &SnapshotExportSchedule,
    exports: &Api<SnapshotExport>,
    runs: &[RunView],
) -> Result<(), ScheduleError> {
    for run in runs.iter().filter(|r| r.facts.state != RunState::InFlight) {
        let Some(snap) = &run.intermediate else { continue };
        let after = if run.facts.state == RunState::Succeeded { "its export completed" } else { "it failed for good" };
        delete_intermediate(ctx, obj, exports, run, snap, after).await?;
    }
    Ok(())
}

/// Delete one run's intermediate snapshot and drop the annotation naming it; `Ok(false)` while
/// the snapshot is busy (tried again later). A name other than the one this schedule takes for
/// that run is a Warning, and nothing is deleted.
async fn delete_intermediate(
    ctx: &ScheduleContext,
    obj: &SnapshotExportSchedule,
    exports: &Api<SnapshotExport>,
    run: &RunView,
    snap: &str,
    after: &str,
) -> Result<bool, ScheduleError> {
    let ours = names::intermediate_snapshot_name(&obj.uid().unwrap_or_default(), &run.facts.name);
    let unmark = serde_json::json!({"metadata": {"annotations": {INTERMEDIATE_ANNOTATION: null}}});
    if snap != ours {
        // Unmark first, so that a failed patch cannot repeat the Warning.
        exports.patch(&run.facts.name, &PatchParams::default(), &Patch::Merge(&unmark)).await?;
        warning(
            ctx,
            obj,
            "IntermediateSnapshotNotOurs",
            &format!(
                "The run {} names {snap} as its intermediate snapshot ({INTERMEDIATE_ANNOTATION}), but this schedule took {ours} for it; {snap} was not deleted and the annotation was removed.",
                run.facts.name
            ),
        )
        .await;
        return Ok(true);
    }
    match sched_aws::delete_snapshot(&ctx.aws, run.serverless, snap).await {
        Ok(()) => {}
        Err(AwsError::Fault { fault: CopyFault::InvalidSnapshotState { .. }, .. }) => {
            info!(schedule = %obj.name_any(), run = %run.facts.name, snapshot = %snap, "intermediate snapshot busy; deleted later");
            return Ok(false);
        }
        Err(other) => return Err(other.into()),
    }
    publish(
        ctx,
        obj,
        false,
        "IntermediateSnapshotDeleted",
        &format!("Deleted the intermediate snapshot {snap} of {} after {after}.", run.facts.name),
    )
    .await;
    exports.patch(&run.facts.name, &PatchParams::default(), &Patch::Merge(&unmark)).await?;
    Ok(true)
}

/// Retention: delete old runs (and, with pruneExportedObjects, the objects each provably wrote).
pub(super) async fn prune(
    ctx: &ScheduleContext,
    obj: &SnapshotExportSchedule,
    exports: &Api<SnapshotExport>,
    runs: &[RunView],
) -> Result<(), ScheduleError> {
    let doomed = runs_to_delete(&runs.iter().map(|r| r.facts.clone()).collect::<Vec<_>>(), obj.spec.retention.keep_last);
    // Deleted already (a finalizer holds it): pruned then, never twice.
    let doomed: Vec<&RunView> = doomed.iter().filter_map(|name| runs.iter().find(|r| &r.facts.name == name && !r.deleting)).collect();
    let prune_objects = obj.spec.retention.prune_exported_objects;
    // The keys every other SnapshotExport of the namespace records or expects (runs or not, in
    // flight or done): never pruned. Listed only when some object could be.
    let kept: HashSet<String> = if prune_objects && doomed.iter().any(|r| !r.exported_objects.is_empty()) {
        let all = exports.list(&ListParams::default()).await?;
        all.items
            .into_iter()
            .filter(|o| !doomed.iter().any(|r| r.facts.name == o.name_any()))
            .flat_map(|o| {
                let status = o.status.unwrap_or_default();
                status.exported_objects.into_iter().chain(status.expected_objects)
            })
            .collect()
    } else {
        HashSet::new()
    };
    for run in doomed {
        let name = &run.facts.name;
        // A run stalled for its spec still holds its snapshot (an edit could revive it); once
        // retention deletes the run nothing can, so the snapshot goes first.
        if let Some(snap) = &run.annotated_intermediate {
            if !delete_intermediate(ctx, obj, exports, run, snap, "retention deleted it").await? {
                continue;
            }
        }
        let mut pruned = Vec::new();
        if prune_objects {
            let mut seen = Vec::new();
            for object in &run.exported_objects {
                let Some((bucket, key)) = split_url(&object.url) else { continue };
                seen.push(SeenObject { url: object.url.clone(), now: sched_aws::object_head(&ctx.aws, bucket, key).await? });
            }
            for (url, e_tag) in objects_to_prune(&run.exported_objects, &seen, &kept) {
                let (bucket, key) = split_url(&url).expect("checked above");
                if sched_aws::delete_object_if(&ctx.aws, bucket, key, &e_tag).await? {
                    pruned.push(url);
                }
            }
        }
        match exports.delete(name, &DeleteParams::background()).await {
            Ok(_) => info!(schedule = %obj.name_any(), run = %name, pruned = pruned.len(), "deleted an old run (retention)"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        // What stays in S3 is said once, with the run that no longer names it.
        let left: Vec<&String> = run.exported_urls.iter().filter(|u| !pruned.contains(u)).collect();
        if prune_objects && !left.is_empty() {
            let why = if run.exported_objects.is_empty() {
                "it completed before the operator recorded its objects' ETags, so none is provably its own"
            } else {
                "they are no longer the objects it wrote (written again since), or another SnapshotExport records or expects them"
            };
            let left = left.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(", ");
            let note = format!("Retention deleted the run {name} and kept in S3 {left}: {why}. Delete them by hand, or with a lifecycle rule, if they are not needed.");
            publish(ctx, obj, false, "ExportedObjectsKept", &note).await;
        }
    }
    Ok(())
}
