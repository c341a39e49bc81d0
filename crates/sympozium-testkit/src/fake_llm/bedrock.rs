//! AWS Bedrock Converse wire format: JSON, and ConverseStream's AWS event-stream frames.

use serde_json::{Value, json};

use super::script::{Reply, Turn, split_text};

/// Bedrock's error body: `{"message": ...}`.
pub(crate) fn error_body(message: &str) -> Value {
    json!({"message": message})
}

/// A Converse response.
pub(crate) fn response(turn: &Turn) -> Value {
    let mut content = Vec::new();
    let mut stop = "end_turn";
    if let Reply::Message { text, tool_calls, thinking, .. } = &turn.reply {
        if let Some(thinking) = thinking {
            content.push(json!({"reasoningContent": {"reasoningText": {"text": thinking, "signature": "fake-signature"}}}));
        }
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

/// CRC-32/IEEE for the event-stream framing.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

/// One AWS event-stream event message.
fn frame(event_type: &str, payload: &Value) -> Vec<u8> {
    encode(
        &[(":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")],
        payload,
    )
}

/// One AWS event-stream message with string headers.
fn encode(header_list: &[(&str, &str)], payload: &Value) -> Vec<u8> {
    let mut headers = Vec::new();
    for (name, value) in header_list {
        headers.push(name.len() as u8);
        headers.extend_from_slice(name.as_bytes());
        headers.push(7);
        headers.extend_from_slice(&(value.len() as u16).to_be_bytes());
        headers.extend_from_slice(value.as_bytes());
    }
    let body = payload.to_string().into_bytes();
    let total = 12 + headers.len() + body.len() + 4;
    let mut message = Vec::with_capacity(total);
    message.extend_from_slice(&(total as u32).to_be_bytes());
    message.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    let prelude_crc = crc32(&message);
    message.extend_from_slice(&prelude_crc.to_be_bytes());
    message.extend_from_slice(&headers);
    message.extend_from_slice(&body);
    let crc = crc32(&message);
    message.extend_from_slice(&crc.to_be_bytes());
    message
}

/// The frames of a ConverseStream response.
pub(crate) fn stream_frames(turn: &Turn) -> Vec<Vec<u8>> {
    let mut frames = vec![frame("messageStart", &json!({"role": "assistant"}))];
    if let Reply::StreamError { message } = &turn.reply {
        let headers = [
            (":exception-type", "serviceUnavailableException"),
            (":content-type", "application/json"),
            (":message-type", "exception"),
        ];
        frames.push(encode(&headers, &json!({"message": message})));
        return frames;
    }
    let mut stop = "end_turn";
    let mut index = 0;
    if let Reply::Message { text, tool_calls, thinking, .. } = &turn.reply {
        if let Some(thinking) = thinking {
            for piece in split_text(thinking, turn.stream_pieces) {
                frames.push(frame(
                    "contentBlockDelta",
                    &json!({"contentBlockIndex": index, "delta": {"reasoningContent": {"text": piece}}}),
                ));
            }
            frames.push(frame("contentBlockDelta",
                &json!({"contentBlockIndex": index, "delta": {"reasoningContent": {"signature": "fake-signature"}}})));
            frames.push(frame("contentBlockStop", &json!({"contentBlockIndex": index})));
            index += 1;
        }
        if !text.is_empty() {
            for piece in split_text(text, turn.stream_pieces) {
                frames.push(frame(
                    "contentBlockDelta",
                    &json!({"contentBlockIndex": index, "delta": {"text": piece}}),
                ));
            }
            frames.push(frame("contentBlockStop", &json!({"contentBlockIndex": index})));
            index += 1;
        }
        for call in tool_calls {
            stop = "tool_use";
            frames.push(frame(
                "contentBlockStart",
                &json!({"contentBlockIndex": index,
                "start": {"toolUse": {"toolUseId": call.id, "name": call.name}}}),
            ));
            for piece in split_text(&call.arguments, 3) {
                frames.push(frame(
                    "contentBlockDelta",
                    &json!({"contentBlockIndex": index, "delta": {"toolUse": {"input": piece}}}),
                ));
            }
            frames.push(frame("contentBlockStop", &json!({"contentBlockIndex": index})));
            index += 1;
        }
    }
    frames.push(frame("messageStop", &json!({"stopReason": stop})));
    frames.push(frame(
        "metadata",
        &json!({"usage": {"inputTokens": turn.input_tokens,
        "outputTokens": turn.output_tokens, "totalTokens": turn.input_tokens + turn.output_tokens},
        "metrics": {"latencyMs": 1}}),
    ));
    frames
}
