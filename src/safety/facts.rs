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
    /// The export's target key the preflight checked and whether it exists: the first taken one
    /// of the keys of the source's node groups (`<target>-<NodeGroupId>.rdb`), else the first of
    /// them (`None`: no target name given).
    pub target_key: Option<(String, bool)>,
}

impl AccessFacts {
    pub fn acls_disabled(&self) -> bool {
        self.object_ownership.as_deref() == Some("BucketOwnerEnforced")
    }
}
