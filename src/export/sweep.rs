//! One shared, paginated DescribeSnapshots sweep follows every copy and export in flight, so the
//! ElastiCache calls spent on following grow with pages of snapshots (50 per call), not with the
//! number of exports; serverless copies and exports are followed beside them by one paginated
//! DescribeServerlessCacheSnapshots listing per sweep (each kind is read only while some object
//! follows it). After each sweep, only the objects whose snapshots changed are reconciled; the
//! interval doubles while nothing changes, and nothing is swept while nothing is followed.

use crate::api::SnapshotExport;
use crate::aws::{SnapshotApi, SnapshotApis, SnapshotInfo};
use kube::runtime::reflector::ObjectRef;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, Notify};
use tracing::{debug, warn};

/// What one followed object watches: snapshot names, and since when (a view is only served from
/// a sweep that started after that, so it reflects the request that made us follow).
struct Follow {
    /// The object, to announce it to the controller.
    obj: ObjectRef<SnapshotExport>,
    names: Vec<String>,
    /// The names are of ElastiCache Serverless snapshots (a namespace of their own).
    serverless: bool,
    since: Instant,
}

/// A snapshot as the sweep keys it: whether it is serverless, and its lowercase name.
type Key = (bool, String);

#[derive(Default)]
struct State {
    /// By object UID: an object deleted and created again under the same name is another
    /// object, and must not inherit what the old one followed.
    followers: HashMap<String, Follow>,
    /// The followed snapshots the last complete sweep found, by kind and lowercase name.
    snapshots: HashMap<Key, SnapshotInfo>,
    /// When the last complete sweep started.
    swept_at: Option<Instant>,
    /// Pages the last listing of every snapshot took.
    listing_pages: Option<usize>,
    /// Why the last sweep failed, until one succeeds: the followed objects report it.
    failure: Option<crate::aws::AwsError>,
}

pub struct Sweep {
    state: Mutex<State>,
    wake: Notify,
    changed: broadcast::Sender<ObjectRef<SnapshotExport>>,
    min: Duration,
    max: Duration,
}

/// A snapshot as the latest sweep saw it: `None` when it was not listed.
pub type SweptSnapshot = Option<SnapshotInfo>;

impl Sweep {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self { state: Mutex::default(), wake: Notify::new(), changed: broadcast::channel(16_384).0, min, max }
    }

    /// Objects to reconcile because a sweep saw their snapshots change.
    pub fn subscribe(&self) -> broadcast::Receiver<ObjectRef<SnapshotExport>> {
        self.changed.subscribe()
    }

    /// Follow `names` (serverless snapshots when `serverless`) for the object `uid` (idempotent:
    /// an object already following the same names keeps its `since`; other names, e.g. the copy
    /// once its source was available, start afresh).
    pub fn follow(&self, uid: &str, obj: ObjectRef<SnapshotExport>, names: Vec<String>, serverless: bool) {
        let mut state = self.state.lock().expect("sweep lock");
        let was_idle = state.followers.is_empty();
        match state.followers.get(uid) {
            Some(f) if f.names == names && f.serverless == serverless => {}
            _ => {
                state.followers.insert(uid.to_string(), Follow { obj, names, serverless, since: Instant::now() });
            }
        }
        drop(state);
        if was_idle {
            self.wake.notify_one();
        }
    }

    pub fn unfollow(&self, uid: &str) {
        self.state.lock().expect("sweep lock").followers.remove(uid);
    }

    /// Forget every followed object for which `live` is false (deleted objects whose deletion
    /// the watch did not report, e.g. while it was down); returns how many were forgotten.
    pub fn retain_live(&self, live: impl Fn(&ObjectRef<SnapshotExport>, &str) -> bool) -> usize {
        let mut state = self.state.lock().expect("sweep lock");
        let before = state.followers.len();
        state.followers.retain(|uid, f| live(&f.obj, uid));
        before - state.followers.len()
    }

    pub fn following(&self) -> usize {
        self.state.lock().expect("sweep lock").followers.len()
    }

    /// The followed snapshots of the object `uid` from the latest sweep, once a sweep has started
    /// after it began to be followed; `None` until then (or when it is not followed).
    pub fn view(&self, uid: &str) -> Option<HashMap<String, SweptSnapshot>> {
        let state = self.state.lock().expect("sweep lock");
        let follow = state.followers.get(uid)?;
        if state.swept_at.is_none_or(|at| at < follow.since) {
            return None;
        }
        Some(follow.names.iter().map(|n| (n.clone(), state.snapshots.get(&(follow.serverless, n.to_ascii_lowercase())).cloned())).collect())
    }

    /// Why the latest sweep failed, while no later sweep has succeeded.
    pub fn failure(&self) -> Option<crate::aws::AwsError> {
        self.state.lock().expect("sweep lock").failure.clone()
    }

    /// Record a failed sweep; returns the followed objects to reconcile so that they report
    /// it (only when the failure is new or different: one status write per failure, not per
    /// attempt).
    fn failed(&self, err: crate::aws::AwsError) -> Vec<ObjectRef<SnapshotExport>> {
        let mut state = self.state.lock().expect("sweep lock");
        if state.failure.as_ref() == Some(&err) {
            return vec![];
        }
        state.failure = Some(err);
        state.followers.values().map(|f| f.obj.clone()).collect()
    }

    /// Run sweeps forever (spawn it): wait while nothing is followed, sweep every interval
    /// otherwise, and announce the objects whose snapshots changed (or that await a first view).
    /// Before each sweep, objects that `live` no longer knows (deleted) are forgotten.
    pub async fn run<A: SnapshotApis>(&self, aws: &A, live: impl Fn(&ObjectRef<SnapshotExport>, &str) -> bool) {
        let mut interval = self.min;
        loop {
            if self.following() == 0 {
                interval = self.min;
                self.wake.notified().await;
                continue;
            }
            tokio::time::sleep(interval).await;
            let forgotten = self.retain_live(&live);
            if forgotten > 0 {
                debug!(forgotten, "stopped following deleted objects");
            }
            if self.following() == 0 {
                // Everything finished while we slept: an idle operator makes no AWS call.
                continue;
            }
            let changed = match self.sweep_once(aws).await {
                Ok(changed) => changed,
                Err(err) => {
                    warn!(error = %err, retry_in = ?interval, "snapshot sweep failed");
                    interval = (interval * 2).min(self.max);
                    for obj in self.failed(err) {
                        let _ = self.changed.send(obj);
                    }
                    continue;
                }
            };
            interval = if changed.is_empty() { (interval * 2).min(self.max) } else { self.min };
            for obj in changed {
                let _ = self.changed.send(obj);
            }
        }
    }

    /// One sweep: read the followed node-based snapshots (by name or by listing, whichever takes
    /// fewer calls) and the followed serverless ones (one paginated listing), store them, and
    /// return the objects to reconcile. A kind nobody follows costs no call.
    async fn sweep_once<A: SnapshotApis>(&self, aws: &A) -> Result<Vec<ObjectRef<SnapshotExport>>, crate::aws::AwsError> {
        let started = Instant::now();
        let (names, serverless_names, listing_pages) = self.followed_names();
        let (found, pages) = if names.is_empty() {
            (HashMap::new(), None)
        } else if read_by_name(names.len(), listing_pages) {
            (describe_each(aws, &names).await?, None)
        } else {
            let (found, pages) = list_all(aws, &names).await?;
            (found, Some(pages))
        };
        let mut found: HashMap<Key, SnapshotInfo> = found.into_iter().map(|(name, s)| ((false, name), s)).collect();
        if !serverless_names.is_empty() {
            let listed = super::serverless::list_followed(aws, &serverless_names).await?;
            found.extend(listed.into_iter().map(|(name, s)| ((true, name), s)));
        }
        let changed = self.apply(found, pages, started);
        debug!(
            names = names.len(),
            serverless = serverless_names.len(),
            ?pages,
            changed = changed.len(),
            following = self.following(),
            "swept snapshots"
        );
        Ok(changed)
    }

    /// The followed node-based and serverless snapshot names (lowercase: ElastiCache stores
    /// names in lowercase), and the page count of the last listing of every node-based snapshot.
    fn followed_names(&self) -> (HashSet<String>, HashSet<String>, Option<usize>) {
        let state = self.state.lock().expect("sweep lock");
        let names = |serverless: bool| -> HashSet<String> {
            state
                .followers
                .values()
                .filter(|f| f.serverless == serverless)
                .flat_map(|f| f.names.iter().map(|n| n.to_ascii_lowercase()))
                .collect()
        };
        (names(false), names(true), state.listing_pages)
    }

    /// Store a sweep's result (the followed snapshots it found, by lowercase name, and its page
    /// count if it listed every snapshot); return the followed objects to reconcile.
    fn apply(&self, fresh: HashMap<Key, SnapshotInfo>, pages: Option<usize>, started: Instant) -> Vec<ObjectRef<SnapshotExport>> {
        let mut state = self.state.lock().expect("sweep lock");
        if pages.is_some() {
            state.listing_pages = pages;
        }
        let key = |f: &Follow, n: &String| (f.serverless, n.to_ascii_lowercase());
        let changed_names: HashSet<Key> = state
            .followers
            .values()
            .flat_map(|f| f.names.iter().map(|n| key(f, n)))
            .filter(|k| state.snapshots.get(k).map(|s| &s.status) != fresh.get(k).map(|s| &s.status))
            .collect();
        // Objects this sweep can speak for (followed since before it started) whose snapshots
        // changed, or which get their first view from it.
        let first_view = |f: &Follow| state.swept_at.is_none_or(|at| at < f.since);
        let changed: Vec<ObjectRef<SnapshotExport>> = state
            .followers
            .values()
            .filter(|f| f.since <= started && (first_view(f) || f.names.iter().any(|n| changed_names.contains(&key(f, n)))))
            .map(|f| f.obj.clone())
            .collect();
        state.snapshots = fresh;
        state.swept_at = Some(started);
        state.failure = None;
        changed
    }
}

/// Whether to read the followed snapshots one DescribeSnapshots call per name rather than by
/// listing every snapshot in the region: only when that takes fewer calls than the last listing
/// did (an account may hold far more snapshots than the operator follows). Until a listing has
/// measured the account, list.
fn read_by_name(followed: usize, listing_pages: Option<usize>) -> bool {
    listing_pages.is_some_and(|pages| followed < pages)
}

/// Concurrent by-name reads per sweep; every call still waits for the AWS rate limit.
const BY_NAME_CONCURRENCY: usize = 8;

async fn describe_each<A: SnapshotApi>(aws: &A, names: &HashSet<String>) -> Result<HashMap<String, SnapshotInfo>, crate::aws::AwsError> {
    use futures::{StreamExt, TryStreamExt};
    futures::stream::iter(names.iter().cloned())
        .map(|name: String| async move { aws.describe_snapshot(&name).await.map(|found| found.map(|s| (name, s))) })
        .buffer_unordered(BY_NAME_CONCURRENCY)
        .try_filter_map(|found| futures::future::ready(Ok(found)))
        .try_collect()
        .await
}

/// Page through every snapshot in the region, keeping only the followed ones (so memory grows
/// with what is followed, not with the account); returns them and the page count.
async fn list_all<A: SnapshotApi>(
    aws: &A,
    names: &HashSet<String>,
) -> Result<(HashMap<String, SnapshotInfo>, usize), crate::aws::AwsError> {
    let mut found = HashMap::new();
    let mut marker = None;
    let mut pages = 0;
    loop {
        let page = aws.describe_snapshots_page(marker.clone()).await?;
        pages += 1;
        for snapshot in page.snapshots {
            let key = snapshot.name.to_ascii_lowercase();
            if names.contains(&key) {
                found.insert(key, snapshot);
            }
        }
        match page.next_marker {
            // A marker that repeats would page forever: give up this sweep, try the next.
            Some(next) if marker.as_ref() == Some(&next) => {
                return Err(crate::aws::AwsError::Transient {
                    operation: "DescribeSnapshots",
                    code: "RepeatedMarker".into(),
                    message: "DescribeSnapshots returned the same Marker twice".into(),
                })
            }
            Some(next) if !next.is_empty() => marker = Some(next),
            _ => return Ok((found, pages)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::SnapshotStatus;

    fn obj(name: &str) -> ObjectRef<SnapshotExport> {
        ObjectRef::new(name).within("ns")
    }
    fn snap(name: &str, status: &str) -> SnapshotInfo {
        SnapshotInfo { name: name.into(), arn: None, status: SnapshotStatus::parse(status), node_group_ids: vec!["0001".into()] }
    }
    fn found(snapshots: Vec<SnapshotInfo>) -> HashMap<Key, SnapshotInfo> {
        snapshots.into_iter().map(|s| ((false, s.name.clone()), s)).collect()
    }

    #[test]
    fn views_come_only_from_sweeps_that_started_after_following_began() {
        let sweep = Sweep::new(Duration::from_millis(1), Duration::from_millis(8));
        let before = Instant::now();
        sweep.follow("a", obj("a"), vec!["t".into()], false);
        assert!(sweep.view("a").is_none(), "no sweep yet");
        // A sweep that started before following began says nothing about our request.
        let changed = sweep.apply(found(vec![snap("t", "creating")]), Some(1), before);
        assert!(changed.is_empty());
        assert!(sweep.view("a").is_none());
        let changed = sweep.apply(found(vec![snap("t", "creating")]), Some(1), Instant::now());
        assert_eq!(changed, vec![obj("a")], "first view announced");
        assert_eq!(sweep.view("a").unwrap()["t"].as_ref().unwrap().status, SnapshotStatus::parse("creating"));
        // Unchanged: nobody is reconciled.
        let changed = sweep.apply(found(vec![snap("t", "creating")]), Some(1), Instant::now());
        assert!(changed.is_empty());
        let changed = sweep.apply(found(vec![snap("t", "available")]), Some(1), Instant::now());
        assert_eq!(changed, vec![obj("a")]);
        sweep.unfollow("a");
        assert!(sweep.view("a").is_none());
    }

    #[test]
    fn a_failed_sweep_is_reported_to_every_follower_once_and_cleared_by_the_next_sweep() {
        let sweep = Sweep::new(Duration::from_millis(1), Duration::from_millis(8));
        sweep.follow("a", obj("a"), vec!["ta".into()], false);
        sweep.follow("b", obj("b"), vec!["tb".into()], false);
        let denied = crate::aws::AwsError::classify("DescribeSnapshots", Some("AccessDenied"), Some("not allowed"), Some(403));
        let mut announced = sweep.failed(denied.clone());
        announced.sort_by_key(|o| o.name.clone());
        assert_eq!(announced, vec![obj("a"), obj("b")]);
        assert_eq!(sweep.failure(), Some(denied.clone()));
        assert!(sweep.failed(denied.clone()).is_empty(), "the same failure again: no new reconcile");
        sweep.apply(found(vec![snap("ta", "creating")]), Some(1), Instant::now());
        assert_eq!(sweep.failure(), None);
        assert_eq!(sweep.failed(denied).len(), 2, "a new failure after a success is reported again");
    }

    #[test]
    fn only_objects_whose_snapshots_changed_are_announced() {
        let sweep = Sweep::new(Duration::from_millis(1), Duration::from_millis(8));
        sweep.follow("a", obj("a"), vec!["ta".into()], false);
        sweep.follow("b", obj("b"), vec!["src".into()], false);
        sweep.apply(found(vec![snap("ta", "creating"), snap("src", "exporting")]), Some(1), Instant::now());
        let mut changed = sweep.apply(found(vec![snap("ta", "available"), snap("src", "exporting")]), Some(1), Instant::now());
        changed.sort_by_key(|o| o.name.clone());
        assert_eq!(changed, vec![obj("a")]);
        // A snapshot that disappears is a change too.
        let changed = sweep.apply(found(vec![snap("ta", "available")]), Some(1), Instant::now());
        assert_eq!(changed, vec![obj("b")]);
    }

    #[test]
    fn a_recreated_object_of_the_same_name_is_another_follower_and_deleted_ones_are_forgotten() {
        let sweep = Sweep::new(Duration::from_millis(1), Duration::from_millis(8));
        sweep.follow("uid-old", obj("nightly"), vec!["nightly-mon".into()], false);
        sweep.apply(found(vec![snap("nightly-mon", "creating")]), Some(1), Instant::now());
        // Deleted and created again under the same name, following another snapshot.
        sweep.follow("uid-new", obj("nightly"), vec!["nightly-tue".into()], false);
        assert!(sweep.view("uid-new").is_none(), "no view from a sweep that predates the new object");
        let changed = sweep.apply(found(vec![snap("nightly-mon", "available"), snap("nightly-tue", "creating")]), Some(1), Instant::now());
        assert_eq!(changed, vec![obj("nightly"), obj("nightly")]);
        let view = sweep.view("uid-new").unwrap();
        assert_eq!(view.keys().collect::<Vec<_>>(), ["nightly-tue"]);
        // The old object is gone from the cache: forgotten before the next sweep.
        assert_eq!(sweep.retain_live(|_, uid| uid != "uid-old"), 1);
        assert_eq!(sweep.following(), 1);
        // Following other names (the copy, after waiting for its source) needs a fresh view.
        sweep.follow("uid-new", obj("nightly"), vec!["nightly-copy".into()], false);
        assert!(sweep.view("uid-new").is_none());
        sweep.unfollow("uid-new");
        assert_eq!(sweep.following(), 0);
    }

    /// A region holding `total` snapshots `s0`, `s1`, … (all `creating`) and `serverless`
    /// serverless snapshots of the same names (all `available`), that counts the calls.
    struct Region {
        total: usize,
        serverless: usize,
        pages: std::sync::atomic::AtomicUsize,
        by_name: std::sync::atomic::AtomicUsize,
        serverless_pages: std::sync::atomic::AtomicUsize,
    }

    impl Region {
        fn new(total: usize) -> Self {
            Self::with_serverless(total, 0)
        }
        fn with_serverless(total: usize, serverless: usize) -> Self {
            Self { total, serverless, pages: Default::default(), by_name: Default::default(), serverless_pages: Default::default() }
        }
        fn serverless_calls(&self) -> usize {
            self.serverless_pages.swap(0, std::sync::atomic::Ordering::SeqCst)
        }
        fn calls(&self) -> (usize, usize) {
            use std::sync::atomic::Ordering::SeqCst;
            (self.pages.swap(0, SeqCst), self.by_name.swap(0, SeqCst))
        }
    }

    impl SnapshotApi for Region {
        async fn describe_snapshot(&self, name: &str) -> Result<Option<SnapshotInfo>, crate::aws::AwsError> {
            self.by_name.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let index: Option<usize> = name.strip_prefix('s').and_then(|i| i.parse().ok());
            Ok(index.filter(|i| *i < self.total).map(|_| snap(name, "creating")))
        }
        async fn describe_snapshots_page(&self, marker: Option<String>) -> Result<crate::aws::SnapshotPage, crate::aws::AwsError> {
            self.pages.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let start: usize = marker.map(|m| m.parse().unwrap()).unwrap_or(0);
            let end = (start + crate::aws::SWEEP_PAGE_SIZE as usize).min(self.total);
            Ok(crate::aws::SnapshotPage {
                snapshots: (start..end).map(|i| snap(&format!("s{i}"), "creating")).collect(),
                next_marker: (end < self.total).then(|| end.to_string()),
            })
        }
        async fn owner_tag(&self, _: &str) -> Result<Option<String>, crate::aws::AwsError> {
            unreachable!("a sweep reads no tags")
        }
        async fn copy_snapshot(&self, _: &crate::aws::CopyRequest) -> Result<SnapshotInfo, crate::aws::AwsError> {
            unreachable!("a sweep copies nothing")
        }
        async fn delete_snapshot(&self, _: &str) -> Result<(), crate::aws::AwsError> {
            unreachable!("a sweep deletes nothing")
        }
        async fn export_objects(&self, _: &str, _: &str) -> Result<Vec<crate::aws::ExportObject>, crate::aws::AwsError> {
            unreachable!("a sweep lists no objects")
        }
    }

    impl crate::aws::ServerlessSnapshotApi for Region {
        async fn describe_serverless_snapshots_page(
            &self,
            token: Option<String>,
        ) -> Result<crate::aws::ServerlessSnapshotPage, crate::aws::AwsError> {
            self.serverless_pages.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let start: usize = token.map(|m| m.parse().unwrap()).unwrap_or(0);
            let end = (start + crate::aws::SERVERLESS_PAGE_SIZE as usize).min(self.serverless);
            let snapshot = |i: usize| crate::aws::ServerlessSnapshotInfo {
                name: format!("s{i}"),
                arn: Some(format!("arn:aws:elasticache:us-east-1:1:serverlesscachesnapshot:s{i}")),
                status: SnapshotStatus::Available,
                snapshot_type: Some("manual".into()),
                create_time: None,
            };
            Ok(crate::aws::ServerlessSnapshotPage {
                snapshots: (start..end).map(snapshot).collect(),
                next_token: (end < self.serverless).then(|| end.to_string()),
            })
        }
        async fn describe_serverless_snapshot(&self, _: &str) -> Result<Option<crate::aws::ServerlessSnapshotInfo>, crate::aws::AwsError> {
            unreachable!("the sweep lists serverless snapshots, never one call per object")
        }
        async fn copy_serverless_snapshot(
            &self,
            _: &crate::aws::ServerlessCopyRequest,
        ) -> Result<crate::aws::ServerlessSnapshotInfo, crate::aws::AwsError> {
            unreachable!("a sweep copies nothing")
        }
        async fn export_serverless_snapshot(&self, _: &str, _: &str) -> Result<crate::aws::ServerlessSnapshotInfo, crate::aws::AwsError> {
            unreachable!("a sweep exports nothing")
        }
        async fn delete_serverless_snapshot(&self, _: &str) -> Result<(), crate::aws::AwsError> {
            unreachable!("a sweep deletes nothing")
        }
    }

    #[tokio::test]
    async fn serverless_snapshots_are_followed_by_one_paginated_listing_beside_the_node_based_sweep() {
        let region = Region::with_serverless(500, 120); // 10 node-based pages, 3 serverless pages
        let sweep = Sweep::new(Duration::from_millis(1), Duration::from_millis(8));
        // Only serverless objects in flight: no DescribeSnapshots at all.
        for i in 0..30 {
            sweep.follow(&format!("sls-{i}"), obj(&format!("sls-{i}")), vec![format!("S{i}")], true);
        }
        sweep.sweep_once(&region).await.unwrap();
        assert_eq!((region.calls(), region.serverless_calls()), ((0, 0), 3), "one listing for 30 objects, never one call each");
        let view = sweep.view("sls-7").unwrap();
        assert_eq!(view["S7"].as_ref().unwrap().status, SnapshotStatus::Available, "found by its lowercase name");
        // A node-based object following the same name sees the node-based snapshot, not the serverless one.
        sweep.follow("node", obj("node"), vec!["s7".into()], false);
        sweep.sweep_once(&region).await.unwrap();
        assert_eq!((region.calls(), region.serverless_calls()), ((10, 0), 3));
        assert_eq!(sweep.view("node").unwrap()["s7"].as_ref().unwrap().status, SnapshotStatus::parse("creating"));
        assert_eq!(sweep.view("sls-7").unwrap()["S7"].as_ref().unwrap().status, SnapshotStatus::Available);
        // Once the serverless objects are done, only the node-based sweep runs.
        for i in 0..30 {
            sweep.unfollow(&format!("sls-{i}"));
        }
        sweep.sweep_once(&region).await.unwrap();
        assert_eq!(region.serverless_calls(), 0);
        // A serverless snapshot that disappears is a change for its follower.
        let gone = Region::with_serverless(0, 5);
        sweep.follow("late", obj("late"), vec!["s9".into()], true);
        sweep.sweep_once(&gone).await.unwrap();
        assert!(sweep.view("late").unwrap()["s9"].is_none());
    }

    #[tokio::test]
    async fn a_sweep_reads_by_name_only_when_that_takes_fewer_calls_than_listing_the_region() {
        let region = Region::new(500); // 10 pages of 50
        let sweep = Sweep::new(Duration::from_millis(1), Duration::from_millis(8));
        sweep.follow("a", obj("a"), vec!["S1".into(), "s2".into(), "gone".into()], false);
        // The first sweep does not know the region's size: it lists it, keeping only what is followed.
        sweep.sweep_once(&region).await.unwrap();
        assert_eq!(region.calls(), (10, 0));
        let view = sweep.view("a").unwrap();
        assert!(view["S1"].is_some() && view["s2"].is_some() && view["gone"].is_none());
        assert_eq!(sweep.state.lock().unwrap().snapshots.len(), 2, "only followed snapshots are kept");
        // Three names cost three calls, fewer than the ten pages of a listing.
        sweep.sweep_once(&region).await.unwrap();
        assert_eq!(region.calls(), (0, 3));
        assert!(sweep.view("a").unwrap()["s2"].is_some());
        // Following as many names as the listing has pages: listing is no dearer, so list.
        sweep.follow("b", obj("b"), (100..107).map(|i| format!("s{i}")).collect(), false);
        sweep.sweep_once(&region).await.unwrap();
        assert_eq!(region.calls(), (10, 0));
        assert_eq!(sweep.view("b").unwrap().values().filter(|s| s.is_some()).count(), 7);
    }

    #[test]
    fn reading_by_name_needs_a_measured_listing_that_costs_more() {
        assert!(!read_by_name(1, None));
        assert!(read_by_name(3, Some(10)));
        assert!(!read_by_name(10, Some(10)));
        assert!(!read_by_name(400, Some(10)));
    }
}
