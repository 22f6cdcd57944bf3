//! `SnapshotExportSchedule` end to end, on the operator's test-only virtual clock
//! (`ECX_TEST_CLOCK_*`, a virtual day in a few real seconds): a week of nightly runs with a
//! missed backup and retention, suspend and run-now, and CreateSnapshot mode with the operator
//! killed at random points. Asserts what a user sees: runs, status, Events, AWS calls, S3.

use crate::harness::*;
use ecx::api::schedule::{SnapshotExportSchedule, RUN_NOW_ANNOTATION};
use ecx::api::SnapshotExport;
use jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

/// The virtual clock the test and the operator share.
pub(crate) struct TestClock {
    start: Timestamp,
    origin: Timestamp,
    scale: f64,
}

impl TestClock {
    /// Virtual `start` two real seconds from now (time for the operator to start).
    pub(crate) fn new(start: &str, scale: f64) -> TestClock {
        TestClock { start: start.parse().unwrap(), origin: Timestamp::now() + SignedDuration::from_secs(2), scale }
    }

    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ECX_TEST_CLOCK_START", self.start.to_string()),
            ("ECX_TEST_CLOCK_ORIGIN", self.origin.to_string()),
            ("ECX_TEST_CLOCK_SCALE", self.scale.to_string()),
        ]
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.start + SignedDuration::from_secs_f64(Timestamp::now().duration_since(self.origin).as_secs_f64() * self.scale)
    }

    pub(crate) async fn sleep_until(&self, at: &str) {
        let at: Timestamp = at.parse().unwrap();
        let real = at.duration_since(self.now()).as_secs_f64() / self.scale;
        if real > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(real)).await;
        }
    }
}

pub(crate) fn schedules(bed: &Bed) -> Api<SnapshotExportSchedule> {
    Api::namespaced(bed.cluster.client.clone(), &bed.cluster.namespace)
}

pub(crate) async fn create_schedule(bed: &Bed, name: &str, spec: Value) -> SnapshotExportSchedule {
    let obj: SnapshotExportSchedule = serde_json::from_value(json!({
        "apiVersion": "elasticache-export.io/v1alpha1", "kind": "SnapshotExportSchedule",
        "metadata": {"name": name, "namespace": bed.cluster.namespace}, "spec": spec,
    }))
    .unwrap();
    schedules(bed).create(&PostParams::default(), &obj).await.expect("create the schedule")
}

/// An automatic backup of replication group `rg`, taken at the virtual instant `created`.
pub(crate) fn seed_automatic(bed: &Bed, rg: &str, created: &str) -> String {
    let t: Timestamp = created.parse().unwrap();
    let name = format!("automatic.{rg}-{}", t.strftime("%Y-%m-%d-%H-%M"));
    bed.emulator.ctl(
        "POST",
        "/snapshots",
        Some(json!({"name": name, "region": REGION, "replication_group_id": rg, "snapshot_source": "automated", "created": t.as_second() as f64})),
    );
    name
}

pub(crate) async fn runs_of(bed: &Bed, schedule: &str) -> Vec<SnapshotExport> {
    let list =
        bed.cluster.exports().list(&ListParams::default().labels(&format!("elasticache-export.io/schedule={schedule}"))).await.unwrap();
    let mut items = list.items;
    items.sort_by_key(|r| r.name_any());
    items
}

pub(crate) async fn schedule_event_reasons(bed: &Bed, name: &str) -> Vec<(String, String)> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(bed.cluster.client.clone(), &bed.cluster.namespace);
    let all = events.list(&ListParams::default()).await.unwrap();
    all.items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| r.kind.as_deref() == Some("SnapshotExportSchedule") && r.name.as_deref() == Some(name))
        })
        .map(|e| (e.type_.unwrap_or_default(), e.reason.unwrap_or_default()))
        .collect()
}

/// The Events of one reason about schedule `name` (a repeat of one is a series on it).
pub(crate) async fn schedule_events(bed: &Bed, name: &str, reason: &str) -> Vec<k8s_openapi::api::events::v1::Event> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(bed.cluster.client.clone(), &bed.cluster.namespace);
    let all = events.list(&ListParams::default()).await.unwrap().items;
    all.into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason) && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect()
}

/// The schedule's Events as (type, reason) once one of `reason` is among them (at most 30 s):
/// an Event is published just after the call or status write a test may already have seen.
pub(crate) async fn schedule_event_reasons_with(bed: &Bed, name: &str, reason: &str) -> Vec<(String, String)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let reasons = schedule_event_reasons(bed, name).await;
        if reasons.iter().any(|(_, r)| r == reason) || std::time::Instant::now() > deadline {
            return reasons;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

fn source_filtered_looks(bed: &Bed) -> usize {
    bed.emulator.calls("DescribeSnapshots").iter().filter(|c| c["params"]["SnapshotSource"] == "system").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_week_of_nightly_runs_exports_each_new_backup_once_and_keeps_the_last_three() {
    let mut bed = Bed::without_operator().await;
    create_bucket(&bed.s3, "ecx-nightly", REGION, Access::FULL_ACL).await;
    // A virtual day is six real seconds.
    let clock = TestClock::new("2026-11-23T00:00:00Z", 14_400.0);
    bed.start_operator_env(&[], &clock.env());
    create_schedule(
        &bed,
        "nightly",
        json!({
            "schedule": "0 3 * * *",
            "source": {"replicationGroupId": "prod"},
            "template": {"targetBucket": "ecx-nightly"},
            "retention": {"keepLast": 3},
        }),
    )
    .await;
    let mut seeded = Vec::new();
    for day in 23..=29 {
        // Seeded at noon the day before (a backup dated 02:00 that day): 15 virtual hours
        // (3.75 real seconds) before the look that must find it, 9 after the one that must not.
        clock.sleep_until(&format!("2026-11-{}T12:00:00Z", day - 1)).await;
        // Thursday's backup did not happen.
        if day != 26 {
            seeded.push(seed_automatic(&bed, "prod", &format!("2026-11-{day}T02:00:00Z")));
        }
    }
    clock.sleep_until("2026-11-30T00:00:00Z").await;

    // Exactly one export per new backup, each of the backup it was due for.
    let copies = bed.emulator.calls("CopySnapshot");
    let sources: Vec<&str> = copies.iter().map(|c| c["params"]["SourceSnapshotName"].as_str().unwrap()).collect();
    assert_eq!(sources, seeded.iter().map(String::as_str).collect::<Vec<_>>(), "one CopySnapshot per night with a new backup");
    let targets: BTreeSet<&str> = copies.iter().map(|c| c["params"]["TargetSnapshotName"].as_str().unwrap()).collect();
    let want: BTreeSet<String> = [23, 24, 25, 27, 28, 29].iter().map(|d| format!("nightly-202611{d}-0300")).collect();
    assert_eq!(targets, want.iter().map(String::as_str).collect());
    // One look at the cache's automatic backups per night, none in between.
    assert_eq!(source_filtered_looks(&bed), 7, "DescribeSnapshots(SnapshotSource=system) once per scheduled time");

    // The night without a backup is a Warning, not a failure.
    let reasons = schedule_event_reasons(&bed, "nightly").await;
    assert_eq!(reasons.iter().filter(|(t, r)| t == "Warning" && r == "NoNewSnapshot").count(), 1, "{reasons:?}");
    assert!(reasons.iter().any(|(t, r)| t == "Normal" && r == "RunStarted"), "{reasons:?}");
    // Each night's run was never in the way of itself (a reconcile on a stale cache once said so).
    assert!(!reasons.iter().any(|(_, r)| r == "PreviousRunInFlight"), "{reasons:?}");

    // Retention keeps the last three successful runs.
    let runs = runs_of(&bed, "nightly").await;
    let names: Vec<String> = runs.iter().map(|r| r.name_any()).collect();
    assert_eq!(names, ["nightly-20261127-0300", "nightly-20261128-0300", "nightly-20261129-0300"]);
    assert!(runs.iter().all(|r| r.owner_references().iter().any(|o| o.kind == "SnapshotExportSchedule" && o.name == "nightly")));
    // S3 objects are kept (pruneExportedObjects is off).
    assert_eq!(bucket_keys(&bed.s3, "ecx-nightly").await.len(), 6);

    let s = schedules(&bed).get("nightly").await.unwrap();
    let status = s.status.unwrap();
    assert_eq!(status.last_schedule_time.unwrap().0.to_string(), "2026-11-29T03:00:00Z");
    assert_eq!(status.next_schedule_time.unwrap().0.to_string(), "2026-11-30T03:00:00Z");
    assert_eq!(status.last_run.unwrap().name.as_deref(), Some("nightly-20261129-0300"));
    assert!(status.active.is_empty() && status.last_successful_time.is_some());
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "LastRunSucceeded"));
    let metrics = bed.metrics();
    let ns = &bed.cluster.namespace;
    let series = |outcome: &str, n: u32| {
        format!(r#"ecx_schedule_runs_total{{schedule_namespace="{ns}",schedule="nightly",outcome="{outcome}"}} {n}"#)
    };
    assert!(metrics.contains(&series("NoNewSnapshot", 1)), "{metrics}");
    assert!(metrics.contains(&series("Started", 6)), "{metrics}");
    assert!(metrics.contains(&series("Succeeded", 6)), "{metrics}");
    assert!(metrics.contains("ecx_schedule_last_success_timestamp_seconds{"), "{metrics}");
    // The alert compares staleness to the interval: a day.
    assert!(
        metrics.contains(&format!(r#"ecx_schedule_interval_seconds{{schedule_namespace="{ns}",schedule="nightly"}} 86400"#)),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_skips_without_catching_up_and_run_now_runs_once_per_value() {
    let mut bed = Bed::without_operator().await;
    create_bucket(&bed.s3, "ecx-suspend", REGION, Access::FULL_ACL).await;
    let clock = TestClock::new("2026-11-23T00:00:00Z", 14_400.0);
    bed.start_operator_env(&[], &clock.env());
    seed_automatic(&bed, "cache", "2026-11-22T02:00:00Z");
    create_schedule(
        &bed,
        "paused",
        json!({"schedule": "0 3 * * *", "suspend": true, "source": {"replicationGroupId": "cache"}, "template": {"targetBucket": "ecx-suspend"}}),
    )
    .await;
    clock.sleep_until("2026-11-24T12:00:00Z").await;
    assert!(bed.emulator.calls("CopySnapshot").is_empty(), "a suspended schedule starts nothing");
    let reasons = schedule_event_reasons(&bed, "paused").await;
    assert_eq!(reasons.iter().filter(|(_, r)| r == "Suspended").count(), 2, "two nights skipped: {reasons:?}");

    // Run now, while suspended: one run.
    let annotate = |value: &str| json!({"metadata": {"annotations": {RUN_NOW_ANNOTATION: value}}});
    schedules(&bed).patch("paused", &PatchParams::default(), &Patch::Merge(annotate("1"))).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while bed.emulator.calls("CopySnapshot").is_empty() {
        assert!(std::time::Instant::now() < deadline, "run-now started no run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The same value again (another edit of the object) does not run again.
    schedules(&bed)
        .patch("paused", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})))
        .await
        .unwrap();
    schedules(&bed).patch("paused", &PatchParams::default(), &Patch::Merge(annotate("1"))).await.unwrap();
    clock.sleep_until("2026-11-24T22:00:00Z").await;
    assert_eq!(bed.emulator.calls("CopySnapshot").len(), 1, "one run per run-now value");
    assert_eq!(schedules(&bed).get("paused").await.unwrap().status.unwrap().last_run_now.as_deref(), Some("1"));

    // Resume: no catch-up run for the nights that passed, the next night runs (with a new backup).
    schedules(&bed).patch("paused", &PatchParams::default(), &Patch::Merge(json!({"spec": {"suspend": false}}))).await.unwrap();
    clock.sleep_until("2026-11-25T01:00:00Z").await;
    assert_eq!(bed.emulator.calls("CopySnapshot").len(), 1, "resuming starts no run for a time that passed while suspended");
    seed_automatic(&bed, "cache", "2026-11-25T02:00:00Z");
    clock.sleep_until("2026-11-25T12:00:00Z").await;
    let copies = bed.emulator.calls("CopySnapshot");
    assert_eq!(copies.len(), 2);
    assert_eq!(copies[1]["params"]["TargetSnapshotName"], "paused-20261125-0300");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_snapshot_mode_survives_kills_without_a_second_run_or_snapshot() {
    let mut bed = Bed::without_operator().await;
    create_bucket(&bed.s3, "ecx-fresh", REGION, Access::FULL_ACL).await;
    // A cache cluster for CreateSnapshot to take from.
    bed.emulator.create_cache_cluster("fresh").await;
    // A virtual hour is a real second: an hourly schedule runs about once a second.
    let clock = TestClock::new("2026-11-23T00:00:00Z", 3_600.0);
    bed.start_operator_env(&[], &clock.env());
    create_schedule(
        &bed,
        "hourly",
        json!({"schedule": "30 * * * *", "source": {"cacheClusterId": "fresh", "mode": "CreateSnapshot"}, "template": {"targetBucket": "ecx-fresh"}, "retention": {"keepLast": 0}}),
    )
    .await;
    let mut rng = rand::rng();
    for _ in 0..12 {
        let pause = rand::Rng::random_range(&mut rng, 200..1_500);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        bed.operators.last_mut().unwrap().kill();
        bed.start_operator_env(&[], &clock.env());
    }
    // Let the last runs finish.
    tokio::time::sleep(Duration::from_secs(8)).await;

    let creates = bed.emulator.calls("CreateSnapshot");
    let names: Vec<&str> = creates.iter().map(|c| c["params"]["SnapshotName"].as_str().unwrap()).collect();
    let distinct: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(names.len(), distinct.len(), "a second CreateSnapshot for the same run: {names:?}");
    let runs = runs_of(&bed, "hourly").await;
    assert!(runs.len() >= 5, "only {} runs in the virtual hours that passed", runs.len());
    assert_eq!(runs.len(), distinct.len(), "one intermediate snapshot per run");
    // A run waits for its intermediate snapshot to be available before its CopySnapshot (should
    // one be refused anyway, a refusal did nothing). What must never happen is a second request
    // AWS accepted for one run.
    let all_copies = bed.emulator.calls("CopySnapshot");
    let copies: Vec<&Value> = all_copies.iter().filter(|c| c["status"].as_u64().is_some_and(|s| (200..300).contains(&s))).collect();
    let targets: BTreeSet<&str> = copies.iter().map(|c| c["params"]["TargetSnapshotName"].as_str().unwrap()).collect();
    let outcomes: Vec<String> =
        all_copies.iter().map(|c| format!("{} {} {}", c["params"]["TargetSnapshotName"], c["status"], c["error_code"])).collect();
    assert_eq!(targets.len(), copies.len(), "a second export of one run: {outcomes:?}");
    // Each run is of its own hour, and completed runs had their intermediate snapshot deleted.
    let completed: Vec<&SnapshotExport> =
        runs.iter().filter(|r| r.status.as_ref().and_then(|s| s.phase) == Some(ecx::api::Phase::Completed)).collect();
    assert!(!completed.is_empty());
    let deleted: BTreeSet<String> =
        bed.emulator.calls("DeleteSnapshot").iter().map(|c| c["params"]["SnapshotName"].as_str().unwrap().to_string()).collect();
    for run in completed {
        if run.annotations().get("elasticache-export.io/intermediate-snapshot").is_none() {
            assert!(deleted.contains(&run.spec.source_snapshot_name), "{} was not deleted", run.spec.source_snapshot_name);
        }
    }
}

/// A crash between CreateSnapshot and creating the run leaves the intent in the status and the
/// tagged snapshot in AWS. The next operator uses that snapshot (no second CreateSnapshot) and
/// creates the run; a snapshot of that name without the schedule's tag is never used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_mid_run_the_tagged_snapshot_is_reused_and_a_foreign_one_refused() {
    use ecx::api::schedule::{PendingSnapshot, SnapshotExportScheduleStatus, SCHEDULE_TAG_KEY};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let mut bed = Bed::without_operator().await;
    create_bucket(&bed.s3, "ecx-crash", REGION, Access::FULL_ACL).await;
    let spec = |cluster: &str| json!({"schedule": "0 3 1 1 *", "source": {"cacheClusterId": cluster, "mode": "CreateSnapshot"}, "template": {"targetBucket": "ecx-crash"}});
    let mut crashed = Vec::new();
    for (name, tagged) in [("ours", true), ("foreign", false)] {
        let created = create_schedule(&bed, name, spec(name)).await;
        let uid = created.uid().unwrap();
        let scheduled: Timestamp = "2026-11-29T03:00:00Z".parse().unwrap();
        let run_name = ecx::schedule::names::run_name(name, scheduled);
        let snapshot = ecx::schedule::names::intermediate_snapshot_name(&uid, &run_name);
        let tags = if tagged { json!({SCHEDULE_TAG_KEY: uid}) } else { json!({"team": "someone-else"}) };
        bed.emulator.ctl("POST", "/snapshots", Some(json!({"name": snapshot, "region": REGION, "cache_cluster_id": name, "tags": tags})));
        let mut with_status = created.clone();
        with_status.status = Some(SnapshotExportScheduleStatus {
            last_schedule_time: Some(Time(scheduled)),
            pending_snapshot: Some(PendingSnapshot {
                run_name: run_name.clone(),
                snapshot_name: snapshot.clone(),
                target_snapshot_name: format!("{name}-20261129-0300"),
                scheduled_time: Time(scheduled),
            }),
            ..Default::default()
        });
        schedules(&bed).replace_status(name, &PostParams::default(), &with_status).await.unwrap();
        crashed.push((name, run_name, snapshot));
    }
    bed.start_operator(&[]);

    let (_, run_name, snapshot) = &crashed[0];
    let run = bed.wait_ready(run_name).await;
    assert_eq!(&run.spec.source_snapshot_name, snapshot, "the run exports the snapshot taken before the crash");
    assert_eq!(run.spec.target_snapshot_name, "ours-20261129-0300");
    let s = schedules(&bed).get("ours").await.unwrap().status.unwrap();
    assert!(s.pending_snapshot.is_none(), "the intent is cleared once the run exists");

    // The foreign snapshot: not used, not deleted; the schedule is Stalled and says why.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let stalled = loop {
        let s = schedules(&bed).get("foreign").await.unwrap();
        let stalled = s.status.as_ref().and_then(|st| st.conditions.iter().find(|c| c.type_ == "Stalled" && c.status == "True").cloned());
        if let Some(c) = stalled {
            break c;
        }
        assert!(std::time::Instant::now() < deadline, "the foreign snapshot did not stall the schedule");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(stalled.message.contains("does not carry this schedule's"), "{}", stalled.message);
    assert!(bed.cluster.exports().get_opt(&crashed[1].1).await.unwrap().is_none(), "no run from a foreign snapshot");
    // Let the first run's clean-up happen: its intermediate snapshot (ours) is deleted, the foreign one never.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !bed.emulator.calls("DeleteSnapshot").iter().any(|c| c["params"]["SnapshotName"] == snapshot.as_str()) {
        assert!(std::time::Instant::now() < deadline, "the intermediate snapshot was not deleted after its export");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(bed.emulator.calls("CreateSnapshot").is_empty(), "no second CreateSnapshot after the crash");
    let deleted: Vec<Value> = bed.emulator.calls("DeleteSnapshot");
    assert!(deleted.iter().all(|c| c["params"]["SnapshotName"] != crashed[1].2.as_str()), "the foreign snapshot was deleted");
}

/// Many schedules of one cache: at the scheduled time they share one look at its automatic
/// backups, each starts exactly one run, and between runs the operator makes no AWS call and
/// writes nothing to the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_schedules_share_the_look_and_are_silent_between_runs() {
    const N: usize = 20;
    let mut bed = Bed::without_operator().await;
    // A virtual day is 24 real seconds: room for 20 copies under load before the quiet period.
    let clock = TestClock::new("2026-11-23T00:00:00Z", 3_600.0);
    bed.start_operator_env(&[], &clock.env());
    seed_automatic(&bed, "shared", "2026-11-23T02:00:00Z");
    for i in 0..N {
        // In-region copies: concurrent exports of one snapshot would wait on each other.
        create_schedule(
            &bed,
            &format!("s{i:02}"),
            json!({"schedule": "0 3 * * *", "source": {"replicationGroupId": "shared"}, "template": {}}),
        )
        .await;
    }
    clock.sleep_until("2026-11-23T04:00:00Z").await;
    let ready = |s: &SnapshotExportSchedule| {
        s.status
            .as_ref()
            .is_some_and(|st| st.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True" && c.reason == "LastRunSucceeded"))
    };
    while schedules(&bed).list(&ListParams::default()).await.unwrap().items.iter().filter(|s| ready(s)).count() != N {
        assert!(clock.now() < "2026-11-23T20:00:00Z".parse().unwrap(), "the runs did not all succeed by 20:00");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(source_filtered_looks(&bed), 1, "{N} schedules of one cache due at one time share one look");
    let copies = bed.emulator.calls("CopySnapshot");
    let targets: BTreeSet<&str> = copies.iter().map(|c| c["params"]["TargetSnapshotName"].as_str().unwrap()).collect();
    assert_eq!((copies.len(), targets.len()), (N, N), "one run per schedule");

    // Between runs: nothing.
    let Some(testbed) = bed.cluster.testbed.as_ref() else {
        eprintln!("the quiet-period check needs the local test bed's request counts (not E2E_KUBECONFIG)");
        return;
    };
    // The sweep's last round may still be on its way: the quiet period starts once it is idle.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !bed.metrics().lines().any(|l| l == "ecx_sweep_followed_objects 0") {
        assert!(std::time::Instant::now() < deadline, "the sweep did not go idle after the runs");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    testbed.reset_stats();
    let calls_before = bed.emulator.all_calls().len();
    clock.sleep_until("2026-11-24T02:55:00Z").await;
    let stats = testbed.stats();
    let between: Vec<String> =
        bed.emulator.all_calls()[calls_before..].iter().map(|c| format!("{} {}", c["action"], c["params"])).collect();
    assert!(between.is_empty(), "AWS calls between runs: {between:#?}");
    assert_eq!(stats.writes("snapshotexportschedules"), 0, "schedule writes between runs: {stats:?}");
    assert_eq!(stats.writes("snapshotexports"), 0, "run writes between runs: {stats:?}");
    assert_eq!(stats.writes("events"), 0, "Events between runs: {stats:?}");
}

/// A run that cannot start because the cache is gone is a Warning and Stalls the schedule (a
/// person must act), with no run object; it is tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_cache_stalls_the_schedule_with_a_warning_and_no_run() {
    let mut bed = Bed::without_operator().await;
    bed.start_operator(&[]);
    create_schedule(
        &bed,
        "gone",
        json!({"schedule": "0 3 1 1 *", "source": {"cacheClusterId": "no-such-cluster", "mode": "CreateSnapshot"}, "template": {}}),
    )
    .await;
    let annotate = json!({"metadata": {"annotations": {RUN_NOW_ANNOTATION: "1"}}});
    schedules(&bed).patch("gone", &PatchParams::default(), &Patch::Merge(annotate)).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let stalled = loop {
        let s = schedules(&bed).get("gone").await.unwrap();
        if let Some(c) = s.status.and_then(|st| st.conditions.into_iter().find(|c| c.type_ == "Stalled" && c.status == "True")) {
            break c;
        }
        assert!(std::time::Instant::now() < deadline, "the schedule did not stall");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(stalled.reason, "SourceUnavailable");
    assert!(stalled.message.contains("no-such-cluster") || stalled.message.contains("CacheClusterNotFound"), "{}", stalled.message);
    let reasons = schedule_event_reasons(&bed, "gone").await;
    assert!(reasons.iter().any(|(t, r)| t == "Warning" && r == "SourceUnavailable"), "{reasons:?}");
    assert!(!reasons.iter().any(|(t, _)| t == "Normal"), "{reasons:?}");
    assert!(runs_of(&bed, "gone").await.is_empty(), "no run without its snapshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_name_taken_by_another_object_is_refused_not_counted_as_started() {
    let mut bed = Bed::without_operator().await;
    seed_automatic(&bed, "taken-rg", "2026-11-20T02:00:00Z");
    // Someone else's SnapshotExport already has the name the run-now would get.
    let run_name = ecx::schedule::names::run_now_name("taken", "1", 1);
    let foreign = SnapshotExport::new(&run_name, ecx::api::SnapshotExportSpec::new("someone-elses-source", "someone-elses-copy", None));
    bed.cluster.exports().create(&PostParams::default(), &foreign).await.expect("create the foreign object");
    bed.start_operator(&[]);
    create_schedule(&bed, "taken", json!({"schedule": "0 3 1 1 *", "source": {"replicationGroupId": "taken-rg"}, "template": {}})).await;
    let annotate = json!({"metadata": {"annotations": {RUN_NOW_ANNOTATION: "1"}}});
    schedules(&bed).patch("taken", &PatchParams::default(), &Patch::Merge(annotate)).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let stalled = loop {
        let s = schedules(&bed).get("taken").await.unwrap();
        if let Some(c) = s.status.and_then(|st| st.conditions.into_iter().find(|c| c.type_ == "Stalled" && c.status == "True")) {
            break c;
        }
        assert!(std::time::Instant::now() < deadline, "the schedule did not stall");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(stalled.reason, "RunNameTaken", "{}", stalled.message);
    // The run-now value is recorded as skipped (a new value asks again), and the Warning names the object.
    let status = schedules(&bed).get("taken").await.unwrap().status.unwrap();
    assert_eq!(status.last_run_now.as_deref(), Some("1"));
    assert_eq!(status.last_run.and_then(|l| l.skip_reason), Some(ecx::api::schedule::SkipReason::RunNameTaken));
    // Events are told after the status write: wait for it.
    schedule_event_reasons_with(&bed, "taken", "RunNameTaken").await;
    let notes: Vec<String> = schedule_events(&bed, "taken", "RunNameTaken").await.into_iter().filter_map(|e| e.note).collect();
    assert!(notes.iter().any(|n| n.contains(&run_name) && n.contains("set a new")), "{notes:?}");
    let reasons = schedule_event_reasons(&bed, "taken").await;
    assert!(!reasons.iter().any(|(_, r)| r == "RunStarted"), "a run reported started although none was created: {reasons:?}");
    let still = bed.cluster.exports().get(&run_name).await.unwrap();
    assert_eq!(still.spec.source_snapshot_name, "someone-elses-source", "the foreign object was not taken over");
    assert!(still.owner_references().is_empty());
    assert!(runs_of(&bed, "taken").await.is_empty());
}
