//! Bad input: each invalid spec is refused by the CRD's rules (CEL evaluated locally with kube's
//! CEL support, bounds from the OpenAPI schema) and by the reconciler's own check, which reports
//! `InvalidSpec` without calling AWS when a cluster lacks CEL.

use ecx::api::validation::validate_spec;
use ecx::api::SnapshotExportSpec;
use serde_json::{json, Value};

#[path = "common/validation_cases.rs"]
mod validation_cases;
use validation_cases::*;

fn schema() -> Value {
    let crd = serde_json::to_value(ecx::api::generated_crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// CEL rules of the CRD evaluated locally, as the API server would.
fn cel(schema: &Value, obj: &Value, old: Option<&Value>) -> Result<(), kube::core::cel::ValidationErrors> {
    kube::core::cel::Validator::new().validate(schema, obj, old)
}

fn object(spec: Value) -> Value {
    json!({"apiVersion": "elasticache-export.io/v1alpha1", "kind": "SnapshotExport", "metadata": {"name": "x", "namespace": "default"}, "spec": spec})
}

/// The OpenAPI bounds the API server checks before CEL, looked up in the generated schema.
fn bound_violated(spec: &Value, field: &str) -> bool {
    let s = schema();
    let props = &s["properties"]["spec"]["properties"];
    match field {
        "tags" => spec["tags"].as_array().unwrap().len() as u64 > props["tags"]["maxItems"].as_u64().unwrap(),
        "tags.key" => spec["tags"].as_array().unwrap().iter().any(|t| {
            let n = t["key"].as_str().unwrap().chars().count() as u64;
            n > props["tags"]["items"]["properties"]["key"]["maxLength"].as_u64().unwrap() || n < 1
        }),
        "tags.value" => spec["tags"].as_array().unwrap().iter().any(|t| {
            t["value"].as_str().unwrap_or("").chars().count() as u64
                > props["tags"]["items"]["properties"]["value"]["maxLength"].as_u64().unwrap()
        }),
        f => {
            let n = spec[f].as_str().unwrap().chars().count() as u64;
            n < props[f]["minLength"].as_u64().unwrap() || n > props[f]["maxLength"].as_u64().unwrap()
        }
    }
}

#[test]
fn good_specs_pass_every_check() {
    let goods = [
        good(),
        with("targetBucket", json!("my-bucket.backups-2026")),
        with("targetBucket", json!("abc")),
        with("targetBucket", json!("1.2.3")),
        with("tags", tags(48)),
        with("tags", json!([{"key": "team", "value": null}, {"key": "k".repeat(128), "value": "v".repeat(256)}])),
        with("kmsKeyId", json!("arn:aws:kms:us-east-1:123456789012:key/abc")),
        with("deletionPolicy", json!("Delete")),
        with("targetSnapshotName", json!("é".repeat(1000))),
        with("sourceKind", json!("NodeBased")),
        with("sourceKind", json!("Serverless")),
        json!({"sourceSnapshotName": "sls-nightly", "sourceKind": "Serverless", "targetBucket": "good-bucket"}),
        json!({"sourceSnapshotName": "sls-nightly", "sourceKind": "Serverless", "targetSnapshotName": "c", "kmsKeyId": "alias/k", "deletionPolicy": "Delete"}),
    ];
    for spec in goods {
        let parsed: SnapshotExportSpec = serde_json::from_value(spec.clone()).unwrap();
        assert_eq!(validate_spec(&parsed), Vec::<String>::new(), "{spec}");
        cel(&schema(), &object(spec.clone()), None).unwrap_or_else(|e| panic!("CEL refused a good spec {spec}: {e:?}"));
    }
}

#[test]
fn each_invalid_spec_is_refused_by_the_crd_and_by_the_reconciler() {
    let cases = invalid_cases();
    assert!(cases.len() >= 32);
    for (name, spec, refused) in cases {
        let parsed: SnapshotExportSpec = serde_json::from_value(spec.clone()).unwrap();
        let problems = validate_spec(&parsed);
        assert!(!problems.is_empty(), "{name}: the reconciler accepted it");
        match refused {
            Refused::Cel(expected) => {
                let err = cel(&schema(), &object(spec.clone()), None).expect_err(name);
                let text = format!("{err:?}");
                assert!(text.contains(expected), "{name}: CEL message {text} lacks {expected:?}");
            }
            Refused::Bound(field) => assert!(bound_violated(&spec, field), "{name}: no schema bound on {field} refuses it"),
        }
    }
}

#[test]
fn each_immutable_field_change_is_refused_by_cel() {
    let base = json!({"sourceSnapshotName": "a", "targetSnapshotName": "b", "targetBucket": "good-bucket", "tags": [{"key": "t", "value": "1"}], "deletionPolicy": "Retain"});
    let changes = [
        ("sourceSnapshotName", json!("other")),
        ("targetSnapshotName", json!("other")),
        ("targetBucket", json!("other-bucket")),
        ("tags", json!([{"key": "t", "value": "2"}])),
        ("deletionPolicy", json!("Delete")),
        ("sourceKind", json!("Serverless")),
    ];
    for (field, value) in changes {
        let mut new = base.clone();
        new[field] = value;
        let err = cel(&schema(), &object(new), Some(&object(base.clone()))).expect_err(field);
        assert!(format!("{err:?}").contains("spec is immutable"), "{field}: {err:?}");
    }
    let mut added = base.clone();
    added.as_object_mut().unwrap().remove("targetBucket");
    assert!(cel(&schema(), &object(base.clone()), Some(&object(added))).is_err(), "adding targetBucket later");
    let mut with_kms = json!({"sourceSnapshotName": "a", "targetSnapshotName": "b"});
    let old = with_kms.clone();
    with_kms["kmsKeyId"] = json!("alias/k");
    assert!(cel(&schema(), &object(with_kms), Some(&object(old))).is_err(), "adding kmsKeyId later");
    // Saying the source is serverless later (the default was NodeBased) is a change too.
    let node = json!({"sourceSnapshotName": "a", "targetSnapshotName": "b"});
    let mut sls = node.clone();
    sls["sourceKind"] = json!("Serverless");
    assert!(cel(&schema(), &object(sls.clone()), Some(&object(node))).is_err(), "adding sourceKind: Serverless later");
    let mut back = sls.clone();
    back["sourceKind"] = json!("NodeBased");
    assert!(cel(&schema(), &object(back), Some(&object(sls))).is_err(), "switching a Serverless source back to NodeBased");
    // An unchanged spec (a status or label update) passes.
    assert!(cel(&schema(), &object(base.clone()), Some(&object(base))).is_ok());
}

proptest::proptest! {
    #[test]
    fn the_validator_never_panics(source in ".{0,1100}", target in ".{0,20}", bucket in proptest::option::of("[a-zA-Z0-9._ -]{0,70}"), key in ".{0,140}", value in proptest::option::of(".{0,300}")) {
        let spec: SnapshotExportSpec = serde_json::from_value(json!({
            "sourceSnapshotName": source, "targetSnapshotName": target, "targetBucket": bucket,
            "tags": [{"key": key, "value": value}]
        })).unwrap();
        let _ = validate_spec(&spec);
    }

    #[test]
    fn rust_bucket_rule_agrees_with_the_cel_rules(bucket in "[a-z0-9.-]{3,20}") {
        let rust_ok = ecx::api::validation::check_bucket_name(&bucket).is_ok();
        let cel_ok = cel(&schema(), &object(with("targetBucket", json!(bucket.clone()))), None).is_ok();
        proptest::prop_assert_eq!(rust_ok, cel_ok, "bucket {:?}", bucket);
    }
}
