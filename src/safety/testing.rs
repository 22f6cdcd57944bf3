//! Fixtures for the safety tests: a bucket granted to ElastiCache, and the pieces to vary it.

use super::facts::{AccessFacts, BucketFacts};
use super::report::Report;
use crate::aws::{AclGrant, BucketAcl, Grantee, PublicAccessBlock, S3Problem};
use serde_json::{json, Value};

pub const B: &str = "bkt";
pub const R: &str = "us-east-1";
pub const EC: &str = "540804c33a284a299d2547575ce1010f2312ef3da9b3a053c8bc45bf233e4353";

pub fn grant(id: &str, perm: &str) -> AclGrant {
    AclGrant { grantee: Grantee::CanonicalUser(id.into()), permission: perm.into() }
}
pub fn acl(perms: &[&str]) -> BucketAcl {
    let mut grants = vec![grant("owner", "FULL_CONTROL")];
    grants.extend(perms.iter().map(|p| grant(EC, p)));
    BucketAcl { owner_id: Some("owner".into()), grants }
}
pub fn facts(access: AccessFacts) -> BucketFacts {
    BucketFacts { bucket: B.into(), region: R.into(), location: Some(R.into()), access: Some(access) }
}
pub fn good() -> AccessFacts {
    AccessFacts {
        acl: acl(&["READ", "WRITE", "READ_ACP"]),
        public_access_block: Some(PublicAccessBlock::ALL_ON),
        target_keys: vec![("t-0001.rdb".into(), false)],
        ..Default::default()
    }
}
pub fn policy_doc(statements: Value) -> Option<String> {
    Some(json!({"Version": "2012-10-17", "Statement": statements}).to_string())
}
pub fn reason(r: &Report) -> &str {
    r.problem.as_ref().map(S3Problem::reason).unwrap_or("ok")
}

/// The common TLS-only statement: deny everyone everything over plain HTTP.
pub fn tls_only_deny() -> Value {
    json!({
        "Sid": "AllowSSLRequestsOnly",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [format!("arn:aws:s3:::{B}"), format!("arn:aws:s3:::{B}/*")],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}
    })
}
