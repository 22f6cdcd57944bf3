//! What the export preflight reads about a bucket: a small trait in our own types, with the SDK
//! implementation beside it (`bucket_sdk.rs`). The methods return boxed
//! futures so the reconciler can hold any inspector as `Arc<dyn BucketInspector>`, whatever its
//! `SnapshotApi`.
//!
//! IAM actions the operator's role needs for the preflight on an export bucket:
//! `s3:GetBucketLocation`, `s3:GetBucketAcl`, `s3:GetBucketPolicy`, `s3:GetBucketPolicyStatus`,
//! `s3:GetBucketPublicAccessBlock`, `s3:GetBucketOwnershipControls` and `s3:ListBucket` (the key
//! check lists the key instead of reading it, so no `s3:GetObject` on exported data is needed).

use super::AwsError;
use futures::future::BoxFuture;

/// The IAM actions the preflight needs, for messages.
pub const INSPECTION_ACTIONS: &str = "s3:GetBucketLocation, s3:GetBucketAcl, s3:GetBucketPolicy, s3:GetBucketPolicyStatus, s3:GetBucketPublicAccessBlock, s3:GetBucketOwnershipControls and s3:ListBucket";

/// One ACL grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclGrant {
    /// `id=<canonical id>`, `uri=<group uri>` or `emailAddress=<email>`, as the CLI writes grantees.
    pub grantee: Grantee,
    /// `READ`, `WRITE`, `READ_ACP`, `WRITE_ACP` or `FULL_CONTROL`.
    pub permission: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grantee {
    CanonicalUser(String),
    Group(String),
    Email(String),
}

impl Grantee {
    /// The grantee as the AWS CLI's `--grant-*` options take it.
    pub fn cli(&self) -> String {
        match self {
            Self::CanonicalUser(id) => format!("id={id}"),
            Self::Group(uri) => format!("uri={uri}"),
            Self::Email(e) => format!("emailAddress={e}"),
        }
    }
}

/// A bucket's ACL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketAcl {
    pub owner_id: Option<String>,
    pub grants: Vec<AclGrant>,
}

/// The bucket's S3 Block Public Access settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublicAccessBlock {
    pub block_public_acls: bool,
    pub ignore_public_acls: bool,
    pub block_public_policy: bool,
    pub restrict_public_buckets: bool,
}

impl PublicAccessBlock {
    pub const ALL_ON: PublicAccessBlock =
        PublicAccessBlock { block_public_acls: true, ignore_public_acls: true, block_public_policy: true, restrict_public_buckets: true };

    pub fn all_on(&self) -> bool {
        *self == Self::ALL_ON
    }
}

/// Read-only S3 calls about one bucket.
pub trait BucketInspector: Send + Sync {
    /// GetBucketLocation: the bucket's region (`us-east-1` for the empty LocationConstraint,
    /// `eu-west-1` for the legacy `EU`), `None` when the bucket does not exist.
    fn bucket_region<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<Option<String>, AwsError>>;
    /// GetBucketAcl.
    fn bucket_acl<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<BucketAcl, AwsError>>;
    /// GetBucketOwnershipControls: `ObjectOwnership` (e.g. `BucketOwnerEnforced`: ACLs disabled),
    /// `None` when none are set.
    fn object_ownership<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<Option<String>, AwsError>>;
    /// GetBucketPolicy: the policy document, `None` when the bucket has none.
    fn bucket_policy<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<Option<String>, AwsError>>;
    /// GetBucketPolicyStatus: S3's own verdict on the policy, `None` when unknown.
    fn policy_is_public<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<Option<bool>, AwsError>>;
    /// GetPublicAccessBlock: `None` when the bucket has no configuration.
    fn public_access_block<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<Option<PublicAccessBlock>, AwsError>>;
    /// The keys in the bucket an export named `base` could have written: `<base>-<id>.rdb` for
    /// any id (one ListObjectsV2 under `<base>-`, paged while S3 says there is more).
    fn export_keys<'a>(&'a self, bucket: &'a str, base: &'a str) -> BoxFuture<'a, Result<Vec<String>, AwsError>>;
}
