//! Retries a turn whose stream broke off before any text reached the user. HTTP-level
//! failures are already retried in [`super::Http::send`]; this covers failures after the
//! `200 OK` (lost connection, in-stream overload errors). Once text has been streamed out a
//! retry would duplicate it in the chunk files, so the error is returned instead.

use std::time::Duration;

use futures_util::future::BoxFuture;

use super::{ChatRequest, Provider, StreamSink, Turn};
use crate::error::LlmError;

/// Wraps a provider.
pub struct ResumeOnInterrupt {
    inner: Box<dyn Provider>,
    max_retries: u32,
    backoff: Duration,
}

impl ResumeOnInterrupt {
    /// Retries interrupted streams up to `max_retries` times.
    pub fn new(inner: Box<dyn Provider>, max_retries: u32, backoff: Duration) -> Self {
        Self { inner, max_retries, backoff }
    }

    async fn run(&self, request: ChatRequest<'_>, sink: &mut dyn StreamSink) -> Result<Turn, LlmError> {
        let mut attempt = 0;
        loop {
            let mut counting = Counting { inner: &mut *sink, emitted: false };
            match self.inner.complete(request, &mut counting).await {
                Err(e @ LlmError::Interrupted { .. }) if !counting.emitted && attempt < self.max_retries => {
                    tracing::warn!(provider = self.inner.name(), error = %e, attempt, "stream interrupted; retrying");
                    tokio::time::sleep(self.backoff.saturating_mul(2u32.saturating_pow(attempt))).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

struct Counting<'a> {
    inner: &'a mut dyn StreamSink,
    emitted: bool,
}

impl StreamSink for Counting<'_> {
    fn text(&mut self, delta: &str) {
        self.emitted = true;
        self.inner.text(delta);
    }

    fn flush(&mut self) {
        self.inner.flush();
    }
}

impl Provider for ResumeOnInterrupt {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn complete<'a>(
        &'a self,
        request: ChatRequest<'a>,
        sink: &'a mut dyn StreamSink,
    ) -> BoxFuture<'a, Result<Turn, LlmError>> {
        Box::pin(self.run(request, sink))
    }
}
