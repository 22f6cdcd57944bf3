//! `events.k8s.io/v1` Event validation, as the API server does it
//! (`pkg/apis/core/validation/events.go`): a new Event needs `eventTime`, `reportingController`,
//! `reportingInstance`, `action`, `reason`, a `type` of Normal or Warning, and a note of at most
//! 1 KiB; `reason`, `action` and `reportingInstance` of at most 128 characters and a
//! `reportingController` that is a qualified name; an update may change the series and metadata
//! only. Messages are worded as the v1.24 server words them.

use crate::error::Cause;
use serde_json::Value;

/// Fields an update may not change.
const IMMUTABLE: &[&str] =
    &["regarding", "related", "note", "reason", "action", "type", "eventTime", "reportingController", "reportingInstance"];
const REQUIRED: &[&str] = &["eventTime", "reportingController", "reportingInstance", "action", "reason"];
const NOTE_MAX_BYTES: usize = 1024;
/// `reason`, `action` and `reportingInstance`: at most this many bytes.
const SHORT_MAX_BYTES: usize = 128;
const QUALIFIED_NAME_CHARS: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// Apimachinery's `IsQualifiedName`: an optional DNS subdomain prefix and `/`, then a name part of
/// at most 63 characters `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`. The errors, worded as there.
fn qualified_name_errors(value: &str) -> Vec<String> {
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            let subdomain = !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|l| {
                    !l.is_empty()
                        && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                });
            if !subdomain {
                return vec!["prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character".into()];
            }
            *name
        }
        _ => {
            return vec![format!(
                "a qualified name {QUALIFIED_NAME_CHARS} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )]
        }
    };
    let mut errors = Vec::new();
    if name.is_empty() {
        errors.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errors.push("name part must be no more than 63 characters".to_string());
    }
    let alnum = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    let bytes = name.as_bytes();
    let chars_ok = bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !chars_ok || !alnum(bytes.first()) || !alnum(bytes.last()) {
        errors.push(format!("name part {QUALIFIED_NAME_CHARS}"));
    }
    errors
}

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
    for field in ["reason", "action", "reportingInstance"] {
        if obj.get(field).and_then(Value::as_str).is_some_and(|v| v.len() > SHORT_MAX_BYTES) {
            causes.push(Cause {
                reason: "FieldValueInvalid",
                message: format!("Invalid value: \"\": can have at most {SHORT_MAX_BYTES} characters"),
                field: field.into(),
            });
        }
    }
    if let Some(controller) = obj.get("reportingController").and_then(Value::as_str).filter(|c| !c.is_empty()) {
        for error in qualified_name_errors(controller) {
            causes.push(Cause {
                reason: "FieldValueInvalid",
                message: format!("Invalid value: {}: {error}", Value::from(controller)),
                field: "reportingController".into(),
            });
        }
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
