//! Least privilege, checked against a real run: the operator talks to the API server (the test bed
//! or a real one) through the recording proxy (`KubeProxy`)
//! while it goes through everything it does (leader election, an export that
//! stalls on a bucket grant and repeats its Warning, the fix, an in-region copy with
//! `deletionPolicy: Delete`, its deletion, a graceful shutdown). Every API call it made must be
//! allowed by the shipped RBAC rules (no gap), and every rule must have been used (no excess).
//! The rules come from `config/rbac/` (kustomize) and from `helm template` of the chart (when
//! helm is installed in `.tools/bin`, as `make test` does). On a real API server the operator
//! also runs as a user bound to exactly those rules, so the server's RBAC authorizer checks them.

use crate::harness::*;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LEASE_NAME: &str = "elasticache-export-operator";

/// One API request: (API group, resource[/subresource], RBAC verb, object name, namespace).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Call {
    group: String,
    resource: String,
    verb: String,
    name: Option<String>,
    namespace: Option<String>,
}

/// A request line as an RBAC request: `/apis/<group>/<version>/[namespaces/<ns>/]<resource>[/<name>[/<sub>]]`.
fn to_call(method: &str, target: &str) -> Result<Call, String> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let watch = query.split('&').any(|kv| kv == "watch=true" || kv == "watch=1");
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segs.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return Err(format!("a non-resource request {method} {target}")),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        _ => (None, rest),
    };
    let (resource, name) = match rest {
        [resource] => (resource.to_string(), None),
        [resource, name] => (resource.to_string(), Some(name.to_string())),
        [resource, name, sub] => (format!("{resource}/{sub}"), Some(name.to_string())),
        _ => return Err(format!("an unexpected path {method} {target}")),
    };
    let verb = match (method, &name) {
        ("GET", Some(_)) => "get",
        ("GET", None) if watch => "watch",
        ("GET", None) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", Some(_)) => "delete",
        ("DELETE", None) => "deletecollection",
        _ => return Err(format!("an unexpected method {method} {target}")),
    };
    Ok(Call { group: group.into(), resource, verb: verb.into(), name, namespace })
}

/// One RBAC policy rule, flattened: (group, resource, verb, resourceNames).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    group: String,
    resource: String,
    verb: String,
    names: Vec<String>,
}

impl Grant {
    fn allows(&self, call: &Call) -> bool {
        self.group == call.group
            && self.resource == call.resource
            && self.verb == call.verb
            && (self.names.is_empty() || call.name.as_ref().is_some_and(|n| self.names.contains(n)))
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

/// The grants of the operator's own (Cluster)Roles in a multi-document YAML stream: every Role
/// or ClusterRole except the aggregated user roles (`aggregate-to-*` labels).
fn grants_in(yaml: &str) -> Vec<Grant> {
    let mut grants = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let Ok(value) = Value::deserialize(doc) else { continue };
        let kind = value["kind"].as_str().unwrap_or_default();
        if kind != "Role" && kind != "ClusterRole" {
            continue;
        }
        let aggregated = value["metadata"]["labels"]
            .as_object()
            .is_some_and(|labels| labels.keys().any(|k| k.starts_with("rbac.authorization.k8s.io/aggregate-to-")));
        if aggregated {
            continue;
        }
        for rule in value["rules"].as_array().cloned().unwrap_or_default() {
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    for verb in strings(&rule["verbs"]) {
                        grants.push(Grant {
                            group: group.clone(),
                            resource: resource.clone(),
                            verb,
                            names: strings(&rule["resourceNames"]),
                        });
                    }
                }
            }
        }
    }
    grants.sort();
    grants.dedup();
    grants
}

/// Gaps (calls no grant allows) and excess (grants no call used), as readable lines.
fn compare(calls: &BTreeSet<Call>, grants: &[Grant]) -> (Vec<String>, Vec<String>) {
    let gaps = calls
        .iter()
        .filter(|c| !grants.iter().any(|g| g.allows(c)))
        .map(|c| format!("{} {}.{} name={:?} ns={:?}", c.verb, c.resource, c.group, c.name, c.namespace))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let excess = grants
        .iter()
        .filter(|g| !calls.iter().any(|c| g.allows(c)))
        .map(|g| format!("{} {}.{} resourceNames={:?}", g.verb, g.resource, g.group, g.names))
        .collect();
    (gaps, excess)
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `helm template` of the chart with its default values (leader election on), or None when helm
/// is not installed (`make tools` installs it into .tools/bin).
fn chart_rendering() -> Option<String> {
    let helm = std::env::var("HELM").map(PathBuf::from).unwrap_or_else(|_| repo().join(".tools/bin/helm"));
    if !helm.exists() {
        return None;
    }
    let out = Command::new(&helm)
        .args(["template", "ecx", "charts/elasticache-export-operator", "--namespace", "ecx-system"])
        .args(["--set", &format!("leaderElection.leaseName={LEASE_NAME}")])
        .current_dir(repo())
        .env("HELM_CACHE_HOME", repo().join(".tools/helm/cache"))
        .env("HELM_CONFIG_HOME", repo().join(".tools/helm/config"))
        .env("HELM_DATA_HOME", repo().join(".tools/helm/data"))
        .output()
        .expect("run helm");
    assert!(out.status.success(), "helm template failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8(out.stdout).unwrap())
}

fn kustomize_rbac() -> String {
    ["config/rbac/role.yaml", "config/rbac/leader_election_role.yaml"]
        .iter()
        .map(|p| std::fs::read_to_string(repo().join(p)).unwrap_or_else(|e| panic!("{p}: {e}")))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// The user a real server sees the operator as in the RBAC scenario.
const OPERATOR_USER: &str = "ecx-e2e-operator";

/// Every rule of the kustomize (Cluster)Roles, as Roles in the test's namespace bound to `user`.
async fn bind_shipped_rules(bed: &Bed, user: &str) {
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let ns = bed.cluster.namespace.as_str();
    let roles: kube::Api<Role> = kube::Api::namespaced(bed.cluster.client.clone(), ns);
    let bindings: kube::Api<RoleBinding> = kube::Api::namespaced(bed.cluster.client.clone(), ns);
    for doc in serde_yaml::Deserializer::from_str(&kustomize_rbac()) {
        let Ok(value) = Value::deserialize(doc) else { continue };
        if !matches!(value["kind"].as_str(), Some("Role" | "ClusterRole")) {
            continue;
        }
        let name = value["metadata"]["name"].as_str().unwrap();
        let role: Role = serde_json::from_value(json!({"metadata": {"name": name}, "rules": value["rules"]})).unwrap();
        roles.create(&Default::default(), &role).await.unwrap_or_else(|e| panic!("create Role {name}: {e}"));
        let binding: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]
        }))
        .unwrap();
        bindings.create(&Default::default(), &binding).await.unwrap_or_else(|e| panic!("create RoleBinding {name}: {e}"));
    }
}

fn start_operator(bed: &Bed, kubeconfig: &Path, log: &Path) -> Child {
    let ns = bed.cluster.namespace.as_str();
    let mut cmd = Command::new(operator_binary());
    cmd.args(["run", "--namespaces", ns, "--s3-path-style"])
        .args(TEST_TIMING)
        .args(["--leader-elect", "--lease-namespace", ns, "--lease-name", LEASE_NAME, "--lease-duration-seconds", "15"])
        .args(["--allow-export", &format!("{ns}=ecx-rbac")])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info,ecx=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    for (k, v) in bed.emulator.aws_env() {
        cmd.env(k, v);
    }
    cmd.spawn().expect("start the operator")
}

/// SIGTERM, then wait for a graceful exit (the lease is released on the way out).
fn terminate(child: &mut Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the operator did not exit within 20 s of SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_rules_are_exactly_the_calls_the_operator_makes() {
    let bed = Bed::without_operator().await;
    let ns = bed.cluster.namespace.clone();
    let proxy = bed.cluster.kube_proxy().await;
    let kubeconfig = bed.dir.path().join("kubeconfig-recorded");
    std::fs::write(&kubeconfig, proxy.kubeconfig_yaml(&ns)).unwrap();
    if bed.cluster.is_real() {
        // A real server enforces the rules too: the operator acts as a user bound to exactly the
        // kustomize rules (as Roles in its namespace), and any gap is a 403 from the authorizer.
        bind_shipped_rules(&bed, OPERATOR_USER).await;
        proxy.impersonate(OPERATOR_USER);
        // The authorizer is really in the way: a call the rules do not allow is refused.
        let probe = bed.cluster.kube_proxy().await;
        probe.impersonate(OPERATOR_USER);
        let probe_config = bed.dir.path().join("kubeconfig-probe");
        std::fs::write(&probe_config, probe.kubeconfig_yaml(&ns)).unwrap();
        let kc = kube::config::Kubeconfig::read_from(&probe_config).unwrap();
        let client = kube::Client::try_from(kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap()).unwrap();
        let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(client, &ns);
        match secrets.list(&Default::default()).await {
            Err(kube::Error::Api(e)) if e.code == 403 => {}
            other => panic!("listing Secrets as {OPERATOR_USER} should be forbidden: {other:?}"),
        }
    }
    let log = bed.dir.path().join("operator-rbac.log");
    let logs = [log.clone()];
    let mut operator = start_operator(&bed, &kubeconfig, &log);
    // One status write meets 409 Conflict (as with a stale cache): the operator reads the object
    // afresh (GET) and decides again.
    proxy.fail_next(kube_testbed::FaultRule::new("update", "snapshotexports", 409).subresource("status"));

    // An export whose CopySnapshot is refused (the caller lacks permission): each retry repeats
    // the same Warning, which the Recorder counts into an Event series (PATCH).
    bed.emulator.seed_snapshot("rbac-src", 1);
    create_bucket(&bed.s3, "ecx-rbac", REGION, Access::FULL_ACL).await;
    bed.emulator.set_config(json!({"deny_copy_snapshot": true}));
    bed.cluster
        .apply("rbac-export", json!({"sourceSnapshotName": "rbac-src", "targetSnapshotName": "rbac-exp", "targetBucket": "ecx-rbac"}))
        .await;
    bed.cluster
        .wait_for("rbac-export", "Stalled", Duration::from_secs(60), &logs, |o| condition(o, "Stalled").is_some_and(|c| c.0 == "True"))
        .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !proxy.requests().iter().any(|r| r.method == "PATCH" && r.target.contains("/apis/events.k8s.io/")) {
        if Instant::now() > deadline {
            let seen: BTreeSet<String> =
                proxy.requests().iter().map(|r| format!("{} {}", r.method, r.target.split('?').next().unwrap_or_default())).collect();
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(8).collect();
            panic!(
                "the repeated Warning was never counted into an Event series (PATCH)\nrequests: {seen:#?}\nlog tail (newest first):\n{}",
                tail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The fix heals it.
    bed.emulator.set_config(json!({"deny_copy_snapshot": false}));
    bed.cluster.wait_for("rbac-export", "Ready", Duration::from_secs(60), &logs, |o| is_true(o, "Ready")).await;

    // An in-region copy with deletionPolicy: Delete, then its deletion (finalizer added and removed).
    bed.cluster
        .apply("rbac-copy", json!({"sourceSnapshotName": "rbac-src", "targetSnapshotName": "rbac-copy", "deletionPolicy": "Delete"}))
        .await;
    bed.cluster.wait_for("rbac-copy", "Ready", Duration::from_secs(60), &logs, |o| is_true(o, "Ready")).await;
    bed.cluster.delete("rbac-copy").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while bed.cluster.exports().get_opt("rbac-copy").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "rbac-copy was not finalized");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(bed.emulator.calls("DeleteSnapshot").len(), 1, "the copy was deleted");

    // A schedule: two runs asked for with run-now (each creates a SnapshotExport), and
    // retention (keepLast 1) deletes the first once the second succeeded.
    run_schedule_twice(&bed, &logs).await;
    terminate(&mut operator);

    let forbidden: Vec<String> =
        proxy.requests().iter().filter(|r| r.status == Some(403)).map(|r| format!("{} {}", r.method, r.target)).collect();
    assert!(forbidden.is_empty(), "the API server's RBAC authorizer refused calls under the shipped rules: {forbidden:#?}");
    let mut calls = BTreeSet::new();
    let mut problems = Vec::new();
    for r in proxy.requests() {
        match to_call(&r.method, &r.target) {
            Ok(call) => {
                calls.insert(call);
            }
            Err(e) => problems.push(e),
        }
    }
    assert!(problems.is_empty(), "requests RBAC cannot express as resource rules: {problems:#?}");
    for call in &calls {
        assert_eq!(call.namespace.as_deref(), Some(ns.as_str()), "a call outside the operator's namespaces: {call:?}");
    }
    let summary: Vec<String> =
        calls.iter().map(|c| format!("{} {}.{}", c.verb, c.resource, c.group)).collect::<BTreeSet<_>>().into_iter().collect();
    eprintln!("API calls the operator made:\n  {}", summary.join("\n  "));

    let mut sources = vec![("config/rbac (kustomize)", kustomize_rbac())];
    match chart_rendering() {
        Some(rendered) => sources.push(("helm template charts/elasticache-export-operator", rendered)),
        None => eprintln!("helm is not in .tools/bin (run `make tools`): only config/rbac is compared"),
    }
    for (source, yaml) in sources {
        let grants = grants_in(&yaml);
        assert!(!grants.is_empty(), "{source}: no rules found");
        let (gaps, excess) = compare(&calls, &grants);
        assert!(
            gaps.is_empty() && excess.is_empty(),
            "{source} does not match the calls the operator makes.\nCalls not allowed (gap): {gaps:#?}\nRules never used (excess): {excess:#?}\nCalls made: {summary:#?}"
        );
    }
}

/// Create a schedule, run it twice by annotation, and wait until retention removed the first run.
async fn run_schedule_twice(bed: &Bed, logs: &[PathBuf]) {
    use ecx::api::schedule::SnapshotExportSchedule;
    use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
    let seed = |name: &str, created: i64| {
        bed.emulator.ctl("POST", "/snapshots", Some(json!({"name": name, "region": REGION, "replication_group_id": "rbac-rg", "snapshot_source": "automated", "created": created as f64})));
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    seed("automatic.rbac-rg-1", now - 7200);
    let schedules: Api<SnapshotExportSchedule> = Api::namespaced(bed.cluster.client.clone(), &bed.cluster.namespace);
    let obj: SnapshotExportSchedule = serde_json::from_value(json!({
        "apiVersion": "elasticache-export.io/v1alpha1", "kind": "SnapshotExportSchedule",
        "metadata": {"name": "rbac-schedule", "namespace": bed.cluster.namespace},
        "spec": {"schedule": "0 3 1 1 *", "source": {"replicationGroupId": "rbac-rg"}, "template": {"targetBucket": "ecx-rbac"}, "retention": {"keepLast": 1}},
    }))
    .unwrap();
    schedules.create(&PostParams::default(), &obj).await.unwrap();
    let runs = || async {
        bed.cluster.exports().list(&ListParams::default().labels("elasticache-export.io/schedule=rbac-schedule")).await.unwrap().items
    };
    type Done = Box<dyn Fn(&[ecx::api::SnapshotExport]) -> bool>;
    let wait = |what: &'static str, done: Done| async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let items = runs().await;
            if done(&items) {
                return;
            }
            if Instant::now() > deadline {
                let tail: Vec<String> = logs.iter().map(|p| std::fs::read_to_string(p).unwrap_or_default()).collect();
                panic!(
                    "schedule: {what} did not happen; runs: {:?}\n{}",
                    items.iter().map(|r| r.metadata.name.clone()).collect::<Vec<_>>(),
                    tail.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let completed = |r: &ecx::api::SnapshotExport| r.status.as_ref().and_then(|s| s.phase) == Some(ecx::api::Phase::Completed);
    let annotate = |v: &str| json!({"metadata": {"annotations": {"elasticache-export.io/run-now": v}}});
    schedules.patch("rbac-schedule", &PatchParams::default(), &Patch::Merge(annotate("1"))).await.unwrap();
    wait("the first run", Box::new(move |items| items.len() == 1 && items.iter().all(completed))).await;
    seed("automatic.rbac-rg-2", now - 3600);
    schedules.patch("rbac-schedule", &PatchParams::default(), &Patch::Merge(annotate("2"))).await.unwrap();
    wait(
        "retention after the second run",
        Box::new(move |items| {
            items.len() == 1 && items.iter().all(completed) && items[0].spec.source_snapshot_name == "automatic.rbac-rg-2"
        }),
    )
    .await;
}

#[test]
fn request_lines_map_to_rbac_requests() {
    let c = to_call("GET", "/apis/elasticache-export.io/v1alpha1/namespaces/a/snapshotexports?watch=true&resourceVersion=1").unwrap();
    assert_eq!((c.group.as_str(), c.resource.as_str(), c.verb.as_str()), ("elasticache-export.io", "snapshotexports", "watch"));
    let c = to_call("PUT", "/apis/elasticache-export.io/v1alpha1/namespaces/a/snapshotexports/x/status").unwrap();
    assert_eq!((c.resource.as_str(), c.verb.as_str(), c.name.as_deref()), ("snapshotexports/status", "update", Some("x")));
    let c = to_call("GET", "/apis/coordination.k8s.io/v1/namespaces/a/leases/l").unwrap();
    assert_eq!((c.verb.as_str(), c.name.as_deref(), c.namespace.as_deref()), ("get", Some("l"), Some("a")));
    let c = to_call("GET", "/api/v1/namespaces/a").unwrap();
    assert_eq!((c.group.as_str(), c.resource.as_str(), c.verb.as_str()), ("", "namespaces", "get"));
    assert!(to_call("GET", "/version").is_err());
    let g = Grant { group: "coordination.k8s.io".into(), resource: "leases".into(), verb: "get".into(), names: vec!["l".into()] };
    assert!(g.allows(&to_call("GET", "/apis/coordination.k8s.io/v1/namespaces/a/leases/l").unwrap()));
    assert!(!g.allows(&to_call("GET", "/apis/coordination.k8s.io/v1/namespaces/a/leases/other").unwrap()));
}

/// The Deployment's command line and export policy in each chart rendering (default and `ci/`
/// values) and in the kustomize build are accepted by this operator binary: no unknown flag, no
/// bad value, a policy file it can parse. Skipped without helm (`make tools`).
#[test]
fn packaged_command_lines_and_policies_are_accepted_by_the_binary() {
    let helm = repo().join(".tools/bin/helm");
    let kubectl = repo().join(".tools/bin/kubectl");
    if !helm.exists() || !kubectl.exists() {
        eprintln!("skipped: helm and kubectl are not in .tools/bin (run `make tools`)");
        return;
    }
    let run = |cmd: &Path, args: &[&str]| -> String {
        let out = Command::new(cmd)
            .args(args)
            .current_dir(repo())
            .env("HELM_CACHE_HOME", repo().join(".tools/helm/cache"))
            .env("HELM_CONFIG_HOME", repo().join(".tools/helm/config"))
            .env("HELM_DATA_HOME", repo().join(".tools/helm/data"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{} {args:?}: {}", cmd.display(), String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let chart = "charts/elasticache-export-operator";
    let mut renderings = vec![("chart defaults".to_string(), run(&helm, &["template", "ecx", chart]))];
    for entry in std::fs::read_dir(repo().join(chart).join("ci")).unwrap() {
        let path = entry.unwrap().path();
        let values = path.to_string_lossy().to_string();
        renderings.push((format!("chart with {}", path.display()), run(&helm, &["template", "ecx", chart, "-f", &values])));
    }
    renderings.push(("config/default".to_string(), run(&kubectl, &["kustomize", "config/default"])));
    for (name, yaml) in renderings {
        let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&yaml).filter_map(|d| Value::deserialize(d).ok()).collect();
        let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap_or_else(|| panic!("{name}: no Deployment"));
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let command = strings(&container["command"]);
        assert_eq!(command, ["/elasticache-export-operator"], "{name}: command");
        let args = strings(&container["args"]);
        assert_eq!(args.first().map(String::as_str), Some("run"), "{name}: args start with run");
        // Parsing happens before anything else: with a policy file that does not exist and no
        // Kubernetes API the binary stops with an error, but not with a usage error (exit 2).
        let out = Command::new(operator_binary())
            .args(&args)
            .env_clear()
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .env("AWS_REGION", "us-east-1")
            .env("POD_NAMESPACE", "ecx")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(2), "{name}: the binary refuses its arguments {args:?}:\n{stderr}");
        assert!(!stderr.contains("unexpected argument") && !stderr.contains("invalid value"), "{name}: {stderr}");
        for doc in docs.iter().filter(|d| d["kind"] == "ConfigMap") {
            if let Some(text) = doc["data"]["policy.yaml"].as_str() {
                let policy =
                    ecx::safety::policy::ExportPolicy::parse(text).unwrap_or_else(|e| panic!("{name}: export policy: {e}\n{text}"));
                policy.validate().unwrap_or_else(|e| panic!("{name}: export policy: {e}\n{text}"));
            }
        }
    }
}
