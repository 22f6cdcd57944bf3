//! Controller wiring: a watch per namespace (or one for all), objects that cannot be decoded
//! reported and skipped, reconciles with bounded concurrency, and the health/metrics server.

use crate::api::SnapshotExport;
use crate::aws::SnapshotApi;
use crate::reconcile::{reconcile, Context, ReconcileError};
use futures::{future, StreamExt};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::reflector::{self};
use kube::runtime::{predicates, watcher, Controller, Predicate, WatchStreamExt};
use kube::{Client, ResourceExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tracing::{error, info, warn};

/// `/readyz`: ready once every watch has listed its objects or, with leader election, while
/// standing by as a follower (readiness does not depend on leadership).
#[derive(Default)]
pub struct Readiness {
    synced: AtomicBool,
    standby: AtomicBool,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.synced.load(Ordering::Relaxed) || self.standby.load(Ordering::Relaxed)
    }

    pub fn set_standby(&self, standby: bool) {
        self.standby.store(standby, Ordering::Relaxed);
    }
}

/// Run controllers for `namespaces` (empty = all namespaces) until `shutdown` resolves.
pub async fn run<A: SnapshotApi>(
    client: Client,
    ctx: Arc<Context<A>>,
    namespaces: Vec<String>,
    concurrency: u16,
    readiness: Arc<Readiness>,
    shutdown: impl future::Future<Output = ()> + Send + Sync + 'static,
) {
    let scopes: Vec<Option<String>> = if namespaces.is_empty() { vec![None] } else { namespaces.into_iter().map(Some).collect() };
    let shutdown = future::FutureExt::shared(shutdown);
    let total = scopes.len();
    let sweeper = {
        let ctx = ctx.clone();
        tokio::spawn(async move { ctx.sweep.run(&ctx.aws).await })
    };
    let synced = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let runs = scopes.into_iter().map(|scope| {
        let (ctx, client, shutdown, readiness, synced) = (ctx.clone(), client.clone(), shutdown.clone(), readiness.clone(), synced.clone());
        async move {
            let resource = ApiResource::erase::<SnapshotExport>(&());
            let dynamic: Api<DynamicObject> = match &scope {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                None => Api::all_with(client.clone(), &resource),
            };
            let (reader, writer) = reflector::store();
            let objects = watcher(dynamic, watcher::Config::default())
                .default_backoff()
                .filter_map(|event| future::ready(decode_event(event)))
                .reflect(writer)
                .applied_objects()
                // Our own status writes do not change generation or finalizers: no reconcile storm.
                .predicate_filter(predicates::generation.combine(predicates::finalizers), Default::default());
            ctx.metrics.watch_store(reader.clone());
            let store = reader.clone();
            tokio::spawn(async move {
                if store.wait_until_ready().await.is_ok() && synced.fetch_add(1, Ordering::SeqCst) + 1 == total {
                    readiness.synced.store(true, Ordering::Relaxed);
                    info!("caches synced");
                }
            });
            info!(namespace = scope.as_deref().unwrap_or("<all>"), "watching SnapshotExports");
            // Objects whose snapshots the shared sweep saw change, in this controller's scope.
            let changed = futures::stream::unfold(ctx.sweep.subscribe(), |mut rx| async move {
                loop {
                    match rx.recv().await {
                        Ok(obj) => return Some((obj, rx)),
                        // Missed triggers are covered by each object's safety-net requeue.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    }
                }
            });
            let scope_filter = scope.clone();
            let changed =
                changed.filter(move |obj| future::ready(scope_filter.as_ref().is_none_or(|ns| obj.namespace.as_ref() == Some(ns))));
            Controller::for_stream(objects, reader)
                .with_config(ControllerConfig::default().concurrency(concurrency))
                .reconcile_on(changed)
                .graceful_shutdown_on(shutdown)
                .run(timed_reconcile, error_policy, ctx)
                .for_each(|result| async move {
                    match result {
                        Ok((obj, _)) => tracing::trace!(object = %obj.name, "reconciled"),
                        Err(kube::runtime::controller::Error::ReconcilerFailed(err, obj)) => {
                            warn!(object = %obj.name, error = %err, "reconcile failed; retrying with backoff")
                        }
                        Err(err) => warn!(error = %err, "controller error"),
                    }
                })
                .await;
        }
    });
    future::join_all(runs).await;
    sweeper.abort();
}

async fn timed_reconcile<A: SnapshotApi>(obj: Arc<SnapshotExport>, ctx: Arc<Context<A>>) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let result = reconcile(obj, ctx.clone()).await;
    ctx.metrics.reconcile_seconds.observe(started.elapsed().as_secs_f64());
    let label = if result.is_ok() { "ok" } else { "error" };
    ctx.metrics.reconciles.get_or_create(&crate::metrics::ResultLabels { result: label.into() }).inc();
    result
}

fn error_policy<A: SnapshotApi>(obj: Arc<SnapshotExport>, err: &ReconcileError, ctx: Arc<Context<A>>) -> Action {
    let delay = ctx.error_delay(&obj.uid().unwrap_or_default());
    warn!(object = %obj.name_any(), error = %err, retry_in = ?delay, "will retry");
    Action::requeue(delay)
}

/// Decode watch events into `SnapshotExport`s. An object that does not decode (hand-edited, or
/// written under another schema) is logged and skipped; it must not stop the others.
fn decode_event(event: watcher::Result<watcher::Event<DynamicObject>>) -> Option<watcher::Result<watcher::Event<SnapshotExport>>> {
    use watcher::Event::*;
    let decode = |mut obj: DynamicObject| -> Option<SnapshotExport> {
        let name = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
        // The cache keeps every object; managedFields are never read and are much of its size.
        obj.metadata.managed_fields = None;
        match serde_json::to_value(&obj).and_then(serde_json::from_value::<SnapshotExport>) {
            Ok(decoded) => Some(decoded),
            Err(err) => {
                error!(object = %name, error = %err, "cannot decode this SnapshotExport; skipping it (fix or delete the object)");
                None
            }
        }
    };
    Some(match event {
        Err(err) => Err(err),
        Ok(Apply(obj)) => Ok(Apply(decode(obj)?)),
        Ok(Delete(obj)) => Ok(Delete(decode(obj)?)),
        Ok(InitApply(obj)) => Ok(InitApply(decode(obj)?)),
        Ok(Init) => Ok(Init),
        Ok(InitDone) => Ok(InitDone),
    })
}
