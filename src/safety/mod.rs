//! Safe exports (docs/safe-exports.md): the export policy gate and the bucket preflight, as the
//! reconciler uses them, plus the `check-bucket` command.
//!
//! The preflight runs right before an export's CopySnapshot is requested (never on a poll). It
//! inspects the bucket (`crate::aws::BucketInspector`) and evaluates the facts in a pure
//! function ([`evaluate`]), in the documented order:
//!
//! 1. the bucket exists (GetBucketLocation);
//! 2. it is in the snapshots' region (the empty LocationConstraint is us-east-1);
//! 3. ElastiCache has READ, then WRITE, then READ_ACP: an ACL grant to the partition's canonical
//!    ID (FULL_CONTROL counts; ACL grants do not count when ACLs are disabled by
//!    `BucketOwnerEnforced`), or a bucket policy `Allow` for the service principal
//!    `<region>.elasticache-snapshot.amazonaws.com` (READ: s3:ListBucket and
//!    s3:GetBucketLocation, WRITE: s3:PutObject on the key, READ_ACP: s3:GetBucketAcl; a
//!    matching `Deny` wins; a `Condition` counts where it can be decided for ElastiCache's TLS
//!    request, and one that cannot be decided is a `BucketPolicyNotEvaluated` Warning, never a
//!    refusal);
//! 4. the keys the export writes are free: `<target>-<NodeGroupId>.rdb` for each node group of
//!    the source (one listing under `<target>-`; the source's DescribeSnapshots only when that
//!    finds an export-shaped key; `0001` alone when the node groups cannot be read);
//! 5. the bucket is not publicly accessible: Block Public Access fully on, no ACL grant to
//!    AllUsers / AuthenticatedUsers, no policy open to everyone. A finding is a Warning Event
//!    `BucketPubliclyAccessible` (a stall with `--refuse-public-buckets`).
//!
//! A failure gives the reason and message of the documented CopySnapshot error it predicts
//! (`crate::aws::S3Problem`). Bucket ownership is left to CopySnapshot (S3BucketNotOwned).
//!
//! One file per concern:
//!
//! - `policy.rs`, `policy_file.rs`, `glob.rs`, `provenance.rs`: the export policy (rules and their
//!   matching, the file and its reload, the globs, the source's provenance);
//! - `partition.rs`: canonical IDs and service principals per partition;
//! - `inspect.rs`, `facts.rs`: the bucket inspection (S3 calls), the facts it finds, and the
//!   preflight's memory of them;
//! - `evaluate.rs`, `policy_document.rs`, `policy_condition.rs`, `public.rs`, `report.rs`: the evaluation (pure:
//!   facts in, checks out);
//! - `gate.rs`: the gate the reconciler calls, and its construction from [`SafetySettings`];
//! - `check_bucket.rs`: the `check-bucket` command and its rendering.
//!
//! Nothing here knows the reconciler: the gate answers with a [`Verdict`].

pub mod check_bucket;
pub mod evaluate;
pub mod facts;
pub mod gate;
pub mod glob;
pub mod inspect;
pub mod partition;
pub mod policy;
mod policy_condition;
mod policy_document;
pub mod policy_file;
pub mod provenance;
mod public;
pub mod report;
#[cfg(test)]
mod testing;

pub use check_bucket::{check_bucket, CheckBucket};
pub use evaluate::evaluate;
pub use gate::{export_safety, ExportSafety, SafetySettings, Verdict};
pub use partition::policy_statement;
