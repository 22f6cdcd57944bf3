//! Tests of the shared sweep: views, announcements, and the calls each kind of listing costs.
use super::*;
use crate::aws::SnapshotStatus;

fn obj(name: &str) -> ObjectRef<SnapshotExport> {
    ObjectRef::new(name).within("ns")
}
fn snap(name: &str, status: &str) -> SnapshotInfo {
    SnapshotInfo { name: name.into(), arn: None, status: SnapshotStatus::parse(status), node_group_ids: vec!["0001".into()] }
}
fn found(snapshots: Vec<SnapshotInfo>) -> HashMap<String, SnapshotInfo> {
    snapshots.into_iter().map(|s| (s.name.clone(), s)).collect()
}

#[test]
fn views_come_only_from_sweeps_that_started_after_following_began() {
    let sweep = Sweep::new(Duration::from_millis(1), Duration::from_millis(8));
    let before = Instant::now();
    sweep.follow("a", obj("a"), vec!["t".into()], false);
    assert!(sweep.view("a").is_none(), "no sweep yet");
    // A sweep that started before following began says nothing about our request.
    let changed = sweep.apply(false, found(vec![snap("t", "creating")]), Some(1), before);
    assert!(changed.is_empty());
    assert!(sweep.view("a").is_none());
    let changed = sweep.apply(false, found(vec![snap("t", "creating")]), Some(1), Instant::now());
    assert_eq!(changed, vec![obj("a")], "first view announced");
    assert_eq!(sweep.view("a").unwrap()["t"].as_ref().unwrap().status, SnapshotStatus::parse("creating"));
    // Unchanged: nobody is reconciled.
    let changed = sweep.apply(false, found(vec![snap("t", "creating")]), Some(1), Instant::now());
    assert!(changed.is_empty());
    let changed = sweep.apply(false, found(vec![snap("t", "available")]), Some(1), Instant::now());
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
    let mut announced = sweep.failed(false, denied.clone());
    announced.sort_by_key(|o| o.name.clone());
    assert_eq!(announced, vec![obj("a"), obj("b")]);
    assert_eq!(sweep.failure(false), Some(denied.clone()));
    assert!(sweep.failed(false, denied.clone()).is_empty(), "the same failure again: no new reconcile");
    sweep.apply(false, found(vec![snap("ta", "creating")]), Some(1), Instant::now());
    assert_eq!(sweep.failure(false), None);
    assert_eq!(sweep.failed(false, denied).len(), 2, "a new failure after a success is reported again");
}

#[test]
fn only_objects_whose_snapshots_changed_are_announced() {
    let sweep = Sweep::new(Duration::from_millis(1), Duration::from_millis(8));
    sweep.follow("a", obj("a"), vec!["ta".into()], false);
    sweep.follow("b", obj("b"), vec!["src".into()], false);
    sweep.apply(false, found(vec![snap("ta", "creating"), snap("src", "exporting")]), Some(1), Instant::now());
    let mut changed = sweep.apply(false, found(vec![snap("ta", "available"), snap("src", "exporting")]), Some(1), Instant::now());
    changed.sort_by_key(|o| o.name.clone());
    assert_eq!(changed, vec![obj("a")]);
    // A snapshot that disappears is a change too.
    let changed = sweep.apply(false, found(vec![snap("ta", "available")]), Some(1), Instant::now());
    assert_eq!(changed, vec![obj("b")]);
}

#[test]
fn a_recreated_object_of_the_same_name_is_another_follower_and_deleted_ones_are_forgotten() {
    let sweep = Sweep::new(Duration::from_millis(1), Duration::from_millis(8));
    sweep.follow("uid-old", obj("nightly"), vec!["nightly-mon".into()], false);
    sweep.apply(false, found(vec![snap("nightly-mon", "creating")]), Some(1), Instant::now());
    // Deleted and created again under the same name, following another snapshot.
    sweep.follow("uid-new", obj("nightly"), vec!["nightly-tue".into()], false);
    assert!(sweep.view("uid-new").is_none(), "no view from a sweep that predates the new object");
    let changed =
        sweep.apply(false, found(vec![snap("nightly-mon", "available"), snap("nightly-tue", "creating")]), Some(1), Instant::now());
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
    /// DescribeServerlessCacheSnapshots is denied (the node-based calls still answer).
    serverless_denied: bool,
    pages: std::sync::atomic::AtomicUsize,
    by_name: std::sync::atomic::AtomicUsize,
    serverless_pages: std::sync::atomic::AtomicUsize,
}

impl Region {
    fn new(total: usize) -> Self {
        Self::with_serverless(total, 0)
    }
    fn with_serverless(total: usize, serverless: usize) -> Self {
        Self {
            total,
            serverless,
            serverless_denied: false,
            pages: Default::default(),
            by_name: Default::default(),
            serverless_pages: Default::default(),
        }
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
        if self.serverless_denied {
            return Err(denied("DescribeServerlessCacheSnapshots"));
        }
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
    assert_eq!(sweep.sweep_once(&region).await.1, None);
    assert_eq!((region.calls(), region.serverless_calls()), ((0, 0), 3), "one listing for 30 objects, never one call each");
    let view = sweep.view("sls-7").unwrap();
    assert_eq!(view["S7"].as_ref().unwrap().status, SnapshotStatus::Available, "found by its lowercase name");
    // A node-based object following the same name sees the node-based snapshot, not the serverless one.
    sweep.follow("node", obj("node"), vec!["s7".into()], false);
    assert_eq!(sweep.sweep_once(&region).await.1, None);
    assert_eq!((region.calls(), region.serverless_calls()), ((10, 0), 3));
    assert_eq!(sweep.view("node").unwrap()["s7"].as_ref().unwrap().status, SnapshotStatus::parse("creating"));
    assert_eq!(sweep.view("sls-7").unwrap()["S7"].as_ref().unwrap().status, SnapshotStatus::Available);
    // Once the serverless objects are done, only the node-based sweep runs.
    for i in 0..30 {
        sweep.unfollow(&format!("sls-{i}"));
    }
    assert_eq!(sweep.sweep_once(&region).await.1, None);
    assert_eq!(region.serverless_calls(), 0);
    // A serverless snapshot that disappears is a change for its follower.
    let gone = Region::with_serverless(0, 5);
    sweep.follow("late", obj("late"), vec!["s9".into()], true);
    assert_eq!(sweep.sweep_once(&gone).await.1, None);
    assert!(sweep.view("late").unwrap()["s9"].is_none());
}

fn denied(operation: &'static str) -> crate::aws::AwsError {
    crate::aws::AwsError::classify(operation, Some("AccessDenied"), Some("not allowed"), Some(403))
}

/// A failing serverless listing (M3: DescribeServerlessCacheSnapshots denied) does not hold
/// back the node-based results of the same sweep: each kind's result is applied, and each
/// kind keeps its own failure, reported to its own followers only.
#[tokio::test]
async fn a_failing_serverless_listing_does_not_hold_back_the_node_based_results() {
    let mut region = Region::with_serverless(5, 5);
    region.serverless_denied = true;
    let sweep = Sweep::new(Duration::from_millis(1), Duration::from_millis(8));
    sweep.follow("node", obj("node"), vec!["s1".into()], false);
    sweep.follow("sls", obj("sls"), vec!["s2".into()], true);
    let (mut announced, failure) = sweep.sweep_once(&region).await;
    announced.sort_by_key(|o| o.name.clone());
    assert_eq!(announced, vec![obj("node"), obj("sls")], "the node-based view and the serverless failure");
    assert_eq!(failure, Some(denied("DescribeServerlessCacheSnapshots")));
    assert_eq!(sweep.view("node").unwrap()["s1"].as_ref().unwrap().status, SnapshotStatus::parse("creating"));
    assert!(sweep.view("sls").is_none(), "no view from a listing that failed");
    assert_eq!((sweep.failure(false), sweep.failure(true)), (None, Some(denied("DescribeServerlessCacheSnapshots"))));
    // The same failure again: the serverless follower is not told twice; the node-based one
    // has no change to hear about.
    assert_eq!(sweep.sweep_once(&region).await.0, Vec::<ObjectRef<SnapshotExport>>::new());
    region.serverless_denied = false;
    let (announced, failure) = sweep.sweep_once(&region).await;
    assert_eq!((announced, failure), (vec![obj("sls")], None), "the serverless follower's first view");
    assert_eq!(sweep.failure(true), None);
}

#[tokio::test]
async fn a_sweep_reads_by_name_only_when_that_takes_fewer_calls_than_listing_the_region() {
    let region = Region::new(500); // 10 pages of 50
    let sweep = Sweep::new(Duration::from_millis(1), Duration::from_millis(8));
    sweep.follow("a", obj("a"), vec!["S1".into(), "s2".into(), "gone".into()], false);
    // The first sweep does not know the region's size: it lists it, keeping only what is followed.
    assert_eq!(sweep.sweep_once(&region).await.1, None);
    assert_eq!(region.calls(), (10, 0));
    let view = sweep.view("a").unwrap();
    assert!(view["S1"].is_some() && view["s2"].is_some() && view["gone"].is_none());
    assert_eq!(sweep.state.lock().unwrap().snapshots.len(), 2, "only followed snapshots are kept");
    // Three names cost three calls, fewer than the ten pages of a listing.
    assert_eq!(sweep.sweep_once(&region).await.1, None);
    assert_eq!(region.calls(), (0, 3));
    assert!(sweep.view("a").unwrap()["s2"].is_some());
    // Following as many names as the listing has pages: listing is no dearer, so list.
    sweep.follow("b", obj("b"), (100..107).map(|i| format!("s{i}")).collect(), false);
    assert_eq!(sweep.sweep_once(&region).await.1, None);
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

/// A kind nobody follows is not read, so its failure could never clear by a read: it is
/// forgotten with its last follower (the next object of that kind must not report an old error).
#[test]
fn a_kind_failure_is_forgotten_with_its_last_follower() {
    let sweep = Sweep::new(Duration::from_millis(1), Duration::from_millis(8));
    sweep.follow("sls", obj("sls"), vec!["s1".into()], true);
    sweep.follow("node", obj("node"), vec!["s2".into()], false);
    let err = denied("DescribeServerlessCacheSnapshots");
    assert_eq!(sweep.failed(true, err.clone()), vec![obj("sls")]);
    sweep.failed(false, denied("DescribeSnapshots"));
    sweep.unfollow("sls");
    assert_eq!(sweep.failure(true), None, "nobody follows serverless snapshots any more");
    assert_eq!(sweep.failure(false), Some(denied("DescribeSnapshots")), "the node-based follower still reports its own");
    assert_eq!(sweep.retain_live(|_, _| false), 1);
    assert_eq!(sweep.failure(false), None);
}

/// Issue 30, step 7: the interval doubles while nothing changes, up to minutes; a request
/// accepted then must not wait for it. Timed on tokio's paused clock.
#[tokio::test(start_paused = true)]
async fn a_newly_followed_object_is_looked_at_within_the_minimum_interval_and_a_burst_costs_one_sweep() {
    let region = std::sync::Arc::new(Region::new(10));
    let min = Duration::from_secs(5);
    let sweep = std::sync::Arc::new(Sweep::new(min, Duration::from_secs(300)));
    let mut announced = sweep.subscribe();
    sweep.follow("a", obj("a"), vec!["s1".into()], false);
    let runner = {
        let (sweep, region) = (sweep.clone(), region.clone());
        tokio::spawn(async move { sweep.run(&*region, |_, _| true).await })
    };
    assert_eq!(announced.recv().await.unwrap(), obj("a"), "the first view");
    // Nothing changes: the interval doubles to its 300 s maximum (5, 10, ..., 160, 300).
    tokio::time::sleep(Duration::from_secs(5 + 10 + 20 + 40 + 80 + 160 + 1)).await;
    region.calls();
    let asked = tokio::time::Instant::now();
    for i in 0..20 {
        sweep.follow(&format!("b{i}"), obj(&format!("b{i}")), vec!["s2".into()], false);
    }
    while announced.recv().await.unwrap() != obj("b0") {}
    assert!(asked.elapsed() <= min, "first look {:?} after the request (at most {min:?})", asked.elapsed());
    assert_eq!(region.calls(), (1, 0), "20 new objects, one sweep");
    // An accepted request of an object already following the same snapshot is followed afresh:
    // its next view comes from a sweep that started after the acceptance, within the minimum.
    tokio::time::sleep(Duration::from_secs(5 + 10 + 20 + 40 + 80 + 160 + 1)).await;
    assert!(sweep.view("a").is_some());
    let asked = tokio::time::Instant::now();
    sweep.follow_accepted("a", obj("a"), vec!["s1".into()], false);
    assert_eq!(sweep.view("a"), None, "no view from before the acceptance");
    while announced.recv().await.unwrap() != obj("a") {}
    assert!(asked.elapsed() <= min && sweep.view("a").is_some(), "{:?}", asked.elapsed());
    // Never sooner than the minimum from the first new object: three arriving a second apart
    // share one sweep, 5 s after the first.
    tokio::time::sleep(Duration::from_secs(5 + 10 + 20 + 40 + 80 + 160 + 1)).await;
    region.calls();
    let asked = tokio::time::Instant::now();
    for i in 0..3 {
        sweep.follow(&format!("c{i}"), obj(&format!("c{i}")), vec!["s3".into()], false);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    while announced.recv().await.unwrap() != obj("c2") {}
    assert_eq!(asked.elapsed(), min, "one sweep, the minimum after the first new object");
    assert_eq!(region.calls(), (1, 0));
    runner.abort();
}
