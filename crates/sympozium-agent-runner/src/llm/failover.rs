//! Model failover: an ordered list of providers. When one keeps failing with an error worth
//! retrying (after its own retries), the same turn goes to the next one. The conversation is
//! provider-neutral, so a run can switch models mid-way. Errors that another model cannot fix
//! (bad request, auth) are returned at once.

use futures_util::future::BoxFuture;

use super::{ChatRequest, Provider, StreamSink, Turn};
use crate::error::LlmError;

/// Providers in order of preference.
pub struct Failover {
    chain: Vec<Box<dyn Provider>>,
}

impl Failover {
    /// Wraps `chain` (first = primary).
    pub fn new(chain: Vec<Box<dyn Provider>>) -> Self {
        Self { chain }
    }

    async fn run(&self, request: ChatRequest<'_>, sink: &mut dyn StreamSink) -> Result<Turn, LlmError> {
        let mut last: Option<LlmError> = None;
        for (i, provider) in self.chain.iter().enumerate() {
            match provider.complete(request, sink).await {
                Ok(turn) => return Ok(turn),
                Err(e) if e.is_retryable() && i + 1 < self.chain.len() => {
                    tracing::warn!(provider = provider.name(), error = %e, "model failed; trying the next fallback");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| LlmError::Config("no model configured".into())))
    }
}

impl Provider for Failover {
    fn name(&self) -> &'static str {
        self.chain.first().map_or("LLM", |p| p.name())
    }

    fn complete<'a>(
        &'a self,
        request: ChatRequest<'a>,
        sink: &'a mut dyn StreamSink,
    ) -> BoxFuture<'a, Result<Turn, LlmError>> {
        Box::pin(self.run(request, sink))
    }
}
