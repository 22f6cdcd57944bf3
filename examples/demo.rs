//! `make demo`: the operator at work on a laptop, with no cloud account and no cluster.
//!
//! It starts the local AWS emulator (moto with ElastiCache CopySnapshot) and the local Kubernetes
//! API test bed, seeds a snapshot and two buckets (one correctly granted, one missing ElastiCache's
//! WRITE grant), starts the operator, applies `config/samples/` plus one export to the broken
//! bucket, and shows a live `kubectl get sx`-style table and the Events. Then it explains the
//! failing export, fixes the bucket, and shows the export heal without touching the object.

#[path = "../tests/e2e/harness.rs"]
mod harness;

use ecx::api::SnapshotExport;
use harness::*;
use kube::api::PostParams;
use kube::ResourceExt;
use serde_json::json;
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

const SOURCE: &str = "automatic.my-redis-primary-2026-11-22-03-15";
const GOOD_BUCKET: &str = "my-elasticache-exports";
const BROKEN_BUCKET: &str = "team-b-exports";

fn say(text: &str) {
    println!("\n\x1b[1m== {text}\x1b[0m");
}

#[tokio::main]
async fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join(".demo");
    std::fs::create_dir_all(&dir).unwrap();
    say("elasticache-export-operator demo");
    println!("A SnapshotExport asks for one ElastiCache CopySnapshot: an in-region copy, or an export to S3.");
    println!("The operator calls CopySnapshot exactly once, follows it to the end and reports it in status");
    println!("conditions (Ready / Reconciling / Stalled) and Events. Everything below runs locally.");

    say("Starting the AWS emulator (moto + ElastiCache CopySnapshot) and the local Kubernetes API");
    let emulator = Emulator::start(3.0, 4.0);
    let cluster = Cluster::start(&dir).await;
    let s3 = emulator.s3().await;
    println!("AWS endpoint: {}   kubeconfig: {}", emulator.endpoint, cluster.kubeconfig.display());

    say("Seeding AWS: a 2-shard snapshot and two buckets");
    emulator.seed_snapshot(SOURCE, 2);
    println!("snapshot  {SOURCE} (2 node groups, available)");
    create_bucket(&s3, GOOD_BUCKET, REGION, Access::FULL_ACL).await;
    println!("bucket    {GOOD_BUCKET}: grants ElastiCache READ, WRITE and READ_ACP (correct)");
    create_bucket(&s3, BROKEN_BUCKET, REGION, Access::Acl { read: true, write: true, read_acp: false }).await;
    println!("bucket    {BROKEN_BUCKET}: grants READ and WRITE but not READ_ACP (a common mistake)");

    say("Starting the operator");
    let timing = ["--metrics-addr", "127.0.0.1:0", "--poll-min-seconds", "1", "--poll-max-seconds", "4", "--stalled-retry-seconds", "3"];
    // Secure by default: without a rule the operator refuses every S3 export (docs/safe-exports.md).
    let rule = format!("{}={GOOD_BUCKET}", cluster.namespace);
    let rule_b = format!("{}=team-b-*", cluster.namespace);
    let args: Vec<&str> = timing.iter().copied().chain(["--allow-export", &rule, "--allow-export", &rule_b]).collect();
    let operator = Operator::start(&cluster, &emulator, &dir, 0, &args);
    println!("export policy: --allow-export {rule} --allow-export {rule_b} (without a rule, S3 exports are refused)");
    println!("operator log: {}", operator.log.display());

    say("Applying config/samples/ and one export to the broken bucket");
    let mut names = Vec::new();
    for sample in ["elasticache-export_v1alpha1_snapshotexport_copy.yaml", "elasticache-export_v1alpha1_snapshotexport_s3.yaml"] {
        let text = std::fs::read_to_string(root.join("config/samples").join(sample)).unwrap();
        let mut obj: SnapshotExport = serde_yaml::from_str(&text).unwrap();
        obj.metadata.namespace = Some(cluster.namespace.clone());
        let created = cluster.exports().create(&PostParams::default(), &obj).await.expect("apply a sample");
        println!("snapshotexport.elasticache-export.io/{} created   (config/samples/{sample})", created.name_any());
        names.push(created.name_any());
    }
    cluster
        .apply("team-b-to-s3", json!({"sourceSnapshotName": SOURCE, "targetSnapshotName": "team-b-nightly", "targetBucket": BROKEN_BUCKET}))
        .await;
    println!("snapshotexport.elasticache-export.io/team-b-to-s3 created   (targetBucket: {BROKEN_BUCKET})");
    names.push("team-b-to-s3".into());

    say("Watching (like `kubectl get sx -w` and `kubectl get events`)");
    let mut seen = HashSet::new();
    let settled = |list: &[SnapshotExport]| {
        list.iter().all(|o| if o.name_any() == "team-b-to-s3" { is_true(o, "Stalled") } else { is_true(o, "Ready") })
    };
    watch(&cluster, &names, &mut seen, Duration::from_secs(90), settled).await;

    let broken = cluster.get("team-b-to-s3").await;
    let (_, reason, message) = condition(&broken, "Stalled").unwrap();
    say("Why team-b-to-s3 is Stalled");
    println!("reason:  {reason}");
    println!("message: {message}");
    println!("The operator's bucket preflight found that the bucket does not grant ElastiCache View Permissions");
    println!("(READ_ACP) and did not call CopySnapshot; it reports ElastiCache's documented error as a Warning Event with the fix,");
    println!("and retries slowly, so fixing the bucket is enough: nobody has to edit the object.");

    say(&format!("Fixing the bucket: granting READ_ACP on {BROKEN_BUCKET} to ElastiCache's canonical ID"));
    grant(&s3, BROKEN_BUCKET, REGION, Access::FULL_ACL).await;
    watch(&cluster, &names, &mut seen, Duration::from_secs(60), |list| list.iter().all(|o| is_true(o, "Ready"))).await;

    say("What AWS saw");
    for name in &names {
        let obj = cluster.get(name).await;
        let calls = emulator
            .copy_calls(&obj.spec.target_snapshot_name)
            .into_iter()
            .filter(|c| c["params"]["TargetBucket"].as_str() == obj.spec.target_bucket.as_deref())
            .collect::<Vec<_>>();
        let accepted = calls.iter().filter(|c| c["status"] == 200).count();
        println!("{name:<16} CopySnapshot calls: {} ({accepted} accepted, {} refused)", calls.len(), calls.len() - accepted);
        let status = obj.status.unwrap_or_default();
        for url in &status.exported_objects {
            println!("{:<16}   exported {url}", "");
        }
        if let Some(arn) = &status.target_snapshot_arn {
            println!("{:<16}   copy {arn}", "");
        }
    }
    for bucket in [GOOD_BUCKET, BROKEN_BUCKET] {
        println!("s3://{bucket}/: {}", bucket_keys(&s3, bucket).await.join(", "));
    }
    say("Done: every export completed, each with exactly one accepted CopySnapshot.");
    println!("Next: `make test` runs the whole suite; README.md shows how to install the operator on EKS.");
    drop(operator);
}

/// Print the table and any new Events every second until `done` holds.
async fn watch(cluster: &Cluster, names: &[String], seen: &mut HashSet<String>, limit: Duration, done: impl Fn(&[SnapshotExport]) -> bool) {
    let start = Instant::now();
    let mut last_table = String::new();
    loop {
        let mut list = Vec::new();
        for name in names {
            list.push(cluster.get(name).await);
        }
        let table = render(&list);
        if table != last_table {
            println!("\n{table}");
            last_table = table;
        }
        for name in names {
            for ev in cluster.events(name).await {
                let key = format!("{}/{}", ev.metadata.name.clone().unwrap_or_default(), ev.series.as_ref().map(|s| s.count).unwrap_or(1));
                if seen.insert(key) {
                    println!(
                        "  event  {:<7} {:<26} {:<14} {}",
                        ev.type_.unwrap_or_default(),
                        ev.reason.unwrap_or_default(),
                        name,
                        ev.note.unwrap_or_default()
                    );
                }
            }
        }
        if done(&list) {
            return;
        }
        if start.elapsed() > limit {
            eprintln!("the demo did not settle within {limit:?}; see .demo/operator-0.log");
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn render(list: &[SnapshotExport]) -> String {
    let mut out = format!("{:<16} {:<45} {:<34} {:<24} {:<10} {:<6}", "NAME", "SOURCE", "TARGET", "BUCKET", "PHASE", "READY");
    for o in list {
        let status = o.status.clone().unwrap_or_default();
        let phase = status.phase.map(|p| format!("{p:?}")).unwrap_or_default();
        let ready = condition(o, "Ready").map(|c| c.0).unwrap_or_default();
        out.push_str(&format!(
            "\n{:<16} {:<45} {:<34} {:<24} {:<10} {:<6}",
            o.name_any(),
            o.spec.source_snapshot_name,
            o.spec.target_snapshot_name,
            o.spec.target_bucket.clone().unwrap_or_default(),
            phase,
            ready
        ));
    }
    out
}
