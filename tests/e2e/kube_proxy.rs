//! A fault-injecting, recording HTTP proxy in front of a Kubernetes API server (the in-memory
//! test bed or a real kube-apiserver), so that the API fault scenarios run against either.
//!
//! The operator talks plain HTTP to the proxy on loopback (its own kubeconfig, a dummy token);
//! the proxy forwards every request with a kube `Client` built from the cluster's kubeconfig, so
//! TLS and the real credentials stay on the proxy's upstream side. On the way it records each
//! request, answers some with injected errors (409, 429, 500, ... as `meta/v1 Status` objects,
//! before anything reaches the server), cuts open watch streams, and can make the next watch
//! resume from resourceVersion 1, which the server itself answers with `410 Gone` (an `ERROR`
//! event with reason `Expired`), as it does for any watch that resumes too late.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use futures::StreamExt;
use kube::Client;
use kube_testbed::{FaultRule, FaultState, Stats};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One request as the proxy classified it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxiedRequest {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, or
    /// `other` (discovery, `/version`, ...).
    pub verb: String,
    /// The plural, or `plural/subresource`; empty for non-resource requests.
    pub resource: String,
    /// A server-side apply patch.
    pub apply: bool,
    /// The status the proxy answered in the server's stead, if it injected a fault.
    pub injected: Option<u16>,
    /// A watch the proxy sent on from resourceVersion 1 (the server answers 410 Gone).
    pub expired: bool,
    /// The HTTP status of the answer (injected or the server's); `None` while in flight.
    pub status: Option<u16>,
}

#[derive(Default)]
struct ProxyState {
    faults: FaultState,
    requests: Vec<ProxiedRequest>,
    injected: u64,
    expire_watches: usize,
    open_watches: usize,
    impersonate: Option<String>,
}

struct Shared {
    upstream: Client,
    state: Mutex<ProxyState>,
    /// Bumped to cut every open watch stream.
    cut: tokio::sync::watch::Sender<u64>,
}

/// The proxy; it serves until dropped.
pub struct KubeProxy {
    pub url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl KubeProxy {
    /// Listen on 127.0.0.1 (a free port) and forward to the API server `upstream` talks to.
    pub async fn start(upstream: Client) -> KubeProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the kube proxy");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (cut, _) = tokio::sync::watch::channel(0);
        let shared = Arc::new(Shared { upstream, state: Mutex::new(ProxyState::default()), cut });
        let app = axum::Router::new().fallback(forward).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        KubeProxy { url, shared, task }
    }

    /// A kubeconfig (plain HTTP to the proxy) with `namespace` as the default.
    pub fn kubeconfig_yaml(&self, namespace: &str) -> String {
        kube_testbed::kubeconfig_yaml(&self.url, namespace)
    }

    /// Answer the next `rule.count` matching requests with `rule.status`.
    pub fn fail_next(&self, rule: FaultRule) {
        self.shared.state.lock().unwrap().faults.push_next(rule);
    }

    /// Answer a share `rate` (0.0-1.0) of matching requests with `rule.status`, deterministic
    /// for a `seed` (the same sequence as the test bed's `fail_rate`).
    pub fn fail_rate(&self, rule: FaultRule, rate: f64, seed: u64) {
        self.shared.state.lock().unwrap().faults.push_rate(rule, rate, seed);
    }

    /// Remove every fault rule. Pending watch expiries stay: like a server's history that has
    /// moved on, they wait for the next watch.
    pub fn clear(&self) {
        self.shared.state.lock().unwrap().faults.clear();
    }

    /// End every open watch stream now (the client sees the stream end and re-watches).
    pub fn drop_watches(&self) {
        self.shared.cut.send_modify(|n| *n += 1);
    }

    /// The next `n` watches that are not failed by a rule resume from resourceVersion 1: the
    /// server answers `410 Gone` and the client must re-list.
    pub fn expire_next_watches(&self, n: usize) {
        self.shared.state.lock().unwrap().expire_watches += n;
    }

    /// Send every request on as `user` (`Impersonate-User`), so that a real server's RBAC
    /// authorizer decides it under that user's bindings (the kubeconfig's user must be allowed
    /// to impersonate; the kit's is system:masters). The test bed has no authorizer.
    pub fn impersonate(&self, user: &str) {
        self.shared.state.lock().unwrap().impersonate = Some(user.to_string());
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<ProxiedRequest> {
        self.shared.state.lock().unwrap().requests.clone()
    }

    /// Request counts in the test bed's form: `count(verb, "plural" | "plural/status")`,
    /// `injected_faults`, `open_watches` (`resource_version` is not known here: 0).
    pub fn stats(&self) -> Stats {
        let state = self.shared.state.lock().unwrap();
        let mut requests: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for r in state.requests.iter().filter(|r| !r.resource.is_empty()) {
            *requests.entry(r.resource.clone()).or_default().entry(r.verb.clone()).or_default() += 1;
        }
        Stats { requests, injected_faults: state.injected, resource_version: 0, open_watches: state.open_watches }
    }
}

impl Drop for KubeProxy {
    fn drop(&mut self) {
        self.drop_watches();
        self.task.abort();
    }
}

/// The verb and resource of a request: `/api/v1/...` or `/apis/<group>/<version>/...`, then
/// `[namespaces/<ns>/]<plural>[/<name>[/<subresource>]]`.
pub fn classify(method: &str, target: &str, content_type: &str) -> ProxiedRequest {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let watch = query.split('&').any(|kv| kv == "watch=true" || kv == "watch=1");
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest: &[&str] = match segs.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => &[],
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] if !rest.is_empty() => rest,
        _ => rest,
    };
    let (resource, named) = match rest {
        [resource] => (resource.to_string(), false),
        [resource, _name] => (resource.to_string(), true),
        [resource, _name, sub] => (format!("{resource}/{sub}"), true),
        _ => (String::new(), false),
    };
    let verb = match (method, named) {
        _ if resource.is_empty() => "other",
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "other",
    };
    ProxiedRequest {
        method: method.into(),
        target: target.into(),
        verb: verb.into(),
        resource,
        apply: content_type.starts_with("application/apply-patch"),
        injected: None,
        expired: false,
        status: None,
    }
}

impl ProxyState {
    /// The status to inject for this request, if any rule fires (the test bed's rules and
    /// matching, on the proxy's classification of the request).
    fn fault(&mut self, r: &ProxiedRequest) -> Option<u16> {
        if r.resource.is_empty() {
            return None;
        }
        let (resource, sub) = match r.resource.split_once('/') {
            Some((res, sub)) => (res, Some(sub)),
            None => (r.resource.as_str(), None),
        };
        self.faults.check(&r.verb, r.apply, resource, sub)
    }
}

/// The `meta/v1 Status` answer for an injected fault, as the API server words its own.
fn injected(status: u16, r: &ProxiedRequest) -> Response {
    let (reason, message) = match status {
        409 => ("Conflict", "the object has been modified; please apply your changes to the latest version and try again"),
        429 => ("TooManyRequests", "Too many requests, please try again later"),
        410 => ("Expired", "too old resource version"),
        503 => ("ServiceUnavailable", "the server is currently unable to handle the request"),
        _ => ("InternalError", "Internal error occurred"),
    };
    let body = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": status, "reason": reason,
        "message": format!("{message} (injected by the e2e proxy on {} {})", r.verb, r.resource),
    });
    let mut resp = Response::builder().status(status).header("content-type", "application/json");
    if status == 429 {
        resp = resp.header("retry-after", "1");
    }
    resp.body(Body::from(body.to_string())).unwrap()
}

/// `target` with its `resourceVersion` query parameter set to `rv`.
fn with_resource_version(target: &str, rv: &str) -> String {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut params: Vec<String> =
        query.split('&').filter(|kv| !kv.is_empty() && !kv.starts_with("resourceVersion=")).map(String::from).collect();
    params.push(format!("resourceVersion={rv}"));
    format!("{path}?{}", params.join("&"))
}

/// Headers that belong to one connection, or that the upstream client sets itself.
const HOP_HEADERS: [&str; 8] =
    ["host", "authorization", "connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", "impersonate-user"];

async fn forward(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let target = parts.uri.path_and_query().map(|pq| pq.as_str().to_string()).unwrap_or_else(|| "/".into());
    let content_type = parts.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mut r = classify(parts.method.as_str(), &target, content_type);
    let (fault, expire, impersonate, index) = {
        let mut state = shared.state.lock().unwrap();
        let fault = state.fault(&r);
        if fault.is_some() {
            state.injected += 1;
        }
        let expire = fault.is_none() && r.verb == "watch" && state.expire_watches > 0;
        if expire {
            state.expire_watches -= 1;
        }
        (r.injected, r.expired, r.status) = (fault, expire, fault);
        state.requests.push(r.clone());
        (fault, expire, state.impersonate.clone(), state.requests.len() - 1)
    };
    if let Some(status) = fault {
        return injected(status, &r);
    }
    let answered = |status: u16| shared.state.lock().unwrap().requests[index].status = Some(status);
    let target = if expire { with_resource_version(&target, "1") } else { target };
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return injected(500, &r);
    };
    let mut upstream = axum::http::Request::builder().method(parts.method.clone()).uri(target);
    for (name, value) in &parts.headers {
        if !HOP_HEADERS.contains(&name.as_str()) {
            upstream = upstream.header(name, value);
        }
    }
    if let Some(user) = impersonate {
        upstream = upstream.header("impersonate-user", user);
    }
    let upstream = upstream.body(kube::client::Body::from(bytes.to_vec())).expect("a request");
    let response = match shared.upstream.send(upstream).await {
        Ok(response) => response,
        Err(e) => {
            answered(502);
            return Response::builder().status(502).body(Body::from(format!("the e2e proxy could not reach the API server: {e}"))).unwrap();
        }
    };
    answered(response.status().as_u16());
    let (mut rparts, rbody) = response.into_parts();
    for name in HOP_HEADERS {
        rparts.headers.remove(name);
    }
    let body = if r.verb == "watch" {
        let mut cut = shared.cut.subscribe();
        cut.mark_unchanged();
        shared.state.lock().unwrap().open_watches += 1;
        let open = OpenWatch(shared.clone());
        let stream = Body::new(rbody).into_data_stream().take_until(async move {
            let _ = cut.changed().await;
        });
        Body::from_stream(stream.map(move |chunk| {
            let _ = &open;
            chunk
        }))
    } else {
        Body::new(rbody)
    };
    Response::from_parts(rparts, body)
}

/// Counts a watch stream as open until its response body is dropped.
struct OpenWatch(Arc<Shared>);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.state.lock().unwrap().open_watches -= 1;
    }
}

#[test]
fn requests_are_classified_as_rbac_sees_them() {
    let c = classify("GET", "/apis/elasticache-export.io/v1alpha1/namespaces/a/snapshotexports?watch=true&resourceVersion=7", "");
    assert_eq!((c.verb.as_str(), c.resource.as_str()), ("watch", "snapshotexports"));
    let c = classify("PUT", "/apis/elasticache-export.io/v1alpha1/namespaces/a/snapshotexports/x/status", "application/json");
    assert_eq!((c.verb.as_str(), c.resource.as_str()), ("update", "snapshotexports/status"));
    let c = classify("PATCH", "/apis/coordination.k8s.io/v1/namespaces/a/leases/l", "application/apply-patch+yaml");
    assert!(c.apply && c.verb == "patch" && c.resource == "leases");
    assert_eq!(classify("GET", "/version", "").verb, "other");
    let mut proxy = ProxyState::default();
    proxy.faults.push_next(FaultRule::new("update", "snapshotexports", 409).subresource("status"));
    assert_eq!(proxy.fault(&classify("PUT", "/apis/g/v1/namespaces/a/snapshotexports/x", "")), None);
    assert_eq!(proxy.fault(&classify("PUT", "/apis/g/v1/namespaces/a/snapshotexports/x/status", "")), Some(409));
    assert_eq!(proxy.fault(&classify("PUT", "/apis/g/v1/namespaces/a/snapshotexports/x/status", "")), None, "count 1: fails once");
    assert_eq!(with_resource_version("/api/v1/pods?watch=true&resourceVersion=42", "1"), "/api/v1/pods?watch=true&resourceVersion=1");
}
