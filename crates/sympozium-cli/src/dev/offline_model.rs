//! The offline scripted model: an OpenAI-compatible chat-completions endpoint that needs no
//! network and no key, so the one-machine stack shows the whole pipeline (run → tools →
//! memory → answer) on a machine without a provider. Every answer says it was scripted.
//!
//! The script is stateless and reads the conversation it is sent: when the agent can store
//! memories and has not yet done so in this conversation, the model asks to store a note about
//! the task; otherwise it answers.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// The name the model reports, and the label every answer carries.
pub const MODEL: &str = "sympozium-offline";
/// First line of every answer: nobody should mistake it for a real model's.
pub const LABEL: &str = "[offline scripted model: no LLM was called]";

/// What the script does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Call a tool with JSON arguments.
    Call { name: String, arguments: Value },
    /// Answer with text.
    Answer(String),
}

fn text_of(message: &Value) -> String {
    match &message["content"] {
        Value::String(s) => s.clone(),
        // Content parts: keep the text ones.
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"),
        _ => String::new(),
    }
}

/// The task: the last user message, trimmed to one paragraph for quoting.
fn task(messages: &[Value]) -> String {
    let last = messages.iter().rev().find(|m| m["role"] == "user").map(text_of).unwrap_or_default();
    // Scheduled runs put the memory first and the task under a `## Task` heading.
    let task = last.rsplit_once("## Task\n").map(|(_, t)| t).unwrap_or(&last);
    let first_paragraph = task.split("\n\n").map(str::trim).find(|p| !p.is_empty()).unwrap_or("");
    let mut quoted: String = first_paragraph.chars().take(240).collect();
    if first_paragraph.chars().count() > 240 {
        quoted.push('…');
    }
    quoted
}

fn offers(request: &Value, tool: &str) -> bool {
    request["tools"].as_array().is_some_and(|tools| tools.iter().any(|t| t["function"]["name"] == tool))
}

/// Decides the next step for one chat-completions request.
pub fn next_step(request: &Value) -> Step {
    let messages = request["messages"].as_array().map(Vec::as_slice).unwrap_or_default();
    let task = task(messages);
    let stored = messages.iter().any(|m| {
        m["tool_calls"]
            .as_array()
            .is_some_and(|calls| calls.iter().any(|c| c["function"]["name"] == "memory_store"))
    });
    if offers(request, "memory_store") && !stored {
        return Step::Call {
            name: "memory_store".into(),
            arguments: json!({
                "content": format!("Offline demo run handled the task: {task}"),
                "tags": ["offline-demo"],
            }),
        };
    }
    let memory_note = if stored {
        let ok = messages.iter().rev().find(|m| m["role"] == "tool").map(text_of).unwrap_or_default();
        format!("\n\nI stored a note about this task in my memory (the memory server said: {}).", ok.trim())
    } else {
        String::new()
    };
    Step::Answer(format!(
        "{LABEL}\n\nTask received: \"{task}\"\n\nThe pipeline worked end to end: the controller started this \
         run as a locked-down pod, the runner called the model and its tools, and this answer went back \
         through the IPC bridge. Set OPENAI_API_KEY, ANTHROPIC_API_KEY or an Ollama URL for real answers.{memory_note}"
    ))
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

fn usage(request: &Value, step: &Step) -> Value {
    let prompt: u64 =
        request["messages"].as_array().map(|m| m.iter().map(|m| words(&text_of(m))).sum()).unwrap_or(0);
    let completion = match step {
        Step::Answer(text) => words(text),
        Step::Call { arguments, .. } => words(&arguments.to_string()),
    };
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

fn created() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn tool_call(name: &str, arguments: &Value) -> Value {
    json!({"id": "call_offline_1", "type": "function",
           "function": {"name": name, "arguments": arguments.to_string()}})
}

/// The non-streaming response body.
pub fn completion(request: &Value, step: &Step) -> Value {
    let (message, finish) = match step {
        Step::Answer(text) => (json!({"role": "assistant", "content": text}), "stop"),
        Step::Call { name, arguments } => (
            json!({"role": "assistant", "content": null, "tool_calls": [tool_call(name, arguments)]}),
            "tool_calls",
        ),
    };
    json!({"id": "chatcmpl-offline", "object": "chat.completion", "created": created(), "model": MODEL,
           "choices": [{"index": 0, "message": message, "finish_reason": finish}],
           "usage": usage(request, step)})
}

/// The server-sent events of a streamed response, `[DONE]` included.
pub fn stream_events(request: &Value, step: &Step) -> String {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-offline", "object": "chat.completion.chunk", "created": created(), "model": MODEL,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    let finish = match step {
        Step::Answer(text) => {
            // A few words per chunk, so streaming clients show the answer arriving.
            let parts: Vec<&str> = text.split_inclusive(' ').collect();
            for piece in parts.chunks(6) {
                events.push(chunk(json!({"content": piece.concat()}), Value::Null));
            }
            "stop"
        }
        Step::Call { name, arguments } => {
            let mut call = tool_call(name, arguments);
            call["index"] = json!(0);
            events.push(chunk(json!({"tool_calls": [call]}), Value::Null));
            "tool_calls"
        }
    };
    events.push(chunk(json!({}), json!(finish)));
    if request["stream_options"]["include_usage"] == true {
        events
            .push(json!({"id": "chatcmpl-offline", "object": "chat.completion.chunk", "created": created(),
                           "model": MODEL, "choices": [], "usage": usage(request, step)}));
    }
    let mut body: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    body.push_str("data: [DONE]\n\n");
    body
}

async fn chat(Json(request): Json<Value>) -> Response {
    if !request["messages"].is_array() {
        let error = json!({"error": {"message": "messages: required, an array of chat messages",
                                     "type": "invalid_request_error", "param": "messages"}});
        return (StatusCode::BAD_REQUEST, Json(error)).into_response();
    }
    let step = next_step(&request);
    if request["stream"] == true {
        ([(header::CONTENT_TYPE, "text/event-stream")], stream_events(&request, &step)).into_response()
    } else {
        Json(completion(&request, &step)).into_response()
    }
}

async fn models() -> Json<Value> {
    Json(json!({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "sympozium"}]}))
}

/// The model's routes: chat completions with and without the `/v1` prefix, models, health.
pub fn router() -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .route("/healthz", get(|| async { "ok" }))
}

/// Serves the model until the process is stopped.
pub async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("offline scripted model listening on http://{}/v1", listener.local_addr()?);
    axum::serve(listener, router()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn request(messages: Value, with_memory: bool) -> Value {
        let tools = if with_memory {
            json!([{"type": "function", "function": {"name": "memory_store", "parameters": {}}}])
        } else {
            json!([])
        };
        json!({"model": "gpt-4o", "messages": messages, "tools": tools})
    }

    #[test]
    fn stores_a_memory_once_then_answers_with_the_label() {
        let first = request(
            json!([{"role": "system", "content": "be brief"},
                                   {"role": "user", "content": "## Memory Context\n# Memory\n\n## Task\nCheck the cluster.\n\nMore context"}]),
            true,
        );
        let Step::Call { name, arguments } = next_step(&first) else { panic!("expected a tool call") };
        assert_eq!(name, "memory_store");
        assert_eq!(arguments["content"], "Offline demo run handled the task: Check the cluster.");
        let second = request(
            json!([{"role": "user", "content": "Check the cluster."},
                   {"role": "assistant", "content": null, "tool_calls": [tool_call("memory_store", &arguments)]},
                   {"role": "tool", "tool_call_id": "call_offline_1", "content": "stored memory 7"}]),
            true,
        );
        let Step::Answer(text) = next_step(&second) else { panic!("expected an answer") };
        assert!(
            text.starts_with(LABEL)
                && text.contains("\"Check the cluster.\"")
                && text.contains("stored memory 7")
        );
    }

    #[test]
    fn without_memory_it_answers_at_once_and_streams_the_same_text() {
        let req = request(json!([{"role": "user", "content": "hello"}]), false);
        let step = next_step(&req);
        let Step::Answer(text) = &step else { panic!("expected an answer") };
        let mut streamed = String::new();
        let mut req_usage = req.clone();
        req_usage["stream_options"] = json!({"include_usage": true});
        let events = stream_events(&req_usage, &step);
        assert!(events.ends_with("data: [DONE]\n\n"));
        let mut saw_usage = false;
        for line in events.lines().filter_map(|l| l.strip_prefix("data: ")).filter(|l| *l != "[DONE]") {
            let v: Value = serde_json::from_str(line).unwrap();
            if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
                streamed.push_str(c);
            }
            saw_usage |= v["usage"]["total_tokens"].as_u64().is_some_and(|t| t > 0);
        }
        assert_eq!(&streamed, text);
        assert!(saw_usage);
        assert_eq!(completion(&req, &step)["choices"][0]["finish_reason"], "stop");
    }
}
