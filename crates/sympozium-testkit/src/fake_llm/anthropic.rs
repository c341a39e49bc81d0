//! Anthropic Messages wire format (JSON and the named SSE events).

use serde_json::{Value, json};

use super::script::{Reply, Turn, split_text};

/// `{"type":"error","error":{...}}` as Anthropic returns it.
pub(crate) fn error_body(status: u16, message: &str) -> Value {
    let kind = match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    };
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

const SIGNATURE: &str = "fake-signature";

fn blocks(turn: &Turn) -> (Vec<Value>, &'static str) {
    let mut content = Vec::new();
    let mut stop = "end_turn";
    if let Reply::Message { text, tool_calls, thinking, redacted_thinking } = &turn.reply {
        if let Some(thinking) = thinking {
            content.push(json!({"type": "thinking", "thinking": thinking, "signature": SIGNATURE}));
        }
        if let Some(data) = redacted_thinking {
            content.push(json!({"type": "redacted_thinking", "data": data}));
        }
        if !text.is_empty() {
            content.push(json!({"type": "text", "text": text}));
        }
        for call in tool_calls {
            stop = "tool_use";
            let input: Value =
                serde_json::from_str(&call.arguments).unwrap_or(Value::String(call.arguments.clone()));
            content.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}));
        }
    }
    (content, stop)
}

/// A non-streaming message.
pub(crate) fn response(turn: &Turn, model: &str) -> Value {
    let (content, stop) = blocks(turn);
    json!({"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
           "content": content, "stop_reason": stop, "stop_sequence": null,
           "usage": {"input_tokens": turn.input_tokens, "output_tokens": turn.output_tokens,
                     "cache_creation_input_tokens": 0, "cache_read_input_tokens": turn.cache_read_tokens}})
}

fn event(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// The SSE events of a streamed message.
pub(crate) fn stream_events(turn: &Turn, model: &str) -> Vec<String> {
    let (content, stop) = blocks(turn);
    let mut events = vec![event(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message",
            "role": "assistant", "model": model, "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": {"input_tokens": turn.input_tokens, "output_tokens": 1,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": turn.cache_read_tokens}}}),
    )];
    events.push(event("ping", json!({"type": "ping"})));
    if let Reply::StreamError { message } = &turn.reply {
        events.push(event(
            "error",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": message}}),
        ));
        return events;
    }
    for (index, block) in content.iter().enumerate() {
        let kind = block.get("type").and_then(Value::as_str).unwrap_or_default();
        let (start, deltas): (Value, Vec<Value>) = match kind {
            "thinking" => {
                let text = block.get("thinking").and_then(Value::as_str).unwrap_or_default();
                let mut deltas: Vec<Value> = split_text(text, turn.stream_pieces)
                    .into_iter()
                    .map(|p| json!({"type": "thinking_delta", "thinking": p}))
                    .collect();
                deltas.push(json!({"type": "signature_delta", "signature": SIGNATURE}));
                (json!({"type": "thinking", "thinking": "", "signature": ""}), deltas)
            }
            "redacted_thinking" => (block.clone(), Vec::new()),
            "text" => {
                let text = block.get("text").and_then(Value::as_str).unwrap_or_default();
                let deltas = split_text(text, turn.stream_pieces)
                    .into_iter()
                    .map(|p| json!({"type": "text_delta", "text": p}))
                    .collect();
                (json!({"type": "text", "text": ""}), deltas)
            }
            _ => {
                let input = block.get("input").cloned().unwrap_or(Value::Null).to_string();
                let deltas = split_text(&input, 3)
                    .into_iter()
                    .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
                    .collect();
                (json!({"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}), deltas)
            }
        };
        events.push(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": start}),
        ));
        for delta in deltas {
            events.push(event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": delta}),
            ));
        }
        events.push(event("content_block_stop", json!({"type": "content_block_stop", "index": index})));
    }
    events.push(event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
               "usage": {"output_tokens": turn.output_tokens}}),
    ));
    events.push(event("message_stop", json!({"type": "message_stop"})));
    events
}
