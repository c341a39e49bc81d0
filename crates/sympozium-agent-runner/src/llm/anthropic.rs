//! Anthropic Messages API: `tool_use` / `tool_result` blocks, SSE streaming and extended
//! thinking (`thinking: {type: enabled, budget_tokens}`).

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::http::{Http, read_sse};
use super::{ChatRequest, Message, Provider, StreamSink, Thinking as ThinkingBlock, ToolCall, Turn, Usage};
use crate::config::{ModelTarget, Thinking};
use crate::error::LlmError;

const VERSION: &str = "2023-06-01";
/// Answer budget, as in the original runner; thinking budgets come on top of it.
const MAX_TOKENS: u64 = 8192;
const NAME: &str = "Anthropic";

/// Thinking budget per effort level (the API's minimum is 1024).
pub(crate) fn thinking_budget(thinking: Thinking) -> Option<u64> {
    match thinking {
        Thinking::Off => None,
        Thinking::Low => Some(1024),
        Thinking::Medium => Some(4096),
        Thinking::High => Some(16384),
    }
}

/// The Anthropic Messages endpoint.
pub struct Anthropic {
    url: String,
    model: String,
    api_key: String,
    thinking: Thinking,
    http: Http,
}

impl Anthropic {
    /// Configures the endpoint for `target` (`MODEL_BASE_URL` is the host root).
    pub fn new(target: &ModelTarget, thinking: Thinking, http: Http) -> Self {
        let base = if target.base_url.is_empty() {
            sympozium_protocol::provider::ANTHROPIC_BASE_URL
        } else {
            target.base_url.as_str()
        };
        let base = base.strip_suffix("/v1").unwrap_or(base);
        Self {
            url: format!("{base}/v1/messages"),
            model: target.model.clone(),
            api_key: target.api_key.clone(),
            thinking,
            http,
        }
    }

    fn body(&self, request: &ChatRequest<'_>, stream: bool) -> Value {
        let mut messages: Vec<Value> = Vec::new();
        for message in request.messages {
            match message {
                Message::User(text) => {
                    messages.push(json!({"role": "user", "content": [{"type": "text", "text": text}]}))
                }
                Message::Assistant { text, tool_calls, thinking } => {
                    let mut content: Vec<Value> = thinking
                        .iter()
                        .map(|t| {
                            if t.redacted.is_empty() {
                                json!({"type": "thinking", "thinking": t.text, "signature": t.signature})
                            } else {
                                json!({"type": "redacted_thinking", "data": t.redacted})
                            }
                        })
                        .collect();
                    if !text.is_empty() {
                        content.push(json!({"type": "text", "text": text}));
                    }
                    for call in tool_calls {
                        let input: Value =
                            serde_json::from_str(&call.arguments).unwrap_or_else(|_| json!({}));
                        content.push(
                            json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}),
                        );
                    }
                    messages.push(json!({"role": "assistant", "content": content}));
                }
                Message::ToolResults(results) => {
                    let content: Vec<Value> = results
                        .iter()
                        .map(|r| {
                            let mut block = json!({"type": "tool_result", "tool_use_id": r.call_id,
                                "content": r.content});
                            if r.is_error {
                                block["is_error"] = json!(true);
                            }
                            block
                        })
                        .collect();
                    messages.push(json!({"role": "user", "content": content}));
                }
            }
        }
        let budget = thinking_budget(self.thinking);
        let mut body = json!({
            "model": self.model,
            "max_tokens": MAX_TOKENS + budget.unwrap_or(0),
            // The system prompt and tools are identical on every turn of the tool loop; marking
            // them cacheable makes later turns cheaper and faster.
            "system": [{"type": "text", "text": request.system, "cache_control": {"type": "ephemeral"}}],
            "messages": messages,
        });
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
                .collect();
            if let Some(last) = body["tools"].as_array_mut().and_then(|t| t.last_mut()) {
                last["cache_control"] = json!({"type": "ephemeral"});
            }
        }
        if let Some(budget) = budget {
            body["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
        }
        if stream {
            body["stream"] = json!(true);
        }
        body
    }

    async fn run(&self, request: ChatRequest<'_>, sink: &mut dyn StreamSink) -> Result<Turn, LlmError> {
        let stream = self.http.stream();
        let body = self.body(&request, stream);
        let response = self
            .http
            .send(NAME, |client| {
                let mut req = client.post(&self.url).header("anthropic-version", VERSION).json(&body);
                if !self.api_key.is_empty() {
                    req = req.header("x-api-key", &self.api_key);
                }
                req
            })
            .await?;
        if !stream {
            let value: Value = response.json().await.map_err(|e| LlmError::Protocol {
                provider: NAME,
                message: format!("decoding response: {e}"),
            })?;
            return Ok(parse_message(&value));
        }
        let mut acc = StreamAcc::default();
        read_sse(NAME, response, |event| {
            let data: Value = match serde_json::from_str(&event.data) {
                Ok(v) => v,
                Err(_) => return Ok(()),
            };
            acc.apply(&data, sink)
        })
        .await?;
        Ok(acc.finish())
    }
}

fn parse_message(value: &Value) -> Turn {
    let mut turn = Turn::default();
    for block in value.get("content").and_then(Value::as_array).into_iter().flatten() {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => turn.text.push_str(block.get("text").and_then(Value::as_str).unwrap_or_default()),
            Some("thinking") => turn.thinking.push(ThinkingBlock {
                text: str_of(block, "thinking"),
                signature: str_of(block, "signature"),
                ..ThinkingBlock::default()
            }),
            Some("redacted_thinking") => turn
                .thinking
                .push(ThinkingBlock { redacted: str_of(block, "data"), ..ThinkingBlock::default() }),
            Some("tool_use") => turn.tool_calls.push(ToolCall {
                id: str_of(block, "id"),
                name: str_of(block, "name"),
                arguments: block.get("input").cloned().unwrap_or_else(|| json!({})).to_string(),
            }),
            _ => {}
        }
    }
    turn.wants_tools =
        value.get("stop_reason").and_then(Value::as_str) == Some("tool_use") && !turn.tool_calls.is_empty();
    turn.usage = Usage {
        input: input_tokens(value.get("usage")),
        output: value.pointer("/usage/output_tokens").and_then(Value::as_u64).unwrap_or(0),
    };
    turn
}

/// Input tokens including those written to and read from the prompt cache, which Anthropic
/// reports separately.
fn input_tokens(usage: Option<&Value>) -> u64 {
    let n = |k: &str| usage.and_then(|u| u.get(k)).and_then(Value::as_u64).unwrap_or(0);
    n("input_tokens")
        .saturating_add(n("cache_creation_input_tokens"))
        .saturating_add(n("cache_read_input_tokens"))
}

fn str_of(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

enum Block {
    Text(String),
    Thinking(ThinkingBlock),
    Tool(ToolCall),
}

/// Accumulates the streamed events of one message.
#[derive(Default)]
struct StreamAcc {
    blocks: BTreeMap<u64, Block>,
    stop_reason: String,
    usage: Usage,
}

impl StreamAcc {
    fn apply(&mut self, event: &Value, sink: &mut dyn StreamSink) -> Result<(), LlmError> {
        let index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
        match event.get("type").and_then(Value::as_str).unwrap_or_default() {
            "message_start" => {
                self.usage.input = input_tokens(event.pointer("/message/usage"));
                self.usage.output =
                    event.pointer("/message/usage/output_tokens").and_then(Value::as_u64).unwrap_or(0);
            }
            "content_block_start" => {
                let block = event.get("content_block").cloned().unwrap_or(Value::Null);
                let new = match block.get("type").and_then(Value::as_str) {
                    Some("thinking") => Block::Thinking(ThinkingBlock::default()),
                    // Redacted thinking arrives whole in the start event.
                    Some("redacted_thinking") => Block::Thinking(ThinkingBlock {
                        redacted: str_of(&block, "data"),
                        ..ThinkingBlock::default()
                    }),
                    Some("tool_use") => Block::Tool(ToolCall {
                        id: str_of(&block, "id"),
                        name: str_of(&block, "name"),
                        arguments: String::new(),
                    }),
                    _ => Block::Text(String::new()),
                };
                self.blocks.insert(index, new);
            }
            "content_block_delta" => {
                let delta = event.get("delta").cloned().unwrap_or(Value::Null);
                match (self.blocks.get_mut(&index), delta.get("type").and_then(Value::as_str)) {
                    (Some(Block::Text(text)), Some("text_delta")) => {
                        let piece = str_of(&delta, "text");
                        sink.text(&piece);
                        text.push_str(&piece);
                    }
                    (Some(Block::Thinking(t)), Some("thinking_delta")) => {
                        t.text.push_str(&str_of(&delta, "thinking"))
                    }
                    (Some(Block::Thinking(t)), Some("signature_delta")) => {
                        t.signature.push_str(&str_of(&delta, "signature"))
                    }
                    (Some(Block::Tool(call)), Some("input_json_delta")) => {
                        call.arguments.push_str(&str_of(&delta, "partial_json"))
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(stop) = event.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = stop.to_string();
                }
                if let Some(out) = event.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                    self.usage.output = out;
                }
            }
            "error" => {
                let message =
                    event.pointer("/error/message").and_then(Value::as_str).unwrap_or("stream error");
                return Err(LlmError::Interrupted { provider: NAME, message: message.to_string() });
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(self) -> Turn {
        let mut turn = Turn { usage: self.usage, ..Turn::default() };
        for block in self.blocks.into_values() {
            match block {
                Block::Text(t) => turn.text.push_str(&t),
                Block::Thinking(t) => turn.thinking.push(t),
                Block::Tool(mut call) => {
                    if call.arguments.trim().is_empty() {
                        call.arguments = "{}".to_string();
                    }
                    turn.tool_calls.push(call)
                }
            }
        }
        turn.wants_tools = self.stop_reason == "tool_use" && !turn.tool_calls.is_empty();
        turn
    }
}

impl Provider for Anthropic {
    fn name(&self) -> &'static str {
        NAME
    }

    fn complete<'a>(
        &'a self,
        request: ChatRequest<'a>,
        sink: &'a mut dyn StreamSink,
    ) -> BoxFuture<'a, Result<Turn, LlmError>> {
        Box::pin(self.run(request, sink))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Found by the `llm_stream` fuzz target: usage counts near `u64::MAX` overflowed the
    /// sum of plain, cache-written and cache-read input tokens and panicked the runner.
    #[test]
    fn huge_usage_counts_saturate_instead_of_panicking() {
        let turn = parse_message(&json!({"content": [{"type": "text", "text": "hi"}],
            "usage": {"input_tokens": u64::MAX, "cache_creation_input_tokens": u64::MAX,
                      "cache_read_input_tokens": 7, "output_tokens": 3}}));
        assert_eq!(turn.usage.input, u64::MAX);
        assert_eq!(turn.usage.output, 3);
        let mut total = turn.usage;
        total += turn.usage;
        assert_eq!(total.input, u64::MAX, "a run's running total saturates too");
    }
}
