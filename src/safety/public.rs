//! Public-access findings: why a bucket is or may become publicly accessible (Block Public Access
//! off, ACL grants to everyone, a bucket policy open to everyone).

use super::facts::AccessFacts;
use super::policy_document::principal_is_everyone;
use crate::aws::Grantee;
use serde_json::Value;

const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// Why the bucket is or may become public.
pub(super) fn public_findings(access: &AccessFacts, statements: &[Value]) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::{AclGrant, PublicAccessBlock};
    use crate::safety::evaluate::evaluate;
    use crate::safety::facts::AccessFacts;
    use crate::safety::testing::*;
    use serde_json::json;

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
