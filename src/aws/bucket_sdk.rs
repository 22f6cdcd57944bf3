//! The AWS SDK implementation of [`BucketInspector`], from the same standard AWS configuration as
//! `sdk.rs` (endpoint overrides included; `s3_path_style` for emulators).

use super::bucket::{AclGrant, BucketAcl, BucketInspector, Grantee, PublicAccessBlock};
use super::limit::Pacer;
use super::sdk::classify;
use super::AwsError;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use futures::future::BoxFuture;
use futures::FutureExt;

/// An S3 client for bucket inspection.
#[derive(Clone)]
pub struct SdkBuckets {
    s3: aws_sdk_s3::Client,
    pacer: Pacer,
}

impl SdkBuckets {
    pub fn new(config: &aws_config::SdkConfig, s3_path_style: bool) -> Self {
        let s3_config = aws_sdk_s3::config::Builder::from(config).force_path_style(s3_path_style).build();
        Self { s3: aws_sdk_s3::Client::from_conf(s3_config), pacer: Pacer::default() }
    }

    /// Pace and count every call through `pacer` (the one the reconciler's calls pass).
    pub fn with_pacer(mut self, pacer: Pacer) -> Self {
        self.pacer = pacer;
        self
    }
}

/// The error code of a service error, if any.
fn code<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> Option<&str> {
    match err {
        SdkError::ServiceError(ctx) => ctx.err().code(),
        _ => None,
    }
}

fn status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    match err {
        SdkError::ServiceError(ctx) => Some(ctx.raw().status().as_u16()),
        _ => None,
    }
}

/// The region of a LocationConstraint.
pub fn region_of_location(constraint: Option<&str>) -> String {
    match constraint.unwrap_or_default() {
        "" => "us-east-1".into(),
        "EU" => "eu-west-1".into(),
        other => other.into(),
    }
}

impl BucketInspector for SdkBuckets {
    fn bucket_region<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<Option<String>, AwsError>> {
        self.pacer
            .call("GetBucketLocation", async move {
                match self.s3.get_bucket_location().bucket(bucket).send().await {
                    Ok(out) => Ok(Some(region_of_location(out.location_constraint().map(|c| c.as_str())))),
                    Err(err) if code(&err) == Some("NoSuchBucket") || (code(&err).is_none() && status(&err) == Some(404)) => Ok(None),
                    Err(err) => Err(classify("GetBucketLocation", err)),
                }
            })
            .boxed()
    }

    fn bucket_acl<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<BucketAcl, AwsError>> {
        self.pacer
            .call("GetBucketAcl", async move {
                let out = self.s3.get_bucket_acl().bucket(bucket).send().await.map_err(|e| classify("GetBucketAcl", e))?;
                let grants = out
                    .grants()
                    .iter()
                    .filter_map(|g| {
                        let grantee = g.grantee()?;
                        let grantee = if let Some(id) = grantee.id() {
                            Grantee::CanonicalUser(id.to_string())
                        } else if let Some(uri) = grantee.uri() {
                            Grantee::Group(uri.to_string())
                        } else {
                            Grantee::Email(grantee.email_address()?.to_string())
                        };
                        Some(AclGrant { grantee, permission: g.permission()?.as_str().to_string() })
                    })
                    .collect();
                Ok(BucketAcl { owner_id: out.owner().and_then(|o| o.id()).map(str::to_string), grants })
            })
            .boxed()
    }

    fn object_ownership<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<Option<String>, AwsError>> {
        self.pacer
            .call("GetBucketOwnershipControls", async move {
                match self.s3.get_bucket_ownership_controls().bucket(bucket).send().await {
                    Ok(out) => {
                        Ok(out.ownership_controls().and_then(|c| c.rules().first()).map(|r| r.object_ownership().as_str().to_string()))
                    }
                    Err(err) if code(&err) == Some("OwnershipControlsNotFoundError") => Ok(None),
                    Err(err) => Err(classify("GetBucketOwnershipControls", err)),
                }
            })
            .boxed()
    }

    fn bucket_policy<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<Option<String>, AwsError>> {
        self.pacer
            .call("GetBucketPolicy", async move {
                match self.s3.get_bucket_policy().bucket(bucket).send().await {
                    Ok(out) => Ok(out.policy().map(str::to_string).filter(|p| !p.trim().is_empty())),
                    Err(err) if code(&err) == Some("NoSuchBucketPolicy") => Ok(None),
                    Err(err) => Err(classify("GetBucketPolicy", err)),
                }
            })
            .boxed()
    }

    fn policy_is_public<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<Option<bool>, AwsError>> {
        self.pacer
            .call("GetBucketPolicyStatus", async move {
                match self.s3.get_bucket_policy_status().bucket(bucket).send().await {
                    Ok(out) => Ok(out.policy_status().and_then(|s| s.is_public())),
                    Err(err) if matches!(code(&err), Some("NoSuchBucketPolicy" | "NotImplemented" | "MethodNotAllowed")) => Ok(None),
                    Err(err) => Err(classify("GetBucketPolicyStatus", err)),
                }
            })
            .boxed()
    }

    fn public_access_block<'a>(&'a self, bucket: &'a str) -> BoxFuture<'a, Result<Option<PublicAccessBlock>, AwsError>> {
        self.pacer
            .call("GetPublicAccessBlock", async move {
                match self.s3.get_public_access_block().bucket(bucket).send().await {
                    Ok(out) => Ok(out.public_access_block_configuration().map(|c| PublicAccessBlock {
                        block_public_acls: c.block_public_acls().unwrap_or(false),
                        ignore_public_acls: c.ignore_public_acls().unwrap_or(false),
                        block_public_policy: c.block_public_policy().unwrap_or(false),
                        restrict_public_buckets: c.restrict_public_buckets().unwrap_or(false),
                    })),
                    Err(err) if code(&err) == Some("NoSuchPublicAccessBlockConfiguration") => Ok(None),
                    Err(err) => Err(classify("GetPublicAccessBlock", err)),
                }
            })
            .boxed()
    }

    /// One ListObjectsV2 under `<base>-`, the keys of the form `<base>-<id>.rdb` kept; more pages
    /// only while S3 says the listing is truncated (many other objects under that prefix).
    fn export_keys<'a>(&'a self, bucket: &'a str, base: &'a str) -> BoxFuture<'a, Result<Vec<String>, AwsError>> {
        async move {
            let prefix = format!("{base}-");
            let mut found = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let out = self
                    .pacer
                    .call("ListObjectsV2", async {
                        self.s3
                            .list_objects_v2()
                            .bucket(bucket)
                            .prefix(&prefix)
                            .set_continuation_token(token.clone())
                            .send()
                            .await
                            .map_err(|e| classify("ListObjectsV2", e))
                    })
                    .await?;
                found.extend(
                    out.contents().iter().filter_map(|o| o.key()).filter(|k| crate::api::is_export_key(k, base)).map(str::to_string),
                );
                match out.next_continuation_token() {
                    // A listing that hands back the token it was given would be followed forever.
                    Some(next) if out.is_truncated() == Some(true) && token.as_deref() == Some(next) => {
                        return Err(AwsError::Transient {
                            operation: "ListObjectsV2",
                            code: "RepeatedContinuationToken".into(),
                            message: format!("S3 answered the listing of s3://{bucket}/{prefix} with the continuation token it was given"),
                        })
                    }
                    Some(next) if out.is_truncated() == Some(true) => token = Some(next.to_string()),
                    _ => return Ok(found),
                }
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::region_of_location;

    #[test]
    fn location_constraints() {
        assert_eq!(region_of_location(None), "us-east-1");
        assert_eq!(region_of_location(Some("")), "us-east-1");
        assert_eq!(region_of_location(Some("EU")), "eu-west-1");
        assert_eq!(region_of_location(Some("us-west-2")), "us-west-2");
    }
}
