//! End-to-end scenarios: the real operator binary against the AWS emulator and a Kubernetes API
//! (the in-memory test bed, or a real cluster with `E2E_KUBECONFIG`). Each asserts what a user
//! sees: status and conditions, Events, objects in S3, and the AWS calls made.

mod adoption;
mod cli;
mod exactly_once;
mod harness;
mod rbac;
mod readiness;
mod reliability;
mod safe_exports;
mod schedule;
mod schedule_cleanup;
mod schedule_cost;
mod schedule_edges;
mod schedule_intent;
mod schedule_serverless;
mod serverless;
mod shutdown;
#[path = "../common/validation_cases.rs"]
mod validation_cases;

use harness::*;
use kube::ResourceExt;
use serde_json::{json, Value};
use std::time::Duration;

/// The tags of a logged CopySnapshot call, as (key, value) pairs.
fn call_tags(call: &Value) -> Vec<(String, String)> {
    let params = call["params"].as_object().cloned().unwrap_or_default();
    let mut tags = Vec::new();
    for n in 1..=60 {
        if let Some(key) = params.get(&format!("Tags.Tag.{n}.Key")).and_then(Value::as_str) {
            let value = params.get(&format!("Tags.Tag.{n}.Value")).and_then(Value::as_str).unwrap_or_default();
            tags.push((key.to_string(), value.to_string()));
        }
    }
    tags
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_region_copy_completes_once_and_costs_nothing_afterwards() {
    let mut bed = Bed::start().await;
    bed.emulator.seed_snapshot("nightly-a", 1);
    let created = bed.cluster.apply("copy-a", json!({"sourceSnapshotName": "nightly-a", "targetSnapshotName": "Copy-A", "kmsKeyId": "alias/backups", "tags": [{"key": "team", "value": "data"}]})).await;

    let done = bed.wait_ready("copy-a").await;
    let status = done.status.clone().unwrap();
    assert_eq!(status.phase, Some(ecx::api::Phase::Completed));
    assert!(status.target_snapshot_arn.as_deref().unwrap().ends_with(":snapshot:copy-a"), "{status:?}");
    assert!(status.completed_at.is_some() && status.copy_requested_at.is_some());
    assert_eq!(status.attempts, 1);
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(condition(&done, "Ready").unwrap().1, "CopyCompleted");
    assert_eq!(condition(&done, "Reconciling").unwrap().0, "False");
    assert_eq!(condition(&done, "Stalled").unwrap().0, "False");

    // ElastiCache stores the name in lowercase; the operator still finds its copy.
    let calls = bed.emulator.copy_calls("Copy-A");
    assert_eq!(calls.len(), 1, "exactly one CopySnapshot: {calls:#?}");
    assert_eq!(calls[0]["params"]["SourceSnapshotName"], "nightly-a");
    assert_eq!(calls[0]["params"]["KmsKeyId"], "alias/backups");
    let tags = call_tags(&calls[0]);
    assert!(tags.contains(&("team".into(), "data".into())), "{tags:?}");
    assert!(tags.contains(&("elasticache-export.io/owner-uid".into(), created.uid().unwrap())), "ownership tag: {tags:?}");

    bed.cluster.wait_event("copy-a", "Normal", "CopyRequested").await;
    bed.cluster.wait_event("copy-a", "Normal", "CopyCompleted").await;

    // A restarted operator re-lists the completed object: no AWS call, no write.
    let calls_before = bed.emulator.ctl("GET", "/calls", None).as_array().unwrap().len();
    bed.operators[0].kill();
    bed.start_operator(&[]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let calls_after = bed.emulator.ctl("GET", "/calls", None).as_array().unwrap().len();
    assert_eq!(calls_after, calls_before, "a completed export must cost no AWS call on resync");
    assert_eq!(bed.cluster.get("copy-a").await.resource_version(), done.resource_version(), "no status write on resync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_completes_and_lists_its_objects_for_acl_and_policy_buckets() {
    let bed = Bed::start().await;
    bed.emulator.seed_snapshot("sharded", 2);
    create_bucket(&bed.s3, "ecx-acl-bucket", REGION, Access::FULL_ACL).await;
    create_bucket(&bed.s3, "ecx-policy-bucket", REGION, Access::Policy).await;
    bed.cluster
        .apply("to-acl", json!({"sourceSnapshotName": "sharded", "targetSnapshotName": "weekly", "targetBucket": "ecx-acl-bucket"}))
        .await;
    bed.cluster
        .apply("to-policy", json!({"sourceSnapshotName": "sharded", "targetSnapshotName": "weekly", "targetBucket": "ecx-policy-bucket"}))
        .await;

    for (name, bucket) in [("to-acl", "ecx-acl-bucket"), ("to-policy", "ecx-policy-bucket")] {
        let done = bed.wait_ready(name).await;
        let status = done.status.clone().unwrap();
        assert_eq!(status.phase, Some(ecx::api::Phase::Completed));
        assert_eq!(status.exported_objects, [format!("s3://{bucket}/weekly-0001.rdb"), format!("s3://{bucket}/weekly-0002.rdb")]);
        assert_eq!(condition(&done, "Ready").unwrap().1, "ExportCompleted");
        let mut keys = bucket_keys(&bed.s3, bucket).await;
        keys.sort();
        assert_eq!(keys, ["weekly-0001.rdb", "weekly-0002.rdb"]);
        // Both export the same source: while one runs, ElastiCache refuses the other with
        // InvalidSnapshotState and it is requested again later. Exactly one call is accepted.
        let calls: Vec<Value> = bed.emulator.copy_calls("weekly").into_iter().filter(|c| c["params"]["TargetBucket"] == bucket).collect();
        let accepted = calls.iter().filter(|c| c["status"] == 200).count();
        assert_eq!(accepted, 1, "{bucket}: {calls:#?}");
        assert!(calls.iter().filter(|c| c["status"] != 200).all(|c| c["error_code"] == "InvalidSnapshotState"), "{calls:#?}");
        bed.cluster.wait_event(name, "Normal", "CopyRequested").await;
        bed.cluster.wait_event(name, "Normal", "ExportCompleted").await;
    }
}

/// One broken bucket per documented S3 error, the fix for it, and what the user must see.
struct BrokenBucket {
    name: &'static str,
    bucket: &'static str,
    reason: &'static str,
    fix_hint: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_s3_error_stalls_with_its_documented_fix_and_heals_without_an_edit() {
    let bed = Bed::start().await;
    bed.emulator.seed_snapshot("prod", 1);
    let cases = [
        BrokenBucket {
            name: "missing",
            bucket: "ecx-missing",
            reason: "S3BucketNotFound",
            fix_hint: "Create an Amazon S3 bucket in the same region",
        },
        BrokenBucket {
            name: "outside",
            bucket: "ecx-outside",
            reason: "S3BucketOutsideRegion",
            fix_hint: "Create an Amazon S3 bucket in the same region",
        },
        BrokenBucket {
            name: "not-owned",
            bucket: "ecx-not-owned",
            reason: "S3BucketNotOwned",
            fix_hint: "Create an Amazon S3 bucket in the same region",
        },
        BrokenBucket {
            name: "no-read",
            bucket: "ecx-no-read",
            reason: "S3ReadPermissionMissing",
            fix_hint: "Add List and Read permissions on the bucket",
        },
        BrokenBucket {
            name: "no-write",
            bucket: "ecx-no-write",
            reason: "S3WritePermissionMissing",
            fix_hint: "Add Upload/Delete permissions on the bucket",
        },
        BrokenBucket {
            name: "no-read-acp",
            bucket: "ecx-no-read-acp",
            reason: "S3ReadAcpPermissionMissing",
            fix_hint: "Add View Permissions on the bucket",
        },
        BrokenBucket {
            name: "collision",
            bucket: "ecx-collision",
            reason: "S3ObjectAlreadyExists",
            fix_hint: "Give the TargetSnapshotName a new and unique value",
        },
    ];
    create_bucket(&bed.s3, "ecx-outside", "us-west-2", Access::FULL_ACL).await;
    create_bucket(&bed.s3, "ecx-not-owned", REGION, Access::FULL_ACL).await;
    bed.emulator.ctl("POST", "/bucket-owner", Some(json!({"bucket": "ecx-not-owned", "account": "999999999999"})));
    create_bucket(&bed.s3, "ecx-no-read", REGION, Access::Acl { read: false, write: true, read_acp: true }).await;
    create_bucket(&bed.s3, "ecx-no-write", REGION, Access::Acl { read: true, write: false, read_acp: true }).await;
    create_bucket(&bed.s3, "ecx-no-read-acp", REGION, Access::Acl { read: true, write: true, read_acp: false }).await;
    create_bucket(&bed.s3, "ecx-collision", REGION, Access::FULL_ACL).await;
    bed.s3.put_object().bucket("ecx-collision").key("exp-collision-0001.rdb").body(b"someone else's".to_vec().into()).send().await.unwrap();

    for c in &cases {
        bed.cluster
            .apply(c.name, json!({"sourceSnapshotName": "prod", "targetSnapshotName": format!("exp-{}", c.name), "targetBucket": c.bucket}))
            .await;
    }
    for c in &cases {
        let stalled = bed.wait_stalled(c.name, c.reason).await;
        let (_, _, message) = condition(&stalled, "Stalled").unwrap();
        assert!(message.contains(c.bucket), "{}: message names the bucket: {message}", c.name);
        assert!(message.contains(c.fix_hint), "{}: message carries the fix: {message}", c.name);
        let status = stalled.status.clone().unwrap();
        assert_eq!(status.phase, Some(ecx::api::Phase::Failed));
        assert_eq!(status.last_error.as_ref().unwrap().reason, c.reason);
        assert_eq!(condition(&stalled, "Ready").unwrap().0, "False");
        let note = bed.cluster.wait_event(c.name, "Warning", c.reason).await.note.unwrap_or_default();
        assert!(note.contains(c.bucket) && note.contains(c.fix_hint), "{}: event note {note}", c.name);
    }
    // The key collision is seen before any request: no CopySnapshot, nothing overwritten.
    assert!(bed.emulator.copy_calls("exp-collision").is_empty());

    // Fix each bucket; the slow retry heals every export without editing the objects.
    create_bucket(&bed.s3, "ecx-missing", REGION, Access::FULL_ACL).await;
    bed.s3.delete_bucket().bucket("ecx-outside").send().await.unwrap();
    create_bucket(&bed.s3, "ecx-outside", REGION, Access::FULL_ACL).await;
    bed.emulator.ctl("POST", "/bucket-owner", Some(json!({"bucket": "ecx-not-owned", "account": null})));
    for bucket in ["ecx-no-read", "ecx-no-write", "ecx-no-read-acp"] {
        grant(&bed.s3, bucket, REGION, Access::FULL_ACL).await;
    }
    bed.s3.delete_object().bucket("ecx-collision").key("exp-collision-0001.rdb").send().await.unwrap();
    for c in &cases {
        let done = bed.wait_ready(c.name).await;
        assert_eq!(done.status.unwrap().exported_objects, [format!("s3://{}/exp-{}-0001.rdb", c.bucket, c.name)]);
        assert_eq!(done.metadata.generation, Some(1), "healed without an edit");
        let accepted = bed.emulator.copy_calls(&format!("exp-{}", c.name)).into_iter().filter(|call| call["status"] == 200).count();
        assert_eq!(accepted, 1, "{}: exactly one accepted CopySnapshot", c.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_without_permission_gets_insufficient_permissions_then_heals() {
    let bed = Bed::start().await;
    bed.emulator.seed_snapshot("prod", 1);
    create_bucket(&bed.s3, "ecx-denied", REGION, Access::FULL_ACL).await;
    bed.emulator.set_config(json!({"deny_copy_snapshot": true}));
    bed.cluster.apply("denied", json!({"sourceSnapshotName": "prod", "targetSnapshotName": "exp", "targetBucket": "ecx-denied"})).await;
    let stalled = bed.wait_stalled("denied", "InsufficientPermissions").await;
    let message = condition(&stalled, "Stalled").unwrap().2;
    assert!(message.contains("Contact your system administrator") && message.contains("ecx-denied"), "names the bucket: {message}");
    let note = bed.cluster.wait_event("denied", "Warning", "InsufficientPermissions").await.note.unwrap_or_default();
    assert!(note.contains("ecx-denied"), "every S3 Warning names its bucket: {note}");
    bed.emulator.set_config(json!({"deny_copy_snapshot": false}));
    bed.wait_ready("denied").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_source_is_reported_as_source_snapshot_not_found() {
    let bed = Bed::start().await;
    create_bucket(&bed.s3, "ecx-fine", REGION, Access::FULL_ACL).await;
    bed.cluster.apply("no-source-copy", json!({"sourceSnapshotName": "does-not-exist", "targetSnapshotName": "c1"})).await;
    bed.cluster
        .apply("no-source-export", json!({"sourceSnapshotName": "does-not-exist", "targetSnapshotName": "c2", "targetBucket": "ecx-fine"}))
        .await;
    for name in ["no-source-copy", "no-source-export"] {
        let stalled = bed.wait_stalled(name, "SourceSnapshotNotFound").await;
        assert_eq!(stalled.status.unwrap().phase, Some(ecx::api::Phase::Failed));
        bed.cluster.wait_event(name, "Warning", "SourceSnapshotNotFound").await;
    }
    // AWS refused the request (no copy made) with SnapshotNotFoundFault; nothing was accepted.
    let calls = bed.emulator.copy_calls("c2");
    assert!(!calls.is_empty() && calls.iter().all(|c| c["error_code"] == "SnapshotNotFoundFault"), "{calls:#?}");
    // Creating the snapshot heals both.
    bed.emulator.seed_snapshot("does-not-exist", 1);
    bed.wait_ready("no-source-copy").await;
    bed.wait_ready("no-source-export").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_right_after_copy_snapshot_still_calls_it_exactly_once() {
    let mut bed = Bed::start().await;
    // Separate sources: while a source exports, ElastiCache refuses other copies of it.
    bed.emulator.seed_snapshot("prod", 1);
    bed.emulator.seed_snapshot("prod-sharded", 2);
    create_bucket(&bed.s3, "ecx-crash", REGION, Access::FULL_ACL).await;
    // CopySnapshot is answered 3 s late: the operator is killed while its request is in flight,
    // after the intent is recorded and before it can record the answer.
    bed.emulator.set_faults(json!({"latency_ms": 3000, "actions": ["CopySnapshot"]}));
    bed.cluster.apply("crash-copy", json!({"sourceSnapshotName": "prod", "targetSnapshotName": "crash-copy"})).await;
    bed.cluster
        .apply("crash-export", json!({"sourceSnapshotName": "prod", "targetSnapshotName": "crash-export", "targetBucket": "ecx-crash"}))
        .await;
    for name in ["crash-copy", "crash-export"] {
        bed.wait_for(name, "with its intent recorded", 30, |o| o.status.as_ref().is_some_and(|s| s.copy_requested_at.is_some())).await;
    }
    // Killed once both requests have reached AWS, well before their answers (an event, not a
    // guess at how long sending takes).
    bed.emulator.wait_in_flight("CopySnapshot", 2).await;
    bed.operators[0].kill();
    // AWS still carries out both requests whose answers nobody reads.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while bed.emulator.copy_calls("crash-copy").is_empty() || bed.emulator.copy_calls("crash-export").is_empty() {
        assert!(std::time::Instant::now() < deadline, "the in-flight CopySnapshot calls never reached the emulator");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for name in ["crash-copy", "crash-export"] {
        let status = bed.cluster.get(name).await.status.unwrap();
        assert_eq!(status.phase, Some(ecx::api::Phase::Pending), "{name}: the answer was never recorded");
    }
    bed.emulator.set_faults(json!({}));
    bed.start_operator(&[]);
    for name in ["crash-copy", "crash-export"] {
        let done = bed.wait_ready(name).await;
        assert_eq!(bed.emulator.copy_calls(name).len(), 1, "{name}: exactly one CopySnapshot across the restart");
        assert_eq!(done.status.unwrap().attempts, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_policy_delete_removes_the_copy_and_retain_keeps_it() {
    let bed = Bed::start().await;
    bed.emulator.seed_snapshot("prod", 1);
    bed.cluster.apply("keep", json!({"sourceSnapshotName": "prod", "targetSnapshotName": "kept-copy"})).await;
    bed.cluster
        .apply("remove", json!({"sourceSnapshotName": "prod", "targetSnapshotName": "removed-copy", "deletionPolicy": "Delete"}))
        .await;
    let kept = bed.wait_ready("keep").await;
    let removed = bed.wait_ready("remove").await;
    assert!(kept.finalizers().is_empty(), "Retain adds no finalizer");
    assert_eq!(removed.finalizers(), ["elasticache-export.io/delete-copy"]);
    bed.cluster.delete("keep").await;
    bed.cluster.delete("remove").await;
    for name in ["keep", "remove"] {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while bed.cluster.exports().get_opt(name).await.unwrap().is_some() {
            assert!(std::time::Instant::now() < deadline, "{name} was never deleted");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let snapshots: Vec<String> = bed
        .emulator
        .ctl("GET", "/snapshots", None)
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["SnapshotName"].as_str().or(s["name"].as_str()).unwrap_or_default().to_string())
        .collect();
    assert!(snapshots.contains(&"kept-copy".to_string()), "{snapshots:?}");
    assert!(!snapshots.contains(&"removed-copy".to_string()), "{snapshots:?}");
    let deletes = bed.emulator.calls("DeleteSnapshot");
    assert_eq!(deletes.len(), 1, "{deletes:#?}");
    assert_eq!(deletes[0]["params"]["SnapshotName"], "removed-copy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_specs_are_refused_at_admission_with_clear_messages() {
    let bed = Bed::without_operator().await;
    for (i, (name, spec, refused)) in validation_cases::invalid_cases().into_iter().enumerate() {
        let obj: ecx::api::SnapshotExport = serde_json::from_value(json!({
            "apiVersion": "elasticache-export.io/v1alpha1", "kind": "SnapshotExport",
            "metadata": {"name": format!("bad-{i}"), "namespace": bed.cluster.namespace}, "spec": spec
        }))
        .unwrap();
        let err = bed.cluster.exports().create(&Default::default(), &obj).await.expect_err(name);
        let kube::Error::Api(status) = err else { panic!("{name}: {err}") };
        assert_eq!(status.code, 422, "{name}: {status:?}");
        let expected = match refused {
            validation_cases::Refused::Cel(text) => text,
            validation_cases::Refused::Bound(field) => field.split('.').next().unwrap(),
        };
        assert!(status.message.contains(expected), "{name}: {:?} lacks {expected:?}", status.message);
    }
    // Each immutable field: refused on update.
    let created = bed.cluster.apply("fixed", json!({"sourceSnapshotName": "a", "targetSnapshotName": "b", "targetBucket": "good-bucket", "tags": [{"key": "t", "value": "1"}]})).await;
    for (field, value) in [
        ("sourceSnapshotName", json!("x")),
        ("targetSnapshotName", json!("x")),
        ("targetBucket", json!("other-bucket")),
        ("tags", json!([])),
        ("deletionPolicy", json!("Delete")),
    ] {
        let mut changed = serde_json::to_value(&created).unwrap();
        changed["spec"][field] = value;
        let changed: ecx::api::SnapshotExport = serde_json::from_value(changed).unwrap();
        let err = bed.cluster.exports().replace("fixed", &Default::default(), &changed).await.expect_err(field);
        let kube::Error::Api(status) = err else { panic!("{field}: {err}") };
        assert_eq!(status.code, 422, "{field}");
        assert!(status.message.contains("spec is immutable"), "{field}: {}", status.message);
    }
}

/// Remove every CEL rule and bound from a schema, as on a cluster without CEL (or an object
/// admitted before a rule existed).
fn strip_rules(v: &mut Value) {
    if let Some(map) = v.as_object_mut() {
        for key in ["x-kubernetes-validations", "minLength", "maxLength", "maxItems", "pattern"] {
            map.remove(key);
        }
        map.values_mut().for_each(strip_rules);
    } else if let Some(items) = v.as_array_mut() {
        items.iter_mut().for_each(strip_rules);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_spec_that_reaches_the_reconciler_is_invalid_spec_with_no_aws_call() {
    let mut bed = Bed::without_operator().await;
    if !bed.cluster.may_change_crds() {
        skip_on_real_server(
            "an_invalid_spec_that_reaches_the_reconciler_is_invalid_spec_with_no_aws_call",
            "it strips the CRD's rules, and the CRD is shared by every test on that server (run it alone with E2E_EXCLUSIVE=1, as .ci/run does)",
        );
        return;
    }
    bed.cluster.edit_crd("snapshotexports.elasticache-export.io", |crd| strip_rules(&mut crd["spec"])).await;
    let cases = validation_cases::invalid_cases();
    for (i, (_, spec, _)) in cases.iter().enumerate() {
        let obj: ecx::api::SnapshotExport = serde_json::from_value(json!({
            "apiVersion": "elasticache-export.io/v1alpha1", "kind": "SnapshotExport",
            "metadata": {"name": format!("bad-{i}"), "namespace": bed.cluster.namespace}, "spec": spec
        }))
        .unwrap();
        bed.cluster.create_once_schema_allows(&bed.cluster.exports(), &obj).await;
    }
    bed.start_operator(&[]);
    for (i, (name, _, _)) in cases.iter().enumerate() {
        let stalled = bed.wait_stalled(&format!("bad-{i}"), "InvalidSpec").await;
        let message = condition(&stalled, "Stalled").unwrap().2;
        assert!(message.starts_with("The spec is invalid: "), "{name}: {message}");
        bed.cluster.wait_event(&format!("bad-{i}"), "Warning", "InvalidSpec").await;
    }
    let calls = bed.emulator.ctl("GET", "/calls", None);
    assert_eq!(calls.as_array().unwrap().len(), 0, "no AWS call for an invalid spec: {calls:#}");
    bed.cluster.restore_crds().await;
}

/// The replica (index into `bed.operators`) whose identity holds the lease now, once every other
/// replica that ever led has exited. A stalled renewal on a loaded machine may move the lease
/// before the test kills anyone; the replica that lost it must then have stopped (it exits), and
/// it is started again, as Kubernetes would, so that a follower stands by.
async fn the_one_leader(bed: &mut Bed, election: &[&str]) -> usize {
    let ns = bed.cluster.namespace.clone();
    for _ in 0..300 {
        let holder = lease_holder(&bed.cluster.client, &ns, "elasticache-export-operator").await;
        let logs: Vec<String> = bed.logs().iter().map(|l| std::fs::read_to_string(l).unwrap_or_default()).collect();
        let leader = holder.and_then(|h| logs.iter().position(|log| log.contains(&h) && log.contains("acquired leadership")));
        let mut others_led_and_run = false;
        for (i, op) in bed.operators.iter_mut().enumerate() {
            if Some(i) != leader && logs[i].contains("acquired leadership") && !op.has_exited() {
                others_led_and_run = true;
            }
        }
        if let (Some(leader), false) = (leader, others_led_and_run) {
            let standing_by = bed.operators.iter_mut().enumerate().filter(|(i, _)| *i != leader).any(|(_, op)| !op.has_exited());
            if !standing_by {
                bed.start_operator(election);
            }
            return leader;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no single leader: either nobody holds the lease, or a replica that lost it keeps running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_takes_over_when_the_leader_dies_mid_export() {
    let mut bed = Bed::without_operator().await;
    bed.emulator.set_config(json!({"copy_delay": 3.0, "export_delay": 3.0}));
    bed.emulator.seed_snapshot("prod", 1);
    bed.emulator.seed_snapshot("prod-2", 1);
    create_bucket(&bed.s3, "ecx-ha", REGION, Access::FULL_ACL).await;
    let ns = bed.cluster.namespace.clone();
    let election = ["--leader-elect", "--lease-namespace", ns.as_str(), "--lease-duration-seconds", "10"];
    bed.start_operator(&election);
    bed.start_operator(&election);
    bed.cluster.apply("ha-copy", json!({"sourceSnapshotName": "prod", "targetSnapshotName": "ha-copy"})).await;
    bed.cluster
        .apply("ha-export", json!({"sourceSnapshotName": "prod", "targetSnapshotName": "ha-export", "targetBucket": "ecx-ha"}))
        .await;
    for name in ["ha-copy", "ha-export"] {
        bed.wait_for(name, "accepted by AWS", 30, |o| {
            o.status.as_ref().is_some_and(|s| matches!(s.phase, Some(ecx::api::Phase::Copying | ecx::api::Phase::Exporting)))
        })
        .await;
    }
    let leader = the_one_leader(&mut bed, &election).await;
    bed.operators[leader].kill();
    for name in ["ha-copy", "ha-export"] {
        bed.wait_ready(name).await;
        assert_eq!(bed.emulator.copy_calls(name).len(), 1, "{name}: exactly one CopySnapshot across the failover");
    }
    let successor = the_one_leader(&mut bed, &election).await;
    assert_ne!(successor, leader, "a follower took over from the killed leader");
}

/// `ecx_aws_calls_total` from a `/metrics` page, summed over outcomes, by operation.
fn aws_calls_by_operation(metrics: &str) -> std::collections::BTreeMap<String, u64> {
    let mut by_operation = std::collections::BTreeMap::new();
    for line in metrics.lines().filter(|l| l.starts_with("ecx_aws_calls_total{")) {
        let operation = line.split("operation=\"").nth(1).and_then(|r| r.split('"').next()).unwrap().to_string();
        let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        *by_operation.entry(operation).or_default() += value as u64;
    }
    by_operation
}

/// The value of one sample (`name{labels}`) on a `/metrics` page.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Wait until the operator's `/metrics` shows `series` at `want`. Gauges counted from the watch
/// cache at scrape time lag the API (the test saw Ready before the operator's cache did).
async fn wait_for_sample(bed: &Bed, series: &str, want: f64) {
    for _ in 0..300 {
        if sample(&bed.metrics(), series) == Some(want) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{series} never reached {want}:\n{}", bed.metrics());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_every_aws_call_the_exports_by_phase_and_warnings_by_reason() {
    let mut bed = Bed::without_operator().await;
    bed.emulator.seed_snapshot("nightly", 1);
    bed.emulator.seed_snapshot("weekly", 2);
    create_bucket(&bed.s3, "ecx-metrics", REGION, Access::FULL_ACL).await;
    bed.emulator.ctl("DELETE", "/calls", None);
    bed.start_operator(&[]);
    bed.cluster.apply("copy", json!({"sourceSnapshotName": "nightly", "targetSnapshotName": "nightly-copy"})).await;
    bed.cluster
        .apply("export", json!({"sourceSnapshotName": "weekly", "targetSnapshotName": "weekly", "targetBucket": "ecx-metrics"}))
        .await;
    bed.wait_ready("copy").await;
    bed.wait_ready("export").await;

    // Every call the emulator answered is counted under its operation, the preflight's bucket
    // inspection included (it shares the rate limit and the counter with the reconciler's calls).
    let metrics = bed.metrics();
    let mut logged = std::collections::BTreeMap::<String, u64>::new();
    for call in bed.emulator.all_calls() {
        *logged.entry(call["action"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(aws_calls_by_operation(&metrics), logged, "{metrics}");
    assert!(logged.contains_key("GetBucketAcl") && logged["CopySnapshot"] == 2, "{logged:?}");
    assert_eq!(sample(&metrics, "ecx_aws_calls_total{operation=\"CopySnapshot\",outcome=\"ok\"}"), Some(2.0), "{metrics}");
    wait_for_sample(&bed, "ecx_exports{phase=\"Completed\"}", 2.0).await;
    assert!(sample(&metrics, "ecx_reconciles_total{result=\"ok\"}").unwrap() >= 2.0, "{metrics}");

    // A refusal is counted as such, and its Warning by reason; so is the ownership look (tags)
    // at a target that already exists.
    bed.emulator.seed_snapshot("taken", 1);
    bed.cluster.apply("missing", json!({"sourceSnapshotName": "does-not-exist", "targetSnapshotName": "m1"})).await;
    bed.cluster.apply("clash", json!({"sourceSnapshotName": "nightly", "targetSnapshotName": "taken"})).await;
    bed.wait_stalled("missing", "SourceSnapshotNotFound").await;
    bed.wait_stalled("clash", "TargetAlreadyExists").await;
    bed.cluster.wait_event("missing", "Warning", "SourceSnapshotNotFound").await;
    let metrics = bed.metrics();
    assert!(aws_calls_by_operation(&metrics).get("ListTagsForResource").is_some_and(|n| *n >= 1), "{metrics}");
    assert!(sample(&metrics, "ecx_aws_calls_total{operation=\"CopySnapshot\",outcome=\"refused\"}").unwrap() >= 1.0, "{metrics}");
    assert!(sample(&metrics, "ecx_warning_events_total{reason=\"SourceSnapshotNotFound\"}").unwrap() >= 1.0, "{metrics}");
    wait_for_sample(&bed, "ecx_exports{phase=\"Failed\"}", 2.0).await;
    wait_for_sample(&bed, "ecx_exports{phase=\"Completed\"}", 2.0).await;
}
