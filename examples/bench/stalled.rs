//! The stalled phase of `make bench`: S exports (`BENCH_STALLED`, default 500; 0 skips it) to
//! one bucket ElastiCache may not write to, each stalled by the preflight
//! (`S3WritePermissionMissing`), then a window of `BENCH_STALLED_PERIODS` (default 6) retry
//! periods of `BENCH_STALLED_RETRY_SECONDS` (default 10). The requirement (issue 30): however
//! many objects wait on one broken bucket, their retries inspect it at most once per period and
//! list none of its keys.

use super::{cpu_seconds, wall_clock_seconds, CONCURRENCY, DEFAULT_AWS_RPS, DELAY};
use crate::harness::*;
use ecx::api::SnapshotExport;
use futures::StreamExt;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const BUCKET: &str = "bench-no-write";

pub async fn run(n: usize, period_s: f64, periods: u32) {
    eprintln!("== stalled: {n} exports to one bucket without WRITE for ElastiCache");
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(DELAY, DELAY);
    let cluster = Cluster::start(dir.path()).await;
    let s3 = emulator.s3().await;
    for i in 0..10 {
        emulator.seed_snapshot(&format!("src-stalled-{i}"), 1);
    }
    create_bucket(&s3, BUCKET, REGION, Access::Acl { read: true, write: false, read_acp: true }).await;

    let aws_rps = std::env::var("BENCH_AWS_RPS").unwrap_or_else(|_| DEFAULT_AWS_RPS.into());
    let period = period_s.to_string();
    let mut args: Vec<&str> = super::operator_args(&aws_rps).to_vec();
    let at = args.iter().position(|a| *a == "--stalled-retry-seconds").expect("the bench sets the stalled retry") + 1;
    args[at] = &period;
    let operator = Operator::start(&cluster, &emulator, dir.path(), 0, &args);

    let api = cluster.exports();
    let creating = Instant::now();
    futures::stream::iter(0..n)
        .for_each_concurrent(CONCURRENCY, |i| {
            let api = api.clone();
            async move {
                let obj: SnapshotExport = serde_json::from_value(json!({
                    "apiVersion": "elasticache-export.io/v1alpha1", "kind": "SnapshotExport",
                    "metadata": {"name": format!("stalled-{i}")},
                    "spec": {"sourceSnapshotName": format!("src-stalled-{}", i % 10), "targetSnapshotName": format!("stalled-{i}"), "targetBucket": BUCKET},
                }))
                .unwrap();
                api.create(&PostParams::default(), &obj).await.expect("create a SnapshotExport");
            }
        })
        .await;
    let limit = Duration::from_secs(120 + n as u64 / 5);
    loop {
        let stalled = stalled_count(&api).await;
        if stalled == n {
            break;
        }
        assert!(creating.elapsed() < limit, "only {stalled} of {n} exports stalled after {limit:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let stalled_s = creating.elapsed().as_secs_f64();

    // The window: every object stalled, retried every period (jittered) from here on.
    emulator.ctl("DELETE", "/calls", None);
    let cpu_before = cpu_seconds(operator.pid());
    let from = wall_clock_seconds();
    tokio::time::sleep(Duration::from_secs_f64(period_s * periods as f64)).await;
    let calls = emulator.all_calls();
    let window_s = wall_clock_seconds() - from;
    let cpu_s = cpu_seconds(operator.pid()) - cpu_before;
    let mut by_action = BTreeMap::<String, usize>::new();
    for call in &calls {
        *by_action.entry(call["action"].as_str().unwrap_or("?").to_string()).or_default() += 1;
    }
    let count = |action: &str| by_action.get(action).copied().unwrap_or(0);
    let inspections = count("GetBucketLocation");
    // Whole periods the window spans, plus the one it may start inside.
    let allowed = (window_s / period_s).ceil() as usize + 1;
    let verdict = |ok: bool| if ok { "met" } else { "VIOLATED" };
    let per_object_period = calls.len() as f64 / n as f64 / (window_s / period_s);

    println!("\nStalled exports: {n} to one bucket without WRITE (stalled after {stalled_s:.1} s), --stalled-retry-seconds {period_s}");
    println!("  window {window_s:.1} s ({:.1} periods): AWS calls {} ({per_object_period:.3} per stalled object per period), operator CPU {cpu_s:.2} s", window_s / period_s, calls.len());
    for (action, calls) in &by_action {
        println!("    {action:<28} {calls}");
    }
    println!(
        "  bucket inspections {inspections} (requirement: at most one per bucket per period, {allowed}) {}",
        verdict(inspections <= allowed)
    );
    println!(
        "  key listings {} (requirement: 0 while the bucket itself fails) {}",
        count("ListObjectsV2"),
        verdict(count("ListObjectsV2") == 0)
    );
    println!("  CopySnapshot calls {} (requirement: 0) {}", count("CopySnapshot"), verdict(count("CopySnapshot") == 0));
    assert_eq!(stalled_count(&api).await, n, "every export is still stalled");
}

/// How many exports are Stalled on the bucket's missing WRITE grant.
async fn stalled_count(api: &Api<SnapshotExport>) -> usize {
    let list = api.list(&ListParams::default()).await.expect("list SnapshotExports");
    list.items.iter().filter(|o| condition(o, "Stalled").is_some_and(|c| c.0 == "True" && c.1 == "S3WritePermissionMissing")).count()
}
