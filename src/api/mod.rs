//! The `SnapshotExport` custom resource: its spec (what to copy), its status (what happened),
//! the validation rules shared by the CRD and the reconciler, and the kstatus conditions.

pub mod conditions;
mod crd;
pub mod schedule;
pub mod schedule_validation;
pub mod types;
pub mod validation;

pub use crd::{crd_yaml, generated_crd, generated_schedule_crd, schedule_crd_yaml};
pub use types::*;
