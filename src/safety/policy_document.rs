//! Reading a bucket policy document: whether it lets ElastiCache's service principal do what an
//! export needs, and whether a statement opens the bucket to everyone. Conditions are decided
//! where ElastiCache's request is known (`policy_condition.rs`); otherwise the answer is
//! [`PolicyGrant::Undetermined`], never a guess.

use super::partition::{partition, service_principal};
use super::policy_condition::{condition_applies, Applies};
use serde_json::Value;

fn as_list(v: Option<&Value>) -> Vec<&Value> {
    match v {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(items)) => items.iter().collect(),
        Some(other) => vec![other],
    }
}

pub(super) fn policy_statements(policy: Option<&str>) -> Vec<Value> {
    let Some(doc) = policy.and_then(|p| serde_json::from_str::<Value>(p).ok()) else {
        return vec![];
    };
    as_list(doc.get("Statement")).into_iter().filter(|s| s.is_object()).cloned().collect()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    as_list(v).into_iter().filter_map(|x| x.as_str().map(str::to_string)).collect()
}

/// Whether a statement's principal is everyone.
pub(super) fn principal_is_everyone(st: &Value) -> bool {
    match st.get("Principal") {
        Some(Value::String(s)) => s == "*",
        Some(Value::Object(map)) => strings(map.get("AWS")).iter().any(|s| s == "*"),
        _ => false,
    }
}

fn principal_matches(st: &Value, service: &str) -> bool {
    if st.get("NotPrincipal").is_some() {
        return false;
    }
    principal_is_everyone(st)
        || matches!(st.get("Principal"), Some(Value::Object(map)) if strings(map.get("Service")).iter().any(|s| s == service))
}

fn list_matches(st: &Value, key: &str, not_key: &str, value: &str, case_insensitive: bool) -> bool {
    let matches = |patterns: Vec<String>| {
        patterns.iter().any(|p| {
            if case_insensitive {
                crate::safety::glob::glob_match(&p.to_ascii_lowercase(), &value.to_ascii_lowercase())
            } else {
                crate::safety::glob::glob_match(p, value)
            }
        })
    };
    if st.get(key).is_some() {
        matches(strings(st.get(key)))
    } else if st.get(not_key).is_some() {
        !matches(strings(st.get(not_key)))
    } else {
        false
    }
}

/// What the bucket policy says about some actions of ElastiCache's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum PolicyGrant {
    /// An `Allow` that surely applies, and no `Deny` that may.
    Granted,
    /// No `Allow` that may apply, or a `Deny` that surely does.
    NotGranted,
    /// It rests on conditions the preflight cannot evaluate (named here): CopySnapshot decides.
    Undetermined(Vec<String>),
}

/// Whether the bucket policy lets ElastiCache's service principal do every one of `actions`.
/// A `Deny` that surely applies wins; a statement whose condition cannot hold for ElastiCache's
/// request (the TLS-only `Deny`) does not count; one the preflight cannot evaluate makes the
/// answer [`PolicyGrant::Undetermined`] unless a sure answer decides it anyway.
pub(super) fn policy_allows_all(statements: &[Value], region: &str, bucket: &str, actions: &[&str], key: &str) -> PolicyGrant {
    let service = service_principal(region);
    let bucket_arn = format!("arn:{}:s3:::{bucket}", partition(region));
    let mut open = Vec::new();
    for action in actions {
        let arn = if *action == "s3:PutObject" { format!("{bucket_arn}/{key}") } else { bucket_arn.clone() };
        let (mut allowed, mut maybe_allowed, mut maybe_denied) = (false, Vec::new(), Vec::new());
        for st in statements {
            if !principal_matches(st, &service)
                || !list_matches(st, "Action", "NotAction", action, true)
                || !list_matches(st, "Resource", "NotResource", &arn, false)
            {
                continue;
            }
            let applies = condition_applies(st.get("Condition"));
            match (st.get("Effect").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref(), applies) {
                (Some("deny"), Applies::Yes) => return PolicyGrant::NotGranted,
                (Some("deny"), Applies::Maybe(what)) => maybe_denied.push(format!("a Deny of {action} under {what}")),
                (Some("allow"), Applies::Yes) => allowed = true,
                (Some("allow"), Applies::Maybe(what)) => maybe_allowed.push(format!("an Allow of {action} under {what}")),
                _ => {}
            }
        }
        if !allowed && maybe_allowed.is_empty() {
            return PolicyGrant::NotGranted;
        }
        if !allowed {
            open.extend(maybe_allowed);
        }
        open.extend(maybe_denied);
    }
    if open.is_empty() {
        PolicyGrant::Granted
    } else {
        open.dedup();
        PolicyGrant::Undetermined(open)
    }
}
