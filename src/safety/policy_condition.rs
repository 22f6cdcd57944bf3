//! Bucket policy `Condition`s as they apply to ElastiCache's export request: decided where that
//! request is known, "cannot tell" everywhere else.
//!
//! What is known of the request ElastiCache's service makes to the bucket: it is made over TLS
//! (`aws:SecureTransport` is present and `true`). Nothing else is: the ElastiCache guide does not
//! say whether its export requests carry `aws:SourceAccount` / `aws:SourceArn`, nor from which
//! network they come, so a condition on any other key is [`Applies::Maybe`] and the caller must
//! not rest a verdict on it (an `Allow` that may not apply grants nothing for sure; a `Deny` that
//! may apply refuses nothing for sure).

use serde_json::Value;

/// Whether a statement's `Condition` holds for ElastiCache's export request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Applies {
    Yes,
    No,
    /// The preflight cannot tell; the text names the condition (e.g. `StringEquals aws:SourceAccount`).
    Maybe(String),
}

/// IAM evaluates operators, and keys within an operator, with a logical AND: one that cannot
/// hold makes the statement not apply; otherwise one the preflight cannot evaluate leaves it open.
pub(super) fn condition_applies(condition: Option<&Value>) -> Applies {
    let block = match condition {
        None | Some(Value::Null) => return Applies::Yes,
        Some(Value::Object(block)) => block,
        Some(_) => return Applies::Maybe("a Condition that is not an object".into()),
    };
    let mut maybe = None;
    for (operator, keys) in block {
        let Value::Object(keys) = keys else {
            maybe.get_or_insert_with(|| format!("{operator} (not an object)"));
            continue;
        };
        for (key, values) in keys {
            match test(operator, key, values) {
                Applies::No => return Applies::No,
                Applies::Maybe(what) => {
                    maybe.get_or_insert(what);
                }
                Applies::Yes => {}
            }
        }
    }
    maybe.map_or(Applies::Yes, Applies::Maybe)
}

/// One operator on one key. Condition key names are case-insensitive; several values are ORed.
fn test(operator: &str, key: &str, values: &Value) -> Applies {
    let unknown = || Applies::Maybe(format!("{operator} {key}"));
    if !key.eq_ignore_ascii_case("aws:SecureTransport") || operator.contains(':') {
        // Any other key, or a set operator (ForAnyValue:/ForAllValues:) on a single-valued key.
        return unknown();
    }
    let values: Vec<&Value> = match values {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    let Some(bools) = values.iter().map(|v| as_bool(v)).collect::<Option<Vec<bool>>>() else {
        return unknown();
    };
    // The key is present in ElastiCache's request, so `IfExists` changes nothing.
    match operator.to_ascii_lowercase().as_str() {
        // The request's value is true.
        "bool" | "boolifexists" => yes_if(bools.contains(&true)),
        // `Null: true` holds when the key is absent; it is present.
        "null" => yes_if(bools.contains(&false)),
        _ => unknown(),
    }
}

fn yes_if(holds: bool) -> Applies {
    if holds {
        Applies::Yes
    } else {
        Applies::No
    }
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Condition in, whether it holds for ElastiCache's (TLS) request out.
    #[test]
    fn conditions_table() {
        let cases: Vec<(&str, Option<Value>, &str)> = vec![
            ("no condition", None, "yes"),
            ("TLS-only deny's condition", Some(json!({"Bool": {"aws:SecureTransport": "false"}})), "no"),
            ("as a JSON boolean", Some(json!({"Bool": {"aws:SecureTransport": false}})), "no"),
            ("key case-insensitive", Some(json!({"Bool": {"AWS:securetransport": "False"}})), "no"),
            ("true holds", Some(json!({"Bool": {"aws:SecureTransport": "true"}})), "yes"),
            ("values are ORed", Some(json!({"Bool": {"aws:SecureTransport": ["false", "true"]}})), "yes"),
            ("IfExists on a present key", Some(json!({"BoolIfExists": {"aws:SecureTransport": "false"}})), "no"),
            ("Null true: absent, but it is present", Some(json!({"Null": {"aws:SecureTransport": "true"}})), "no"),
            ("Null false: present", Some(json!({"Null": {"aws:SecureTransport": "false"}})), "yes"),
            ("a value that is no boolean", Some(json!({"Bool": {"aws:SecureTransport": "maybe"}})), "maybe:Bool aws:SecureTransport"),
            (
                "another operator on the key",
                Some(json!({"StringEquals": {"aws:SecureTransport": "true"}})),
                "maybe:StringEquals aws:SecureTransport",
            ),
            (
                "a set operator",
                Some(json!({"ForAnyValue:Bool": {"aws:SecureTransport": "true"}})),
                "maybe:ForAnyValue:Bool aws:SecureTransport",
            ),
            (
                "source account: not known",
                Some(json!({"StringEquals": {"aws:SourceAccount": "111122223333"}})),
                "maybe:StringEquals aws:SourceAccount",
            ),
            ("source ARN: not known", Some(json!({"ArnLike": {"aws:SourceArn": "arn:aws:elasticache:*"}})), "maybe:ArnLike aws:SourceArn"),
            (
                "AND: one that cannot hold wins over one unknown",
                Some(json!({"StringEquals": {"aws:SourceVpce": "vpce-1"}, "Bool": {"aws:SecureTransport": "false"}})),
                "no",
            ),
            (
                "AND: keys of one operator",
                Some(json!({"Bool": {"aws:SecureTransport": "true", "aws:MultiFactorAuthPresent": "true"}})),
                "maybe:Bool aws:MultiFactorAuthPresent",
            ),
            ("not an object", Some(json!("x")), "maybe:a Condition that is not an object"),
            ("empty: holds", Some(json!({})), "yes"),
        ];
        for (name, condition, want) in cases {
            let got = match condition_applies(condition.as_ref()) {
                Applies::Yes => "yes".to_string(),
                Applies::No => "no".to_string(),
                Applies::Maybe(what) => format!("maybe:{what}"),
            };
            assert_eq!(got, want, "{name}");
        }
    }
}
