//! Deterministic names: each run's `SnapshotExport` (from the schedule and the scheduled time,
//! so a second attempt is AlreadyExists), the intermediate snapshot of CreateSnapshot mode, the
//! schedule label value, and the run's target snapshot name from the template.

use super::cron::Cadence;
use super::timetable::Timetable;
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// The default target name: the schedule's name and the scheduled local time.
pub const DEFAULT_TEMPLATE: &str = "{schedule}-{YYYY}{MM}{DD}-{hh}{mm}";
/// Longest Kubernetes object name (DNS subdomain).
const MAX_OBJECT_NAME: usize = 253;
/// Longest label value.
const MAX_LABEL: usize = 63;
/// Longest target name a template may produce (ElastiCache's manual snapshot names).
pub const MAX_TARGET_NAME: usize = 255;

/// FNV-1a, 64 bits: stable across releases and platforms (std's hasher is not).
pub fn stable_hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// `prefix-suffix` within `max` characters: when too long, the prefix is cut and a hash of the
/// whole keeps it unique (`cut-<hash>-suffix`). The cut never leaves a trailing `-` or `.`.
fn fit(prefix: &str, suffix: &str, max: usize) -> String {
    let whole = format!("{prefix}-{suffix}");
    if whole.len() <= max {
        return whole;
    }
    let hash = format!("{:08x}", stable_hash(&[prefix, suffix]) as u32);
    let room = max - suffix.len() - hash.len() - 2;
    let cut = prefix[..room.min(prefix.len())].trim_end_matches(['-', '.']);
    format!("{cut}-{hash}-{suffix}")
}

/// The run object's name for a scheduled time: `<schedule>-<YYYYMMDD>-<hhmm>` in UTC (UTC, not
/// local time, because a repeated local hour would give two runs one name). At most 253
/// characters, hash-shortened when the schedule's name is long.
pub fn run_name(schedule: &str, scheduled: Timestamp) -> String {
    let utc = scheduled.to_zoned(TimeZone::UTC);
    fit(schedule, &utc.strftime("%Y%m%d-%H%M").to_string(), MAX_OBJECT_NAME)
}

/// The run object's name for the `seq`-th run-now value acted on, `value`: the same value and
/// sequence number always give the same name, so a crash between creating the run and recording
/// the value cannot start two; a value used again later (A, B, A) has a new number, so a new
/// name, and is never taken for its earlier run.
pub fn run_now_name(schedule: &str, value: &str, seq: u32) -> String {
    fit(schedule, &format!("now-{}", run_now_hash(value, seq)), MAX_OBJECT_NAME)
}

/// Eight hex digits of the run-now value and its sequence number.
fn run_now_hash(value: &str, seq: u32) -> String {
    format!("{:08x}", stable_hash(&[value, &seq.to_string()]) as u32)
}

/// The schedule label's value: the name itself when it fits a label, else a cut plus a hash.
pub fn label_value(schedule: &str) -> String {
    if schedule.len() <= MAX_LABEL {
        return schedule.to_string();
    }
    let hash = format!("{:08x}", stable_hash(&[schedule]) as u32);
    let cut = schedule[..MAX_LABEL - hash.len() - 1].trim_end_matches(['-', '.']);
    format!("{cut}-{hash}")
}

/// The intermediate snapshot of CreateSnapshot mode for one run: `ecx-<hash of schedule UID
/// and run name>`, a legal ElastiCache name that the same run always gets.
pub fn intermediate_snapshot_name(schedule_uid: &str, run_name: &str) -> String {
    format!("ecx-sched-{:016x}", stable_hash(&[schedule_uid, run_name]))
}

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 7] = ["schedule", "cache", "YYYY", "MM", "DD", "hh", "mm"];

/// The target snapshot name for a run: the template (default [`DEFAULT_TEMPLATE`]) with the
/// schedule's name, the cache id and the scheduled time in the schedule's zone; refused when
/// the result is not a legal ElastiCache snapshot name.
pub fn target_name(template: Option<&str>, schedule: &str, cache: &str, scheduled: Timestamp, zone: &TimeZone) -> Result<String, String> {
    let template = template.unwrap_or(DEFAULT_TEMPLATE);
    let local = scheduled.to_zoned(zone.clone());
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').ok_or_else(|| format!("targetSnapshotNameTemplate {template:?} has an unclosed '{{'"))? + open;
        let value = match &rest[open + 1..close] {
            // Object names may hold dots; snapshot names may not.
            "schedule" => schedule.replace('.', "-"),
            "cache" => cache.to_string(),
            "YYYY" => local.strftime("%Y").to_string(),
            "MM" => local.strftime("%m").to_string(),
            "DD" => local.strftime("%d").to_string(),
            "hh" => local.strftime("%H").to_string(),
            "mm" => local.strftime("%M").to_string(),
            other => {
                return Err(format!(
                    "targetSnapshotNameTemplate {template:?} uses the unknown placeholder {{{other}}}; use {}",
                    PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
                ))
            }
        };
        out.push_str(&value);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    let name = out;
    check_snapshot_name(&name).map_err(|why| format!("targetSnapshotNameTemplate {template:?} gives {name:?}, which {why}"))?;
    Ok(name)
}

/// The placeholders a name needs to tell apart runs that are at most one per `cadence`.
fn placeholders_needed(cadence: Cadence) -> &'static [&'static str] {
    let all: &[&str] = &["YYYY", "MM", "DD", "hh", "mm"];
    &all[..=cadence as usize]
}

/// Refuses a template that gives two runs of a schedule that runs at most once per `cadence` the
/// same target name (`{cache}-{YYYY}{MM}{DD}` on a twice-daily schedule): the second run's copy
/// would be refused as already existing, and the run would stall.
pub fn check_template_cadence(template: Option<&str>, cadence: Cadence) -> Result<(), String> {
    let template = template.unwrap_or(DEFAULT_TEMPLATE);
    let needed = placeholders_needed(cadence);
    let missing: Vec<(usize, String)> =
        needed.iter().enumerate().filter(|(_, p)| !template.contains(&format!("{{{p}}}"))).map(|(i, p)| (i, format!("{{{p}}}"))).collect();
    let Some((coarsest, _)) = missing.first() else { return Ok(()) };
    // Why the coarsest missing unit is needed: the schedule runs more than once in the one above.
    let why = [Cadence::Year, Cadence::Month, Cadence::Day, Cadence::Hour, Cadence::Minute][*coarsest].phrase();
    let missing: Vec<String> = missing.into_iter().map(|(_, p)| p).collect();
    Err(format!(
        "targetSnapshotNameTemplate {template:?} lacks {}: the schedule runs {}, so two of its runs would get the same target snapshot name \
         and the second could not be made; add {}, as the default {DEFAULT_TEMPLATE:?} does",
        missing.join(" and "),
        why,
        if missing.len() == 1 { "it" } else { "them" },
    ))
}

/// The most a run's target name adds to the template's: a run-now's `-now-<8 hex>`; a
/// scheduled run's `-utc<hhmm>` is shorter.
pub const MAX_RUN_SUFFIX: usize = "-now-".len() + 8;

/// The target name of one run: [`target_name`], and a suffix where the template alone could
/// repeat a name. A run-now gets one from its value and sequence number, so it never collides
/// with a scheduled run (or another run-now) of the same minute: S3 keys are never overwritten.
/// A scheduled run whose local time does not name it alone (the second of a repeated hour, or a
/// time moved past a spring-forward gap, maybe onto the next date) gets `-utc<hhmm>`.
pub fn run_target_name(
    template: Option<&str>,
    schedule: &str,
    cache: &str,
    scheduled: Timestamp,
    timetable: &Timetable,
    run_now: Option<(&str, u32)>,
) -> Result<String, String> {
    let name = target_name(template, schedule, cache, scheduled, timetable.zone())?;
    let name = match run_now {
        Some((value, seq)) => format!("{name}-now-{}", run_now_hash(value, seq)),
        None if timetable.wall_time_is_shared(scheduled) => {
            format!("{name}{}", scheduled.to_zoned(TimeZone::UTC).strftime("-utc%H%M"))
        }
        None => return Ok(name),
    };
    check_snapshot_name(&name).map_err(|why| format!("the run's target name {name:?} {why}; shorten targetSnapshotNameTemplate"))?;
    Ok(name)
}

/// Every rule a template must meet for this schedule, checked on a sample time: it gives a legal
/// name with room for [`MAX_RUN_SUFFIX`], and names each unit the schedule runs more than once in.
pub fn check_template(template: Option<&str>, schedule: &str, cache: &str, timetable: &Timetable) -> Result<(), String> {
    let sample = Timestamp::from_second(1_800_000_000).expect("a valid instant");
    let name = target_name(template, schedule, cache, sample, timetable.zone())?;
    if name.len() + MAX_RUN_SUFFIX > MAX_TARGET_NAME {
        return Err(format!(
            "targetSnapshotNameTemplate gives names of {} characters (e.g. {name:?}); a run may add up to {MAX_RUN_SUFFIX} (a run-now's \
             `-now-<hash>`), so it must give at most {}: shorten it",
            name.len(),
            MAX_TARGET_NAME - MAX_RUN_SUFFIX
        ));
    }
    check_template_cadence(template, timetable.cadence())
}

/// ElastiCache's rule for snapshot names, the strictest of its APIs: starts with a letter; only
/// ASCII letters, digits and hyphens; no two hyphens in a row; no trailing hyphen; at most 255.
pub fn check_snapshot_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_TARGET_NAME {
        return Err(format!("must be 1 to {MAX_TARGET_NAME} characters (it has {})", name.len()));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err("must start with a letter".into());
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err("may contain only letters, digits and '-'".into());
    }
    if name.contains("--") || name.ends_with('-') {
        return Err("must not contain '--' nor end with '-'".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// Kubernetes' IsDNS1123Subdomain: at most 253 characters, dot-separated parts of
    /// lowercase letters, digits and '-' that start and end with a letter or digit.
    fn is_dns_subdomain(s: &str) -> bool {
        s.len() <= 253
            && s.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
    }

    #[test]
    fn run_names_are_stable_legal_and_distinct() {
        let t = ts("2026-11-29T02:00:00Z");
        assert_eq!(run_name("nightly", t), "nightly-20261129-0200");
        assert_eq!(run_name("nightly", t), run_name("nightly", t));
        assert_ne!(run_name("nightly", t), run_name("nightly", ts("2026-11-30T02:00:00Z")));
        let long = format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61));
        assert_eq!(long.len(), 253);
        for name in [run_name(&long, t), run_name(&long, ts("2026-11-30T02:00:00Z")), run_now_name(&long, "1", 1)] {
            assert!(name.len() <= 253 && is_dns_subdomain(&name), "{name}");
        }
        assert_ne!(run_name(&long, t), run_name(&long, ts("2026-11-30T02:00:00Z")));
        // Two long names that share the kept prefix still differ.
        let other = format!("{}x", &long[..252]);
        assert_ne!(run_name(&long, t), run_name(&other, t));
        // A cut landing on '.' or '-' does not leave one at the end of the prefix.
        let dotted = format!("{}.{}", "a".repeat(229), "b".repeat(23));
        assert!(is_dns_subdomain(&run_name(&dotted, t)), "{}", run_name(&dotted, t));
    }

    #[test]
    fn run_now_names_follow_the_annotation_value_and_its_number() {
        assert_eq!(run_now_name("nightly", "1", 1), run_now_name("nightly", "1", 1));
        assert_ne!(run_now_name("nightly", "1", 1), run_now_name("nightly", "2", 1));
        // A, B, A: the third run is not the first.
        assert_ne!(run_now_name("nightly", "A", 1), run_now_name("nightly", "A", 3));
        assert!(run_now_name("nightly", "1", 1).starts_with("nightly-now-"));
    }

    #[test]
    fn label_values_fit() {
        assert_eq!(label_value("nightly"), "nightly");
        let v = label_value(&"x".repeat(200));
        assert!(v.len() <= 63 && v != label_value(&"x".repeat(201)));
    }

    #[test]
    fn target_names_from_templates() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let t = ts("2026-11-29T02:05:00Z");
        let cases: &[(Option<&str>, &str, Result<&str, &str>)] = &[
            (None, "nightly", Ok("nightly-20261129-0305")),
            (Some("{cache}-{YYYY}-{MM}-{DD}"), "nightly", Ok("prod-redis-2026-11-29")),
            (Some("backup-{schedule}-{hh}{mm}"), "db.nightly", Ok("backup-db-nightly-0305")),
            (None, "9lives", Err("must start with a letter")),
            (Some("{cache}-{week}"), "n", Err("unknown placeholder {week}")),
            (Some("{cache}-{YYYY"), "n", Err("unclosed")),
            (Some("x-{schedule}"), "a--b", Err("must not contain '--'")),
            (Some("{schedule}-{schedule}"), &"s".repeat(200), Err("must be 1 to 255")),
        ];
        for (template, schedule, want) in cases {
            let got = target_name(*template, schedule, "prod-redis", t, &berlin);
            match want {
                Ok(name) => assert_eq!(got.as_deref(), Ok(*name), "{template:?}"),
                Err(part) => assert!(got.as_ref().is_err_and(|e| e.contains(part)), "{template:?}: {got:?}"),
            }
        }
    }

    /// America/New_York falls back on 2026-11-01: 01:30 happens at 05:30Z (EDT) and 06:30Z
    /// (EST). An hourly schedule runs both; before, both got `…-0130`, and the second run stalled
    /// on the first one's snapshot for good.
    #[test]
    fn each_run_of_a_repeated_or_shifted_wall_time_gets_its_own_target() {
        let name = |cron: &str, zone: &str, template: Option<&str>, at: &str| {
            run_target_name(template, "hourly", "c", ts(at), &Timetable::new(cron, zone).unwrap(), None).unwrap()
        };
        let ny = |at: &str| name("30 * * * *", "America/New_York", None, at);
        assert_eq!(ny("2026-11-01T04:30:00Z"), "hourly-20261101-0030");
        assert_eq!(ny("2026-11-01T05:30:00Z"), "hourly-20261101-0130");
        assert_eq!(ny("2026-11-01T06:30:00Z"), "hourly-20261101-0130-utc0630");
        assert_eq!(ny("2026-11-01T07:30:00Z"), "hourly-20261101-0230");
        // Spring forward: 02:30 does not exist and merges with 03:30, a time of the schedule.
        assert_eq!(ny("2026-03-08T07:30:00Z"), "hourly-20260308-0330");
        // America/Nuuk skips Saturday 23:00-24:00 local: the Saturday run moves to Sunday
        // 00:30, and a daily name would be Sunday's run's name too.
        let nuuk = |at: &str| name("30 23 * * *", "America/Nuuk", Some("{cache}-{YYYY}{MM}{DD}"), at);
        let (saturday, sunday) = (nuuk("2026-03-29T01:30:00Z"), nuuk("2026-03-30T00:30:00Z"));
        assert_eq!((saturday.as_str(), sunday.as_str()), ("c-20260329-utc0130", "c-20260329"));
        // A daily run moved past the gap says so, once a year (Berlin, 02:30 -> 03:30).
        assert_eq!(name("30 2 * * *", "Europe/Berlin", None, "2026-03-29T01:30:00Z"), "hourly-20260329-0330-utc0130");
        assert_eq!(name("30 2 * * *", "Europe/Berlin", None, "2026-03-30T00:30:00Z"), "hourly-20260330-0230");
    }

    #[test]
    fn a_template_leaves_room_for_the_suffix_a_run_may_add() {
        let t = Timetable::new("0 3 * * *", "UTC").unwrap();
        // The default template gives the schedule's name plus 14 characters.
        let fits = "s".repeat(MAX_TARGET_NAME - MAX_RUN_SUFFIX - 14);
        assert_eq!(check_template(None, &fits, "c", &t), Ok(()));
        let long = format!("{fits}s");
        let err = check_template(None, &long, "c", &t).unwrap_err();
        assert!(err.contains("must give at most 242: shorten it"), "{err}");
    }

    #[test]
    fn a_template_must_name_each_unit_a_schedule_runs_more_than_once_in() {
        let cases: &[(Option<&str>, Cadence, Result<(), &str>)] = &[
            (None, Cadence::Minute, Ok(())),
            (Some("{cache}-{YYYY}{MM}{DD}"), Cadence::Day, Ok(())),
            (Some("{cache}-{YYYY}{MM}{DD}"), Cadence::Hour, Err("lacks {hh}: the schedule runs more than once a day")),
            (Some("{cache}-{YYYY}{MM}{DD}"), Cadence::Minute, Err("lacks {hh} and {mm}: the schedule runs more than once a day")),
            (Some("{cache}-{YYYY}{MM}{DD}-{hh}"), Cadence::Hour, Ok(())),
            (Some("{cache}-{YYYY}{MM}"), Cadence::Month, Ok(())),
            (Some("{cache}-{YYYY}{MM}"), Cadence::Day, Err("lacks {DD}")),
            (Some("{cache}-{MM}{DD}"), Cadence::Day, Err("lacks {YYYY}: the schedule runs again every year")),
            (Some("{cache}-{YYYY}"), Cadence::Year, Ok(())),
            (Some("{cache}-copy"), Cadence::Year, Err("lacks {YYYY}")),
        ];
        for (template, cadence, want) in cases {
            let got = check_template_cadence(*template, *cadence);
            match want {
                Ok(()) => assert_eq!(got, Ok(()), "{template:?} {cadence:?}"),
                Err(part) => assert!(got.as_ref().is_err_and(|e| e.contains(part) && e.contains("add")), "{template:?}: {got:?}"),
            }
        }
    }

    #[test]
    fn run_now_targets_never_collide_with_runs_of_the_same_minute() {
        let utc = Timetable::new("0 3 * * *", "UTC").unwrap();
        let t = ts("2026-11-29T03:00:20Z");
        let scheduled = run_target_name(None, "nightly", "c", ts("2026-11-29T03:00:00Z"), &utc, None).unwrap();
        let first = run_target_name(None, "nightly", "c", t, &utc, Some(("1", 1))).unwrap();
        let second = run_target_name(None, "nightly", "c", t, &utc, Some(("2", 2))).unwrap();
        assert_eq!(scheduled, "nightly-20261129-0300");
        assert!(first != scheduled && second != scheduled && first != second, "{first} {second}");
        assert_eq!(first, run_target_name(None, "nightly", "c", t, &utc, Some(("1", 1))).unwrap(), "stable per value");
        assert!(check_snapshot_name(&first).is_ok());
    }

    #[test]
    fn intermediate_names_are_per_run_and_legal() {
        let a = intermediate_snapshot_name("uid-1", "nightly-20261129-0200");
        assert_eq!(a, intermediate_snapshot_name("uid-1", "nightly-20261129-0200"));
        assert_ne!(a, intermediate_snapshot_name("uid-2", "nightly-20261129-0200"));
        assert!(check_snapshot_name(&a).is_ok(), "{a}");
    }
}
