//! `kube-testbed`: a small in-memory Kubernetes API server for end-to-end tests of controllers.
//!
//! Test bed only: it speaks enough of the Kubernetes REST API over plain HTTP on loopback for
//! kube-rs clients, watchers, the event recorder and lease managers to work against it, with
//! CRD registration, schema and CEL admission, status subresources, finalizers, server-side
//! apply (simplified), watches with resume/410 semantics, fault injection and request stats.
//! See README.md for what is simplified.

mod crd;
mod error;
mod events;
mod faults;
mod managed;
mod schema;
mod selectors;
mod server;
mod store;

pub use faults::{FaultRule, FaultState, Faults, Stats};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// Server options.
#[derive(Clone, Debug)]
pub struct Options {
    /// Port on 127.0.0.1; 0 picks a free port.
    pub port: u16,
    /// How many events are kept for watch resume; a watch from an older resourceVersion gets
    /// a `410 Expired` ERROR event (kube-runtime's watcher then re-lists).
    pub watch_history: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { port: 0, watch_history: 10_000 }
    }
}

#[derive(Default)]
pub(crate) struct StatsInner {
    pub requests: BTreeMap<String, BTreeMap<String, u64>>,
    pub injected: u64,
}

pub(crate) struct Shared {
    pub store: Mutex<store::Store>,
    pub faults: Mutex<faults::FaultState>,
    pub stats: Mutex<StatsInner>,
    pub addr: SocketAddr,
}

impl Shared {
    pub(crate) fn stats(&self) -> Stats {
        let (rv, open) = {
            let s = self.store.lock().expect("store lock");
            (s.rv, s.open_watches())
        };
        let st = self.stats.lock().expect("stats lock");
        Stats { requests: st.requests.clone(), injected_faults: st.injected, resource_version: rv, open_watches: open }
    }
}

/// A running in-memory API server.
pub struct TestApiServer {
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestApiServer {
    /// Bind 127.0.0.1:`opts.port` and serve in the background (on the current tokio runtime).
    pub async fn start(opts: Options) -> std::io::Result<TestApiServer> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            store: Mutex::new(store::Store::new(opts.watch_history)),
            faults: Mutex::new(faults::FaultState::default()),
            stats: Mutex::new(StatsInner::default()),
            addr,
        });
        let app = server::router(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(TestApiServer { shared, shutdown: Some(tx), task })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// A kubeconfig (plain HTTP, dummy token) for this server with `namespace` as the default.
    pub fn kubeconfig_yaml(&self, namespace: &str) -> String {
        kubeconfig_yaml(&self.url(), namespace)
    }

    /// Write [`Self::kubeconfig_yaml`] to `path`.
    pub fn write_kubeconfig(&self, path: &std::path::Path, namespace: &str) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml(namespace))
    }

    /// Fault controls (cloneable).
    pub fn faults(&self) -> Faults {
        Faults { shared: self.shared.clone() }
    }

    /// Request counts so far.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Reset the request counters.
    pub fn reset_stats(&self) {
        *self.shared.stats.lock().expect("stats lock") = StatsInner::default();
    }

    /// Close watches, stop accepting, and wait (at most ~2 s) for connections to finish.
    pub async fn shutdown(mut self) {
        self.shared.store.lock().expect("store lock").drop_watches();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let abort = self.task.abort_handle();
        if tokio::time::timeout(std::time::Duration::from_secs(2), &mut self.task).await.is_err() {
            abort.abort();
        }
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        if let Ok(mut s) = self.shared.store.lock() {
            s.drop_watches();
        }
        self.task.abort();
    }
}

/// A kubeconfig for a plain-HTTP server URL.
pub fn kubeconfig_yaml(url: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kube-testbed
  cluster:
    server: {url}
contexts:
- name: kube-testbed
  context:
    cluster: kube-testbed
    user: kube-testbed
    namespace: {namespace}
current-context: kube-testbed
users:
- name: kube-testbed
  user:
    token: kube-testbed-dummy-token
preferences: {{}}
"
    )
}
