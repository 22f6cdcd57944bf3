//! Which automatic backup a LatestAutomatic run exports: the newest `available` one by its node
//! snapshots' creation time, and only when it is newer than what the schedule exported last
//! (so a missed nightly backup shows as `NoNewSnapshot` instead of yesterday's exported twice).

use jiff::Timestamp;

/// One automatic snapshot of the cache as DescribeSnapshots (SnapshotSource=system) shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoSnapshot {
    pub name: String,
    pub status: String,
    /// The newest `NodeSnapshots[].SnapshotCreateTime` (a cluster-mode backup has one per shard).
    pub created: Option<Timestamp>,
}

/// What the run does with the cache's automatic snapshots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    Export(AutoSnapshot),
    /// Nothing newer than the last export (`newest` is the newest available one, if any).
    NoNewSnapshot {
        newest: Option<String>,
    },
}

/// `last_exported` is the snapshot create time the schedule recorded for its last run;
/// `exported_names` are the sources of its runs that still exist (a second guard, should the
/// status have been lost).
pub fn choose(snapshots: &[AutoSnapshot], last_exported: Option<Timestamp>, exported_names: &[&str]) -> Choice {
    let newest = snapshots
        .iter()
        .filter(|s| s.status == "available")
        .filter_map(|s| s.created.map(|c| (c, s)))
        .max_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
    match newest {
        Some((created, snap))
            if last_exported.is_none_or(|last| created > last) && !exported_names.iter().any(|n| n.eq_ignore_ascii_case(&snap.name)) =>
        {
            Choice::Export(snap.clone())
        }
        Some((_, snap)) => Choice::NoNewSnapshot { newest: Some(snap.name.clone()) },
        None => Choice::NoNewSnapshot { newest: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(name: &str, status: &str, created: Option<&str>) -> AutoSnapshot {
        AutoSnapshot { name: name.into(), status: status.into(), created: created.map(|c| c.parse().unwrap()) }
    }

    #[test]
    fn newest_available_and_newer_than_the_last_export() {
        let mon = snap("automatic.prod-2026-11-23-03-00", "available", Some("2026-11-23T03:05:00Z"));
        let tue = snap("automatic.prod-2026-11-24-03-00", "available", Some("2026-11-24T03:05:00Z"));
        let wed_creating = snap("automatic.prod-2026-11-25-03-00", "creating", Some("2026-11-25T03:05:00Z"));
        let undated = snap("automatic.prod-undated", "available", None);
        let t = |s: &str| Some(s.parse::<Timestamp>().unwrap());
        let all = [mon.clone(), tue.clone(), wed_creating.clone(), undated];
        let cases: Vec<(&str, Choice, Choice)> = vec![
            ("first run takes the newest available", choose(&all, None, &[]), Choice::Export(tue.clone())),
            ("a backup still creating is not taken", choose(&all, t("2026-11-23T03:05:00Z"), &[]), Choice::Export(tue.clone())),
            (
                "nothing newer than the last export",
                choose(&all, t("2026-11-24T03:05:00Z"), &[]),
                Choice::NoNewSnapshot { newest: Some(tue.name.clone()) },
            ),
            (
                "status lost, but a run exported it",
                choose(&all, None, &["AUTOMATIC.prod-2026-11-24-03-00"]),
                Choice::NoNewSnapshot { newest: Some(tue.name.clone()) },
            ),
            ("no snapshots at all", choose(&[], None, &[]), Choice::NoNewSnapshot { newest: None }),
            ("order of the answer does not matter", choose(&[tue.clone(), mon.clone()], None, &[]), Choice::Export(tue.clone())),
        ];
        for (what, got, want) in cases {
            assert_eq!(got, want, "{what}");
        }
    }
}
