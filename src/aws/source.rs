//! Where a source snapshot comes from, as the export policy checks it ([`SourceInspector`]): the
//! replication group, cache cluster or serverless cache it belongs to (a copy keeps them) and the
//! ownership tags the operator writes on its in-region copies; and its node group ids, which name
//! the keys an export of it writes (the preflight checks them). The SDK implementation is
//! [`SdkSources`].

use super::limit::Pacer;
use super::sdk::classify;
use super::AwsError;
use crate::api::{OWNER_NAMESPACE_TAG_KEY, OWNER_TAG_KEY};
use futures::future::BoxFuture;
use futures::FutureExt;

/// What a copy cannot change about a snapshot, and who (of ours) made it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceFacts {
    /// DescribeSnapshots' ReplicationGroupId.
    pub replication_group: Option<String>,
    /// DescribeSnapshots' CacheClusterId.
    pub cache_cluster: Option<String>,
    /// A serverless snapshot's cache (DescribeServerlessCacheSnapshots'
    /// `ServerlessCacheConfiguration.ServerlessCacheName`; a copy keeps it).
    pub serverless_cache: Option<String>,
    /// The operator's ownership tag: the UID of the object whose in-region copy this is.
    pub owner_uid: Option<String>,
    /// The namespace of that object (the tag the operator writes beside the UID).
    pub owner_namespace: Option<String>,
    /// `NodeSnapshots[].NodeGroupId`, sorted and bounded, as `SnapshotInfo::node_group_ids`.
    pub node_group_ids: Vec<String>,
}

/// Reads a source snapshot's provenance.
pub trait SourceInspector: Send + Sync {
    /// `None` when the snapshot does not exist (CopySnapshot then reports it).
    fn source_facts<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<SourceFacts>, AwsError>>;

    /// The same for an ElastiCache Serverless snapshot (no node group ids: it names none); `None`
    /// when it does not exist (the serverless copy or export then reports it).
    fn serverless_source_facts<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<SourceFacts>, AwsError>>;

    /// The snapshot's node group ids only (no tags needed); `None` when it does not exist.
    fn node_group_ids<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Vec<String>>, AwsError>> {
        async move { Ok(self.source_facts(name).await?.map(|f| f.node_group_ids)) }.boxed()
    }
}

/// An ElastiCache client for the provenance check, paced like every other call.
#[derive(Clone)]
pub struct SdkSources {
    elasticache: aws_sdk_elasticache::Client,
    pacer: Pacer,
}

impl SdkSources {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self { elasticache: aws_sdk_elasticache::Client::new(config), pacer: Pacer::default() }
    }

    pub fn with_pacer(mut self, pacer: Pacer) -> Self {
        self.pacer = pacer;
        self
    }
}

impl SdkSources {
    /// The operator's ownership tags on a snapshot of either kind: (owner UID, owner namespace).
    async fn owner_tags(&self, arn: &str) -> Result<(Option<String>, Option<String>), AwsError> {
        let tags = self
            .pacer
            .call("ListTagsForResource", async {
                self.elasticache.list_tags_for_resource().resource_name(arn).send().await.map_err(|e| classify("ListTagsForResource", e))
            })
            .await?;
        let tag = |key: &str| tags.tag_list().iter().find(|t| t.key() == Some(key)).and_then(|t| t.value().map(str::to_string));
        Ok((tag(OWNER_TAG_KEY), tag(OWNER_NAMESPACE_TAG_KEY)))
    }

    /// DescribeSnapshots of one snapshot, with its node groups; `None` when it does not exist.
    async fn describe(&self, name: &str) -> Result<Option<aws_sdk_elasticache::types::Snapshot>, AwsError> {
        super::sdk::describe_one(&self.elasticache, &self.pacer, name).await
    }
}

impl SourceInspector for SdkSources {
    /// DescribeSnapshots, then ListTagsForResource unless ElastiCache made the snapshot itself
    /// (`SnapshotSource: automated`: never a copy, so it carries no ownership tag of ours).
    fn source_facts<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<SourceFacts>, AwsError>> {
        async move {
            let Some(snap) = self.describe(name).await? else {
                return Ok(None);
            };
            let mut facts = SourceFacts {
                replication_group: snap.replication_group_id().map(str::to_string),
                cache_cluster: snap.cache_cluster_id().map(str::to_string),
                node_group_ids: super::sdk::node_group_ids(&snap),
                ..Default::default()
            };
            if let (Some(arn), false) = (snap.arn(), snap.snapshot_source() == Some("automated")) {
                (facts.owner_uid, facts.owner_namespace) = self.owner_tags(arn).await?;
            }
            Ok(Some(facts))
        }
        .boxed()
    }

    /// DescribeServerlessCacheSnapshots, then ListTagsForResource unless ElastiCache made the
    /// snapshot itself (`SnapshotType: automated`).
    fn serverless_source_facts<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<SourceFacts>, AwsError>> {
        async move {
            let Some(snap) = super::serverless::describe_serverless_one(&self.elasticache, &self.pacer, name).await? else {
                return Ok(None);
            };
            let mut facts = SourceFacts {
                serverless_cache: snap.serverless_cache_configuration().and_then(|c| c.serverless_cache_name()).map(str::to_string),
                ..Default::default()
            };
            if let (Some(arn), false) = (snap.arn(), snap.snapshot_type() == Some("automated")) {
                (facts.owner_uid, facts.owner_namespace) = self.owner_tags(arn).await?;
            }
            Ok(Some(facts))
        }
        .boxed()
    }

    /// DescribeSnapshots alone.
    fn node_group_ids<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Vec<String>>, AwsError>> {
        async move { Ok(self.describe(name).await?.map(|snap| super::sdk::node_group_ids(&snap))) }.boxed()
    }
}
