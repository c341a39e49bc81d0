//! OpenAI Chat Completions, also spoken by Azure OpenAI, Ollama, LM Studio, vLLM, llama.cpp
//! and any OpenAI-compatible `MODEL_BASE_URL`.

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use sympozium_protocol::provider;

use super::http::{Http, read_sse};
use super::{ChatRequest, Message, Provider, StreamSink, ToolCall, Turn, Usage};
use crate::config::{ModelTarget, Thinking};
use crate::error::LlmError;

/// An OpenAI-compatible endpoint.
pub struct OpenAi {
    name: &'static str,
    url: String,
    model: String,
    api_key: String,
    azure: bool,
    include_usage: bool,
    thinking: Thinking,
    http: Http,
}

impl OpenAi {
    /// Configures the endpoint for `target`.
    pub fn new(
        target: &ModelTarget,
        thinking: Thinking,
        azure_api_version: &str,
        http: Http,
    ) -> Result<Self, LlmError> {
        let azure = target.provider == provider::AZURE_OPENAI;
        let (name, url) = if azure {
            if target.base_url.is_empty() {
                return Err(LlmError::Config("Azure OpenAI requires MODEL_BASE_URL to be set".into()));
            }
            (
                "Azure OpenAI",
                format!(
                    "{}/openai/deployments/{}/chat/completions?api-version={}",
                    target.base_url, target.model, azure_api_version
                ),
            )
        } else {
            let base = match target.base_url.as_str() {
                "" => provider::local_base_url(&target.provider).unwrap_or(provider::OPENAI_BASE_URL),
                base => base,
            };
            ("OpenAI", format!("{base}/chat/completions"))
        };
        Ok(Self {
            name,
            url,
            model: target.model.clone(),
            api_key: target.api_key.clone(),
            azure,
            // Azure rejects `stream_options` before api-version 2024-09-01 (dates compare
            // lexicographically); without it streamed usage is simply not reported.
            include_usage: !azure || azure_api_version >= "2024-09-01",
            thinking,
            http,
        })
    }

    fn body(&self, request: &ChatRequest<'_>, stream: bool) -> Value {
        let mut messages = vec![json!({"role": "system", "content": request.system})];
        for message in request.messages {
            match message {
                Message::User(text) => messages.push(json!({"role": "user", "content": text})),
                Message::Assistant { text, tool_calls, .. } => {
                    let mut m = json!({"role": "assistant",
                        "content": if text.is_empty() { Value::Null } else { json!(text) }});
                    if !tool_calls.is_empty() {
                        m["tool_calls"] = tool_calls
                            .iter()
                            .map(|c| {
                                json!({"id": c.id, "type": "function",
                                "function": {"name": c.name, "arguments": c.arguments}})
                            })
                            .collect();
                    }
                    messages.push(m);
                }
                Message::ToolResults(results) => {
                    for r in results {
                        messages
                            .push(json!({"role": "tool", "tool_call_id": r.call_id, "content": r.content}));
                    }
                }
            }
        }
        let mut body = json!({"model": self.model, "messages": messages});
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(|t| {
                    json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters}})
                })
                .collect();
        }
        let effort = match self.thinking {
            Thinking::Off => None,
            Thinking::Low => Some("low"),
            Thinking::Medium => Some("medium"),
            Thinking::High => Some("high"),
        };
        if let Some(effort) = effort {
            body["reasoning_effort"] = json!(effort);
        }
        if stream {
            body["stream"] = json!(true);
            if self.include_usage {
                body["stream_options"] = json!({"include_usage": true});
            }
        }
        body
    }

    async fn run(&self, request: ChatRequest<'_>, sink: &mut dyn StreamSink) -> Result<Turn, LlmError> {
        let stream = self.http.stream();
        let body = self.body(&request, stream);
        let response = self
            .http
            .send(self.name, |client| {
                let mut req = client.post(&self.url).json(&body);
                if !self.api_key.is_empty() {
                    req = if self.azure {
                        req.header("api-key", &self.api_key)
                    } else {
                        req.bearer_auth(&self.api_key)
                    };
                }
                req
            })
            .await?;
        if !stream {
            let value: Value = response.json().await.map_err(|e| LlmError::Protocol {
                provider: self.name,
                message: format!("decoding response: {e}"),
            })?;
            return self.parse(&value);
        }
        let mut acc = StreamAcc::default();
        let name = self.name;
        read_sse(name, response, |event| {
            if event.data == "[DONE]" {
                return Ok(());
            }
            let chunk: Value = serde_json::from_str(&event.data).map_err(|e| LlmError::Protocol {
                provider: name,
                message: format!("bad stream chunk: {e}"),
            })?;
            if let Some(message) = chunk.pointer("/error/message").and_then(Value::as_str) {
                return Err(LlmError::Interrupted { provider: name, message: message.to_string() });
            }
            acc.apply(&chunk, sink);
            Ok(())
        })
        .await?;
        acc.finish(self.name)
    }

    fn parse(&self, value: &Value) -> Result<Turn, LlmError> {
        let choice = value
            .get("choices")
            .and_then(|c| c.get(0))
            .ok_or(LlmError::Protocol { provider: self.name, message: "response has no choices".into() })?;
        let message = choice.get("message").cloned().unwrap_or(Value::Null);
        let tool_calls: Vec<ToolCall> = message
            .get("tool_calls")
            .and_then(Value::as_array)
            .map(|calls| {
                calls
                    .iter()
                    .map(|c| ToolCall {
                        id: str_at(c, "/id"),
                        name: str_at(c, "/function/name"),
                        arguments: str_at(c, "/function/arguments"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let finish = str_at(choice, "/finish_reason");
        Ok(Turn {
            text: str_at(&message, "/content"),
            // Some OpenAI-compatible servers end tool-call turns with "stop"; any complete
            // tool call is honoured (a "length" cut leaves arguments truncated, so not then).
            wants_tools: finish != "length" && !tool_calls.is_empty(),
            tool_calls,
            thinking: Vec::new(),
            usage: usage(value),
        })
    }
}

fn str_at(v: &Value, pointer: &str) -> String {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn usage(v: &Value) -> Usage {
    let n = |p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    Usage { input: n("/usage/prompt_tokens"), output: n("/usage/completion_tokens") }
}

/// Accumulates `chat.completion.chunk`s.
#[derive(Default)]
struct StreamAcc {
    text: String,
    calls: BTreeMap<u64, ToolCall>,
    finish: String,
    usage: Usage,
    saw_choice: bool,
}

impl StreamAcc {
    fn apply(&mut self, chunk: &Value, sink: &mut dyn StreamSink) {
        if chunk.get("usage").is_some_and(Value::is_object) {
            self.usage = usage(chunk);
        }
        let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else { return };
        self.saw_choice = true;
        if let Some(delta) = choice.pointer("/delta/content").and_then(Value::as_str)
            && !delta.is_empty()
        {
            self.text.push_str(delta);
            sink.text(delta);
        }
        if let Some(calls) = choice.pointer("/delta/tool_calls").and_then(Value::as_array) {
            for call in calls {
                let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                let entry = self.calls.entry(index).or_insert_with(|| ToolCall {
                    id: String::new(),
                    name: String::new(),
                    arguments: String::new(),
                });
                if let Some(id) = call.get("id").and_then(Value::as_str) {
                    entry.id = id.to_string();
                }
                if let Some(name) = call.pointer("/function/name").and_then(Value::as_str) {
                    entry.name.push_str(name);
                }
                if let Some(args) = call.pointer("/function/arguments").and_then(Value::as_str) {
                    entry.arguments.push_str(args);
                }
            }
        }
        if let Some(finish) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = finish.to_string();
        }
    }

    fn finish(self, provider: &'static str) -> Result<Turn, LlmError> {
        if !self.saw_choice {
            return Err(LlmError::Protocol { provider, message: "response has no choices".into() });
        }
        let tool_calls: Vec<ToolCall> = self.calls.into_values().collect();
        Ok(Turn {
            wants_tools: self.finish != "length" && !tool_calls.is_empty(),
            text: self.text,
            tool_calls,
            thinking: Vec::new(),
            usage: self.usage,
        })
    }
}

impl Provider for OpenAi {
    fn name(&self) -> &'static str {
        self.name
    }

    fn complete<'a>(
        &'a self,
        request: ChatRequest<'a>,
        sink: &'a mut dyn StreamSink,
    ) -> BoxFuture<'a, Result<Turn, LlmError>> {
        Box::pin(self.run(request, sink))
    }
}
