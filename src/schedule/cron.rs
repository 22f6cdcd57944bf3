//! Five-field cron expressions (minute hour day-of-month month day-of-week) and the macros
//! `@hourly`, `@daily`/`@midnight`, `@weekly`, `@monthly`, `@yearly`/`@annually`, with the
//! semantics of Vixie cron and the Kubernetes CronJob: when both day fields are restricted, a
//! day matching either runs. No seconds field: a sixth field is refused, so a CronJob schedule
//! cannot silently mean something else here (a common trap of six-field schedulers).

use std::fmt;

/// A parsed schedule: one bit per allowed value of each field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days_of_month: u32,
    months: u16,
    days_of_week: u8,
    /// Day-of-month was `*` (or `?`): then only day-of-week restricts days, and vice versa.
    dom_any: bool,
    dow_any: bool,
}

/// At most one run per this calendar unit: see [`Cron::cadence`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cadence {
    Year,
    Month,
    Day,
    Hour,
    Minute,
}

impl Cadence {
    /// For a person: why the name needs this unit ("more than once a day" needs the hour).
    pub fn phrase(self) -> &'static str {
        match self {
            Cadence::Year => "again every year",
            Cadence::Month => "more than once a year",
            Cadence::Day => "more than once a month",
            Cadence::Hour => "more than once a day",
            Cadence::Minute => "more than once an hour",
        }
    }
}

/// Why an expression is not a schedule, said for a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronError(pub String);

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const MONTHS: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const FIELDS: [Field; 5] = [
    Field { name: "minute", min: 0, max: 59, names: &[] },
    Field { name: "hour", min: 0, max: 23, names: &[] },
    Field { name: "day-of-month", min: 1, max: 31, names: &[] },
    Field { name: "month", min: 1, max: 12, names: &MONTHS },
    // 7 is Sunday too, as in Vixie cron.
    Field { name: "day-of-week", min: 0, max: 7, names: &DAYS },
];

impl Cron {
    /// Parse `expr`; the error names the field and what is wrong with it.
    pub fn parse(expr: &str) -> Result<Self, CronError> {
        let expr = expr.trim();
        let expanded = match expr {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            other if other.starts_with('@') => {
                return Err(CronError(format!("unknown macro {other:?}: use @hourly, @daily, @weekly, @monthly or @yearly")))
            }
            other => other,
        };
        // Spaces only (as the CRD's rule says): a tab inside a field is an error, not a separator.
        let parts: Vec<&str> = expanded.split(' ').filter(|p| !p.is_empty()).collect();
        if parts.len() != 5 {
            let hint = if parts.len() == 6 { " (a seconds field is not supported: remove the first field)" } else { "" };
            return Err(CronError(format!(
                "{expr:?} has {} fields, not 5 (minute hour day-of-month month day-of-week){hint}",
                parts.len()
            )));
        }
        let mut bits = [0u64; 5];
        for (i, (part, field)) in parts.iter().zip(FIELDS.iter()).enumerate() {
            bits[i] = parse_field(part, field)?;
        }
        // Sunday is both 0 and 7.
        let dow = bits[4] | ((bits[4] >> 7) & 1);
        let cron = Cron {
            minutes: bits[0],
            hours: bits[1] as u32,
            days_of_month: bits[2] as u32,
            months: bits[3] as u16,
            days_of_week: (dow & 0x7f) as u8,
            dom_any: is_any(parts[2]),
            dow_any: is_any(parts[4]),
        };
        if !cron.can_ever_run() {
            return Err(CronError(format!("{expr:?} never runs: no month has the day of month it names")));
        }
        Ok(cron)
    }

    pub fn minute(&self, m: u32) -> bool {
        self.minutes >> m & 1 == 1
    }

    pub fn hour(&self, h: u32) -> bool {
        self.hours >> h & 1 == 1
    }

    /// True when every hour is allowed (the hour field is `*`): then a repeated hour at a
    /// daylight-saving change runs again, as an hourly schedule expects.
    pub fn every_hour(&self) -> bool {
        self.hours == (1 << 24) - 1
    }

    /// Whether the day runs: `dom` 1..=31, `month` 1..=12, `dow` 0 = Sunday. Cron's rule: when
    /// both day fields are restricted, either matching is enough.
    pub fn day(&self, dom: u32, month: u32, dow: u32) -> bool {
        if self.months >> month & 1 == 0 {
            return false;
        }
        let by_dom = self.days_of_month >> dom & 1 == 1;
        let by_dow = self.days_of_week >> dow & 1 == 1;
        match (self.dom_any, self.dow_any) {
            (true, true) => true,
            (true, false) => by_dow,
            (false, true) => by_dom,
            (false, false) => by_dom || by_dow,
        }
    }

    /// The finest calendar unit a run's name must name so that no two runs share it: the
    /// schedule runs at most once per that unit (`0 2 * * *`: once a day, so the day).
    pub fn cadence(&self) -> Cadence {
        if self.minutes.count_ones() > 1 {
            Cadence::Minute
        } else if self.hours.count_ones() > 1 {
            Cadence::Hour
        } else if !(self.dow_any && !self.dom_any && self.days_of_month.count_ones() == 1) {
            // Every day, some weekdays, several days of the month, or a day of the month or a weekday.
            Cadence::Day
        } else if self.months.count_ones() > 1 {
            Cadence::Month
        } else {
            Cadence::Year
        }
    }

    /// Some month has a day this schedule allows (refuses `0 0 30 2 *`, February 30th).
    fn can_ever_run(&self) -> bool {
        if !self.dow_any && self.days_of_week != 0 {
            return true;
        }
        const LONGEST: [u32; 13] = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        (1..=12).any(|m| self.months >> m & 1 == 1 && (1..=LONGEST[m as usize]).any(|d| self.days_of_month >> d & 1 == 1))
    }
}

fn is_any(part: &str) -> bool {
    part == "*" || part == "?"
}

fn parse_field(part: &str, field: &Field) -> Result<u64, CronError> {
    let mut bits = 0u64;
    for item in part.split(',') {
        let bad = |why: &str| CronError(format!("{} field {part:?}: {why}", field.name));
        if item.is_empty() {
            return Err(bad("empty list item"));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| bad(&format!("step {s:?} is not a number")))?;
                if step == 0 {
                    return Err(bad("a step must be at least 1"));
                }
                (r, step)
            }
            None => (item, 1),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            if range == "?" && !matches!(field.name, "day-of-month" | "day-of-week") {
                return Err(bad("'?' is allowed only in the day fields"));
            }
            (field.min, if field.name == "day-of-week" { 6 } else { field.max })
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, field).map_err(|w| bad(&w))?, value(b, field).map_err(|w| bad(&w))?)
        } else {
            let v = value(range, field).map_err(|w| bad(&w))?;
            // `5/15` means from 5 to the end, every 15.
            (v, if item.contains('/') { field.max } else { v })
        };
        if lo > hi {
            return Err(bad(&format!("range {lo}-{hi} runs backwards")));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

fn value(raw: &str, field: &Field) -> Result<u32, String> {
    if let Some(i) = field.names.iter().position(|n| n.eq_ignore_ascii_case(raw)) {
        return Ok(i as u32 + if field.name == "month" { 1 } else { 0 });
    }
    let v: u32 = raw.parse().map_err(|_| format!("{raw:?} is not a number"))?;
    if v < field.min || v > field.max {
        return Err(format!("{v} is outside {}-{}", field.min, field.max));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(expr: &str) -> Cron {
        Cron::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    #[test]
    fn fields_lists_ranges_steps_and_names() {
        let c = ok("*/15 9-17 * JAN-mar MON-FRI");
        assert!(c.minute(0) && c.minute(45) && !c.minute(10));
        assert!(c.hour(9) && c.hour(17) && !c.hour(18));
        assert!(c.day(5, 3, 1) && !c.day(5, 4, 1) && !c.day(5, 3, 0));
        let c = ok("5/20 0 1,15 * *");
        assert!(c.minute(5) && c.minute(25) && c.minute(45) && !c.minute(0));
        assert!(c.day(15, 6, 3) && !c.day(16, 6, 3));
        assert!(ok("0 0 * * 7").day(1, 1, 0), "7 is Sunday");
    }

    #[test]
    fn both_day_fields_restricted_means_either() {
        let c = ok("0 0 13 * FRI");
        assert!(c.day(13, 5, 2), "the 13th, not a Friday");
        assert!(c.day(6, 5, 5), "a Friday, not the 13th");
        assert!(!c.day(6, 5, 4));
        let only_dom = ok("0 0 13 * *");
        assert!(!only_dom.day(6, 5, 5));
    }

    #[test]
    fn macros() {
        assert_eq!(ok("@daily"), ok("0 0 * * *"));
        assert_eq!(ok("@midnight"), ok("0 0 * * *"));
        assert_eq!(ok("@hourly"), ok("0 * * * *"));
        assert_eq!(ok("@weekly"), ok("0 0 * * 0"));
        assert_eq!(ok("@monthly"), ok("0 0 1 * *"));
        assert!(ok("@hourly").every_hour() && !ok("@daily").every_hour());
    }

    #[test]
    fn cadence_is_the_finest_unit_that_sees_at_most_one_run() {
        let cases = [
            ("*/15 * * * *", Cadence::Minute),
            ("30 * * * *", Cadence::Hour),
            ("0 2,14 * * *", Cadence::Hour),
            ("0 2 * * *", Cadence::Day),
            ("0 2 * * MON", Cadence::Day),
            ("0 2 1,15 * *", Cadence::Day),
            ("0 2 1 * FRI", Cadence::Day),
            ("0 2 1 * *", Cadence::Month),
            ("@monthly", Cadence::Month),
            ("0 2 1 1,7 *", Cadence::Month),
            ("@yearly", Cadence::Year),
        ];
        for (expr, want) in cases {
            assert_eq!(ok(expr).cadence(), want, "{expr}");
        }
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        let cases = [
            ("0 0 3 * * *", "seconds field is not supported"),
            ("0 3 * *", "has 4 fields"),
            ("60 * * * *", "minute field \"60\": 60 is outside 0-59"),
            ("* 24 * * *", "hour field"),
            ("* * 0 * *", "day-of-month field"),
            ("* * * 13 *", "month field"),
            ("* * * * 8", "day-of-week field"),
            ("*/0 * * * *", "step must be at least 1"),
            ("5-1 * * * *", "runs backwards"),
            ("a * * * *", "is not a number"),
            ("1,,2 * * * *", "empty list item"),
            ("@reboot", "unknown macro"),
            ("0 0 30 2 *", "never runs"),
            ("0 0 31 4,6 *", "never runs"),
            ("? * * * *", "only in the day fields"),
        ];
        for (expr, want) in cases {
            let err = Cron::parse(expr).expect_err(expr).0;
            assert!(err.contains(want), "{expr}: {err:?} lacks {want:?}");
        }
        assert!(Cron::parse("0 0 29 2 *").is_ok(), "Feb 29 runs in leap years");
        assert!(Cron::parse("0 0 30 2 MON").is_ok(), "day-of-week makes it run");
    }
}
