//! AWS Bedrock Converse wire format (non-streaming).

use serde_json::{Value, json};

use super::script::{Reply, Turn};

/// Bedrock's error body: `{"message": ...}`.
pub(crate) fn error_body(message: &str) -> Value {
    json!({"message": message})
}

/// A Converse response.
pub(crate) fn response(turn: &Turn) -> Value {
    let mut content = Vec::new();
    let mut stop = "end_turn";
    if let Reply::Message { text, tool_calls, .. } = &turn.reply {
        if !text.is_empty() {
            content.push(json!({"text": text}));
        }
        for call in tool_calls {
            stop = "tool_use";
            let input: Value = serde_json::from_str(&call.arguments).unwrap_or(Value::Null);
            content.push(json!({"toolUse": {"toolUseId": call.id, "name": call.name, "input": input}}));
        }
    }
    json!({"output": {"message": {"role": "assistant", "content": content}},
           "stopReason": stop,
           "usage": {"inputTokens": turn.input_tokens, "outputTokens": turn.output_tokens,
                     "totalTokens": turn.input_tokens + turn.output_tokens},
           "metrics": {"latencyMs": 1}})
}
