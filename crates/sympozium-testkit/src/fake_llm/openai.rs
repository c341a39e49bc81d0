//! OpenAI Chat Completions wire format (JSON and `chat.completion.chunk` SSE).

use serde_json::{Value, json};

use super::script::{Reply, Turn, split_text};

const CREATED: u64 = 1_700_000_000;

/// `{"error": {...}}` as OpenAI returns it.
pub(crate) fn error_body(status: u16, message: &str) -> Value {
    let kind = match status {
        401 => "invalid_request_error",
        429 => "rate_limit_exceeded",
        _ => "server_error",
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": kind}})
}

fn parts(turn: &Turn) -> (&str, Vec<Value>) {
    match &turn.reply {
        Reply::Message { text, tool_calls, .. } => (
            text.as_str(),
            tool_calls
                .iter()
                .map(|c| {
                    json!({"id": c.id, "type": "function",
                           "function": {"name": c.name, "arguments": c.arguments}})
                })
                .collect(),
        ),
        Reply::Error { .. } | Reply::StreamError { .. } => ("", Vec::new()),
    }
}

fn usage(turn: &Turn) -> Value {
    json!({"prompt_tokens": turn.input_tokens, "completion_tokens": turn.output_tokens,
           "total_tokens": turn.input_tokens + turn.output_tokens})
}

/// A non-streaming `chat.completion`.
pub(crate) fn response(turn: &Turn, model: &str) -> Value {
    let (text, calls) = parts(turn);
    let finish = if calls.is_empty() { "stop" } else { "tool_calls" };
    let mut message = json!({"role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) }});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    json!({"id": "chatcmpl-fake", "object": "chat.completion", "created": CREATED, "model": model,
           "choices": [{"index": 0, "message": message, "finish_reason": finish}],
           "usage": usage(turn)})
}

fn chunk(model: &str, delta: Value, finish: Option<&str>) -> String {
    let value = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": CREATED,
        "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    format!("data: {value}\n\n")
}

/// The SSE events of a streamed completion, ending with a usage chunk and `[DONE]`.
pub(crate) fn stream_events(turn: &Turn, model: &str) -> Vec<String> {
    let mut events = vec![chunk(model, json!({"role": "assistant", "content": ""}), None)];
    if let Reply::StreamError { message } = &turn.reply {
        let error =
            json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}});
        events.push(format!("data: {error}\n\n"));
        return events;
    }
    let (text, _) = parts(turn);
    for piece in split_text(text, turn.stream_pieces) {
        events.push(chunk(model, json!({"content": piece}), None));
    }
    let mut has_calls = false;
    if let Reply::Message { tool_calls, .. } = &turn.reply {
        for (index, call) in tool_calls.iter().enumerate() {
            has_calls = true;
            events.push(chunk(
                model,
                json!({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                        "function": {"name": call.name, "arguments": ""}}]}),
                None,
            ));
            // Arguments arrive in fragments, as they do from the real API.
            for piece in split_text(&call.arguments, 3) {
                events.push(chunk(
                    model,
                    json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                    None,
                ));
            }
        }
    }
    let finish = if has_calls { "tool_calls" } else { "stop" };
    events.push(chunk(model, json!({}), Some(finish)));
    let usage_chunk = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk",
        "created": CREATED, "model": model, "choices": [], "usage": usage(turn)});
    events.push(format!("data: {usage_chunk}\n\n"));
    events.push("data: [DONE]\n\n".to_string());
    events
}
