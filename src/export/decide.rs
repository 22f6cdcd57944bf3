//! The pure heart of the reconciler: given the spec, the recorded status and what was just
//! observed in AWS, decide what to do. No I/O here; every branch is table-tested below.
//!
//! Exactly once rests on `status.copyRequestedAt` (the intent, written before CopySnapshot) and
//! `status.copyAcceptedAt` (AWS accepted it; never cleared): an intent without acceptance means
//! "a request may or may not have reached AWS". An accepted request is never repeated, and a
//! stall after acceptance is terminal (no AWS call ever again); an intent whose outcome is
//! unknown is resolved by looking: our tagged copy is adopted (by its ownership tag, never by
//! name or ARN); export objects only by evidence (see [`decide`]); anything else means the
//! request never took effect.

use crate::api::{Phase, SnapshotExportSpec, SnapshotExportStatus};
use crate::aws::{export_object_key, AwsError, CopyFault, ExportObject, S3Problem, SnapshotInfo, SnapshotStatus};
use crate::safety::Verdict;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// How long an accepted export may show no objects, or a partial set that stopped growing, while
/// its source is `available` before it is reported as failed or incomplete (ElastiCache marks the
/// source in progress while exporting). The default of `--export-grace-seconds`.
pub const EXPORT_START_GRACE: SignedDuration = SignedDuration::from_mins(10);

/// How much earlier than our first intent (`copyRequestedAt`, the operator's clock) an export
/// object's `LastModified` (S3's clock) may be and still count as written by our request: the
/// clock skew tolerated between the operator's node and S3. An object older than that was there
/// before we asked, and ElastiCache refuses to export over an existing key.
pub const ADOPTION_CLOCK_SKEW: SignedDuration = SignedDuration::from_secs(30);

/// How many times in a row AWS may answer a request with "already exists" or "busy" while the
/// look finds nothing of ours before the object stalls with `AwsAnswerInconsistent`.
pub const RECHECK_LIMIT: u32 = 5;

/// Stall reasons after which an accepted object is not terminal: they are healed by an edit of
/// the object (reverting the spec), not by AWS.
const HEALED_BY_AN_EDIT: &[&str] = &["SpecChanged", "InvalidSpec"];

/// Whether AWS accepted this object's request: recorded durably in `copyAcceptedAt` (objects
/// written before that field existed: their phase says so while in flight).
pub fn is_accepted(status: &SnapshotExportStatus) -> bool {
    status.is_accepted()
}

/// Whether the object is finished for good without success: AWS accepted its request and it then
/// stalled (the copy failed or vanished, the export failed). No AWS call is ever made for it
/// again; a new copy is a new SnapshotExport.
pub fn is_terminal(status: &SnapshotExportStatus) -> bool {
    status.phase == Some(Phase::Failed)
        && status.copy_accepted_at.is_some()
        && !status.last_error.as_ref().is_some_and(|e| HEALED_BY_AN_EDIT.contains(&e.reason.as_str()))
}

/// `SpecChanged` when the spec differs from the one the request was made for (an edit that the
/// API server admitted: a cluster without CEL); no AWS call is made for the new spec.
pub fn spec_changed(spec: &SnapshotExportSpec, status: &SnapshotExportStatus) -> Option<Decision> {
    let recorded = status.spec_hash.as_ref()?;
    (*recorded != spec.hash()).then(|| Decision::Stalled {
        reason: "SpecChanged".into(),
        message: format!(
            "The spec was changed after the {} was requested from ElastiCache (the requested spec has hash {recorded}). A SnapshotExport describes one copy, so nothing is requested for the new spec: revert the change, or create a new SnapshotExport for the new copy.",
            if spec.is_export() { "export" } else { "copy" }
        ),
        clear_intent: false,
    })
}

/// After a `Recheck` (AWS answered "already exists" or "busy" while the look finds nothing of
/// ours): look again with backoff, or stall once AWS has answered so `repeats` times in a row.
pub fn bounded_recheck(spec: &SnapshotExportSpec, repeats: u32, answer: &str) -> Decision {
    if repeats < RECHECK_LIMIT {
        return Decision::Recheck;
    }
    let what = match &spec.target_bucket {
        Some(bucket) => format!("export to s3://{bucket}/{}-<node group id>.rdb", spec.target_snapshot_name),
        None => format!("copy {:?}", spec.target_snapshot_name),
    };
    Decision::Stalled {
        reason: "AwsAnswerInconsistent".into(),
        message: format!(
            "AWS keeps answering {answer:?} ({repeats} times in a row), yet the operator finds no {what} of this SnapshotExport. Check the target in the ElastiCache console (and the bucket); the request is retried slowly."
        ),
        clear_intent: false,
    }
}

/// The time of a decision, and the export grace period in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    pub now: Timestamp,
    pub export_grace: SignedDuration,
}

impl From<Timestamp> for Clock {
    fn from(now: Timestamp) -> Self {
        Self { now, export_grace: EXPORT_START_GRACE }
    }
}

/// What was seen in AWS for one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// In-region copy: the target snapshot, and the value of its ownership tag when it had to
    /// be looked up (`None` when not looked up: the target is already adopted in status).
    InRegion { target: Option<SnapshotInfo>, owner_tag: Option<Option<String>> },
    /// Export: the source snapshot, the `<target>-<node group id>.rdb` objects in the bucket,
    /// and another SnapshotExport whose request for the same bucket and target AWS accepted
    /// (looked up only while this object's own outcome is unknown).
    Export { source: Option<SnapshotInfo>, objects: Vec<ExportObject>, claimed_by: Option<String> },
    /// Nothing was looked at: no request was ever made for this object, so nothing of ours can
    /// exist, and CopySnapshot itself refuses (one call, the same outcome) what a look would find.
    NeverRequested,
}

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Record the intent in status, then call CopySnapshot.
    RequestCopy,
    /// Nothing to call yet: the source is not available (phase stays Pending).
    WaitForSource { reason: &'static str, message: String, source_status: Option<String> },
    /// The copy or export is in flight; look again later. `phase: Pending` while the outcome of
    /// an export request is unknown and its source is busy. `expected_objects`: the export's
    /// objects, once known.
    InProgress {
        phase: Phase,
        message: String,
        target_arn: Option<String>,
        target_status: Option<String>,
        source_status: Option<String>,
        expected_objects: Vec<String>,
    },
    /// Done.
    Completed { target_arn: Option<String>, target_status: Option<String>, exported_objects: Vec<String>, source_status: Option<String> },
    /// Cannot progress without an outside change; retried slowly. `clear_intent` when AWS
    /// definitively refused, so no request of ours can be in flight.
    Stalled { reason: String, message: String, clear_intent: bool },
    /// AWS answered that the target exists: look again (our own copy is adopted by tag).
    Recheck,
    /// A transient AWS failure: back off and try again, reporting the reason. `clear_intent`
    /// when it answered CopySnapshot and proves the request was not carried out (throttling).
    RetryLater { reason: &'static str, message: String, clear_intent: bool },
}

/// Decide from an observation (before any call).
///
/// Export objects are adopted only by evidence: an accepted request (or one whose outcome is
/// unknown while no other SnapshotExport holds an accepted request for the same bucket and
/// target) adopts the objects at the source's node group keys that were written no earlier than
/// its first intent minus [`ADOPTION_CLOCK_SKEW`]. A busy source is no such evidence: while the
/// outcome is unknown it only means "wait and look again once it is available".
pub fn decide(
    spec: &SnapshotExportSpec,
    status: &SnapshotExportStatus,
    uid: &str,
    observed: &Observation,
    clock: impl Into<Clock>,
) -> Decision {
    let clock = clock.into();
    let accepted = is_accepted(status);
    let intent = status.copy_requested_at.is_some();
    match observed {
        Observation::NeverRequested => Decision::RequestCopy,
        Observation::InRegion { target: None, .. } if accepted => Decision::Stalled {
            reason: "TargetSnapshotDisappeared".into(),
            message: format!(
                "The copy {:?} was accepted by ElastiCache but no longer exists (it failed or was deleted). Delete this SnapshotExport and create a new one to copy again.",
                spec.target_snapshot_name
            ),
            clear_intent: false,
        },
        Observation::InRegion { target: None, .. } => Decision::RequestCopy,
        Observation::InRegion { target: Some(target), owner_tag } => {
            // An ARN names a snapshot by its name only, so it proves nothing about who made it:
            // the ownership tag must be ours before a copy is adopted or counted complete. Only
            // polls of a copy in progress under the ARN CopySnapshot answered skip the tag.
            let recorded = status.target_snapshot_arn.is_some() && status.target_snapshot_arn == target.arn;
            let polling = owner_tag.is_none() && recorded && matches!(target.status, SnapshotStatus::InProgress(_));
            let tagged = matches!(owner_tag, Some(Some(owner)) if owner == uid);
            if !(polling || tagged) && accepted {
                return Decision::Stalled {
                    reason: "TargetSnapshotDisappeared".into(),
                    message: format!(
                        "The copy {:?} was accepted by ElastiCache, but the snapshot now under that name does not carry this SnapshotExport's ownership tag: the copy was deleted and another snapshot took its name. The operator neither adopts nor deletes it. Create a new SnapshotExport to copy again.",
                        spec.target_snapshot_name
                    ),
                    clear_intent: false,
                };
            }
            if !(polling || tagged) {
                return Decision::Stalled {
                    reason: "TargetAlreadyExists".into(),
                    message: format!(
                        "A snapshot named {:?} already exists and was not made by this SnapshotExport; the operator never overwrites it. Delete that snapshot, or create a new SnapshotExport with another targetSnapshotName.",
                        spec.target_snapshot_name
                    ),
                    clear_intent: true,
                };
            }
            let target_status = Some(target.status.as_str().to_string());
            match &target.status {
                SnapshotStatus::Available => Decision::Completed { target_arn: target.arn.clone(), target_status, exported_objects: vec![], source_status: None },
                SnapshotStatus::Failed => Decision::Stalled {
                    reason: "CopyFailed".into(),
                    message: format!("ElastiCache reports the copy {:?} as failed. Delete the failed snapshot and create a new SnapshotExport.", spec.target_snapshot_name),
                    clear_intent: false,
                },
                SnapshotStatus::InProgress(s) => Decision::InProgress {
                    phase: Phase::Copying,
                    message: format!("Copying {:?} to {:?}: the copy is {s}.", spec.source_snapshot_name, spec.target_snapshot_name),
                    target_arn: target.arn.clone(),
                    target_status,
                    source_status: None,
                    expected_objects: vec![],
                },
            }
        }
        Observation::Export { source, objects, claimed_by } => {
            decide_export(spec, status, source.as_ref(), objects, claimed_by.as_deref(), accepted, intent, clock)
        }
    }
}

/// The keys an export writes: as recorded in status, else one per node group of the source;
/// `None` when neither is known (the source is gone and nothing was recorded).
fn expected_keys(spec: &SnapshotExportSpec, status: &SnapshotExportStatus, source: Option<&SnapshotInfo>) -> Option<Vec<String>> {
    let prefix = format!("s3://{}/", spec.target_bucket.as_deref().unwrap_or_default());
    let recorded: Vec<String> = status.expected_objects.iter().filter_map(|u| u.strip_prefix(&prefix)).map(str::to_string).collect();
    if !recorded.is_empty() {
        return Some(recorded);
    }
    source.map(|s| object_keys(spec, s))
}

/// One key per node group of `snapshot`, sorted.
fn object_keys(spec: &SnapshotExportSpec, snapshot: &SnapshotInfo) -> Vec<String> {
    let mut keys: Vec<String> = snapshot
        .node_group_ids
        .iter()
        .take(crate::aws::MAX_NODE_GROUPS)
        .map(|id| export_object_key(&spec.target_snapshot_name, id))
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn urls(spec: &SnapshotExportSpec, keys: &[String]) -> Vec<String> {
    keys.iter().map(|k| format!("s3://{}/{k}", spec.target_bucket.as_deref().unwrap_or_default())).collect()
}

#[allow(clippy::too_many_arguments)]
fn decide_export(
    spec: &SnapshotExportSpec,
    status: &SnapshotExportStatus,
    source: Option<&SnapshotInfo>,
    objects: &[ExportObject],
    claimed_by: Option<&str>,
    accepted: bool,
    intent: bool,
    clock: Clock,
) -> Decision {
    let bucket = spec.target_bucket.as_deref().unwrap_or_default();
    let target = &spec.target_snapshot_name;
    let source_status = source.map(|s| s.status.as_str().to_string());
    let expected = expected_keys(spec, status, source);
    let relevant: Vec<&ExportObject> = objects.iter().filter(|o| expected.as_ref().is_none_or(|keys| keys.contains(&o.key))).collect();
    // Evidence that an object is ours: our request was accepted, or its outcome is unknown and
    // nobody else holds an accepted request for these keys; and it was written after we asked.
    let may_adopt = accepted || (intent && claimed_by.is_none());
    let since = status.copy_requested_at.as_ref().map(|t| t.0 - ADOPTION_CLOCK_SKEW);
    let is_ours = |o: &ExportObject| may_adopt && matches!((o.last_modified, since), (Some(at), Some(since)) if at >= since);
    let (ours, foreign): (Vec<&ExportObject>, Vec<&ExportObject>) = relevant.into_iter().partition(|o| is_ours(o));
    if let Some(other) = foreign.first() {
        let problem = S3Problem::ObjectAlreadyExists { bucket: bucket.into(), key: other.key.clone() };
        let mut decision = stalled_by(&CopyFault::S3(problem), !accepted);
        if let (Decision::Stalled { message, .. }, Some(owner)) = (&mut decision, claimed_by) {
            message.push_str(&format!(" The object belongs to the export of SnapshotExport {owner}."));
        }
        return decision;
    }
    if !ours.is_empty() {
        let Some(expected) = expected else {
            return Decision::Stalled {
                reason: "ExportIncomplete".into(),
                message: format!(
                    "The source snapshot {:?} is gone, so which objects its export must write cannot be known; found {}. Check the objects in s3://{bucket}, then create a new SnapshotExport.",
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
            reason: "ExportIncomplete".into(),
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
        return Decision::Stalled {
            reason: "SourceSnapshotNotFound".into(),
            message: format!(
                "The source snapshot {:?} was not found in the operator's region. Check sourceSnapshotName and the region; the export is retried, so creating the snapshot heals it.",
                spec.source_snapshot_name
            ),
            clear_intent: !accepted,
        };
    };
    match &source.status {
        SnapshotStatus::Failed => Decision::Stalled {
            reason: "SourceSnapshotFailed".into(),
            message: format!(
                "The source snapshot {:?} is in state failed and cannot be exported. Take a new snapshot and create a new SnapshotExport.",
                spec.source_snapshot_name
            ),
            clear_intent: !accepted,
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
                        "ElastiCache accepted the export of {:?} to s3://{bucket} but wrote no {target}-<node group id>.rdb object and the source is available again. Check the bucket's grants, then create a new SnapshotExport.",
                        spec.source_snapshot_name
                    ),
                    clear_intent: false,
                }
            }
        }
        SnapshotStatus::Available => Decision::RequestCopy,
    }
}

fn exporting(spec: &SnapshotExportSpec, detail: String, source_status: Option<String>, expected_objects: Vec<String>) -> Decision {
    Decision::InProgress {
        phase: Phase::Exporting,
        message: format!(
            "Exporting {:?} to s3://{}/{}-<node group id>.rdb: {detail}.",
            spec.source_snapshot_name,
            spec.target_bucket.as_deref().unwrap_or_default(),
            spec.target_snapshot_name
        ),
        target_arn: None,
        target_status: None,
        source_status,
        expected_objects,
    }
}

/// Decide from the answer to CopySnapshot.
pub fn after_copy(spec: &SnapshotExportSpec, result: &Result<SnapshotInfo, AwsError>) -> Decision {
    match result {
        // The same words the first look after the request will use, so that look rewrites nothing.
        // An export's answer is the source snapshot: its node groups name the objects to expect.
        Ok(snapshot) if spec.is_export() => exporting(
            spec,
            format!("the source snapshot is {}", snapshot.status.as_str()),
            Some(snapshot.status.as_str().to_string()),
            urls(spec, &object_keys(spec, snapshot)),
        ),
        Ok(snapshot) => Decision::InProgress {
            phase: Phase::Copying,
            message: format!(
                "Copying {:?} to {:?}: the copy is {}.",
                spec.source_snapshot_name,
                spec.target_snapshot_name,
                snapshot.status.as_str()
            ),
            target_arn: snapshot.arn.clone(),
            target_status: Some(snapshot.status.as_str().to_string()),
            source_status: None,
            expected_objects: vec![],
        },
        Err(err) => match err.fault() {
            // Either our own earlier request made it (adopted by tag on the next look) or
            // someone else's snapshot holds the name (reported as TargetAlreadyExists then).
            Some(CopyFault::SnapshotAlreadyExists { .. }) => Decision::Recheck,
            Some(CopyFault::InvalidSnapshotState { message }) => Decision::WaitForSource {
                reason: "SourceSnapshotNotReady",
                message: format!(
                    "The source snapshot {:?} is busy ({message}); the copy is requested again once it is available.",
                    spec.source_snapshot_name
                ),
                source_status: None,
            },
            Some(fault) => stalled_naming_bucket(spec, fault),
            // Throttled: certainly not carried out, so nothing of ours is in flight. A timeout,
            // a 5xx or an unreadable answer may have taken effect: the intent stays.
            None => retry(err, err.refused_before_execution()),
        },
    }
}

/// Decide from the answer to a CopySnapshot sent while an earlier request's outcome was still
/// unknown (its intent was recorded and never resolved: the operator crashed with it in flight,
/// or it failed transiently). For an export, "the source is busy" or "the object key exists" may
/// be that earlier request at work: keep the intent and look again (export objects written under
/// an intent are adopted), rather than clear it and later report our own objects as someone
/// else's (`S3ObjectAlreadyExists`).
pub fn after_repeated_copy(spec: &SnapshotExportSpec, result: &Result<SnapshotInfo, AwsError>) -> Decision {
    let ours_maybe = matches!(
        result.as_ref().err().and_then(AwsError::fault),
        Some(CopyFault::InvalidSnapshotState { .. } | CopyFault::S3(S3Problem::ObjectAlreadyExists { .. }))
    );
    if spec.is_export() && ours_maybe {
        return Decision::Recheck;
    }
    // A repeated request that failed transiently says nothing of the earlier one: keep its intent.
    if let Err(err @ AwsError::Transient { .. }) = result {
        return retry_later(err);
    }
    after_copy(spec, result)
}

/// A transient failure as a decision (the intent, if any, stays).
pub fn retry_later(err: &AwsError) -> Decision {
    retry(err, false)
}

fn retry(err: &AwsError, clear_intent: bool) -> Decision {
    let reason = match err {
        AwsError::Transient { code, .. } if code.contains("Throttl") || code == "SlowDown" || code.contains("429") => "AwsThrottled",
        AwsError::Fault { fault: CopyFault::AccessDenied { .. }, .. } => "AwsAccessDenied",
        _ => "AwsUnavailable",
    };
    Decision::RetryLater { reason, message: format!("{err}; retrying with backoff."), clear_intent }
}

/// The safety gate's verdict (`crate::safety`) as a decision.
pub fn from_safety(verdict: Verdict) -> Decision {
    match verdict {
        Verdict::Proceed => Decision::RequestCopy,
        Verdict::Recheck => Decision::Recheck,
        Verdict::Stalled { reason, message, clear_intent } => Decision::Stalled { reason, message, clear_intent },
        Verdict::RetryLater(err) => retry_later(&err),
    }
}

/// A refusal as a stall; every S3 problem names its bucket (AWS's text for missing
/// permissions does not, so the bucket is added).
fn stalled_naming_bucket(spec: &SnapshotExportSpec, fault: &CopyFault) -> Decision {
    let mut decision = stalled_by(fault, true);
    if let (Decision::Stalled { message, .. }, CopyFault::S3(S3Problem::InsufficientPermissions), Some(bucket)) =
        (&mut decision, fault, &spec.target_bucket)
    {
        *message = format!("Exporting to S3 bucket {bucket}: {message}");
    }
    decision
}

fn stalled_by(fault: &CopyFault, clear_intent: bool) -> Decision {
    Decision::Stalled { reason: fault.reason().into(), message: format!("{} {}", fault.message(), fault.solution()), clear_intent }
}

/// An invalid spec: stalled, no AWS call.
pub fn invalid_spec(problems: &[String]) -> Decision {
    Decision::Stalled {
        reason: "InvalidSpec".into(),
        message: format!("The spec is invalid: {}. Create a corrected SnapshotExport.", problems.join("; ")),
        clear_intent: false,
    }
}

/// A `sourceKind: Serverless` object, before the controller copies serverless snapshots: it
/// stalls without any AWS call (never a node-based call on a serverless name).
pub fn serverless_not_supported() -> Decision {
    Decision::Stalled {
        reason: "ServerlessNotSupported".into(),
        message: "sourceKind Serverless is accepted by the API, but this operator version does not copy or export serverless snapshots yet; no AWS call was made. An operator version that supports them picks this object up when it starts.".into(),
        clear_intent: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SnapshotExportSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const UID: &str = "uid-1";

    fn spec(bucket: Option<&str>) -> SnapshotExportSpec {
        SnapshotExportSpec::new("src", "dst", bucket)
    }
    fn now() -> Timestamp {
        Timestamp::from_second(1_000_000).unwrap()
    }
    fn status(phase: Option<Phase>, intent: bool, arn: Option<&str>) -> SnapshotExportStatus {
        SnapshotExportStatus {
            phase,
            copy_requested_at: intent.then(|| Time(Timestamp::from_second(999_990).unwrap())),
            target_snapshot_arn: arn.map(str::to_string),
            ..Default::default()
        }
    }
    fn snap(status: &str, groups: u32) -> SnapshotInfo {
        snap_ids(status, &(1..=groups).map(|n| format!("{n:04}")).collect::<Vec<_>>())
    }
    fn snap_ids(status: &str, ids: &[String]) -> SnapshotInfo {
        SnapshotInfo { name: "x".into(), arn: Some("arn:dst".into()), status: SnapshotStatus::parse(status), node_group_ids: ids.to_vec() }
    }
    fn in_region(target: Option<SnapshotInfo>, owner: Option<Option<&str>>) -> Observation {
        Observation::InRegion { target, owner_tag: owner.map(|o| o.map(str::to_string)) }
    }
    /// Objects written one second after the recorded intent (999_990).
    fn export(source: Option<SnapshotInfo>, objects: &[&str]) -> Observation {
        export_at(source, &objects.iter().map(|k| (*k, 999_991)).collect::<Vec<_>>(), None)
    }
    /// Objects written at the given seconds, and the object claiming them, if any.
    fn export_at(source: Option<SnapshotInfo>, objects: &[(&str, i64)], claimed_by: Option<&str>) -> Observation {
        Observation::Export {
            source,
            objects: objects
                .iter()
                .map(|(k, at)| ExportObject { key: k.to_string(), last_modified: Some(Timestamp::from_second(*at).unwrap()) })
                .collect(),
            claimed_by: claimed_by.map(str::to_string),
        }
    }
    /// AWS accepted the request (recorded durably), and the phase moved on since.
    fn accepted_but(phase: Phase) -> SnapshotExportStatus {
        let mut st = status(Some(phase), true, Some("arn:dst"));
        st.copy_accepted_at = Some(Time(Timestamp::from_second(999_995).unwrap()));
        st
    }
    fn kind(d: &Decision) -> String {
        match d {
            Decision::RequestCopy => "RequestCopy".into(),
            Decision::WaitForSource { reason, .. } => format!("Wait:{reason}"),
            Decision::InProgress { phase, .. } => format!("InProgress:{phase:?}"),
            Decision::Completed { .. } => "Completed".into(),
            Decision::Stalled { reason, clear_intent, .. } => format!("Stalled:{reason}:{}", if *clear_intent { "clear" } else { "keep" }),
            Decision::Recheck => "Recheck".into(),
            Decision::RetryLater { reason, clear_intent, .. } => {
                format!("Retry:{reason}:{}", if *clear_intent { "clear" } else { "keep" })
            }
        }
    }

    #[test]
    fn in_region_copy_table() {
        let cases: Vec<(&str, SnapshotExportStatus, Observation, &str)> = vec![
            ("never requested: no look needed", status(None, false, None), Observation::NeverRequested, "RequestCopy"),
            ("fresh, target absent", status(None, false, None), in_region(None, None), "RequestCopy"),
            (
                "intent, outcome unknown, target absent: the call never took effect",
                status(Some(Phase::Pending), true, None),
                in_region(None, None),
                "RequestCopy",
            ),
            (
                "accepted, target vanished",
                status(Some(Phase::Copying), true, Some("arn:dst")),
                in_region(None, None),
                "Stalled:TargetSnapshotDisappeared:keep",
            ),
            (
                "foreign target before any request",
                status(None, false, None),
                in_region(Some(snap("available", 1)), Some(None)),
                "Stalled:TargetAlreadyExists:clear",
            ),
            (
                "target tagged by another object",
                status(Some(Phase::Pending), true, None),
                in_region(Some(snap("available", 1)), Some(Some("other"))),
                "Stalled:TargetAlreadyExists:clear",
            ),
            (
                "crash after the call: our tagged copy is adopted",
                status(Some(Phase::Pending), true, None),
                in_region(Some(snap("creating", 1)), Some(Some(UID))),
                "InProgress:Copying",
            ),
            (
                "adopted copy still creating",
                status(Some(Phase::Copying), true, Some("arn:dst")),
                in_region(Some(snap("creating", 1)), None),
                "InProgress:Copying",
            ),
            (
                "unknown status is in progress",
                status(Some(Phase::Copying), true, Some("arn:dst")),
                in_region(Some(snap("weird", 1)), None),
                "InProgress:Copying",
            ),
            (
                "copy available, tagged ours",
                status(Some(Phase::Copying), true, Some("arn:dst")),
                in_region(Some(snap("available", 1)), Some(Some(UID))),
                "Completed",
            ),
            (
                "copy replaced under the same name (same ARN), untagged: never adopted",
                status(Some(Phase::Copying), true, Some("arn:dst")),
                in_region(Some(snap("available", 1)), Some(None)),
                "Stalled:TargetSnapshotDisappeared:keep",
            ),
            (
                "a durable acceptance outlives the phase: a stalled copy's name taken by another",
                accepted_but(Phase::Failed),
                in_region(Some(snap("available", 1)), Some(Some("other"))),
                "Stalled:TargetSnapshotDisappeared:keep",
            ),
            (
                "a durable acceptance outlives the phase: the failed copy deleted by the user",
                accepted_but(Phase::Failed),
                in_region(None, None),
                "Stalled:TargetSnapshotDisappeared:keep",
            ),
            (
                "copy failed",
                status(Some(Phase::Copying), true, Some("arn:dst")),
                in_region(Some(snap("failed", 1)), Some(Some(UID))),
                "Stalled:CopyFailed:keep",
            ),
        ];
        for (name, st, obs, want) in cases {
            assert_eq!(kind(&decide(&spec(None), &st, UID, &obs, now())), want, "{name}");
        }
    }

    #[test]
    fn export_table() {
        let b = Some("bkt");
        let cases: Vec<(&str, SnapshotExportStatus, Observation, &str)> = vec![
            ("fresh, source available", status(None, false, None), export(Some(snap("available", 2)), &[]), "RequestCopy"),
            ("fresh, source creating", status(None, false, None), export(Some(snap("creating", 2)), &[]), "Wait:SourceSnapshotNotReady"),
            ("fresh, source missing", status(None, false, None), export(None, &[]), "Stalled:SourceSnapshotNotFound:clear"),
            (
                "accepted, source gone, nothing written: terminal, no promise of a retry",
                status(Some(Phase::Exporting), true, None),
                export(None, &[]),
                "Stalled:ExportFailed:keep",
            ),
            ("source failed", status(None, false, None), export(Some(snap("failed", 1)), &[]), "Stalled:SourceSnapshotFailed:clear"),
            (
                "foreign object before any request",
                status(None, false, None),
                export(Some(snap("available", 1)), &["dst-0001.rdb"]),
                "Stalled:S3ObjectAlreadyExists:clear",
            ),
            (
                "intent unknown, source exporting: maybe not ours, wait and keep the intent",
                status(Some(Phase::Pending), true, None),
                export(Some(snap("exporting", 2)), &[]),
                "InProgress:Pending",
            ),
            (
                "accepted, source exporting: ours",
                status(Some(Phase::Exporting), true, None),
                export(Some(snap("exporting", 2)), &[]),
                "InProgress:Exporting",
            ),
            (
                "intent unknown, nothing happened",
                status(Some(Phase::Pending), true, None),
                export(Some(snap("available", 2)), &[]),
                "RequestCopy",
            ),
            (
                "crash after the call: objects adopted",
                status(Some(Phase::Pending), true, None),
                export(Some(snap("available", 2)), &["dst-0001.rdb", "dst-0002.rdb"]),
                "Completed",
            ),
            (
                "accepted, partially written",
                status(Some(Phase::Exporting), true, None),
                export(Some(snap("exporting", 2)), &["dst-0001.rdb"]),
                "InProgress:Exporting",
            ),
            (
                "accepted, all written",
                status(Some(Phase::Exporting), true, None),
                export(Some(snap("available", 2)), &["dst-0001.rdb", "dst-0002.rdb"]),
                "Completed",
            ),
            (
                "accepted, not started yet (within grace)",
                status(Some(Phase::Exporting), true, None),
                export(Some(snap("available", 2)), &[]),
                "InProgress:Exporting",
            ),
        ];
        for (name, st, obs, want) in cases {
            assert_eq!(kind(&decide(&spec(b), &st, UID, &obs, now())), want, "{name}");
        }
    }

    #[test]
    fn accepted_export_with_no_objects_after_grace_fails_without_a_second_request() {
        let mut st = status(Some(Phase::Exporting), true, None);
        st.copy_requested_at = Some(Time(now() - EXPORT_START_GRACE - SignedDuration::from_secs(1)));
        let d = decide(&spec(Some("bkt")), &st, UID, &export(Some(snap("available", 1)), &[]), now());
        assert_eq!(kind(&d), "Stalled:ExportFailed:keep");
    }

    #[test]
    fn completed_export_lists_s3_urls() {
        let d = decide(
            &spec(Some("bkt")),
            &status(Some(Phase::Exporting), true, None),
            UID,
            &export(Some(snap("available", 2)), &["dst-0002.rdb", "dst-0001.rdb"]),
            now(),
        );
        let Decision::Completed { exported_objects, .. } = d else { panic!("{d:?}") };
        assert_eq!(exported_objects, ["s3://bkt/dst-0001.rdb", "s3://bkt/dst-0002.rdb"]);
    }

    #[test]
    fn a_stall_after_acceptance_is_terminal_unless_an_edit_heals_it() {
        let stalled = |reason: &str, accepted: bool| SnapshotExportStatus {
            phase: Some(Phase::Failed),
            copy_accepted_at: accepted.then(|| Time(now())),
            last_error: Some(crate::api::LastError { reason: reason.into(), message: "m".into() }),
            ..Default::default()
        };
        for reason in ["CopyFailed", "TargetSnapshotDisappeared", "ExportFailed", "ExportIncomplete"] {
            assert!(is_terminal(&stalled(reason, true)), "{reason}");
            assert!(!is_terminal(&stalled(reason, false)), "{reason} before acceptance is retried");
        }
        assert!(!is_terminal(&stalled("SpecChanged", true)), "reverting the spec heals it");
        assert!(!is_terminal(&accepted_but(Phase::Copying)));
        assert!(is_accepted(&accepted_but(Phase::Failed)) && is_accepted(&status(Some(Phase::Exporting), true, None)));
        assert!(!is_accepted(&status(Some(Phase::Failed), true, None)));
    }

    #[test]
    fn an_accepted_export_stays_accepted_whatever_the_phase() {
        // The export failed (stalled) and its source is available again: never a second request.
        let d = decide(&spec(Some("bkt")), &accepted_but(Phase::Failed), UID, &export(Some(snap("available", 1)), &[]), now());
        assert_ne!(kind(&d), "RequestCopy");
    }

    #[test]
    fn a_spec_that_differs_from_the_requested_one_is_spec_changed() {
        let requested = spec(None);
        let st = SnapshotExportStatus { spec_hash: Some(requested.hash()), ..Default::default() };
        assert_eq!(spec_changed(&requested, &st), None);
        assert_eq!(spec_changed(&spec(Some("bkt")), &SnapshotExportStatus::default()), None, "no recorded spec: nothing to compare");
        let mut edited = requested.clone();
        edited.target_snapshot_name = "other".into();
        assert_eq!(kind(&spec_changed(&edited, &st).unwrap()), "Stalled:SpecChanged:keep");
        let mut tagged = requested.clone();
        tagged.tags.push(crate::api::Tag { key: "k".into(), value: None });
        assert!(spec_changed(&tagged, &st).is_some(), "any field counts");
        assert_eq!(requested.hash(), spec(None).hash(), "the hash is stable");
    }

    #[test]
    fn rechecks_are_bounded_and_the_stall_says_what_aws_keeps_answering() {
        for n in 0..RECHECK_LIMIT {
            assert_eq!(bounded_recheck(&spec(None), n, "exists"), Decision::Recheck, "{n}");
        }
        let d = bounded_recheck(&spec(None), RECHECK_LIMIT, "Snapshot dst already exists.");
        assert_eq!(kind(&d), "Stalled:AwsAnswerInconsistent:keep");
        let Decision::Stalled { message, .. } = d else { unreachable!() };
        assert!(message.contains("Snapshot dst already exists.") && message.contains("5 times"), "{message}");
    }

    #[test]
    fn insufficient_permissions_names_the_bucket() {
        let err = AwsError::classify(
            "CopySnapshot",
            Some("InvalidParameterValue"),
            Some("The authenticated user does not have sufficient permissions to perform the desired activity."),
            Some(400),
        );
        let Decision::Stalled { reason, message, .. } = after_copy(&spec(Some("bkt")), &Err(err)) else { panic!() };
        assert_eq!(reason, "InsufficientPermissions");
        assert!(message.contains("bkt") && message.contains("Contact your system administrator"), "{message}");
    }

    #[test]
    fn after_copy_table() {
        let fault = |code: &str, msg: &str| Err(AwsError::classify("CopySnapshot", Some(code), Some(msg), Some(400)));
        let cases: Vec<(Option<&str>, Result<SnapshotInfo, AwsError>, &str)> = vec![
            (None, Ok(snap("creating", 1)), "InProgress:Copying"),
            (Some("bkt"), Ok(snap("exporting", 1)), "InProgress:Exporting"),
            (None, fault("SnapshotAlreadyExistsFault", "exists"), "Recheck"),
            (None, fault("SnapshotNotFoundFault", "nope"), "Stalled:SourceSnapshotNotFound:clear"),
            (None, fault("SnapshotQuotaExceededFault", "quota"), "Stalled:SnapshotQuotaExceeded:clear"),
            (None, fault("InvalidSnapshotStateFault", "busy"), "Wait:SourceSnapshotNotReady"),
            (None, fault("TagQuotaPerResourceExceeded", "tags"), "Stalled:TagQuotaExceeded:clear"),
            (None, fault("InvalidParameterCombination", "kms"), "Stalled:InvalidParameterCombination:clear"),
            (Some("bkt"), fault("InvalidParameterValue", "The S3 bucket bkt does not exist."), "Stalled:S3BucketNotFound:clear"),
            (
                Some("bkt"),
                fault("InvalidParameterValue", "ElastiCache has not been granted WRITE permissions bkt on the S3 Bucket."),
                "Stalled:S3WritePermissionMissing:clear",
            ),
            (
                Some("bkt"),
                Err(AwsError::classify("CopySnapshot", Some("Throttling"), Some("Rate exceeded"), Some(400))),
                "Retry:AwsThrottled:clear",
            ),
            (Some("bkt"), Err(AwsError::network("CopySnapshot", "timeout")), "Retry:AwsUnavailable:keep"),
            (Some("bkt"), Err(AwsError::classify("CopySnapshot", Some("InternalFailure"), None, Some(500))), "Retry:AwsUnavailable:keep"),
            (None, Err(AwsError::classify("CopySnapshot", None, Some("garbage"), Some(200))), "Retry:AwsUnavailable:keep"),
        ];
        for (bucket, result, want) in cases {
            assert_eq!(kind(&after_copy(&spec(bucket), &result)), want, "{result:?}");
        }
    }

    #[test]
    fn a_repeated_export_refused_as_busy_or_existing_keeps_its_intent() {
        let fault = |code: &str, msg: &str| Err(AwsError::classify("CopySnapshot", Some(code), Some(msg), Some(400)));
        let busy = || fault("InvalidSnapshotState", "Snapshot src is not in the available state (current state: exporting).");
        let exists = || fault("InvalidParameterValue", "The S3 bucket bkt already contains an object with key dst-0001.rdb.");
        let cases: Vec<(Option<&str>, Result<SnapshotInfo, AwsError>, &str)> = vec![
            // The earlier request may be the export that keeps the source busy or wrote the keys.
            (Some("bkt"), busy(), "Recheck"),
            (Some("bkt"), exists(), "Recheck"),
            // Anything else is decided as for a first request.
            (Some("bkt"), Ok(snap("exporting", 1)), "InProgress:Exporting"),
            (Some("bkt"), fault("InvalidParameterValue", "The S3 bucket bkt does not exist."), "Stalled:S3BucketNotFound:clear"),
            (None, busy(), "Wait:SourceSnapshotNotReady"),
            (None, fault("SnapshotAlreadyExistsFault", "exists"), "Recheck"),
            // A repeated request throttled says nothing of the earlier one.
            (Some("bkt"), Err(AwsError::classify("CopySnapshot", Some("Throttling"), None, Some(400))), "Retry:AwsThrottled:keep"),
        ];
        for (bucket, result, want) in cases {
            assert_eq!(kind(&after_repeated_copy(&spec(bucket), &result)), want, "{result:?}");
        }
        // A first request refused as busy waits for the source (and clears its intent).
        assert_eq!(kind(&after_copy(&spec(Some("bkt")), &busy())), "Wait:SourceSnapshotNotReady");
    }

    #[test]
    fn export_objects_are_adopted_only_by_evidence() {
        let b = Some("bkt");
        let unknown = || status(Some(Phase::Pending), true, None);
        let accepted = || status(Some(Phase::Exporting), true, None);
        let src = || Some(snap("available", 1));
        // The intent was recorded at 999_990; the skew margin is 30 s.
        let cases: Vec<(&str, SnapshotExportStatus, Observation, &str)> = vec![
            ("written after the intent", unknown(), export_at(src(), &[("dst-0001.rdb", 999_995)], None), "Completed"),
            ("written within the skew margin", unknown(), export_at(src(), &[("dst-0001.rdb", 999_965)], None), "Completed"),
            (
                "written before we asked: not ours, and AWS refused our request over it",
                unknown(),
                export_at(src(), &[("dst-0001.rdb", 999_900)], None),
                "Stalled:S3ObjectAlreadyExists:clear",
            ),
            (
                "outcome unknown, another object holds an accepted export of the key",
                unknown(),
                export_at(src(), &[("dst-0001.rdb", 999_995)], Some("ns/first")),
                "Stalled:S3ObjectAlreadyExists:clear",
            ),
            (
                "accepted: ours whatever others claim",
                accepted(),
                export_at(src(), &[("dst-0001.rdb", 999_995)], Some("ns/other")),
                "Completed",
            ),
            (
                "accepted, but the object predates the request",
                accepted(),
                export_at(src(), &[("dst-0001.rdb", 999_000)], None),
                "Stalled:S3ObjectAlreadyExists:keep",
            ),
            (
                "no intent at all",
                status(None, false, None),
                export_at(src(), &[("dst-0001.rdb", 999_995)], None),
                "Stalled:S3ObjectAlreadyExists:clear",
            ),
            (
                "a key of no node group of the source is not ours to judge",
                unknown(),
                export_at(src(), &[("dst-0002.rdb", 999_000)], None),
                "RequestCopy",
            ),
        ];
        for (name, st, obs, want) in cases {
            assert_eq!(kind(&decide(&spec(b), &st, UID, &obs, now())), want, "{name}");
        }
        let d = decide(&spec(b), &unknown(), UID, &export_at(src(), &[("dst-0001.rdb", 999_995)], Some("ns/first")), now());
        let Decision::Stalled { message, .. } = d else { panic!("{d:?}") };
        assert!(message.contains("dst-0001.rdb") && message.contains("ns/first"), "{message}");
        // An object whose LastModified is unknown is no evidence.
        let blind = Observation::Export {
            source: src(),
            objects: vec![ExportObject { key: "dst-0001.rdb".into(), last_modified: None }],
            claimed_by: None,
        };
        assert_eq!(kind(&decide(&spec(b), &unknown(), UID, &blind, now())), "Stalled:S3ObjectAlreadyExists:clear");
    }

    #[test]
    fn exports_expect_exactly_the_node_group_keys_and_stall_when_incomplete() {
        let b = Some("bkt");
        let ids = |ids: &[&str]| ids.iter().map(|i| i.to_string()).collect::<Vec<_>>();
        let grace = EXPORT_START_GRACE.as_secs();
        let late = now().as_second() - grace - 1;
        // Requested well before the objects were written.
        let accepted = || SnapshotExportStatus {
            copy_requested_at: Some(Time(Timestamp::from_second(late - 100).unwrap())),
            ..status(Some(Phase::Exporting), true, None)
        };
        let recorded = || SnapshotExportStatus {
            expected_objects: vec!["s3://bkt/dst-0001.rdb".into(), "s3://bkt/dst-0003.rdb".into()],
            ..accepted()
        };
        let cases: Vec<(&str, SnapshotExportStatus, Observation, &str)> = vec![
            (
                "non-contiguous ids, both written",
                accepted(),
                export(Some(snap_ids("available", &ids(&["0001", "0003"]))), &["dst-0001.rdb", "dst-0003.rdb"]),
                "Completed",
            ),
            (
                "user-supplied ids",
                accepted(),
                export(Some(snap_ids("available", &ids(&["7", "42"]))), &["dst-42.rdb", "dst-7.rdb"]),
                "Completed",
            ),
            (
                "partial, still growing",
                accepted(),
                export(Some(snap_ids("available", &ids(&["0001", "0003"]))), &["dst-0001.rdb", "dst-0002.rdb"]),
                "InProgress:Exporting",
            ),
            (
                "partial, stopped growing, source available",
                accepted(),
                export_at(Some(snap_ids("available", &ids(&["0001", "0003"]))), &[("dst-0001.rdb", late)], None),
                "Stalled:ExportIncomplete:keep",
            ),
            (
                "partial and old, but the source is still exporting",
                accepted(),
                export_at(Some(snap_ids("exporting", &ids(&["0001", "0003"]))), &[("dst-0001.rdb", late)], None),
                "InProgress:Exporting",
            ),
            ("source gone, recorded keys all written", recorded(), export(None, &["dst-0001.rdb", "dst-0003.rdb"]), "Completed"),
            (
                "source gone, recorded keys partly written",
                recorded(),
                export_at(None, &[("dst-0001.rdb", late)], None),
                "Stalled:ExportIncomplete:keep",
            ),
            ("source gone, nothing recorded: never complete", accepted(), export(None, &["dst-0001.rdb"]), "Stalled:ExportIncomplete:keep"),
            (
                "recorded keys win over what the source shows",
                recorded(),
                export(Some(snap("available", 2)), &["dst-0001.rdb", "dst-0002.rdb"]),
                "InProgress:Exporting",
            ),
        ];
        for (name, st, obs, want) in cases {
            assert_eq!(kind(&decide(&spec(b), &st, UID, &obs, now())), want, "{name}");
        }
        let d = decide(
            &spec(b),
            &accepted(),
            UID,
            &export_at(Some(snap_ids("available", &ids(&["0001", "0003"]))), &[("dst-0001.rdb", late)], None),
            now(),
        );
        let Decision::Stalled { message, .. } = d else { panic!("{d:?}") };
        assert!(message.contains("missing: dst-0003.rdb") && message.contains("1 of 2"), "{message}");
        // The grace period is the caller's.
        let short = Clock { now: now(), export_grace: SignedDuration::from_secs(5) };
        let recent = export_at(Some(snap_ids("available", &ids(&["0001", "0003"]))), &[("dst-0001.rdb", now().as_second() - 6)], None);
        assert_eq!(kind(&decide(&spec(b), &accepted(), UID, &recent, short)), "Stalled:ExportIncomplete:keep");
        assert_eq!(kind(&decide(&spec(b), &accepted(), UID, &recent, now())), "InProgress:Exporting");
    }

    #[test]
    fn the_expected_objects_are_recorded_and_bounded() {
        let b = Some("bkt");
        let huge: Vec<String> = (0..10_000).map(|n| format!("{n:04}")).collect();
        let d = after_copy(&spec(b), &Ok(snap_ids("exporting", &huge)));
        let Decision::InProgress { expected_objects, .. } = d else { panic!("{d:?}") };
        assert_eq!(expected_objects.len(), crate::aws::MAX_NODE_GROUPS);
        let d = after_copy(&spec(b), &Ok(snap_ids("exporting", &["0003".into(), "0001".into()])));
        let Decision::InProgress { expected_objects, .. } = d else { panic!("{d:?}") };
        assert_eq!(expected_objects, ["s3://bkt/dst-0001.rdb", "s3://bkt/dst-0003.rdb"]);
    }

    #[test]
    fn s3_stall_message_carries_bucket_and_documented_fix() {
        let err = AwsError::classify(
            "CopySnapshot",
            Some("InvalidParameterValue"),
            Some("ElastiCache has not been granted READ_ACP permissions bkt on the S3 Bucket."),
            Some(400),
        );
        let Decision::Stalled { message, .. } = after_copy(&spec(Some("bkt")), &Err(err)) else { panic!() };
        assert!(message.contains("bkt") && message.contains("Add View Permissions on the bucket"), "{message}");
    }
}
