//! `make bench`: the real operator binary against the local Kubernetes API and the AWS emulator
//! (fixed completion delay) for N = 100, 1,000 and 10,000 SnapshotExports (override with
//! `BENCH_N="100 1000"`). Prints, per N: seconds until every CopySnapshot was made and until every
//! export is Completed, AWS calls per export by operation, Kubernetes writes per export, the
//! operator's peak RSS, and over an idle window after completion (`BENCH_IDLE_SECONDS`, default
//! 60): AWS calls, API writes and CPU seconds. The local API's raw write rate is measured in the
//! same run, so throughput is quoted as a ratio to what the API allows. Then the schedule phase
//! (`bench/schedules.rs`; `BENCH_SCHEDULES`, default 1,000, 0 skips it): two nights of
//! SnapshotExportSchedules on the operator's test-only virtual clock. Then the stalled phase
//! (`bench/stalled.rs`; `BENCH_STALLED`, default 500, 0 skips it): exports stalled on one broken
//! bucket, and what their retries cost.

#[path = "../tests/e2e/harness.rs"]
mod harness;
#[path = "bench/schedules.rs"]
mod schedules;
#[path = "bench/stalled.rs"]
mod stalled;

use futures::StreamExt;
use harness::*;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::ResourceExt;
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DELAY: f64 = 5.0;
const CONCURRENCY: usize = 32;
/// The operator's client-side AWS limit in the bench (`BENCH_AWS_RPS`): by default above what
/// the emulator answers, so the figures show the operator's own ceiling. The peak calls in any
/// one second are reported: set the limit below what the emulator answers to see it hold (at
/// most the limit plus the burst in any second).
const DEFAULT_AWS_RPS: &str = "2000";
const AWS_BURST: &str = "100";

struct Figures {
    n: usize,
    requested_s: f64,
    completed_s: f64,
    aws_per_export: BTreeMap<String, f64>,
    writes_per_export: f64,
    write_detail: String,
    peak_rss_mib: f64,
    idle_aws: u64,
    idle_writes: u64,
    idle_cpu_s: f64,
    aws_rps: f64,
    peak_aws_per_s: usize,
    raw_writes_per_s: f64,
    emulator_calls_per_s: f64,
    /// CPU seconds from the first create until every export was Completed: the operator, the
    /// AWS emulator, and this process (the local API and the bench's own creates and lists).
    busy_cpu_s: [f64; 3],
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_N")
        .unwrap_or_else(|_| "100 1000 10000".into())
        .split_whitespace()
        .map(|s| s.parse().expect("BENCH_N holds numbers"))
        .collect();
    let idle: u64 = std::env::var("BENCH_IDLE_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let mut all = Vec::new();
    for n in sizes {
        eprintln!("== N = {n}");
        let figures = run(n, idle).await;
        print_one(&figures);
        all.push(figures);
    }
    if !all.is_empty() {
        println!("\n| N | all requested (s) | all Completed (s) | AWS calls/export | K8s writes/export | peak RSS (MiB) | peak AWS calls/s (limit) | idle AWS calls | idle writes | idle CPU (s) | exports/s | API allows (exports/s) | ratio | emulator allows (exports/s) |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for f in &all {
            let total: f64 = f.aws_per_export.values().sum();
            let rate = f.n as f64 / f.completed_s.max(0.001);
            let allowed = f.raw_writes_per_s / f.writes_per_export.max(1.0);
            let effective = f.n as f64 / (f.completed_s - DELAY).max(0.001);
            println!(
                "| {} | {:.1} | {:.1} | {:.2} | {:.2} | {:.1} | {} ({}) | {} | {} | {:.2} | {:.1} | {:.1} | {:.2} | {:.1} |",
                f.n,
                f.requested_s,
                f.completed_s,
                total,
                f.writes_per_export,
                f.peak_rss_mib,
                f.peak_aws_per_s,
                f.aws_rps,
                f.idle_aws,
                f.idle_writes,
                f.idle_cpu_s,
                rate,
                allowed,
                effective / allowed,
                // AWS calls the emulator answers per second, over the calls one export needs.
                f.emulator_calls_per_s / total.max(1.0)
            );
        }
        println!(
            "\nratio = N / (seconds to Completed - the emulator's fixed {DELAY} s delay), divided by (raw API writes/s / writes per export)"
        );
    }
    let number = |var: &str, default: &str| -> f64 {
        std::env::var(var).unwrap_or_else(|_| default.into()).parse().unwrap_or_else(|_| panic!("{var} is a number"))
    };
    let schedules = number("BENCH_SCHEDULES", "1000") as usize;
    if schedules > 0 {
        schedules::run(schedules, number("BENCH_SCHEDULES_CREATE", "20") as usize, number("BENCH_SCHEDULE_DAY_SECONDS", "120")).await;
    }
    let stalled = number("BENCH_STALLED", "500") as usize;
    if stalled > 0 {
        stalled::run(stalled, number("BENCH_STALLED_RETRY_SECONDS", "10"), number("BENCH_STALLED_PERIODS", "6") as u32).await;
    }
}

fn print_one(f: &Figures) {
    println!("\nN = {}", f.n);
    println!("  every CopySnapshot made after   {:.1} s", f.requested_s);
    println!("  every export Completed after    {:.1} s (emulator delay {DELAY} s)", f.completed_s);
    let total: f64 = f.aws_per_export.values().sum();
    println!("  AWS calls per export            {total:.2}");
    for (op, v) in &f.aws_per_export {
        println!("    {op:<22} {v:.3}");
    }
    println!("  Kubernetes writes per export    {:.2} ({})", f.writes_per_export, f.write_detail);
    println!("  operator peak RSS               {:.1} MiB", f.peak_rss_mib);
    println!("  idle window: AWS calls {}, API writes {}, CPU {:.2} s", f.idle_aws, f.idle_writes, f.idle_cpu_s);
    println!("  peak AWS calls in one second    {} (client-side limit {} calls/s, burst {AWS_BURST})", f.peak_aws_per_s, f.aws_rps);
    let [operator, emulator, api] = f.busy_cpu_s;
    let per_export = |cpu: f64| cpu * 1000.0 / f.n as f64;
    println!(
        "  CPU until Completed             operator {operator:.1} s ({:.2} ms/export), AWS emulator {emulator:.1} s ({:.0}% of one core), API and bench {api:.1} s",
        per_export(operator),
        100.0 * emulator / f.completed_s
    );
    println!("  local API raw write rate        {:.0} writes/s", f.raw_writes_per_s);
    println!("  AWS emulator raw call rate      {:.0} calls/s (DescribeSnapshots by name, same concurrency)", f.emulator_calls_per_s);
}

async fn run(n: usize, idle: u64) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(DELAY, DELAY);
    let cluster = Cluster::start(dir.path()).await;
    let testbed = cluster.testbed.as_ref().expect("the bench runs on the local API");
    let s3 = emulator.s3().await;

    // Half in-region copies from ten shared sources; half exports, each of its own source (a
    // source being exported refuses other copies until it is done).
    let copies = n / 2;
    let exports = n - copies;
    for i in 0..10 {
        emulator.seed_snapshot(&format!("src-copy-{i}"), 1);
    }
    let seeding = Instant::now();
    futures::stream::iter(0..exports)
        .for_each_concurrent(8, |i| {
            let endpoint = emulator.endpoint.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    http_json(
                        &endpoint,
                        "POST",
                        "/_emulator/snapshots",
                        Some(json!({"name": format!("src-exp-{i}"), "region": REGION, "node_groups": 1})),
                    )
                })
                .await
                .unwrap();
            }
        })
        .await;
    eprintln!("seeded {exports} sources in {:.1} s", seeding.elapsed().as_secs_f64());
    // A private bucket (create_bucket blocks public access), as the guide asks.
    create_bucket(&s3, "bench-exports", REGION, Access::FULL_ACL).await;

    let raw_writes_per_s = raw_write_rate(&cluster, n.min(2000)).await;
    let emulator_calls_per_s = emulator_call_rate(&emulator, 500).await;

    let aws_rps = std::env::var("BENCH_AWS_RPS").unwrap_or_else(|_| DEFAULT_AWS_RPS.into());
    let args = operator_args(&aws_rps);
    let operator = Operator::start(&cluster, &emulator, dir.path(), 0, &args);
    tokio::time::sleep(Duration::from_secs(2)).await;
    emulator.ctl("DELETE", "/calls", None);
    testbed.reset_stats();
    let mut calls = CallCounter::default();

    let api = cluster.exports();
    let ready = Arc::new(Mutex::new(HashSet::new()));
    let watch = tokio::spawn(follow_ready(api.clone(), ready.clone()));
    let cpu_at_start = [cpu_seconds(operator.pid()), cpu_seconds(emulator.pid()), cpu_seconds(std::process::id())];
    let t0 = Instant::now();
    let t0_wall = wall_clock_seconds();
    futures::stream::iter(0..n)
        .for_each_concurrent(CONCURRENCY, |i| {
            let api = api.clone();
            async move {
                let spec = if i < copies {
                    json!({"sourceSnapshotName": format!("src-copy-{}", i % 10), "targetSnapshotName": format!("copy-{i}")})
                } else {
                    let e = i - copies;
                    json!({"sourceSnapshotName": format!("src-exp-{e}"), "targetSnapshotName": format!("exp-{e}"), "targetBucket": "bench-exports"})
                };
                let obj: ecx::api::SnapshotExport = serde_json::from_value(json!({
                    "apiVersion": "elasticache-export.io/v1alpha1", "kind": "SnapshotExport",
                    "metadata": {"name": format!("sx-{i}")}, "spec": spec
                }))
                .unwrap();
                api.create(&PostParams::default(), &obj).await.expect("create a SnapshotExport");
            }
        })
        .await;
    eprintln!("created {n} objects in {:.1} s", t0.elapsed().as_secs_f64());

    let limit = Duration::from_secs(120 + n as u64 / 5);
    // Completion is followed through a watch, as a client would: listing 10,000 objects every
    // second would load the API (and the machine the figures are taken on) more than the operator.
    let mut last_poll = Instant::now();
    let completed_s = loop {
        let done = ready.lock().unwrap().len();
        if done == n {
            break t0.elapsed().as_secs_f64();
        }
        assert!(t0.elapsed() < limit, "N={n}: only {done} of {n} Completed after {limit:?}");
        // Read the call log as it grows (it keeps the newest 100,000 calls).
        if last_poll.elapsed() >= Duration::from_secs(2) {
            calls.poll(&emulator);
            last_poll = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    watch.abort();
    let cpu_at_end = [cpu_seconds(operator.pid()), cpu_seconds(emulator.pid()), cpu_seconds(std::process::id())];
    let busy_cpu_s = [0, 1, 2].map(|i| cpu_at_end[i] - cpu_at_start[i]);
    calls.poll(&emulator);
    let stats = testbed.stats();
    let sx_writes = stats.writes("snapshotexports").saturating_sub(n as u64);
    let event_writes = stats.writes("events");
    let writes_per_export = (sx_writes + event_writes) as f64 / n as f64;
    let write_detail = format!("object and status {:.2}, events {:.2}", sx_writes as f64 / n as f64, event_writes as f64 / n as f64);
    let aws_per_export = calls.by_action.iter().map(|(k, v)| (k.clone(), *v as f64 / n as f64)).collect();

    // Idle window: nothing to do, so nothing should be done.
    let aws_before = calls.total;
    let writes_before = stats.writes("snapshotexports") + stats.writes("events");
    let cpu_before = cpu_seconds(operator.pid());
    tokio::time::sleep(Duration::from_secs(idle)).await;
    calls.poll(&emulator);
    let stats = testbed.stats();
    let idle_writes = stats.writes("snapshotexports") + stats.writes("events") - writes_before;
    let idle_cpu_s = cpu_seconds(operator.pid()) - cpu_before;
    let peak_rss_mib = peak_rss_kib(operator.pid()) as f64 / 1024.0;
    Figures {
        n,
        requested_s: (calls.last_accepted_copy - t0_wall).max(0.0),
        completed_s,
        aws_per_export,
        writes_per_export,
        write_detail,
        peak_rss_mib,
        idle_aws: calls.total - aws_before,
        aws_rps: aws_rps.parse().expect("BENCH_AWS_RPS is a number"),
        peak_aws_per_s: calls.peak_per_second(),
        idle_writes,
        idle_cpu_s,
        raw_writes_per_s,
        emulator_calls_per_s,
        busy_cpu_s,
    }
}

/// Calls per second the AWS emulator answers (DescribeSnapshots of one name through the SDK,
/// the operator's cheapest call), which bounds the operator's throughput in this bed.
async fn emulator_call_rate(emulator: &Emulator, count: usize) -> f64 {
    let client = emulator.elasticache();
    let start = Instant::now();
    futures::stream::iter(0..count)
        .for_each_concurrent(CONCURRENCY, |_| {
            let client = client.clone();
            async move {
                let _ = client.describe_snapshots().snapshot_name("src-copy-0").send().await;
            }
        })
        .await;
    count as f64 / start.elapsed().as_secs_f64()
}

/// Creates per second the local API sustains from one client with the same concurrency
/// (Leases, which the operator does not watch).
async fn raw_write_rate(cluster: &Cluster, count: usize) -> f64 {
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let start = Instant::now();
    futures::stream::iter(0..count)
        .for_each_concurrent(CONCURRENCY, |i| {
            let leases = leases.clone();
            async move {
                let lease: Lease = serde_json::from_value(json!({"metadata": {"name": format!("raw-{i}")}})).unwrap();
                leases.create(&PostParams::default(), &lease).await.expect("create a lease");
            }
        })
        .await;
    count as f64 / start.elapsed().as_secs_f64()
}

/// Keep `ready` holding the names of the objects whose `Ready` condition is True.
async fn follow_ready(api: Api<ecx::api::SnapshotExport>, ready: Arc<Mutex<HashSet<String>>>) {
    let mut objects = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff().applied_objects());
    while let Some(item) = objects.next().await {
        // The watcher resumes after an error (with backoff); keep following.
        let Ok(obj) = item else { continue };
        let mut ready = ready.lock().unwrap();
        if is_true(&obj, "Ready") {
            ready.insert(obj.name_any());
        } else {
            ready.remove(&obj.name_any());
        }
    }
}

/// The operator's flags in the bench (export and schedule phases alike).
fn operator_args(aws_rps: &str) -> [&str; 16] {
    [
        "--metrics-addr",
        "127.0.0.1:0",
        "--concurrency",
        "32",
        "--aws-requests-per-second",
        aws_rps,
        "--aws-burst",
        AWS_BURST,
        "--poll-min-seconds",
        "2",
        "--poll-max-seconds",
        "30",
        "--stalled-retry-seconds",
        "60",
        "--allow-export",
        "*=*",
    ]
}

fn wall_clock_seconds() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Incremental reading of the emulator's call log.
#[derive(Default)]
struct CallCounter {
    since: u64,
    /// The sequence number the next logged call must carry: a gap means the log dropped calls.
    next_seq: Option<u64>,
    /// When each call arrived (emulator clock, seconds), for the peak rate.
    times: Vec<f64>,
    total: u64,
    /// When the last accepted CopySnapshot arrived (emulator clock: wall-clock seconds).
    last_accepted_copy: f64,
    by_action: BTreeMap<String, u64>,
}

impl CallCounter {
    /// The most calls that arrived within any one second (a sliding window).
    fn peak_per_second(&self) -> usize {
        let mut times = self.times.clone();
        times.sort_by(f64::total_cmp);
        let mut start = 0;
        let mut peak = 0;
        for end in 0..times.len() {
            while times[end] - times[start] >= 1.0 {
                start += 1;
            }
            peak = peak.max(end - start + 1);
        }
        peak
    }

    fn poll(&mut self, emulator: &Emulator) {
        let calls = emulator.ctl("GET", &format!("/calls?since_seq={}", self.since), None);
        for call in calls.as_array().cloned().unwrap_or_default() {
            let seq = call["seq"].as_u64().unwrap_or(0);
            if let Some(expected) = self.next_seq {
                assert_eq!(seq, expected, "the emulator's call log dropped calls (it keeps the newest 100,000): poll it more often");
            }
            self.next_seq = Some(seq + 1);
            self.since = self.since.max(seq);
            self.times.push(call["time"].as_f64().unwrap_or(0.0));
            let action = call["action"].as_str().unwrap_or("?").to_string();
            if action == "CopySnapshot" && call["status"] == 200 {
                self.last_accepted_copy = self.last_accepted_copy.max(call["time"].as_f64().unwrap_or(0.0));
            }
            self.total += 1;
            *self.by_action.entry(action).or_default() += 1;
        }
    }
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are fields 14, 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0) + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}
