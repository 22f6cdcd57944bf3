//! Behaviours where the test bed once differed from a real kube-apiserver (v1.24.0, the kit in
//! `shared/k8s`), each seen there first with the same requests.

use crate::common::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

/// Leader handover: kube-lease-manager releases a Lease with a strategic merge patch that sets
/// every spec field to null, and the next leader takes it with a server-side apply (no force).
/// The real server lets it: the release removed the fields, so nobody owns them any more. The
/// bed used to give the releasing manager the emptied `spec` itself, and refused the apply with
/// `conflict with "a" ...: .spec`.
#[tokio::test]
async fn a_released_lease_can_be_applied_by_the_next_holder() {
    let bed = start().await;
    let leases: Api<Lease> = Api::default_namespaced(bed.client.clone());
    let cfg = |holder: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "handover"},
               "spec": {"holderIdentity": holder, "leaseDurationSeconds": 3,
                        "acquireTime": "2026-11-29T03:00:00.000000Z", "renewTime": "2026-11-29T03:00:00.000000Z"}})
    };
    leases.patch("handover", &PatchParams::apply("a"), &Patch::Apply(cfg("a"))).await.unwrap();
    // Held: another manager's apply conflicts, as on the real server.
    let e = api_err(leases.patch("handover", &PatchParams::apply("b"), &Patch::Apply(cfg("b"))).await.unwrap_err());
    assert_eq!(e.code, 409, "{e:?}");
    let release = json!({"spec": {"acquireTime": null, "renewTime": null, "holderIdentity": null, "leaseDurationSeconds": null}});
    let released = leases
        .patch("handover", &PatchParams { field_manager: Some("a".into()), ..Default::default() }, &Patch::Strategic(release))
        .await
        .unwrap();
    assert_eq!(released.spec.clone().unwrap_or_default(), Default::default(), "{released:?}");
    let taken = leases
        .patch("handover", &PatchParams::apply("b"), &Patch::Apply(cfg("b")))
        .await
        .expect("the next holder applies the released lease");
    assert_eq!(taken.spec.unwrap().holder_identity.as_deref(), Some("b"));
    let managers: Vec<_> = taken
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|m| (m.manager.unwrap_or_default(), m.operation.unwrap_or_default()))
        .collect();
    assert_eq!(managers, [("b".to_string(), "Apply".to_string())], "the release left no ownership behind");
}

/// `events.k8s.io/v1` limits the real server enforces on create: reason, action and
/// reportingInstance at most 128 characters, reportingController a qualified name (name part at
/// most 63 characters of `[A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]`, optional DNS prefix).
#[tokio::test]
async fn events_refuse_what_the_api_server_refuses() {
    let bed = start().await;
    let events: Api<Event> = Api::namespaced(bed.client.clone(), "default");
    let event = |name: &str, field: &str, value: &str| -> Event {
        let mut e = json!({"metadata": {"name": name}, "eventTime": "2026-11-29T03:00:00.000000Z", "type": "Warning",
            "reason": "R", "action": "Reconcile", "note": "n", "reportingController": "elasticache-export.io/operator",
            "reportingInstance": "ecx-1", "regarding": {"kind": "SnapshotExport", "namespace": "default", "name": "x"}});
        e[field] = json!(value);
        serde_json::from_value(e).unwrap()
    };
    let long = "x".repeat(129);
    let long_name = "x".repeat(64);
    for (i, (field, value, message)) in [
        ("reason", long.as_str(), "reason: Invalid value: \"\": can have at most 128 characters"),
        ("action", long.as_str(), "action: Invalid value: \"\": can have at most 128 characters"),
        ("reportingInstance", long.as_str(), "reportingInstance: Invalid value: \"\": can have at most 128 characters"),
        ("reportingController", long_name.as_str(), "name part must be no more than 63 characters"),
        ("reportingController", "-bad-", "name part must consist of alphanumeric characters"),
        ("reportingController", "a/b/c", "a qualified name must consist of alphanumeric characters"),
    ]
    .into_iter()
    .enumerate()
    {
        let e = api_err(events.create(&PostParams::default(), &event(&format!("bad-{i}"), field, value)).await.unwrap_err());
        assert_eq!(e.code, 422, "{field}={value}: {e:?}");
        assert!(e.message.contains(message), "{field}={value}: {}", e.message);
    }
    // At the limits: accepted.
    let at_limit = "x".repeat(128);
    for (i, (field, value)) in
        [("reason", at_limit.as_str()), ("reportingController", "x".repeat(63).as_str()), ("reportingController", "example.com/ctl_1.a")]
            .into_iter()
            .enumerate()
    {
        events
            .create(&PostParams::default(), &event(&format!("ok-{i}"), field, value))
            .await
            .unwrap_or_else(|e| panic!("{field}={value}: {e}"));
    }
}

/// CR admission as kube-apiserver v1.24 orders it: the CEL rules run after the OpenAPI schema
/// unless the schema found a blocking error (Required, Too long, Too many, a wrong type); then
/// they are skipped and the answer says so. The bed used to skip them on any schema error and
/// never said so, and called a wrong type `FieldValueInvalid`.
#[tokio::test]
async fn cel_rules_run_after_non_blocking_schema_errors_and_are_reported_skipped_after_blocking_ones() {
    let bed = start().await;
    install_widget_crd(&bed.client).await;
    let api = widgets(&bed.client, "default");
    let pp = PostParams::default();
    const SKIPPED: &str = "<nil>: Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

    // An enum violation does not block: the rule's message comes too.
    let e = api_err(api.create(&pp, &widget("w", json!({"bucket": "abc", "mode": "Warp", "replicas": 11}))).await.unwrap_err());
    assert!(e.message.contains("spec.mode: Unsupported value: \"Warp\""), "{}", e.message);
    assert!(e.message.contains("spec.replicas: Invalid value: \"integer\": replicas must be at most 10"), "{}", e.message);
    assert!(!e.message.contains("some validation rules were not checked"), "{}", e.message);

    // Too many items blocks: no rule message, the note instead.
    let e =
        api_err(api.create(&pp, &widget("w", json!({"bucket": "abc", "tags": ["a", "b", "c", "d"], "replicas": 11}))).await.unwrap_err());
    assert_eq!(e.message, format!("Widget.example.test \"w\" is invalid: [spec.tags: Too many: 4: must have at most 3 items, {SKIPPED}]"));
    let causes = e.details.unwrap().causes;
    assert_eq!(
        causes.iter().map(|c| (c.reason.as_str(), c.field.as_str())).collect::<Vec<_>>(),
        [("FieldValueTooMany", "spec.tags"), ("FieldValueInvalid", "<nil>")]
    );

    // A missing required field and a wrong type block too; a wrong type is FieldValueTypeInvalid.
    let e = api_err(api.create(&pp, &widget("w", json!({"mode": "Fast"}))).await.unwrap_err());
    assert_eq!(e.message, format!("Widget.example.test \"w\" is invalid: [spec.bucket: Required value, {SKIPPED}]"));
    let e = api_err(api.create(&pp, &widget("w", json!({"bucket": "abc", "replicas": "two"}))).await.unwrap_err());
    assert!(e.message.ends_with(&format!("{SKIPPED}]")), "{}", e.message);
    assert_eq!(e.details.unwrap().causes[0].reason, "FieldValueTypeInvalid");
}

/// A JSON patch that cannot be applied (a failed `test`, a path that is not there) is answered as
/// kube-apiserver v1.24 answers it: 422 Invalid with its generic message and no causes. The
/// operator guards its finalizer patches with a `test` of the resourceVersion.
#[tokio::test]
async fn a_json_patch_that_cannot_be_applied_gets_the_generic_422() {
    let bed = start().await;
    install_widget_crd(&bed.client).await;
    let api = widgets(&bed.client, "default");
    api.create(&PostParams::default(), &widget("j", json!({"bucket": "abc"}))).await.unwrap();
    for ops in [
        json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "1"}, {"op": "add", "path": "/metadata/finalizers", "value": ["x/y"]}]),
        json!([{"op": "replace", "path": "/spec/nothere/x", "value": "1"}]),
    ] {
        let patch: json_patch::Patch = serde_json::from_value(ops).unwrap();
        let e = api_err(api.patch("j", &PatchParams::default(), &Patch::Json::<()>(patch)).await.unwrap_err());
        assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
        assert_eq!(e.message, "the server rejected our request due to an error in our request");
        assert!(e.details.is_none_or(|d| d.causes.is_empty()));
    }
}

/// A finalizer added to an object being deleted is refused with the real server's words, which
/// list the new finalizers as Go prints them.
#[tokio::test]
async fn a_finalizer_added_during_deletion_is_refused_in_the_api_servers_words() {
    let bed = start().await;
    install_widget_crd(&bed.client).await;
    let api = widgets(&bed.client, "default");
    let mut w = widget("f", json!({"bucket": "abc"}));
    w.metadata.finalizers = Some(vec!["a/b".into()]);
    api.create(&PostParams::default(), &w).await.unwrap();
    api.delete("f", &Default::default()).await.unwrap();
    let add = json!({"metadata": {"finalizers": ["a/b", "c/d", "e/f"]}});
    let e = api_err(api.patch("f", &PatchParams::default(), &Patch::Merge(add)).await.unwrap_err());
    assert_eq!(
        e.message,
        "Widget.example.test \"f\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"c/d\", \"e/f\"}"
    );
}

/// `events.k8s.io/v1` refusals word for word as kube-apiserver v1.24 gives them (each seen there
/// first): the kind is the internal `Event`, the note is called `message`, and an Event without
/// an `eventTime` is only told that.
#[tokio::test]
async fn event_refusals_read_as_the_api_servers() {
    let bed = start().await;
    // Raw objects: a typed Event cannot even hold some of these mistakes.
    let resource = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("events.k8s.io", "v1", "Event"), "events");
    let events: Api<DynamicObject> = Api::namespaced_with(bed.client.clone(), "default", &resource);
    let base = |mut v: Value| -> DynamicObject {
        v["apiVersion"] = json!("events.k8s.io/v1");
        v["kind"] = json!("Event");
        serde_json::from_value(v).unwrap()
    };
    let fields = json!({"eventTime": "2026-11-29T03:00:00.000000Z", "type": "Warning", "reason": "R", "action": "Reconcile",
        "note": "n", "reportingController": "ecx", "reportingInstance": "ecx-1",
        "regarding": {"kind": "SnapshotExport", "namespace": "default", "name": "x"}});
    const NAME_PART: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    let cases: Vec<(Value, String)> = vec![
        (json!({"reportingController": null}), format!("[reportingController: Required value, reportingController: Invalid value: \"\": name part must be non-empty, reportingController: Invalid value: \"\": {NAME_PART}]")),
        (json!({"eventTime": null, "action": null}), "eventTime: Required value".into()),
        (json!({"note": "x".repeat(1100)}), "message: Invalid value: \"\": can have at most 1024 characters".into()),
        (json!({"type": "Bad"}), "type: Invalid value: \"\": has invalid value: Bad".into()),
        (json!({"type": null}), "type: Invalid value: \"\": has invalid value: ".into()),
        (json!({"action": null}), "action: Required value".into()),
        (json!({"reason": null}), "reason: Required value".into()),
        (json!({"series": {"count": 1}}), "[series.count: Invalid value: \"\": should be at least 2, series.lastObservedTime: Required value]".into()),
    ];
    for (i, (change, expected)) in cases.into_iter().enumerate() {
        let mut e = fields.clone();
        e["metadata"] = json!({"name": format!("e{i}")});
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                e.as_object_mut().unwrap().remove(k);
            } else {
                e[k] = v.clone();
            }
        }
        let err = api_err(events.create(&PostParams::default(), &base(e)).await.unwrap_err());
        assert_eq!(err.message, format!("Event \"e{i}\" is invalid: {expected}"), "case {i}");
    }
    let mut good = fields.clone();
    good["metadata"] = json!({"name": "kept"});
    events.create(&PostParams::default(), &base(good)).await.unwrap();
    for (field, value, expected) in [
        ("reason", json!("Other"), "reason: Invalid value: \"Other\": field is immutable"),
        ("note", json!("changed"), "message: Invalid value: \"changed\": field is immutable"),
        ("type", json!("Normal"), "type: Invalid value: \"Normal\": field is immutable"),
        (
            "series",
            json!({"count": 1, "lastObservedTime": "2026-11-29T03:00:00.000000Z"}),
            "series.count: Invalid value: \"\": should be at least 2",
        ),
    ] {
        let err = api_err(events.patch("kept", &PatchParams::default(), &Patch::Merge(json!({field: value}))).await.unwrap_err());
        assert_eq!(err.message, format!("Event \"kept\" is invalid: {expected}"), "{field}");
    }
}
