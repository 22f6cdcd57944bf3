//! Which runs retention deletes, and which S3 objects go with them.
//!
//! `keepLast` counts successful runs: the newest N are kept, and every finished run (completed
//! or failed) older than the oldest kept one is deleted. Runs in flight are never deleted, nor
//! are failed runs newer than the oldest kept success (they show what went wrong recently).
//!
//! With `pruneExportedObjects`, a deleted run's S3 objects are deleted too, but only the keys
//! recorded in that run's status, and only when the object was written after the run's request:
//! an object someone else wrote under that key is never touched, and nothing is ever listed by
//! prefix.

use jiff::Timestamp;

/// What retention needs to know of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunFacts {
    pub name: String,
    pub scheduled: Timestamp,
    pub state: RunState,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    InFlight,
    Succeeded,
    Failed,
}

/// The runs to delete, oldest first. `keep_last == 0` keeps all.
pub fn runs_to_delete(runs: &[RunFacts], keep_last: u32) -> Vec<String> {
    if keep_last == 0 {
        return Vec::new();
    }
    let mut sorted: Vec<&RunFacts> = runs.iter().collect();
    sorted.sort_by(|a, b| b.scheduled.cmp(&a.scheduled).then_with(|| b.name.cmp(&a.name)));
    let Some(oldest_kept) =
        sorted.iter().filter(|r| r.state == RunState::Succeeded).nth(keep_last as usize - 1).map(|r| (r.scheduled, &r.name))
    else {
        return Vec::new();
    };
    let mut doomed: Vec<String> = sorted
        .iter()
        .filter(|r| r.state != RunState::InFlight)
        .filter(|r| (r.scheduled, &r.name) < oldest_kept)
        .map(|r| r.name.clone())
        .collect();
    doomed.reverse();
    doomed
}

/// One exported object of a run, as HeadObject saw it (`None` when it is gone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenObject {
    pub url: String,
    pub last_modified: Option<Timestamp>,
}

/// The `s3://bucket/key` URLs to delete for a pruned run: recorded in its status, still there,
/// and written at or after its request (S3 times have one-second resolution, so the request
/// time is compared at whole seconds).
pub fn objects_to_prune(recorded: &[String], requested: Option<Timestamp>, seen: &[SeenObject]) -> Vec<String> {
    let Some(requested) = requested else { return Vec::new() };
    let floor = Timestamp::from_second(requested.as_second()).unwrap_or(requested);
    seen.iter()
        .filter(|o| recorded.contains(&o.url))
        .filter(|o| o.last_modified.is_some_and(|m| m >= floor))
        .map(|o| o.url.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, day: u32, state: RunState) -> RunFacts {
        RunFacts { name: name.into(), scheduled: format!("2026-11-{day:02}T03:00:00Z").parse().unwrap(), state }
    }

    #[test]
    fn keep_last_successful_runs() {
        use RunState::*;
        let runs = vec![
            run("d1", 1, Succeeded),
            run("d2", 2, Failed),
            run("d3", 3, Succeeded),
            run("d4", 4, Succeeded),
            run("d5", 5, Failed),
            run("d6", 6, Succeeded),
            run("d7", 7, InFlight),
        ];
        let cases: &[(u32, &[&str])] =
            &[(0, &[]), (1, &["d1", "d2", "d3", "d4", "d5"]), (2, &["d1", "d2", "d3"]), (3, &["d1", "d2"]), (4, &[]), (9, &[])];
        for (keep, want) in cases {
            assert_eq!(runs_to_delete(&runs, *keep), want.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "keepLast {keep}");
        }
        // An old run still in flight is never deleted.
        let stuck = vec![run("old", 1, InFlight), run("a", 2, Succeeded), run("b", 3, Succeeded)];
        assert_eq!(runs_to_delete(&stuck, 1), vec!["a".to_string()]);
    }

    #[test]
    fn prune_only_recorded_keys_written_after_the_request() {
        let t = |s: &str| Some(s.parse::<Timestamp>().unwrap());
        let recorded = vec!["s3://b/x-0001.rdb".to_string(), "s3://b/x-0002.rdb".to_string()];
        let seen = vec![
            SeenObject { url: "s3://b/x-0001.rdb".into(), last_modified: t("2026-11-01T03:00:10Z") },
            // Overwritten before the request: someone else's object now.
            SeenObject { url: "s3://b/x-0002.rdb".into(), last_modified: t("2026-11-01T02:00:00Z") },
            // Not recorded by the run.
            SeenObject { url: "s3://b/other.rdb".into(), last_modified: t("2026-11-01T04:00:00Z") },
            SeenObject { url: "s3://b/x-0003.rdb".into(), last_modified: None },
        ];
        assert_eq!(objects_to_prune(&recorded, t("2026-11-01T03:00:00.700Z"), &seen), vec!["s3://b/x-0001.rdb".to_string()]);
        assert!(objects_to_prune(&recorded, None, &seen).is_empty(), "no request time, nothing is provably ours");
        // Same second as the request counts (S3 keeps whole seconds).
        let same = vec![SeenObject { url: "s3://b/x-0001.rdb".into(), last_modified: t("2026-11-01T03:00:00Z") }];
        assert_eq!(objects_to_prune(&recorded, t("2026-11-01T03:00:00.700Z"), &same).len(), 1);
    }
}
