//! Prometheus metrics, served on `/metrics`.

use crate::aws::{AwsError, SnapshotInfo};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

pub struct Metrics {
    registry: Registry,
    pub reconciles: Family<ResultLabels, Counter>,
    pub reconcile_seconds: Histogram,
    pub copy_snapshot_calls: Family<ResultLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ecx");
        let reconciles = Family::<ResultLabels, Counter>::default();
        let reconcile_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let copy_snapshot_calls = Family::<ResultLabels, Counter>::default();
        registry.register("reconciles", "Reconciles by result (ok, error)", reconciles.clone());
        registry.register("reconcile_duration_seconds", "Duration of one reconcile", reconcile_seconds.clone());
        registry.register(
            "copy_snapshot_calls",
            "CopySnapshot calls by outcome (accepted, refused, transient)",
            copy_snapshot_calls.clone(),
        );
        Self { registry, reconciles, reconcile_seconds, copy_snapshot_calls }
    }
}

impl Metrics {
    pub fn copy_snapshot_result(&self, result: &Result<SnapshotInfo, AwsError>) {
        let result = match result {
            Ok(_) => "accepted",
            Err(e) if e.is_transient() => "transient",
            Err(_) => "refused",
        };
        self.copy_snapshot_calls.get_or_create(&ResultLabels { result: result.into() }).inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("metrics encode to a String");
        out
    }
}
