//! The `SnapshotExportSchedule` spec rules, checked again by the reconciler (the CRD carries
//! them as OpenAPI bounds and CEL, but a cluster may lack CEL, and CEL cannot parse cron or know
//! the zone database). Each message names the field and says what to do.

use super::schedule::SnapshotExportScheduleSpec;
use super::validation::{check_bucket_name, validate_spec};
use super::SnapshotExportSpec;
use crate::schedule::names::{self, PLACEHOLDERS};
use crate::schedule::timetable::Timetable;

/// Every rule the spec breaks, as sentences (empty when valid). `name` is the schedule's name,
/// used to check the target name the template gives.
pub fn validate_schedule(name: &str, spec: &SnapshotExportScheduleSpec) -> Vec<String> {
    let mut problems = Vec::new();
    let timetable = match Timetable::new(&spec.schedule, spec.zone_name()) {
        Ok(t) => Some(t),
        Err(why) => {
            problems.push(why);
            None
        }
    };
    let source = &spec.source;
    let given =
        [&source.replication_group_id, &source.cache_cluster_id, &source.serverless_cache_name].iter().filter(|f| f.is_some()).count();
    if given != 1 {
        problems.push("source needs exactly one of replicationGroupId, cacheClusterId and serverlessCacheName".into());
    }
    if let Some(id) = source.cache_id() {
        if id.is_empty() || id.len() > 50 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            problems.push(format!(
                "source cache id {id:?} must be 1 to 50 letters, digits and '-' (an ElastiCache replication group, cluster or serverless cache)"
            ));
        }
    }
    if let Some(name) = source.serverless_cache_name.as_deref().filter(|n| n.len() > 40) {
        problems.push(format!("source.serverlessCacheName {name:?} must be at most 40 characters"));
    }
    if let Some(d) = spec.starting_deadline_seconds.filter(|d| *d < 1) {
        problems.push(format!("startingDeadlineSeconds must be at least 1 (it is {d})"));
    }
    if let Some(t) = spec.run_timeout_seconds.filter(|t| !(60..=31_536_000).contains(t)) {
        problems.push(format!("runTimeoutSeconds must be between 60 (a minute) and 31536000 (a year) (it is {t})"));
    }
    if spec.retention.keep_last > 1000 {
        problems.push(format!("retention.keepLast must be at most 1000 (it is {})", spec.retention.keep_last));
    }
    let template = &spec.template;
    if let Some(bucket) = &template.target_bucket {
        if let Err(why) = check_bucket_name(bucket) {
            problems.push(format!("template.targetBucket {bucket:?} {why}"));
        }
    }
    if spec.retention.prune_exported_objects && template.target_bucket.is_none() {
        problems.push("retention.pruneExportedObjects needs template.targetBucket: only exports to S3 have objects to prune".into());
    }
    if let Some(raw) = &template.target_snapshot_name_template {
        let mut rest = raw.as_str();
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                problems.push(format!("template.targetSnapshotNameTemplate {raw:?} has an unclosed '{{'"));
                break;
            };
            let placeholder = &rest[open + 1..open + close];
            if !PLACEHOLDERS.contains(&placeholder) {
                problems.push(format!(
                    "template.targetSnapshotNameTemplate uses the unknown placeholder {{{placeholder}}}; use {}",
                    PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
                ));
            }
            rest = &rest[open + close + 1..];
        }
    }
    // The name the template gives for this schedule (the cache id and date have fixed shapes).
    if let (Some(t), Some(cache)) = (&timetable, source.cache_id()) {
        if problems.is_empty() {
            if let Err(why) = names::check_template(template.target_snapshot_name_template.as_deref(), name, cache, t) {
                problems.push(format!("template.{why}"));
            }
        }
    }
    // The SnapshotExport each run gets must pass its own rules.
    let mut as_export = SnapshotExportSpec::new("source", "target", template.target_bucket.as_deref());
    as_export.kms_key_id = template.kms_key_id.clone();
    as_export.tags = template.tags.clone();
    for problem in validate_spec(&as_export) {
        if !problems.iter().any(|p| p.contains(&problem)) && !problem.starts_with("targetBucket") {
            problems.push(format!("template: {problem}"));
        }
    }
    problems
}
