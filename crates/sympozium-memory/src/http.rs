//! The HTTP API (axum). Routes, status codes and error strings follow the original memory server's; the
//! `/memories/{id}` routes, exact tag filters and pagination are additions.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::MemoryError;
use crate::metrics::{Metrics, Operation};
use crate::store::Store;
use crate::types::{Envelope, ListQuery, SearchRequest, StoreRequest, UpdateRequest};

/// Largest request body accepted when the per-memory limit is off.
const UNLIMITED_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Builds the router over `store`, answering anyone (tests and local use; the server
/// binary uses [`router_with_token`]).
pub fn router(store: Store) -> Router {
    router_with_token(store, None)
}

/// Builds the router over `store`. With a `token`, every request except `GET /health` must
/// carry `Authorization: Bearer <token>`; others get 401 and never reach the database.
pub fn router_with_token(store: Store, token: Option<String>) -> Router {
    let body_limit = match usize::try_from(store.limits().max_entry_bytes) {
        Ok(0) | Err(_) => UNLIMITED_BODY_BYTES,
        // JSON escaping can grow text up to six times (`\u0000`); leave room for tags.
        Ok(max) => max.saturating_mul(6).saturating_add(64 * 1024),
    };
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/search", axum::routing::post(search))
        .route("/store", axum::routing::post(store_memory))
        .route("/list", get(list))
        .route("/memories/{id}", get(get_memory).put(update_memory).delete(delete_memory))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(store)
        // Outermost, so an unauthenticated request is refused before its body is read.
        .layer(middleware::from_fn_with_state(token.map(Arc::<str>::from), require_token))
}

/// Alternative header carrying the token (for clients behind the Kubernetes API server's
/// service proxy, which does not forward `Authorization`).
pub const TOKEN_HEADER: &str = "x-sympozium-memory-token";

/// Refuses requests without the instance's bearer token (health checks excepted: probes
/// and the runs' wait-for-memory init container carry no credentials and learn nothing).
async fn require_token(
    State(token): State<Option<Arc<str>>>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let Some(token) = token else { return next.run(request).await };
    // Health and metrics are open: probes and Prometheus carry no credentials, and neither
    // says anything about what is stored (metrics are latencies and counts only).
    if request.method() == Method::GET && matches!(request.uri().path(), "/health" | "/metrics") {
        return next.run(request).await;
    }
    let headers = request.headers();
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        // The API server's service proxy consumes `Authorization` itself, so operators
        // reaching the server through it send the same token in this header instead.
        .or_else(|| headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()))
        .map(str::trim);
    let message = match presented {
        None => {
            "missing bearer token: this memory server belongs to one instance and needs its token (Authorization: Bearer <token>)"
        }
        Some(p) if constant_time_eq(p.as_bytes(), token.as_bytes()) => return next.run(request).await,
        Some(_) => "invalid bearer token: not this instance's memory token",
    };
    tracing::warn!(method = %request.method(), path = %request.uri().path(), "refused a request: {message}");
    let mut response = ApiError { status: StatusCode::UNAUTHORIZED, message: message.into() }.into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    response
}

/// Compares without returning early, so the time taken says nothing about the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0xff);
    }
    diff == 0
}

/// An error response: status plus `{success:false, error}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into() }
    }
}

impl From<MemoryError> for ApiError {
    fn from(err: MemoryError) -> Self {
        let status = match &err {
            MemoryError::Invalid(_) => StatusCode::BAD_REQUEST,
            MemoryError::NotFound(_) => StatusCode::NOT_FOUND,
            MemoryError::LimitExceeded(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %err, "request failed");
        }
        Self { status, message: err.to_string() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body: Envelope<()> = Envelope { success: false, content: None, error: Some(self.message) };
        (self.status, Json(body)).into_response()
    }
}

fn ok<T: Serialize>(content: T) -> Response {
    Json(Envelope { success: true, content: Some(content), error: None }).into_response()
}

/// Parses a JSON body, naming the problem when it is not valid.
fn parse_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|rejection| ApiError {
        status: rejection.status(),
        message: format!("invalid request body: {}", rejection.body_text()),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// Milliseconds since `start`, for the request log lines.
fn ms(start: std::time::Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1e5).round() / 100.0
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .map_err(|_| ApiError::bad_request(format!("invalid memory id {raw:?}: expected an integer")))
}

async fn health() -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "ok").into_response()
}

async fn metrics() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        Metrics::global().render(),
    )
        .into_response()
}

async fn search(State(store): State<Store>, body: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let request: SearchRequest = parse_body(body)?;
        if request.query.trim().is_empty() {
            return Err(ApiError::bad_request("'query' is required"));
        }
        let start = std::time::Instant::now();
        let found = store.search(request).await;
        Metrics::global().observe(Operation::Search, start.elapsed(), found.is_ok());
        let found = found?;
        // Operators follow what agents recall from these lines (the original logged each request).
        let ids: Vec<i64> = found.iter().take(20).map(|e| e.id).collect();
        tracing::info!(hits = found.len(), ?ids, ms = ms(start), "search");
        Ok(ok(found))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

async fn store_memory(State(store): State<Store>, body: Result<Bytes, BytesRejection>) -> Response {
    let result = async {
        let request: StoreRequest = parse_body(body)?;
        let start = std::time::Instant::now();
        let stored = store.store(request).await;
        Metrics::global().observe(Operation::Store, start.elapsed(), stored.is_ok());
        let stored = stored?;
        tracing::info!(id = stored.id, ms = ms(start), "store");
        Ok::<_, ApiError>(ok(stored))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

async fn list(State(store): State<Store>, Query(pairs): Query<Vec<(String, String)>>) -> Response {
    let result = async {
        let mut query = ListQuery::default();
        for (key, value) in pairs {
            match key.as_str() {
                "tags" => query.tags_substring = Some(value),
                "tag" => query.tags.push(value),
                // Spec: an invalid or non-positive limit means the default.
                "limit" => query.limit = value.trim().parse().ok(),
                "offset" => {
                    let offset = value.trim().parse::<i64>().ok().filter(|n| *n >= 0);
                    query.offset = Some(offset.ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "invalid 'offset' {value:?}: expected a non-negative integer"
                        ))
                    })?);
                }
                _ => {}
            }
        }
        let start = std::time::Instant::now();
        let entries = store.list(query).await?;
        tracing::info!(returned = entries.len(), ms = ms(start), "list");
        Ok::<_, ApiError>(ok(entries))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

async fn get_memory(State(store): State<Store>, Path(raw): Path<String>) -> Response {
    let result = async {
        let id = parse_id(&raw)?;
        Ok::<_, ApiError>(ok(store.get(id).await?))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

async fn update_memory(
    State(store): State<Store>,
    Path(raw): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let id = parse_id(&raw)?;
        let request: UpdateRequest = parse_body(body)?;
        let start = std::time::Instant::now();
        let entry = store.update(id, request).await?;
        tracing::info!(id, ms = ms(start), "update");
        Ok::<_, ApiError>(ok(entry))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

async fn delete_memory(State(store): State<Store>, Path(raw): Path<String>) -> Response {
    let result = async {
        let id = parse_id(&raw)?;
        let start = std::time::Instant::now();
        let deleted = store.delete(id).await?;
        tracing::info!(id, ms = ms(start), "delete");
        Ok::<_, ApiError>(ok(deleted))
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

async fn not_found(method: Method, uri: Uri) -> Response {
    ApiError { status: StatusCode::NOT_FOUND, message: format!("no route for {method} {}", uri.path()) }
        .into_response()
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: format!("method {method} is not allowed on {}", uri.path()),
    }
    .into_response()
}
