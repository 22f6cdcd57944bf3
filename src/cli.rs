//! Command line: `run` (the controller), `crd` (print the CustomResourceDefinition) and
//! `check-bucket`. It only parses: `main.rs` turns the arguments into each layer's settings.

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
    /// objects never burst the ElastiCache API (its limits are per account); 0.01 to 1,000,000.
    #[arg(long, env = "ECX_AWS_REQUESTS_PER_SECOND", default_value_t = 10.0)]
    pub aws_requests_per_second: f64,
    /// Calls allowed at once above that rate after a quiet period; 1 to 100,000.
    #[arg(long, env = "ECX_AWS_BURST", default_value_t = 20)]
    pub aws_burst: u32,
    /// How many objects are reconciled at the same time.
    #[arg(long, env = "ECX_CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,
    /// First interval (seconds) between looks at a copy or export in flight; it doubles while
    /// nothing changes. Every duration flag takes 0.01 to 604800 seconds (a week).
    #[arg(long, env = "ECX_POLL_MIN_SECONDS", default_value_t = 5.0)]
    pub poll_min_seconds: f64,
    /// Longest interval (seconds) between looks at a copy or export in flight.
    #[arg(long, env = "ECX_POLL_MAX_SECONDS", default_value_t = 300.0)]
    pub poll_max_seconds: f64,
    /// First backoff (seconds) after a transient error (throttling, 5xx, network), or a failed
    /// cleanup after a schedule's runs; doubles with jitter on each further error.
    #[arg(long, env = "ECX_ERROR_BACKOFF_MIN_SECONDS", default_value_t = 1.0)]
    pub error_backoff_min_seconds: f64,
    /// Longest backoff (seconds) after transient errors, or failed cleanups after a schedule's runs.
    #[arg(long, env = "ECX_ERROR_BACKOFF_MAX_SECONDS", default_value_t = 300.0)]
    pub error_backoff_max_seconds: f64,
    /// How often (seconds) a stalled object (bucket grants missing, source not found, ...) is
    /// tried again, so fixing the cause heals it without editing the object. Each wait is
    /// stretched by up to a quarter at random; retries within one period share their bucket's
    /// failing inspection.
    #[arg(long, env = "ECX_STALLED_RETRY_SECONDS", default_value_t = 300.0)]
    pub stalled_retry_seconds: f64,
    /// How long (seconds) an accepted export may show no objects, or a partial set of objects
    /// that stopped growing, once its source is available again, before it is reported as
    /// `ExportFailed` / `ExportIncomplete`.
    #[arg(long, env = "ECX_EXPORT_GRACE_SECONDS", default_value_t = 600.0)]
    pub export_grace_seconds: f64,
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
    /// How long a lease lasts without renewal; a replica that loses it stops within this time;
    /// 2 to 3600 seconds.
    #[arg(long, env = "ECX_LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Export policy file (YAML or JSON, e.g. a mounted ConfigMap; re-read when it changes):
    /// which namespaces may export to which buckets. See docs/safe-exports.md. With no rule at
    /// all, every S3 export is refused.
    #[arg(long, env = "ECX_EXPORT_POLICY_FILE")]
    pub export_policy_file: Option<std::path::PathBuf>,
    /// Allow an export: NAMESPACE_GLOB=BUCKET_GLOB[,SOURCE_GLOB[,CLUSTER_GLOB]] (`*` and `?`;
    /// CLUSTER_GLOB matches the source's replication group or cache cluster, `*` as SOURCE_GLOB
    /// then means any name); repeatable, and added to the file's rules. In the environment,
    /// separate rules with `;`.
    #[arg(
        long = "allow-export",
        env = "ECX_ALLOW_EXPORT",
        value_delimiter = ';',
        value_name = "NAMESPACE_GLOB=BUCKET_GLOB[,SOURCE_GLOB[,CLUSTER_GLOB]]"
    )]
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
    /// Also check that the keys an export of this name would write are free in the bucket:
    /// `<name>-0001.rdb` only, unless --source-snapshot names the snapshot to export.
    #[arg(long)]
    pub target_snapshot_name: Option<String>,
    /// The snapshot to export: its node groups are read (DescribeSnapshots) and every key an
    /// export writes, `<target>-<NodeGroupId>.rdb`, is checked (node-based snapshots).
    #[arg(long, requires = "target_snapshot_name")]
    pub source_snapshot: Option<String>,
    /// Address S3 buckets path-style (`https://endpoint/bucket`), as most S3 emulators need.
    #[arg(long, env = "ECX_S3_PATH_STYLE", default_value_t = false)]
    pub s3_path_style: bool,
    /// Count a publicly accessible bucket as a failure (as the operator does with this flag).
    #[arg(long, default_value_t = false)]
    pub refuse_public_buckets: bool,
}

impl RunArgs {
    /// The watched namespaces, trimmed, each once (in the order given): a namespace named twice
    /// would get two watches and two reconciles of every object in it.
    pub fn namespaces(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        self.namespaces.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty() && seen.insert(s.clone())).collect()
    }

    /// The rate limit and lease flags, checked before anything is sized by them: a rate, burst
    /// or lease outside a sane range is an error naming the flag, never an overflow later.
    pub fn check_limits(&self) -> Result<(), String> {
        within("--aws-requests-per-second", self.aws_requests_per_second, MIN_RATE, MAX_RATE, "calls per second")?;
        within("--aws-burst", f64::from(self.aws_burst), 1.0, f64::from(MAX_BURST), "calls")?;
        within("--lease-duration-seconds", self.lease_duration_seconds as f64, 2.0, MAX_LEASE_SECONDS as f64, "seconds")?;
        if self.concurrency == 0 {
            return Err("--concurrency must be at least 1".into());
        }
        Ok(())
    }
}

/// Bounds of the duration flags: below 10 ms the operator would spin; beyond a week a stalled or
/// followed object would in effect never be looked at again (and sums of such durations
/// overflow).
pub const MIN_SECONDS: f64 = 0.01;
pub const MAX_SECONDS: f64 = 7.0 * 24.0 * 3600.0;
/// Bounds of `--aws-requests-per-second`.
pub const MIN_RATE: f64 = 0.01;
pub const MAX_RATE: f64 = 1_000_000.0;
/// Largest `--aws-burst`.
pub const MAX_BURST: u32 = 100_000;
/// Largest `--lease-duration-seconds` (an hour without a leader is already an outage).
pub const MAX_LEASE_SECONDS: u64 = 3600;

/// A duration flag as a [`std::time::Duration`], or an error naming the flag.
pub fn seconds(flag: &str, value: f64) -> Result<std::time::Duration, String> {
    within(flag, value, MIN_SECONDS, MAX_SECONDS, "seconds")?;
    Ok(std::time::Duration::from_secs_f64(value))
}

fn within(flag: &str, value: f64, min: f64, max: f64, unit: &str) -> Result<(), String> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(format!("{flag} must be a number of {unit} from {min} to {max}, not {value}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> RunArgs {
        let argv = ["elasticache-export-operator", "run"].into_iter().chain(args.iter().copied());
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Run(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn duplicate_namespaces_are_merged() {
        let args = run_args(&["--namespaces", "team-a, team-b,team-a,,team-b ,ops"]);
        assert_eq!(args.namespaces(), ["team-a", "team-b", "ops"]);
        assert!(run_args(&[]).namespaces().is_empty(), "none given: all namespaces");
    }

    #[test]
    fn durations_are_bounded_and_named() {
        for (value, ok) in [
            (0.01, true),
            (5.0, true),
            (604800.0, true),
            (0.0, false),
            (-1.0, false),
            (0.001, false),
            (604801.0, false),
            (1e30, false),
            (f64::INFINITY, false),
            (f64::NAN, false),
        ] {
            let got = seconds("--poll-max-seconds", value);
            assert_eq!(got.is_ok(), ok, "{value}: {got:?}");
            if let Err(message) = got {
                assert!(message.starts_with("--poll-max-seconds must be a number of seconds from 0.01 to 604800"), "{message}");
            }
        }
    }

    #[test]
    fn rates_bursts_and_leases_are_bounded_and_named() {
        let cases: &[(&[&str], Option<&str>)] = &[
            (&[], None),
            (&["--aws-requests-per-second", "2000", "--aws-burst", "100", "--lease-duration-seconds", "15"], None),
            (&["--aws-requests-per-second", "0"], Some("--aws-requests-per-second")),
            (&["--aws-requests-per-second=-5"], Some("--aws-requests-per-second")),
            (&["--aws-requests-per-second", "NaN"], Some("--aws-requests-per-second")),
            (&["--aws-requests-per-second", "1e300"], Some("--aws-requests-per-second")),
            (&["--aws-burst", "0"], Some("--aws-burst")),
            (&["--aws-burst", "4294967295"], Some("--aws-burst")),
            (&["--lease-duration-seconds", "1"], Some("--lease-duration-seconds")),
            (&["--lease-duration-seconds", "18446744073709551615"], Some("--lease-duration-seconds")),
            (&["--concurrency", "0"], Some("--concurrency")),
        ];
        for (args, flag) in cases {
            match (run_args(args).check_limits(), flag) {
                (Ok(()), None) => {}
                (Err(message), Some(flag)) => assert!(message.starts_with(&format!("{flag} must be")), "{args:?}: {message}"),
                (got, _) => panic!("{args:?}: {got:?}"),
            }
        }
    }
}
