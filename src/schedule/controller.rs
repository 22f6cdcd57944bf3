//! Wiring of the schedule controller: a watch of `SnapshotExportSchedule`s per namespace (or one
//! for all), triggered again when one of its runs (a labelled, owned `SnapshotExport`) changes,
//! and requeued by each reconcile at the next scheduled time.

use super::reconcile::{reconcile, ScheduleContext, ScheduleError};
use crate::api::schedule::{SnapshotExportSchedule, SCHEDULE_LABEL};
use crate::api::SnapshotExport;
use crate::http::Readiness;
use crate::installed;
use futures::{future, StreamExt};
use kube::api::Api;
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{predicates, watcher, Controller, Predicate, WatchStreamExt};
use kube::{Client, CustomResourceExt, ResourceExt};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// The schedules' shared context on the operator's clients (its test clock from the
/// environment, see `clock.rs`). `backoff`: the first and the longest wait after a failure
/// (`--error-backoff-min-seconds`, `--error-backoff-max-seconds`, as for exports).
pub fn context(
    client: Client,
    aws: crate::aws::SdkSnapshots,
    events: crate::events::Events,
    metrics: Arc<crate::metrics::Metrics>,
    policy: Arc<crate::safety::policy_file::PolicySource>,
    backoff: (Duration, Duration),
) -> Result<Arc<ScheduleContext>, String> {
    Ok(Arc::new(ScheduleContext {
        client,
        aws,
        events,
        metrics,
        looks: Default::default(),
        policy,
        clock: super::clock::Clock::from_env()?,
        safety_requeue: Duration::from_secs(300),
        errors: crate::backoff::Backoff::new(backoff.0, backoff.1),
        cleanup: crate::backoff::RetryGate::new(backoff.0, backoff.1),
        deleted_intermediates: Default::default(),
    }))
}

/// Run the schedule controllers for `namespaces` (empty = all) until `shutdown` resolves.
pub async fn run(
    client: Client,
    ctx: Arc<ScheduleContext>,
    namespaces: Vec<String>,
    readiness: Arc<Readiness>,
    shutdown: impl future::Future<Output = ()> + Send + Sync + 'static,
) {
    let scopes: Vec<Option<String>> = if namespaces.is_empty() { vec![None] } else { namespaces.into_iter().map(Some).collect() };
    let shutdown = future::FutureExt::shared(shutdown);
    // Schedules need their own CRD, and the SnapshotExport one for the runs they create.
    let (schedules, runs): (Api<SnapshotExportSchedule>, Api<SnapshotExport>) = match &scopes[0] {
        Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client.clone(), ns)),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let (controller, metrics) = ("SnapshotExportSchedule", &ctx.metrics);
    if !installed::wait_until_installed(&schedules, controller, SnapshotExportSchedule::crd_name(), &readiness, metrics, shutdown.clone())
        .await
        || !installed::wait_until_installed(&runs, controller, SnapshotExport::crd_name(), &readiness, metrics, shutdown.clone()).await
    {
        return;
    }
    let runs = scopes.into_iter().map(|scope| {
        let (client, ctx, shutdown) = (client.clone(), ctx.clone(), shutdown.clone());
        async move {
            let (schedules, runs): (Api<SnapshotExportSchedule>, Api<SnapshotExport>) = match &scope {
                Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client.clone(), ns)),
                None => (Api::all(client.clone()), Api::all(client.clone())),
            };
            let (reader, writer) = reflector::store();
            let listed = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let objects = watcher(schedules, watcher::Config::default())
                .default_backoff()
                .reflect(writer)
                .inspect({
                    let listed = listed.clone();
                    move |event| {
                        if matches!(event, Ok(watcher::Event::InitDone)) {
                            listed.store(true, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                })
                .applied_objects()
                // Our status writes change neither: a spec edit or a run-now annotation does.
                .predicate_filter(predicates::generation.combine(predicates::annotations), Default::default());
            // A run's status change wakes its schedule (retention, last success, conditions).
            let run_changes =
                watcher(runs, watcher::Config::default().labels(SCHEDULE_LABEL)).default_backoff().touched_objects().filter_map(|run| {
                    future::ready(run.ok().and_then(|run: SnapshotExport| {
                        let owner = run.owner_references().iter().find(|o| o.kind == "SnapshotExportSchedule")?.name.clone();
                        Some(ObjectRef::<SnapshotExportSchedule>::new(&owner).within(&run.namespace().unwrap_or_default()))
                    }))
                });
            info!(namespace = scope.as_deref().unwrap_or("<all>"), "watching SnapshotExportSchedules");
            let controller = Controller::for_stream(objects, reader)
                .with_config(ControllerConfig::default().concurrency(4))
                .reconcile_on(run_changes)
                .graceful_shutdown_on(shutdown.clone())
                .run(reconcile_counted, error_policy, ctx)
                .for_each(|result| async move {
                    if let Err(err) = result {
                        warn!(error = %err, "schedule reconcile failed; retrying");
                    }
                });
            installed::until_shutdown(controller, shutdown, &listed).await;
        }
    });
    future::join_all(runs).await;
}

/// A reconcile that succeeds starts the schedule's backoff over.
async fn reconcile_counted(obj: Arc<SnapshotExportSchedule>, ctx: Arc<ScheduleContext>) -> Result<Action, ScheduleError> {
    let uid = obj.uid().unwrap_or_default();
    let result = reconcile(obj, ctx.clone()).await;
    if result.is_ok() {
        ctx.errors.reset(&uid);
    }
    result
}

fn error_policy(obj: Arc<SnapshotExportSchedule>, err: &ScheduleError, ctx: Arc<ScheduleContext>) -> Action {
    let delay = ctx.errors.next(&obj.uid().unwrap_or_default());
    warn!(schedule = %obj.name_any(), error = %err, retry_in = ?delay, "will retry");
    Action::requeue(delay)
}
