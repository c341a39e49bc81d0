//! `/api/v1/mcpservers`: MCP tool servers.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use kube::Api;
use kube::api::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sympozium_api::{MCPServer, MCPServerSpec};
use utoipa::ToSchema;

use super::{not_found, object_json};
use crate::AppState;
use crate::cache;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::openapi::KubeObject;
use crate::params::{Body, ListQuery, NamespaceQuery, check_name};

/// The MCP server routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/mcpservers", get(list).post(create))
        .route("/api/v1/mcpservers/{name}", get(get_one).patch(patch).delete(delete))
}

/// `POST /api/v1/mcpservers`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateMcpServerRequest {
    /// Name (required).
    pub name: Option<String>,
    /// `http` or `stdio` (required).
    pub transport_type: Option<String>,
    /// Prefix of the server's tool names (required).
    pub tools_prefix: Option<String>,
    /// URL of an external server.
    pub url: Option<String>,
    /// Image of a server run in the cluster.
    pub image: Option<String>,
    /// Per-call timeout in seconds.
    pub timeout: Option<i32>,
    /// Only these tools.
    pub tools_allow: Option<Vec<String>>,
    /// Never these tools.
    pub tools_deny: Option<Vec<String>>,
}

/// `PATCH /api/v1/mcpservers/{name}`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchMcpServerRequest {
    /// `http` or `stdio`.
    pub transport_type: Option<String>,
    /// URL.
    pub url: Option<String>,
    /// Tool name prefix.
    pub tools_prefix: Option<String>,
    /// Timeout in seconds.
    pub timeout: Option<i32>,
    /// Only these tools.
    pub tools_allow: Option<Vec<String>>,
    /// Never these tools.
    pub tools_deny: Option<Vec<String>>,
}

fn spec_from(v: serde_json::Value) -> ApiResult<MCPServerSpec> {
    serde_json::from_value(v).map_err(|e| {
        let msg = e.to_string();
        let field =
            if msg.contains("McpTransport") || msg.contains("variant") { "transportType" } else { "spec" };
        ApiError::invalid(field, msg)
    })
}

fn check_url(url: &Option<String>) -> ApiResult<()> {
    if let Some(u) = url.as_deref().filter(|u| !u.is_empty())
        && !(u.starts_with("http://") || u.starts_with("https://"))
    {
        return Err(ApiError::invalid("url", format!("\"{u}\" is not an http(s) URL")));
    }
    Ok(())
}

fn check_timeout(t: Option<i32>) -> ApiResult<()> {
    match t {
        Some(t) if !(1..=3600).contains(&t) => Err(ApiError::invalid("timeout", "must be 1 to 3600 seconds")),
        _ => Ok(()),
    }
}

/// Servers in every namespace.
#[utoipa::path(get, path = "/api/v1/mcpservers", tag = "mcpservers", params(ListQuery),
    responses((status = 200, body = [KubeObject]), (status = 400, body = ErrorBody)))]
pub async fn list(State(s): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult<Response> {
    q.page_of(cache::list(&s.caches.mcpservers, None), |o| object_json(&o))
}

/// One server in `?namespace`.
#[utoipa::path(get, path = "/api/v1/mcpservers/{name}", tag = "mcpservers", params(("name" = String, Path), NamespaceQuery),
    responses((status = 200, body = KubeObject), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<NamespaceQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let ns = q.ns()?;
    cache::get(&s.caches.mcpservers, &ns, &name)
        .map(|o| Json(object_json(&o)))
        .ok_or_else(|| not_found("mcpserver", &ns, &name))
}

/// Registers a server.
#[utoipa::path(post, path = "/api/v1/mcpservers", tag = "mcpservers", params(NamespaceQuery), request_body = CreateMcpServerRequest,
    responses((status = 201, body = KubeObject), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    Query(q): Query<NamespaceQuery>,
    Body(req): Body<CreateMcpServerRequest>,
) -> ApiResult<Response> {
    let ns = q.ns()?;
    let name = req.name.clone().unwrap_or_default();
    check_name("name", &name)?;
    let transport = crate::params::required("transportType", &req.transport_type)?;
    let prefix = crate::params::required("toolsPrefix", &req.tools_prefix)?;
    check_url(&req.url)?;
    check_timeout(req.timeout)?;
    let image = req.image.clone().filter(|i| !i.is_empty());
    if req.url.as_deref().unwrap_or_default().is_empty() && image.is_none() {
        return Err(ApiError::invalid("url", "give the url of a server or an image to run"));
    }
    let mut spec = json!({"transportType": transport, "toolsPrefix": prefix});
    if let Some(u) = req.url.clone().filter(|u| !u.is_empty()) {
        spec["url"] = u.into();
    }
    if let Some(i) = image {
        spec["deployment"] = json!({"image": i});
    }
    if let Some(t) = req.timeout {
        spec["timeout"] = t.into();
    }
    if let Some(a) = &req.tools_allow {
        spec["toolsAllow"] = json!(a);
    }
    if let Some(d) = &req.tools_deny {
        spec["toolsDeny"] = json!(d);
    }
    let server = MCPServer {
        metadata: ObjectMeta { name: Some(name.clone()), namespace: Some(ns.clone()), ..Default::default() },
        spec: spec_from(spec)?,
        status: None,
    };
    super::create_object::<MCPServer>(&s.client, "mcpserver", &ns, &name, &server).await
}

/// Changes a server's settings.
#[utoipa::path(patch, path = "/api/v1/mcpservers/{name}", tag = "mcpservers", params(("name" = String, Path), NamespaceQuery),
    request_body = PatchMcpServerRequest,
    responses((status = 200, body = KubeObject), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn patch(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<NamespaceQuery>,
    Body(req): Body<PatchMcpServerRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let ns = q.ns()?;
    check_url(&req.url)?;
    check_timeout(req.timeout)?;
    let api = Api::<MCPServer>::namespaced(s.client.clone(), &ns);
    let mut server = api.get_opt(&name).await?.ok_or_else(|| not_found("mcpserver", &ns, &name))?;
    let mut spec = serde_json::to_value(&server.spec).map_err(|e| ApiError::Internal(e.to_string()))?;
    if let Some(t) = req.transport_type.as_deref().filter(|t| !t.is_empty()) {
        spec["transportType"] = t.into();
    }
    if let Some(u) = &req.url {
        spec["url"] = u.as_str().into();
    }
    if let Some(p) = req.tools_prefix.as_deref().filter(|p| !p.is_empty()) {
        spec["toolsPrefix"] = p.into();
    }
    if let Some(t) = req.timeout {
        spec["timeout"] = t.into();
    }
    if let Some(a) = &req.tools_allow {
        spec["toolsAllow"] = json!(a);
    }
    if let Some(d) = &req.tools_deny {
        spec["toolsDeny"] = json!(d);
    }
    server.spec = spec_from(spec)?;
    super::replace_object(&s.client, "mcpserver", &ns, &name, &server).await
}

/// Deletes a server.
#[utoipa::path(delete, path = "/api/v1/mcpservers/{name}", tag = "mcpservers", params(("name" = String, Path), NamespaceQuery),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<NamespaceQuery>,
) -> ApiResult<StatusCode> {
    let ns = q.ns()?;
    super::delete_object::<MCPServer>(&s.client, "mcpserver", &ns, &name).await
}
