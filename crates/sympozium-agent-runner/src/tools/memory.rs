//! Memory tools over the memory server's HTTP API: `memory_search`,
//! `memory_store`, `memory_list`, plus the client used for auto-context and auto-store.
//!
//! The HTTP calls are [`sympozium_memory::client::MemoryClient`]'s (typed entries); this
//! module adds the runner's retries, per-call timeouts and the error texts the model reads.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use sympozium_memory::client::{ClientError, MemoryClient as TypedClient};
use sympozium_memory::types::{Entry, Envelope, ListQuery, Stored};

use super::{Tool, ToolOutput, required, str_arg};
use crate::llm::ToolSpec;

const BACKOFF: [u64; 3] = [500, 1000, 2000];
/// Timeout of a tool call or auto-store request.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

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
        /// The response body, trimmed (the typed client keeps its first 512 bytes).
        body: String,
    },
    /// The response was not JSON.
    #[error("Memory server error: bad JSON: {0}")]
    BadJson(#[source] serde_json::Error),
    /// The server reported a failure (`success` not true).
    #[error("Memory error: {0}")]
    Refused(String),
    /// A 200 answer that is JSON but not the expected envelope (e.g. entries without ids).
    #[error("Memory server error: {0}")]
    Unexpected(#[source] ClientError),
}

impl From<ClientError> for MemoryError {
    /// Maps the typed client's errors onto the texts the runner has always shown the model.
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::Transport(e) => Self::Transport(e),
            ClientError::Api { status: 200, message } => Self::Refused(message),
            // The body the server sent: its error envelope, serialized as the server does.
            ClientError::Api { status, message } => {
                let envelope = Envelope::<()> { success: false, content: None, error: Some(message) };
                let body = serde_json::to_string(&envelope)
                    .unwrap_or_else(|_| envelope.error.clone().unwrap_or_default());
                Self::Status { status, body }
            }
            ClientError::Unexpected { status, body } if status != 200 => {
                Self::Status { status, body: body.trim().to_string() }
            }
            ClientError::Unexpected { status, body } => match serde_json::from_str::<Value>(&body) {
                Err(e) => Self::BadJson(e),
                Ok(value) if value.get("success").and_then(Value::as_bool) != Some(true) => {
                    let error = value.get("error").and_then(Value::as_str).unwrap_or("unknown error");
                    Self::Refused(error.to_string())
                }
                Ok(_) => Self::Unexpected(ClientError::Unexpected { status, body }),
            },
        }
    }
}

/// The memory server client of one run: [`sympozium_memory`]'s typed client with the
/// instance's bearer token, retrying requests that got no response.
#[derive(Clone, Debug)]
pub struct MemoryClient {
    client: TypedClient,
}

impl MemoryClient {
    /// A client for `base` (no trailing `/`), sending `token` (the instance's memory token;
    /// empty = none) as a bearer token.
    pub fn new(base: &str, token: &str) -> Result<Self, MemoryError> {
        let token = token.trim();
        if !token.is_empty() {
            // Refuse a token that cannot be a header now, not on every call.
            reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(MemoryError::InvalidToken)?;
        }
        let http =
            reqwest::Client::builder().timeout(DEFAULT_TIMEOUT).build().map_err(MemoryError::Client)?;
        Ok(Self { client: TypedClient::with_http_client(base, http).with_token(token) })
    }

    /// Runs one call, retrying (with backoff) when the request got no response; a response
    /// cut off while its body was read is not retried, so a store is not sent twice for that.
    async fn call<T, F>(&self, timeout: Duration, call: impl Fn(TypedClient) -> F) -> Result<T, MemoryError>
    where
        F: Future<Output = Result<T, ClientError>>,
    {
        let client = self.client.clone().with_timeout(timeout);
        let mut attempt = 0;
        loop {
            match call(client.clone()).await {
                Err(ClientError::Transport(e))
                    if attempt < BACKOFF.len() && !e.is_body() && !e.is_decode() =>
                {
                    tracing::debug!(error = %e, attempt, "memory server request failed; retrying");
                    tokio::time::sleep(Duration::from_millis(BACKOFF[attempt])).await;
                    attempt += 1;
                }
                result => return result.map_err(MemoryError::from),
            }
        }
    }

    /// `POST /search` with a timeout for this call.
    pub async fn search(
        &self,
        query: &str,
        top_k: i64,
        timeout: Duration,
    ) -> Result<Vec<Entry>, MemoryError> {
        self.call(timeout, |c| async move { c.search(query, top_k).await }).await
    }

    /// `POST /store`.
    pub async fn store(&self, content: &str, tags: &[String]) -> Result<Stored, MemoryError> {
        self.call(DEFAULT_TIMEOUT, |c| async move { c.store(content, tags).await }).await
    }

    /// `GET /list` with the legacy tag-substring filter (`tags=`).
    pub async fn list(&self, tags: &str, limit: i64) -> Result<Vec<Entry>, MemoryError> {
        let query =
            ListQuery { tags_substring: Some(tags.to_string()), limit: Some(limit), ..ListQuery::default() };
        self.call(DEFAULT_TIMEOUT, |c| {
            let query = &query;
            async move { c.list(query).await }
        })
        .await
    }
}

/// Formats one entry: `**Memory #<id>** (<created_at>) [tags]\n<content>\n`.
pub fn format_entry(e: &Entry) -> String {
    let tag_text = if e.tags.is_empty() { String::new() } else { format!(" [{}]", e.tags.join(", ")) };
    format!("**Memory #{}** ({}){}\n{}\n", e.id, e.created_at, tag_text, e.content)
}

/// Formats entries the way the original runner shows them to the model.
pub fn format_entries(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return "(no results)".to_string();
    }
    entries.iter().map(format_entry).collect::<Vec<_>>().join("\n---\n")
}

/// Formats a store's acknowledgement as the JSON object the server sent (`{"id":…,"stored_at":…}`).
fn format_stored(stored: &Stored) -> String {
    json!({"id": stored.id, "stored_at": stored.stored_at}).to_string()
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
                self.client.search(query, top_k, DEFAULT_TIMEOUT).await.map(|e| format_entries(&e))
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
                self.client.store(content, &tags).await.map(|s| format_stored(&s))
            }
            Kind::List => {
                let tags = str_arg(&args, "tags").unwrap_or_default();
                let limit = args.get("limit").and_then(Value::as_i64).unwrap_or(20);
                self.client.list(tags, limit).await.map(|e| format_entries(&e))
            }
        };
        match result {
            Ok(text) => ToolOutput::Ok(text),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// The formatting the runner had over untyped JSON before the typed client, kept as the
    /// reference the typed formatting must match byte for byte.
    mod old {
        use serde_json::Value;

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
    }

    /// Server JSON as it arrives: tagged, untagged (tags omitted), multi-line content.
    fn wire_entries() -> Value {
        json!([
            {"id": 7, "content": "The payments service OOMs\nat 512Mi", "tags": ["payments", "oom"],
             "created_at": "2026-11-01T09:00:00Z", "updated_at": "2026-11-02T09:00:00Z"},
            {"id": 12, "content": "no tags here", "created_at": "2026-11-03T10:00:00Z",
             "updated_at": "2026-11-03T10:00:00Z"},
            {"id": 13, "content": "", "tags": ["only-tag"],
             "created_at": "2026-11-04T10:00:00Z", "updated_at": "2026-11-04T10:00:00Z"}
        ])
    }

    #[test]
    fn typed_formatting_matches_the_untyped_formatting() {
        let wire = wire_entries();
        let typed: Vec<Entry> = serde_json::from_value(wire.clone()).unwrap();
        for (value, entry) in wire.as_array().unwrap().iter().zip(&typed) {
            assert_eq!(format_entry(entry), old::format_entry(value));
        }
        assert_eq!(format_entries(&typed), old::format_entries(&wire));
        assert_eq!(format_entries(&typed[..1]), old::format_entries(&json!([wire[0]])));
        assert_eq!(format_entries(&[]), old::format_entries(&json!([])));
        assert_eq!(
            format_entries(&typed[..1]),
            "**Memory #7** (2026-11-01T09:00:00Z) [payments, oom]\nThe payments service OOMs\nat 512Mi\n"
        );
    }

    #[test]
    fn store_acknowledgement_is_shown_as_the_server_sent_it() {
        let wire = json!({"id": 2, "stored_at": "2026-11-23T10:00:00Z"});
        let stored: Stored = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(format_stored(&stored), old::format_entries(&wire));
        assert_eq!(format_stored(&stored), r#"{"id":2,"stored_at":"2026-11-23T10:00:00Z"}"#);
    }

    #[test]
    fn client_errors_keep_the_texts_the_model_reads() {
        let text = |e: ClientError| MemoryError::from(e).to_string();
        assert_eq!(
            text(ClientError::Unexpected { status: 500, body: "db locked\n".into() }),
            "Memory server returned 500: db locked"
        );
        assert_eq!(
            text(ClientError::Api { status: 404, message: "memory 3 not found".into() }),
            r#"Memory server returned 404: {"success":false,"error":"memory 3 not found"}"#
        );
        assert_eq!(text(ClientError::Api { status: 200, message: "nope".into() }), "Memory error: nope");
        assert_eq!(
            text(ClientError::Unexpected { status: 200, body: r#"{"success":false}"#.into() }),
            "Memory error: unknown error"
        );
        assert!(
            text(ClientError::Unexpected { status: 200, body: "<html>".into() })
                .starts_with("Memory server error: bad JSON: ")
        );
    }

    #[test]
    fn a_token_that_is_no_header_value_is_refused_up_front() {
        let error = MemoryClient::new("http://127.0.0.1:1", "bad\ntoken").unwrap_err();
        assert_eq!(error.to_string(), "MEMORY_AUTH_TOKEN: not a valid HTTP header value");
        assert!(MemoryClient::new("http://127.0.0.1:1", "").is_ok());
    }
}
