//! The AWS SDK implementation of [`SnapshotApi`]. Clients come from the standard AWS
//! configuration: region, the default credential chain (environment, profile, IRSA web
//! identity, EKS Pod Identity, instance metadata) and the endpoint overrides `AWS_ENDPOINT_URL`,
//! `AWS_ENDPOINT_URL_ELASTICACHE` and `AWS_ENDPOINT_URL_S3`, so any emulator plugs in.

use super::{AwsError, CopyRequest, SnapshotApi, SnapshotInfo, SnapshotPage, SnapshotStatus, SWEEP_PAGE_SIZE};
use aws_sdk_elasticache::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_elasticache::types::Tag;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use std::fmt::Debug;

/// Load the shared AWS configuration; `region` overrides the configured one.
pub async fn aws_sdk_config(region: Option<String>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region));
    }
    loader.load().await
}

/// ElastiCache and S3 clients.
#[derive(Clone)]
pub struct SdkSnapshots {
    elasticache: aws_sdk_elasticache::Client,
    s3: aws_sdk_s3::Client,
}

impl SdkSnapshots {
    /// `s3_path_style` addresses buckets as `https://endpoint/bucket` rather than
    /// `https://bucket.endpoint` (needed by most S3 emulators and some private endpoints).
    pub fn new(config: &aws_config::SdkConfig, s3_path_style: bool) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(config).force_path_style(s3_path_style).build();
        Self { elasticache: aws_sdk_elasticache::Client::new(config), s3: aws_sdk_s3::Client::from_conf(s3_config) }
    }
}

/// Turn an SDK error into our classification; no credentials ever reach the message.
fn classify<E: ProvideErrorMetadata + Debug>(operation: &'static str, err: SdkError<E, HttpResponse>) -> AwsError {
    match &err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            AwsError::classify(operation, ctx.err().code(), ctx.err().message(), Some(status))
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
    let node_groups = s.num_node_groups().and_then(|n| u32::try_from(n).ok()).filter(|n| *n > 0).unwrap_or_else(|| {
        let mut groups: Vec<&str> = s.node_snapshots().iter().filter_map(|n| n.node_group_id()).collect();
        groups.sort_unstable();
        groups.dedup();
        groups.len().max(1) as u32
    });
    SnapshotInfo {
        name: s.snapshot_name().unwrap_or_default().to_string(),
        arn: s.arn().map(str::to_string),
        status: SnapshotStatus::parse(s.snapshot_status().unwrap_or("unknown")),
        node_groups,
    }
}

impl SnapshotApi for SdkSnapshots {
    async fn describe_snapshot(&self, name: &str) -> Result<Option<SnapshotInfo>, AwsError> {
        let out = self.elasticache.describe_snapshots().snapshot_name(name).show_node_group_config(true).send().await;
        match out {
            Ok(out) => Ok(out.snapshots().iter().find(|s| s.snapshot_name() == Some(name)).map(snapshot_info)),
            Err(err) => match classify("DescribeSnapshots", err) {
                AwsError::Fault { fault: super::CopyFault::SnapshotNotFound { .. }, .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn owner_tag(&self, arn: &str) -> Result<Option<String>, AwsError> {
        let out =
            self.elasticache.list_tags_for_resource().resource_name(arn).send().await.map_err(|e| classify("ListTagsForResource", e))?;
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
        let out = call.send().await.map_err(|e| classify("CopySnapshot", e))?;
        out.snapshot().map(snapshot_info).ok_or_else(|| AwsError::Transient {
            operation: "CopySnapshot",
            code: "EmptyResponse".into(),
            message: "CopySnapshot answered without a snapshot".into(),
        })
    }

    async fn delete_snapshot(&self, name: &str) -> Result<(), AwsError> {
        match self.elasticache.delete_snapshot().snapshot_name(name).send().await {
            Ok(_) => Ok(()),
            Err(err) => match classify("DeleteSnapshot", err) {
                AwsError::Fault { fault: super::CopyFault::SnapshotNotFound { .. }, .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn export_objects(&self, bucket: &str, target: &str) -> Result<Vec<String>, AwsError> {
        let prefix = format!("{target}-");
        let mut keys = Vec::new();
        let mut pages = self.s3.list_objects_v2().bucket(bucket).prefix(&prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                // No bucket, no objects: CopySnapshot reports the missing bucket in its own words.
                Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_bucket()) => return Ok(Vec::new()),
                Err(err) => return Err(classify("ListObjectsV2", err)),
            };
            keys.extend(page.contents().iter().filter_map(|o| o.key()).filter(|k| is_export_key(k, &prefix)).map(str::to_string));
        }
        keys.sort();
        Ok(keys)
    }

    async fn describe_snapshots_page(&self, marker: Option<String>) -> Result<SnapshotPage, AwsError> {
        let out = self
            .elasticache
            .describe_snapshots()
            .show_node_group_config(true)
            .max_records(SWEEP_PAGE_SIZE)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| classify("DescribeSnapshots", e))?;
        Ok(SnapshotPage { snapshots: out.snapshots().iter().map(snapshot_info).collect(), next_marker: out.marker().map(str::to_string) })
    }
}

/// `<target>-NNNN.rdb` with four digits.
fn is_export_key(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(".rdb"))
        .is_some_and(|n| n.len() == 4 && n.bytes().all(|b| b.is_ascii_digit()))
}
