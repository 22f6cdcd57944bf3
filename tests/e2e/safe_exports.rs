//! Safe exports (docs/safe-exports.md): the bucket preflight against moto's S3, the export policy
//! (namespace × bucket × source rules, secure by default, healed by a policy file change), and
//! the `check-bucket` command.

use crate::harness::*;
use ecx::api::SnapshotExport;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

/// Warning Events about one object in `namespace`, as (reason, note).
async fn warnings(bed: &Bed, namespace: &str, name: &str) -> Vec<(String, String)> {
    let events: Api<Event> = Api::namespaced(bed.cluster.client.clone(), namespace);
    let list = events.list(&ListParams::default()).await.expect("list events").items;
    list.into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name) && e.type_.as_deref() == Some("Warning"))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

/// The Warnings about `name` once one with `reason` is among them (at most 30 s): Events are
/// published just after the status write a test may already have seen (a real API server makes
/// that gap easy to hit).
async fn warnings_with(bed: &Bed, namespace: &str, name: &str, reason: &str) -> Vec<(String, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = warnings(bed, namespace, name).await;
        if found.iter().any(|(r, _)| r == reason) || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until `done` holds for `namespace/name`.
async fn wait_in(bed: &Bed, namespace: &str, name: &str, what: &str, done: impl Fn(&SnapshotExport) -> bool) -> SnapshotExport {
    let api: Api<SnapshotExport> = Api::namespaced(bed.cluster.client.clone(), namespace);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let obj = api.get_opt(name).await.ok().flatten();
        if let Some(obj) = obj.as_ref().filter(|o| done(o)) {
            return obj.clone();
        }
        if Instant::now() > deadline {
            let status = obj.and_then(|o| o.status);
            let log = bed.logs().iter().map(|p| std::fs::read_to_string(p).unwrap_or_default()).collect::<Vec<_>>().join("\n");
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "{namespace}/{name}: not {what}; status {status:#?}\nlog tail:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn stalled_with(reason: &str) -> impl Fn(&SnapshotExport) -> bool + '_ {
    move |o| condition(o, "Stalled").is_some_and(|c| c.0 == "True" && c.1 == reason)
}

/// Remove Block Public Access and grant everyone READ through the ACL.
async fn make_public(bed: &Bed, bucket: &str) {
    bed.s3.delete_public_access_block().bucket(bucket).send().await.expect("delete public access block");
    let acl = bed.s3.get_bucket_acl().bucket(bucket).send().await.unwrap();
    let mut policy = aws_sdk_s3::types::AccessControlPolicy::builder().owner(acl.owner().cloned().unwrap());
    for g in acl.grants() {
        policy = policy.grants(g.clone());
    }
    let everyone = aws_sdk_s3::types::Grantee::builder()
        .r#type(aws_sdk_s3::types::Type::Group)
        .uri("http://acs.amazonaws.com/groups/global/AllUsers")
        .build()
        .unwrap();
    policy = policy.grants(aws_sdk_s3::types::Grant::builder().grantee(everyone).permission(aws_sdk_s3::types::Permission::Read).build());
    bed.s3.put_bucket_acl().bucket(bucket).access_control_policy(policy.build()).send().await.expect("public acl");
}

struct Case {
    name: &'static str,
    bucket: &'static str,
    /// `None`: the export completes.
    reason: Option<&'static str>,
    message: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_stops_each_bucket_mistake_before_copy_snapshot() {
    let bed = Bed::start().await;
    let cases = [
        Case { name: "acl", bucket: "ecx-pf-acl", reason: None, message: "" },
        Case { name: "policy", bucket: "ecx-pf-policy", reason: None, message: "" },
        Case { name: "public", bucket: "ecx-pf-public", reason: None, message: "" },
        Case {
            name: "missing",
            bucket: "ecx-pf-missing",
            reason: Some("S3BucketNotFound"),
            message: "The S3 bucket ecx-pf-missing does not exist. Create an Amazon S3 bucket in the same region as your snapshot",
        },
        Case {
            name: "outside",
            bucket: "ecx-pf-outside",
            reason: Some("S3BucketOutsideRegion"),
            message: "The S3 bucket ecx-pf-outside is outside of the region. Create an Amazon S3 bucket in the same region as your snapshot",
        },
        Case {
            name: "no-read",
            bucket: "ecx-pf-no-read",
            reason: Some("S3ReadPermissionMissing"),
            message: "ElastiCache has not been granted READ permissions ecx-pf-no-read on the S3 Bucket. Add List and Read permissions on the bucket for ElastiCache",
        },
        Case {
            name: "no-write",
            bucket: "ecx-pf-no-write",
            reason: Some("S3WritePermissionMissing"),
            message: "ElastiCache has not been granted WRITE permissions ecx-pf-no-write on the S3 Bucket. Add Upload/Delete permissions on the bucket for ElastiCache",
        },
        Case {
            name: "no-read-acp",
            bucket: "ecx-pf-no-read-acp",
            reason: Some("S3ReadAcpPermissionMissing"),
            message: "ElastiCache has not been granted READ_ACP permissions ecx-pf-no-read-acp on the S3 Bucket. Add View Permissions on the bucket for ElastiCache",
        },
        Case {
            name: "policy-no-write",
            bucket: "ecx-pf-policy-no-write",
            reason: Some("S3WritePermissionMissing"),
            message: "ElastiCache has not been granted WRITE permissions ecx-pf-policy-no-write on the S3 Bucket. Add Upload/Delete permissions",
        },
        Case {
            name: "collision",
            bucket: "ecx-pf-collision",
            reason: Some("S3ObjectAlreadyExists"),
            message: "The S3 bucket ecx-pf-collision already contains an object with key pf-collision-0001.rdb. Give the TargetSnapshotName a new and unique value",
        },
    ];
    create_bucket(&bed.s3, "ecx-pf-acl", REGION, Access::FULL_ACL).await;
    create_bucket(&bed.s3, "ecx-pf-policy", REGION, Access::Policy).await;
    create_bucket(&bed.s3, "ecx-pf-public", REGION, Access::FULL_ACL).await;
    make_public(&bed, "ecx-pf-public").await;
    create_bucket(&bed.s3, "ecx-pf-outside", "us-west-2", Access::FULL_ACL).await;
    create_bucket(&bed.s3, "ecx-pf-no-read", REGION, Access::Acl { read: false, write: true, read_acp: true }).await;
    create_bucket(&bed.s3, "ecx-pf-no-write", REGION, Access::Acl { read: true, write: false, read_acp: true }).await;
    create_bucket(&bed.s3, "ecx-pf-no-read-acp", REGION, Access::Acl { read: true, write: true, read_acp: false }).await;
    // ACLs disabled and a policy without s3:PutObject.
    create_bucket(&bed.s3, "ecx-pf-policy-no-write", REGION, Access::Policy).await;
    let mut statement = ecx::safety::policy_statement("ecx-pf-policy-no-write", REGION);
    statement["Action"] = json!(["s3:ListBucket", "s3:GetBucketLocation", "s3:GetBucketAcl"]);
    let doc = json!({"Version": "2012-10-17", "Statement": [statement]}).to_string();
    bed.s3.put_bucket_policy().bucket("ecx-pf-policy-no-write").policy(doc).send().await.unwrap();
    create_bucket(&bed.s3, "ecx-pf-collision", REGION, Access::FULL_ACL).await;
    bed.s3.put_object().bucket("ecx-pf-collision").key("pf-collision-0001.rdb").body(b"not ours".to_vec().into()).send().await.unwrap();

    for c in &cases {
        // One source per export: exports of one source run one at a time.
        bed.emulator.seed_snapshot(&format!("pf-src-{}", c.name), 1);
        let spec = json!({"sourceSnapshotName": format!("pf-src-{}", c.name), "targetSnapshotName": format!("pf-{}", c.name), "targetBucket": c.bucket});
        bed.cluster.apply(c.name, spec).await;
    }
    for c in &cases {
        let target = format!("pf-{}", c.name);
        match c.reason {
            None => {
                let done = bed.wait_ready(c.name).await;
                assert_eq!(done.status.unwrap().exported_objects, [format!("s3://{}/{target}-0001.rdb", c.bucket)], "{}", c.name);
                assert_eq!(bed.emulator.copy_calls(&target).len(), 1, "{}: one CopySnapshot", c.name);
            }
            Some(reason) => {
                let stalled = bed.wait_stalled(c.name, reason).await;
                let (_, _, message) = condition(&stalled, "Stalled").unwrap();
                assert!(message.starts_with(c.message), "{}: the documented message and solution first:\n{message}", c.name);
                assert_eq!(stalled.status.as_ref().unwrap().last_error.as_ref().unwrap().reason, reason);
                let events = warnings_with(&bed, &bed.cluster.namespace, c.name, reason).await;
                assert!(events.iter().any(|(r, note)| r == reason && note.starts_with(c.message)), "{}: {events:?}", c.name);
                assert!(bed.emulator.copy_calls(&target).is_empty(), "{}: no CopySnapshot call", c.name);
                assert!(stalled.status.unwrap().copy_requested_at.is_none(), "{}: no intent left behind", c.name);
            }
        }
    }
    // The permission failures name the exact grant: the canonical ID, or (ACLs disabled) the policy.
    let acl_msg = condition(&bed.cluster.get("no-read-acp").await, "Stalled").unwrap().2;
    assert!(acl_msg.contains(&format!("grant READ_ACP to ElastiCache's canonical ID {ELASTICACHE_CANONICAL_ID}")), "{acl_msg}");
    let policy_msg = condition(&bed.cluster.get("policy-no-write").await, "Stalled").unwrap().2;
    assert!(
        policy_msg.contains("ACLs are disabled") && policy_msg.contains("us-east-1.elasticache-snapshot.amazonaws.com s3:PutObject"),
        "{policy_msg}"
    );
    // The public bucket exported, with a Warning saying why the bucket is public.
    let public = warnings_with(&bed, &bed.cluster.namespace, "public", "BucketPubliclyAccessible").await;
    let note = public.iter().find(|(r, _)| r == "BucketPubliclyAccessible").map(|(_, n)| n.clone());
    let note = note.unwrap_or_else(|| panic!("no BucketPubliclyAccessible warning: {public:?}"));
    assert!(
        note.contains("ecx-pf-public") && note.contains("AllUsers") && note.contains("Block Public Access is not configured"),
        "{note}"
    );
    // A private bucket gets no such warning.
    assert!(!warnings(&bed, &bed.cluster.namespace, "acl").await.iter().any(|(r, _)| r == "BucketPubliclyAccessible"));
}

/// The common TLS-only statement: deny everyone everything over plain HTTP.
fn tls_only_deny(bucket: &str) -> Value {
    json!({
        "Sid": "AllowSSLRequestsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}
    })
}

/// ACLs disabled, ElastiCache granted by the bucket policy, and the TLS-only Deny beside it: the
/// export goes through (ElastiCache's request uses TLS). A grant that rests on a condition the
/// preflight cannot evaluate is left to CopySnapshot, with a `BucketPolicyNotEvaluated` Warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_only_deny_does_not_stop_a_policy_granted_export() {
    let bed = Bed::start().await;
    create_bucket(&bed.s3, "ecx-tls-only", REGION, Access::Policy).await;
    let doc = json!({"Version": "2012-10-17", "Statement": [ecx::safety::policy_statement("ecx-tls-only", REGION), tls_only_deny("ecx-tls-only")]});
    bed.s3.put_bucket_policy().bucket("ecx-tls-only").policy(doc.to_string()).send().await.unwrap();
    create_bucket(&bed.s3, "ecx-tls-account", REGION, Access::Policy).await;
    let mut allow = ecx::safety::policy_statement("ecx-tls-account", REGION);
    allow["Condition"] = json!({"StringEquals": {"aws:SourceAccount": "123456789012"}});
    let doc = json!({"Version": "2012-10-17", "Statement": [allow, tls_only_deny("ecx-tls-account")]});
    bed.s3.put_bucket_policy().bucket("ecx-tls-account").policy(doc.to_string()).send().await.unwrap();
    bed.emulator.seed_snapshot("tls-src", 1);
    bed.emulator.seed_snapshot("tls-src-2", 1);
    bed.cluster.apply("tls", json!({"sourceSnapshotName": "tls-src", "targetSnapshotName": "tls", "targetBucket": "ecx-tls-only"})).await;
    bed.cluster
        .apply(
            "tls-account",
            json!({"sourceSnapshotName": "tls-src-2", "targetSnapshotName": "tls-account", "targetBucket": "ecx-tls-account"}),
        )
        .await;

    let done = bed.wait_ready("tls").await;
    assert_eq!(done.status.unwrap().exported_objects, ["s3://ecx-tls-only/tls-0001.rdb"]);
    assert_eq!(bed.emulator.copy_calls("tls").len(), 1, "one CopySnapshot");
    let events = warnings(&bed, &bed.cluster.namespace, "tls").await;
    assert!(events.is_empty(), "a decided policy gives no Warning: {events:?}");

    // The emulator's request has no aws:SourceAccount, so CopySnapshot refuses; the preflight
    // could not know that and did not guess: it warned and let CopySnapshot decide.
    bed.wait_stalled("tls-account", "S3ReadPermissionMissing").await;
    assert!(!bed.emulator.copy_calls("tls-account").is_empty(), "CopySnapshot decided");
    let events = warnings(&bed, &bed.cluster.namespace, "tls-account").await;
    let note = events.iter().find(|(r, _)| r == "BucketPolicyNotEvaluated").map(|(_, n)| n.clone());
    let note = note.unwrap_or_else(|| panic!("no BucketPolicyNotEvaluated warning: {events:?}"));
    assert!(note.contains("ecx-tls-account") && note.contains("StringEquals aws:SourceAccount"), "{note}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_public_buckets_stalls_until_the_bucket_is_private() {
    let mut bed = Bed::without_operator().await;
    bed.start_operator(&["--refuse-public-buckets"]);
    bed.emulator.seed_snapshot("pub-src", 1);
    create_bucket(&bed.s3, "ecx-public", REGION, Access::FULL_ACL).await;
    make_public(&bed, "ecx-public").await;
    bed.cluster
        .apply("to-public", json!({"sourceSnapshotName": "pub-src", "targetSnapshotName": "pub", "targetBucket": "ecx-public"}))
        .await;
    let stalled = bed.wait_stalled("to-public", "BucketPubliclyAccessible").await;
    let message = condition(&stalled, "Stalled").unwrap().2;
    assert!(message.contains("--refuse-public-buckets") && message.contains("put-public-access-block"), "{message}");
    assert!(bed.emulator.copy_calls("pub").is_empty(), "no CopySnapshot to a public bucket");
    // Block public access again (the AllUsers grant is then ignored): it heals without an edit.
    block_public_access(&bed.s3, "ecx-public").await;
    bed.wait_ready("to-public").await;
    assert_eq!(bed.emulator.copy_calls("pub").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_off_leaves_the_checks_to_copy_snapshot() {
    let mut bed = Bed::without_operator().await;
    bed.start_operator(&["--preflight=false"]);
    bed.emulator.seed_snapshot("off-src", 1);
    create_bucket(&bed.s3, "ecx-off", REGION, Access::Acl { read: true, write: true, read_acp: false }).await;
    bed.emulator.ctl("DELETE", "/calls", None); // the setup's own S3 calls
    bed.cluster.apply("off", json!({"sourceSnapshotName": "off-src", "targetSnapshotName": "off", "targetBucket": "ecx-off"})).await;
    bed.wait_stalled("off", "S3ReadAcpPermissionMissing").await;
    assert!(!bed.emulator.copy_calls("off").is_empty(), "without preflight, CopySnapshot reports the problem");
    let inspections =
        bed.emulator.all_calls().into_iter().filter(|c| c["action"] == "GetBucketAcl" || c["action"] == "GetBucketLocation").count();
    assert_eq!(inspections, 0, "no bucket inspection with --preflight=false");
}

/// One object of the matrix.
struct Want {
    namespace: String,
    name: String,
    source: String,
    bucket: Option<&'static str>,
    allowed: bool,
    /// The rule the refusal must name.
    rule: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_policy_matrix_refuses_without_any_aws_call_and_a_policy_change_heals() {
    let mut bed = Bed::without_operator().await;
    let base = bed.cluster.namespace.clone();
    let (a, a_dev, b, c) = (format!("{base}-team-a"), format!("{base}-team-a-dev"), format!("{base}-team-b"), format!("{base}-team-c"));
    for ns in [&a, &a_dev, &b, &c] {
        create_namespace(&bed.cluster.client, ns).await;
    }
    for bucket in ["ecx-bucket-a", "ecx-bucket-b"] {
        create_bucket(&bed.s3, bucket, REGION, Access::FULL_ACL).await;
    }
    let policy_file = bed.dir.path().join("export-policy.yaml");
    std::fs::write(
        &policy_file,
        format!(
            "# team-a (and team-a-*) may export anything to bucket-a; team-b only src-b-* to bucket-b\nrules:\n  - namespaces: [\"{base}-team-a*\"]\n    buckets: [ecx-bucket-a]\n  - namespaces: [\"{base}-team-b\"]\n    buckets: [ecx-bucket-b]\n    sources: [\"src-b-*\"]\n"
        ),
    )
    .unwrap();
    let watched = [base.as_str(), &a, &a_dev, &b, &c].join(",");
    bed.start_operator_with_policy(&["--namespaces", &watched, "--export-policy-file", policy_file.to_str().unwrap()]);

    let mut wants: Vec<Want> = Vec::new();
    let mut n = 0;
    let mut add = |namespace: &str, source_prefix: &str, bucket: Option<&'static str>, allowed: bool, rule: String| {
        n += 1;
        wants.push(Want {
            namespace: namespace.into(),
            name: format!("m-{n:02}"),
            source: format!("{source_prefix}-{n:02}"),
            bucket,
            allowed,
            rule,
        });
    };
    // namespace × bucket (any source)
    for ns in [&a, &a_dev, &b, &c] {
        for bucket in ["ecx-bucket-a", "ecx-bucket-b"] {
            let allowed = bucket == "ecx-bucket-a" && (ns == &a || ns == &a_dev);
            let rule = if ns == &b && bucket == "ecx-bucket-b" {
                // team-b may export to bucket-b, but not this source: the rule to add names it.
                format!("{{namespaces: [{ns}], buckets: [{bucket}], sources: [src-x-")
            } else {
                format!("{{namespaces: [{ns}], buckets: [{bucket}]}}")
            };
            add(ns, "src-x", Some(bucket), allowed, rule);
        }
    }
    // the source rule of team-b, for exports and in-region copies
    add(&b, "src-b", Some("ecx-bucket-b"), true, String::new());
    add(&b, "src-b", None, true, String::new());
    add(&b, "src-y", None, false, format!("{{namespaces: [{b}], sources: [src-y-")); // + the number
                                                                                     // in-region copies elsewhere: team-a's rule has no sources; team-c and the base namespace have no rule
    add(&a, "src-z", None, true, String::new());
    add(&c, "src-z", None, true, String::new());
    add(&base, "src-z", None, true, String::new());
    add(&base, "src-z", Some("ecx-bucket-a"), false, format!("{{namespaces: [{base}], buckets: [ecx-bucket-a]}}"));

    for w in &wants {
        bed.emulator.seed_snapshot(&w.source, 1);
        let mut spec = json!({"sourceSnapshotName": w.source, "targetSnapshotName": format!("t-{}", w.name)});
        if let Some(bucket) = w.bucket {
            spec["targetBucket"] = json!(bucket);
        }
        apply_in(&bed, &w.namespace, &w.name, spec).await;
    }
    for w in &wants {
        let case = format!("{} {} {:?} {}", w.namespace, w.source, w.bucket, if w.allowed { "allowed" } else { "refused" });
        if w.allowed {
            wait_in(&bed, &w.namespace, &w.name, "Ready", |o| is_true(o, "Ready")).await;
            continue;
        }
        let stalled = wait_in(&bed, &w.namespace, &w.name, "refused", stalled_with("ExportNotAllowed")).await;
        let message = condition(&stalled, "Stalled").unwrap().2;
        assert!(message.contains(&w.rule), "{case}: names the rule to add {:?}: {message}", w.rule);
        let events = warnings_with(&bed, &w.namespace, &w.name, "ExportNotAllowed").await;
        assert!(events.iter().any(|(r, note)| r == "ExportNotAllowed" && note.contains(&w.rule)), "{case}: {events:?}");
    }
    // Zero AWS calls for a refused object: no call names its source or its target.
    let calls = bed.emulator.all_calls();
    for w in wants.iter().filter(|w| !w.allowed) {
        let target = format!("t-{}", w.name);
        let touching: Vec<&Value> = calls
            .iter()
            .filter(|call| {
                let params = call["params"].to_string();
                params.contains(&format!("\"{}\"", w.source)) || params.contains(&target)
            })
            .collect();
        assert!(touching.is_empty(), "{}/{}: refused, yet AWS was called: {touching:#?}", w.namespace, w.name);
        assert!(bed.emulator.copy_calls(&target).is_empty());
    }

    // A policy change (the mounted ConfigMap is updated) heals every refused object, unedited.
    std::fs::write(&policy_file, "rules:\n  - namespaces: [\"*\"]\n    buckets: [\"*\"]\n").unwrap();
    for w in &wants {
        let done = wait_in(&bed, &w.namespace, &w.name, "Ready after the policy change", |o| is_true(o, "Ready")).await;
        assert_eq!(done.metadata.generation, Some(1), "healed without an edit");
        let accepted = bed.emulator.copy_calls(&format!("t-{}", w.name)).into_iter().filter(|c| c["status"] == 200).count();
        assert_eq!(accepted, 1, "{}/{}: exactly one CopySnapshot", w.namespace, w.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_policy_every_s3_export_is_refused() {
    let mut bed = Bed::without_operator().await;
    bed.start_operator_with_policy(&[]);
    bed.emulator.seed_snapshot("nopol-src", 1);
    create_bucket(&bed.s3, "ecx-nopol", REGION, Access::FULL_ACL).await;
    bed.cluster
        .apply("nopol", json!({"sourceSnapshotName": "nopol-src", "targetSnapshotName": "nopol", "targetBucket": "ecx-nopol"}))
        .await;
    bed.cluster.apply("nopol-copy", json!({"sourceSnapshotName": "nopol-src", "targetSnapshotName": "nopol-copy"})).await;
    let stalled = bed.wait_stalled("nopol", "ExportNotAllowed").await;
    let ns = &bed.cluster.namespace;
    let message = condition(&stalled, "Stalled").unwrap().2;
    let rule = format!("{{namespaces: [{ns}], buckets: [ecx-nopol]}}");
    assert!(message.contains(&rule) && message.contains(&format!("--allow-export {ns}=ecx-nopol")), "{message}");
    assert_eq!(stalled.status.unwrap().phase, Some(ecx::api::Phase::Failed));
    // In-region copies stay allowed without a rule.
    bed.wait_ready("nopol-copy").await;
    assert!(bed.emulator.copy_calls("nopol").is_empty());
    let touching = bed.emulator.all_calls().into_iter().filter(|c| c["params"].to_string().contains("\"nopol\"")).count();
    assert_eq!(touching, 0, "no AWS call for the refused export");
}

fn check_bucket(emulator: &Emulator, args: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(operator_binary());
    cmd.arg("check-bucket").args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in emulator.aws_env() {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run check-bucket");
    (out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_bucket_prints_each_check_with_its_fix_and_exits_zero_only_when_an_export_would_succeed() {
    let emulator = Emulator::start(1.0, 1.0);
    let s3 = emulator.s3().await;
    create_bucket(&s3, "ecx-cb-good", REGION, Access::FULL_ACL).await;
    create_bucket(&s3, "ecx-cb-policy", REGION, Access::Policy).await;
    create_bucket(&s3, "ecx-cb-no-read-acp", REGION, Access::Acl { read: true, write: true, read_acp: false }).await;
    create_bucket(&s3, "ecx-cb-taken", REGION, Access::FULL_ACL).await;
    s3.put_object().bucket("ecx-cb-taken").key("nightly-0001.rdb").body(b"x".to_vec().into()).send().await.unwrap();
    let common = ["--region", REGION, "--s3-path-style", "--target-snapshot-name", "nightly"];
    let run = |bucket: &str| {
        let mut args = vec!["--bucket", bucket];
        args.extend(common);
        check_bucket(&emulator, &args)
    };

    for bucket in ["ecx-cb-good", "ecx-cb-policy"] {
        let (code, out) = run(bucket);
        assert_eq!(code, 0, "{out}");
        for line in [
            "PASS  bucket exists".to_string(),
            "PASS  bucket is in the snapshots' region (us-east-1): us-east-1".into(),
            "PASS  ElastiCache has READ (List and Read)".into(),
            "PASS  ElastiCache has WRITE (Upload/Delete)".into(),
            "PASS  ElastiCache has READ_ACP (View Permissions)".into(),
            "PASS  key nightly-0001.rdb is free".into(),
            "PASS  bucket is not publicly accessible".into(),
            format!("RESULT: an export to s3://{bucket} would succeed"),
        ] {
            assert!(out.lines().any(|l| l.starts_with(&line)), "{bucket}: missing {line:?} in\n{out}");
        }
    }
    let (_, out) = run("ecx-cb-policy");
    assert!(out.contains("bucket policy allows us-east-1.elasticache-snapshot.amazonaws.com"), "{out}");

    let (code, out) = run("ecx-cb-no-read-acp");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  ElastiCache has READ_ACP (View Permissions): ElastiCache has not been granted READ_ACP permissions ecx-cb-no-read-acp on the S3 Bucket."),
        "{out}"
    );
    assert!(out.contains(&format!("--grant-read-acp id={ELASTICACHE_CANONICAL_ID}")), "the exact ACL grant: {out}");
    assert!(out.contains("\"Principal\":{\"Service\":\"us-east-1.elasticache-snapshot.amazonaws.com\"}"), "the policy statement: {out}");
    assert!(out.contains("RESULT: an export to s3://ecx-cb-no-read-acp would fail"), "{out}");

    let (code, out) = run("ecx-cb-taken");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(
            "FAIL  key nightly-0001.rdb is free: The S3 bucket ecx-cb-taken already contains an object with key nightly-0001.rdb."
        ),
        "{out}"
    );

    let (code, out) = run("ecx-cb-missing");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL  bucket exists: The S3 bucket ecx-cb-missing does not exist."), "{out}");
    assert!(out.contains("SKIP  ElastiCache has READ"), "{out}");

    let (code, out) = check_bucket(&emulator, &["--bucket", "ecx-cb-good", "--region", "us-west-2", "--s3-path-style"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  bucket is in the snapshots' region (us-west-2): The S3 bucket ecx-cb-good is outside of the region."),
        "{out}"
    );

    // A public bucket passes with a warning, and fails with --refuse-public-buckets.
    create_bucket(&s3, "ecx-cb-public", REGION, Access::FULL_ACL).await;
    s3.delete_public_access_block().bucket("ecx-cb-public").send().await.unwrap();
    let (code, out) = run("ecx-cb-public");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("WARN  bucket is not publicly accessible: S3 Block Public Access is not configured"), "{out}");
    let (code, out) =
        check_bucket(&emulator, &["--bucket", "ecx-cb-public", "--region", REGION, "--s3-path-style", "--refuse-public-buckets"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL  bucket is not publicly accessible"), "{out}");

    // Usage errors exit 2.
    let (code, out) = check_bucket(&emulator, &["--region", REGION]);
    assert_eq!(code, 2, "{out}");
}

/// With `--source-snapshot`, check-bucket reads the source's node groups and checks every key
/// an export of it would write (`<target>-<NodeGroupId>.rdb`: here 0001 and 0003, a shard was
/// removed), not only `-0001.rdb`; a source that does not exist is a failure that names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_bucket_with_the_source_checks_every_key_of_its_node_groups() {
    let emulator = Emulator::start(1.0, 1.0);
    let s3 = emulator.s3().await;
    create_bucket(&s3, "ecx-cb-shards", REGION, Access::FULL_ACL).await;
    s3.put_object().bucket("ecx-cb-shards").key("weekly-0003.rdb").body(b"x".to_vec().into()).send().await.unwrap();
    emulator.ctl(
        "POST",
        "/snapshots",
        Some(json!({"name": "cb-sharded", "node_group_ids": ["0001", "0003"], "replication_group_id": "prod", "region": REGION})),
    );
    let base = ["--bucket", "ecx-cb-shards", "--region", REGION, "--s3-path-style", "--target-snapshot-name", "weekly"];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend(extra);
        check_bucket(&emulator, &args)
    };

    let (code, out) = with(&["--source-snapshot", "cb-sharded"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.lines().any(|l| l.starts_with("PASS  key weekly-0001.rdb is free")), "{out}");
    assert!(
        out.contains("FAIL  key weekly-0003.rdb is free: The S3 bucket ecx-cb-shards already contains an object with key weekly-0003.rdb."),
        "{out}"
    );
    assert!(out.contains("RESULT: an export to s3://ecx-cb-shards would fail"), "{out}");

    // Without the source only -0001.rdb can be checked, and the output says so.
    let (code, out) = with(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("--source-snapshot"), "the output tells how to check every key: {out}");

    let (code, out) = with(&["--source-snapshot", "cb-no-such"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL  source snapshot cb-no-such exists"), "{out}");
}

/// The laundering attempt (docs/safe-exports.md): a namespace no rule names copies team A's
/// automatic snapshot in-region under a name team B's source rule allows, and team B exports
/// the copy. The copy keeps team A's replication group and carries the copying namespace's
/// ownership tag, so both the name rule and the cluster rule refuse it, with no CopySnapshot for
/// the export; team B's own snapshot and team C's cluster still export.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_region_copy_cannot_launder_a_snapshot_past_the_source_rules() {
    let mut bed = Bed::without_operator().await;
    let [b, c, z] = bed
        .start_three_teams("team", "ecx-launder", r#"sources: ["team-b-*", "automatic.team-b-redis-*"]"#, "sourceClusters: [team-c-redis]")
        .await;
    let seed = |name: &str, group: &str| {
        let body = json!({"name": name, "node_groups": 1, "region": REGION, "replication_group_id": group, "snapshot_source": "automated"});
        bed.emulator.ctl("POST", "/snapshots", Some(body));
    };
    seed("automatic.team-a-redis-2026-11-22", "team-a-redis");
    seed("automatic.team-b-redis-2026-11-22", "team-b-redis");
    seed("automatic.team-c-redis-2026-11-22", "team-c-redis");

    // team-z (no rule) may copy in-region: both copies are made, tagged with team-z.
    for (name, target) in [("copy-for-b", "team-b-laundered"), ("copy-for-c", "team-c-laundered")] {
        apply_in(&bed, &z, name, json!({"sourceSnapshotName": "automatic.team-a-redis-2026-11-22", "targetSnapshotName": target})).await;
        wait_in(&bed, &z, name, "Ready", |o| is_true(o, "Ready")).await;
    }
    let exports = [
        (&b, "launder-b", "team-b-laundered", "ecx-launder-b"),
        (&c, "launder-c", "team-c-laundered", "ecx-launder-c"),
        (&b, "own-b", "automatic.team-b-redis-2026-11-22", "ecx-launder-b"),
        (&c, "own-c", "automatic.team-c-redis-2026-11-22", "ecx-launder-c"),
    ];
    for (ns, name, source, bucket) in exports {
        apply_in(&bed, ns, name, json!({"sourceSnapshotName": source, "targetSnapshotName": format!("x-{name}"), "targetBucket": bucket}))
            .await;
    }
    let refused = wait_in(&bed, &b, "launder-b", "refused", stalled_with("ExportNotAllowed")).await;
    let message = condition(&refused, "Stalled").unwrap().2;
    assert!(message.contains(&format!("made by a SnapshotExport in namespace {z}")), "{message}");
    let refused = wait_in(&bed, &c, "launder-c", "refused", stalled_with("ExportNotAllowed")).await;
    let message = condition(&refused, "Stalled").unwrap().2;
    assert!(message.contains("belongs to replication group team-a-redis"), "{message}");
    for (ns, name) in [(&b, "own-b"), (&c, "own-c")] {
        let done = wait_in(&bed, ns, name, "Ready", |o| is_true(o, "Ready")).await;
        assert_eq!(done.status.unwrap().exported_objects.len(), 1, "{name}");
    }
    for name in ["launder-b", "launder-c"] {
        assert!(bed.emulator.copy_calls(&format!("x-{name}")).is_empty(), "{name}: no CopySnapshot for the laundering export");
        let events = warnings(&bed, if name == "launder-b" { &b } else { &c }, name).await;
        assert!(events.iter().any(|(r, _)| r == "ExportNotAllowed"), "{name}: {events:?}");
    }
}

/// The preflight checks the keys the export would really write: one per node group of the
/// source, named by its id. With node groups `0001` and `0003` (a shard was removed) or
/// user-supplied ids, an object at `<target>-0003.rdb` is a collision that `<target>-0001.rdb`
/// alone misses; the preflight stalls naming that key, and CopySnapshot is never sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_checks_every_node_group_key_of_the_source() {
    let bed = Bed::start().await;
    let seed = |name: &str, ids: &[&str]| {
        bed.emulator.ctl(
            "POST",
            "/snapshots",
            Some(json!({"name": name, "node_group_ids": ids, "replication_group_id": "prod", "region": REGION})),
        );
    };
    seed("ng-shrunk", &["0001", "0003"]);
    seed("ng-custom", &["7", "42"]);
    seed("ng-free", &["0001", "0003"]);
    let bucket = "ecx-pf-node-groups";
    create_bucket(&bed.s3, bucket, REGION, Access::FULL_ACL).await;
    for key in ["ng-shrunk-x-0003.rdb", "ng-custom-x-42.rdb", "ng-free-x-0002.rdb"] {
        bed.s3.put_object().bucket(bucket).key(key).body(b"not ours".to_vec().into()).send().await.unwrap();
    }
    for (name, source) in [("ng-shrunk-x", "ng-shrunk"), ("ng-custom-x", "ng-custom"), ("ng-free-x", "ng-free")] {
        bed.cluster.apply(name, json!({"sourceSnapshotName": source, "targetSnapshotName": name, "targetBucket": bucket})).await;
    }
    for (name, key) in [("ng-shrunk-x", "ng-shrunk-x-0003.rdb"), ("ng-custom-x", "ng-custom-x-42.rdb")] {
        let stalled = bed.wait_stalled(name, "S3ObjectAlreadyExists").await;
        let (_, _, message) = condition(&stalled, "Stalled").unwrap();
        let documented =
            format!("The S3 bucket {bucket} already contains an object with key {key}. Give the TargetSnapshotName a new and unique value");
        assert!(message.starts_with(&documented), "{name}: the preflight names the taken key:\n{message}");
        let events = warnings_with(&bed, &bed.cluster.namespace, name, "S3ObjectAlreadyExists").await;
        assert!(events.iter().any(|(r, note)| r == "S3ObjectAlreadyExists" && note.starts_with(&documented)), "{name}: {events:?}");
        assert!(bed.emulator.copy_calls(name).is_empty(), "{name}: the preflight stopped it, not CopySnapshot");
        assert!(stalled.status.unwrap().copy_requested_at.is_none(), "{name}: no intent left behind");
    }
    // A key of no node group of the source (`-0002`) is no collision: that export completes.
    let done = bed.wait_ready("ng-free-x").await;
    let urls: Vec<String> = ["ng-free-x-0001.rdb", "ng-free-x-0003.rdb"].iter().map(|k| format!("s3://{bucket}/{k}")).collect();
    assert_eq!(done.status.unwrap().exported_objects, urls);
    assert_eq!(bed.emulator.copy_calls("ng-free-x").len(), 1);
}

/// A fresh export to a bucket holding no `<target>-*.rdb` object costs its preflight no read of
/// the source: no key of any node group can be taken, so the node group ids are read only when
/// such an object exists (docs/performance.md: AWS calls per export).
#[tokio::test]
async fn preflight_reads_the_source_only_when_an_export_key_could_be_taken() {
    let bed = Bed::start().await;
    bed.emulator.ctl(
        "POST",
        "/snapshots",
        Some(json!({"name": "ng-cheap", "node_group_ids": ["0001", "0003"], "replication_group_id": "prod", "region": REGION})),
    );
    let bucket = "ecx-pf-cheap";
    create_bucket(&bed.s3, bucket, REGION, Access::FULL_ACL).await;
    // Another export's objects share the bucket but not the `<target>-` prefix.
    bed.s3.put_object().bucket(bucket).key("other-0001.rdb").body(b"not ours".to_vec().into()).send().await.unwrap();
    bed.cluster.apply("cheap-x", json!({"sourceSnapshotName": "ng-cheap", "targetSnapshotName": "cheap-x", "targetBucket": bucket})).await;
    let done = bed.wait_ready("cheap-x").await;
    let urls: Vec<String> = ["cheap-x-0001.rdb", "cheap-x-0003.rdb"].iter().map(|k| format!("s3://{bucket}/{k}")).collect();
    assert_eq!(done.status.unwrap().exported_objects, urls);
    let calls = bed.emulator.all_calls();
    let copy_at = calls.iter().position(|c| c["action"] == "CopySnapshot").expect("one CopySnapshot");
    let before: Vec<&str> = calls[..copy_at].iter().filter_map(|c| c["action"].as_str()).collect();
    assert!(!before.contains(&"DescribeSnapshots"), "no source look before the request: {before:?}");
    assert_eq!(before.iter().filter(|a| **a == "ListObjectsV2").count(), 1, "one listing of the target's keys: {before:?}");
}

/// Exports stalled on one broken bucket cost at most one inspection of it per
/// `--stalled-retry-seconds` (1 s in the tests), however many they are, and no listing of their
/// keys; fixing the bucket still heals every one of them without an edit (issue 30, step 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_stalled_on_one_bucket_share_one_inspection_per_retry_period() {
    let bed = Bed::start().await;
    let bucket = "ecx-pf-shared";
    create_bucket(&bed.s3, bucket, REGION, Access::Acl { read: true, write: false, read_acp: true }).await;
    let names: Vec<String> = (0..16).map(|i| format!("waits-{i}")).collect();
    // One after the other, so they stall (and retry) at different moments, as objects created
    // over a day do: none shares another's inspection by asking at the same time.
    for name in &names {
        bed.emulator.seed_snapshot(&format!("{name}-src"), 1);
        bed.cluster
            .apply(name, json!({"sourceSnapshotName": format!("{name}-src"), "targetSnapshotName": name, "targetBucket": bucket}))
            .await;
        bed.wait_stalled(name, "S3WritePermissionMissing").await;
    }
    bed.emulator.ctl("DELETE", "/calls", None);
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let calls = bed.emulator.all_calls();
    // Read after the calls: a slow machine only lengthens the window the bound allows for.
    let periods = window.elapsed().as_secs_f64().ceil() as usize;
    let count = |action: &str| calls.iter().filter(|c| c["action"] == action).count();
    eprintln!(
        "{} calls in {periods} periods: {} GetBucketLocation, {} ListObjectsV2",
        calls.len(),
        count("GetBucketLocation"),
        count("ListObjectsV2")
    );
    let inspections = count("GetBucketLocation");
    assert!(inspections >= 1, "the stalled objects are still tried again");
    assert!(inspections <= periods + 1, "{inspections} inspections of the bucket in {periods} retry periods, for 16 stalled objects");
    assert_eq!(count("ListObjectsV2"), 0, "no key listing while the bucket itself fails");
    assert_eq!(count("CopySnapshot"), 0);

    grant(&bed.s3, bucket, REGION, Access::FULL_ACL).await;
    for name in &names {
        bed.wait_ready(name).await;
        assert_eq!(bed.emulator.copy_calls(name).len(), 1, "{name}: one CopySnapshot once the bucket is fixed");
    }
}

/// A bucket policy that lets ElastiCache write only under one prefix: WRITE is judged by the
/// export's own key, so an export under the prefix goes through and one outside it is refused
/// before CopySnapshot. (The first version of the shared inspection judged WRITE without the
/// keys, by a placeholder key, and stalled both for good.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_grants_writes_by_prefix_is_judged_by_the_exports_own_key() {
    let bed = Bed::start().await;
    let bucket = "ecx-pf-prefix";
    create_bucket(&bed.s3, bucket, REGION, Access::Policy).await;
    let mut statement = ecx::safety::policy_statement(bucket, REGION);
    statement["Resource"] = json!([format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/nightly-*")]);
    let doc = json!({"Version": "2012-10-17", "Statement": [statement]}).to_string();
    bed.s3.put_bucket_policy().bucket(bucket).policy(doc).send().await.unwrap();
    for (name, target) in [("inside", "nightly-x"), ("outside", "weekly-x")] {
        bed.emulator.seed_snapshot(&format!("{name}-src"), 1);
        bed.cluster
            .apply(name, json!({"sourceSnapshotName": format!("{name}-src"), "targetSnapshotName": target, "targetBucket": bucket}))
            .await;
    }
    let done = bed.wait_ready("inside").await;
    assert_eq!(done.status.unwrap().exported_objects, [format!("s3://{bucket}/nightly-x-0001.rdb")]);
    bed.wait_stalled("outside", "S3WritePermissionMissing").await;
    assert!(bed.emulator.copy_calls("weekly-x").is_empty(), "refused before CopySnapshot");
    assert_eq!(bed.emulator.copy_calls("nightly-x").len(), 1);
}
