//! SIGTERM ends the operator within seconds in every shipped configuration: both CRDs or only
//! one of them installed (an upgrade that skipped the CRDs, an install of what one uses), with
//! leader election on and off, watching a list of namespaces and all of them. With leader
//! election the Lease is released on the way out, so a standby takes over at once instead of
//! waiting a lease duration. A controller whose CRD is missing says so once and starts when the
//! CRD is installed, without a restart.
//!
//! Both tests remove CRDs, which every test on a shared real API server uses: there they run
//! only alone (`E2E_EXCLUSIVE=1`, as `.ci/run` runs them).

use crate::harness::*;
use crate::readiness::{readyz_answer, start, wait_for_log, wait_ready, Replica};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition as Crd;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

/// The longest a SIGTERM may take to end the operator (Kubernetes waits 30 s, then kills).
const EXIT_WITHIN: Duration = Duration::from_secs(5);
const EXPORT_CRD: &str = "snapshotexports.elasticache-export.io";
const SCHEDULE_CRD: &str = "snapshotexportschedules.elasticache-export.io";

/// SIGTERM `replica` and how long it took to exit (panics after 30 s: it is then killed).
fn terminate_timed(replica: &mut Replica) -> Duration {
    let started = Instant::now();
    Command::new("kill").args(["-TERM", &replica.0.id().to_string()]).status().expect("kill -TERM");
    while started.elapsed() < Duration::from_secs(30) {
        if replica.0.try_wait().expect("the operator's exit status").is_some() {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

/// Remove the CRD `name` and wait until its resource is no longer served. On a real server, the
/// objects of that kind lose their finalizers first (no operator would remove them, and the
/// CRD's deletion waits for its objects).
async fn remove_crd(client: &Client, name: &str) {
    if name == EXPORT_CRD {
        // Untyped: another test leaves objects the typed form cannot decode (on purpose).
        let resource = ApiResource::erase::<ecx::api::SnapshotExport>(&());
        let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        for obj in all.list(&ListParams::default()).await.expect("list SnapshotExports") {
            if !obj.finalizers().is_empty() {
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &obj.namespace().unwrap_or_default(), &resource);
                let patch = json!({"metadata": {"finalizers": null}});
                let _ = api.patch(&obj.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await;
            }
        }
    }
    let crds: Api<Crd> = Api::all(client.clone());
    crds.delete(name, &Default::default()).await.unwrap_or_else(|e| panic!("delete the CRD {name}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while crds.get_opt(name).await.expect("get the CRD").is_some() {
        assert!(Instant::now() < deadline, "the CRD {name} was not deleted within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_operator_within_five_seconds_in_every_configuration() {
    let bed = Bed::without_operator().await;
    if !bed.cluster.may_change_crds() {
        skip_on_real_server("sigterm_ends_the_operator_within_five_seconds_in_every_configuration", "removing a CRD");
        return;
    }
    let client = bed.cluster.client.clone();
    let ns = bed.cluster.namespace.clone();
    let mut n = 0;
    let mut slow = Vec::new();
    for missing in [None, Some(SCHEDULE_CRD), Some(EXPORT_CRD)] {
        install_crds(&client).await;
        if let Some(crd) = missing {
            remove_crd(&client, crd).await;
        }
        for leader_elect in [false, true] {
            for all_namespaces in [false, true] {
                let mut args: Vec<&str> = Vec::new();
                if !all_namespaces {
                    args.extend(["--namespaces", ns.as_str()]);
                }
                if leader_elect {
                    args.extend(["--leader-elect", "--lease-namespace", ns.as_str(), "--lease-duration-seconds", "15"]);
                }
                let what = format!(
                    "missing CRD {}, leader election {}, {}",
                    missing.unwrap_or("none"),
                    if leader_elect { "on" } else { "off" },
                    if all_namespaces { "all namespaces" } else { "one namespace" }
                );
                let (child, log) = start(&bed, 100 + n, &args);
                n += 1;
                let mut replica = Replica(child);
                wait_ready(&what, &log).await;
                if leader_elect {
                    // Ready comes before the lease (a standby is ready): wait for leadership.
                    wait_for_log(&log, "acquired leadership", &format!("{what} (was the lease released by the previous run?)")).await;
                }
                if let Some(crd) = missing {
                    // The controller that needs the CRD says so (it follows the first check).
                    wait_for_log(&log, &format!("{crd} is not installed"), &what).await;
                    // Ready (a leader once its caches are synced), and the answer names the CRD.
                    wait_ready(&what, &log).await;
                    let (_, text) = readyz_answer(&log).expect("/readyz answers");
                    assert!(text.contains(crd), "{what}: /readyz names the missing CRD: {text}");
                }
                let took = terminate_timed(&mut replica);
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                eprintln!("{what}: exited {took:?} after SIGTERM");
                if took > EXIT_WITHIN {
                    slow.push(format!("{what}: still running {took:?} after SIGTERM; log:\n{text}"));
                    continue;
                }
                // Nothing was in flight: the exit did not wait for the drain's end.
                assert!(!text.contains("at the end of the drain"), "{what}: the shutdown waited out the drain; log:\n{text}");
                if leader_elect {
                    assert!(text.contains("released the lease"), "{what}: the lease was not released; log:\n{text}");
                    let holder = lease_holder(&client, &ns, "elasticache-export-operator").await;
                    assert_eq!(holder, None, "{what}: the Lease still names a holder after the exit");
                }
            }
        }
    }
    install_crds(&client).await;
    // SIGTERM as the lease is acquired, while the controllers start: a controller started after
    // the stop, or stopped before its first listing, was held by kube-runtime until the drain
    // ended (seen once on the real API server).
    for _ in 0..3 {
        let args = ["--namespaces", ns.as_str(), "--leader-elect", "--lease-namespace", ns.as_str(), "--lease-duration-seconds", "15"];
        let (child, log) = start(&bed, 100 + n, &args);
        n += 1;
        let mut replica = Replica(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&log).unwrap_or_default().contains("acquired leadership") {
            assert!(Instant::now() < deadline, "never acquired the lease");
            std::thread::sleep(Duration::from_millis(2));
        }
        let took = terminate_timed(&mut replica);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        eprintln!("SIGTERM as the lease is acquired: exited {took:?} after SIGTERM");
        if took > EXIT_WITHIN || text.contains("at the end of the drain") {
            slow.push(format!("SIGTERM as the lease is acquired: {took:?}, waited out the drain; log:\n{text}"));
        }
    }
    assert!(slow.is_empty(), "SIGTERM did not end the operator within {EXIT_WITHIN:?}:\n{}", slow.join("\n\n"));
}

/// The schedule controller of an operator started without the schedule CRD reports it once
/// (log, metric, `/readyz`), keeps checking with backoff, and starts once the CRD is installed:
/// a schedule created then is reconciled by the same process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_idle_for_its_crd_starts_once_it_is_installed() {
    let mut bed = Bed::without_operator().await;
    if !bed.cluster.may_change_crds() {
        skip_on_real_server("a_controller_idle_for_its_crd_starts_once_it_is_installed", "removing a CRD");
        return;
    }
    let client = bed.cluster.client.clone();
    remove_crd(&client, SCHEDULE_CRD).await;
    bed.start_operator(&[]);
    let log = bed.operators[0].log.clone();
    let missing = format!("{SCHEDULE_CRD} is not installed");
    let waiting = format!("ecx_controller_waiting_for_crd{{controller=\"SnapshotExportSchedule\",crd=\"{SCHEDULE_CRD}\"}} 1");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !bed.log_text().contains(&missing) || !bed.metrics().contains(&waiting) {
        assert!(Instant::now() < deadline, "the missing CRD was not reported; log:\n{}", bed.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, text) = readyz_answer(&log).expect("/readyz answers");
    assert!(text.contains(SCHEDULE_CRD), "/readyz names the missing CRD: {text}");
    // Two more checks (after 2 s and 4 s) still find it missing: reported once, not per check.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(bed.log_text().matches(&missing).count(), 1, "reported once:\n{}", bed.log_text());

    install_crds(&client).await;
    crate::schedule::create_schedule(
        &bed,
        "late",
        json!({"schedule": "0 3 1 1 *", "source": {"cacheClusterId": "no-such-cluster", "mode": "CreateSnapshot"}, "template": {}}),
    )
    .await;
    let annotate = json!({"metadata": {"annotations": {ecx::api::schedule::RUN_NOW_ANNOTATION: "1"}}});
    crate::schedule::schedules(&bed).patch("late", &PatchParams::default(), &Patch::Merge(annotate)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = crate::schedule::schedules(&bed).get("late").await.unwrap();
        if s.status.is_some_and(|st| st.conditions.iter().any(|c| c.type_ == "Stalled" && c.reason == "SourceUnavailable")) {
            break;
        }
        assert!(Instant::now() < deadline, "the schedule controller did not start after the CRD was installed; log:\n{}", bed.log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(bed.log_text().contains("starting the SnapshotExportSchedule controller"), "{}", bed.log_text());
    let idle = waiting.replace("} 1", "} 0");
    assert!(bed.metrics().contains(&idle), "the metric says the controller runs: {}", bed.metrics());
    let (_, text) = readyz_answer(&log).expect("/readyz answers");
    assert!(!text.contains(SCHEDULE_CRD), "/readyz no longer names the CRD: {text}");
}
