//! What an object claims as its own, and what the operator remembers per object: export files
//! are adopted only by evidence (written after the intent, under the source's node group ids),
//! and everything the sweep follows is keyed by UID and forgotten with the object.

use crate::harness::*;
use ecx::api::Phase;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// DescribeSnapshots calls logged so far.
fn describe_calls(bed: &Bed) -> usize {
    bed.emulator.calls("DescribeSnapshots").len()
}

/// Wait until no DescribeSnapshots call is logged for `quiet` (the sweep went idle), or fail.
async fn wait_sweep_idle(bed: &Bed, quiet: Duration, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let before = describe_calls(bed);
        tokio::time::sleep(quiet).await;
        let after = describe_calls(bed);
        if after == before {
            return;
        }
        assert!(Instant::now() < deadline, "the sweep never went idle: {} DescribeSnapshots calls in the last {quiet:?}", after - before);
    }
}

/// Delete-and-recreate of a `nightly` object (a common GitOps pattern): the new object must not
/// inherit what the sweep followed for the old one (it stalled as `TargetSnapshotDisappeared`),
/// and an object deleted while followed must be forgotten, so the sweep goes idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_and_recreated_nightly_object_starts_afresh_and_the_sweep_goes_idle() {
    let bed = Bed::start().await;
    bed.emulator.set_config(json!({"copy_delay": 4.0}));
    for s in ["db-mon", "db-tue", "db-weekly"] {
        bed.emulator.seed_snapshot(s, 1);
    }
    let copying = |o: &ecx::api::SnapshotExport| o.status.as_ref().is_some_and(|s| s.phase == Some(Phase::Copying));
    bed.cluster.apply("nightly", json!({"sourceSnapshotName": "db-mon", "targetSnapshotName": "nightly-mon"})).await;
    bed.cluster.apply("weekly", json!({"sourceSnapshotName": "db-weekly", "targetSnapshotName": "weekly-1"})).await;
    bed.wait_for("nightly", "Copying", 30, copying).await;
    bed.wait_for("weekly", "Copying", 30, copying).await;
    // Let a sweep look at both while they are followed.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Both deleted while followed (no finalizer: Retain), and `nightly` recreated for Tuesday.
    bed.cluster.delete("weekly").await;
    bed.cluster.delete("nightly").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while bed.cluster.exports().get_opt("nightly").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "nightly was not deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recreated = bed.cluster.apply("nightly", json!({"sourceSnapshotName": "db-tue", "targetSnapshotName": "nightly-tue"})).await;
    let done = bed.wait_for("nightly", "Ready or Stalled", 60, |o| is_true(o, "Ready") || is_true(o, "Stalled")).await;
    assert!(is_true(&done, "Ready"), "the recreated object must complete, not stall: {:?}", done.status);
    assert_eq!(done.metadata.uid, recreated.metadata.uid);
    let status = done.status.clone().unwrap();
    assert!(status.target_snapshot_arn.as_deref().unwrap_or_default().ends_with(":snapshot:nightly-tue"), "{status:?}");
    assert_eq!(bed.emulator.copy_calls("nightly-tue").len(), 1);
    assert_eq!(bed.emulator.copy_calls("nightly-mon").len(), 1);
    assert_eq!(bed.emulator.copy_calls("weekly-1").len(), 1);

    // Nothing is followed any more: the sweep stops calling AWS.
    wait_sweep_idle(&bed, Duration::from_secs(5), Duration::from_secs(20)).await;
    let calls: Vec<Value> = bed.emulator.calls("DescribeSnapshots");
    assert!(!calls.is_empty());
}

/// An in-region copy refused because its source is busy waits for the source: the shared sweep
/// must follow the source (it followed the copy's own name, which never changes, so the copy
/// waited for the slow safety-net requeue).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_region_copy_waiting_for_a_busy_source_starts_when_the_source_is_available() {
    let mut bed = Bed::without_operator().await;
    bed.emulator.seed_snapshot("busy-src", 1);
    bed.emulator.set_snapshot_status("busy-src", "creating");
    // A long safety-net requeue (and sweep ceiling): only following the right snapshot is quick.
    let mut args: Vec<&str> = TEST_TIMING.to_vec();
    let at = args.iter().position(|a| *a == "--poll-max-seconds").unwrap();
    args[at + 1] = "30";
    args.extend(TEST_POLICY);
    let operator = Operator::start(&bed.cluster, &bed.emulator, bed.dir.path(), 0, &args);
    bed.operators.push(operator);
    bed.cluster.apply("waits", json!({"sourceSnapshotName": "busy-src", "targetSnapshotName": "waits-copy"})).await;
    bed.wait_for("waits", "waiting for its source", 30, |o| {
        condition(o, "Reconciling").is_some_and(|c| c.0 == "True" && c.1 == "SourceSnapshotNotReady")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    bed.emulator.set_snapshot_status("busy-src", "available");
    let available_at = Instant::now();
    bed.wait_for("waits", "Ready", 60, |o| is_true(o, "Ready")).await;
    let took = available_at.elapsed();
    assert!(took < Duration::from_secs(15), "the copy started {took:?} after its source became available");
    let accepted: Vec<Value> = bed.emulator.copy_calls("waits-copy").into_iter().filter(|c| c["status"] == 200).collect();
    assert_eq!(accepted.len(), 1);
}
