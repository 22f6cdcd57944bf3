//! The AWS calls schedules make, on the operator's SDK clients and behind its shared rate limit:
//! the automatic snapshots of a cache (DescribeSnapshots filtered by the cache and
//! SnapshotSource=system, shared among schedules of the same cache for a short while),
//! CreateSnapshot of an intermediate snapshot tagged with the schedule's UID, the tag check
//! before deleting one, and HeadObject/DeleteObject for `pruneExportedObjects`.

use super::choose::AutoSnapshot;
use crate::api::schedule::SCHEDULE_TAG_KEY;
use crate::aws::classify;
use crate::aws::{AwsError, CopyFault, SdkSnapshots};
use aws_sdk_elasticache::types::Tag;
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Which cache a schedule takes from.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub enum CacheRef {
    ReplicationGroup(String),
    CacheCluster(String),
}

impl CacheRef {
    pub fn id(&self) -> &str {
        match self {
            Self::ReplicationGroup(id) | Self::CacheCluster(id) => id,
        }
    }

    /// `replication group <id>` or `cache cluster <id>`, for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::ReplicationGroup(id) => format!("replication group {id}"),
            Self::CacheCluster(id) => format!("cache cluster {id}"),
        }
    }
}

/// How long one look at a cache's automatic snapshots is kept for other schedules of that cache
/// due at the same scheduled time (many schedules of one cache at 03:00 make one call).
const SHARED_LOOK: Duration = Duration::from_secs(60);

/// A cache and the scheduled time a look was for.
type LookKey = (CacheRef, Timestamp);

/// Automatic snapshot looks shared among schedules of a cache due at the same time.
#[derive(Default)]
pub struct SharedLooks {
    recent: Mutex<HashMap<LookKey, (Instant, Vec<AutoSnapshot>)>>,
    /// Serialises looks, so schedules of one cache arriving together wait for the first.
    gate: tokio::sync::Mutex<()>,
}

impl SharedLooks {
    /// The cache's automatic snapshots for a run scheduled at `scheduled`: another schedule's
    /// look for the same cache and time (younger than [`SHARED_LOOK`]) if there is one.
    pub async fn automatic_snapshots(
        &self,
        aws: &SdkSnapshots,
        cache: &CacheRef,
        scheduled: Timestamp,
    ) -> Result<Vec<AutoSnapshot>, AwsError> {
        let _one_at_a_time = self.gate.lock().await;
        let key = (cache.clone(), scheduled);
        {
            let mut recent = self.recent.lock().expect("shared looks lock");
            recent.retain(|_, (at, _)| at.elapsed() < SHARED_LOOK);
            if let Some((_, snaps)) = recent.get(&key) {
                return Ok(snaps.clone());
            }
        }
        let snaps = describe_automatic(aws, cache).await?;
        self.recent.lock().expect("shared looks lock").insert(key, (Instant::now(), snaps.clone()));
        Ok(snaps)
    }
}

async fn describe_automatic(aws: &SdkSnapshots, cache: &CacheRef) -> Result<Vec<AutoSnapshot>, AwsError> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = aws
            .call("DescribeSnapshots", async {
                let mut call = aws.elasticache.describe_snapshots().snapshot_source("system").max_records(50).set_marker(marker.clone());
                call = match cache {
                    CacheRef::ReplicationGroup(id) => call.replication_group_id(id),
                    CacheRef::CacheCluster(id) => call.cache_cluster_id(id),
                };
                call.send().await.map_err(|e| classify("DescribeSnapshots", e))
            })
            .await?;
        for s in page.snapshots() {
            let created = s.node_snapshots().iter().filter_map(|n| n.snapshot_create_time()).map(|t| t.secs()).max();
            out.push(AutoSnapshot {
                name: s.snapshot_name().unwrap_or_default().to_string(),
                status: s.snapshot_status().unwrap_or_default().to_string(),
                created: created.and_then(|secs| Timestamp::from_second(secs).ok()),
            });
        }
        match page.marker() {
            Some(next) if !next.is_empty() && marker.as_deref() != Some(next) => marker = Some(next.to_string()),
            _ => return Ok(out),
        }
    }
}

/// CreateSnapshot of `name` from the cache, tagged with the schedule's UID. An existing
/// snapshot of that name is `Ok(false)` (the caller checks its tag before trusting it).
pub async fn create_snapshot(aws: &SdkSnapshots, name: &str, cache: &CacheRef, schedule_uid: &str) -> Result<bool, AwsError> {
    let created = aws
        .call("CreateSnapshot", async {
            let mut call = aws
                .elasticache
                .create_snapshot()
                .snapshot_name(name)
                .tags(Tag::builder().key(SCHEDULE_TAG_KEY).value(schedule_uid).build());
            call = match cache {
                CacheRef::ReplicationGroup(id) => call.replication_group_id(id),
                CacheRef::CacheCluster(id) => call.cache_cluster_id(id),
            };
            call.send().await.map_err(|e| classify("CreateSnapshot", e))
        })
        .await;
    match created {
        Ok(_) => Ok(true),
        Err(AwsError::Fault { fault: CopyFault::SnapshotAlreadyExists { .. }, .. }) => Ok(false),
        Err(other) => Err(other),
    }
}

/// The schedule UID tag of a snapshot (ListTagsForResource), if any.
pub async fn schedule_tag(aws: &SdkSnapshots, arn: &str) -> Result<Option<String>, AwsError> {
    let out = aws
        .call("ListTagsForResource", async {
            aws.elasticache.list_tags_for_resource().resource_name(arn).send().await.map_err(|e| classify("ListTagsForResource", e))
        })
        .await?;
    Ok(out.tag_list().iter().find(|t| t.key() == Some(SCHEDULE_TAG_KEY)).and_then(|t| t.value().map(str::to_string)))
}

/// HeadObject: when the object was last written, `None` when it is gone.
pub async fn object_written(aws: &SdkSnapshots, bucket: &str, key: &str) -> Result<Option<Timestamp>, AwsError> {
    let head = aws
        .call("HeadObject", async {
            match aws.s3.head_object().bucket(bucket).key(key).send().await {
                Ok(out) => Ok(Some(out)),
                Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
                Err(err) => Err(classify("HeadObject", err)),
            }
        })
        .await?;
    Ok(head.and_then(|h| h.last_modified().map(|t| t.secs())).and_then(|s| Timestamp::from_second(s).ok()))
}

/// DeleteObject of one key.
pub async fn delete_object(aws: &SdkSnapshots, bucket: &str, key: &str) -> Result<(), AwsError> {
    aws.call("DeleteObject", async {
        aws.s3.delete_object().bucket(bucket).key(key).send().await.map(|_| ()).map_err(|e| classify("DeleteObject", e))
    })
    .await
}
