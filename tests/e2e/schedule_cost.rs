//! What a schedule adds to its run's AWS calls (issue 13: at most 2 beyond the export's): a
//! CreateSnapshot-mode run takes its snapshot and, once the export completed, deletes it; it
//! makes no other call about that snapshot, and its export is requested once, when the
//! snapshot is available.

use crate::harness::*;
use ecx::api::schedule::{SnapshotExportSchedule, RUN_NOW_ANNOTATION};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_snapshot_run_costs_its_create_and_its_delete_only() {
    let mut bed = Bed::without_operator().await;
    bed.emulator.ctl("POST", "/caches", Some(json!({"cache_cluster_id": "lean", "region": REGION})));
    bed.start_operator(&[]);
    let schedules: Api<SnapshotExportSchedule> = Api::namespaced(bed.cluster.client.clone(), &bed.cluster.namespace);
    let obj: SnapshotExportSchedule = serde_json::from_value(json!({
        "apiVersion": "elasticache-export.io/v1alpha1", "kind": "SnapshotExportSchedule",
        "metadata": {"name": "lean"},
        "spec": {"schedule": "0 3 1 1 *", "source": {"cacheClusterId": "lean", "mode": "CreateSnapshot"}, "template": {}},
    }))
    .unwrap();
    schedules.create(&PostParams::default(), &obj).await.expect("create the schedule");
    let annotate = json!({"metadata": {"annotations": {RUN_NOW_ANNOTATION: "1"}}});
    schedules.patch("lean", &PatchParams::default(), &Patch::Merge(annotate)).await.unwrap();

    let run = bed.wait_ready(&ecx::schedule::names::run_now_name("lean", "1", 1)).await;
    let snapshot = run.spec.source_snapshot_name.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while bed.emulator.calls("DeleteSnapshot").is_empty() {
        assert!(Instant::now() < deadline, "the intermediate snapshot {snapshot} was not deleted after its export");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let any later reconcile of the schedule happen before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Every call that names the intermediate snapshot, but the export's CopySnapshot of it.
    let arn_suffix = format!(":snapshot:{snapshot}");
    let about: Vec<String> = bed
        .emulator
        .all_calls()
        .iter()
        .filter(|c: &&Value| {
            c["params"]["SnapshotName"] == snapshot.as_str()
                || c["params"]["ResourceName"].as_str().is_some_and(|r| r.ends_with(&arn_suffix))
        })
        .map(|c| c["action"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(about, ["CreateSnapshot", "DeleteSnapshot"], "the schedule's calls about its intermediate snapshot");
    // The export asks once, after the snapshot is available: never while it is `creating`, which
    // AWS must refuse (issue 31, step 8: every run used to send that refused request).
    let copies: Vec<Value> =
        bed.emulator.calls("CopySnapshot").into_iter().filter(|c| c["params"]["SourceSnapshotName"] == snapshot.as_str()).collect();
    assert_eq!(copies.len(), 1, "{copies:#?}");
    assert!(!bed.log_text().contains("CopySnapshot failed"), "a refused request was logged");
}
