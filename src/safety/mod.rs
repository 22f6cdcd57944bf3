//! Safe exports (docs/safe-exports.md): the export policy, the bucket preflight and `check-bucket`.

mod evaluate;
pub mod policy;

pub use evaluate::*;
