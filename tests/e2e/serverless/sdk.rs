//! The AWS layer's serverless calls against the emulator over the wire: the Rust SDK's requests
//! as `SdkSnapshots` makes them (copy with the ownership tag, export and its bucket errors,
//! paginated describe, delete), checked in the emulator's call log.

use super::seed;
use crate::harness::*;
use ecx::aws::{SdkSnapshots, ServerlessCopyRequest, ServerlessSnapshotApi, SnapshotApi, SnapshotStatus};
use std::time::Duration;

async fn client(emulator: &Emulator) -> SdkSnapshots {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(&emulator.endpoint)
        .credentials_provider(aws_sdk_elasticache::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "e2e"))
        .load()
        .await;
    SdkSnapshots::new(&config, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serverless_copy_is_tagged_described_paged_and_deleted_through_the_sdk() {
    let emulator = Emulator::start(0.5, 0.5);
    let aws = client(&emulator).await;
    seed(&emulator, "sls-nightly", 1);
    let request = ServerlessCopyRequest {
        source: "sls-nightly".into(),
        target: "SLS-Copy".into(),
        kms_key_id: None,
        tags: vec![(ecx::api::OWNER_TAG_KEY.into(), Some("uid-1".into())), ("team".into(), None)],
    };
    let copy = aws.copy_serverless_snapshot(&request).await.unwrap();
    assert_eq!(copy.name, "sls-copy", "stored in lowercase");
    assert_eq!(copy.status, SnapshotStatus::InProgress("copying".into()));
    // The ownership tag is read back from the copy's ARN, as adoption after a crash does.
    assert_eq!(aws.owner_tag(copy.arn.as_deref().unwrap()).await.unwrap().as_deref(), Some("uid-1"));
    let err = aws.copy_serverless_snapshot(&request).await.unwrap_err();
    assert_eq!(err.fault().map(|f| f.reason()), Some("TargetAlreadyExists"), "{err}");
    let calls = emulator.calls("CopyServerlessCacheSnapshot");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["params"]["TargetServerlessCacheSnapshotName"], "SLS-Copy");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let seen = aws.describe_serverless_snapshot("SLS-Copy").await.unwrap().expect("the copy exists");
    assert_eq!(seen.status, SnapshotStatus::Available);
    assert_eq!(aws.describe_serverless_snapshot("never-made").await.unwrap(), None);

    // 120 snapshots: the sweep's paging reads them all in pages of 50, each token once.
    for i in 0..118 {
        seed(&emulator, &format!("bulk-{i:03}"), 1);
    }
    let (mut names, mut token, mut pages) = (Vec::new(), None, 0);
    loop {
        let page = aws.describe_serverless_snapshots_page(token).await.unwrap();
        pages += 1;
        names.extend(page.snapshots.into_iter().map(|s| s.name));
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!((names.len(), pages), (120, 3));

    aws.delete_serverless_snapshot("sls-copy").await.unwrap();
    aws.delete_serverless_snapshot("sls-copy").await.unwrap();
    assert_eq!(aws.describe_serverless_snapshot("sls-copy").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serverless_export_writes_under_the_snapshot_name_and_reports_the_documented_s3_errors() {
    let emulator = Emulator::start(0.5, 0.5);
    let aws = client(&emulator).await;
    let s3 = emulator.s3().await;
    seed(&emulator, "sls-export", 2);
    let err = aws.export_serverless_snapshot("sls-export", "no-such-bucket").await.unwrap_err();
    assert_eq!(err.fault().map(|f| f.reason()), Some("S3BucketNotFound"), "{err}");
    create_bucket(&s3, "sls-bucket", REGION, Access::None).await;
    let err = aws.export_serverless_snapshot("sls-export", "sls-bucket").await.unwrap_err();
    assert_eq!(err.fault().map(|f| f.reason()), Some("S3ReadPermissionMissing"), "{err}");
    grant(&s3, "sls-bucket", REGION, Access::FULL_ACL).await;
    let exporting = aws.export_serverless_snapshot("sls-export", "sls-bucket").await.unwrap();
    assert_eq!(exporting.status, SnapshotStatus::InProgress("exporting".into()));
    let busy = aws.export_serverless_snapshot("sls-export", "sls-bucket").await.unwrap_err();
    assert_eq!(busy.fault().map(|f| f.reason()), Some("InvalidSnapshotState"), "{busy}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(bucket_keys(&s3, "sls-bucket").await, vec!["sls-export-0001.rdb", "sls-export-0002.rdb"]);
    let again = aws.export_serverless_snapshot("sls-export", "sls-bucket").await.unwrap_err();
    assert_eq!(again.fault().map(|f| f.reason()), Some("S3ObjectAlreadyExists"), "{again}");
    assert_eq!(emulator.calls("ExportServerlessCacheSnapshot").len(), 5);
}
