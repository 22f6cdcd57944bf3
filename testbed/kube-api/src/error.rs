//! `meta/v1 Status` errors, shaped like the real apiserver's so kube-rs maps them to `kube::Error::Api`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// One entry of `details.causes[]`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Cause {
    pub reason: &'static str,
    pub message: String,
    pub field: String,
}

#[derive(Clone, Debug)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError { code, reason, message: message.into(), details: None }
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// `group_resource` is `plural` for the core group, `plural.group` otherwise.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{} \"{}\" not found", gr(group, plural), name))
            .with_details(json!({"name": name, "group": group, "kind": plural}))
    }

    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{} \"{}\" already exists", gr(group, plural), name))
            .with_details(json!({"name": name, "group": group, "kind": plural}))
    }

    pub fn conflict(group: &str, plural: &str, name: &str, why: &str) -> Self {
        Self::new(409, "Conflict", format!("Operation cannot be fulfilled on {} \"{}\": {}", gr(group, plural), name, why))
            .with_details(json!({"name": name, "group": group, "kind": plural}))
    }

    pub fn stale(group: &str, plural: &str, name: &str) -> Self {
        Self::conflict(group, plural, name, "the object has been modified; please apply your changes to the latest version and try again")
    }

    /// 422 Invalid; `kind_group` is e.g. `SnapshotExport.elasticache-export.io`.
    pub fn invalid(kind_group: &str, group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let rendered: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() && c.message.starts_with("Invalid value") {
                    // a rule on the root object: the apiserver prints a nil field path
                    format!("<nil>: {}", c.message)
                } else if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let joined = if rendered.len() == 1 { rendered[0].clone() } else { format!("[{}]", rendered.join(", ")) };
        let causes_json: Vec<Value> = causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect();
        Self::new(422, "Invalid", format!("{kind_group} \"{name}\" is invalid: {joined}"))
            .with_details(json!({"name": name, "group": group, "kind": kind, "causes": causes_json}))
    }

    /// 422 Invalid without causes, as kube-apiserver answers a JSON patch it cannot apply
    /// (`NewGenericServerResponse`).
    pub fn unprocessable() -> Self {
        Self::new(422, "Invalid", "the server rejected our request due to an error in our request").with_details(json!({}))
    }

    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", msg)
    }

    pub fn method_not_allowed(msg: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", msg)
    }

    pub fn gone(msg: impl Into<String>) -> Self {
        Self::new(410, "Expired", msg)
    }

    pub fn unsupported_media(msg: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", msg)
    }

    pub fn no_route() -> Self {
        Self::new(404, "NotFound", "the server could not find the requested resource")
    }

    /// Error for an injected fault with the given HTTP status.
    pub fn injected(code: u16, verb: &str, resource: &str, name: Option<&str>) -> Self {
        let target = match name {
            Some(n) => format!("{resource} \"{n}\""),
            None => resource.to_string(),
        };
        let (reason, message) = match code {
            409 => (
                "Conflict",
                format!("Operation cannot be fulfilled on {target}: the object has been modified; please apply your changes to the latest version and try again (injected fault)"),
            ),
            429 => ("TooManyRequests", format!("Too many requests, please try again later (injected fault on {verb} {target})")),
            500 => ("InternalError", format!("Internal error occurred: injected fault on {verb} {target}")),
            503 => ("ServiceUnavailable", format!("the server is currently unable to handle the request (injected fault on {verb} {target})")),
            504 => ("Timeout", format!("Timeout: injected fault on {verb} {target}")),
            404 => ("NotFound", format!("{target} not found (injected fault)")),
            403 => ("Forbidden", format!("{target} is forbidden (injected fault)")),
            410 => ("Expired", "too old resource version (injected fault)".to_string()),
            422 => ("Invalid", format!("{target} is invalid (injected fault)")),
            400 => ("BadRequest", format!("bad request (injected fault on {verb} {target})")),
            _ => ("InternalError", format!("injected fault {code} on {verb} {target}")),
        };
        let mut e = Self::new(code, reason, message);
        if code == 429 {
            e.details = Some(json!({"retryAfterSeconds": 1}));
        }
        e
    }

    pub fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

pub(crate) fn gr(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        let mut resp = (code, body).into_response();
        resp.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
        if self.code == 429 {
            resp.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
        }
        resp
    }
}
