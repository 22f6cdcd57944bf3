//! The binary: parses the command line (`cli`), turns it into each layer's settings (`Timing`,
//! `SafetySettings`, `AwsSettings`) and starts the controllers, alone or as the elected leader.

use clap::Parser;
use ecx::aws::limit::{Pacer, RateLimit};
use ecx::aws::{aws_sdk_config, AwsSettings, SdkSnapshots};
use ecx::cli::{seconds, CheckBucketArgs, Cli, Command, LogFormat, RunArgs};
use ecx::controller;
use ecx::events::Events;
use ecx::export::{Context, Timing};
use ecx::http::Readiness;
use ecx::leader::{Leadership, LeaseConfig};
use ecx::metrics::Metrics;
use ecx::safety::{CheckBucket, SafetySettings};
use std::process::ExitCode;
use std::sync::Arc;
use tracing::{error, info};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd { kind } => {
            print!("{}", kind.yaml());
            ExitCode::SUCCESS
        }
        Command::CheckBucket(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
            runtime.block_on(ecx::safety::check_bucket(check_bucket(args)))
        }
        Command::Run(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
            let result = runtime.block_on(run(args));
            // Blocking tasks still running (a DNS lookup) must not hold the exit.
            runtime.shutdown_timeout(std::time::Duration::from_millis(500));
            match result {
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
    ecx::telemetry::init(args.log_format == LogFormat::Json);
    let timing = timing(&args)?;
    let aws_settings = aws_settings(&args);
    let client =
        kube::Client::try_default().await.map_err(|e| format!("cannot reach the Kubernetes API (in-cluster config or KUBECONFIG): {e}"))?;
    let aws_config = aws_sdk_config(aws_settings.region.clone()).await;
    let region = aws_config.region().map(|r| r.to_string()).ok_or("no AWS region configured: set AWS_REGION or --region")?;
    let metrics = Arc::new(Metrics::default());
    // One gate for every AWS call: the reconciler's and the preflight's share the rate limit.
    let pacer = Pacer::new(Some(RateLimit::new(args.aws_requests_per_second, args.aws_burst)), Some(metrics.clone()));
    let aws = SdkSnapshots::new(&aws_config, aws_settings.s3_path_style).with_pacer(pacer.clone());
    let safety = ecx::safety::export_safety(&safety_settings(&args), &aws_settings, &aws_config, &region, pacer)?;
    let readiness = Arc::new(Readiness::default());
    let instance = std::env::var("POD_NAME").ok().or_else(|| std::env::var("HOSTNAME").ok());
    let events = Events::new(client.clone(), instance.clone()).with_metrics(metrics.clone());
    // The schedules ask the gate's own policy before taking a snapshot for a run.
    let schedules = ecx::schedule::controller::context(
        client.clone(),
        aws.clone(),
        events.clone(),
        metrics.clone(),
        safety.policy.clone(),
        (timing.error_min, timing.error_max),
    )?;
    let ctx = Arc::new(Context::new(client.clone(), aws, events, timing, metrics.clone()));
    let ctx = Arc::new(Arc::into_inner(ctx).expect("the context is not shared yet").with_export_safety(safety));

    let addr = args.metrics_addr;
    let server = tokio::spawn(ecx::http::serve(addr, metrics, readiness.clone()));
    info!(%region, namespaces = ?args.namespaces(), concurrency = args.concurrency, %addr, "starting elasticache-export-operator");
    let signal: Signal = futures::FutureExt::shared(Box::pin(shutdown_signal()));
    let result = if args.leader_elect {
        let namespace = args.lease_namespace.clone().ok_or("--leader-elect needs --lease-namespace (or POD_NAMESPACE)")?;
        let identity = format!("{}-{:08x}", instance.unwrap_or_else(|| "elasticache-export-operator".into()), rand::random::<u32>());
        let config = LeaseConfig { name: args.lease_name.clone(), namespace, identity, duration_seconds: args.lease_duration_seconds };
        run_as_leader(client, ctx, schedules, &args, readiness, config, signal).await
    } else {
        let shutdown = async move {
            signal.await;
            info!("shutting down: finishing reconciles in flight");
        };
        let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
        let schedules = ecx::schedule::controller::run(client.clone(), schedules, args.namespaces(), readiness.clone(), shutdown.clone());
        let exports = controller::run(client, ctx, args.namespaces(), args.concurrency, readiness, shutdown.clone());
        drain_within(futures::future::join(exports, schedules), async move {
            shutdown.await;
            tokio::time::sleep(SHUTDOWN_DRAIN).await;
        })
        .await;
        Ok(())
    };
    server.abort();
    result
}

/// The requeue timing from the `run` flags (each bounded, see `ecx::cli::seconds`), after the
/// rate limit and lease flags are checked.
fn timing(args: &RunArgs) -> Result<Timing, String> {
    args.check_limits()?;
    let timing = Timing {
        poll_min: seconds("--poll-min-seconds", args.poll_min_seconds)?,
        poll_max: seconds("--poll-max-seconds", args.poll_max_seconds)?,
        error_min: seconds("--error-backoff-min-seconds", args.error_backoff_min_seconds)?,
        error_max: seconds("--error-backoff-max-seconds", args.error_backoff_max_seconds)?,
        stalled_retry: seconds("--stalled-retry-seconds", args.stalled_retry_seconds)?,
        export_grace: seconds("--export-grace-seconds", args.export_grace_seconds)?,
    };
    if timing.poll_min > timing.poll_max {
        return Err("--poll-min-seconds must not exceed --poll-max-seconds".into());
    }
    if timing.error_min > timing.error_max {
        return Err("--error-backoff-min-seconds must not exceed --error-backoff-max-seconds".into());
    }
    Ok(timing)
}

fn aws_settings(args: &RunArgs) -> AwsSettings {
    AwsSettings { region: args.region.clone(), s3_path_style: args.s3_path_style }
}

fn safety_settings(args: &RunArgs) -> SafetySettings {
    SafetySettings {
        export_policy_file: args.export_policy_file.clone(),
        allow_export: args.allow_export.clone(),
        preflight: args.preflight,
        refuse_public_buckets: args.refuse_public_buckets,
    }
}

fn check_bucket(args: CheckBucketArgs) -> CheckBucket {
    CheckBucket {
        bucket: args.bucket,
        target_snapshot_name: args.target_snapshot_name,
        source_snapshot: args.source_snapshot,
        refuse_public_buckets: args.refuse_public_buckets,
        aws: AwsSettings { region: args.region, s3_path_style: args.s3_path_style },
    }
}

/// SIGINT or SIGTERM, awaitable from several places.
type Signal = futures::future::Shared<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>;

/// Stand by until this replica holds the lease, then reconcile until the lease is lost (exit
/// with an error, so Kubernetes restarts the replica as a follower) or a signal arrives.
async fn run_as_leader(
    client: kube::Client,
    ctx: Arc<Context<SdkSnapshots>>,
    schedules: Arc<ecx::schedule::reconcile::ScheduleContext>,
    args: &RunArgs,
    readiness: Arc<Readiness>,
    config: LeaseConfig,
    signal: Signal,
) -> Result<(), String> {
    let mut leadership = Leadership::start(client.clone(), &config).await?;
    readiness.set_standby(true);
    info!(lease = %format!("{}/{}", config.namespace, config.name), identity = %config.identity, "standing by for leadership");
    tokio::select! {
        acquired = leadership.acquired() => acquired?,
        _ = signal.clone() => {
            leadership.release().await;
            return Ok(());
        }
    }
    readiness.set_standby(false);
    info!(identity = %config.identity, "acquired leadership; reconciling");
    let lost = futures::FutureExt::shared(Box::pin(leadership.lost()));
    let stop = {
        let lost = lost.clone();
        async move {
            tokio::select! {
                _ = signal => info!("shutting down: finishing reconciles in flight"),
                _ = lost => tracing::warn!("lost leadership: stopping the controller"),
            }
        }
    };
    let stop = futures::FutureExt::shared(Box::pin(stop));
    let schedules = ecx::schedule::controller::run(client.clone(), schedules, args.namespaces(), readiness.clone(), stop.clone());
    let exports = controller::run(client, ctx, args.namespaces(), args.concurrency, readiness, stop.clone());
    // A lost lease stops the reconciles at once: another replica may hold it already.
    let deadline = async move {
        tokio::select! {
            _ = async { stop.await; tokio::time::sleep(SHUTDOWN_DRAIN).await } => {}
            _ = lost => {}
        }
    };
    drain_within(futures::future::join(exports, schedules), deadline).await;
    let still_leader = leadership.is_leader();
    leadership.release().await;
    if still_leader {
        Ok(())
    } else {
        Err("lost leadership; exiting so that this replica restarts as a follower".into())
    }
}

/// How long reconciles in flight may finish after SIGTERM, before the process goes on to
/// release the lease (at most 1.5 s) and exit: within 5 s, well inside Kubernetes' 30 s grace
/// period, and safe to cut short (each export resumes from its recorded intent, as after a crash).
const SHUTDOWN_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Run the controllers until they end, or until `deadline` (the drain time after the stop).
async fn drain_within(controllers: impl std::future::Future<Output = ((), ())>, deadline: impl std::future::Future<Output = ()>) {
    tokio::select! {
        _ = controllers => {}
        _ = deadline => tracing::warn!("reconciles still in flight at the end of the drain; exiting without them (each resumes from its recorded state)"),
    }
}

async fn shutdown_signal() {
    // Ends on SIGINT or SIGTERM.
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("a SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
