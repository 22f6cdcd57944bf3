//! The export policy against what a copy cannot change (pure): a rule that constrains the source
//! (`sources` or `sourceClusters`) is checked, right before CopySnapshot, against the replication
//! group or cache cluster the source snapshot belongs to, and against the ownership tags the
//! operator writes on its in-region copies.
//!
//! Why: source rules on names alone can be laundered. A namespace that may copy in-region (any
//! namespace no rule names, by default) copies `automatic.team-a-redis-…` to `team-b-x`, and
//! `team-b`, allowed to export `team-b-*`, exports it. A copy keeps its source's
//! ReplicationGroupId / CacheClusterId, so `sourceClusters` cannot be fooled by a name; and the
//! copy carries the copying object's namespace (tag `elasticache-export.io/owner-namespace`, a
//! key no spec may set), so a source that is another namespace's copy is refused unless the rule
//! names that namespace.

use super::policy::{any_glob, pattern_list, ExportPolicy, ExportRequest, Refusal, Rule};
use crate::api::OWNER_NAMESPACE_TAG_KEY;
use crate::aws::SourceFacts;

impl ExportPolicy {
    /// The rules that allow the request by namespace, bucket and source name.
    fn by_name<'a>(&'a self, req: &ExportRequest<'_>) -> Vec<(usize, &'a Rule)> {
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.matches_namespace(req.namespace) && r.matches_source(req.source))
            .filter(|(_, r)| req.bucket.is_none_or(|b| any_glob(&r.buckets, b)))
            .collect()
    }

    /// Whether allowing the request needs the source's provenance: some rules allow it by name,
    /// and each of them constrains the source.
    pub fn needs_provenance(&self, req: &ExportRequest<'_>) -> bool {
        let rules = self.by_name(req);
        !rules.is_empty() && rules.iter().all(|(_, r)| r.constrains_source())
    }

    /// The full check with the source's provenance: `Ok(index of the allowing rule)` or why not.
    /// A rule that does not constrain the source allows it whatever its provenance (the namespace
    /// may copy or export any snapshot, so a copy gains it nothing).
    pub fn check_provenance(&self, req: &ExportRequest<'_>, facts: &SourceFacts) -> Result<Option<usize>, Refusal> {
        let rules = self.by_name(req);
        let Some((_, first)) = rules.first() else {
            return self.check(req);
        };
        let clusters: Vec<&str> =
            facts.replication_group.iter().chain(&facts.cache_cluster).chain(&facts.serverless_cache).map(String::as_str).collect();
        let cluster_ok = |r: &Rule| r.source_clusters.is_empty() || clusters.iter().any(|c| any_glob(&r.source_clusters, c));
        let owner_ok = |r: &Rule| match (&facts.owner_uid, &facts.owner_namespace) {
            (None, None) => true,
            (_, Some(namespace)) => r.matches_namespace(namespace),
            // Our UID tag without the namespace tag (a copy by an older version): whose it is
            // cannot be told without trusting more than the operator wrote.
            (Some(_), None) => false,
        };
        if let Some((i, _)) = rules.iter().find(|(_, r)| !r.constrains_source() || (cluster_ok(r) && owner_ok(r))) {
            return Ok(Some(*i));
        }
        let what = match req.bucket {
            Some(bucket) => format!("export to bucket {bucket}"),
            None => "copy".to_string(),
        };
        if !rules.iter().any(|(_, r)| cluster_ok(r)) {
            let belongs = match (&facts.replication_group, &facts.cache_cluster, &facts.serverless_cache) {
                (Some(group), _, _) => format!("belongs to replication group {group}"),
                (None, Some(cluster), _) => format!("belongs to cache cluster {cluster}"),
                (None, None, Some(cache)) => format!("belongs to serverless cache {cache}"),
                (None, None, None) => "belongs to no replication group or cache cluster ElastiCache reports".to_string(),
            };
            let globs = pattern_list(rules.iter().flat_map(|(_, r)| &r.source_clusters));
            return Err(Refusal {
                why: format!(
                    "The export policy allows namespace {} to {what} only snapshots of replication groups or clusters matching {globs}, and source snapshot {} {belongs} (a copy keeps its source's cluster, so a name cannot change it).",
                    req.namespace, req.source
                ),
                rule_to_add: clusters.first().map(|c| Rule {
                    namespaces: vec![req.namespace.to_string()],
                    buckets: req.bucket.map(|b| vec![b.to_string()]).unwrap_or_default(),
                    sources: first.sources.clone(),
                    source_clusters: vec![c.to_string()],
                }),
            });
        }
        let whose = match (&facts.owner_namespace, &facts.owner_uid) {
            (Some(namespace), _) => format!("is an in-region copy made by a SnapshotExport in namespace {namespace} (its tag {OWNER_NAMESPACE_TAG_KEY})"),
            (None, uid) => format!(
                "is an in-region copy made by the SnapshotExport with UID {} but carries no {OWNER_NAMESPACE_TAG_KEY} tag (an older operator made it), so whose it is cannot be told",
                uid.as_deref().unwrap_or_default()
            ),
        };
        Err(Refusal {
            why: format!(
                "The export policy does not allow namespace {} to {what} source snapshot {}: it {whose}, and the rule that allows this namespace by name does not name that namespace. Exporting another namespace's copy would launder a snapshot past the source rules. If that namespace's copies are meant to be exported from here, add it to the rule's namespaces (or copy the original snapshot from this namespace).",
                req.namespace, req.source
            ),
            rule_to_add: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safety::policy::tests::rule;

    fn clusters(mut r: Rule, globs: &[&str]) -> Rule {
        r.source_clusters = globs.iter().map(|s| s.to_string()).collect();
        r
    }

    fn facts(group: Option<&str>, cluster: Option<&str>, owner: Option<(&str, Option<&str>)>) -> SourceFacts {
        SourceFacts {
            replication_group: group.map(str::to_string),
            cache_cluster: cluster.map(str::to_string),
            owner_uid: owner.map(|(uid, _)| uid.to_string()),
            owner_namespace: owner.and_then(|(_, ns)| ns.map(str::to_string)),
            serverless_cache: None,
            node_group_ids: vec![],
        }
    }

    fn serverless(cache: &str) -> SourceFacts {
        SourceFacts { serverless_cache: Some(cache.into()), ..Default::default() }
    }

    /// namespace × bucket × source name × provenance → the rule that allows it, or why not.
    #[test]
    fn provenance_matrix() {
        let policy = ExportPolicy {
            rules: vec![
                rule(&["team-a"], &["team-a-exports"], &[]),
                rule(&["team-b"], &["team-b-exports"], &["team-b-*", "automatic.team-b-redis-*"]),
                clusters(rule(&["team-c"], &["team-c-exports"], &[]), &["team-c-redis", "team-c-memcached-*"]),
                clusters(rule(&["team-d", "team-d-batch"], &[], &["team-d-*"]), &["team-d-redis"]),
            ],
            allow_in_region_copies: true,
        };
        let own_b = facts(Some("team-b-redis"), None, None);
        // (namespace, bucket, source, provenance, needs provenance, want: Ok(rule) or a refusal fragment)
        type Case<'a> = (&'a str, Option<&'a str>, &'a str, SourceFacts, bool, Result<Option<usize>, &'a str>);
        let cases: Vec<Case> = vec![
            // no source constraint: provenance is never needed, nothing is refused by it
            ("team-a", Some("team-a-exports"), "anything", facts(None, None, Some(("u1", Some("team-z")))), false, Ok(Some(0))),
            // by name, its own automatic snapshot
            ("team-b", Some("team-b-exports"), "automatic.team-b-redis-2026", own_b.clone(), true, Ok(Some(1))),
            // the laundering: team-z (no rule) copied team-a's snapshot to team-b-x
            (
                "team-b",
                Some("team-b-exports"),
                "team-b-x",
                facts(Some("team-a-redis"), None, Some(("u-z", Some("team-z")))),
                true,
                Err("in namespace team-z"),
            ),
            // team-b's own copy is fine
            (
                "team-b",
                Some("team-b-exports"),
                "team-b-x",
                facts(Some("team-b-redis"), None, Some(("u-b", Some("team-b")))),
                true,
                Ok(Some(1)),
            ),
            // an older copy with our UID tag but no namespace tag
            (
                "team-b",
                Some("team-b-exports"),
                "team-b-old",
                facts(Some("team-b-redis"), None, Some(("u-old", None))),
                true,
                Err("UID u-old"),
            ),
            // the name is refused first, without provenance
            (
                "team-b",
                Some("team-b-exports"),
                "automatic.team-a-redis-1",
                own_b.clone(),
                false,
                Err("{namespaces: [team-b], buckets: [team-b-exports], sources: [automatic.team-a-redis-1]}"),
            ),
            // by cluster: any name, the cluster decides
            ("team-c", Some("team-c-exports"), "whatever", facts(Some("team-c-redis"), None, None), true, Ok(Some(2))),
            ("team-c", Some("team-c-exports"), "whatever", facts(None, Some("team-c-memcached-0001"), None), true, Ok(Some(2))),
            (
                "team-c",
                Some("team-c-exports"),
                "team-c-looks-right",
                facts(Some("team-a-redis"), None, None),
                true,
                Err("{namespaces: [team-c], buckets: [team-c-exports], sourceClusters: [team-a-redis]}"),
            ),
            ("team-c", Some("team-c-exports"), "orphan", facts(None, None, None), true, Err("belongs to no replication group")),
            // a serverless snapshot: its serverless cache is its cluster (a copy keeps it)
            ("team-c", Some("team-c-exports"), "team-c-redis-auto", serverless("team-c-redis"), true, Ok(Some(2))),
            (
                "team-c",
                Some("team-c-exports"),
                "team-c-looks-right",
                serverless("team-a-valkey"),
                true,
                Err("belongs to serverless cache team-a-valkey"),
            ),
            // in-region copies: the same rules
            ("team-d", None, "team-d-1", facts(Some("team-d-redis"), None, Some(("u", Some("team-d-batch")))), true, Ok(Some(3))),
            ("team-d", None, "team-d-1", facts(Some("team-x"), None, None), true, Err("sourceClusters: [team-x]")),
            // a namespace no rule names copies in-region freely (allowInRegionCopies), no lookup
            ("team-z", None, "automatic.team-a-redis-1", facts(Some("team-a-redis"), None, None), false, Ok(None)),
        ];
        for (namespace, bucket, source, facts, needs, want) in cases {
            let req = ExportRequest { namespace, source, bucket };
            assert_eq!(policy.needs_provenance(&req), needs, "needs provenance: {namespace} {bucket:?} {source}");
            let got = policy.check_provenance(&req, &facts);
            match (&got, want) {
                (Ok(i), Ok(j)) => assert_eq!(*i, j, "{namespace} {bucket:?} {source}"),
                (Err(refusal), Err(fragment)) => {
                    assert!(refusal.message().contains(fragment), "{namespace} {bucket:?} {source}: {}", refusal.message());
                    assert!(refusal.message().contains(namespace), "{}", refusal.message());
                }
                _ => panic!("{namespace} {bucket:?} {source}: got {got:?}, want {want:?}"),
            }
        }
    }
}
