//! Structural-schema admission for custom resources: pruning, defaulting, OpenAPI v3 value
//! validation and CEL (`x-kubernetes-validations`), in the apiserver's order.

use crate::error::Cause;
use serde_json::{Map, Value};

fn is_true(schema: &Value, key: &str) -> bool {
    schema.get(key).and_then(Value::as_bool) == Some(true)
}

fn join(path: &str, seg: &str) -> String {
    if path.is_empty() {
        seg.to_string()
    } else {
        format!("{path}.{seg}")
    }
}

/// Remove fields not declared by the schema (unless `x-kubernetes-preserve-unknown-fields`).
/// At the root (and in embedded resources) `apiVersion`, `kind` and `metadata` are kept.
pub(crate) fn prune(schema: &Value, value: &mut Value, root: bool) {
    if is_true(schema, "x-kubernetes-int-or-string") {
        return;
    }
    match value {
        Value::Object(map) => {
            let embedded = root || is_true(schema, "x-kubernetes-embedded-resource");
            let preserve = is_true(schema, "x-kubernetes-preserve-unknown-fields");
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                if embedded && (k == "apiVersion" || k == "kind" || k == "metadata") {
                    if k == "metadata" && !root {
                        // embedded metadata: keep as is
                    }
                    continue;
                }
                if let Some(ps) = props.and_then(|p| p.get(&k)) {
                    if let Some(v) = map.get_mut(&k) {
                        prune(ps, v, false);
                    }
                } else if let Some(a) = additional.filter(|a| a.is_object()) {
                    if let Some(v) = map.get_mut(&k) {
                        prune(a, v, false);
                    }
                } else if additional.and_then(Value::as_bool) == Some(true) || preserve {
                    // kept as is
                } else {
                    map.remove(&k);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = schema.get("items") {
                for it in items {
                    prune(is, it, false);
                }
            }
        }
        _ => {}
    }
}

/// Apply `default` values of absent (or, when not nullable, null) properties, recursively.
pub(crate) fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, ps) in props {
                    if map.get(k).is_some_and(Value::is_null) && !is_true(ps, "nullable") {
                        map.remove(k);
                    }
                    if !map.contains_key(k) {
                        if let Some(d) = ps.get("default") {
                            map.insert(k.clone(), d.clone());
                        }
                    }
                    if let Some(v) = map.get_mut(k) {
                        apply_defaults(ps, v);
                    }
                }
            }
            if let Some(a) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                let known = schema.get("properties").and_then(Value::as_object);
                for (k, v) in map.iter_mut() {
                    if known.is_some_and(|p| p.contains_key(k)) {
                        continue;
                    }
                    apply_defaults(a, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = schema.get("items") {
                for it in items {
                    apply_defaults(is, it);
                }
            }
        }
        _ => {}
    }
}

/// How a value is shown after `Invalid value:` in apiserver messages.
pub(crate) fn show(v: &Value) -> String {
    match v {
        Value::Object(_) => "\"object\"".into(),
        Value::Array(_) => "\"array\"".into(),
        Value::Null => "\"null\"".into(),
        other => other.to_string(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(want: &str, v: &Value) -> bool {
    match want {
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0 && f.is_finite()),
        "number" => v.is_number(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        _ => true,
    }
}

fn invalid(field: &str, v: &Value, msg: String) -> Cause {
    Cause { reason: "FieldValueInvalid", message: format!("Invalid value: {}: {}", show(v), msg), field: field.to_string() }
}

fn fmt_num(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => v.to_string(),
    }
}

/// OpenAPI v3 value validation (the subset CRD structural schemas use).
pub(crate) fn validate(schema: &Value, value: &Value, path: &str, root: bool, errs: &mut Vec<Cause>) {
    if value.is_null() {
        if !is_true(schema, "nullable") && schema.get("type").is_some() {
            let t = schema["type"].as_str().unwrap_or("object");
            errs.push(Cause {
                reason: "FieldValueTypeInvalid",
                ..invalid(path, value, format!("{path} in body must be of type {t}: \"null\""))
            });
        }
        return;
    }
    if is_true(schema, "x-kubernetes-int-or-string") {
        if !(type_ok("integer", value) || value.is_string()) {
            let msg = format!("{path} in body must be of type int-or-string: \"{}\"", type_name(value));
            errs.push(Cause { reason: "FieldValueTypeInvalid", ..invalid(path, value, msg) });
        }
    } else if let Some(t) = schema.get("type").and_then(Value::as_str) {
        if !type_ok(t, value) {
            let tn = type_name(value);
            errs.push(Cause {
                reason: "FieldValueTypeInvalid",
                message: format!("Invalid value: \"{tn}\": {path} in body must be of type {t}: \"{tn}\""),
                field: path.to_string(),
            });
            return;
        }
    }
    if let Some(en) = schema.get("enum").and_then(Value::as_array) {
        if !en.contains(value) {
            let supported: Vec<String> = en.iter().map(|e| e.to_string()).collect();
            errs.push(Cause {
                reason: "FieldValueNotSupported",
                message: format!("Unsupported value: {}: supported values: {}", show(value), supported.join(", ")),
                field: path.to_string(),
            });
        }
    }
    match value {
        Value::String(s) => {
            let n = s.chars().count();
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
                if (n as u64) < min {
                    errs.push(invalid(path, value, format!("{path} in body should be at least {min} chars long")));
                }
            }
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
                if (n as u64) > max {
                    errs.push(Cause {
                        reason: "FieldValueTooLong",
                        message: format!("Too long: may not be longer than {max}"),
                        field: path.to_string(),
                    });
                }
            }
            if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
                match regex::Regex::new(p) {
                    Ok(re) if !re.is_match(s) => errs.push(invalid(path, value, format!("{path} in body should match '{p}'"))),
                    Ok(_) => {}
                    Err(e) => errs.push(invalid(path, value, format!("invalid pattern '{p}': {e}"))),
                }
            }
        }
        Value::Number(_) => {
            let f = value.as_f64().unwrap_or(0.0);
            if let Some(min) = schema.get("minimum") {
                let m = min.as_f64().unwrap_or(f64::MIN);
                let excl = is_true(schema, "exclusiveMinimum");
                if (excl && f <= m) || (!excl && f < m) {
                    let word = if excl { "greater than" } else { "greater than or equal to" };
                    errs.push(invalid(path, value, format!("{path} in body should be {word} {}", fmt_num(min))));
                }
            }
            if let Some(max) = schema.get("maximum") {
                let m = max.as_f64().unwrap_or(f64::MAX);
                let excl = is_true(schema, "exclusiveMaximum");
                if (excl && f >= m) || (!excl && f > m) {
                    let word = if excl { "less than" } else { "less than or equal to" };
                    errs.push(invalid(path, value, format!("{path} in body should be {word} {}", fmt_num(max))));
                }
            }
            if let Some(mo) = schema.get("multipleOf").and_then(Value::as_f64) {
                if mo != 0.0 && (f / mo).fract() != 0.0 {
                    errs.push(invalid(path, value, format!("{path} in body should be a multiple of {mo}")));
                }
            }
        }
        Value::Array(items) => {
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
                if (items.len() as u64) < min {
                    errs.push(invalid(path, value, format!("{path} in body should have at least {min} items")));
                }
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
                if (items.len() as u64) > max {
                    errs.push(Cause {
                        reason: "FieldValueTooMany",
                        message: format!("Too many: {}: must have at most {max} items", items.len()),
                        field: path.to_string(),
                    });
                }
            }
            let list_type = schema.get("x-kubernetes-list-type").and_then(Value::as_str);
            let unique = is_true(schema, "uniqueItems") || list_type == Some("set");
            if list_type == Some("map") {
                let keys: Vec<String> = schema
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|k| k.as_str().map(String::from)).collect())
                    .unwrap_or_default();
                let mut seen: Vec<Vec<Value>> = Vec::new();
                for (i, it) in items.iter().enumerate() {
                    let key: Vec<Value> = keys.iter().map(|k| it.get(k).cloned().unwrap_or(Value::Null)).collect();
                    if seen.contains(&key) {
                        let shown: Map<String, Value> = keys.iter().cloned().zip(key.iter().cloned()).collect();
                        errs.push(Cause {
                            reason: "FieldValueDuplicate",
                            message: format!("Duplicate value: {}", Value::Object(shown)),
                            field: format!("{path}[{i}]"),
                        });
                    } else {
                        seen.push(key);
                    }
                }
            } else if unique {
                for (i, it) in items.iter().enumerate() {
                    if items[..i].contains(it) {
                        errs.push(Cause {
                            reason: "FieldValueDuplicate",
                            message: format!("Duplicate value: {it}"),
                            field: format!("{path}[{i}]"),
                        });
                    }
                }
            }
            if let Some(is) = schema.get("items") {
                for (i, it) in items.iter().enumerate() {
                    validate(is, it, &format!("{path}[{i}]"), false, errs);
                }
            }
        }
        Value::Object(map) => {
            if let Some(req) = schema.get("required").and_then(Value::as_array) {
                for r in req.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        errs.push(Cause { reason: "FieldValueRequired", message: "Required value".into(), field: join(path, r) });
                    }
                }
            }
            if let Some(min) = schema.get("minProperties").and_then(Value::as_u64) {
                if (map.len() as u64) < min {
                    errs.push(invalid(path, value, format!("{path} in body should have at least {min} properties")));
                }
            }
            if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64) {
                if (map.len() as u64) > max {
                    errs.push(invalid(path, value, format!("{path} in body should have at most {max} properties")));
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, v) in map {
                if root && (k == "apiVersion" || k == "kind" || k == "metadata") {
                    continue;
                }
                if let Some(ps) = props.and_then(|p| p.get(k)) {
                    validate(ps, v, &join(path, k), false, errs);
                } else if let Some(a) = additional {
                    validate(a, v, &join(path, k), false, errs);
                }
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

/// Map a kube-cel validation error to an apiserver-style cause.
fn cel_cause(e: &kube::core::cel::ValidationError, obj: &Value) -> Cause {
    let field = e.field_path.clone();
    let mut cur = Some(obj);
    for seg in field.split('.').filter(|s| !s.is_empty()) {
        // strip list indexes like `items[0]`
        let (name, idx) = match seg.find('[') {
            Some(i) => (&seg[..i], seg[i + 1..seg.len() - 1].parse::<usize>().ok()),
            None => (seg, None),
        };
        cur = cur.and_then(|c| c.get(name));
        if let Some(i) = idx {
            cur = cur.and_then(|c| c.get(i));
        }
    }
    let tname = cur.map(type_name).unwrap_or("object");
    let (reason, message) = match e.reason.as_deref() {
        Some("FieldValueForbidden") => ("FieldValueForbidden", format!("Forbidden: {}", e.message)),
        Some("FieldValueRequired") => ("FieldValueRequired", format!("Required value: {}", e.message)),
        Some("FieldValueDuplicate") => ("FieldValueDuplicate", format!("Duplicate value: \"{tname}\": {}", e.message)),
        _ => ("FieldValueInvalid", format!("Invalid value: \"{tname}\": {}", e.message)),
    };
    Cause { reason, message, field }
}

thread_local! {
    static CEL: kube::core::cel::Validator = kube::core::cel::Validator::new();
}

/// Schema errors after which the CEL rules are not evaluated.
const BLOCKING: [&str; 4] = ["FieldValueRequired", "FieldValueTooLong", "FieldValueTooMany", "FieldValueTypeInvalid"];

/// Whether a schema holds any CEL rule (`x-kubernetes-validations`).
fn has_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(m) => m.contains_key("x-kubernetes-validations") || m.values().any(has_rules),
        Value::Array(items) => items.iter().any(has_rules),
        _ => false,
    }
}

/// Full admission of a custom resource: prune, default, validate, CEL. `obj` is modified in place.
pub(crate) fn admit(
    schema: &Value,
    compiled: Option<&kube::core::cel::CompiledSchema>,
    obj: &mut Value,
    old: Option<&Value>,
) -> Vec<Cause> {
    prune(schema, obj, true);
    apply_defaults(schema, obj);
    let mut errs = Vec::new();
    validate(schema, obj, "", true, &mut errs);
    // As kube-apiserver (v1.24, `hasBlockingErr`): the CEL rules run after the schema unless it
    // found a blocking error; then they are skipped, and the answer says so.
    let blocking = errs.iter().any(|c| BLOCKING.contains(&c.reason));
    if blocking && has_rules(schema) {
        errs.push(Cause {
            reason: "FieldValueInvalid",
            message: "Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation".into(),
            field: "<nil>".into(),
        });
    } else if !blocking {
        let res = CEL.with(|v| match compiled {
            Some(c) => v.validate_compiled(c, obj, old),
            None => v.validate(schema, obj, old),
        });
        if let Err(cel_errs) = res {
            for e in cel_errs.iter() {
                errs.push(cel_cause(e, obj));
            }
        }
    }
    errs
}

/// CEL rules that do not compile make the CRD invalid (the real apiserver rejects such CRDs).
pub(crate) fn cel_compile_errors(schema: &Value) -> Vec<String> {
    fn walk(c: &kube::core::cel::CompiledSchema, out: &mut Vec<String>) {
        for e in c.compilation_errors() {
            out.push(format!("{e}"));
        }
        for p in c.properties.values() {
            walk(p, out);
        }
        if let Some(i) = &c.items {
            walk(i, out);
        }
        if let Some(a) = &c.additional_properties {
            walk(a, out);
        }
    }
    let compiled = kube::core::cel::compile_schema(schema);
    let mut out = Vec::new();
    walk(&compiled, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prune_default_validate() {
        let schema = json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["bucket"],
                    "properties": {
                        "bucket": {"type": "string", "minLength": 3, "pattern": "^[a-z-]+$"},
                        "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
                        "n": {"type": "integer", "minimum": 0, "maximum": 5},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "ios": {"x-kubernetes-int-or-string": true}
                    }
                }
            }
        });
        let mut obj = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
            "spec": {"bucket": "ab", "junk": 1, "n": 9, "free": {"any": 1}, "ios": "50%"}, "other": 1});
        let errs = admit(&schema, None, &mut obj, None);
        assert_eq!(obj["spec"]["mode"], "a");
        assert!(obj["spec"].get("junk").is_none());
        assert!(obj.get("other").is_none());
        assert_eq!(obj["spec"]["free"]["any"], 1);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(errs[0].field, "spec.bucket");
        assert_eq!(errs[1].field, "spec.n");
    }

    #[test]
    fn unicode_length() {
        let schema = json!({"type": "string", "maxLength": 3});
        let mut errs = vec![];
        validate(&schema, &json!("äöü"), "x", false, &mut errs);
        assert!(errs.is_empty());
    }
}
