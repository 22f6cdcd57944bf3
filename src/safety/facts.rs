//! What the inspection finds out about a bucket: the facts the evaluation reads.

use crate::aws::{BucketAcl, PublicAccessBlock};

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
    /// The keys the export writes (`<target>-<NodeGroupId>.rdb`, one per node group of the
    /// source, sorted) and whether each exists already; empty when no target name was given.
    pub target_keys: Vec<(String, bool)>,
}

impl AccessFacts {
    pub fn acls_disabled(&self) -> bool {
        self.object_ownership.as_deref() == Some("BucketOwnerEnforced")
    }
}
