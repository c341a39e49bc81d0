//! LLM providers behind one small trait. The conversation is kept in a provider-neutral form
//! ([`Message`]) so the loop, and model failover, do not care which wire format is spoken.

mod anthropic;
mod aws_creds;
mod bedrock;
mod eventstream;
mod failover;
mod http;
mod openai;
mod resume;
mod sse;

use sympozium_sigv4 as sigv4;

use futures_util::future::BoxFuture;
use serde_json::Value;

pub use anthropic::Anthropic;
pub use aws_creds::AwsCredentials;
pub use bedrock::Bedrock;
pub use failover::Failover;
pub use http::Http;
pub use openai::OpenAi;
pub use sigv4::{SigningInput, sign};

/// `YYYYMMDD'T'HHMMSS'Z'` for a Unix time (shared with timestamp formatting).
pub fn amz_date_pub(unix_secs: u64) -> String {
    sigv4::amz_date(unix_secs)
}

use crate::config::{Config, ModelTarget};
use crate::error::LlmError;

/// A function the model may call.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// JSON schema of the arguments (`type: object`).
    pub parameters: Value,
}

/// A tool call the model made.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// Provider's call id.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Raw JSON arguments.
    pub arguments: String,
}

/// Extended-thinking output that must be echoed back (Anthropic requires it with tool use).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Thinking {
    /// Reasoning text.
    pub text: String,
    /// Provider signature.
    pub signature: String,
    /// Encrypted reasoning the provider redacted (Anthropic `redacted_thinking.data`, Bedrock
    /// `redactedContent`); echoed back verbatim. Empty for normal thinking.
    pub redacted: String,
}

/// The result of one tool call as fed back to the model.
#[derive(Debug, Clone)]
pub struct ToolResult {
    /// The call it answers.
    pub call_id: String,
    /// The tool's name.
    pub name: String,
    /// Text result.
    pub content: String,
    /// Whether it failed.
    pub is_error: bool,
}

/// One conversation entry.
#[derive(Debug, Clone)]
pub enum Message {
    /// The user's task.
    User(String),
    /// A model turn.
    Assistant {
        /// Text.
        text: String,
        /// Tool calls.
        tool_calls: Vec<ToolCall>,
        /// Thinking blocks.
        thinking: Vec<Thinking>,
    },
    /// Results of the previous turn's tool calls.
    ToolResults(Vec<ToolResult>),
}

/// What a provider is asked.
#[derive(Debug, Clone, Copy)]
pub struct ChatRequest<'a> {
    /// System prompt.
    pub system: &'a str,
    /// Conversation so far.
    pub messages: &'a [Message],
    /// Tools offered.
    pub tools: &'a [ToolSpec],
}

/// Tokens used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt/input tokens.
    pub input: u64,
    /// Completion/output tokens.
    pub output: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Self) {
        self.input = self.input.saturating_add(other.input);
        self.output = self.output.saturating_add(other.output);
    }
}

/// One model turn.
#[derive(Debug, Clone, Default)]
pub struct Turn {
    /// Assistant text.
    pub text: String,
    /// Tool calls requested.
    pub tool_calls: Vec<ToolCall>,
    /// Thinking blocks.
    pub thinking: Vec<Thinking>,
    /// Whether the model stopped to use tools (`tool_calls` / `tool_use`).
    pub wants_tools: bool,
    /// Usage of this turn.
    pub usage: Usage,
}

/// Receives text as the model produces it.
pub trait StreamSink: Send {
    /// A piece of assistant text.
    fn text(&mut self, delta: &str);
    /// The current turn ended; write out anything buffered.
    fn flush(&mut self) {}
}

/// A sink that drops everything (non-streaming callers, tests).
pub struct NoSink;

impl StreamSink for NoSink {
    fn text(&mut self, _delta: &str) {}
}

/// One LLM API.
pub trait Provider: Send + Sync {
    /// Display name used in errors (`OpenAI`, `Anthropic`, …).
    fn name(&self) -> &'static str;
    /// Runs one turn.
    fn complete<'a>(
        &'a self,
        request: ChatRequest<'a>,
        sink: &'a mut dyn StreamSink,
    ) -> BoxFuture<'a, Result<Turn, LlmError>>;
}

/// Builds the provider for one target.
pub fn provider_for(
    target: &ModelTarget,
    config: &Config,
    aws: &AwsCredentials,
) -> Result<Box<dyn Provider>, LlmError> {
    let http = Http::new(&config.llm, target.is_local())?;
    let provider: Box<dyn Provider> = match target.provider.as_str() {
        sympozium_protocol::provider::ANTHROPIC => Box::new(Anthropic::new(target, config.thinking, http)),
        sympozium_protocol::provider::BEDROCK => {
            Box::new(Bedrock::new(target, config.thinking, http, aws.clone())?)
        }
        _ => Box::new(OpenAi::new(target, config.thinking, &config.azure_api_version, http)?),
    };
    Ok(Box::new(resume::ResumeOnInterrupt::new(provider, config.llm.max_retries, config.llm.retry_backoff)))
}

/// Builds the primary provider wrapped with its fallbacks.
pub fn build(config: &Config, aws: &AwsCredentials) -> Result<Box<dyn Provider>, LlmError> {
    let primary = provider_for(&config.model, config, aws)?;
    if config.fallbacks.is_empty() {
        return Ok(primary);
    }
    let mut chain = vec![primary];
    for target in &config.fallbacks {
        chain.push(provider_for(target, config, aws)?);
    }
    Ok(Box::new(Failover::new(chain)))
}
