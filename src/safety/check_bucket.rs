//! The `check-bucket` command: the preflight from a shell, each check printed as PASS / FAIL /
//! WARN / SKIP with its exact fix.

use super::evaluate::{evaluate, PUBLIC_CHECK};
use super::gate::{inspection_denied_message, NOT_EVALUATED_REASON, PUBLIC_REASON};
use super::inspect::inspect;
use super::partition::{canonical_id, partition, service_principal};
use super::report::{Outcome, Report};
use crate::aws::{export_object_key, AwsError, CopyFault};
use std::process::ExitCode;

/// What `check-bucket` checks.
#[derive(Clone, Debug, Default)]
pub struct CheckBucket {
    pub bucket: String,
    /// Also check that `<name>-0001.rdb` is free.
    pub target_snapshot_name: Option<String>,
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
    let key = args.target_snapshot_name.as_deref().map(|t| export_object_key(t, "0001"));
    println!("Checking s3://{} for ElastiCache exports from {region}", args.bucket);
    println!(
        "  partition {}, ElastiCache canonical ID {}, service principal {}",
        partition(&region),
        canonical_id(&region),
        service_principal(&region)
    );
    let facts = match inspect(&inspector, &args.bucket, &region, key.as_deref()).await {
        Ok(facts) => facts,
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
    if report.export_would_succeed(args.refuse_public_buckets) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
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
