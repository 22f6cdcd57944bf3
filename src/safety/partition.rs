//! The partition facts an export rests on: ElastiCache's canonical ID and service principal in
//! each partition, and the bucket policy statement that grants ElastiCache what an export needs.

use serde_json::{json, Value};

/// ElastiCache's canonical user ID in the partition of `region`.
pub fn canonical_id(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "b14d6a125bdf69854ed8ef2e71d8a20b7c490f252229b806e514966e490b8d83"
    } else if region.starts_with("us-gov-") {
        "40fa568277ad703bd160f66ae4f83fc9dfdfd06c2f1b5060ca22442ac3ef8be6"
    } else {
        "540804c33a284a299d2547575ce1010f2312ef3da9b3a053c8bc45bf233e4353"
    }
}

/// The ARN partition of `region`.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The service principal ElastiCache exports with in `region`.
pub fn service_principal(region: &str) -> String {
    format!("{region}.elasticache-snapshot.amazonaws.com")
}

/// The bucket policy statement that grants ElastiCache what an export needs.
pub fn policy_statement(bucket: &str, region: &str) -> Value {
    let arn = format!("arn:{}:s3:::{bucket}", partition(region));
    json!({
        "Sid": "ElastiCacheSnapshotExport",
        "Effect": "Allow",
        "Principal": {"Service": service_principal(region)},
        "Action": ["s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:GetBucketAcl", "s3:ListMultipartUploadParts", "s3:ListBucketMultipartUploads", "s3:GetBucketLocation"],
        "Resource": [arn.clone(), format!("{arn}/*")]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safety::testing::EC;

    #[test]
    fn canonical_ids_per_partition() {
        assert_eq!(canonical_id("us-east-1"), EC);
        assert_eq!(canonical_id("eu-central-2"), EC);
        assert_eq!(canonical_id("us-gov-west-1"), "40fa568277ad703bd160f66ae4f83fc9dfdfd06c2f1b5060ca22442ac3ef8be6");
        assert_eq!(canonical_id("cn-north-1"), "b14d6a125bdf69854ed8ef2e71d8a20b7c490f252229b806e514966e490b8d83");
        assert_eq!(partition("cn-northwest-1"), "aws-cn");
        assert_eq!(service_principal("ap-east-1"), "ap-east-1.elasticache-snapshot.amazonaws.com");
    }
}
