//! The kube-rs ecosystem pieces the operator uses: event Recorder, kube-lease-manager, and the
//! `kube-testbed` binary driven from outside.

use crate::common::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event as CoreEvent, ObjectReference};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::ResourceExt;
use kube_lease_manager::LeaseManagerBuilder;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn events_recorder_create_and_series_patch() {
    let bed = start().await;
    let recorder = Recorder::new(bed.client.clone(), Reporter { controller: "test-ctrl".into(), instance: Some("pod-1".into()) });
    let reference = ObjectReference {
        api_version: Some("example.test/v1".into()),
        kind: Some("Widget".into()),
        name: Some("w1".into()),
        namespace: Some("default".into()),
        uid: Some("1234".into()),
        ..Default::default()
    };
    let ev = Event {
        type_: EventType::Normal,
        reason: "Exported".into(),
        note: Some("snapshot exported".into()),
        action: "Export".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await.unwrap();
    recorder.publish(&ev, &reference).await.unwrap(); // same key → series merge patch
    recorder.publish(&ev, &reference).await.unwrap();
    let events: Api<K8sEvent> = Api::namespaced(bed.client.clone(), "default");
    let list = events.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let e = &list.items[0];
    assert_eq!(e.reason.as_deref(), Some("Exported"));
    assert_eq!(e.series.as_ref().map(|s| s.count), Some(3));
    assert_eq!(e.regarding.as_ref().unwrap().name.as_deref(), Some("w1"));
    let st = bed.server.stats();
    assert_eq!(st.count("create", "events"), 1);
    assert_eq!(st.count("patch", "events"), 2);

    // core/v1 events work too
    let core: Api<CoreEvent> = Api::namespaced(bed.client.clone(), "default");
    let ce: CoreEvent = serde_json::from_value(json!({
        "metadata": {"name": "w1.abc"}, "involvedObject": {"kind": "Widget", "name": "w1"},
        "reason": "Started", "message": "hi", "type": "Normal", "count": 1
    }))
    .unwrap();
    core.create(&PostParams::default(), &ce).await.unwrap();
    let p = core.patch("w1.abc", &PatchParams::default(), &Patch::Merge(json!({"count": 2}))).await.unwrap();
    assert_eq!(p.count, Some(2));
    let by_field = core.list(&ListParams::default().fields("involvedObject.name=w1")).await.unwrap();
    assert_eq!(by_field.items.len(), 1);
}

#[tokio::test]
async fn events_k8s_io_require_their_fields_and_keep_all_but_the_series_on_update() {
    let bed = start().await;
    let events: Api<K8sEvent> = Api::namespaced(bed.client.clone(), "default");
    let event = |fields: &[(&str, serde_json::Value)]| -> K8sEvent {
        let mut base = json!({
            "metadata": {"name": "w1.1"}, "eventTime": "2026-11-23T10:00:00.000000Z",
            "reportingController": "test-ctrl", "reportingInstance": "pod-1", "action": "Export",
            "reason": "Exported", "type": "Normal", "note": "first", "regarding": {"kind": "Widget", "name": "w1"}
        });
        for (k, v) in fields {
            base[*k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    };
    let refused = |err: kube::Error| match err {
        kube::Error::Api(status) => (status.code, status.message),
        other => panic!("expected an API refusal, got {other}"),
    };
    for missing in ["eventTime", "reportingController", "reportingInstance", "action", "reason"] {
        let err = events.create(&PostParams::default(), &event(&[(missing, serde_json::Value::Null)])).await.unwrap_err();
        let (code, message) = refused(err);
        assert_eq!(code, 422, "{missing}: {message}");
        assert!(message.contains(missing), "{message}");
    }
    let err = events.create(&PostParams::default(), &event(&[("type", json!("Info"))])).await.unwrap_err();
    assert_eq!(refused(err).0, 422);
    events.create(&PostParams::default(), &event(&[])).await.unwrap();

    // A repeat extends the series; the note (like reason, action, type, regarding) is fixed.
    let series = json!({"series": {"count": 2, "lastObservedTime": "2026-11-23T10:01:00.000000Z"}});
    let patched = events.patch("w1.1", &PatchParams::default(), &Patch::Merge(&series)).await.unwrap();
    assert_eq!(patched.series.map(|s| s.count), Some(2));
    let err = events.patch("w1.1", &PatchParams::default(), &Patch::Merge(json!({"note": "second"}))).await.unwrap_err();
    let (code, message) = refused(err);
    assert_eq!(code, 422);
    // The apiserver names the note by its internal name, `message`.
    assert!(message.ends_with("is invalid: message: Invalid value: \"second\": field is immutable"), "{message}");
    let err = events.patch("w1.1", &PatchParams::default(), &Patch::Merge(json!({"series": {"count": 1}}))).await.unwrap_err();
    assert_eq!(refused(err).0, 422);
}

#[tokio::test]
async fn lease_manager_exclusive_acquire_and_handover() {
    let bed = start().await;
    let make = |id: &str| {
        LeaseManagerBuilder::new(bed.client.clone(), "leader")
            .with_namespace("default")
            .with_identity(id)
            .with_duration(3)
            .with_grace(1)
            .build()
    };
    let a = make("instance-a").await.unwrap();
    let b = make("instance-b").await.unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(5), a.changed()).await.unwrap().unwrap());
    let leases: Api<Lease> = Api::default_namespaced(bed.client.clone());
    let l = leases.get("leader").await.unwrap();
    assert_eq!(l.spec.as_ref().unwrap().holder_identity.as_deref(), Some("instance-a"));

    // b cannot take it while a holds (and renews) it
    tokio::select! {
        r = b.changed() => panic!("b must not acquire while a holds the lease: {r:?}"),
        r = a.changed() => panic!("a must keep the lease: {r:?}"),
        _ = tokio::time::sleep(Duration::from_secs(4)) => {}
    }
    // the SSA conflict the lease manager relies on: a non-forced apply of a different holder
    let e = api_err(
        leases
            .patch(
                "leader",
                &PatchParams::apply("kube-lease-instance-b"),
                &Patch::Apply(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "spec": {"holderIdentity": "instance-b"}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert_eq!(leases.get("leader").await.unwrap().spec.unwrap().holder_identity.as_deref(), Some("instance-a"));

    // a releases → b acquires
    a.release().await.unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(10), b.changed()).await.unwrap().unwrap());
    let l = leases.get("leader").await.unwrap();
    assert_eq!(l.spec.as_ref().unwrap().holder_identity.as_deref(), Some("instance-b"));
    assert!(l.spec.as_ref().unwrap().lease_transitions.unwrap_or(0) >= 2);
    b.release().await.unwrap();
}

#[tokio::test]
async fn lease_manager_takes_over_an_expired_lease() {
    let bed = start().await;
    let make = |id: &str| {
        LeaseManagerBuilder::new(bed.client.clone(), "expiring")
            .with_namespace("default")
            .with_identity(id)
            .with_duration(2)
            .with_grace(1)
            .build()
    };
    let a = make("crashed-a").await.unwrap();
    let b = make("survivor-b").await.unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(5), a.changed()).await.unwrap().unwrap());
    // a stops renewing (as if it crashed); b takes over once the lease expires
    assert!(tokio::time::timeout(Duration::from_secs(10), b.changed()).await.unwrap().unwrap());
    let leases: Api<Lease> = Api::default_namespaced(bed.client.clone());
    let l = leases.get("expiring").await.unwrap();
    assert_eq!(l.spec.as_ref().unwrap().holder_identity.as_deref(), Some("survivor-b"));
    drop(a);
    b.release().await.unwrap();
}

#[tokio::test]
async fn binary_serves_until_sigterm() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kube-testbed"))
        .args(["--port", "0", "--kubeconfig"])
        .arg(&kc)
        .args(["--namespace", "team-a"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("kube-testbed listening on http://127.0.0.1:"), "{line}");
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kc).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(config.default_namespace, "team-a");
    let client = kube::Client::try_from(config).unwrap();
    let v = client.apiserver_version().await.unwrap();
    assert_eq!(v.major, "1");
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    leases.create(&PostParams::default(), &lease("x", "a")).await.unwrap();
    assert_eq!(leases.get("x").await.unwrap().name_any(), "x");
    let stats = raw(&client, "GET", "/_testbed/stats", None).await;
    assert!(stats.contains("\"leases\""), "{stats}");

    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "did not exit on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
