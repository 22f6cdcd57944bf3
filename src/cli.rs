//! Command line: `run` (the controller) and `crd` (print the CustomResourceDefinition).

use clap::{Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;

#[derive(Parser, Debug)]
#[command(
    name = "elasticache-export-operator",
    version,
    about = "Copies and exports Amazon ElastiCache snapshots for SnapshotExport objects, exactly once."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controller. Kubernetes access comes from the in-cluster service account or
    /// KUBECONFIG; AWS access from the standard AWS configuration (AWS_REGION, the default
    /// credential chain with IRSA and EKS Pod Identity, AWS_ENDPOINT_URL[_ELASTICACHE|_S3]).
    Run(RunArgs),
    /// Print a CustomResourceDefinition as YAML (pipe it to `kubectl apply -f -`):
    /// SnapshotExport by default, SnapshotExportSchedule with `--kind schedule`.
    Crd {
        #[arg(long, value_enum, default_value_t = CrdKind::Export)]
        kind: CrdKind,
    },
    /// Check a bucket for ElastiCache exports from a shell: the operator's preflight, each check
    /// as PASS / FAIL with the exact fix. Exit code 0 only when an export would succeed, 1 when a
    /// check fails, 3 when the bucket cannot be inspected, 2 for usage errors.
    CheckBucket(CheckBucketArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Namespaces to watch, comma-separated; empty watches all namespaces.
    #[arg(long, env = "WATCH_NAMESPACES", value_delimiter = ',', default_value = "")]
    pub namespaces: Vec<String>,
    /// AWS region of the snapshots; defaults to the standard AWS configuration (AWS_REGION).
    #[arg(long, env = "ECX_REGION")]
    pub region: Option<String>,
    /// Address S3 buckets path-style (`https://endpoint/bucket`), as most S3 emulators need.
    #[arg(long, env = "ECX_S3_PATH_STYLE", default_value_t = false)]
    pub s3_path_style: bool,
    /// Client-side limit on AWS calls per second (all operations together), so that many new
    /// objects never burst the ElastiCache API (its limits are per account).
    #[arg(long, env = "ECX_AWS_REQUESTS_PER_SECOND", default_value_t = 10.0)]
    pub aws_requests_per_second: f64,
    /// Calls allowed at once above that rate after a quiet period.
    #[arg(long, env = "ECX_AWS_BURST", default_value_t = 20)]
    pub aws_burst: u32,
    /// How many objects are reconciled at the same time.
    #[arg(long, env = "ECX_CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,
    /// First interval (seconds) between looks at a copy or export in flight; it doubles while
    /// nothing changes.
    #[arg(long, env = "ECX_POLL_MIN_SECONDS", default_value_t = 5.0)]
    pub poll_min_seconds: f64,
    /// Longest interval (seconds) between looks at a copy or export in flight.
    #[arg(long, env = "ECX_POLL_MAX_SECONDS", default_value_t = 300.0)]
    pub poll_max_seconds: f64,
    /// First backoff (seconds) after a transient error (throttling, 5xx, network); doubles with
    /// jitter on each further error.
    #[arg(long, env = "ECX_ERROR_BACKOFF_MIN_SECONDS", default_value_t = 1.0)]
    pub error_backoff_min_seconds: f64,
    /// Longest backoff (seconds) after transient errors.
    #[arg(long, env = "ECX_ERROR_BACKOFF_MAX_SECONDS", default_value_t = 300.0)]
    pub error_backoff_max_seconds: f64,
    /// How often (seconds) a stalled object (bucket grants missing, source not found, ...) is
    /// tried again, so fixing the cause heals it without editing the object.
    #[arg(long, env = "ECX_STALLED_RETRY_SECONDS", default_value_t = 300.0)]
    pub stalled_retry_seconds: f64,
    /// Address of the health (/healthz, /readyz) and metrics (/metrics) server.
    #[arg(long, env = "ECX_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Elect a leader through a Lease so that only one replica reconciles (needed with more
    /// than one replica).
    #[arg(long, env = "ECX_LEADER_ELECT", default_value_t = false)]
    pub leader_elect: bool,
    /// Name of the Lease used for leader election.
    #[arg(long, env = "ECX_LEASE_NAME", default_value = "elasticache-export-operator")]
    pub lease_name: String,
    /// Namespace of the Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// How long a lease lasts without renewal; a replica that loses it stops within this time.
    #[arg(long, env = "ECX_LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Export policy file (YAML or JSON, e.g. a mounted ConfigMap; re-read when it changes):
    /// which namespaces may export to which buckets. See docs/safe-exports.md. With no rule at
    /// all, every S3 export is refused.
    #[arg(long, env = "ECX_EXPORT_POLICY_FILE")]
    pub export_policy_file: Option<std::path::PathBuf>,
    /// Allow an export: NAMESPACE_GLOB=BUCKET_GLOB[,SOURCE_GLOB] (`*` and `?`); repeatable, and
    /// added to the file's rules. In the environment, separate rules with `;`.
    #[arg(long = "allow-export", env = "ECX_ALLOW_EXPORT", value_delimiter = ';', value_name = "NAMESPACE_GLOB=BUCKET_GLOB[,SOURCE_GLOB]")]
    pub allow_export: Vec<String>,
    /// Inspect the bucket before each export's CopySnapshot (region, ElastiCache's grants, the
    /// first key, public access). `--preflight=false` for buckets the operator's role cannot
    /// inspect; CopySnapshot's own checks still apply.
    #[arg(long, env = "ECX_PREFLIGHT", default_value_t = true, action = clap::ArgAction::Set)]
    pub preflight: bool,
    /// Refuse (stall) exports to publicly accessible buckets instead of warning.
    #[arg(long, env = "ECX_REFUSE_PUBLIC_BUCKETS", default_value_t = false)]
    pub refuse_public_buckets: bool,
    /// Log format.
    #[arg(long, env = "ECX_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Which CRD the `crd` subcommand prints.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrdKind {
    /// SnapshotExport.
    Export,
    /// SnapshotExportSchedule.
    Schedule,
}

impl CrdKind {
    pub fn yaml(self) -> String {
        match self {
            Self::Export => crate::api::crd_yaml(),
            Self::Schedule => crate::api::schedule_crd_yaml(),
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args, Debug, Clone)]
pub struct CheckBucketArgs {
    /// The bucket to check.
    #[arg(long)]
    pub bucket: String,
    /// The snapshots' region; defaults to the standard AWS configuration (AWS_REGION).
    #[arg(long, env = "ECX_REGION")]
    pub region: Option<String>,
    /// Also check that `<name>-0001.rdb` is free in the bucket.
    #[arg(long)]
    pub target_snapshot_name: Option<String>,
    /// Address S3 buckets path-style (`https://endpoint/bucket`), as most S3 emulators need.
    #[arg(long, env = "ECX_S3_PATH_STYLE", default_value_t = false)]
    pub s3_path_style: bool,
    /// Count a publicly accessible bucket as a failure (as the operator does with this flag).
    #[arg(long, default_value_t = false)]
    pub refuse_public_buckets: bool,
}

impl RunArgs {
    pub fn timing(&self) -> Result<crate::reconcile::Timing, String> {
        let secs = |name: &str, v: f64| -> Result<std::time::Duration, String> {
            if v.is_finite() && v > 0.0 {
                Ok(std::time::Duration::from_secs_f64(v))
            } else {
                Err(format!("--{name} must be a positive number of seconds, not {v}"))
            }
        };
        let timing = crate::reconcile::Timing {
            poll_min: secs("poll-min-seconds", self.poll_min_seconds)?,
            poll_max: secs("poll-max-seconds", self.poll_max_seconds)?,
            error_min: secs("error-backoff-min-seconds", self.error_backoff_min_seconds)?,
            error_max: secs("error-backoff-max-seconds", self.error_backoff_max_seconds)?,
            stalled_retry: secs("stalled-retry-seconds", self.stalled_retry_seconds)?,
        };
        if timing.poll_min > timing.poll_max || timing.error_min > timing.error_max {
            return Err("each minimum interval must not exceed its maximum".into());
        }
        if self.concurrency == 0 {
            return Err("--concurrency must be at least 1".into());
        }
        Ok(timing)
    }

    pub fn namespaces(&self) -> Vec<String> {
        self.namespaces.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
    }
}
