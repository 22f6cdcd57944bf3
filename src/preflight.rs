//! Safe exports (docs/safe-exports.md): the export policy gate and the bucket preflight, as the
//! reconciler uses them, plus the `check-bucket` command.
//!
//! The preflight runs right before an export's CopySnapshot is requested (never on a poll). It
//! inspects the bucket (`crate::aws::BucketInspector`) and evaluates the facts in a pure
//! function ([`evaluate`]), in the documented order:
//!
//! 1. the bucket exists (GetBucketLocation);
//! 2. it is in the snapshots' region (the empty LocationConstraint is us-east-1);
//! 3. ElastiCache has READ, then WRITE, then READ_ACP: an ACL grant to the partition's canonical
//!    ID (FULL_CONTROL counts; ACL grants do not count when ACLs are disabled by
//!    `BucketOwnerEnforced`), or a bucket policy `Allow` for the service principal
//!    `<region>.elasticache-snapshot.amazonaws.com` (READ: s3:ListBucket and
//!    s3:GetBucketLocation, WRITE: s3:PutObject on the key, READ_ACP: s3:GetBucketAcl; a
//!    matching `Deny` wins);
//! 4. the first key `<target>-0001.rdb` is free;
//! 5. the bucket is not publicly accessible: Block Public Access fully on, no ACL grant to
//!    AllUsers / AuthenticatedUsers, no policy open to everyone. A finding is a Warning Event
//!    `BucketPubliclyAccessible` (a stall with `--refuse-public-buckets`).
//!
//! A failure gives the reason and message of the documented CopySnapshot error it predicts
//! ([`S3Problem`]). Bucket ownership is left to CopySnapshot (S3BucketNotOwned).

use crate::api::{SnapshotExport, SnapshotExportSpec, SnapshotExportStatus};
use crate::aws::{
    export_object_key, AwsError, BucketAcl, BucketInspector, CopyFault, Grantee, PublicAccessBlock, S3Problem, INSPECTION_ACTIONS,
};
use crate::events::Events;
use crate::policy::{ExportRequest, PolicySource, Refusal};
use crate::reconcile::decide::{retry_later, Decision};
use crate::reconcile::status::EventNote;
use crate::reconcile::Context;
use kube::ResourceExt;
use serde_json::{json, Value};
use std::process::ExitCode;
use std::sync::Arc;

pub const PUBLIC_REASON: &str = "BucketPubliclyAccessible";
pub const INSPECTION_DENIED_REASON: &str = "BucketInspectionDenied";
pub const INSPECTION_FAILED_REASON: &str = "BucketInspectionFailed";

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// ElastiCache's canonical user ID in the partition of `region`.
pub fn canonical_id(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "b14d6a125bdf69854ed8ef2e71d8a20b7c490f252229b806e514966e490b8d83"
    } else if region.starts_with("us-gov-") {
        "40fa568277ad703bd160f66ae4f83fc9dfdfd06c2f1b5060ca22442ac3ef8be6"
    } else {
        "540804c33a284a299d2547575ce1010f2312ef3da9b3a053c8bc45bf233e4353"
    }
}

/// The ARN partition of `region`.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The service principal ElastiCache exports with in `region`.
pub fn service_principal(region: &str) -> String {
    format!("{region}.elasticache-snapshot.amazonaws.com")
}

/// The bucket policy statement that grants ElastiCache what an export needs.
pub fn policy_statement(bucket: &str, region: &str) -> Value {
    let arn = format!("arn:{}:s3:::{bucket}", partition(region));
    json!({
        "Sid": "ElastiCacheSnapshotExport",
        "Effect": "Allow",
        "Principal": {"Service": service_principal(region)},
        "Action": ["s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:GetBucketAcl", "s3:ListMultipartUploadParts", "s3:ListBucketMultipartUploads", "s3:GetBucketLocation"],
        "Resource": [arn.clone(), format!("{arn}/*")]
    })
}

/// The three permissions ElastiCache needs, in the order CopySnapshot checks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    Read,
    Write,
    ReadAcp,
}

impl Permission {
    pub const ALL: [Permission; 3] = [Permission::Read, Permission::Write, Permission::ReadAcp];

    pub fn acl_name(self) -> &'static str {
        match self {
            Self::Read => "READ",
            Self::Write => "WRITE",
            Self::ReadAcp => "READ_ACP",
        }
    }

    /// The console's words for it.
    pub fn console_name(self) -> &'static str {
        match self {
            Self::Read => "List and Read",
            Self::Write => "Upload/Delete",
            Self::ReadAcp => "View Permissions",
        }
    }

    /// Bucket policy actions that give it (all are needed).
    pub fn policy_actions(self) -> &'static [&'static str] {
        match self {
            Self::Read => &["s3:ListBucket", "s3:GetBucketLocation"],
            Self::Write => &["s3:PutObject"],
            Self::ReadAcp => &["s3:GetBucketAcl"],
        }
    }

    pub fn problem(self, bucket: &str) -> S3Problem {
        let bucket = bucket.to_string();
        match self {
            Self::Read => S3Problem::ReadPermissionMissing { bucket },
            Self::Write => S3Problem::WritePermissionMissing { bucket },
            Self::ReadAcp => S3Problem::ReadAcpPermissionMissing { bucket },
        }
    }
}

/// What inspection found out about a bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketFacts {
    pub bucket: String,
    /// The snapshots' region.
    pub region: String,
    /// The bucket's region; `None` when the bucket does not exist.
    pub location: Option<String>,
    /// Read only when the bucket exists in the right region.
    pub access: Option<AccessFacts>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessFacts {
    pub acl: BucketAcl,
    pub object_ownership: Option<String>,
    pub policy: Option<String>,
    /// GetBucketPolicyStatus, when known.
    pub policy_is_public: Option<bool>,
    pub public_access_block: Option<PublicAccessBlock>,
    /// The first target key and whether it exists (`None`: no target name given).
    pub first_key: Option<(String, bool)>,
}

impl AccessFacts {
    pub fn acls_disabled(&self) -> bool {
        self.object_ownership.as_deref() == Some("BucketOwnerEnforced")
    }
}

/// Gather the facts: GetBucketLocation first; the rest only for a bucket in the right region.
pub async fn inspect(aws: &dyn BucketInspector, bucket: &str, region: &str, first_key: Option<&str>) -> Result<BucketFacts, AwsError> {
    let location = aws.bucket_region(bucket).await?;
    let mut facts = BucketFacts { bucket: bucket.into(), region: region.into(), location, access: None };
    if facts.location.as_deref() != Some(region) {
        return Ok(facts);
    }
    let (acl, object_ownership, policy, public_access_block) = futures::try_join!(
        aws.bucket_acl(bucket),
        aws.object_ownership(bucket),
        aws.bucket_policy(bucket),
        aws.public_access_block(bucket)
    )?;
    let policy_is_public = if policy.is_some() { aws.policy_is_public(bucket).await? } else { None };
    let first_key = match first_key {
        Some(key) => Some((key.to_string(), aws.object_exists(bucket, key).await?)),
        None => None,
    };
    facts.access = Some(AccessFacts { acl, object_ownership, policy, policy_is_public, public_access_block, first_key });
    Ok(facts)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    Warn,
    Skip,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Fail => "FAIL",
            Self::Warn => "WARN",
            Self::Skip => "SKIP",
        }
    }
}

/// One check's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub outcome: Outcome,
    pub detail: String,
    /// The exact fix, for people (check-bucket prints it).
    pub fix: Option<String>,
    /// A one-line fix, for conditions and Events.
    pub short_fix: Option<String>,
}

/// The evaluation of a bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub bucket: String,
    pub region: String,
    pub checks: Vec<Check>,
    /// The first failing check, as the documented CopySnapshot error it predicts.
    pub problem: Option<S3Problem>,
    /// Why the bucket is (or may become) publicly accessible; empty when it is not.
    pub public: Vec<String>,
}

impl Report {
    /// Whether an export would succeed (a public bucket counts when `refuse_public`).
    pub fn export_would_succeed(&self, refuse_public: bool) -> bool {
        self.problem.is_none() && (self.public.is_empty() || !refuse_public)
    }

    fn short_fix(&self) -> Option<&str> {
        self.checks.iter().find(|c| c.outcome == Outcome::Fail).and_then(|c| c.short_fix.as_deref())
    }

    /// The message for a failed preflight: the documented error, its documented solution (as
    /// after CopySnapshot), then the exact fix.
    pub fn failure_message(&self) -> Option<String> {
        let problem = self.problem.as_ref()?;
        let fault = CopyFault::S3(problem.clone());
        let fix = self.short_fix().map(|f| format!(" {f}")).unwrap_or_default();
        Some(format!("{} {}{fix} (Found by the operator's preflight, before any CopySnapshot call.)", fault.message(), fault.solution()))
    }

    /// The message for a public bucket.
    pub fn public_message(&self) -> Option<String> {
        if self.public.is_empty() {
            return None;
        }
        Some(format!(
            "The S3 bucket {} is or may become publicly accessible: {}. Exported backups are unencrypted and must not be readable by others: turn on all four S3 Block Public Access settings and remove public grants (aws s3api put-public-access-block --bucket {} --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true).",
            self.bucket,
            self.public.join("; "),
            self.bucket
        ))
    }
}

/// Evaluate the facts (pure).
pub fn evaluate(facts: &BucketFacts) -> Report {
    let bucket = facts.bucket.as_str();
    let region = facts.region.as_str();
    let mut report = Report { bucket: bucket.into(), region: region.into(), checks: Vec::new(), problem: None, public: Vec::new() };
    let create = format!(
        "Create the bucket in {region}: aws s3api create-bucket --bucket {bucket} --region {region}{}",
        if region == "us-east-1" { String::new() } else { format!(" --create-bucket-configuration LocationConstraint={region}") }
    );
    let fail = |report: &mut Report, name: String, detail: String, fix: String, short: String, problem: S3Problem| {
        report.checks.push(Check { name, outcome: Outcome::Fail, detail, fix: Some(fix), short_fix: Some(short) });
        if report.problem.is_none() {
            report.problem = Some(problem);
        }
    };
    let skip = |report: &mut Report, name: String, why: &str| {
        report.checks.push(Check { name, outcome: Outcome::Skip, detail: why.into(), fix: None, short_fix: None });
    };
    let names: Vec<String> = std::iter::once("bucket exists".to_string())
        .chain(std::iter::once(format!("bucket is in the snapshots' region ({region})")))
        .chain(Permission::ALL.iter().map(|p| format!("ElastiCache has {} ({})", p.acl_name(), p.console_name())))
        .collect();

    let Some(location) = &facts.location else {
        let problem = S3Problem::BucketNotFound { bucket: bucket.into() };
        fail(&mut report, names[0].clone(), problem.to_string(), create.clone(), format!("Fix: create the bucket in {region}."), problem);
        for name in &names[1..] {
            skip(&mut report, name.clone(), "the bucket does not exist");
        }
        return report;
    };
    report.checks.push(Check {
        name: names[0].clone(),
        outcome: Outcome::Pass,
        detail: format!("s3://{bucket}"),
        fix: None,
        short_fix: None,
    });
    if location != region {
        let problem = S3Problem::BucketOutsideRegion { bucket: bucket.into() };
        fail(
            &mut report,
            names[1].clone(),
            format!("{problem} The bucket is in {location}; the snapshots are in {region}."),
            format!("Export to a bucket in {region} (ElastiCache exports only within a region). {create}"),
            format!("Fix: the bucket is in {location}; use a bucket in {region}."),
            problem,
        );
        for name in &names[2..] {
            skip(&mut report, name.clone(), "the bucket is in another region");
        }
        return report;
    }
    report.checks.push(Check { name: names[1].clone(), outcome: Outcome::Pass, detail: location.clone(), fix: None, short_fix: None });
    let access = facts.access.clone().unwrap_or_default();
    let cid = canonical_id(region);
    let principal = service_principal(region);
    let key_for_policy = access.first_key.as_ref().map(|(k, _)| k.clone()).unwrap_or_else(|| "export-0001.rdb".into());
    let statements = policy_statements(access.policy.as_deref());
    for (i, perm) in Permission::ALL.iter().enumerate() {
        let acl_grant = !access.acls_disabled()
            && access.acl.grants.iter().any(|g| {
                g.grantee == Grantee::CanonicalUser(cid.into()) && (g.permission == perm.acl_name() || g.permission == "FULL_CONTROL")
            });
        let by_policy = policy_allows_all(&statements, region, bucket, perm.policy_actions(), &key_for_policy);
        let name = names[2 + i].clone();
        if acl_grant || by_policy {
            let how = if acl_grant {
                format!("bucket ACL grant to ElastiCache's canonical ID {cid}")
            } else {
                format!("bucket policy allows {principal} {}", perm.policy_actions().join(", "))
            };
            report.checks.push(Check { name, outcome: Outcome::Pass, detail: how, fix: None, short_fix: None });
            continue;
        }
        let problem = perm.problem(bucket);
        let statement = policy_statement(bucket, region).to_string();
        let (fix, short) = if access.acls_disabled() {
            (
                format!("ACLs are disabled on this bucket (BucketOwnerEnforced), so add this statement to the bucket policy (it grants ElastiCache everything an export needs):\n{statement}"),
                format!(
                    "Fix: ACLs are disabled (BucketOwnerEnforced); allow the service principal {principal} {} on arn:{}:s3:::{bucket} in the bucket policy.",
                    perm.policy_actions().join(" and "),
                    partition(region)
                ),
            )
        } else {
            (
                format!(
                    "Grant ElastiCache's canonical ID for this partition ({cid}) {} through the bucket ACL, keeping the existing grants:\n{}\nor (ACLs disabled, opt-in regions) add this statement to the bucket policy:\n{statement}",
                    perm.acl_name(),
                    put_bucket_acl_command(bucket, &access.acl, cid)
                ),
                format!(
                    "Fix: grant {} to ElastiCache's canonical ID {cid} in the bucket ACL, or allow the service principal {principal} {} in the bucket policy.",
                    perm.acl_name(),
                    perm.policy_actions().join(" and ")
                ),
            )
        };
        fail(&mut report, name, problem.to_string(), fix, short, problem);
    }
    match &access.first_key {
        Some((key, true)) => {
            let problem = S3Problem::ObjectAlreadyExists { bucket: bucket.into(), key: key.clone() };
            fail(
                &mut report,
                format!("key {key} is free"),
                problem.to_string(),
                format!(
                    "Choose another target snapshot name, or export to another bucket; the operator never overwrites s3://{bucket}/{key}."
                ),
                "Fix: create a new SnapshotExport with another targetSnapshotName.".into(),
                problem,
            );
        }
        Some((key, false)) => report.checks.push(Check {
            name: format!("key {key} is free"),
            outcome: Outcome::Pass,
            detail: format!("s3://{bucket}/{key} does not exist"),
            fix: None,
            short_fix: None,
        }),
        None => skip(&mut report, "target key is free".into(), "no target snapshot name given (--target-snapshot-name)"),
    }
    report.public = public_findings(&access, &statements);
    let public_name = "bucket is not publicly accessible".to_string();
    if report.public.is_empty() {
        report.checks.push(Check {
            name: public_name,
            outcome: Outcome::Pass,
            detail: "Block Public Access is fully on".into(),
            fix: None,
            short_fix: None,
        });
    } else {
        report.checks.push(Check {
            name: public_name,
            outcome: Outcome::Warn,
            detail: report.public.join("; "),
            fix: Some(format!("aws s3api put-public-access-block --bucket {bucket} --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true (and remove grants to AllUsers / AuthenticatedUsers and policy statements for Principal \"*\")")),
            short_fix: None,
        });
    }
    report
}

/// `aws s3api put-bucket-acl` that keeps the existing grants and adds ElastiCache's three.
fn put_bucket_acl_command(bucket: &str, acl: &BucketAcl, cid: &str) -> String {
    let mut parts = vec![format!("aws s3api put-bucket-acl --bucket {bucket}")];
    for (perm, flag) in
        [("FULL_CONTROL", "full-control"), ("READ", "read"), ("WRITE", "write"), ("READ_ACP", "read-acp"), ("WRITE_ACP", "write-acp")]
    {
        let mut grantees: Vec<String> = acl.grants.iter().filter(|g| g.permission == perm).map(|g| g.grantee.cli()).collect();
        if matches!(perm, "READ" | "WRITE" | "READ_ACP") {
            grantees.push(format!("id={cid}"));
        }
        if perm == "FULL_CONTROL" {
            if let Some(owner) = &acl.owner_id {
                grantees.push(format!("id={owner}"));
            }
        }
        grantees.sort();
        grantees.dedup();
        if !grantees.is_empty() {
            parts.push(format!("--grant-{flag} {}", grantees.join(",")));
        }
    }
    parts.join(" ")
}

fn as_list(v: Option<&Value>) -> Vec<&Value> {
    match v {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(items)) => items.iter().collect(),
        Some(other) => vec![other],
    }
}

fn policy_statements(policy: Option<&str>) -> Vec<Value> {
    let Some(doc) = policy.and_then(|p| serde_json::from_str::<Value>(p).ok()) else {
        return vec![];
    };
    as_list(doc.get("Statement")).into_iter().filter(|s| s.is_object()).cloned().collect()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    as_list(v).into_iter().filter_map(|x| x.as_str().map(str::to_string)).collect()
}

/// Whether a statement's principal is everyone.
fn principal_is_everyone(st: &Value) -> bool {
    match st.get("Principal") {
        Some(Value::String(s)) => s == "*",
        Some(Value::Object(map)) => strings(map.get("AWS")).iter().any(|s| s == "*"),
        _ => false,
    }
}

fn principal_matches(st: &Value, service: &str) -> bool {
    if st.get("NotPrincipal").is_some() {
        return false;
    }
    principal_is_everyone(st)
        || matches!(st.get("Principal"), Some(Value::Object(map)) if strings(map.get("Service")).iter().any(|s| s == service))
}

fn list_matches(st: &Value, key: &str, not_key: &str, value: &str, case_insensitive: bool) -> bool {
    let matches = |patterns: Vec<String>| {
        patterns.iter().any(|p| {
            if case_insensitive {
                crate::policy::glob_match(&p.to_ascii_lowercase(), &value.to_ascii_lowercase())
            } else {
                crate::policy::glob_match(p, value)
            }
        })
    };
    if st.get(key).is_some() {
        matches(strings(st.get(key)))
    } else if st.get(not_key).is_some() {
        !matches(strings(st.get(not_key)))
    } else {
        false
    }
}

/// Whether the bucket policy lets ElastiCache's service principal do every one of `actions`
/// (conditions are not evaluated; a matching Deny wins).
fn policy_allows_all(statements: &[Value], region: &str, bucket: &str, actions: &[&str], key: &str) -> bool {
    let service = service_principal(region);
    let bucket_arn = format!("arn:{}:s3:::{bucket}", partition(region));
    actions.iter().all(|action| {
        let arn = if *action == "s3:PutObject" { format!("{bucket_arn}/{key}") } else { bucket_arn.clone() };
        let mut allowed = false;
        for st in statements {
            if !principal_matches(st, &service)
                || !list_matches(st, "Action", "NotAction", action, true)
                || !list_matches(st, "Resource", "NotResource", &arn, false)
            {
                continue;
            }
            match st.get("Effect").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
                Some("deny") => return false,
                Some("allow") => allowed = true,
                _ => {}
            }
        }
        allowed
    })
}

/// Why the bucket is or may become public.
fn public_findings(access: &AccessFacts, statements: &[Value]) -> Vec<String> {
    let mut found = Vec::new();
    let pab = access.public_access_block.unwrap_or_default();
    match access.public_access_block {
        None => found.push("S3 Block Public Access is not configured on the bucket".to_string()),
        Some(p) if !p.all_on() => {
            let off: Vec<&str> = [
                ("BlockPublicAcls", p.block_public_acls),
                ("IgnorePublicAcls", p.ignore_public_acls),
                ("BlockPublicPolicy", p.block_public_policy),
                ("RestrictPublicBuckets", p.restrict_public_buckets),
            ]
            .into_iter()
            .filter(|(_, on)| !on)
            .map(|(n, _)| n)
            .collect();
            found.push(format!("S3 Block Public Access is off for {}", off.join(", ")));
        }
        Some(_) => {}
    }
    if !access.acls_disabled() && !pab.ignore_public_acls {
        for (uri, who) in [(ALL_USERS, "everyone (AllUsers)"), (AUTHENTICATED_USERS, "every AWS account (AuthenticatedUsers)")] {
            let perms: Vec<&str> =
                access.acl.grants.iter().filter(|g| g.grantee == Grantee::Group(uri.into())).map(|g| g.permission.as_str()).collect();
            if !perms.is_empty() {
                found.push(format!("the bucket ACL grants {} to {who}", perms.join(", ")));
            }
        }
    }
    if !pab.restrict_public_buckets {
        let public_policy = access.policy_is_public.unwrap_or_else(|| {
            statements.iter().any(|st| {
                st.get("Effect").and_then(Value::as_str).is_some_and(|e| e.eq_ignore_ascii_case("allow"))
                    && principal_is_everyone(st)
                    && st.get("Condition").is_none()
            })
        });
        if public_policy {
            found.push("the bucket policy allows access to everyone (Principal \"*\")".to_string());
        }
    }
    found
}

/// Export policy and preflight configuration, kept in the reconciler's `Context`.
pub struct ExportSafety {
    pub policy: PolicySource,
    /// `None`: preflight off (`--preflight=false`, or no inspector).
    pub preflight: Option<PreflightConfig>,
}

pub struct PreflightConfig {
    pub inspector: Arc<dyn BucketInspector>,
    /// The snapshots' region (the operator's).
    pub region: String,
    pub refuse_public_buckets: bool,
    /// Bucket-level facts (location, ACL, ownership, policy, public access) by bucket, reused
    /// for [`BUCKET_FACTS_TTL`]: a batch of exports to one bucket inspects it once. The first
    /// target key is checked for every export.
    pub cache: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, BucketFacts)>>,
    /// Inspections in flight, by bucket: exports that arrive while a bucket is being inspected
    /// share that inspection's outcome (passing, failing or an error) instead of inspecting it
    /// again.
    inspecting: std::sync::Mutex<std::collections::HashMap<String, Inspection>>,
}

/// One inspection of a bucket, awaited by every export that needs it.
type Inspection = futures::future::Shared<futures::future::BoxFuture<'static, Result<BucketFacts, AwsError>>>;

/// How long inspected bucket facts are reused. Shorter than the stalled retry, so a bucket fixed
/// after a failed preflight is always inspected afresh.
pub const BUCKET_FACTS_TTL: std::time::Duration = std::time::Duration::from_secs(60);

impl PreflightConfig {
    pub fn new(inspector: Arc<dyn BucketInspector>, region: String, refuse_public_buckets: bool) -> Self {
        Self { inspector, region, refuse_public_buckets, cache: Default::default(), inspecting: Default::default() }
    }

    fn cached(&self, bucket: &str) -> Option<BucketFacts> {
        let cache = self.cache.lock().expect("preflight cache");
        cache.get(bucket).filter(|(at, _)| at.elapsed() < BUCKET_FACTS_TTL).map(|(_, f)| f.clone())
    }

    /// The bucket's facts with the first target key checked: bucket-level facts from the cache
    /// when fresh and passing, otherwise inspected now.
    async fn facts(&self, bucket: &str, key: &str) -> Result<BucketFacts, AwsError> {
        let mut facts = self.bucket_facts(bucket).await?;
        if let Some(access) = facts.access.as_mut() {
            access.first_key = Some((key.to_string(), self.inspector.object_exists(bucket, key).await?));
        }
        Ok(facts)
    }

    /// Bucket-level facts: from the cache when fresh, otherwise from the inspection of the bucket
    /// in flight, or from a new one.
    async fn bucket_facts(&self, bucket: &str) -> Result<BucketFacts, AwsError> {
        use futures::FutureExt;
        if let Some(facts) = self.cached(bucket) {
            return Ok(facts);
        }
        let inspection = {
            let mut inspecting = self.inspecting.lock().expect("preflight inspections");
            let new = || {
                let (inspector, bucket, region) = (self.inspector.clone(), bucket.to_string(), self.region.clone());
                async move { inspect(inspector.as_ref(), &bucket, &region, None).await }.boxed().shared()
            };
            inspecting.entry(bucket.to_string()).or_insert_with(new).clone()
        };
        let outcome = inspection.clone().await;
        {
            // The first to see it finish retires it: later exports look at the bucket afresh
            // (a failing bucket is never cached, so fixing it takes effect at the next attempt).
            let mut inspecting = self.inspecting.lock().expect("preflight inspections");
            if inspecting.get(bucket).is_some_and(|current| current.ptr_eq(&inspection)) {
                inspecting.remove(bucket);
            }
        }
        let facts = outcome?;
        // Only a bucket that passes is remembered: a failing one (or a public one that
        // --refuse-public-buckets refuses) is looked at every time.
        if evaluate(&facts).export_would_succeed(self.refuse_public_buckets) {
            self.cache.lock().expect("preflight cache").insert(bucket.to_string(), (std::time::Instant::now(), facts.clone()));
        }
        Ok(facts)
    }
}

impl Default for ExportSafety {
    /// Secure by default: no rule (every S3 export refused), no preflight.
    fn default() -> Self {
        Self { policy: PolicySource::default(), preflight: None }
    }
}

impl<A> Context<A> {
    /// Set the export policy and the preflight.
    pub fn with_export_safety(mut self, safety: ExportSafety) -> Self {
        self.safety = safety;
        self
    }
}

impl ExportSafety {
    /// The policy gate, before any AWS call: `Some(Stalled ExportNotAllowed)` when the policy
    /// refuses the object. Objects whose request AWS accepted are followed to the end whatever
    /// the policy says: refusing them now could not undo the request. A recorded intent alone
    /// does not skip the check (it would let a refused object request again); it only keeps
    /// the intent, since an earlier request's outcome is unknown.
    pub fn refusal(&self, obj: &SnapshotExport, status: &SnapshotExportStatus) -> Option<Decision> {
        if crate::reconcile::decide::is_accepted(status) {
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
                Decision::Stalled { reason, message, .. } => {
                    Decision::Stalled { reason, message, clear_intent: status.copy_requested_at.is_none() }
                }
                other => other,
            }),
        }
    }

    /// The preflight, for a `RequestCopy` decision: the decision to carry out (`RequestCopy`
    /// when the bucket is fine or preflight is off). A public bucket gets a Warning Event
    /// (or a stall with `--refuse-public-buckets`).
    pub async fn preflight(&self, spec: &SnapshotExportSpec, events: &Events, obj: &SnapshotExport) -> Decision {
        let (Some(config), Some(bucket)) = (&self.preflight, &spec.target_bucket) else {
            return Decision::RequestCopy;
        };
        let key = export_object_key(&spec.target_snapshot_name, "0001");
        // An earlier request whose outcome is unknown (its intent is recorded) may be at work:
        // the key it writes is not a collision (look again: objects written under an intent are
        // adopted), and no failure may clear its intent.
        let earlier_intent = obj.status.as_ref().is_some_and(|s| s.copy_requested_at.is_some());
        let facts = match config.facts(bucket, &key).await {
            Ok(facts) => facts,
            Err(err) => {
                return match inspection_failed(bucket, &err) {
                    Decision::Stalled { reason, message, .. } => Decision::Stalled { reason, message, clear_intent: !earlier_intent },
                    other => other,
                }
            }
        };
        let report = evaluate(&facts);
        match gate(&report, earlier_intent, config.refuse_public_buckets) {
            Gate::Stop(decision) => {
                if let Decision::Stalled { reason, .. } = &decision {
                    tracing::info!(object = %obj.name_any(), bucket = %bucket, %reason, "preflight refused the export before CopySnapshot");
                }
                decision
            }
            Gate::Proceed { public_warning } => {
                if let Some(note) = public_warning {
                    events.publish(obj, &EventNote { warning: true, reason: PUBLIC_REASON.into(), note }).await;
                }
                Decision::RequestCopy
            }
        }
    }
}

/// What the preflight's report means for the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Request the copy; with a `BucketPubliclyAccessible` Warning to publish first.
    Proceed { public_warning: Option<String> },
    /// Do not request it: this decision instead.
    Stop(Decision),
}

/// The gate for a report (pure). `earlier_intent`: an earlier request's outcome is unknown (its
/// intent is recorded), so it may be at work: the key it writes is no collision (look again;
/// objects written under an intent are adopted) and no failure may clear its intent.
pub fn gate(report: &Report, earlier_intent: bool, refuse_public: bool) -> Gate {
    if earlier_intent && matches!(report.problem, Some(S3Problem::ObjectAlreadyExists { .. })) {
        return Gate::Stop(Decision::Recheck);
    }
    if let Some(message) = report.failure_message() {
        let reason = report.problem.as_ref().map(S3Problem::reason).unwrap_or("PreflightFailed");
        return Gate::Stop(Decision::Stalled { reason: reason.into(), message, clear_intent: !earlier_intent });
    }
    match report.public_message() {
        Some(message) if refuse_public => Gate::Stop(Decision::Stalled {
            reason: PUBLIC_REASON.into(),
            message: format!("{message} The operator runs with --refuse-public-buckets, so it does not export there."),
            clear_intent: !earlier_intent,
        }),
        public_warning => Gate::Proceed { public_warning },
    }
}

/// The export policy and preflight from the `run` flags; an unusable policy stops the start.
///
/// The preflight's S3 calls pass `pacer`, the gate (rate limit and metrics) of every other AWS call.
pub fn export_safety(
    args: &crate::cli::RunArgs,
    config: &aws_config::SdkConfig,
    region: &str,
    pacer: crate::aws::limit::Pacer,
) -> Result<ExportSafety, String> {
    let rules = args
        .allow_export
        .iter()
        .filter(|r| !r.trim().is_empty())
        .map(|r| crate::policy::Rule::parse_flag(r))
        .collect::<Result<Vec<_>, _>>()?;
    let policy = PolicySource::new(args.export_policy_file.clone(), rules)?;
    let rules = policy.current().map(|p| p.rules.len()).unwrap_or_default();
    if rules == 0 {
        tracing::warn!("the export policy has no rule: every S3 export is refused (see --allow-export and --export-policy-file)");
    }
    tracing::info!(rules, file = ?policy.file(), preflight = args.preflight, refuse_public_buckets = args.refuse_public_buckets, "export policy");
    let preflight = args.preflight.then(|| {
        PreflightConfig::new(
            Arc::new(crate::aws::SdkBuckets::new(config, args.s3_path_style).with_pacer(pacer)),
            region.to_string(),
            args.refuse_public_buckets,
        )
    });
    Ok(ExportSafety { policy, preflight })
}

/// The decision for a policy refusal.
pub fn refused(refusal: &Refusal) -> Decision {
    Decision::Stalled { reason: Refusal::REASON.into(), message: refusal.message(), clear_intent: true }
}

/// The decision when the bucket could not be inspected.
pub fn inspection_failed(bucket: &str, err: &AwsError) -> Decision {
    match err {
        AwsError::Transient { .. } => retry_later(err),
        AwsError::Fault { operation, fault } => {
            if matches!(fault, CopyFault::AccessDenied { .. }) {
                Decision::Stalled {
                    reason: INSPECTION_DENIED_REASON.into(),
                    message: inspection_denied_message(bucket, operation),
                    clear_intent: true,
                }
            } else {
                Decision::Stalled {
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

/// `check-bucket`: run the preflight from a shell and print each check. Exit 0 when an export
/// would succeed, 1 when a check fails, 3 when the bucket could not be inspected, 2 for usage.
pub async fn check_bucket(args: crate::cli::CheckBucketArgs) -> ExitCode {
    let config = crate::aws::aws_sdk_config(args.region.clone()).await;
    let Some(region) = config.region().map(|r| r.to_string()) else {
        eprintln!("elasticache-export-operator check-bucket: no AWS region: pass --region or set AWS_REGION");
        return ExitCode::from(2);
    };
    let inspector = crate::aws::SdkBuckets::new(&config, args.s3_path_style);
    let key = args.target_snapshot_name.as_deref().map(|t| export_object_key(t, "0001"));
    println!("Checking s3://{} for ElastiCache exports from {region}", args.bucket);
    println!(
        "  partition {}, ElastiCache canonical ID {}, service principal {}",
        partition(&region),
        canonical_id(&region),
        service_principal(&region)
    );
    let facts = match inspect(&inspector, &args.bucket, &region, key.as_deref()).await {
        Ok(facts) => facts,
        Err(err) => {
            match &err {
                AwsError::Fault { operation, fault: CopyFault::AccessDenied { .. } } => {
                    println!("FAIL  bucket can be inspected\n      {}", inspection_denied_message(&args.bucket, operation))
                }
                other => println!("FAIL  bucket can be inspected\n      {other}"),
            }
            println!("RESULT: unknown: the bucket could not be inspected");
            return ExitCode::from(3);
        }
    };
    let report = evaluate(&facts);
    print!("{}", render(&report, args.refuse_public_buckets));
    if report.export_would_succeed(args.refuse_public_buckets) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The check-bucket output for a report.
pub fn render(report: &Report, refuse_public: bool) -> String {
    let mut out = String::new();
    for check in &report.checks {
        let outcome = if check.outcome == Outcome::Warn && refuse_public { Outcome::Fail } else { check.outcome };
        out.push_str(&format!("{}  {}: {}\n", outcome.label(), check.name, check.detail));
        if outcome != Outcome::Pass {
            if let Some(fix) = &check.fix {
                for (i, line) in fix.lines().enumerate() {
                    out.push_str(&format!("      {}{line}\n", if i == 0 { "fix: " } else { "" }));
                }
            }
        }
    }
    match &report.problem {
        Some(problem) => {
            out.push_str(&format!("RESULT: an export to s3://{} would fail: {} ({})\n", report.bucket, problem, problem.reason()))
        }
        None if refuse_public && !report.public.is_empty() => {
            out.push_str(&format!("RESULT: an export to s3://{} would be refused: {PUBLIC_REASON}\n", report.bucket))
        }
        None => out.push_str(&format!("RESULT: an export to s3://{} would succeed\n", report.bucket)),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Phase;
    use crate::aws::AclGrant;

    const B: &str = "bkt";
    const R: &str = "us-east-1";
    const EC: &str = "540804c33a284a299d2547575ce1010f2312ef3da9b3a053c8bc45bf233e4353";

    fn grant(id: &str, perm: &str) -> AclGrant {
        AclGrant { grantee: Grantee::CanonicalUser(id.into()), permission: perm.into() }
    }
    fn acl(perms: &[&str]) -> BucketAcl {
        let mut grants = vec![grant("owner", "FULL_CONTROL")];
        grants.extend(perms.iter().map(|p| grant(EC, p)));
        BucketAcl { owner_id: Some("owner".into()), grants }
    }
    fn facts(access: AccessFacts) -> BucketFacts {
        BucketFacts { bucket: B.into(), region: R.into(), location: Some(R.into()), access: Some(access) }
    }
    fn good() -> AccessFacts {
        AccessFacts {
            acl: acl(&["READ", "WRITE", "READ_ACP"]),
            public_access_block: Some(PublicAccessBlock::ALL_ON),
            first_key: Some(("t-0001.rdb".into(), false)),
            ..Default::default()
        }
    }
    fn policy_doc(statements: Value) -> Option<String> {
        Some(json!({"Version": "2012-10-17", "Statement": statements}).to_string())
    }
    fn reason(r: &Report) -> &str {
        r.problem.as_ref().map(S3Problem::reason).unwrap_or("ok")
    }

    #[test]
    fn canonical_ids_per_partition() {
        assert_eq!(canonical_id("us-east-1"), EC);
        assert_eq!(canonical_id("eu-central-2"), EC);
        assert_eq!(canonical_id("us-gov-west-1"), "40fa568277ad703bd160f66ae4f83fc9dfdfd06c2f1b5060ca22442ac3ef8be6");
        assert_eq!(canonical_id("cn-north-1"), "b14d6a125bdf69854ed8ef2e71d8a20b7c490f252229b806e514966e490b8d83");
        assert_eq!(partition("cn-northwest-1"), "aws-cn");
        assert_eq!(service_principal("ap-east-1"), "ap-east-1.elasticache-snapshot.amazonaws.com");
    }

    /// The preflight table: facts in, the documented reason out.
    #[test]
    fn preflight_table() {
        let missing = BucketFacts { bucket: B.into(), region: R.into(), location: None, access: None };
        let elsewhere = BucketFacts { bucket: B.into(), region: R.into(), location: Some("us-west-2".into()), access: None };
        let with = |f: &dyn Fn(&mut AccessFacts)| {
            let mut a = good();
            f(&mut a);
            facts(a)
        };
        let ec_policy = policy_doc(json!([policy_statement(B, R)]));
        let cases: Vec<(&str, BucketFacts, &str)> = vec![
            ("acl-granted", facts(good()), "ok"),
            ("full control counts", with(&|a| a.acl = acl(&["FULL_CONTROL"])), "ok"),
            ("missing bucket", missing, "S3BucketNotFound"),
            ("wrong region", elsewhere, "S3BucketOutsideRegion"),
            ("no READ", with(&|a| a.acl = acl(&["WRITE", "READ_ACP"])), "S3ReadPermissionMissing"),
            ("no WRITE", with(&|a| a.acl = acl(&["READ", "READ_ACP"])), "S3WritePermissionMissing"),
            ("no READ_ACP", with(&|a| a.acl = acl(&["READ", "WRITE"])), "S3ReadAcpPermissionMissing"),
            ("nothing: READ first", with(&|a| a.acl = acl(&[])), "S3ReadPermissionMissing"),
            (
                "other partition's id does not count",
                with(&|a| a.acl.grants = vec![grant("40fa568277ad703bd160f66ae4f83fc9dfdfd06c2f1b5060ca22442ac3ef8be6", "FULL_CONTROL")]),
                "S3ReadPermissionMissing",
            ),
            (
                "policy-granted, ACLs disabled",
                with(&|a| {
                    a.acl = acl(&[]);
                    a.object_ownership = Some("BucketOwnerEnforced".into());
                    a.policy = ec_policy.clone();
                }),
                "ok",
            ),
            (
                "ACL grants do not count when ACLs are disabled",
                with(&|a| a.object_ownership = Some("BucketOwnerEnforced".into())),
                "S3ReadPermissionMissing",
            ),
            (
                "policy for another region's principal",
                with(&|a| {
                    a.acl = acl(&[]);
                    a.policy = policy_doc(json!([policy_statement(B, "us-west-2")]));
                }),
                "S3ReadPermissionMissing",
            ),
            (
                "policy without GetBucketAcl",
                with(&|a| {
                    a.acl = acl(&[]);
                    let mut st = policy_statement(B, R);
                    st["Action"] = json!(["s3:ListBucket", "s3:GetBucketLocation", "s3:PutObject"]);
                    a.policy = policy_doc(json!([st]));
                }),
                "S3ReadAcpPermissionMissing",
            ),
            (
                "policy with s3:* and a single statement object",
                with(&|a| {
                    a.acl = acl(&[]);
                    let mut st = policy_statement(B, R);
                    st["Action"] = json!("s3:*");
                    a.policy = Some(json!({"Statement": st}).to_string());
                }),
                "ok",
            ),
            (
                "deny wins",
                with(&|a| {
                    a.acl = acl(&[]);
                    let mut deny = policy_statement(B, R);
                    deny["Effect"] = json!("Deny");
                    deny["Action"] = json!(["s3:PutObject"]);
                    a.policy = policy_doc(json!([policy_statement(B, R), deny]));
                }),
                "S3WritePermissionMissing",
            ),
            (
                "ACL and policy combine",
                with(&|a| {
                    a.acl = acl(&["READ", "WRITE"]);
                    let mut st = policy_statement(B, R);
                    st["Action"] = json!(["s3:GetBucketAcl"]);
                    a.policy = policy_doc(json!([st]));
                }),
                "ok",
            ),
            ("key collision", with(&|a| a.first_key = Some(("t-0001.rdb".into(), true))), "S3ObjectAlreadyExists"),
            (
                "grants come before the key",
                with(&|a| {
                    a.acl = acl(&["READ"]);
                    a.first_key = Some(("t-0001.rdb".into(), true));
                }),
                "S3WritePermissionMissing",
            ),
        ];
        for (name, f, want) in cases {
            let report = evaluate(&f);
            assert_eq!(reason(&report), want, "{name}: {report:#?}");
            assert_eq!(report.export_would_succeed(false), want == "ok", "{name}");
        }
    }

    #[test]
    fn failure_message_is_the_documented_error_and_solution_then_the_fix() {
        let mut a = good();
        a.acl = acl(&["READ", "WRITE"]);
        let report = evaluate(&facts(a));
        let message = report.failure_message().unwrap();
        assert!(
            message.starts_with("ElastiCache has not been granted READ_ACP permissions bkt on the S3 Bucket. Add View Permissions on the bucket for ElastiCache"),
            "{message}"
        );
        assert!(message.contains(EC) && message.contains("us-east-1.elasticache-snapshot.amazonaws.com"), "{message}");
        let out = render(&report, false);
        assert!(out.contains("FAIL  ElastiCache has READ_ACP (View Permissions)"), "{out}");
        assert!(out.contains(&format!("--grant-read-acp id={EC}")), "{out}");
        assert!(out.contains("--grant-full-control id=owner"), "keeps the owner's grant: {out}");
        assert!(out.contains("\"Service\":\"us-east-1.elasticache-snapshot.amazonaws.com\""), "{out}");
        assert!(out.contains("RESULT: an export to s3://bkt would fail"), "{out}");
        assert!(out.contains("PASS  ElastiCache has READ (List and Read)"), "{out}");

        let missing = evaluate(&BucketFacts { bucket: B.into(), region: "eu-west-1".into(), location: None, access: None });
        let out = render(&missing, false);
        assert!(out.contains("FAIL  bucket exists: The S3 bucket bkt does not exist."), "{out}");
        assert!(out.contains("--create-bucket-configuration LocationConstraint=eu-west-1"), "{out}");
        assert!(out.contains("SKIP  ElastiCache has WRITE"), "{out}");
        assert!(missing
            .failure_message()
            .unwrap()
            .starts_with("The S3 bucket bkt does not exist. Create an Amazon S3 bucket in the same region"));
    }

    #[test]
    fn gov_cloud_fix_names_its_canonical_id_and_partition() {
        let f = BucketFacts {
            bucket: B.into(),
            region: "us-gov-west-1".into(),
            location: Some("us-gov-west-1".into()),
            access: Some(AccessFacts { public_access_block: Some(PublicAccessBlock::ALL_ON), ..Default::default() }),
        };
        let out = render(&evaluate(&f), false);
        assert!(out.contains("id=40fa568277ad703bd160f66ae4f83fc9dfdfd06c2f1b5060ca22442ac3ef8be6"), "{out}");
        assert!(out.contains("arn:aws-us-gov:s3:::bkt"), "{out}");
    }

    #[test]
    fn public_buckets_are_found() {
        let public_group = AclGrant { grantee: Grantee::Group(ALL_USERS.into()), permission: "READ".into() };
        let open_policy =
            policy_doc(json!([{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bkt/*"}]));
        type Mutation = Box<dyn Fn(&mut AccessFacts)>;
        let cases: Vec<(&str, Mutation, usize)> = vec![
            ("private", Box::new(|_| {}), 0),
            ("no block public access", Box::new(|a| a.public_access_block = None), 1),
            (
                "partly off",
                Box::new(|a| a.public_access_block = Some(PublicAccessBlock { block_public_acls: false, ..PublicAccessBlock::ALL_ON })),
                1,
            ),
            ("AllUsers grant, ignored by IgnorePublicAcls", Box::new(move |a| a.acl.grants.push(public_group.clone())), 0),
            (
                "AllUsers grant, block off",
                Box::new(|a| {
                    a.public_access_block = None;
                    a.acl.grants.push(AclGrant { grantee: Grantee::Group(AUTHENTICATED_USERS.into()), permission: "READ".into() });
                }),
                2,
            ),
            (
                "open policy, block off",
                Box::new(move |a| {
                    a.public_access_block = None;
                    a.policy = open_policy.clone();
                }),
                2,
            ),
            (
                "S3 says the policy is public",
                Box::new(|a| {
                    a.public_access_block = Some(PublicAccessBlock { restrict_public_buckets: false, ..PublicAccessBlock::ALL_ON });
                    a.policy_is_public = Some(true);
                }),
                2,
            ),
        ];
        for (name, change, findings) in cases {
            let mut a = good();
            change(&mut a);
            let report = evaluate(&facts(a));
            assert_eq!(report.public.len(), findings, "{name}: {:?}", report.public);
            assert!(report.problem.is_none(), "{name}: public is not a failure");
            assert_eq!(report.export_would_succeed(true), findings == 0, "{name}");
            assert_eq!(report.public_message().is_some(), findings > 0, "{name}");
        }
    }

    #[test]
    fn the_policy_is_checked_while_an_intent_is_recorded_and_skipped_only_once_accepted() {
        let safety = ExportSafety { policy: PolicySource::new(None, vec![]).unwrap(), preflight: None };
        let mut obj = SnapshotExport::new("x", SnapshotExportSpec::new("src", "dst", Some("bkt")));
        obj.metadata.namespace = Some("team-a".into());
        let at = || Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()));
        let fresh = SnapshotExportStatus::default();
        let intent = SnapshotExportStatus { copy_requested_at: at(), attempts: 1, ..Default::default() };
        let accepted = SnapshotExportStatus { copy_accepted_at: at(), phase: Some(Phase::Failed), ..intent.clone() };
        let clear = |d: Option<Decision>| match d {
            Some(Decision::Stalled { reason, clear_intent, .. }) => format!("{reason}:{clear_intent}"),
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
        a.first_key = Some(("t-0001.rdb".into(), true));
        let taken = evaluate(&facts(a));
        let mut a = good();
        a.public_access_block = None;
        let public = evaluate(&facts(a));
        let kind = |g: Gate| match g {
            Gate::Proceed { public_warning: None } => "proceed".to_string(),
            Gate::Proceed { public_warning: Some(_) } => "proceed+warning".to_string(),
            Gate::Stop(Decision::Recheck) => "recheck".to_string(),
            Gate::Stop(Decision::Stalled { reason, clear_intent, .. }) => {
                format!("stall:{reason}:{}", if clear_intent { "clear" } else { "keep" })
            }
            Gate::Stop(other) => format!("{other:?}"),
        };
        let cases = [
            (&ok, false, false, "proceed"),
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
    fn inspection_errors() {
        let denied = AwsError::classify("GetBucketAcl", Some("AccessDenied"), Some("Access Denied"), Some(403));
        let Decision::Stalled { reason, message, .. } = inspection_failed("bkt", &denied) else { panic!() };
        assert_eq!(reason, INSPECTION_DENIED_REASON);
        assert!(message.starts_with("The operator cannot inspect bucket bkt (AccessDenied on GetBucketAcl); grant its role s3:GetBucketLocation, s3:GetBucketAcl"), "{message}");
        assert!(message.contains("--preflight=false"), "{message}");
        let slow = AwsError::classify("GetBucketAcl", Some("SlowDown"), None, Some(503));
        assert!(matches!(inspection_failed("bkt", &slow), Decision::RetryLater { .. }));
    }

    /// A private bucket in R granted to ElastiCache through its ACL (or, with `exists` false, no
    /// bucket at all), that counts the bucket-level reads (GetBucketLocation) and answers each
    /// after a moment.
    struct GrantedBucket {
        exists: bool,
        locations: std::sync::atomic::AtomicUsize,
    }

    impl crate::aws::BucketInspector for GrantedBucket {
        fn bucket_region<'a>(&'a self, _: &'a str) -> futures::future::BoxFuture<'a, Result<Option<String>, AwsError>> {
            self.locations.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                Ok(self.exists.then(|| R.to_string()))
            })
        }
        fn bucket_acl<'a>(&'a self, _: &'a str) -> futures::future::BoxFuture<'a, Result<BucketAcl, AwsError>> {
            Box::pin(async { Ok(acl(&["READ", "WRITE", "READ_ACP"])) })
        }
        fn object_ownership<'a>(&'a self, _: &'a str) -> futures::future::BoxFuture<'a, Result<Option<String>, AwsError>> {
            Box::pin(async { Ok(Some("BucketOwnerPreferred".to_string())) })
        }
        fn bucket_policy<'a>(&'a self, _: &'a str) -> futures::future::BoxFuture<'a, Result<Option<String>, AwsError>> {
            Box::pin(async { Ok(None) })
        }
        fn policy_is_public<'a>(&'a self, _: &'a str) -> futures::future::BoxFuture<'a, Result<Option<bool>, AwsError>> {
            Box::pin(async { Ok(Some(false)) })
        }
        fn public_access_block<'a>(&'a self, _: &'a str) -> futures::future::BoxFuture<'a, Result<Option<PublicAccessBlock>, AwsError>> {
            Box::pin(async { Ok(Some(PublicAccessBlock::ALL_ON)) })
        }
        fn object_exists<'a>(&'a self, _: &'a str, _: &'a str) -> futures::future::BoxFuture<'a, Result<bool, AwsError>> {
            Box::pin(async { Ok(false) })
        }
    }

    #[tokio::test]
    async fn exports_arriving_together_inspect_their_bucket_once_and_each_checks_its_own_key() {
        let inspector = Arc::new(GrantedBucket { exists: true, locations: Default::default() });
        let preflight = PreflightConfig::new(inspector.clone(), R.into(), false);
        let keys: Vec<String> = (0..32).map(|i| format!("exp-{i}-0001.rdb")).collect();
        let all = futures::future::join_all(keys.iter().map(|key| preflight.facts(B, key))).await;
        assert_eq!(inspector.locations.load(std::sync::atomic::Ordering::SeqCst), 1, "one inspection of the bucket");
        for (facts, key) in all.into_iter().zip(&keys) {
            let facts = facts.unwrap();
            assert!(evaluate(&facts).export_would_succeed(false));
            assert_eq!(facts.access.unwrap().first_key, Some((key.clone(), false)));
        }
    }

    #[tokio::test]
    async fn exports_arriving_together_share_the_inspection_of_a_failing_bucket_and_later_ones_look_again() {
        let inspector = Arc::new(GrantedBucket { exists: false, locations: Default::default() });
        let preflight = PreflightConfig::new(inspector.clone(), R.into(), false);
        let all =
            futures::future::join_all((0..32).map(|i| preflight.facts(B, if i % 2 == 0 { "a-0001.rdb" } else { "b-0001.rdb" }))).await;
        assert_eq!(inspector.locations.load(std::sync::atomic::Ordering::SeqCst), 1, "one inspection, shared");
        assert!(all.iter().all(|f| f.as_ref().is_ok_and(|f| !evaluate(f).export_would_succeed(false))));
        // A failing bucket is not remembered: the next export looks again (it may be fixed now).
        preflight.facts(B, "c-0001.rdb").await.unwrap();
        assert_eq!(inspector.locations.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert!(preflight.inspecting.lock().unwrap().is_empty(), "finished inspections are retired");
    }
}
