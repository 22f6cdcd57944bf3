//! Public-access findings: why a bucket is or may become publicly accessible (Block Public Access
//! off, ACL grants to everyone, a bucket policy open to everyone).

use super::facts::AccessFacts;
use super::policy_document::principal_is_everyone;
use crate::aws::Grantee;
use serde_json::Value;

pub(super) const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
pub(super) const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

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
