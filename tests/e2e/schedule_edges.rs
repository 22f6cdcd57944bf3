//! `SnapshotExportSchedule` edge cases end to end: a CreateSnapshot run the export policy refuses
//! takes no snapshot, the intermediate snapshot of a run that failed for good is deleted, and a
//! run-now value used again after another one starts a new run; a run whose status write was
//! lost is reported started, not skipped; a refused run is told, counted and written once; the
//! schedules and the SnapshotExport gate read one export policy; a CreateSnapshot that answers
//! AlreadyExists for a snapshot nobody finds starts no run.

use crate::harness::*;
use crate::schedule::{
    create_schedule, runs_of, schedule_event_reasons, schedule_event_reasons_with, schedule_events, schedules, seed_automatic,
};
use ecx::api::schedule::{SnapshotExportSchedule, RUN_NOW_ANNOTATION};
use ecx::api::SnapshotExport;
use kube::api::{Patch, PatchParams};
use kube::ResourceExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn run_now(bed: &Bed, schedule: &str, value: &str) {
    let annotate = json!({"metadata": {"annotations": {RUN_NOW_ANNOTATION: value}}});
    schedules(bed).patch(schedule, &PatchParams::default(), &Patch::Merge(annotate)).await.unwrap();
}

/// The schedule's condition `type_` once it is True, waiting up to 30 s; `fail_fast` is checked
/// on each look and stops the wait with its message.
async fn wait_condition(
    bed: &Bed,
    name: &str,
    type_: &str,
    fail_fast: impl Fn() -> Option<String>,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(why) = fail_fast() {
            panic!("{name}: {why}");
        }
        let s: SnapshotExportSchedule = schedules(bed).get(name).await.unwrap();
        if let Some(c) = s.status.and_then(|st| st.conditions.into_iter().find(|c| c.type_ == type_ && c.status == "True")) {
            return c;
        }
        assert!(Instant::now() < deadline, "{name} did not become {type_}; log:\n{}", bed.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn create_snapshot_calls_for(bed: &Bed, cluster: &str) -> Vec<Value> {
    bed.emulator.calls("CreateSnapshot").into_iter().filter(|c| c["params"]["CacheClusterId"] == cluster).collect()
}

/// Review finding F3a: the export policy is asked for a CreateSnapshot run before its snapshot is
/// taken. A refusal (by the source's cluster, or by the bucket) stalls the schedule with the
/// policy's reason and message and a Warning, and takes no snapshot; a run the policy allows
/// takes its snapshot and exports it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_snapshot_run_the_policy_refuses_takes_no_snapshot_and_stalls() {
    let mut bed = Bed::without_operator().await;
    create_bucket(&bed.s3, "ecx-fenced", REGION, Access::FULL_ACL).await;
    bed.emulator.create_cache_cluster("fenced").await;
    bed.emulator.create_cache_cluster("team-redis").await;
    // This namespace may export to ecx-fenced only snapshots of cluster team-redis.
    let rule = format!("{}=ecx-fenced,*,team-redis", bed.cluster.namespace);
    bed.start_operator_with_policy(&["--allow-export", &rule]);
    let spec = |cluster: &str, bucket: &str| json!({"schedule": "0 3 1 1 *", "source": {"cacheClusterId": cluster, "mode": "CreateSnapshot"}, "template": {"targetBucket": bucket}});
    create_schedule(&bed, "wrong-cluster", spec("fenced", "ecx-fenced")).await;
    create_schedule(&bed, "wrong-bucket", spec("team-redis", "ecx-elsewhere")).await;
    create_schedule(&bed, "allowed", spec("team-redis", "ecx-fenced")).await;
    for name in ["wrong-cluster", "wrong-bucket", "allowed"] {
        run_now(&bed, name, "1").await;
    }

    let no_snapshot = |cluster: &'static str| {
        let bed = &bed;
        move || {
            let calls = create_snapshot_calls_for(bed, cluster);
            (!calls.is_empty()).then(|| format!("a CreateSnapshot for a run the export policy refuses: {calls:?}"))
        }
    };
    let stalled = wait_condition(&bed, "wrong-cluster", "Stalled", no_snapshot("fenced")).await;
    assert_eq!(stalled.reason, "ExportNotAllowed", "{}", stalled.message);
    assert!(stalled.message.contains("team-redis") && stalled.message.contains("fenced"), "{}", stalled.message);
    let stalled = wait_condition(&bed, "wrong-bucket", "Stalled", || None).await;
    assert_eq!(stalled.reason, "ExportNotAllowed", "{}", stalled.message);
    assert!(stalled.message.contains("ecx-elsewhere"), "{}", stalled.message);
    for name in ["wrong-cluster", "wrong-bucket"] {
        let reasons = schedule_event_reasons(&bed, name).await;
        assert!(reasons.iter().any(|(t, r)| t == "Warning" && r == "ExportNotAllowed"), "{name}: {reasons:?}");
        assert!(!reasons.iter().any(|(_, r)| r == "RunStarted"), "{name}: {reasons:?}");
        assert!(runs_of(&bed, name).await.is_empty(), "{name}: no run without the policy's consent");
        let status = schedules(&bed).get(name).await.unwrap().status.unwrap();
        assert!(status.pending_snapshot.is_none(), "{name}: no intent recorded for a refused run");
    }

    // The allowed one: its snapshot is taken and exported (the policy's own check agrees).
    let runs = loop {
        let runs = runs_of(&bed, "allowed").await;
        if !runs.is_empty() {
            break runs;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    bed.wait_ready(&runs[0].name_any()).await;
    let creates = bed.emulator.calls("CreateSnapshot");
    assert_eq!(creates.len(), 1, "only the allowed run took a snapshot: {creates:?}");
    assert_eq!(creates[0]["params"]["CacheClusterId"], "team-redis");
}

/// The same when the intent was recorded before a crash (or by an operator without the check)
/// and the snapshot is not taken yet: a policy that refuses the run keeps it from being taken,
/// and the intent stays until the policy allows the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_intent_the_policy_now_refuses_takes_no_snapshot() {
    use ecx::api::schedule::{PendingSnapshot, SnapshotExportScheduleStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let mut bed = Bed::without_operator().await;
    bed.emulator.create_cache_cluster("intent").await;
    let spec = json!({"schedule": "0 3 1 1 *", "source": {"cacheClusterId": "intent", "mode": "CreateSnapshot"}, "template": {"targetBucket": "ecx-nobody-may"}});
    let mut created = create_schedule(&bed, "intent", spec).await;
    let scheduled: jiff::Timestamp = "2026-11-29T03:00:00Z".parse().unwrap();
    let run_name = ecx::schedule::names::run_name("intent", scheduled);
    let pending = PendingSnapshot {
        run_name: run_name.clone(),
        snapshot_name: ecx::schedule::names::intermediate_snapshot_name(&created.uid().unwrap(), &run_name),
        target_snapshot_name: "intent-20261129-0300".into(),
        scheduled_time: Time(scheduled),
    };
    created.status = Some(SnapshotExportScheduleStatus {
        last_schedule_time: Some(Time(scheduled)),
        pending_snapshot: Some(pending.clone()),
        ..Default::default()
    });
    schedules(&bed).replace_status("intent", &kube::api::PostParams::default(), &created).await.unwrap();
    // No rule: every S3 export is refused.
    bed.start_operator_with_policy(&[]);
    let no_snapshot = || {
        let calls = bed.emulator.calls("CreateSnapshot");
        (!calls.is_empty()).then(|| format!("a CreateSnapshot for a run the export policy refuses: {calls:?}"))
    };
    let stalled = wait_condition(&bed, "intent", "Stalled", no_snapshot).await;
    assert_eq!(stalled.reason, "ExportNotAllowed", "{}", stalled.message);
    assert!(stalled.message.contains(&run_name) && stalled.message.contains("ecx-nobody-may"), "{}", stalled.message);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(bed.emulator.calls("CreateSnapshot").is_empty());
    assert!(runs_of(&bed, "intent").await.is_empty());
    let status = schedules(&bed).get("intent").await.unwrap().status.unwrap();
    assert_eq!(status.pending_snapshot, Some(pending), "the intent stays until the policy allows the run");
}

/// Review finding F3b: the tagged intermediate snapshot of a run that failed for good (AWS
/// accepted the export and it wrote nothing) is deleted, as after a success; with
/// `keepIntermediateSnapshot` it is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_intermediate_snapshot_of_a_run_that_failed_for_good_is_deleted() {
    let mut bed = Bed::without_operator().await;
    create_bucket(&bed.s3, "ecx-doomed", REGION, Access::FULL_ACL).await;
    bed.emulator.create_cache_cluster("doomed").await;
    // Every export's upload fails: AWS accepts it and writes nothing (ExportFailed, for good).
    bed.emulator.set_config(json!({"export_fail_node_groups": ["0001"]}));
    bed.start_operator(&["--export-grace-seconds", "2"]);
    let spec = |keep: bool| json!({"schedule": "0 3 1 1 *", "source": {"cacheClusterId": "doomed", "mode": "CreateSnapshot", "keepIntermediateSnapshot": keep}, "template": {"targetBucket": "ecx-doomed"}});
    create_schedule(&bed, "doomed", spec(false)).await;
    create_schedule(&bed, "kept", spec(true)).await;
    run_now(&bed, "doomed", "1").await;
    run_now(&bed, "kept", "1").await;

    let mut failed: Vec<SnapshotExport> = Vec::new();
    for name in ["doomed", "kept"] {
        let deadline = Instant::now() + Duration::from_secs(30);
        let run = loop {
            if let Some(run) = runs_of(&bed, name).await.into_iter().next() {
                break run;
            }
            assert!(Instant::now() < deadline, "{name}: no run");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        failed.push(bed.wait_stalled(&run.name_any(), "ExportFailed").await);
    }
    let doomed_snapshot = failed[0].spec.source_snapshot_name.clone();
    let kept_snapshot = failed[1].spec.source_snapshot_name.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !bed.emulator.calls("DeleteSnapshot").iter().any(|c| c["params"]["SnapshotName"] == doomed_snapshot.as_str()) {
        assert!(
            Instant::now() < deadline,
            "the intermediate snapshot {doomed_snapshot} of a failed run was kept; log:\n{}",
            bed.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reasons = schedule_event_reasons_with(&bed, "doomed", "IntermediateSnapshotDeleted").await;
    assert!(reasons.iter().any(|(_, r)| r == "IntermediateSnapshotDeleted"), "{reasons:?}");
    let stalled = wait_condition(&bed, "doomed", "Stalled", || None).await;
    assert_eq!(stalled.reason, "LastRunFailed", "{}", stalled.message);
    // Once deleted, the run no longer names it (no second DeleteSnapshot).
    let deadline = Instant::now() + Duration::from_secs(10);
    while bed.cluster.get(&failed[0].name_any()).await.annotations().contains_key("elasticache-export.io/intermediate-snapshot") {
        assert!(Instant::now() < deadline, "the run still names its deleted intermediate snapshot");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let deletes = bed.emulator.calls("DeleteSnapshot");
    assert_eq!(deletes.len(), 1, "one DeleteSnapshot, of the failed run's own snapshot only: {deletes:?}");
    assert!(deletes.iter().all(|c| c["params"]["SnapshotName"] != kept_snapshot.as_str()), "keepIntermediateSnapshot was ignored");
}

/// Run-now A, then B, then A again: three runs, each under its own name (the third is not
/// taken for the first, which already ran), each reported as started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_now_value_used_again_after_another_starts_a_new_run() {
    let mut bed = Bed::without_operator().await;
    bed.start_operator(&[]);
    create_schedule(&bed, "again", json!({"schedule": "0 3 1 1 *", "source": {"replicationGroupId": "again-rg"}, "template": {}})).await;
    let mut names = Vec::new();
    for (i, value) in ["A", "B", "A"].iter().enumerate() {
        // A new backup each time, so the run has something new to export.
        seed_automatic(&bed, "again-rg", &format!("2026-11-2{i}T02:00:00Z"));
        run_now(&bed, "again", value).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while bed.emulator.calls("CopySnapshot").len() < i + 1 {
            assert!(Instant::now() < deadline, "run-now {value} (#{}) started no run; log:\n{}", i + 1, bed.log_text());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let status = schedules(&bed).get("again").await.unwrap().status.unwrap();
        let name = status.last_run.and_then(|r| r.name).expect("the last run's name");
        bed.wait_ready(&name).await;
        names.push(name);
    }
    assert_eq!(bed.emulator.calls("CopySnapshot").len(), 3);
    let runs: Vec<String> = runs_of(&bed, "again").await.iter().map(|r| r.name_any()).collect();
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert!(names.iter().all(|n| runs.contains(n)), "the status names the runs that exist: {names:?} {runs:?}");
    let reasons = schedule_event_reasons(&bed, "again").await;
    assert_eq!(reasons.iter().filter(|(_, r)| r == "RunStarted").count(), 3, "{reasons:?}");
}

/// The status of schedule `name` once `done` holds for it, waiting up to 30 s.
pub(crate) async fn wait_status(
    bed: &Bed,
    name: &str,
    what: &str,
    done: impl Fn(&ecx::api::schedule::SnapshotExportScheduleStatus) -> bool,
) -> ecx::api::schedule::SnapshotExportScheduleStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = schedules(bed).get(name).await.unwrap().status.filter(|s| done(s)) {
            return status;
        }
        assert!(Instant::now() < deadline, "{name}: {what} never happened; log:\n{}", bed.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Review finding A: the run for run-now `a` is created, and the status write recording it
/// fails (409: the schedule was edited meanwhile). The retry finds the run in flight under the
/// very name it planned: it records `a` as handled and reports the run as started, never
/// "did not start: the previous run is still in flight" while the run is exporting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_status_write_failed_is_reported_started_not_skipped() {
    let mut bed = Bed::without_operator().await;
    let proxy = bed.cluster.kube_proxy().await;
    bed.start_operator_through(&proxy, &[]);
    seed_automatic(&bed, "lied-rg", "2026-11-20T02:00:00Z");
    create_schedule(&bed, "lied", json!({"schedule": "0 3 1 1 *", "source": {"replicationGroupId": "lied-rg"}, "template": {}})).await;
    // The first status (no run yet) is written; the next write, the one recording the run, fails.
    wait_status(&bed, "lied", "the first status", |s| s.next_schedule_time.is_some()).await;
    proxy.fail_next(kube_testbed::FaultRule::new("update", "snapshotexportschedules", 409).subresource("status"));
    run_now(&bed, "lied", "a").await;

    let status = wait_status(&bed, "lied", "run-now a recorded", |s| s.last_run_now.as_deref() == Some("a")).await;
    assert!(proxy.stats().injected_faults >= 1, "the status write was not failed");
    let runs = runs_of(&bed, "lied").await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    let last = status.last_run.clone().expect("lastRun");
    assert_eq!(last.skip_reason, None, "the run that is exporting is reported as skipped: {status:?}");
    assert_eq!(last.name.as_deref(), Some(runs[0].name_any().as_str()), "{status:?}");
    bed.wait_ready(&runs[0].name_any()).await;
    let reasons = schedule_event_reasons(&bed, "lied").await;
    assert!(!reasons.iter().any(|(t, _)| t == "Warning"), "{reasons:?}");
    assert_eq!(reasons.iter().filter(|(_, r)| r == "RunStarted").count(), 1, "{reasons:?}");
    assert_eq!(bed.emulator.calls("CopySnapshot").len(), 1);
}

/// The operator (no export policy: every S3 export is refused) talking to the API server
/// through `proxy`.
fn start_refusing_operator_through(bed: &mut Bed, proxy: &KubeProxy) {
    let kubeconfig = bed.dir.path().join("kubeconfig-refusing");
    std::fs::write(&kubeconfig, proxy.kubeconfig_yaml(&bed.cluster.namespace)).unwrap();
    let n = bed.operators.len();
    let op = Operator::start_with_kubeconfig(&bed.cluster, &bed.emulator, bed.dir.path(), n, TEST_TIMING, &kubeconfig);
    bed.operators.push(op);
}

/// `schedule_runs_total{outcome}` of schedule `name` on the operator's /metrics page.
fn runs_counted(bed: &Bed, name: &str, outcome: &str) -> u64 {
    let metrics = bed.metrics();
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("ecx_schedule_runs")
                && l.contains(&format!("schedule=\"{name}\""))
                && l.contains(&format!("outcome=\"{outcome}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Review finding C: a run the policy refuses is a Warning and a `schedule_runs` count once,
/// not on every later reconcile that finds the same; and a refused run-now's status (which
/// named the reconcile's time) is not rewritten by each of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_run_is_told_counted_and_written_once() {
    let mut bed = Bed::without_operator().await;
    let proxy = bed.cluster.kube_proxy().await;
    bed.emulator.create_cache_cluster("refused").await;
    start_refusing_operator_through(&mut bed, &proxy);
    let spec = json!({"schedule": "0 3 1 1 *", "source": {"cacheClusterId": "refused", "mode": "CreateSnapshot"}, "template": {"targetBucket": "ecx-refused"}});
    create_schedule(&bed, "refused", spec).await;
    run_now(&bed, "refused", "1").await;
    let stalled = wait_condition(&bed, "refused", "Stalled", || None).await;
    assert_eq!(stalled.reason, "ExportNotAllowed", "{}", stalled.message);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let writes = || proxy.stats().count("update", "snapshotexportschedules/status");
    let reads = || proxy.stats().count("get", "snapshotexportschedules");
    let (written, counted, read) = (writes(), runs_counted(&bed, "refused", "ExportNotAllowed"), reads());
    assert_eq!(counted, 1);
    // Three more reconciles (an annotation edit wakes the schedule), each refused the same way.
    for i in 0..3 {
        let poke = json!({"metadata": {"annotations": {"example.com/poke": i.to_string()}}});
        schedules(&bed).patch("refused", &PatchParams::default(), &Patch::Merge(poke)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    // Each reconcile reads the schedule afresh.
    assert!(reads() >= read + 3, "the reconciles did not happen: {} reads; log:\n{}", reads() - read, bed.log_text());
    assert_eq!(writes(), written, "the status was rewritten with nothing new");
    assert_eq!(runs_counted(&bed, "refused", "ExportNotAllowed"), 1, "counted again");
    let warnings = schedule_event_reasons(&bed, "refused").await;
    assert_eq!(warnings.iter().filter(|(_, r)| r == "ExportNotAllowed").count(), 1, "{warnings:?}");
    assert!(bed.emulator.calls("CreateSnapshot").is_empty());
}

/// Review finding F: the schedules' policy pre-check and the SnapshotExport gate read one
/// policy: the file is parsed once at start and once per change (twice each before, by two
/// sources that could disagree while the file changed), and both refuse by the same content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedules_and_the_gate_share_one_export_policy() {
    let mut bed = Bed::without_operator().await;
    bed.emulator.create_cache_cluster("shared").await;
    bed.emulator.seed_snapshot("shared-src", 1);
    let ns = bed.cluster.namespace.clone();
    let file = bed.dir.path().join("export-policy.yaml");
    let policy = |bucket: &str| format!("rules:\n  - namespaces: [\"{ns}\"]\n    buckets: [{bucket}]\n");
    std::fs::write(&file, policy("ecx-shared")).unwrap();
    bed.start_operator_with_policy(&["--export-policy-file", file.to_str().unwrap()]);
    let loads = |bed: &Bed| bed.log_text().matches("export policy loaded").count();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !bed.log_text().contains("watching SnapshotExportSchedules") {
        assert!(Instant::now() < deadline, "the operator did not start; log:\n{}", bed.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(loads(&bed), 1, "the policy file was parsed more than once at start; log:\n{}", bed.log_text());

    // The file now allows another bucket only: both the schedule's run and the SnapshotExport
    // to ecx-shared are refused, by the one policy read once.
    std::fs::write(&file, policy("ecx-elsewhere")).unwrap();
    let spec = json!({"schedule": "0 3 1 1 *", "source": {"cacheClusterId": "shared", "mode": "CreateSnapshot"}, "template": {"targetBucket": "ecx-shared"}});
    create_schedule(&bed, "shared", spec).await;
    run_now(&bed, "shared", "1").await;
    let stalled = wait_condition(&bed, "shared", "Stalled", || None).await;
    assert_eq!(stalled.reason, "ExportNotAllowed", "{}", stalled.message);
    bed.cluster
        .apply(
            "shared-export",
            json!({"sourceSnapshotName": "shared-src", "targetSnapshotName": "shared-dst", "targetBucket": "ecx-shared"}),
        )
        .await;
    bed.wait_stalled("shared-export", "ExportNotAllowed").await;
    assert_eq!(loads(&bed), 2, "each change is parsed once, for both; log:\n{}", bed.log_text());
    assert!(bed.emulator.calls("CreateSnapshot").is_empty() && bed.emulator.calls("CopySnapshot").is_empty());
}

/// Review finding H1: the intermediate-snapshot annotation is an editable field of the run, so
/// it is trusted only when it names the snapshot this schedule takes for that run. A forged run
/// (owned by and labelled with the schedule) naming another team's operator-tagged snapshot gets
/// a Warning, and that snapshot is not deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_intermediate_annotation_deletes_nothing() {
    let bed = Bed::start().await;
    for name in ["forged-src", "team-a-copy"] {
        bed.emulator.ctl("POST", "/snapshots", Some(json!({"name": name, "region": REGION, "cache_cluster_id": "team-a"})));
    }
    let ec = bed.emulator.elasticache();
    let victim = ec.describe_snapshots().snapshot_name("team-a-copy").send().await.unwrap();
    let arn = victim.snapshots()[0].arn().unwrap().to_string();
    let tag = aws_sdk_elasticache::types::Tag::builder().key(ecx::api::OWNER_TAG_KEY).value("team-a-uid").build();
    ec.add_tags_to_resource().resource_name(&arn).tags(tag).send().await.unwrap();

    bed.emulator.create_cache_cluster("forged").await;
    let schedule = create_schedule(
        &bed,
        "forged",
        json!({"schedule": "0 3 1 1 *", "source": {"cacheClusterId": "forged", "mode": "CreateSnapshot"}, "template": {}}),
    )
    .await;
    let run: SnapshotExport = serde_json::from_value(json!({
        "apiVersion": "elasticache-export.io/v1alpha1", "kind": "SnapshotExport",
        "metadata": {
            "name": "forged-run",
            "namespace": bed.cluster.namespace,
            "labels": {"elasticache-export.io/schedule": ecx::schedule::names::label_value("forged")},
            "annotations": {"elasticache-export.io/intermediate-snapshot": "team-a-copy"},
            "ownerReferences": [{"apiVersion": "elasticache-export.io/v1alpha1", "kind": "SnapshotExportSchedule", "name": "forged", "uid": schedule.uid().unwrap(), "controller": true}],
        },
        "spec": {"sourceSnapshotName": "forged-src", "targetSnapshotName": "forged-copy"},
    }))
    .unwrap();
    kube::Api::<SnapshotExport>::namespaced(bed.cluster.client.clone(), &bed.cluster.namespace)
        .create(&kube::api::PostParams::default(), &run)
        .await
        .expect("create the forged run");
    bed.wait_ready("forged-run").await;
    // Wake the schedule after its run completed (as any later event would).
    let poke = json!({"metadata": {"annotations": {"poke": "1"}}});
    schedules(&bed).patch("forged", &PatchParams::default(), &Patch::Merge(poke)).await.unwrap();

    let reasons = schedule_event_reasons_with(&bed, "forged", "IntermediateSnapshotNotOurs").await;
    assert!(reasons.iter().any(|(t, r)| t == "Warning" && r == "IntermediateSnapshotNotOurs"), "{reasons:?}");
    let deletes: Vec<Value> = bed.emulator.calls("DeleteSnapshot");
    assert!(deletes.iter().all(|c| c["params"]["SnapshotName"] != "team-a-copy"), "another team's snapshot was deleted: {deletes:#?}");
}

/// Review finding L1: a CreateSnapshot that answers AlreadyExists while no snapshot of that name
/// can be found (a snapshot deleted meanwhile, or an AWS that contradicts itself) proves nothing
/// about whose snapshot it is: the run must wait and try again, never start without the tag
/// check. Once CreateSnapshot succeeds, the run starts with a snapshot that carries the tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_snapshot_that_answers_already_exists_for_a_snapshot_nobody_finds_starts_no_run() {
    let mut bed = Bed::without_operator().await;
    bed.emulator.create_cache_cluster("phantom").await;
    bed.emulator.set_config(
        json!({"action_errors": {"CreateSnapshot": {"code": "SnapshotAlreadyExistsFault", "message": "Snapshot already exists."}}}),
    );
    bed.start_operator(&[]);
    let spec = json!({"schedule": "0 3 1 1 *", "source": {"cacheClusterId": "phantom", "mode": "CreateSnapshot"}, "template": {}});
    create_schedule(&bed, "phantom", spec).await;
    run_now(&bed, "phantom", "1").await;
    // Asked more than once: each answer is a reason to look again, not to start the run.
    let deadline = Instant::now() + Duration::from_secs(60);
    while create_snapshot_calls_for(&bed, "phantom").len() < 3 {
        assert!(Instant::now() < deadline, "CreateSnapshot was not tried again; log:\n{}", bed.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(runs_of(&bed, "phantom").await.is_empty(), "a run started without its snapshot; log:\n{}", bed.log_text());

    bed.emulator.set_config(json!({"action_errors": {}}));
    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        if let Some(run) = runs_of(&bed, "phantom").await.into_iter().next() {
            break run;
        }
        assert!(Instant::now() < deadline, "no run once CreateSnapshot succeeds; log:\n{}", bed.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let created: Vec<Value> = create_snapshot_calls_for(&bed, "phantom").into_iter().filter(|c| c["status"] == 200).collect();
    assert_eq!(created.len(), 1, "one snapshot taken: {created:?}");
    assert_eq!(created[0]["params"]["SnapshotName"], run.spec.source_snapshot_name.as_str(), "the run exports the snapshot it took");
}

/// A copy ElastiCache never finishes (a known AWS support case) blocked its schedule for ever:
/// every later time was skipped as `PreviousRunInFlight`. Past `runTimeoutSeconds` a run is
/// reported once (`RunTimedOut`: a Warning, counted, the schedule Stalled with the status AWS last
/// showed) and no longer holds back the next time; it is still followed, never requested again,
/// and retention keeps it while it is in flight (issue 31, step 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_never_ends_times_out_and_the_schedule_goes_on() {
    // Copies stay `creating` for ever, unless the test says otherwise.
    let mut bed = Bed::with_options(1e7, 1.0, Default::default()).await;
    // A virtual day is six real seconds.
    let clock = crate::schedule::TestClock::new("2026-11-23T00:00:00Z", 14_400.0);
    bed.start_operator_env(&[], &clock.env());
    create_schedule(
        &bed,
        "stuck",
        json!({
            "schedule": "0 3 * * *",
            "runTimeoutSeconds": 3600,
            "source": {"replicationGroupId": "stuck-rg"},
            "template": {},
            "retention": {"keepLast": 1},
        }),
    )
    .await;
    for day in 23..=25 {
        clock.sleep_until(&format!("2026-11-{}T12:00:00Z", day - 1)).await;
        seed_automatic(&bed, "stuck-rg", &format!("2026-11-{day}T02:00:00Z"));
    }
    // The third night's copy does end: a newer success, so retention has something to keep.
    clock.sleep_until("2026-11-25T12:00:00Z").await;
    let started: Vec<String> = runs_of(&bed, "stuck").await.iter().map(|r| r.name_any()).collect();
    let reasons = schedule_event_reasons(&bed, "stuck").await;
    assert!(started.contains(&"stuck-20261125-0300".to_string()), "the third night started no run: {started:?}, Events {reasons:?}");
    bed.emulator.set_snapshot_status("stuck-20261125-0300", "available");
    // Its run completes, and the schedule records it (the sweep, the run's status, the schedule's).
    wait_status(&bed, "stuck", "the third night's success", |s| s.last_successful_time.is_some()).await;
    clock.sleep_until("2026-11-26T00:00:00Z").await;

    // One accepted CopySnapshot per night: no night skipped, nothing requested twice.
    let copies = bed.emulator.calls("CopySnapshot");
    let mut targets: Vec<&str> = copies.iter().map(|c| c["params"]["TargetSnapshotName"].as_str().unwrap()).collect();
    targets.sort();
    assert_eq!(targets, ["stuck-20261123-0300", "stuck-20261124-0300", "stuck-20261125-0300"], "{copies:?}");
    let reasons = schedule_event_reasons(&bed, "stuck").await;
    assert!(!reasons.iter().any(|(_, r)| r == "PreviousRunInFlight"), "{reasons:?}");
    assert!(reasons.iter().any(|(t, r)| t == "Warning" && r == "RunTimedOut"), "{reasons:?}");

    // Retention kept the stuck runs (in flight), beside the newest success.
    let runs = runs_of(&bed, "stuck").await;
    let phases: Vec<(String, String)> =
        runs.iter().map(|r| (r.name_any(), format!("{:?}", r.status.as_ref().and_then(|s| s.phase)))).collect();
    assert_eq!(
        phases,
        [
            ("stuck-20261123-0300".to_string(), "Some(Copying)".to_string()),
            ("stuck-20261124-0300".to_string(), "Some(Copying)".to_string()),
            ("stuck-20261125-0300".to_string(), "Some(Completed)".to_string()),
        ]
    );
    let status = schedules(&bed).get("stuck").await.unwrap().status.unwrap();
    assert_eq!(status.timed_out, ["stuck-20261123-0300", "stuck-20261124-0300"]);
    assert_eq!(status.active, status.timed_out);
    // A newer run succeeded: Ready, naming what is still out.
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "LastRunSucceeded"));
    assert!(
        ready.message.contains("Still in flight past runTimeoutSeconds: stuck-20261123-0300, stuck-20261124-0300"),
        "{}",
        ready.message
    );

    // ElastiCache ends the first one at last: its failure is told and counted, once.
    bed.emulator.set_snapshot_status("stuck-20261123-0300", "failed");
    let status = wait_status(&bed, "stuck", "the first run's end", |s| !s.active.contains(&"stuck-20261123-0300".to_string())).await;
    assert_eq!(status.timed_out, ["stuck-20261124-0300"]);
    schedule_event_reasons_with(&bed, "stuck", "RunFailed").await;
    let ns = &bed.cluster.namespace;
    let metrics = bed.metrics();
    let series =
        |outcome: &str, n: u32| format!(r#"ecx_schedule_runs_total{{schedule_namespace="{ns}",schedule="stuck",outcome="{outcome}"}} {n}"#);
    // Each timed-out run told once (the Events of one reason fold into one series; the count does not).
    assert!(metrics.contains(&series("RunTimedOut", 3)), "{metrics}");
    assert!(metrics.contains(&series("Failed", 1)) && metrics.contains(&series("Succeeded", 1)), "{metrics}");
}

/// Retention with `pruneExportedObjects` trusted "written after the run's request", which is also
/// true of an object someone wrote later under the same key. Now a run records each object's
/// ETag, size and write time when it completes, and retention deletes an object only while it is
/// still that very write (HeadObject, then S3's If-Match): a foreign object under a completed
/// run's key survives, so do the same bytes written again; an untouched one goes, and what stays
/// is told (issue 31, step 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_only_the_objects_a_run_wrote() {
    let mut bed = Bed::without_operator().await;
    let bucket = "ecx-prune";
    create_bucket(&bed.s3, bucket, REGION, Access::FULL_ACL).await;
    // A virtual day is six real seconds.
    let clock = crate::schedule::TestClock::new("2026-11-23T00:00:00Z", 14_400.0);
    bed.start_operator_env(&[], &clock.env());
    create_schedule(
        &bed,
        "pruned",
        json!({
            "schedule": "0 3 * * *",
            "source": {"replicationGroupId": "prune-rg"},
            "template": {"targetBucket": bucket},
            "retention": {"keepLast": 1, "pruneExportedObjects": true},
        }),
    )
    .await;
    let key = |day: u32| format!("pruned-202611{day}-0300-0001.rdb");
    for day in 23..=26 {
        seed_automatic(&bed, "prune-rg", &format!("2026-11-{day}T02:00:00Z"));
        clock.sleep_until(&format!("2026-11-{day}T03:00:00Z")).await;
        // Each night's run completes (before the next night: a virtual day is six real seconds).
        let run = bed.wait_for(&format!("pruned-202611{day}-0300"), "Ready", 30, |o| is_true(o, "Ready")).await;
        let details = run.status.unwrap().exported_object_details;
        assert_eq!(details.len(), 1, "the run records its object's ETag, size and write time: {details:?}");
        assert_eq!(details[0].url, format!("s3://{bucket}/{}", key(day)));
        assert!(!details[0].e_tag.is_empty() && details[0].size > 0, "{details:?}");
        let put = |body: Vec<u8>| bed.s3.put_object().bucket(bucket).key(key(day)).body(body.into()).send();
        match day {
            // Someone writes another file under the first run's key.
            23 => {
                put(b"someone else's file".to_vec()).await.unwrap();
            }
            // The second run's file is written again, byte for byte (S3 times are whole seconds).
            24 => {
                let object = bed.s3.get_object().bucket(bucket).key(key(day)).send().await.unwrap();
                let bytes = object.body.collect().await.unwrap().into_bytes().to_vec();
                tokio::time::sleep(Duration::from_millis(1100)).await;
                put(bytes).await.unwrap();
            }
            _ => {}
        }
    }
    // Night 26's run completed: retention deletes the older runs; only night 25's object was
    // provably theirs.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let names: Vec<String> = runs_of(&bed, "pruned").await.iter().map(|r| r.name_any()).collect();
        if names == ["pruned-20261126-0300"] {
            break;
        }
        assert!(Instant::now() < deadline, "retention kept {names:?}; log:\n{}", bed.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut keys = bucket_keys(&bed.s3, bucket).await;
    keys.sort();
    assert_eq!(keys, [key(23), key(24), key(26)], "night 25's object pruned; the foreign one and the one written again kept");
    let body = bed.s3.get_object().bucket(bucket).key(key(23)).send().await.unwrap().body.collect().await.unwrap().into_bytes();
    assert_eq!(&body[..], b"someone else's file");
    let reasons = schedule_event_reasons_with(&bed, "pruned", "ExportedObjectsKept").await;
    assert_eq!(reasons.iter().filter(|(_, r)| r == "ExportedObjectsKept").count(), 2, "what stays is told, per run: {reasons:?}");
}

/// A LatestAutomatic run stalled on its bucket until ElastiCache deleted its automatic backup
/// (the cache's snapshot retention ended) was `SourceSnapshotNotFound` for ever: tried again every
/// retry period, never over, so every later night was `PreviousRunInFlight`. Now the run says the
/// backup expired and ends for good, with no AWS call for it again, and the next night runs. A
/// run made before runs were marked (an upgrade) is marked by its schedule (issue 31, step 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_automatic_backup_expired_while_stalled_ends_and_the_schedule_goes_on() {
    let mut bed = Bed::without_operator().await;
    let bucket = "ecx-expiring";
    create_bucket(&bed.s3, bucket, REGION, Access::None).await;
    // A virtual day is 24 real seconds.
    let clock = crate::schedule::TestClock::new("2026-11-23T00:00:00Z", 3_600.0);
    bed.start_operator_env(&[], &clock.env());
    let backup = seed_automatic(&bed, "exp-rg", "2026-11-23T02:00:00Z");
    create_schedule(
        &bed,
        "expiring",
        json!({"schedule": "0 3 * * *", "source": {"replicationGroupId": "exp-rg"}, "template": {"targetBucket": bucket}}),
    )
    .await;
    let run = "expiring-20261123-0300";
    let last_reason =
        |o: &SnapshotExport| o.status.as_ref().and_then(|s| s.last_error.as_ref()).map(|e| e.reason.clone()).unwrap_or_default();
    bed.wait_for(run, "stalled on its bucket", 60, |o| last_reason(o).starts_with("S3")).await;
    // The next night's backup is there already: only the stuck run could keep it from running.
    seed_automatic(&bed, "exp-rg", "2026-11-24T02:00:00Z");

    // A run made by an operator that did not mark runs: its schedule marks it.
    let marked = |o: &SnapshotExport| o.annotations().get("elasticache-export.io/automatic-source").is_some_and(|v| v == "true");
    assert!(marked(&bed.cluster.get(run).await), "a LatestAutomatic run is marked when it is created");
    let unmark = json!({"metadata": {"annotations": {"elasticache-export.io/automatic-source": null}}});
    bed.cluster.exports().patch(run, &PatchParams::default(), &Patch::Merge(&unmark)).await.unwrap();
    bed.wait_for(run, "marked again by its schedule", 30, marked).await;

    // ElastiCache deletes the backup at the end of its retention, the bucket still unfixed.
    bed.emulator.elasticache().delete_snapshot().snapshot_name(&backup).send().await.expect("delete the automatic backup");
    let expired = bed.wait_stalled(run, "SourceSnapshotExpired").await;
    let message = condition(&expired, "Stalled").unwrap().2;
    assert!(message.contains(&backup) && message.contains("automatic backup"), "{message}");
    bed.cluster.wait_event(run, "Warning", "SourceSnapshotExpired").await;
    let target = expired.spec.target_snapshot_name.clone();
    let next_night: jiff::Timestamp = "2026-11-24T03:00:00Z".parse().unwrap();
    assert!(clock.now() < next_night, "the test was too slow: the next night came before the run ended");

    // Over for good: several retry periods pass without one AWS call for it.
    let mark = bed.emulator.all_calls().len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let about_it: Vec<Value> = bed
        .emulator
        .calls_since(mark)
        .into_iter()
        .filter(|c| c["params"].to_string().contains(&backup) || c.to_string().contains(&target))
        .collect();
    assert!(about_it.is_empty(), "AWS calls for a run that is over: {about_it:#?}");

    // The bucket is fixed; the next night runs and exports its own backup.
    grant(&bed.s3, bucket, REGION, Access::FULL_ACL).await;
    clock.sleep_until("2026-11-24T04:00:00Z").await;
    let next = "expiring-20261124-0300";
    bed.wait_ready(next).await;
    let status = wait_status(&bed, "expiring", "the second night's success", |s| s.last_successful_time.is_some()).await;
    assert!(status.active.is_empty(), "nothing in flight: {:?}", status.active);
    let reasons = schedule_event_reasons(&bed, "expiring").await;
    assert!(!reasons.iter().any(|(_, r)| r == "PreviousRunInFlight"), "{reasons:?}");
    schedule_event_reasons_with(&bed, "expiring", "RunFailed").await;
    // No CopySnapshot ever for the expired backup; one for the next night's.
    let copies = bed.emulator.calls("CopySnapshot");
    let sources: Vec<&str> = copies.iter().map(|c| c["params"]["SourceSnapshotName"].as_str().unwrap()).collect();
    assert_eq!(sources, ["automatic.exp-rg-2026-11-24-02-00"], "{copies:#?}");
}

/// A scheduled run whose name another SnapshotExport holds stalled the schedule and was tried
/// again only every 5 minutes: the times in between were neither run nor recorded, so on a
/// frequent cron runs were lost without a word. Now that time is recorded as skipped
/// (`RunNameTaken`, told once, naming the object) and each later time is run or recorded
/// (issue 31, step 7).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_name_taken_skips_that_time_only_and_the_next_times_run() {
    // Copies complete at once, so no run holds back the next.
    let mut bed = Bed::with_options(0.1, 0.1, Default::default()).await;
    seed_automatic(&bed, "hourly-rg", "2026-11-23T00:00:00Z");
    // Someone else's SnapshotExport holds the name of the 01:00 run.
    let taken = ecx::schedule::names::run_name("hourly", "2026-11-23T01:00:00Z".parse().unwrap());
    let foreign = SnapshotExport::new(&taken, ecx::api::SnapshotExportSpec::new("someone-elses-source", "someone-elses-copy", None));
    bed.cluster.exports().create(&Default::default(), &foreign).await.expect("create the foreign object");
    create_schedule(&bed, "hourly", json!({"schedule": "0 * * * *", "source": {"replicationGroupId": "hourly-rg"}, "template": {}})).await;
    // A virtual hour is six real seconds, from just after the schedule was created: 01:00 is its
    // first time (the operator, started next, is up long before it).
    let clock = crate::schedule::TestClock::new("2026-11-23T00:40:00Z", 600.0);
    bed.start_operator_env(&[], &clock.env());

    // 01:00 is skipped for the name; 02:00 exports the backup; 03:00 finds nothing newer.
    clock.sleep_until("2026-11-23T03:10:00Z").await;
    let status = wait_status(&bed, "hourly", "the 03:00 time handled", |s| {
        s.last_schedule_time.as_ref().is_some_and(|t| t.0 >= "2026-11-23T03:00:00Z".parse::<jiff::Timestamp>().unwrap())
    })
    .await;
    let second = ecx::schedule::names::run_name("hourly", "2026-11-23T02:00:00Z".parse().unwrap());
    let runs: Vec<String> = runs_of(&bed, "hourly").await.iter().map(|r| r.name_any()).collect();
    assert_eq!(runs, std::slice::from_ref(&second), "status {status:?}");
    bed.wait_ready(&second).await;
    let reasons = schedule_event_reasons(&bed, "hourly").await;
    assert!(reasons.iter().any(|(t, r)| t == "Warning" && r == "NoNewSnapshot"), "03:00 recorded as skipped: {reasons:?}");
    // Told once, naming the object; the object is not taken over.
    let told = schedule_events(&bed, "hourly", "RunNameTaken").await;
    assert_eq!(told.len(), 1, "{told:#?}");
    assert!(told[0].series.is_none(), "told more than once: {:?}", told[0].series);
    let note = told[0].note.clone().unwrap_or_default();
    assert!(note.contains(&taken) && note.contains("2026-11-23T01:00:00Z") && note.contains("next scheduled time runs as usual"), "{note}");
    let still = bed.cluster.exports().get(&taken).await.unwrap();
    assert_eq!(still.spec.source_snapshot_name, "someone-elses-source");
    assert!(still.owner_references().is_empty());
    // One copy, the 02:00 run's: the taken time requested nothing (the foreign object asks for its own).
    let copies = bed.emulator.calls("CopySnapshot");
    let ours =
        copies.iter().filter(|c| c["params"]["SourceSnapshotName"].as_str().is_some_and(|s| s.starts_with("automatic.hourly-rg"))).count();
    assert_eq!(ours, 1, "{copies:#?}");
}

/// Review finding (step 7): a CreateSnapshot run took its snapshot before its name was found
/// taken, then recorded the time as skipped with the snapshot still pending. The name is now
/// looked at first: nothing is taken for a run that cannot start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_snapshot_run_whose_name_is_taken_takes_no_snapshot() {
    let mut bed = Bed::without_operator().await;
    bed.emulator.ctl("POST", "/caches", Some(json!({"cache_cluster_id": "named", "region": REGION})));
    let run_name = ecx::schedule::names::run_now_name("named", "1", 1);
    let foreign = SnapshotExport::new(&run_name, ecx::api::SnapshotExportSpec::new("someone-elses-source", "someone-elses-copy", None));
    bed.cluster.exports().create(&Default::default(), &foreign).await.expect("create the foreign object");
    bed.start_operator(&[]);
    create_schedule(
        &bed,
        "named",
        json!({"schedule": "0 3 1 1 *", "source": {"cacheClusterId": "named", "mode": "CreateSnapshot"}, "template": {}}),
    )
    .await;
    let annotate = json!({"metadata": {"annotations": {RUN_NOW_ANNOTATION: "1"}}});
    schedules(&bed).patch("named", &PatchParams::default(), &Patch::Merge(annotate)).await.unwrap();
    let status = wait_status(&bed, "named", "the run-now skipped for its name", |s| {
        s.last_run.as_ref().and_then(|l| l.skip_reason) == Some(ecx::api::schedule::SkipReason::RunNameTaken)
    })
    .await;
    assert!(status.pending_snapshot.is_none(), "{status:?}");
    assert_eq!(status.last_run_now.as_deref(), Some("1"));
    assert!(bed.emulator.calls("CreateSnapshot").is_empty(), "a snapshot was taken for a run that cannot start");
    assert!(runs_of(&bed, "named").await.is_empty());
}

/// A `lastScheduleTime` ahead of the clock (a clock that jumped forward and back, or an edited
/// status) held every later time until the clock reached it, without a word. Now it is told once
/// and cleared, and the next scheduled time is handled (issue 31, step 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_schedule_time_ahead_of_the_clock_is_told_once_and_scheduling_goes_on() {
    let mut bed = Bed::without_operator().await;
    // A virtual hour is a real second.
    let clock = crate::schedule::TestClock::new("2026-11-23T00:00:00Z", 3_600.0);
    bed.start_operator_env(&[], &clock.env());
    create_schedule(&bed, "jumpy", json!({"schedule": "0 * * * *", "source": {"replicationGroupId": "jump-rg"}, "template": {}})).await;
    wait_status(&bed, "jumpy", "its first status", |s| s.next_schedule_time.is_some()).await;
    let future = json!({"status": {"lastScheduleTime": "2027-06-01T03:00:00Z"}});
    schedules(&bed).patch_status("jumpy", &PatchParams::default(), &Patch::Merge(&future)).await.expect("record a time ahead of the clock");

    // At the next hour the recorded time is found ahead, told, and cleared; that hour is handled
    // (skipped: the cache has no backup), and so is each one after it.
    let status = wait_status(&bed, "jumpy", "lastScheduleTime back behind the clock", |s| {
        s.last_schedule_time.as_ref().is_some_and(|t| t.0 < "2027-01-01T00:00:00Z".parse::<jiff::Timestamp>().unwrap())
    })
    .await;
    assert!(status.last_schedule_time.unwrap().0 <= clock.now());
    // Told after the status write: wait for it, then let a few more hours be handled.
    schedule_event_reasons_with(&bed, "jumpy", "LastScheduleTimeInFuture").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let told = schedule_events(&bed, "jumpy", "LastScheduleTimeInFuture").await;
    assert_eq!(told.len(), 1, "{told:#?}");
    assert!(told[0].series.is_none(), "told more than once: {:?}", told[0].series);
    let note = told[0].note.clone().unwrap_or_default();
    // No run yet: cleared, and the latest hour due handled as after an outage.
    assert!(note.contains("2027-06-01T03:00:00Z") && note.contains("cleared"), "{note}");
}

/// When clocks fall back, an hourly schedule runs in the repeated hour too, but target names use
/// local time: the two 01:30 runs got one target, the second's copy was refused as existing, it
/// stalled in flight and every later time was skipped. The second occurrence now gets
/// `-utc<hhmm>` appended (issue 31, step 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hourly_schedule_runs_both_repeated_hours_when_clocks_fall_back() {
    // Copies complete at once, so no run holds back the next.
    let mut bed = Bed::with_options(0.1, 0.1, Default::default()).await;
    seed_automatic(&bed, "dst-rg", "2026-11-01T04:45:00Z");
    create_schedule(
        &bed,
        "dst",
        json!({"schedule": "30 * * * *", "timeZone": "America/New_York", "source": {"replicationGroupId": "dst-rg"}, "template": {}}),
    )
    .await;
    // The documented daily name on a twice-daily schedule: the second run of each day would
    // collide with the first. Nothing refused it; now the operator does.
    create_schedule(
        &bed,
        "twice",
        json!({"schedule": "0 2,14 * * *", "source": {"replicationGroupId": "dst-rg"}, "template": {"targetSnapshotNameTemplate": "{cache}-{YYYY}{MM}{DD}"}}),
    )
    .await;
    // America/New_York falls back at 06:00Z: 01:30 local is 05:30Z (EDT) and 06:30Z (EST). A
    // virtual hour is twelve real seconds.
    let clock = crate::schedule::TestClock::new("2026-11-01T04:50:00Z", 300.0);
    bed.start_operator_env(&[], &clock.env());
    // A new backup before each later run, so each has something to export.
    clock.sleep_until("2026-11-01T06:00:00Z").await;
    seed_automatic(&bed, "dst-rg", "2026-11-01T06:00:00Z");
    clock.sleep_until("2026-11-01T07:00:00Z").await;
    seed_automatic(&bed, "dst-rg", "2026-11-01T07:00:00Z");

    clock.sleep_until("2026-11-01T07:35:00Z").await;
    let status = wait_status(&bed, "dst", "the 02:30 EST time handled", |s| {
        s.last_schedule_time.as_ref().is_some_and(|t| t.0 >= "2026-11-01T07:30:00Z".parse::<jiff::Timestamp>().unwrap())
    })
    .await;
    let mut targets = Vec::new();
    for at in ["2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z", "2026-11-01T07:30:00Z"] {
        let run = ecx::schedule::names::run_name("dst", at.parse().unwrap());
        let ready = bed.wait_ready(&run).await;
        targets.push(ready.spec.target_snapshot_name.clone());
    }
    assert_eq!(targets, ["dst-20261101-0130", "dst-20261101-0130-utc0630", "dst-20261101-0230"], "status {status:?}");
    // Exactly one copy per run, none refused as already existing.
    let copies = bed.emulator.calls("CopySnapshot");
    let mut copied: Vec<&str> = copies.iter().filter_map(|c| c["params"]["TargetSnapshotName"].as_str()).collect();
    copied.sort();
    assert_eq!(copied, targets, "{copies:#?}");
    let reasons = schedule_event_reasons(&bed, "dst").await;
    assert!(!reasons.iter().any(|(_, r)| r == "PreviousRunInFlight"), "{reasons:?}");

    let refused = wait_condition(&bed, "twice", "Stalled", || None).await;
    assert_eq!(refused.reason, "InvalidSpec");
    assert!(refused.message.contains("lacks {hh}: the schedule runs more than once a day"), "{}", refused.message);
    assert!(runs_of(&bed, "twice").await.is_empty());
}

/// A run stalled by an edit of its spec keeps its intermediate snapshot (reverting the edit needs
/// it); when retention deletes the run, nothing can revive it, so the snapshot is deleted first,
/// once, and then the run (issue 31, step 6: this had no end-to-end test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deleting_a_run_stalled_by_a_spec_edit_deletes_its_intermediate_snapshot() {
    // Copies (and snapshots) take three seconds: the edit lands while the run's copy is in flight.
    let mut bed = Bed::with_options(3.0, 1.0, Default::default()).await;
    bed.emulator.ctl("POST", "/caches", Some(json!({"cache_cluster_id": "edited", "region": REGION})));
    bed.start_operator(&[]);
    create_schedule(
        &bed,
        "edited",
        json!({"schedule": "0 3 1 1 *", "source": {"cacheClusterId": "edited", "mode": "CreateSnapshot"}, "template": {}, "retention": {"keepLast": 1}}),
    )
    .await;
    run_now(&bed, "edited", "1").await;
    let first = ecx::schedule::names::run_now_name("edited", "1", 1);
    let accepted = bed.wait_for(&first, "accepted", 60, |o| o.status.as_ref().is_some_and(|s| s.copy_accepted_at.is_some())).await;
    let snapshot = accepted.spec.source_snapshot_name.clone();
    // The spec no longer matches the one requested (as an edit admitted without CEL would do).
    let edit = json!({"status": {"specHash": "edited-since"}});
    bed.cluster.exports().patch_status(&first, &PatchParams::default(), &Patch::Merge(&edit)).await.expect("mark the spec edited");
    bed.wait_stalled(&first, "SpecChanged").await;
    assert!(
        !bed.emulator.calls("DeleteSnapshot").iter().any(|c| c["params"]["SnapshotName"] == snapshot.as_str()),
        "a run stalled for its spec keeps its snapshot"
    );

    // A newer run completes: retention (keepLast 1) deletes the stalled run, its snapshot first.
    run_now(&bed, "edited", "2").await;
    let second = ecx::schedule::names::run_now_name("edited", "2", 2);
    bed.wait_ready(&second).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while bed.cluster.exports().get_opt(&first).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "retention kept {first}; log:\n{}", bed.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deleted = bed.emulator.calls("DeleteSnapshot").into_iter().filter(|c| c["params"]["SnapshotName"] == snapshot.as_str()).count();
    assert_eq!(deleted, 1, "the stalled run's intermediate snapshot is deleted once, with the run");
    let told = schedule_events(&bed, "edited", "IntermediateSnapshotDeleted").await;
    let notes: Vec<String> = told.iter().filter_map(|e| e.note.clone()).collect();
    assert!(notes.iter().any(|n| n.contains(&snapshot) && n.contains("retention deleted it")), "{notes:?}");
}
