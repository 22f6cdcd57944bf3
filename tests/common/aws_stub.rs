//! A raw HTTP stub standing in for AWS, and the operator's SDK client pointed at it, shared by
//! the hostile-response tests (tests/hostile_aws.rs, tests/hostile_serverless.rs).

use ecx::aws::SdkSnapshots;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One canned answer: HTTP status, content type, body.
pub type Answer = (u16, &'static str, String);

/// A stub AWS endpoint: every request is answered by `respond(request head and body)`.
/// Returns its URL and a counter of requests.
pub async fn stub(respond: impl Fn(&str) -> Answer + Send + Sync + 'static) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let respond = Arc::new(respond);
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let respond = respond.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 16384];
                let (head_end, length) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (end + 4, length);
                    }
                };
                while buf.len() < head_end + length {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let (status, content_type, body) = respond(&String::from_utf8_lossy(&buf));
                let response = format!(
                    "HTTP/1.1 {status} Stub\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nx-amzn-requestid: stub\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(response.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (url, count)
}

/// The operator's AWS client against `url`, with SDK retries off (each answer is seen once).
pub async fn client(url: &str) -> SdkSnapshots {
    client_with(url, aws_config::retry::RetryConfig::disabled()).await
}

/// The operator's AWS client against `url` with the SDK retry settings `retry`.
pub async fn client_with(url: &str, retry: aws_config::retry::RetryConfig) -> SdkSnapshots {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws_sdk_elasticache::config::Credentials::new("AKIDSTUB", "stub-secret", None, None, "stub"))
        .retry_config(retry)
        .timeout_config(aws_config::timeout::TimeoutConfig::builder().operation_timeout(Duration::from_secs(30)).build())
        .load()
        .await;
    SdkSnapshots::new(&config, true)
}

pub const XML: &str = "text/xml";
pub const NS: &str = "http://elasticache.amazonaws.com/doc/2015-02-02/";
