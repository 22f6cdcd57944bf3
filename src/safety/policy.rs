//! The export policy: which namespaces may export to which S3 buckets, and which source
//! snapshots they may copy (docs/safe-exports.md).
//!
//! Whoever can create a `SnapshotExport` uses the operator's AWS role, and whoever can call
//! CopySnapshot can copy a snapshot to a bucket they own (the ElastiCache guide's data
//! vulnerability warning). So S3 exports are refused unless a rule allows them (secure by
//! default). Rules come from a YAML/JSON file (`--export-policy-file`, a mounted ConfigMap,
//! re-read when it changes) and from `--allow-export NAMESPACE_GLOB=BUCKET_GLOB[,SOURCE_GLOB]`.
//!
//! ```yaml
//! rules:
//!   - namespaces: ["team-a", "team-a-*"]   # globs: `*` any run of characters, `?` one character
//!     buckets: ["team-a-exports"]          # omitted or empty: no S3 export through this rule
//!     sources: ["prod-a-*"]                # omitted or empty: any source snapshot name
//!     sourceClusters: ["team-a-redis"]     # omitted or empty: any replication group / cluster
//! allowInRegionCopies: true                # default true (see below)
//! ```
//!
//! - An S3 export from namespace N of source S to bucket B is allowed when one rule matches N,
//!   B and S (a rule without `sources` matches every source name). A rule that constrains the
//!   source (`sources` or `sourceClusters`) is also checked against what a copy cannot change,
//!   right before CopySnapshot (`provenance.rs`): the replication group or cache cluster the
//!   snapshot belongs to, and the ownership tags the operator writes on its in-region copies.
//! - An in-region copy follows the same source rules: when some rule for N constrains
//!   sources, S must be allowed by a rule for N (one without `sources` allows any). A namespace
//!   no rule names may copy in-region, unless `allowInRegionCopies: false`, which requires a
//!   rule for the namespace (its `buckets` may be empty).

use super::glob::glob_match;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One rule; each list holds globs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Namespaces the rule applies to (required, at least one).
    pub namespaces: Vec<String>,
    /// Buckets these namespaces may export to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<String>,
    /// Source snapshots these namespaces may copy or export; empty means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// Replication groups or cache clusters whose snapshots these namespaces may copy or export
    /// (DescribeSnapshots' ReplicationGroupId / CacheClusterId, which a copy keeps); empty
    /// means any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_clusters: Vec<String>,
}

impl Rule {
    /// Parse the `--allow-export` form `NAMESPACE_GLOB=BUCKET_GLOB[,SOURCE_GLOB[,CLUSTER_GLOB]]`
    /// (`*` as SOURCE_GLOB: any name, constrained by cluster only).
    pub fn parse_flag(text: &str) -> Result<Rule, String> {
        let usage = || {
            format!("--allow-export {text:?}: expected NAMESPACE_GLOB=BUCKET_GLOB[,SOURCE_GLOB[,CLUSTER_GLOB]], e.g. team-a-*=team-a-exports,prod-*,team-a-redis")
        };
        let (namespace, rest) = text.trim().split_once('=').ok_or_else(usage)?;
        let mut parts = rest.split(',').map(str::trim);
        let bucket = parts.next().unwrap_or_default();
        let source = parts.next();
        let cluster = parts.next();
        if namespace.trim().is_empty() || bucket.is_empty() || parts.next().is_some() || source == Some("") || cluster == Some("") {
            return Err(usage());
        }
        let source = source.filter(|s| !(*s == "*" && cluster.is_some()));
        Ok(Rule {
            namespaces: vec![namespace.trim().to_string()],
            buckets: vec![bucket.to_string()],
            sources: source.map(|s| vec![s.to_string()]).unwrap_or_default(),
            source_clusters: cluster.map(|c| vec![c.to_string()]).unwrap_or_default(),
        })
    }

    pub(super) fn matches_namespace(&self, namespace: &str) -> bool {
        any_glob(&self.namespaces, namespace)
    }

    /// Whether the rule constrains the source (by name or by cluster): then a copy's provenance
    /// is checked too.
    pub(super) fn constrains_source(&self) -> bool {
        // `sources: ["*"]` allows any name: no constraint.
        (!self.sources.is_empty() && !self.sources.iter().any(|s| s == "*")) || !self.source_clusters.is_empty()
    }

    pub(super) fn matches_source(&self, source: &str) -> bool {
        self.sources.is_empty() || any_glob(&self.sources, source)
    }

    /// The rule in the file's flow syntax, e.g. `{namespaces: [team-a], buckets: [b]}`.
    pub fn to_flow_yaml(&self) -> String {
        let list = |v: &[String]| v.iter().map(|s| yaml_scalar(s)).collect::<Vec<_>>().join(", ");
        let mut parts = vec![format!("namespaces: [{}]", list(&self.namespaces))];
        if !self.buckets.is_empty() {
            parts.push(format!("buckets: [{}]", list(&self.buckets)));
        }
        if !self.sources.is_empty() {
            parts.push(format!("sources: [{}]", list(&self.sources)));
        }
        if !self.source_clusters.is_empty() {
            parts.push(format!("sourceClusters: [{}]", list(&self.source_clusters)));
        }
        format!("{{{}}}", parts.join(", "))
    }

    /// The rule as `--allow-export` flag values (one per namespace × bucket × source).
    fn as_flag(&self) -> Option<String> {
        match (self.namespaces.as_slice(), self.buckets.as_slice(), self.sources.as_slice(), self.source_clusters.as_slice()) {
            ([ns], [b], [], []) => Some(format!("--allow-export {ns}={b}")),
            ([ns], [b], [s], []) => Some(format!("--allow-export {ns}={b},{s}")),
            ([ns], [b], [], [c]) => Some(format!("--allow-export {ns}={b},*,{c}")),
            ([ns], [b], [s], [c]) => Some(format!("--allow-export {ns}={b},{s},{c}")),
            _ => None,
        }
    }
}

/// Quote a YAML scalar when it would not read back as the same plain string.
fn yaml_scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && !s.starts_with(['-', '.'])
        && !matches!(s.to_ascii_lowercase().as_str(), "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~");
    if plain {
        s.to_string()
    } else {
        format!("{s:?}")
    }
}

/// The whole policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExportPolicy {
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// In-region copies from namespaces no rule names are allowed (default true).
    #[serde(default = "yes")]
    pub allow_in_region_copies: bool,
}

fn yes() -> bool {
    true
}

impl Default for ExportPolicy {
    /// No rule: every S3 export is refused, in-region copies are allowed.
    fn default() -> Self {
        Self { rules: Vec::new(), allow_in_region_copies: true }
    }
}

/// What is asked of the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportRequest<'a> {
    pub namespace: &'a str,
    pub source: &'a str,
    /// `None`: an in-region copy.
    pub bucket: Option<&'a str>,
}

/// Why the policy refuses a request, and the rule that would allow it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// What was refused and why, in one sentence.
    pub why: String,
    /// The smallest rule that would allow the request (`None` when the policy file itself is
    /// unusable).
    pub rule_to_add: Option<Rule>,
}

impl Refusal {
    pub const REASON: &'static str = "ExportNotAllowed";

    /// The condition / Warning Event message: what was refused and the rule to add.
    pub fn message(&self) -> String {
        let heal = "The export is retried, so changing the policy heals it without editing this object.";
        let Some(rule) = &self.rule_to_add else {
            return format!("{} {heal}", self.why);
        };
        let flag = rule.as_flag().map(|f| format!(" (or run the operator with {f})")).unwrap_or_default();
        format!("{} Add a rule to the operator's export policy: {}{flag}. {heal}", self.why, rule.to_flow_yaml())
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl ExportPolicy {
    /// Parse a policy file (YAML; JSON is YAML too).
    pub fn parse(text: &str) -> Result<ExportPolicy, String> {
        let policy: ExportPolicy =
            if text.trim().is_empty() { ExportPolicy::default() } else { serde_yaml::from_str(text).map_err(|e| e.to_string())? };
        policy.validate()?;
        Ok(policy)
    }

    pub fn validate(&self) -> Result<(), String> {
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.namespaces.is_empty() {
                return Err(format!("rules[{i}]: namespaces must list at least one namespace glob"));
            }
            for glob in rule.namespaces.iter().chain(&rule.buckets).chain(&rule.sources).chain(&rule.source_clusters) {
                if glob.trim().is_empty() {
                    return Err(format!("rules[{i}]: an empty pattern matches nothing; remove it"));
                }
            }
        }
        Ok(())
    }

    /// Add rules (from flags).
    pub fn with_rules(mut self, rules: impl IntoIterator<Item = Rule>) -> Self {
        self.rules.extend(rules);
        self
    }

    /// `Ok(index of the rule that allows it)` — `None` for an in-region copy no rule governs —
    /// or the refusal.
    pub fn check(&self, req: &ExportRequest<'_>) -> Result<Option<usize>, Refusal> {
        let for_namespace: Vec<(usize, &Rule)> =
            self.rules.iter().enumerate().filter(|(_, r)| r.matches_namespace(req.namespace)).collect();
        match req.bucket {
            Some(bucket) => {
                if let Some((i, _)) = for_namespace.iter().find(|(_, r)| any_glob(&r.buckets, bucket) && r.matches_source(req.source)) {
                    return Ok(Some(*i));
                }
                let to_bucket: Vec<&Rule> = for_namespace.iter().map(|(_, r)| *r).filter(|r| any_glob(&r.buckets, bucket)).collect();
                let (why, sources) = if to_bucket.is_empty() {
                    (
                        format!(
                            "The export policy allows no export from namespace {} to bucket {bucket}, so the operator refuses it (it would give this namespace CopySnapshot to that bucket through the operator's AWS role).",
                            req.namespace
                        ),
                        Vec::new(),
                    )
                } else {
                    (
                        format!(
                            "The export policy allows namespace {} to export to bucket {bucket} only from source snapshots matching {}, not {}.",
                            req.namespace,
                            pattern_list(to_bucket.iter().flat_map(|r| &r.sources)),
                            req.source
                        ),
                        vec![req.source.to_string()],
                    )
                };
                Err(Refusal {
                    why,
                    rule_to_add: Some(Rule {
                        namespaces: vec![req.namespace.to_string()],
                        buckets: vec![bucket.to_string()],
                        sources,
                        source_clusters: vec![],
                    }),
                })
            }
            None => {
                if for_namespace.is_empty() {
                    return if self.allow_in_region_copies {
                        Ok(None)
                    } else {
                        Err(Refusal {
                            why: format!(
                                "The export policy does not allow in-region copies from namespace {} (allowInRegionCopies is false and no rule names this namespace).",
                                req.namespace
                            ),
                            rule_to_add: Some(Rule {
                                namespaces: vec![req.namespace.to_string()],
                                buckets: vec![],
                                sources: vec![req.source.to_string()],
                                source_clusters: vec![],
                            }),
                        })
                    };
                }
                if let Some((i, _)) = for_namespace.iter().find(|(_, r)| r.matches_source(req.source)) {
                    return Ok(Some(*i));
                }
                Err(Refusal {
                    why: format!(
                        "The export policy allows namespace {} to copy only source snapshots matching {}, not {}.",
                        req.namespace,
                        pattern_list(for_namespace.iter().flat_map(|(_, r)| &r.sources)),
                        req.source
                    ),
                    rule_to_add: Some(Rule {
                        namespaces: vec![req.namespace.to_string()],
                        buckets: vec![],
                        sources: vec![req.source.to_string()],
                        source_clusters: vec![],
                    }),
                })
            }
        }
    }

    /// A one-line description of a rule, for logs and the demo.
    pub fn describe_rule(&self, index: usize) -> String {
        self.rules.get(index).map(Rule::to_flow_yaml).unwrap_or_default()
    }
}

pub(super) fn pattern_list<'a>(patterns: impl Iterator<Item = &'a String>) -> String {
    let mut all: Vec<&str> = patterns.map(String::as_str).collect();
    all.sort_unstable();
    all.dedup();
    all.join(", ")
}

pub(super) fn any_glob(patterns: &[String], text: &str) -> bool {
    patterns.iter().any(|p| glob_match(p, text))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn rule(ns: &[&str], buckets: &[&str], sources: &[&str]) -> Rule {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        Rule { namespaces: v(ns), buckets: v(buckets), sources: v(sources), source_clusters: vec![] }
    }

    /// The namespace × bucket × source × rule table.
    #[test]
    fn policy_matrix() {
        let policy = ExportPolicy {
            rules: vec![
                rule(&["team-a", "team-a-*"], &["team-a-exports"], &[]),
                rule(&["team-b"], &["team-b-*"], &["prod-b-*"]),
                rule(&["ops"], &["*"], &[]),
                rule(&["copies-only"], &[], &["prod-c-*"]),
            ],
            allow_in_region_copies: true,
        };
        // (namespace, bucket, source, allowed by rule index)
        type Case<'a> = (&'a str, Option<&'a str>, &'a str, Result<Option<usize>, &'a str>);
        let cases: Vec<Case> = vec![
            ("team-a", Some("team-a-exports"), "anything", Ok(Some(0))),
            ("team-a-dev", Some("team-a-exports"), "anything", Ok(Some(0))),
            ("team-a", Some("team-b-exports"), "prod-b-1", Err("{namespaces: [team-a], buckets: [team-b-exports]}")),
            ("team-ab", Some("team-a-exports"), "x", Err("{namespaces: [team-ab], buckets: [team-a-exports]}")),
            ("team-b", Some("team-b-nightly"), "prod-b-1", Ok(Some(1))),
            ("team-b", Some("team-b-nightly"), "prod-a-1", Err("{namespaces: [team-b], buckets: [team-b-nightly], sources: [prod-a-1]}")),
            ("team-b", Some("team-a-exports"), "prod-b-1", Err("{namespaces: [team-b], buckets: [team-a-exports]}")),
            ("ops", Some("any-bucket"), "any", Ok(Some(2))),
            ("default", Some("team-a-exports"), "x", Err("{namespaces: [default], buckets: [team-a-exports]}")),
            ("copies-only", Some("b"), "prod-c-1", Err("{namespaces: [copies-only], buckets: [b]}")),
            // in-region copies: the source rules of the namespace, if any
            ("default", None, "whatever", Ok(None)),
            ("team-a", None, "whatever", Ok(Some(0))),
            ("team-b", None, "prod-b-1", Ok(Some(1))),
            ("team-b", None, "prod-a-1", Err("{namespaces: [team-b], sources: [prod-a-1]}")),
            ("copies-only", None, "prod-c-9", Ok(Some(3))),
            ("copies-only", None, "prod-a-9", Err("{namespaces: [copies-only], sources: [prod-a-9]}")),
        ];
        for (namespace, bucket, source, want) in cases {
            let got = policy.check(&ExportRequest { namespace, source, bucket });
            match (&got, want) {
                (Ok(i), Ok(j)) => assert_eq!(*i, j, "{namespace} {bucket:?} {source}"),
                (Err(refusal), Err(rule)) => {
                    assert_eq!(refusal.rule_to_add.as_ref().unwrap().to_flow_yaml(), rule, "{namespace} {bucket:?} {source}");
                    assert!(refusal.message().contains(rule), "{}", refusal.message());
                    assert!(refusal.message().contains(namespace), "{}", refusal.message());
                }
                _ => panic!("{namespace} {bucket:?} {source}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn no_rule_refuses_every_s3_export_and_allows_in_region_copies() {
        let policy = ExportPolicy::default();
        let refusal = policy.check(&ExportRequest { namespace: "team-b", source: "s", bucket: Some("b") }).unwrap_err();
        assert_eq!(
            refusal.message(),
            "The export policy allows no export from namespace team-b to bucket b, so the operator refuses it (it would give this namespace CopySnapshot to that bucket through the operator's AWS role). Add a rule to the operator's export policy: {namespaces: [team-b], buckets: [b]} (or run the operator with --allow-export team-b=b). The export is retried, so changing the policy heals it without editing this object."
        );
        assert_eq!(policy.check(&ExportRequest { namespace: "team-b", source: "s", bucket: None }), Ok(None));
        let strict = ExportPolicy { allow_in_region_copies: false, ..Default::default() };
        let refusal = strict.check(&ExportRequest { namespace: "team-b", source: "s", bucket: None }).unwrap_err();
        assert!(refusal.message().contains("{namespaces: [team-b], sources: [s]}"), "{}", refusal.message());
    }

    #[test]
    fn flags_parse() {
        assert_eq!(Rule::parse_flag("team-a-*=team-a-exports").unwrap(), rule(&["team-a-*"], &["team-a-exports"], &[]));
        assert_eq!(Rule::parse_flag(" *=*,prod-* ").unwrap(), rule(&["*"], &["*"], &["prod-*"]));
        let mut by_cluster = rule(&["a"], &["b"], &[]);
        by_cluster.source_clusters = vec!["team-a-redis".into()];
        assert_eq!(Rule::parse_flag("a=b,*,team-a-redis").unwrap(), by_cluster, "`*` as the name: by cluster only");
        by_cluster.sources = vec!["prod-*".into()];
        assert_eq!(Rule::parse_flag("a=b,prod-*,team-a-redis").unwrap(), by_cluster);
        assert_eq!(by_cluster.as_flag().unwrap(), "--allow-export a=b,prod-*,team-a-redis");
        for bad in ["", "team-a", "=b", "a=", "a=b,", "a=b,c,", "a=b,c,d,e"] {
            assert!(Rule::parse_flag(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn file_format_yaml_and_json() {
        let yaml = "rules:\n  - namespaces: [\"team-a-*\"]\n    buckets: [team-a-exports]\n    sources: [\"prod-*\"]\nallowInRegionCopies: false\n";
        let p = ExportPolicy::parse(yaml).unwrap();
        assert_eq!(p.rules, [rule(&["team-a-*"], &["team-a-exports"], &["prod-*"])]);
        assert!(!p.allow_in_region_copies);
        let json = r#"{"rules": [{"namespaces": ["x"], "buckets": ["y"]}]}"#;
        let p = ExportPolicy::parse(json).unwrap();
        assert_eq!(p.rules, [rule(&["x"], &["y"], &[])]);
        assert!(p.allow_in_region_copies);
        assert_eq!(ExportPolicy::parse("").unwrap(), ExportPolicy::default());
        assert!(ExportPolicy::parse("rules: [{buckets: [b]}]").is_err(), "namespaces required");
        assert!(ExportPolicy::parse("rules: [{namespaces: []}]").is_err());
        assert!(ExportPolicy::parse("rules: [{namespaces: [a], bucket: [b]}]").is_err(), "typos are refused");
        assert!(ExportPolicy::parse("rules: [{namespaces: [a], buckets: ['']}]").is_err());
    }

    #[test]
    fn flow_yaml_of_a_rule_reads_back() {
        let r = rule(&["team-a-*", "true"], &["b.c"], &["automatic.x-2026"]);
        let text = format!("rules: [{}]", r.to_flow_yaml());
        assert_eq!(ExportPolicy::parse(&text).unwrap().rules, [r]);
    }
}
