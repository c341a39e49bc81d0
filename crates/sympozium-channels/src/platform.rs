//! What every platform client offers the shared bus loop: posting one part of an outbound
//! message, with errors that say whether (and when) to try again.

use std::future::Future;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use sympozium_bus::payloads::OutboundMessage;

/// Why a part could not be posted.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Rate limited: try again after the given time.
    #[error("rate limited for {0:?}: {1}")]
    RetryAfter(Duration, String),
    /// The platform or the network failed; try again with backoff.
    #[error("transient: {0}")]
    Transient(String),
    /// The platform refused the message for good (unknown chat, bad request).
    #[error("refused: {0}")]
    Permanent(String),
}

/// One part of an outbound message (long answers are split at the platform's limit).
#[derive(Clone, Copy, Debug)]
pub struct Part<'a> {
    /// The whole message (chat, thread, reply-to, format).
    pub message: &'a OutboundMessage,
    /// This part's text.
    pub text: &'a str,
    /// 0 for the first part (the one that replies to the user's message).
    pub index: usize,
    /// Stable across retries of the same part: platforms with idempotency keys (Discord's
    /// `nonce`) use it so a retry after a lost response posts nothing twice.
    pub key: &'a str,
}

/// A platform's outbound side.
pub trait Platform: Send + Sync + 'static {
    /// Longest text one message may carry, in characters.
    fn limit(&self) -> usize;
    /// Posts one part.
    fn send(&self, part: Part<'_>) -> impl Future<Output = Result<(), SendError>> + Send;
}

/// Classifies an HTTP failure: 429 → retry after `retry_after` (or the `Retry-After`
/// header, or 1 s); 5xx and 408 → transient; other statuses → permanent.
pub fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    retry_after: Option<f64>,
    detail: String,
) -> SendError {
    if status == StatusCode::TOO_MANY_REQUESTS {
        let header = headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok());
        let secs = retry_after.or(header).filter(|s| s.is_finite() && *s >= 0.0).unwrap_or(1.0);
        return SendError::RetryAfter(Duration::from_secs_f64(secs.min(3600.0)), detail);
    }
    if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        return SendError::Transient(format!("HTTP {status}: {detail}"));
    }
    SendError::Permanent(format!("HTTP {status}: {detail}"))
}

/// A network-level failure (connection refused, timeout): always transient. The error text
/// is stripped of the URL, which may carry a token (Telegram puts it in the path).
pub fn network(e: &reqwest::Error) -> SendError {
    SendError::Transient(describe(e))
}

/// A description of a request error without its URL.
pub fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    match e.url() {
        Some(url) => text.replace(url.as_str(), "<url>"),
        None => text,
    }
}

/// The HTTP client every platform uses (rustls, bounded timeouts).
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("sympozium-channel/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}
