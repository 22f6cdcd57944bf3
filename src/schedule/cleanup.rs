//! After runs finish: intermediate snapshots deleted (ours by construction, see below), and
//! retention (old runs deleted, with `pruneExportedObjects` the objects each provably wrote).

use super::aws as sched_aws;
use super::names;
use super::reconcile::{publish, warning, ScheduleContext, ScheduleError, INTERMEDIATE_ANNOTATION};
use super::retention::{objects_to_prune, runs_to_delete, RunState, SeenObject};
use super::runs::patch_run;
use super::status::RunView;
use crate::api::schedule::{SnapshotExportSchedule, SCHEDULE_TAG_KEY};
use crate::api::SnapshotExport;
use crate::aws::{AwsError, CopyFault};
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use kube::ResourceExt;
use std::collections::HashSet;
use tracing::info;

/// `s3://bucket/key` as (bucket, key).
fn split_url(url: &str) -> Option<(&str, &str)> {
    url.strip_prefix("s3://").and_then(|r| r.split_once('/'))
}

/// One cleanup call that failed: for which run, what it was doing, the call and what the call
/// needs. The other runs' cleanup goes on, and scheduling too; this one is tried again after a
/// backoff (`RetryGate`), and the schedule reports it (a Warning, the `CleanupFailing` condition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanupFault {
    pub run: String,
    /// What was being done, e.g. "deleting the intermediate snapshot ecx-…".
    pub doing: String,
    /// The AWS operation, or the Kubernetes verb on snapshotexports.
    pub call: String,
    pub error: String,
    /// AWS did not answer (throttled, 5xx, network): no permission is missing, and a few in a
    /// row are not reported (see `reconcile::clean_up`).
    pub transient: bool,
}

impl CleanupFault {
    fn new(run: &str, doing: String, error: ScheduleError) -> Self {
        let call = match &error {
            ScheduleError::Aws(AwsError::Fault { operation, .. } | AwsError::Transient { operation, .. }) => operation.to_string(),
            ScheduleError::Kube(_) if doing.starts_with("listing") => "list".into(),
            ScheduleError::Kube(_) if doing.starts_with("deleting the run") => "delete".into(),
            _ => "patch".into(),
        };
        let transient = matches!(&error, ScheduleError::Aws(e) if e.is_transient());
        Self { run: run.into(), doing, call, error: error.to_string(), transient }
    }

    /// What the call needs: the IAM action, or the Kubernetes RBAC verb.
    pub fn permission(&self) -> String {
        match self.call.as_str() {
            "DeleteSnapshot" | "DeleteServerlessCacheSnapshot" => {
                format!("the IAM action elasticache:{} on snapshots tagged {SCHEDULE_TAG_KEY}", self.call)
            }
            "HeadObject" => "the IAM action s3:GetObject on the exported objects, and s3:ListBucket on the bucket (without it S3 answers 403 for a key that is gone)".into(),
            "DeleteObject" => "the IAM action s3:DeleteObject on the exported objects".into(),
            verb @ ("list" | "patch" | "delete") => format!("the Kubernetes RBAC verb {verb} on snapshotexports.elasticache-export.io"),
            other => format!("permission for {other}"),
        }
    }

    /// The condition's reason: the call that failed.
    pub fn reason(&self) -> String {
        let mut call = self.call.clone();
        if let Some(first) = call.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        format!("{call}Failed")
    }

    /// The condition's message: the first fault only, so it stays the same while that call fails
    /// the same way (the status is written, and the Warning told, only when it changes).
    pub fn message(&self) -> String {
        let cause = if self.transient {
            format!("AWS keeps failing to answer {} (throttled, unavailable or unreachable); nothing to grant", self.call)
        } else {
            format!("If it was refused, the call {} needs {}", self.call, self.permission())
        };
        format!(
            "The cleanup after run {} failed while {}: {}. {cause}. Scheduling goes on; the cleanup is tried again with backoff, and this condition turns False once it succeeds.",
            self.run, self.doing, self.error
        )
    }
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
) -> Vec<CleanupFault> {
    let mut faults = Vec::new();
    // Retention deletes those runs' snapshots itself, first (see `prune`): never twice in one go.
    let doomed = doomed(obj, runs);
    for run in runs.iter().filter(|r| r.facts.state != RunState::InFlight && !doomed.contains(&r.facts.name)) {
        let Some(snap) = &run.intermediate else { continue };
        let after = if run.facts.state == RunState::Succeeded { "its export completed" } else { "it failed for good" };
        if let Err(err) = delete_intermediate(ctx, obj, exports, run, snap, after).await {
            faults.push(CleanupFault::new(&run.facts.name, format!("deleting the intermediate snapshot {snap}"), err));
        }
    }
    faults
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
        if !patch_run(exports, run, unmark).await? {
            return Ok(true);
        }
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
    let key = format!("{}/{snap}", run.uid);
    let deleted_before = ctx.deleted_intermediates.lock().expect("deleted intermediates lock").contains(&key);
    if !deleted_before {
        match sched_aws::delete_snapshot(&ctx.aws, run.serverless, snap).await {
            Ok(()) => {}
            Err(AwsError::Fault { fault: CopyFault::InvalidSnapshotState { .. }, .. }) => {
                info!(schedule = %obj.name_any(), run = %run.facts.name, snapshot = %snap, "intermediate snapshot busy; deleted later");
                return Ok(false);
            }
            Err(other) => return Err(other.into()),
        }
        ctx.deleted_intermediates.lock().expect("deleted intermediates lock").insert(key.clone());
        publish(
            ctx,
            obj,
            false,
            "IntermediateSnapshotDeleted",
            &format!("Deleted the intermediate snapshot {snap} of {} after {after}.", run.facts.name),
        )
        .await;
    }
    // Should this fail, the retry only removes the annotation: the snapshot is not deleted by
    // name again (one DeleteSnapshot per snapshot, as promised; IAM and the derived name guard
    // the rest).
    patch_run(exports, run, unmark).await?;
    ctx.deleted_intermediates.lock().expect("deleted intermediates lock").remove(&key);
    Ok(true)
}

/// The runs retention deletes now; not those being deleted already (a finalizer holds them):
/// pruned then, never twice.
fn doomed(obj: &SnapshotExportSchedule, runs: &[RunView]) -> Vec<String> {
    let doomed = runs_to_delete(&runs.iter().map(|r| r.facts.clone()).collect::<Vec<_>>(), obj.spec.retention.keep_last);
    doomed.into_iter().filter(|name| runs.iter().any(|r| &r.facts.name == name && !r.deleting)).collect()
}

/// Retention: delete old runs (and, with pruneExportedObjects, the objects each provably wrote).
/// A run whose cleanup fails is kept (it still names its objects and snapshot) and tried again
/// later; the others go on.
pub(super) async fn prune(
    ctx: &ScheduleContext,
    obj: &SnapshotExportSchedule,
    exports: &Api<SnapshotExport>,
    runs: &[RunView],
) -> Vec<CleanupFault> {
    let doomed: Vec<&RunView> = doomed(obj, runs).iter().filter_map(|name| runs.iter().find(|r| &r.facts.name == name)).collect();
    let prune_objects = obj.spec.retention.prune_exported_objects;
    // The keys every other SnapshotExport of the namespace records or expects (runs or not, in
    // flight or done): never pruned. Listed only when some object could be.
    let kept: HashSet<String> = if prune_objects && doomed.iter().any(|r| !r.exported_objects.is_empty()) {
        let all = match exports.list(&ListParams::default()).await {
            Ok(all) => all,
            Err(err) => {
                let run = doomed.first().map(|r| r.facts.name.as_str()).unwrap_or_default();
                let doing = "listing the namespace's SnapshotExports (the objects they record are never pruned)".to_string();
                return vec![CleanupFault::new(run, doing, err.into())];
            }
        };
        all.items
            .into_iter()
            // By UID: an object that took a doomed run's name keeps what it records.
            .filter(|o| !doomed.iter().any(|r| o.uid().as_deref() == Some(r.uid.as_str())))
            .flat_map(|o| {
                let status = o.status.unwrap_or_default();
                status.exported_objects.into_iter().chain(status.expected_objects)
            })
            .collect()
    } else {
        HashSet::new()
    };
    let mut faults = Vec::new();
    for run in doomed {
        let name = &run.facts.name;
        match prune_run(ctx, obj, exports, run, prune_objects, &kept).await {
            Ok(Some(gone)) => tell_kept(ctx, obj, run, prune_objects, &gone).await,
            Ok(None) => {}
            Err((doing, err)) => faults.push(CleanupFault::new(name, doing, err)),
        }
    }
    faults
}

/// Delete one old run: its intermediate snapshot first, then (with pruneExportedObjects) the
/// objects still its own, then the run. `Ok(None)` while its snapshot is busy (tried later);
/// otherwise the objects no longer in S3 (pruned now, or gone already: a try cut short by a
/// fault deleted some). A failing call stops this run's cleanup, saying what it was doing.
async fn prune_run(
    ctx: &ScheduleContext,
    obj: &SnapshotExportSchedule,
    exports: &Api<SnapshotExport>,
    run: &RunView,
    prune_objects: bool,
    kept: &HashSet<String>,
) -> Result<Option<Vec<String>>, (String, ScheduleError)> {
    let name = &run.facts.name;
    // A run stalled for its spec still holds its snapshot (an edit could revive it); once
    // retention deletes the run nothing can, so the snapshot goes first.
    if let Some(snap) = &run.annotated_intermediate {
        let deleted = delete_intermediate(ctx, obj, exports, run, snap, "retention deleted it").await;
        if !deleted.map_err(|e| (format!("deleting the intermediate snapshot {snap}"), e))? {
            return Ok(None);
        }
    }
    let mut gone = Vec::new();
    if prune_objects {
        let mut seen = Vec::new();
        for object in &run.exported_objects {
            let Some((bucket, key)) = split_url(&object.url) else { continue };
            let now = sched_aws::object_head(&ctx.aws, bucket, key).await;
            let now = now.map_err(|e| (format!("looking at {} before pruning it", object.url), e.into()))?;
            if now.is_none() {
                gone.push(object.url.clone());
            }
            seen.push(SeenObject { url: object.url.clone(), now });
        }
        for (url, e_tag) in objects_to_prune(&run.exported_objects, &seen, kept) {
            let (bucket, key) = split_url(&url).expect("checked above");
            let deleted = sched_aws::delete_object_if(&ctx.aws, bucket, key, &e_tag).await;
            if deleted.map_err(|e| (format!("pruning {url}"), e.into()))? {
                gone.push(url);
            }
        }
    }
    // By UID, not by name: an object that took the name since the listing is not ours to delete.
    let this_run = DeleteParams {
        preconditions: Some(Preconditions { uid: Some(run.uid.clone()), resource_version: None }),
        ..DeleteParams::background()
    };
    match exports.delete(name, &this_run).await {
        Ok(_) => info!(schedule = %obj.name_any(), run = %name, objects_gone = gone.len(), "deleted an old run (retention)"),
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {
            info!(schedule = %obj.name_any(), run = %name, "the run is gone and another object has its name; that object is not deleted")
        }
        Err(e) => return Err((format!("deleting the run {name} (retention)"), e.into())),
    }
    Ok(Some(gone))
}

/// What stays in S3 is said once, with the run that no longer names it (`gone`: what is not).
async fn tell_kept(ctx: &ScheduleContext, obj: &SnapshotExportSchedule, run: &RunView, prune_objects: bool, gone: &[String]) {
    let name = &run.facts.name;
    let left: Vec<&String> = run.exported_urls.iter().filter(|u| !gone.contains(u)).collect();
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
