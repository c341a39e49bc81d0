//! AWS Bedrock Converse and ConverseStream (AWS event-stream framing), signed with SigV4
//! from static credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION`).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::anthropic::thinking_budget;
use super::aws_creds::AwsCredentials;
use super::eventstream::{EventStreamDecoder, Frame};
use super::http::Http;
use super::sigv4::{SigningInput, amz_date, sign, uri_encode};
use super::{ChatRequest, Message, Provider, StreamSink, Thinking as ThinkingBlock, ToolCall, Turn, Usage};
use crate::config::{ModelTarget, Thinking};
use crate::error::LlmError;

const NAME: &str = "Bedrock";
const MAX_TOKENS: u64 = 8192;

/// The Converse endpoint for one model.
pub struct Bedrock {
    base: String,
    host: String,
    model: String,
    thinking: Thinking,
    creds: AwsCredentials,
    resolved: tokio::sync::OnceCell<AwsCredentials>,
    http: Http,
}

impl Bedrock {
    /// Configures Bedrock; `MODEL_BASE_URL` overrides the regional endpoint.
    pub fn new(
        target: &ModelTarget,
        thinking: Thinking,
        http: Http,
        creds: AwsCredentials,
    ) -> Result<Self, LlmError> {
        if !creds.has_static() && !creds.has_web_identity() {
            return Err(LlmError::Config(
                "Bedrock requires AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_ROLE_ARN and \
                 AWS_WEB_IDENTITY_TOKEN_FILE (IRSA)"
                    .into(),
            ));
        }
        if creds.region.is_empty() {
            return Err(LlmError::Config("Bedrock requires AWS_REGION".into()));
        }
        let base = if target.base_url.is_empty() {
            format!("https://bedrock-runtime.{}.amazonaws.com", creds.region)
        } else {
            target.base_url.clone()
        };
        let host = url::Url::parse(&base)
            .ok()
            .and_then(|u| {
                u.host_str().map(|h| match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_string(),
                })
            })
            .ok_or_else(|| LlmError::Config(format!("invalid Bedrock endpoint {base:?}")))?;
        Ok(Self {
            base,
            host,
            model: target.model.clone(),
            thinking,
            creds,
            resolved: tokio::sync::OnceCell::new(),
            http,
        })
    }

    fn body(&self, request: &ChatRequest<'_>) -> Value {
        let mut messages = Vec::new();
        for message in request.messages {
            match message {
                Message::User(text) => messages.push(json!({"role": "user", "content": [{"text": text}]})),
                Message::Assistant { text, tool_calls, thinking } => {
                    // Claude requires its signed reasoning back alongside tool use.
                    let mut content: Vec<Value> = thinking
                        .iter()
                        .map(|t| {
                            if t.redacted.is_empty() {
                                json!({"reasoningContent": {"reasoningText": {"text": t.text, "signature": t.signature}}})
                            } else {
                                json!({"reasoningContent": {"redactedContent": t.redacted}})
                            }
                        })
                        .collect();
                    if !text.is_empty() {
                        content.push(json!({"text": text}));
                    }
                    for call in tool_calls {
                        let input: Value =
                            serde_json::from_str(&call.arguments).unwrap_or_else(|_| json!({}));
                        content.push(
                            json!({"toolUse": {"toolUseId": call.id, "name": call.name, "input": input}}),
                        );
                    }
                    messages.push(json!({"role": "assistant", "content": content}));
                }
                Message::ToolResults(results) => {
                    let content: Vec<Value> = results
                        .iter()
                        .map(|r| {
                            json!({"toolResult": {"toolUseId": r.call_id, "content": [{"text": r.content}],
                            "status": if r.is_error { "error" } else { "success" }}})
                        })
                        .collect();
                    messages.push(json!({"role": "user", "content": content}));
                }
            }
        }
        let budget = thinking_budget(self.thinking);
        let mut body = json!({
            "messages": messages,
            "system": [{"text": request.system}],
            "inferenceConfig": {"maxTokens": MAX_TOKENS + budget.unwrap_or(0)},
        });
        if !request.tools.is_empty() {
            let tools: Vec<Value> = request
                .tools
                .iter()
                .map(|t| {
                    json!({"toolSpec": {"name": t.name, "description": t.description,
                    "inputSchema": {"json": t.parameters}}})
                })
                .collect();
            body["toolConfig"] = json!({"tools": tools});
        }
        if let Some(budget) = budget {
            // Claude models on Bedrock take Anthropic's thinking control as an extra field.
            body["additionalModelRequestFields"] =
                json!({"thinking": {"type": "enabled", "budget_tokens": budget}});
        }
        body
    }

    async fn run(&self, request: ChatRequest<'_>, sink: &mut dyn StreamSink) -> Result<Turn, LlmError> {
        let payload = self.body(&request).to_string();
        let stream = self.http.stream();
        let action = if stream { "converse-stream" } else { "converse" };
        let path = format!("/model/{}/{action}", uri_encode(&self.model));
        // SigV4 encodes each path segment once more for the canonical form.
        let canonical_uri = format!("/model/{}/{action}", uri_encode(&uri_encode(&self.model)));
        let url = format!("{}{}", self.base, path);
        let creds = self.resolved.get_or_try_init(|| self.creds.resolve()).await?;
        let response = self
            .http
            .send(NAME, |client| {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
                let date = amz_date(now);
                let mut headers = vec![
                    ("content-type", "application/json"),
                    ("host", self.host.as_str()),
                    ("x-amz-date", date.as_str()),
                ];
                if !creds.session_token.is_empty() {
                    headers.push(("x-amz-security-token", creds.session_token.as_str()));
                }
                let auth = sign(&SigningInput {
                    method: "POST",
                    canonical_uri: &canonical_uri,
                    canonical_query: "",
                    headers: &headers,
                    payload: payload.as_bytes(),
                    amz_date: &date,
                    region: &creds.region,
                    service: "bedrock",
                    access_key: &creds.access_key_id,
                    secret_key: &creds.secret_access_key,
                });
                let mut req = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-amz-date", &date)
                    .header("authorization", auth)
                    .body(payload.clone());
                if !creds.session_token.is_empty() {
                    req = req.header("x-amz-security-token", &creds.session_token);
                }
                req
            })
            .await?;
        if stream {
            return read_stream(response, sink).await;
        }
        let value: Value = response
            .json()
            .await
            .map_err(|e| LlmError::Protocol { provider: NAME, message: format!("decoding response: {e}") })?;
        let mut turn = Turn::default();
        for block in value.pointer("/output/message/content").and_then(Value::as_array).into_iter().flatten()
        {
            if let Some(text) = block.get("text").and_then(Value::as_str) {
                turn.text.push_str(text);
            }
            if let Some(reasoning) = block.pointer("/reasoningContent/reasoningText") {
                turn.thinking.push(ThinkingBlock {
                    text: str_of(reasoning, "text"),
                    signature: str_of(reasoning, "signature"),
                    ..ThinkingBlock::default()
                });
            }
            if let Some(redacted) = block.pointer("/reasoningContent/redactedContent").and_then(Value::as_str)
            {
                turn.thinking
                    .push(ThinkingBlock { redacted: redacted.to_string(), ..ThinkingBlock::default() });
            }
            if let Some(tool) = block.get("toolUse") {
                turn.tool_calls.push(ToolCall {
                    id: str_of(tool, "toolUseId"),
                    name: str_of(tool, "name"),
                    arguments: tool.get("input").cloned().unwrap_or_else(|| json!({})).to_string(),
                });
            }
        }
        turn.wants_tools = value.get("stopReason").and_then(Value::as_str) == Some("tool_use")
            && !turn.tool_calls.is_empty();
        turn.usage = usage(&value);
        Ok(turn)
    }
}

fn str_of(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn usage(v: &Value) -> Usage {
    Usage {
        input: v.pointer("/usage/inputTokens").and_then(Value::as_u64).unwrap_or(0),
        output: v.pointer("/usage/outputTokens").and_then(Value::as_u64).unwrap_or(0),
    }
}

enum Block {
    Text(String),
    Reasoning(ThinkingBlock),
    Tool(ToolCall),
}

/// Reads a ConverseStream response, streaming text deltas to `sink`.
async fn read_stream(response: reqwest::Response, sink: &mut dyn StreamSink) -> Result<Turn, LlmError> {
    let mut decoder = EventStreamDecoder::default();
    let mut blocks: BTreeMap<u64, Block> = BTreeMap::new();
    let mut stop = String::new();
    let mut turn = Turn::default();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| LlmError::Interrupted { provider: NAME, message: e.to_string() })?;
        let frames = decoder
            .push(&chunk)
            .map_err(|e| LlmError::Protocol { provider: NAME, message: e.to_string() })?;
        for frame in frames {
            apply_frame(&frame, &mut blocks, &mut stop, &mut turn, sink)?;
        }
    }
    for block in blocks.into_values() {
        match block {
            Block::Text(t) => turn.text.push_str(&t),
            Block::Reasoning(r) => turn.thinking.push(r),
            Block::Tool(mut call) => {
                if call.arguments.trim().is_empty() {
                    call.arguments = "{}".into();
                }
                turn.tool_calls.push(call);
            }
        }
    }
    turn.wants_tools = stop == "tool_use" && !turn.tool_calls.is_empty();
    Ok(turn)
}

fn apply_frame(
    frame: &Frame,
    blocks: &mut BTreeMap<u64, Block>,
    stop: &mut String,
    turn: &mut Turn,
    sink: &mut dyn StreamSink,
) -> Result<(), LlmError> {
    let payload: Value = serde_json::from_slice(&frame.payload).unwrap_or(Value::Null);
    if frame.header(":message-type") == Some("exception") {
        let kind = frame.header(":exception-type").unwrap_or("exception");
        let message = payload.get("message").and_then(Value::as_str).unwrap_or("stream failed");
        return Err(LlmError::Interrupted { provider: NAME, message: format!("{kind}: {message}") });
    }
    let index = payload.get("contentBlockIndex").and_then(Value::as_u64).unwrap_or(0);
    match frame.header(":event-type").unwrap_or_default() {
        "contentBlockStart" => {
            if let Some(tool) = payload.pointer("/start/toolUse") {
                let call = ToolCall {
                    id: str_of(tool, "toolUseId"),
                    name: str_of(tool, "name"),
                    arguments: String::new(),
                };
                blocks.insert(index, Block::Tool(call));
            }
        }
        "contentBlockDelta" => {
            let delta = payload.get("delta").cloned().unwrap_or(Value::Null);
            if let Some(text) = delta.get("text").and_then(Value::as_str) {
                sink.text(text);
                if let Block::Text(t) = blocks.entry(index).or_insert_with(|| Block::Text(String::new())) {
                    t.push_str(text);
                }
            } else if let Some(input) = delta.pointer("/toolUse/input").and_then(Value::as_str) {
                if let Some(Block::Tool(call)) = blocks.get_mut(&index) {
                    call.arguments.push_str(input);
                }
            } else if let Some(reasoning) = delta.get("reasoningContent") {
                let entry = blocks.entry(index).or_insert_with(|| Block::Reasoning(ThinkingBlock::default()));
                if let Block::Reasoning(r) = entry {
                    r.text.push_str(&str_of(reasoning, "text"));
                    r.signature.push_str(&str_of(reasoning, "signature"));
                    r.redacted.push_str(&str_of(reasoning, "redactedContent"));
                }
            }
        }
        "messageStop" => *stop = str_of(&payload, "stopReason"),
        "metadata" => turn.usage = usage(&payload),
        _ => {}
    }
    Ok(())
}

impl Provider for Bedrock {
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
