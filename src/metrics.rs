//! Prometheus metrics, served on `/metrics`.

use crate::api::{Phase, SnapshotExport};
use kube::runtime::reflector::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Mutex;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub operation: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: String,
}

/// One schedule. `schedule_namespace`, not `namespace`: Prometheus sets `namespace` to the
/// operator's own when it scrapes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScheduleLabels {
    pub schedule_namespace: String,
    pub schedule: String,
}

/// One schedule's runs by outcome: `Started`, `Succeeded`, `Failed`, or a skip reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScheduleOutcomeLabels {
    pub schedule_namespace: String,
    pub schedule: String,
    pub outcome: String,
}

/// A controller and the CRD it waits for (`crate::installed`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CrdLabels {
    pub controller: String,
    pub crd: String,
}

pub struct Metrics {
    registry: Registry,
    /// 1 while a controller is idle because its CRD is not installed.
    pub controller_waiting_for_crd: Family<CrdLabels, Gauge>,
    /// The objects the shared snapshot sweep follows (0 once it is idle).
    pub sweep_followed: Gauge,
    /// When each schedule's last successful run completed (Unix seconds).
    pub schedule_last_success: Family<ScheduleLabels, Gauge>,
    /// Scheduled times by outcome.
    pub schedule_runs: Family<ScheduleOutcomeLabels, Counter>,
    /// Seconds between a schedule's next two scheduled times (alerts compare staleness to it).
    pub schedule_interval: Family<ScheduleLabels, Gauge>,
    pub reconciles: Family<ResultLabels, Counter>,
    pub reconcile_seconds: Histogram,
    pub aws_calls: Family<CallLabels, Counter>,
    pub warning_events: Family<ReasonLabels, Counter>,
    pub exports: Family<PhaseLabels, Gauge>,
    /// The watched objects, counted by phase when metrics are scraped.
    stores: Mutex<Vec<Store<SnapshotExport>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ecx");
        let reconciles = Family::<ResultLabels, Counter>::default();
        let reconcile_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register("reconciles", "Reconciles by result (ok, error)", reconciles.clone());
        registry.register("reconcile_duration_seconds", "Duration of one reconcile", reconcile_seconds.clone());
        let aws_calls = Family::<CallLabels, Counter>::default();
        registry.register("aws_calls", "AWS calls by operation and outcome (ok, refused, transient)", aws_calls.clone());
        let warning_events = Family::<ReasonLabels, Counter>::default();
        registry.register("warning_events", "Warning Events published, by reason", warning_events.clone());
        let exports = Family::<PhaseLabels, Gauge>::default();
        registry.register("exports", "SnapshotExports watched, by phase", exports.clone());
        let schedule_last_success = Family::<ScheduleLabels, Gauge>::default();
        registry.register(
            "schedule_last_success_timestamp_seconds",
            "When each SnapshotExportSchedule's last successful run completed (Unix seconds)",
            schedule_last_success.clone(),
        );
        let schedule_runs = Family::<ScheduleOutcomeLabels, Counter>::default();
        registry.register(
            "schedule_runs",
            "SnapshotExportSchedule runs by outcome (Started, Succeeded, Failed, or the skip reason)",
            schedule_runs.clone(),
        );
        let schedule_interval = Family::<ScheduleLabels, Gauge>::default();
        registry.register(
            "schedule_interval_seconds",
            "Seconds between a SnapshotExportSchedule's next two scheduled times",
            schedule_interval.clone(),
        );
        let controller_waiting_for_crd = Family::<CrdLabels, Gauge>::default();
        registry.register(
            "controller_waiting_for_crd",
            "1 while a controller is idle because the CustomResourceDefinition it needs is not installed",
            controller_waiting_for_crd.clone(),
        );
        let sweep_followed = Gauge::default();
        registry.register(
            "sweep_followed_objects",
            "SnapshotExports whose copy or export the shared snapshot sweep follows (0 once it is idle)",
            sweep_followed.clone(),
        );
        Self {
            registry,
            controller_waiting_for_crd,
            sweep_followed,
            schedule_last_success,
            schedule_runs,
            schedule_interval,
            reconciles,
            reconcile_seconds,
            aws_calls,
            warning_events,
            exports,
            stores: Mutex::new(Vec::new()),
        }
    }
}

impl Metrics {
    /// Count one AWS call (CopySnapshot among them) by operation and outcome (`ok`, `refused`
    /// or `transient`).
    pub fn aws_call(&self, operation: &str, outcome: &str) {
        self.aws_calls.get_or_create(&CallLabels { operation: operation.into(), outcome: outcome.into() }).inc();
    }

    /// Count the objects of `store` by phase at each scrape.
    pub fn watch_store(&self, store: Store<SnapshotExport>) {
        self.stores.lock().expect("metrics lock").push(store);
    }

    fn count_phases(&self) {
        let mut counts: std::collections::BTreeMap<&'static str, i64> =
            ["None", "Pending", "Copying", "Exporting", "Completed", "Failed"].iter().map(|p| (*p, 0)).collect();
        for store in self.stores.lock().expect("metrics lock").iter() {
            for obj in store.state() {
                let phase = match obj.status.as_ref().and_then(|s| s.phase) {
                    None => "None",
                    Some(Phase::Pending) => "Pending",
                    Some(Phase::Copying) => "Copying",
                    Some(Phase::Exporting) => "Exporting",
                    Some(Phase::Completed) => "Completed",
                    Some(Phase::Failed) => "Failed",
                };
                *counts.entry(phase).or_default() += 1;
            }
        }
        for (phase, n) in counts {
            self.exports.get_or_create(&PhaseLabels { phase: phase.into() }).set(n);
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        self.count_phases();
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("metrics encode to a String");
        out
    }
}
