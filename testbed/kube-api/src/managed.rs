//! A simplified but honest model of server-side-apply field ownership (`metadata.managedFields`).
//!
//! Ownership is tracked per (manager, operation, subresource) at leaf-field granularity:
//! objects are recursed, every scalar, list (lists are atomic) and empty object is a leaf.
//! Of `metadata`, only labels/annotations (per key), finalizers and ownerReferences are tracked.

use serde_json::{Map, Value};
use std::collections::BTreeSet;

pub(crate) type Path = Vec<String>;

#[derive(Clone, Debug)]
pub(crate) struct ManagedEntry {
    pub manager: String,
    pub operation: &'static str,
    pub subresource: String,
    pub api_version: String,
    pub time: String,
    pub fields: BTreeSet<Path>,
}

fn collect(v: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                prefix.push(k.clone());
                collect(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// Leaf paths of an object, excluding server-managed fields.
pub(crate) fn leaf_paths(obj: &Value) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    let Some(m) = obj.as_object() else {
        return out;
    };
    for (k, v) in m {
        match k.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                if let Some(md) = v.as_object() {
                    for key in ["labels", "annotations"] {
                        if let Some(Value::Object(kv)) = md.get(key) {
                            for lk in kv.keys() {
                                out.insert(vec!["metadata".into(), key.into(), lk.clone()]);
                            }
                        }
                    }
                    for key in ["finalizers", "ownerReferences"] {
                        if md.get(key).is_some_and(|x| !x.is_null()) {
                            out.insert(vec!["metadata".into(), key.into()]);
                        }
                    }
                }
            }
            _ => {
                let mut prefix = vec![k.clone()];
                collect(v, &mut prefix, &mut out);
            }
        }
    }
    out
}

pub(crate) fn value_at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path {
        cur = cur.get(seg)?;
    }
    Some(cur)
}

pub(crate) fn remove_path(v: &mut Value, path: &[String]) {
    if path.is_empty() {
        return;
    }
    let mut cur = v;
    for seg in &path[..path.len() - 1] {
        match cur.get_mut(seg) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(&path[path.len() - 1]);
    }
}

fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Record a non-apply write (create/update/patch) by `manager`: it takes ownership of every
/// leaf it changed; other managers lose those; fields that no longer exist lose all owners.
pub(crate) fn record_update(
    entries: &mut Vec<ManagedEntry>,
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    subresource: &str,
    api_version: &str,
    now: &str,
) {
    let new_p = leaf_paths(new);
    // A map that already existed and was only emptied (its fields removed) is not a change the
    // writer owns: the real server keeps no owner for it, so a later apply of fields under it
    // does not conflict (a released Lease, `spec: {}`, taken by the next holder).
    let emptied = |p: &Path| {
        value_at(new, p).is_some_and(|v| v.as_object().is_some_and(Map::is_empty))
            && old.and_then(|o| value_at(o, p)).is_some_and(Value::is_object)
    };
    let changed: BTreeSet<Path> =
        new_p.iter().filter(|p| old.and_then(|o| value_at(o, p)) != value_at(new, p) && !emptied(p)).cloned().collect();
    for e in entries.iter_mut() {
        e.fields.retain(|p| new_p.contains(p) && !changed.contains(p));
    }
    if !changed.is_empty() {
        let idx = entries.iter().position(|e| e.manager == manager && e.operation == "Update" && e.subresource == subresource);
        let e = match idx {
            Some(i) => &mut entries[i],
            None => {
                entries.push(ManagedEntry {
                    manager: manager.to_string(),
                    operation: "Update",
                    subresource: subresource.to_string(),
                    api_version: api_version.to_string(),
                    time: now.to_string(),
                    fields: BTreeSet::new(),
                });
                entries.last_mut().expect("just pushed")
            }
        };
        e.fields.extend(changed);
        e.time = now.to_string();
        e.api_version = api_version.to_string();
    }
    entries.retain(|e| !e.fields.is_empty());
}

/// A field that another manager owns with a different value.
#[derive(Clone, Debug)]
pub(crate) struct Conflict {
    pub manager: String,
    pub operation: &'static str,
    pub api_version: String,
    pub path: Path,
}

/// Conflicts of applying `cfg` (leaf set `cfg_paths`) by `manager` onto `current`.
pub(crate) fn apply_conflicts(
    entries: &[ManagedEntry],
    current: &Value,
    cfg: &Value,
    cfg_paths: &BTreeSet<Path>,
    manager: &str,
) -> Vec<Conflict> {
    let mut out = Vec::new();
    for e in entries.iter().filter(|e| e.manager != manager) {
        for p in &e.fields {
            if cfg_paths.iter().any(|q| overlaps(p, q)) && value_at(current, p) != value_at(cfg, p) {
                out.push(Conflict {
                    manager: e.manager.clone(),
                    operation: e.operation,
                    api_version: e.api_version.clone(),
                    path: p.clone(),
                });
            }
        }
    }
    out
}

/// Merge an apply configuration into `target`: objects merge recursively, everything else
/// (scalars, lists) replaces; `null` removes.
pub(crate) fn merge_apply(target: &mut Value, cfg: &Value) {
    match (target, cfg) {
        (Value::Object(t), Value::Object(c)) => {
            for (k, cv) in c {
                if cv.is_null() {
                    t.remove(k);
                    continue;
                }
                match t.get_mut(k) {
                    Some(tv) if tv.is_object() && cv.is_object() => merge_apply(tv, cv),
                    _ => {
                        t.insert(k.clone(), cv.clone());
                    }
                }
            }
        }
        (t, c) => *t = c.clone(),
    }
}

/// Fields this manager applied before but no longer applies, and nobody else owns: to remove.
pub(crate) fn apply_removals(entries: &[ManagedEntry], cfg_paths: &BTreeSet<Path>, manager: &str, subresource: &str) -> Vec<Path> {
    let Some(mine) = entries.iter().find(|e| e.manager == manager && e.operation == "Apply" && e.subresource == subresource) else {
        return vec![];
    };
    mine.fields
        .iter()
        .filter(|p| !cfg_paths.contains(*p))
        .filter(|p| {
            !entries
                .iter()
                .filter(|e| !(e.manager == manager && e.operation == "Apply" && e.subresource == subresource))
                .any(|e| e.fields.iter().any(|q| overlaps(p, q)))
        })
        .cloned()
        .collect()
}

/// Record an apply: the manager's Apply entry becomes exactly `cfg_paths` (those that exist);
/// with `forced` conflicts, the previous owners lose those fields.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record_apply(
    entries: &mut Vec<ManagedEntry>,
    new: &Value,
    cfg_paths: &BTreeSet<Path>,
    forced: &[Conflict],
    manager: &str,
    subresource: &str,
    api_version: &str,
    now: &str,
) {
    let new_p = leaf_paths(new);
    for e in entries.iter_mut() {
        e.fields.retain(|p| new_p.contains(p) && !forced.iter().any(|c| c.path == *p && c.manager == e.manager));
    }
    let fields: BTreeSet<Path> = cfg_paths.iter().filter(|p| new_p.contains(*p)).cloned().collect();
    match entries.iter_mut().find(|e| e.manager == manager && e.operation == "Apply" && e.subresource == subresource) {
        Some(e) => {
            e.fields = fields;
            e.time = now.to_string();
            e.api_version = api_version.to_string();
        }
        None => entries.push(ManagedEntry {
            manager: manager.to_string(),
            operation: "Apply",
            subresource: subresource.to_string(),
            api_version: api_version.to_string(),
            time: now.to_string(),
            fields,
        }),
    }
    entries.retain(|e| !e.fields.is_empty());
}

/// Render as `metadata.managedFields` (FieldsV1).
pub(crate) fn render(entries: &[ManagedEntry]) -> Value {
    let list: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut root = Map::new();
            for p in &e.fields {
                let mut cur = &mut root;
                for seg in p {
                    cur = cur.entry(format!("f:{seg}")).or_insert_with(|| Value::Object(Map::new())).as_object_mut().expect("object");
                }
            }
            let mut v = serde_json::json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": Value::Object(root),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = Value::String(e.subresource.clone());
            }
            v
        })
        .collect();
    Value::Array(list)
}

/// `.spec.holderIdentity` style rendering of a path.
pub(crate) fn dotted(p: &[String]) -> String {
    p.iter().map(|s| format!(".{s}")).collect()
}
