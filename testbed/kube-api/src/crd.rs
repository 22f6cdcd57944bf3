//! CustomResourceDefinition handling: light validation, status, and the resources it serves.

use crate::error::Cause;
use crate::store::{now_ts, ResourceInfo};
use serde_json::{json, Value};
use std::sync::Arc;

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn required(field: &str) -> Cause {
    Cause { reason: "FieldValueRequired", message: "Required value".into(), field: field.into() }
}

pub(crate) fn validate_crd(crd: &Value) -> Vec<Cause> {
    let mut errs = Vec::new();
    let group = s(crd, "/spec/group");
    let plural = s(crd, "/spec/names/plural");
    for (ptr, field) in [
        ("/spec/group", "spec.group"),
        ("/spec/names/plural", "spec.names.plural"),
        ("/spec/names/kind", "spec.names.kind"),
        ("/spec/scope", "spec.scope"),
    ] {
        if s(crd, ptr).is_empty() {
            errs.push(required(field));
        }
    }
    let scope = s(crd, "/spec/scope");
    if !scope.is_empty() && scope != "Namespaced" && scope != "Cluster" {
        errs.push(Cause {
            reason: "FieldValueNotSupported",
            message: format!("Unsupported value: \"{scope}\": supported values: \"Cluster\", \"Namespaced\""),
            field: "spec.scope".into(),
        });
    }
    let name = s(crd, "/metadata/name");
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        errs.push(Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
            field: "metadata.name".into(),
        });
    }
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array);
    match versions {
        None => errs.push(required("spec.versions")),
        Some(vs) if vs.is_empty() => errs.push(required("spec.versions")),
        Some(vs) => {
            let storage = vs.iter().filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true)).count();
            if storage != 1 {
                errs.push(Cause {
                    reason: "FieldValueInvalid",
                    message: format!("Invalid value: {storage}: must have exactly one version marked as storage version"),
                    field: "spec.versions".into(),
                });
            }
            for (i, v) in vs.iter().enumerate() {
                if let Some(schema) = v.pointer("/schema/openAPIV3Schema") {
                    for e in crate::schema::cel_compile_errors(schema) {
                        errs.push(Cause {
                            reason: "FieldValueInvalid",
                            message: format!("Invalid value: \"object\": compilation failed: {e}"),
                            field: format!("spec.validation.openAPIV3Schema (versions[{i}])"),
                        });
                    }
                }
            }
        }
    }
    errs
}

fn accepted_names(crd: &Value) -> Value {
    let mut names = crd.pointer("/spec/names").cloned().unwrap_or_else(|| json!({}));
    let kind = s(crd, "/spec/names/kind").to_string();
    if s(crd, "/spec/names/singular").is_empty() {
        names["singular"] = Value::String(kind.to_lowercase());
    }
    if s(crd, "/spec/names/listKind").is_empty() {
        names["listKind"] = Value::String(format!("{kind}List"));
    }
    names
}

/// Established/NamesAccepted conditions, acceptedNames, storedVersions.
pub(crate) fn set_status(crd: &mut Value, old: Option<&Value>) {
    let ts = old
        .and_then(|o| o.pointer("/status/conditions/0/lastTransitionTime"))
        .and_then(Value::as_str)
        .map(String::from)
        .unwrap_or_else(now_ts);
    let mut stored: Vec<Value> =
        old.and_then(|o| o.pointer("/status/storedVersions")).and_then(Value::as_array).cloned().unwrap_or_default();
    if let Some(vs) = crd.pointer("/spec/versions").and_then(Value::as_array) {
        for v in vs {
            if v.get("storage").and_then(Value::as_bool) == Some(true) {
                let n = v.get("name").cloned().unwrap_or(Value::Null);
                if !stored.contains(&n) {
                    stored.push(n);
                }
            }
        }
    }
    crd["status"] = json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": ts},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": ts},
        ],
        "acceptedNames": accepted_names(crd),
        "storedVersions": stored,
    });
}

/// One ResourceInfo per served version.
pub(crate) fn resource_infos(crd: &Value) -> Vec<ResourceInfo> {
    let names = accepted_names(crd);
    let strs = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array).map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default()
    };
    let mut out = Vec::new();
    for v in crd.pointer("/spec/versions").and_then(Value::as_array).into_iter().flatten() {
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let schema = v.pointer("/schema/openAPIV3Schema").cloned();
        let compiled = schema.as_ref().map(|s| Arc::new(kube::core::cel::compile_schema(s)));
        out.push(ResourceInfo {
            group: s(crd, "/spec/group").into(),
            version: v.get("name").and_then(Value::as_str).unwrap_or("").into(),
            plural: s(&names, "/plural").into(),
            singular: s(&names, "/singular").into(),
            kind: s(&names, "/kind").into(),
            namespaced: s(crd, "/spec/scope") != "Cluster",
            short_names: strs(names.get("shortNames")),
            categories: strs(names.get("categories")),
            status_subresource: v.pointer("/subresources/status").is_some(),
            schema: schema.map(Arc::new),
            compiled,
            custom: true,
        });
    }
    out
}
