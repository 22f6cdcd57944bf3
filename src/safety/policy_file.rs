//! Where the export policy comes from: the rules from flags and the file, re-read when it changes.

use super::policy::{ExportPolicy, ExportRequest, Refusal, Rule};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where the policy comes from: a file that may change at runtime (a mounted ConfigMap) plus
/// rules from flags. The file is read again on each check (it is small) and parsed again only
/// when its content changed; a file that cannot be read or parsed refuses every export until it
/// is fixed (fail closed), with the error in the refusal.
pub struct PolicySource {
    file: Option<PathBuf>,
    flag_rules: Vec<Rule>,
    /// The file's bytes last read, and what they parsed to.
    cache: Mutex<Option<(Vec<u8>, CurrentPolicy)>>,
}

/// The policy in force, or why there is none.
pub type CurrentPolicy = Result<ExportPolicy, String>;

impl PolicySource {
    /// A fixed policy (no file).
    pub fn fixed(policy: ExportPolicy) -> Self {
        Self { file: None, flag_rules: Vec::new(), cache: Mutex::new(Some((Vec::new(), Ok(policy)))) }
    }

    /// Rules from flags and an optional file; the file is checked now (an operator that cannot
    /// read its policy at startup should not start).
    pub fn new(file: Option<PathBuf>, flag_rules: Vec<Rule>) -> Result<Self, String> {
        let source = Self { file, flag_rules, cache: Mutex::new(None) };
        source.current()?;
        Ok(source)
    }

    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The policy in force now.
    pub fn current(&self) -> CurrentPolicy {
        let Some(path) = &self.file else {
            let mut cache = self.cache.lock().expect("policy lock");
            return cache.get_or_insert_with(|| (Vec::new(), Ok(ExportPolicy::default().with_rules(self.flag_rules.clone())))).1.clone();
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) => return Err(format!("the export policy file {} cannot be read: {err}", path.display())),
        };
        let mut cache = self.cache.lock().expect("policy lock");
        if let Some((seen, parsed)) = cache.as_ref() {
            if *seen == bytes {
                return parsed.clone();
            }
        }
        let parsed = std::str::from_utf8(&bytes)
            .map_err(|e| e.to_string())
            .and_then(ExportPolicy::parse)
            .map(|p| p.with_rules(self.flag_rules.clone()))
            .map_err(|e| format!("the export policy file {} is invalid: {e}", path.display()));
        match &parsed {
            Ok(p) => tracing::info!(file = %path.display(), rules = p.rules.len(), "export policy loaded"),
            Err(e) => tracing::error!(error = %e, "export policy unusable: refusing every export until it is fixed"),
        }
        *cache = Some((bytes, parsed.clone()));
        parsed
    }

    /// Check a request against the policy in force.
    pub fn check(&self, req: &ExportRequest<'_>) -> Result<Option<usize>, Refusal> {
        match self.current() {
            Ok(policy) => policy.check(req),
            Err(problem) => Err(Refusal {
                why: format!("The operator refuses every copy and export because {problem}. Fix the policy file."),
                rule_to_add: None,
            }),
        }
    }
}

impl Default for PolicySource {
    fn default() -> Self {
        Self::fixed(ExportPolicy::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safety::policy::tests::rule;

    #[test]
    fn the_file_is_reread_when_it_changes_and_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, "rules: []\n").unwrap();
        let source = PolicySource::new(Some(path.clone()), vec![rule(&["ops"], &["*"], &[])]).unwrap();
        let req = ExportRequest { namespace: "team-b", source: "s", bucket: Some("b") };
        assert!(source.check(&req).is_err());
        assert_eq!(source.check(&ExportRequest { namespace: "ops", ..req }), Ok(Some(0)), "flag rules apply");
        std::fs::write(&path, "rules: [{namespaces: [team-b], buckets: [b]}]\n").unwrap();
        assert_eq!(source.check(&req), Ok(Some(0)), "a changed file heals");
        std::fs::write(&path, "rules: [{nope").unwrap();
        let refusal = source.check(&req).unwrap_err();
        assert!(refusal.message().contains("is invalid"), "{}", refusal.message());
        std::fs::remove_file(&path).unwrap();
        assert!(source.check(&req).unwrap_err().message().contains("cannot be read"));
        assert!(PolicySource::new(Some(path), vec![]).is_err(), "a missing file stops the start");
    }
}
