//! ElastiCache Serverless snapshots (issue 15): the AWS layer against the emulator over the wire
//! (the Rust SDK's serverless calls as `SdkSnapshots` makes them, checked in the emulator's call
//! log), then the controller end to end: a serverless in-region copy and export, a crash right
//! after the call, each documented S3 error, and `deletionPolicy: Delete`.

use crate::harness::*;
use ecx::api::{Phase, OWNER_TAG_KEY};
use ecx::aws::{SdkSnapshots, ServerlessCopyRequest, ServerlessSnapshotApi, SnapshotApi, SnapshotStatus};
use kube::ResourceExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn client(emulator: &Emulator) -> SdkSnapshots {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(&emulator.endpoint)
        .credentials_provider(aws_sdk_elasticache::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "e2e"))
        .load()
        .await;
    SdkSnapshots::new(&config, true)
}

fn seed(emulator: &Emulator, name: &str, shards: u32) {
    emulator.ctl(
        "POST",
        "/serverless-snapshots",
        Some(json!({"name": name, "cache": format!("{name}-cache"), "region": REGION, "shards": shards})),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serverless_copy_is_tagged_described_paged_and_deleted_through_the_sdk() {
    let emulator = Emulator::start(0.5, 0.5);
    let aws = client(&emulator).await;
    seed(&emulator, "sls-nightly", 1);
    let request = ServerlessCopyRequest {
        source: "sls-nightly".into(),
        target: "SLS-Copy".into(),
        kms_key_id: None,
        tags: vec![(ecx::api::OWNER_TAG_KEY.into(), Some("uid-1".into())), ("team".into(), None)],
    };
    let copy = aws.copy_serverless_snapshot(&request).await.unwrap();
    assert_eq!(copy.name, "sls-copy", "stored in lowercase");
    assert_eq!(copy.status, SnapshotStatus::InProgress("copying".into()));
    // The ownership tag is read back from the copy's ARN, as adoption after a crash does.
    assert_eq!(aws.owner_tag(copy.arn.as_deref().unwrap()).await.unwrap().as_deref(), Some("uid-1"));
    let err = aws.copy_serverless_snapshot(&request).await.unwrap_err();
    assert_eq!(err.fault().map(|f| f.reason()), Some("TargetAlreadyExists"), "{err}");
    let calls = emulator.calls("CopyServerlessCacheSnapshot");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["params"]["TargetServerlessCacheSnapshotName"], "SLS-Copy");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let seen = aws.describe_serverless_snapshot("SLS-Copy").await.unwrap().expect("the copy exists");
    assert_eq!(seen.status, SnapshotStatus::Available);
    assert_eq!(aws.describe_serverless_snapshot("never-made").await.unwrap(), None);

    // 120 snapshots: the sweep's paging reads them all in pages of 50, each token once.
    for i in 0..118 {
        seed(&emulator, &format!("bulk-{i:03}"), 1);
    }
    let (mut names, mut token, mut pages) = (Vec::new(), None, 0);
    loop {
        let page = aws.describe_serverless_snapshots_page(token).await.unwrap();
        pages += 1;
        names.extend(page.snapshots.into_iter().map(|s| s.name));
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!((names.len(), pages), (120, 3));

    aws.delete_serverless_snapshot("sls-copy").await.unwrap();
    aws.delete_serverless_snapshot("sls-copy").await.unwrap();
    assert_eq!(aws.describe_serverless_snapshot("sls-copy").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serverless_export_writes_under_the_snapshot_name_and_reports_the_documented_s3_errors() {
    let emulator = Emulator::start(0.5, 0.5);
    let aws = client(&emulator).await;
    let s3 = emulator.s3().await;
    seed(&emulator, "sls-export", 2);
    let err = aws.export_serverless_snapshot("sls-export", "no-such-bucket").await.unwrap_err();
    assert_eq!(err.fault().map(|f| f.reason()), Some("S3BucketNotFound"), "{err}");
    create_bucket(&s3, "sls-bucket", REGION, Access::None).await;
    let err = aws.export_serverless_snapshot("sls-export", "sls-bucket").await.unwrap_err();
    assert_eq!(err.fault().map(|f| f.reason()), Some("S3ReadPermissionMissing"), "{err}");
    grant(&s3, "sls-bucket", REGION, Access::FULL_ACL).await;
    let exporting = aws.export_serverless_snapshot("sls-export", "sls-bucket").await.unwrap();
    assert_eq!(exporting.status, SnapshotStatus::InProgress("exporting".into()));
    let busy = aws.export_serverless_snapshot("sls-export", "sls-bucket").await.unwrap_err();
    assert_eq!(busy.fault().map(|f| f.reason()), Some("InvalidSnapshotState"), "{busy}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(bucket_keys(&s3, "sls-bucket").await, vec!["sls-export-0001.rdb", "sls-export-0002.rdb"]);
    let again = aws.export_serverless_snapshot("sls-export", "sls-bucket").await.unwrap_err();
    assert_eq!(again.fault().map(|f| f.reason()), Some("S3ObjectAlreadyExists"), "{again}");
    assert_eq!(emulator.calls("ExportServerlessCacheSnapshot").len(), 5);
}

/// The spec of a serverless in-region copy.
fn copy_of(source: &str, target: &str) -> Value {
    json!({"sourceSnapshotName": source, "sourceKind": "Serverless", "targetSnapshotName": target})
}

/// The spec of a serverless export (no target name: ElastiCache names the objects).
fn export_of(source: &str, bucket: &str) -> Value {
    json!({"sourceSnapshotName": source, "sourceKind": "Serverless", "targetBucket": bucket})
}

/// Logged calls of `action` whose parameter `param` is `value`.
fn calls_with(emulator: &Emulator, action: &str, param: &str, value: &str) -> Vec<Value> {
    emulator.calls(action).into_iter().filter(|c| c["params"][param] == value).collect()
}

/// The tags on a snapshot (ListTagsForResource, as a user would read them).
async fn tags_of(emulator: &Emulator, arn: &str) -> Vec<(String, Option<String>)> {
    let out = emulator.elasticache().list_tags_for_resource().resource_name(arn).send().await.unwrap_or_else(|e| panic!("{arn}: {e:?}"));
    out.tag_list().iter().map(|t| (t.key().unwrap_or_default().to_string(), t.value().map(str::to_string))).collect()
}

fn serverless_snapshot_names(emulator: &Emulator) -> Vec<String> {
    let all = emulator.ctl("GET", "/serverless-snapshots", None);
    all.as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().or(s["ServerlessCacheSnapshotName"].as_str()).unwrap_or_default().to_string())
        .collect()
}

async fn wait_gone(bed: &Bed, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while bed.cluster.exports().get_opt(name).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "{name} was never deleted (left Terminating)");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serverless_in_region_copy_completes_once_tagged_and_followed_by_the_shared_listing() {
    let mut bed = Bed::start().await;
    // The trap: a node-based snapshot with the serverless snapshot's name must never be copied.
    bed.emulator.seed_snapshot("twin", 1);
    seed(&bed.emulator, "twin", 1);
    let mut spec = copy_of("twin", "Twin-Copy");
    spec["tags"] = json!([{"key": "team", "value": "data"}]);
    let created = bed.cluster.apply("sls-copy", spec).await;
    let done = bed.wait_ready("sls-copy").await;
    let status = done.status.clone().unwrap();
    assert_eq!(status.phase, Some(Phase::Completed));
    let arn = status.target_snapshot_arn.clone().unwrap();
    assert!(arn.ends_with(":serverlesscachesnapshot:twin-copy"), "{status:?}");
    assert_eq!((status.attempts, status.target_snapshot_status.as_deref()), (1, Some("available")));
    assert!(status.copy_accepted_at.is_some() && status.completed_at.is_some());
    assert_eq!(condition(&done, "Ready").unwrap().1, "CopyCompleted");

    let calls = bed.emulator.calls("CopyServerlessCacheSnapshot");
    assert_eq!(calls.len(), 1, "exactly one CopyServerlessCacheSnapshot: {calls:#?}");
    assert_eq!(calls[0]["params"]["SourceServerlessCacheSnapshotName"], "twin");
    assert_eq!(calls[0]["params"]["TargetServerlessCacheSnapshotName"], "Twin-Copy");
    assert!(bed.emulator.calls("CopySnapshot").is_empty(), "no node-based copy of a serverless source");
    // The ownership tag is on the copy itself, where adoption and deletion read it.
    let tags = tags_of(&bed.emulator, &arn).await;
    assert!(tags.contains(&(OWNER_TAG_KEY.into(), created.uid())), "{tags:?}");
    assert!(tags.contains(&("elasticache-export.io/owner-namespace".into(), Some(bed.cluster.namespace.clone()))), "{tags:?}");
    assert!(tags.contains(&("team".into(), Some("data".into()))), "{tags:?}");
    // Followed by the shared listing, never one describe per object; the node-based sweep idles.
    let listings = bed.emulator.calls("DescribeServerlessCacheSnapshots");
    assert!(!listings.is_empty(), "the copy in flight was followed");
    assert!(listings.iter().all(|c| c["params"].get("ServerlessCacheSnapshotName").is_none()), "{listings:#?}");
    assert!(bed.emulator.calls("DescribeSnapshots").is_empty(), "nothing node-based is in flight");
    let requested = bed.cluster.wait_event("sls-copy", "Normal", "CopyRequested").await.note.unwrap_or_default();
    assert!(requested.contains("CopyServerlessCacheSnapshot accepted"), "{requested}");
    bed.cluster.wait_event("sls-copy", "Normal", "CopyCompleted").await;

    // A restarted operator re-lists the completed object: no AWS call, no write.
    let calls_before = bed.emulator.all_calls().len();
    bed.operators[0].kill();
    bed.start_operator(&[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(bed.emulator.all_calls().len(), calls_before, "a completed copy costs no AWS call on resync");
    assert_eq!(bed.cluster.get("sls-copy").await.resource_version(), done.resource_version(), "no status write on resync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serverless_export_lists_the_objects_elasticache_wrote() {
    let bed = Bed::start().await;
    seed(&bed.emulator, "sls-weekly", 2);
    create_bucket(&bed.s3, "ecx-sls-acl", REGION, Access::FULL_ACL).await;
    create_bucket(&bed.s3, "ecx-sls-policy", REGION, Access::Policy).await;
    // Another serverless snapshot's objects in the same bucket are no concern of this export.
    bed.s3.put_object().bucket("ecx-sls-acl").key("sls-other-0001.rdb").body(b"x".to_vec().into()).send().await.unwrap();
    bed.cluster.apply("to-acl", export_of("sls-weekly", "ecx-sls-acl")).await;
    bed.cluster.apply("to-policy", export_of("sls-weekly", "ecx-sls-policy")).await;
    for (name, bucket) in [("to-acl", "ecx-sls-acl"), ("to-policy", "ecx-sls-policy")] {
        let done = bed.wait_ready(name).await;
        let status = done.status.clone().unwrap();
        assert_eq!(status.phase, Some(Phase::Completed));
        let want = [format!("s3://{bucket}/sls-weekly-0001.rdb"), format!("s3://{bucket}/sls-weekly-0002.rdb")];
        assert_eq!(status.exported_objects, want);
        assert_eq!(condition(&done, "Ready").unwrap().1, "ExportCompleted");
        let mut keys = bucket_keys(&bed.s3, bucket).await;
        keys.retain(|k| k.starts_with("sls-weekly-"));
        keys.sort();
        assert_eq!(keys, ["sls-weekly-0001.rdb", "sls-weekly-0002.rdb"]);
        // Both export the same snapshot: while one runs, ElastiCache refuses the other as busy
        // and it is requested again later. Exactly one call per bucket is accepted.
        let calls = calls_with(&bed.emulator, "ExportServerlessCacheSnapshot", "S3BucketName", bucket);
        assert_eq!(calls.iter().filter(|c| c["status"] == 200).count(), 1, "{bucket}: {calls:#?}");
        let refused = calls.iter().filter(|c| c["status"] != 200);
        assert!(refused.clone().all(|c| c["error_code"] == "InvalidServerlessCacheSnapshotStateFault"), "{calls:#?}");
        let note = bed.cluster.wait_event(name, "Normal", "CopyRequested").await.note.unwrap_or_default();
        assert!(note.contains("ExportServerlessCacheSnapshot accepted") && note.contains(bucket), "{note}");
        let note = bed.cluster.wait_event(name, "Normal", "ExportCompleted").await.note.unwrap_or_default();
        assert!(note.contains(&want[0]) && note.contains(&want[1]), "{note}");
    }
    assert!(bed.emulator.calls("CopySnapshot").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_right_after_a_serverless_call_still_makes_it_exactly_once() {
    let mut bed = Bed::start().await;
    // Separate snapshots: one being exported cannot be copied meanwhile.
    seed(&bed.emulator, "sls-crash-a", 1);
    seed(&bed.emulator, "sls-crash-b", 2);
    create_bucket(&bed.s3, "ecx-sls-crash", REGION, Access::FULL_ACL).await;
    // The calls are answered 3 s late: the operator is killed while they are in flight, after
    // the intent is recorded and before it can record the answer.
    bed.emulator.set_faults(json!({"latency_ms": 3000, "actions": ["CopyServerlessCacheSnapshot", "ExportServerlessCacheSnapshot"]}));
    bed.cluster.apply("crash-copy", copy_of("sls-crash-a", "sls-crash-copy")).await;
    bed.cluster.apply("crash-export", export_of("sls-crash-b", "ecx-sls-crash")).await;
    for name in ["crash-copy", "crash-export"] {
        bed.wait_for(name, "with its intent recorded", 30, |o| o.status.as_ref().is_some_and(|s| s.copy_requested_at.is_some())).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    bed.operators[0].kill();
    // AWS still carries out both requests whose answers nobody reads.
    let deadline = Instant::now() + Duration::from_secs(20);
    while bed.emulator.calls("CopyServerlessCacheSnapshot").is_empty() || bed.emulator.calls("ExportServerlessCacheSnapshot").is_empty() {
        assert!(Instant::now() < deadline, "the in-flight serverless calls never reached the emulator");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for name in ["crash-copy", "crash-export"] {
        let status = bed.cluster.get(name).await.status.unwrap();
        assert_eq!((status.phase, status.copy_accepted_at), (Some(Phase::Pending), None), "{name}: the answer was never recorded");
    }
    bed.emulator.set_faults(json!({}));
    bed.start_operator(&[]);
    let copy = bed.wait_ready("crash-copy").await;
    let export = bed.wait_ready("crash-export").await;
    assert_eq!(bed.emulator.calls("CopyServerlessCacheSnapshot").len(), 1, "exactly one copy across the restart");
    assert_eq!(bed.emulator.calls("ExportServerlessCacheSnapshot").len(), 1, "exactly one export across the restart");
    for done in [&copy, &export] {
        assert_eq!(done.status.as_ref().unwrap().attempts, 1, "{}", done.name_any());
    }
    // The copy was adopted by its ownership tag; the export by its objects written after the intent.
    let arn = copy.status.as_ref().unwrap().target_snapshot_arn.clone().unwrap();
    assert!(tags_of(&bed.emulator, &arn).await.contains(&(OWNER_TAG_KEY.into(), copy.uid())));
    assert_eq!(
        export.status.unwrap().exported_objects,
        ["s3://ecx-sls-crash/sls-crash-b-0001.rdb", "s3://ecx-sls-crash/sls-crash-b-0002.rdb"]
    );
}

/// One broken bucket per documented S3 error of an export, and what the user must see.
struct BrokenBucket {
    name: &'static str,
    reason: &'static str,
    fix_hint: &'static str,
}

impl BrokenBucket {
    fn bucket(&self) -> String {
        format!("ecx-sls-{}", self.name)
    }
    fn snapshot(&self) -> String {
        format!("sls-{}", self.name)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_s3_error_of_a_serverless_export_stalls_with_its_fix_and_heals_without_an_edit() {
    let bed = Bed::start().await;
    let same_region = "Create an Amazon S3 bucket in the same region";
    let cases = [
        BrokenBucket { name: "missing", reason: "S3BucketNotFound", fix_hint: same_region },
        BrokenBucket { name: "outside", reason: "S3BucketOutsideRegion", fix_hint: same_region },
        BrokenBucket { name: "not-owned", reason: "S3BucketNotOwned", fix_hint: same_region },
        BrokenBucket { name: "no-read", reason: "S3ReadPermissionMissing", fix_hint: "Add List and Read permissions on the bucket" },
        BrokenBucket { name: "no-write", reason: "S3WritePermissionMissing", fix_hint: "Add Upload/Delete permissions on the bucket" },
        BrokenBucket { name: "no-read-acp", reason: "S3ReadAcpPermissionMissing", fix_hint: "Add View Permissions on the bucket" },
        BrokenBucket { name: "collision", reason: "S3ObjectAlreadyExists", fix_hint: "move or delete the existing objects of that name" },
    ];
    for c in &cases {
        seed(&bed.emulator, &c.snapshot(), 1);
    }
    create_bucket(&bed.s3, "ecx-sls-outside", "us-west-2", Access::FULL_ACL).await;
    create_bucket(&bed.s3, "ecx-sls-not-owned", REGION, Access::FULL_ACL).await;
    bed.emulator.ctl("POST", "/bucket-owner", Some(json!({"bucket": "ecx-sls-not-owned", "account": "999999999999"})));
    create_bucket(&bed.s3, "ecx-sls-no-read", REGION, Access::Acl { read: false, write: true, read_acp: true }).await;
    create_bucket(&bed.s3, "ecx-sls-no-write", REGION, Access::Acl { read: true, write: false, read_acp: true }).await;
    create_bucket(&bed.s3, "ecx-sls-no-read-acp", REGION, Access::Acl { read: true, write: true, read_acp: false }).await;
    create_bucket(&bed.s3, "ecx-sls-collision", REGION, Access::FULL_ACL).await;
    let taken = "sls-collision-0001.rdb";
    bed.s3.put_object().bucket("ecx-sls-collision").key(taken).body(b"someone else's".to_vec().into()).send().await.unwrap();

    for c in &cases {
        bed.cluster.apply(c.name, export_of(&c.snapshot(), &c.bucket())).await;
    }
    for c in &cases {
        let stalled = bed.wait_stalled(c.name, c.reason).await;
        let (_, _, message) = condition(&stalled, "Stalled").unwrap();
        assert!(message.contains(&c.bucket()), "{}: the message names the bucket: {message}", c.name);
        assert!(message.contains(c.fix_hint), "{}: the message carries the fix: {message}", c.name);
        assert!(!message.contains("TargetSnapshotName"), "{}: no fix a serverless export cannot follow: {message}", c.name);
        let status = stalled.status.clone().unwrap();
        assert_eq!((status.phase, status.copy_accepted_at), (Some(Phase::Failed), None));
        assert_eq!(status.last_error.as_ref().unwrap().reason, c.reason);
        assert_eq!(condition(&stalled, "Ready").unwrap().0, "False");
        let note = bed.cluster.wait_event(c.name, "Warning", c.reason).await.note.unwrap_or_default();
        assert!(note.contains(&c.bucket()) && note.contains(c.fix_hint), "{}: event note {note}", c.name);
    }
    // Nothing was overwritten.
    let body = bed.s3.get_object().bucket("ecx-sls-collision").key(taken).send().await.unwrap().body.collect().await.unwrap();
    assert_eq!(body.into_bytes().as_ref(), b"someone else's");

    // Fix each bucket; the slow retry heals every export without editing the objects.
    create_bucket(&bed.s3, "ecx-sls-missing", REGION, Access::FULL_ACL).await;
    bed.s3.delete_bucket().bucket("ecx-sls-outside").send().await.unwrap();
    create_bucket(&bed.s3, "ecx-sls-outside", REGION, Access::FULL_ACL).await;
    bed.emulator.ctl("POST", "/bucket-owner", Some(json!({"bucket": "ecx-sls-not-owned", "account": null})));
    for bucket in ["ecx-sls-no-read", "ecx-sls-no-write", "ecx-sls-no-read-acp"] {
        grant(&bed.s3, bucket, REGION, Access::FULL_ACL).await;
    }
    bed.s3.delete_object().bucket("ecx-sls-collision").key(taken).send().await.unwrap();
    for c in &cases {
        let done = bed.wait_ready(c.name).await;
        assert_eq!(done.status.unwrap().exported_objects, [format!("s3://{}/{}-0001.rdb", c.bucket(), c.snapshot())]);
        assert_eq!(done.metadata.generation, Some(1), "healed without an edit");
        let calls = calls_with(&bed.emulator, "ExportServerlessCacheSnapshot", "ServerlessCacheSnapshotName", &c.snapshot());
        assert_eq!(calls.iter().filter(|call| call["status"] == 200).count(), 1, "{}: exactly one accepted export", c.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_without_permission_to_export_a_serverless_snapshot_is_told_so_then_heals() {
    let bed = Bed::start().await;
    seed(&bed.emulator, "sls-denied", 1);
    create_bucket(&bed.s3, "ecx-sls-denied", REGION, Access::FULL_ACL).await;
    bed.emulator.set_config(json!({"deny_copy_snapshot": true}));
    bed.cluster.apply("denied", export_of("sls-denied", "ecx-sls-denied")).await;
    let stalled = bed.wait_stalled("denied", "InsufficientPermissions").await;
    let message = condition(&stalled, "Stalled").unwrap().2;
    assert!(message.contains("Contact your system administrator") && message.contains("ecx-sls-denied"), "{message}");
    bed.cluster.wait_event("denied", "Warning", "InsufficientPermissions").await;
    bed.emulator.set_config(json!({"deny_copy_snapshot": false}));
    bed.wait_ready("denied").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_policy_delete_removes_only_a_serverless_copy_this_object_made() {
    let bed = Bed::start().await;
    seed(&bed.emulator, "sls-prod", 1);
    let mut remove = copy_of("sls-prod", "sls-removed");
    remove["deletionPolicy"] = json!("Delete");
    let mut replaced = copy_of("sls-prod", "sls-replaced");
    replaced["deletionPolicy"] = json!("Delete");
    bed.cluster.apply("keep", copy_of("sls-prod", "sls-kept")).await;
    bed.cluster.apply("remove", remove).await;
    bed.cluster.apply("replaced", replaced).await;
    for name in ["keep", "remove", "replaced"] {
        bed.wait_ready(name).await;
    }
    // The copy of "replaced" is deleted by a user and an untagged snapshot takes its name.
    bed.emulator.elasticache().delete_serverless_cache_snapshot().serverless_cache_snapshot_name("sls-replaced").send().await.unwrap();
    seed(&bed.emulator, "sls-replaced", 1);
    let before = bed.emulator.calls("DeleteServerlessCacheSnapshot").len();
    for name in ["keep", "remove", "replaced"] {
        bed.cluster.delete(name).await;
    }
    for name in ["keep", "remove", "replaced"] {
        wait_gone(&bed, name).await;
    }
    let deletes: Vec<Value> = bed.emulator.calls("DeleteServerlessCacheSnapshot").into_iter().skip(before).collect();
    assert_eq!(deletes.len(), 1, "{deletes:#?}");
    assert_eq!(deletes[0]["params"]["ServerlessCacheSnapshotName"], "sls-removed");
    let names = serverless_snapshot_names(&bed.emulator);
    assert!(names.contains(&"sls-kept".to_string()) && names.contains(&"sls-replaced".to_string()), "{names:?}");
    assert!(!names.contains(&"sls-removed".to_string()), "{names:?}");
    let note = bed.cluster.wait_event("replaced", "Warning", "CopyNotOwned").await.note.unwrap_or_default();
    assert!(note.contains("sls-replaced"), "{note}");
    bed.cluster.wait_event("remove", "Normal", "CopyDeleted").await;
    assert!(bed.emulator.calls("DeleteSnapshot").is_empty(), "no node-based delete for a serverless copy");
}
