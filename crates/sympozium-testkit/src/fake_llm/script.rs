//! The script a test writes: one [`Turn`] per expected LLM request.

use std::time::Duration;

use serde_json::Value;

/// One tool call the fake model makes.
#[derive(Debug, Clone)]
pub struct ToolCallSpec {
    /// Call id as the provider would assign it.
    pub id: String,
    /// Tool (function) name.
    pub name: String,
    /// Arguments. OpenAI sends them as a JSON-encoded string; the raw string is kept so a
    /// test can send malformed JSON on purpose.
    pub arguments: String,
}

/// What the fake model answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A normal assistant message: optional text, optional tool calls.
    Message {
        /// Assistant text (may be empty when only tools are called).
        text: String,
        /// Tool calls, in order.
        tool_calls: Vec<ToolCallSpec>,
        /// Extended-thinking text (Anthropic `thinking` block; ignored by OpenAI format).
        thinking: Option<String>,
        /// Redacted thinking data (Anthropic `redacted_thinking` block).
        redacted_thinking: Option<String>,
    },
    /// An HTTP error in the provider's error format.
    Error {
        /// HTTP status code.
        status: u16,
        /// Error message.
        message: String,
        /// `Retry-After` header value in seconds, if any.
        retry_after: Option<u64>,
    },
    /// A streamed response that starts with `200 OK` and then breaks off with the provider's
    /// in-stream error (OpenAI `error` chunk, Anthropic `error` event, Bedrock exception
    /// frame). Non-streaming requests get a 500 instead.
    StreamError {
        /// Error message.
        message: String,
    },
}

/// One scripted response.
#[derive(Debug, Clone)]
pub struct Turn {
    /// The answer.
    pub reply: Reply,
    /// Prompt / input tokens reported.
    pub input_tokens: u64,
    /// Completion / output tokens reported.
    pub output_tokens: u64,
    /// Prompt-cache read tokens (Anthropic `cache_read_input_tokens`).
    pub cache_read_tokens: u64,
    /// How many pieces the text is split into when streaming.
    pub stream_pieces: usize,
    /// Pause between streamed events, so chunks really arrive over time.
    pub stream_delay: Duration,
    /// Pause before answering at all (for timeout tests).
    pub delay: Duration,
    /// Append the tool results of the request to the text, one per line, so the answer
    /// carries what the tools returned (as a real model's answer would).
    pub echo_tool_results: bool,
}

impl Turn {
    fn message(text: &str, tool_calls: Vec<ToolCallSpec>) -> Self {
        Self {
            reply: Reply::Message {
                text: text.to_string(),
                tool_calls,
                thinking: None,
                redacted_thinking: None,
            },
            input_tokens: 10,
            output_tokens: 5,
            cache_read_tokens: 0,
            stream_pieces: 4,
            stream_delay: Duration::from_millis(5),
            delay: Duration::ZERO,
            echo_tool_results: false,
        }
    }

    /// A final text answer.
    pub fn text(text: &str) -> Self {
        Self::message(text, Vec::new())
    }

    /// A final answer: `text` followed by every tool result of the request (OpenAI `tool`
    /// messages, Anthropic `tool_result` blocks), one per line.
    pub fn echo_tool_results(text: &str) -> Self {
        let mut turn = Self::message(text, Vec::new());
        turn.echo_tool_results = true;
        turn
    }

    /// A turn that calls one tool with JSON arguments.
    pub fn tool_call(name: &str, arguments: Value) -> Self {
        Self::message("", Vec::new()).and_tool_call(name, arguments)
    }

    /// A turn that calls one tool with a raw (possibly malformed) argument string.
    pub fn tool_call_raw(name: &str, arguments: &str) -> Self {
        let mut turn = Self::message("", Vec::new());
        turn.push_call(name, arguments.to_string());
        turn
    }

    /// Adds another tool call to this turn.
    pub fn and_tool_call(mut self, name: &str, arguments: Value) -> Self {
        self.push_call(name, arguments.to_string());
        self
    }

    fn push_call(&mut self, name: &str, arguments: String) {
        if let Reply::Message { tool_calls, .. } = &mut self.reply {
            let id = format!("call_{}_{}", name, tool_calls.len() + 1);
            tool_calls.push(ToolCallSpec { id, name: name.to_string(), arguments });
        }
    }

    /// Sets assistant text shown alongside tool calls.
    pub fn with_text(mut self, new_text: &str) -> Self {
        if let Reply::Message { text, .. } = &mut self.reply {
            *text = new_text.to_string();
        }
        self
    }

    /// Adds an extended-thinking block (Anthropic format).
    pub fn with_thinking(mut self, reasoning: &str) -> Self {
        if let Reply::Message { thinking, .. } = &mut self.reply {
            *thinking = Some(reasoning.to_string());
        }
        self
    }

    /// Adds a redacted-thinking block (Anthropic format).
    pub fn with_redacted_thinking(mut self, data: &str) -> Self {
        if let Reply::Message { redacted_thinking, .. } = &mut self.reply {
            *redacted_thinking = Some(data.to_string());
        }
        self
    }

    /// An HTTP error response.
    pub fn error(status: u16, message: &str) -> Self {
        let mut turn = Self::message("", Vec::new());
        turn.reply = Reply::Error { status, message: message.to_string(), retry_after: None };
        turn
    }

    /// A stream that fails after it started.
    pub fn stream_error(message: &str) -> Self {
        let mut turn = Self::message("", Vec::new());
        turn.reply = Reply::StreamError { message: message.to_string() };
        turn
    }

    /// Adds a `Retry-After` header (seconds) to an error turn.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        if let Reply::Error { retry_after, .. } = &mut self.reply {
            *retry_after = Some(seconds);
        }
        self
    }

    /// Sets the token usage reported for this turn.
    pub fn with_usage(mut self, input: u64, output: u64) -> Self {
        self.input_tokens = input;
        self.output_tokens = output;
        self
    }

    /// Reports `tokens` prompt-cache reads (Anthropic format).
    pub fn with_cache_read(mut self, tokens: u64) -> Self {
        self.cache_read_tokens = tokens;
        self
    }

    /// Streams the text in `pieces` deltas, `delay` apart.
    pub fn streamed(mut self, pieces: usize, delay: Duration) -> Self {
        self.stream_pieces = pieces.max(1);
        self.stream_delay = delay;
        self
    }

    /// Waits `delay` before answering.
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// Splits `text` into at most `pieces` non-empty parts on char boundaries.
pub(crate) fn split_text(text: &str, pieces: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return Vec::new();
    }
    let size = chars.len().div_ceil(pieces.max(1));
    chars.chunks(size.max(1)).map(|c| c.iter().collect()).collect()
}
