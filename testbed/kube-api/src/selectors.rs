//! Label and field selectors (`labelSelector=` / `fieldSelector=` query parameters).

use crate::error::{ApiError, ApiResult};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
enum Req {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; an empty selector matches everything.
#[derive(Clone, Debug, Default)]
pub(crate) struct LabelSelector(Vec<Req>);

fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

fn valid_key(k: &str) -> bool {
    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

impl LabelSelector {
    pub fn parse(s: &str) -> ApiResult<Self> {
        let bad = |r: &str| ApiError::bad_request(format!("unable to parse requirement: found '{r}', expected: valid label selector"));
        let mut reqs = Vec::new();
        for r in split_top_level(s) {
            if let Some(k) = r.strip_prefix('!') {
                let k = k.trim();
                if !valid_key(k) {
                    return Err(bad(&r));
                }
                reqs.push(Req::NotExists(k.to_string()));
                continue;
            }
            if let Some(open) = r.find('(') {
                let head = r[..open].trim();
                let close = r.rfind(')').ok_or_else(|| bad(&r))?;
                let values: Vec<String> = r[open + 1..close].split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
                let mut parts = head.split_whitespace();
                let key = parts.next().ok_or_else(|| bad(&r))?.to_string();
                let op = parts.next().ok_or_else(|| bad(&r))?;
                if !valid_key(&key) {
                    return Err(bad(&r));
                }
                match op {
                    "in" => reqs.push(Req::In(key, values)),
                    "notin" => reqs.push(Req::NotIn(key, values)),
                    _ => return Err(bad(&r)),
                }
                continue;
            }
            if let Some((k, v)) = r.split_once("!=") {
                reqs.push(Req::NotEq(k.trim().to_string(), v.trim().to_string()));
            } else if let Some((k, v)) = r.split_once("==") {
                reqs.push(Req::Eq(k.trim().to_string(), v.trim().to_string()));
            } else if let Some((k, v)) = r.split_once('=') {
                reqs.push(Req::Eq(k.trim().to_string(), v.trim().to_string()));
            } else {
                if !valid_key(&r) {
                    return Err(bad(&r));
                }
                reqs.push(Req::Exists(r.clone()));
            }
        }
        Ok(LabelSelector(reqs))
    }

    /// Does the object's `metadata.labels` satisfy every requirement?
    pub fn matches(&self, obj: &Value) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let labels = obj.pointer("/metadata/labels");
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(|v| v.as_str());
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v.as_str()),
            Req::NotEq(k, v) => get(k) != Some(v.as_str()),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed field selector. Supports `=`, `==`, `!=` on any dotted path of the object
/// (`metadata.name`, `metadata.namespace`, `spec.x`, ...), comparing the string form.
#[derive(Clone, Debug, Default)]
pub(crate) struct FieldSelector(Vec<(Vec<String>, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str) -> ApiResult<Self> {
        let mut out = Vec::new();
        for r in split_top_level(s) {
            let (k, eq, v) = if let Some((k, v)) = r.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = r.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = r.split_once('=') {
                (k, true, v)
            } else {
                return Err(ApiError::bad_request(format!("invalid selector: '{r}'; can't understand '{r}'")));
            };
            let path = k.trim().split('.').map(|s| s.to_string()).collect();
            out.push((path, eq, v.trim().to_string()));
        }
        Ok(FieldSelector(out))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, eq, want)| {
            let mut cur = Some(obj);
            for seg in path {
                cur = cur.and_then(|c| c.get(seg));
            }
            let got = match cur {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(v) => v.to_string(),
            };
            (got == *want) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selector_ops() {
        let o = json!({"metadata": {"labels": {"app": "a", "tier": "db"}}});
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(m("app=a"));
        assert!(m("app==a"));
        assert!(!m("app!=a"));
        assert!(m("app in (a, b),tier"));
        assert!(!m("app notin (a,b)"));
        assert!(m("missing notin (a)"));
        assert!(m("!missing"));
        assert!(!m("!app"));
        assert!(m(""));
    }

    #[test]
    fn field_selector_ops() {
        let o = json!({"metadata": {"name": "x", "namespace": "ns"}});
        assert!(FieldSelector::parse("metadata.name=x,metadata.namespace!=y").unwrap().matches(&o));
        assert!(!FieldSelector::parse("metadata.name=y").unwrap().matches(&o));
    }
}
