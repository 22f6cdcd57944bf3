//! Table tests of [`super::timetable`]: daylight-saving changes, month ends, macros.

use super::timetable::Timetable;
use jiff::Timestamp;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// The next `n` runs after `from`, as RFC 3339 UTC strings.
fn runs(expr: &str, zone: &str, from: &str, n: usize) -> Vec<String> {
    let t = Timetable::new(expr, zone).unwrap();
    let mut at = ts(from);
    let mut out = Vec::new();
    for _ in 0..n {
        at = t.next_after(at).expect("a next run");
        out.push(at.to_string());
    }
    out
}

#[test]
fn next_runs_across_daylight_saving_changes() {
    let cases: &[(&str, &str, &str, &[&str])] = &[
        // Europe/Berlin springs forward 2026-03-29 02:00 CET -> 03:00 CEST: 02:30 does not
        // exist and runs at 03:30 CEST (01:30Z), once.
        ("30 2 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z", &["2026-03-28T01:30:00Z", "2026-03-29T01:30:00Z", "2026-03-30T00:30:00Z"]),
        // Falls back 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 happens twice, runs once (first).
        ("30 2 * * *", "Europe/Berlin", "2026-10-23T12:00:00Z", &["2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]),
        // America/New_York springs forward 2026-03-08 02:00 EST -> 03:00 EDT.
        (
            "15 2 * * *",
            "America/New_York",
            "2026-03-07T00:00:00Z",
            &["2026-03-07T07:15:00Z", "2026-03-08T07:15:00Z", "2026-03-09T06:15:00Z"],
        ),
        // Falls back 2026-11-01 02:00 EDT -> 01:00 EST: 01:30 runs once, at 01:30 EDT.
        (
            "30 1 * * *",
            "America/New_York",
            "2026-10-31T00:00:00Z",
            &["2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"],
        ),
        // An hourly schedule keeps its cadence through the repeated hour ...
        (
            "30 * * * *",
            "America/New_York",
            "2026-11-01T04:00:00Z",
            &["2026-11-01T04:30:00Z", "2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z", "2026-11-01T07:30:00Z"],
        ),
        // ... and through the missing one (02:00 does not exist; 03:00 EDT runs once).
        (
            "0 * * * *",
            "America/New_York",
            "2026-03-08T05:30:00Z",
            &["2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"],
        ),
        // A night outside the change is unaffected by it.
        ("0 4 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", &["2026-03-29T02:00:00Z", "2026-03-30T02:00:00Z"]),
    ];
    for (expr, zone, from, want) in cases {
        assert_eq!(runs(expr, zone, from, want.len()), *want, "{expr} in {zone} after {from}");
    }
}

#[test]
fn month_ends_leap_days_and_macros() {
    let cases: &[(&str, &str, &str, &[&str])] = &[
        // The 31st runs only in months that have one.
        ("0 0 31 * *", "UTC", "2026-01-31T00:00:00Z", &["2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z"]),
        // Feb 29 only in leap years.
        ("0 12 29 2 *", "UTC", "2026-01-01T00:00:00Z", &["2028-02-29T12:00:00Z", "2032-02-29T12:00:00Z"]),
        // @monthly in a zone: local midnight of the 1st.
        ("@monthly", "Europe/Berlin", "2026-01-15T00:00:00Z", &["2026-01-31T23:00:00Z", "2026-02-28T23:00:00Z", "2026-03-31T22:00:00Z"]),
        ("@weekly", "UTC", "2026-11-29T00:00:00Z", &["2026-12-06T00:00:00Z"]),
        ("@hourly", "UTC", "2026-11-29T23:59:59Z", &["2026-11-30T00:00:00Z", "2026-11-30T01:00:00Z"]),
        ("@daily", "UTC", "2026-12-31T00:00:00Z", &["2027-01-01T00:00:00Z"]),
        // Either day field: the 1st or a Monday.
        ("0 0 1 * MON", "UTC", "2026-11-29T00:00:00Z", &["2026-11-30T00:00:00Z", "2026-12-01T00:00:00Z", "2026-12-07T00:00:00Z"]),
        // Strictly after: a run exactly at `from` is not next.
        ("0 3 * * *", "UTC", "2026-11-29T03:00:00Z", &["2026-11-30T03:00:00Z"]),
    ];
    for (expr, zone, from, want) in cases {
        assert_eq!(runs(expr, zone, from, want.len()), *want, "{expr} in {zone} after {from}");
    }
}

#[test]
fn latest_missed_run_is_at_most_one_and_only_after_the_last_handled() {
    let t = Timetable::new("0 3 * * *", "UTC").unwrap();
    // Down for a week: only the most recent missed run is found.
    assert_eq!(t.latest_in(ts("2026-11-20T03:00:00Z"), ts("2026-11-27T10:00:00Z")), Some(ts("2026-11-27T03:00:00Z")));
    // Exactly at the run time counts.
    assert_eq!(t.latest_in(ts("2026-11-26T03:00:00Z"), ts("2026-11-27T03:00:00Z")), Some(ts("2026-11-27T03:00:00Z")));
    // Nothing after the last handled run.
    assert_eq!(t.latest_in(ts("2026-11-27T03:00:00Z"), ts("2026-11-27T10:00:00Z")), None);
    assert_eq!(t.latest_in(ts("2026-11-27T03:00:00Z"), ts("2026-11-27T03:00:00Z")), None);
    // Every minute, down for a year: still one answer, quickly.
    let every = Timetable::new("* * * * *", "UTC").unwrap();
    assert_eq!(every.latest_in(ts("2025-11-27T03:00:00Z"), ts("2026-11-27T10:00:30Z")), Some(ts("2026-11-27T10:00:00Z")));
    // The fall-back night's run in Berlin is found once, at its first occurrence.
    let berlin = Timetable::new("30 2 * * *", "Europe/Berlin").unwrap();
    assert_eq!(berlin.latest_in(ts("2026-10-24T00:30:00Z"), ts("2026-10-25T03:00:00Z")), Some(ts("2026-10-25T00:30:00Z")));
}

#[test]
fn unknown_zones_and_bad_schedules_are_refused_in_words() {
    let err = Timetable::new("0 3 * * *", "Mars/Olympus").unwrap_err();
    assert!(err.contains("not a known IANA time zone"), "{err}");
    let err = Timetable::new("0 3 * * * *", "UTC").unwrap_err();
    assert!(err.contains("seconds field"), "{err}");
    assert!(Timetable::new("0 3 * * *", "America/Argentina/Buenos_Aires").is_ok());
}
