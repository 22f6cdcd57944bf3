//! kstatus conditions: `Ready`, `Reconciling` and `Stalled`, in the standard Condition shape.
//! A condition whose status does not change keeps its `lastTransitionTime`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// The three conditions follow from one summary of where the object stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Work is in flight (or about to be): Reconciling=True.
    Progressing,
    /// Done: Ready=True.
    Ready,
    /// Cannot progress without an outside change: Stalled=True.
    Stalled,
}

/// Set `Ready`, `Reconciling` and `Stalled` for `health` with the given reason and message.
pub fn set_health(conditions: &mut Vec<Condition>, health: Health, reason: &str, message: &str, generation: Option<i64>, now: &Time) {
    let flag = |b: bool| if b { "True" } else { "False" };
    let (ready, reconciling, stalled) = match health {
        Health::Progressing => (false, true, false),
        Health::Ready => (true, false, false),
        Health::Stalled => (false, false, true),
    };
    let entries = [(READY, flag(ready)), (RECONCILING, flag(reconciling)), (STALLED, flag(stalled))];
    for (type_, status) in entries {
        set_condition(conditions, type_, status, reason, message, generation, now);
    }
}

/// Upsert one condition; `lastTransitionTime` moves only when `status` changes.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) {
    let wanted = |last_transition_time: Time| Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.to_string(),
        observed_generation: generation,
        last_transition_time,
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            let since = if existing.status == status { existing.last_transition_time.clone() } else { now.clone() };
            *existing = wanted(since);
        }
        None => conditions.push(wanted(now.clone())),
    }
}

/// The condition of the given type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn unchanged_status_keeps_last_transition_time() {
        let mut c = Vec::new();
        set_health(&mut c, Health::Progressing, "CopyRequested", "copying", Some(1), &at(100));
        set_health(&mut c, Health::Progressing, "Copying", "still copying", Some(1), &at(200));
        let ready = find(&c, READY).unwrap();
        assert_eq!(ready.last_transition_time, at(100));
        assert_eq!(ready.reason, "Copying");
        set_health(&mut c, Health::Ready, "CopyCompleted", "done", Some(1), &at(300));
        assert_eq!(find(&c, READY).unwrap().last_transition_time, at(300));
        assert_eq!(find(&c, READY).unwrap().status, "True");
        assert_eq!(find(&c, RECONCILING).unwrap().status, "False");
        assert_eq!(find(&c, STALLED).unwrap().status, "False");
        assert_eq!(find(&c, STALLED).unwrap().last_transition_time, at(100));
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn stalled_sets_only_stalled_true() {
        let mut c = Vec::new();
        set_health(&mut c, Health::Stalled, "S3BucketNotFound", "missing", Some(2), &at(5));
        let statuses: Vec<_> = [READY, RECONCILING, STALLED].iter().map(|t| find(&c, t).unwrap().status.clone()).collect();
        assert_eq!(statuses, ["False", "False", "True"]);
        assert!(c.iter().all(|x| x.observed_generation == Some(2)));
    }
}
