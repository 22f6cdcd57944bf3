//! The wiring that starts each controller: for `SnapshotExport` (`crate::export`), a watch per
//! namespace (or one for all), objects that cannot be decoded reported and skipped, reconciles
//! with bounded concurrency, the shared sweep, and readiness once the caches are synced.

use crate::api::SnapshotExport;
use crate::aws::SnapshotApis;
use crate::events::{EventNote, Events};
use crate::export::{reconcile, Context, ReconcileError};
use crate::http::Readiness;
use crate::installed;
use futures::{future, StreamExt};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::reflector::{self};
use kube::runtime::{predicates, watcher, Controller, Predicate, WatchStreamExt};
use kube::{Client, CustomResourceExt, ResourceExt};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tracing::{error, info, warn};

/// Run controllers for `namespaces` (empty = all namespaces) until `shutdown` resolves.
pub async fn run<A: SnapshotApis>(
    client: Client,
    ctx: Arc<Context<A>>,
    namespaces: Vec<String>,
    concurrency: u16,
    readiness: Arc<Readiness>,
    shutdown: impl future::Future<Output = ()> + Send + Sync + 'static,
) {
    let scopes: Vec<Option<String>> = if namespaces.is_empty() { vec![None] } else { namespaces.into_iter().map(Some).collect() };
    let shutdown = future::FutureExt::shared(shutdown);
    let probe: Api<SnapshotExport> = match &scopes[0] {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    if !installed::wait_until_installed(
        &probe,
        crate::http::EXPORTS,
        SnapshotExport::crd_name(),
        &readiness,
        &ctx.metrics,
        shutdown.clone(),
    )
    .await
    {
        return;
    }
    let total = scopes.len();
    // Aborted when this ends or is dropped (a shutdown that outlasts its drain drops it).
    let _sweeper = {
        let ctx = ctx.clone();
        AbortOnDrop(tokio::spawn(async move { ctx.sweep.run(&ctx.aws, |obj, uid| ctx.is_live(obj, uid)).await }))
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
            let scope_listed = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let objects = watcher(dynamic, watcher::Config::default())
                .default_backoff()
                .filter_map({
                    let events = ctx.events.clone();
                    move |event| future::ready(decode_event(event, &events))
                })
                .reflect(writer)
                .inspect({
                    let (ctx, store, scope, mut listed) = (ctx.clone(), reader.clone(), scope.clone(), false);
                    let scope_listed = scope_listed.clone();
                    move |event| match event {
                        // A deleted object is forgotten at once (its UID is never reconciled again).
                        Ok(watcher::Event::Delete(obj)) => ctx.forget(&obj.uid().unwrap_or_default()),
                        // The cache holds every object once the first listing is done (`reflect`
                        // applied it before this sees it). Readiness is set here, not by a task
                        // awaiting `Store::wait_until_ready`: the controller awaits that too, and
                        // kube-runtime's ready signal wakes only the last task that polled it, so
                        // a second waiter could wait forever (it did: /readyz stayed 503).
                        Ok(watcher::Event::InitDone) if !listed => {
                            listed = true;
                            scope_listed.store(true, Ordering::SeqCst);
                            ctx.watch_store(scope.clone(), store.clone());
                            if synced.fetch_add(1, Ordering::SeqCst) + 1 == total {
                                readiness.set_synced();
                                info!("caches synced");
                            }
                        }
                        _ => {}
                    }
                })
                .applied_objects()
                // Our own status writes do not change generation or finalizers: no reconcile storm.
                .predicate_filter(predicates::generation.combine(predicates::finalizers), Default::default());
            ctx.metrics.watch_store(reader.clone());
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
            let controller = Controller::for_stream(objects, reader)
                .with_config(ControllerConfig::default().concurrency(concurrency))
                .reconcile_on(changed)
                .graceful_shutdown_on(shutdown.clone())
                .run(timed_reconcile, error_policy, ctx)
                .for_each(|result| async move {
                    match result {
                        Ok((obj, _)) => tracing::trace!(object = %obj.name, "reconciled"),
                        Err(kube::runtime::controller::Error::ReconcilerFailed(err, obj)) => {
                            warn!(object = %obj.name, error = %err, "reconcile failed; retrying with backoff")
                        }
                        Err(err) => warn!(error = %err, "controller error"),
                    }
                });
            installed::until_shutdown(controller, shutdown, &scope_listed).await;
        }
    });
    future::join_all(runs).await;
}

/// A spawned task that ends with its owner.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn timed_reconcile<A: SnapshotApis>(obj: Arc<SnapshotExport>, ctx: Arc<Context<A>>) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let result = reconcile(obj, ctx.clone()).await;
    ctx.metrics.reconcile_seconds.observe(started.elapsed().as_secs_f64());
    let label = if result.is_ok() { "ok" } else { "error" };
    ctx.metrics.reconciles.get_or_create(&crate::metrics::ResultLabels { result: label.into() }).inc();
    result
}

fn error_policy<A: SnapshotApis>(obj: Arc<SnapshotExport>, err: &ReconcileError, ctx: Arc<Context<A>>) -> Action {
    let delay = ctx.error_delay(&obj.uid().unwrap_or_default());
    warn!(object = %obj.name_any(), error = %err, retry_in = ?delay, "will retry");
    Action::requeue(delay)
}

/// The metadata the cache keeps of each object: what reconciles read (identity, generation,
/// finalizers, deletion) and what writes are guarded by (resourceVersion). The cache holds every
/// object for the operator's lifetime, and labels, owner references, managedFields and
/// annotations (a `kubectl apply` annotation holds the whole object again) are never read, but
/// for the ones about the source (an automatic backup; one to wait for). Status writes keep the
/// stored metadata whatever we send (the status subresource takes only status).
fn cached_metadata(full: ObjectMeta) -> ObjectMeta {
    let annotations = full.annotations.map(|all| {
        let read = [crate::api::AUTOMATIC_SOURCE_ANNOTATION, crate::api::WAIT_FOR_SOURCE_ANNOTATION];
        all.into_iter().filter(|(k, _)| read.contains(&k.as_str())).collect::<std::collections::BTreeMap<_, _>>()
    });
    let annotations = annotations.filter(|kept| !kept.is_empty());
    ObjectMeta {
        annotations,
        name: full.name,
        namespace: full.namespace,
        uid: full.uid,
        resource_version: full.resource_version,
        generation: full.generation,
        deletion_timestamp: full.deletion_timestamp,
        finalizers: full.finalizers,
        ..ObjectMeta::default()
    }
}

/// A `SnapshotExport` from its untyped form: spec and status decoded in place (no round trip
/// through a JSON value of the whole object), metadata slimmed for the cache.
fn decode_export(mut obj: DynamicObject) -> serde_json::Result<SnapshotExport> {
    let spec = serde_json::from_value(obj.data.get_mut("spec").map(serde_json::Value::take).unwrap_or_default())?;
    let status = match obj.data.get_mut("status").map(serde_json::Value::take) {
        None | Some(serde_json::Value::Null) => None,
        Some(status) => Some(serde_json::from_value(status)?),
    };
    Ok(SnapshotExport { metadata: cached_metadata(obj.metadata), spec, status })
}

/// Decode watch events into `SnapshotExport`s. An object that does not decode (hand-edited, or
/// written under another schema) is logged, reported by a Warning Event on it (where its owner
/// looks), and skipped; it must not stop the others.
fn decode_event(
    event: watcher::Result<watcher::Event<DynamicObject>>,
    events: &Events,
) -> Option<watcher::Result<watcher::Event<SnapshotExport>>> {
    use watcher::Event::*;
    let deleted = matches!(event, Ok(Delete(_)));
    let decode = |obj: DynamicObject| -> Option<SnapshotExport> {
        let name = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
        let regarding = undecodable_ref(&obj);
        match decode_export(obj) {
            Ok(decoded) => Some(decoded),
            Err(err) => {
                error!(object = %name, error = %err, "cannot decode this SnapshotExport; skipping it (fix or delete the object)");
                if !deleted {
                    let note = EventNote { warning: true, reason: "UndecodableObject".into(), note: undecodable_note(&err) };
                    let events = events.clone();
                    // Published beside the watch: a slow API server must not hold the stream.
                    tokio::spawn(async move { events.publish_about(&regarding, &note).await });
                }
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

/// What the Event on an undecodable object says.
fn undecodable_note(err: &serde_json::Error) -> String {
    format!("The operator cannot decode this SnapshotExport ({err}), so it skips it: fix or delete the object.")
}

/// A reference to an object that did not decode, for its Event.
fn undecodable_ref(obj: &DynamicObject) -> ObjectReference {
    ObjectReference {
        api_version: obj.types.as_ref().map(|t| t.api_version.clone()),
        kind: obj.types.as_ref().map(|t| t.kind.clone()),
        name: obj.metadata.name.clone(),
        namespace: obj.metadata.namespace.clone(),
        uid: obj.metadata.uid.clone(),
        resource_version: obj.metadata.resource_version.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dynamic(value: serde_json::Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_cache_keeps_what_reconciles_read_and_drops_the_rest() {
        let obj = dynamic(json!({
            "apiVersion": "elasticache-export.io/v1alpha1", "kind": "SnapshotExport",
            "metadata": {
                "name": "a", "namespace": "ns", "uid": "u1", "resourceVersion": "7", "generation": 2,
                "finalizers": ["x"], "deletionTimestamp": "2026-11-23T10:00:00Z",
                "labels": {"team": "data"},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"spec\":{}}"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
                "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u0"}]
            },
            "spec": {"sourceSnapshotName": "src", "targetSnapshotName": "dst"},
            "status": {"phase": "Copying"}
        }));
        let decoded = decode_export(obj).unwrap();
        let md = &decoded.metadata;
        assert_eq!((md.name.as_deref(), md.namespace.as_deref(), md.uid.as_deref()), (Some("a"), Some("ns"), Some("u1")));
        assert_eq!((md.resource_version.as_deref(), md.generation), (Some("7"), Some(2)));
        assert_eq!(md.finalizers, Some(vec!["x".to_string()]));
        assert!(md.deletion_timestamp.is_some());
        assert!(md.labels.is_none() && md.annotations.is_none() && md.managed_fields.is_none() && md.owner_references.is_none());
        assert_eq!(decoded.spec.target_snapshot_name, "dst");
        assert_eq!(decoded.status.unwrap().phase, Some(crate::api::Phase::Copying));
    }

    #[test]
    fn the_cache_keeps_the_source_annotations_alone() {
        let obj = dynamic(json!({
            "apiVersion": "elasticache-export.io/v1alpha1", "kind": "SnapshotExport",
            "metadata": {"name": "a", "namespace": "ns", "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{\"spec\":{}}",
                "elasticache-export.io/automatic-source": "true",
                "elasticache-export.io/wait-for-source": "true",
            }},
            "spec": {"sourceSnapshotName": "automatic.rg-2026-11-23-02-00", "targetSnapshotName": "dst"},
        }));
        let decoded = decode_export(obj).unwrap();
        let kept: Vec<&String> = decoded.metadata.annotations.iter().flat_map(|a| a.keys()).collect();
        assert_eq!(kept, ["elasticache-export.io/automatic-source", "elasticache-export.io/wait-for-source"]);
        assert!(decoded.has_automatic_source() && decoded.waits_for_source());
        let plain = dynamic(json!({
            "apiVersion": "elasticache-export.io/v1alpha1", "kind": "SnapshotExport",
            "metadata": {"name": "a", "namespace": "ns", "annotations": {"note": "x"}},
            "spec": {"sourceSnapshotName": "s", "targetSnapshotName": "dst"},
        }));
        assert_eq!(decode_export(plain).unwrap().metadata.annotations, None);
    }

    #[test]
    fn an_object_that_does_not_decode_is_an_error_not_a_default() {
        let meta = json!({"name": "a", "namespace": "ns"});
        let no_spec = dynamic(json!({"apiVersion": "elasticache-export.io/v1alpha1", "kind": "SnapshotExport", "metadata": meta}));
        assert!(decode_export(no_spec).is_err());
        let bad_status = dynamic(json!({
            "apiVersion": "elasticache-export.io/v1alpha1", "kind": "SnapshotExport", "metadata": meta,
            "spec": {"sourceSnapshotName": "src", "targetSnapshotName": "dst"}, "status": {"phase": 7}
        }));
        assert!(decode_export(bad_status).is_err());
        let no_status = dynamic(json!({
            "apiVersion": "elasticache-export.io/v1alpha1", "kind": "SnapshotExport", "metadata": meta,
            "spec": {"sourceSnapshotName": "src", "targetSnapshotName": "dst"}
        }));
        assert!(decode_export(no_status).unwrap().status.is_none());
    }
}
