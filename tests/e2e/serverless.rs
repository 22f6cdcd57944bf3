//! ElastiCache Serverless snapshots (issue 15), the controller end to end: a serverless in-region
//! copy and export, a crash right after the call, each documented S3 error, `deletionPolicy:
//! Delete`, the shared listing, terminal stalls. The AWS layer over the wire is in `sdk.rs`, the
//! export policy for serverless sources in `policy.rs`.

use crate::harness::*;
use ecx::api::{Phase, OWNER_TAG_KEY};
use kube::ResourceExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

mod policy;
mod sdk;

fn seed(emulator: &Emulator, name: &str, shards: u32) {
    emulator.ctl(
        "POST",
        "/serverless-snapshots",
        Some(json!({"name": name, "cache": format!("{name}-cache"), "region": REGION, "shards": shards})),
    );
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
    // A name typed in another case than ElastiCache stores it: the objects carry the stored name.
    seed(&bed.emulator, "sls-mixed", 1);
    bed.cluster.apply("mixed-case", export_of("SLS-Mixed", "ecx-sls-acl")).await;
    let done = bed.wait_ready("mixed-case").await;
    assert_eq!(done.status.unwrap().exported_objects, ["s3://ecx-sls-acl/sls-mixed-0001.rdb"]);
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
    // Killed once both requests have reached AWS, well before their answers.
    bed.emulator.wait_in_flight("CopyServerlessCacheSnapshot", 1).await;
    bed.emulator.wait_in_flight("ExportServerlessCacheSnapshot", 1).await;
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
        let lower = message.to_lowercase();
        assert!(!lower.contains("targetsnapshotname"), "{}: no fix a serverless export cannot follow: {message}", c.name);
        assert!(!message.contains("CopySnapshot"), "{}: names the serverless call, not CopySnapshot: {message}", c.name);
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
        bed.wait_gone(name).await;
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

/// The operator's log without ANSI colours.
fn plain_log(bed: &Bed) -> String {
    let mut out = String::new();
    let mut chars = bed.log_text().chars().collect::<Vec<_>>().into_iter();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip "ESC [ ... m".
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_serverless_objects_in_flight_cost_one_listing_per_sweep_and_nothing_once_done() {
    let mut bed = Bed::with_options(3.0, 1.0, Default::default()).await;
    bed.start_operator(&[]);
    const N: usize = 30;
    for i in 0..N {
        seed(&bed.emulator, &format!("sls-many-{i:02}"), 1);
    }
    for i in 0..3 {
        bed.emulator.seed_snapshot(&format!("node-many-{i}"), 1);
    }
    for i in 0..N {
        bed.cluster.apply(&format!("sls-{i:02}"), copy_of(&format!("sls-many-{i:02}"), &format!("sls-many-copy-{i:02}"))).await;
    }
    for i in 0..3 {
        let spec = json!({"sourceSnapshotName": format!("node-many-{i}"), "targetSnapshotName": format!("node-many-copy-{i}")});
        bed.cluster.apply(&format!("node-{i}"), spec).await;
    }
    for i in 0..N {
        bed.wait_ready(&format!("sls-{i:02}")).await;
    }
    for i in 0..3 {
        bed.wait_ready(&format!("node-{i}")).await;
    }
    assert_eq!(bed.emulator.calls("CopyServerlessCacheSnapshot").len(), N);
    // Everything is done: the sweep goes idle and the operator makes no AWS call at all.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let since = bed.emulator.all_calls().len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after: Vec<Value> = bed.emulator.all_calls().into_iter().skip(since).collect();
    assert_eq!(after, Vec::<Value>::new(), "an idle operator makes no AWS call");
    // Counted once idle, so that no sweep is between its listing and its log line.
    // Followed only by listing every serverless snapshot (60 at most: 2 pages of 50), never by name.
    let describes = bed.emulator.calls("DescribeServerlessCacheSnapshots");
    assert!(describes.iter().all(|c| c["params"].get("ServerlessCacheSnapshotName").is_none()), "a by-name describe: {describes:#?}");
    let log = plain_log(&bed);
    let sweeps = log.lines().filter(|l| l.contains("swept snapshots") && !l.contains("serverless=0")).count();
    assert!(sweeps > 0, "the sweep followed the serverless copies");
    assert!(
        (sweeps..=2 * sweeps).contains(&describes.len()),
        "one listing (1 or 2 pages) per sweep, not one call per object: {} pages for {sweeps} sweeps of {N} objects",
        describes.len()
    );
    eprintln!("{N} serverless copies in flight: {} DescribeServerlessCacheSnapshots pages over {sweeps} sweeps", describes.len());
    // The node-based copies were followed beside them by their own sweep.
    assert!(!bed.emulator.calls("DescribeSnapshots").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_serverless_listing_shows_on_the_objects_it_follows_and_heals() {
    let mut bed = Bed::with_options(6.0, 1.0, Default::default()).await;
    bed.start_operator(&[]);
    seed(&bed.emulator, "sls-swept", 1);
    bed.cluster.apply("swept", copy_of("sls-swept", "sls-swept-copy")).await;
    bed.wait_for("swept", "accepted", 30, |o| o.status.as_ref().is_some_and(|s| s.phase == Some(Phase::Copying))).await;
    bed.emulator.set_faults(json!({"error_rate": 1.0, "actions": ["DescribeServerlessCacheSnapshots"]}));
    let failing = bed
        .wait_for("swept", "reporting the failing listing", 30, |o| {
            condition(o, "Reconciling").is_some_and(|c| c.0 == "True" && c.2.contains("DescribeServerlessCacheSnapshots"))
        })
        .await;
    assert!(failing.status.as_ref().unwrap().last_error.as_ref().is_some_and(|e| e.message.contains("InternalFailure")), "{failing:?}");
    bed.emulator.set_faults(json!({}));
    let done = bed.wait_ready("swept").await;
    assert_eq!(done.status.unwrap().last_error, None);
    assert_eq!(bed.emulator.calls("CopyServerlessCacheSnapshot").len(), 1, "the failing listing never repeated the copy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_serverless_copy_whose_snapshot_the_user_deletes_is_never_copied_again() {
    let mut bed = Bed::with_options(5.0, 1.0, Default::default()).await;
    bed.start_operator(&[]);
    seed(&bed.emulator, "sls-fails", 1);
    bed.cluster.apply("fails", copy_of("sls-fails", "sls-fails-copy")).await;
    bed.wait_for("fails", "accepted", 30, |o| o.status.as_ref().is_some_and(|s| s.phase == Some(Phase::Copying))).await;
    bed.emulator.ctl("POST", "/serverless-snapshots/sls-fails-copy/status", Some(json!({"status": "failed"})));
    bed.wait_stalled("fails", "CopyFailed").await;
    bed.cluster.wait_event("fails", "Warning", "CopyFailed").await;
    // As the Event tells them, the user deletes the failed snapshot.
    bed.emulator.elasticache().delete_serverless_cache_snapshot().serverless_cache_snapshot_name("sls-fails-copy").send().await.unwrap();
    let since = bed.emulator.all_calls().len();
    // Many slow retries' worth (the tests retry stalled objects every second).
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(bed.emulator.calls("CopyServerlessCacheSnapshot").len(), 1, "exactly one copy, ever");
    let after: Vec<Value> = bed.emulator.all_calls().into_iter().skip(since).collect();
    assert_eq!(after, Vec::<Value>::new(), "a terminal stall costs no AWS call");
    let now = bed.cluster.get("fails").await;
    assert_eq!(condition(&now, "Stalled").unwrap().1, "CopyFailed");
    assert!(now.status.unwrap().copy_accepted_at.is_some(), "acceptance is recorded durably");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_serverless_export_is_retried_and_a_failing_one_never_asked_twice() {
    let mut bed = Bed::without_operator().await;
    bed.start_operator(&["--export-grace-seconds", "2"]);
    seed(&bed.emulator, "sls-flaky", 1);
    create_bucket(&bed.s3, "ecx-sls-flaky", REGION, Access::FULL_ACL).await;
    // Throttled: certainly not carried out, so the intent is cleared and the export retried.
    bed.emulator.set_faults(json!({"throttle_rate": 1.0, "actions": ["ExportServerlessCacheSnapshot"]}));
    bed.cluster.apply("flaky", export_of("sls-flaky", "ecx-sls-flaky")).await;
    // (Looked at between attempts: the next attempt records its intent before its call.)
    let error_is = |o: &ecx::api::SnapshotExport, reason: &str| {
        o.status.as_ref().and_then(|s| s.last_error.as_ref()).is_some_and(|e| e.reason == reason)
    };
    bed.wait_for("flaky", "throttled, with its intent cleared", 30, |o| {
        error_is(o, "AwsThrottled") && o.status.as_ref().is_some_and(|s| s.copy_requested_at.is_none() && s.attempts > 0)
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while bed.emulator.calls("ExportServerlessCacheSnapshot").len() < 2 {
        assert!(Instant::now() < deadline, "a throttled export is never requested again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A 500 may have been carried out: the intent stays, and the export is never asked twice.
    bed.emulator.set_faults(json!({"error_rate": 1.0, "actions": ["ExportServerlessCacheSnapshot"]}));
    let failed = |c: &Value| c["status"] == 500;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !bed.emulator.calls("ExportServerlessCacheSnapshot").iter().any(failed) {
        assert!(Instant::now() < deadline, "no export answered 500");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bed.emulator.set_faults(json!({}));
    let stalled = bed.wait_stalled("flaky", "RequestOutcomeUnknown").await;
    let calls = bed.emulator.calls("ExportServerlessCacheSnapshot");
    assert!(stalled.status.as_ref().unwrap().copy_requested_at.is_some(), "the intent stays: {:?} {calls:#?}", stalled.status);
    assert_eq!(calls.iter().filter(|c| failed(c)).count(), 1, "nothing was requested after the 500: {calls:#?}");
    assert!(failed(calls.last().unwrap()) && calls.iter().all(|c| c["status"] != 200), "{calls:#?}");
    let since = bed.emulator.all_calls().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(bed.emulator.calls_since(since), Vec::<Value>::new(), "the stall costs no AWS call");
}

/// Issue 30, step 2: a serverless listing that misses the snapshot being exported must not end
/// the export (before the fix: `ExportFailed`, "the snapshot is gone", or `Completed` with the
/// objects written so far). An absence is confirmed by a describe by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serverless_listing_that_misses_the_snapshot_ends_no_export() {
    let mut bed = Bed::with_options(4.0, 4.0, Default::default()).await;
    bed.start_operator(&[]);
    seed(&bed.emulator, "sls-miss", 2);
    create_bucket(&bed.s3, "ecx-sls-miss", REGION, Access::FULL_ACL).await;
    bed.cluster.apply("miss", export_of("sls-miss", "ecx-sls-miss")).await;
    bed.wait_for("miss", "exporting", 30, |o| o.status.as_ref().is_some_and(|s| s.phase == Some(Phase::Exporting))).await;
    bed.emulator.set_config(json!({"omit_from_listings": {"sls-miss": 3}}));
    let done = bed.wait_ready("miss").await;
    let left = bed.emulator.ctl("GET", "/config", None)["omit_from_listings"]["sls-miss"].as_u64();
    assert!(left < Some(3), "no listing missed it: {left:?}");
    assert_eq!(done.status.unwrap().exported_objects, ["s3://ecx-sls-miss/sls-miss-0001.rdb", "s3://ecx-sls-miss/sls-miss-0002.rdb"]);
    let warnings: Vec<_> = bed.cluster.events("miss").await.into_iter().filter(|e| e.type_.as_deref() == Some("Warning")).collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
}

/// Issue 30, step 4 (M4): two exports of one serverless snapshot to one bucket, both with their
/// requests in flight when the operator dies. ElastiCache carries out one and refuses the other
/// (the snapshot is busy), and neither answer is read. Both intents stay unresolved, and either
/// request may have written the objects: neither may adopt them until the user deletes one.
/// Before the fix, the first to look took them as its own (the other held no accepted request),
/// and both could.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_exports_to_the_same_keys_with_unknown_outcomes_both_stall_unowned() {
    let mut bed = Bed::start().await;
    seed(&bed.emulator, "sls-twin", 1);
    create_bucket(&bed.s3, "ecx-sls-twin", REGION, Access::FULL_ACL).await;
    bed.emulator.set_faults(json!({"latency_ms": 4000, "actions": ["ExportServerlessCacheSnapshot"]}));
    bed.cluster.apply("twin-a", export_of("sls-twin", "ecx-sls-twin")).await;
    bed.cluster.apply("twin-b", export_of("sls-twin", "ecx-sls-twin")).await;
    bed.emulator.wait_in_flight("ExportServerlessCacheSnapshot", 2).await;
    bed.operators[0].kill();
    bed.emulator.set_faults(json!({}));
    // One export is carried out and writes its object; the other is refused.
    let deadline = Instant::now() + Duration::from_secs(30);
    while bucket_keys(&bed.s3, "ecx-sls-twin").await.is_empty() || bed.emulator.calls("ExportServerlessCacheSnapshot").len() < 2 {
        assert!(Instant::now() < deadline, "the held exports never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answers: Vec<Value> = bed.emulator.calls("ExportServerlessCacheSnapshot").iter().map(|c| c["status"].clone()).collect();
    assert_eq!(answers.iter().filter(|s| **s == 200).count(), 1, "one export carried out: {answers:?}");
    bed.start_operator(&[]);
    for (name, other) in [("twin-a", "twin-b"), ("twin-b", "twin-a")] {
        let stalled = bed.wait_stalled(name, "ExportOwnerUnknown").await;
        let message = condition(&stalled, "Stalled").unwrap().2;
        assert!(message.contains("sls-twin-0001.rdb") && message.contains(other), "{name}: {message}");
        assert!(stalled.status.unwrap().exported_objects.is_empty(), "{name} adopted objects it cannot prove its own");
    }
    // Looked at again slowly, never requested again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(bed.emulator.calls("ExportServerlessCacheSnapshot").len(), 2, "nothing requested again");
    // As the message says: delete the one that should not own them; the other adopts them.
    bed.cluster.delete("twin-b").await;
    bed.wait_gone("twin-b").await;
    let done = bed.wait_ready("twin-a").await;
    assert_eq!(done.status.unwrap().exported_objects, ["s3://ecx-sls-twin/sls-twin-0001.rdb"]);
    assert_eq!(bed.emulator.calls("ExportServerlessCacheSnapshot").len(), 2, "nothing requested again");
}
