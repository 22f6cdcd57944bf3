//! Table tests of `decide`: every branch, by the observation and the recorded status.
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
pub(super) fn export_at(source: Option<SnapshotInfo>, objects: &[(&str, i64)], claimed_by: Option<&str>) -> Observation {
    Observation::Export {
        source,
        objects: objects
            .iter()
            .map(|(k, at)| ExportObject {
                key: k.to_string(),
                last_modified: Some(Timestamp::from_second(*at).unwrap()),
                ..Default::default()
            })
            .collect(),
        claimed_by: claimed_by.map(|owner| Claim { owner: owner.to_string(), accepted: true, requested_at: None }),
    }
}
/// AWS accepted the request (recorded durably), and the phase moved on since.
fn accepted_but(phase: Phase) -> SnapshotExportStatus {
    let mut st = status(Some(phase), true, Some("arn:dst"));
    st.copy_accepted_at = Some(Time(Timestamp::from_second(999_995).unwrap()));
    st
}
/// A decision in a word, for the tables: its kind and reason (and whether the intent is cleared).
pub(super) fn kind(d: &Decision) -> String {
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

/// A first request whose source is being taken (a schedule's CreateSnapshot run) waits for the
/// sweep to see it available, instead of asking while AWS must refuse.
#[test]
fn a_first_request_waits_for_a_source_being_taken() {
    let awaited = |source: Option<SnapshotInfo>| Observation::AwaitedSource { source };
    let cases: Vec<(&str, Option<&str>, Observation, &str)> = vec![
        ("copy, source creating", None, awaited(Some(snap("creating", 1))), "Wait:SourceSnapshotNotReady"),
        ("export, source creating", Some("bkt"), awaited(Some(snap("creating", 1))), "Wait:SourceSnapshotNotReady"),
        ("copy, source available", None, awaited(Some(snap("available", 1))), "RequestCopy"),
        ("export, source available", Some("bkt"), awaited(Some(snap("available", 2))), "RequestCopy"),
        ("source failed", None, awaited(Some(snap("failed", 1))), "Stalled:SourceSnapshotFailed:clear"),
        // Not listed: CopySnapshot's own answer says whether it exists.
        ("source not listed", None, awaited(None), "RequestCopy"),
    ];
    for (name, bucket, obs, want) in cases {
        assert_eq!(kind(&decide(&spec(bucket), &status(None, false, None), UID, &obs, now())), want, "{name}");
    }
    let Decision::WaitForSource { message, source_status, .. } =
        decide(&spec(None), &status(None, false, None), UID, &awaited(Some(snap("creating", 1))), now())
    else {
        panic!("not a wait")
    };
    assert_eq!(source_status, None, "a copy's status names its target, not its source");
    assert!(message.contains("\"src\"") && message.contains("creating") && message.contains("the copy is requested then"), "{message}");
    let Decision::WaitForSource { source_status, .. } =
        decide(&spec(Some("bkt")), &status(None, false, None), UID, &awaited(Some(snap("creating", 1))), now())
    else {
        panic!("not a wait")
    };
    assert_eq!(source_status.as_deref(), Some("creating"));
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
        // An unknown outcome may have been an accepted export: its intent stays, so a source
        // created again (or a bucket emptied) never leads to a second request.
        ("intent unknown, source gone", status(Some(Phase::Pending), true, None), export(None, &[]), "Stalled:SourceSnapshotNotFound:keep"),
        (
            "intent unknown, source failed",
            status(Some(Phase::Pending), true, None),
            export(Some(snap("failed", 1)), &[]),
            "Stalled:SourceSnapshotFailed:keep",
        ),
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
            "intent unknown, AWS shows nothing: maybe still on its way, never a second request",
            status(Some(Phase::Pending), true, None),
            export(Some(snap("available", 2)), &[]),
            "InProgress:Pending",
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
    }
    for reason in ["CopyFailed", "TargetSnapshotDisappeared", "ExportFailed"] {
        assert!(!is_terminal(&stalled(reason, false)), "{reason} before acceptance is retried");
    }
    assert!(!is_terminal(&stalled("SpecChanged", true)), "reverting the spec heals it");
    assert!(is_terminal(&stalled("RequestOutcomeUnknown", false)), "a second request could export twice");
    assert!(is_terminal(&stalled("ExportIncomplete", false)), "objects written after the intent: it was carried out");
    assert!(!is_terminal(&stalled("ExportOwnerUnknown", false)), "deleting the other object heals it");
    assert!(!is_terminal(&accepted_but(Phase::Copying)));
    assert!(is_accepted(&accepted_but(Phase::Failed)) && is_accepted(&status(Some(Phase::Exporting), true, None)));
    assert!(!is_accepted(&status(Some(Phase::Failed), true, None)));
}

#[test]
fn an_automatic_source_found_missing_by_a_direct_look_is_gone_for_good() {
    let fault = |code: &str| Err(AwsError::classify("CopySnapshot", Some(code), Some("m"), Some(400)));
    let gone = export(None, &[]);
    let clock = Clock::from(now());
    // (what the decision rests on, automatic source, want)
    let cases: Vec<(&str, Decision, bool, &str)> = vec![
        (
            "CopySnapshot: not found",
            after_copy(&spec(Some("bkt")), &fault("SnapshotNotFoundFault")),
            true,
            "Stalled:SourceSnapshotExpired:clear",
        ),
        (
            "a manual source may be created again",
            after_copy(&spec(Some("bkt")), &fault("SnapshotNotFoundFault")),
            false,
            "Stalled:SourceSnapshotNotFound:clear",
        ),
        ("in-region copy", after_copy(&spec(None), &fault("SnapshotNotFoundFault")), true, "Stalled:SourceSnapshotExpired:clear"),
        (
            "described by name: gone",
            decide(&spec(Some("bkt")), &status(Some(Phase::Failed), false, None), UID, &gone, clock),
            true,
            "Stalled:SourceSnapshotExpired:clear",
        ),
        // An intent whose outcome is unknown: gone, no request can be at work on it (cleared).
        (
            "intent unknown, gone",
            decide(&spec(Some("bkt")), &status(Some(Phase::Pending), true, None), UID, &gone, clock),
            true,
            "Stalled:SourceSnapshotExpired:clear",
        ),
        (
            "another stall is kept",
            after_copy(&spec(Some("bkt")), &fault("SnapshotQuotaExceededFault")),
            true,
            "Stalled:SnapshotQuotaExceeded:clear",
        ),
        ("busy is not gone", after_copy(&spec(None), &fault("InvalidSnapshotStateFault")), true, "Wait:SourceSnapshotNotReady"),
    ];
    for (what, decision, automatic, want) in cases {
        let decided = source_gone_for_good(&spec(Some("bkt")), automatic, decision);
        assert_eq!(kind(&decided), want, "{what}");
        if let Decision::Stalled { reason, message, .. } = &decided {
            if reason == SOURCE_EXPIRED {
                assert!(
                    message.contains("\"src\"") && message.contains("automatic backup") && message.contains("SnapshotRetentionLimit"),
                    "{message}"
                );
            }
        }
    }
    // Terminal: no AWS call for it again, and a schedule no longer counts it in flight.
    let expired = SnapshotExportStatus {
        phase: Some(Phase::Failed),
        last_error: Some(crate::api::LastError { reason: SOURCE_EXPIRED.into(), message: "m".into() }),
        ..Default::default()
    };
    assert!(is_terminal(&expired) && expired.is_failed_for_good());
}

#[test]
fn an_export_whose_outcome_is_unknown_and_shows_nothing_waits_the_grace_then_stalls_for_good() {
    let unknown = status(Some(Phase::Pending), true, None);
    let nothing = export(Some(snap("available", 2)), &[]);
    let requested = Timestamp::from_second(999_990).unwrap();
    let at = |secs: i64| Clock { now: requested + SignedDuration::from_secs(secs), export_grace: SignedDuration::from_secs(60) };
    let waiting = decide(&spec(Some("bkt")), &unknown, UID, &nothing, at(59));
    let Decision::InProgress { phase: Phase::Pending, message, .. } = waiting else { panic!("{waiting:?}") };
    assert!(message.contains("looking again until 1970-01-12T13:47:30Z") && message.contains("No second request"), "{message}");
    let d = decide(&spec(Some("bkt")), &unknown, UID, &nothing, at(60));
    let Decision::Stalled { reason, message, clear_intent } = d else { panic!("{d:?}") };
    assert_eq!((reason.as_str(), clear_intent), ("RequestOutcomeUnknown", false));
    for words in [
        "1970-01-12T13:46:30Z",
        "\"src\"",
        "s3://bkt",
        "dst-<node group id>.rdb",
        "describe-events",
        "delete this SnapshotExport and create it again",
    ] {
        assert!(message.contains(words), "{words:?} missing from {message}");
    }
    // Recorded, it is terminal: no look, no request, on any later reconcile.
    let next = crate::export::status::next_status(&unknown, &Decision::Stalled { reason, message, clear_intent }, Some(1), &Time(now()));
    assert!(is_terminal(&next) && next.copy_requested_at.is_some());
    // Objects of ours found within the grace are adopted as ever.
    let found = export(Some(snap("available", 2)), &["dst-0001.rdb", "dst-0002.rdb"]);
    assert_eq!(kind(&decide(&spec(Some("bkt")), &unknown, UID, &found, at(59))), "Completed");
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
            "Stalled:S3ObjectAlreadyExists:keep",
        ),
        ("accepted: ours whatever others claim", accepted(), export_at(src(), &[("dst-0001.rdb", 999_995)], Some("ns/other")), "Completed"),
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
            "InProgress:Pending",
        ),
    ];
    for (name, st, obs, want) in cases {
        assert_eq!(kind(&decide(&spec(b), &st, UID, &obs, now())), want, "{name}");
    }
    let d = decide(&spec(b), &unknown(), UID, &export_at(src(), &[("dst-0001.rdb", 999_995)], Some("ns/first")), now());
    let Decision::Stalled { message, .. } = d else { panic!("{d:?}") };
    assert!(message.contains("dst-0001.rdb") && message.contains("ns/first"), "{message}");
    // Another object whose outcome is unknown too may have written them: nobody adopts them.
    // Its intent at 999_992; ours at 999_990 (status), both minus the 30 s skew.
    let twin = |objects: &[(&str, i64)], requested: i64| {
        let mut obs = export_at(src(), objects, None);
        if let Observation::Export { claimed_by, .. } = &mut obs {
            let requested_at = Some(Timestamp::from_second(requested).unwrap());
            *claimed_by = Some(Claim { owner: "ns/twin".into(), accepted: false, requested_at });
        }
        obs
    };
    let both = twin(&[("dst-0001.rdb", 999_995)], 999_992);
    let d = decide(&spec(b), &unknown(), UID, &both, now());
    assert_eq!(kind(&d), "Stalled:ExportOwnerUnknown:keep");
    let Decision::Stalled { message, .. } = d else { panic!("{d:?}") };
    assert!(message.contains("s3://bkt/dst-0001.rdb") && message.contains("ns/twin"), "{message}");
    assert_eq!(kind(&decide(&spec(b), &accepted(), UID, &both, now())), "Completed", "an accepted request's objects are its own");
    // Its intent came long after the object: it cannot have written it, so the object is ours.
    assert_eq!(kind(&decide(&spec(b), &unknown(), UID, &twin(&[("dst-0001.rdb", 999_995)], 1_000_100), now())), "Completed");
    // An object from before our own intent is someone else's, whatever the claim: AWS refused us.
    assert_eq!(
        kind(&decide(&spec(b), &unknown(), UID, &twin(&[("dst-0001.rdb", 999_000)], 998_000), now())),
        "Stalled:S3ObjectAlreadyExists:clear"
    );
    // An object whose LastModified is unknown is no evidence.
    let blind = Observation::Export {
        source: src(),
        objects: vec![ExportObject { key: "dst-0001.rdb".into(), ..Default::default() }],
        claimed_by: None,
    };
    assert_eq!(kind(&decide(&spec(b), &unknown(), UID, &blind, now())), "Stalled:S3ObjectAlreadyExists:keep");
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
    let recorded =
        || SnapshotExportStatus { expected_objects: vec!["s3://bkt/dst-0001.rdb".into(), "s3://bkt/dst-0003.rdb".into()], ..accepted() };
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
