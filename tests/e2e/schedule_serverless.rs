//! `SnapshotExportSchedule` of an ElastiCache Serverless cache end to end: LatestAutomatic nights
//! on the virtual clock (the newest available automatic snapshot of that cache only, once, then
//! `NoNewSnapshot`), and a CreateSnapshot run (one tagged CreateServerlessCacheSnapshot, exported,
//! then deleted). Each run is a SnapshotExport with `sourceKind: Serverless`.

use crate::harness::*;
use crate::schedule::{create_schedule, runs_of, schedule_event_reasons_with, schedules, TestClock};
use ecx::api::schedule::{RUN_NOW_ANNOTATION, SCHEDULE_TAG_KEY};
use ecx::api::{Phase, SourceKind};
use kube::api::{Patch, PatchParams};
use kube::ResourceExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A serverless snapshot of `cache` (created with it if new) taken at the virtual instant `created`.
fn seed(bed: &Bed, name: &str, cache: &str, snapshot_type: &str, created: &str) {
    let t: jiff::Timestamp = created.parse().unwrap();
    bed.emulator.ctl(
        "POST",
        "/serverless-snapshots",
        Some(json!({"name": name, "cache": cache, "region": REGION, "snapshot_type": snapshot_type, "created": t.as_second() as f64})),
    );
}

fn calls_where(bed: &Bed, action: &str, key: &str, value: &str) -> Vec<Value> {
    bed.emulator.calls(action).into_iter().filter(|c| c["params"][key] == value).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serverless_schedule_exports_the_newest_automatic_snapshot_of_its_cache_once() {
    let mut bed = Bed::without_operator().await;
    create_bucket(&bed.s3, "ecx-sls-nightly", REGION, Access::FULL_ACL).await;
    // 55 older automatic snapshots sort first, so the newest ones are on the second page.
    for i in 0..55 {
        seed(&bed, &format!("sessions-a-{i:02}"), "sessions", "automated", &format!("2026-10-{:02}T02:00:00Z", 1 + i % 28));
    }
    seed(&bed, "sessions-auto-22", "sessions", "automated", "2026-11-22T02:00:00Z");
    seed(&bed, "sessions-auto-23", "sessions", "automated", "2026-11-23T02:00:00Z");
    // Newer, but not automatic, or not of this cache: never taken.
    seed(&bed, "sessions-manual", "sessions", "manual", "2026-11-23T02:30:00Z");
    seed(&bed, "other-auto-23", "other", "automated", "2026-11-23T02:40:00Z");
    // A virtual day is six real seconds.
    let clock = TestClock::new("2026-11-23T00:00:00Z", 14_400.0);
    bed.start_operator_env(&[], &clock.env());
    create_schedule(
        &bed,
        "sessions",
        json!({"schedule": "0 3 * * *", "source": {"serverlessCacheName": "sessions"}, "template": {"targetBucket": "ecx-sls-nightly"}}),
    )
    .await;
    // The 23rd exports the 23rd's snapshot; the 24th has no new one.
    clock.sleep_until("2026-11-24T12:00:00Z").await;

    let runs = runs_of(&bed, "sessions").await;
    let names: Vec<String> = runs.iter().map(|r| r.name_any()).collect();
    assert_eq!(names, ["sessions-20261123-0300"], "one run, for the night with a new snapshot");
    let run = bed.wait_ready(&names[0]).await;
    assert_eq!(run.spec.source_kind, SourceKind::Serverless);
    assert_eq!(run.spec.source_snapshot_name, "sessions-auto-23");
    assert!(run.spec.target_snapshot_name.is_empty(), "a serverless export takes no target name");
    let status = run.status.unwrap();
    assert_eq!(status.phase, Some(Phase::Completed));
    assert_eq!(status.exported_objects, ["s3://ecx-sls-nightly/sessions-auto-23-0001.rdb"]);
    assert_eq!(bucket_keys(&bed.s3, "ecx-sls-nightly").await, ["sessions-auto-23-0001.rdb"]);
    let exports = bed.emulator.calls("ExportServerlessCacheSnapshot");
    assert_eq!(exports.iter().filter(|c| c["status"] == 200).count(), 1, "{exports:#?}");
    // One filtered look per night at this cache's automatic snapshots, of two pages each.
    let looks = calls_where(&bed, "DescribeServerlessCacheSnapshots", "ServerlessCacheName", "sessions");
    let tokens: Vec<bool> = looks.iter().map(|c| c["params"]["NextToken"].is_string()).collect();
    assert_eq!(tokens, [false, true, false, true], "{looks:#?}");
    assert!(looks.iter().all(|c| c["params"]["SnapshotType"] == "automated"), "{looks:#?}");
    assert!(bed.emulator.calls("DescribeSnapshots").iter().all(|c| c["params"]["SnapshotSource"].is_null()), "no node-based look");

    let reasons = schedule_event_reasons_with(&bed, "sessions", "NoNewSnapshot").await;
    assert_eq!(reasons.iter().filter(|(t, r)| t == "Warning" && r == "NoNewSnapshot").count(), 1, "{reasons:?}");
    let s = schedules(&bed).get("sessions").await.unwrap().status.unwrap();
    let source = s.source.unwrap();
    assert_eq!((source.cache_id.as_str(), source.snapshot_name.as_deref()), ("sessions", Some("sessions-auto-23")));
    assert!(s.last_successful_time.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serverless_create_snapshot_run_takes_one_tagged_snapshot_and_deletes_it_after_the_export() {
    let mut bed = Bed::without_operator().await;
    create_bucket(&bed.s3, "ecx-sls-fresh", REGION, Access::FULL_ACL).await;
    bed.emulator.ctl("POST", "/serverless-caches", Some(json!({"name": "carts", "region": REGION})));
    bed.start_operator(&[]);
    let created = create_schedule(
        &bed,
        "carts",
        json!({"schedule": "0 3 1 1 *", "source": {"serverlessCacheName": "carts", "mode": "CreateSnapshot"}, "template": {"targetBucket": "ecx-sls-fresh"}}),
    )
    .await;
    let annotate = json!({"metadata": {"annotations": {RUN_NOW_ANNOTATION: "1"}}});
    schedules(&bed).patch("carts", &PatchParams::default(), &Patch::Merge(annotate)).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    let run = loop {
        if let Some(run) = runs_of(&bed, "carts").await.into_iter().next() {
            break run;
        }
        assert!(Instant::now() < deadline, "no run; log:\n{}", bed.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let done = bed.wait_ready(&run.name_any()).await;
    let snapshot = done.spec.source_snapshot_name.clone();
    assert_eq!(done.spec.source_kind, SourceKind::Serverless);
    assert!(snapshot.starts_with("ecx-sched-"), "{snapshot}");
    assert_eq!(bucket_keys(&bed.s3, "ecx-sls-fresh").await, [format!("{snapshot}-0001.rdb")]);

    let creates = bed.emulator.calls("CreateServerlessCacheSnapshot");
    assert_eq!(creates.len(), 1, "{creates:#?}");
    let params = creates[0]["params"].as_object().unwrap();
    assert_eq!(
        (params["ServerlessCacheName"].as_str(), params["ServerlessCacheSnapshotName"].as_str()),
        (Some("carts"), Some(snapshot.as_str()))
    );
    let tag_key = params.iter().find(|(_, v)| v.as_str() == Some(SCHEDULE_TAG_KEY)).map(|(k, _)| k.clone()).expect("the schedule tag");
    assert_eq!(params[&tag_key.replace(".Key", ".Value")], created.uid().unwrap().as_str());
    assert!(bed.emulator.calls("CreateSnapshot").is_empty(), "no node-based CreateSnapshot");

    let deadline = Instant::now() + Duration::from_secs(30);
    while calls_where(&bed, "DeleteServerlessCacheSnapshot", "ServerlessCacheSnapshotName", &snapshot).is_empty() {
        assert!(Instant::now() < deadline, "the intermediate snapshot {snapshot} was not deleted; log:\n{}", bed.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reasons = schedule_event_reasons_with(&bed, "carts", "IntermediateSnapshotDeleted").await;
    assert!(reasons.iter().any(|(t, r)| t == "Normal" && r == "IntermediateSnapshotDeleted"), "{reasons:?}");
    assert!(bed.emulator.calls("DeleteSnapshot").is_empty(), "no node-based DeleteSnapshot");
}
