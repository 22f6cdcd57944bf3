//! The pure heart of the reconciler: given the spec, the recorded status and what was just
//! observed in AWS, decide what to do. No I/O here; every branch is table-tested below.
//!
//! Exactly once rests on `status.copyRequestedAt` (the intent, written before CopySnapshot) and
//! `status.copyAcceptedAt` (AWS accepted it; never cleared): an intent without acceptance means
//! "a request may or may not have reached AWS". An accepted request is never repeated, and a
//! stall after acceptance is terminal (no AWS call ever again); an intent whose outcome is
//! unknown is resolved by looking: our tagged copy is adopted (by its ownership tag, never by
//! name or ARN); export objects only by evidence (see [`decide`]). An in-region copy that is not
//! there was never made; an export that shows nothing may still have been accepted and failed
//! unwritten, so it is never requested again: it looks for the export grace, then stalls for
//! good (`RequestOutcomeUnknown`).
//!
//! Serverless sources (`sourceKind: Serverless`) go through the same decisions, observed in the
//! same types (`serverless.rs`): their in-region copies carry the same ownership tag; their
//! exports differ only in which keys are expected. A node-based export writes one object per node
//! group of the source, known in advance; a serverless snapshot names no shards, so its export's
//! keys are the `<snapshot>-NNNN.rdb` objects found in the bucket once the export is over.

use crate::api::{Phase, SnapshotExportSpec, SnapshotExportStatus, EXPORT_INCOMPLETE, OUTCOME_UNKNOWN, SOURCE_EXPIRED};
use crate::aws::{export_object_key, AwsError, CopyFault, ExportObject, S3Problem, SnapshotInfo, SnapshotStatus};
use crate::safety::Verdict;
pub use export::export_pattern;
use export::{decide_export, exporting, object_keys, urls};
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

/// Whether AWS accepted this object's request: recorded durably in `copyAcceptedAt` (objects
/// written before that field existed: their phase says so while in flight).
pub fn is_accepted(status: &SnapshotExportStatus) -> bool {
    status.is_accepted()
}

/// Whether the object is finished for good without success: AWS accepted its request and it then
/// stalled (the copy failed or vanished, the export failed), or an export's outcome stayed
/// unknown. No AWS call is ever made for it again; a new copy is a new SnapshotExport.
pub fn is_terminal(status: &SnapshotExportStatus) -> bool {
    status.is_terminal()
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
        Some(bucket) => format!("export to s3://{bucket}/{}", export_pattern(spec)),
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

/// A source missing at a direct look (CopySnapshot's `SnapshotNotFoundFault`, or a describe by
/// name: never one shared listing) that is an automatic backup is gone for good: ElastiCache
/// deleted it when its retention ended and never creates that name again. Retrying could only
/// cost AWS calls (and hold back a schedule), so the stall is terminal.
pub fn source_gone_for_good(spec: &SnapshotExportSpec, automatic_source: bool, decision: Decision) -> Decision {
    match decision {
        Decision::Stalled { reason, .. } if automatic_source && reason == "SourceSnapshotNotFound" => Decision::Stalled {
            reason: SOURCE_EXPIRED.into(),
            message: format!(
                "The source snapshot {:?} no longer exists: it is an automatic backup, which ElastiCache deletes when the cache's snapshot retention ends, and it never comes back. Nothing more is requested for this SnapshotExport. To export a backup, create a new SnapshotExport of a newer one (a schedule's next run takes the newest); to keep backups longer, raise the cache's SnapshotRetentionLimit.",
                spec.source_snapshot_name
            ),
            // No request of ours can be at work on a snapshot that is gone: the intent claims
            // nothing (another export of the same keys must not wait on it).
            clear_intent: true,
        },
        other => other,
    }
}

/// The source is not in the operator's region (CopySnapshot said so, or a describe by name found
/// nothing): retried, since creating the snapshot heals it (unless it was an automatic backup,
/// see [`source_gone_for_good`]). `intent`: a request whose outcome is unknown is kept.
pub fn source_not_found(spec: &SnapshotExportSpec, intent: bool) -> Decision {
    Decision::Stalled {
        reason: "SourceSnapshotNotFound".into(),
        message: format!(
            "The source snapshot {:?} was not found in the operator's region. Check sourceSnapshotName and the region; the export is retried, so creating the snapshot heals it.",
            spec.source_snapshot_name
        ),
        clear_intent: !intent,
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
    Export { source: Option<SnapshotInfo>, objects: Vec<ExportObject>, claimed_by: Option<Claim> },
    /// Nothing was looked at: no request was ever made for this object, so nothing of ours can
    /// exist, and CopySnapshot itself refuses (one call, the same outcome) what a look would find.
    NeverRequested,
    /// No request was ever made, and the object waits for its source (being taken) to be
    /// available: the source as the shared sweep saw it (`None`: not listed).
    AwaitedSource { source: Option<SnapshotInfo> },
}

/// Another SnapshotExport that may have written an export's keys: `namespace/name`, whether AWS
/// accepted its request (else its outcome is unknown too), and its intent (`copyRequestedAt`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub owner: String,
    pub accepted: bool,
    pub requested_at: Option<Timestamp>,
}

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Record the intent in status, then call CopySnapshot.
    RequestCopy,
    /// Nothing to call yet: the source is not available (phase stays Pending).
    WaitForSource { reason: &'static str, message: String, source_status: Option<String> },
    /// The copy or export is in flight; look again later. `phase: Pending` while the outcome of
    /// an export request is unknown (its source busy, or within the export grace).
    /// `expected_objects`: the export's objects, once known.
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
        Observation::AwaitedSource { source } => awaited_source(spec, source.as_ref()),
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
            decide_export(spec, status, source.as_ref(), objects, claimed_by.as_ref(), accepted, intent, clock)
        }
    }
}

/// A first request waiting for its source (being taken): wait while it is in progress, since AWS
/// would refuse the request; stall if it failed. Anything else, even a source the sweep did not
/// list, is for CopySnapshot to answer, as for any first request.
fn awaited_source(spec: &SnapshotExportSpec, source: Option<&SnapshotInfo>) -> Decision {
    let what = if spec.is_export() { "export" } else { "copy" };
    match source.map(|s| &s.status) {
        Some(SnapshotStatus::InProgress(state)) => Decision::WaitForSource {
            reason: "SourceSnapshotNotReady",
            message: format!(
                "Waiting for the source snapshot {:?} to be available (it is {state}); the {what} is requested then.",
                spec.source_snapshot_name
            ),
            // Recorded for exports only (a copy's status names its target).
            source_status: spec.is_export().then(|| state.clone()),
        },
        Some(SnapshotStatus::Failed) => Decision::Stalled {
            reason: "SourceSnapshotFailed".into(),
            message: format!(
                "The source snapshot {:?} is in state failed, so no {what} can be made of it. Take a new snapshot and create a new SnapshotExport.",
                spec.source_snapshot_name
            ),
            clear_intent: true,
        },
        _ => Decision::RequestCopy,
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
pub fn from_safety(spec: &SnapshotExportSpec, verdict: Verdict) -> Decision {
    match verdict {
        Verdict::Proceed => Decision::RequestCopy,
        Verdict::Recheck => Decision::Recheck,
        Verdict::Stalled { reason, mut message, clear_intent } => {
            if spec.is_serverless() {
                message = serverless_wording(spec, &reason, &message);
            }
            Decision::Stalled { reason, message, clear_intent }
        }
        Verdict::RetryLater(err) => retry_later(&err),
    }
}

const KEY_TAKEN: &str = "S3ObjectAlreadyExists";

/// The safety gate speaks of node-based exports (CopySnapshot, `targetSnapshotName`): say the
/// same of a serverless one, which makes another call and has no target name to change.
fn serverless_wording(spec: &SnapshotExportSpec, reason: &str, message: &str) -> String {
    let mut message = message.replace("CopySnapshot", super::serverless::operation(spec));
    if reason == KEY_TAKEN {
        message = message.replace(key_taken_fix(), SERVERLESS_KEY_TAKEN_FIX).replace(PREFLIGHT_RENAME_FIX, "");
    }
    message
}

/// The preflight's short fix for a taken key (`crate::safety`), which names `targetSnapshotName`.
const PREFLIGHT_RENAME_FIX: &str = " Fix: create a new SnapshotExport with another targetSnapshotName.";

/// The documented fix for a taken key (rename the target), which a serverless export cannot
/// follow: it has no target name.
fn key_taken_fix() -> &'static str {
    S3Problem::ObjectAlreadyExists { bucket: String::new(), key: String::new() }.solution()
}

/// What to do about a taken key when exporting a serverless snapshot, whose objects ElastiCache
/// names after the snapshot.
pub const SERVERLESS_KEY_TAKEN_FIX: &str = "A serverless export names its objects after the snapshot and takes no target name: move or delete the existing objects of that name, export to another bucket, or copy the snapshot in-region under a new name (a SnapshotExport without targetBucket) and export the copy.";

/// A refusal as a stall; every S3 problem names its bucket (AWS's text for missing
/// permissions does not, so the bucket is added).
fn stalled_naming_bucket(spec: &SnapshotExportSpec, fault: &CopyFault) -> Decision {
    let mut decision = stalled_by(spec, fault, true);
    if let (Decision::Stalled { message, .. }, CopyFault::S3(S3Problem::InsufficientPermissions), Some(bucket)) =
        (&mut decision, fault, &spec.target_bucket)
    {
        *message = format!("Exporting to S3 bucket {bucket}: {message}");
    }
    decision
}

fn stalled_by(spec: &SnapshotExportSpec, fault: &CopyFault, clear_intent: bool) -> Decision {
    let solution = match fault {
        CopyFault::S3(S3Problem::ObjectAlreadyExists { .. }) if spec.is_serverless() => SERVERLESS_KEY_TAKEN_FIX.to_string(),
        _ => fault.solution().to_string(),
    };
    Decision::Stalled { reason: fault.reason().into(), message: format!("{} {solution}", fault.message()), clear_intent }
}

/// An invalid spec: stalled, no AWS call.
pub fn invalid_spec(problems: &[String]) -> Decision {
    Decision::Stalled {
        reason: "InvalidSpec".into(),
        message: format!("The spec is invalid: {}. Create a corrected SnapshotExport.", problems.join("; ")),
        clear_intent: false,
    }
}

mod export;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod serverless_tests;
