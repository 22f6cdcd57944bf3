//! `SnapshotExportSchedule` edge cases end to end: a CreateSnapshot run the export policy refuses
//! takes no snapshot.

use crate::harness::*;
use crate::schedule::{create_schedule, runs_of, schedule_event_reasons, schedules};
use ecx::api::schedule::{SnapshotExportSchedule, RUN_NOW_ANNOTATION};
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
