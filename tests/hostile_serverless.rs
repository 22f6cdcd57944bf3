//! Hostile AWS responses for the serverless snapshot calls (issue 15), as tests/hostile_aws.rs
//! does for node-based ones: the SDK implementation against a raw HTTP stub answering unknown
//! statuses, HTML error pages, empty and truncated bodies, serverless faults and a NextToken that
//! never advances. Each must become a classified error or a usable answer, never a panic.

use ecx::aws::{AwsError, ServerlessCopyRequest, ServerlessSnapshotApi, SnapshotStatus};
use std::sync::atomic::Ordering;
use std::time::Duration;

#[path = "common/aws_stub.rs"]
mod aws_stub;
use aws_stub::*;

fn snap(name: &str, status: &str) -> String {
    format!("<ServerlessCacheSnapshot><ServerlessCacheSnapshotName>{name}</ServerlessCacheSnapshotName><ARN>arn:aws:elasticache:us-east-1:123456789012:serverlesscachesnapshot:{name}</ARN><Status>{status}</Status><SnapshotType>manual</SnapshotType></ServerlessCacheSnapshot>")
}

fn response(action: &str, inner: &str) -> String {
    format!("<{action}Response xmlns=\"{NS}\"><{action}Result>{inner}</{action}Result><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></{action}Response>")
}

fn describe(snapshots: &str, token: Option<&str>) -> String {
    let token = token.map(|t| format!("<NextToken>{t}</NextToken>")).unwrap_or_default();
    response("DescribeServerlessCacheSnapshots", &format!("<ServerlessCacheSnapshots>{snapshots}</ServerlessCacheSnapshots>{token}"))
}

fn error(code: &str, message: &str) -> String {
    format!("<ErrorResponse xmlns=\"{NS}\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>r</RequestId></ErrorResponse>")
}

fn copy() -> ServerlessCopyRequest {
    ServerlessCopyRequest { source: "src".into(), target: "dst".into(), kms_key_id: None, tags: vec![("team".into(), None)] }
}

#[tokio::test]
async fn an_unknown_status_is_work_in_progress_and_names_match_case_insensitively() {
    let (url, _) = stub(|_| (200, XML, describe(&snap("nightly", "rehydrating"), None))).await;
    let found = client(&url).await.describe_serverless_snapshot("Nightly").await.unwrap().expect("found");
    assert_eq!(found.status, SnapshotStatus::InProgress("rehydrating".into()));
    assert_eq!(found.snapshot_type.as_deref(), Some("manual"));
}

#[tokio::test]
async fn a_missing_snapshot_is_none_and_a_delete_of_one_is_done() {
    let (url, _) = stub(|_| (404, XML, error("ServerlessCacheSnapshotNotFoundFault", "not found"))).await;
    let c = client(&url).await;
    assert_eq!(c.describe_serverless_snapshot("gone").await.unwrap(), None);
    c.delete_serverless_snapshot("gone").await.unwrap();
}

#[tokio::test]
async fn serverless_faults_and_s3_errors_are_classified() {
    let (url, _) = stub(|req| {
        if req.contains("Action=CopyServerlessCacheSnapshot") {
            (400, XML, error("ServerlessCacheSnapshotAlreadyExistsFault", "exists"))
        } else {
            (400, XML, error("InvalidParameterValue", "The S3 bucket b1 is not owned by the authenticated user."))
        }
    })
    .await;
    let c = client(&url).await;
    let err = c.copy_serverless_snapshot(&copy()).await.unwrap_err();
    assert_eq!(err.fault().map(|f| f.reason()), Some("TargetAlreadyExists"), "{err}");
    let err = c.export_serverless_snapshot("src", "b1").await.unwrap_err();
    assert_eq!(err.fault().map(|f| f.reason()), Some("S3BucketNotOwned"), "{err}");
}

#[tokio::test]
async fn html_pages_empty_and_truncated_answers_are_transient_never_faults() {
    let answers: Vec<Answer> = vec![
        (502, "text/html", "<html><body>Bad Gateway</body></html>".into()),
        (200, XML, String::new()),
        (200, XML, response("CopyServerlessCacheSnapshot", "")),
        (200, XML, "<CopyServerlessCacheSnapshotResponse><CopyServ".into()),
        (400, XML, error("Throttling", "Rate exceeded")),
    ];
    for answer in answers {
        let shown = answer.2.clone();
        let (url, _) = stub(move |_| answer.clone()).await;
        let err = client(&url).await.copy_serverless_snapshot(&copy()).await.unwrap_err();
        assert!(err.is_transient(), "{shown}: {err:?}");
    }
}

#[tokio::test]
async fn a_next_token_that_does_not_advance_is_an_error_not_a_loop() {
    let (url, count) = stub(|_| (200, XML, describe(&snap("a", "available"), Some("same")))).await;
    let c = client(&url).await;
    let first = c.describe_serverless_snapshots_page(None).await.unwrap();
    assert_eq!(first.next_token.as_deref(), Some("same"));
    let err = c.describe_serverless_snapshots_page(first.next_token).await.unwrap_err();
    assert!(matches!(&err, AwsError::Transient { code, .. } if code == "RepeatedNextToken"), "{err:?}");
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn pages_ask_for_fifty_records_and_a_large_page_is_read_whole() {
    let (url, _) = stub(|req| {
        assert!(req.contains("MaxResults=50"), "{req}");
        (200, XML, describe(&(0..5000).map(|i| snap(&format!("s{i:05}"), "available")).collect::<String>(), None))
    })
    .await;
    let page = client(&url).await.describe_serverless_snapshots_page(None).await.unwrap();
    assert_eq!(page.snapshots.len(), 5000);
    assert_eq!(page.next_token, None);
}

#[tokio::test]
async fn copy_and_export_are_sent_once_even_where_the_sdk_retries() {
    // A 500 leaves the outcome unknown: a retry could repeat an accepted request, and its later
    // answer (say, throttling) would read as "not executed" and clear the intent.
    let (url, count) = stub(|_| (500, XML, error("InternalFailure", "unknown"))).await;
    let c =
        client_with(&url, aws_config::retry::RetryConfig::standard().with_max_attempts(3).with_initial_backoff(Duration::from_millis(1)))
            .await;
    assert!(matches!(c.copy_serverless_snapshot(&copy()).await, Err(AwsError::Transient { .. })));
    assert_eq!(count.swap(0, Ordering::SeqCst), 1, "CopyServerlessCacheSnapshot sent more than once");
    assert!(matches!(c.export_serverless_snapshot("src", "b1").await, Err(AwsError::Transient { .. })));
    assert_eq!(count.load(Ordering::SeqCst), 1, "ExportServerlessCacheSnapshot sent more than once");
}

/// Review finding D, serverless: the schedule's look at a serverless cache's automatic
/// snapshots treats a NextToken handed back unchanged as a transient error, not the end.
#[tokio::test]
async fn a_schedule_look_whose_next_token_does_not_advance_is_transient_not_complete() {
    use ecx::schedule::aws::{CacheRef, SharedLooks};
    let (url, count) = stub(|req| {
        let name = if req.contains("NextToken=") { "b" } else { "a" };
        (200, XML, describe(&snap(name, "available"), Some("same")))
    })
    .await;
    let aws = client(&url).await;
    let at = jiff::Timestamp::UNIX_EPOCH;
    let err = SharedLooks::default().automatic_snapshots(&aws, &CacheRef::Serverless("s".into()), at).await.unwrap_err();
    assert!(matches!(&err, AwsError::Transient { code, .. } if code == "RepeatedNextToken"), "{err:?}");
    assert_eq!(count.load(Ordering::SeqCst), 2);
}
