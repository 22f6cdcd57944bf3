//! The export policy for serverless sources (issue 15): source rules hold for them as for
//! node-based ones. A serverless copy keeps its source's serverless cache and carries the copying
//! namespace's ownership tag, so copying another team's serverless snapshot in-region under an
//! allowed name launders nothing past `sources` or `sourceClusters`.

use crate::harness::*;
use ecx::api::SnapshotExport;
use kube::api::Api;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// `namespace/name` once `condition_type` is True with `reason` (any reason when empty).
async fn wait_in(bed: &Bed, namespace: &str, name: &str, condition_type: &str, reason: &str) -> SnapshotExport {
    let api: Api<SnapshotExport> = Api::namespaced(bed.cluster.client.clone(), namespace);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let obj = api.get_opt(name).await.ok().flatten();
        let reached =
            |o: &SnapshotExport| condition(o, condition_type).is_some_and(|c| c.0 == "True" && (reason.is_empty() || c.1 == reason));
        if let Some(obj) = obj.as_ref().filter(|o| reached(o)) {
            return obj.clone();
        }
        assert!(Instant::now() < deadline, "{namespace}/{name}: not {condition_type} {reason}; status {:#?}", obj.and_then(|o| o.status));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn serverless(source: &str, target: Option<&str>, bucket: Option<&str>) -> Value {
    let mut spec = json!({"sourceSnapshotName": source, "sourceKind": "Serverless"});
    if let Some(target) = target {
        spec["targetSnapshotName"] = json!(target);
    }
    if let Some(bucket) = bucket {
        spec["targetBucket"] = json!(bucket);
    }
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serverless_copy_cannot_launder_a_snapshot_past_the_source_rules() {
    let mut bed = Bed::without_operator().await;
    let [b, c, z] = bed.start_three_teams("sls", "ecx-sls-launder", r#"sources: ["team-b-*"]"#, "sourceClusters: [team-c-valkey]").await;
    for (name, cache) in [("team-a-valkey-auto", "team-a-valkey"), ("team-c-valkey-auto", "team-c-valkey"), ("team-b-own", "team-b-valkey")]
    {
        let body = json!({"name": name, "cache": cache, "region": REGION, "snapshot_type": "automated"});
        bed.emulator.ctl("POST", "/serverless-snapshots", Some(body));
    }

    // team-z (no rule) may copy in-region: both copies of team A's snapshot are made, tagged with team-z.
    for (name, target) in [("copy-for-b", "team-b-laundered"), ("copy-for-c", "team-c-laundered")] {
        apply_in(&bed, &z, name, serverless("team-a-valkey-auto", Some(target), None)).await;
        wait_in(&bed, &z, name, "Ready", "").await;
    }
    let exports = [
        (&b, "launder-b", "team-b-laundered", "ecx-sls-launder-b"),
        (&c, "launder-c", "team-c-laundered", "ecx-sls-launder-c"),
        (&b, "own-b", "team-b-own", "ecx-sls-launder-b"),
        (&c, "own-c", "team-c-valkey-auto", "ecx-sls-launder-c"),
    ];
    for (ns, name, source, bucket) in exports {
        apply_in(&bed, ns, name, serverless(source, None, Some(bucket))).await;
    }
    let refused = wait_in(&bed, &b, "launder-b", "Stalled", "ExportNotAllowed").await;
    let message = condition(&refused, "Stalled").unwrap().2;
    assert!(message.contains(&format!("made by a SnapshotExport in namespace {z}")), "{message}");
    let refused = wait_in(&bed, &c, "launder-c", "Stalled", "ExportNotAllowed").await;
    let message = condition(&refused, "Stalled").unwrap().2;
    assert!(message.contains("belongs to serverless cache team-a-valkey"), "{message}");
    for (ns, name) in [(&b, "own-b"), (&c, "own-c")] {
        let done = wait_in(&bed, ns, name, "Ready", "").await;
        assert_eq!(done.status.unwrap().exported_objects.len(), 1, "{name}");
    }
    let exported: Vec<Value> = bed.emulator.calls("ExportServerlessCacheSnapshot");
    let names: Vec<&str> = exported.iter().filter_map(|c| c["params"]["ServerlessCacheSnapshotName"].as_str()).collect();
    assert!(!names.iter().any(|n| n.ends_with("-laundered")), "no export call for a laundering export: {names:?}");
}
