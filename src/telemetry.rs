//! Structured logs (`tracing`), as text or JSON; the level comes from RUST_LOG (default info).

use tracing_subscriber::{fmt, EnvFilter};

/// Install the subscriber: JSON lines when `json`, text otherwise.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,kube_runtime=warn,aws_config=warn,aws_smithy_runtime=warn"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).init()
    } else {
        builder.init()
    }
}
