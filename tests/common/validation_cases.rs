//! The table of invalid SnapshotExport specs, shared by the local CEL test and the end-to-end
//! admission test.
#![allow(dead_code)]

use serde_json::{json, Value};

pub fn good() -> Value {
    json!({"sourceSnapshotName": "prod-nightly", "targetSnapshotName": "prod-copy"})
}

pub fn with(field: &str, value: Value) -> Value {
    let mut spec = good();
    spec[field] = value;
    spec
}

pub fn tags(n: usize) -> Value {
    Value::Array((0..n).map(|i| json!({"key": format!("k{i}"), "value": "v"})).collect())
}

/// Where the CRD refuses a value: a CEL rule, or an OpenAPI bound (length, count).
pub enum Refused {
    Cel(&'static str),
    Bound(&'static str),
}

pub fn invalid_cases() -> Vec<(&'static str, Value, Refused)> {
    let long = |n: usize| json!("a".repeat(n));
    vec![
        ("empty source name", with("sourceSnapshotName", json!("")), Refused::Bound("sourceSnapshotName")),
        ("1001-character source name", with("sourceSnapshotName", long(1001)), Refused::Bound("sourceSnapshotName")),
        ("empty target name", with("targetSnapshotName", json!("")), Refused::Bound("targetSnapshotName")),
        ("1001-character target name", with("targetSnapshotName", long(1001)), Refused::Bound("targetSnapshotName")),
        ("bucket too short", with("targetBucket", json!("ab")), Refused::Bound("targetBucket")),
        ("bucket too long", with("targetBucket", long(64)), Refused::Bound("targetBucket")),
        ("bucket uppercase", with("targetBucket", json!("My-Bucket")), Refused::Cel("DNS-compliant")),
        ("bucket underscore", with("targetBucket", json!("my_bucket")), Refused::Cel("DNS-compliant")),
        ("bucket leading dash", with("targetBucket", json!("-bucket")), Refused::Cel("DNS-compliant")),
        ("bucket trailing dash", with("targetBucket", json!("bucket-")), Refused::Cel("DNS-compliant")),
        ("bucket label ends with dash", with("targetBucket", json!("my-.bucket")), Refused::Cel("DNS-compliant")),
        ("bucket double dot", with("targetBucket", json!("my..bucket")), Refused::Cel("DNS-compliant")),
        ("bucket leading dot", with("targetBucket", json!(".bucket")), Refused::Cel("DNS-compliant")),
        ("bucket trailing dot", with("targetBucket", json!("bucket.")), Refused::Cel("DNS-compliant")),
        ("bucket space", with("targetBucket", json!("my bucket")), Refused::Cel("DNS-compliant")),
        ("bucket IP-shaped", with("targetBucket", json!("192.168.5.4")), Refused::Cel("IP address")),
        ("bucket IP-shaped 2", with("targetBucket", json!("10.0.0.1")), Refused::Cel("IP address")),
        (
            "kms with bucket",
            json!({"sourceSnapshotName": "a", "targetSnapshotName": "b", "targetBucket": "good-bucket", "kmsKeyId": "alias/k"}),
            Refused::Cel("kmsKeyId cannot be used with targetBucket"),
        ),
        ("49 tags: the operator adds two", with("tags", tags(49)), Refused::Bound("tags")),
        ("50 tags", with("tags", tags(50)), Refused::Bound("tags")),
        ("60 tags", with("tags", tags(60)), Refused::Bound("tags")),
        ("129-character tag key", with("tags", json!([{"key": "k".repeat(129), "value": "v"}])), Refused::Bound("tags.key")),
        ("empty tag key", with("tags", json!([{"key": "", "value": "v"}])), Refused::Bound("tags.key")),
        ("257-character tag value", with("tags", json!([{"key": "k", "value": "v".repeat(257)}])), Refused::Bound("tags.value")),
        ("aws: tag key", with("tags", json!([{"key": "aws:createdBy", "value": "me"}])), Refused::Cel("'aws:'")),
        ("aws: tag key, null value", with("tags", json!([{"key": "aws:x", "value": null}])), Refused::Cel("'aws:'")),
        (
            "reserved ownership tag key",
            with("tags", json!([{"key": "elasticache-export.io/owner-uid", "value": "x"}])),
            Refused::Cel("reserved"),
        ),
        (
            "reserved ownership namespace tag key (a forged owner)",
            with("tags", json!([{"key": "elasticache-export.io/owner-namespace", "value": "team-b"}])),
            Refused::Cel("reserved"),
        ),
        ("empty kms key", with("kmsKeyId", json!("")), Refused::Bound("kmsKeyId")),
        ("2049-character kms key", with("kmsKeyId", long(2049)), Refused::Bound("kmsKeyId")),
        ("bucket uppercase in a later label", with("targetBucket", json!("my.Bucket")), Refused::Cel("DNS-compliant")),
        ("tag key exactly 'aws:'", with("tags", json!([{"key": "aws:", "value": "x"}])), Refused::Cel("'aws:'")),
        ("no target name, node-based copy", json!({"sourceSnapshotName": "a"}), Refused::Cel("targetSnapshotName is required")),
        (
            "no target name, node-based export",
            json!({"sourceSnapshotName": "a", "targetBucket": "good-bucket"}),
            Refused::Cel("targetSnapshotName is required"),
        ),
        (
            "no target name, serverless copy",
            json!({"sourceSnapshotName": "a", "sourceKind": "Serverless"}),
            Refused::Cel("targetSnapshotName is required"),
        ),
        (
            "target name on a serverless export",
            json!({"sourceSnapshotName": "a", "sourceKind": "Serverless", "targetSnapshotName": "b", "targetBucket": "good-bucket"}),
            Refused::Cel("targetSnapshotName must be omitted"),
        ),
        (
            "kms on a serverless export",
            json!({"sourceSnapshotName": "a", "sourceKind": "Serverless", "targetBucket": "good-bucket", "kmsKeyId": "alias/k"}),
            Refused::Cel("kmsKeyId cannot be used with targetBucket"),
        ),
    ]
}
