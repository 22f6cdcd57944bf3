//! `SnapshotExportSchedule` edge cases end to end: a CreateSnapshot run the export policy refuses
//! takes no snapshot, and the intermediate snapshot of a run that failed for good is deleted.

use crate::harness::*;
use crate::schedule::{create_schedule, runs_of, schedule_event_reasons, schedules};
use ecx::api::schedule::{SnapshotExportSchedule, RUN_NOW_ANNOTATION};
use ecx::api::SnapshotExport;
use kube::api::{Patch, PatchParams};
use kube::ResourceExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn run_now(bed: &Bed, schedule: &str, value: &str) {
    let annotate = json!({"metadata": {"annotations": {RUN_NOW_ANNOTATION: value}}});
    schedules(bed).patch(schedule, &PatchParams::default(), &Patch::Merge(annotate)).await.unwrap();
}

async fn create_cache_cluster(bed: &Bed, id: &str) {
    bed.emulator
        .elasticache()
        .create_cache_cluster()
        .cache_cluster_id(id)
        .engine("redis")
        .cache_node_type("cache.t4g.micro")
        .num_cache_nodes(1)
        .send()
        .await
        .expect("create the cache cluster");
}

/// The schedule's condition `type_` once it is True, waiting up to 30 s; `fail_fast` is checked
/// on each look and stops the wait with its message.
async fn wait_condition(
    bed: &Bed,
    name: &str,
    type_: &str,
    fail_fast: impl Fn() -> Option<String>,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(why) = fail_fast() {
            panic!("{name}: {why}");
        }
        let s: SnapshotExportSchedule = schedules(bed).get(name).await.unwrap();
        if let Some(c) = s.status.and_then(|st| st.conditions.into_iter().find(|c| c.type_ == type_ && c.status == "True")) {
            return c;
        }
        assert!(Instant::now() < deadline, "{name} did not become {type_}; log:\n{}", bed.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn create_snapshot_calls_for(bed: &Bed, cluster: &str) -> Vec<Value> {
    bed.emulator.calls("CreateSnapshot").into_iter().filter(|c| c["params"]["CacheClusterId"] == cluster).collect()
}

/// Review finding F3a: the export policy is asked for a CreateSnapshot run before its snapshot is
/// taken. A refusal (by the source's cluster, or by the bucket) stalls the schedule with the
/// policy's reason and message and a Warning, and takes no snapshot; a run the policy allows
/// takes its snapshot and exports it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_snapshot_run_the_policy_refuses_takes_no_snapshot_and_stalls() {
    let mut bed = Bed::without_operator().await;
    create_bucket(&bed.s3, "ecx-fenced", REGION, Access::FULL_ACL).await;
    create_cache_cluster(&bed, "fenced").await;
    create_cache_cluster(&bed, "team-redis").await;
    // This namespace may export to ecx-fenced only snapshots of cluster team-redis.
    let rule = format!("{}=ecx-fenced,*,team-redis", bed.cluster.namespace);
    bed.start_operator_with_policy(&["--allow-export", &rule]);
    let spec = |cluster: &str, bucket: &str| json!({"schedule": "0 3 1 1 *", "source": {"cacheClusterId": cluster, "mode": "CreateSnapshot"}, "template": {"targetBucket": bucket}});
    create_schedule(&bed, "wrong-cluster", spec("fenced", "ecx-fenced")).await;
    create_schedule(&bed, "wrong-bucket", spec("team-redis", "ecx-elsewhere")).await;
    create_schedule(&bed, "allowed", spec("team-redis", "ecx-fenced")).await;
    for name in ["wrong-cluster", "wrong-bucket", "allowed"] {
        run_now(&bed, name, "1").await;
    }

    let no_snapshot = |cluster: &'static str| {
        let bed = &bed;
        move || {
            let calls = create_snapshot_calls_for(bed, cluster);
            (!calls.is_empty()).then(|| format!("a CreateSnapshot for a run the export policy refuses: {calls:?}"))
        }
    };
    let stalled = wait_condition(&bed, "wrong-cluster", "Stalled", no_snapshot("fenced")).await;
    assert_eq!(stalled.reason, "ExportNotAllowed", "{}", stalled.message);
    assert!(stalled.message.contains("team-redis") && stalled.message.contains("fenced"), "{}", stalled.message);
    let stalled = wait_condition(&bed, "wrong-bucket", "Stalled", || None).await;
    assert_eq!(stalled.reason, "ExportNotAllowed", "{}", stalled.message);
    assert!(stalled.message.contains("ecx-elsewhere"), "{}", stalled.message);
    for name in ["wrong-cluster", "wrong-bucket"] {
        let reasons = schedule_event_reasons(&bed, name).await;
        assert!(reasons.iter().any(|(t, r)| t == "Warning" && r == "ExportNotAllowed"), "{name}: {reasons:?}");
        assert!(!reasons.iter().any(|(_, r)| r == "RunStarted"), "{name}: {reasons:?}");
        assert!(runs_of(&bed, name).await.is_empty(), "{name}: no run without the policy's consent");
        let status = schedules(&bed).get(name).await.unwrap().status.unwrap();
        assert!(status.pending_snapshot.is_none(), "{name}: no intent recorded for a refused run");
    }

    // The allowed one: its snapshot is taken and exported (the policy's own check agrees).
    let runs = loop {
        let runs = runs_of(&bed, "allowed").await;
        if !runs.is_empty() {
            break runs;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    bed.wait_ready(&runs[0].name_any()).await;
    let creates = bed.emulator.calls("CreateSnapshot");
    assert_eq!(creates.len(), 1, "only the allowed run took a snapshot: {creates:?}");
    assert_eq!(creates[0]["params"]["CacheClusterId"], "team-redis");
}

/// Review finding F3b: the tagged intermediate snapshot of a run that failed for good (AWS
/// accepted the export and it wrote nothing) is deleted, as after a success; with
/// `keepIntermediateSnapshot` it is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_intermediate_snapshot_of_a_run_that_failed_for_good_is_deleted() {
    let mut bed = Bed::without_operator().await;
    create_bucket(&bed.s3, "ecx-doomed", REGION, Access::FULL_ACL).await;
    create_cache_cluster(&bed, "doomed").await;
    // Every export's upload fails: AWS accepts it and writes nothing (ExportFailed, for good).
    bed.emulator.set_config(json!({"export_fail_node_groups": ["0001"]}));
    bed.start_operator(&["--export-grace-seconds", "2"]);
    let spec = |keep: bool| json!({"schedule": "0 3 1 1 *", "source": {"cacheClusterId": "doomed", "mode": "CreateSnapshot", "keepIntermediateSnapshot": keep}, "template": {"targetBucket": "ecx-doomed"}});
    create_schedule(&bed, "doomed", spec(false)).await;
    create_schedule(&bed, "kept", spec(true)).await;
    run_now(&bed, "doomed", "1").await;
    run_now(&bed, "kept", "1").await;

    let mut failed: Vec<SnapshotExport> = Vec::new();
    for name in ["doomed", "kept"] {
        let deadline = Instant::now() + Duration::from_secs(30);
        let run = loop {
            if let Some(run) = runs_of(&bed, name).await.into_iter().next() {
                break run;
            }
            assert!(Instant::now() < deadline, "{name}: no run");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        failed.push(bed.wait_stalled(&run.name_any(), "ExportFailed").await);
    }
    let doomed_snapshot = failed[0].spec.source_snapshot_name.clone();
    let kept_snapshot = failed[1].spec.source_snapshot_name.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !bed.emulator.calls("DeleteSnapshot").iter().any(|c| c["params"]["SnapshotName"] == doomed_snapshot.as_str()) {
        assert!(
            Instant::now() < deadline,
            "the intermediate snapshot {doomed_snapshot} of a failed run was kept; log:\n{}",
            bed.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reasons = schedule_event_reasons(&bed, "doomed").await;
    assert!(reasons.iter().any(|(_, r)| r == "IntermediateSnapshotDeleted"), "{reasons:?}");
    let stalled = wait_condition(&bed, "doomed", "Stalled", || None).await;
    assert_eq!(stalled.reason, "LastRunFailed", "{}", stalled.message);
    // Once deleted, the run no longer names it (no second DeleteSnapshot).
    let deadline = Instant::now() + Duration::from_secs(10);
    while bed.cluster.get(&failed[0].name_any()).await.annotations().contains_key("elasticache-export.io/intermediate-snapshot") {
        assert!(Instant::now() < deadline, "the run still names its deleted intermediate snapshot");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let deletes = bed.emulator.calls("DeleteSnapshot");
    assert_eq!(deletes.len(), 1, "one DeleteSnapshot, of the failed run's own snapshot only: {deletes:?}");
    assert!(deletes.iter().all(|c| c["params"]["SnapshotName"] != kept_snapshot.as_str()), "keepIntermediateSnapshot was ignored");
}
