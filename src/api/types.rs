//! Rust types of `SnapshotExport` (`elasticache-export.io/v1alpha1`). The CRD schema, with its
//! descriptions (`kubectl explain`) and CEL rules, is generated from these doc comments and
//! attributes; see `crd.rs` and `config/crd/`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The tag key the operator adds to every in-region copy: its value is the owning object's UID,
/// so a copy made before a crash is recognised (and adopted) instead of requested twice.
pub const OWNER_TAG_KEY: &str = "elasticache-export.io/owner-uid";

/// The tag key the operator adds beside [`OWNER_TAG_KEY`]: the owning object's namespace, so the
/// export policy can tell whose copy a source snapshot is (docs/safe-exports.md).
pub const OWNER_NAMESPACE_TAG_KEY: &str = "elasticache-export.io/owner-namespace";

/// Tag keys with this prefix are the operator's own: a spec may not set them, so a tag with it
/// on a snapshot was written by the operator.
pub const RESERVED_TAG_PREFIX: &str = "elasticache-export.io/";

/// The reason of an export stalled for good because its request's outcome is unknown and AWS
/// shows nothing of it (and of the condition while such a request is still being looked into).
pub const OUTCOME_UNKNOWN: &str = "RequestOutcomeUnknown";

/// The reason of an export stalled because its objects may have been written by another
/// SnapshotExport's request, whose outcome is unknown as well as its own (looked at again slowly:
/// deleting the other object lets it adopt them).
pub const OWNER_UNKNOWN: &str = "ExportOwnerUnknown";

/// The reason of an object whose source is an automatic backup that no longer exists:
/// ElastiCache deleted it at the end of its retention and never creates that name again, so no
/// retry can heal it (terminal, with or without a recorded acceptance).
pub const SOURCE_EXPIRED: &str = "SourceSnapshotExpired";

/// Set (to `"true"`) on a SnapshotExport whose source is an automatic backup (a schedule's
/// LatestAutomatic run; a user may set it too): once that snapshot is gone it is gone for good.
pub const AUTOMATIC_SOURCE_ANNOTATION: &str = "elasticache-export.io/automatic-source";

/// Set (to `"true"`) on a SnapshotExport whose source is being taken (a schedule's CreateSnapshot
/// run; a user may set it too): nothing is requested until the shared sweep sees the source
/// `available`, rather than asking AWS while it is still `creating` (AWS must refuse that).
pub const WAIT_FOR_SOURCE_ANNOTATION: &str = "elasticache-export.io/wait-for-source";

/// The reason of an export whose objects stop short of what it must write, once ElastiCache is
/// no longer exporting (or the source is gone): terminal, with or without a recorded acceptance.
pub const EXPORT_INCOMPLETE: &str = "ExportIncomplete";

/// The finalizer that `deletionPolicy: Delete` puts on an object, so the in-region copy is
/// deleted before the object goes away.
pub const FINALIZER: &str = "elasticache-export.io/delete-copy";

/// Copies an ElastiCache (Valkey / Redis OSS) snapshot once, in-region or as an export to S3.
///
/// Every field is immutable once set: a copy is one-shot, so a different copy is a new object.
#[derive(CustomResource, KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq)]
#[kube(
    group = "elasticache-export.io",
    version = "v1alpha1",
    kind = "SnapshotExport",
    plural = "snapshotexports",
    shortname = "sx",
    category = "elasticache",
    namespaced,
    status = "SnapshotExportStatus",
    printcolumn = r#"{"name":"Source","type":"string","jsonPath":".spec.sourceSnapshotName"}"#,
    printcolumn = r#"{"name":"Kind","type":"string","priority":1,"jsonPath":".spec.sourceKind"}"#,
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".spec.targetSnapshotName"}"#,
    printcolumn = r#"{"name":"Bucket","type":"string","jsonPath":".spec.targetBucket"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    doc = "A one-shot copy of an ElastiCache snapshot, in-region or exported to S3.",
    validation = Rule::new("self.spec == oldSelf.spec").message("spec is immutable: a SnapshotExport describes one copy; to copy something else, create a new SnapshotExport")
)]
#[x_kube(
    validation = Rule::new("(has(self.sourceKind) && self.sourceKind == 'Serverless' && has(self.targetBucket)) || has(self.targetSnapshotName)").message("targetSnapshotName is required: it names the in-region copy (or, for a node-based snapshot's export, the exported objects)")
)]
#[x_kube(
    validation = Rule::new("!(has(self.sourceKind) && self.sourceKind == 'Serverless' && has(self.targetBucket) && has(self.targetSnapshotName))").message("targetSnapshotName must be omitted when a Serverless snapshot is exported: ExportServerlessCacheSnapshot takes no target name and the objects are named by ElastiCache after the snapshot")
)]
#[x_kube(
    validation = Rule::new("!(has(self.targetBucket) && has(self.kmsKeyId))").message("kmsKeyId cannot be used with targetBucket: exports to S3 are unencrypted and ElastiCache refuses a customer-managed KMS key for them; remove kmsKeyId or targetBucket")
)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotExportSpec {
    /// Name of the existing ElastiCache snapshot to copy (in the operator's AWS region): a
    /// node-based snapshot (DescribeSnapshots), or a serverless cache's snapshot when
    /// `sourceKind` is `Serverless` (DescribeServerlessCacheSnapshots).
    #[schemars(length(min = 1, max = 1000))]
    pub source_snapshot_name: String,

    /// Which kind of snapshot `sourceSnapshotName` names: `NodeBased` (default; a snapshot of a
    /// replication group or cache cluster, copied with CopySnapshot) or `Serverless` (a snapshot
    /// of an ElastiCache Serverless cache, copied with CopyServerlessCacheSnapshot and exported
    /// with ExportServerlessCacheSnapshot). Immutable, like the rest of the spec.
    // Left out of the serialized spec when default, so that `status.specHash` of a node-based
    // spec does not depend on whether the operator knows this field.
    #[serde(default, skip_serializing_if = "SourceKind::is_node_based")]
    pub source_kind: SourceKind,

    /// Name of the copy, 1 to 1,000 characters. For an in-region copy this is the new snapshot's
    /// name; for an S3 export of a node-based snapshot ElastiCache writes one object per node
    /// group, named by its id: `<targetSnapshotName>-0001.rdb`, `-0002.rdb`, and so on (ids can be
    /// user-supplied, and are not contiguous after shards were removed). Required, except for the
    /// export of a `Serverless` snapshot, where it must be omitted: that export takes no target
    /// name, and its objects are named by ElastiCache after the snapshot.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(min = 1, max = 1000))]
    pub target_snapshot_name: String,

    /// S3 bucket to export the snapshot to. When set, the snapshot is exported to S3 instead of
    /// copied in-region. The bucket must be in the snapshot's region, DNS-compliant (3 to 63
    /// characters; labels of lowercase letters, digits and dashes that start and end with a
    /// letter or digit; not an IP address) and grant ElastiCache READ, WRITE and READ_ACP (or a
    /// bucket policy for `<region>.elasticache-snapshot.amazonaws.com`). Exported backups are
    /// unencrypted: do not let others read this bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$')").message("targetBucket must be a DNS-compliant S3 bucket name: labels separated by '.', each of lowercase letters, digits and '-', starting and ending with a letter or digit"))]
    #[x_kube(validation = Rule::new("!self.matches('^[0-9]+\\\\.[0-9]+\\\\.[0-9]+\\\\.[0-9]+$')").message("targetBucket must not be formatted as an IP address"))]
    pub target_bucket: Option<String>,

    /// KMS key (ID or ARN) that encrypts an in-region copy. Not allowed together with
    /// `targetBucket`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub kms_key_id: Option<String>,

    /// Tags for the in-region copy, at most 48 (the operator adds its two ownership tags, and
    /// ElastiCache allows 50). Keys are unique, 1 to 128 characters, and must not start with
    /// `aws:` nor `elasticache-export.io/`; values are at most 256 characters and may be null.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 48))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["key"]))]
    pub tags: Vec<Tag>,

    /// What happens to the in-region copy when this object is deleted: `Retain` (default) keeps
    /// it; `Delete` deletes it first. Objects exported to S3 are never deleted by the operator.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// One tag on the copy.
#[derive(KubeSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    /// Tag key, 1 to 128 characters; must not start with `aws:` nor `elasticache-export.io/`
    /// (the operator's own ownership tags).
    #[schemars(length(min = 1, max = 128))]
    #[x_kube(validation = Rule::new("!self.startsWith('aws:')").message("tag keys must not start with 'aws:': that prefix is reserved by AWS"))]
    #[x_kube(validation = Rule::new("!self.startsWith('elasticache-export.io/')").message("tag keys must not start with 'elasticache-export.io/': that prefix is reserved for the operator's ownership tags"))]
    pub key: String,
    /// Tag value, at most 256 characters; may be null.
    #[serde(default)]
    #[schemars(length(max = 256))]
    pub value: Option<String>,
}

/// The kind of ElastiCache snapshot a `SnapshotExport` copies.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SourceKind {
    /// A snapshot of a node-based cache (replication group or cache cluster).
    #[default]
    NodeBased,
    /// A snapshot of an ElastiCache Serverless cache (Valkey or Redis OSS).
    Serverless,
}

impl SourceKind {
    fn is_node_based(&self) -> bool {
        *self == SourceKind::NodeBased
    }
}

/// Whether deleting the object deletes the in-region copy.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Keep the copy when the object is deleted.
    #[default]
    Retain,
    /// Delete the in-region copy before the object is deleted (S3 objects are always kept).
    Delete,
}

/// Where a copy or export stands.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Accepted, nothing requested from AWS yet.
    Pending,
    /// An in-region copy was requested and is in progress.
    Copying,
    /// An export to S3 was requested and is in progress.
    Exporting,
    /// The copy or export is complete.
    Completed,
    /// It cannot progress without an outside change; see the `Stalled` condition.
    Failed,
}

/// What the operator last saw go wrong.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct LastError {
    /// CamelCase reason, the same as the Warning Event's.
    pub reason: String,
    /// What went wrong and what to do.
    pub message: String,
}

/// Observed state of a `SnapshotExport`.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotExportStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pending, Copying, Exporting, Completed or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// `Ready` (complete), `Reconciling` (work in flight) and `Stalled` (needs an outside
    /// change), as kstatus, Flux and Argo CD read them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// When CopySnapshot was (about to be) called. Written before the call, so that after a
    /// restart the operator knows a request may be in flight and never requests twice; cleared
    /// when AWS refuses the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_requested_at: Option<Time>,
    /// When AWS was first seen to accept the request (CopySnapshot's answer, or our copy or export
    /// found in flight). Never cleared: an accepted request is never repeated, whatever happens
    /// to the phase afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_accepted_at: Option<Time>,
    /// A hash of the spec the request was made for, written with the intent. A spec that no
    /// longer matches it (an edit on a cluster without CEL) stalls with `SpecChanged`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<String>,
    /// When the copy or export was seen complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// ARN of the in-region copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_snapshot_arn: Option<String>,
    /// The objects an export must write, one per node group of the source, as
    /// `s3://<bucket>/<target>-<node group id>.rdb`; recorded once the export is seen in flight
    /// (for a serverless source, whose shards are not known in advance: once it is complete).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_objects: Vec<String>,
    /// The exported objects, as `s3://<bucket>/<target>-<node group id>.rdb`; for a serverless
    /// source, the `s3://<bucket>/<sourceSnapshotName>-NNNN.rdb` objects its export wrote.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exported_objects: Vec<String>,
    /// Each exported object's ETag, size and write time as S3 listed them when the export
    /// completed (recorded once): a schedule's retention (`pruneExportedObjects`) deletes an
    /// object only while it is still that very write.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exported_object_details: Vec<ExportedObject>,
    /// The source snapshot's status when last seen (exports), e.g. `available` or `exporting`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_snapshot_status: Option<String>,
    /// The target snapshot's status when last seen (in-region copies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_snapshot_status: Option<String>,
    /// How many times CopySnapshot was called for this object.
    #[serde(default)]
    pub attempts: u32,
    /// How many times in a row AWS answered that the target already exists (or the source is
    /// busy) while the operator found nothing of this object's; at 5 the object stalls as
    /// `AwsAnswerInconsistent`. Recorded so that a restart does not allow more such requests.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub recheck_count: u32,
    /// The last error, cleared on completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
}

/// An exported object as S3 listed it when the export completed.
#[derive(JsonSchema, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExportedObject {
    /// `s3://<bucket>/<key>`.
    pub url: String,
    /// Its ETag, as S3 gives it (quotes included).
    pub e_tag: String,
    /// Its size in bytes.
    pub size: i64,
    /// When S3 says it was written: an object written again with the same bytes has the same
    /// ETag, not the same time. (Optional only so that a lagging CRD cannot make the status
    /// unreadable; without it nothing is pruned.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<Time>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl SnapshotExportSpec {
    /// A copy of `source` named `target`, exported to `bucket` when one is given; no KMS key, no
    /// tags, `Retain`.
    pub fn new(source: &str, target: &str, bucket: Option<&str>) -> Self {
        Self {
            source_snapshot_name: source.into(),
            source_kind: SourceKind::NodeBased,
            target_snapshot_name: target.into(),
            target_bucket: bucket.map(str::to_string),
            kms_key_id: None,
            tags: vec![],
            deletion_policy: DeletionPolicy::Retain,
        }
    }

    /// True when this object exports to S3 rather than copying in-region.
    pub fn is_export(&self) -> bool {
        self.target_bucket.is_some()
    }

    /// True when the source is an ElastiCache Serverless snapshot.
    pub fn is_serverless(&self) -> bool {
        self.source_kind == SourceKind::Serverless
    }

    /// The same spec with a Serverless source (builder for tests and samples).
    pub fn serverless(mut self) -> Self {
        self.source_kind = SourceKind::Serverless;
        if self.is_export() {
            self.target_snapshot_name.clear();
        }
        self
    }

    /// The name the exported objects start with: `targetSnapshotName` for a node-based export;
    /// the snapshot's own name for a Serverless export (ExportServerlessCacheSnapshot has no
    /// target name; the objects' names are not documented, see the README's Serverless section),
    /// in lowercase: ElastiCache stores snapshot names so, whatever case the spec uses.
    pub fn export_base_name(&self) -> std::borrow::Cow<'_, str> {
        if self.is_serverless() {
            std::borrow::Cow::Owned(self.source_snapshot_name.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(&self.target_snapshot_name)
        }
    }

    /// Whether `key` can be an object of this serverless export (see [`is_export_key`]): its
    /// shards are not named in advance, so this shape is what tells its objects from those of
    /// another snapshot whose name starts the same (`<base>-old-0001.rdb`).
    pub fn is_serverless_export_key(&self, key: &str) -> bool {
        is_export_key(key, &self.export_base_name())
    }

    /// A stable hash of the spec (FNV-1a over its JSON form, fields in declaration order), as
    /// recorded in `status.specHash`.
    pub fn hash(&self) -> String {
        let json = serde_json::to_string(self).expect("a spec serializes");
        let hash = json.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        format!("fnv1a64:{hash:016x}")
    }
}

impl SnapshotExportStatus {
    /// Whether AWS accepted this object's request: `copyAcceptedAt` is durable (never cleared,
    /// a later stall keeps it); the phase check covers objects written before that field existed.
    pub fn is_accepted(&self) -> bool {
        self.copy_accepted_at.is_some() || matches!(self.phase, Some(Phase::Copying | Phase::Exporting))
    }

    /// Whether the object failed and the operator will make no AWS call for it again without an
    /// edit: a stall after AWS accepted the request, or a spec the operator cannot request. Any
    /// other stall (`phase: Failed` before acceptance: a bucket to fix, a policy refusal) is
    /// retried slowly and may still succeed, so it is still in flight.
    pub fn is_failed_for_good(&self) -> bool {
        self.phase == Some(Phase::Failed) && (self.copy_accepted_at.is_some() || self.is_stalled_by_its_spec() || self.is_over_unaccepted())
    }

    /// Whether the object is finished for good without success and no edit can revive it: AWS
    /// accepted its request and it then stalled (the copy failed or vanished, the export failed),
    /// or an export's outcome stayed unknown (a second request could export twice), or its
    /// automatic source backup expired before it was accepted. No AWS call
    /// is ever made for it again; a new copy is a new SnapshotExport.
    pub fn is_terminal(&self) -> bool {
        self.phase == Some(Phase::Failed)
            && (self.copy_accepted_at.is_some() || self.is_over_unaccepted())
            && !self.is_stalled_by_its_spec()
    }

    /// Stalled for good although no acceptance was recorded: an export request's outcome is
    /// unknown and AWS shows nothing of it (a second request could export twice), or objects
    /// written after it show it was carried out and stopped short (`ExportIncomplete`: a look
    /// can never heal it, only cost two AWS calls each time), or its source is an automatic
    /// backup that expired (`SourceSnapshotExpired`). Re-creating the object retries.
    fn is_over_unaccepted(&self) -> bool {
        self.last_error.as_ref().is_some_and(|e| [OUTCOME_UNKNOWN, EXPORT_INCOMPLETE, SOURCE_EXPIRED].contains(&e.reason.as_str()))
    }

    /// Stalled for its spec (`InvalidSpec`, `SpecChanged`): healed by an edit of the object
    /// (reverting the spec), not by AWS.
    fn is_stalled_by_its_spec(&self) -> bool {
        self.last_error.as_ref().is_some_and(|e| matches!(e.reason.as_str(), "InvalidSpec" | "SpecChanged"))
    }
}

impl SnapshotExport {
    /// Whether the source is an automatic backup, as its annotation says (set by a schedule's
    /// LatestAutomatic run, which found it among the cache's automatic snapshots). The name does
    /// not say it: `automatic.` is only ElastiCache's habit, not a rule AWS documents.
    pub fn has_automatic_source(&self) -> bool {
        self.annotated(AUTOMATIC_SOURCE_ANNOTATION)
    }

    /// Whether the first request waits until the source is available, as its annotation says
    /// (set by a schedule's CreateSnapshot run, whose snapshot was just taken).
    pub fn waits_for_source(&self) -> bool {
        self.annotated(WAIT_FOR_SOURCE_ANNOTATION)
    }

    fn annotated(&self, key: &str) -> bool {
        self.metadata.annotations.as_ref().and_then(|a| a.get(key)).is_some_and(|v| v == "true")
    }
}

/// Whether `key` is `<base>-<id>.rdb` for a node group id as AWS documents it (1 to 4 digits:
/// `0001` by default, user-supplied otherwise): the one shape of an export's objects, for the
/// listing that adopts them, the preflight that checks them and serverless exports alike.
pub fn is_export_key(key: &str, base: &str) -> bool {
    key.strip_prefix(base)
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|rest| rest.strip_suffix(".rdb"))
        .is_some_and(|id| (1..=4).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod export_key_tests {
    #[test]
    fn only_keys_an_export_of_the_base_writes_count() {
        for (key, expected) in [
            ("t-0001.rdb", true),
            ("t-42.rdb", true),
            ("t-00001.rdb", false),
            ("t-shard-a.rdb", false),
            ("t-.rdb", false),
            ("t-0001.rdb.old", false),
            ("t-dir/0001.rdb", false),
            ("t-old-0001.rdb", false),
            ("u-0001.rdb", false),
            ("t0001.rdb", false),
        ] {
            assert_eq!(super::is_export_key(key, "t"), expected, "{key}");
        }
    }
}
