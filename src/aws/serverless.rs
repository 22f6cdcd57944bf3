//! ElastiCache Serverless snapshots as the reconciler sees them: a sibling trait of
//! [`super::SnapshotApi`] in our own domain types, and its SDK implementation on
//! [`SdkSnapshots`] (every call through the same Pacer: one rate limit, one `ecx_aws_calls`).
//! Serverless faults are classified into the same [`super::CopyFault`]s as node-based ones
//! (`errors.rs`), since the operator answers them the same way.

use super::limit::Pacer;
use super::sdk::{classify, one_attempt, SdkSnapshots};
use super::{AwsError, CopyFault, SnapshotApi, SnapshotInfo, SnapshotStatus};
use aws_sdk_elasticache::types::{ServerlessCacheSnapshot, Tag};
use std::future::Future;

/// What the operator needs to know of one serverless snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerlessSnapshotInfo {
    pub name: String,
    pub arn: Option<String>,
    /// `creating`, `copying`, `exporting`, `available`, ... (a free string in the API model:
    /// anything but `available` and `failed` is read as in progress).
    pub status: SnapshotStatus,
    /// `automated` or `manual`.
    pub snapshot_type: Option<String>,
    /// When the snapshot's data set was taken (a copy keeps its source's time).
    pub create_time: Option<k8s_openapi::jiff::Timestamp>,
}

/// A serverless snapshot in the node-based domain type, so that one decision code serves both
/// kinds. It names no node groups: a serverless export's object keys are read from the bucket
/// (the docs do not say what ExportServerlessCacheSnapshot writes), never computed.
impl From<ServerlessSnapshotInfo> for SnapshotInfo {
    fn from(s: ServerlessSnapshotInfo) -> Self {
        SnapshotInfo { name: s.name, arn: s.arn, status: s.status, node_group_ids: Vec::new() }
    }
}

/// Both kinds of snapshot calls: what the reconciler, the sweep and the finalizer need.
pub trait SnapshotApis: SnapshotApi + ServerlessSnapshotApi {}

impl<T: SnapshotApi + ServerlessSnapshotApi> SnapshotApis for T {}

/// One CopyServerlessCacheSnapshot request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerlessCopyRequest {
    pub source: String,
    pub target: String,
    pub kms_key_id: Option<String>,
    pub tags: Vec<(String, Option<String>)>,
}

/// Records per DescribeServerlessCacheSnapshots page (the API allows at most 50).
pub const SERVERLESS_PAGE_SIZE: i32 = 50;

/// One page of serverless snapshots and the token of the next page, if any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerlessSnapshotPage {
    pub snapshots: Vec<ServerlessSnapshotInfo>,
    pub next_token: Option<String>,
}

/// The ElastiCache Serverless snapshot calls the operator makes.
pub trait ServerlessSnapshotApi: Send + Sync + 'static {
    /// DescribeServerlessCacheSnapshots for one name; `None` when not found.
    fn describe_serverless_snapshot(&self, name: &str) -> impl Future<Output = Result<Option<ServerlessSnapshotInfo>, AwsError>> + Send;
    /// CopyServerlessCacheSnapshot; the answer is the new snapshot.
    fn copy_serverless_snapshot(
        &self,
        request: &ServerlessCopyRequest,
    ) -> impl Future<Output = Result<ServerlessSnapshotInfo, AwsError>> + Send;
    /// ExportServerlessCacheSnapshot of `name` to `bucket`; the answer is the snapshot, `exporting`.
    fn export_serverless_snapshot(&self, name: &str, bucket: &str)
        -> impl Future<Output = Result<ServerlessSnapshotInfo, AwsError>> + Send;
    /// DeleteServerlessCacheSnapshot; a snapshot that is already gone counts as deleted.
    fn delete_serverless_snapshot(&self, name: &str) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// One page of DescribeServerlessCacheSnapshots over every serverless snapshot in the region
    /// ([`SERVERLESS_PAGE_SIZE`] records), with the token of the next page.
    fn describe_serverless_snapshots_page(
        &self,
        token: Option<String>,
    ) -> impl Future<Output = Result<ServerlessSnapshotPage, AwsError>> + Send;
}

fn info(s: &ServerlessCacheSnapshot) -> ServerlessSnapshotInfo {
    ServerlessSnapshotInfo {
        name: s.serverless_cache_snapshot_name().unwrap_or_default().to_string(),
        arn: s.arn().map(str::to_string),
        status: SnapshotStatus::parse(s.status().unwrap_or("unknown")),
        snapshot_type: s.snapshot_type().map(str::to_string),
        create_time: s.create_time().and_then(|t| k8s_openapi::jiff::Timestamp::new(t.secs(), t.subsec_nanos() as i32).ok()),
    }
}

/// A success without the snapshot it must carry: the request may have taken effect, so this
/// is transient (never a refusal that would clear the intent).
fn empty(operation: &'static str) -> AwsError {
    AwsError::Transient { operation, code: "EmptyResponse".into(), message: format!("{operation} answered without a serverless snapshot") }
}

fn not_found(err: &AwsError) -> bool {
    matches!(err, AwsError::Fault { fault: CopyFault::SnapshotNotFound { .. }, .. })
}

/// DescribeServerlessCacheSnapshots of one snapshot by name; `None` when it does not exist.
/// Shared by the reconciler's look and the safety layer's provenance read.
pub(crate) async fn describe_serverless_one(
    elasticache: &aws_sdk_elasticache::Client,
    pacer: &Pacer,
    name: &str,
) -> Result<Option<ServerlessCacheSnapshot>, AwsError> {
    const OP: &str = "DescribeServerlessCacheSnapshots";
    let described = pacer
        .call(OP, async {
            elasticache.describe_serverless_cache_snapshots().serverless_cache_snapshot_name(name).send().await.map_err(|e| classify(OP, e))
        })
        .await;
    match described {
        // Names are stored in lowercase.
        Ok(out) => Ok(out
            .serverless_cache_snapshots()
            .iter()
            .find(|s| s.serverless_cache_snapshot_name().is_some_and(|n| n.eq_ignore_ascii_case(name)))
            .cloned()),
        Err(err) if not_found(&err) => Ok(None),
        Err(err) => Err(err),
    }
}

impl ServerlessSnapshotApi for SdkSnapshots {
    async fn describe_serverless_snapshot(&self, name: &str) -> Result<Option<ServerlessSnapshotInfo>, AwsError> {
        Ok(describe_serverless_one(&self.elasticache, self.pacer(), name).await?.as_ref().map(info))
    }

    async fn copy_serverless_snapshot(&self, request: &ServerlessCopyRequest) -> Result<ServerlessSnapshotInfo, AwsError> {
        const OP: &str = "CopyServerlessCacheSnapshot";
        let mut call = self
            .elasticache
            .copy_serverless_cache_snapshot()
            .source_serverless_cache_snapshot_name(&request.source)
            .target_serverless_cache_snapshot_name(&request.target)
            .set_kms_key_id(request.kms_key_id.clone());
        for (key, value) in &request.tags {
            call = call.tags(Tag::builder().key(key).set_value(value.clone()).build());
        }
        let out =
            self.call(OP, async { call.customize().config_override(one_attempt()).send().await.map_err(|e| classify(OP, e)) }).await?;
        out.serverless_cache_snapshot().map(info).ok_or_else(|| empty(OP))
    }

    async fn export_serverless_snapshot(&self, name: &str, bucket: &str) -> Result<ServerlessSnapshotInfo, AwsError> {
        const OP: &str = "ExportServerlessCacheSnapshot";
        let call = self.elasticache.export_serverless_cache_snapshot().serverless_cache_snapshot_name(name).s3_bucket_name(bucket);
        let out =
            self.call(OP, async { call.customize().config_override(one_attempt()).send().await.map_err(|e| classify(OP, e)) }).await?;
        out.serverless_cache_snapshot().map(info).ok_or_else(|| empty(OP))
    }

    async fn delete_serverless_snapshot(&self, name: &str) -> Result<(), AwsError> {
        const OP: &str = "DeleteServerlessCacheSnapshot";
        let deleted = self.call(OP, async {
            self.elasticache
                .delete_serverless_cache_snapshot()
                .serverless_cache_snapshot_name(name)
                .send()
                .await
                .map_err(|e| classify(OP, e))
        });
        match deleted.await {
            Ok(_) => Ok(()),
            Err(err) if not_found(&err) => Ok(()),
            Err(err) => Err(err),
        }
    }

    async fn describe_serverless_snapshots_page(&self, token: Option<String>) -> Result<ServerlessSnapshotPage, AwsError> {
        const OP: &str = "DescribeServerlessCacheSnapshots";
        let given = token.clone();
        let out = self
            .call(OP, async {
                let call = self.elasticache.describe_serverless_cache_snapshots().max_results(SERVERLESS_PAGE_SIZE).set_next_token(token);
                call.send().await.map_err(|e| classify(OP, e))
            })
            .await?;
        let next_token = out.next_token().filter(|t| !t.is_empty()).map(str::to_string);
        // A listing that hands back the token it was given would be followed forever.
        if next_token.is_some() && next_token == given {
            return Err(AwsError::Transient {
                operation: OP,
                code: "RepeatedNextToken".into(),
                message: "ElastiCache answered DescribeServerlessCacheSnapshots with the NextToken it was given".into(),
            });
        }
        Ok(ServerlessSnapshotPage { snapshots: out.serverless_cache_snapshots().iter().map(info).collect(), next_token })
    }
}
