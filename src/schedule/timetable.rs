//! When a schedule runs: its cron expression read in an IANA time zone, as instants.
//!
//! Daylight-saving changes, decided deliberately:
//! - A wall time that does not exist (spring forward, e.g. 02:30 on the last Sunday of March in
//!   Europe/Berlin) runs once, at the same offset past the gap (03:30 local): the day keeps its
//!   run. Vixie cron runs such jobs right after the change too; Kubernetes CronJob (robfig/cron)
//!   skips them, so a nightly 02:30 export would silently miss a night once a year.
//! - A wall time that occurs twice (fall back, e.g. 02:30 on the last Sunday of October) runs
//!   once, at its first occurrence: Kubernetes CronJob runs it twice (kubernetes#121594), which
//!   for a backup means a second export of the same night. A schedule whose hour field is `*`
//!   (hourly and finer) runs in the repeated hour as well, so it keeps its cadence; this is
//!   Vixie cron's rule for wildcard jobs.
//!
//! Searches are bounded (eight years covers every Feb 29), so a schedule that never matches
//! cannot loop.

use super::cron::{Cadence, Cron};
use jiff::civil::Date;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::Timestamp;

/// How far a search looks before giving up: eight years of days.
const SEARCH_DAYS: i32 = 8 * 366 + 2;

/// A cron expression in a zone.
#[derive(Clone, Debug)]
pub struct Timetable {
    cron: Cron,
    zone: TimeZone,
}

impl Timetable {
    /// `zone` is an IANA name (`UTC` included); errors are sentences for a person.
    pub fn new(expr: &str, zone: &str) -> Result<Self, String> {
        let cron = Cron::parse(expr).map_err(|e| format!("schedule {e}"))?;
        let zone = parse_zone(zone)?;
        Ok(Self { cron, zone })
    }

    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }

    /// Whether the local wall time of the scheduled instant `t` does not name it alone: `t` is the
    /// second occurrence of a repeated time (fall back), or a time moved past a gap (spring
    /// forward), which may land on the next date, where another run has that date too.
    pub fn wall_time_is_shared(&self, t: Timestamp) -> bool {
        let local = t.to_zoned(self.zone.clone());
        let second = matches!(
            self.zone.to_ambiguous_timestamp(local.datetime()).offset(),
            AmbiguousOffset::Fold { after, .. } if local.offset() == after
        );
        let dow = u32::from(local.weekday().to_sunday_zero_offset() as u8);
        let on_time = self.cron.day(local.day() as u32, local.month() as u32, dow)
            && self.cron.hour(local.hour() as u32)
            && self.cron.minute(local.minute() as u32);
        second || !on_time
    }

    /// At most one run per this unit: what a run's target name must name.
    pub fn cadence(&self) -> Cadence {
        self.cron.cadence()
    }

    /// The first scheduled instant strictly after `t`.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let mut date = t.to_zoned(self.zone.clone()).date().yesterday().ok()?;
        for _ in 0..SEARCH_DAYS {
            if let Some(found) = self.instants_on(date).into_iter().find(|i| *i > t) {
                return Some(found);
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// The latest scheduled instant at or before `t` and strictly after `after`, if any: the
    /// one run a late or restarted operator may still start (never the ones before it).
    pub fn latest_in(&self, after: Timestamp, t: Timestamp) -> Option<Timestamp> {
        if t <= after {
            return None;
        }
        let mut date = t.to_zoned(self.zone.clone()).date().tomorrow().ok()?;
        let floor = after.to_zoned(self.zone.clone()).date().yesterday().ok()?;
        for _ in 0..SEARCH_DAYS {
            if date < floor {
                return None;
            }
            if let Some(found) = self.instants_on(date).into_iter().rev().find(|i| *i <= t && *i > after) {
                return Some(found);
            }
            date = date.yesterday().ok()?;
        }
        None
    }

    /// Every scheduled instant of a local date, in order, after the daylight-saving rules above.
    fn instants_on(&self, date: Date) -> Vec<Timestamp> {
        let dow = u32::from(date.weekday().to_sunday_zero_offset() as u8);
        if !self.cron.day(date.day() as u32, date.month() as u32, dow) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for h in (0..24).filter(|h| self.cron.hour(*h)) {
            for m in (0..60).filter(|m| self.cron.minute(*m)) {
                let dt = date.at(h as i8, m as i8, 0, 0);
                match self.zone.to_ambiguous_timestamp(dt).offset() {
                    AmbiguousOffset::Unambiguous { offset } => out.extend(offset.to_timestamp(dt).ok()),
                    // Spring forward: the offset before the gap lands as far past it.
                    AmbiguousOffset::Gap { before, .. } => out.extend(before.to_timestamp(dt).ok()),
                    AmbiguousOffset::Fold { before, after } => {
                        out.extend(before.to_timestamp(dt).ok());
                        if self.cron.every_hour() {
                            out.extend(after.to_timestamp(dt).ok());
                        }
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// An IANA zone from the bundled database (no /usr/share/zoneinfo needed).
pub fn parse_zone(name: &str) -> Result<TimeZone, String> {
    if name == "UTC" {
        return Ok(TimeZone::UTC);
    }
    TimeZone::get(name)
        .map_err(|_| format!("timeZone {name:?} is not a known IANA time zone (e.g. 'Europe/Berlin', 'America/New_York', 'UTC')"))
}
