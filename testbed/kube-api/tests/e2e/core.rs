//! Verbs on built-in resources: create/get/list/update/patch/delete, selectors, namespaces.

use crate::common::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::json;

#[tokio::test]
async fn namespaces_exist_and_missing_namespace_is_404() {
    let bed = start().await;
    let nss: Api<Namespace> = Api::all(bed.client.clone());
    let names: Vec<String> = nss.list(&ListParams::default()).await.unwrap().iter().map(|n| n.name_any()).collect();
    assert!(names.contains(&"default".to_string()) && names.contains(&"kube-system".to_string()));
    let ns = nss.get("default").await.unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Active"));

    let leases: Api<Lease> = Api::namespaced(bed.client.clone(), "nope");
    let e = api_err(leases.create(&PostParams::default(), &lease("l", "a")).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    assert!(e.message.contains("namespaces \"nope\" not found"), "{}", e.message);

    // create the namespace, then it works; deleting the namespace removes its content
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "nope"}})).unwrap();
    nss.create(&PostParams::default(), &ns).await.unwrap();
    leases.create(&PostParams::default(), &lease("l", "a")).await.unwrap();
    nss.delete("nope", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_err(leases.get("l").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn create_get_list_update_and_stale_resource_version() {
    let bed = start().await;
    let leases: Api<Lease> = Api::default_namespaced(bed.client.clone());
    let created = leases.create(&PostParams::default(), &lease("one", "a")).await.unwrap();
    let md = &created.metadata;
    assert_eq!(md.namespace.as_deref(), Some("default"));
    assert_eq!(md.generation, Some(1));
    assert!(md.uid.as_ref().is_some_and(|u| u.len() == 36));
    assert!(md.creation_timestamp.is_some());
    let rv1: u64 = md.resource_version.as_ref().unwrap().parse().unwrap();

    // AlreadyExists
    let e = api_err(leases.create(&PostParams::default(), &lease("one", "a")).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));

    // generateName
    let mut g = lease("", "a");
    g.metadata.name = None;
    g.metadata.generate_name = Some("gen-".into());
    let gen = leases.create(&PostParams::default(), &g).await.unwrap();
    assert!(gen.name_any().starts_with("gen-") && gen.name_any().len() == 9);

    // get + list with resourceVersion
    assert_eq!(leases.get("one").await.unwrap().spec.unwrap().holder_identity.as_deref(), Some("a"));
    let list = leases.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 2);
    let list_rv: u64 = list.metadata.resource_version.unwrap().parse().unwrap();
    assert!(list_rv > rv1);

    // paging
    let page = leases.list(&ListParams::default().limit(1)).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let token = page.metadata.continue_.clone().expect("continue token");
    let page2 = leases.list(&ListParams::default().limit(1).continue_token(&token)).await.unwrap();
    assert_eq!(page2.items.len(), 1);
    assert_ne!(page.items[0].name_any(), page2.items[0].name_any());

    // update with the current RV works and bumps RV + generation (spec changed)
    let mut cur = leases.get("one").await.unwrap();
    cur.spec.as_mut().unwrap().holder_identity = Some("b".into());
    let updated = leases.replace("one", &PostParams::default(), &cur).await.unwrap();
    assert!(updated.resource_version().unwrap().parse::<u64>().unwrap() > rv1);
    assert_eq!(updated.metadata.generation, Some(2));

    // stale RV → 409 Conflict
    let e = api_err(leases.replace("one", &PostParams::default(), &cur).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert!(e.message.contains("the object has been modified"), "{}", e.message);

    // missing RV → unconditional
    cur.metadata.resource_version = None;
    cur.spec.as_mut().unwrap().holder_identity = Some("c".into());
    let u = leases.replace("one", &PostParams::default(), &cur).await.unwrap();
    assert_eq!(u.spec.as_ref().unwrap().holder_identity.as_deref(), Some("c"));

    // a no-op update keeps the resourceVersion
    let same = leases.replace("one", &PostParams::default(), &leases.get("one").await.unwrap()).await.unwrap();
    assert_eq!(same.resource_version(), u.resource_version());

    // 404s
    assert_eq!(api_err(leases.get("missing").await.unwrap_err()).code, 404);
    let e = api_err(leases.replace("missing", &PostParams::default(), &lease("missing", "x")).await.unwrap_err());
    assert_eq!(e.code, 404);
}

#[tokio::test]
async fn label_and_field_selectors() {
    let bed = start().await;
    let leases: Api<Lease> = Api::default_namespaced(bed.client.clone());
    for (name, labels) in [("a", json!({"app": "x", "tier": "db"})), ("b", json!({"app": "y"})), ("c", json!({"tier": "web"}))] {
        let mut l = lease(name, "h");
        l.metadata.labels = Some(serde_json::from_value(labels).unwrap());
        leases.create(&PostParams::default(), &l).await.unwrap();
    }
    let names = |sel: &'static str| {
        let leases = leases.clone();
        async move {
            let mut n: Vec<String> = leases.list(&ListParams::default().labels(sel)).await.unwrap().iter().map(|l| l.name_any()).collect();
            n.sort();
            n.join(",")
        }
    };
    assert_eq!(names("app=x").await, "a");
    assert_eq!(names("app==y").await, "b");
    assert_eq!(names("app!=x").await, "b,c");
    assert_eq!(names("app in (x,y)").await, "a,b");
    assert_eq!(names("app notin (x)").await, "b,c");
    assert_eq!(names("tier").await, "a,c");
    assert_eq!(names("!tier").await, "b");
    assert_eq!(names("app=x,tier=db").await, "a");
    let by_name = leases.list(&ListParams::default().fields("metadata.name=b")).await.unwrap();
    assert_eq!(by_name.items.len(), 1);
    let all: Api<Lease> = Api::all(bed.client.clone());
    assert_eq!(all.list(&ListParams::default().fields("metadata.namespace=default")).await.unwrap().items.len(), 3);
    assert_eq!(all.list(&ListParams::default().fields("metadata.namespace=other")).await.unwrap().items.len(), 0);
}

#[tokio::test]
async fn merge_json_and_strategic_patches() {
    let bed = start().await;
    let leases: Api<Lease> = Api::default_namespaced(bed.client.clone());
    leases.create(&PostParams::default(), &lease("p", "a")).await.unwrap();
    let pp = PatchParams::default();

    let l =
        leases.patch("p", &pp, &Patch::Merge(json!({"metadata": {"labels": {"k": "v"}}, "spec": {"holderIdentity": "m"}}))).await.unwrap();
    assert_eq!(l.spec.as_ref().unwrap().holder_identity.as_deref(), Some("m"));
    assert_eq!(l.labels().get("k").map(String::as_str), Some("v"));
    assert_eq!(l.metadata.generation, Some(2), "spec change bumps generation");

    // merge patch null removes
    let l = leases.patch("p", &pp, &Patch::Merge(json!({"spec": {"leaseDurationSeconds": null}}))).await.unwrap();
    assert_eq!(l.spec.as_ref().unwrap().lease_duration_seconds, None);

    // strategic merge patch behaves like merge patch here
    let l = leases.patch("p", &pp, &Patch::Strategic(json!({"spec": {"leaseTransitions": 3}}))).await.unwrap();
    assert_eq!(l.spec.as_ref().unwrap().lease_transitions, Some(3));
    assert_eq!(l.spec.as_ref().unwrap().holder_identity.as_deref(), Some("m"));

    // RFC 6902 with a passing test
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/holderIdentity", "value": "m"},
        {"op": "replace", "path": "/spec/holderIdentity", "value": "j"},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x/y"]}
    ]))
    .unwrap();
    let l = leases.patch("p", &pp, &Patch::Json::<()>(patch)).await.unwrap();
    assert_eq!(l.spec.as_ref().unwrap().holder_identity.as_deref(), Some("j"));
    assert_eq!(l.finalizers(), &["x/y".to_string()]);

    // failing test → 422, nothing changed
    let patch: json_patch::Patch = serde_json::from_value(json!([{"op": "test", "path": "/spec/holderIdentity", "value": "zzz"},
                                       {"op": "replace", "path": "/spec/holderIdentity", "value": "bad"}]))
    .unwrap();
    let e = api_err(leases.patch("p", &pp, &Patch::Json::<()>(patch)).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert_eq!(leases.get("p").await.unwrap().spec.unwrap().holder_identity.as_deref(), Some("j"));

    // resourceVersion in a merge patch is a precondition
    let cur_rv = leases.get("p").await.unwrap().resource_version().unwrap();
    let e = api_err(
        leases
            .patch("p", &pp, &Patch::Merge(json!({"metadata": {"resourceVersion": "1"}, "spec": {"holderIdentity": "q"}})))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    leases.patch("p", &pp, &Patch::Merge(json!({"metadata": {"resourceVersion": cur_rv}, "spec": {"holderIdentity": "q"}}))).await.unwrap();
    // another object's uid is refused (it is immutable): 422 on metadata.uid, nothing changed
    let e = api_err(
        leases
            .patch("p", &pp, &Patch::Merge(json!({"metadata": {"uid": "not-this-one"}, "spec": {"holderIdentity": "r"}})))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert!(e.message.contains("metadata.uid") && e.message.contains("field is immutable"), "{}", e.message);
    assert_eq!(leases.get("p").await.unwrap().spec.unwrap().holder_identity.as_deref(), Some("q"));
    let uid = leases.get("p").await.unwrap().uid().unwrap();
    leases.patch("p", &pp, &Patch::Merge(json!({"metadata": {"uid": uid}, "spec": {"holderIdentity": "r"}}))).await.unwrap();
    // patching a missing object
    assert_eq!(api_err(leases.patch("nope", &pp, &Patch::Merge(json!({}))).await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn server_side_apply_conflicts_and_force() {
    let bed = start().await;
    let leases: Api<Lease> = Api::default_namespaced(bed.client.clone());
    let cfg = |holder: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "ssa"},
               "spec": {"holderIdentity": holder, "leaseDurationSeconds": 5}})
    };
    // apply to a missing object creates it
    let l = leases.patch("ssa", &PatchParams::apply("mgr-a"), &Patch::Apply(cfg("a"))).await.unwrap();
    assert_eq!(l.spec.as_ref().unwrap().holder_identity.as_deref(), Some("a"));
    let mf = l.metadata.managed_fields.clone().unwrap();
    assert_eq!(mf.len(), 1);
    assert_eq!(mf[0].manager.as_deref(), Some("mgr-a"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));

    // re-applying the same config by the same manager is fine (and a no-op)
    let again = leases.patch("ssa", &PatchParams::apply("mgr-a"), &Patch::Apply(cfg("a"))).await.unwrap();
    assert_eq!(again.resource_version(), l.resource_version());

    // another manager applying the same value shares ownership: no conflict
    leases
        .patch(
            "ssa",
            &PatchParams::apply("mgr-c"),
            &Patch::Apply(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "spec": {"leaseDurationSeconds": 5}})),
        )
        .await
        .unwrap();

    // a different value for a field owned by mgr-a → 409 listing the field
    let e = api_err(leases.patch("ssa", &PatchParams::apply("mgr-b"), &Patch::Apply(cfg("b"))).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert!(e.message.contains("conflict with \"mgr-a\""), "{}", e.message);
    assert!(e.message.contains(".spec.holderIdentity"), "{}", e.message);
    assert!(!e.message.contains("leaseDurationSeconds"), "same value is not a conflict: {}", e.message);
    let causes = e.details.unwrap().causes;
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].field, ".spec.holderIdentity");

    // force moves ownership
    let l = leases.patch("ssa", &PatchParams::apply("mgr-b").force(), &Patch::Apply(cfg("b"))).await.unwrap();
    assert_eq!(l.spec.as_ref().unwrap().holder_identity.as_deref(), Some("b"));
    let owners = |l: &Lease, field: &str| -> Vec<String> {
        l.metadata
            .managed_fields
            .iter()
            .flatten()
            .filter(|m| m.fields_v1.as_ref().is_some_and(|f| f.0.pointer(&format!("/f:spec/f:{field}")).is_some()))
            .map(|m| m.manager.clone().unwrap())
            .collect()
    };
    assert_eq!(owners(&l, "holderIdentity"), vec!["mgr-b".to_string()]);

    // now mgr-a conflicts
    let e = api_err(leases.patch("ssa", &PatchParams::apply("mgr-a"), &Patch::Apply(cfg("a"))).await.unwrap_err());
    assert_eq!(e.code, 409);
    assert!(e.message.contains("mgr-b"), "{}", e.message);

    // an update (non-apply) by another manager takes ownership; the applier then conflicts with it
    leases
        .patch(
            "ssa",
            &PatchParams { field_manager: Some("editor".into()), ..Default::default() },
            &Patch::Merge(json!({"spec": {"holderIdentity": "edited"}})),
        )
        .await
        .unwrap();
    let e = api_err(leases.patch("ssa", &PatchParams::apply("mgr-b"), &Patch::Apply(cfg("b"))).await.unwrap_err());
    assert!(e.message.contains("conflict with \"editor\""), "{}", e.message);

    // a field no longer in a manager's apply config (and owned by nobody else) is removed
    leases
        .patch(
            "own",
            &PatchParams::apply("solo"),
            &Patch::Apply(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "spec": {"holderIdentity": "s", "leaseTransitions": 1}})),
        )
        .await
        .unwrap();
    let l = leases
        .patch(
            "own",
            &PatchParams::apply("solo"),
            &Patch::Apply(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "spec": {"holderIdentity": "s"}})),
        )
        .await
        .unwrap();
    assert_eq!(l.spec.unwrap().lease_transitions, None);

    // apply without fieldManager is rejected like the real server
    let e = api_err(leases.patch("own", &PatchParams::default(), &Patch::Apply(cfg("x"))).await.unwrap_err());
    assert_eq!(e.code, 422);
}

#[tokio::test]
async fn delete_and_propagation_policy() {
    let bed = start().await;
    let leases: Api<Lease> = Api::default_namespaced(bed.client.clone());
    leases.create(&PostParams::default(), &lease("d", "a")).await.unwrap();
    let r = leases.delete("d", &DeleteParams::background()).await.unwrap();
    assert!(r.is_right(), "immediate deletion answers a Success Status");
    assert_eq!(api_err(leases.get("d").await.unwrap_err()).code, 404);
    let e = api_err(leases.delete("d", &DeleteParams::foreground()).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));

    // delete preconditions
    let l = leases.create(&PostParams::default(), &lease("d", "a")).await.unwrap();
    let e = api_err(
        leases
            .delete("d", &DeleteParams::default().preconditions(kube::api::Preconditions { resource_version: Some("1".into()), uid: None }))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 409);
    leases
        .delete(
            "d",
            &DeleteParams::default().preconditions(kube::api::Preconditions { resource_version: l.resource_version(), uid: l.uid() }),
        )
        .await
        .unwrap();

    // deletecollection with a selector
    for n in ["x1", "x2"] {
        let mut l = lease(n, "a");
        l.metadata.labels = Some([("grp".to_string(), "x".to_string())].into());
        leases.create(&PostParams::default(), &l).await.unwrap();
    }
    leases.create(&PostParams::default(), &lease("keep", "a")).await.unwrap();
    leases.delete_collection(&DeleteParams::default(), &ListParams::default().labels("grp=x")).await.unwrap();
    let left: Vec<String> = leases.list(&ListParams::default()).await.unwrap().iter().map(|l| l.name_any()).collect();
    assert_eq!(left, vec!["keep".to_string()]);
}
