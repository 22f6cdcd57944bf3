//! The `check-bucket` command: the preflight from a shell, each check printed as PASS / FAIL /
//! WARN / SKIP with its exact fix.

use super::evaluate::{evaluate, PUBLIC_CHECK};
use super::gate::{inspection_denied_message, NOT_EVALUATED_REASON, PUBLIC_REASON};
use super::inspect::{inspect, record_keys};
use super::partition::{canonical_id, partition, service_principal};
use super::report::{Outcome, Report};
use crate::aws::{export_object_key, AwsError, BucketInspector, CopyFault, SourceInspector};
use std::process::ExitCode;

/// What `check-bucket` checks.
#[derive(Clone, Debug, Default)]
pub struct CheckBucket {
    pub bucket: String,
    /// Also check that the keys an export of this name writes are free: `<name>-0001.rdb`, or
    /// with `source_snapshot` one key per node group of that snapshot.
    pub target_snapshot_name: Option<String>,
    /// The snapshot to be exported, whose node groups name the keys (`<target>-<NodeGroupId>.rdb`).
    pub source_snapshot: Option<String>,
    /// Count a publicly accessible bucket as a failure.
    pub refuse_public_buckets: bool,
    pub aws: crate::aws::AwsSettings,
}

/// `check-bucket`: run the preflight from a shell and print each check. Exit 0 when an export
/// would succeed, 1 when a check fails, 3 when the bucket could not be inspected, 2 for usage.
pub async fn check_bucket(args: CheckBucket) -> ExitCode {
    let config = crate::aws::aws_sdk_config(args.aws.region.clone()).await;
    let Some(region) = config.region().map(|r| r.to_string()) else {
        eprintln!("elasticache-export-operator check-bucket: no AWS region: pass --region or set AWS_REGION");
        return ExitCode::from(2);
    };
    let inspector = crate::aws::SdkBuckets::new(&config, args.aws.s3_path_style);
    println!("Checking s3://{} for ElastiCache exports from {region}", args.bucket);
    println!(
        "  partition {}, ElastiCache canonical ID {}, service principal {}",
        partition(&region),
        canonical_id(&region),
        service_principal(&region)
    );
    let facts = async {
        let mut facts = inspect(&inspector, &args.bucket, &region).await?;
        if let (Some(target), Some(_)) = (&args.target_snapshot_name, &facts.access) {
            let ids = match &args.source_snapshot {
                Some(source) => match crate::aws::SdkSources::new(&config).node_group_ids(source).await {
                    Ok(Some(ids)) => Some(ids),
                    Ok(None) => {
                        return Ok(Err(format!(
                            "DescribeSnapshots found no snapshot named {source} in {region} (a serverless snapshot is not supported here)"
                        )))
                    }
                    Err(err) => return Ok(Err(format!("{err}"))),
                },
                None => None,
            };
            let listed = inspector.export_keys(&args.bucket, target).await?;
            record_keys(&mut facts, &keys_to_check(target, ids.as_deref()), &listed);
        }
        Ok::<_, AwsError>(Ok(facts))
    };
    let facts = match facts.await {
        Ok(Ok(facts)) => facts,
        Ok(Err(why)) => {
            let source = args.source_snapshot.as_deref().unwrap_or_default();
            println!("FAIL  source snapshot {source} exists: {why}");
            println!("      fix: name an existing node-based snapshot (aws elasticache describe-snapshots --region {region}), readable with elasticache:DescribeSnapshots");
            println!("RESULT: unknown: the keys of a snapshot that cannot be read cannot be checked");
            return ExitCode::FAILURE;
        }
        Err(err) => {
            match &err {
                AwsError::Fault { operation, fault: CopyFault::AccessDenied { .. } } => {
                    println!("FAIL  bucket can be inspected\n      {}", inspection_denied_message(&args.bucket, operation))
                }
                other => println!("FAIL  bucket can be inspected\n      {other}"),
            }
            println!("RESULT: unknown: the bucket could not be inspected");
            return ExitCode::from(3);
        }
    };
    let report = evaluate(&facts);
    print!("{}", render(&report, args.refuse_public_buckets));
    if let (Some(target), None) = (&args.target_snapshot_name, &args.source_snapshot) {
        println!(
            "NOTE: only {} was checked; pass --source-snapshot NAME to check every key an export of it writes (one per node group)",
            export_object_key(target, "0001")
        );
    }
    if report.export_would_succeed(args.refuse_public_buckets) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The keys an export named `target` writes: one per node group id of its source, or `-0001`
/// when the source is not given (or names none).
fn keys_to_check(target: &str, node_group_ids: Option<&[String]>) -> Vec<String> {
    match node_group_ids {
        Some(ids) if !ids.is_empty() => ids.iter().map(|id| export_object_key(target, id)).collect(),
        _ => vec![export_object_key(target, "0001")],
    }
}

/// The check-bucket output for a report.
pub fn render(report: &Report, refuse_public: bool) -> String {
    let mut out = String::new();
    for check in &report.checks {
        // Only the public-access warning becomes a failure with --refuse-public-buckets.
        let public = check.name == PUBLIC_CHECK;
        let outcome = if check.outcome == Outcome::Warn && refuse_public && public { Outcome::Fail } else { check.outcome };
        out.push_str(&format!("{}  {}: {}\n", outcome.label(), check.name, check.detail));
        if outcome != Outcome::Pass {
            if let Some(fix) = &check.fix {
                for (i, line) in fix.lines().enumerate() {
                    out.push_str(&format!("      {}{line}\n", if i == 0 { "fix: " } else { "" }));
                }
            }
        }
    }
    match &report.problem {
        Some(problem) => {
            out.push_str(&format!("RESULT: an export to s3://{} would fail: {} ({})\n", report.bucket, problem, problem.reason()))
        }
        None if refuse_public && !report.public.is_empty() => {
            out.push_str(&format!("RESULT: an export to s3://{} would be refused: {PUBLIC_REASON}\n", report.bucket))
        }
        None if !report.not_evaluated.is_empty() => out.push_str(&format!(
            "RESULT: an export to s3://{} may succeed: the bucket policy has conditions the preflight cannot evaluate, so CopySnapshot decides ({NOT_EVALUATED_REASON})\n",
            report.bucket
        )),
        None => out.push_str(&format!("RESULT: an export to s3://{} would succeed\n", report.bucket)),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::PublicAccessBlock;
    use crate::safety::facts::{AccessFacts, BucketFacts};
    use crate::safety::testing::*;

    #[test]
    fn failure_message_is_the_documented_error_and_solution_then_the_fix() {
        let mut a = good();
        a.acl = acl(&["READ", "WRITE"]);
        let report = evaluate(&facts(a));
        let message = report.failure_message().unwrap();
        assert!(
            message.starts_with("ElastiCache has not been granted READ_ACP permissions bkt on the S3 Bucket. Add View Permissions on the bucket for ElastiCache"),
            "{message}"
        );
        assert!(message.contains(EC) && message.contains("us-east-1.elasticache-snapshot.amazonaws.com"), "{message}");
        let out = render(&report, false);
        assert!(out.contains("FAIL  ElastiCache has READ_ACP (View Permissions)"), "{out}");
        assert!(out.contains(&format!("--grant-read-acp id={EC}")), "{out}");
        assert!(out.contains("--grant-full-control id=owner"), "keeps the owner's grant: {out}");
        assert!(out.contains("\"Service\":\"us-east-1.elasticache-snapshot.amazonaws.com\""), "{out}");
        assert!(out.contains("RESULT: an export to s3://bkt would fail"), "{out}");
        assert!(out.contains("PASS  ElastiCache has READ (List and Read)"), "{out}");

        let missing = evaluate(&BucketFacts { bucket: B.into(), region: "eu-west-1".into(), location: None, access: None });
        let out = render(&missing, false);
        assert!(out.contains("FAIL  bucket exists: The S3 bucket bkt does not exist."), "{out}");
        assert!(out.contains("--create-bucket-configuration LocationConstraint=eu-west-1"), "{out}");
        assert!(out.contains("SKIP  ElastiCache has WRITE"), "{out}");
        assert!(missing
            .failure_message()
            .unwrap()
            .starts_with("The S3 bucket bkt does not exist. Create an Amazon S3 bucket in the same region"));
    }

    #[test]
    fn the_keys_checked_are_one_per_node_group_of_the_source() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for (given, expected) in [
            (None, vec!["t-0001.rdb"]),
            (Some(ids(&[])), vec!["t-0001.rdb"]),
            (Some(ids(&["0001", "0003"])), vec!["t-0001.rdb", "t-0003.rdb"]),
            (Some(ids(&["7"])), vec!["t-7.rdb"]),
        ] {
            assert_eq!(keys_to_check("t", given.as_deref()), expected, "{given:?}");
        }
    }

    #[test]
    fn gov_cloud_fix_names_its_canonical_id_and_partition() {
        let f = BucketFacts {
            bucket: B.into(),
            region: "us-gov-west-1".into(),
            location: Some("us-gov-west-1".into()),
            access: Some(AccessFacts { public_access_block: Some(PublicAccessBlock::ALL_ON), ..Default::default() }),
        };
        let out = render(&evaluate(&f), false);
        assert!(out.contains("id=40fa568277ad703bd160f66ae4f83fc9dfdfd06c2f1b5060ca22442ac3ef8be6"), "{out}");
        assert!(out.contains("arn:aws-us-gov:s3:::bkt"), "{out}");
    }
}
