//! The gate the reconciler calls: the export policy before any AWS call, and the bucket
//! preflight right before CopySnapshot, each giving a [`Verdict`]; and the gate's construction
//! from the settings.

use super::evaluate::evaluate;
use super::inspect::{record_keys, PreflightConfig};
use super::policy::{ExportRequest, Refusal};
use super::policy_file::PolicySource;
use super::report::Report;
use crate::api::{SnapshotExport, SnapshotExportSpec, SnapshotExportStatus};
use crate::aws::{export_object_key, AwsError, CopyFault, S3Problem, SourceInspector, INSPECTION_ACTIONS};
use crate::events::{EventNote, Events};
use kube::ResourceExt;
use std::sync::Arc;

pub const PUBLIC_REASON: &str = "BucketPubliclyAccessible";
pub const INSPECTION_DENIED_REASON: &str = "BucketInspectionDenied";
pub const INSPECTION_FAILED_REASON: &str = "BucketInspectionFailed";
pub const NOT_EVALUATED_REASON: &str = "BucketPolicyNotEvaluated";
pub const SOURCE_INSPECTION_FAILED_REASON: &str = "SourceInspectionFailed";

/// What the gate says about a request; the reconciler (`crate::export`) turns it into its
/// decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Request the copy.
    Proceed,
    /// Do not request it yet: look again (the key may be an earlier request's own object).
    Recheck,
    /// Do not request it: stalled until something outside changes. `clear_intent` when no
    /// request of ours can be in flight.
    Stalled { reason: String, message: String, clear_intent: bool },
    /// The bucket could not be inspected for now: back off and try again.
    RetryLater(AwsError),
}

/// Export policy and preflight configuration, kept in the reconciler's `Context`.
pub struct ExportSafety {
    /// Shared with the schedules' pre-check (`crate::schedule::policy`): one file, read once.
    pub policy: Arc<PolicySource>,
    /// `None`: preflight off (`--preflight=false`, or no inspector).
    pub preflight: Option<PreflightConfig>,
    /// Reads a source's provenance for rules that constrain the source; `None`: such rules
    /// refuse (fail closed).
    pub sources: Option<Arc<dyn SourceInspector>>,
}

impl Default for ExportSafety {
    /// Secure by default: no rule (every S3 export refused), no preflight.
    fn default() -> Self {
        Self { policy: Arc::default(), preflight: None, sources: None }
    }
}

impl ExportSafety {
    /// The policy gate, before any AWS call: `Some(Stalled ExportNotAllowed)` when the policy
    /// refuses the object. Objects whose request AWS accepted are followed to the end whatever
    /// the policy says: refusing them now could not undo the request. A recorded intent alone
    /// does not skip the check (it would let a refused object request again); it only keeps
    /// the intent, since an earlier request's outcome is unknown.
    pub fn refusal(&self, obj: &SnapshotExport, status: &SnapshotExportStatus) -> Option<Verdict> {
        if status.is_accepted() {
            return None;
        }
        let namespace = obj.namespace().unwrap_or_default();
        let request =
            ExportRequest { namespace: &namespace, source: &obj.spec.source_snapshot_name, bucket: obj.spec.target_bucket.as_deref() };
        match self.policy.check(&request) {
            Ok(rule) => {
                tracing::debug!(object = %obj.name_any(), namespace = %namespace, rule = ?rule, "export policy allows");
                None
            }
            Err(refusal) => Some(match refused(&refusal) {
                Verdict::Stalled { reason, message, .. } => {
                    Verdict::Stalled { reason, message, clear_intent: status.copy_requested_at.is_none() }
                }
                other => other,
            }),
        }
    }

    /// The preflight, for a `RequestCopy` decision: the verdict (`Proceed` when the bucket is fine
    /// or preflight is off). A public bucket gets a Warning Event
    /// (or a stall with `--refuse-public-buckets`).
    ///
    /// First, for a rule that constrains the source, the source's provenance
    /// ([`Self::provenance`]), for in-region copies too.
    pub async fn preflight(&self, spec: &SnapshotExportSpec, events: &Events, obj: &SnapshotExport) -> Verdict {
        // An earlier request whose outcome is unknown (its intent is recorded) may be at work:
        // the key it writes is not a collision (look again: objects written under an intent are
        // adopted), and no failure may clear its intent.
        let earlier_intent = obj.status.as_ref().is_some_and(|s| s.copy_requested_at.is_some());
        let described = match self.provenance(spec, obj, earlier_intent).await {
            Ok(described) => described,
            Err(stop) => return stop,
        };
        let (Some(config), Some(bucket)) = (&self.preflight, &spec.target_bucket) else {
            return Verdict::Proceed;
        };
        let stalled_or = |err: &AwsError| match inspection_failed(bucket, err) {
            Verdict::Stalled { reason, message, .. } => Verdict::Stalled { reason, message, clear_intent: !earlier_intent },
            other => other,
        };
        let mut facts = match config.bucket_facts(bucket, is_stalled_retry(obj)).await {
            Ok(facts) => facts,
            Err(err) => return stalled_or(&err),
        };
        // The keys only matter in a bucket that is there, and not when its failure holds
        // whatever they are. One listing finds every object an export of this name could have
        // written; the source's node groups (which of those keys this export writes) are read
        // only when there is such an object.
        if facts.access.is_some() && !fails_whatever_the_keys(&facts) {
            let base = spec.export_base_name();
            let listed = match config.export_keys(bucket, &base).await {
                Ok(listed) => listed,
                Err(err) => return stalled_or(&err),
            };
            let keys: Vec<String> = if spec.is_serverless() {
                // Its shards are not named in advance: any object of its shape is one it writes.
                let taken: Vec<String> = listed.iter().filter(|k| spec.is_serverless_export_key(k)).cloned().collect();
                if taken.is_empty() {
                    vec![export_object_key(&base, "0001")]
                } else {
                    taken
                }
            } else {
                let ids = match described {
                    Some(ids) => ids,
                    None if listed.is_empty() => first_node_group(),
                    None => match self.node_group_ids(spec, obj).await {
                        Ok(ids) => ids,
                        Err(err) => return Verdict::RetryLater(err),
                    },
                };
                ids.iter().map(|id| export_object_key(&base, id)).collect()
            };
            record_keys(&mut facts, &keys, &listed);
        }
        let report = evaluate(&facts);
        match gate(&report, earlier_intent, config.refuse_public_buckets) {
            Gate::Stop(decision) => {
                if let Verdict::Stalled { reason, .. } = &decision {
                    tracing::info!(object = %obj.name_any(), bucket = %bucket, %reason, "preflight refused the export before CopySnapshot");
                }
                decision
            }
            Gate::Proceed { public_warning, policy_warning } => {
                if let Some(note) = policy_warning {
                    events.publish(obj, &EventNote { warning: true, reason: NOT_EVALUATED_REASON.into(), note }).await;
                }
                if let Some(note) = public_warning {
                    events.publish(obj, &EventNote { warning: true, reason: PUBLIC_REASON.into(), note }).await;
                }
                Verdict::Proceed
            }
        }
    }
}

impl ExportSafety {
    /// The export policy against the source's provenance, right before CopySnapshot: `Ok` when
    /// the policy allows it (or needs no provenance: no AWS call then), with the source's node
    /// group ids when it was read; else the verdict.
    async fn provenance(
        &self,
        spec: &SnapshotExportSpec,
        obj: &SnapshotExport,
        earlier_intent: bool,
    ) -> Result<Option<Vec<String>>, Verdict> {
        // An unusable policy file is refused by `refusal` already.
        let Ok(policy) = self.policy.current() else {
            return Ok(None);
        };
        let namespace = obj.namespace().unwrap_or_default();
        let request = ExportRequest { namespace: &namespace, source: &spec.source_snapshot_name, bucket: spec.target_bucket.as_deref() };
        if !policy.needs_provenance(&request) {
            return Ok(None);
        }
        let stalled = |reason: &str, message: String| Verdict::Stalled { reason: reason.into(), message, clear_intent: !earlier_intent };
        let Some(sources) = &self.sources else {
            let message = format!("The export policy allows namespace {namespace} to copy source snapshot {} only after checking where it comes from, and this operator cannot read snapshot provenance.", spec.source_snapshot_name);
            return Err(stalled(Refusal::REASON, message));
        };
        let facts = if spec.is_serverless() {
            sources.serverless_source_facts(&spec.source_snapshot_name)
        } else {
            sources.source_facts(&spec.source_snapshot_name)
        };
        match facts.await {
            // A missing source: CopySnapshot reports it (SourceSnapshotNotFound), nothing is copied.
            Ok(None) => Ok(Some(first_node_group())),
            Ok(Some(facts)) => match policy.check_provenance(&request, &facts) {
                Ok(rule) => {
                    tracing::debug!(object = %obj.name_any(), namespace = %namespace, rule = ?rule, ?facts, "export policy allows the source's provenance");
                    Ok(Some(if facts.node_group_ids.is_empty() { first_node_group() } else { facts.node_group_ids }))
                }
                Err(refusal) => Err(stalled(Refusal::REASON, refusal.message())),
            },
            Err(err @ AwsError::Transient { .. }) => Err(Verdict::RetryLater(err)),
            Err(AwsError::Fault { operation, fault }) => Err(stalled(
                SOURCE_INSPECTION_FAILED_REASON,
                format!(
                    "The operator cannot check where source snapshot {} comes from, which its export policy requires: {operation} failed: {}. Grant its role elasticache:{} and elasticache:ListTagsForResource.",
                    spec.source_snapshot_name,
                    fault.message(),
                    if spec.is_serverless() { "DescribeServerlessCacheSnapshots" } else { "DescribeSnapshots" }
                ),
            )),
        }
    }

    /// The source's node group ids, which name the keys its export writes: DescribeSnapshots
    /// (one call). `["0001"]` when they cannot be known here: no inspector, a Serverless source,
    /// a missing source (CopySnapshot reports it) or a refused look (CopySnapshot decides).
    async fn node_group_ids(&self, spec: &SnapshotExportSpec, obj: &SnapshotExport) -> Result<Vec<String>, AwsError> {
        let first = first_node_group;
        let Some(sources) = self.sources.as_ref().filter(|_| !spec.is_serverless()) else {
            return Ok(first());
        };
        match sources.node_group_ids(&spec.source_snapshot_name).await {
            Ok(Some(ids)) if !ids.is_empty() => Ok(ids),
            Ok(_) => Ok(first()),
            Err(err @ AwsError::Transient { .. }) => Err(err),
            Err(err) => {
                tracing::warn!(object = %obj.name_any(), error = %err, "cannot read the source's node groups; the preflight checks the first key only");
                Ok(first())
            }
        }
    }
}

/// Whether the bucket's facts (no key recorded) fail the preflight whatever the export's keys
/// are. The first failing check is the verdict, and only one check reads a key: WRITE under a
/// bucket policy (s3:PutObject on the object's ARN; a policy may grant or deny it by prefix).
/// So a failure holds without a policy, or when it comes before the WRITE check.
fn fails_whatever_the_keys(facts: &crate::safety::facts::BucketFacts) -> bool {
    let Some(problem) = evaluate(facts).problem else {
        return false;
    };
    let no_policy = facts.access.as_ref().is_some_and(|a| a.policy.is_none());
    no_policy
        || matches!(
            problem,
            S3Problem::BucketNotFound { .. } | S3Problem::BucketOutsideRegion { .. } | S3Problem::ReadPermissionMissing { .. }
        )
}

/// Whether the object is a stalled one tried again (unedited since it stalled): it may be given
/// its bucket's last failing inspection, made within the retry period.
fn is_stalled_retry(obj: &SnapshotExport) -> bool {
    obj.status.as_ref().is_some_and(|s| {
        s.observed_generation == obj.metadata.generation
            && crate::api::conditions::find(&s.conditions, crate::api::conditions::STALLED).is_some_and(|c| c.status == "True")
    })
}

/// The node group of a snapshot whose node groups are not known: a single-node cluster's (and
/// every snapshot's first default id).
fn first_node_group() -> Vec<String> {
    vec!["0001".to_string()]
}

/// What the preflight's report means for the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Request the copy; with a `BucketPolicyNotEvaluated` and a `BucketPubliclyAccessible`
    /// Warning to publish first.
    Proceed { public_warning: Option<String>, policy_warning: Option<String> },
    /// Do not request it: this decision instead.
    Stop(Verdict),
}

/// The gate for a report (pure). `earlier_intent`: an earlier request's outcome is unknown (its
/// intent is recorded), so it may be at work: the key it writes is no collision (look again;
/// objects written under an intent are adopted) and no failure may clear its intent.
pub fn gate(report: &Report, earlier_intent: bool, refuse_public: bool) -> Gate {
    if earlier_intent && matches!(report.problem, Some(S3Problem::ObjectAlreadyExists { .. })) {
        return Gate::Stop(Verdict::Recheck);
    }
    if let Some(message) = report.failure_message() {
        let reason = report.problem.as_ref().map(S3Problem::reason).unwrap_or("PreflightFailed");
        return Gate::Stop(Verdict::Stalled { reason: reason.into(), message, clear_intent: !earlier_intent });
    }
    match report.public_message() {
        Some(message) if refuse_public => Gate::Stop(Verdict::Stalled {
            reason: PUBLIC_REASON.into(),
            message: format!("{message} The operator runs with --refuse-public-buckets, so it does not export there."),
            clear_intent: !earlier_intent,
        }),
        public_warning => Gate::Proceed { public_warning, policy_warning: report.not_evaluated_message() },
    }
}

/// The safety settings of `run`.
#[derive(Clone, Debug, Default)]
pub struct SafetySettings {
    /// The export policy file, re-read when it changes.
    pub export_policy_file: Option<std::path::PathBuf>,
    /// `NAMESPACE_GLOB=BUCKET_GLOB[,SOURCE_GLOB[,CLUSTER_GLOB]]` rules added to the file's.
    pub allow_export: Vec<String>,
    /// Inspect the bucket before each export's CopySnapshot.
    pub preflight: bool,
    pub refuse_public_buckets: bool,
}

/// The export policy and preflight from the settings; an unusable policy stops the start.
///
/// The preflight's S3 calls pass `pacer`, the gate (rate limit and metrics) of every other AWS call.
pub fn export_safety(
    args: &SafetySettings,
    aws: &crate::aws::AwsSettings,
    config: &aws_config::SdkConfig,
    region: &str,
    pacer: crate::aws::limit::Pacer,
) -> Result<ExportSafety, String> {
    let rules = args
        .allow_export
        .iter()
        .filter(|r| !r.trim().is_empty())
        .map(|r| crate::safety::policy::Rule::parse_flag(r))
        .collect::<Result<Vec<_>, _>>()?;
    let policy = PolicySource::new(args.export_policy_file.clone(), rules)?;
    let rules = policy.current().map(|p| p.rules.len()).unwrap_or_default();
    if rules == 0 {
        tracing::warn!("the export policy has no rule: every S3 export is refused (see --allow-export and --export-policy-file)");
    }
    tracing::info!(rules, file = ?policy.file(), preflight = args.preflight, refuse_public_buckets = args.refuse_public_buckets, "export policy");
    let preflight = args.preflight.then(|| {
        PreflightConfig::new(
            Arc::new(crate::aws::SdkBuckets::new(config, aws.s3_path_style).with_pacer(pacer.clone())),
            region.to_string(),
            args.refuse_public_buckets,
        )
    });
    let sources: Arc<dyn SourceInspector> = Arc::new(crate::aws::SdkSources::new(config).with_pacer(pacer));
    Ok(ExportSafety { policy: Arc::new(policy), preflight, sources: Some(sources) })
}

/// The verdict for a policy refusal.
pub fn refused(refusal: &Refusal) -> Verdict {
    Verdict::Stalled { reason: Refusal::REASON.into(), message: refusal.message(), clear_intent: true }
}

/// The verdict when the bucket could not be inspected.
pub fn inspection_failed(bucket: &str, err: &AwsError) -> Verdict {
    match err {
        AwsError::Transient { .. } => Verdict::RetryLater(err.clone()),
        AwsError::Fault { operation, fault } => {
            if matches!(fault, CopyFault::AccessDenied { .. }) {
                Verdict::Stalled {
                    reason: INSPECTION_DENIED_REASON.into(),
                    message: inspection_denied_message(bucket, operation),
                    clear_intent: true,
                }
            } else {
                Verdict::Stalled {
                    reason: INSPECTION_FAILED_REASON.into(),
                    message: format!(
                        "The operator cannot inspect bucket {bucket} before exporting: {operation} failed: {}. Check the bucket, or run the operator with --preflight=false (CopySnapshot's own checks then apply).",
                        fault.message()
                    ),
                    clear_intent: true,
                }
            }
        }
    }
}

pub fn inspection_denied_message(bucket: &str, operation: &str) -> String {
    format!(
        "The operator cannot inspect bucket {bucket} (AccessDenied on {operation}); grant its role {INSPECTION_ACTIONS} on the bucket, or run the operator with --preflight=false (CopySnapshot's own checks then apply). A bucket in another account is refused this way too (ElastiCache exports only to buckets the account owns)."
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safety::policy_statement;
    use crate::safety::testing::*;

    #[test]
    fn the_policy_is_checked_while_an_intent_is_recorded_and_skipped_only_once_accepted() {
        use crate::api::Phase;
        let safety = ExportSafety { policy: Arc::new(PolicySource::new(None, vec![]).unwrap()), preflight: None, sources: None };
        let mut obj = SnapshotExport::new("x", SnapshotExportSpec::new("src", "dst", Some("bkt")));
        obj.metadata.namespace = Some("team-a".into());
        let at = || Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()));
        let fresh = SnapshotExportStatus::default();
        let intent = SnapshotExportStatus { copy_requested_at: at(), attempts: 1, ..Default::default() };
        let accepted = SnapshotExportStatus { copy_accepted_at: at(), phase: Some(Phase::Failed), ..intent.clone() };
        let clear = |v: Option<Verdict>| match v {
            Some(Verdict::Stalled { reason, clear_intent, .. }) => format!("{reason}:{clear_intent}"),
            other => format!("{other:?}"),
        };
        assert_eq!(clear(safety.refusal(&obj, &fresh)), "ExportNotAllowed:true");
        // An unknown outcome does not let a refused object through; it keeps its intent.
        assert_eq!(clear(safety.refusal(&obj, &intent)), "ExportNotAllowed:false");
        assert_eq!(safety.refusal(&obj, &accepted), None, "an accepted request is followed to its end");
    }

    #[test]
    fn gate_table() {
        let ok = evaluate(&facts(good()));
        let mut a = good();
        a.acl = acl(&["READ"]);
        let no_write = evaluate(&facts(a));
        let mut a = good();
        a.target_keys = vec![("t-0001.rdb".into(), true)];
        let taken = evaluate(&facts(a));
        let mut a = good();
        a.public_access_block = None;
        let public = evaluate(&facts(a));
        let kind = |g: Gate| match g {
            Gate::Proceed { public_warning: None, policy_warning: None } => "proceed".to_string(),
            Gate::Proceed { public_warning: Some(_), policy_warning: None } => "proceed+warning".to_string(),
            Gate::Proceed { public_warning: None, policy_warning: Some(_) } => "proceed+not-evaluated".to_string(),
            Gate::Proceed { .. } => "proceed+both".to_string(),
            Gate::Stop(Verdict::Recheck) => "recheck".to_string(),
            Gate::Stop(Verdict::Stalled { reason, clear_intent, .. }) => {
                format!("stall:{reason}:{}", if clear_intent { "clear" } else { "keep" })
            }
            Gate::Stop(other) => format!("{other:?}"),
        };
        let mut a = good();
        a.acl = acl(&[]);
        let mut allow = policy_statement(B, R);
        allow["Condition"] = serde_json::json!({"StringEquals": {"aws:SourceAccount": "111122223333"}});
        a.policy = policy_doc(serde_json::json!([allow, tls_only_deny()]));
        let unevaluable = evaluate(&facts(a));
        let cases = [
            (&ok, false, false, "proceed"),
            // a condition the preflight cannot evaluate: CopySnapshot decides, with a Warning
            (&unevaluable, false, false, "proceed+not-evaluated"),
            (&unevaluable, false, true, "proceed+not-evaluated"),
            (&ok, true, true, "proceed"),
            (&no_write, false, false, "stall:S3WritePermissionMissing:clear"),
            // an earlier request may be in flight: keep its intent
            (&no_write, true, false, "stall:S3WritePermissionMissing:keep"),
            (&taken, false, false, "stall:S3ObjectAlreadyExists:clear"),
            // the key may be the earlier request's own object: look again
            (&taken, true, false, "recheck"),
            (&public, false, false, "proceed+warning"),
            (&public, false, true, "stall:BucketPubliclyAccessible:clear"),
            (&public, true, true, "stall:BucketPubliclyAccessible:keep"),
        ];
        for (report, intent, refuse, want) in cases {
            assert_eq!(kind(gate(report, intent, refuse)), want, "intent {intent} refuse {refuse}: {:?}", report.problem);
        }
    }

    #[test]
    fn the_keys_are_skipped_only_when_no_key_could_change_the_verdict() {
        let unlisted = |f: &dyn Fn(&mut crate::safety::facts::AccessFacts)| {
            let mut a = good();
            a.target_keys = vec![];
            f(&mut a);
            fails_whatever_the_keys(&facts(a))
        };
        // ACLs disabled: the policy alone grants, here PutObject only under the export's prefix.
        let scoped = |a: &mut crate::safety::facts::AccessFacts, put: &str| {
            a.acl = acl(&[]);
            a.object_ownership = Some("BucketOwnerEnforced".into());
            let mut allow = policy_statement(B, R);
            allow["Resource"] = serde_json::json!([format!("arn:aws:s3:::{B}"), format!("arn:aws:s3:::{B}/{put}")]);
            a.policy = policy_doc(serde_json::json!([allow]));
        };
        type Vary<'a> = &'a dyn Fn(&mut crate::safety::facts::AccessFacts);
        let cases: [(&str, Vary, bool); 7] = [
            ("a bucket that passes", &|_| {}, false),
            ("WRITE missing, no policy: the ACL decides, whatever the key", &|a| a.acl = acl(&["READ", "READ_ACP"]), true),
            ("READ_ACP missing, no policy", &|a| a.acl = acl(&["READ", "WRITE"]), true),
            (
                "READ missing under a policy: checked before WRITE",
                &|a| {
                    a.acl = acl(&["WRITE", "READ_ACP"]);
                    a.policy = policy_doc(serde_json::json!([tls_only_deny()]));
                },
                true,
            ),
            ("WRITE granted by prefix: the placeholder key fails, the export's own may not", &|a| scoped(a, "nightly-*"), false),
            (
                "READ_ACP missing after a prefix-scoped WRITE: the key decides which is first",
                &|a| {
                    scoped(a, "nightly-*");
                    a.policy = a.policy.take().map(|p| p.replace("s3:GetBucketAcl", "s3:GetBucketAclX"));
                },
                false,
            ),
            ("a public bucket is no problem here (a taken key still matters)", &|a| a.public_access_block = None, false),
        ];
        for (what, f, want) in cases {
            assert_eq!(unlisted(f), want, "{what}");
        }
        let mut gone = facts(good());
        gone.location = None;
        gone.access = None;
        assert!(fails_whatever_the_keys(&gone), "a bucket that does not exist");
    }

    #[test]
    fn an_unevaluable_condition_is_a_warning_naming_the_bucket_and_the_condition() {
        let mut a = good();
        a.acl = acl(&[]);
        a.object_ownership = Some("BucketOwnerEnforced".into());
        let mut deny = tls_only_deny();
        deny["Condition"] = serde_json::json!({"StringNotEquals": {"aws:SourceVpce": "vpce-1"}});
        a.policy = policy_doc(serde_json::json!([policy_statement(B, R), deny]));
        let report = evaluate(&facts(a));
        assert!(report.problem.is_none(), "{report:#?}");
        let Gate::Proceed { policy_warning: Some(note), .. } = gate(&report, false, true) else { panic!("{report:#?}") };
        assert!(note.contains("bucket policy of bkt") && note.contains("StringNotEquals aws:SourceVpce"), "{note}");
        assert!(note.contains("CopySnapshot decides"), "{note}");
        let out = crate::safety::check_bucket::render(&report, true);
        assert!(out.contains("WARN  ElastiCache has READ (List and Read): not evaluated"), "{out}");
        assert!(out.contains("RESULT: an export to s3://bkt may succeed"), "{out}");
    }

    #[test]
    fn inspection_errors() {
        let denied = AwsError::classify("GetBucketAcl", Some("AccessDenied"), Some("Access Denied"), Some(403));
        let Verdict::Stalled { reason, message, .. } = inspection_failed("bkt", &denied) else { panic!() };
        assert_eq!(reason, INSPECTION_DENIED_REASON);
        assert!(message.starts_with("The operator cannot inspect bucket bkt (AccessDenied on GetBucketAcl); grant its role s3:GetBucketLocation, s3:GetBucketAcl"), "{message}");
        assert!(message.contains("--preflight=false"), "{message}");
        let slow = AwsError::classify("GetBucketAcl", Some("SlowDown"), None, Some(503));
        assert!(matches!(inspection_failed("bkt", &slow), Verdict::RetryLater(_)));
    }
}
