//! `SnapshotExportSchedule`: cron schedules whose runs are ordinary `SnapshotExport`s. The
//! decisions (when, which snapshot, which name, what to delete) are pure and table-tested; the
//! controller around them observes, decides and acts.

pub mod choose;
pub mod cron;
pub mod names;
pub mod plan;
pub mod retention;
pub mod timetable;

#[cfg(test)]
mod timetable_tests;
