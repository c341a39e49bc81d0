//! Memory tools over the memory server's HTTP API: `memory_search`,
//! `memory_store`, `memory_list`, plus the client used for auto-context and auto-store.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::{Tool, ToolOutput, required, str_arg};
use crate::llm::ToolSpec;

const BODY_LIMIT: usize = 64 * 1024;
const BACKOFF: [u64; 3] = [500, 1000, 2000];

/// Why a memory server call failed. The texts reach the model as tool results.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The token cannot be sent as an HTTP header.
    #[error("MEMORY_AUTH_TOKEN: not a valid HTTP header value")]
    InvalidToken(#[source] reqwest::header::InvalidHeaderValue),
    /// The HTTP client could not be built.
    #[error("memory client: {0}")]
    Client(#[source] reqwest::Error),
    /// The request could not be sent, or the response not read.
    #[error("Memory server error: {0}")]
    Transport(#[source] reqwest::Error),
    /// The server answered with a status other than 200.
    #[error("Memory server returned {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The response body, trimmed and cut at 64 KiB.
        body: String,
    },
    /// The response was not JSON.
    #[error("Memory server error: bad JSON: {0}")]
    BadJson(#[source] serde_json::Error),
    /// The server reported a failure (`success` not true).
    #[error("Memory error: {0}")]
    Refused(String),
}

/// HTTP client for the memory server.
#[derive(Clone)]
pub struct MemoryClient {
    base: String,
    client: reqwest::Client,
}

impl MemoryClient {
    /// A client for `base` (no trailing `/`), sending `token` (the instance's memory token;
    /// empty = none) as a bearer token.
    pub fn new(base: &str, token: &str) -> Result<Self, MemoryError> {
        let mut headers = reqwest::header::HeaderMap::new();
        if !token.is_empty() {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(MemoryError::InvalidToken)?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(MemoryError::Client)?;
        Ok(Self { base: base.to_string(), client })
    }

    /// Sends one request, retrying transport errors; returns the `content` field.
    async fn call(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<Value, MemoryError> {
        let mut attempt = 0;
        let response = loop {
            match build(&self.client).timeout(timeout).send().await {
                Ok(r) => break r,
                Err(e) if attempt < BACKOFF.len() => {
                    tracing::debug!(error = %e, attempt, "memory server request failed; retrying");
                    tokio::time::sleep(Duration::from_millis(BACKOFF[attempt])).await;
                    attempt += 1;
                }
                Err(e) => return Err(MemoryError::Transport(e)),
            }
        };
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(MemoryError::Transport)?;
        let body = String::from_utf8_lossy(&bytes[..bytes.len().min(BODY_LIMIT)]).into_owned();
        if status != 200 {
            return Err(MemoryError::Status { status, body: body.trim().to_string() });
        }
        let value: Value = serde_json::from_str(&body).map_err(MemoryError::BadJson)?;
        if value.get("success").and_then(Value::as_bool) != Some(true) {
            let error = value.get("error").and_then(Value::as_str).unwrap_or("unknown error");
            return Err(MemoryError::Refused(error.to_string()));
        }
        Ok(value.get("content").cloned().unwrap_or(Value::Null))
    }

    /// `POST /search`.
    pub async fn search(&self, query: &str, top_k: i64, timeout: Duration) -> Result<Value, MemoryError> {
        let url = format!("{}/search", self.base);
        self.call(|c| c.post(&url).json(&json!({"query": query, "top_k": top_k})), timeout).await
    }

    /// `POST /store`.
    pub async fn store(&self, content: &str, tags: &[String]) -> Result<Value, MemoryError> {
        let url = format!("{}/store", self.base);
        self.call(|c| c.post(&url).json(&json!({"content": content, "tags": tags})), Duration::from_secs(5))
            .await
    }

    /// `GET /list`.
    pub async fn list(&self, tags: &str, limit: i64) -> Result<Value, MemoryError> {
        let url = format!("{}/list", self.base);
        let limit = limit.to_string();
        self.call(|c| c.get(&url).query(&[("tags", tags), ("limit", limit.as_str())]), Duration::from_secs(5))
            .await
    }
}

/// Formats one entry: `**Memory #<id>** (<created_at>) [tags]\n<content>\n`.
pub fn format_entry(e: &Value) -> String {
    let tags: Vec<&str> = e
        .get("tags")
        .and_then(Value::as_array)
        .map_or_else(Vec::new, |t| t.iter().filter_map(Value::as_str).collect());
    let tag_text = if tags.is_empty() { String::new() } else { format!(" [{}]", tags.join(", ")) };
    format!(
        "**Memory #{}** ({}){}\n{}\n",
        e.get("id").and_then(Value::as_i64).unwrap_or(0),
        e.get("created_at").and_then(Value::as_str).unwrap_or_default(),
        tag_text,
        e.get("content").and_then(Value::as_str).unwrap_or_default()
    )
}

/// Formats entries the way the original runner shows them to the model.
pub fn format_entries(content: &Value) -> String {
    let Some(entries) = content.as_array() else {
        return match content {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
    };
    if entries.is_empty() {
        return "(no results)".to_string();
    }
    entries.iter().map(format_entry).collect::<Vec<_>>().join("\n---\n")
}

#[derive(Clone, Copy)]
enum Kind {
    Search,
    Store,
    List,
}

struct MemoryTool {
    kind: Kind,
    client: Arc<MemoryClient>,
}

/// The three memory tools sharing one client.
pub fn memory_tools(client: Arc<MemoryClient>) -> Vec<Box<dyn Tool>> {
    [Kind::Search, Kind::Store, Kind::List]
        .into_iter()
        .map(|kind| Box::new(MemoryTool { kind, client: client.clone() }) as Box<dyn Tool>)
        .collect()
}

impl MemoryTool {
    async fn run(&self, args: Value) -> ToolOutput {
        let result = match self.kind {
            Kind::Search => {
                let query = match required(&args, "query") {
                    Ok(q) => q,
                    Err(e) => return e,
                };
                let top_k = args.get("top_k").and_then(Value::as_i64).unwrap_or(5);
                self.client.search(query, top_k, Duration::from_secs(5)).await
            }
            Kind::Store => {
                let content = match required(&args, "content") {
                    Ok(c) => c,
                    Err(e) => return e,
                };
                let tags: Vec<String> = args
                    .get("tags")
                    .and_then(Value::as_array)
                    .map(|t| t.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default();
                self.client.store(content, &tags).await
            }
            Kind::List => {
                let tags = str_arg(&args, "tags").unwrap_or_default();
                let limit = args.get("limit").and_then(Value::as_i64).unwrap_or(20);
                self.client.list(tags, limit).await
            }
        };
        match result {
            Ok(content) => ToolOutput::Ok(format_entries(&content)),
            Err(e) => ToolOutput::err(e.to_string()),
        }
    }
}

impl Tool for MemoryTool {
    fn spec(&self) -> ToolSpec {
        let (name, description, parameters) = match self.kind {
            Kind::Search => (
                "memory_search",
                "Search this agent's persistent memory (full-text).",
                json!({"type": "object", "properties": {"query": {"type": "string"},
                    "top_k": {"type": "integer", "description": "Max results (default 5)"}},
                    "required": ["query"]}),
            ),
            Kind::Store => (
                "memory_store",
                "Store a finding in this agent's persistent memory.",
                json!({"type": "object", "properties": {"content": {"type": "string"},
                    "tags": {"type": "array", "items": {"type": "string"}}}, "required": ["content"]}),
            ),
            Kind::List => (
                "memory_list",
                "List recent memories, optionally filtered by tag.",
                json!({"type": "object", "properties": {"tags": {"type": "string"},
                    "limit": {"type": "integer"}}}),
            ),
        };
        ToolSpec { name: name.into(), description: description.into(), parameters }
    }

    fn call(&self, args: Value) -> BoxFuture<'_, ToolOutput> {
        Box::pin(self.run(args))
    }
}
