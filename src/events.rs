//! Kubernetes Events (`events.k8s.io/v1`) through one shared [`Recorder`], so repeats of the same
//! event aggregate into a series instead of piling up.
//!
//! Why not kube-runtime's `Recorder`: it keeps a full copy of every Event it published for six
//! minutes and scans that whole cache under a write lock on every publish. At 10,000 exports
//! (two Events each) that is tens of MiB and O(n) work per Event. This one keeps only what a
//! series needs (the Event's name, its count) and prunes at most once a minute.

use crate::api::SnapshotExport;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::warn;

/// The operator's name in Events (`reportingController`).
pub const CONTROLLER_NAME: &str = "elasticache-export-operator";

/// How long a published Event stays open for repeats (as client-go and kube-runtime do).
const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
/// How often closed series are dropped from memory.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// An Event to publish about the object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventNote {
    pub warning: bool,
    pub reason: String,
    pub note: String,
}

#[derive(Clone)]
pub struct Events {
    recorder: Arc<Recorder>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Events {
    pub fn new(client: Client, instance: Option<String>) -> Self {
        Self { recorder: Arc::new(Recorder::new(client, CONTROLLER_NAME, instance)), metrics: None }
    }

    /// Count Warning Events by reason.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Publish an Event about `obj`. A failure to publish is logged, never fatal: Events are
    /// for people, the status is the record.
    pub async fn publish(&self, obj: &SnapshotExport, note: &EventNote) {
        self.publish_about(&obj.object_ref(&()), note).await;
    }

    /// Publish an Event about the object `regarding` refers to (also one the operator could
    /// not decode into a `SnapshotExport`).
    pub async fn publish_about(&self, regarding: &ObjectReference, note: &EventNote) {
        let action = match note.reason.as_str() {
            "CopyDeleted" | "CopyNotOwned" => "DeleteSnapshot",
            "UndecodableObject" => "Decode",
            _ => "CopySnapshot",
        };
        self.publish_event(regarding, note.warning, &note.reason, action, &note.note).await;
    }
}

impl Events {
    /// Publish an Event about any object (a `SnapshotExportSchedule`, say) through the same
    /// recorder; Warnings are counted by reason like the others.
    pub async fn publish_event(&self, regarding: &ObjectReference, warning: bool, reason: &str, action: &str, note: &str) {
        if let (true, Some(metrics)) = (warning, &self.metrics) {
            metrics.warning_events.get_or_create(&crate::metrics::ReasonLabels { reason: reason.into() }).inc();
        }
        let event = EventFacts { warning, reason, action, note: &truncate(note, 1024) };
        if let Err(err) = self.recorder.publish(&event, regarding).await {
            let object = format!("{}/{}", regarding.namespace.clone().unwrap_or_default(), regarding.name.clone().unwrap_or_default());
            warn!(%object, %reason, error = %err, "could not publish an Event");
        }
    }
}

/// What an Event says, before it is addressed to an object.
pub struct EventFacts<'a> {
    pub warning: bool,
    pub reason: &'a str,
    pub action: &'a str,
    pub note: &'a str,
}

/// Publishes Events; the same Event again (object, type, reason, action and note) within six
/// minutes adds to the first one's `series` (count, last observed time) instead of creating
/// another. A different note is a new Event: the API server keeps an Event's note immutable.
pub struct Recorder {
    client: Client,
    controller: String,
    instance: String,
    open: Mutex<OpenSeries>,
}

/// What makes two Events the same: object UID, warning, reason, action, and a hash of the note.
type SeriesKey = (String, bool, String, String, u64);

/// Series that may still be extended.
struct OpenSeries {
    by_key: HashMap<SeriesKey, Series>,
    pruned: Instant,
}

#[derive(Clone)]
struct Series {
    name: String,
    count: i32,
    last: Instant,
}

impl Recorder {
    pub fn new(client: Client, controller: &str, instance: Option<String>) -> Self {
        Self {
            client,
            controller: controller.into(),
            instance: instance.unwrap_or_else(|| controller.into()),
            open: Mutex::new(OpenSeries { by_key: HashMap::new(), pruned: Instant::now() }),
        }
    }

    /// How many series are held in memory.
    pub fn open_series(&self) -> usize {
        self.open.lock().expect("event series lock").by_key.len()
    }

    pub async fn publish(&self, event: &EventFacts<'_>, regarding: &ObjectReference) -> Result<(), kube::Error> {
        let namespace = regarding.namespace.clone().unwrap_or_else(|| "default".into());
        let key = series_key(event, regarding);
        let repeat = self.take_open(&key);
        let events: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let (now, stamp) = (Instant::now(), k8s_openapi::jiff::Timestamp::now());
        if let Some(series) = repeat {
            let count = series.count + 1;
            // Only the series may change: the API server refuses any other field of an Event.
            let patch = serde_json::json!({
                "series": EventSeries { count, last_observed_time: MicroTime(stamp) },
            });
            match events.patch(&series.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {
                    self.remember(key, Series { count, last: now, ..series });
                    return Ok(());
                }
                // The API server expired the Event (its TTL is an hour by default): start anew.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(err) => {
                    self.remember(key, series);
                    return Err(err);
                }
            }
        }
        let name = event_name(regarding.name.as_deref().unwrap_or(&self.controller), stamp.as_nanosecond());
        let created = Event {
            metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(namespace), ..Default::default() },
            event_time: Some(MicroTime(stamp)),
            type_: Some(if event.warning { "Warning" } else { "Normal" }.into()),
            reason: Some(event.reason.into()),
            action: Some(event.action.into()),
            note: Some(event.note.into()),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        };
        events.create(&PostParams::default(), &created).await?;
        self.remember(key, Series { name, count: 1, last: now });
        Ok(())
    }

    /// The open series for `key`, taken out so that a concurrent repeat starts its own rather
    /// than both patching one count.
    fn take_open(&self, key: &SeriesKey) -> Option<Series> {
        let mut open = self.open.lock().expect("event series lock");
        let now = Instant::now();
        if now.duration_since(open.pruned) >= PRUNE_EVERY {
            open.by_key.retain(|_, s| now.duration_since(s.last) < SERIES_WINDOW);
            open.pruned = now;
        }
        open.by_key.remove(key).filter(|s| now.duration_since(s.last) < SERIES_WINDOW)
    }

    fn remember(&self, key: SeriesKey, series: Series) {
        self.open.lock().expect("event series lock").by_key.insert(key, series);
    }
}

/// The [`SeriesKey`] of an Event about `regarding`.
fn series_key(event: &EventFacts<'_>, regarding: &ObjectReference) -> SeriesKey {
    use std::hash::{Hash, Hasher};
    let mut note = std::collections::hash_map::DefaultHasher::new();
    event.note.hash(&mut note);
    (regarding.uid.clone().unwrap_or_default(), event.warning, event.reason.to_string(), event.action.to_string(), note.finish())
}

/// The longest object name the API server accepts (a DNS subdomain).
const MAX_NAME: usize = 253;

/// An Event's name: the object's name and a timestamp, as client-go names them, with the object's
/// name cut so the whole stays a valid name of at most 253 characters (object names may be 253
/// long themselves).
fn event_name(object: &str, nanos: i128) -> String {
    let suffix = format!(".{nanos:x}");
    let mut end = object.len().min(MAX_NAME - suffix.len());
    while !object.is_char_boundary(end) {
        end -= 1;
    }
    // A cut must not leave a label ending in '.' or '-'.
    let prefix = object[..end].trim_end_matches(['.', '-']);
    format!("{prefix}{suffix}")
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

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ListParams;
    use kube::ResourceExt;

    async fn test_api() -> (kube_testbed::TestApiServer, Client) {
        let server = kube_testbed::TestApiServer::start(kube_testbed::Options::default()).await.unwrap();
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&server.kubeconfig_yaml("default")).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.unwrap();
        (server, Client::try_from(config).unwrap())
    }

    fn regarding(name: &str, uid: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("elasticache-export.io/v1alpha1".into()),
            kind: Some("SnapshotExport".into()),
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(uid.into()),
            ..Default::default()
        }
    }

    fn warning<'a>(note: &'a str) -> EventFacts<'a> {
        EventFacts { warning: true, reason: "S3BucketNotFound", action: "CopySnapshot", note }
    }

    #[tokio::test]
    async fn repeats_extend_one_event_and_other_reasons_or_objects_get_their_own() {
        let (server, client) = test_api().await;
        let events: Api<Event> = Api::namespaced(client.clone(), "default");
        let recorder = Recorder::new(client, CONTROLLER_NAME, Some("pod-1".into()));
        let a = regarding("a", "uid-a");
        recorder.publish(&warning("bucket b is missing"), &a).await.unwrap();
        recorder.publish(&warning("bucket b is missing"), &a).await.unwrap();
        recorder.publish(&warning("bucket b is missing"), &regarding("b", "uid-b")).await.unwrap();
        // Another message under the same reason is another Event (an Event's note is immutable).
        recorder.publish(&warning("bucket b is in another region"), &a).await.unwrap();
        let normal = EventFacts { warning: false, reason: "CopyRequested", action: "CopySnapshot", note: "requested" };
        recorder.publish(&normal, &a).await.unwrap();

        let mut list = events.list(&ListParams::default()).await.unwrap().items;
        list.sort_by_key(|e| (e.regarding.as_ref().and_then(|r| r.name.clone()), e.reason.clone(), e.series.is_none()));
        let summary: Vec<_> = list
            .iter()
            .map(|e| {
                let object = e.regarding.as_ref().and_then(|r| r.name.clone()).unwrap();
                (object, e.reason.clone().unwrap(), e.type_.clone().unwrap(), e.series.as_ref().map(|s| s.count))
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("a".into(), "CopyRequested".into(), "Normal".into(), None),
                ("a".into(), "S3BucketNotFound".into(), "Warning".into(), Some(2)),
                ("a".into(), "S3BucketNotFound".into(), "Warning".into(), None),
                ("b".into(), "S3BucketNotFound".into(), "Warning".into(), None),
            ]
        );
        let repeated = list.iter().find(|e| e.series.is_some()).unwrap();
        assert_eq!(repeated.note.as_deref(), Some("bucket b is missing"));
        assert_eq!(list[2].note.as_deref(), Some("bucket b is in another region"));
        assert_eq!(repeated.reporting_controller.as_deref(), Some(CONTROLLER_NAME));
        assert_eq!(repeated.reporting_instance.as_deref(), Some("pod-1"));
        assert_eq!(recorder.open_series(), 4);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn a_repeat_of_an_event_the_server_expired_starts_a_new_one() {
        let (server, client) = test_api().await;
        let events: Api<Event> = Api::namespaced(client.clone(), "default");
        let recorder = Recorder::new(client, CONTROLLER_NAME, None);
        let a = regarding("a", "uid-a");
        recorder.publish(&warning("missing"), &a).await.unwrap();
        let first = events.list(&ListParams::default()).await.unwrap().items.remove(0);
        events.delete(&first.name_any(), &Default::default()).await.unwrap();
        recorder.publish(&warning("missing"), &a).await.unwrap();
        let list = events.list(&ListParams::default()).await.unwrap().items;
        assert_eq!(list.len(), 1);
        assert_ne!(list[0].name_any(), first.name_any());
        assert!(list[0].series.is_none());
        assert_eq!(list[0].reporting_instance.as_deref(), Some(CONTROLLER_NAME), "no instance: the controller's name");
        // The new Event is the one repeats now extend.
        recorder.publish(&warning("missing"), &a).await.unwrap();
        let list = events.list(&ListParams::default()).await.unwrap().items;
        assert_eq!((list.len(), list[0].series.as_ref().map(|s| s.count)), (1, Some(2)));
        server.shutdown().await;
    }

    #[test]
    fn event_names_stay_valid_and_within_253_characters() {
        let nanos = 1_764_000_000_123_456_789_i128;
        assert_eq!(event_name("copy-a", nanos), format!("copy-a.{nanos:x}"));
        let long = format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61));
        let name = event_name(&long, nanos);
        assert_eq!(name.len(), 253, "{name}");
        assert!(name.ends_with(&format!(".{nanos:x}")) && name.starts_with(&"a".repeat(63)));
        // A cut that would end a label with '-' or '.' drops it.
        let dashed = format!("{}-{}", "a".repeat(235), "b".repeat(17));
        let name = event_name(&dashed, nanos);
        assert!(name.len() <= 253 && !name.contains("-."), "{name}");
        let dotted = format!("{}.{}", "a".repeat(235), "b".repeat(17));
        let name = event_name(&dotted, nanos);
        assert!(name.len() <= 253 && !name.contains(".."), "{name}");
    }

    #[test]
    fn notes_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("short", 1024), "short");
        let long = "é".repeat(600);
        let cut = truncate(&long, 1024);
        assert!(cut.len() <= 1024 && cut.ends_with("..."));
    }
}
