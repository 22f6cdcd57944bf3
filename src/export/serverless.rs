//! The AWS calls of a source's kind: node-based snapshots (DescribeSnapshots, CopySnapshot,
//! DeleteSnapshot) or ElastiCache Serverless ones (DescribeServerlessCacheSnapshots,
//! CopyServerlessCacheSnapshot, ExportServerlessCacheSnapshot, DeleteServerlessCacheSnapshot),
//! answered in the node-based domain types so that one decision code (`decide.rs`) serves both;
//! and the serverless half of the shared sweep (one paginated listing per interval).

use crate::api::{SnapshotExportSpec, OWNER_NAMESPACE_TAG_KEY, OWNER_TAG_KEY};
use crate::aws::{AwsError, CopyRequest, ServerlessCopyRequest, SnapshotApis, SnapshotInfo};
use std::collections::{HashMap, HashSet};

/// The request this spec makes of AWS, by name (logs and Events).
pub fn operation(spec: &SnapshotExportSpec) -> &'static str {
    match (spec.is_serverless(), spec.is_export()) {
        (false, _) => "CopySnapshot",
        (true, false) => "CopyServerlessCacheSnapshot",
        (true, true) => "ExportServerlessCacheSnapshot",
    }
}

/// The CopySnapshot request for a spec. In-region copies carry the ownership tags (the owning
/// object's UID and namespace) so that a copy made before a crash is recognised, and so that
/// the export policy can tell whose copy a source is (`crate::safety::provenance`). A serverless
/// in-region copy carries the same tags (CopyServerlessCacheSnapshot tags the copy).
pub fn copy_request(spec: &SnapshotExportSpec, uid: &str, namespace: &str) -> CopyRequest {
    let mut tags: Vec<(String, Option<String>)> = spec.tags.iter().map(|t| (t.key.clone(), t.value.clone())).collect();
    if !spec.is_export() {
        tags.push((OWNER_TAG_KEY.to_string(), Some(uid.to_string())));
        tags.push((OWNER_NAMESPACE_TAG_KEY.to_string(), Some(namespace.to_string())));
    }
    CopyRequest {
        source: spec.source_snapshot_name.clone(),
        target: spec.target_snapshot_name.clone(),
        bucket: spec.target_bucket.clone(),
        kms_key_id: spec.kms_key_id.clone(),
        tags,
    }
}

/// Make the one request of this spec: CopySnapshot (in-region or to S3), or for a serverless
/// source CopyServerlessCacheSnapshot (in-region, tagged) or ExportServerlessCacheSnapshot. The
/// answer is the new copy (in-region) or the source snapshot (exports).
pub async fn request<A: SnapshotApis>(aws: &A, spec: &SnapshotExportSpec, uid: &str, namespace: &str) -> Result<SnapshotInfo, AwsError> {
    let request = copy_request(spec, uid, namespace);
    if !spec.is_serverless() {
        return aws.copy_snapshot(&request).await;
    }
    match &request.bucket {
        Some(bucket) => aws.export_serverless_snapshot(&request.source, bucket).await.map(SnapshotInfo::from),
        None => {
            let CopyRequest { source, target, kms_key_id, tags, .. } = request;
            aws.copy_serverless_snapshot(&ServerlessCopyRequest { source, target, kms_key_id, tags }).await.map(SnapshotInfo::from)
        }
    }
}

/// Whether two exports name their objects after the same base (serverless snapshot names are
/// case-insensitive; node-based target names are S3 keys, compared exactly).
pub fn same_export_base(a: &SnapshotExportSpec, b: &SnapshotExportSpec) -> bool {
    if a.is_serverless() || b.is_serverless() {
        a.export_base_name().eq_ignore_ascii_case(&b.export_base_name())
    } else {
        a.export_base_name() == b.export_base_name()
    }
}

/// Describe one snapshot of the given kind; `None` when it does not exist.
pub async fn describe<A: SnapshotApis>(aws: &A, serverless: bool, name: &str) -> Result<Option<SnapshotInfo>, AwsError> {
    if serverless {
        Ok(aws.describe_serverless_snapshot(name).await?.map(SnapshotInfo::from))
    } else {
        aws.describe_snapshot(name).await
    }
}

/// Delete one snapshot of the given kind (already gone counts as deleted).
pub async fn delete<A: SnapshotApis>(aws: &A, serverless: bool, name: &str) -> Result<(), AwsError> {
    if serverless {
        aws.delete_serverless_snapshot(name).await
    } else {
        aws.delete_snapshot(name).await
    }
}

/// Page through every serverless snapshot in the region (DescribeServerlessCacheSnapshots, 50 a
/// page), keeping only the followed ones (`names`, lowercase); returns them by lowercase name.
/// One listing serves every followed serverless object, never one call per object.
pub async fn list_followed<A: SnapshotApis>(aws: &A, names: &HashSet<String>) -> Result<HashMap<String, SnapshotInfo>, AwsError> {
    let mut found = HashMap::new();
    let mut token = None;
    loop {
        // The AWS layer refuses a NextToken handed back unchanged (it would page forever).
        let page = aws.describe_serverless_snapshots_page(token).await?;
        for snapshot in page.snapshots {
            let key = snapshot.name.to_ascii_lowercase();
            if names.contains(&key) {
                found.insert(key, SnapshotInfo::from(snapshot));
            }
        }
        match page.next_token {
            Some(next) => token = Some(next),
            None => return Ok(found),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_names_its_own_request() {
        let copy = SnapshotExportSpec::new("src", "dst", None);
        let export = SnapshotExportSpec::new("src", "dst", Some("bkt"));
        assert_eq!(operation(&copy), "CopySnapshot");
        assert_eq!(operation(&export), "CopySnapshot");
        assert_eq!(operation(&copy.clone().serverless()), "CopyServerlessCacheSnapshot");
        assert_eq!(operation(&export.serverless()), "ExportServerlessCacheSnapshot");
    }

    #[test]
    fn a_serverless_export_is_named_after_the_snapshot_as_elasticache_stores_it() {
        let export = SnapshotExportSpec::new("SLS-Mixed", "", Some("bkt")).serverless();
        // Whether or not the snapshot can be described (it may be deleted right after the export).
        assert_eq!(export.export_base_name(), "sls-mixed");
        let node = SnapshotExportSpec::new("src", "Weekly", Some("bkt"));
        assert_eq!(node.export_base_name(), "Weekly", "a node-based export is named after its target");
        for (key, ours) in [
            ("sls-mixed-0001.rdb", true),
            ("sls-mixed-12.rdb", true),
            ("sls-mixed-old-0001.rdb", false),
            ("sls-mixed-0001-x.rdb", false),
            ("sls-mixed-.rdb", false),
        ] {
            assert_eq!(export.is_serverless_export_key(key), ours, "{key}");
        }
        assert!(same_export_base(&export, &SnapshotExportSpec::new("sls-mixed", "", Some("bkt")).serverless()));
        assert!(same_export_base(&export, &SnapshotExportSpec::new("src", "sls-mixed", Some("bkt"))), "the same keys, whoever writes them");
        assert!(!same_export_base(&node, &SnapshotExportSpec::new("src", "weekly", Some("bkt"))));
    }

    #[test]
    fn in_region_copies_of_either_kind_carry_the_ownership_tags_and_exports_none() {
        let copy = SnapshotExportSpec::new("src", "dst", None).serverless();
        let tags = copy_request(&copy, "uid-1", "ns").tags;
        assert!(tags.contains(&(OWNER_TAG_KEY.to_string(), Some("uid-1".into()))), "{tags:?}");
        assert!(tags.contains(&(OWNER_NAMESPACE_TAG_KEY.to_string(), Some("ns".into()))), "{tags:?}");
        let export = SnapshotExportSpec::new("src", "", Some("bkt")).serverless();
        assert!(copy_request(&export, "uid-1", "ns").tags.is_empty());
    }
}
