//! elasticache-export-operator: copies and exports Amazon ElastiCache snapshots, exactly once,
//! for `SnapshotExport` objects.

pub mod api;
pub mod aws;
pub mod cli;
pub mod controller;
pub mod events;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod policy;
pub mod preflight;
pub mod reconcile;
pub mod schedule;
pub mod telemetry;
