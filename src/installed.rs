//! Waiting for a CustomResourceDefinition before starting the controller that needs it. A
//! controller whose CRD is missing (an upgrade that skipped the CRDs, an install of only one)
//! would watch a 404 forever, and kube-runtime holds its runner until the first listing, so a
//! graceful shutdown would wait on it for ever too. Instead the controller stays idle: the gap
//! is reported once (log, `/readyz` text, `ecx_controller_waiting_for_crd`), checked again with
//! backoff, and the controller starts when the CRD is installed, without a restart.

use crate::http::Readiness;
use crate::metrics::{CrdLabels, Metrics};
use futures::future::{self, Either};
use kube::api::{Api, ListParams};
use kube::Resource;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::time::Duration;
use tracing::{info, warn};

/// The first wait before checking again, and the longest.
const FIRST_RECHECK: Duration = Duration::from_secs(2);
const LONGEST_RECHECK: Duration = Duration::from_secs(30);

/// The wait before the next check after waiting `previous` (none yet: the first): doubling, capped.
pub fn next_recheck(previous: Option<Duration>) -> Duration {
    previous.map_or(FIRST_RECHECK, |p| (p * 2).min(LONGEST_RECHECK))
}

/// What one check found.
#[derive(Debug, PartialEq)]
enum Found {
    Installed,
    /// The API server answered 404: the resource is not served.
    Missing,
    /// Any other failure (unreachable, forbidden, 5xx): not an answer about the CRD, so the
    /// controller starts and its watch reports and retries it (waiting here would hold every
    /// namespace on a failure that may concern one).
    Unknown(String),
}

/// One check: list at most one object's metadata through `api` (the same scope and permission
/// the controller's watch uses, so no discovery permission is needed).
async fn check<K>(api: &Api<K>) -> Found
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => Found::Installed,
        Err(kube::Error::Api(e)) if e.code == 404 => Found::Missing,
        Err(e) => Found::Unknown(e.to_string()),
    }
}

/// Wait until `api`'s resource is served, for `controller`, which needs the CRD named `crd`.
/// `true` once it is (or the check fails otherwise than with a 404); `false` when `shutdown`
/// came first (the controller must not start).
pub async fn wait_until_installed<K>(
    api: &Api<K>,
    controller: &str,
    crd: &str,
    readiness: &Readiness,
    metrics: &Metrics,
    shutdown: impl future::Future<Output = ()>,
) -> bool
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let gauge = metrics.controller_waiting_for_crd.get_or_create(&CrdLabels { controller: controller.into(), crd: crd.into() }).clone();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut reported = false;
    let mut wait = None;
    loop {
        let found = check(api).await;
        // Stopped already (while the check was on its way): a controller started now would
        // never list, and kube-runtime would hold it until the drain ends.
        if futures::FutureExt::now_or_never(shutdown.as_mut()).is_some() {
            return false;
        }
        match found {
            Found::Installed => break,
            Found::Missing if !reported => {
                reported = true;
                gauge.set(1);
                readiness.set_waiting_for_crd(controller, crd, true);
                warn!(
                    crd,
                    controller,
                    "the CustomResourceDefinition {crd} is not installed (or does not serve this version): the {controller} \
                     controller stays idle until it is (install the CRDs: kubectl apply -f config/crd/, or upgrade the Helm \
                     chart); checking again with backoff"
                );
            }
            Found::Missing => {}
            // Known missing: a failed check is no news of it; keep waiting.
            Found::Unknown(error) if reported => warn!(crd, controller, %error, "cannot tell whether {crd} is installed yet"),
            Found::Unknown(error) => {
                warn!(crd, controller, %error, "cannot tell whether {crd} is installed; starting the {controller} controller, whose watch retries");
                break;
            }
        }
        let next = next_recheck(wait);
        wait = Some(next);
        if let Either::Right(_) = future::select(std::pin::pin!(tokio::time::sleep(next)), shutdown.as_mut()).await {
            return false;
        }
    }
    if reported {
        gauge.set(0);
        readiness.set_waiting_for_crd(controller, crd, false);
        info!(crd, controller, "the CustomResourceDefinition {crd} is installed now: starting the {controller} controller");
    }
    true
}

/// Run a controller until it ends after `shutdown`, or at once when `shutdown` comes before its
/// watch finished its first listing (`listed`): kube-runtime holds a controller's runner until
/// that listing, also through a graceful shutdown, which stops polling the watch: it would
/// never end (seen on a real API server: SIGTERM as the lease was acquired).
pub async fn until_shutdown(
    controller: impl future::Future<Output = ()>,
    shutdown: impl future::Future<Output = ()>,
    listed: &std::sync::atomic::AtomicBool,
) {
    let unlisted_stop = async {
        shutdown.await;
        if listed.load(std::sync::atomic::Ordering::SeqCst) {
            future::pending::<()>().await;
        }
    };
    futures::pin_mut!(controller, unlisted_stop);
    future::select(controller, unlisted_stop).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recheck_doubles_from_two_seconds_up_to_thirty() {
        let mut wait = None;
        let mut seen = Vec::new();
        for _ in 0..7 {
            let next = next_recheck(wait);
            seen.push(next.as_secs());
            wait = Some(next);
        }
        assert_eq!(seen, [2, 4, 8, 16, 30, 30, 30]);
    }
}
