//! The schedule phase of `make bench`: S `SnapshotExportSchedule`s (`BENCH_SCHEDULES`, default
//! 1,000) on the operator's test-only virtual clock (`ECX_TEST_CLOCK_*`; a virtual day lasts
//! `BENCH_SCHEDULE_DAY_SECONDS` real seconds, default 120), two nights of runs, and what they
//! cost: AWS calls and API writes between the nights (the requirement: 0 and 0), the
//! schedule's own AWS calls per run beside its export's (at most 2 plus the export's), looks at
//! a cache's automatic backups per cache and night (shared: 1), the operator's RSS and CPU, and
//! the time from the scheduled minute until every run was created and Completed.
//!
//! Setup: `BENCH_SCHEDULES_CREATE` (default 20) schedules in CreateSnapshot mode, each on its own
//! cache cluster; the rest LatestAutomatic, spread over ten replication groups with an automatic
//! backup each night, except the last group, whose second backup is missing (its schedules skip
//! night 2 with NoNewSnapshot). All run `0 3 * * *` as in-region copies (no bucket).

use super::{cpu_seconds, peak_rss_kib, wall_clock_seconds, CONCURRENCY, DEFAULT_AWS_RPS, DELAY};
use crate::harness::*;
use ecx::api::schedule::{SnapshotExportSchedule, SCHEDULED_TIME_ANNOTATION};
use futures::StreamExt;
use jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::ResourceExt;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Replication groups the LatestAutomatic schedules share.
const CACHES: usize = 10;
/// The virtual instant at the clock's origin, and the two nights' scheduled times.
const START: &str = "2026-11-23T00:00:00Z";
const NIGHTS: [&str; 2] = ["2026-11-23T03:00:00Z", "2026-11-24T03:00:00Z"];
/// The automatic backups taken before each night (the last cache misses the second).
const BACKUPS: [&str; 2] = ["2026-11-23T02:00:00Z", "2026-11-24T02:00:00Z"];
/// No new write or AWS call for this long: the night's work is over.
const QUIET: Duration = Duration::from_secs(3);

/// One logged AWS call.
struct Call {
    time: f64,
    action: String,
    params: Value,
}

/// What one call was for: a look at a cache's automatic backups, a call about an intermediate
/// snapshot (CreateSnapshot mode, keyed by its name), or the run's export.
enum Purpose {
    Look(String),
    Intermediate(String),
    Export,
}

impl Call {
    fn purpose(&self) -> Purpose {
        let p = &self.params;
        let s = |k: &str| p[k].as_str().unwrap_or("").to_string();
        match self.action.as_str() {
            "DescribeSnapshots" if p["SnapshotSource"] == "system" => {
                Purpose::Look(if s("ReplicationGroupId").is_empty() { s("CacheClusterId") } else { s("ReplicationGroupId") })
            }
            "CreateSnapshot" | "DeleteSnapshot" => Purpose::Intermediate(s("SnapshotName")),
            "DescribeSnapshots" if s("SnapshotName").starts_with("ecx-sched-") => Purpose::Intermediate(s("SnapshotName")),
            "ListTagsForResource" if s("ResourceName").contains(":snapshot:ecx-sched-") => {
                Purpose::Intermediate(s("ResourceName").rsplit(':').next().unwrap_or("").to_string())
            }
            _ => Purpose::Export,
        }
    }
}

/// The emulator's call log, read as it grows.
#[derive(Default)]
struct Log {
    since: u64,
    calls: Vec<Call>,
}

impl Log {
    fn poll(&mut self, emulator: &Emulator) {
        for c in emulator.ctl("GET", &format!("/calls?since_seq={}", self.since), None).as_array().cloned().unwrap_or_default() {
            let seq = c["seq"].as_u64().unwrap_or(0);
            assert!(self.since == 0 || seq == self.since + 1, "the emulator's call log dropped calls: poll it more often");
            self.since = seq;
            let action = c["action"].as_str().unwrap_or("?").to_string();
            self.calls.push(Call { time: c["time"].as_f64().unwrap_or(0.0), action, params: c["params"].clone() });
        }
    }

    fn between(&self, from: f64, to: f64) -> impl Iterator<Item = &Call> {
        self.calls.iter().filter(move |c| c.time >= from && c.time < to)
    }
}

/// When the bench first saw each run, and when it was first Ready.
#[derive(Default)]
struct Seen {
    created: HashMap<String, (String, Instant)>,
    ready: HashMap<String, Instant>,
}

struct Night {
    /// Real (wall-clock) seconds of the scheduled minute and of the end of the night's work.
    start: f64,
    end: f64,
    runs: usize,
    skipped: usize,
    all_created_s: f64,
    all_completed_s: f64,
    settled_s: f64,
    schedule_writes: u64,
    run_writes: u64,
    event_writes: u64,
    cpu_s: f64,
}

pub async fn run(schedules: usize, create_mode: usize, day_seconds: f64) {
    let create_mode = create_mode.min(schedules);
    let automatic = schedules - create_mode;
    let missed_cache = format!("bench-rg-{}", CACHES - 1);
    let skipped_night2 = (create_mode..schedules).filter(|i| i % CACHES == CACHES - 1).count();
    eprintln!("== schedules: {schedules} ({automatic} LatestAutomatic over {CACHES} caches, {create_mode} CreateSnapshot)");
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(DELAY, DELAY);
    let cluster = Cluster::start(dir.path()).await;
    let testbed = cluster.testbed.as_ref().expect("the bench runs on the local API");
    for c in 0..CACHES {
        seed_automatic(&emulator, &format!("bench-rg-{c}"), BACKUPS[0]);
    }
    for k in 0..create_mode {
        emulator.ctl("POST", "/caches", Some(json!({"cache_cluster_id": format!("bench-cc-{k}"), "region": REGION})));
    }
    let api: Api<SnapshotExportSchedule> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let creating = Instant::now();
    futures::stream::iter(0..schedules)
        .for_each_concurrent(CONCURRENCY, |i| {
            let api = api.clone();
            async move {
                let source = if i < create_mode {
                    json!({"cacheClusterId": format!("bench-cc-{i}"), "mode": "CreateSnapshot"})
                } else {
                    json!({"replicationGroupId": format!("bench-rg-{}", i % CACHES)})
                };
                let obj: SnapshotExportSchedule = serde_json::from_value(json!({
                    "apiVersion": "elasticache-export.io/v1alpha1", "kind": "SnapshotExportSchedule",
                    "metadata": {"name": format!("sched-{i:04}")},
                    "spec": {"schedule": "0 3 * * *", "source": source, "template": {}},
                }))
                .unwrap();
                api.create(&PostParams::default(), &obj).await.expect("create a SnapshotExportSchedule");
            }
        })
        .await;
    eprintln!("created {schedules} schedules in {:.1} s", creating.elapsed().as_secs_f64());

    // The virtual clock the operator runs by: START two real seconds from now.
    let scale = 86_400.0 / day_seconds;
    let origin_wall = wall_clock_seconds() + 2.0;
    let origin = Timestamp::from_second(origin_wall as i64).unwrap();
    let origin_wall = origin.as_second() as f64;
    let start: Timestamp = START.parse().unwrap();
    let real_at = |virt: &str| origin_wall + virt.parse::<Timestamp>().unwrap().duration_since(start).as_secs_f64() / scale;
    let env = [
        ("ECX_TEST_CLOCK_START", start.to_string()),
        ("ECX_TEST_CLOCK_ORIGIN", origin.to_string()),
        ("ECX_TEST_CLOCK_SCALE", scale.to_string()),
    ];
    let aws_rps = std::env::var("BENCH_AWS_RPS").unwrap_or_else(|_| DEFAULT_AWS_RPS.into());
    let args = super::operator_args(&aws_rps);
    let operator = Operator::start_env(&cluster, &emulator, dir.path(), 0, &args, &env);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let watch = tokio::spawn(follow_runs(cluster.exports(), seen.clone()));
    let mut log = Log::default();

    // The first pass over the new schedules (each writes its first status), before night 1.
    sleep_until_wall(real_at(NIGHTS[0]) - 0.2, &emulator, &mut log).await;
    let stats = testbed.stats();
    // The bench's own creates excluded.
    let first_pass_writes = stats.writes("snapshotexportschedules") - stats.count("create", "snapshotexportschedules");
    let first_pass_quiet = log.calls.is_empty();
    testbed.reset_stats();

    let mut nights = Vec::new();
    let mut idle = None;
    for (n, night) in NIGHTS.iter().enumerate() {
        let night_start = real_at(night);
        let cpu_before = cpu_seconds(operator.pid());
        let expected = if n == 0 { schedules } else { schedules - skipped_night2 };
        let deletes = create_mode * (n + 1);
        let limit = night_start + 0.8 * day_seconds;
        sleep_until_wall(night_start, &emulator, &mut log).await;
        // Until every run of the night is Ready, every intermediate snapshot deleted, and quiet.
        let mut last_change = (Instant::now(), 0u64, 0usize);
        let end = loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            log.poll(&emulator);
            let stats = testbed.stats();
            let activity = stats.writes("snapshotexportschedules") + stats.writes("snapshotexports") + stats.writes("events");
            if (activity, log.calls.len()) != (last_change.1, last_change.2) {
                last_change = (Instant::now(), activity, log.calls.len());
            }
            let ready = ready_of(&seen, night);
            let deleted = log.calls.iter().filter(|c| c.action == "DeleteSnapshot").count();
            if ready >= expected && deleted >= deletes && last_change.0.elapsed() >= QUIET {
                break wall_clock_seconds() - QUIET.as_secs_f64();
            }
            if wall_clock_seconds() > limit {
                println!("  night {}: only {ready} of {expected} runs Ready and {deleted} of {deletes} intermediate snapshots deleted after {:.0} s: NOT SETTLED (raise BENCH_SCHEDULE_DAY_SECONDS)", n + 1, limit - night_start);
                break wall_clock_seconds();
            }
        };
        let stats = testbed.stats();
        let (all_created_s, all_completed_s) = times_of(&seen, night, night_start);
        nights.push(Night {
            start: night_start,
            end,
            runs: runs_of(&seen, night),
            skipped: if n == 0 { 0 } else { skipped_night2 },
            all_created_s,
            all_completed_s,
            settled_s: end - night_start,
            schedule_writes: stats.writes("snapshotexportschedules"),
            run_writes: stats.writes("snapshotexports"),
            event_writes: stats.writes("events"),
            cpu_s: cpu_seconds(operator.pid()) - cpu_before,
        });
        if n == 0 {
            // Night 2's backups (not the missed cache's), then the idle window until night 2.
            for c in 0..CACHES - 1 {
                seed_automatic(&emulator, &format!("bench-rg-{c}"), BACKUPS[1]);
            }
            log.poll(&emulator);
            testbed.reset_stats();
            let from = wall_clock_seconds();
            let calls_before = log.calls.len();
            let cpu_before = cpu_seconds(operator.pid());
            let until = real_at(NIGHTS[1]) - 0.5;
            sleep_until_wall(until, &emulator, &mut log).await;
            log.poll(&emulator);
            let stats = testbed.stats();
            let reads = stats.count("get", "snapshotexportschedules") + stats.count("list", "snapshotexports");
            let writes = stats.writes("snapshotexportschedules") + stats.writes("snapshotexports") + stats.writes("events");
            idle = Some((until - from, log.calls.len() - calls_before, writes, reads, cpu_seconds(operator.pid()) - cpu_before));
            testbed.reset_stats();
        }
    }
    watch.abort();
    log.poll(&emulator);
    let peak_rss_mib = peak_rss_kib(operator.pid()) as f64 / 1024.0;
    report(
        &log,
        &nights,
        idle.expect("measured after night 1"),
        schedules,
        create_mode,
        &missed_cache,
        first_pass_writes,
        first_pass_quiet,
        peak_rss_mib,
    );
}

#[allow(clippy::too_many_arguments)]
fn report(
    log: &Log,
    nights: &[Night],
    idle: (f64, usize, u64, u64, f64),
    schedules: usize,
    create_mode: usize,
    missed_cache: &str,
    first_pass_writes: u64,
    first_pass_quiet: bool,
    peak_rss_mib: f64,
) {
    let verdict = |ok: bool| if ok { "met" } else { "VIOLATED" };
    println!("\nSchedules: {schedules} ({} LatestAutomatic over {CACHES} caches, {create_mode} CreateSnapshot, each its own cache cluster), nightly, in-region copies", schedules - create_mode);
    println!(
        "  first pass over the new schedules: {first_pass_writes} status writes ({:.2} per schedule), {} AWS calls",
        first_pass_writes as f64 / schedules as f64,
        if first_pass_quiet { "0" } else { "some" }
    );
    let (seconds, calls, writes, reads, cpu) = idle;
    println!("  idle window between the nights ({seconds:.0} s real, about {:.1} virtual hours):", seconds / nights_day(nights) * 24.0);
    println!("    AWS calls {calls} (requirement: 0) {}", verdict(calls == 0));
    println!("    API writes {writes} (requirement: 0) {}", verdict(writes == 0));
    println!("    API reads {reads} (schedule GETs and run LISTs), operator CPU {cpu:.2} s");

    let mut looks: BTreeMap<(usize, String), usize> = BTreeMap::new();
    let mut intermediate: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let (mut export_calls, mut runs, mut automatic_runs, mut skipped) = (0usize, 0usize, 0usize, 0usize);
    let mut export_ops: BTreeMap<&str, usize> = BTreeMap::new();
    for (n, night) in nights.iter().enumerate() {
        runs += night.runs;
        automatic_runs += night.runs.saturating_sub(create_mode);
        skipped += night.skipped;
        for call in log.between(night.start, night.end + 1.0) {
            match call.purpose() {
                Purpose::Look(cache) => *looks.entry((n, cache)).or_default() += 1,
                Purpose::Intermediate(name) => intermediate.entry(name).or_default().push(&call.action),
                Purpose::Export => {
                    export_calls += 1;
                    *export_ops.entry(&call.action).or_default() += 1;
                }
            }
        }
    }
    let per_cache = (schedules - create_mode).div_ceil(CACHES);
    let max_looks = looks.values().copied().max().unwrap_or(0);
    let total_looks: usize = looks.values().sum();
    println!("  per night: latest-snapshot looks (DescribeSnapshots SnapshotSource=system) per cache: max {max_looks} for about {per_cache} schedules of each cache (requirement: shared, 1) {}", verdict(max_looks <= 1));
    let per_run_ops: Vec<usize> = intermediate.values().map(Vec::len).collect();
    let max_ops = per_run_ops.iter().copied().max().unwrap_or(0);
    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    for a in intermediate.values().flatten() {
        *ops.entry(a).or_default() += 1;
    }
    let ops: Vec<String> = ops.iter().map(|(a, n)| format!("{a} {:.2}", *n as f64 / intermediate.len().max(1) as f64)).collect();
    println!("  the schedule's own AWS calls per run (requirement: at most 2 plus the export's):");
    println!(
        "    LatestAutomatic: {:.3} ({total_looks} looks for {automatic_runs} runs and {skipped} NoNewSnapshot skips) {}",
        total_looks as f64 / automatic_runs.max(1) as f64,
        verdict(max_looks <= 1)
    );
    if create_mode > 0 {
        println!(
            "    CreateSnapshot: max {max_ops}, mean {:.2} ({}) {}",
            per_run_ops.iter().sum::<usize>() as f64 / per_run_ops.len().max(1) as f64,
            ops.join(", "),
            verdict(max_ops <= 2)
        );
    }
    let export_detail: Vec<String> = export_ops.iter().map(|(a, n)| format!("{a} {:.3}", *n as f64 / runs.max(1) as f64)).collect();
    println!("    its export's: {:.2} per run ({})", export_calls as f64 / runs.max(1) as f64, export_detail.join(", "));
    println!(
        "  looks on {missed_cache} at night 2 (no new backup: its schedules skip with NoNewSnapshot): {}",
        looks.get(&(1, missed_cache.to_string())).unwrap_or(&0)
    );
    println!("\n| night | runs | skipped | all runs created (s) | all Completed (s) | settled (s) | schedule status writes/run | run object writes/run | Events/run | operator CPU (s) |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (n, night) in nights.iter().enumerate() {
        let per = |w: u64| w as f64 / night.runs.max(1) as f64;
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {:.1} |",
            n + 1,
            night.runs,
            night.skipped,
            night.all_created_s,
            night.all_completed_s,
            night.settled_s,
            per(night.schedule_writes),
            per(night.run_writes),
            per(night.event_writes),
            night.cpu_s
        );
    }
    println!("  times are from the scheduled minute (real time); operator peak RSS {peak_rss_mib:.1} MiB");
}

fn nights_day(nights: &[Night]) -> f64 {
    nights[1].start - nights[0].start
}

/// An automatic backup of replication group `rg` taken at the virtual instant `created`.
fn seed_automatic(emulator: &Emulator, rg: &str, created: &str) {
    let t: Timestamp = created.parse().unwrap();
    let name = format!("automatic.{rg}-{}", t.strftime("%Y-%m-%d-%H-%M"));
    let body = json!({"name": name, "region": REGION, "replication_group_id": rg, "snapshot_source": "automated", "created": t.as_second() as f64});
    emulator.ctl("POST", "/snapshots", Some(body));
}

/// Sleep until the wall clock shows `at`, reading the call log every two seconds meanwhile.
async fn sleep_until_wall(at: f64, emulator: &Emulator, log: &mut Log) {
    loop {
        let left = at - wall_clock_seconds();
        if left <= 0.0 {
            return;
        }
        tokio::time::sleep(Duration::from_secs_f64(left.min(2.0))).await;
        log.poll(emulator);
    }
}

/// Follow every SnapshotExport (the runs): when each was first seen, and first Ready.
async fn follow_runs(api: Api<ecx::api::SnapshotExport>, seen: Arc<Mutex<Seen>>) {
    let mut objects = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff().applied_objects());
    while let Some(item) = objects.next().await {
        let Ok(obj) = item else { continue };
        let name = obj.name_any();
        let scheduled = obj.annotations().get(SCHEDULED_TIME_ANNOTATION).cloned().unwrap_or_default();
        let mut seen = seen.lock().unwrap();
        seen.created.entry(name.clone()).or_insert((scheduled, Instant::now()));
        if is_true(&obj, "Ready") {
            seen.ready.entry(name).or_insert_with(Instant::now);
        }
    }
}

fn night_runs<'a>(seen: &'a Seen, night: &'a str) -> impl Iterator<Item = (&'a String, &'a Instant)> + 'a {
    let night: Timestamp = night.parse().unwrap();
    seen.created.iter().filter(move |(_, (t, _))| t.parse::<Timestamp>().ok() == Some(night)).map(|(n, (_, at))| (n, at))
}

fn runs_of(seen: &Mutex<Seen>, night: &str) -> usize {
    night_runs(&seen.lock().unwrap(), night).count()
}

fn ready_of(seen: &Mutex<Seen>, night: &str) -> usize {
    let seen = seen.lock().unwrap();
    night_runs(&seen, night).filter(|(n, _)| seen.ready.contains_key(*n)).count()
}

/// Seconds from the scheduled minute (wall clock) until the night's last run was created, and
/// until its last run was Ready.
fn times_of(seen: &Mutex<Seen>, night: &str, night_start: f64) -> (f64, f64) {
    let seen = seen.lock().unwrap();
    let to_wall = |at: &Instant| wall_clock_seconds() - at.elapsed().as_secs_f64();
    let created = night_runs(&seen, night).map(|(_, at)| to_wall(at)).fold(night_start, f64::max);
    let ready = night_runs(&seen, night).filter_map(|(n, _)| seen.ready.get(n)).map(to_wall).fold(night_start, f64::max);
    (created - night_start, ready - night_start)
}
