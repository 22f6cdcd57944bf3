//! The AWS calls schedules make, on the operator's SDK clients and behind its shared rate limit:
//! the automatic snapshots of a cache (DescribeSnapshots filtered by the cache and
//! SnapshotSource=system, or for a serverless cache DescribeServerlessCacheSnapshots filtered by
//! it and SnapshotType=automated; shared among schedules of the same cache for a short while),
//! CreateSnapshot / CreateServerlessCacheSnapshot of an intermediate snapshot tagged with the
//! schedule's UID, finding and deleting one of either kind, the tag check before deleting it,
//! and HeadObject/DeleteObject for `pruneExportedObjects`.

use super::choose::AutoSnapshot;
use super::retention::Head;
use crate::api::schedule::SCHEDULE_TAG_KEY;
use crate::aws::classify;
use crate::aws::{AwsError, CopyFault, SdkSnapshots, ServerlessSnapshotApi, SnapshotApi};
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
    /// An ElastiCache Serverless cache: its snapshots have their own API, and its runs are
    /// SnapshotExports with `sourceKind: Serverless`.
    Serverless(String),
}

impl CacheRef {
    /// The cache a schedule's source names (validated: exactly one).
    pub fn of(source: &crate::api::schedule::ScheduleSource) -> Option<CacheRef> {
        match (&source.replication_group_id, &source.cache_cluster_id, &source.serverless_cache_name) {
            (Some(id), None, None) => Some(Self::ReplicationGroup(id.clone())),
            (None, Some(id), None) => Some(Self::CacheCluster(id.clone())),
            (None, None, Some(id)) => Some(Self::Serverless(id.clone())),
            _ => None,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Self::ReplicationGroup(id) | Self::CacheCluster(id) | Self::Serverless(id) => id,
        }
    }

    pub fn is_serverless(&self) -> bool {
        matches!(self, Self::Serverless(_))
    }

    /// `replication group <id>`, `cache cluster <id>` or `serverless cache <id>`, for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::ReplicationGroup(id) => format!("replication group {id}"),
            Self::CacheCluster(id) => format!("cache cluster {id}"),
            Self::Serverless(id) => format!("serverless cache {id}"),
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
        let snaps = match cache {
            CacheRef::Serverless(id) => describe_serverless_automatic(aws, id).await?,
            _ => describe_automatic(aws, cache).await?,
        };
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
                    CacheRef::Serverless(_) => {
                        unreachable!("a serverless cache's snapshots are described by describe_serverless_automatic")
                    }
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
            // A listing that hands back the Marker it was given would miss the pages after it
            // (the newest backup may be there): retried, never taken as complete.
            Some(next) if !next.is_empty() && marker.as_deref() == Some(next) => {
                return Err(AwsError::Transient {
                    operation: "DescribeSnapshots",
                    code: "RepeatedMarker".into(),
                    message: format!(
                        "ElastiCache answered the listing of {}'s automatic snapshots with the Marker it was given",
                        cache.describe()
                    ),
                })
            }
            Some(next) if !next.is_empty() => marker = Some(next.to_string()),
            _ => return Ok(out),
        }
    }
}

/// The automatic snapshots of a serverless cache (DescribeServerlessCacheSnapshots filtered by
/// the cache and SnapshotType=automated, every page), with their CreateTime.
async fn describe_serverless_automatic(aws: &SdkSnapshots, cache: &str) -> Result<Vec<AutoSnapshot>, AwsError> {
    const OP: &str = "DescribeServerlessCacheSnapshots";
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = aws
            .call(OP, async {
                let call = aws
                    .elasticache
                    .describe_serverless_cache_snapshots()
                    .serverless_cache_name(cache)
                    .snapshot_type("automated")
                    .max_results(crate::aws::SERVERLESS_PAGE_SIZE)
                    .set_next_token(token.clone());
                call.send().await.map_err(|e| classify(OP, e))
            })
            .await?;
        for s in page.serverless_cache_snapshots() {
            out.push(AutoSnapshot {
                name: s.serverless_cache_snapshot_name().unwrap_or_default().to_string(),
                status: s.status().unwrap_or_default().to_string(),
                created: s.create_time().and_then(|t| Timestamp::from_second(t.secs()).ok()),
            });
        }
        match page.next_token() {
            Some(next) if !next.is_empty() && token.as_deref() == Some(next) => {
                return Err(AwsError::Transient {
                    operation: OP,
                    code: "RepeatedNextToken".into(),
                    message: format!(
                    "ElastiCache answered the listing of serverless cache {cache}'s automatic snapshots with the NextToken it was given"
                ),
                })
            }
            Some(next) if !next.is_empty() => token = Some(next.to_string()),
            _ => return Ok(out),
        }
    }
}

/// CreateSnapshot (or CreateServerlessCacheSnapshot) of `name` from the cache, tagged with the
/// schedule's UID. An existing snapshot of that name is `Ok(false)` (the caller checks its tag
/// before trusting it).
pub async fn create_snapshot(aws: &SdkSnapshots, name: &str, cache: &CacheRef, schedule_uid: &str) -> Result<bool, AwsError> {
    let tag = Tag::builder().key(SCHEDULE_TAG_KEY).value(schedule_uid).build();
    let created = match cache {
        CacheRef::Serverless(id) => {
            const OP: &str = "CreateServerlessCacheSnapshot";
            aws.call(OP, async {
                let call =
                    aws.elasticache.create_serverless_cache_snapshot().serverless_cache_snapshot_name(name).serverless_cache_name(id);
                call.tags(tag).send().await.map(|_| ()).map_err(|e| classify(OP, e))
            })
            .await
        }
        _ => create_node_snapshot(aws, name, cache, tag).await,
    };
    match created {
        Ok(()) => Ok(true),
        Err(AwsError::Fault { fault: CopyFault::SnapshotAlreadyExists { .. }, .. }) => Ok(false),
        Err(other) => Err(other),
    }
}

async fn create_node_snapshot(aws: &SdkSnapshots, name: &str, cache: &CacheRef, tag: Tag) -> Result<(), AwsError> {
    aws.call("CreateSnapshot", async {
        let mut call = aws.elasticache.create_snapshot().snapshot_name(name).tags(tag);
        call = match cache {
            CacheRef::ReplicationGroup(id) => call.replication_group_id(id),
            CacheRef::CacheCluster(id) => call.cache_cluster_id(id),
            CacheRef::Serverless(_) => unreachable!("a serverless cache's snapshot is taken by CreateServerlessCacheSnapshot"),
        };
        call.send().await.map(|_| ()).map_err(|e| classify("CreateSnapshot", e))
    })
    .await
}

/// An intermediate snapshot by name, of either kind: `Some(its ARN)` when it exists.
pub async fn find_snapshot(aws: &SdkSnapshots, serverless: bool, name: &str) -> Result<Option<Option<String>>, AwsError> {
    Ok(if serverless {
        aws.describe_serverless_snapshot(name).await?.map(|s| s.arn)
    } else {
        aws.describe_snapshot(name).await?.map(|s| s.arn)
    })
}

/// DeleteSnapshot or DeleteServerlessCacheSnapshot; one already gone counts as deleted.
pub async fn delete_snapshot(aws: &SdkSnapshots, serverless: bool, name: &str) -> Result<(), AwsError> {
    if serverless {
        aws.delete_serverless_snapshot(name).await
    } else {
        aws.delete_snapshot(name).await
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

/// HeadObject: the object's ETag, size and write time, `None` when it is gone.
pub async fn object_head(aws: &SdkSnapshots, bucket: &str, key: &str) -> Result<Option<Head>, AwsError> {
    let head = aws
        .call("HeadObject", async {
            match aws.s3.head_object().bucket(bucket).key(key).send().await {
                Ok(out) => Ok(Some(out)),
                Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
                Err(err) => Err(classify("HeadObject", err)),
            }
        })
        .await?;
    Ok(head.map(|h| Head {
        e_tag: h.e_tag().map(str::to_string),
        size: h.content_length(),
        last_modified: h.last_modified().and_then(|t| Timestamp::from_second(t.secs()).ok()),
    }))
}

/// DeleteObject of one key, only while it holds `e_tag` (If-Match): `false` when S3 refused
/// because the object changed since (412 Precondition Failed) or is gone (404).
pub async fn delete_object_if(aws: &SdkSnapshots, bucket: &str, key: &str, e_tag: &str) -> Result<bool, AwsError> {
    aws.call("DeleteObject", async {
        match aws.s3.delete_object().bucket(bucket).key(key).if_match(e_tag).send().await {
            Ok(_) => Ok(true),
            Err(err) if matches!(err.raw_response().map(|r| r.status().as_u16()), Some(404 | 412)) => Ok(false),
            Err(err) => Err(classify("DeleteObject", err)),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::schedule::ScheduleSource;

    #[test]
    fn the_cache_a_source_names() {
        let source = |rg: Option<&str>, cc: Option<&str>, sls: Option<&str>| ScheduleSource {
            replication_group_id: rg.map(str::to_string),
            cache_cluster_id: cc.map(str::to_string),
            serverless_cache_name: sls.map(str::to_string),
            ..Default::default()
        };
        assert_eq!(CacheRef::of(&source(Some("a"), None, None)), Some(CacheRef::ReplicationGroup("a".into())));
        assert_eq!(CacheRef::of(&source(None, Some("b"), None)), Some(CacheRef::CacheCluster("b".into())));
        let sls = CacheRef::of(&source(None, None, Some("c"))).unwrap();
        assert!(sls.is_serverless() && sls.id() == "c" && sls.describe() == "serverless cache c");
        assert_eq!(CacheRef::of(&source(Some("a"), None, Some("c"))), None, "two caches");
        assert_eq!(CacheRef::of(&source(None, None, None)), None);
    }
}
