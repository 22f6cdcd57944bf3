//! `/healthz`, `/readyz` and `/metrics`.

use crate::api::SnapshotExport;
use crate::metrics::Metrics;
use axum::{extract::State, http::StatusCode, routing::get, Router};
use kube::CustomResourceExt;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// `/readyz`: ready once every watch has listed its objects (or its controller is idle for a
/// missing CRD, which the answer names) or, with leader election, while standing by as a
/// follower (readiness does not depend on leadership).
/// The SnapshotExport controller's name, as it reports a missing CRD.
pub const EXPORTS: &str = "SnapshotExport";

#[derive(Default)]
pub struct Readiness {
    synced: AtomicBool,
    standby: AtomicBool,
    /// The (controller, CRD) pairs where a controller waits for its CRD (`crate::installed`).
    waiting_for_crds: Mutex<BTreeSet<(String, String)>>,
}

impl Readiness {
    /// Ready: synced, standing by, or without the SnapshotExport CRD (nothing to list, and the
    /// answer says so; a readiness that waits for a CRD would hold a rollout for ever).
    pub fn is_ready(&self) -> bool {
        self.synced.load(Ordering::Relaxed)
            || self.standby.load(Ordering::Relaxed)
            || self
                .waiting_for_crds
                .lock()
                .expect("readiness lock")
                .contains(&(EXPORTS.to_string(), SnapshotExport::crd_name().to_string()))
    }

    pub fn set_standby(&self, standby: bool) {
        self.standby.store(standby, Ordering::Relaxed);
    }

    /// Every watch has listed its objects.
    pub fn set_synced(&self) {
        self.synced.store(true, Ordering::Relaxed);
    }

    /// Whether `controller` waits for the CRD named `crd` to be installed.
    pub fn set_waiting_for_crd(&self, controller: &str, crd: &str, waiting: bool) {
        let mut set = self.waiting_for_crds.lock().expect("readiness lock");
        let key = (controller.to_string(), crd.to_string());
        if waiting {
            set.insert(key);
        } else {
            set.remove(&key);
        }
    }

    /// What `/readyz` says: the state, then any CRD a controller waits for.
    pub fn describe(&self) -> String {
        let state = if self.is_ready() { "ready" } else { "caches not synced" };
        let waiting = self.waiting_for_crds.lock().expect("readiness lock");
        if waiting.is_empty() {
            state.to_string()
        } else {
            let names: BTreeSet<&str> = waiting.iter().map(|(_, crd)| crd.as_str()).collect();
            let names: Vec<&str> = names.into_iter().collect();
            format!("{state}; idle until these CRDs are installed (kubectl apply -f config/crd/): {}", names.join(", "))
        }
    }
}

#[derive(Clone)]
struct Shared {
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
}

pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>, readiness: Arc<Readiness>) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(s): State<Shared>| async move {
                let code = if s.readiness.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
                (code, s.readiness.describe())
            }),
        )
        .route(
            "/metrics",
            get(|State(s): State<Shared>| async move {
                ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.encode())
            }),
        )
        .with_state(Shared { metrics, readiness });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    // The bound address, also when the port was chosen by the system (`:0`).
    tracing::info!(addr = %listener.local_addr()?, "serving /healthz, /readyz and /metrics");
    axum::serve(listener, app).await
}
