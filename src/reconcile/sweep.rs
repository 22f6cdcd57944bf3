//! One shared, paginated DescribeSnapshots sweep follows every copy and export in flight, so the
//! ElastiCache calls spent on following grow with pages of snapshots (50 per call), not with the
//! number of exports. After each sweep, only the objects whose snapshots changed are reconciled;
//! the interval doubles while nothing changes, and nothing is swept while nothing is followed.

use crate::api::SnapshotExport;
use crate::aws::{SnapshotApi, SnapshotInfo};
use kube::runtime::reflector::ObjectRef;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, Notify};
use tracing::{debug, warn};

/// What one followed object watches: snapshot names, and since when (a view is only served from
/// a sweep that started after that, so it reflects the request that made us follow).
struct Follow {
    names: Vec<String>,
    since: Instant,
}

#[derive(Default)]
struct State {
    followers: HashMap<ObjectRef<SnapshotExport>, Follow>,
    /// Snapshots of the last complete sweep, by name.
    snapshots: HashMap<String, SnapshotInfo>,
    /// When the last complete sweep started.
    swept_at: Option<Instant>,
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

    /// Follow `names` for `obj` (idempotent: an object already followed keeps its `since`).
    pub fn follow(&self, obj: ObjectRef<SnapshotExport>, names: Vec<String>) {
        let mut state = self.state.lock().expect("sweep lock");
        let was_idle = state.followers.is_empty();
        state.followers.entry(obj).or_insert_with(|| Follow { names, since: Instant::now() });
        drop(state);
        if was_idle {
            self.wake.notify_one();
        }
    }

    pub fn unfollow(&self, obj: &ObjectRef<SnapshotExport>) {
        self.state.lock().expect("sweep lock").followers.remove(obj);
    }

    pub fn following(&self) -> usize {
        self.state.lock().expect("sweep lock").followers.len()
    }

    /// The followed snapshots of `obj` from the latest sweep, once a sweep has started after
    /// `obj` began to be followed; `None` until then (or when `obj` is not followed).
    pub fn view(&self, obj: &ObjectRef<SnapshotExport>) -> Option<HashMap<String, SweptSnapshot>> {
        let state = self.state.lock().expect("sweep lock");
        let follow = state.followers.get(obj)?;
        if state.swept_at.is_none_or(|at| at < follow.since) {
            return None;
        }
        Some(follow.names.iter().map(|n| (n.clone(), state.snapshots.get(&n.to_ascii_lowercase()).cloned())).collect())
    }

    /// Run sweeps forever (spawn it): wait while nothing is followed, sweep every interval
    /// otherwise, and announce the objects whose snapshots changed (or that await a first view).
    pub async fn run<A: SnapshotApi>(&self, aws: &A) {
        let mut interval = self.min;
        loop {
            if self.following() == 0 {
                interval = self.min;
                self.wake.notified().await;
                continue;
            }
            tokio::time::sleep(interval).await;
            if self.following() == 0 {
                // Everything finished while we slept: an idle operator makes no AWS call.
                continue;
            }
            let started = Instant::now();
            let listed = match list_all(aws).await {
                Ok(listed) => listed,
                Err(err) => {
                    warn!(error = %err, retry_in = ?interval, "snapshot sweep failed");
                    interval = (interval * 2).min(self.max);
                    continue;
                }
            };
            let (changed, pages) = self.apply(listed, started);
            debug!(pages, changed = changed.len(), following = self.following(), "swept snapshots");
            interval = if changed.is_empty() { (interval * 2).min(self.max) } else { self.min };
            for obj in changed {
                let _ = self.changed.send(obj);
            }
        }
    }

    /// Store a sweep's result; return the followed objects to reconcile, and the page count.
    fn apply(&self, listed: (Vec<SnapshotInfo>, usize), started: Instant) -> (Vec<ObjectRef<SnapshotExport>>, usize) {
        let (snapshots, pages) = listed;
        // Keyed in lowercase: ElastiCache stores snapshot names in lowercase.
        let fresh: HashMap<String, SnapshotInfo> = snapshots.into_iter().map(|s| (s.name.to_ascii_lowercase(), s)).collect();
        let mut state = self.state.lock().expect("sweep lock");
        let changed_names: HashSet<&String> = state
            .followers
            .values()
            .flat_map(|f| f.names.iter())
            .filter(|n| {
                let key = n.to_ascii_lowercase();
                state.snapshots.get(&key).map(|s| &s.status) != fresh.get(&key).map(|s| &s.status)
            })
            .collect();
        // Objects this sweep can speak for (followed since before it started) whose snapshots
        // changed, or which get their first view from it.
        let first_view = |f: &Follow| state.swept_at.is_none_or(|at| at < f.since);
        let changed: Vec<ObjectRef<SnapshotExport>> = state
            .followers
            .iter()
            .filter(|(_, f)| f.since <= started && (first_view(f) || f.names.iter().any(|n| changed_names.contains(n))))
            .map(|(o, _)| o.clone())
            .collect();
        state.snapshots = fresh;
        state.swept_at = Some(started);
        (changed, pages)
    }
}

async fn list_all<A: SnapshotApi>(aws: &A) -> Result<(Vec<SnapshotInfo>, usize), crate::aws::AwsError> {
    let mut all = Vec::new();
    let mut marker = None;
    let mut pages = 0;
    loop {
        let page = aws.describe_snapshots_page(marker.clone()).await?;
        pages += 1;
        all.extend(page.snapshots);
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
            _ => return Ok((all, pages)),
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
        SnapshotInfo { name: name.into(), arn: None, status: SnapshotStatus::parse(status), node_groups: 1 }
    }

    #[test]
    fn views_come_only_from_sweeps_that_started_after_following_began() {
        let sweep = Sweep::new(Duration::from_millis(1), Duration::from_millis(8));
        let before = Instant::now();
        sweep.follow(obj("a"), vec!["t".into()]);
        assert!(sweep.view(&obj("a")).is_none(), "no sweep yet");
        // A sweep that started before following began says nothing about our request.
        let (changed, _) = sweep.apply((vec![snap("t", "creating")], 1), before);
        assert!(changed.is_empty());
        assert!(sweep.view(&obj("a")).is_none());
        let (changed, _) = sweep.apply((vec![snap("t", "creating")], 1), Instant::now());
        assert_eq!(changed, vec![obj("a")], "first view announced");
        assert_eq!(sweep.view(&obj("a")).unwrap()["t"].as_ref().unwrap().status, SnapshotStatus::parse("creating"));
        // Unchanged: nobody is reconciled.
        let (changed, _) = sweep.apply((vec![snap("t", "creating")], 1), Instant::now());
        assert!(changed.is_empty());
        let (changed, _) = sweep.apply((vec![snap("t", "available")], 1), Instant::now());
        assert_eq!(changed, vec![obj("a")]);
        sweep.unfollow(&obj("a"));
        assert!(sweep.view(&obj("a")).is_none());
    }

    #[test]
    fn only_objects_whose_snapshots_changed_are_announced() {
        let sweep = Sweep::new(Duration::from_millis(1), Duration::from_millis(8));
        sweep.follow(obj("a"), vec!["ta".into()]);
        sweep.follow(obj("b"), vec!["src".into()]);
        sweep.apply((vec![snap("ta", "creating"), snap("src", "exporting")], 2), Instant::now());
        let (mut changed, _) = sweep.apply((vec![snap("ta", "available"), snap("src", "exporting")], 2), Instant::now());
        changed.sort_by_key(|o| o.name.clone());
        assert_eq!(changed, vec![obj("a")]);
        // A snapshot that disappears is a change too.
        let (changed, _) = sweep.apply((vec![snap("ta", "available")], 1), Instant::now());
        assert_eq!(changed, vec![obj("b")]);
    }
}
