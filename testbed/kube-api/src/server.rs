//! HTTP layer: routing, verbs, discovery, watch streaming and the `/_testbed` controls.

use crate::error::{ApiError, ApiResult};
use crate::faults::{FaultRule, Faults};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{PatchKind, ResourceInfo, Store, WatchEvent, WriteCtx};
use crate::Shared;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(dispatch).with_state(shared)
}

fn json_response(code: u16, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = (StatusCode::from_u16(code).unwrap_or(StatusCode::OK), body).into_response();
    r.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    r
}

async fn dispatch(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, 256 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => return ApiError::bad_request(format!("reading body: {e}")).into_response(),
    };
    match route(&shared, &parts.method, &parts.uri, &parts.headers, bytes) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn query(uri: &Uri) -> HashMap<String, String> {
    axum::extract::Query::<HashMap<String, String>>::try_from_uri(uri).map(|q| q.0).unwrap_or_default()
}

fn route(shared: &Arc<Shared>, method: &Method, uri: &Uri, headers: &HeaderMap, body: Bytes) -> ApiResult<Response> {
    let segs: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let q = query(uri);
    match segs.as_slice() {
        ["_testbed", rest @ ..] => testbed(shared, method, rest, &body),
        ["version"] => Ok(json_response(
            200,
            &json!({"major": "1", "minor": "34", "gitVersion": "v1.34.0-kube-testbed", "gitCommit": "", "gitTreeState": "clean",
                     "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}),
        )),
        ["healthz"] | ["readyz"] | ["livez"] => Ok((StatusCode::OK, "ok").into_response()),
        ["api"] => Ok(json_response(
            200,
            &json!({"kind": "APIVersions", "versions": ["v1"],
                     "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": shared.addr.to_string()}]}),
        )),
        ["apis"] => Ok(json_response(200, &group_list(shared))),
        ["api", "v1"] => Ok(json_response(200, &resource_list(shared, "", "v1")?)),
        ["apis", g] => {
            let list = group_list(shared);
            let grp = list["groups"].as_array().and_then(|a| a.iter().find(|x| x["name"] == *g)).cloned().ok_or_else(ApiError::no_route)?;
            let mut grp = grp;
            grp["kind"] = json!("APIGroup");
            grp["apiVersion"] = json!("v1");
            Ok(json_response(200, &grp))
        }
        ["apis", g, v] => Ok(json_response(200, &resource_list(shared, g, v)?)),
        ["api", "v1", rest @ ..] => resource_request(shared, "", "v1", rest, method, &q, headers, &body),
        ["apis", g, v, rest @ ..] => resource_request(shared, g, v, rest, method, &q, headers, &body),
        _ => Err(ApiError::no_route()),
    }
}

fn version_rank(v: &str) -> (u8, u32, u32) {
    // GA > beta > alpha, then higher numbers first
    let re = regex::Regex::new(r"^v(\d+)(?:(alpha|beta)(\d+))?$").expect("regex");
    match re.captures(v) {
        Some(c) => {
            let major = c[1].parse().unwrap_or(0);
            let lvl = match c.get(2).map(|m| m.as_str()) {
                None => 3,
                Some("beta") => 2,
                _ => 1,
            };
            let minor = c.get(3).and_then(|m| m.as_str().parse().ok()).unwrap_or(0);
            (lvl, major, minor)
        }
        None => (0, 0, 0),
    }
}

fn group_list(shared: &Arc<Shared>) -> Value {
    let res = shared.store.lock().expect("store lock").all_resources();
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in res.iter().filter(|r| !r.group.is_empty()) {
        let vs = groups.entry(r.group.clone()).or_default();
        if !vs.contains(&r.version) {
            vs.push(r.version.clone());
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(g, mut vs)| {
            vs.sort_by_key(|v| std::cmp::Reverse(version_rank(v)));
            let versions: Vec<Value> = vs.iter().map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v})).collect();
            json!({"name": g, "versions": versions, "preferredVersion": versions[0].clone()})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(shared: &Arc<Shared>, group: &str, version: &str) -> ApiResult<Value> {
    let res: Vec<Arc<ResourceInfo>> =
        shared.store.lock().expect("store lock").all_resources().into_iter().filter(|r| r.group == group && r.version == version).collect();
    if res.is_empty() {
        return Err(ApiError::no_route());
    }
    let mut out = Vec::new();
    for r in &res {
        out.push(json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "shortNames": r.short_names, "categories": r.categories,
        }));
        if r.status_subresource {
            out.push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                            "kind": r.kind, "verbs": ["get", "patch", "update"]}));
        }
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Ok(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}))
}

fn testbed(shared: &Arc<Shared>, method: &Method, rest: &[&str], body: &Bytes) -> ApiResult<Response> {
    let faults = Faults { shared: shared.clone() };
    match (method.clone(), rest) {
        (Method::POST, ["faults"]) => {
            let v: Value = serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("bad fault JSON: {e}")))?;
            let rules: Vec<Value> = match v {
                Value::Array(a) => a,
                other => vec![other],
            };
            for r in rules {
                let rule: FaultRule =
                    serde_json::from_value(r.clone()).map_err(|e| ApiError::bad_request(format!("bad fault rule: {e}")))?;
                match r.get("rate").and_then(Value::as_f64) {
                    Some(rate) => faults.fail_rate(rule, rate, r.get("seed").and_then(Value::as_u64).unwrap_or(0)),
                    None => faults.fail_next(rule),
                }
            }
            Ok(json_response(200, &json!({"ok": true})))
        }
        (Method::DELETE, ["faults"]) => {
            faults.clear();
            Ok(json_response(200, &json!({"ok": true})))
        }
        (Method::POST, ["faults", "drop-watches"]) => {
            faults.drop_watches();
            Ok(json_response(200, &json!({"ok": true})))
        }
        (Method::GET, ["stats"]) => Ok(json_response(200, &serde_json::to_value(shared.stats()).unwrap_or_default())),
        (Method::DELETE, ["stats"]) => {
            *shared.stats.lock().expect("stats lock") = Default::default();
            Ok(json_response(200, &json!({"ok": true})))
        }
        _ => Err(ApiError::no_route()),
    }
}

fn manager_name(q: &HashMap<String, String>, headers: &HeaderMap) -> String {
    if let Some(m) = q.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.clone();
    }
    headers
        .get("user-agent")
        .and_then(|u| u.to_str().ok())
        .and_then(|u| u.split('/').next())
        .filter(|u| !u.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

fn parse_json(body: &Bytes) -> ApiResult<Value> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("couldn't decode the request body as JSON: {e}")))
}

#[allow(clippy::too_many_arguments)]
fn resource_request(
    shared: &Arc<Shared>,
    group: &str,
    version: &str,
    rest: &[&str],
    method: &Method,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> ApiResult<Response> {
    let lookup = |p: &str| shared.store.lock().expect("store lock").lookup(group, version, p);
    let (ns, plural, name, sub): (Option<&str>, &str, Option<&str>, Option<&str>) = match rest {
        ["namespaces", ns, p, tail @ ..] if tail.len() <= 2 && lookup(p).is_some_and(|r| r.namespaced) => {
            (Some(*ns), *p, tail.first().copied(), tail.get(1).copied())
        }
        [p] => (None, *p, None, None),
        [p, n] => (None, *p, Some(*n), None),
        [p, n, s] => (None, *p, Some(*n), Some(*s)),
        _ => return Err(ApiError::no_route()),
    };
    let ri = lookup(plural).ok_or_else(ApiError::no_route)?;
    if (ns.is_some() && !ri.namespaced) || (ri.namespaced && ns.is_none() && name.is_some()) {
        return Err(ApiError::no_route());
    }
    if let Some(s) = sub {
        if !(s == "status" && ri.status_subresource) {
            return Err(ApiError::no_route());
        }
    }
    let watch = matches!(q.get("watch").map(String::as_str), Some("true" | "1"));
    let verb = match (method.clone(), name) {
        (Method::GET, Some(_)) => "get",
        (Method::GET, None) if watch => "watch",
        (Method::GET, None) => "list",
        (Method::POST, None) => "create",
        (Method::PUT, Some(_)) => "update",
        (Method::PATCH, Some(_)) => "patch",
        (Method::DELETE, Some(_)) => "delete",
        (Method::DELETE, None) => "deletecollection",
        _ => {
            return Err(ApiError::method_not_allowed(format!("the server does not allow this method on the requested resource ({method})")))
        }
    };
    let res_key = match sub {
        Some(s) => format!("{}/{s}", ri.plural),
        None => ri.plural.clone(),
    };
    {
        let mut st = shared.stats.lock().expect("stats lock");
        *st.requests.entry(res_key).or_default().entry(verb.to_string()).or_default() += 1;
    }
    let is_apply = verb == "patch"
        && headers.get("content-type").and_then(|c| c.to_str().ok()).is_some_and(|c| c.starts_with("application/apply-patch"));
    let injected = shared.faults.lock().expect("faults lock").check(verb, is_apply, &ri.plural, sub);
    if let Some(code) = injected {
        shared.stats.lock().expect("stats lock").injected += 1;
        return Err(ApiError::injected(code, verb, &crate::error::gr(&ri.group, &ri.plural), name));
    }
    if matches!(verb, "create" | "update") {
        let ct = headers.get("content-type").and_then(|c| c.to_str().ok()).unwrap_or("");
        if !(ct.is_empty() || ct.starts_with("application/json") || ct.starts_with("*/*")) {
            return Err(ApiError::unsupported_media(format!(
                "the body of the request was in an unknown format - accepted media types include: application/json (got {ct:?})"
            )));
        }
    }
    let lsel = LabelSelector::parse(q.get("labelSelector").map(String::as_str).unwrap_or(""))?;
    let fsel = FieldSelector::parse(q.get("fieldSelector").map(String::as_str).unwrap_or(""))?;
    let manager = manager_name(q, headers);
    let ctx = WriteCtx { ri: &ri, ns, sub, manager: &manager };
    let name = name.unwrap_or("");
    match verb {
        "get" => {
            let v = shared.store.lock().expect("store lock").get(&ri, ns, name)?;
            Ok(json_response(200, &v))
        }
        "list" => {
            let limit = q.get("limit").and_then(|l| l.parse::<usize>().ok());
            let filter = |o: &Value| lsel.matches(o) && fsel.matches(o);
            let v = shared.store.lock().expect("store lock").list(&ri, ns, &filter, limit, q.get("continue").map(String::as_str))?;
            Ok(json_response(200, &v))
        }
        "watch" => start_watch(shared, ri.clone(), ns, q, lsel, fsel),
        "create" => {
            let (code, v) = shared.store.lock().expect("store lock").create(&ctx, parse_json(body)?)?;
            Ok(json_response(code, &v))
        }
        "update" => {
            let (code, v) = shared.store.lock().expect("store lock").update(&ctx, name, parse_json(body)?)?;
            Ok(json_response(code, &v))
        }
        "patch" => {
            let ct =
                headers.get("content-type").and_then(|c| c.to_str().ok()).unwrap_or("").split(';').next().unwrap_or("").trim().to_string();
            let (kind, patch) = match ct.as_str() {
                "application/merge-patch+json" => (PatchKind::Merge, parse_json(body)?),
                "application/strategic-merge-patch+json" => (PatchKind::Strategic, parse_json(body)?),
                "application/json-patch+json" => (PatchKind::Json, parse_json(body)?),
                "application/apply-patch+yaml" => {
                    if q.get("fieldManager").is_none_or(|m| m.is_empty()) {
                        return Err(ApiError::invalid(
                            "PatchOptions.meta.k8s.io",
                            "meta.k8s.io",
                            "PatchOptions",
                            "",
                            vec![crate::error::Cause {
                                reason: "FieldValueRequired",
                                message: "Required value: is required for apply patch".into(),
                                field: "fieldManager".into(),
                            }],
                        ));
                    }
                    let force = matches!(q.get("force").map(String::as_str), Some("true" | "1"));
                    let v: Value = serde_yaml::from_slice(body)
                        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
                    (PatchKind::Apply { force }, v)
                }
                other => {
                    return Err(ApiError::unsupported_media(format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
                    )))
                }
            };
            let (code, v) = shared.store.lock().expect("store lock").patch(&ctx, name, kind, patch)?;
            Ok(json_response(code, &v))
        }
        "delete" => {
            let opts: Value = if body.is_empty() { json!({}) } else { parse_json(body).unwrap_or(json!({})) };
            let (code, v) = shared.store.lock().expect("store lock").delete(&ri, ns, name, &opts)?;
            Ok(json_response(code, &v))
        }
        "deletecollection" => {
            let opts: Value = if body.is_empty() { json!({}) } else { parse_json(body).unwrap_or(json!({})) };
            let mut store = shared.store.lock().expect("store lock");
            let filter = |o: &Value| lsel.matches(o) && fsel.matches(o);
            let list = store.list(&ri, ns, &filter, None, None)?;
            let mut items = Vec::new();
            for it in list["items"].as_array().into_iter().flatten() {
                let n = it.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
                let ins = it.pointer("/metadata/namespace").and_then(Value::as_str);
                if let Ok((_, v)) = store.delete(&ri, ins, n, &opts) {
                    if v["kind"] != "Status" {
                        items.push(v);
                    } else {
                        items.push(it.clone());
                    }
                }
            }
            let rv = store.rv;
            Ok(json_response(
                200,
                &json!({"apiVersion": ri.api_version(), "kind": format!("{}List", ri.kind), "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
            ))
        }
        _ => Err(ApiError::no_route()),
    }
}

/// Render one watch event for a watcher with selectors; `None` when it doesn't concern it.
fn render_event(ri: &ResourceInfo, ev: &WatchEvent, lsel: &LabelSelector, fsel: &FieldSelector) -> Option<Bytes> {
    let m = |o: &Value| lsel.matches(o) && fsel.matches(o);
    let etype = match ev.etype {
        "MODIFIED" => {
            let now = m(&ev.obj);
            let before = ev.old.as_ref().map(m).unwrap_or(true);
            match (before, now) {
                (true, true) => "MODIFIED",
                (false, true) => "ADDED",
                (true, false) => "DELETED",
                (false, false) => return None,
            }
        }
        "DELETED" => {
            if m(&ev.obj) || ev.old.as_ref().is_some_and(m) {
                "DELETED"
            } else {
                return None;
            }
        }
        t => {
            if m(&ev.obj) {
                t
            } else {
                return None;
            }
        }
    };
    let obj = Store::view_event_object(ri, &ev.obj);
    let mut line = serde_json::to_vec(&json!({"type": etype, "object": obj})).ok()?;
    line.push(b'\n');
    Some(Bytes::from(line))
}

fn line(v: &Value) -> Bytes {
    let mut l = serde_json::to_vec(v).unwrap_or_default();
    l.push(b'\n');
    Bytes::from(l)
}

struct WatchState {
    ri: Arc<ResourceInfo>,
    rx: tokio::sync::mpsc::UnboundedReceiver<Arc<WatchEvent>>,
    deadline: tokio::time::Instant,
    lsel: LabelSelector,
    fsel: FieldSelector,
}

fn start_watch(
    shared: &Arc<Shared>,
    ri: Arc<ResourceInfo>,
    ns: Option<&str>,
    q: &HashMap<String, String>,
    lsel: LabelSelector,
    fsel: FieldSelector,
) -> ApiResult<Response> {
    let send_initial = matches!(q.get("sendInitialEvents").map(String::as_str), Some("true"));
    let from = match q.get("resourceVersion").map(String::as_str) {
        None | Some("") | Some("0") => None,
        Some(_) if send_initial => None,
        Some(rv) => Some(rv.parse::<u64>().map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv}")))?),
    };
    let timeout = q.get("timeoutSeconds").and_then(|t| t.parse::<u64>().ok()).filter(|t| *t > 0).unwrap_or(1800);
    let result = shared.store.lock().expect("store lock").watch(&ri, ns, from);
    let mut first: Vec<Bytes> = Vec::new();
    let rx = match result {
        Ok((initial, rx)) => {
            for ev in &initial {
                if let Some(b) = render_event(&ri, ev, &lsel, &fsel) {
                    first.push(b);
                }
            }
            if send_initial {
                let rv = shared.store.lock().expect("store lock").rv;
                first.push(line(&json!({"type": "BOOKMARK", "object": {
                    "apiVersion": ri.api_version(), "kind": ri.kind,
                    "metadata": {"resourceVersion": rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}}})));
            }
            Some(rx)
        }
        Err(e) => {
            first.push(line(&json!({"type": "ERROR", "object": e.to_status()})));
            None
        }
    };
    let head = futures::stream::iter(first.into_iter().map(Ok::<Bytes, std::convert::Infallible>));
    let body = match rx {
        None => Body::from_stream(head),
        Some(rx) => {
            let st = WatchState { ri, rx, deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(timeout), lsel, fsel };
            let tail = futures::stream::unfold(st, |mut st| async move {
                loop {
                    match tokio::time::timeout_at(st.deadline, st.rx.recv()).await {
                        Ok(Some(ev)) => {
                            if let Some(b) = render_event(&st.ri, &ev, &st.lsel, &st.fsel) {
                                return Some((Ok(b), st));
                            }
                        }
                        _ => return None,
                    }
                }
            });
            Body::from_stream(futures::StreamExt::chain(head, tail))
        }
    };
    let mut r = Response::new(body);
    r.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    Ok(r)
}
