//! `kube-testbed --port P --kubeconfig PATH [--namespace default]`: serve the in-memory API
//! server until SIGTERM/SIGINT.

use clap::Parser;
use kube_testbed::{Options, TestApiServer};
use std::io::Write;

#[derive(Parser, Debug)]
#[command(name = "kube-testbed", about = "In-memory Kubernetes API server (test bed only)")]
struct Args {
    /// Port on 127.0.0.1 (0 = pick a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Where to write a kubeconfig pointing at this server.
    #[arg(long)]
    kubeconfig: Option<std::path::PathBuf>,
    /// Default namespace in the written kubeconfig.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Events kept for watch resume (older resourceVersions get 410 Expired).
    #[arg(long, default_value_t = 10_000)]
    watch_history: usize,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).with_writer(std::io::stderr).init();
    let args = Args::parse();
    let server = TestApiServer::start(Options { port: args.port, watch_history: args.watch_history }).await?;
    if let Some(path) = &args.kubeconfig {
        server.write_kubeconfig(path, &args.namespace)?;
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "kube-testbed listening on {}", server.url())?;
        out.flush()?;
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    server.shutdown().await;
    Ok(())
}
