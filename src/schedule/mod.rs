//! `SnapshotExportSchedule`: cron schedules whose runs are ordinary `SnapshotExport`s. The
//! decisions (when, which snapshot, which name, what to delete) are pure and table-tested; the
//! controller around them observes, decides and acts.

pub mod aws;
pub mod choose;
mod cleanup;
pub mod clock;
pub mod controller;
pub mod cron;
pub mod names;
pub mod plan;
pub mod policy;
pub mod reconcile;
pub mod retention;
mod runs;
pub mod status;
pub mod timetable;

#[cfg(test)]
mod timetable_tests;
