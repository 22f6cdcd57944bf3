//! `deletionPolicy: Delete`: a finalizer keeps the object until its in-region copy (node-based or
//! serverless) is deleted.
//! Only a snapshot carrying this object's ownership tag is ever deleted (an ARN names a snapshot
//! by name only, so a recorded ARN proves nothing); S3 objects never. A target the operator
//! cannot prove its own is kept, reported, and does not hold the object: the finalizer goes.

use super::{finalizers_patch, patch_params, Context, ReconcileError};
use crate::api::{DeletionPolicy, SnapshotExport, FINALIZER};
use crate::aws::{CopyFault, SnapshotApis};
use crate::export::status::EventNote;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::ResourceExt;
use std::time::Duration;
use tracing::info;

pub(super) async fn add_finalizer(api: &Api<SnapshotExport>, obj: &SnapshotExport) -> Result<SnapshotExport, kube::Error> {
    let mut finalizers = obj.finalizers().to_vec();
    finalizers.push(FINALIZER.to_string());
    api.patch(&obj.name_any(), &patch_params(), &finalizers_patch(obj, finalizers)).await
}

pub(super) async fn cleanup<A: SnapshotApis>(
    api: &Api<SnapshotExport>,
    obj: &SnapshotExport,
    ctx: &Context<A>,
) -> Result<Action, ReconcileError> {
    if !obj.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let key = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
    if obj.spec.deletion_policy == DeletionPolicy::Delete && !obj.spec.is_export() {
        let aws_err = |source| ReconcileError::Aws { object: key.clone(), source };
        let serverless = obj.spec.is_serverless();
        let target = super::serverless::describe(&ctx.aws, serverless, &obj.spec.target_snapshot_name).await.map_err(aws_err)?;
        if let Some(target) = target {
            let (ours, why_kept) = match &target.arn {
                Some(arn) => match ctx.aws.owner_tag(arn).await {
                    Ok(owner) => (owner.is_some() && owner == obj.uid(), "it does not carry this SnapshotExport's ownership tag, so it was not made by it (or was replaced by another snapshot of the same name)".to_string()),
                    Err(err) if err.is_transient() => return Err(aws_err(err)),
                    // Refused (e.g. AccessDenied): ownership cannot be proven, so never delete.
                    Err(err) => (false, format!("its ownership tag could not be read ({err})")),
                },
                None => (false, "it has no ARN to read its ownership tag from".to_string()),
            };
            if ours {
                match super::serverless::delete(&ctx.aws, serverless, &target.name).await {
                    Ok(()) => {
                        info!(object = %key, snapshot = %target.name, "deleted the in-region copy");
                        let note = format!("Deleted the in-region copy {:?} (deletionPolicy: Delete).", target.name);
                        ctx.events.publish(obj, &EventNote { warning: false, reason: "CopyDeleted".into(), note }).await;
                    }
                    // Still being created: try again shortly.
                    Err(err) if matches!(err.fault(), Some(CopyFault::InvalidSnapshotState { .. })) => {
                        return Ok(Action::requeue(ctx.timing.poll_min.max(Duration::from_secs(1))))
                    }
                    Err(err) => return Err(aws_err(err)),
                }
            } else {
                let note = format!(
                    "Kept snapshot {:?}: {why_kept}, so deletionPolicy: Delete does not apply to it. Delete it yourself if it is no longer needed.",
                    target.name
                );
                ctx.events.publish(obj, &EventNote { warning: true, reason: "CopyNotOwned".into(), note }).await;
            }
        }
    }
    let remaining: Vec<String> = obj.finalizers().iter().filter(|f| *f != FINALIZER).cloned().collect();
    api.patch(&obj.name_any(), &patch_params(), &finalizers_patch(obj, remaining))
        .await
        .map_err(|source| ReconcileError::Kube { object: key, source })?;
    Ok(Action::await_change())
}
