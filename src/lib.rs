//! elasticache-export-operator: copies and exports Amazon ElastiCache snapshots, exactly once,
//! for `SnapshotExport` objects.

pub mod api;
pub mod aws;
pub mod cli;
pub mod controller;
pub mod events;
pub mod export;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod safety;
pub mod telemetry;
