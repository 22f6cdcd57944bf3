//! The export half of [`decide`](super::decide): which objects an export writes (one per node
//! group of a node-based source; for a serverless source, the `<snapshot>-NNNN.rdb` objects found
//! once ElastiCache is done), which of the objects found are ours (by evidence), and what that
//! means for the export.

use super::*;
use crate::api::OWNER_UNKNOWN;

/// The objects an export writes, as a pattern for messages: `<target>-<node group id>.rdb` for a
/// node-based source, `<snapshot>-<shard>.rdb` for a serverless one.
pub fn export_pattern(spec: &SnapshotExportSpec) -> String {
    let part = if spec.is_serverless() { "shard" } else { "node group id" };
    format!("{}-<{part}>.rdb", spec.export_base_name())
}

/// The keys an export writes: as recorded in status, else one per node group of the source;
/// `None` when neither is known (the source is gone and nothing was recorded; or a serverless
/// source, whose export's keys are known only from the bucket).
fn expected_keys(spec: &SnapshotExportSpec, status: &SnapshotExportStatus, source: Option<&SnapshotInfo>) -> Option<Vec<String>> {
    let prefix = format!("s3://{}/", spec.target_bucket.as_deref().unwrap_or_default());
    let recorded: Vec<String> = status.expected_objects.iter().filter_map(|u| u.strip_prefix(&prefix)).map(str::to_string).collect();
    if !recorded.is_empty() {
        return Some(recorded);
    }
    source.filter(|_| !spec.is_serverless()).map(|s| object_keys(spec, s))
}

/// One key per node group of `snapshot`, sorted (none for a serverless snapshot).
pub(super) fn object_keys(spec: &SnapshotExportSpec, snapshot: &SnapshotInfo) -> Vec<String> {
    let mut keys: Vec<String> = snapshot
        .node_group_ids
        .iter()
        .take(crate::aws::MAX_NODE_GROUPS)
        .map(|id| export_object_key(&spec.export_base_name(), id))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

pub(super) fn urls(spec: &SnapshotExportSpec, keys: &[String]) -> Vec<String> {
    keys.iter().map(|k| format!("s3://{}/{k}", spec.target_bucket.as_deref().unwrap_or_default())).collect()
}

#[allow(clippy::too_many_arguments)]
pub(super) fn decide_export(
    spec: &SnapshotExportSpec,
    status: &SnapshotExportStatus,
    source: Option<&SnapshotInfo>,
    objects: &[ExportObject],
    claimed_by: Option<&Claim>,
    accepted: bool,
    intent: bool,
    clock: Clock,
) -> Decision {
    let bucket = spec.target_bucket.as_deref().unwrap_or_default();
    let source_status = source.map(|s| s.status.as_str().to_string());
    let expected = expected_keys(spec, status, source);
    let relevant: Vec<&ExportObject> = objects
        .iter()
        .filter(|o| match &expected {
            Some(keys) => keys.contains(&o.key),
            // A serverless export's shards are not known in advance: its objects by their shape.
            None => !spec.is_serverless() || spec.is_serverless_export_key(&o.key),
        })
        .collect();
    // Written no earlier than an intent (give or take the clock skew): that request may have
    // written it.
    let after = |o: &ExportObject, intent: Option<Timestamp>| {
        let since = intent.map(|t| t.checked_sub(ADOPTION_CLOCK_SKEW).unwrap_or(t));
        matches!((o.last_modified, since), (Some(at), Some(since)) if at >= since)
    };
    // Another object's unresolved request is a claim only if it could have written one of them.
    let claimed_by = claimed_by.filter(|c| c.accepted || relevant.iter().any(|o| after(o, c.requested_at)));
    // Evidence that an object is ours: our request was accepted, or its outcome is unknown and
    // nobody else holds a request that may have written these keys; and it was written after we asked.
    let may_adopt = accepted || (intent && claimed_by.is_none());
    let requested = status.copy_requested_at.as_ref().map(|t| t.0);
    let since = requested.map(|t| t.checked_sub(ADOPTION_CLOCK_SKEW).unwrap_or(t));
    let is_ours = |o: &ExportObject| may_adopt && after(o, requested);
    let (ours, foreign): (Vec<&ExportObject>, Vec<&ExportObject>) = relevant.into_iter().partition(|o| is_ours(o));
    // Ours but for another object's request, whose outcome is unknown too: who wrote them cannot be told.
    if let (Some(other), Some(claim)) = (foreign.first(), claimed_by.filter(|c| !c.accepted && !accepted)) {
        if foreign.iter().all(|o| after(o, requested)) {
            return owner_unknown(spec, &other.key, &claim.owner);
        }
    }
    if let Some(other) = foreign.first() {
        let problem = S3Problem::ObjectAlreadyExists { bucket: bucket.into(), key: other.key.clone() };
        // A request whose outcome is unknown keeps its intent (it may have been accepted), unless
        // the object predates it: ElastiCache refuses to export over an existing key.
        let predates = matches!((other.last_modified, since), (Some(at), Some(since)) if at < since);
        let mut decision = stalled_by(spec, &CopyFault::S3(problem), !intent || (predates && !accepted));
        if let (Decision::Stalled { message, .. }, Some(claim)) = (&mut decision, claimed_by) {
            message.push_str(&format!(" The object belongs to the export of SnapshotExport {}.", claim.owner));
        }
        return decision;
    }
    if !ours.is_empty() {
        let Some(expected) = expected else {
            if spec.is_serverless() {
                return serverless_objects_found(spec, source, &ours, source_status);
            }
            return Decision::Stalled {
                reason: EXPORT_INCOMPLETE.into(),
                message: format!(
                    "The source snapshot {:?} is gone, so which objects its export must write cannot be known; found {} (written after this SnapshotExport's request, so its export took place). Nothing more is looked at or requested: check the objects in s3://{bucket}, then create a new SnapshotExport if they are not complete.",
                    spec.source_snapshot_name,
                    ours.iter().map(|o| o.key.as_str()).collect::<Vec<_>>().join(", ")
                ),
                clear_intent: false,
            };
        };
        let missing: Vec<&String> = expected.iter().filter(|k| !ours.iter().any(|o| &o.key == *k)).collect();
        if missing.is_empty() {
            let exported_objects = urls(spec, &expected);
            return Decision::Completed { target_arn: None, target_status: None, exported_objects, source_status };
        }
        let progress = format!("{} of {} objects written", expected.len() - missing.len(), expected.len());
        let busy = source.is_some_and(|s| matches!(s.status, SnapshotStatus::InProgress(_)));
        let newest = ours.iter().filter_map(|o| o.last_modified).max();
        let still_growing = newest.is_some_and(|at| clock.now.duration_since(at) < clock.export_grace);
        if busy || still_growing {
            return exporting(spec, progress, source_status, urls(spec, &expected));
        }
        return Decision::Stalled {
            reason: EXPORT_INCOMPLETE.into(),
            message: format!(
                "The export of {:?} to s3://{bucket} stopped after {progress}; missing: {}. ElastiCache is no longer exporting (the source is {}). Check the bucket's grants and free space, then create a new SnapshotExport with another targetSnapshotName.",
                spec.source_snapshot_name,
                missing.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "),
                source_status.as_deref().unwrap_or("gone")
            ),
            clear_intent: false,
        };
    }
    let Some(source) = source else {
        if accepted {
            // Terminal (a stall after acceptance): say so rather than promise a retry.
            return Decision::Stalled {
                reason: "ExportFailed".into(),
                message: format!(
                    "ElastiCache accepted the export of {:?} to s3://{bucket}, but the source snapshot is gone and no object was written. Create a new SnapshotExport.",
                    spec.source_snapshot_name
                ),
                clear_intent: false,
            };
        }
        return source_not_found(spec, intent);
    };
    match &source.status {
        SnapshotStatus::Failed => Decision::Stalled {
            reason: "SourceSnapshotFailed".into(),
            message: format!(
                "The source snapshot {:?} is in state failed and cannot be exported. Take a new snapshot and create a new SnapshotExport.",
                spec.source_snapshot_name
            ),
            clear_intent: !intent,
        },
        SnapshotStatus::InProgress(s) if accepted => {
            exporting(spec, format!("the source snapshot is {s}"), source_status.clone(), expected.map(|k| urls(spec, &k)).unwrap_or_default())
        }
        // Our request may or may not have been carried out: a busy source does not say whose
        // export it is. Keep the intent, request nothing, and look again once it is available.
        SnapshotStatus::InProgress(s) if intent => Decision::InProgress {
            phase: Phase::Pending,
            message: format!(
                "The outcome of the export request is unknown and the source snapshot {:?} is {s}; waiting for it to be available to see whether the export was ours.",
                spec.source_snapshot_name
            ),
            target_arn: None,
            target_status: None,
            source_status,
            expected_objects: vec![],
        },
        SnapshotStatus::InProgress(s) => Decision::WaitForSource {
            reason: "SourceSnapshotNotReady",
            message: format!("Waiting for the source snapshot {:?} to become available (it is {s}).", spec.source_snapshot_name),
            source_status,
        },
        SnapshotStatus::Available if accepted => {
            // From acceptance: `copyRequestedAt` keeps the first intent, which may be much older.
            let since = status.copy_accepted_at.as_ref().or(status.copy_requested_at.as_ref()).map(|t| clock.now.duration_since(t.0)).unwrap_or_default();
            if since < clock.export_grace {
                let expected = expected.map(|k| urls(spec, &k)).unwrap_or_default();
                exporting(spec, "waiting for ElastiCache to start writing objects".into(), source_status, expected)
            } else {
                Decision::Stalled {
                    reason: "ExportFailed".into(),
                    message: format!(
                        "ElastiCache accepted the export of {:?} to s3://{bucket} but wrote no {} object and the source is available again. Check the bucket's grants, then create a new SnapshotExport.",
                        spec.source_snapshot_name,
                        export_pattern(spec)
                    ),
                    clear_intent: false,
                }
            }
        }
        // Our request may still be on its way, or may have been accepted and then failed
        // without writing anything: AWS shows either exactly as a request that never arrived. A
        // second request could export twice, which is worse than a stall: look again for the
        // export grace, then stop for good, saying how to retry.
        SnapshotStatus::Available if intent => {
            let requested = status.copy_requested_at.as_ref().map(|t| t.0).unwrap_or(clock.now);
            if clock.now.duration_since(requested) < clock.export_grace {
                return Decision::InProgress {
                    phase: Phase::Pending,
                    message: format!(
                        "The outcome of the export request made at {requested} is unknown and AWS shows nothing of it yet (the source snapshot {:?} is available, s3://{bucket} holds no {} object); looking again until {} before giving up. No second request is sent: it could export twice.",
                        spec.source_snapshot_name,
                        export_pattern(spec),
                        requested.checked_add(clock.export_grace).unwrap_or(requested)
                    ),
                    target_arn: None,
                    target_status: None,
                    source_status,
                    expected_objects: vec![],
                };
            }
            Decision::Stalled {
                reason: OUTCOME_UNKNOWN.into(),
                message: format!(
                    "The outcome of the export request made at {requested} is unknown (its answer was lost: a timeout, a 5xx, or the operator stopped), and AWS showed nothing of it since: the source snapshot {:?} is available and s3://{bucket} holds no {} object. An export ElastiCache accepted and then failed without writing looks the same, so no second request is sent (it could export twice). Check the ElastiCache events of the source's cache for a failed export (aws elasticache describe-events --duration 1440) and the bucket; to request the export again, delete this SnapshotExport and create it again (a schedule's run: its schedule's next run exports again).",
                    spec.source_snapshot_name,
                    export_pattern(spec)
                ),
                clear_intent: false,
            }
        }
        SnapshotStatus::Available => Decision::RequestCopy,
    }
}

/// Our request's outcome is unknown, and so is that of another SnapshotExport exporting to the
/// same keys: either may have written them. Neither adopts them, and nothing is requested again.
fn owner_unknown(spec: &SnapshotExportSpec, key: &str, other: &str) -> Decision {
    let bucket = spec.target_bucket.as_deref().unwrap_or_default();
    Decision::Stalled {
        reason: OWNER_UNKNOWN.into(),
        message: format!(
            "s3://{bucket}/{key} was written after this SnapshotExport requested its export, but SnapshotExport {other} also requested an export to the same keys, and the outcome of both requests is unknown: which one wrote it cannot be told, so neither adopts it and nothing is requested again. Check the objects, then delete the SnapshotExport that should not own them: the other adopts them at its next look."
        ),
        clear_intent: false,
    }
}

/// A serverless export with objects of ours in the bucket: which keys it writes is known only
/// from the bucket, so it is complete once ElastiCache is no longer exporting the snapshot
/// (available again, or deleted: a snapshot being exported cannot be deleted).
fn serverless_objects_found(
    spec: &SnapshotExportSpec,
    source: Option<&SnapshotInfo>,
    ours: &[&ExportObject],
    source_status: Option<String>,
) -> Decision {
    let mut keys: Vec<String> = ours.iter().map(|o| o.key.clone()).collect();
    keys.sort();
    keys.dedup();
    match source.map(|s| &s.status) {
        Some(SnapshotStatus::InProgress(s)) => {
            exporting(spec, format!("{} object(s) written so far, the snapshot is {s}", keys.len()), source_status, vec![])
        }
        _ => Decision::Completed { target_arn: None, target_status: None, exported_objects: urls(spec, &keys), source_status },
    }
}

pub(super) fn exporting(
    spec: &SnapshotExportSpec,
    detail: String,
    source_status: Option<String>,
    expected_objects: Vec<String>,
) -> Decision {
    Decision::InProgress {
        phase: Phase::Exporting,
        message: format!(
            "Exporting {:?} to s3://{}/{}: {detail}.",
            spec.source_snapshot_name,
            spec.target_bucket.as_deref().unwrap_or_default(),
            export_pattern(spec)
        ),
        target_arn: None,
        target_status: None,
        source_status,
        expected_objects,
    }
}
