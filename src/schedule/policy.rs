//! The export policy asked for a CreateSnapshot run before its snapshot is taken: the rules the
//! SnapshotExport gate applies to the run (namespace, bucket, source name, and for a rule that
//! constrains the source, the cache the snapshot will belong to), so a run the policy would
//! refuse takes no snapshot for nothing (review finding F3a).

use super::aws::CacheRef;
use crate::aws::SourceFacts;
use crate::safety::policy::{ExportPolicy, ExportRequest, Refusal};
use crate::safety::policy_file::PolicySource;

/// Whether the policy in force allows the run that will export `snapshot` (taken from `cache`)
/// from `namespace` to `bucket` (`None`: an in-region copy). `Err` is the condition and Warning
/// message: the policy's own refusal, and what the run would have exported.
pub fn check_run(policy: &PolicySource, namespace: &str, snapshot: &str, bucket: Option<&str>, cache: &CacheRef) -> Result<(), String> {
    let request = ExportRequest { namespace, source: snapshot, bucket };
    let said = |refusal: Refusal| {
        format!(
            "{} (The run would export {snapshot}, a snapshot this schedule takes of {}; it is not taken until the export policy allows the run.)",
            refusal.message(),
            cache.describe()
        )
    };
    policy.check(&request).map_err(said)?;
    match policy.current() {
        Ok(current) => check_provenance(&current, &request, cache).map_err(said),
        // `check` refused already when there is no usable policy.
        Err(_) => Ok(()),
    }
}

/// A rule that constrains the source is checked against the snapshot's provenance right before
/// CopySnapshot; the snapshot a CreateSnapshot run takes will belong to the schedule's cache
/// and carry no copy's ownership tags, so that check is decided now on those facts.
pub fn check_provenance(policy: &ExportPolicy, request: &ExportRequest<'_>, cache: &CacheRef) -> Result<(), Refusal> {
    if !policy.needs_provenance(request) {
        return Ok(());
    }
    policy.check_provenance(request, &predicted_facts(cache)).map(|_| ())
}

/// What DescribeSnapshots (DescribeServerlessCacheSnapshots for a serverless cache) will say the
/// snapshot belongs to: the SnapshotExport gate matches `sourceClusters` against it, the
/// serverless cache included.
fn predicted_facts(cache: &CacheRef) -> SourceFacts {
    let mut facts = SourceFacts::default();
    match cache {
        CacheRef::ReplicationGroup(id) => facts.replication_group = Some(id.clone()),
        CacheRef::CacheCluster(id) => facts.cache_cluster = Some(id.clone()),
        CacheRef::Serverless(id) => facts.serverless_cache = Some(id.clone()),
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safety::policy::Rule;

    fn rule(ns: &str, buckets: &[&str], sources: &[&str], clusters: &[&str]) -> Rule {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        Rule { namespaces: vec![ns.into()], buckets: v(buckets), sources: v(sources), source_clusters: v(clusters) }
    }

    /// cache × bucket × rules → allowed, or a word of the refusal.
    #[test]
    fn a_run_is_checked_as_its_snapshot_export_will_be() {
        let rg = CacheRef::ReplicationGroup("team-redis".into());
        let cc = CacheRef::CacheCluster("other".into());
        let sls = CacheRef::Serverless("team-sessions".into());
        let snap = "ecx-sched-0123456789abcdef";
        let policy = |rules: Vec<Rule>, in_region: bool| PolicySource::fixed(ExportPolicy { rules, allow_in_region_copies: in_region });
        type Case<'a> = (&'a str, PolicySource, &'a CacheRef, Option<&'a str>, Result<(), &'a str>);
        let cases: Vec<Case> = vec![
            ("any source to the bucket", policy(vec![rule("ns", &["b"], &[], &[])], true), &cc, Some("b"), Ok(())),
            ("no rule for the bucket", policy(vec![rule("ns", &["b"], &[], &[])], true), &cc, Some("x"), Err("bucket x")),
            ("no rule at all", policy(vec![], true), &rg, Some("b"), Err("allows no export from namespace ns")),
            ("the cache the rule names", policy(vec![rule("ns", &["b"], &[], &["team-*"])], true), &rg, Some("b"), Ok(())),
            (
                "another cache than the rule names",
                policy(vec![rule("ns", &["b"], &[], &["team-*"])], true),
                &cc,
                Some("b"),
                Err("belongs to cache cluster other"),
            ),
            (
                "source names the run's snapshot cannot match",
                policy(vec![rule("ns", &["b"], &["prod-*"], &[])], true),
                &rg,
                Some("b"),
                Err("prod-*"),
            ),
            (
                "source names matching the run's snapshots",
                policy(vec![rule("ns", &["b"], &["ecx-sched-*"], &[])], true),
                &rg,
                Some("b"),
                Ok(()),
            ),
            ("an in-region copy, no rule", policy(vec![], true), &cc, None, Ok(())),
            ("a serverless cache, any source", policy(vec![rule("ns", &["b"], &[], &[])], true), &sls, Some("b"), Ok(())),
            (
                "a serverless cache a rule names, as the SnapshotExport gate matches it",
                policy(vec![rule("ns", &["b"], &[], &["team-*"])], true),
                &sls,
                Some("b"),
                Ok(()),
            ),
            (
                "a serverless cache the rule does not name",
                policy(vec![rule("ns", &["b"], &[], &["prod-*"])], true),
                &sls,
                Some("b"),
                Err("belongs to serverless cache team-sessions"),
            ),
            ("an in-region copy, not allowed", policy(vec![], false), &cc, None, Err("allowInRegionCopies is false")),
            (
                "an in-region copy of another cache",
                policy(vec![rule("ns", &[], &[], &["team-*"])], true),
                &cc,
                None,
                Err("belongs to cache cluster other"),
            ),
        ];
        for (what, policy, cache, bucket, want) in cases {
            let got = check_run(&policy, "ns", snap, bucket, cache);
            match (&got, want) {
                (Ok(()), Ok(())) => {}
                (Err(message), Err(part)) => {
                    assert!(message.contains(part), "{what}: {message}");
                    assert!(message.contains(snap) && message.contains(cache.id()), "{what}: {message}");
                }
                _ => panic!("{what}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn an_unusable_policy_file_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, "rules: []\n").unwrap();
        let policy = PolicySource::new(Some(path.clone()), vec![]).unwrap();
        std::fs::write(&path, "rules: [{nope").unwrap();
        let cache = CacheRef::CacheCluster("c".into());
        let message = check_run(&policy, "ns", "s", None, &cache).unwrap_err();
        assert!(message.contains("is invalid"), "{message}");
    }
}
