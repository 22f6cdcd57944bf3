//! AWS's definitive answers to requests whose status write failed. The intent is written before
//! the request; the answer after it. If that second write fails (a 409 after a metadata edit, a
//! 500), the object would look as if its request's outcome were unknown, and an export is never
//! requested twice on that: it would stall for nothing. So the answer is kept, per object, until
//! a status write records it.

use super::decide::Decision;
use crate::api::SnapshotExportStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::HashMap;
use std::sync::Mutex;

/// Per object (by UID): the intent (`copyRequestedAt`) a request was made under, and the decision
/// AWS's definitive answer to it led to (accepted, refused, throttled).
#[derive(Default)]
pub struct Answers(Mutex<HashMap<String, (Option<Time>, Decision)>>);

impl Answers {
    /// Keep the answer to the request made under `intent` until the status records it.
    pub fn keep(&self, uid: &str, intent: Option<Time>, decision: &Decision) {
        self.0.lock().expect("answers lock").insert(uid.to_string(), (intent, decision.clone()));
    }

    /// The answer to the request made under this status's intent while the status does not
    /// record it yet; once recorded (the acceptance written, or the intent resolved or
    /// replaced), it is dropped.
    pub fn unrecorded(&self, uid: &str, status: &SnapshotExportStatus) -> Option<Decision> {
        let mut answers = self.0.lock().expect("answers lock");
        let pending = |intent: &Option<Time>| {
            status.copy_accepted_at.is_none() && status.copy_requested_at.is_some() && *intent == status.copy_requested_at
        };
        match answers.get(uid) {
            Some((intent, decision)) if pending(intent) => Some(decision.clone()),
            Some(_) => {
                answers.remove(uid);
                None
            }
            None => None,
        }
    }

    pub fn forget(&self, uid: &str) {
        self.0.lock().expect("answers lock").remove(uid);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().expect("answers lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(second: i64) -> Option<Time> {
        Some(Time(Timestamp::from_second(second).unwrap()))
    }

    #[test]
    fn an_answer_is_replayed_for_its_own_intent_only_until_the_status_records_it() {
        let answers = Answers::default();
        let accepted = Decision::Recheck; // any decision: replayed as kept
        answers.keep("uid-1", at(10), &accepted);
        let intent = |requested: Option<Time>| SnapshotExportStatus { copy_requested_at: requested, ..Default::default() };
        assert_eq!(answers.unrecorded("uid-1", &intent(at(10))), Some(accepted.clone()), "the write of the answer failed");
        assert_eq!(answers.unrecorded("uid-1", &intent(at(10))), Some(accepted.clone()), "and failed again");
        assert_eq!(answers.unrecorded("uid-2", &intent(at(10))), None, "another object");
        let mut recorded = intent(at(10));
        recorded.copy_accepted_at = at(11);
        assert_eq!(answers.unrecorded("uid-1", &recorded), None, "the acceptance is recorded");
        assert_eq!(answers.len(), 0, "and the answer dropped");

        for later in [intent(None), intent(at(20))] {
            answers.keep("uid-1", at(10), &accepted);
            assert_eq!(answers.unrecorded("uid-1", &later), None, "the intent was resolved or replaced: {later:?}");
            assert_eq!(answers.len(), 0);
        }
        answers.keep("uid-1", at(10), &accepted);
        answers.forget("uid-1");
        assert_eq!(answers.unrecorded("uid-1", &intent(at(10))), None);
    }
}
