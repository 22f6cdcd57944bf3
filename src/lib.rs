//! elasticache-export-operator: copies and exports Amazon ElastiCache snapshots, exactly once,
//! for `SnapshotExport` objects.
//!
//! Imports go one way, from the bottom up:
//!
//! ```text
//! api  ->  aws  ->  safety  ->  export (schedule)  ->  controller  ->  main (cli)
//! ```
//!
//! - [`api`]: the custom resource (types, CRD, validation, conditions); imports nothing here.
//! - [`aws`]: ElastiCache and S3 behind our own traits, error classification, the rate limit.
//! - [`safety`]: the export policy, the bucket preflight and `check-bucket`; knows no controller
//!   (its gate answers with a `safety::Verdict`).
//! - [`export`]: the `SnapshotExport` controller's reconcile (observe, decide, act, status), the
//!   shared snapshot sweep and the finalizer. Each further controller gets a module beside it.
//! - [`controller`]: the wiring that starts each controller (watches, concurrency, backoff).
//! - `main.rs` with [`cli`]: parses the command line and turns it into each layer's settings.
//!
//! Shared pieces sit beside the layers and import no controller: [`events`] (the one Event
//! recorder), [`metrics`], [`leader`] (leader election), [`http`] (health, readiness, metrics),
//! [`telemetry`] (logs).

pub mod api;
pub mod aws;
pub mod backoff;
pub mod cli;
pub mod controller;
pub mod events;
pub mod export;
pub mod http;
pub mod installed;
pub mod leader;
pub mod metrics;
pub mod safety;
pub mod schedule;
pub mod telemetry;
