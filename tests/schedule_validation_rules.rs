//! Bad `SnapshotExportSchedule` specs: each is refused by the CRD (CEL evaluated locally with
//! kube's CEL support, or the OpenAPI bounds) and by the reconciler's own check, which also
//! catches what CEL cannot know (cron field ranges, the zone database, the rendered name).

use ecx::api::schedule::SnapshotExportScheduleSpec;
use ecx::api::schedule_validation::validate_schedule;
use serde_json::{json, Value};

fn schema() -> Value {
    let crd = serde_json::to_value(ecx::api::generated_schedule_crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn cel(obj: &Value) -> Result<(), String> {
    kube::core::cel::Validator::new().validate(&schema(), obj, None).map_err(|e| format!("{e:?}"))
}

fn object(spec: &Value) -> Value {
    json!({"apiVersion": "elasticache-export.io/v1alpha1", "kind": "SnapshotExportSchedule", "metadata": {"name": "nightly", "namespace": "default"}, "spec": spec})
}

fn good() -> Value {
    json!({
        "schedule": "0 3 * * *",
        "timeZone": "Europe/Berlin",
        "source": {"replicationGroupId": "prod-redis"},
        "template": {"targetBucket": "my-backups"},
    })
}

fn with(path: &[&str], value: Value) -> Value {
    let mut spec = good();
    let mut at = &mut spec;
    for p in &path[..path.len() - 1] {
        at = at.as_object_mut().unwrap().entry(p.to_string()).or_insert(json!({}));
    }
    let last = path[path.len() - 1];
    if value.is_null() {
        at.as_object_mut().unwrap().remove(last);
    } else {
        at[last] = value;
    }
    spec
}

#[test]
fn good_specs_pass_every_check() {
    let goods = [
        good(),
        with(&["schedule"], json!("@daily")),
        with(&["schedule"], json!("0  3 * * *")),
        with(&["schedule"], json!("*/15 9-17 * JAN-MAR MON-FRI")),
        with(&["timeZone"], json!(null)),
        with(&["timeZone"], json!("America/Argentina/Buenos_Aires")),
        with(&["timeZone"], json!("Etc/GMT+5")),
        with(&["source"], json!({"cacheClusterId": "single-node-0001", "mode": "CreateSnapshot"})),
        with(&["source"], json!({"serverlessCacheName": "sessions", "mode": "CreateSnapshot"})),
        with(&["source"], json!({"serverlessCacheName": "sessions"})),
        with(&["template", "targetSnapshotNameTemplate"], json!("{cache}-{YYYY}-{MM}-{DD}")),
        with(&["retention"], json!({"keepLast": 0, "pruneExportedObjects": true})),
        with(&["startingDeadlineSeconds"], json!(3600)),
        with(&["runTimeoutSeconds"], json!(60)),
        with(&["runTimeoutSeconds"], json!(86_400)),
        with(&["template"], json!({"kmsKeyId": "alias/x", "tags": [{"key": "team", "value": "data"}], "deletionPolicy": "Delete"})),
    ];
    for spec in goods {
        let parsed: SnapshotExportScheduleSpec = serde_json::from_value(spec.clone()).unwrap();
        assert_eq!(validate_schedule("nightly", &parsed), Vec::<String>::new(), "{spec}");
        cel(&object(&spec)).unwrap_or_else(|e| panic!("CEL refused a good spec {spec}: {e}"));
    }
}

/// Where a bad spec is refused at admission: by a CEL rule (its message contains the text), by
/// an OpenAPI bound, or only by the reconciler (CEL cannot know it).
enum At {
    Cel(&'static str),
    Bound,
    Reconciler,
}

#[test]
fn each_invalid_spec_is_refused_with_a_readable_message() {
    let cases: Vec<(&str, Value, At, &str)> = vec![
        ("six fields", with(&["schedule"], json!("0 0 3 * * *")), At::Cel("five cron fields"), "seconds field"),
        ("four fields", with(&["schedule"], json!("0 3 * *")), At::Cel("five cron fields"), "has 4 fields"),
        ("a tab", with(&["schedule"], json!("0\t3 * * *")), At::Cel("five cron fields"), "has 4 fields"),
        ("unknown macro", with(&["schedule"], json!("@reboot")), At::Cel("five cron fields"), "unknown macro"),
        ("minute 60", with(&["schedule"], json!("60 3 * * *")), At::Reconciler, "60 is outside 0-59"),
        ("Feb 30", with(&["schedule"], json!("0 0 30 2 *")), At::Reconciler, "never runs"),
        ("zone shape", with(&["timeZone"], json!("Europe Berlin")), At::Cel("IANA time zone"), "not a known IANA time zone"),
        ("unknown zone", with(&["timeZone"], json!("Mars/Olympus")), At::Reconciler, "not a known IANA time zone"),
        (
            "both caches",
            with(&["source"], json!({"replicationGroupId": "a", "cacheClusterId": "b"})),
            At::Cel("exactly one of replicationGroupId, cacheClusterId and serverlessCacheName"),
            "exactly one of",
        ),
        (
            "a serverless cache and a replication group",
            with(&["source"], json!({"replicationGroupId": "a", "serverlessCacheName": "b"})),
            At::Cel("exactly one of replicationGroupId, cacheClusterId and serverlessCacheName"),
            "exactly one of",
        ),
        (
            "a serverless cache name too long",
            with(&["source"], json!({"serverlessCacheName": "s".repeat(41)})),
            At::Bound,
            "at most 40 characters",
        ),
        (
            "no cache",
            with(&["source"], json!({"mode": "LatestAutomatic"})),
            At::Cel("exactly one of replicationGroupId, cacheClusterId and serverlessCacheName"),
            "exactly one of",
        ),
        (
            "unknown placeholder",
            with(&["template", "targetSnapshotNameTemplate"], json!("{cache}-{week}")),
            At::Cel("placeholders {schedule}"),
            "unknown placeholder {week}",
        ),
        (
            "dot in template",
            with(&["template", "targetSnapshotNameTemplate"], json!("a.{cache}")),
            At::Cel("placeholders {schedule}"),
            "may contain only letters",
        ),
        (
            "double hyphen",
            with(&["template", "targetSnapshotNameTemplate"], json!("x--{cache}")),
            At::Cel("must not contain '--'"),
            "must not contain '--'",
        ),
        (
            "starts with a digit",
            with(&["template", "targetSnapshotNameTemplate"], json!("{YYYY}-{cache}")),
            At::Reconciler,
            "must start with a letter",
        ),
        (
            "a daily name on a twice-daily schedule",
            {
                let mut spec = with(&["template", "targetSnapshotNameTemplate"], json!("{cache}-{YYYY}{MM}{DD}"));
                spec["schedule"] = json!("0 2,14 * * *");
                spec
            },
            At::Reconciler,
            "lacks {hh}: the schedule runs more than once a day",
        ),
        (
            "a name without the year",
            with(&["template", "targetSnapshotNameTemplate"], json!("{cache}-{MM}{DD}")),
            At::Reconciler,
            "lacks {YYYY}: the schedule runs again every year",
        ),
        ("bad bucket", with(&["template", "targetBucket"], json!("My_Bucket")), At::Cel("DNS-compliant"), "targetBucket"),
        (
            "kms with bucket",
            with(&["template", "kmsKeyId"], json!("alias/x")),
            At::Cel("kmsKeyId cannot be used with targetBucket"),
            "kmsKeyId cannot be used",
        ),
        ("deadline 0", with(&["startingDeadlineSeconds"], json!(0)), At::Bound, "startingDeadlineSeconds must be at least 1"),
        ("keepLast too large", with(&["retention", "keepLast"], json!(5000)), At::Bound, "keepLast must be at most 1000"),
        ("run timeout under a minute", with(&["runTimeoutSeconds"], json!(59)), At::Bound, "runTimeoutSeconds must be between 60"),
        ("run timeout over a year", with(&["runTimeoutSeconds"], json!(31_536_001)), At::Bound, "runTimeoutSeconds must be between 60"),
        (
            "prune without bucket",
            with(&["template"], json!({})).pipe_retention(),
            At::Reconciler,
            "pruneExportedObjects needs template.targetBucket",
        ),
        ("aws: tag", with(&["template", "tags"], json!([{"key": "aws:x"}])), At::Cel("must not start with 'aws:'"), "aws:"),
    ];
    for (name, spec, at, reconciler_says) in cases {
        let parsed: SnapshotExportScheduleSpec = serde_json::from_value(spec.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let problems = validate_schedule("nightly", &parsed);
        assert!(!problems.is_empty(), "{name}: the reconciler accepted it");
        assert!(problems.iter().any(|p| p.contains(reconciler_says)), "{name}: {problems:?} lacks {reconciler_says:?}");
        let admitted = cel(&object(&spec));
        match at {
            At::Cel(text) => {
                let err = admitted.expect_err(name);
                assert!(err.contains(text), "{name}: CEL said {err} without {text:?}");
            }
            At::Bound => assert!(admitted.is_ok(), "{name}: expected only an OpenAPI bound to refuse it"),
            At::Reconciler => assert!(admitted.is_ok(), "{name}: CEL refused what only the reconciler is expected to catch: {admitted:?}"),
        }
    }
}

#[test]
fn the_bounds_named_above_are_in_the_schema() {
    let s = schema();
    let spec = &s["properties"]["spec"]["properties"];
    assert_eq!(spec["startingDeadlineSeconds"]["minimum"], json!(1.0));
    assert_eq!(spec["retention"]["properties"]["keepLast"]["maximum"], json!(1000.0));
    assert_eq!((&spec["runTimeoutSeconds"]["minimum"], &spec["runTimeoutSeconds"]["maximum"]), (&json!(60.0), &json!(31_536_000.0)));
    assert_eq!(spec["source"]["properties"]["serverlessCacheName"]["maxLength"], json!(40));
}

trait PipeRetention {
    fn pipe_retention(self) -> Value;
}

impl PipeRetention for Value {
    fn pipe_retention(mut self) -> Value {
        self["retention"] = json!({"pruneExportedObjects": true});
        self
    }
}
