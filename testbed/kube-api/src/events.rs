//! `events.k8s.io/v1` Event validation, as the API server does it
//! (`pkg/apis/core/validation/events.go`): a new Event needs `eventTime`, `reportingController`,
//! `reportingInstance`, `action`, `reason`, a `type` of Normal or Warning, and a note of at most
//! 1 KiB; an update may change the series and metadata only.

use crate::error::Cause;
use serde_json::Value;

/// Fields an update may not change.
const IMMUTABLE: &[&str] =
    &["regarding", "related", "note", "reason", "action", "type", "eventTime", "reportingController", "reportingInstance"];
const REQUIRED: &[&str] = &["eventTime", "reportingController", "reportingInstance", "action", "reason"];
const NOTE_MAX_BYTES: usize = 1024;

pub(crate) fn validate(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    for field in REQUIRED {
        if obj.get(field).and_then(Value::as_str).is_none_or(str::is_empty) {
            causes.push(Cause { reason: "FieldValueRequired", message: "Required value".into(), field: (*field).into() });
        }
    }
    if !matches!(obj.get("type").and_then(Value::as_str), Some("Normal" | "Warning")) {
        causes.push(Cause {
            reason: "FieldValueNotSupported",
            message: "Unsupported value: supported values: \"Normal\", \"Warning\"".into(),
            field: "type".into(),
        });
    }
    if obj.get("note").and_then(Value::as_str).is_some_and(|n| n.len() > NOTE_MAX_BYTES) {
        causes.push(Cause {
            reason: "FieldValueTooLong",
            message: format!("Too long: may not be more than {NOTE_MAX_BYTES} bytes"),
            field: "note".into(),
        });
    }
    if let Some(series) = obj.get("series").filter(|s| !s.is_null()) {
        if series.get("count").and_then(Value::as_i64).is_none_or(|c| c < 2) {
            causes.push(Cause { reason: "FieldValueInvalid", message: "should be at least 2".into(), field: "series.count".into() });
        }
        if series.get("lastObservedTime").is_none_or(Value::is_null) {
            causes.push(Cause { reason: "FieldValueRequired", message: "Required value".into(), field: "series.lastObservedTime".into() });
        }
    }
    if let Some(old) = old {
        for field in IMMUTABLE {
            if obj.get(field) != old.get(field) {
                causes.push(Cause { reason: "FieldValueInvalid", message: "field is immutable".into(), field: (*field).into() });
            }
        }
    }
    causes
}
