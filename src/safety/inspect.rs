//! The bucket inspection: the S3 calls that gather a bucket's facts ([`inspect`]), and the
//! preflight's memory of them (a bucket that passed is reused for a while; exports that arrive
//! together share one inspection).

use super::evaluate::evaluate;
use super::facts::{AccessFacts, BucketFacts};
use crate::aws::{AwsError, BucketInspector};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
// The clock the tests can pause.
use tokio::time::Instant;

/// Gather the facts: GetBucketLocation first; the rest only for a bucket in the right region.
/// The target keys are checked apart ([`record_keys`]), with one listing for all of them.
pub async fn inspect(aws: &dyn BucketInspector, bucket: &str, region: &str) -> Result<BucketFacts, AwsError> {
    let location = aws.bucket_region(bucket).await?;
    let mut facts = BucketFacts { bucket: bucket.into(), region: region.into(), location, access: None };
    if facts.location.as_deref() != Some(region) {
        return Ok(facts);
    }
    let (acl, object_ownership, policy, public_access_block) = futures::try_join!(
        aws.bucket_acl(bucket),
        aws.object_ownership(bucket),
        aws.bucket_policy(bucket),
        aws.public_access_block(bucket)
    )?;
    let policy_is_public = if policy.is_some() { aws.policy_is_public(bucket).await? } else { None };
    facts.access = Some(AccessFacts { acl, object_ownership, policy, policy_is_public, public_access_block, target_keys: Vec::new() });
    Ok(facts)
}

pub struct PreflightConfig {
    pub inspector: Arc<dyn BucketInspector>,
    /// The snapshots' region (the operator's).
    pub region: String,
    pub refuse_public_buckets: bool,
    /// Bucket-level facts (location, ACL, ownership, policy, public access) by bucket, reused
    /// for [`BUCKET_FACTS_TTL`]: a batch of exports to one bucket inspects it once. The target
    /// keys are checked for every export.
    cache: Mutex<HashMap<String, (Instant, BucketFacts)>>,
    /// The last failing outcome by bucket (a problem found, or the inspection refused), reused
    /// by stalled objects' retries for `failing_reuse`: a thousand exports stalled on one broken
    /// bucket inspect it once per retry period, not a thousand times.
    failing: Mutex<HashMap<String, (Instant, InspectionOutcome)>>,
    failing_reuse: Duration,
    /// Inspections in flight, by bucket: exports that arrive while a bucket is being inspected
    /// share that inspection's outcome (passing, failing or an error) instead of inspecting it
    /// again.
    inspecting: Mutex<HashMap<String, (Instant, Inspection)>>,
}

type InspectionOutcome = Result<BucketFacts, AwsError>;

/// One inspection of a bucket, awaited by every export that needs it.
type Inspection = futures::future::Shared<futures::future::BoxFuture<'static, InspectionOutcome>>;

/// How long a passing bucket's facts are reused: a bucket broken after it passed is trusted
/// this long at most (CopySnapshot still reports what the preflight missed).
pub const BUCKET_FACTS_TTL: Duration = Duration::from_secs(60);

impl PreflightConfig {
    pub fn new(inspector: Arc<dyn BucketInspector>, region: String, refuse_public_buckets: bool) -> Self {
        Self {
            inspector,
            region,
            refuse_public_buckets,
            cache: Default::default(),
            failing: Default::default(),
            failing_reuse: Duration::from_secs(300),
            inspecting: Default::default(),
        }
    }

    /// Reuse a failing bucket's inspection for stalled objects' retries for `period` (the
    /// stalled retry period).
    pub fn reuse_failures_for(&mut self, period: Duration) {
        self.failing_reuse = period;
    }

    fn cached(&self, bucket: &str, retry: bool) -> Option<InspectionOutcome> {
        let passing = self.cache.lock().expect("preflight cache");
        if let Some((_, facts)) = passing.get(bucket).filter(|(at, _)| at.elapsed() < BUCKET_FACTS_TTL) {
            return Some(Ok(facts.clone()));
        }
        drop(passing);
        let failing = self.failing.lock().expect("preflight failures");
        failing.get(bucket).filter(|(at, _)| retry && at.elapsed() < self.failing_reuse).map(|(_, outcome)| outcome.clone())
    }

    /// The bucket's facts with one target key checked (the preflight checks its keys with
    /// [`Self::export_keys`] and [`record_keys`] after the bucket passes).
    #[cfg(test)]
    pub(super) async fn facts(&self, bucket: &str, key: &str) -> Result<BucketFacts, AwsError> {
        let mut facts = self.bucket_facts(bucket, false).await?;
        let base = key.rsplit_once('-').map_or(key, |(base, _)| base);
        let listed = self.export_keys(bucket, base).await?;
        record_keys(&mut facts, &[key.to_string()], &listed);
        Ok(facts)
    }

    /// The keys in `bucket` an export named `base` could have written (one listing).
    pub(super) async fn export_keys(&self, bucket: &str, base: &str) -> Result<Vec<String>, AwsError> {
        self.inspector.export_keys(bucket, base).await
    }

    /// Bucket-level facts: from the cache when fresh, otherwise from the inspection of the bucket
    /// in flight, or from a new one. `retry`: a stalled object trying again, which may be given
    /// the bucket's last failing outcome (within the retry period); any other object looks afresh.
    pub(super) async fn bucket_facts(&self, bucket: &str, retry: bool) -> Result<BucketFacts, AwsError> {
        use futures::FutureExt;
        let (started, inspection) = {
            let mut inspecting = self.inspecting.lock().expect("preflight inspections");
            // Under the lock an inspection is retired (and remembered) with: one that finished
            // just now is reused, not repeated.
            if let Some(outcome) = self.cached(bucket, retry) {
                return outcome;
            }
            let new = || {
                let (inspector, bucket, region) = (self.inspector.clone(), bucket.to_string(), self.region.clone());
                (Instant::now(), async move { inspect(inspector.as_ref(), &bucket, &region).await }.boxed().shared())
            };
            inspecting.entry(bucket.to_string()).or_insert_with(new).clone()
        };
        let outcome = inspection.clone().await;
        // The first to see it finish retires it and remembers its outcome, as of its start (a
        // fix made while it ran may not show in it).
        let mut inspecting = self.inspecting.lock().expect("preflight inspections");
        if inspecting.get(bucket).is_some_and(|(_, current)| current.ptr_eq(&inspection)) {
            inspecting.remove(bucket);
            self.remember(bucket, started, &outcome);
        }
        outcome
    }

    /// A passing bucket is reused by every export for a while; a failing one (a problem, a
    /// public bucket that --refuse-public-buckets refuses, the inspection refused) only by
    /// stalled retries. A throttled or unreachable S3 is not remembered: the caller backs off.
    fn remember(&self, bucket: &str, started: Instant, outcome: &InspectionOutcome) {
        let passing = outcome.as_ref().is_ok_and(|facts| evaluate(facts).export_would_succeed(self.refuse_public_buckets));
        let mut failing = self.failing.lock().expect("preflight failures");
        let mut cache = self.cache.lock().expect("preflight cache");
        // Outcomes no retry may use any more are dropped, so the map holds only recent failures.
        failing.retain(|_, (at, _)| at.elapsed() < self.failing_reuse);
        match outcome {
            Ok(facts) if passing => {
                failing.remove(bucket);
                cache.insert(bucket.to_string(), (started, facts.clone()));
            }
            Err(AwsError::Transient { .. }) => {}
            _ => {
                cache.remove(bucket);
                failing.insert(bucket.to_string(), (started, outcome.clone()));
            }
        }
    }
}

/// Record in `facts` which of the export's `keys` are among the `listed` ones (each key once,
/// sorted); nothing for a bucket that does not exist in the region.
pub(super) fn record_keys(facts: &mut BucketFacts, keys: &[String], listed: &[String]) {
    let Some(access) = facts.access.as_mut() else {
        return;
    };
    let mut keys: Vec<&String> = keys.iter().collect();
    keys.sort();
    keys.dedup();
    access.target_keys = keys.into_iter().map(|k| (k.clone(), listed.contains(k))).collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::{BucketAcl, PublicAccessBlock};
    use crate::safety::testing::{acl, B, R};

    /// A private bucket in R granted to ElastiCache through its ACL (or, with `exists` false, no
    /// bucket at all), that counts the bucket-level reads (GetBucketLocation) and answers each
    /// after a moment.
    struct GrantedBucket {
        exists: bool,
        locations: std::sync::atomic::AtomicUsize,
    }

    impl crate::aws::BucketInspector for GrantedBucket {
        fn bucket_region<'a>(&'a self, _: &'a str) -> futures::future::BoxFuture<'a, Result<Option<String>, AwsError>> {
            self.locations.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                Ok(self.exists.then(|| R.to_string()))
            })
        }
        fn bucket_acl<'a>(&'a self, _: &'a str) -> futures::future::BoxFuture<'a, Result<BucketAcl, AwsError>> {
            Box::pin(async { Ok(acl(&["READ", "WRITE", "READ_ACP"])) })
        }
        fn object_ownership<'a>(&'a self, _: &'a str) -> futures::future::BoxFuture<'a, Result<Option<String>, AwsError>> {
            Box::pin(async { Ok(Some("BucketOwnerPreferred".to_string())) })
        }
        fn bucket_policy<'a>(&'a self, _: &'a str) -> futures::future::BoxFuture<'a, Result<Option<String>, AwsError>> {
            Box::pin(async { Ok(None) })
        }
        fn policy_is_public<'a>(&'a self, _: &'a str) -> futures::future::BoxFuture<'a, Result<Option<bool>, AwsError>> {
            Box::pin(async { Ok(Some(false)) })
        }
        fn public_access_block<'a>(&'a self, _: &'a str) -> futures::future::BoxFuture<'a, Result<Option<PublicAccessBlock>, AwsError>> {
            Box::pin(async { Ok(Some(PublicAccessBlock::ALL_ON)) })
        }
        fn export_keys<'a>(&'a self, _: &'a str, _: &'a str) -> futures::future::BoxFuture<'a, Result<Vec<String>, AwsError>> {
            Box::pin(async { Ok(vec![]) })
        }
    }

    #[tokio::test]
    async fn exports_arriving_together_inspect_their_bucket_once_and_each_checks_its_own_key() {
        let inspector = Arc::new(GrantedBucket { exists: true, locations: Default::default() });
        let preflight = PreflightConfig::new(inspector.clone(), R.into(), false);
        let keys: Vec<String> = (0..32).map(|i| format!("exp-{i}-0001.rdb")).collect();
        let all = futures::future::join_all(keys.iter().map(|key| preflight.facts(B, key))).await;
        assert_eq!(inspector.locations.load(std::sync::atomic::Ordering::SeqCst), 1, "one inspection of the bucket");
        for (facts, key) in all.into_iter().zip(&keys) {
            let facts = facts.unwrap();
            assert!(evaluate(&facts).export_would_succeed(false));
            assert_eq!(facts.access.unwrap().target_keys, vec![(key.clone(), false)]);
        }
    }

    #[tokio::test]
    async fn exports_arriving_together_share_the_inspection_of_a_failing_bucket_and_later_ones_look_again() {
        let inspector = Arc::new(GrantedBucket { exists: false, locations: Default::default() });
        let preflight = PreflightConfig::new(inspector.clone(), R.into(), false);
        let all =
            futures::future::join_all((0..32).map(|i| preflight.facts(B, if i % 2 == 0 { "a-0001.rdb" } else { "b-0001.rdb" }))).await;
        assert_eq!(inspector.locations.load(std::sync::atomic::Ordering::SeqCst), 1, "one inspection, shared");
        assert!(all.iter().all(|f| f.as_ref().is_ok_and(|f| !evaluate(f).export_would_succeed(false))));
        // A failing bucket is not remembered: the next export looks again (it may be fixed now).
        preflight.facts(B, "c-0001.rdb").await.unwrap();
        assert_eq!(inspector.locations.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert!(preflight.inspecting.lock().unwrap().is_empty(), "finished inspections are retired");
    }

    #[tokio::test(start_paused = true)]
    async fn stalled_retries_share_a_failing_inspection_for_one_period_and_new_objects_look_afresh() {
        let inspector = Arc::new(GrantedBucket { exists: false, locations: Default::default() });
        let mut preflight = PreflightConfig::new(inspector.clone(), R.into(), false);
        let period = std::time::Duration::from_secs(300);
        preflight.reuse_failures_for(period);
        let inspections = || inspector.locations.load(std::sync::atomic::Ordering::SeqCst);
        let failing = |f: Result<BucketFacts, AwsError>| !evaluate(&f.unwrap()).export_would_succeed(false);
        assert!(failing(preflight.bucket_facts(B, false).await));
        assert_eq!(inspections(), 1);
        // A hundred stalled objects retried within the period: no inspection of their own.
        for _ in 0..100 {
            assert!(failing(preflight.bucket_facts(B, true).await));
            tokio::time::advance(period / 200).await;
        }
        assert_eq!(inspections(), 1, "retries within the period reuse the failing inspection");
        // A new object (or an edited one) looks afresh: the bucket may have been fixed for it.
        assert!(failing(preflight.bucket_facts(B, false).await));
        assert_eq!(inspections(), 2);
        // Once the period has passed since the last inspection, a retry looks again.
        tokio::time::advance(period).await;
        assert!(failing(preflight.bucket_facts(B, true).await));
        assert_eq!(inspections(), 3);
    }
}
