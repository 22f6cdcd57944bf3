//! The AWS SDK implementation of [`SnapshotApi`]. Clients come from the standard AWS
//! configuration: region, the default credential chain (environment, profile, IRSA web
//! identity, EKS Pod Identity, instance metadata) and the endpoint overrides `AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_ELASTICACHE` and `AWS_ENDPOINT_URL_S3`, so any emulator plugs in.

use super::limit::Pacer;
use super::{AwsError, CopyRequest, ExportObject, SnapshotApi, SnapshotInfo, SnapshotPage, SnapshotStatus, SWEEP_PAGE_SIZE};
use aws_sdk_elasticache::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_elasticache::types::Tag;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use std::fmt::Debug;
use std::future::Future;

/// Load the shared AWS configuration; `region` overrides the configured one.
pub async fn aws_sdk_config(region: Option<String>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region));
    }
    loader.load().await
}

/// ElastiCache and S3 clients, behind the client-side rate limit, counted in the metrics.
#[derive(Clone)]
pub struct SdkSnapshots {
    pub(crate) elasticache: aws_sdk_elasticache::Client,
    pub(crate) s3: aws_sdk_s3::Client,
    pacer: Pacer,
}

impl SdkSnapshots {
    /// `s3_path_style` addresses buckets as `https://endpoint/bucket` rather than
    /// `https://bucket.endpoint` (needed by most S3 emulators and some private endpoints).
    pub fn new(config: &aws_config::SdkConfig, s3_path_style: bool) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(config).force_path_style(s3_path_style).build();
        Self {
            elasticache: aws_sdk_elasticache::Client::new(config),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            pacer: Pacer::default(),
        }
    }

    /// Pace and count every AWS call through `pacer` (share it with the preflight's
    /// [`super::SdkBuckets`] so that one limit covers them all).
    pub fn with_pacer(mut self, pacer: Pacer) -> Self {
        self.pacer = pacer;
        self
    }

    pub(crate) fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    pub(crate) async fn call<T>(&self, operation: &'static str, call: impl Future<Output = Result<T, AwsError>>) -> Result<T, AwsError> {
        self.pacer.call(operation, call).await
    }
}

/// Turn an SDK error (ElastiCache or S3) into our classification; no credentials ever reach the
/// message. A 403 without an error code (S3 answers HEAD and some GETs so) is AccessDenied.
pub(crate) fn classify<E: ProvideErrorMetadata + Debug>(operation: &'static str, err: SdkError<E, HttpResponse>) -> AwsError {
    match &err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let code = ctx.err().code().or((status == 403).then_some("AccessDenied"));
            AwsError::classify(operation, code, ctx.err().message(), Some(status))
        }
        SdkError::TimeoutError(_) => AwsError::network(operation, "the request timed out"),
        SdkError::DispatchFailure(f) => AwsError::network(operation, format!("could not reach AWS: {f:?}")),
        SdkError::ResponseError(r) => {
            let status = r.raw().status().as_u16();
            AwsError::Transient {
                operation,
                code: format!("HTTP {status}"),
                message: "AWS sent a response that could not be read (malformed or truncated)".into(),
            }
        }
        _ => AwsError::Transient { operation, code: "SdkError".into(), message: format!("{err}") },
    }
}

fn snapshot_info(s: &aws_sdk_elasticache::types::Snapshot) -> SnapshotInfo {
    SnapshotInfo {
        name: s.snapshot_name().unwrap_or_default().to_string(),
        arn: s.arn().map(str::to_string),
        status: SnapshotStatus::parse(s.snapshot_status().unwrap_or("unknown")),
        node_group_ids: node_group_ids(s),
    }
}

/// The node group ids of a snapshot (`NodeSnapshots[].NodeGroupId`), sorted and bounded. Without
/// ids, ElastiCache's default ids for `NumNodeGroups` (bounded); a snapshot has at least one node
/// group, which a single-node cluster's export names `0001`.
pub(super) fn node_group_ids(s: &aws_sdk_elasticache::types::Snapshot) -> Vec<String> {
    let mut ids: Vec<String> = s.node_snapshots().iter().filter_map(|n| n.node_group_id()).map(str::to_string).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.truncate(super::MAX_NODE_GROUPS);
    if ids.is_empty() {
        let count = s.num_node_groups().and_then(|n| usize::try_from(n).ok()).unwrap_or(1).clamp(1, super::MAX_NODE_GROUPS);
        ids = (1..=count).map(|n| format!("{n:04}")).collect();
    }
    ids
}

/// DescribeSnapshots of one snapshot by name, with its node groups; `None` when it does not
/// exist. Shared by the reconciler's look and the safety layer's provenance read.
pub(crate) async fn describe_one(
    elasticache: &aws_sdk_elasticache::Client,
    pacer: &Pacer,
    name: &str,
) -> Result<Option<aws_sdk_elasticache::types::Snapshot>, AwsError> {
    let described = pacer
        .call("DescribeSnapshots", async {
            elasticache
                .describe_snapshots()
                .snapshot_name(name)
                .show_node_group_config(true)
                .send()
                .await
                .map_err(|e| classify("DescribeSnapshots", e))
        })
        .await;
    match described {
        // ElastiCache stores snapshot names in lowercase.
        Ok(out) => Ok(out.snapshots().iter().find(|s| s.snapshot_name().is_some_and(|n| n.eq_ignore_ascii_case(name))).cloned()),
        Err(AwsError::Fault { fault: super::CopyFault::SnapshotNotFound { .. }, .. }) => Ok(None),
        Err(other) => Err(other),
    }
}

impl SnapshotApi for SdkSnapshots {
    async fn describe_snapshot(&self, name: &str) -> Result<Option<SnapshotInfo>, AwsError> {
        Ok(describe_one(&self.elasticache, &self.pacer, name).await?.as_ref().map(snapshot_info))
    }

    async fn owner_tag(&self, arn: &str) -> Result<Option<String>, AwsError> {
        let out = self
            .call("ListTagsForResource", async {
                self.elasticache.list_tags_for_resource().resource_name(arn).send().await.map_err(|e| classify("ListTagsForResource", e))
            })
            .await?;
        Ok(out.tag_list().iter().find(|t| t.key() == Some(crate::api::OWNER_TAG_KEY)).and_then(|t| t.value().map(str::to_string)))
    }

    async fn copy_snapshot(&self, request: &CopyRequest) -> Result<SnapshotInfo, AwsError> {
        let mut call = self.elasticache.copy_snapshot().source_snapshot_name(&request.source).target_snapshot_name(&request.target);
        if let Some(bucket) = &request.bucket {
            call = call.target_bucket(bucket);
        }
        if let Some(kms) = &request.kms_key_id {
            call = call.kms_key_id(kms);
        }
        for (key, value) in &request.tags {
            call = call.tags(Tag::builder().key(key).set_value(value.clone()).build());
        }
        let out = self
            .call("CopySnapshot", async {
                call.customize().config_override(one_attempt()).send().await.map_err(|e| classify("CopySnapshot", e))
            })
            .await?;
        out.snapshot().map(snapshot_info).ok_or_else(|| AwsError::Transient {
            operation: "CopySnapshot",
            code: "EmptyResponse".into(),
            message: "CopySnapshot answered without a snapshot".into(),
        })
    }

    async fn delete_snapshot(&self, name: &str) -> Result<(), AwsError> {
        let deleted = self.call("DeleteSnapshot", async {
            self.elasticache.delete_snapshot().snapshot_name(name).send().await.map_err(|e| classify("DeleteSnapshot", e))
        });
        match deleted.await {
            Ok(_) | Err(AwsError::Fault { fault: super::CopyFault::SnapshotNotFound { .. }, .. }) => Ok(()),
            Err(other) => Err(other),
        }
    }

    async fn export_objects(&self, bucket: &str, target: &str) -> Result<Vec<ExportObject>, AwsError> {
        let prefix = format!("{target}-");
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.call("ListObjectsV2", async {
                match self.s3.list_objects_v2().bucket(bucket).prefix(&prefix).set_continuation_token(token.clone()).send().await {
                    Ok(page) => Ok(Some(page)),
                    // No bucket, no objects: CopySnapshot reports the missing bucket in its own words.
                    Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_bucket()) => Ok(None),
                    Err(err) => Err(classify("ListObjectsV2", err)),
                }
            });
            let Some(page) = page.await? else { return Ok(Vec::new()) };
            keys.extend(page.contents().iter().filter_map(|o| {
                let key = o.key().filter(|k| crate::api::is_export_key(k, target))?;
                let last_modified =
                    o.last_modified().and_then(|t| k8s_openapi::jiff::Timestamp::new(t.secs(), t.subsec_nanos() as i32).ok());
                Some(ExportObject { key: key.to_string(), last_modified, e_tag: o.e_tag().map(str::to_string), size: o.size() })
            }));
            match page.next_continuation_token() {
                // A listing that hands back the token it was given would be followed forever.
                Some(next) if page.is_truncated() == Some(true) && token.as_deref() == Some(next) => {
                    return Err(AwsError::Transient {
                        operation: "ListObjectsV2",
                        code: "RepeatedContinuationToken".into(),
                        message: format!("S3 answered the listing of s3://{bucket}/{prefix} with the continuation token it was given"),
                    })
                }
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => break,
            }
        }
        keys.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(keys)
    }

    async fn describe_snapshots_page(&self, marker: Option<String>) -> Result<SnapshotPage, AwsError> {
        let out = self
            .call("DescribeSnapshots", async {
                let call =
                    self.elasticache.describe_snapshots().show_node_group_config(true).max_records(SWEEP_PAGE_SIZE).set_marker(marker);
                call.send().await.map_err(|e| classify("DescribeSnapshots", e))
            })
            .await?;
        Ok(SnapshotPage { snapshots: out.snapshots().iter().map(snapshot_info).collect(), next_marker: out.marker().map(str::to_string) })
    }
}

/// One attempt only, for requests that must not be repeated (CopySnapshot and the serverless
/// copy and export): the SDK's own retry would hide an attempt whose outcome is unknown (a
/// timeout, a 5xx) behind a later answer such as throttling, which reads as "not executed".
pub(crate) fn one_attempt() -> aws_sdk_elasticache::config::Builder {
    aws_sdk_elasticache::config::Builder::default().retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
}
