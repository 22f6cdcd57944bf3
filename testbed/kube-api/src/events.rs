//! `events.k8s.io/v1` Event validation, as the API server does it
//! (`pkg/apis/core/validation/events.go`): a new Event needs `eventTime`, `reportingController`,
//! `reportingInstance`, `action`, `reason`, a `type` of Normal or Warning, and a note of at most
//! 1 KiB; `reason`, `action` and `reportingInstance` of at most 128 characters and a
//! `reportingController` that is a qualified name; an update may change the series and metadata
//! only. Errors come in the v1.24 server's order and words (its internal field names).

use crate::error::Cause;
use serde_json::Value;

/// Fields an update may not change, with the names the apiserver's errors give them, in its order.
const IMMUTABLE: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("reason", "reason"),
    ("note", "message"),
    ("action", "action"),
    ("related", "related"),
    ("reportingController", "reportingController"),
    ("reportingInstance", "reportingInstance"),
    ("type", "type"),
    ("eventTime", "eventTime"),
];
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

fn required(field: &str) -> Cause {
    Cause { reason: "FieldValueRequired", message: "Required value".into(), field: field.into() }
}

fn invalid(field: &str, value: &str, detail: &str) -> Cause {
    Cause { reason: "FieldValueInvalid", message: format!("Invalid value: {}: {detail}", Value::from(value)), field: field.into() }
}

fn text<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get(field).and_then(Value::as_str).unwrap_or_default()
}

/// In the apiserver's order (`legacyValidateEvent`, then the strict checks), with its field
/// names: the internal type calls the note `message` and `regarding` `involvedObject`. Without an
/// `eventTime` an Event is taken for an old-style one and only the `eventTime` is reported.
pub(crate) fn validate(obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let new_style = obj.get("eventTime").is_some_and(|t| !t.is_null());
    if new_style {
        let controller = text(obj, "reportingController");
        if controller.is_empty() {
            causes.push(required("reportingController"));
        }
        causes.extend(qualified_name_errors(controller).iter().map(|e| invalid("reportingController", controller, e)));
        for field in ["reportingInstance", "action", "reason"] {
            let value = text(obj, field);
            if value.is_empty() {
                causes.push(required(field));
            }
            if value.len() > SHORT_MAX_BYTES {
                causes.push(invalid(field, "", &format!("can have at most {SHORT_MAX_BYTES} characters")));
            }
        }
        if text(obj, "note").len() > NOTE_MAX_BYTES {
            causes.push(invalid("message", "", &format!("can have at most {NOTE_MAX_BYTES} characters")));
        }
    }
    let series_changed = old.is_none_or(|old| obj.get("series") != old.get("series"));
    if let Some(series) = obj.get("series").filter(|s| !s.is_null() && series_changed) {
        if series.get("count").and_then(Value::as_i64).is_none_or(|c| c < 2) {
            causes.push(invalid("series.count", "", "should be at least 2"));
        }
        if series.get("lastObservedTime").is_none_or(Value::is_null) {
            causes.push(required("series.lastObservedTime"));
        }
    }
    let Some(old) = old else {
        if !new_style {
            causes.push(required("eventTime"));
        }
        let kind = text(obj, "type");
        if !matches!(kind, "Normal" | "Warning") {
            causes.push(invalid("type", "", &format!("has invalid value: {kind}")));
        }
        return causes;
    };
    for (field, name) in IMMUTABLE {
        if obj.get(field) != old.get(field) {
            let shown = match obj.get(field) {
                Some(Value::String(v)) => Value::from(v.as_str()).to_string(),
                Some(other) => other.to_string(),
                None => "\"\"".into(),
            };
            causes.push(Cause {
                reason: "FieldValueInvalid",
                message: format!("Invalid value: {shown}: field is immutable"),
                field: (*name).into(),
            });
        }
    }
    causes
}
