//! One reconcile of a `SnapshotExport`: observe (AWS), decide (pure, `decide.rs`), act (record
//! the intent, call CopySnapshot), then write the status only if it changed (`status.rs`).

pub mod decide;
mod finalize;
pub mod status;

use crate::api::{validation::validate_spec, Phase, SnapshotExport, SnapshotExportSpec, SnapshotExportStatus, FINALIZER, OWNER_TAG_KEY};
use crate::aws::{AwsError, CopyRequest, SnapshotApi};
use crate::events::Events;
use crate::metrics::Metrics;
use decide::{after_copy, decide, invalid_spec, retry_later, Decision, Observation};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Client, Resource, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{debug, info, warn};

/// Timing of requeues; see the `run` flags.
#[derive(Clone, Debug)]
pub struct Timing {
    /// First poll interval while a copy or export is in flight; doubles while nothing changes.
    pub poll_min: Duration,
    /// Longest poll interval.
    pub poll_max: Duration,
    /// First backoff after a transient error; doubles (with jitter) on each further error.
    pub error_min: Duration,
    pub error_max: Duration,
    /// How often a stalled object is tried again (fixing the bucket heals it without an edit).
    pub stalled_retry: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            poll_min: Duration::from_secs(5),
            poll_max: Duration::from_secs(300),
            error_min: Duration::from_secs(1),
            error_max: Duration::from_secs(300),
            stalled_retry: Duration::from_secs(300),
        }
    }
}

/// Shared by every reconcile.
pub struct Context<A> {
    pub client: Client,
    pub aws: A,
    pub events: Events,
    pub timing: Timing,
    pub metrics: Arc<Metrics>,
    /// Per object (by UID): polls without change and consecutive errors, for backoff.
    backoff: Mutex<HashMap<String, (u32, u32)>>,
}

impl<A> Context<A> {
    pub fn new(client: Client, aws: A, events: Events, timing: Timing, metrics: Arc<Metrics>) -> Self {
        Self { client, aws, events, timing, metrics, backoff: Mutex::new(HashMap::new()) }
    }

    /// The next poll interval: `poll_min` after a change, doubling while nothing changes.
    fn poll_delay(&self, uid: &str, changed: bool) -> Duration {
        let mut map = self.backoff.lock().expect("backoff lock");
        let entry = map.entry(uid.to_string()).or_default();
        entry.1 = 0;
        entry.0 = if changed { 0 } else { entry.0.saturating_add(1) };
        exponential(self.timing.poll_min, self.timing.poll_max, entry.0)
    }

    /// The next delay after a transient error: exponential with full jitter in its upper half.
    pub fn error_delay(&self, uid: &str) -> Duration {
        let mut map = self.backoff.lock().expect("backoff lock");
        let entry = map.entry(uid.to_string()).or_default();
        let delay = exponential(self.timing.error_min, self.timing.error_max, entry.1);
        entry.1 = entry.1.saturating_add(1);
        delay.mul_f64(rand::random_range(0.5..=1.0))
    }

    fn forget(&self, uid: &str) {
        self.backoff.lock().expect("backoff lock").remove(uid);
    }
}

fn exponential(min: Duration, max: Duration, step: u32) -> Duration {
    min.saturating_mul(1u32 << step.min(20)).min(max)
}

/// Why a reconcile did not finish; the controller retries it with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Kubernetes API request failed for {object}: {source}")]
    Kube { object: String, source: kube::Error },
    #[error("{object}: {source}")]
    Aws { object: String, source: AwsError },
}

/// Reconcile one object.
pub async fn reconcile<A: SnapshotApi>(obj: Arc<SnapshotExport>, ctx: Arc<Context<A>>) -> Result<Action, ReconcileError> {
    let key = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
    let uid = obj.uid().unwrap_or_default();
    let api: Api<SnapshotExport> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let kube_err = |source| ReconcileError::Kube { object: key.clone(), source };

    if obj.meta().deletion_timestamp.is_some() {
        let action = finalize::cleanup(&api, &obj, &ctx).await;
        if matches!(action, Ok(_)) {
            ctx.forget(&uid);
        }
        return action;
    }
    let status = obj.status.clone().unwrap_or_default();
    let generation = obj.meta().generation;
    // A completed object costs nothing on resync: no AWS call, no write.
    if status.phase == Some(Phase::Completed) && status.observed_generation == generation {
        ctx.forget(&uid);
        return Ok(Action::await_change());
    }

    let mut current = (*obj).clone();
    if obj.spec.deletion_policy == crate::api::DeletionPolicy::Delete && !obj.finalizers().iter().any(|f| f == FINALIZER) {
        current = finalize::add_finalizer(&api, &current).await.map_err(kube_err)?;
    }

    let problems = validate_spec(&obj.spec);
    let mut decision = if !problems.is_empty() {
        invalid_spec(&problems)
    } else {
        match observe(&ctx.aws, &obj.spec, &status).await {
            Ok(observed) => decide(&obj.spec, &status, &uid, &observed, Timestamp::now()),
            Err(err) => retry_later(&err),
        }
    };
    let mut aws_error = match &decision {
        Decision::RetryLater { message, .. } => Some(message.clone()),
        _ => None,
    };
    let mut from_call = false;
    let previous = status.clone();
    if decision == Decision::RequestCopy {
        let now = Time(Timestamp::now());
        let intent = status::with_intent(current.status.as_ref().unwrap_or(&status), &obj.spec, generation, &now);
        // The intent must be stored (and accepted under our resourceVersion) before the call.
        current = write_status(&api, &current, intent).await.map_err(kube_err)?;
        let request = copy_request(&obj.spec, &uid);
        info!(object = %key, source = %request.source, target = %request.target, bucket = ?request.bucket, "calling CopySnapshot");
        let result = ctx.aws.copy_snapshot(&request).await;
        ctx.metrics.copy_snapshot_result(&result);
        if let Err(err) = &result {
            warn!(object = %key, error = %err, "CopySnapshot failed");
            aws_error = err.is_transient().then(|| err.to_string());
        }
        decision = after_copy(&obj.spec, &result);
        from_call = true;
    }

    let now = Time(Timestamp::now());
    let recorded = current.status.clone().unwrap_or_default();
    let next = status::next_status(&recorded, &decision, generation, &now);
    let changed = next != recorded;
    if changed {
        current = write_status(&api, &current, next).await.map_err(kube_err)?;
    }
    for note in status::events_for(&previous, &decision, &obj.spec, from_call) {
        ctx.events.publish(&current, &note).await;
    }
    debug!(object = %key, ?decision, changed, "reconciled");

    Ok(match decision {
        Decision::RequestCopy => Action::requeue(Duration::ZERO),
        Decision::Recheck => Action::requeue(Duration::from_millis(200)),
        Decision::InProgress { .. } | Decision::WaitForSource { .. } => Action::requeue(ctx.poll_delay(&uid, changed)),
        Decision::Completed { .. } => {
            ctx.forget(&uid);
            Action::await_change()
        }
        Decision::Stalled { ref reason, .. } if reason == "InvalidSpec" => Action::await_change(),
        Decision::Stalled { .. } => Action::requeue(ctx.timing.stalled_retry),
        Decision::RetryLater { .. } => {
            let message = aws_error.unwrap_or_default();
            return Err(ReconcileError::Aws {
                object: key,
                source: AwsError::Transient { operation: "reconcile", code: "Transient".into(), message },
            });
        }
    })
}

/// What AWS shows for this object now.
async fn observe<A: SnapshotApi>(aws: &A, spec: &SnapshotExportSpec, status: &SnapshotExportStatus) -> Result<Observation, AwsError> {
    if let Some(bucket) = &spec.target_bucket {
        let objects = aws.export_objects(bucket, &spec.target_snapshot_name).await?;
        let source = aws.describe_snapshot(&spec.source_snapshot_name).await?;
        return Ok(Observation::Export { source, objects });
    }
    let target = aws.describe_snapshot(&spec.target_snapshot_name).await?;
    // Only a target we have not adopted yet needs its ownership tag read.
    let owner_tag = match &target {
        Some(t) if status.target_snapshot_arn.is_none() || status.target_snapshot_arn != t.arn => match &t.arn {
            Some(arn) => Some(aws.owner_tag(arn).await?),
            None => Some(None),
        },
        _ => None,
    };
    Ok(Observation::InRegion { target, owner_tag })
}

/// The CopySnapshot request for a spec. In-region copies carry the ownership tag (the owning
/// object's UID) so that a copy made before a crash is recognised.
pub fn copy_request(spec: &SnapshotExportSpec, uid: &str) -> CopyRequest {
    let mut tags: Vec<(String, Option<String>)> = spec.tags.iter().map(|t| (t.key.clone(), t.value.clone())).collect();
    if !spec.is_export() {
        tags.push((OWNER_TAG_KEY.to_string(), Some(uid.to_string())));
    }
    CopyRequest {
        source: spec.source_snapshot_name.clone(),
        target: spec.target_snapshot_name.clone(),
        bucket: spec.target_bucket.clone(),
        kms_key_id: spec.kms_key_id.clone(),
        tags,
    }
}

/// Replace the status subresource under the object's resourceVersion: a stale view of the object
/// is refused with 409 Conflict instead of overwriting newer state.
async fn write_status(
    api: &Api<SnapshotExport>,
    current: &SnapshotExport,
    status: SnapshotExportStatus,
) -> Result<SnapshotExport, kube::Error> {
    let mut desired = current.clone();
    desired.status = Some(status);
    desired.metadata.managed_fields = None;
    api.replace_status(&current.name_any(), &PostParams::default(), &desired).await
}

/// A JSON patch that sets the finalizer list, guarded by the resourceVersion.
pub(crate) fn finalizers_patch(obj: &SnapshotExport, finalizers: Vec<String>) -> Patch<()> {
    let ops = serde_json::json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": obj.resource_version()},
        {"op": "add", "path": "/metadata/finalizers", "value": finalizers},
    ]);
    Patch::Json(serde_json::from_value(ops).expect("a valid JSON patch"))
}

pub(crate) fn patch_params() -> PatchParams {
    PatchParams::default()
}
