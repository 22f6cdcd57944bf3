//! One shared, paginated DescribeSnapshots sweep follows every copy and export in flight, so the
//! ElastiCache calls spent on following grow with pages of snapshots (50 per call), not with the
//! number of exports; serverless copies and exports are followed beside them by one paginated
//! DescribeServerlessCacheSnapshots listing per sweep (each kind is read only while some object
//! follows it). After each sweep, only the objects whose snapshots changed are reconciled; the
//! interval doubles while nothing changes, and nothing is swept while nothing is followed.

use crate::api::SnapshotExport;
use crate::aws::{SnapshotApi, SnapshotApis, SnapshotInfo};
use kube::runtime::reflector::ObjectRef;
use prometheus_client::metrics::gauge::Gauge;
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

/// The index of a kind in the per-kind state: node-based 0, serverless 1.
fn kind(serverless: bool) -> usize {
    usize::from(serverless)
}

#[derive(Default)]
struct State {
    /// By object UID: an object deleted and created again under the same name is another
    /// object, and must not inherit what the old one followed.
    followers: HashMap<String, Follow>,
    /// The followed snapshots the last complete read of each kind found, by kind and lowercase name.
    snapshots: HashMap<Key, SnapshotInfo>,
    /// When the last complete read of each kind started (`[node-based, serverless]`).
    swept_at: [Option<Instant>; 2],
    /// Pages the last listing of every snapshot took.
    listing_pages: Option<usize>,
    /// Why the last read of each kind failed, until one succeeds: that kind's followers report
    /// it (a failing serverless listing must not hold back the node-based results, or the reverse).
    failure: [Option<crate::aws::AwsError>; 2],
}

impl State {
    /// A kind nobody follows any more is not read, so its failure could never clear: forget it
    /// (the next object of that kind must not report an old error, e.g. one fixed meanwhile).
    fn forget_idle_failures(&mut self) {
        for serverless in [false, true] {
            if !self.followers.values().any(|f| f.serverless == serverless) {
                self.failure[kind(serverless)] = None;
            }
        }
    }
}

pub struct Sweep {
    state: Mutex<State>,
    wake: Notify,
    /// A new object is followed (a request just accepted): its first look comes within the
    /// minimum interval, whatever the interval has backed off to.
    hurry: Notify,
    changed: broadcast::Sender<ObjectRef<SnapshotExport>>,
    min: Duration,
    max: Duration,
    /// The objects followed as of the last round; 0 once the loop is idle (no call in flight).
    followed: Gauge,
}

/// A snapshot as the latest sweep saw it: `None` when it was not listed.
pub type SweptSnapshot = Option<SnapshotInfo>;

impl Sweep {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            state: Mutex::default(),
            wake: Notify::new(),
            hurry: Notify::new(),
            changed: broadcast::channel(16_384).0,
            min,
            max,
            followed: Gauge::default(),
        }
    }

    /// Report the objects followed in `gauge` (`ecx_sweep_followed_objects`).
    pub fn with_gauge(mut self, gauge: Gauge) -> Self {
        self.followed = gauge;
        self
    }

    /// Objects to reconcile because a sweep saw their snapshots change.
    pub fn subscribe(&self) -> broadcast::Receiver<ObjectRef<SnapshotExport>> {
        self.changed.subscribe()
    }

    /// Follow `names` (serverless snapshots when `serverless`) for the object `uid` (idempotent:
    /// an object already following the same names keeps its `since`; other names, e.g. the copy
    /// once its source was available, start afresh).
    pub fn follow(&self, uid: &str, obj: ObjectRef<SnapshotExport>, names: Vec<String>, serverless: bool) {
        self.follow_from(uid, obj, names, serverless, false);
    }

    /// Follow `names` for the object `uid` whose request AWS just accepted: afresh, so that its
    /// first view comes from a sweep that started after the acceptance (an export may start and
    /// end between two looks that both say `available`), and within the minimum interval.
    pub fn follow_accepted(&self, uid: &str, obj: ObjectRef<SnapshotExport>, names: Vec<String>, serverless: bool) {
        self.follow_from(uid, obj, names, serverless, true);
    }

    fn follow_from(&self, uid: &str, obj: ObjectRef<SnapshotExport>, names: Vec<String>, serverless: bool, anew: bool) {
        let mut state = self.state.lock().expect("sweep lock");
        let was_idle = state.followers.is_empty();
        let new = match state.followers.get(uid) {
            Some(f) if !anew && f.names == names && f.serverless == serverless => false,
            _ => {
                state.followers.insert(uid.to_string(), Follow { obj, names, serverless, since: Instant::now() });
                true
            }
        };
        drop(state);
        if was_idle {
            self.wake.notify_one();
        }
        if new {
            self.hurry.notify_one();
        }
    }

    pub fn unfollow(&self, uid: &str) {
        let mut state = self.state.lock().expect("sweep lock");
        state.followers.remove(uid);
        state.forget_idle_failures();
    }

    /// Forget every followed object for which `live` is false (deleted objects whose deletion
    /// the watch did not report, e.g. while it was down); returns how many were forgotten.
    pub fn retain_live(&self, live: impl Fn(&ObjectRef<SnapshotExport>, &str) -> bool) -> usize {
        let mut state = self.state.lock().expect("sweep lock");
        let before = state.followers.len();
        state.followers.retain(|uid, f| live(&f.obj, uid));
        state.forget_idle_failures();
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
        if state.swept_at[kind(follow.serverless)].is_none_or(|at| at < follow.since) {
            return None;
        }
        Some(follow.names.iter().map(|n| (n.clone(), state.snapshots.get(&(follow.serverless, n.to_ascii_lowercase())).cloned())).collect())
    }

    /// Why the latest read of the `serverless` kind failed, while no later one has succeeded.
    pub fn failure(&self, serverless: bool) -> Option<crate::aws::AwsError> {
        self.state.lock().expect("sweep lock").failure[kind(serverless)].clone()
    }

    /// Record a failed read of the `serverless` kind; returns that kind's followers to
    /// reconcile so that they report it (only when the failure is new or different: one status
    /// write per failure, not per attempt).
    fn failed(&self, serverless: bool, err: crate::aws::AwsError) -> Vec<ObjectRef<SnapshotExport>> {
        let mut state = self.state.lock().expect("sweep lock");
        if state.failure[kind(serverless)].as_ref() == Some(&err) {
            return vec![];
        }
        state.failure[kind(serverless)] = Some(err);
        state.followers.values().filter(|f| f.serverless == serverless).map(|f| f.obj.clone()).collect()
    }

    /// Run sweeps forever (spawn it): wait while nothing is followed, sweep every interval
    /// otherwise, and announce the objects whose snapshots changed (or that await a first view).
    /// Before each sweep, objects that `live` no longer knows (deleted) are forgotten.
    pub async fn run<A: SnapshotApis>(&self, aws: &A, live: impl Fn(&ObjectRef<SnapshotExport>, &str) -> bool) {
        let mut interval = self.min;
        loop {
            if self.following() == 0 {
                interval = self.min;
                self.followed.set(0);
                self.wake.notified().await;
                continue;
            }
            self.wait(interval).await;
            let forgotten = self.retain_live(&live);
            if forgotten > 0 {
                debug!(forgotten, "stopped following deleted objects");
            }
            if self.following() == 0 {
                // Everything finished while we slept: an idle operator makes no AWS call.
                continue;
            }
            self.followed.set(self.following() as i64);
            let (changed, failure) = self.sweep_once(aws).await;
            // A kind whose read fails stays announced once per failure; the other kind's changes
            // still keep the pace (a denied serverless listing must not slow node-based following).
            interval = if changed.is_empty() { (interval * 2).min(self.max) } else { self.min };
            if let Some(err) = failure {
                warn!(error = %err, retry_in = ?interval, "snapshot sweep failed");
            }
            for obj in changed {
                let _ = self.changed.send(obj);
            }
        }
    }

    /// Wait `interval`, or less once a new object is followed: at most the minimum interval from
    /// then (never sooner, so a burst of new requests costs no more sweeps than the minimum
    /// interval allows).
    async fn wait(&self, interval: Duration) {
        let mut deadline = tokio::time::Instant::now() + interval;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                _ = self.hurry.notified() => deadline = deadline.min(tokio::time::Instant::now() + self.min),
            }
        }
    }

    /// One sweep: read the followed node-based snapshots (by name or by listing, whichever takes
    /// fewer calls) and the followed serverless ones (one paginated listing), store each kind's
    /// result, and return the objects to reconcile (their snapshots changed, or their kind's read
    /// failed anew) and a failure, if any. A kind nobody follows costs no call.
    async fn sweep_once<A: SnapshotApis>(&self, aws: &A) -> (Vec<ObjectRef<SnapshotExport>>, Option<crate::aws::AwsError>) {
        let started = Instant::now();
        let (names, serverless_names, listing_pages) = self.followed_names();
        let mut changed = Vec::new();
        let mut failure = None;
        if !names.is_empty() {
            let read = if read_by_name(names.len(), listing_pages) {
                describe_each(aws, &names).await.map(|found| (found, None))
            } else {
                list_all(aws, &names).await.map(|(found, pages)| (found, Some(pages)))
            };
            match read {
                Ok((found, pages)) => changed.extend(self.apply(false, found, pages, started)),
                Err(err) => {
                    changed.extend(self.failed(false, err.clone()));
                    failure = Some(err);
                }
            }
        }
        if !serverless_names.is_empty() {
            match super::serverless::list_followed(aws, &serverless_names).await {
                Ok(listed) => changed.extend(self.apply(true, listed, None, started)),
                Err(err) => {
                    changed.extend(self.failed(true, err.clone()));
                    failure = failure.or(Some(err));
                }
            }
        }
        debug!(
            names = names.len(),
            serverless = serverless_names.len(),
            failed = failure.is_some(),
            changed = changed.len(),
            following = self.following(),
            "swept snapshots"
        );
        (changed, failure)
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

    /// Store one kind's read (the followed snapshots of the `serverless` kind it found, by
    /// lowercase name, and its page count if it listed every node-based snapshot); return that
    /// kind's followers to reconcile.
    fn apply(
        &self,
        serverless: bool,
        fresh: HashMap<String, SnapshotInfo>,
        pages: Option<usize>,
        started: Instant,
    ) -> Vec<ObjectRef<SnapshotExport>> {
        let mut state = self.state.lock().expect("sweep lock");
        if pages.is_some() {
            state.listing_pages = pages;
        }
        let fresh: HashMap<Key, SnapshotInfo> = fresh.into_iter().map(|(name, s)| ((serverless, name), s)).collect();
        let key = |f: &Follow, n: &String| (f.serverless, n.to_ascii_lowercase());
        let mine = |f: &&Follow| f.serverless == serverless;
        let changed_names: HashSet<Key> = state
            .followers
            .values()
            .filter(mine)
            .flat_map(|f| f.names.iter().map(|n| key(f, n)))
            .filter(|k| state.snapshots.get(k).map(|s| &s.status) != fresh.get(k).map(|s| &s.status))
            .collect();
        // Objects this read can speak for (followed since before it started) whose snapshots
        // changed, or which get their first view from it.
        let first_view = |f: &Follow| state.swept_at[kind(serverless)].is_none_or(|at| at < f.since);
        let changed: Vec<ObjectRef<SnapshotExport>> = state
            .followers
            .values()
            .filter(mine)
            .filter(|f| f.since <= started && (first_view(f) || f.names.iter().any(|n| changed_names.contains(&key(f, n)))))
            .map(|f| f.obj.clone())
            .collect();
        state.snapshots.retain(|(of_kind, _), _| *of_kind != serverless);
        state.snapshots.extend(fresh);
        state.swept_at[kind(serverless)] = Some(started);
        state.failure[kind(serverless)] = None;
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
mod tests;
