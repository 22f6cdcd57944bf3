//! The spec rules, checked again by the reconciler: the CRD carries the same rules as OpenAPI
//! bounds and CEL, but a cluster may lack CEL (or an object may predate a rule), and a bad spec
//! must never reach AWS. Each message names the field and says what to do.

use super::{SnapshotExportSpec, RESERVED_TAG_PREFIX};

/// At most this many user tags: ElastiCache allows 50 and the operator adds its two ownership
/// tags.
pub const MAX_TAGS: usize = 48;
/// Bounds of ElastiCache snapshot names.
pub const MAX_SNAPSHOT_NAME: usize = 1000;

/// Every rule the spec breaks, as human sentences (empty when the spec is valid).
pub fn validate_spec(spec: &SnapshotExportSpec) -> Vec<String> {
    let mut problems = Vec::new();
    check_snapshot_name("sourceSnapshotName", &spec.source_snapshot_name, &mut problems);
    if spec.is_serverless() && spec.is_export() {
        // ExportServerlessCacheSnapshot takes no target name; one given here would be ignored,
        // and a user would look for objects under a name AWS never used.
        if !spec.target_snapshot_name.is_empty() {
            problems.push("targetSnapshotName must be omitted when a Serverless snapshot is exported: ExportServerlessCacheSnapshot takes no target name and the objects are named by ElastiCache after the snapshot".into());
        }
    } else if spec.target_snapshot_name.is_empty() {
        problems.push(
            "targetSnapshotName is required: it names the in-region copy (or, for a node-based snapshot's export, the exported objects)"
                .into(),
        );
    } else {
        check_snapshot_name("targetSnapshotName", &spec.target_snapshot_name, &mut problems);
    }
    if let Some(bucket) = &spec.target_bucket {
        if let Err(why) = check_bucket_name(bucket) {
            problems.push(format!("targetBucket {bucket:?} {why}"));
        }
        if spec.kms_key_id.is_some() {
            problems.push("kmsKeyId cannot be used with targetBucket: exports to S3 are unencrypted and ElastiCache refuses a customer-managed KMS key for them; remove kmsKeyId or targetBucket".into());
        }
    }
    if let Some(kms) = &spec.kms_key_id {
        if kms.is_empty() || kms.chars().count() > 2048 {
            problems.push("kmsKeyId must be 1 to 2048 characters (a KMS key ID or ARN)".into());
        }
    }
    if spec.tags.len() > MAX_TAGS {
        problems.push(format!(
            "tags has {} entries, more than {MAX_TAGS}: ElastiCache allows 50 tags and the operator adds two",
            spec.tags.len()
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for tag in &spec.tags {
        let len = tag.key.chars().count();
        if !(1..=128).contains(&len) {
            problems.push(format!("tag key {:?} must be 1 to 128 characters (it has {len})", shorten(&tag.key)));
        }
        if tag.key.starts_with("aws:") {
            problems.push(format!("tag key {:?} must not start with 'aws:': that prefix is reserved by AWS", shorten(&tag.key)));
        }
        if tag.key.starts_with(RESERVED_TAG_PREFIX) {
            problems.push(format!(
                "tag key {:?} must not start with {RESERVED_TAG_PREFIX:?}: that prefix is reserved for the operator's ownership tags",
                shorten(&tag.key)
            ));
        }
        if let Some(value) = &tag.value {
            let vlen = value.chars().count();
            if vlen > 256 {
                problems.push(format!("the value of tag {:?} must be at most 256 characters (it has {vlen})", shorten(&tag.key)));
            }
        }
        if !seen.insert(tag.key.as_str()) {
            problems.push(format!("tag key {:?} appears more than once", shorten(&tag.key)));
        }
    }
    problems
}

fn check_snapshot_name(field: &str, name: &str, problems: &mut Vec<String>) {
    let len = name.chars().count();
    if !(1..=MAX_SNAPSHOT_NAME).contains(&len) {
        problems.push(format!("{field} must be 1 to {MAX_SNAPSHOT_NAME} characters (it has {len})"));
    }
}

/// The S3 bucket naming rules of the ElastiCache export guide (DNS-compliant names).
pub fn check_bucket_name(bucket: &str) -> Result<(), &'static str> {
    let len = bucket.chars().count();
    if !(3..=63).contains(&len) {
        return Err("must be 3 to 63 characters long");
    }
    for label in bucket.split('.') {
        let bytes = label.as_bytes();
        let Some((&first, &last)) = bytes.first().zip(bytes.last()) else {
            return Err("must not contain empty labels (two dots in a row, or a leading or trailing dot)");
        };
        if !bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-') {
            return Err("may contain only lowercase letters, digits, dashes and dots");
        }
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if !alnum(first) || !alnum(last) {
            return Err("must have labels that start and end with a lowercase letter or digit");
        }
    }
    let parts: Vec<&str> = bucket.split('.').collect();
    if parts.len() == 4 && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit())) {
        return Err("must not be formatted as an IP address");
    }
    Ok(())
}

/// Long user input is cut in messages so an event stays readable.
fn shorten(s: &str) -> String {
    if s.chars().count() <= 40 {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(40).collect::<String>())
    }
}
