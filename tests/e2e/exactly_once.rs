//! Acceptance, ownership and terminal stalls (issue 11): an accepted request is never repeated,
//! whatever happens afterwards; only a snapshot carrying this object's ownership tag is adopted
//! or deleted; an AWS that keeps contradicting the look is not called forever; a spec edit the
//! API server let through (no CEL) is refused without an AWS call.

use super::{harness::*, strip_rules};
use ecx::api::Phase;
use kube::ResourceExt;
use serde_json::json;
use std::time::{Duration, Instant};

async fn user_deletes_snapshot(emulator: &Emulator, name: &str) {
    emulator.elasticache().delete_snapshot().snapshot_name(name).send().await.unwrap_or_else(|e| panic!("delete {name}: {e:?}"));
}

/// Replace the CRD by one without CEL rules nor bounds, as on a cluster without CEL.
async fn install_crd_without_rules(bed: &Bed) {
    type Crd = k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: kube::Api<Crd> = kube::Api::all(bed.cluster.client.clone());
    let mut crd = serde_json::to_value(crds.get("snapshotexports.elasticache-export.io").await.unwrap()).unwrap();
    strip_rules(&mut crd["spec"]);
    let crd: Crd = serde_json::from_value(crd).unwrap();
    crds.replace("snapshotexports.elasticache-export.io", &Default::default(), &crd).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_copy_whose_snapshot_the_user_deletes_is_never_copied_again() {
    let mut bed = Bed::with_options(5.0, 1.0, Default::default()).await;
    bed.start_operator(&[]);
    bed.emulator.seed_snapshot("fails-src", 1);
    bed.cluster.apply("fails", json!({"sourceSnapshotName": "fails-src", "targetSnapshotName": "fails-copy"})).await;
    bed.wait_for("fails", "accepted", 30, |o| o.status.as_ref().is_some_and(|s| s.phase == Some(Phase::Copying))).await;
    bed.emulator.set_snapshot_status("fails-copy", "failed");
    bed.wait_stalled("fails", "CopyFailed").await;
    bed.cluster.wait_event("fails", "Warning", "CopyFailed").await;
    // As the Event tells them, the user deletes the failed snapshot.
    user_deletes_snapshot(&bed.emulator, "fails-copy").await;
    let since = bed.emulator.all_calls().len();
    // Many slow retries' worth (the tests retry stalled objects every second).
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(bed.emulator.copy_calls("fails-copy").len(), 1, "exactly one CopySnapshot, ever");
    assert_eq!(bed.emulator.calls_since(since), Vec::<serde_json::Value>::new(), "a terminal stall costs no AWS call");
    let now = bed.cluster.get("fails").await;
    assert_eq!(condition(&now, "Stalled").unwrap().1, "CopyFailed");
    assert!(now.status.as_ref().unwrap().copy_accepted_at.is_some(), "acceptance is recorded durably");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_that_wrote_nothing_is_terminal_and_never_requested_again() {
    let mut bed = Bed::without_operator().await;
    bed.emulator.seed_snapshot("nothing-src", 1);
    create_bucket(&bed.s3, "ecx-nothing", REGION, Access::FULL_ACL).await;
    // The one node group's upload fails: ElastiCache accepted the export and writes nothing.
    bed.emulator.set_config(json!({"export_fail_node_groups": ["0001"]}));
    bed.start_operator(&["--export-grace-seconds", "2"]);
    bed.cluster
        .apply("nothing", json!({"sourceSnapshotName": "nothing-src", "targetSnapshotName": "nothing", "targetBucket": "ecx-nothing"}))
        .await;
    let stalled = bed.wait_stalled("nothing", "ExportFailed").await;
    // Even once the upload would work, the accepted export is not requested again.
    bed.emulator.set_config(json!({"export_fail_node_groups": []}));
    let since = bed.emulator.all_calls().len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(bed.emulator.copy_calls("nothing").len(), 1, "exactly one CopySnapshot, ever");
    assert_eq!(bed.emulator.calls_since(since), Vec::<serde_json::Value>::new(), "a terminal stall costs no AWS call");
    assert!(bucket_keys(&bed.s3, "ecx-nothing").await.is_empty());
    assert!(stalled.status.as_ref().unwrap().copy_accepted_at.is_some(), "acceptance is recorded durably");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_took_the_name_of_a_deleted_copy_is_never_deleted() {
    let bed = Bed::start().await;
    bed.emulator.seed_snapshot("owned-src", 1);
    bed.cluster
        .apply("owned", json!({"sourceSnapshotName": "owned-src", "targetSnapshotName": "owned-copy", "deletionPolicy": "Delete"}))
        .await;
    bed.wait_ready("owned").await;
    // Our copy vanishes and someone else's snapshot takes its name (and so its ARN), untagged.
    user_deletes_snapshot(&bed.emulator, "owned-copy").await;
    bed.emulator.seed_snapshot("owned-copy", 1);
    bed.cluster.delete("owned").await;
    bed.wait_gone("owned").await;
    let deletes = bed.emulator.calls("DeleteSnapshot");
    assert_eq!(deletes.len(), 1, "only the user's own DeleteSnapshot: {deletes:#?}");
    let snapshots = bed.emulator.ctl("GET", "/snapshots", None);
    assert!(snapshots.as_array().unwrap().iter().any(|s| s["name"] == "owned-copy" || s["SnapshotName"] == "owned-copy"), "{snapshots:#}");
    let note = bed.cluster.wait_event("owned", "Warning", "CopyNotOwned").await.note.unwrap_or_default();
    assert!(note.contains("owned-copy"), "{note}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_that_keeps_answering_already_exists_is_backed_off_then_stalled() {
    let bed = Bed::start().await;
    bed.emulator.seed_snapshot("exists-src", 1);
    // DescribeSnapshots shows no target, yet CopySnapshot keeps answering that it exists.
    let answer = "Snapshot exists-copy already exists.";
    bed.emulator.set_config(json!({"copy_snapshot_error": {"code": "SnapshotAlreadyExistsFault", "message": answer}}));
    let started = Instant::now();
    bed.cluster.apply("exists", json!({"sourceSnapshotName": "exists-src", "targetSnapshotName": "exists-copy"})).await;
    let stalled = bed.wait_stalled("exists", "AwsAnswerInconsistent").await;
    let message = condition(&stalled, "Stalled").unwrap().2;
    assert!(message.contains(answer), "the message says what AWS keeps answering: {message}");
    let calls = bed.emulator.copy_calls("exists-copy").len();
    let elapsed = started.elapsed();
    // Backed off like a transient error (not every 200 ms), and bounded.
    assert!((2..=8).contains(&calls), "{calls} CopySnapshot calls in {elapsed:?}");
    assert!(elapsed >= Duration::from_secs(1), "the repeats were backed off: {calls} calls in {elapsed:?}");
    bed.cluster.wait_event("exists", "Warning", "AwsAnswerInconsistent").await;
}

/// The recheck bound holds across a restart (review finding F5): AWS answers "already exists"
/// for a target the operator cannot find; the operator is killed after two such answers and
/// started again; the object still stalls after RECHECK_LIMIT CopySnapshot calls in all, not
/// after that many more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recheck_bound_counts_the_calls_made_before_a_restart() {
    let mut bed = Bed::without_operator().await;
    bed.emulator.seed_snapshot("exists-src", 1);
    let answer = "Snapshot exists-copy already exists.";
    bed.emulator.set_config(json!({"copy_snapshot_error": {"code": "SnapshotAlreadyExistsFault", "message": answer}}));
    // Rechecks at least 0.5 s apart: the kill below lands between two of them, never during one.
    let args = slow_recheck_args();
    let start = |bed: &mut Bed| {
        let n = bed.operators.len();
        let op = Operator::start(&bed.cluster, &bed.emulator, bed.dir.path(), n, &args);
        bed.operators.push(op);
    };
    start(&mut bed);
    bed.cluster.apply("exists", json!({"sourceSnapshotName": "exists-src", "targetSnapshotName": "exists-copy"})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while bed.emulator.copy_calls("exists-copy").len() < 2 {
        assert!(Instant::now() < deadline, "no second CopySnapshot");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Killed once the second answer is recorded (status.recheckCount), whenever the next call
    // comes: what matters is that calls made before the restart count, however many they are.
    bed.wait_for("exists", "with two rechecks recorded", 30, |o| o.status.as_ref().is_some_and(|s| s.recheck_count >= 2)).await;
    bed.operators[0].kill();
    let before = bed.emulator.copy_calls("exists-copy").len();
    assert!(
        (2..ecx::export::decide::RECHECK_LIMIT as usize).contains(&before),
        "killed after the second call and before the bound: {before} calls"
    );
    start(&mut bed);
    let stalled = bed.wait_stalled("exists", "AwsAnswerInconsistent").await;
    assert!(condition(&stalled, "Stalled").unwrap().2.contains(answer));
    let calls = bed.emulator.copy_calls("exists-copy").len();
    assert_eq!(calls as u32, ecx::export::decide::RECHECK_LIMIT, "{calls} CopySnapshot calls in all, {before} before the restart");
}

/// Review finding B: a throttled look between two "already exists" answers is no different
/// answer from AWS. It leaves the count of answers in a row as it is, so the object still
/// stalls after RECHECK_LIMIT CopySnapshot calls in all (before: the throttle reset the count,
/// and each throttled look allowed RECHECK_LIMIT more).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_look_between_rechecks_does_not_reset_the_bound() {
    let mut bed = Bed::without_operator().await;
    bed.emulator.seed_snapshot("throttled-src", 1);
    let answer = "Snapshot throttled-copy already exists.";
    bed.emulator.set_config(json!({"copy_snapshot_error": {"code": "SnapshotAlreadyExistsFault", "message": answer}}));
    // Rechecks at least 0.5 s apart: the throttle below starts between two of them.
    let args = slow_recheck_args();
    bed.operators.push(Operator::start(&bed.cluster, &bed.emulator, bed.dir.path(), 0, &args));
    bed.cluster.apply("throttled", json!({"sourceSnapshotName": "throttled-src", "targetSnapshotName": "throttled-copy"})).await;
    bed.wait_for("throttled", "two rechecks recorded", 30, |o| o.status.as_ref().is_some_and(|s| s.recheck_count == 2)).await;
    // Every look is throttled until the object reports it.
    bed.emulator.set_faults(json!({"throttle_rate": 1.0, "actions": ["DescribeSnapshots"]}));
    bed.wait_for("throttled", "the throttled look reported", 30, |o| {
        o.status.as_ref().and_then(|s| s.last_error.as_ref()).is_some_and(|e| e.reason == "AwsThrottled")
    })
    .await;
    bed.emulator.set_faults(json!({}));
    let stalled = bed.wait_stalled("throttled", "AwsAnswerInconsistent").await;
    assert!(condition(&stalled, "Stalled").unwrap().2.contains(answer));
    let calls = bed.emulator.copy_calls("throttled-copy").len();
    assert_eq!(calls as u32, ecx::export::decide::RECHECK_LIMIT, "{calls} CopySnapshot calls in all, with a throttled look between them");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_edit_without_cel_stalls_with_spec_changed_and_no_aws_call() {
    let mut bed = Bed::without_operator().await;
    if !bed.cluster.is_testbed() {
        eprintln!("skipped on a real cluster: it needs a CRD without its rules");
        return;
    }
    install_crd_without_rules(&bed).await;
    bed.emulator.seed_snapshot("edit-src", 1);
    bed.start_operator(&[]);
    let created = bed.cluster.apply("edited", json!({"sourceSnapshotName": "edit-src", "targetSnapshotName": "edit-copy"})).await;
    let done = bed.wait_ready("edited").await;
    let since = bed.emulator.all_calls().len();
    let mut changed = done.clone();
    changed.spec.target_snapshot_name = "edit-copy-2".into();
    bed.cluster.exports().replace("edited", &Default::default(), &changed).await.expect("no CEL: the edit is admitted");
    let stalled = bed.wait_stalled("edited", "SpecChanged").await;
    assert!(condition(&stalled, "Stalled").unwrap().2.contains("create a new SnapshotExport"), "{stalled:?}");
    bed.cluster.wait_event("edited", "Warning", "SpecChanged").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(bed.emulator.copy_calls("edit-copy-2").is_empty(), "no second copy for the same object");
    assert_eq!(bed.emulator.calls_since(since), Vec::<serde_json::Value>::new(), "no AWS call after the edit");
    assert_eq!(created.uid(), stalled.uid());
    assert!(done.status.as_ref().unwrap().spec_hash.is_some(), "the requested spec is recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_spec_gets_no_finalizer_and_is_deleted_without_aws() {
    let mut bed = Bed::without_operator().await;
    if !bed.cluster.is_testbed() {
        eprintln!("skipped on a real cluster: it needs a CRD without its rules");
        return;
    }
    install_crd_without_rules(&bed).await;
    bed.start_operator(&[]);
    bed.cluster
        .apply(
            "invalid-delete",
            json!({"sourceSnapshotName": "s", "targetSnapshotName": "t", "deletionPolicy": "Delete", "tags": [{"key": "aws:reserved", "value": "x"}]}),
        )
        .await;
    let stalled = bed.wait_stalled("invalid-delete", "InvalidSpec").await;
    assert!(stalled.finalizers().is_empty(), "no finalizer on an invalid object: {:?}", stalled.finalizers());
    bed.cluster.delete("invalid-delete").await;
    bed.wait_gone("invalid-delete").await;
    assert_eq!(bed.emulator.all_calls(), Vec::<serde_json::Value>::new(), "no AWS call for an invalid object, even on deletion");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sweep_shows_on_the_objects_it_follows() {
    let mut bed = Bed::with_options(6.0, 1.0, Default::default()).await;
    bed.start_operator(&[]);
    bed.emulator.seed_snapshot("swept-src", 1);
    bed.cluster.apply("swept", json!({"sourceSnapshotName": "swept-src", "targetSnapshotName": "swept-copy"})).await;
    bed.wait_for("swept", "accepted", 30, |o| o.status.as_ref().is_some_and(|s| s.phase == Some(Phase::Copying))).await;
    bed.emulator.set_faults(json!({"error_rate": 1.0, "actions": ["DescribeSnapshots"]}));
    let failing = bed
        .wait_for("swept", "reporting the failing sweep", 30, |o| {
            condition(o, "Reconciling").is_some_and(|c| c.0 == "True" && c.2.contains("DescribeSnapshots"))
        })
        .await;
    assert!(failing.status.as_ref().unwrap().last_error.as_ref().is_some_and(|e| e.message.contains("InternalFailure")), "{failing:?}");
    bed.emulator.set_faults(json!({}));
    let done = bed.wait_ready("swept").await;
    assert_eq!(done.status.unwrap().last_error, None);
    assert_eq!(bed.emulator.copy_calls("swept-copy").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_about_an_object_with_a_253_character_name_are_published() {
    let bed = Bed::start().await;
    let name = format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61));
    assert_eq!(name.len(), 253);
    bed.emulator.seed_snapshot("long-src", 1);
    bed.cluster.apply(&name, json!({"sourceSnapshotName": "long-src", "targetSnapshotName": "long-copy"})).await;
    bed.wait_ready(&name).await;
    bed.cluster.wait_event(&name, "Normal", "CopyRequested").await;
    let event = bed.cluster.wait_event(&name, "Normal", "CopyCompleted").await;
    assert!(event.name_any().len() <= 253, "{}", event.name_any());
}

/// The test timing with error backoff of 1 to 2 s (rechecks at least 0.5 s apart, so a kill or
/// a fault can land between two of them), and the test export policy.
fn slow_recheck_args() -> Vec<&'static str> {
    let mut args: Vec<&str> = TEST_TIMING.to_vec();
    for (flag, value) in [("--error-backoff-min-seconds", "1"), ("--error-backoff-max-seconds", "2")] {
        let at = args.iter().position(|a| *a == flag).unwrap();
        args[at + 1] = value;
    }
    args.extend_from_slice(TEST_POLICY);
    args
}

/// Issue 30, step 1: the status write after an accepted export request fails (a 500 from the API
/// server), and the export then fails without writing anything. The operator still knows AWS's
/// answer: it records the acceptance on the next try, and the failed export is terminal. Before
/// the fix, the object looked as if its outcome were unknown, and once the source was available
/// again with no object written, the export was requested a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_export_whose_status_write_fails_is_never_requested_again() {
    let mut bed = Bed::without_operator().await;
    let proxy = bed.cluster.kube_proxy().await;
    bed.emulator.seed_snapshot("lostw-src", 1);
    create_bucket(&bed.s3, "ecx-lostw", REGION, Access::FULL_ACL).await;
    // ElastiCache accepts the export and writes nothing; the answer comes 1.5 s late.
    bed.emulator.set_config(json!({"export_fail_node_groups": ["0001"]}));
    bed.emulator.set_faults(json!({"latency_ms": 1500, "actions": ["CopySnapshot"]}));
    bed.start_operator_through(&proxy, &["--export-grace-seconds", "2"]);
    bed.cluster
        .apply("lostw", json!({"sourceSnapshotName": "lostw-src", "targetSnapshotName": "lostw", "targetBucket": "ecx-lostw"}))
        .await;
    // The intent is written before the call; the next status write is the answer's: it fails.
    bed.emulator.wait_in_flight("CopySnapshot", 1).await;
    proxy.fail_next(kube_testbed::FaultRule::new("update", "snapshotexports", 500).subresource("status"));
    let stalled = bed.wait_stalled("lostw", "ExportFailed").await;
    // The write failed is the answer's: the object's second status write (its first is the intent).
    let writes: Vec<Option<u16>> =
        proxy.requests().iter().filter(|r| r.verb == "update" && r.resource == "snapshotexports/status").map(|r| r.injected).collect();
    assert_eq!(writes.get(..2), Some(&[None, Some(500)][..]), "the status writes: {writes:?}");
    bed.emulator.set_faults(json!({}));
    let since = bed.emulator.all_calls().len();
    // Many slow retries' worth (the tests retry stalled objects every second).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let calls = bed.emulator.copy_calls("lostw");
    assert_eq!(calls.iter().filter(|c| c["status"] == 200).count(), 1, "exactly one accepted CopySnapshot: {calls:#?}");
    assert_eq!(calls.len(), 1, "exactly one CopySnapshot: {calls:#?}");
    assert_eq!(bed.emulator.calls_since(since), Vec::<serde_json::Value>::new(), "a terminal stall costs no AWS call");
    assert!(stalled.status.unwrap().copy_accepted_at.is_some(), "the acceptance is recorded");
}

/// Issue 30, step 1: the operator dies right after ElastiCache accepted the export (the answer
/// is lost), and the export fails without writing anything. Nothing AWS shows tells this apart
/// from a request that never arrived, so the object waits the export grace and then stalls for
/// good, saying what to check and how to retry, instead of requesting a second export. Deleting
/// and re-creating the object is the deliberate retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_whose_answer_is_lost_in_a_crash_stalls_rather_than_asks_twice() {
    let mut bed = Bed::without_operator().await;
    bed.emulator.seed_snapshot("losta-src", 1);
    create_bucket(&bed.s3, "ecx-losta", REGION, Access::FULL_ACL).await;
    bed.emulator.set_config(json!({"export_fail_node_groups": ["0001"]}));
    bed.emulator.set_faults(json!({"latency_ms": 1000, "actions": ["CopySnapshot"]}));
    let grace = ["--export-grace-seconds", "3"];
    bed.start_operator(&grace);
    let spec = json!({"sourceSnapshotName": "losta-src", "targetSnapshotName": "losta", "targetBucket": "ecx-losta"});
    bed.cluster.apply("losta", spec.clone()).await;
    bed.emulator.wait_in_flight("CopySnapshot", 1).await;
    bed.operators[0].kill();
    // The request is carried out after its sender died: accepted, and the answer lost.
    let deadline = Instant::now() + Duration::from_secs(20);
    while bed.emulator.copy_calls("losta").iter().all(|c| c["status"] != 200) {
        assert!(Instant::now() < deadline, "the held CopySnapshot was never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bed.emulator.set_faults(json!({}));
    bed.start_operator(&grace);
    let stalled = bed.wait_stalled("losta", "RequestOutcomeUnknown").await;
    let message = condition(&stalled, "Stalled").unwrap().2;
    for words in ["s3://ecx-losta", "describe-events", "delete this SnapshotExport and create it again"] {
        assert!(message.contains(words), "{words:?} missing from {message}");
    }
    assert!(stalled.status.as_ref().unwrap().copy_requested_at.is_some(), "the intent is kept");
    let since = bed.emulator.all_calls().len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(bed.emulator.copy_calls("losta").len(), 1, "exactly one CopySnapshot");
    assert_eq!(bed.emulator.calls_since(since), Vec::<serde_json::Value>::new(), "the stall costs no AWS call");
    bed.cluster.wait_event("losta", "Warning", "RequestOutcomeUnknown").await;

    // The user checked, and asks again deliberately: delete and re-create.
    bed.emulator.set_config(json!({"export_fail_node_groups": []}));
    bed.cluster.delete("losta").await;
    bed.wait_gone("losta").await;
    bed.cluster.apply("losta", spec).await;
    let done = bed.wait_ready("losta").await;
    assert_eq!(done.status.unwrap().exported_objects, ["s3://ecx-losta/losta-0001.rdb"]);
    assert_eq!(bed.emulator.copy_calls("losta").iter().filter(|c| c["status"] == 200).count(), 2, "one request per object");
}

/// Issue 30, step 2: one sweep whose listing misses a copy's target, or an export's source, ends
/// nothing. Before the fix, the first such listing gave the copy a terminal
/// `TargetSnapshotDisappeared` and the export a terminal `ExportFailed` ("the source snapshot is
/// gone"). Now an absence is confirmed by a direct describe before it is judged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_misses_a_snapshot_ends_no_copy_or_export() {
    let mut bed = Bed::with_options(4.0, 4.0, Default::default()).await;
    bed.start_operator(&[]);
    bed.emulator.seed_snapshot("miss-copy-src", 1);
    bed.emulator.seed_snapshot("miss-exp-src", 1);
    create_bucket(&bed.s3, "ecx-miss", REGION, Access::FULL_ACL).await;
    bed.cluster.apply("miss-copy", json!({"sourceSnapshotName": "miss-copy-src", "targetSnapshotName": "miss-copy"})).await;
    bed.cluster
        .apply("miss-exp", json!({"sourceSnapshotName": "miss-exp-src", "targetSnapshotName": "miss-exp", "targetBucket": "ecx-miss"}))
        .await;
    let phase_is = |phase: Phase| move |o: &ecx::api::SnapshotExport| o.status.as_ref().is_some_and(|s| s.phase == Some(phase));
    bed.wait_for("miss-copy", "copying", 30, phase_is(Phase::Copying)).await;
    bed.wait_for("miss-exp", "exporting", 30, phase_is(Phase::Exporting)).await;
    // The next listings leave both followed snapshots out (a describe by name finds them).
    let since = bed.emulator.all_calls().len();
    bed.emulator.set_config(json!({"omit_from_listings": {"miss-copy": 3, "miss-exp-src": 3}}));
    let copy = bed.wait_ready("miss-copy").await;
    let export = bed.wait_ready("miss-exp").await;
    let left = bed.emulator.ctl("GET", "/config", None)["omit_from_listings"].clone();
    assert!(left["miss-copy"].as_u64() < Some(3) && left["miss-exp-src"].as_u64() < Some(3), "no listing missed them: {left}");
    // Each miss was confirmed by a describe by name (the sweep itself listed: few snapshots).
    let described = |name: &str| {
        bed.emulator.calls_since(since).iter().filter(|c| c["action"] == "DescribeSnapshots" && c["params"]["SnapshotName"] == name).count()
    };
    assert!(described("miss-copy") >= 1 && described("miss-exp-src") >= 1, "a miss was not looked into");
    assert_eq!(export.status.unwrap().exported_objects, ["s3://ecx-miss/miss-exp-0001.rdb"]);
    assert!(copy.status.unwrap().target_snapshot_arn.is_some());
    for name in ["miss-copy", "miss-exp"] {
        let warnings: Vec<_> = bed.cluster.events(name).await.into_iter().filter(|e| e.type_.as_deref() == Some("Warning")).collect();
        assert!(warnings.is_empty(), "{name}: {warnings:#?}");
    }
}

/// Issue 30, step 3: an export whose answer was lost, that wrote only some of its objects, and
/// whose source the user deleted meanwhile. Which objects it had to write cannot be known any
/// more, so it stalls as `ExportIncomplete`; its objects show the request was carried out, so
/// the stall is terminal. Before the fix it was looked at again every stalled retry, two AWS calls
/// each time, forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_found_incomplete_once_its_source_is_gone_costs_nothing_at_rest() {
    let mut bed = Bed::without_operator().await;
    bed.emulator.seed_snapshot("part-src", 2);
    create_bucket(&bed.s3, "ecx-part", REGION, Access::FULL_ACL).await;
    // The export writes node group 0001 only; its answer is lost in a crash.
    bed.emulator.set_config(json!({"export_fail_node_groups": ["0002"]}));
    bed.emulator.set_faults(json!({"latency_ms": 1000, "actions": ["CopySnapshot"]}));
    bed.start_operator(&[]);
    bed.cluster.apply("part", json!({"sourceSnapshotName": "part-src", "targetSnapshotName": "part", "targetBucket": "ecx-part"})).await;
    bed.emulator.wait_in_flight("CopySnapshot", 1).await;
    bed.operators[0].kill();
    bed.emulator.set_faults(json!({}));
    // The export runs to its end (one object of two); then the user deletes the source (refused
    // while it is still being exported).
    let deadline = Instant::now() + Duration::from_secs(30);
    while bucket_keys(&bed.s3, "ecx-part").await != ["part-0001.rdb"]
        || bed.emulator.elasticache().delete_snapshot().snapshot_name("part-src").send().await.is_err()
    {
        assert!(Instant::now() < deadline, "the export never ended, or the source could not be deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bed.start_operator(&[]);
    let stalled = bed.wait_stalled("part", "ExportIncomplete").await;
    assert_eq!(stalled.status.as_ref().unwrap().copy_accepted_at, None, "the answer was read: the kill came too late");
    let message = condition(&stalled, "Stalled").unwrap().2;
    assert!(message.contains("part-0001.rdb") && message.contains("is gone"), "{message}");
    let since = bed.emulator.all_calls().len();
    // Many slow retries' worth (the tests retry stalled objects every second).
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(bed.emulator.calls_since(since), Vec::<serde_json::Value>::new(), "a terminal stall costs no AWS call");
    assert_eq!(bed.emulator.copy_calls("part").len(), 1, "exactly one CopySnapshot");
}
