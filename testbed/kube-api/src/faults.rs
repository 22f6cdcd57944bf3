//! Fault injection and request statistics.

use crate::Shared;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Which requests a fault applies to, and how it answers.
///
/// `verb`: `get`, `list`, `watch`, `create`, `update`, `patch` (any patch type), `apply` (only
/// server-side-apply patches), `delete`, `deletecollection` or `*`.
/// `resource`: the plural (`leases`, `snapshotexports`, ...) or `*`.
/// `subresource`: `None` matches only requests to the main resource, `Some("status")` only the
/// status subresource, `Some("*")` both. `status`: the HTTP code to answer (409, 500, 429, ...).
/// `count`: how many matching requests fail (for [`Faults::fail_next`]; ignored by `fail_rate`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FaultRule {
    pub verb: String,
    pub resource: String,
    #[serde(default)]
    pub subresource: Option<String>,
    pub status: u16,
    #[serde(default = "one")]
    pub count: usize,
}

fn one() -> usize {
    1
}

impl FaultRule {
    /// Convenience constructor: `FaultRule::new("update", "leases", 409)`.
    pub fn new(verb: &str, resource: &str, status: u16) -> Self {
        FaultRule { verb: verb.into(), resource: resource.into(), subresource: None, status, count: 1 }
    }
    pub fn subresource(mut self, sub: &str) -> Self {
        self.subresource = Some(sub.into());
        self
    }
    pub fn count(mut self, n: usize) -> Self {
        self.count = n;
        self
    }

    fn matches(&self, verb: &str, apply: bool, resource: &str, sub: Option<&str>) -> bool {
        (self.verb == "*" || self.verb == verb || (self.verb == "apply" && apply))
            && (self.resource == "*" || self.resource == resource)
            && match (self.subresource.as_deref(), sub) {
                (Some("*"), _) => true,
                (None, None) => true,
                (Some(a), Some(b)) => a == b,
                _ => false,
            }
    }
}

enum Mode {
    Next(usize),
    Rate { rate: f64, state: u64 },
}

/// A set of fault rules and the decision which request they fail: the test bed's, and the e2e
/// suite's recording proxy in front of a real API server, so both inject the same faults.
#[derive(Default)]
pub struct FaultState {
    rules: Vec<(FaultRule, Mode)>,
}

fn splitmix(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl FaultState {
    /// Fail the next `rule.count` matching requests.
    pub fn push_next(&mut self, rule: FaultRule) {
        let n = rule.count;
        self.rules.push((rule, Mode::Next(n)));
    }

    /// Fail a random share `rate` (0.0-1.0) of matching requests, deterministic for a `seed`.
    pub fn push_rate(&mut self, rule: FaultRule, rate: f64, seed: u64) {
        self.rules.push((rule, Mode::Rate { rate: rate.clamp(0.0, 1.0), state: seed }));
    }

    /// Remove every rule.
    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// Should this request fail? Returns the HTTP status to answer.
    pub fn check(&mut self, verb: &str, apply: bool, resource: &str, sub: Option<&str>) -> Option<u16> {
        let mut hit = None;
        for (rule, mode) in self.rules.iter_mut() {
            if !rule.matches(verb, apply, resource, sub) {
                continue;
            }
            match mode {
                Mode::Next(n) if *n > 0 => {
                    *n -= 1;
                    hit = Some(rule.status);
                    break;
                }
                Mode::Next(_) => {}
                Mode::Rate { rate, state } => {
                    if splitmix(state) < *rate {
                        hit = Some(rule.status);
                        break;
                    }
                }
            }
        }
        self.rules.retain(|(_, m)| !matches!(m, Mode::Next(0)));
        hit
    }
}

/// Cloneable handle to the server's fault controls.
#[derive(Clone)]
pub struct Faults {
    pub(crate) shared: Arc<Shared>,
}

impl Faults {
    /// Close every open watch stream now (clients see the stream end and re-watch).
    pub fn drop_watches(&self) {
        self.shared.store.lock().expect("store lock").drop_watches();
    }

    /// Answer the next `rule.count` requests matching the rule with `rule.status`.
    pub fn fail_next(&self, rule: FaultRule) {
        self.shared.faults.lock().expect("faults lock").push_next(rule);
    }

    /// Fail a random share `rate` (0.0-1.0) of matching requests, deterministic for a `seed`.
    pub fn fail_rate(&self, rule: FaultRule, rate: f64, seed: u64) {
        self.shared.faults.lock().expect("faults lock").push_rate(rule, rate, seed);
    }

    /// Remove all fault rules.
    pub fn clear(&self) {
        self.shared.faults.lock().expect("faults lock").clear();
    }
}

/// Request counts. Keys of `requests` are the resource (`leases`, or `leases/status` for a
/// subresource), then the verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
/// `deletecollection`). Counted when the request arrives, including requests failed by faults.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub requests: BTreeMap<String, BTreeMap<String, u64>>,
    /// Requests answered by an injected fault.
    pub injected_faults: u64,
    /// The current global resourceVersion.
    pub resource_version: u64,
    /// Watch streams currently open.
    pub open_watches: usize,
}

const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

impl Stats {
    /// Requests with this verb to exactly this resource key (`leases` or `leases/status`).
    pub fn count(&self, verb: &str, resource: &str) -> u64 {
        self.requests.get(resource).and_then(|m| m.get(verb)).copied().unwrap_or(0)
    }

    /// Writes (create/update/patch/delete) to the resource, its subresources included.
    pub fn writes(&self, resource: &str) -> u64 {
        self.requests
            .iter()
            .filter(|(r, _)| *r == resource || r.starts_with(&format!("{resource}/")))
            .flat_map(|(_, m)| m.iter())
            .filter(|(v, _)| WRITE_VERBS.contains(&v.as_str()))
            .map(|(_, n)| *n)
            .sum()
    }

    /// All counted requests.
    pub fn total(&self) -> u64 {
        self.requests.values().flat_map(|m| m.values()).sum()
    }
}
