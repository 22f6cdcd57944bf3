//! Kubernetes Events through one shared `Recorder`, so repeats of the same event aggregate into a
//! series instead of piling up.

use crate::api::SnapshotExport;
use crate::reconcile::status::EventNote;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};
use tracing::warn;

/// The operator's name in Events (`reportingController`).
pub const CONTROLLER_NAME: &str = "elasticache-export-operator";

#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
    metrics: Option<std::sync::Arc<crate::metrics::Metrics>>,
}

impl Events {
    pub fn new(client: Client, instance: Option<String>) -> Self {
        let reporter = Reporter { controller: CONTROLLER_NAME.into(), instance };
        Self { recorder: Recorder::new(client, reporter), metrics: None }
    }

    /// Count Warning Events by reason.
    pub fn with_metrics(mut self, metrics: std::sync::Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Publish an Event about `obj`. A failure to publish is logged, never fatal: Events are
    /// for people, the status is the record.
    pub async fn publish(&self, obj: &SnapshotExport, note: &EventNote) {
        let event = Event {
            type_: if note.warning { EventType::Warning } else { EventType::Normal },
            reason: note.reason.clone(),
            note: Some(truncate(&note.note, 1024)),
            action: if note.reason == "CopyDeleted" || note.reason == "CopyNotOwned" {
                "DeleteSnapshot".into()
            } else {
                "CopySnapshot".into()
            },
            secondary: None,
        };
        if let (true, Some(metrics)) = (note.warning, &self.metrics) {
            metrics.warning_events.get_or_create(&crate::metrics::ReasonLabels { reason: note.reason.clone() }).inc();
        }
        if let Err(err) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            warn!(reason = %note.reason, error = %err, "could not publish an Event");
        }
    }
}

/// Event notes are limited to 1 KiB by the API server.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}
