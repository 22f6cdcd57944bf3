//! Fault hooks and stats, in-process and over HTTP.

use crate::common::*;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube_testbed::FaultRule;
use serde_json::{json, Value};

#[tokio::test]
async fn fail_next_409_500_429_then_recover() {
    let bed = start().await;
    let leases: Api<Lease> = Api::default_namespaced(bed.client.clone());
    leases.create(&PostParams::default(), &lease("f", "a")).await.unwrap();
    let faults = bed.server.faults();

    faults.fail_next(FaultRule::new("update", "leases", 409));
    let cur = leases.get("f").await.unwrap();
    let e = api_err(leases.replace("f", &PostParams::default(), &cur).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    leases.replace("f", &PostParams::default(), &cur).await.unwrap();

    faults.fail_next(FaultRule::new("get", "leases", 500).count(2));
    assert_eq!(api_err(leases.get("f").await.unwrap_err()).reason, "InternalError");
    assert_eq!(api_err(leases.get("f").await.unwrap_err()).code, 500);
    leases.get("f").await.unwrap();

    // 429 (with Retry-After: 1): kube's default client retries it transparently...
    faults.fail_next(FaultRule::new("list", "*", 429));
    leases.list(&ListParams::default()).await.unwrap();
    assert_eq!(bed.server.stats().count("list", "leases"), 2);
    // ...a client without retries sees it
    faults.fail_next(FaultRule::new("list", "*", 429));
    let no_retry: Api<Lease> = Api::default_namespaced(client_without_retry(&bed).await);
    let e = api_err(no_retry.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (429, "TooManyRequests"));
    leases.list(&ListParams::default()).await.unwrap();

    // subresource targeting: a status rule doesn't hit the main resource
    install_widget_crd(&bed.client).await;
    let w = widgets(&bed.client, "default");
    w.create(&PostParams::default(), &widget("x", json!({"bucket": "abc"}))).await.unwrap();
    faults.fail_next(FaultRule::new("patch", "widgets", 409).subresource("status"));
    w.patch("x", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 1}}))).await.unwrap();
    let e = api_err(w.patch_status("x", &PatchParams::default(), &Patch::Merge(json!({"status": {"phase": "A"}}))).await.unwrap_err());
    assert_eq!(e.code, 409);
    w.patch_status("x", &PatchParams::default(), &Patch::Merge(json!({"status": {"phase": "A"}}))).await.unwrap();

    // `apply` targets only server-side-apply patches
    faults.fail_next(FaultRule::new("apply", "leases", 500));
    leases.patch("f", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}}))).await.unwrap();
    let cfg = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"labels": {"x": "y"}}});
    let e = api_err(leases.patch("f", &PatchParams::apply("m"), &Patch::Apply(&cfg)).await.unwrap_err());
    assert_eq!(e.code, 500);
    leases.patch("f", &PatchParams::apply("m"), &Patch::Apply(&cfg)).await.unwrap();

    // clear removes pending rules
    faults.fail_next(FaultRule::new("get", "leases", 500).count(100));
    faults.clear();
    leases.get("f").await.unwrap();

    let st = bed.server.stats();
    assert_eq!(st.injected_faults, 7);
    assert_eq!(st.count("update", "leases"), 2);
    assert_eq!(st.count("patch", "widgets/status"), 2);
    assert_eq!(st.writes("leases"), 6);
    assert_eq!(st.writes("widgets"), 4);
}

#[tokio::test]
async fn fail_rate_is_seeded_and_partial() {
    let bed = start().await;
    let leases: Api<Lease> = Api::default_namespaced(bed.client.clone());
    leases.create(&PostParams::default(), &lease("r", "a")).await.unwrap();
    let run = |seed: u64| {
        let leases = leases.clone();
        let faults = bed.server.faults();
        async move {
            faults.clear();
            faults.fail_rate(FaultRule::new("get", "leases", 500), 0.5, seed);
            let mut pattern = Vec::new();
            for _ in 0..40 {
                pattern.push(leases.get("r").await.is_err());
            }
            faults.clear();
            pattern
        }
    };
    let a = run(7).await;
    let b = run(7).await;
    assert_eq!(a, b, "same seed, same failures");
    let fails = a.iter().filter(|f| **f).count();
    assert!((8..=32).contains(&fails), "about half fail: {fails}");
}

#[tokio::test]
async fn http_control_endpoints() {
    let bed = start().await;
    let leases: Api<Lease> = Api::default_namespaced(bed.client.clone());
    leases.create(&PostParams::default(), &lease("h", "a")).await.unwrap();
    raw(&bed.client, "POST", "/_testbed/faults", Some(json!({"verb": "get", "resource": "leases", "status": 500, "count": 1}))).await;
    assert_eq!(api_err(leases.get("h").await.unwrap_err()).code, 500);
    leases.get("h").await.unwrap();
    raw(&bed.client, "POST", "/_testbed/faults", Some(json!({"verb": "get", "resource": "leases", "status": 500, "rate": 1.0, "seed": 1})))
        .await;
    assert_eq!(api_err(leases.get("h").await.unwrap_err()).code, 500);
    raw(&bed.client, "DELETE", "/_testbed/faults", None).await;
    leases.get("h").await.unwrap();

    let stats: Value = serde_json::from_str(&raw(&bed.client, "GET", "/_testbed/stats", None).await).unwrap();
    assert_eq!(stats["requests"]["leases"]["get"], 4);
    assert_eq!(stats["requests"]["leases"]["create"], 1);
    assert_eq!(stats["injected_faults"], 2);

    use futures::StreamExt;
    let mut s = leases.watch(&kube::api::WatchParams::default(), "0").await.unwrap().boxed();
    use futures::TryStreamExt;
    s.try_next().await.unwrap(); // the ADDED for "h"
    raw(&bed.client, "POST", "/_testbed/faults/drop-watches", None).await;
    assert!(tokio::time::timeout(std::time::Duration::from_secs(2), s.try_next()).await.unwrap().unwrap().is_none());
    raw(&bed.client, "DELETE", "/_testbed/stats", None).await;
    assert_eq!(bed.server.stats().total(), 0);
}
