//! The cleanup after a schedule's runs (intermediate snapshots, retention) never freezes the
//! schedule. A call AWS kept refusing used to end each reconcile before its status write:
//! `lastRun` and `nextScheduleTime` stayed put, nothing said why, and the call was made again on
//! every retry. Now the refusal is a Warning and a `CleanupFailing` condition naming the call and
//! the permission it needs, scheduling goes on, the cleanup backs off, and it heals once allowed
//! (issue 31, step 4).

use crate::harness::*;
use crate::schedule::{create_schedule, schedule_event_reasons, schedule_event_reasons_with, schedule_events, seed_automatic, TestClock};
use crate::schedule_edges::wait_status;
use ecx::api::schedule::SnapshotExportScheduleStatus;
use ecx::api::SnapshotExport;
use serde_json::json;
use std::time::Duration;

fn cleanup_condition(status: &SnapshotExportScheduleStatus) -> Option<(String, String, String)> {
    let c = status.conditions.iter().find(|c| c.type_ == "CleanupFailing")?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleanup_call_aws_refuses_is_reported_backed_off_and_scheduling_goes_on() {
    let mut bed = Bed::without_operator().await;
    let started = std::time::Instant::now();
    bed.emulator.ctl("POST", "/caches", Some(json!({"cache_cluster_id": "tidy", "region": REGION})));
    let denied = "User: arn:aws:sts::123456789012:assumed-role/ecx/operator is not authorized to perform: elasticache:DeleteSnapshot";
    bed.emulator.set_config(json!({"action_errors": {"DeleteSnapshot": {"code": "AccessDenied", "message": denied}}}));
    // A virtual day is 24 real seconds.
    let clock = TestClock::new("2026-11-23T00:00:00Z", 3_600.0);
    bed.start_operator_env(&[], &clock.env());
    create_schedule(
        &bed,
        "tidy",
        json!({"schedule": "0 3 * * *", "source": {"cacheClusterId": "tidy", "mode": "CreateSnapshot"}, "template": {}}),
    )
    .await;
    let first = "tidy-20261123-0300";
    clock.sleep_until("2026-11-23T03:00:00Z").await;
    let first_snapshot = bed.wait_ready(first).await.spec.source_snapshot_name;

    // Its intermediate snapshot's deletion is refused: the schedule says so, naming the call,
    // the permission and the run, and records the run and the next time all the same.
    let status = wait_status(&bed, "tidy", "CleanupFailing", |s| cleanup_condition(s).is_some_and(|c| c.0 == "True")).await;
    let (_, reason, message) = cleanup_condition(&status).unwrap();
    assert_eq!(reason, "DeleteSnapshotFailed");
    assert!(message.contains("elasticache:DeleteSnapshot") && message.contains(first) && message.contains(&first_snapshot), "{message}");
    assert_eq!(status.last_run.as_ref().and_then(|r| r.name.as_deref()), Some(first));
    assert_eq!(status.next_schedule_time.as_ref().map(|t| t.0.to_string()), Some("2026-11-24T03:00:00Z".to_string()));
    schedule_event_reasons_with(&bed, "tidy", "CleanupFailed").await;

    // Scheduling goes on: the next night runs.
    clock.sleep_until("2026-11-24T03:00:00Z").await;
    let second = "tidy-20261124-0300";
    let second_snapshot = bed.wait_ready(second).await.spec.source_snapshot_name;
    let status =
        wait_status(&bed, "tidy", "the second run recorded", |s| s.last_run.as_ref().and_then(|r| r.name.as_deref()) == Some(second)).await;
    assert_eq!(cleanup_condition(&status).map(|c| c.0), Some("True".to_string()));
    // Told once: the same refusal is not news (a repeat would show as a series on the Event).
    let told = schedule_events(&bed, "tidy", "CleanupFailed").await;
    assert_eq!(told.len(), 1, "{told:#?}");
    assert!(told[0].series.is_none(), "told more than once: {:?}", told[0].series);
    // Backed off: at most one refused call per run and backoff period (the test backoff, 0.2 s
    // doubling to 2 s, halved at most by its jitter), never one per reconcile.
    let refused = bed.emulator.calls("DeleteSnapshot").iter().filter(|c| c["status"].as_u64().is_some_and(|s| s >= 400)).count();
    let periods = 6.0 + started.elapsed().as_secs_f64();
    assert!(refused as f64 <= 2.0 * periods, "{refused} refused DeleteSnapshot calls in {periods:.0} backoff periods");
    let reasons = schedule_event_reasons(&bed, "tidy").await;
    assert!(!reasons.iter().any(|(_, r)| r == "CleanedUp"), "{reasons:?}");

    // Allowed again: both intermediate snapshots go at the next try, and the condition clears.
    bed.emulator.set_config(json!({"action_errors": {}}));
    let status = wait_status(&bed, "tidy", "the cleanup healed", |s| cleanup_condition(s).is_some_and(|c| c.0 == "False")).await;
    assert_eq!(cleanup_condition(&status).map(|c| c.1), Some("CleanedUp".to_string()));
    schedule_event_reasons_with(&bed, "tidy", "CleanedUp").await;
    let deleted: Vec<String> = bed
        .emulator
        .calls("DeleteSnapshot")
        .iter()
        .filter(|c| c["status"].as_u64().is_some_and(|s| s < 300))
        .filter_map(|c| c["params"]["SnapshotName"].as_str().map(str::to_string))
        .collect();
    for snapshot in [&first_snapshot, &second_snapshot] {
        assert_eq!(deleted.iter().filter(|d| d == &snapshot).count(), 1, "{snapshot} deleted once: {deleted:?}");
    }
}

/// Retention deleted an old run by name: had the run gone meanwhile (deleted by hand) and another
/// SnapshotExport taken its name, that object was deleted in its stead. The delete now carries
/// the run's UID as a precondition (issue 31, step 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_never_deletes_an_object_that_took_an_old_runs_name() {
    // Exports take five seconds, so the next night's run is seen exporting before it completes.
    let mut bed = Bed::with_options(1.0, 5.0, Default::default()).await;
    let bucket = "ecx-uid";
    create_bucket(&bed.s3, bucket, REGION, Access::FULL_ACL).await;
    // A virtual day is 24 real seconds.
    let clock = TestClock::new("2026-11-23T00:00:00Z", 3_600.0);
    bed.start_operator_env(&[], &clock.env());
    create_schedule(
        &bed,
        "held",
        json!({
            "schedule": "0 3 * * *",
            "source": {"replicationGroupId": "held-rg"},
            "template": {"targetBucket": bucket},
            "retention": {"keepLast": 1, "pruneExportedObjects": true},
        }),
    )
    .await;
    seed_automatic(&bed, "held-rg", "2026-11-23T02:00:00Z");
    let old = "held-20261123-0300";
    // The next night's backup as soon as the first run has chosen its own.
    bed.wait_for(old, "created", 60, |_| true).await;
    seed_automatic(&bed, "held-rg", "2026-11-24T02:00:00Z");
    bed.wait_for(old, "Ready", 60, |o| is_true(o, "Ready")).await;
    bed.wait_for("held-20261124-0300", "exporting", 60, |o| o.status.as_ref().is_some_and(|s| s.copy_accepted_at.is_some())).await;
    // Retention's look at the old run's object is held, and meanwhile the run is deleted by hand
    // and someone creates another SnapshotExport under its name.
    bed.emulator.set_faults(json!({"latency_ms": 4000, "actions": ["HeadObject"]}));
    bed.emulator.wait_in_flight("HeadObject", 1).await;
    bed.cluster.exports().delete(old, &Default::default()).await.expect("delete the old run by hand");
    let foreign = SnapshotExport::new(old, ecx::api::SnapshotExportSpec::new("someone-elses-source", "someone-elses-copy", None));
    bed.cluster.exports().create(&Default::default(), &foreign).await.expect("create another object under the name");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !bed.emulator.in_flight("HeadObject").is_empty() || bed.emulator.calls("DeleteObject").is_empty() {
        assert!(std::time::Instant::now() < deadline, "retention never went on; log:\n{}", bed.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bed.emulator.set_faults(json!({}));
    // Retention went as far as the run's delete.
    while !bed.log_text().contains("another object has its name; that object is not deleted") {
        assert!(
            std::time::Instant::now() < deadline,
            "retention never refused to delete the object that took the run's name; log:\n{}",
            bed.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let still = bed.cluster.exports().get_opt(old).await.unwrap().expect("the object that took the name was deleted by retention");
    assert_eq!(still.spec.source_snapshot_name, "someone-elses-source");
    assert!(schedule_events(&bed, "held", "CleanupFailed").await.is_empty(), "an object that is not ours is no cleanup fault");
}

/// Removing the annotation that names a run's deleted intermediate snapshot failed, and each
/// retry deleted the snapshot by name again (another snapshot could have taken the name
/// meanwhile). Now the retry only removes the annotation (issue 31, step 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intermediate_snapshot_is_deleted_once_when_removing_its_annotation_fails() {
    let mut bed = Bed::without_operator().await;
    bed.emulator.ctl("POST", "/caches", Some(json!({"cache_cluster_id": "unmark", "region": REGION})));
    let proxy = bed.cluster.kube_proxy().await;
    // The next three patches of a SnapshotExport fail: the schedule's removal of the annotation
    // (nothing else patches this run: its deletionPolicy is Retain).
    proxy.fail_next(kube_testbed::FaultRule::new("patch", "snapshotexports", 500).count(3));
    bed.start_operator_through(&proxy, &[]);
    create_schedule(
        &bed,
        "unmark",
        json!({"schedule": "0 3 1 1 *", "source": {"cacheClusterId": "unmark", "mode": "CreateSnapshot"}, "template": {}}),
    )
    .await;
    let annotate = json!({"metadata": {"annotations": {ecx::api::schedule::RUN_NOW_ANNOTATION: "1"}}});
    crate::schedule::schedules(&bed).patch("unmark", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(annotate)).await.unwrap();
    let run = ecx::schedule::names::run_now_name("unmark", "1", 1);
    let snapshot = bed.wait_ready(&run).await.spec.source_snapshot_name;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while kube::ResourceExt::annotations(&bed.cluster.get(&run).await).contains_key("elasticache-export.io/intermediate-snapshot") {
        assert!(std::time::Instant::now() < deadline, "the run still names its intermediate snapshot; log:\n{}", bed.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let failed = proxy.requests().iter().filter(|r| r.verb == "patch" && r.resource == "snapshotexports" && r.injected.is_some()).count();
    assert_eq!(failed, 3, "the removal failed three times first");
    let deletes = bed.emulator.calls("DeleteSnapshot").into_iter().filter(|c| c["params"]["SnapshotName"] == snapshot.as_str()).count();
    assert_eq!(deletes, 1, "the snapshot was deleted by name again after a failed removal");
    let told = schedule_events(&bed, "unmark", "IntermediateSnapshotDeleted").await;
    assert_eq!(told.len(), 1, "{told:#?}");
    assert!(told[0].series.is_none(), "told again: {:?}", told[0].series);
}
