//! What an evaluation gives: each check's outcome, the report, and the messages it makes for
//! conditions and Events.

use crate::aws::{CopyFault, S3Problem};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    Fail,
    Warn,
    Skip,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Fail => "FAIL",
            Self::Warn => "WARN",
            Self::Skip => "SKIP",
        }
    }
}

/// One check's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub outcome: Outcome,
    pub detail: String,
    /// The exact fix, for people (check-bucket prints it).
    pub fix: Option<String>,
    /// A one-line fix, for conditions and Events.
    pub short_fix: Option<String>,
}

/// The evaluation of a bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub bucket: String,
    pub region: String,
    pub checks: Vec<Check>,
    /// The first failing check, as the documented CopySnapshot error it predicts.
    pub problem: Option<S3Problem>,
    /// Why the bucket is (or may become) publicly accessible; empty when it is not.
    pub public: Vec<String>,
    /// Bucket policy conditions the preflight could not evaluate, where a permission rests on
    /// them (left to CopySnapshot); empty when every permission was decided.
    pub not_evaluated: Vec<String>,
}

impl Report {
    /// Whether an export would succeed (a public bucket counts when `refuse_public`).
    pub fn export_would_succeed(&self, refuse_public: bool) -> bool {
        self.problem.is_none() && (self.public.is_empty() || !refuse_public)
    }

    fn short_fix(&self) -> Option<&str> {
        self.checks.iter().find(|c| c.outcome == Outcome::Fail).and_then(|c| c.short_fix.as_deref())
    }

    /// The message for a failed preflight: the documented error, its documented solution (as
    /// after CopySnapshot), then the exact fix.
    pub fn failure_message(&self) -> Option<String> {
        let problem = self.problem.as_ref()?;
        let fault = CopyFault::S3(problem.clone());
        let fix = self.short_fix().map(|f| format!(" {f}")).unwrap_or_default();
        Some(format!("{} {}{fix} (Found by the operator's preflight, before any CopySnapshot call.)", fault.message(), fault.solution()))
    }

    /// The message for a permission the preflight could not decide (a Warning, not a refusal).
    pub fn not_evaluated_message(&self) -> Option<String> {
        if self.not_evaluated.is_empty() || self.problem.is_some() {
            return None;
        }
        let mut open = self.not_evaluated.clone();
        open.dedup();
        Some(format!(
            "The operator's preflight cannot tell whether the bucket policy of {} lets ElastiCache export: it rests on conditions the preflight cannot evaluate ({}). The export goes ahead and CopySnapshot decides; if it fails, check those conditions against ElastiCache's request (service principal {}.elasticache-snapshot.amazonaws.com, over TLS).",
            self.bucket,
            open.join("; "),
            self.region
        ))
    }

    /// The message for a public bucket.
    pub fn public_message(&self) -> Option<String> {
        if self.public.is_empty() {
            return None;
        }
        Some(format!(
            "The S3 bucket {} is or may become publicly accessible: {}. Exported backups are unencrypted and must not be readable by others: turn on all four S3 Block Public Access settings and remove public grants (aws s3api put-public-access-block --bucket {} --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true).",
            self.bucket,
            self.public.join("; "),
            self.bucket
        ))
    }
}
