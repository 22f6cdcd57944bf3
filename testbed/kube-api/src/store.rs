//! The in-memory object store: one global resourceVersion, watch history and watcher fan-out.

use crate::error::{ApiError, ApiResult, Cause};
use crate::managed::{self, ManagedEntry};
use crate::schema;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::mpsc;

/// (group, plural): objects are stored once per group-resource, whatever version wrote them
/// (CRD conversion strategy `None`: only `apiVersion` changes between versions).
pub(crate) type GroupResource = (String, String);

#[derive(Clone, Debug)]
pub(crate) struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status_subresource: bool,
    pub schema: Option<Arc<Value>>,
    /// CEL rules of `schema`, compiled once.
    pub compiled: Option<Arc<kube::core::cel::CompiledSchema>>,
    /// Served from a CustomResourceDefinition (vs built in).
    pub custom: bool,
}

impl ResourceInfo {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    pub fn gr(&self) -> GroupResource {
        (self.group.clone(), self.plural.clone())
    }
    pub fn kind_group(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
    fn builtin(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool, short: &[&str], status: bool) -> Self {
        ResourceInfo {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            namespaced,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            categories: vec![],
            status_subresource: status,
            schema: None,
            compiled: None,
            custom: false,
        }
    }
}

pub(crate) struct Stored {
    pub obj: Value,
    pub managed: Vec<ManagedEntry>,
}

pub(crate) struct WatchEvent {
    pub rv: u64,
    pub gr: GroupResource,
    pub ns: String,
    pub etype: &'static str,
    pub obj: Value,
    /// Previous state for MODIFIED (used for selector transitions).
    pub old: Option<Value>,
}

struct WatcherReg {
    gr: GroupResource,
    ns: Option<String>,
    tx: mpsc::UnboundedSender<Arc<WatchEvent>>,
}

/// What a write does to managedFields.
pub(crate) enum ManagedOp {
    Update,
    Apply { paths: BTreeSet<managed::Path>, forced: Vec<managed::Conflict> },
}

pub(crate) struct WriteCtx<'a> {
    pub ri: &'a ResourceInfo,
    pub ns: Option<&'a str>,
    pub sub: Option<&'a str>,
    pub manager: &'a str,
}

pub(crate) enum PatchKind {
    Merge,
    Strategic,
    Json,
    Apply { force: bool },
}

pub(crate) struct Store {
    pub rv: u64,
    pub registry: BTreeMap<(String, String, String), Arc<ResourceInfo>>,
    data: HashMap<GroupResource, BTreeMap<(String, String), Stored>>,
    history: VecDeque<Arc<WatchEvent>>,
    history_cap: usize,
    /// Watches from a resourceVersion below this are answered with 410 Expired.
    floor: u64,
    watchers: Vec<WatcherReg>,
}

pub(crate) fn now_ts() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn md(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"].as_object_mut().expect("metadata object")
}

fn md_str<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(key)?.as_str()
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|f| f.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// Drop empty/null optional metadata like the typed ObjectMeta round trip does.
fn normalize_metadata(obj: &mut Value) {
    let m = md(obj);
    m.retain(|_, v| match v {
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::String(s) => !s.is_empty(),
        _ => true,
    });
}

/// Everything except metadata (and status when it is a subresource): a change here bumps generation.
fn spec_part(obj: &Value, status_sub: bool) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
        if status_sub {
            m.remove("status");
        }
    }
    v
}

/// For no-op detection: the object without volatile metadata.
fn comparable(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    if let Some(m) = v.as_object_mut() {
        m.remove("apiVersion");
    }
    v
}

static NAME_RE: std::sync::LazyLock<regex::Regex> =
    std::sync::LazyLock::new(|| regex::Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").expect("regex"));
static LABEL_RE: std::sync::LazyLock<regex::Regex> =
    std::sync::LazyLock::new(|| regex::Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$").expect("regex"));

fn random_suffix() -> String {
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let u = uuid::Uuid::new_v4();
    u.as_bytes()[..5].iter().map(|b| ALPHA[*b as usize % ALPHA.len()] as char).collect()
}

impl Store {
    pub fn new(history_cap: usize) -> Self {
        let mut s = Store {
            rv: 0,
            registry: BTreeMap::new(),
            data: HashMap::new(),
            history: VecDeque::new(),
            history_cap,
            floor: 0,
            watchers: Vec::new(),
        };
        for ri in [
            ResourceInfo::builtin("", "v1", "namespaces", "Namespace", false, &["ns"], true),
            ResourceInfo::builtin("", "v1", "events", "Event", true, &["ev"], false),
            ResourceInfo::builtin("", "v1", "configmaps", "ConfigMap", true, &["cm"], false),
            ResourceInfo::builtin("", "v1", "secrets", "Secret", true, &[], false),
            ResourceInfo::builtin("events.k8s.io", "v1", "events", "Event", true, &["ev"], false),
            ResourceInfo::builtin("coordination.k8s.io", "v1", "leases", "Lease", true, &[], false),
            ResourceInfo::builtin(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                "CustomResourceDefinition",
                false,
                &["crd", "crds"],
                true,
            ),
        ] {
            s.register(ri);
        }
        let ns = s.lookup("", "v1", "namespaces").expect("namespaces registered");
        for name in ["default", "kube-system", "kube-public"] {
            let ctx = WriteCtx { ri: &ns, ns: None, sub: None, manager: "kube-apiserver" };
            s.create(&ctx, json!({"metadata": {"name": name}})).expect("initial namespace");
        }
        s
    }

    fn register(&mut self, ri: ResourceInfo) {
        self.registry.insert((ri.group.clone(), ri.version.clone(), ri.plural.clone()), Arc::new(ri));
    }

    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.registry.get(&(group.to_string(), version.to_string(), plural.to_string())).cloned()
    }

    pub fn open_watches(&self) -> usize {
        self.watchers.iter().filter(|w| !w.tx.is_closed()).count()
    }

    fn namespace_exists(&self, ns: &str) -> bool {
        self.data.get(&(String::new(), "namespaces".to_string())).is_some_and(|m| m.contains_key(&(String::new(), ns.to_string())))
    }

    fn key(ri: &ResourceInfo, ns: Option<&str>, name: &str) -> (String, String) {
        let ns = if ri.namespaced { ns.unwrap_or("") } else { "" };
        (ns.to_string(), name.to_string())
    }

    /// Return a stored object as seen through the requested version.
    fn view(ri: &ResourceInfo, s: &Stored) -> Value {
        let mut v = s.obj.clone();
        v["apiVersion"] = Value::String(ri.api_version());
        md(&mut v).insert("managedFields".into(), managed::render(&s.managed));
        if s.managed.is_empty() {
            md(&mut v).remove("managedFields");
        }
        v
    }

    fn emit(&mut self, gr: GroupResource, ns: String, etype: &'static str, obj: Value, old: Option<Value>) {
        let ev = Arc::new(WatchEvent { rv: self.rv, gr, ns, etype, obj, old });
        if self.history_cap == 0 {
            self.floor = self.rv;
        } else {
            self.history.push_back(ev.clone());
            while self.history.len() > self.history_cap {
                if let Some(old) = self.history.pop_front() {
                    self.floor = old.rv;
                }
            }
        }
        self.watchers.retain(|w| {
            if w.gr != ev.gr || w.ns.as_ref().is_some_and(|n| *n != ev.ns) {
                return !w.tx.is_closed();
            }
            w.tx.send(ev.clone()).is_ok()
        });
    }

    pub fn drop_watches(&mut self) {
        self.watchers.clear();
    }

    pub fn get(&self, ri: &ResourceInfo, ns: Option<&str>, name: &str) -> ApiResult<Value> {
        self.data
            .get(&ri.gr())
            .and_then(|m| m.get(&Self::key(ri, ns, name)))
            .map(|s| Self::view(ri, s))
            .ok_or_else(|| ApiError::not_found(&ri.group, &ri.plural, name))
    }

    /// List objects; `filter` selects. Returns (items, continue token, remaining count).
    pub fn list(
        &self,
        ri: &ResourceInfo,
        ns: Option<&str>,
        filter: &dyn Fn(&Value) -> bool,
        limit: Option<usize>,
        cont: Option<&str>,
    ) -> ApiResult<Value> {
        let start: Option<(String, String)> = match cont {
            Some(c) if !c.is_empty() => {
                let (a, b) = c.split_once('/').ok_or_else(|| ApiError::bad_request("invalid continue token"))?;
                Some((a.to_string(), b.to_string()))
            }
            _ => None,
        };
        let mut items = Vec::new();
        let mut next = None;
        let mut remaining = 0u64;
        if let Some(m) = self.data.get(&ri.gr()) {
            let range: Box<dyn Iterator<Item = (&(String, String), &Stored)>> = match (&start, ns) {
                (Some(s), _) => {
                    Box::new(m.range::<(String, String), _>((std::ops::Bound::Excluded(s.clone()), std::ops::Bound::Unbounded)))
                }
                (None, Some(n)) if ri.namespaced => Box::new(m.range((n.to_string(), String::new())..)),
                _ => Box::new(m.iter()),
            };
            for (k, s) in range {
                if ri.namespaced {
                    if let Some(n) = ns {
                        if k.0 != n {
                            if k.0.as_str() > n {
                                break;
                            }
                            continue;
                        }
                    }
                }
                if !filter(&s.obj) {
                    continue;
                }
                if next.is_some() {
                    remaining += 1;
                    continue;
                }
                if limit.is_some_and(|l| l > 0 && items.len() >= l) {
                    let last: &Value = items.last().expect("limit > 0");
                    next = Some(format!("{}/{}", md_str(last, "namespace").unwrap_or(""), md_str(last, "name").unwrap_or("")));
                    remaining += 1;
                    continue;
                }
                items.push(Self::view(ri, s));
            }
        }
        let mut meta = json!({"resourceVersion": self.rv.to_string()});
        if let Some(n) = next {
            meta["continue"] = Value::String(n);
            meta["remainingItemCount"] = json!(remaining);
        }
        Ok(json!({
            "apiVersion": ri.api_version(),
            "kind": format!("{}List", ri.kind),
            "metadata": meta,
            "items": items,
        }))
    }

    fn invalid(ri: &ResourceInfo, name: &str, causes: Vec<Cause>) -> ApiError {
        ApiError::invalid(&ri.kind_group(), &ri.group, &ri.plural, name, causes)
    }

    fn check_name(ri: &ResourceInfo, name: &str) -> ApiResult<()> {
        let ok = if ri.plural == "namespaces" {
            name.len() <= 63 && LABEL_RE.is_match(name)
        } else {
            name.len() <= 253 && NAME_RE.is_match(name)
        };
        if ok {
            Ok(())
        } else {
            Err(Self::invalid(
                ri,
                name,
                vec![Cause {
                    reason: "FieldValueInvalid",
                    message: format!("Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
                    field: "metadata.name".into(),
                }],
            ))
        }
    }

    /// Server-side processing specific to some kinds, run on every write.
    fn kind_hooks(&self, ri: &ResourceInfo, obj: &mut Value, old: Option<&Value>) -> ApiResult<()> {
        match (ri.group.as_str(), ri.plural.as_str()) {
            ("", "namespaces") => {
                obj["status"] = json!({"phase": if obj.pointer("/metadata/deletionTimestamp").is_some() {"Terminating"} else {"Active"}});
            }
            ("apiextensions.k8s.io", "customresourcedefinitions") => {
                let name = md_str(obj, "name").unwrap_or("").to_string();
                let errs = crate::crd::validate_crd(obj);
                if !errs.is_empty() {
                    return Err(Self::invalid(ri, &name, errs));
                }
                crate::crd::set_status(obj, old);
            }
            ("events.k8s.io", "events") => {
                let errs = crate::events::validate(obj, old);
                if !errs.is_empty() {
                    // The apiserver validates the internal core Event: its errors name kind `Event`.
                    return Err(ApiError::invalid("Event", "", "Event", md_str(obj, "name").unwrap_or(""), errs));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn admit(&self, ri: &ResourceInfo, obj: &mut Value, old: Option<&Value>) -> ApiResult<()> {
        if let Some(schema) = &ri.schema {
            let errs = schema::admit(schema, ri.compiled.as_deref(), obj, old);
            if !errs.is_empty() {
                let name = md_str(obj, "name").unwrap_or("").to_string();
                return Err(Self::invalid(ri, &name, errs));
            }
        }
        Ok(())
    }

    pub fn create(&mut self, ctx: &WriteCtx, body: Value) -> ApiResult<(u16, Value)> {
        let ri = ctx.ri;
        let mut obj = body;
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body of the request must be a JSON object"));
        }
        let body_ns = md_str(&obj, "namespace").map(String::from);
        let ns = if ri.namespaced {
            let Some(ns) = ctx.ns else {
                return Err(ApiError::method_not_allowed("create is only supported on a namespaced collection"));
            };
            if body_ns.as_deref().is_some_and(|b| !b.is_empty() && b != ns) {
                return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request"));
            }
            if !self.namespace_exists(ns) {
                return Err(ApiError::not_found("", "namespaces", ns));
            }
            md(&mut obj).insert("namespace".into(), Value::String(ns.to_string()));
            ns.to_string()
        } else {
            md(&mut obj).remove("namespace");
            String::new()
        };
        let map = self.data.entry(ri.gr()).or_default();
        let name = match md_str(&obj, "name").filter(|n| !n.is_empty()) {
            Some(n) => n.to_string(),
            None => match md_str(&obj, "generateName").filter(|n| !n.is_empty()) {
                Some(g) => {
                    let mut n = format!("{g}{}", random_suffix());
                    for _ in 0..8 {
                        if !map.contains_key(&(ns.clone(), n.clone())) {
                            break;
                        }
                        n = format!("{g}{}", random_suffix());
                    }
                    n
                }
                None => {
                    return Err(Self::invalid(
                        ri,
                        "",
                        vec![Cause {
                            reason: "FieldValueRequired",
                            message: "Required value: name or generateName is required".into(),
                            field: "metadata.name".into(),
                        }],
                    ))
                }
            },
        };
        Self::check_name(ri, &name)?;
        if map.contains_key(&(ns.clone(), name.clone())) {
            return Err(ApiError::already_exists(&ri.group, &ri.plural, &name));
        }
        obj["apiVersion"] = Value::String(ri.api_version());
        obj["kind"] = Value::String(ri.kind.clone());
        {
            let m = md(&mut obj);
            m.insert("name".into(), Value::String(name.clone()));
            m.insert("uid".into(), Value::String(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), Value::String(now_ts()));
            m.insert("generation".into(), json!(1));
            for k in ["resourceVersion", "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"] {
                m.remove(k);
            }
        }
        if ri.status_subresource && ri.custom {
            obj.as_object_mut().expect("object").remove("status");
        }
        self.kind_hooks(ri, &mut obj, None)?;
        self.admit(ri, &mut obj, None)?;
        normalize_metadata(&mut obj);
        let mut managed = Vec::new();
        let now = now_ts();
        managed::record_update(&mut managed, None, &obj, ctx.manager, "", &ri.api_version(), &now);
        self.rv += 1;
        md(&mut obj).insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        let stored = Stored { obj, managed };
        let view = Self::view(ri, &stored);
        self.data.entry(ri.gr()).or_default().insert((ns.clone(), name), Stored { obj: stored.obj.clone(), managed: stored.managed });
        self.emit(ri.gr(), ns, "ADDED", view.clone(), None);
        self.after_write(ri, &view, false);
        Ok((201, view))
    }

    /// PUT. `body.metadata.resourceVersion`, when set, must be current.
    pub fn update(&mut self, ctx: &WriteCtx, name: &str, body: Value) -> ApiResult<(u16, Value)> {
        let ri = ctx.ri;
        if !body.is_object() {
            return Err(ApiError::bad_request("the body of the request must be a JSON object"));
        }
        if md_str(&body, "name").is_some_and(|n| n != name) {
            return Err(ApiError::bad_request("the name of the object does not match the name on the URL"));
        }
        let current_rv = self.current(ri, ctx.ns, name)?.0;
        if md_str(&body, "resourceVersion").is_some_and(|rv| !rv.is_empty() && rv != current_rv) {
            return Err(ApiError::stale(&ri.group, &ri.plural, name));
        }
        self.commit(ctx, name, body, ManagedOp::Update)
    }

    fn current(&self, ri: &ResourceInfo, ns: Option<&str>, name: &str) -> ApiResult<(String, Value)> {
        let s = self
            .data
            .get(&ri.gr())
            .and_then(|m| m.get(&Self::key(ri, ns, name)))
            .ok_or_else(|| ApiError::not_found(&ri.group, &ri.plural, name))?;
        Ok((md_str(&s.obj, "resourceVersion").unwrap_or("").to_string(), s.obj.clone()))
    }

    pub fn patch(&mut self, ctx: &WriteCtx, name: &str, kind: PatchKind, body: Value) -> ApiResult<(u16, Value)> {
        let ri = ctx.ri;
        if let PatchKind::Apply { force } = kind {
            return self.apply(ctx, name, body, force);
        }
        let (rv, current) = self.current(ri, ctx.ns, name)?;
        let mut patched = current.clone();
        match kind {
            PatchKind::Merge | PatchKind::Strategic => {
                if !body.is_object() {
                    return Err(ApiError::bad_request("merge patch body must be a JSON object"));
                }
                json_patch::merge(&mut patched, &body);
            }
            PatchKind::Json => {
                let ops: json_patch::Patch =
                    serde_json::from_value(body).map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                for op in ops.0 {
                    // Like the apiserver (evanphx/json-patch): `test` of a missing path against null succeeds.
                    if let json_patch::PatchOperation::Test(t) = &op {
                        if t.value.is_null() && patched.pointer(t.path.as_str()).is_none() {
                            continue;
                        }
                    }
                    // The apiserver answers any failure to apply the patch with its generic 422.
                    json_patch::patch(&mut patched, &[op]).map_err(|_| ApiError::unprocessable())?;
                }
            }
            PatchKind::Apply { .. } => unreachable!("handled above"),
        }
        if md_str(&patched, "resourceVersion").is_some_and(|p| p != rv) {
            return Err(ApiError::stale(&ri.group, &ri.plural, name));
        }
        // A uid in the patch that is not the object's is refused as the apiserver's update
        // validation does (the uid is immutable): 422 on metadata.uid. Controllers send it so
        // that another object under the name is not patched (kube-controller-manager's
        // ReleaseReplicaSet).
        let uid = md_str(&current, "uid").unwrap_or("");
        if let Some(p) = md_str(&patched, "uid").filter(|p| *p != uid) {
            let cause = Cause {
                reason: "FieldValueInvalid",
                message: format!("Invalid value: {}: field is immutable", Value::from(p)),
                field: "metadata.uid".into(),
            };
            return Err(Self::invalid(ri, name, vec![cause]));
        }
        self.commit(ctx, name, patched, ManagedOp::Update)
    }

    fn apply(&mut self, ctx: &WriteCtx, name: &str, cfg: Value, force: bool) -> ApiResult<(u16, Value)> {
        let ri = ctx.ri;
        if !cfg.is_object() {
            return Err(ApiError::bad_request("apply configuration must be an object"));
        }
        if md_str(&cfg, "name").is_some_and(|n| n != name) {
            return Err(ApiError::bad_request("the name of the object does not match the name on the URL"));
        }
        let sub = ctx.sub.unwrap_or("");
        let mut paths = managed::leaf_paths(&cfg);
        if ri.status_subresource {
            paths.retain(|p| (p[0] == "status") == (sub == "status"));
        }
        let existing = self.current(ri, ctx.ns, name).ok();
        let Some((rv, current)) = existing else {
            if ctx.sub.is_some() {
                return Err(ApiError::not_found(&ri.group, &ri.plural, name));
            }
            let mut obj = cfg;
            md(&mut obj).insert("name".into(), Value::String(name.to_string()));
            let (code, view) = self.create(ctx, obj)?;
            // ownership: creation by apply belongs to the Apply entry
            let key = Self::key(ri, ctx.ns, name);
            let now = now_ts();
            if let Some(s) = self.data.get_mut(&ri.gr()).and_then(|m| m.get_mut(&key)) {
                s.managed.clear();
                managed::record_apply(&mut s.managed, &s.obj, &paths, &[], ctx.manager, sub, &ri.api_version(), &now);
                let v = Self::view(ri, s);
                return Ok((code, v));
            }
            return Ok((code, view));
        };
        if md_str(&cfg, "resourceVersion").is_some_and(|p| !p.is_empty() && p != rv) {
            return Err(ApiError::stale(&ri.group, &ri.plural, name));
        }
        let entries =
            self.data.get(&ri.gr()).and_then(|m| m.get(&Self::key(ri, ctx.ns, name))).map(|s| s.managed.clone()).unwrap_or_default();
        let conflicts = managed::apply_conflicts(&entries, &current, &cfg, &paths, ctx.manager);
        if !conflicts.is_empty() && !force {
            let causes: Vec<Cause> = conflicts
                .iter()
                .map(|c| Cause {
                    reason: "FieldManagerConflict",
                    message: format!(
                        "conflict with \"{}\"{}",
                        c.manager,
                        if c.operation == "Update" { " using ".to_string() + &c.api_version } else { String::new() }
                    ),
                    field: managed::dotted(&c.path),
                })
                .collect();
            let lines: Vec<String> = conflicts
                .iter()
                .map(|c| format!("- conflict with \"{}\" using {}: {}", c.manager, c.api_version, managed::dotted(&c.path)))
                .collect();
            let msg = if conflicts.len() == 1 {
                format!(
                    "Apply failed with 1 conflict: conflict with \"{}\" using {}: {}",
                    conflicts[0].manager,
                    conflicts[0].api_version,
                    managed::dotted(&conflicts[0].path)
                )
            } else {
                format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
            };
            let mut e = ApiError::new(409, "Conflict", msg);
            e.details = Some(json!({
                "name": name, "group": ri.group, "kind": ri.plural,
                "causes": causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect::<Vec<_>>(),
            }));
            return Err(e);
        }
        let mut new = current.clone();
        for p in managed::apply_removals(&entries, &paths, ctx.manager, sub) {
            managed::remove_path(&mut new, &p);
        }
        let mut cfg = cfg;
        if let Some(m) = cfg.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        managed::merge_apply(&mut new, &cfg);
        self.commit(ctx, name, new, ManagedOp::Apply { paths, forced: conflicts })
    }

    /// The common update path: subresource masking, immutable metadata, finalizer rules,
    /// admission, generation, no-op detection, managedFields, storage and events.
    fn commit(&mut self, ctx: &WriteCtx, name: &str, body: Value, op: ManagedOp) -> ApiResult<(u16, Value)> {
        let ri = ctx.ri;
        let key = Self::key(ri, ctx.ns, name);
        let (old, old_managed) = {
            let s = self.data.get(&ri.gr()).and_then(|m| m.get(&key)).ok_or_else(|| ApiError::not_found(&ri.group, &ri.plural, name))?;
            (s.obj.clone(), s.managed.clone())
        };
        let mut new = body;
        if ri.status_subresource {
            if ctx.sub == Some("status") {
                let status = new.get("status").cloned();
                new = old.clone();
                match status {
                    Some(s) if !s.is_null() => new["status"] = s,
                    _ => {
                        new.as_object_mut().expect("object").remove("status");
                    }
                }
            } else {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        new.as_object_mut().expect("object").remove("status");
                    }
                }
            }
        }
        new["apiVersion"] = Value::String(ri.api_version());
        new["kind"] = Value::String(ri.kind.clone());
        {
            let old_md = old["metadata"].as_object().cloned().unwrap_or_default();
            let m = md(&mut new);
            for k in ["name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
                match old_md.get(k) {
                    Some(v) => m.insert(k.into(), v.clone()),
                    None => m.remove(k),
                };
            }
            m.remove("resourceVersion");
            m.remove("managedFields");
            m.remove("selfLink");
        }
        let deleting = old.pointer("/metadata/deletionTimestamp").is_some();
        if deleting {
            let before = finalizers(&old);
            let added: Vec<String> = finalizers(&new).into_iter().filter(|f| !before.contains(f)).collect();
            if !added.is_empty() {
                return Err(Self::invalid(
                    ri,
                    name,
                    vec![Cause {
                        reason: "FieldValueForbidden",
                        // Listed as Go's `%#v` prints a []string, like the apiserver.
                        message: format!(
                            "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                            added.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>().join(", ")
                        ),
                        field: "metadata.finalizers".into(),
                    }],
                ));
            }
        }
        self.kind_hooks(ri, &mut new, Some(&old))?;
        self.admit(ri, &mut new, Some(&old))?;
        normalize_metadata(&mut new);
        if spec_part(&new, ri.status_subresource) != spec_part(&old, ri.status_subresource) {
            let g = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
            md(&mut new).insert("generation".into(), json!(g + 1));
        }
        let mut managed_entries = old_managed;
        let now = now_ts();
        let sub = ctx.sub.unwrap_or("");
        let mut old_cmp = old.clone();
        md(&mut old_cmp).remove("resourceVersion");
        let noop = comparable(&new) == comparable(&old);
        match &op {
            ManagedOp::Update => managed::record_update(&mut managed_entries, Some(&old), &new, ctx.manager, sub, &ri.api_version(), &now),
            ManagedOp::Apply { paths, forced } => {
                managed::record_apply(&mut managed_entries, &new, paths, forced, ctx.manager, sub, &ri.api_version(), &now)
            }
        }
        let map = self.data.get_mut(&ri.gr()).expect("exists");
        let stored = map.get_mut(&key).expect("exists");
        if noop {
            // The apiserver skips writes that change nothing: same resourceVersion, no event.
            // Ownership changes of a no-op apply are still recorded (without a new RV).
            if matches!(op, ManagedOp::Apply { .. }) {
                stored.managed = managed_entries;
            }
            return Ok((200, Self::view(ri, stored)));
        }
        self.rv += 1;
        md(&mut new).insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        let ns = key.0.clone();
        if deleting && finalizers(&new).is_empty() {
            map.remove(&key);
            let view = Self::view(ri, &Stored { obj: new.clone(), managed: managed_entries });
            self.emit(ri.gr(), ns, "DELETED", view.clone(), Some(old));
            self.after_write(ri, &view, true);
            return Ok((200, view));
        }
        stored.obj = new.clone();
        stored.managed = managed_entries;
        let view = Self::view(ri, stored);
        self.emit(ri.gr(), ns, "MODIFIED", view.clone(), Some(old));
        self.after_write(ri, &view, false);
        Ok((200, view))
    }

    /// DELETE: with finalizers only marks the object; otherwise removes it.
    pub fn delete(&mut self, ri: &ResourceInfo, ns: Option<&str>, name: &str, opts: &Value) -> ApiResult<(u16, Value)> {
        let key = Self::key(ri, ns, name);
        let (rv, current) = self.current(ri, ns, name)?;
        if let Some(pre) = opts.get("preconditions") {
            if let Some(p) = pre.get("resourceVersion").and_then(Value::as_str) {
                if p != rv {
                    return Err(ApiError::conflict(
                        &ri.group,
                        &ri.plural,
                        name,
                        &format!("Precondition failed: ResourceVersion in precondition: {p}, ResourceVersion in object meta: {rv}"),
                    ));
                }
            }
            if let Some(p) = pre.get("uid").and_then(Value::as_str) {
                let uid = md_str(&current, "uid").unwrap_or("");
                if p != uid {
                    return Err(ApiError::conflict(
                        &ri.group,
                        &ri.plural,
                        name,
                        &format!("Precondition failed: UID in precondition: {p}, UID in object meta: {uid}"),
                    ));
                }
            }
        }
        if !finalizers(&current).is_empty() {
            if current.pointer("/metadata/deletionTimestamp").is_some() {
                let s = &self.data[&ri.gr()][&key];
                return Ok((200, Self::view(ri, s)));
            }
            let mut new = current.clone();
            let g = new.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
            self.rv += 1;
            {
                let m = md(&mut new);
                m.insert("deletionTimestamp".into(), Value::String(now_ts()));
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
                m.insert("generation".into(), json!(g + 1));
                m.insert("resourceVersion".into(), Value::String(self.rv.to_string()));
            }
            if ri.plural == "namespaces" && ri.group.is_empty() {
                new["status"] = json!({"phase": "Terminating"});
            }
            let s = self.data.get_mut(&ri.gr()).expect("exists").get_mut(&key).expect("exists");
            s.obj = new.clone();
            let view = Self::view(ri, s);
            self.emit(ri.gr(), key.0.clone(), "MODIFIED", view.clone(), Some(current));
            return Ok((200, view));
        }
        let s = self.data.get_mut(&ri.gr()).expect("exists").remove(&key).expect("exists");
        self.rv += 1;
        let mut obj = s.obj;
        md(&mut obj).insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        let view = Self::view(ri, &Stored { obj: obj.clone(), managed: s.managed });
        self.emit(ri.gr(), key.0.clone(), "DELETED", view.clone(), None);
        self.after_write(ri, &view, true);
        let uid = md_str(&view, "uid").unwrap_or("").to_string();
        Ok((
            200,
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "group": ri.group, "kind": ri.plural, "uid": uid},
            }),
        ))
    }

    /// Remove every object of a group-resource (optionally in one namespace), with DELETED events.
    fn purge(&mut self, gr: &GroupResource, ns: Option<&str>) {
        let Some(map) = self.data.get_mut(gr) else { return };
        let keys: Vec<(String, String)> = map.keys().filter(|k| ns.is_none_or(|n| k.0 == n)).cloned().collect();
        let mut removed = Vec::new();
        for k in keys {
            if let Some(s) = map.remove(&k) {
                removed.push((k.0, s.obj));
            }
        }
        for (ns, mut obj) in removed {
            self.rv += 1;
            md(&mut obj).insert("resourceVersion".into(), Value::String(self.rv.to_string()));
            self.emit(gr.clone(), ns, "DELETED", obj, None);
        }
    }

    /// Side effects of writes: CRD (un)registration, namespace content removal.
    fn after_write(&mut self, ri: &ResourceInfo, obj: &Value, deleted: bool) {
        match (ri.group.as_str(), ri.plural.as_str()) {
            ("apiextensions.k8s.io", "customresourcedefinitions") => {
                let group = obj.pointer("/spec/group").and_then(Value::as_str).unwrap_or("").to_string();
                let plural = obj.pointer("/spec/names/plural").and_then(Value::as_str).unwrap_or("").to_string();
                self.registry.retain(|(g, _, p), r| !(r.custom && *g == group && *p == plural));
                if deleted {
                    self.purge(&(group, plural), None);
                } else {
                    for info in crate::crd::resource_infos(obj) {
                        self.register(info);
                    }
                }
            }
            ("", "namespaces") if deleted => {
                let name = md_str(obj, "name").unwrap_or("").to_string();
                let grs: Vec<GroupResource> =
                    self.registry.values().filter(|r| r.namespaced).map(|r| r.gr()).collect::<BTreeSet<_>>().into_iter().collect();
                for gr in grs {
                    self.purge(&gr, Some(&name));
                }
            }
            _ => {}
        }
    }

    /// Start a watch. `from`: None = send the current state as ADDED first; Some(rv) = replay
    /// retained events after rv (410 if rv is older than the retained window).
    #[allow(clippy::type_complexity)]
    pub fn watch(
        &mut self,
        ri: &ResourceInfo,
        ns: Option<&str>,
        from: Option<u64>,
    ) -> ApiResult<(Vec<Arc<WatchEvent>>, mpsc::UnboundedReceiver<Arc<WatchEvent>>)> {
        let gr = ri.gr();
        let ns_filter = if ri.namespaced { ns.map(String::from) } else { None };
        let initial: Vec<Arc<WatchEvent>> = match from {
            Some(rv) => {
                if rv < self.floor {
                    return Err(ApiError::gone(format!("too old resource version: {rv} ({})", self.floor + 1)));
                }
                self.history.iter().filter(|e| e.rv > rv && e.gr == gr && ns_filter.as_ref().is_none_or(|n| *n == e.ns)).cloned().collect()
            }
            None => self
                .data
                .get(&gr)
                .map(|m| {
                    m.iter()
                        .filter(|(k, _)| ns_filter.as_ref().is_none_or(|n| *n == k.0))
                        .map(|(k, s)| {
                            Arc::new(WatchEvent {
                                rv: self.rv,
                                gr: gr.clone(),
                                ns: k.0.clone(),
                                etype: "ADDED",
                                obj: Self::view(ri, s),
                                old: None,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        self.watchers.push(WatcherReg { gr, ns: ns_filter, tx });
        Ok((initial, rx))
    }

    /// Managed fields of an object are rendered on read; this is for the view of watch events.
    pub fn view_event_object(ri: &ResourceInfo, obj: &Value) -> Value {
        let mut v = obj.clone();
        v["apiVersion"] = Value::String(ri.api_version());
        v
    }

    pub fn all_resources(&self) -> Vec<Arc<ResourceInfo>> {
        self.registry.values().cloned().collect()
    }
}
