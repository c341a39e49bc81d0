//! The HTTP server side of the fake LLM.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::Value;

use super::script::{Reply, Turn};
use super::{anthropic, bedrock, openai};

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Request path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Query string (without `?`), empty when absent.
    pub query: String,
    /// Headers, names lower-cased.
    pub headers: BTreeMap<String, String>,
    /// The JSON body (`Value::Null` when it was not JSON).
    pub body: Value,
    /// When the request arrived (for latency measurements).
    pub at: std::time::Instant,
}

impl RecordedRequest {
    /// A header value by (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// The system prompt in any supported wire format (OpenAI system message, Anthropic and
    /// Bedrock `system` blocks), empty when there is none.
    pub fn system_prompt(&self) -> String {
        if let Some(blocks) = self.body.get("system").and_then(Value::as_array) {
            return blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n");
        }
        self.body
            .get("messages")
            .and_then(Value::as_array)
            .and_then(|m| m.iter().find(|m| m.get("role").and_then(Value::as_str) == Some("system")))
            .and_then(|m| m.get("content").and_then(Value::as_str))
            .unwrap_or_default()
            .to_string()
    }

    /// Names of the tools offered in this request, in any supported wire format.
    pub fn tool_names(&self) -> Vec<String> {
        let from_list = |list: &Value, path: &[&str]| -> Vec<String> {
            list.as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|t| {
                            let mut v = t;
                            for p in path {
                                v = v.get(p)?;
                            }
                            v.as_str().map(str::to_string)
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        if let Some(tools) = self.body.get("tools") {
            if tools.get(0).and_then(|t| t.get("function")).is_some() {
                return from_list(tools, &["function", "name"]);
            }
            return from_list(tools, &["name"]);
        }
        if let Some(tools) = self.body.pointer("/toolConfig/tools") {
            return from_list(tools, &["toolSpec", "name"]);
        }
        Vec::new()
    }
}

#[derive(Default)]
struct Shared {
    script: VecDeque<Turn>,
    requests: Vec<RecordedRequest>,
}

type SharedState = Arc<Mutex<Shared>>;

/// A running fake LLM on `127.0.0.1:<random port>`; stops when dropped.
pub struct FakeLlm {
    addr: SocketAddr,
    state: SharedState,
    task: tokio::task::JoinHandle<()>,
}

impl FakeLlm {
    /// Starts the server with an empty script.
    pub async fn start() -> std::io::Result<Self> {
        let state: SharedState = Arc::default();
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            // The server ends with the test; an accept error has nowhere better to go.
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, state, task })
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL for OpenAI-compatible clients (`http://127.0.0.1:<port>/v1`).
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Base URL for Anthropic and Bedrock clients (`http://127.0.0.1:<port>`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues a turn.
    pub fn push(&self, turn: Turn) -> &Self {
        lock(&self.state).script.push_back(turn);
        self
    }

    /// Queues several turns.
    pub fn script(&self, turns: impl IntoIterator<Item = Turn>) -> &Self {
        lock(&self.state).script.extend(turns);
        self
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state).requests.clone()
    }

    /// Waits (polling, bounded by `timeout`) until at least `n` requests arrived; returns
    /// whether they did.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if lock(&self.state).requests.len() >= n {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// How many scripted turns have not been consumed.
    pub fn remaining(&self) -> usize {
        lock(&self.state).script.len()
    }
}

impl Drop for FakeLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(state: &SharedState) -> std::sync::MutexGuard<'_, Shared> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Clone, Copy)]
enum Protocol {
    OpenAi,
    Anthropic,
    Bedrock,
    BedrockStream,
}

async fn handle(
    State(state): State<SharedState>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let protocol = if path.ends_with("/chat/completions") {
        Protocol::OpenAi
    } else if path.ends_with("/v1/messages") {
        Protocol::Anthropic
    } else if path.starts_with("/model/") && path.ends_with("/converse") {
        Protocol::Bedrock
    } else if path.starts_with("/model/") && path.ends_with("/converse-stream") {
        Protocol::BedrockStream
    } else {
        return plain(StatusCode::NOT_FOUND, "fake LLM: unknown route");
    };
    if method != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "fake LLM: POST only");
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let recorded = RecordedRequest {
        path,
        query: uri.query().unwrap_or_default().to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect(),
        body: body.clone(),
        at: std::time::Instant::now(),
    };
    let turn = {
        let mut shared = lock(&state);
        shared.requests.push(recorded);
        shared.script.pop_front()
    };
    let Some(turn) = turn else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "fake LLM: script exhausted");
    };
    if !turn.delay.is_zero() {
        tokio::time::sleep(turn.delay).await;
    }
    let mut turn = turn;
    if turn.echo_tool_results
        && let Reply::Message { text, .. } = &mut turn.reply
    {
        for result in tool_results(&body) {
            text.push('\n');
            text.push_str(&result);
        }
    }
    let model = body.get("model").and_then(Value::as_str).unwrap_or("fake-model").to_string();
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let stream_failure = match &turn.reply {
        Reply::StreamError { message } if !stream && !matches!(protocol, Protocol::BedrockStream) => {
            Some(Reply::Error { status: 500, message: message.clone(), retry_after: None })
        }
        _ => None,
    };
    if let Some(Reply::Error { status, message, retry_after }) = stream_failure.as_ref().or(Some(&turn.reply))
    {
        let code = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let payload = match protocol {
            Protocol::OpenAi => openai::error_body(*status, message),
            Protocol::Anthropic => anthropic::error_body(*status, message),
            Protocol::Bedrock | Protocol::BedrockStream => bedrock::error_body(message),
        };
        let mut builder = Response::builder().status(code).header(header::CONTENT_TYPE, "application/json");
        if let Some(secs) = retry_after {
            builder = builder.header(header::RETRY_AFTER, secs.to_string());
        }
        return builder
            .body(Body::from(payload.to_string()))
            .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "fake LLM: bad response"));
    }
    match (protocol, stream) {
        (Protocol::OpenAi, false) => json(openai::response(&turn, &model)),
        (Protocol::OpenAi, true) => sse(openai::stream_events(&turn, &model), turn.stream_delay),
        (Protocol::Anthropic, false) => json(anthropic::response(&turn, &model)),
        (Protocol::Anthropic, true) => sse(anthropic::stream_events(&turn, &model), turn.stream_delay),
        (Protocol::Bedrock, _) => json(bedrock::response(&turn)),
        (Protocol::BedrockStream, _) => streamed(
            bedrock::stream_frames(&turn).into_iter().map(Bytes::from).collect(),
            turn.stream_delay,
            "application/vnd.amazon.eventstream",
        ),
    }
}

/// The tool results a request carries (OpenAI `tool` messages, Anthropic `tool_result` blocks).
fn tool_results(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for m in body.get("messages").and_then(Value::as_array).into_iter().flatten() {
        if m.get("role").and_then(Value::as_str) == Some("tool") {
            out.extend(m.get("content").and_then(Value::as_str).map(str::to_string));
        }
        for block in m.get("content").and_then(Value::as_array).into_iter().flatten() {
            if block.get("type").and_then(Value::as_str) == Some("tool_result") {
                match block.get("content") {
                    Some(Value::String(t)) => out.push(t.clone()),
                    Some(Value::Array(parts)) => out.extend(
                        parts
                            .iter()
                            .filter_map(|p| p.get("text").and_then(Value::as_str))
                            .map(str::to_string),
                    ),
                    _ => {}
                }
            }
        }
    }
    out
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = status;
    response
}

fn json(value: Value) -> Response {
    let mut response = Response::new(Body::from(value.to_string()));
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    response
}

fn sse(events: Vec<String>, delay: Duration) -> Response {
    streamed(events.into_iter().map(Bytes::from).collect(), delay, "text/event-stream")
}

/// Sends `parts` one by one, `delay` apart, so the client really receives them over time.
fn streamed(parts: Vec<Bytes>, delay: Duration, content_type: &'static str) -> Response {
    let stream = futures_util::stream::iter(parts).then(move |part| async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok::<_, Infallible>(part)
    });
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    response
}
