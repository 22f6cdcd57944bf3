//! The committed CRD under config/crd/ must be what the Rust types generate.

#[test]
fn committed_crd_matches_the_generated_one() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/crd/elasticache-export.io_snapshotexports.yaml");
    let committed = std::fs::read_to_string(path).expect("config/crd/elasticache-export.io_snapshotexports.yaml exists");
    assert!(
        committed == ecx::api::crd_yaml(),
        "config/crd/elasticache-export.io_snapshotexports.yaml is stale: run `make crd` and commit the result"
    );
}

#[test]
fn every_spec_field_is_described_for_kubectl_explain() {
    let crd = serde_json::to_value(ecx::api::generated_crd()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let props = spec["properties"].as_object().unwrap();
    for field in ["sourceSnapshotName", "targetSnapshotName", "targetBucket", "kmsKeyId", "tags", "deletionPolicy"] {
        let description = props[field]["description"].as_str().unwrap_or_default();
        assert!(description.len() > 20, "spec.{field} has no useful description");
    }
    assert!(spec["description"].as_str().unwrap_or_default().contains("immutable"));
}
