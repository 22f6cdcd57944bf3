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

#[test]
fn committed_schedule_crd_matches_the_generated_one() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/crd/elasticache-export.io_snapshotexportschedules.yaml");
    let committed = std::fs::read_to_string(path).expect("config/crd/elasticache-export.io_snapshotexportschedules.yaml exists");
    assert!(
        committed == ecx::api::schedule_crd_yaml(),
        "config/crd/elasticache-export.io_snapshotexportschedules.yaml is stale: run `make crd` and commit the result"
    );
    let chart =
        concat!(env!("CARGO_MANIFEST_DIR"), "/charts/elasticache-export-operator/crds/elasticache-export.io_snapshotexportschedules.yaml");
    assert!(
        std::fs::read_to_string(chart).unwrap_or_default() == committed,
        "the chart's copy of the schedule CRD is stale: run `make crd`"
    );
}

#[test]
fn the_schedule_crd_has_the_printer_columns_and_short_name() {
    let crd = serde_json::to_value(ecx::api::generated_schedule_crd()).unwrap();
    assert_eq!(crd["spec"]["names"]["shortNames"], serde_json::json!(["sxs"]));
    let columns: Vec<&str> =
        crd["spec"]["versions"][0]["additionalPrinterColumns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(columns, ["Schedule", "Source", "Bucket", "Last run", "Last success", "Next run", "Ready", "Age"]);
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    for field in ["schedule", "timeZone", "source", "template", "retention", "suspend", "startingDeadlineSeconds"] {
        let description = spec["properties"][field]["description"].as_str().unwrap_or_default();
        assert!(description.len() > 20, "spec.{field} has no useful description");
    }
}
