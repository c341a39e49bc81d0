//! A client for the memory server's HTTP API (used by the REST API server and the agent runner).

use std::time::Duration;

use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::types::{Deleted, Entry, Envelope, ListQuery, SearchRequest, StoreRequest, Stored, UpdateRequest};

/// Default per-request timeout of [`MemoryClient::new`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request did not get an HTTP response (connection refused, timeout, …).
    #[error("memory server unreachable: {0}")]
    Transport(#[from] reqwest::Error),
    /// The server answered with an error envelope (`success: false`).
    #[error("memory server returned {status}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The envelope's `error`.
        message: String,
    },
    /// The server answered with something that is not the expected envelope.
    #[error("unexpected response from memory server ({status}): {body}")]
    Unexpected {
        /// HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
}

impl ClientError {
    /// Whether the server said the memory does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Api { status: 404, .. })
    }
}

/// Client of one memory server.
#[derive(Clone)]
pub struct MemoryClient {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for MemoryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself: clients end up in logs.
        f.debug_struct("MemoryClient")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl MemoryClient {
    /// A client for the server at `base_url` (e.g. `http://my-agent-memory.default.svc:8080`)
    /// with a [`DEFAULT_TIMEOUT`] per request.
    pub fn new(base_url: impl Into<String>) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder().timeout(DEFAULT_TIMEOUT).build()?;
        Ok(Self::with_http_client(base_url, http))
    }

    /// A client using a preconfigured `reqwest` client (timeouts, proxies).
    pub fn with_http_client(base_url: impl Into<String>, http: reqwest::Client) -> Self {
        let base = base_url.into().trim_end_matches('/').to_string();
        Self { base, http, token: None, timeout: None }
    }

    /// Sends `token` as `Authorization: Bearer <token>` on every request (the instance's
    /// memory token; an empty token sends none).
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        let token = token.into();
        self.token = (!token.trim().is_empty()).then(|| token.trim().to_string());
        self
    }

    /// Bounds every request of this client by `timeout` (overriding the HTTP client's own
    /// timeout). Clients are cheap to clone, so a clone with a shorter timeout suits one call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET /health`.
    pub async fn health(&self) -> Result<(), ClientError> {
        let response = self.with_request_timeout(self.http.get(self.url("/health"))).send().await?;
        let status = response.status();
        let body = response.text().await?;
        if status == StatusCode::OK && body.trim() == "ok" {
            Ok(())
        } else {
            Err(ClientError::Unexpected { status: status.as_u16(), body: truncate(body) })
        }
    }

    /// `POST /search`: best matches first; `top_k` ≤ 0 means the server default (5).
    pub async fn search(&self, query: &str, top_k: i64) -> Result<Vec<Entry>, ClientError> {
        let body = SearchRequest { query: query.to_string(), top_k };
        self.send(self.http.post(self.url("/search")).json(&body)).await
    }

    /// `POST /store`.
    pub async fn store(&self, content: &str, tags: &[String]) -> Result<Stored, ClientError> {
        let body = StoreRequest { content: content.to_string(), tags: tags.to_vec() };
        self.send(self.http.post(self.url("/store")).json(&body)).await
    }

    /// `GET /list` with filters and paging.
    pub async fn list(&self, query: &ListQuery) -> Result<Vec<Entry>, ClientError> {
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(substr) = &query.tags_substring {
            params.push(("tags", substr.clone()));
        }
        for tag in &query.tags {
            params.push(("tag", tag.clone()));
        }
        if let Some(limit) = query.limit {
            params.push(("limit", limit.to_string()));
        }
        if let Some(offset) = query.offset {
            params.push(("offset", offset.to_string()));
        }
        self.send(self.http.get(self.url("/list")).query(&params)).await
    }

    /// `GET /memories/{id}`.
    pub async fn get(&self, id: i64) -> Result<Entry, ClientError> {
        self.send(self.http.get(self.url(&format!("/memories/{id}")))).await
    }

    /// `PUT /memories/{id}`.
    pub async fn update(&self, id: i64, update: &UpdateRequest) -> Result<Entry, ClientError> {
        self.send(self.http.put(self.url(&format!("/memories/{id}"))).json(update)).await
    }

    /// `DELETE /memories/{id}`.
    pub async fn delete(&self, id: i64) -> Result<Deleted, ClientError> {
        self.send(self.http.delete(self.url(&format!("/memories/{id}")))).await
    }

    fn with_request_timeout(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.timeout {
            Some(timeout) => request.timeout(timeout),
            None => request,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send<T: DeserializeOwned + Serialize>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = self.with_request_timeout(request).send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        let unexpected = || ClientError::Unexpected {
            status,
            body: truncate(String::from_utf8_lossy(&bytes).into_owned()),
        };
        let envelope: Envelope<T> = serde_json::from_slice(&bytes).map_err(|_| unexpected())?;
        match envelope {
            Envelope { success: true, content: Some(content), .. } if status == 200 => Ok(content),
            Envelope { success: false, error: Some(message), .. } => {
                Err(ClientError::Api { status, message })
            }
            _ => Err(unexpected()),
        }
    }
}

fn truncate(mut body: String) -> String {
    const MAX: usize = 512;
    if body.len() > MAX {
        let mut cut = MAX;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
        body.push('…');
    }
    body
}
