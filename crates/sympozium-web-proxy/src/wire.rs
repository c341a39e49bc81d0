//! The OpenAI chat completions wire format: requests in, completions and chunks out.

use serde::Deserialize;
use serde_json::{Value, json};
use sympozium_protocol::conversation;

use crate::error::ApiError;

/// `POST /v1/chat/completions` body (the fields this endpoint reads; others are ignored,
/// as OpenAI-compatible servers do).
#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    /// Requested model (answered with the instance's model).
    #[serde(default)]
    pub model: Option<String>,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Answer as server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Number of choices (only 1 is served).
    #[serde(default)]
    pub n: Option<u32>,
}

/// `stream_options`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    /// Send a last chunk with the token usage.
    #[serde(default)]
    pub include_usage: bool,
}

/// One message of the conversation.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text, or a list of content parts.
    #[serde(default)]
    pub content: Option<Value>,
}

/// What a run is asked: the task (history and the last user message) and the extra system
/// prompt from the request's system messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// The run's task.
    pub task: String,
    /// System and developer messages, joined by blank lines.
    pub system: Option<String>,
}

/// Most characters of earlier turns carried into a run's task; older turns are dropped
/// first.
pub const HISTORY_BUDGET_CHARS: usize = conversation::BUDGET_CHARS;

fn text_of(content: Option<&Value>, index: usize) -> Result<String, ApiError> {
    let param = format!("messages[{index}].content");
    match content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut out = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                match part["type"].as_str() {
                    Some("text") => out.push(part["text"].as_str().unwrap_or_default().to_string()),
                    Some(other) => {
                        return Err(ApiError::invalid(
                            &format!("{param}[{j}].type"),
                            format!("content part type {other:?} is not supported; only \"text\" parts are"),
                        ));
                    }
                    None => {
                        return Err(ApiError::invalid(
                            &format!("{param}[{j}].type"),
                            "each content part needs a type",
                        ));
                    }
                }
            }
            Ok(out.join("\n"))
        }
        Some(_) => Err(ApiError::invalid(&param, "content must be a string or a list of content parts")),
    }
}

/// Validates the request and turns its messages into a run's prompt: system/developer
/// messages become the system prompt, earlier user/assistant/tool turns become the
/// conversation so far (newest kept when over [`HISTORY_BUDGET_CHARS`]), and the last user
/// message is the new message.
pub fn prompt(req: &ChatRequest) -> Result<Prompt, ApiError> {
    if req.messages.is_empty() {
        return Err(ApiError::invalid("messages", "messages must not be empty"));
    }
    if req.n.is_some_and(|n| n != 1) {
        return Err(ApiError::invalid("n", "only n=1 is supported"));
    }
    let mut system = Vec::new();
    let mut turns = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        let text = text_of(m.content.as_ref(), i)?;
        match m.role.as_str() {
            "system" | "developer" => system.push(text),
            "user" | "assistant" | "tool" => turns.push((i, m.role.as_str(), text)),
            other => {
                return Err(ApiError::invalid(
                    &format!("messages[{i}].role"),
                    format!("unknown role {other:?}: use system, developer, user, assistant or tool"),
                ));
            }
        }
    }
    let Some(last_user) = turns.iter().rposition(|(_, role, _)| *role == "user") else {
        return Err(ApiError::invalid("messages", "messages must contain a user message"));
    };
    let (_, _, message) = &turns[last_user];
    let newest_first = turns[..last_user].iter().rev().map(|(_, role, text)| {
        let speaker = match *role {
            "user" => "User",
            "assistant" => "Assistant",
            _ => "Tool",
        };
        conversation::line(speaker, text)
    });
    let task = conversation::task(newest_first, message, conversation::HEADING, HISTORY_BUDGET_CHARS);
    let system = system.into_iter().filter(|s| !s.trim().is_empty()).collect::<Vec<_>>();
    Ok(Prompt { task, system: (!system.is_empty()).then(|| system.join("\n\n")) })
}

/// Token counts of a finished run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt: i64,
    /// Completion tokens.
    pub completion: i64,
}

impl Usage {
    /// The OpenAI `usage` object.
    pub fn json(&self) -> Value {
        json!({"prompt_tokens": self.prompt, "completion_tokens": self.completion,
               "total_tokens": self.prompt + self.completion})
    }
}

/// A whole `chat.completion`.
pub fn completion(id: &str, created: i64, model: &str, content: &str, usage: Usage) -> Value {
    json!({
        "id": id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "logprobs": null, "finish_reason": "stop"}],
        "usage": usage.json(),
    })
}

/// One `chat.completion.chunk`: a delta (`role` on the first), or the final chunk with
/// `finish_reason: "stop"`.
pub fn chunk(
    id: &str,
    created: i64,
    model: &str,
    delta: Value,
    finish: Option<&str>,
    with_usage_field: bool,
) -> Value {
    let mut c = json!({
        "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
    });
    if with_usage_field {
        c["usage"] = Value::Null;
    }
    c
}

/// The last chunk with `stream_options.include_usage`: no choices, the usage.
pub fn usage_chunk(id: &str, created: i64, model: &str, usage: Usage) -> Value {
    json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
           "choices": [], "usage": usage.json()})
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn req(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn last_user_message_is_the_task_and_earlier_turns_are_history() {
        let p = prompt(&req(json!({"model": "x", "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Hello Ada."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
            {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]},
        ]})))
        .unwrap();
        assert_eq!(p.system.as_deref(), Some("Be brief.\n\nAnswer in English."));
        assert_eq!(
            p.task,
            "## Conversation so far\nUser: My name is Ada.\nAssistant: Hello Ada.\n\n## New message\nWhat is my name?"
        );
        let single = prompt(&req(json!({"messages": [{"role": "user", "content": "hi"}]}))).unwrap();
        assert_eq!(single, Prompt { task: "hi".into(), system: None });
    }

    #[test]
    fn bad_requests_name_the_field() {
        let e = prompt(&req(json!({"messages": []}))).unwrap_err();
        assert_eq!((e.status.as_u16(), e.param.as_deref()), (400, Some("messages")));
        let e = prompt(&req(json!({"messages": [{"role": "system", "content": "x"}]}))).unwrap_err();
        assert!(e.message.contains("user message"), "{}", e.message);
        let e = prompt(&req(json!({"messages": [{"role": "wizard", "content": "x"}]}))).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
        let e = prompt(&req(json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})))
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].content[0].type"));
        let e = prompt(&req(json!({"n": 3, "messages": [{"role": "user", "content": "x"}]}))).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("n"));
    }

    #[test]
    fn long_history_keeps_the_newest_turns() {
        let mut messages: Vec<Value> = (0..40)
            .map(|i| json!({"role": if i % 2 == 0 {"user"} else {"assistant"}, "content": format!("turn {i} {}", "x".repeat(1000))}))
            .collect();
        messages.push(json!({"role": "user", "content": "now"}));
        let p = prompt(&req(json!({"messages": messages}))).unwrap();
        assert!(p.task.contains("turn 39") && !p.task.contains("turn 0 "), "newest kept");
        assert!(p.task.chars().count() < HISTORY_BUDGET_CHARS + 200);
        assert!(p.task.ends_with("## New message\nnow"));
    }
}
