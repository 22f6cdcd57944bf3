//! The command line as a user meets it: absurd durations and rates make the binary exit non-zero
//! with a message that names the flag, never a panic or an overflow.

use crate::harness::operator_binary;
use std::process::Command;

#[test]
fn absurd_durations_and_rates_are_refused_by_name() {
    let cases: &[(&[&str], &str)] = &[
        (&["--poll-max-seconds", "1e30"], "--poll-max-seconds"),
        (&["--stalled-retry-seconds", "inf"], "--stalled-retry-seconds"),
        (&["--error-backoff-min-seconds", "0.000000001"], "--error-backoff-min-seconds"),
        (&["--aws-requests-per-second", "0"], "--aws-requests-per-second"),
        (&["--aws-requests-per-second", "NaN"], "--aws-requests-per-second"),
        (&["--aws-requests-per-second", "0.01", "--aws-burst", "4294967295"], "--aws-burst"),
        (&["--lease-duration-seconds", "18446744073709551615"], "--lease-duration-seconds"),
    ];
    for (args, flag) in cases {
        let out = Command::new(operator_binary())
            .arg("run")
            .args(*args)
            // Fail fast if the flags were accepted: no Kubernetes API to reach.
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("AWS_REGION", "us-east-1")
            .output()
            .expect("run the operator binary");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: exit code; stderr:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: a panic, not a message:\n{stderr}");
        assert!(stderr.contains(&format!("elasticache-export-operator: {flag} ")), "{args:?}: names {flag}:\n{stderr}");
    }
}
