//! `/api/v1/instances/{name}/memory`: what an instance's agents remembered, read from its
//! memory server (`<instance>-memory:8080`) through the Kubernetes API server's service proxy
//! with the instance's own token (Secret `<instance>-memory-token`). Going through the
//! service proxy keeps the memory server's NetworkPolicy closed to everything but the
//! instance's pods; the API server's own RBAC decides who may read the token.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::not_found;
use crate::AppState;
use crate::cache;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::params::check_name;

/// Port of every memory server.
const MEMORY_PORT: u16 = 8080;
/// Longest search text accepted.
const MAX_QUERY: usize = 512;

/// The memory route.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/instances/{name}/memory", get(memory))
}

/// `?namespace=&q=&tag=&limit=`.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MemoryQuery {
    /// Namespace of the instance (default `default`).
    pub namespace: Option<String>,
    /// Full-text search; without it, the newest memories.
    pub q: Option<String>,
    /// Only memories with this tag (ignored with `q`).
    pub tag: Option<String>,
    /// At most this many (1–100, default 20).
    pub limit: Option<String>,
}

/// One memory.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema, PartialEq)]
pub struct MemoryEntry {
    /// Its id on the memory server.
    pub id: i64,
    /// The text.
    pub content: String,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// When stored (RFC 3339).
    #[serde(default)]
    pub created_at: String,
    /// When last changed (RFC 3339).
    #[serde(default)]
    pub updated_at: String,
}

/// `GET /api/v1/instances/{name}/memory`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceMemory {
    /// The instance.
    pub instance: String,
    /// Memory is on in its spec.
    pub enabled: bool,
    /// Size limit of the store (KB), from the spec.
    #[serde(rename = "maxSizeKB", skip_serializing_if = "Option::is_none")]
    pub max_size_kb: Option<i64>,
    /// The memories (newest first, or best match first with `q`).
    pub entries: Vec<MemoryEntry>,
}

/// The memories of an instance (404 if the instance does not exist; 503 while its memory
/// server is not up).
#[utoipa::path(get, path = "/api/v1/instances/{name}/memory", tag = "instances", params(("name" = String, Path), MemoryQuery),
    responses((status = 200, body = InstanceMemory), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 502, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn memory(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<MemoryQuery>,
) -> ApiResult<Json<InstanceMemory>> {
    let ns = crate::params::NamespaceQuery { namespace: q.namespace.clone() }.ns()?;
    check_name("name", &name)?;
    let limit =
        match q.limit.as_deref() {
            None | Some("") => 20,
            Some(v) => v.parse::<i64>().ok().filter(|n| (1..=100).contains(n)).ok_or_else(|| {
                ApiError::invalid("limit", format!("\"{v}\" is not a number from 1 to 100"))
            })?,
        };
    let query = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_string);
    if query.as_ref().is_some_and(|t| t.len() > MAX_QUERY) {
        return Err(ApiError::invalid("q", format!("is longer than {MAX_QUERY} characters")));
    }
    let inst =
        cache::get(&s.caches.instances, &ns, &name).ok_or_else(|| not_found("instance", &ns, &name))?;
    let mem = inst.spec.memory.as_ref();
    let enabled = mem.is_some_and(|m| m.enabled);
    let max_size_kb = mem.map(|m| i64::from(m.max_size_kb));
    if !enabled {
        return Ok(Json(InstanceMemory { instance: name, enabled, max_size_kb, entries: Vec::new() }));
    }
    let secret_name = format!("{name}-memory-token");
    let token = Api::<Secret>::namespaced(s.client.clone(), &ns)
        .get_opt(&secret_name)
        .await?
        .and_then(|s| s.data)
        .and_then(|d| d.get("token").map(|v| String::from_utf8_lossy(&v.0).into_owned()))
        .ok_or_else(|| {
            ApiError::Unavailable(format!(
                "the memory server of instance \"{name}\" is not set up yet (no Secret \"{secret_name}\")"
            ))
        })?;
    let base = format!("/api/v1/namespaces/{ns}/services/{name}-memory:{MEMORY_PORT}/proxy");
    let request = match &query {
        Some(text) => {
            let body = serde_json::json!({"query": text, "top_k": limit}).to_string().into_bytes();
            http::Request::post(format!("{base}/search"))
                .header("content-type", "application/json")
                .body(body)
        }
        None => {
            let mut path = format!("{base}/list?limit={limit}");
            if let Some(tag) = q.tag.as_deref().filter(|t| !t.is_empty()) {
                path.push_str(&format!("&tag={}", escape(tag)));
            }
            http::Request::get(path).body(Vec::new())
        }
    };
    // The service proxy does not forward `Authorization`; the memory server also reads this.
    let mut request = request.map_err(|e| ApiError::Internal(e.to_string()))?;
    request.headers_mut().insert(
        "x-sympozium-memory-token",
        http::HeaderValue::from_str(&token)
            .map_err(|_| ApiError::Internal("memory token is not a header value".into()))?,
    );
    let text = match s.client.request_text(request).await {
        Ok(t) => t,
        Err(kube::Error::Api(e)) if e.code == 503 || e.code == 404 => {
            return Err(ApiError::Unavailable(format!(
                "the memory server of instance \"{name}\" is not reachable yet: {}",
                e.message
            )));
        }
        Err(e) => return Err(ApiError::BadGateway(format!("memory server of \"{name}\": {e}"))),
    };
    let reply: serde_json::Value = serde_json::from_str(&text)
        .map_err(|_| ApiError::BadGateway(format!("memory server of \"{name}\" answered: {text}")))?;
    let entries: Vec<MemoryEntry> = match reply.get("content") {
        Some(c) => serde_json::from_value(c.clone()).map_err(|e| {
            ApiError::BadGateway(format!("memory server of \"{name}\": unexpected entries: {e}"))
        })?,
        None => {
            return Err(ApiError::BadGateway(format!(
                "memory server of \"{name}\" said: {}",
                reply["error"].as_str().unwrap_or(&text)
            )));
        }
    };
    Ok(Json(InstanceMemory { instance: name, enabled, max_size_kb, entries }))
}

fn escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
