//! Error types. Every message here may reach `result.json`, so none may contain a secret.

use std::time::Duration;

use crate::duration::format_duration;

/// Invalid configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A field has a bad value.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The environment variable.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A field could not be parsed.
    #[error("invalid {field}: {source}")]
    Parse {
        /// The environment variable.
        field: &'static str,
        /// The parser's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A failed LLM call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    /// The provider answered with an error status.
    #[error("{provider} API error (HTTP {status}): {message}")]
    Api {
        /// Display name, e.g. `OpenAI`.
        provider: &'static str,
        /// HTTP status.
        status: u16,
        /// Provider message, at most 500 chars.
        message: String,
    },
    /// The request could not be sent or the response not read.
    #[error("{provider} API error: {message}")]
    Transport {
        /// Display name.
        provider: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A streamed response broke off (connection lost, in-stream overload error).
    #[error("{provider} API error: stream interrupted: {message}")]
    Interrupted {
        /// Display name.
        provider: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The response made no sense (e.g. no choices).
    #[error("{provider} API error: {message}")]
    Protocol {
        /// Display name.
        provider: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The provider cannot be used as configured.
    #[error("{0}")]
    Config(String),
}

impl LlmError {
    /// Whether trying again (or another model) might help.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Api { status, .. } => *status == 408 || *status == 429 || *status >= 500,
            Self::Transport { .. } | Self::Interrupted { .. } => true,
            Self::Protocol { .. } | Self::Config(_) => false,
        }
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No task anywhere.
    #[error("no task provided: set TASK or write {0}")]
    MissingTask(String),
    /// Configuration problem detected at run time.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The LLM call failed.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// Too many tool rounds.
    #[error("exceeded maximum tool-call iterations ({0})")]
    IterationLimit(u32),
    /// Every tool call failed too many rounds in a row.
    #[error("aborting after {count} consecutive rounds of failed tool calls; last failures: {last}")]
    CircuitBreaker {
        /// Rounds.
        count: u32,
        /// The last round's failures.
        last: String,
    },
    /// RUN_TIMEOUT elapsed.
    #[error("run exceeded RUN_TIMEOUT ({})", format_duration(*.0))]
    RunTimeout(Duration),
    /// The process was asked to stop.
    #[error("run terminated by {0} before it finished")]
    Terminated(&'static str),
    /// Writing outputs failed.
    #[error("writing {path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// Truncates `s` to at most `max` bytes on a char boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
