//! CRD registration, schema/CEL admission, defaulting, pruning, status subresource,
//! generation and finalizers.

use crate::common::*;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::ResourceExt;
use serde_json::{json, Value};

#[tokio::test]
async fn crd_registration_discovery_defaults_and_pruning() {
    let bed = start().await;
    let crd = install_widget_crd(&bed.client).await;
    let conds = crd.pointer("/status/conditions").unwrap().as_array().unwrap();
    assert!(conds.iter().any(|c| c["type"] == "Established" && c["status"] == "True"));
    assert_eq!(crd.pointer("/status/acceptedNames/kind").unwrap(), "Widget");

    // discovery
    let rl: Value = serde_json::from_str(&raw(&bed.client, "GET", "/apis/example.test/v1", None).await).unwrap();
    let res = rl["resources"].as_array().unwrap();
    let w = res.iter().find(|r| r["name"] == "widgets").unwrap();
    assert_eq!(w["shortNames"], json!(["wd"]));
    assert_eq!(w["kind"], "Widget");
    assert!(res.iter().any(|r| r["name"] == "widgets/status"));
    let groups: Value = serde_json::from_str(&raw(&bed.client, "GET", "/apis", None).await).unwrap();
    assert!(groups["groups"].as_array().unwrap().iter().any(|g| g["name"] == "example.test"));
    // kube's own discovery works against it
    let discovery = kube::discovery::Discovery::new(bed.client.clone()).run().await.unwrap();
    assert!(discovery.has_group("example.test"));

    let api = widgets(&bed.client, "default");
    let mut w = widget("w1", json!({"bucket": "my-bucket", "unknownField": 1, "extra": {"free": {"x": 1}}}));
    w.data["status"] = json!({"phase": "Ignored"});
    w.data["topLevelJunk"] = json!(true);
    let created = api.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(created.data["spec"]["mode"], "Fast", "default applied");
    assert!(created.data["spec"].get("unknownField").is_none(), "unknown field pruned");
    assert!(created.data.get("topLevelJunk").is_none(), "unknown top-level field pruned");
    assert_eq!(created.data["spec"]["extra"]["free"]["x"], 1, "preserve-unknown-fields kept");
    assert!(created.data.get("status").is_none(), "status is ignored on create");

    // all-namespaces list/watch path
    let all: Api<kube::api::DynamicObject> = Api::all_with(bed.client.clone(), &widget_resource());
    assert_eq!(all.list(&ListParams::default()).await.unwrap().items.len(), 1);

    // deleting the CRD removes the kind and its objects
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(bed.client.clone());
    assert!(crds.get("widgets.example.test").await.is_ok());
    crds.delete("widgets.example.test", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_err(api.get("w1").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn crd_schema_rejections_are_422_with_causes() {
    let bed = start().await;
    install_widget_crd(&bed.client).await;
    let api = widgets(&bed.client, "default");
    let pp = PostParams::default();

    let e = api_err(api.create(&pp, &widget("bad", json!({"mode": "Fast"}))).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    // The CRD has CEL rules, which a missing field keeps from running (as kube-apiserver says).
    assert_eq!(
        e.message,
        "Widget.example.test \"bad\" is invalid: [spec.bucket: Required value, <nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation]"
    );
    assert_eq!(e.details.as_ref().unwrap().causes[0].field, "spec.bucket");

    let e = api_err(api.create(&pp, &widget("bad", json!({"bucket": "ab"}))).await.unwrap_err());
    assert!(e.message.contains("spec.bucket: Invalid value: \"ab\": spec.bucket in body should be at least 3 chars long"), "{}", e.message);

    let e = api_err(api.create(&pp, &widget("bad", json!({"bucket": "abc", "mode": "Warp"}))).await.unwrap_err());
    assert!(e.message.contains("spec.mode: Unsupported value: \"Warp\""), "{}", e.message);

    let e = api_err(api.create(&pp, &widget("bad", json!({"bucket": "abc", "replicas": "two"}))).await.unwrap_err());
    assert!(e.message.contains("spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer"), "{}", e.message);

    let e = api_err(api.create(&pp, &widget("bad", json!({"bucket": "abc", "replicas": -1}))).await.unwrap_err());
    assert!(e.message.contains("should be greater than or equal to 0"), "{}", e.message);

    let e = api_err(api.create(&pp, &widget("bad", json!({"bucket": "abc", "tags": ["a", "b", "c", "d"]}))).await.unwrap_err());
    assert!(e.message.contains("spec.tags: Too many: 4: must have at most 3 items"), "{}", e.message);

    let e = api_err(
        api.create(&pp, &widget("bad", json!({"bucket": "abc", "items": [{"name": "a"}, {"name": "a", "v": 1}]}))).await.unwrap_err(),
    );
    assert!(e.message.contains("spec.items[1]: Duplicate value"), "{}", e.message);

    // several errors at once → bracketed list, one cause each
    let e = api_err(api.create(&pp, &widget("bad", json!({"bucket": "ab", "mode": "Warp"}))).await.unwrap_err());
    assert_eq!(e.details.unwrap().causes.len(), 2);
    assert!(e.message.contains("is invalid: ["), "{}", e.message);

    // status writes are validated too
    api.create(&pp, &widget("good", json!({"bucket": "abc"}))).await.unwrap();
    let e = api_err(
        api.patch_status("good", &PatchParams::default(), &Patch::Merge(json!({"status": {"observedGeneration": "x"}}))).await.unwrap_err(),
    );
    assert_eq!(e.code, 422);
    assert!(api.get("good").await.unwrap().data.get("status").is_none());
}

#[tokio::test]
async fn crd_cel_rules_and_transition_rules() {
    let bed = start().await;
    install_widget_crd(&bed.client).await;
    let api = widgets(&bed.client, "default");
    let e = api_err(api.create(&PostParams::default(), &widget("c", json!({"bucket": "abc", "replicas": 11}))).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert_eq!(e.message, "Widget.example.test \"c\" is invalid: spec.replicas: Invalid value: \"integer\": replicas must be at most 10");
    assert_eq!(e.details.unwrap().causes[0].field, "spec.replicas");

    api.create(&PostParams::default(), &widget("c", json!({"bucket": "abc", "replicas": 10}))).await.unwrap();
    // oldSelf transition rule on update
    let e = api_err(api.patch("c", &PatchParams::default(), &Patch::Merge(json!({"spec": {"bucket": "other"}}))).await.unwrap_err());
    assert_eq!(e.code, 422);
    assert!(e.message.contains("spec.bucket: Invalid value: \"string\": bucket is immutable"), "{}", e.message);
    // a rule on the root object (transition rule on the whole spec): nil field path like the apiserver
    let mut crd = widget_crd();
    crd["metadata"]["name"] = json!("frozens.example.test");
    crd["spec"]["names"] = json!({"plural": "frozens", "kind": "Frozen"});
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["x-kubernetes-validations"] =
        json!([{"rule": "self.spec == oldSelf.spec", "message": "spec is immutable"}]);
    let crds: Api<kube::api::DynamicObject> = Api::all_with(
        bed.client.clone(),
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    crds.create(&PostParams::default(), &serde_json::from_value(crd).unwrap()).await.unwrap();
    let frozen: Api<kube::api::DynamicObject> = Api::default_namespaced_with(
        bed.client.clone(),
        &kube::api::ApiResource::from_gvk_with_plural(&kube::api::GroupVersionKind::gvk("example.test", "v1", "Frozen"), "frozens"),
    );
    let mut f = widget("ice", json!({"bucket": "abc"}));
    f.types = Some(kube::api::TypeMeta { api_version: "example.test/v1".into(), kind: "Frozen".into() });
    frozen.create(&PostParams::default(), &f).await.unwrap();
    let e = api_err(frozen.patch("ice", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 1}}))).await.unwrap_err());
    assert_eq!(e.message, "Frozen.example.test \"ice\" is invalid: <nil>: Invalid value: \"object\": spec is immutable");
    frozen.patch("ice", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"ok": "yes"}}}))).await.unwrap();

    // other changes pass
    let w = api.patch("c", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 2}}))).await.unwrap();
    assert_eq!(w.data["spec"]["replicas"], 2);

    // a CRD whose CEL rule doesn't compile is rejected
    let mut crd = widget_crd();
    crd["metadata"]["name"] = json!("gadgets.example.test");
    crd["spec"]["names"] = json!({"plural": "gadgets", "kind": "Gadget"});
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] =
        json!([{"rule": "self.replicas >>>> 1"}]);
    let crds: Api<kube::api::DynamicObject> = Api::all_with(
        bed.client.clone(),
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let e = api_err(crds.create(&PostParams::default(), &serde_json::from_value(crd).unwrap()).await.unwrap_err());
    assert_eq!(e.code, 422);
}

#[tokio::test]
async fn status_subresource_and_generation_rules() {
    let bed = start().await;
    install_widget_crd(&bed.client).await;
    let api = widgets(&bed.client, "default");
    let w = api.create(&PostParams::default(), &widget("s", json!({"bucket": "abc"}))).await.unwrap();
    assert_eq!(w.metadata.generation, Some(1));

    // status write changes only status, generation unchanged
    let s = api
        .patch_status(
            "s",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}, "status": {"phase": "Running", "observedGeneration": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(s.data["status"]["phase"], "Running");
    assert!(s.data["spec"].get("replicas").is_none(), "status write ignores spec");
    assert_eq!(s.metadata.generation, Some(1));

    // main-resource write ignores status changes; spec change bumps generation
    let m = api
        .patch("s", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 3}, "status": {"phase": "Hacked"}})))
        .await
        .unwrap();
    assert_eq!(m.data["status"]["phase"], "Running");
    assert_eq!(m.metadata.generation, Some(2));

    // metadata-only change: no generation bump
    let l = api
        .patch("s", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}, "annotations": {"x": "y"}}})))
        .await
        .unwrap();
    assert_eq!(l.metadata.generation, Some(2));
    assert!(l.resource_version() != m.resource_version());

    // replace_status (PUT /status) with the whole object
    let mut cur = api.get("s").await.unwrap();
    cur.data["status"] = json!({"phase": "Done", "observedGeneration": 2});
    cur.data["spec"]["replicas"] = json!(9);
    let r = api.replace_status("s", &PostParams::default(), &cur).await.unwrap();
    assert_eq!(r.data["status"]["phase"], "Done");
    assert_eq!(r.data["spec"]["replicas"], 3);
    // stale RV on status PUT → 409
    let e = api_err(api.replace_status("s", &PostParams::default(), &cur).await.unwrap_err());
    assert_eq!(e.code, 409);

    // status apply by a controller
    let a = api
        .patch_status(
            "s",
            &PatchParams::apply("ctrl").force(),
            &Patch::Apply(json!({"apiVersion": "example.test/v1", "kind": "Widget", "status": {"phase": "Applied"}})),
        )
        .await
        .unwrap();
    assert_eq!(a.data["status"]["phase"], "Applied");
    assert!(a
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .any(|m| m.manager.as_deref() == Some("ctrl") && m.subresource.as_deref() == Some("status")));

    // a no-op status write doesn't bump the resourceVersion
    let again = api.patch_status("s", &PatchParams::default(), &Patch::Merge(json!({"status": {"phase": "Applied"}}))).await.unwrap();
    assert_eq!(again.resource_version(), a.resource_version());
}

#[tokio::test]
async fn finalizers_and_deletion_timestamp() {
    let bed = start().await;
    install_widget_crd(&bed.client).await;
    let api = widgets(&bed.client, "default");
    let mut w = widget("f", json!({"bucket": "abc"}));
    w.metadata.finalizers = Some(vec!["example.test/cleanup".into()]);
    let created = api.create(&PostParams::default(), &w).await.unwrap();
    let rv = created.resource_version().unwrap();

    let mut stream = api.watch(&WatchParams::default(), &rv).await.unwrap().boxed();

    // delete → 200 with the object, deletionTimestamp set, generation bumped
    let r = api.delete("f", &DeleteParams::default()).await.unwrap();
    let obj = r.left().expect("object returned while finalizers remain");
    assert!(obj.metadata.deletion_timestamp.is_some());
    assert_eq!(obj.metadata.deletion_grace_period_seconds, Some(0));
    assert_eq!(obj.metadata.generation, Some(2));
    let got = api.get("f").await.unwrap();
    assert!(got.metadata.deletion_timestamp.is_some());
    // deleting again is fine and changes nothing
    let again = api.delete("f", &DeleteParams::default()).await.unwrap().left().unwrap();
    assert_eq!(again.resource_version(), got.resource_version());

    // adding a new finalizer while deleting is refused (422 Invalid, like the real apiserver's Forbidden cause)
    let e = api_err(
        api.patch("f", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": ["example.test/cleanup", "other/x"]}})))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert!(e.message.contains("Forbidden: no new finalizers can be added"), "{}", e.message);

    // removing the finalizer (like kube-runtime's finalizer helper: JSON patch test+remove) deletes it
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": "example.test/cleanup"},
        {"op": "remove", "path": "/metadata/finalizers/0"}
    ]))
    .unwrap();
    api.patch("f", &PatchParams::default(), &Patch::Json::<()>(patch)).await.unwrap();
    assert_eq!(api_err(api.get("f").await.unwrap_err()).code, 404);

    let mut kinds = vec![];
    while let Some(ev) = tokio::time::timeout(std::time::Duration::from_secs(2), stream.try_next()).await.unwrap().unwrap() {
        match ev {
            WatchEvent::Modified(_) => kinds.push("MODIFIED"),
            WatchEvent::Deleted(o) => {
                assert!(o.metadata.deletion_timestamp.is_some());
                kinds.push("DELETED");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(kinds, vec!["MODIFIED", "DELETED"]);

    // kube-runtime's finalizer add patch (test /metadata/finalizers == null on a missing field) works
    api.create(&PostParams::default(), &widget("g", json!({"bucket": "abc"}))).await.unwrap();
    let add: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["example.test/cleanup"]}
    ]))
    .unwrap();
    let g = api.patch("g", &PatchParams::default(), &Patch::Json::<()>(add)).await.unwrap();
    assert_eq!(g.finalizers(), &["example.test/cleanup".to_string()]);
}
