//! Which runs retention deletes, and which S3 objects go with them.
//!
//! `keepLast` counts successful runs: the newest N are kept, and every finished run (completed
//! or failed) older than the oldest kept one is deleted. Runs in flight are never deleted, nor
//! are failed runs newer than the oldest kept success (they show what went wrong recently).
//!
//! With `pruneExportedObjects`, a deleted run's S3 objects are deleted too, but only the objects
//! recorded in that run's status with their ETag, only while the key still holds that ETag (with
//! S3's conditional delete), and never a key another kept SnapshotExport records: an object
//! someone else wrote under that key is never touched, and nothing is ever listed by prefix.

use crate::api::ExportedObject;
use jiff::Timestamp;
use std::collections::HashSet;

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

/// What HeadObject sees under a recorded object's key now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub e_tag: Option<String>,
    pub size: Option<i64>,
    pub last_modified: Option<Timestamp>,
}

/// One object a run recorded, and what is under its key now (`None`: gone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenObject {
    pub url: String,
    pub now: Option<Head>,
}

/// The objects to delete for a pruned run, each with the ETag to delete it under (S3's
/// conditional delete, so an object written between the look and the delete survives): those
/// the run recorded when it completed that are still that very write (the same ETag, size and
/// write time, to the second: whoever wrote the key since, a person or another export, even
/// with the same bytes, left another write time), and that no kept SnapshotExport records
/// (`kept`, as `s3://bucket/key`). A run that recorded none (completed before operators
/// recorded them) prunes nothing.
pub fn objects_to_prune(recorded: &[ExportedObject], seen: &[SeenObject], kept: &HashSet<String>) -> Vec<(String, String)> {
    let unquoted = |t: &str| t.trim_matches('"').to_string();
    let same_write = |r: &ExportedObject, now: &Head| {
        now.e_tag.as_deref().map(unquoted) == Some(unquoted(&r.e_tag))
            && now.size == Some(r.size)
            && now.last_modified.is_some_and(|t| r.last_modified.as_ref().is_some_and(|w| w.0.as_second() == t.as_second()))
    };
    recorded
        .iter()
        .filter(|r| !kept.contains(&r.url))
        .filter(|r| seen.iter().any(|s| s.url == r.url && s.now.as_ref().is_some_and(|now| same_write(r, now))))
        // S3 compares If-Match with the quoted ETag.
        .map(|r| (r.url.clone(), format!("\"{}\"", unquoted(&r.e_tag))))
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
    fn prune_only_recorded_objects_still_as_written_and_kept_by_no_one_else() {
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let written = at("2026-11-01T03:10:00.250Z");
        let object = |key: &str, e_tag: &str| ExportedObject {
            url: format!("s3://b/{key}"),
            e_tag: e_tag.into(),
            size: 10,
            last_modified: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(written)),
        };
        let head =
            |e_tag: &str, size: i64, when: &str| Some(Head { e_tag: Some(e_tag.into()), size: Some(size), last_modified: Some(at(when)) });
        let seen = |key: &str, now: Option<Head>| SeenObject { url: format!("s3://b/{key}"), now };
        let recorded: Vec<ExportedObject> = (1..=6).map(|i| object(&format!("x-000{i}.rdb"), &format!("\"e{i}\""))).collect();
        let looks = vec![
            // Still what the run wrote (S3 may quote an ETag or not; HEAD times are whole seconds).
            seen("x-0001.rdb", head("e1", 10, "2026-11-01T03:10:00Z")),
            // Written again since (by a person, or an export after the files were moved).
            seen("x-0002.rdb", head("\"other\"", 10, "2026-11-02T00:00:00Z")),
            // The same bytes written again later: same ETag and size, another write.
            seen("x-0003.rdb", head("\"e3\"", 10, "2026-11-02T00:00:00Z")),
            // Gone already.
            seen("x-0004.rdb", None),
            // Still as written, but another kept SnapshotExport records this key.
            seen("x-0005.rdb", head("\"e5\"", 10, "2026-11-01T03:10:00Z")),
            // Another size under the same ETag: not the same object.
            seen("x-0006.rdb", head("\"e6\"", 11, "2026-11-01T03:10:00Z")),
            // Not the run's.
            seen("other-0001.rdb", head("\"e1\"", 10, "2026-11-01T03:10:00Z")),
        ];
        let kept: HashSet<String> = ["s3://b/x-0005.rdb".to_string()].into();
        assert_eq!(objects_to_prune(&recorded, &looks, &kept), vec![("s3://b/x-0001.rdb".to_string(), "\"e1\"".to_string())]);
        assert!(objects_to_prune(&[], &looks, &HashSet::new()).is_empty(), "nothing recorded: nothing is provably the run's");
        let timeless = ExportedObject { last_modified: None, ..recorded[0].clone() };
        assert!(objects_to_prune(&[timeless], &looks, &HashSet::new()).is_empty(), "no write time recorded: not provably the same write");
    }
}
