//! `/readyz` in the configurations the operator ships with: watching all namespaces, a list of
//! namespaces (one not created yet among them), a standby replica that does not hold the lease
//! (and its leader), and a cluster without the SnapshotExportSchedule CRD. Each must turn ready
//! within seconds; a readiness that never turns ready keeps a rollout from ever finishing.

use crate::harness::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a replica may take to turn ready (it lists one empty namespace or two).
const READY_WITHIN: Duration = Duration::from_secs(20);

/// Start the operator with exactly `args` after `run --s3-path-style` (no `--namespaces` unless
/// given: [`Operator::start`] always passes the test's namespace).
pub fn start(bed: &Bed, n: usize, args: &[&str]) -> (std::process::Child, std::path::PathBuf) {
    let log = bed.dir.path().join(format!("readiness-{n}.log"));
    let mut cmd = Command::new(operator_binary());
    cmd.args(["run", "--s3-path-style"])
        .args(TEST_TIMING)
        .args(TEST_POLICY)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KUBECONFIG", &bed.cluster.kubeconfig)
        .env("RUST_LOG", "info,ecx=debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    for (k, v) in bed.emulator.aws_env() {
        cmd.env(k, v);
    }
    (cmd.spawn().expect("start the operator"), log)
}

/// The `/readyz` status code of the operator that writes `log`; `None` before it serves.
pub fn readyz(log: &Path) -> Option<u16> {
    readyz_answer(log).map(|(code, _)| code)
}

/// The `/readyz` status code and text of the operator that writes `log`; `None` before it serves.
pub fn readyz_answer(log: &Path) -> Option<(u16, String)> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().find(|l| l.contains("serving /healthz"))?;
    let (_, rest) = line.split_once("127.0.0.1:")?;
    let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let mut stream = std::net::TcpStream::connect(format!("127.0.0.1:{port}")).ok()?;
    use std::io::{Read, Write};
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let code = answer.split_whitespace().nth(1)?.parse().ok()?;
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((code, body))
}

/// Wait until the operator writing `log` answers `/readyz` with 200, or fail with its log.
pub async fn wait_ready(what: &str, log: &Path) -> Duration {
    let started = Instant::now();
    loop {
        if readyz(log) == Some(200) {
            return started.elapsed();
        }
        if started.elapsed() > READY_WITHIN {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what}: /readyz not ready after {READY_WITHIN:?} (last answer {:?}); log:\n{text}", readyz(log));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait until the log at `log` contains `line` (a generous deadline: only a hang fails it).
pub async fn wait_for_log(log: &Path, line: &str, what: &str) {
    let started = Instant::now();
    while !std::fs::read_to_string(log).unwrap_or_default().contains(line) {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        assert!(started.elapsed() < Duration::from_secs(30), "{what}: no {line:?} in the log within 30 s:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub struct Replica(pub std::process::Child);

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_turns_ready_in_each_shipped_configuration() {
    let bed = Bed::without_operator().await;
    let ns = bed.cluster.namespace.clone();
    let other = format!("{ns}-b");
    create_namespace(&bed.cluster.client, &other).await;
    let not_created = format!("{ns}-not-created");
    // One object in each created namespace: the caches list something.
    bed.emulator.seed_snapshot("ready-src", 1);
    bed.cluster.apply("ready-copy", serde_json::json!({"sourceSnapshotName": "ready-src", "targetSnapshotName": "ready-copy"})).await;

    // A list of namespaces, one of which does not exist (yet).
    let listed = format!("{ns},{other},{not_created}");
    let (child, log) = start(&bed, 0, &["--namespaces", &listed]);
    let replica = Replica(child);
    let took = wait_ready("--namespaces a,b,c", &log).await;
    eprintln!("--namespaces with three namespaces: ready after {took:?}");
    assert!(std::fs::read_to_string(&log).unwrap().contains("caches synced"), "ready means synced");
    bed.wait_ready("ready-copy").await;
    drop(replica);

    // A standby replica turns ready without the lease; its leader once its caches are synced.
    let election = ["--namespaces", ns.as_str(), "--leader-elect", "--lease-namespace", ns.as_str(), "--lease-duration-seconds", "15"];
    let (child, leader_log) = start(&bed, 1, &election);
    let _leader = Replica(child);
    // Ready comes first (a replica is ready while it stands by), then the lease: wait for both,
    // and for readiness again once it leads (its caches synced).
    wait_ready("the leader", &leader_log).await;
    wait_for_log(&leader_log, "acquired leadership", "the first replica leads").await;
    wait_ready("the leader", &leader_log).await;
    let (child, standby_log) = start(&bed, 2, &election);
    let _standby = Replica(child);
    let took = wait_ready("a standby replica", &standby_log).await;
    eprintln!("standby: ready after {took:?}");
    let standby_text = std::fs::read_to_string(&standby_log).unwrap();
    assert!(standby_text.contains("standing by for leadership") && !standby_text.contains("acquired leadership"), "{standby_text}");
    assert_eq!(readyz(&leader_log), Some(200), "the leader stays ready");

    if bed.cluster.is_real() {
        // An operator watching all namespaces of a shared server would act on other tests' objects.
        skip_on_real_server("readyz_turns_ready_in_each_shipped_configuration", "watching all namespaces and removing a CRD");
        return;
    }
    // All namespaces, and without the SnapshotExportSchedule CRD (an install that left it out).
    let (child, log) = start(&bed, 3, &[]);
    let all = Replica(child);
    let took = wait_ready("all namespaces", &log).await;
    eprintln!("all namespaces: ready after {took:?}");
    drop(all);
    let crds: kube::Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        kube::Api::all(bed.cluster.client.clone());
    crds.delete("snapshotexportschedules.elasticache-export.io", &Default::default()).await.expect("delete the schedule CRD");
    let (child, log) = start(&bed, 4, &[]);
    let _without_schedules = Replica(child);
    let took = wait_ready("without the schedule CRD", &log).await;
    eprintln!("without the schedule CRD: ready after {took:?}");
}
