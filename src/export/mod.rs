//! One reconcile of a `SnapshotExport`: observe (AWS), decide (pure, `decide.rs`), act (record
//! the intent, then make the one request: CopySnapshot, or for a serverless source
//! CopyServerlessCacheSnapshot or ExportServerlessCacheSnapshot, `serverless.rs`), then write the
//! status only if it changed (`status.rs`).

mod answers;
pub mod decide;
mod finalize;
pub mod serverless;
pub mod status;
pub mod sweep;

use crate::api::{validation::validate_spec, Phase, SnapshotExport, SnapshotExportSpec, SnapshotExportStatus, FINALIZER};
use crate::aws::{AwsError, SnapshotApis};
use crate::backoff::Backoff;
use crate::events::Events;
use crate::metrics::Metrics;
use decide::{after_copy, after_repeated_copy, decide, invalid_spec, retry_later, Claim, Decision, Observation};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
pub use serverless::copy_request;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{debug, info, warn};

/// Timing of requeues; see the `run` flags.
#[derive(Clone, Debug)]
pub struct Timing {
    /// First interval of the shared snapshot sweep while copies or exports are in flight; it
    /// doubles while nothing changes.
    pub poll_min: Duration,
    /// Longest sweep interval, and the safety-net requeue of each object in flight.
    pub poll_max: Duration,
    /// First backoff after a transient error; doubles (with jitter) on each further error.
    pub error_min: Duration,
    pub error_max: Duration,
    /// How often a stalled object is tried again (fixing the bucket heals it without an edit);
    /// each wait is stretched by up to a quarter at random (`backoff::spread`).
    pub stalled_retry: Duration,
    /// How long an accepted export may show no objects, or a partial set that stopped growing,
    /// once its source is available again, before it is reported as failed or incomplete.
    pub export_grace: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            poll_min: Duration::from_secs(5),
            poll_max: Duration::from_secs(300),
            error_min: Duration::from_secs(1),
            error_max: Duration::from_secs(300),
            stalled_retry: Duration::from_secs(300),
            export_grace: decide::EXPORT_START_GRACE.unsigned_abs(),
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
    /// The shared DescribeSnapshots sweep that follows copies and exports in flight.
    pub sweep: Arc<sweep::Sweep>,
    /// The export policy and the bucket preflight (`crate::safety`; set with `with_export_safety`).
    pub safety: crate::safety::ExportSafety,
    /// Per object (by UID): consecutive transient errors, for backoff.
    errors: Backoff,
    /// Per object (by UID): consecutive `Recheck`s (AWS answering "already exists" or "busy"
    /// while the look finds nothing of ours), to stall after [`decide::RECHECK_LIMIT`].
    rechecks: Mutex<HashMap<String, u32>>,
    /// Per object: AWS's definitive answers whose status write failed, until one records them.
    answers: answers::Answers,
    /// The watch caches that have listed their objects, with their namespace (`None`: all):
    /// which objects exist, and what other objects claim.
    stores: Mutex<Vec<(Option<String>, Store<SnapshotExport>)>>,
}

impl<A> Context<A> {
    pub fn new(client: Client, aws: A, events: Events, timing: Timing, metrics: Arc<Metrics>) -> Self {
        let sweep = Arc::new(sweep::Sweep::new(timing.poll_min, timing.poll_max).with_gauge(metrics.sweep_followed.clone()));
        let errors = Backoff::new(timing.error_min, timing.error_max);
        let safety = crate::safety::ExportSafety::default();
        Self {
            client,
            aws,
            events,
            timing,
            metrics,
            sweep,
            safety,
            errors,
            rechecks: Mutex::default(),
            answers: answers::Answers::default(),
            stores: Mutex::default(),
        }
    }

    /// Set the export policy and the preflight.
    pub fn with_export_safety(mut self, mut safety: crate::safety::ExportSafety) -> Self {
        // Stalled objects retried within one period share their bucket's failing inspection.
        if let Some(preflight) = safety.preflight.as_mut() {
            preflight.reuse_failures_for(self.timing.stalled_retry);
        }
        self.safety = safety;
        self
    }

    /// The next delay after a transient error: exponential with full jitter in its upper half.
    pub fn error_delay(&self, uid: &str) -> Duration {
        self.errors.next(uid)
    }

    /// The object needs no more following nor backoff (it is done, or deleted).
    pub fn forget(&self, uid: &str) {
        self.errors.reset(uid);
        self.rechecks.lock().expect("recheck lock").remove(uid);
        self.answers.forget(uid);
        self.sweep.unfollow(uid);
    }

    /// Apply one reconcile's `step` to the count of `Recheck`s in a row for `uid`; returns the
    /// count. `recorded`: the count in the object's status (`recheckCount`), which survives a
    /// restart.
    fn recheck(&self, uid: &str, step: RecheckStep, recorded: u32) -> u32 {
        let mut map = self.rechecks.lock().expect("recheck lock");
        let count = map.entry(uid.to_string()).or_default();
        *count = step.apply((*count).max(recorded));
        *count
    }

    /// Add a watch cache once it has listed its objects (the controller does, one per scope).
    pub fn watch_store(&self, namespace: Option<String>, store: Store<SnapshotExport>) {
        self.stores.lock().expect("stores lock").push((namespace, store));
    }

    /// Another SnapshotExport whose export to the same bucket and target may have written the
    /// same keys, as the watch caches know it: one AWS accepted (exporting, or completed) before
    /// one whose request's outcome is unknown (an intent never resolved).
    pub fn claim_of(&self, uid: &str, spec: &SnapshotExportSpec) -> Option<Claim> {
        let stores = self.stores.lock().expect("stores lock");
        let mut unresolved = None;
        for o in stores.iter().flat_map(|(_, s)| s.state()) {
            let same_keys = o.uid().as_deref() != Some(uid)
                && o.spec.target_bucket.is_some()
                && o.spec.target_bucket == spec.target_bucket
                // The keys are named after this base, whichever kind of export writes them.
                && serverless::same_export_base(&o.spec, spec);
            let Some(st) = o.status.as_ref().filter(|_| same_keys) else { continue };
            let owner = format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any());
            let requested_at = st.copy_requested_at.as_ref().map(|t| t.0);
            // An accepted export (even one that later stalled) may have written the key.
            if st.is_accepted() || st.phase == Some(Phase::Completed) {
                return Some(Claim { owner, accepted: true, requested_at });
            }
            // An unresolved one too, unless it is being deleted or gave up seeing anything of its own.
            let gave_up = st.last_error.as_ref().is_some_and(|e| e.reason == crate::api::OUTCOME_UNKNOWN);
            if requested_at.is_some() && o.meta().deletion_timestamp.is_none() && !gave_up {
                unresolved.get_or_insert(Claim { owner, accepted: false, requested_at });
            }
        }
        unresolved
    }

    /// Whether the object `uid` (at `obj`) still exists as far as the watch caches know. Until
    /// the cache of its namespace has listed its objects, it counts as live.
    pub fn is_live(&self, obj: &ObjectRef<SnapshotExport>, uid: &str) -> bool {
        let stores = self.stores.lock().expect("stores lock");
        let mut covering = stores.iter().filter(|(ns, _)| ns.is_none() || ns.as_ref() == obj.namespace.as_ref()).peekable();
        covering.peek().is_none() || covering.any(|(_, s)| s.get(obj).is_some_and(|o| o.uid().as_deref() == Some(uid)))
    }
}

/// Why a reconcile did not finish; the controller retries it with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("Kubernetes API request failed for {object}: {source}")]
    Kube { object: String, source: kube::Error },
    #[error("{object}: {source}")]
    Aws { object: String, source: AwsError },
}

/// Reconcile one object. A write refused with 409 Conflict means our copy of the object was
/// stale (the watch lags, or was cut): read the object afresh and decide again, once, rather
/// than wait for the watch to catch up. Every write carries the resourceVersion it was decided
/// on, so a stale view never overwrites newer state.
pub async fn reconcile<A: SnapshotApis>(obj: Arc<SnapshotExport>, ctx: Arc<Context<A>>) -> Result<Action, ReconcileError> {
    match reconcile_once(obj.clone(), &ctx).await {
        Err(ReconcileError::Kube { source: kube::Error::Api(status), .. }) if status.code == 409 => {
            let api: Api<SnapshotExport> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
            let key = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
            match api.get_opt(&obj.name_any()).await {
                Ok(Some(fresh)) => {
                    debug!(object = %key, "status write conflicted: deciding again on the object as it is now");
                    reconcile_once(Arc::new(fresh), &ctx).await
                }
                Ok(None) => {
                    ctx.forget(&obj.uid().unwrap_or_default());
                    Ok(Action::await_change())
                }
                Err(source) => Err(ReconcileError::Kube { object: key, source }),
            }
        }
        other => other,
    }
}

async fn reconcile_once<A: SnapshotApis>(obj: Arc<SnapshotExport>, ctx: &Arc<Context<A>>) -> Result<Action, ReconcileError> {
    let key = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
    let uid = obj.uid().unwrap_or_default();
    let api: Api<SnapshotExport> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let kube_err = |source| ReconcileError::Kube { object: key.clone(), source };
    let obj_ref = ObjectRef::from_obj(&*obj);

    if obj.meta().deletion_timestamp.is_some() {
        let action = finalize::cleanup(&api, &obj, ctx).await;
        if action.is_ok() {
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

    let changed_spec = decide::spec_changed(&obj.spec, &status);
    // Accepted, then stalled for good (the copy failed or vanished, the export failed): no AWS
    // call, ever; a new copy is a new SnapshotExport.
    if changed_spec.is_none() && decide::is_terminal(&status) {
        ctx.forget(&uid);
        return Ok(Action::await_change());
    }

    let mut current = (*obj).clone();
    let problems = validate_spec(&obj.spec);
    // Only a valid spec that may reach AWS gets the finalizer: deleting an invalid object never
    // needs AWS.
    let may_request = problems.is_empty() && changed_spec.is_none();
    if may_request && obj.spec.deletion_policy == crate::api::DeletionPolicy::Delete && !obj.finalizers().iter().any(|f| f == FINALIZER) {
        current = finalize::add_finalizer(&api, &current).await.map_err(kube_err)?;
    }

    // The bucket's objects as this reconcile listed them (their ETags are recorded on completion).
    let mut listed = Vec::new();
    let replayed = ctx.answers.unrecorded(&uid, &status);
    // An acceptance replayed from memory is as new as one just answered.
    let from_memory = replayed.is_some();
    let mut decision = if let Some(answered) = replayed {
        // AWS answered the request made under this intent, and the write saying so was lost.
        debug!(object = %key, "recording AWS's answer to the request whose status write failed");
        answered
    } else if let Some(changed) = changed_spec {
        // The spec differs from the one requested (no CEL on this cluster): no AWS call.
        changed
    } else if !problems.is_empty() {
        invalid_spec(&problems)
    } else if let Some(refused) = ctx.safety.refusal(&obj, &status) {
        // The export policy refuses it: no AWS call at all.
        decide::from_safety(&obj.spec, refused)
    } else {
        match observe(ctx, &uid, &obj_ref, &obj.spec, &status, obj.waits_for_source()).await {
            Ok(Some(observed)) => {
                if let Observation::Export { objects, .. } = &observed {
                    listed = objects.clone();
                }
                let grace = k8s_openapi::jiff::SignedDuration::try_from(ctx.timing.export_grace).unwrap_or(decide::EXPORT_START_GRACE);
                decide(&obj.spec, &status, &uid, &observed, decide::Clock { now: Timestamp::now(), export_grace: grace })
            }
            // In flight, and no sweep has looked since: nothing new to decide.
            Ok(None) => return Ok(Action::requeue(ctx.timing.poll_max)),
            Err(err) => retry_later(&err),
        }
    };
    if decision == Decision::RequestCopy && obj.has_automatic_source() && status.phase == Some(Phase::Failed) {
        // A retry of a stalled run of an automatic backup: the backup may have expired while the
        // run waited (on its bucket, say), and then nothing heals it. One describe by name says
        // so before the preflight looks at the bucket again.
        decision = match serverless::describe(&ctx.aws, obj.spec.is_serverless(), &obj.spec.source_snapshot_name).await {
            Ok(Some(_)) => decision,
            Ok(None) => decide::source_not_found(&obj.spec, status.copy_requested_at.is_some()),
            Err(err) => retry_later(&err),
        };
    }
    if decision == Decision::RequestCopy {
        // Bucket preflight: only right before a request, never on a poll.
        decision = decide::from_safety(&obj.spec, ctx.safety.preflight(&obj.spec, &ctx.events, &current).await);
    }
    let mut from_call = false;
    // What AWS answered, for a stall after repeated rechecks.
    let mut answer = String::from("the bucket already holds the export's object key");
    let previous = status.clone();
    if decision == Decision::RequestCopy {
        let now = Time(Timestamp::now());
        let recorded = current.status.as_ref().unwrap_or(&status);
        // An earlier request whose outcome is still unknown may be at work in AWS.
        let earlier_intent = recorded.copy_requested_at.is_some();
        let intent = status::with_intent(recorded, &obj.spec, generation, &now);
        // The intent must be stored (and accepted under our resourceVersion) before the call.
        current = write_status(&api, &current, intent).await.map_err(kube_err)?;
        let operation = serverless::operation(&obj.spec);
        let spec = &obj.spec;
        info!(object = %key, source = %spec.source_snapshot_name, target = %spec.target_snapshot_name, bucket = ?spec.target_bucket, "calling {operation}");
        let result = serverless::request(&ctx.aws, spec, &uid, &obj.namespace().unwrap_or_default()).await;
        if let Err(err) = &result {
            warn!(object = %key, error = %err, "{operation} failed");
        }
        decision = if earlier_intent { after_repeated_copy(&obj.spec, &result) } else { after_copy(&obj.spec, &result) };
        // An object deleted meanwhile (forgotten already) keeps nothing.
        if (result.is_ok() || resolves_intent(&decision)) && ctx.is_live(&obj_ref, &uid) {
            ctx.answers.keep(&uid, current.status.as_ref().and_then(|s| s.copy_requested_at.clone()), &decision);
        }
        from_call = true;
        if let Err(err) = &result {
            answer = err.to_string();
        }
    }
    // AWS answering "exists" or "busy" while the look finds nothing of ours: look again with
    // backoff, and stall once it has answered so too many times in a row.
    let recorded_rechecks = current.status.as_ref().map_or(status.recheck_count, |s| s.recheck_count);
    let repeats = ctx.recheck(&uid, RecheckStep::of(&decision, from_call), recorded_rechecks);
    if decision == Decision::Recheck {
        decision = decide::bounded_recheck(&obj.spec, repeats, &answer);
        if decision != Decision::Recheck {
            // Stalled: keep the count, so a slow retry answered the same way stalls at once.
            warn!(object = %key, repeats, %answer, "AWS keeps answering the same; stalled");
        }
    }

    // Every "source not found" comes from a direct look (the answer to the request, or a describe
    // by name): an automatic backup found so is gone for good.
    decision = decide::source_gone_for_good(&obj.spec, obj.has_automatic_source(), decision);

    let now = Time(Timestamp::now());
    let recorded = current.status.clone().unwrap_or_default();
    let mut next = status::next_status(&recorded, &decision, generation, &now);
    // Recorded once, from the listing that first found the export complete: a later look may
    // list what someone wrote since under the same keys.
    let first_completion = recorded.phase != Some(Phase::Completed) && recorded.exported_object_details.is_empty();
    if let (Decision::Completed { exported_objects, .. }, Some(bucket), true) = (&decision, &obj.spec.target_bucket, first_completion) {
        next.exported_object_details = status::object_details(exported_objects, bucket, &listed);
    }
    // The count is recorded (written only when it changes: on a recheck, and when it ends) so a
    // restart does not allow RECHECK_LIMIT more refused requests.
    next.recheck_count = repeats;
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
        // Backed off like a transient error.
        Decision::Recheck => Action::requeue(ctx.error_delay(&uid)),
        // The shared sweep reconciles the object when its snapshot changes; the requeue is a
        // safety net only.
        Decision::InProgress { .. } | Decision::WaitForSource { .. } => {
            let waiting = matches!(decision, Decision::WaitForSource { .. });
            let names = followed_snapshots(&obj.spec, waiting);
            if (from_call || from_memory) && !waiting {
                // AWS just accepted the request: look within the minimum interval, afresh.
                ctx.sweep.follow_accepted(&uid, obj_ref, names, obj.spec.is_serverless());
            } else {
                ctx.sweep.follow(&uid, obj_ref, names, obj.spec.is_serverless());
            }
            Action::requeue(ctx.timing.poll_max)
        }
        Decision::Completed { .. } => {
            ctx.forget(&uid);
            Action::await_change()
        }
        // Healed only by an edit of the object; a stall after acceptance is terminal.
        Decision::Stalled { ref reason, .. }
            if reason == "InvalidSpec" || reason == "SpecChanged" || current.status.as_ref().is_some_and(decide::is_terminal) =>
        {
            ctx.forget(&uid);
            Action::await_change()
        }
        Decision::Stalled { ref reason, .. } if reason == "AwsAnswerInconsistent" => {
            ctx.errors.reset(&uid);
            ctx.sweep.unfollow(&uid);
            Action::requeue(crate::backoff::spread(ctx.timing.stalled_retry))
        }
        Decision::Stalled { .. } => {
            ctx.forget(&uid);
            Action::requeue(crate::backoff::spread(ctx.timing.stalled_retry))
        }
        // The decision carries what failed; the controller's error policy backs off.
        Decision::RetryLater { message, .. } => {
            return Err(ReconcileError::Aws {
                object: key,
                source: AwsError::Transient { operation: "reconcile", code: "Transient".into(), message },
            });
        }
    })
}

/// Whether a decision taken on AWS's answer says the request was certainly not carried out
/// (refused, throttled, or the source busy): the status then clears the intent.
fn resolves_intent(decision: &Decision) -> bool {
    matches!(
        decision,
        Decision::Stalled { clear_intent: true, .. } | Decision::RetryLater { clear_intent: true, .. } | Decision::WaitForSource { .. }
    )
}

/// What one decision does to the count of AWS answering "exists" or "busy" in a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RecheckStep {
    /// Answered so once more.
    Again,
    /// A definitive different outcome: our copy or export found in flight or done, or AWS
    /// refused the request for another reason.
    Reset,
    /// Nothing learnt about that answer (throttled, unreachable, the source not ready, a
    /// refusal before any call): a throttled look between two "exists" must not lift the bound.
    Unchanged,
}

impl RecheckStep {
    fn of(decision: &Decision, from_call: bool) -> RecheckStep {
        match decision {
            Decision::Recheck => RecheckStep::Again,
            Decision::InProgress { .. } | Decision::Completed { .. } => RecheckStep::Reset,
            Decision::Stalled { .. } if from_call => RecheckStep::Reset,
            _ => RecheckStep::Unchanged,
        }
    }

    fn apply(self, count: u32) -> u32 {
        match self {
            RecheckStep::Again => count.saturating_add(1),
            RecheckStep::Reset => 0,
            RecheckStep::Unchanged => count,
        }
    }
}

/// The snapshot the sweep follows for an object: the source while waiting for it or exporting
/// it, otherwise the in-region copy.
fn followed_snapshots(spec: &SnapshotExportSpec, waiting_for_source: bool) -> Vec<String> {
    vec![if spec.is_export() || waiting_for_source { spec.source_snapshot_name.clone() } else { spec.target_snapshot_name.clone() }]
}

/// What AWS shows for this object now; `None` when it is in flight (or waits for its source) and
/// the shared sweep has not looked since it began to be followed.
///
/// A request AWS accepted is followed through the shared sweep (no per-object describe). An
/// object that never made a request needs no look (CopySnapshot refuses whatever a look would
/// find), unless it waits for its source (`waits_for_source`): then the sweep follows the source
/// until it is available, and the first request is made only then. Otherwise (an intent whose outcome is unknown, a retry after a refusal) the object looks
/// for itself, so a repeated request (never an export's on an unknown outcome) rests on a fresh
/// look.
async fn observe<A: SnapshotApis>(
    ctx: &Context<A>,
    uid: &str,
    obj_ref: &ObjectRef<SnapshotExport>,
    spec: &SnapshotExportSpec,
    status: &SnapshotExportStatus,
    waits_for_source: bool,
) -> Result<Option<Observation>, AwsError> {
    let aws = &ctx.aws;
    if matches!(status.phase, Some(Phase::Copying | Phase::Exporting)) {
        // The shared sweep is failing: this object reports it (it stays followed) rather than
        // show an old message.
        if let Some(err) = ctx.sweep.failure(spec.is_serverless()) {
            ctx.sweep.follow(uid, obj_ref.clone(), followed_snapshots(spec, false), spec.is_serverless());
            return Err(err);
        }
        let Some(view) = ctx.sweep.view(uid) else {
            ctx.sweep.follow(uid, obj_ref.clone(), followed_snapshots(spec, false), spec.is_serverless());
            return Ok(None);
        };
        // A snapshot one listing did not show may be gone, or the listing missed it: an absence
        // is confirmed by a direct describe before anything is judged by it (issue 30).
        let view = &view;
        let swept = |name: String| async move {
            match view.get(&name).cloned().flatten() {
                Some(seen) => Ok(Some(seen)),
                None => serverless::describe(aws, spec.is_serverless(), &name).await,
            }
        };
        if let Some(bucket) = &spec.target_bucket {
            let source = swept(spec.source_snapshot_name.clone()).await?;
            // Objects are listed only once the source is no longer busy exporting.
            let objects = match &source {
                Some(s) if matches!(s.status, crate::aws::SnapshotStatus::InProgress(_)) => Vec::new(),
                _ => aws.export_objects(bucket, &spec.export_base_name()).await?,
            };
            return Ok(Some(Observation::Export { source, objects, claimed_by: None }));
        }
        return in_region_observation(aws, swept(spec.target_snapshot_name.clone()).await?, status).await.map(Some);
    }
    if status.attempts == 0 && status.copy_requested_at.is_none() {
        if !waits_for_source {
            return Ok(Some(Observation::NeverRequested));
        }
        // Its source is being taken: follow it through the shared sweep (no per-object call)
        // and ask once it is available.
        let source = &spec.source_snapshot_name;
        ctx.sweep.follow(uid, obj_ref.clone(), followed_snapshots(spec, true), spec.is_serverless());
        if let Some(err) = ctx.sweep.failure(spec.is_serverless()) {
            return Err(err);
        }
        return Ok(ctx.sweep.view(uid).and_then(|view| view.get(source).cloned()).map(|source| Observation::AwaitedSource { source }));
    }
    let mut observed = direct_observation(aws, spec, status).await?;
    // Objects found while our own outcome is unknown: does another object hold an accepted
    // request for them? (Only then; an accepted request needs no such look.)
    if let Observation::Export { objects, claimed_by, .. } = &mut observed {
        if status.copy_requested_at.is_some() && !objects.is_empty() {
            *claimed_by = ctx.claim_of(uid, spec);
            debug!(?claimed_by, "looked for another object's accepted export of these objects");
        }
    }
    Ok(Some(observed))
}

async fn direct_observation<A: SnapshotApis>(
    aws: &A,
    spec: &SnapshotExportSpec,
    status: &SnapshotExportStatus,
) -> Result<Observation, AwsError> {
    let serverless = spec.is_serverless();
    if let Some(bucket) = &spec.target_bucket {
        // Describe first: objects listed after the source was seen no longer exporting are all
        // the export wrote (a serverless export's shards are known only from them; a node-based
        // one listed before its last object landed would look incomplete).
        let source = serverless::describe(aws, serverless, &spec.source_snapshot_name).await?;
        let objects = aws.export_objects(bucket, &spec.export_base_name()).await?;
        return Ok(Observation::Export { source, objects, claimed_by: None });
    }
    let target = serverless::describe(aws, serverless, &spec.target_snapshot_name).await?;
    in_region_observation(aws, target, status).await
}

async fn in_region_observation<A: SnapshotApis>(
    aws: &A,
    target: Option<crate::aws::SnapshotInfo>,
    status: &SnapshotExportStatus,
) -> Result<Observation, AwsError> {
    // The ownership tag is read before a target is adopted or counted done (an ARN names a
    // snapshot by name only); polls of our copy in progress under its recorded ARN skip it.
    let polling = |t: &crate::aws::SnapshotInfo| {
        status.target_snapshot_arn.is_some()
            && status.target_snapshot_arn == t.arn
            && matches!(t.status, crate::aws::SnapshotStatus::InProgress(_))
    };
    let owner_tag = match &target {
        Some(t) if !polling(t) => match &t.arn {
            Some(arn) => Some(aws.owner_tag(arn).await?),
            None => Some(None),
        },
        _ => None,
    };
    Ok(Observation::InRegion { target, owner_tag })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_follows_the_source_while_waiting_for_it_and_the_copy_or_source_otherwise() {
        let copy = SnapshotExportSpec::new("src", "dst", None);
        let export = SnapshotExportSpec::new("src", "dst", Some("bkt"));
        assert_eq!(followed_snapshots(&copy, true), ["src"]);
        assert_eq!(followed_snapshots(&copy, false), ["dst"]);
        assert_eq!(followed_snapshots(&export, true), ["src"]);
        assert_eq!(followed_snapshots(&export, false), ["src"]);
    }

    #[test]
    fn only_a_different_answer_resets_the_recheck_count() {
        let in_progress = Decision::InProgress {
            phase: Phase::Copying,
            message: String::new(),
            target_arn: None,
            target_status: None,
            source_status: None,
            expected_objects: vec![],
        };
        let completed = Decision::Completed { target_arn: None, target_status: None, exported_objects: vec![], source_status: None };
        let stalled = Decision::Stalled { reason: "r".into(), message: String::new(), clear_intent: false };
        let throttled = Decision::RetryLater { reason: "AwsThrottled", message: String::new(), clear_intent: true };
        let waiting = Decision::WaitForSource { reason: "SourceSnapshotNotReady", message: String::new(), source_status: None };
        let cases = [
            ("exists", Decision::Recheck, false, 3),
            ("exists, answered by the call", Decision::Recheck, true, 3),
            ("a throttled look or call", throttled.clone(), false, 2),
            ("a throttled call", throttled, true, 2),
            ("the source not ready", waiting, true, 2),
            ("a refusal before any call (the policy)", stalled.clone(), false, 2),
            ("AWS refused the request otherwise", stalled, true, 0),
            ("our copy found in flight", in_progress, false, 0),
            ("done", completed, false, 0),
        ];
        for (what, decision, from_call, want) in cases {
            assert_eq!(RecheckStep::of(&decision, from_call).apply(2), want, "{what}");
        }
        // Exists, exists, throttled, exists x3: stalls at the fifth "exists".
        let steps = [RecheckStep::Again, RecheckStep::Again, RecheckStep::Unchanged, RecheckStep::Again, RecheckStep::Again];
        let count = steps.iter().fold(0, |n, s| s.apply(n));
        assert_eq!(count, decide::RECHECK_LIMIT - 1);
        assert_eq!(RecheckStep::Again.apply(count), decide::RECHECK_LIMIT);
    }
}
