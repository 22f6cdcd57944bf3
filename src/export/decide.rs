//! The pure heart of the reconciler: given the spec, the recorded status and what was just
//! observed in AWS, decide what to do. No I/O here; every branch is table-tested below.
//!
//! Exactly once rests on `status.copyRequestedAt` (the intent, written before CopySnapshot) and
//! the phase: `Pending` with an intent means "a request may or may not have reached AWS";
//! `Copying` / `Exporting` means "AWS accepted it". An accepted request is never repeated; an
//! intent whose outcome is unknown is resolved by looking: our tagged copy, or export objects
//! while an intent is recorded, are adopted; anything else means the request never took effect.

use crate::api::{Phase, SnapshotExportSpec, SnapshotExportStatus};
use crate::aws::{export_object_key, AwsError, CopyFault, S3Problem, SnapshotInfo, SnapshotStatus};
use crate::safety::Verdict;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// How long an accepted export may show no objects while its source is `available` before it is
/// reported as failed (ElastiCache marks the source in progress while exporting).
pub const EXPORT_START_GRACE: SignedDuration = SignedDuration::from_mins(10);

/// What was seen in AWS for one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// In-region copy: the target snapshot, and the value of its ownership tag when it had to
    /// be looked up (`None` when not looked up: the target is already adopted in status).
    InRegion { target: Option<SnapshotInfo>, owner_tag: Option<Option<String>> },
    /// Export: the source snapshot and the `<target>-NNNN.rdb` keys in the bucket.
    Export { source: Option<SnapshotInfo>, objects: Vec<String> },
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
    /// The copy or export is in flight; look again later.
    InProgress { phase: Phase, message: String, target_arn: Option<String>, target_status: Option<String>, source_status: Option<String> },
    /// Done.
    Completed { target_arn: Option<String>, target_status: Option<String>, exported_objects: Vec<String>, source_status: Option<String> },
    /// Cannot progress without an outside change; retried slowly. `clear_intent` when AWS
    /// definitively refused, so no request of ours can be in flight.
    Stalled { reason: String, message: String, clear_intent: bool },
    /// AWS answered that the target exists: look again (our own copy is adopted by tag).
    Recheck,
    /// A transient AWS failure: back off and try again, reporting the reason.
    RetryLater { reason: &'static str, message: String },
}

/// Decide from an observation (before any call).
pub fn decide(spec: &SnapshotExportSpec, status: &SnapshotExportStatus, uid: &str, observed: &Observation, now: Timestamp) -> Decision {
    let accepted = matches!(status.phase, Some(Phase::Copying | Phase::Exporting));
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
            let adopted = status.target_snapshot_arn.is_some() && status.target_snapshot_arn == target.arn;
            let tagged = matches!(owner_tag, Some(Some(owner)) if owner == uid);
            if !(adopted || tagged) {
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
                },
            }
        }
        Observation::Export { source, objects } => decide_export(spec, status, source.as_ref(), objects, accepted, intent, now),
    }
}

fn decide_export(
    spec: &SnapshotExportSpec,
    status: &SnapshotExportStatus,
    source: Option<&SnapshotInfo>,
    objects: &[String],
    accepted: bool,
    intent: bool,
    now: Timestamp,
) -> Decision {
    let bucket = spec.target_bucket.as_deref().unwrap_or_default();
    let target = &spec.target_snapshot_name;
    let source_status = source.map(|s| s.status.as_str().to_string());
    if !objects.is_empty() {
        if !(intent || accepted) {
            let problem = S3Problem::ObjectAlreadyExists { bucket: bucket.into(), key: objects[0].clone() };
            return stalled_by(&CopyFault::S3(problem), true);
        }
        let expected = source.map(|s| s.node_groups.max(1)).unwrap_or(objects.len() as u32);
        let wanted: Vec<String> = (1..=expected).map(|n| export_object_key(target, n)).collect();
        if wanted.iter().all(|k| objects.contains(k)) {
            return Decision::Completed {
                target_arn: None,
                target_status: None,
                exported_objects: wanted.iter().map(|k| format!("s3://{bucket}/{k}")).collect(),
                source_status,
            };
        }
        return exporting(spec, format!("{} of {expected} objects written", objects.len()), source_status);
    }
    let Some(source) = source else {
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
        SnapshotStatus::InProgress(s) if intent || accepted => {
            exporting(spec, format!("the source snapshot is {s}"), source_status.clone())
        }
        SnapshotStatus::InProgress(s) => Decision::WaitForSource {
            reason: "SourceSnapshotNotReady",
            message: format!("Waiting for the source snapshot {:?} to become available (it is {s}).", spec.source_snapshot_name),
            source_status,
        },
        SnapshotStatus::Available if accepted => {
            let since = status.copy_requested_at.as_ref().map(|t| now.duration_since(t.0)).unwrap_or_default();
            if since < EXPORT_START_GRACE {
                exporting(spec, "waiting for ElastiCache to start writing objects".into(), source_status)
            } else {
                Decision::Stalled {
                    reason: "ExportFailed".into(),
                    message: format!(
                        "ElastiCache accepted the export of {:?} to s3://{bucket} but wrote no {target}-NNNN.rdb object and the source is available again. Check the bucket's grants, then create a new SnapshotExport.",
                        spec.source_snapshot_name
                    ),
                    clear_intent: false,
                }
            }
        }
        SnapshotStatus::Available => Decision::RequestCopy,
    }
}

fn exporting(spec: &SnapshotExportSpec, detail: String, source_status: Option<String>) -> Decision {
    Decision::InProgress {
        phase: Phase::Exporting,
        message: format!(
            "Exporting {:?} to s3://{}/{}-NNNN.rdb: {detail}.",
            spec.source_snapshot_name,
            spec.target_bucket.as_deref().unwrap_or_default(),
            spec.target_snapshot_name
        ),
        target_arn: None,
        target_status: None,
        source_status,
    }
}

/// Decide from the answer to CopySnapshot.
pub fn after_copy(spec: &SnapshotExportSpec, result: &Result<SnapshotInfo, AwsError>) -> Decision {
    match result {
        // The same words the first look after the request will use, so that look rewrites nothing.
        Ok(snapshot) if spec.is_export() => {
            exporting(spec, format!("the source snapshot is {}", snapshot.status.as_str()), Some(snapshot.status.as_str().to_string()))
        }
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
            Some(fault) => stalled_by(fault, true),
            None => retry_later(err),
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
    after_copy(spec, result)
}

/// A transient failure as a decision.
pub fn retry_later(err: &AwsError) -> Decision {
    let reason = match err {
        AwsError::Transient { code, .. } if code.contains("Throttl") || code == "SlowDown" || code.contains("429") => "AwsThrottled",
        _ => "AwsUnavailable",
    };
    Decision::RetryLater { reason, message: format!("{err}; retrying with backoff.") }
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
        SnapshotInfo { name: "x".into(), arn: Some("arn:dst".into()), status: SnapshotStatus::parse(status), node_groups: groups }
    }
    fn in_region(target: Option<SnapshotInfo>, owner: Option<Option<&str>>) -> Observation {
        Observation::InRegion { target, owner_tag: owner.map(|o| o.map(str::to_string)) }
    }
    fn export(source: Option<SnapshotInfo>, objects: &[&str]) -> Observation {
        Observation::Export { source, objects: objects.iter().map(|s| s.to_string()).collect() }
    }
    fn kind(d: &Decision) -> String {
        match d {
            Decision::RequestCopy => "RequestCopy".into(),
            Decision::WaitForSource { reason, .. } => format!("Wait:{reason}"),
            Decision::InProgress { phase, .. } => format!("InProgress:{phase:?}"),
            Decision::Completed { .. } => "Completed".into(),
            Decision::Stalled { reason, clear_intent, .. } => format!("Stalled:{reason}:{}", if *clear_intent { "clear" } else { "keep" }),
            Decision::Recheck => "Recheck".into(),
            Decision::RetryLater { reason, .. } => format!("Retry:{reason}"),
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
                "copy available",
                status(Some(Phase::Copying), true, Some("arn:dst")),
                in_region(Some(snap("available", 1)), None),
                "Completed",
            ),
            (
                "copy failed",
                status(Some(Phase::Copying), true, Some("arn:dst")),
                in_region(Some(snap("failed", 1)), None),
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
            ("source failed", status(None, false, None), export(Some(snap("failed", 1)), &[]), "Stalled:SourceSnapshotFailed:clear"),
            (
                "foreign object before any request",
                status(None, false, None),
                export(Some(snap("available", 1)), &["dst-0001.rdb"]),
                "Stalled:S3ObjectAlreadyExists:clear",
            ),
            (
                "intent unknown, source exporting: ours in flight",
                status(Some(Phase::Pending), true, None),
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
                "Retry:AwsThrottled",
            ),
            (Some("bkt"), Err(AwsError::network("CopySnapshot", "timeout")), "Retry:AwsUnavailable"),
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
        ];
        for (bucket, result, want) in cases {
            assert_eq!(kind(&after_repeated_copy(&spec(bucket), &result)), want, "{result:?}");
        }
        // A first request refused as busy waits for the source (and clears its intent).
        assert_eq!(kind(&after_copy(&spec(Some("bkt")), &busy())), "Wait:SourceSnapshotNotReady");
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
