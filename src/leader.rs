//! Leader election with a `coordination.k8s.io/v1` Lease (kube-lease-manager): only the leader
//! reconciles. A replica that loses the lease stops its controller and exits, so Kubernetes
//! restarts it as a follower; nothing keeps acting on a lost lease.

use kube::Client;
use kube_lease_manager::{LeaseCreateMode, LeaseManagerBuilder};
use tokio::sync::watch;
use tracing::info;

/// The longest wait for the lease's release at shutdown.
const RELEASE_WITHIN: std::time::Duration = std::time::Duration::from_millis(1500);

/// Where the Lease lives and who we are.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub duration_seconds: u64,
}

/// A running lease manager: `is_leader` follows the lease; dropping it releases the lease.
pub struct Leadership {
    is_leader: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<Result<kube_lease_manager::LeaseManager, kube_lease_manager::LeaseManagerError>>,
}

impl Leadership {
    pub async fn start(client: Client, config: &LeaseConfig) -> Result<Self, String> {
        // Renew a third of the duration before expiry (at least 2 s), to ride out slow API calls.
        let grace = (config.duration_seconds / 3).max(2).min(config.duration_seconds.saturating_sub(1)).max(1);
        let manager = LeaseManagerBuilder::new(client, &config.name)
            .with_namespace(&config.namespace)
            .with_identity(&config.identity)
            .with_duration(config.duration_seconds)
            .with_grace(grace)
            .with_field_manager("elasticache-export-operator")
            .with_create_mode(LeaseCreateMode::AutoCreate)
            .build()
            .await
            .map_err(|e| format!("cannot use Lease {}/{} for leader election: {e}", config.namespace, config.name))?;
        let (is_leader, task) = manager.watch().await;
        Ok(Self { is_leader, task })
    }

    /// Resolves once this replica holds the lease; `Err` when the lease manager stopped.
    pub async fn acquired(&mut self) -> Result<(), String> {
        self.is_leader.wait_for(|leader| *leader).await.map(|_| ()).map_err(|_| "the lease manager stopped".to_string())
    }

    /// A future that resolves when this replica no longer holds the lease.
    pub fn lost(&self) -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
        let mut rx = self.is_leader.clone();
        async move {
            let _ = rx.wait_for(|leader| !*leader).await;
        }
    }

    pub fn is_leader(&self) -> bool {
        *self.is_leader.borrow()
    }

    /// Release the lease (closing the channel makes the manager release it) and wait for that,
    /// at most [`RELEASE_WITHIN`]: a slow API server must not hold the exit (the lease then
    /// expires on its own).
    pub async fn release(self) {
        drop(self.is_leader);
        match tokio::time::timeout(RELEASE_WITHIN, self.task).await {
            Ok(Ok(Ok(_))) => info!("released the lease"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "could not release the lease; it expires on its own"),
            Ok(Err(e)) => tracing::warn!(error = %e, "the lease manager task failed"),
            Err(_) => tracing::warn!(within = ?RELEASE_WITHIN, "the lease was not released in time; it expires on its own"),
        }
    }
}
