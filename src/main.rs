use clap::Parser;
use ecx::aws::{aws_sdk_config, SdkSnapshots};
use ecx::cli::{Cli, Command, RunArgs};
use ecx::controller::{self, Readiness};
use ecx::events::Events;
use ecx::metrics::Metrics;
use ecx::reconcile::Context;
use std::process::ExitCode;
use std::sync::Arc;
use tracing::{error, info};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!("{}", ecx::api::crd_yaml());
            ExitCode::SUCCESS
        }
        Command::Run(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
            match runtime.block_on(run(args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    error!("{message}");
                    eprintln!("elasticache-export-operator: {message}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn run(args: RunArgs) -> Result<(), String> {
    ecx::telemetry::init(args.log_format);
    let timing = args.timing()?;
    let client =
        kube::Client::try_default().await.map_err(|e| format!("cannot reach the Kubernetes API (in-cluster config or KUBECONFIG): {e}"))?;
    let aws_config = aws_sdk_config(args.region.clone()).await;
    let region = aws_config.region().map(|r| r.to_string()).ok_or("no AWS region configured: set AWS_REGION or --region")?;
    let aws = SdkSnapshots::new(&aws_config, args.s3_path_style);
    let metrics = Arc::new(Metrics::default());
    let readiness = Arc::new(Readiness::default());
    let instance = std::env::var("POD_NAME").ok().or_else(|| std::env::var("HOSTNAME").ok());
    let ctx = Arc::new(Context::new(client.clone(), aws, Events::new(client.clone(), instance), timing, metrics.clone()));

    let addr = args.metrics_addr;
    let server = tokio::spawn(ecx::http::serve(addr, metrics, readiness.clone()));
    info!(%region, namespaces = ?args.namespaces(), concurrency = args.concurrency, %addr, "starting elasticache-export-operator");
    let shutdown = async {
        shutdown_signal().await;
        info!("shutting down: finishing reconciles in flight");
    };
    controller::run(client, ctx, args.namespaces(), args.concurrency, readiness, shutdown).await;
    server.abort();
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("a SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
