//! AWS as the reconciler sees it: a small trait in our own domain types, the SDK implementation
//! beside it (`sdk.rs`), and the classification of AWS errors (`errors.rs`).

mod bucket;
mod bucket_sdk;
mod errors;
pub mod limit;
mod sdk;
mod serverless;
mod source;

use std::future::Future;

pub use bucket::{AclGrant, BucketAcl, BucketInspector, Grantee, PublicAccessBlock, INSPECTION_ACTIONS};
pub use bucket_sdk::SdkBuckets;
pub use errors::{AwsError, CopyFault, S3Problem};
pub use sdk::{aws_sdk_config, SdkSnapshots};
pub use serverless::{
    ServerlessCopyRequest, ServerlessSnapshotApi, ServerlessSnapshotInfo, ServerlessSnapshotPage, SnapshotApis, SERVERLESS_PAGE_SIZE,
};
pub use source::{SdkSources, SourceFacts, SourceInspector};

/// Where and how to reach AWS, from the command line.
#[derive(Clone, Debug, Default)]
pub struct AwsSettings {
    /// The snapshots' region; `None`: the standard AWS configuration (AWS_REGION).
    pub region: Option<String>,
    /// Address S3 buckets path-style, as most S3 emulators need.
    pub s3_path_style: bool,
}

// Schedules (src/schedule/aws.rs) make their own calls on the same clients.
pub(crate) use sdk::classify;

/// A snapshot's status. ElastiCache documents `creating | available | restoring | copying |
/// deleting`; anything else (an export shows `exporting`) is read as in progress, and `failed`
/// is terminal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotStatus {
    Available,
    Failed,
    /// Any other status: work on the snapshot is in progress.
    InProgress(String),
}

impl SnapshotStatus {
    pub fn parse(raw: &str) -> Self {
        match raw {
            "available" => Self::Available,
            "failed" => Self::Failed,
            other => Self::InProgress(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Available => "available",
            Self::Failed => "failed",
            Self::InProgress(s) => s,
        }
    }
}

/// What the operator needs to know of one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub name: String,
    pub arn: Option<String>,
    pub status: SnapshotStatus,
    /// The node group (shard) ids, sorted, at most [`MAX_NODE_GROUPS`]: an export writes one
    /// object per node group, named by its id (`0001`, `0003`, or a user-supplied id).
    pub node_group_ids: Vec<String>,
}

/// The most node groups a snapshot can have (ElastiCache allows 500 shards); node groups read
/// from AWS are cut to this before anything is sized by them.
pub const MAX_NODE_GROUPS: usize = 500;

/// One object found in an export bucket: when S3 says it was written, its ETag and size.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportObject {
    pub key: String,
    pub last_modified: Option<k8s_openapi::jiff::Timestamp>,
    pub e_tag: Option<String>,
    pub size: Option<i64>,
}

/// One CopySnapshot request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyRequest {
    pub source: String,
    pub target: String,
    pub bucket: Option<String>,
    pub kms_key_id: Option<String>,
    pub tags: Vec<(String, Option<String>)>,
}

/// The object key ElastiCache writes for the node group `node_group_id` of an export.
pub fn export_object_key(target: &str, node_group_id: &str) -> String {
    format!("{target}-{node_group_id}.rdb")
}

/// The ElastiCache and S3 calls the operator makes.
pub trait SnapshotApi: Send + Sync + 'static {
    /// DescribeSnapshots for one name (with node group configuration); `None` when not found.
    fn describe_snapshot(&self, name: &str) -> impl Future<Output = Result<Option<SnapshotInfo>, AwsError>> + Send;
    /// The value of the operator's ownership tag on a snapshot, if any (ListTagsForResource).
    fn owner_tag(&self, arn: &str) -> impl Future<Output = Result<Option<String>, AwsError>> + Send;
    /// CopySnapshot. For an in-region copy the answer is the new snapshot.
    fn copy_snapshot(&self, request: &CopyRequest) -> impl Future<Output = Result<SnapshotInfo, AwsError>> + Send;
    /// DeleteSnapshot; a snapshot that is already gone counts as deleted.
    fn delete_snapshot(&self, name: &str) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// Objects in `bucket` of the form `<target>-<node group id>.rdb` (ListObjectsV2 with that
    /// prefix), with their LastModified.
    fn export_objects(&self, bucket: &str, target: &str) -> impl Future<Output = Result<Vec<ExportObject>, AwsError>> + Send;
    /// One page of DescribeSnapshots over every snapshot in the region ([`SWEEP_PAGE_SIZE`]
    /// records), with the marker of the next page.
    fn describe_snapshots_page(&self, marker: Option<String>) -> impl Future<Output = Result<SnapshotPage, AwsError>> + Send;
}

/// Records per DescribeSnapshots page (the API allows 20 to 50).
pub const SWEEP_PAGE_SIZE: i32 = 50;

/// One page of snapshots and the marker of the next page, if any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotPage {
    pub snapshots: Vec<SnapshotInfo>,
    pub next_marker: Option<String>,
}
