//! From a decision to the next status and the Events to publish (pure). The reconciler writes the
//! status only when it differs from the recorded one.

use super::decide::Decision;
use crate::api::conditions::{set_health, Health};
use crate::api::{ExportedObject, LastError, Phase, SnapshotExportSpec, SnapshotExportStatus};
use crate::aws::ExportObject;
pub use crate::events::EventNote;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Each exported object's ETag, size and write time, from the listing the completion was judged
/// on: `urls` (`s3://bucket/key`) the objects of the decision, `listed` the keys of `bucket` as
/// listed. An object listed without them is left out (nothing prunes it).
pub fn object_details(urls: &[String], bucket: &str, listed: &[ExportObject]) -> Vec<ExportedObject> {
    urls.iter()
        .filter_map(|url| {
            let key = url.strip_prefix("s3://")?.strip_prefix(bucket)?.strip_prefix('/')?;
            let object = listed.iter().find(|o| o.key == key)?;
            Some(ExportedObject {
                url: url.clone(),
                e_tag: object.e_tag.clone()?,
                size: object.size?,
                last_modified: Some(Time(object.last_modified?)),
            })
        })
        .collect()
}

/// The status that records the intent to call CopySnapshot: written (and confirmed by the API
/// server) before the call is made.
pub fn with_intent(current: &SnapshotExportStatus, spec: &SnapshotExportSpec, generation: Option<i64>, now: &Time) -> SnapshotExportStatus {
    let mut next = current.clone();
    next.observed_generation = generation;
    next.phase = Some(Phase::Pending);
    // The first intent stays while its outcome is unknown: export objects are adopted only if
    // written after it (an earlier request may be the one that writes them).
    if next.copy_requested_at.is_none() {
        next.copy_requested_at = Some(now.clone());
    }
    next.attempts += 1;
    // The spec this request is for: an edit admitted later (no CEL) is refused, not requested.
    next.spec_hash = Some(spec.hash());
    let what = if spec.is_export() { "export" } else { "copy" };
    set_health(
        &mut next.conditions,
        Health::Progressing,
        "CopyRequested",
        &format!("Requesting the {what} from ElastiCache (attempt {}).", next.attempts),
        generation,
        now,
    );
    next
}

/// The status after `decision`.
pub fn next_status(current: &SnapshotExportStatus, decision: &Decision, generation: Option<i64>, now: &Time) -> SnapshotExportStatus {
    let mut next = current.clone();
    next.observed_generation = generation;
    match decision {
        Decision::RequestCopy | Decision::Recheck => {}
        Decision::WaitForSource { reason, message, source_status } => {
            next.phase = Some(Phase::Pending);
            next.copy_requested_at = None;
            if source_status.is_some() {
                next.source_snapshot_status = source_status.clone();
            }
            set_health(&mut next.conditions, Health::Progressing, reason, message, generation, now);
        }
        Decision::InProgress { phase, message, target_arn, target_status, source_status, expected_objects } => {
            next.phase = Some(*phase);
            if matches!(phase, Phase::Copying | Phase::Exporting) {
                accepted(&mut next, now);
            }
            record_seen(&mut next, target_arn, target_status, source_status);
            if !expected_objects.is_empty() {
                next.expected_objects = expected_objects.clone();
            }
            next.last_error = None;
            let reason = match phase {
                Phase::Exporting => "Exporting",
                Phase::Pending => crate::api::OUTCOME_UNKNOWN,
                _ => "Copying",
            };
            set_health(&mut next.conditions, Health::Progressing, reason, message, generation, now);
        }
        Decision::Completed { target_arn, target_status, exported_objects, source_status } => {
            next.phase = Some(Phase::Completed);
            accepted(&mut next, now);
            if next.completed_at.is_none() {
                next.completed_at = Some(now.clone());
            }
            record_seen(&mut next, target_arn, target_status, source_status);
            next.exported_objects = exported_objects.clone();
            if !exported_objects.is_empty() {
                next.expected_objects = exported_objects.clone();
            }
            next.last_error = None;
            let (reason, message) = completion(exported_objects);
            set_health(&mut next.conditions, Health::Ready, reason, &message, generation, now);
        }
        Decision::Stalled { reason, message, clear_intent } => {
            next.phase = Some(Phase::Failed);
            if *clear_intent {
                next.copy_requested_at = None;
            }
            next.last_error = Some(LastError { reason: reason.clone(), message: message.clone() });
            set_health(&mut next.conditions, Health::Stalled, reason, message, generation, now);
        }
        Decision::RetryLater { reason, message, clear_intent } => {
            if next.phase.is_none() {
                next.phase = Some(Phase::Pending);
            }
            if *clear_intent {
                next.copy_requested_at = None;
            }
            next.last_error = Some(LastError { reason: reason.to_string(), message: message.clone() });
            set_health(&mut next.conditions, Health::Progressing, reason, message, generation, now);
        }
    }
    next
}

/// AWS accepted the request (its answer, or our copy or export seen in flight or done): recorded
/// once, never cleared.
fn accepted(next: &mut SnapshotExportStatus, now: &Time) {
    if next.copy_accepted_at.is_none() {
        next.copy_accepted_at = Some(now.clone());
    }
}

/// Keep what was just seen of the snapshots; what was not looked at stays as last recorded.
fn record_seen(
    next: &mut SnapshotExportStatus,
    target_arn: &Option<String>,
    target_status: &Option<String>,
    source_status: &Option<String>,
) {
    if target_arn.is_some() {
        next.target_snapshot_arn = target_arn.clone();
    }
    if target_status.is_some() {
        next.target_snapshot_status = target_status.clone();
    }
    if source_status.is_some() {
        next.source_snapshot_status = source_status.clone();
    }
}

fn completion(exported_objects: &[String]) -> (&'static str, String) {
    if exported_objects.is_empty() {
        ("CopyCompleted", "The in-region copy is available.".to_string())
    } else {
        ("ExportCompleted", format!("Exported {} object(s): {}.", exported_objects.len(), exported_objects.join(", ")))
    }
}

/// The Events a decision deserves. `from_call` when the decision follows a CopySnapshot answer
/// (every refused call is reported; the shared Recorder aggregates repeats into a series);
/// otherwise only transitions are reported, never one Event per poll.
pub fn events_for(previous: &SnapshotExportStatus, decision: &Decision, spec: &SnapshotExportSpec, from_call: bool) -> Vec<EventNote> {
    match decision {
        Decision::InProgress { .. } if from_call => {
            let to = match &spec.target_bucket {
                Some(b) => format!("s3://{b}/{}", super::decide::export_pattern(spec)),
                None => format!("snapshot {:?}", spec.target_snapshot_name),
            };
            vec![EventNote {
                warning: false,
                reason: "CopyRequested".into(),
                note: format!("{} accepted: {:?} to {to}.", super::serverless::operation(spec), spec.source_snapshot_name),
            }]
        }
        Decision::Completed { exported_objects, .. } if previous.phase != Some(Phase::Completed) => {
            let (reason, message) = completion(exported_objects);
            vec![EventNote { warning: false, reason: reason.into(), note: message }]
        }
        Decision::Stalled { reason, message, .. } => {
            let same = previous.phase == Some(Phase::Failed)
                && previous.last_error.as_ref().is_some_and(|e| &e.reason == reason && &e.message == message);
            if from_call || !same {
                vec![EventNote { warning: true, reason: reason.clone(), note: message.clone() }]
            } else {
                vec![]
            }
        }
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::{find, READY, RECONCILING, STALLED};
    use k8s_openapi::jiff::Timestamp;

    fn t(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap())
    }
    fn spec() -> SnapshotExportSpec {
        SnapshotExportSpec::new("src", "dst", Some("bkt"))
    }
    fn stalled() -> Decision {
        Decision::Stalled {
            reason: "S3BucketNotFound".into(),
            message: "The S3 bucket bkt does not exist. Create…".into(),
            clear_intent: true,
        }
    }

    #[test]
    fn intent_then_stall_clears_intent_and_reports_once_per_transition() {
        let s0 = SnapshotExportStatus::default();
        let s1 = with_intent(&s0, &spec(), Some(1), &t(10));
        assert_eq!(s1.attempts, 1);
        assert!(s1.copy_requested_at.is_some());
        let s2 = next_status(&s1, &stalled(), Some(1), &t(11));
        assert_eq!(s2.phase, Some(Phase::Failed));
        assert!(s2.copy_requested_at.is_none());
        assert_eq!(find(&s2.conditions, STALLED).unwrap().status, "True");
        assert_eq!(find(&s2.conditions, READY).unwrap().status, "False");
        assert_eq!(s2.last_error.as_ref().unwrap().reason, "S3BucketNotFound");
        // a refused call is always reported; re-observing the same stall is not.
        assert_eq!(events_for(&s1, &stalled(), &spec(), true).len(), 1);
        assert_eq!(events_for(&s2, &stalled(), &spec(), true).len(), 1);
        assert!(events_for(&s2, &stalled(), &spec(), false).is_empty());
        // the same decision again changes nothing: no write
        assert_eq!(next_status(&s2, &stalled(), Some(1), &t(99)), s2);
    }

    #[test]
    fn a_repeated_intent_keeps_the_first_request_time_and_throttling_clears_it() {
        let s1 = with_intent(&SnapshotExportStatus::default(), &spec(), Some(1), &t(10));
        let s2 = with_intent(&s1, &spec(), Some(1), &t(20));
        assert_eq!((s2.copy_requested_at.clone(), s2.attempts), (Some(t(10)), 2));
        let throttled = Decision::RetryLater { reason: "AwsThrottled", message: "m".into(), clear_intent: true };
        assert!(next_status(&s2, &throttled, Some(1), &t(21)).copy_requested_at.is_none());
        let unknown = Decision::RetryLater { reason: "AwsUnavailable", message: "m".into(), clear_intent: false };
        assert_eq!(next_status(&s2, &unknown, Some(1), &t(21)).copy_requested_at, Some(t(10)));
    }

    #[test]
    fn acceptance_is_recorded_once_and_outlives_a_stall() {
        let intent = with_intent(&SnapshotExportStatus::default(), &spec(), Some(1), &t(10));
        assert_eq!(intent.spec_hash, Some(spec().hash()), "the requested spec is written with the intent");
        assert_eq!(intent.copy_accepted_at, None);
        let exporting = |phase| Decision::InProgress {
            phase,
            message: "m".into(),
            target_arn: None,
            target_status: None,
            source_status: None,
            expected_objects: vec![],
        };
        // An unknown outcome (phase Pending) is no acceptance.
        assert_eq!(next_status(&intent, &exporting(Phase::Pending), Some(1), &t(11)).copy_accepted_at, None);
        let accepted = next_status(&intent, &exporting(Phase::Exporting), Some(1), &t(12));
        assert_eq!(accepted.copy_accepted_at, Some(t(12)));
        let again = next_status(&accepted, &exporting(Phase::Exporting), Some(1), &t(13));
        assert_eq!(again.copy_accepted_at, Some(t(12)), "recorded once");
        let failed = Decision::Stalled { reason: "ExportFailed".into(), message: "m".into(), clear_intent: true };
        let stalled = next_status(&again, &failed, Some(1), &t(14));
        assert_eq!((stalled.phase, stalled.copy_accepted_at), (Some(Phase::Failed), Some(t(12))), "never cleared");
        let done = Decision::Completed { target_arn: None, target_status: None, exported_objects: vec![], source_status: None };
        assert_eq!(next_status(&intent, &done, Some(1), &t(15)).copy_accepted_at, Some(t(15)), "adopted when found done");
    }

    #[test]
    fn completion_sets_ready_and_emits_once() {
        let done = Decision::Completed {
            target_arn: None,
            target_status: None,
            exported_objects: vec!["s3://bkt/dst-0001.rdb".into()],
            source_status: Some("available".into()),
        };
        let s = next_status(&SnapshotExportStatus { phase: Some(Phase::Exporting), ..Default::default() }, &done, Some(1), &t(5));
        assert_eq!(s.phase, Some(Phase::Completed));
        assert_eq!(s.completed_at, Some(t(5)));
        assert_eq!(find(&s.conditions, READY).unwrap().status, "True");
        assert_eq!(find(&s.conditions, READY).unwrap().reason, "ExportCompleted");
        assert_eq!(find(&s.conditions, RECONCILING).unwrap().status, "False");
        let ev = events_for(&SnapshotExportStatus::default(), &done, &spec(), false);
        assert_eq!(ev[0].reason, "ExportCompleted");
        assert!(events_for(&s, &done, &spec(), false).is_empty());
    }

    #[test]
    fn polling_in_progress_writes_nothing_new() {
        let d = Decision::InProgress {
            phase: Phase::Exporting,
            message: "m".into(),
            target_arn: None,
            target_status: None,
            source_status: Some("exporting".into()),
            expected_objects: vec!["s3://bkt/dst-0001.rdb".into()],
        };
        let s1 = next_status(&SnapshotExportStatus::default(), &d, Some(1), &t(1));
        assert_eq!(next_status(&s1, &d, Some(1), &t(2)), s1);
        assert!(events_for(&s1, &d, &spec(), false).is_empty());
    }
    #[test]
    fn each_exported_object_is_recorded_with_its_etag_and_size_as_listed() {
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        let listed = |key: &str, e_tag: Option<&str>| ExportObject {
            key: key.into(),
            e_tag: e_tag.map(str::to_string),
            size: Some(42),
            last_modified: Some(at),
        };
        let urls = vec!["s3://bkt/dst-0001.rdb".to_string(), "s3://bkt/dst-0002.rdb".to_string(), "s3://bkt/dst-0003.rdb".to_string()];
        let objects = [listed("dst-0001.rdb", Some("\"a\"")), listed("dst-0002.rdb", None), listed("other-0001.rdb", Some("\"b\""))];
        let details = object_details(&urls, "bkt", &objects);
        let want = ExportedObject { url: urls[0].clone(), e_tag: "\"a\"".into(), size: 42, last_modified: Some(Time(at)) };
        assert_eq!(details, [want], "no ETag, or not listed: left out");
        assert!(object_details(&urls, "other", &objects).is_empty(), "another bucket's keys");
    }
}
