//! Watch semantics: resume from a resourceVersion, initial state, selectors, 410 Expired and
//! kube-runtime's watcher recovering from it.

use crate::common::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use kube::ResourceExt;
use kube_testbed::{FaultRule, Options};
use serde_json::json;
use std::time::Duration;

async fn next_event<S>(s: &mut S) -> WatchEvent<Lease>
where
    S: futures::Stream<Item = kube::Result<WatchEvent<Lease>>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(3), s.try_next()).await.expect("event in time").expect("no stream error").expect("stream open")
}

#[tokio::test]
async fn watch_from_resource_version_and_initial_state() {
    let bed = start().await;
    let leases: Api<Lease> = Api::default_namespaced(bed.client.clone());
    leases.create(&PostParams::default(), &lease("before", "a")).await.unwrap();
    let rv = leases.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();

    let mut s = leases.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    leases.create(&PostParams::default(), &lease("w", "a")).await.unwrap();
    leases.patch("w", &PatchParams::default(), &Patch::Merge(json!({"spec": {"holderIdentity": "b"}}))).await.unwrap();
    leases.delete("w", &DeleteParams::default()).await.unwrap();
    match next_event(&mut s).await {
        WatchEvent::Added(l) => assert_eq!(l.name_any(), "w"),
        e => panic!("{e:?}"),
    }
    match next_event(&mut s).await {
        WatchEvent::Modified(l) => assert_eq!(l.spec.unwrap().holder_identity.as_deref(), Some("b")),
        e => panic!("{e:?}"),
    }
    let deleted_rv = match next_event(&mut s).await {
        WatchEvent::Deleted(l) => l.resource_version().unwrap(),
        e => panic!("{e:?}"),
    };

    // resuming from an earlier RV replays retained events
    let mut s2 = leases.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    assert!(matches!(next_event(&mut s2).await, WatchEvent::Added(_)));
    assert!(matches!(next_event(&mut s2).await, WatchEvent::Modified(_)));
    match next_event(&mut s2).await {
        WatchEvent::Deleted(l) => assert_eq!(l.resource_version().unwrap(), deleted_rv),
        e => panic!("{e:?}"),
    }

    // RV "0": current objects as ADDED first
    let mut s3 = leases.watch(&WatchParams::default(), "0").await.unwrap().boxed();
    match next_event(&mut s3).await {
        WatchEvent::Added(l) => assert_eq!(l.name_any(), "before"),
        e => panic!("{e:?}"),
    }

    // label selectors apply to watches, incl. transitions in and out of the selection
    let mut sel = leases.watch(&WatchParams::default().labels("team=x"), &deleted_rv).await.unwrap().boxed();
    leases.create(&PostParams::default(), &lease("unlabelled", "a")).await.unwrap();
    leases.patch("unlabelled", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"team": "x"}}}))).await.unwrap();
    leases.patch("unlabelled", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"team": "y"}}}))).await.unwrap();
    assert!(matches!(next_event(&mut sel).await, WatchEvent::Added(l) if l.name_any() == "unlabelled"));
    assert!(matches!(next_event(&mut sel).await, WatchEvent::Deleted(_)));

    // timeoutSeconds closes the stream
    let mut t = leases.watch(&WatchParams::default().timeout(1), "0").await.unwrap().boxed();
    let mut n = 0;
    while tokio::time::timeout(Duration::from_secs(3), t.try_next()).await.unwrap().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 2, "two ADDED, then the stream ended");
}

#[tokio::test]
async fn too_old_resource_version_gets_410_and_watcher_relists() {
    let bed = start_with(Options { watch_history: 5, ..Options::default() }).await;
    let leases: Api<Lease> = Api::default_namespaced(bed.client.clone());
    let rv = leases.list(&ListParams::default()).await.unwrap().metadata.resource_version.unwrap();
    for i in 0..10 {
        leases.create(&PostParams::default(), &lease(&format!("l{i}"), "a")).await.unwrap();
    }
    // raw watch from the too-old RV: a single ERROR event, code 410, reason Expired
    let mut s = leases.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    match next_event(&mut s).await {
        WatchEvent::Error(st) => {
            assert_eq!(st.code, 410);
            assert_eq!(st.reason, "Expired");
            assert!(st.message.contains("too old resource version"), "{}", st.message);
        }
        e => panic!("{e:?}"),
    }
    assert!(tokio::time::timeout(Duration::from_secs(2), s.try_next()).await.unwrap().unwrap().is_none());

    // kube-runtime watcher: establish, then make its resume RV expire while it's disconnected
    let faults = bed.server.faults();
    let mut w = watcher(leases.clone(), watcher::Config::default()).boxed();
    let mut seen = std::collections::BTreeSet::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(3), w.try_next()).await.unwrap().unwrap().unwrap() {
            watcher::Event::InitDone => break,
            watcher::Event::InitApply(l) => {
                seen.insert(l.name_any());
            }
            _ => {}
        }
    }
    assert_eq!(seen.len(), 10);
    let lists_before = bed.server.stats().count("list", "leases");
    // the watcher can't re-watch for a moment; meanwhile more than `watch_history` writes happen
    faults.fail_next(FaultRule::new("watch", "leases", 500).count(1));
    faults.drop_watches();
    for i in 10..20 {
        leases.create(&PostParams::default(), &lease(&format!("l{i}"), "a")).await.unwrap();
    }
    faults.clear();
    let mut relisted = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), w.next()).await {
            Ok(Some(Ok(watcher::Event::InitApply(l)))) => {
                seen.insert(l.name_any());
            }
            Ok(Some(Ok(watcher::Event::InitDone))) => {
                relisted = true;
                break;
            }
            Ok(Some(Ok(watcher::Event::Apply(l)))) => {
                seen.insert(l.name_any());
            }
            Ok(Some(Ok(_))) | Ok(Some(Err(_))) => {}
            Ok(None) | Err(_) => break,
        }
    }
    assert!(relisted, "watcher re-listed after 410");
    assert_eq!(seen.len(), 20);
    assert!(bed.server.stats().count("list", "leases") > lists_before);
}

#[tokio::test]
async fn drop_watches_closes_streams_and_watcher_resumes() {
    let bed = start().await;
    let leases: Api<Lease> = Api::default_namespaced(bed.client.clone());
    let mut raw_stream = leases.watch(&WatchParams::default(), "0").await.unwrap().boxed();
    let mut w = watcher(leases.clone(), watcher::Config::default()).boxed();
    // wait until the watcher's watch is established: it has seen an object created after its list
    loop {
        if let watcher::Event::InitDone = tokio::time::timeout(Duration::from_secs(3), w.try_next()).await.unwrap().unwrap().unwrap() {
            break;
        }
    }
    leases.create(&PostParams::default(), &lease("before-drop", "a")).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), w.try_next()).await.unwrap().unwrap().unwrap() {
            watcher::Event::Apply(l) if l.name_any() == "before-drop" => break,
            _ => {}
        }
    }
    assert_eq!(bed.server.stats().open_watches, 2);
    bed.server.faults().drop_watches();
    // the raw stream delivers what was already sent ("before-drop" ADDED), then ends
    let mut buffered = 0;
    while tokio::time::timeout(Duration::from_secs(2), raw_stream.try_next()).await.unwrap().unwrap().is_some() {
        buffered += 1;
    }
    assert!(buffered <= 1);
    // the watcher re-watches from its last RV and still sees new objects (no re-list needed)
    let lists = bed.server.stats().count("list", "leases");
    leases.create(&PostParams::default(), &lease("after-drop", "a")).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), w.try_next()).await.unwrap().unwrap().unwrap() {
            watcher::Event::Apply(l) if l.name_any() == "after-drop" => break,
            _ => {}
        }
    }
    assert_eq!(bed.server.stats().count("list", "leases"), lists);
}
