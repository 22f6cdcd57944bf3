//! A CreateSnapshot run's recorded intent (its snapshot not taken yet) that the export policy
//! refuses, while scheduled times pass: the schedule reports the refusal, not "the previous run
//! is still in flight"; an intent older than `startingDeadlineSeconds` is dropped (its snapshot
//! never taken) and the next scheduled time runs once the policy allows it.

use crate::harness::*;
use crate::schedule::{create_schedule, runs_of, schedule_event_reasons, schedules, TestClock};
use ecx::api::schedule::{PendingSnapshot, SkipReason, SnapshotExportScheduleStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// An hourly CreateSnapshot schedule `name` whose 23:00 run's intent is recorded and its
/// snapshot not taken yet (a crash, or the policy changed since); returns the intent.
async fn schedule_with_intent(bed: &Bed, name: &str, deadline: Option<i64>) -> PendingSnapshot {
    let mut spec = json!({"schedule": "0 * * * *", "source": {"cacheClusterId": "hourly", "mode": "CreateSnapshot"}, "template": {"targetBucket": "ecx-intent"}});
    if let Some(d) = deadline {
        spec["startingDeadlineSeconds"] = Value::from(d);
    }
    let mut created = create_schedule(bed, name, spec).await;
    let scheduled: jiff::Timestamp = "2026-11-22T23:00:00Z".parse().unwrap();
    let run_name = ecx::schedule::names::run_name(name, scheduled);
    let pending = PendingSnapshot {
        run_name: run_name.clone(),
        snapshot_name: ecx::schedule::names::intermediate_snapshot_name(&created.uid().unwrap(), &run_name),
        target_snapshot_name: format!("{name}-20261122-2300"),
        scheduled_time: Time(scheduled),
    };
    created.status = Some(SnapshotExportScheduleStatus {
        last_schedule_time: Some(Time(scheduled)),
        pending_snapshot: Some(pending.clone()),
        ..Default::default()
    });
    schedules(bed).replace_status(name, &PostParams::default(), &created).await.unwrap();
    pending
}

async fn first_run(bed: &Bed, schedule: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(run) = runs_of(bed, schedule).await.into_iter().next() {
            return run.name_any();
        }
        assert!(Instant::now() < deadline, "{schedule}: no run once allowed; log:\n{}", bed.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Review finding E.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_intent_blames_the_policy_and_a_stale_one_is_dropped() {
    let mut bed = Bed::without_operator().await;
    create_bucket(&bed.s3, "ecx-intent", REGION, Access::FULL_ACL).await;
    bed.emulator.create_cache_cluster("hourly").await;
    // `kept` has no starting deadline; `stale` starts a run within 15 minutes of its time or not.
    let kept = schedule_with_intent(&bed, "kept", None).await;
    let stale = schedule_with_intent(&bed, "stale", Some(900)).await;

    // A virtual hour in nine real seconds, from 23:30 (each poke below must be reconciled
    // within 13 virtual minutes, before `stale`'s starting deadline: about 2 real seconds); no
    // export policy: every run is refused.
    let clock = TestClock::new("2026-11-22T23:30:00Z", 400.0);
    let start = |bed: &mut Bed, policy: &[&str]| {
        let n = bed.operators.len();
        let args: Vec<&str> = TEST_TIMING.iter().chain(policy).copied().collect();
        bed.operators.push(Operator::start_env(&bed.cluster, &bed.emulator, bed.dir.path(), n, &args, &clock.env()));
    };
    start(&mut bed, &[]);
    // 00:00, 01:00 and 02:00 pass while the policy refuses; a stalled schedule is looked at
    // again every few real minutes, so an annotation edit wakes each just after each time.
    for (i, at) in ["2026-11-23T00:02:00Z", "2026-11-23T01:02:00Z", "2026-11-23T02:02:00Z"].iter().enumerate() {
        clock.sleep_until(at).await;
        let poke = json!({"metadata": {"annotations": {"example.com/poke": i.to_string()}}});
        for name in ["kept", "stale"] {
            schedules(&bed).patch(name, &PatchParams::default(), &Patch::Merge(poke.clone())).await.unwrap();
        }
    }
    clock.sleep_until("2026-11-23T02:30:00Z").await;
    for (name, pending) in [("kept", &kept), ("stale", &stale)] {
        let status = schedules(&bed).get(name).await.unwrap().status.unwrap();
        let reasons = schedule_event_reasons(&bed, name).await;
        assert!(!reasons.iter().any(|(_, r)| r == "PreviousRunInFlight"), "{name}: the policy refused, not the previous run: {reasons:?}");
        assert!(reasons.iter().any(|(t, r)| t == "Warning" && r == "ExportNotAllowed"), "{name}: {reasons:?}");
        let stalled = status.conditions.iter().find(|c| c.type_ == "Stalled").expect("Stalled");
        assert_eq!((stalled.status.as_str(), stalled.reason.as_str()), ("True", "ExportNotAllowed"), "{name}: {stalled:?}");
        if name == "kept" {
            // The intent waits for the policy; the later times wait for it.
            assert_eq!(status.pending_snapshot.as_ref(), Some(pending), "{name}");
            assert_eq!(status.last_run.as_ref().and_then(|r| r.skip_reason), None, "{status:?}");
            assert_eq!(status.last_schedule_time, Some(pending.scheduled_time.clone()), "{name}: no later time handled");
            assert!(stalled.message.contains(&pending.run_name), "{name}: {}", stalled.message);
        } else {
            // Past its deadline with no snapshot taken: dropped, and the latest time is refused.
            assert_eq!(status.pending_snapshot, None, "{name}");
            assert!(reasons.iter().any(|(t, r)| t == "Warning" && r == SkipReason::MissedDeadline.as_str()), "{name}: {reasons:?}");
            assert!(stalled.message.contains("2026-11-23T02:00:00Z"), "{name}: {}", stalled.message);
        }
    }
    assert!(bed.emulator.calls("CreateSnapshot").is_empty());

    // The policy allows the runs again: `kept` carries out its intent (without a starting
    // deadline a late run still starts); `stale` runs the next scheduled time, never 23:00.
    bed.operators[0].kill();
    start(&mut bed, TEST_POLICY);
    assert_eq!(first_run(&bed, "kept").await, kept.run_name);
    let run = first_run(&bed, "stale").await;
    assert_ne!(run, stale.run_name, "the stale intent was carried out");
    let creates = bed.emulator.calls("CreateSnapshot");
    assert!(creates.iter().all(|c| c["params"]["SnapshotName"] != stale.snapshot_name.as_str()), "{creates:?}");
}
