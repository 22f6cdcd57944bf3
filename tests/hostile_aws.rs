//! Hostile AWS responses (issue 6): the SDK implementation (`SdkSnapshots`) against a raw HTTP
//! stub that answers malformed XML, unknown snapshot statuses, messages that match no known
//! pattern, HTML error pages, empty bodies and a 5,000-snapshot page. Each must become a clear
//! condition (transient: retry with backoff; a fault: a stall that quotes AWS), never a panic.
//! Plus a property test of `decide`: no panic on any status × observation, and an accepted
//! request is never requested again.

use ecx::api::{Phase, SnapshotExportSpec, SnapshotExportStatus};
use ecx::aws::{AwsError, CopyRequest, SnapshotApi, SnapshotInfo, SnapshotStatus};
use ecx::export::decide::{after_copy, decide, retry_later, Decision, Observation};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use proptest::prelude::*;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[path = "common/aws_stub.rs"]
mod aws_stub;
use aws_stub::*;

fn snapshot_xml(name: &str, status: &str, groups: &str) -> String {
    format!(
        "<Snapshot><SnapshotName>{name}</SnapshotName><SnapshotStatus>{status}</SnapshotStatus><ARN>arn:aws:elasticache:us-east-1:123456789012:snapshot:{name}</ARN><NumNodeGroups>{groups}</NumNodeGroups></Snapshot>"
    )
}

fn describe_xml(snapshots: &str, marker: Option<&str>) -> String {
    let marker = marker.map(|m| format!("<Marker>{m}</Marker>")).unwrap_or_default();
    format!(
        "<DescribeSnapshotsResponse xmlns=\"{NS}\"><DescribeSnapshotsResult><Snapshots>{snapshots}</Snapshots>{marker}</DescribeSnapshotsResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DescribeSnapshotsResponse>"
    )
}

fn error_xml(code: &str, message: &str) -> String {
    format!("<ErrorResponse xmlns=\"{NS}\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>r</RequestId></ErrorResponse>")
}

fn spec(bucket: Option<&str>) -> SnapshotExportSpec {
    SnapshotExportSpec::new("src", "dst", bucket)
}

fn copy(bucket: Option<&str>) -> CopyRequest {
    CopyRequest { source: "src".into(), target: "dst".into(), bucket: bucket.map(str::to_string), kms_key_id: None, tags: vec![] }
}

/// A transient error must become `RetryLater` with a message a person can read.
fn assert_retry(err: &AwsError, what: &str) {
    assert!(err.is_transient(), "{what}: {err:?}");
    let Decision::RetryLater { reason, message, .. } = retry_later(err) else { unreachable!() };
    assert_eq!(reason, "AwsUnavailable", "{what}");
    assert!(message.contains("retrying with backoff"), "{what}: {message}");
}

#[tokio::test]
async fn malformed_xml_is_a_transient_error_never_a_panic() {
    let bodies: Vec<(&str, Answer)> = vec![
        ("not XML at all", (200, XML, "{\"this\": \"is json\"}".into())),
        ("wrong root element", (200, XML, "<Html><Body>hello</Body></Html>".into())),
        ("non-numeric NumNodeGroups", (200, XML, describe_xml(&snapshot_xml("src", "available", "many"), None))),
        ("HTML 502 from a proxy", (502, "text/html", "<html><body><h1>502 Bad Gateway</h1></body></html>".into())),
        ("empty 503", (503, XML, String::new())),
        ("garbage error body at 500", (500, XML, "\u{0}\u{1}garbage".into())),
    ];
    for (what, answer) in bodies {
        let (url, _) = stub(move |_| answer.clone()).await;
        let aws = client(&url).await;
        let err = aws.describe_snapshot("src").await.expect_err(what);
        assert_retry(&err, what);
        let err = aws.describe_snapshots_page(None).await.expect_err(what);
        assert_retry(&err, what);
        // CopySnapshot answered unreadably: the outcome is unknown, so the intent is kept
        // (RetryLater never clears it): the next looks adopt whatever the call did, and an
        // export that shows nothing is never requested again (issue 30).
        let err = aws.copy_snapshot(&copy(Some("bkt"))).await.expect_err(what);
        assert_retry(&err, what);
        assert!(matches!(after_copy(&spec(Some("bkt")), &Err(err)), Decision::RetryLater { .. }), "{what}");
    }
}

/// The SDK's XML reader is lenient: a body cut short (with a Content-Length that matches it, so
/// HTTP cannot tell) is read as far as it goes. Whatever comes out, nothing panics; what the
/// operator makes of a partial answer is covered by the intent (see docs/reliability.md).
#[tokio::test]
async fn xml_cut_short_is_read_leniently_without_a_panic() {
    let full = describe_xml(&snapshot_xml("src", "available", "1"), None);
    for cut in [full.len() / 4, full.len() / 2, full.len() * 3 / 4, full.len() - 10] {
        let body = full[..cut].to_string();
        let (url, _) = stub(move |_| (200, XML, body.clone())).await;
        let aws = client(&url).await;
        let described = aws.describe_snapshot("src").await;
        let page = aws.describe_snapshots_page(None).await;
        eprintln!("[reliability] hostile-aws: DescribeSnapshots cut at {cut}/{}: {described:?}", full.len());
        if let Err(err) = described.as_ref() {
            assert_retry(err, "cut XML");
        }
        if let Err(err) = page.as_ref() {
            assert_retry(err, "cut XML page");
        }
    }
    let (url, _) = stub(|_| (200, "application/xml", "<ListBucketResult><Contents><Key>dst-0001".into())).await;
    let listed = client(&url).await.export_objects("bkt", "dst").await;
    eprintln!("[reliability] hostile-aws: ListObjectsV2 cut short: {listed:?}");
    if let Err(err) = listed.as_ref() {
        assert_retry(err, "cut S3 listing");
    }
}

#[tokio::test]
async fn a_copy_answered_without_a_snapshot_is_transient() {
    let (url, _) = stub(|_| {
        (200, XML, format!("<CopySnapshotResponse xmlns=\"{NS}\"><CopySnapshotResult></CopySnapshotResult></CopySnapshotResponse>"))
    })
    .await;
    let err = client(&url).await.copy_snapshot(&copy(None)).await.expect_err("no snapshot in the answer");
    assert_retry(&err, "empty CopySnapshot result");
}

#[tokio::test]
async fn an_unknown_snapshot_status_is_in_progress_with_the_status_in_the_message() {
    let (url, _) = stub(|_| (200, XML, describe_xml(&snapshot_xml("dst", "weird-new-state", "-3"), None))).await;
    let aws = client(&url).await;
    let snapshot = aws.describe_snapshot("dst").await.unwrap().expect("listed");
    assert_eq!(snapshot.status, SnapshotStatus::InProgress("weird-new-state".into()));
    assert_eq!(snapshot.node_group_ids, ["0001"], "a negative node group count falls back to one node group");
    let status = SnapshotExportStatus {
        phase: Some(Phase::Copying),
        copy_requested_at: Some(Time(Timestamp::now())),
        target_snapshot_arn: snapshot.arn.clone(),
        attempts: 1,
        ..Default::default()
    };
    let observed = Observation::InRegion { target: Some(snapshot), owner_tag: None };
    match decide(&spec(None), &status, "uid", &observed, Timestamp::now()) {
        Decision::InProgress { message, target_status, .. } => {
            assert!(message.contains("weird-new-state"), "{message}");
            assert_eq!(target_status.as_deref(), Some("weird-new-state"));
        }
        other => panic!("{other:?}"),
    }
    // An export whose source is in an unknown state waits for it, saying so.
    let (url, _) = stub(|_| (200, XML, describe_xml(&snapshot_xml("src", "weird-new-state", "1"), None))).await;
    let source = client(&url).await.describe_snapshot("src").await.unwrap();
    let observed = Observation::Export { source, objects: vec![], claimed_by: None };
    match decide(&spec(Some("bkt")), &SnapshotExportStatus { attempts: 1, ..Default::default() }, "uid", &observed, Timestamp::now()) {
        Decision::WaitForSource { message, .. } => assert!(message.contains("weird-new-state"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_message_that_matches_no_known_pattern_stalls_quoting_aws() {
    let cases: Vec<(&str, &str, Option<&str>, &str)> = vec![
        ("InvalidParameterValue", "Something entirely new went wrong with bkt.", Some("bkt"), "InvalidParameterValue"),
        ("BrandNewFault", "A fault nobody documented yet.", Some("bkt"), "CopySnapshotFailed"),
        ("BrandNewFault", "A fault nobody documented yet.", None, "CopySnapshotFailed"),
        ("", "", None, "CopySnapshotFailed"),
    ];
    for (code, message, bucket, reason) in cases {
        let body = error_xml(code, message);
        let (url, _) = stub(move |_| (400, XML, body.clone())).await;
        let err = client(&url).await.copy_snapshot(&copy(bucket)).await.expect_err(code);
        assert!(!err.is_transient(), "{code}: a 400 refusal is not retried fast: {err:?}");
        match after_copy(&spec(bucket), &Err(err)) {
            Decision::Stalled { reason: got, message: text, clear_intent } => {
                assert_eq!(got, reason, "{code}");
                assert!(text.contains(message), "{code}: the stall quotes AWS: {text}");
                assert!(!text.trim().is_empty());
                assert!(clear_intent, "{code}: AWS refused, nothing of ours is in flight");
            }
            other => panic!("{code}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn node_groups_are_read_by_id_and_bounded() {
    let ids = "<NodeSnapshots><NodeSnapshot><NodeGroupId>0003</NodeGroupId></NodeSnapshot><NodeSnapshot><NodeGroupId>0001</NodeGroupId></NodeSnapshot></NodeSnapshots>";
    let with_ids = snapshot_xml("src", "available", "2").replace("</Snapshot>", &format!("{ids}</Snapshot>"));
    let (url, _) = stub(move |_| (200, XML, describe_xml(&with_ids, None))).await;
    let snapshot = client(&url).await.describe_snapshot("src").await.unwrap().unwrap();
    assert_eq!(snapshot.node_group_ids, ["0001", "0003"], "the ids, not a count");
    // An absurd NumNodeGroups is cut to the most ElastiCache allows before anything is sized by it.
    let (url, _) = stub(|_| (200, XML, describe_xml(&snapshot_xml("src", "available", "2147483647"), None))).await;
    let snapshot = client(&url).await.describe_snapshot("src").await.unwrap().unwrap();
    assert_eq!(snapshot.node_group_ids.len(), ecx::aws::MAX_NODE_GROUPS);
}

#[tokio::test]
async fn a_page_of_five_thousand_snapshots_is_read_whole() {
    let page: String = (0..5000)
        .map(|i| snapshot_xml(&format!("snap-{i:05}"), ["available", "creating", "exporting", "failed", "mystery"][i % 5], "2"))
        .collect();
    let first = describe_xml(&page, Some("next-page"));
    let second = describe_xml(&snapshot_xml("last", "available", "1"), None);
    let (url, count) = stub(move |req| (200, XML, if req.contains("Marker=next-page") { second.clone() } else { first.clone() })).await;
    let aws = client(&url).await;
    let started = std::time::Instant::now();
    let one = aws.describe_snapshots_page(None).await.unwrap();
    assert_eq!(one.snapshots.len(), 5000);
    assert_eq!(one.next_marker.as_deref(), Some("next-page"));
    assert_eq!(one.snapshots[4].status, SnapshotStatus::InProgress("mystery".into()));
    assert_eq!(one.snapshots[3].status, SnapshotStatus::Failed);
    assert!(one.snapshots.iter().all(|s| s.node_group_ids == ["0001", "0002"]));
    let two = aws.describe_snapshots_page(one.next_marker).await.unwrap();
    assert_eq!(two.snapshots.len(), 1);
    assert_eq!(two.next_marker, None);
    assert_eq!(count.load(Ordering::SeqCst), 2);
    eprintln!("[reliability] hostile-aws: a 5,000-snapshot page ({} bytes) parsed in {:?}", 5000 * 200, started.elapsed());
}

#[tokio::test]
async fn s3_keys_that_only_look_like_exports_are_ignored_and_5xx_is_transient() {
    // Keys that look almost like export objects are not ours (node group ids are 1 to 4 digits);
    // a listing cut short is transient.
    let listing = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>bkt</Name><Prefix>dst-</Prefix><KeyCount>5</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>\
        <Contents><Key>dst-0001.rdb</Key></Contents><Contents><Key>dst-1.rdb</Key></Contents><Contents><Key>dst-00001.rdb</Key></Contents>\
        <Contents><Key>dst-abcd.rdb</Key></Contents><Contents><Key>dst-0002.rdb.tmp</Key></Contents></ListBucketResult>";
    let (url, _) = stub(move |_| (200, "application/xml", listing.to_string())).await;
    let keys: Vec<String> = client(&url).await.export_objects("bkt", "dst").await.unwrap().into_iter().map(|o| o.key).collect();
    assert_eq!(keys, ["dst-0001.rdb", "dst-1.rdb"]);
    let (url, _) = stub(|_| (500, "application/xml", "<Error><Code>InternalError</Code><Message>oops</Message></Error>".into())).await;
    assert_retry(&client(&url).await.export_objects("bkt", "dst").await.expect_err("S3 500"), "S3 500");
}

#[tokio::test]
async fn an_s3_listing_that_repeats_its_continuation_token_does_not_loop_forever() {
    let looping = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>bkt</Name><IsTruncated>true</IsTruncated><NextContinuationToken>same</NextContinuationToken><Contents><Key>dst-0001.rdb</Key></Contents></ListBucketResult>";
    let (url, count) = stub(move |_| (200, "application/xml", looping.to_string())).await;
    let aws = client(&url).await;
    let outcome = tokio::time::timeout(Duration::from_secs(10), aws.export_objects("bkt", "dst")).await;
    let requests = count.load(Ordering::SeqCst);
    eprintln!("[reliability] hostile-aws: a repeating S3 continuation token: {requests} requests, {outcome:?}");
    let Ok(result) = outcome else { panic!("export_objects kept following the same continuation token ({requests} requests in 10 s)") };
    assert_retry(&result.expect_err("a repeated token is an error"), "repeated continuation token");
    assert_eq!(requests, 2);
}

fn arb_snapshot() -> impl Strategy<Value = Option<SnapshotInfo>> {
    proptest::option::of(
        (
            prop_oneof![Just("available".to_string()), Just("failed".to_string()), Just("creating".to_string()), ".{0,12}"],
            proptest::option::of(prop_oneof![Just("arn:dst".to_string()), ".{0,8}"]),
            0u32..600,
        )
            .prop_map(|(status, arn, node_groups)| SnapshotInfo {
                name: "dst".into(),
                arn,
                status: SnapshotStatus::parse(&status),
                node_group_ids: (1..=node_groups).map(|n| format!("{n:04}")).collect(),
            }),
    )
}

fn arb_status() -> impl Strategy<Value = SnapshotExportStatus> {
    (
        proptest::option::of(prop_oneof![
            Just(Phase::Pending),
            Just(Phase::Copying),
            Just(Phase::Exporting),
            Just(Phase::Completed),
            Just(Phase::Failed)
        ]),
        proptest::option::of(0i64..2_000_000),
        proptest::option::of(prop_oneof![Just("arn:dst".to_string()), ".{0,8}"]),
        0u32..5,
        proptest::option::of(0i64..2_000_000),
    )
        .prop_map(|(phase, intent_at, arn, attempts, accepted_at)| SnapshotExportStatus {
            phase,
            copy_requested_at: intent_at.map(|s| Time(Timestamp::from_second(s).unwrap())),
            copy_accepted_at: accepted_at.map(|s| Time(Timestamp::from_second(s).unwrap())),
            target_snapshot_arn: arn,
            attempts,
            ..Default::default()
        })
}

fn arb_observation() -> impl Strategy<Value = Observation> {
    prop_oneof![
        Just(Observation::NeverRequested),
        arb_snapshot().prop_map(|source| Observation::AwaitedSource { source }),
        (arb_snapshot(), proptest::option::of(proptest::option::of(prop_oneof![Just("uid".to_string()), ".{0,6}"])))
            .prop_map(|(target, owner_tag)| Observation::InRegion { target, owner_tag }),
        (
            arb_snapshot(),
            proptest::collection::vec(prop_oneof![Just("dst-0001.rdb".to_string()), Just("dst-0002.rdb".to_string()), ".{0,14}"], 0..4)
        )
            .prop_map(|(source, objects)| Observation::Export {
                source,
                objects: objects
                    .into_iter()
                    .map(|key| ecx::aws::ExportObject {
                        key,
                        last_modified: Some(Timestamp::from_second(1_000_000).unwrap()),
                        ..Default::default()
                    })
                    .collect(),
                claimed_by: None,
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// No panic on any status × observation; an accepted request (`copyAcceptedAt`, whatever the
    /// phase says: a stall sets `Failed`) is never requested again, whatever AWS shows; an export never claims objects older than its intent.
    #[test]
    fn decide_never_panics_and_never_repeats_an_accepted_request(
        export in any::<bool>(),
        status in arb_status(),
        observed in arb_observation(),
        now in 0i64..4_000_000,
    ) {
        let spec = spec(export.then_some("bkt"));
        let decision = decide(&spec, &status, "uid", &observed, Timestamp::from_second(now).unwrap());
        // Both are observed only for an object that never made a request.
        let first_request = matches!(observed, Observation::NeverRequested | Observation::AwaitedSource { .. });
        if status.copy_accepted_at.is_some() && !first_request {
            prop_assert_ne!(&decision, &Decision::RequestCopy);
        }
        // An export claims only objects written after its first intent (less the skew margin);
        // every generated object was written at 1,000,000.
        if let (Decision::Completed { exported_objects, .. }, true) = (&decision, export) {
            let written = Timestamp::from_second(1_000_000).unwrap();
            let intent = status.copy_requested_at.as_ref().map(|t| t.0);
            prop_assert!(
                exported_objects.is_empty() || intent.is_some_and(|at| written >= at - ecx::export::decide::ADOPTION_CLOCK_SKEW),
                "claimed objects written before the intent: {:?} {:?}", status, decision
            );
        }
    }
}

/// The preflight's key listing (`SdkBuckets::export_keys`): one listing under `<target>-`, the
/// export keys of every page kept (not other objects under that prefix), and never a repeated
/// continuation token followed forever.
#[tokio::test]
async fn the_preflight_key_listing_follows_pages_and_never_a_repeated_token() {
    use ecx::aws::BucketInspector;
    let buckets = |url: String| async move {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(url)
            .credentials_provider(aws_sdk_elasticache::config::Credentials::new("AKIDSTUB", "stub-secret", None, None, "stub"))
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        ecx::aws::SdkBuckets::new(&config, true)
    };
    let page = |keys: &[&str], next: Option<&str>| {
        let contents: String = keys.iter().map(|k| format!("<Contents><Key>{k}</Key></Contents>")).collect();
        let more = next.map(|t| format!("<IsTruncated>true</IsTruncated><NextContinuationToken>{t}</NextContinuationToken>"));
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>bkt</Name>{}{contents}</ListBucketResult>", more.unwrap_or("<IsTruncated>false</IsTruncated>".into()))
    };
    let (first, second) =
        (page(&["dst-0001.rdb.old", "dst-0002.rdb"], Some("p2")), page(&["dst-0003.rdb", "dst-dir/0004.rdb", "dst-shard-a.rdb"], None));
    let (url, count) = stub(move |request| {
        assert!(request.contains("prefix=dst-"), "listed under the target's prefix: {request}");
        (200, "application/xml", if request.contains("continuation-token=p2") { second.clone() } else { first.clone() })
    })
    .await;
    assert_eq!(buckets(url).await.export_keys("bkt", "dst").await.unwrap(), vec!["dst-0002.rdb".to_string(), "dst-0003.rdb".to_string()]);
    assert_eq!(count.load(Ordering::SeqCst), 2);
    let looping = page(&["dst-0001.rdb.old"], Some("same"));
    let (url, count) = stub(move |_| (200, "application/xml", looping.clone())).await;
    let outcome = tokio::time::timeout(Duration::from_secs(10), async { buckets(url).await.export_keys("bkt", "dst").await }).await;
    let Ok(result) = outcome else { panic!("export_keys kept following the same continuation token") };
    assert_retry(&result.expect_err("a repeated token is an error"), "repeated continuation token");
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

/// Review finding D: the schedule's look at a cache's automatic backups follows every page; a
/// Marker handed back unchanged is a transient error (retried), not the end of the listing
/// (which would miss the newest backup on a later page).
#[tokio::test]
async fn a_schedule_look_whose_marker_does_not_advance_is_transient_not_complete() {
    use ecx::schedule::aws::{CacheRef, SharedLooks};
    let look = |url: String| async move {
        let aws = client(&url).await;
        SharedLooks::default().automatic_snapshots(&aws, &CacheRef::ReplicationGroup("rg".into()), jiff::Timestamp::UNIX_EPOCH).await
    };
    // Three pages, the last without a Marker: all of them.
    let (url, count) = stub(|req| {
        let (snap, next) = if req.contains("Marker=p3") {
            ("c", None)
        } else if req.contains("Marker=p2") {
            ("b", Some("p3"))
        } else {
            ("a", Some("p2"))
        };
        (200, XML, describe_xml(&snapshot_xml(snap, "available", "1"), next))
    })
    .await;
    let names: Vec<String> = look(url).await.unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(count.load(Ordering::SeqCst), 3);
    // The second page hands back its own Marker: the newest backup may be on a page never seen.
    let (url, count) = stub(|req| {
        let name = if req.contains("Marker=") { "b" } else { "a" };
        (200, XML, describe_xml(&snapshot_xml(name, "available", "1"), Some("p2")))
    })
    .await;
    let err = look(url).await.unwrap_err();
    assert!(matches!(&err, AwsError::Transient { code, .. } if code == "RepeatedMarker"), "{err:?}");
    assert_eq!(count.load(Ordering::SeqCst), 2);
}
