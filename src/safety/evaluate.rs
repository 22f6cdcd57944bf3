//! The evaluation (pure): a bucket's facts in, the checks and the report out, in the documented
//! order (see `crate::safety`).

use super::facts::BucketFacts;
use super::partition::{canonical_id, partition, policy_statement, service_principal};
use super::policy_document::{policy_allows_all, policy_statements, PolicyGrant};
use super::public::public_findings;
use super::report::{Check, Outcome, Report};
use crate::aws::{BucketAcl, Grantee, S3Problem};

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

/// The name of the public-access check.
pub const PUBLIC_CHECK: &str = "bucket is not publicly accessible";

/// Evaluate the facts (pure).
pub fn evaluate(facts: &BucketFacts) -> Report {
    let bucket = facts.bucket.as_str();
    let region = facts.region.as_str();
    let mut report = Report {
        bucket: bucket.into(),
        region: region.into(),
        checks: Vec::new(),
        problem: None,
        public: Vec::new(),
        not_evaluated: Vec::new(),
    };
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
    let key_for_policy = access.target_keys.first().map(|(k, _)| k.clone()).unwrap_or_else(|| "export-0001.rdb".into());
    let statements = policy_statements(access.policy.as_deref());
    for (i, perm) in Permission::ALL.iter().enumerate() {
        let acl_grant = !access.acls_disabled()
            && access.acl.grants.iter().any(|g| {
                g.grantee == Grantee::CanonicalUser(cid.into()) && (g.permission == perm.acl_name() || g.permission == "FULL_CONTROL")
            });
        let by_policy = policy_allows_all(&statements, region, bucket, perm.policy_actions(), &key_for_policy);
        let name = names[2 + i].clone();
        if let (false, PolicyGrant::Undetermined(open)) = (acl_grant, &by_policy) {
            // Never a refusal on a guess: CopySnapshot decides, and a Warning says why.
            report.not_evaluated.extend(open.iter().cloned());
            report.checks.push(Check {
                name,
                outcome: Outcome::Warn,
                detail: format!(
                    "not evaluated: it rests on bucket policy conditions the preflight cannot evaluate ({}); CopySnapshot decides",
                    open.join("; ")
                ),
                fix: None,
                short_fix: None,
            });
            continue;
        }
        if acl_grant || by_policy == PolicyGrant::Granted {
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
    if access.target_keys.is_empty() {
        skip(&mut report, "target key is free".into(), "no target snapshot name given (--target-snapshot-name)");
    }
    for (key, taken) in &access.target_keys {
        if *taken {
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
        } else {
            report.checks.push(Check {
                name: format!("key {key} is free"),
                outcome: Outcome::Pass,
                detail: format!("s3://{bucket}/{key} does not exist"),
                fix: None,
                short_fix: None,
            });
        }
    }
    report.public = public_findings(&access, &statements);
    let public_name = PUBLIC_CHECK.to_string();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::{AclGrant, PublicAccessBlock};
    use crate::safety::facts::AccessFacts;
    use crate::safety::public::{ALL_USERS, AUTHENTICATED_USERS};
    use crate::safety::testing::*;
    use serde_json::json;

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
            (
                "TLS-only Deny does not apply to ElastiCache (it uses TLS)",
                with(&|a| {
                    a.acl = acl(&[]);
                    a.object_ownership = Some("BucketOwnerEnforced".into());
                    a.policy = policy_doc(json!([policy_statement(B, R), tls_only_deny()]));
                }),
                "ok",
            ),
            (
                "a Deny without a condition still wins",
                with(&|a| {
                    a.acl = acl(&[]);
                    let mut deny = tls_only_deny();
                    deny.as_object_mut().unwrap().remove("Condition");
                    a.policy = policy_doc(json!([policy_statement(B, R), deny]));
                }),
                "S3ReadPermissionMissing",
            ),
            (
                "a Deny of plain HTTP's opposite (SecureTransport true) applies",
                with(&|a| {
                    a.acl = acl(&[]);
                    let mut deny = tls_only_deny();
                    deny["Condition"] = json!({"Bool": {"aws:SecureTransport": ["true"]}});
                    a.policy = policy_doc(json!([policy_statement(B, R), deny]));
                }),
                "S3ReadPermissionMissing",
            ),
            (
                "a Deny with a condition the preflight cannot evaluate is left to CopySnapshot",
                with(&|a| {
                    a.acl = acl(&[]);
                    let mut deny = tls_only_deny();
                    deny["Condition"] = json!({"StringNotEquals": {"aws:SourceVpce": "vpce-1"}});
                    a.policy = policy_doc(json!([policy_statement(B, R), deny]));
                }),
                "ok",
            ),
            (
                "an Allow whose condition cannot match gives nothing",
                with(&|a| {
                    a.acl = acl(&[]);
                    let mut st = policy_statement(B, R);
                    st["Condition"] = json!({"Bool": {"aws:SecureTransport": "false"}});
                    a.policy = policy_doc(json!([st]));
                }),
                "S3ReadPermissionMissing",
            ),
            (
                "an Allow with an unevaluable condition is left to CopySnapshot",
                with(&|a| {
                    a.acl = acl(&[]);
                    let mut st = policy_statement(B, R);
                    st["Condition"] = json!({"StringEquals": {"aws:SourceAccount": "111122223333"}});
                    a.policy = policy_doc(json!([st]));
                }),
                "ok",
            ),
            ("key collision", with(&|a| a.target_keys = vec![("t-0001.rdb".into(), true)]), "S3ObjectAlreadyExists"),
            (
                "a later node group's key taken",
                with(&|a| a.target_keys = vec![("t-0001.rdb".into(), false), ("t-0003.rdb".into(), true)]),
                "S3ObjectAlreadyExists",
            ),
            (
                "grants come before the key",
                with(&|a| {
                    a.acl = acl(&["READ"]);
                    a.target_keys = vec![("t-0001.rdb".into(), true)];
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
}
