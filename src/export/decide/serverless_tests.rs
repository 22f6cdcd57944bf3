//! Table tests of `decide` for serverless sources: the same decisions as node-based ones, except
//! that an export's keys are read from the bucket (a serverless snapshot names no shards).
use super::tests::{export_at, kind};
use super::*;
use crate::api::SnapshotExportSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

const UID: &str = "uid-1";
/// When the first intent was recorded.
const INTENT: i64 = 999_990;

fn copy_spec() -> SnapshotExportSpec {
    SnapshotExportSpec::new("sls", "sls-copy", None).serverless()
}
fn export_spec() -> SnapshotExportSpec {
    SnapshotExportSpec::new("sls", "", Some("bkt")).serverless()
}
fn now() -> Timestamp {
    Timestamp::from_second(1_000_000).unwrap()
}
fn status(phase: Option<Phase>, intent: bool, accepted: bool, arn: Option<&str>) -> SnapshotExportStatus {
    SnapshotExportStatus {
        phase,
        copy_requested_at: intent.then(|| Time(Timestamp::from_second(INTENT).unwrap())),
        copy_accepted_at: accepted.then(|| Time(Timestamp::from_second(INTENT + 2).unwrap())),
        target_snapshot_arn: arn.map(str::to_string),
        ..Default::default()
    }
}
const ARN: &str = "arn:aws:elasticache:us-east-1:123456789012:serverlesscachesnapshot:sls-copy";
/// A serverless snapshot as the observation carries it (`From<ServerlessSnapshotInfo>`).
fn snap(status: &str) -> SnapshotInfo {
    SnapshotInfo::from(crate::aws::ServerlessSnapshotInfo {
        name: "sls-copy".into(),
        arn: Some(ARN.into()),
        status: SnapshotStatus::parse(status),
        snapshot_type: Some("manual".into()),
        create_time: None,
    })
}
fn in_region(target: Option<SnapshotInfo>, owner: Option<Option<&str>>) -> Observation {
    Observation::InRegion { target, owner_tag: owner.map(|o| o.map(str::to_string)) }
}
/// Objects written at the given seconds, and the object claiming them, if any.
fn export(source: Option<SnapshotInfo>, objects: &[(&str, i64)], claimed_by: Option<&str>) -> Observation {
    export_at(source, objects, claimed_by)
}

#[test]
fn serverless_in_region_copy_table() {
    let cases: Vec<(&str, SnapshotExportSpec, SnapshotExportStatus, Observation, &str)> = vec![
        ("never requested", copy_spec(), status(None, false, false, None), Observation::NeverRequested, "RequestCopy"),
        (
            "intent, outcome unknown, no copy: the call never took effect",
            copy_spec(),
            status(Some(Phase::Pending), true, false, None),
            in_region(None, None),
            "RequestCopy",
        ),
        (
            "crash after the call: our tagged copy is adopted",
            copy_spec(),
            status(Some(Phase::Pending), true, false, None),
            in_region(Some(snap("copying")), Some(Some(UID))),
            "InProgress:Copying",
        ),
        (
            "an untagged serverless snapshot of that name is never adopted",
            copy_spec(),
            status(Some(Phase::Pending), true, false, None),
            in_region(Some(snap("available")), Some(None)),
            "Stalled:TargetAlreadyExists:clear",
        ),
        (
            "another object's copy is never adopted",
            copy_spec(),
            status(Some(Phase::Pending), true, false, None),
            in_region(Some(snap("copying")), Some(Some("uid-2"))),
            "Stalled:TargetAlreadyExists:clear",
        ),
        (
            "accepted, polled under the ARN CopyServerlessCacheSnapshot answered",
            copy_spec(),
            status(Some(Phase::Copying), true, true, Some(ARN)),
            in_region(Some(snap("copying")), None),
            "InProgress:Copying",
        ),
        (
            "accepted, available and tagged",
            copy_spec(),
            status(Some(Phase::Copying), true, true, Some(ARN)),
            in_region(Some(snap("available")), Some(Some(UID))),
            "Completed",
        ),
        (
            "accepted, the copy vanished: terminal",
            copy_spec(),
            status(Some(Phase::Copying), true, true, Some(ARN)),
            in_region(None, None),
            "Stalled:TargetSnapshotDisappeared:keep",
        ),
    ];
    for (name, spec, st, obs, want) in cases {
        assert_eq!(kind(&decide(&spec, &st, UID, &obs, now())), want, "{name}");
    }
}

#[test]
fn serverless_export_table() {
    let after = INTENT + 1;
    let before = INTENT - ADOPTION_CLOCK_SKEW.as_secs() - 1;
    let cases: Vec<(&str, SnapshotExportStatus, Observation, &str)> = vec![
        ("fresh, snapshot available", status(None, false, false, None), export(Some(snap("available")), &[], None), "RequestCopy"),
        (
            "fresh, snapshot creating",
            status(None, false, false, None),
            export(Some(snap("creating")), &[], None),
            "Wait:SourceSnapshotNotReady",
        ),
        ("fresh, snapshot missing", status(None, false, false, None), export(None, &[], None), "Stalled:SourceSnapshotNotFound:clear"),
        (
            "an object of the snapshot's name was there before any request",
            status(None, false, false, None),
            export(Some(snap("available")), &[("sls-0001.rdb", before)], None),
            "Stalled:S3ObjectAlreadyExists:clear",
        ),
        (
            "intent unknown, snapshot exporting: maybe not ours, wait and keep the intent",
            status(Some(Phase::Pending), true, false, None),
            export(Some(snap("exporting")), &[], None),
            "InProgress:Pending",
        ),
        (
            "crash after the call: objects written after the intent are adopted, however many shards",
            status(Some(Phase::Pending), true, false, None),
            export(Some(snap("available")), &[("sls-0001.rdb", after), ("sls-0002.rdb", after), ("sls-0003.rdb", after)], None),
            "Completed",
        ),
        (
            "intent unknown, objects older than the intent: someone else's",
            status(Some(Phase::Pending), true, false, None),
            export(Some(snap("available")), &[("sls-0001.rdb", before)], None),
            "Stalled:S3ObjectAlreadyExists:clear",
        ),
        (
            "intent unknown, another object's accepted export wrote them",
            status(Some(Phase::Pending), true, false, None),
            export(Some(snap("available")), &[("sls-0001.rdb", after)], Some("ns/other")),
            "Stalled:S3ObjectAlreadyExists:keep",
        ),
        (
            "accepted, exporting, some objects so far",
            status(Some(Phase::Exporting), true, true, None),
            export(Some(snap("exporting")), &[("sls-0001.rdb", after)], None),
            "InProgress:Exporting",
        ),
        (
            "accepted, snapshot available again with objects: done",
            status(Some(Phase::Exporting), true, true, None),
            export(Some(snap("available")), &[("sls-0001.rdb", after)], None),
            "Completed",
        ),
        (
            "accepted, snapshot deleted after the export wrote its objects: done",
            status(Some(Phase::Exporting), true, true, None),
            export(None, &[("sls-0001.rdb", after)], None),
            "Completed",
        ),
        (
            "accepted, not started yet (within grace)",
            status(Some(Phase::Exporting), true, true, None),
            export(Some(snap("available")), &[], None),
            "InProgress:Exporting",
        ),
        (
            "accepted and done: another snapshot's objects under the same prefix (sls-2-, sls-0001-x) are not ours nor a collision",
            status(Some(Phase::Exporting), true, true, None),
            export(Some(snap("available")), &[("sls-0001.rdb", after), ("sls-2-0001.rdb", before), ("sls-0001-x.rdb", before)], None),
            "Completed",
        ),
        (
            "intent unknown: another snapshot's fresh objects under the same prefix are not adopted",
            status(Some(Phase::Pending), true, false, None),
            export(Some(snap("available")), &[("sls-old-0001.rdb", after)], None),
            "InProgress:Pending",
        ),
        (
            "accepted, snapshot gone, nothing written",
            status(Some(Phase::Exporting), true, true, None),
            export(None, &[], None),
            "Stalled:ExportFailed:keep",
        ),
    ];
    for (name, st, obs, want) in cases {
        assert_eq!(kind(&decide(&export_spec(), &st, UID, &obs, now())), want, "{name}");
    }
    let mut late = status(Some(Phase::Exporting), true, true, None);
    late.copy_accepted_at = Some(Time(now() - EXPORT_START_GRACE - SignedDuration::from_secs(1)));
    let d = decide(&export_spec(), &late, UID, &export(Some(snap("available")), &[], None), now());
    assert_eq!(kind(&d), "Stalled:ExportFailed:keep");
    let Decision::Stalled { message, .. } = d else { unreachable!() };
    assert!(message.contains("sls-<shard>.rdb"), "{message}");
}

#[test]
fn a_serverless_export_lists_the_keys_found_in_the_bucket() {
    let after = INTENT + 1;
    let found = export(Some(snap("available")), &[("sls-0002.rdb", after), ("sls-0001.rdb", after)], None);
    let d = decide(&export_spec(), &status(Some(Phase::Exporting), true, true, None), UID, &found, now());
    let Decision::Completed { exported_objects, .. } = d else { panic!("{d:?}") };
    assert_eq!(exported_objects, ["s3://bkt/sls-0001.rdb", "s3://bkt/sls-0002.rdb"]);
    // The answer to ExportServerlessCacheSnapshot names no keys: none are expected yet.
    let d = after_copy(&export_spec(), &Ok(snap("exporting")));
    let Decision::InProgress { phase, expected_objects, message, .. } = d else { panic!("{d:?}") };
    assert_eq!((phase, expected_objects), (Phase::Exporting, vec![]));
    assert!(message.contains("s3://bkt/sls-<shard>.rdb"), "{message}");
    // A completed export's recorded keys are what later looks expect.
    let mut done = status(Some(Phase::Completed), true, true, None);
    done.expected_objects = vec!["s3://bkt/sls-0001.rdb".into()];
    let d = decide(&export_spec(), &done, UID, &export(Some(snap("available")), &[("sls-0001.rdb", after)], None), now());
    assert_eq!(kind(&d), "Completed");
}

#[test]
fn serverless_answers_are_decided_as_node_based_ones() {
    let fault = |op: &'static str, code: &str, msg: &str| Err(AwsError::classify(op, Some(code), Some(msg), Some(400)));
    let copy = "CopyServerlessCacheSnapshot";
    let export = "ExportServerlessCacheSnapshot";
    let cases: Vec<(SnapshotExportSpec, Result<SnapshotInfo, AwsError>, &str)> = vec![
        (copy_spec(), Ok(snap("copying")), "InProgress:Copying"),
        (copy_spec(), fault(copy, "ServerlessCacheSnapshotAlreadyExistsFault", "exists"), "Recheck"),
        (copy_spec(), fault(copy, "ServerlessCacheSnapshotNotFoundFault", "nope"), "Stalled:SourceSnapshotNotFound:clear"),
        (copy_spec(), fault(copy, "ServerlessCacheSnapshotQuotaExceededFault", "quota"), "Stalled:SnapshotQuotaExceeded:clear"),
        (copy_spec(), fault(copy, "InvalidServerlessCacheSnapshotStateFault", "busy"), "Wait:SourceSnapshotNotReady"),
        (export_spec(), fault(export, "InvalidServerlessCacheSnapshotStateFault", "busy"), "Wait:SourceSnapshotNotReady"),
        (export_spec(), fault(export, "InvalidParameterValue", "The S3 bucket bkt does not exist."), "Stalled:S3BucketNotFound:clear"),
        (export_spec(), Err(AwsError::network(export, "timeout")), "Retry:AwsUnavailable:keep"),
    ];
    for (spec, result, want) in cases {
        assert_eq!(kind(&after_copy(&spec, &result)), want, "{result:?}");
    }
    // A repeated export answered "busy" or "key exists" may be our earlier one at work.
    let busy = fault(export, "InvalidServerlessCacheSnapshotStateFault", "busy");
    assert_eq!(kind(&after_repeated_copy(&export_spec(), &busy)), "Recheck");
    // An automatic serverless backup gone at the answer, or at a describe by name, is gone for good.
    let gone_at_answer = after_copy(&export_spec(), &fault(export, "ServerlessCacheSnapshotNotFoundFault", "nope"));
    let gone_at_look = decide(&export_spec(), &status(Some(Phase::Failed), false, false, None), UID, &export_at(None, &[], None), now());
    for decision in [gone_at_answer, gone_at_look] {
        assert_eq!(kind(&source_gone_for_good(&export_spec(), true, decision)), "Stalled:SourceSnapshotExpired:clear");
    }
}

#[test]
fn a_taken_key_tells_a_serverless_export_what_it_can_do_instead_of_renaming_its_target() {
    let taken = AwsError::classify(
        "ExportServerlessCacheSnapshot",
        Some("InvalidParameterValue"),
        Some("The S3 bucket bkt already contains an object with key sls-0001.rdb."),
        Some(400),
    );
    let Decision::Stalled { reason, message, .. } = after_copy(&export_spec(), &Err(taken)) else { panic!() };
    assert_eq!(reason, "S3ObjectAlreadyExists");
    assert!(message.contains("sls-0001.rdb") && message.ends_with(SERVERLESS_KEY_TAKEN_FIX), "{message}");
    assert!(!message.contains("TargetSnapshotName"), "{message}");
    // The preflight's verdict says so too; a node-based one keeps the documented fix.
    let problem = CopyFault::S3(S3Problem::ObjectAlreadyExists { bucket: "bkt".into(), key: "sls-0001.rdb".into() });
    let verdict = || Verdict::Stalled {
        reason: "S3ObjectAlreadyExists".into(),
        message: format!("{} {}", problem.message(), problem.solution()),
        clear_intent: true,
    };
    let Decision::Stalled { message, .. } = from_safety(&export_spec(), verdict()) else { panic!() };
    assert!(message.ends_with(SERVERLESS_KEY_TAKEN_FIX), "{message}");
    // As the preflight words it (`Report::failure_message`).
    let preflight = Verdict::Stalled {
        reason: "S3ObjectAlreadyExists".into(),
        message: format!(
            "{} {} Fix: create a new SnapshotExport with another targetSnapshotName. (Found by the operator's preflight, before any CopySnapshot call.)",
            problem.message(),
            problem.solution()
        ),
        clear_intent: true,
    };
    let Decision::Stalled { message, .. } = from_safety(&export_spec(), preflight) else { panic!() };
    assert!(message.contains(SERVERLESS_KEY_TAKEN_FIX), "{message}");
    assert!(message.ends_with("(Found by the operator's preflight, before any ExportServerlessCacheSnapshot call.)"), "{message}");
    assert!(!message.to_lowercase().contains("targetsnapshotname"), "{message}");
    let Decision::Stalled { message, .. } = from_safety(&SnapshotExportSpec::new("src", "dst", Some("bkt")), verdict()) else { panic!() };
    assert!(message.contains("TargetSnapshotName"), "{message}");
}
