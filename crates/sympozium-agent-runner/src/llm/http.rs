//! The HTTP plumbing shared by providers: one client, per-request timeout, and retries with
//! exponential backoff on 408/429/5xx and transport errors, honouring `Retry-After`.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use super::sse::{SseDecoder, SseEvent};
use crate::config::LlmLimits;
use crate::error::{LlmError, truncate_utf8};

/// Longest `Retry-After` we sleep for; longer waits are left to the run deadline.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);
/// Longest backoff between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Client plus limits.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    limits: LlmLimits,
}

impl Http {
    /// Builds the client.
    pub fn new(limits: &LlmLimits, _local: bool) -> Result<Self, LlmError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| LlmError::Config(format!("building HTTP client: {e}")))?;
        Ok(Self { client, limits: limits.clone() })
    }

    /// Whether to ask for streamed responses.
    pub fn stream(&self) -> bool {
        self.limits.stream
    }

    /// Sends the request built by `build`, retrying what is worth retrying. Returns a
    /// successful response or the final error.
    pub async fn send(
        &self,
        provider: &'static str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, LlmError> {
        let mut attempt: u32 = 0;
        loop {
            let mut request = build(&self.client);
            if let Some(timeout) = self.limits.request_timeout {
                request = request.timeout(timeout);
            }
            let retries_left = attempt < self.limits.max_retries;
            let wait = match request.send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = retry_after(&response);
                    let body = response.text().await.unwrap_or_default();
                    let error = api_error(provider, status, &body);
                    tracing::warn!(provider, status, attempt, "LLM request failed");
                    if !retries_left || !error.is_retryable() {
                        return Err(error);
                    }
                    retry_after.unwrap_or_else(|| self.backoff(attempt))
                }
                Err(e) => {
                    let error = transport_error(provider, &e);
                    tracing::warn!(provider, attempt, error = %error, "LLM request failed");
                    if !retries_left {
                        return Err(error);
                    }
                    self.backoff(attempt)
                }
            };
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.limits.retry_backoff.saturating_mul(2u32.saturating_pow(attempt)).min(MAX_BACKOFF)
    }
}

/// Reads `Retry-After` (delta seconds; HTTP dates fall back to our own backoff).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = value.trim().parse().ok()?;
    Duration::try_from_secs_f64(secs).ok().map(|d| d.min(MAX_RETRY_AFTER))
}

/// Turns an error body into an [`LlmError::Api`], taking the provider's `message` field when
/// the body is JSON.
pub fn api_error(provider: &'static str, status: u16, body: &str) -> LlmError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .or_else(|| v.get("Message"))
                .or_else(|| v.get("error"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.trim().to_string());
    LlmError::Api { provider, status, message: truncate_utf8(&message, 500).to_string() }
}

/// Describes a reqwest error without its source chain noise.
pub fn transport_error(provider: &'static str, e: &reqwest::Error) -> LlmError {
    let message = if e.is_timeout() {
        "request timed out (LLM_REQUEST_TIMEOUT)".to_string()
    } else if e.is_connect() {
        format!("cannot connect: {e}")
    } else {
        e.to_string()
    };
    LlmError::Transport { provider, message }
}

/// Reads a streamed response, handing each SSE event to `on_event`, which may stop the
/// stream by returning an error (e.g. an in-stream `error` event).
pub async fn read_sse(
    provider: &'static str,
    response: reqwest::Response,
    mut on_event: impl FnMut(SseEvent) -> Result<(), LlmError>,
) -> Result<(), LlmError> {
    let mut decoder = SseDecoder::default();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| LlmError::Interrupted { provider, message: e.to_string() })?;
        for event in decoder.push(&chunk) {
            on_event(event)?;
        }
    }
    if let Some(event) = decoder.finish() {
        on_event(event)?;
    }
    Ok(())
}
