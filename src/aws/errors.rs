//! Classification of AWS errors: transient (retry soon, with backoff) or a terminal fault
//! (stall, tell the user what to fix, retry slowly). The eight S3 errors of CopySnapshot come as
//! messages; they are recognised by their documented text, keeping the bucket and key they name.

use std::fmt;

/// An AWS call that did not succeed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AwsError {
    /// Throttling, 5xx, timeouts, network: the same call may succeed later.
    #[error("{operation} failed transiently ({code}): {message}")]
    Transient { operation: &'static str, code: String, message: String },
    /// AWS refused the request; retrying unchanged will fail the same way.
    #[error("{operation} was refused: {fault}")]
    Fault { operation: &'static str, fault: CopyFault },
}

impl AwsError {
    /// Classify an error code and message returned by `operation`. `http_status` is the HTTP
    /// status when known (5xx and 429 are transient whatever the code says).
    pub fn classify(operation: &'static str, code: Option<&str>, message: Option<&str>, http_status: Option<u16>) -> Self {
        let code = code.unwrap_or("").to_string();
        let message = message.unwrap_or("").to_string();
        if is_transient_code(&code) || http_status.is_some_and(|s| s >= 500 || s == 429) {
            let code = if code.is_empty() { format!("HTTP {}", http_status.unwrap_or(0)) } else { code };
            return Self::Transient { operation, code, message };
        }
        // A success status whose body could not be read as the answer (a proxy's page, garbage):
        // no refusal was given, so the request may have taken effect. Never a fault.
        if let Some(status) = http_status.filter(|s| *s < 400) {
            let message = if message.is_empty() { "AWS answered with a body that is not the expected response".into() } else { message };
            return Self::Transient { operation, code: format!("HTTP {status}"), message };
        }
        Self::Fault { operation, fault: CopyFault::classify(&code, &message) }
    }

    /// A failure below HTTP (connect, timeout, dispatch): always transient.
    pub fn network(operation: &'static str, detail: impl fmt::Display) -> Self {
        Self::Transient { operation, code: "NetworkError".into(), message: detail.to_string() }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    /// AWS certainly did not carry the request out: a refusal (4xx fault) or throttling. A
    /// timeout, a cut connection, a 5xx or an unreadable 2xx may have taken effect.
    pub fn refused_before_execution(&self) -> bool {
        match self {
            Self::Fault { .. } => true,
            Self::Transient { code, .. } => is_throttling_code(code) || code == "HTTP 429",
        }
    }

    pub fn fault(&self) -> Option<&CopyFault> {
        match self {
            Self::Fault { fault, .. } => Some(fault),
            Self::Transient { .. } => None,
        }
    }
}

/// Throttling: the request was refused before anything was done.
fn is_throttling_code(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "SlowDown"
            | "RequestLimitExceeded"
    )
}

/// Transient: throttling, or a server-side failure whose outcome is unknown.
fn is_transient_code(code: &str) -> bool {
    is_throttling_code(code)
        || matches!(
            code,
            "InternalFailure"
                | "InternalError"
                | "ServiceUnavailable"
                | "ServiceUnavailableException"
                | "RequestTimeout"
                | "RequestTimeoutException"
        )
}

/// Why AWS refused a request, in the operator's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopyFault {
    /// One of the eight documented S3 errors of an export.
    S3(S3Problem),
    SnapshotAlreadyExists {
        message: String,
    },
    SnapshotNotFound {
        message: String,
    },
    SnapshotQuotaExceeded {
        message: String,
    },
    InvalidSnapshotState {
        message: String,
    },
    TagQuotaExceeded {
        message: String,
    },
    InvalidParameterValue {
        message: String,
    },
    InvalidParameterCombination {
        message: String,
    },
    AccessDenied {
        message: String,
    },
    /// An error the operator does not know; kept verbatim.
    Other {
        code: String,
        message: String,
    },
}

impl CopyFault {
    pub fn classify(code: &str, message: &str) -> Self {
        if let Some(problem) = S3Problem::from_message(message) {
            return Self::S3(problem);
        }
        let message = message.to_string();
        match code {
            // Serverless snapshots have their own fault codes for the same refusals, and the
            // operator answers them the same way.
            "SnapshotAlreadyExistsFault" | "ServerlessCacheSnapshotAlreadyExistsFault" => Self::SnapshotAlreadyExists { message },
            "SnapshotNotFoundFault" | "ServerlessCacheSnapshotNotFoundFault" => Self::SnapshotNotFound { message },
            "SnapshotQuotaExceededFault" | "ServerlessCacheSnapshotQuotaExceededFault" => Self::SnapshotQuotaExceeded { message },
            // The wire code is `InvalidSnapshotState`; the SDK names the shape `InvalidSnapshotStateFault`.
            "InvalidSnapshotState" | "InvalidSnapshotStateFault" | "InvalidServerlessCacheSnapshotStateFault" => {
                Self::InvalidSnapshotState { message }
            }
            "TagQuotaPerResourceExceeded" => Self::TagQuotaExceeded { message },
            "InvalidParameterValue" | "InvalidParameterValueException" => Self::InvalidParameterValue { message },
            "InvalidParameterCombination" | "InvalidParameterCombinationException" => Self::InvalidParameterCombination { message },
            "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" => Self::AccessDenied { message },
            other => Self::Other { code: other.to_string(), message },
        }
    }

    /// The CamelCase reason used in conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::S3(p) => p.reason(),
            Self::SnapshotAlreadyExists { .. } => "TargetAlreadyExists",
            Self::SnapshotNotFound { .. } => "SourceSnapshotNotFound",
            Self::SnapshotQuotaExceeded { .. } => "SnapshotQuotaExceeded",
            Self::InvalidSnapshotState { .. } => "InvalidSnapshotState",
            Self::TagQuotaExceeded { .. } => "TagQuotaExceeded",
            Self::InvalidParameterValue { .. } => "InvalidParameterValue",
            Self::InvalidParameterCombination { .. } => "InvalidParameterCombination",
            Self::AccessDenied { .. } => "AccessDenied",
            Self::Other { .. } => "CopySnapshotFailed",
        }
    }

    /// What the user should do about it.
    pub fn solution(&self) -> &'static str {
        match self {
            Self::S3(p) => p.solution(),
            Self::SnapshotAlreadyExists { .. } => "A snapshot with the target name exists and was not made by this object. Delete it, or create a new SnapshotExport with another targetSnapshotName.",
            Self::SnapshotNotFound { .. } => "Check sourceSnapshotName and the operator's region (DescribeSnapshots must list it). The export is retried, so creating the snapshot heals it.",
            Self::SnapshotQuotaExceeded { .. } => "Delete snapshots you no longer need or ask AWS for a higher snapshot quota; the copy is retried.",
            Self::InvalidSnapshotState { .. } => "The source snapshot is busy (creating, copying or exporting); the copy is retried once it is available.",
            Self::TagQuotaExceeded { .. } => "A snapshot may carry at most 50 tags, the operator's ownership tag included; use fewer tags in a new SnapshotExport.",
            Self::InvalidParameterValue { .. } | Self::InvalidParameterCombination { .. } => "Fix the spec in a new SnapshotExport; AWS rejects it as it is.",
            Self::AccessDenied { .. } => "Grant the operator's IAM role the ElastiCache and S3 permissions in config/iam/policy.json.",
            Self::Other { .. } => "See the AWS message; the copy is retried slowly.",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::S3(p) => p.to_string(),
            Self::SnapshotAlreadyExists { message }
            | Self::SnapshotNotFound { message }
            | Self::SnapshotQuotaExceeded { message }
            | Self::InvalidSnapshotState { message }
            | Self::TagQuotaExceeded { message }
            | Self::InvalidParameterValue { message }
            | Self::InvalidParameterCombination { message }
            | Self::AccessDenied { message } => message.clone(),
            Self::Other { code, message } => format!("{code}: {message}"),
        }
    }
}

impl fmt::Display for CopyFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message(), self.reason())
    }
}

/// The eight S3 errors CopySnapshot documents for exports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum S3Problem {
    BucketOutsideRegion { bucket: String },
    BucketNotFound { bucket: String },
    BucketNotOwned { bucket: String },
    InsufficientPermissions,
    ObjectAlreadyExists { bucket: String, key: String },
    ReadPermissionMissing { bucket: String },
    WritePermissionMissing { bucket: String },
    ReadAcpPermissionMissing { bucket: String },
}

impl S3Problem {
    /// Recognise a documented S3 error by its text; `None` for any other message.
    pub fn from_message(message: &str) -> Option<Self> {
        let m = message.trim();
        if let Some(bucket) = between(m, "The S3 bucket ", " is outside of the region") {
            return Some(Self::BucketOutsideRegion { bucket });
        }
        if let Some(bucket) = between(m, "The S3 bucket ", " does not exist") {
            return Some(Self::BucketNotFound { bucket });
        }
        if let Some(bucket) = between(m, "The S3 bucket ", " is not owned by the authenticated user") {
            return Some(Self::BucketNotOwned { bucket });
        }
        if m.contains("The authenticated user does not have sufficient permissions to perform the desired activity") {
            return Some(Self::InsufficientPermissions);
        }
        if let Some(bucket) = between(m, "The S3 bucket ", " already contains an object with key ") {
            let start = m.find(" already contains an object with key ")? + " already contains an object with key ".len();
            let key = m[start..].trim_end_matches('.').trim().to_string();
            return Some(Self::ObjectAlreadyExists { bucket, key });
        }
        for (perm, make) in [("READ_ACP", Self::read_acp as fn(String) -> Self), ("READ", Self::read), ("WRITE", Self::write)] {
            let head = format!("ElastiCache has not been granted {perm} permissions ");
            if let Some(bucket) = between(m, &head, " on the S3 Bucket") {
                return Some(make(bucket));
            }
        }
        None
    }

    fn read(bucket: String) -> Self {
        Self::ReadPermissionMissing { bucket }
    }
    fn write(bucket: String) -> Self {
        Self::WritePermissionMissing { bucket }
    }
    fn read_acp(bucket: String) -> Self {
        Self::ReadAcpPermissionMissing { bucket }
    }

    /// The Warning Event reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BucketOutsideRegion { .. } => "S3BucketOutsideRegion",
            Self::BucketNotFound { .. } => "S3BucketNotFound",
            Self::BucketNotOwned { .. } => "S3BucketNotOwned",
            Self::InsufficientPermissions => "InsufficientPermissions",
            Self::ObjectAlreadyExists { .. } => "S3ObjectAlreadyExists",
            Self::ReadPermissionMissing { .. } => "S3ReadPermissionMissing",
            Self::WritePermissionMissing { .. } => "S3WritePermissionMissing",
            Self::ReadAcpPermissionMissing { .. } => "S3ReadAcpPermissionMissing",
        }
    }

    /// The documented solution.
    pub fn solution(&self) -> &'static str {
        match self {
            Self::BucketOutsideRegion { .. } | Self::BucketNotFound { .. } | Self::BucketNotOwned { .. } => {
                "Create an Amazon S3 bucket in the same region as your snapshot (ElastiCache User Guide, Exporting a Backup, Step 1: Create an Amazon S3 Bucket)."
            }
            Self::InsufficientPermissions => "Contact your system administrator to get the needed permissions.",
            Self::ObjectAlreadyExists { .. } => "Give the TargetSnapshotName a new and unique value (create a new SnapshotExport), or export to a new Amazon S3 bucket with this same targetSnapshotName.",
            Self::ReadPermissionMissing { .. } => "Add List and Read permissions on the bucket for ElastiCache (Step 2: Grant ElastiCache Access to Your Amazon S3 Bucket).",
            Self::WritePermissionMissing { .. } => "Add Upload/Delete permissions on the bucket for ElastiCache (Step 2: Grant ElastiCache Access to Your Amazon S3 Bucket).",
            Self::ReadAcpPermissionMissing { .. } => "Add View Permissions on the bucket for ElastiCache (Step 2: Grant ElastiCache Access to Your Amazon S3 Bucket).",
        }
    }

    pub fn bucket(&self) -> Option<&str> {
        match self {
            Self::BucketOutsideRegion { bucket }
            | Self::BucketNotFound { bucket }
            | Self::BucketNotOwned { bucket }
            | Self::ObjectAlreadyExists { bucket, .. }
            | Self::ReadPermissionMissing { bucket }
            | Self::WritePermissionMissing { bucket }
            | Self::ReadAcpPermissionMissing { bucket } => Some(bucket),
            Self::InsufficientPermissions => None,
        }
    }
}

impl fmt::Display for S3Problem {
    /// The documented error message, with the bucket (and key) filled in.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BucketOutsideRegion { bucket } => write!(f, "The S3 bucket {bucket} is outside of the region."),
            Self::BucketNotFound { bucket } => write!(f, "The S3 bucket {bucket} does not exist."),
            Self::BucketNotOwned { bucket } => write!(f, "The S3 bucket {bucket} is not owned by the authenticated user."),
            Self::InsufficientPermissions => {
                write!(f, "The authenticated user does not have sufficient permissions to perform the desired activity.")
            }
            Self::ObjectAlreadyExists { bucket, key } => write!(f, "The S3 bucket {bucket} already contains an object with key {key}."),
            Self::ReadPermissionMissing { bucket } => {
                write!(f, "ElastiCache has not been granted READ permissions {bucket} on the S3 Bucket.")
            }
            Self::WritePermissionMissing { bucket } => {
                write!(f, "ElastiCache has not been granted WRITE permissions {bucket} on the S3 Bucket.")
            }
            Self::ReadAcpPermissionMissing { bucket } => {
                write!(f, "ElastiCache has not been granted READ_ACP permissions {bucket} on the S3 Bucket.")
            }
        }
    }
}

/// The text between `head` (at the start) and the first `tail` after it, if non-empty.
fn between(text: &str, head: &str, tail: &str) -> Option<String> {
    let rest = text.strip_prefix(head)?;
    let end = rest.find(tail)?;
    let found = rest[..end].trim();
    (!found.is_empty()).then(|| found.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<S3Problem> {
        S3Problem::from_message(s)
    }

    #[test]
    fn serverless_faults_are_the_same_refusals_as_node_based_ones() {
        let op = "CopyServerlessCacheSnapshot";
        let cases = [
            ("ServerlessCacheSnapshotNotFoundFault", 404, "SourceSnapshotNotFound"),
            ("InvalidServerlessCacheSnapshotStateFault", 400, "InvalidSnapshotState"),
            ("ServerlessCacheSnapshotAlreadyExistsFault", 400, "TargetAlreadyExists"),
            ("ServerlessCacheSnapshotQuotaExceededFault", 400, "SnapshotQuotaExceeded"),
            ("TagQuotaPerResourceExceeded", 400, "TagQuotaExceeded"),
        ];
        for (code, status, reason) in cases {
            let err = AwsError::classify(op, Some(code), Some("m"), Some(status));
            assert_eq!(err.fault().map(CopyFault::reason), Some(reason), "{code}");
        }
        // ExportServerlessCacheSnapshot reports the documented bucket errors in the same words.
        let err = AwsError::classify(
            "ExportServerlessCacheSnapshot",
            Some("InvalidParameterValue"),
            Some("The S3 bucket b1 already contains an object with key sls-0001.rdb."),
            Some(400),
        );
        assert_eq!(err.fault(), Some(&CopyFault::S3(S3Problem::ObjectAlreadyExists { bucket: "b1".into(), key: "sls-0001.rdb".into() })));
    }

    #[test]
    fn each_documented_s3_message_is_recognised_with_its_bucket_and_key() {
        let b = || "my-bucket".to_string();
        let cases = [
            ("The S3 bucket my-bucket is outside of the region.", S3Problem::BucketOutsideRegion { bucket: b() }, "S3BucketOutsideRegion"),
            ("The S3 bucket my-bucket does not exist.", S3Problem::BucketNotFound { bucket: b() }, "S3BucketNotFound"),
            (
                "The S3 bucket my-bucket is not owned by the authenticated user.",
                S3Problem::BucketNotOwned { bucket: b() },
                "S3BucketNotOwned",
            ),
            (
                "The authenticated user does not have sufficient permissions to perform the desired activity.",
                S3Problem::InsufficientPermissions,
                "InsufficientPermissions",
            ),
            (
                "The S3 bucket my-bucket already contains an object with key nightly-0001.rdb.",
                S3Problem::ObjectAlreadyExists { bucket: b(), key: "nightly-0001.rdb".into() },
                "S3ObjectAlreadyExists",
            ),
            (
                "ElastiCache has not been granted READ permissions my-bucket on the S3 Bucket.",
                S3Problem::ReadPermissionMissing { bucket: b() },
                "S3ReadPermissionMissing",
            ),
            (
                "ElastiCache has not been granted WRITE permissions my-bucket on the S3 Bucket.",
                S3Problem::WritePermissionMissing { bucket: b() },
                "S3WritePermissionMissing",
            ),
            (
                "ElastiCache has not been granted READ_ACP permissions my-bucket on the S3 Bucket.",
                S3Problem::ReadAcpPermissionMissing { bucket: b() },
                "S3ReadAcpPermissionMissing",
            ),
        ];
        for (message, want, reason) in cases {
            let got = p(message).unwrap_or_else(|| panic!("not recognised: {message}"));
            assert_eq!(got, want);
            assert_eq!(got.reason(), reason);
            // Display reproduces the documented message exactly.
            assert_eq!(got.to_string(), message);
            // The classifier sees through whatever error code AWS chose.
            assert_eq!(CopyFault::classify("InvalidParameterValue", message), CopyFault::S3(want));
        }
    }

    #[test]
    fn every_copy_snapshot_fault_code_is_classified() {
        let cases = [
            ("SnapshotAlreadyExistsFault", "TargetAlreadyExists"),
            ("SnapshotNotFoundFault", "SourceSnapshotNotFound"),
            ("SnapshotQuotaExceededFault", "SnapshotQuotaExceeded"),
            ("InvalidSnapshotStateFault", "InvalidSnapshotState"),
            ("InvalidSnapshotState", "InvalidSnapshotState"),
            ("TagQuotaPerResourceExceeded", "TagQuotaExceeded"),
            ("InvalidParameterValue", "InvalidParameterValue"),
            ("InvalidParameterCombination", "InvalidParameterCombination"),
            ("SomethingNew", "CopySnapshotFailed"),
        ];
        for (code, reason) in cases {
            let err = AwsError::classify("CopySnapshot", Some(code), Some("msg"), Some(400));
            assert!(!err.is_transient(), "{code}");
            assert_eq!(err.fault().unwrap().reason(), reason, "{code}");
        }
    }

    #[test]
    fn throttling_5xx_and_429_are_transient() {
        for (code, status) in [("Throttling", 400), ("SlowDown", 503), ("InternalFailure", 500), ("", 502), ("Whatever", 429)] {
            assert!(AwsError::classify("DescribeSnapshots", Some(code), None, Some(status)).is_transient(), "{code} {status}");
        }
        assert!(AwsError::network("CopySnapshot", "connection refused").is_transient());
    }

    #[test]
    fn only_refusals_and_throttling_prove_a_request_was_not_carried_out() {
        let cases = [
            (AwsError::classify("CopySnapshot", Some("Throttling"), Some("Rate exceeded"), Some(400)), true),
            (AwsError::classify("CopySnapshot", Some("SlowDown"), None, Some(503)), true),
            (AwsError::classify("CopySnapshot", Some(""), None, Some(429)), true),
            (AwsError::classify("CopySnapshot", Some("InvalidParameterValue"), Some("no"), Some(400)), true),
            (AwsError::classify("CopySnapshot", Some("InternalFailure"), None, Some(500)), false),
            (AwsError::classify("CopySnapshot", Some(""), None, Some(502)), false),
            (AwsError::classify("CopySnapshot", None, Some("garbage"), Some(200)), false),
            (AwsError::network("CopySnapshot", "timeout"), false),
        ];
        for (err, refused) in cases {
            assert_eq!(err.refused_before_execution(), refused, "{err}");
        }
    }

    #[test]
    fn unknown_messages_are_not_s3_problems() {
        for m in
            ["", "The S3 bucket  does not exist.", "ElastiCache has not been granted FOO permissions b on the S3 Bucket.", "Rate exceeded"]
        {
            assert_eq!(p(m), None, "{m}");
        }
    }

    proptest::proptest! {
        #[test]
        fn classification_never_panics(code in ".{0,40}", message in ".{0,300}") {
            let _ = AwsError::classify("CopySnapshot", Some(&code), Some(&message), None);
            let _ = S3Problem::from_message(&format!("The S3 bucket {message} already contains an object with key {code}"));
        }
    }
}
