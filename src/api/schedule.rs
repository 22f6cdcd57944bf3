//! Rust types of `SnapshotExportSchedule` (`elasticache-export.io/v1alpha1`): a cron schedule
//! whose runs are ordinary `SnapshotExport`s. The CRD schema, descriptions and CEL rules are
//! generated from these types; the reconciler re-checks them in `schedule_validation.rs`.

use super::{DeletionPolicy, Tag};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The annotation whose every new value starts one run immediately (`kubectl annotate
/// sxs/nightly elasticache-export.io/run-now=$(date +%s) --overwrite`).
pub const RUN_NOW_ANNOTATION: &str = "elasticache-export.io/run-now";
/// The label every run carries: the schedule's name (hash-shortened past 63 characters).
pub const SCHEDULE_LABEL: &str = "elasticache-export.io/schedule";
/// The annotation on every run: the scheduled time it stands for (RFC 3339, UTC).
pub const SCHEDULED_TIME_ANNOTATION: &str = "elasticache-export.io/scheduled-time";
/// The tag key on intermediate snapshots (CreateSnapshot mode): the schedule's UID.
pub const SCHEDULE_TAG_KEY: &str = "elasticache-export.io/schedule-uid";

/// Exports an ElastiCache cache's backup to S3 (or copies it in-region) on a cron schedule.
/// Each run is an ordinary `SnapshotExport` named after the schedule and the scheduled time.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "elasticache-export.io",
    version = "v1alpha1",
    kind = "SnapshotExportSchedule",
    plural = "snapshotexportschedules",
    shortname = "sxs",
    category = "elasticache",
    namespaced,
    status = "SnapshotExportScheduleStatus",
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Source","type":"string","jsonPath":".status.source.cacheId"}"#,
    printcolumn = r#"{"name":"Bucket","type":"string","jsonPath":".spec.template.targetBucket"}"#,
    printcolumn = r#"{"name":"Last run","type":"date","jsonPath":".status.lastScheduleTime"}"#,
    printcolumn = r#"{"name":"Last success","type":"date","jsonPath":".status.lastSuccessfulTime"}"#,
    printcolumn = r#"{"name":"Next run","type":"date","jsonPath":".status.nextScheduleTime"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    doc = "Recurring exports of an ElastiCache cache's backups on a cron schedule, with retention."
)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotExportScheduleSpec {
    /// When runs start: five cron fields (minute hour day-of-month month day-of-week, as in a
    /// Kubernetes CronJob, no seconds field), or `@hourly`, `@daily`, `@weekly`, `@monthly`.
    /// When both day-of-month and day-of-week are restricted, a day matching either runs.
    #[schemars(length(min = 1, max = 200))]
    #[x_kube(validation = Rule::new("self.matches('^(@(hourly|daily|midnight|weekly|monthly|yearly|annually)|[0-9A-Za-z*/,?-]+( +[0-9A-Za-z*/,?-]+){4})$')").message("schedule must be five cron fields separated by spaces (minute hour day-of-month month day-of-week, e.g. '0 3 * * *' for 03:00 every day; no seconds field) or one of @hourly, @daily, @weekly, @monthly"))]
    pub schedule: String,

    /// IANA time zone the schedule is read in, e.g. `Europe/Berlin`; default `UTC`. On a
    /// daylight-saving change a time that does not exist runs at the same offset after the gap
    /// (02:30 becomes 03:30), and a repeated time runs once, at its first occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$')").message("timeZone must be an IANA time zone name such as 'Europe/Berlin', 'America/New_York' or 'UTC'"))]
    pub time_zone: Option<String>,

    /// The cache whose backups are exported, and how each run gets its snapshot.
    pub source: ScheduleSource,

    /// What each run's `SnapshotExport` gets.
    pub template: ExportTemplate,

    /// How many runs are kept.
    #[serde(default)]
    pub retention: Retention,

    /// Stop starting runs; scheduled times that pass while suspended are skipped (reason
    /// `Suspended`), never caught up afterwards. Runs in flight continue.
    #[serde(default)]
    pub suspend: bool,

    /// A run more than this many seconds late (for example because the operator was down) is
    /// skipped with reason `MissedDeadline`. Without it a late run still starts. Either way at
    /// most the one most recent missed run starts: never a burst of catch-up runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub starting_deadline_seconds: Option<i64>,

    /// How long (seconds from the run's creation) a run whose request AWS accepted may stay in
    /// flight before it stops holding back later runs; default 14400 (4 hours). A run past it
    /// (ElastiCache can leave a copy or export `copying` or `exporting` for ever) is listed in
    /// `status.timedOut` and reported once as `RunTimedOut` (a Warning naming the status AWS last
    /// showed), and the next scheduled time starts its run. The run itself is still followed,
    /// never requested again, and never deleted by retention while in flight. A run stalled
    /// before AWS accepted it holds back later runs until it is fixed or deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 31_536_000))]
    pub run_timeout_seconds: Option<i64>,
}

/// The cache to take from: exactly one of `replicationGroupId`, `cacheClusterId` and
/// `serverlessCacheName`.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[x_kube(
    validation = Rule::new("(has(self.replicationGroupId) ? 1 : 0) + (has(self.cacheClusterId) ? 1 : 0) + (has(self.serverlessCacheName) ? 1 : 0) == 1").message("source needs exactly one of replicationGroupId, cacheClusterId and serverlessCacheName")
)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSource {
    /// Replication group (Valkey / Redis OSS, cluster mode on or off) whose backups to export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40))]
    pub replication_group_id: Option<String>,
    /// Single-node cache cluster whose backups to export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 50))]
    pub cache_cluster_id: Option<String>,
    /// ElastiCache Serverless cache (Valkey / Redis OSS) whose snapshots to export: each run is a
    /// SnapshotExport with `sourceKind: Serverless` (DescribeServerlessCacheSnapshots,
    /// CreateServerlessCacheSnapshot). An S3 export of a serverless snapshot takes no target name:
    /// its objects are named after the snapshot, so `targetSnapshotNameTemplate` names only
    /// in-region copies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40))]
    pub serverless_cache_name: Option<String>,
    /// `LatestAutomatic` (default): the newest available automatic backup; a run that finds
    /// nothing newer than the last export is skipped (`NoNewSnapshot`). `CreateSnapshot`: take a
    /// manual snapshot first (CreateSnapshot, or CreateServerlessCacheSnapshot for a serverless
    /// cache), export it, then delete it.
    #[serde(default)]
    pub mode: SourceMode,
    /// CreateSnapshot mode: keep the intermediate snapshot after its export completed.
    #[serde(default)]
    pub keep_intermediate_snapshot: bool,
}

/// How a run gets the snapshot it exports.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SourceMode {
    /// The newest `available` automatic backup of the cache.
    #[default]
    LatestAutomatic,
    /// A fresh manual snapshot (CreateSnapshot), deleted after its export.
    CreateSnapshot,
}

/// The fields each run's `SnapshotExport` gets.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[x_kube(
    validation = Rule::new("!(has(self.targetBucket) && has(self.kmsKeyId))").message("kmsKeyId cannot be used with targetBucket: exports to S3 are unencrypted; remove kmsKeyId or targetBucket")
)]
#[serde(rename_all = "camelCase")]
pub struct ExportTemplate {
    /// S3 bucket to export to (see `SnapshotExport.spec.targetBucket`); without it each run is
    /// an in-region copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$')").message("targetBucket must be a DNS-compliant S3 bucket name: labels separated by '.', each of lowercase letters, digits and '-', starting and ending with a letter or digit"))]
    pub target_bucket: Option<String>,
    /// KMS key for in-region copies. Not allowed with `targetBucket`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub kms_key_id: Option<String>,
    /// Tags for in-region copies (see `SnapshotExport.spec.tags`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 49))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["key"]))]
    pub tags: Vec<Tag>,
    /// `Retain` (default) or `Delete` the in-region copy when its run object is deleted
    /// (including by retention).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Name of each run's copy. Placeholders: `{schedule}` (this object's name), `{cache}` (the
    /// cache id), `{YYYY}`, `{MM}`, `{DD}`, `{hh}`, `{mm}` (the scheduled time in `timeZone`).
    /// Besides placeholders only letters, digits and single hyphens. Default
    /// `{schedule}-{YYYY}{MM}{DD}-{hh}{mm}`. The result must start with a letter and be at most
    /// 242 characters (a run-now adds `-now-<hash>`); the template must name each unit the
    /// schedule runs more than once in (`{hh}` on a twice-daily schedule). A run in the repeated
    /// hour of a daylight-saving change, or moved past a skipped one, gets `-utc<hhmm>` appended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    #[x_kube(validation = Rule::new("self.matches('^([A-Za-z0-9-]|\\\\{(schedule|cache|YYYY|MM|DD|hh|mm)\\\\})+$')").message("targetSnapshotNameTemplate may contain only letters, digits, '-' and the placeholders {schedule}, {cache}, {YYYY}, {MM}, {DD}, {hh}, {mm}"))]
    #[x_kube(validation = Rule::new("!self.contains('--') && !self.endsWith('-')").message("targetSnapshotNameTemplate must not contain '--' nor end with '-': ElastiCache snapshot names cannot"))]
    pub target_snapshot_name_template: Option<String>,
}

/// Which runs are kept.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// How many successful runs to keep (default 7; 0 keeps all). Finished runs older than the
    /// oldest kept successful run are deleted; runs in flight never are.
    #[serde(default = "default_keep_last")]
    #[schemars(range(max = 1000))]
    pub keep_last: u32,
    /// Also delete the S3 objects of a run deleted by retention: only the objects recorded in
    /// that run's status with their ETag, only while the key still holds that ETag (a
    /// conditional delete), and never a key another SnapshotExport records. Needs
    /// `s3:DeleteObject`; an S3 lifecycle rule on the bucket is the alternative.
    #[serde(default)]
    pub prune_exported_objects: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn default_keep_last() -> u32 {
    7
}

impl Default for Retention {
    fn default() -> Self {
        Self { keep_last: default_keep_last(), prune_exported_objects: false }
    }
}

/// Why a scheduled time did not start a run.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// `spec.suspend` was true.
    Suspended,
    /// The previous run of this schedule was still in flight.
    PreviousRunInFlight,
    /// No automatic backup newer than the last exported one.
    NoNewSnapshot,
    /// The run was later than `startingDeadlineSeconds`.
    MissedDeadline,
    /// A SnapshotExport that is not a run of this schedule holds the run's name.
    RunNameTaken,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Suspended => "Suspended",
            Self::PreviousRunInFlight => "PreviousRunInFlight",
            Self::NoNewSnapshot => "NoNewSnapshot",
            Self::MissedDeadline => "MissedDeadline",
            Self::RunNameTaken => "RunNameTaken",
        }
    }
}

/// The most recent run.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct LastRun {
    /// The run's `SnapshotExport` (absent when the scheduled time was skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The scheduled time it stands for (for a run-now, when it was asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_time: Option<Time>,
    /// The run's phase as last seen (Pending, Copying, Exporting, Completed, Failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Why the scheduled time did not start a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<SkipReason>,
}

/// The cache and snapshot the last run took.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedSource {
    /// The replication group, cache cluster or serverless cache.
    pub cache_id: String,
    /// The snapshot the last run exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_name: Option<String>,
    /// Its creation time (the newest node snapshot's), used to tell whether a backup is new.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_create_time: Option<Time>,
}

/// An intermediate snapshot being taken (CreateSnapshot mode) before its run starts.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PendingSnapshot {
    /// The run it is for.
    pub run_name: String,
    /// The intermediate snapshot's deterministic name.
    pub snapshot_name: String,
    /// The run's target snapshot name.
    pub target_snapshot_name: String,
    /// The scheduled time of the run.
    pub scheduled_time: Time,
}

/// Observed state of a `SnapshotExportSchedule`.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotExportScheduleStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (last run succeeded), `Reconciling` (a run in flight), `Stalled` (needs a person).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The most recent scheduled time handled (run or skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// The next scheduled time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// When the last successful run completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
    /// The most recent run or skip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRun>,
    /// Runs in flight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<String>,
    /// Runs still in flight past `runTimeoutSeconds` (a subset of `active`): reported once as
    /// `RunTimedOut`; they no longer hold back later runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timed_out: Vec<String>,
    /// The cache and snapshot the last run took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ResolvedSource>,
    /// The last `elasticache-export.io/run-now` value acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_now: Option<String>,
    /// How many run-now values were acted on (run or skipped). A run-now run is named from its
    /// value and this number, so a value used again after another (A, B, A) is a new run.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub run_now_count: u32,
    /// CreateSnapshot mode: the snapshot being taken for the next run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_snapshot: Option<PendingSnapshot>,
}

impl ScheduleSource {
    /// The cache id, whichever field holds it.
    pub fn cache_id(&self) -> Option<&str> {
        self.replication_group_id.as_deref().or(self.cache_cluster_id.as_deref()).or(self.serverless_cache_name.as_deref())
    }
}

/// A run's time in flight after which it no longer holds back later runs, when the spec says
/// nothing: 4 hours, as Velero's default item operation timeout.
pub const DEFAULT_RUN_TIMEOUT_SECONDS: i64 = 4 * 3600;

impl SnapshotExportScheduleSpec {
    /// The zone name, `UTC` by default.
    pub fn zone_name(&self) -> &str {
        self.time_zone.as_deref().unwrap_or("UTC")
    }

    /// `runTimeoutSeconds`, or its default.
    pub fn run_timeout(&self) -> jiff::SignedDuration {
        jiff::SignedDuration::from_secs(self.run_timeout_seconds.unwrap_or(DEFAULT_RUN_TIMEOUT_SECONDS))
    }
}
