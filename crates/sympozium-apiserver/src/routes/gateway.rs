//! `/api/v1/gateway`: the cluster's web gateway, the SympoziumConfig `default` in the system
//! namespace. (The original used the caller's namespace, which its controller ignores; here
//! every gateway route is pinned to the one object the controller reads.)

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sympozium_api::config::GatewaySpec;
use sympozium_api::{SympoziumConfig, SympoziumConfigSpec};
use utoipa::ToSchema;

use super::write_error;
use crate::AppState;
use crate::cache;
use crate::error::{ApiError, ApiResult, ErrorBody};

const NAME: &str = "default";

/// The gateway routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/gateway", get(get_gateway).post(create).patch(patch).delete(delete))
        .route("/api/v1/gateway/metrics", get(metrics))
}

/// The gateway's settings and state.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayConfigResponse {
    /// A gateway is wanted.
    pub enabled: bool,
    /// GatewayClass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_class_name: Option<String>,
    /// Gateway object name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Domain under which instances get hostnames.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_domain: Option<String>,
    /// TLS on.
    pub tls_enabled: bool,
    /// cert-manager ClusterIssuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_manager_cluster_issuer: Option<String>,
    /// TLS Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
    /// Phase reported by the controller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The Gateway is programmed.
    pub ready: bool,
    /// Its address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Its listeners.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener_count: Option<i32>,
    /// Message of its latest condition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `POST`/`PATCH /api/v1/gateway`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRequest {
    /// A gateway is wanted.
    pub enabled: Option<bool>,
    /// GatewayClass.
    pub gateway_class_name: Option<String>,
    /// Gateway object name.
    pub name: Option<String>,
    /// Base domain.
    pub base_domain: Option<String>,
    /// TLS on.
    pub tls_enabled: Option<bool>,
    /// cert-manager ClusterIssuer.
    pub cert_manager_cluster_issuer: Option<String>,
    /// TLS Secret.
    pub tls_secret_name: Option<String>,
}

fn response(c: &SympoziumConfig) -> GatewayConfigResponse {
    let g = c.spec.gateway.as_ref();
    let st = c.status.as_ref();
    let gs = st.and_then(|s| s.gateway.as_ref());
    GatewayConfigResponse {
        enabled: g.is_some_and(|g| g.enabled),
        gateway_class_name: g.map(|g| g.gateway_class_name.clone()),
        name: g.map(|g| g.name.clone()),
        base_domain: g.and_then(|g| g.base_domain.clone()),
        tls_enabled: g.and_then(|g| g.tls.as_ref()).is_some_and(|t| t.enabled),
        cert_manager_cluster_issuer: g.and_then(|g| g.tls.as_ref()?.cert_manager_cluster_issuer.clone()),
        tls_secret_name: g.and_then(|g| g.tls.as_ref()).map(|t| t.secret_name.clone()),
        phase: st.and_then(|s| s.phase.clone()),
        ready: gs.is_some_and(|g| g.ready),
        address: gs.and_then(|g| g.address.clone()),
        listener_count: gs.and_then(|g| g.listener_count),
        message: st.and_then(|s| s.conditions.last()).map(|c| c.message.clone()).filter(|m| !m.is_empty()),
    }
}

fn apply(current: Option<&GatewaySpec>, req: &GatewayRequest) -> ApiResult<GatewaySpec> {
    if let Some(d) = req.base_domain.as_deref().filter(|d| !d.is_empty())
        && (d.contains('/') || d.contains(' ') || d.starts_with('.') || d.contains(':'))
    {
        return Err(ApiError::invalid("baseDomain", format!("\"{d}\" is not a DNS domain")));
    }
    let mut v = match current {
        Some(g) => serde_json::to_value(g).map_err(|e| ApiError::Internal(e.to_string()))?,
        None => json!({}),
    };
    let set = |v: &mut serde_json::Value, k: &str, x: &Option<String>| {
        if let Some(x) = x.as_deref().filter(|x| !x.is_empty()) {
            v[k] = x.into();
        }
    };
    if let Some(e) = req.enabled {
        v["enabled"] = e.into();
    }
    set(&mut v, "gatewayClassName", &req.gateway_class_name);
    set(&mut v, "name", &req.name);
    set(&mut v, "baseDomain", &req.base_domain);
    if req.tls_enabled.is_some() || req.cert_manager_cluster_issuer.is_some() || req.tls_secret_name.is_some()
    {
        if !v["tls"].is_object() {
            v["tls"] = json!({});
        }
        if let Some(t) = req.tls_enabled {
            v["tls"]["enabled"] = t.into();
        }
        set(&mut v["tls"], "certManagerClusterIssuer", &req.cert_manager_cluster_issuer);
        set(&mut v["tls"], "secretName", &req.tls_secret_name);
    }
    serde_json::from_value(v).map_err(|e| ApiError::invalid("gateway", e.to_string()))
}

/// The gateway (all-false when none is configured).
#[utoipa::path(get, path = "/api/v1/gateway", tag = "gateway",
    responses((status = 200, body = GatewayConfigResponse)))]
pub async fn get_gateway(State(s): State<AppState>) -> Json<GatewayConfigResponse> {
    Json(cache::get(&s.caches.configs, &s.system_namespace, NAME).map(|c| response(&c)).unwrap_or_default())
}

/// Configures a gateway (409 when one is configured).
#[utoipa::path(post, path = "/api/v1/gateway", tag = "gateway", request_body = GatewayRequest,
    responses((status = 201, body = GatewayConfigResponse), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    crate::params::Body(req): crate::params::Body<GatewayRequest>,
) -> ApiResult<Response> {
    let ns = s.system_namespace.clone();
    let api = Api::<SympoziumConfig>::namespaced(s.client.clone(), &ns);
    // Checked first: the API server validates a create before it looks for a duplicate.
    if api.get_metadata_opt(NAME).await?.is_some() {
        return Err(ApiError::Conflict(format!(
            "gateway config \"{NAME}\" already exists in namespace \"{ns}\""
        )));
    }
    let config = SympoziumConfig {
        metadata: ObjectMeta { name: Some(NAME.into()), namespace: Some(ns.clone()), ..Default::default() },
        spec: SympoziumConfigSpec { gateway: Some(apply(None, &req)?), pricing: None },
        status: None,
    };
    let created = api
        .create(&PostParams::default(), &config)
        .await
        .map_err(|e| write_error("gateway config", &ns, NAME, e))?;
    Ok((StatusCode::CREATED, Json(response(&created))).into_response())
}

/// Changes the gateway (404 when none is configured).
#[utoipa::path(patch, path = "/api/v1/gateway", tag = "gateway", request_body = GatewayRequest,
    responses((status = 200, body = GatewayConfigResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn patch(
    State(s): State<AppState>,
    crate::params::Body(req): crate::params::Body<GatewayRequest>,
) -> ApiResult<Json<GatewayConfigResponse>> {
    let ns = s.system_namespace.clone();
    let api = Api::<SympoziumConfig>::namespaced(s.client.clone(), &ns);
    let mut config = api.get_opt(NAME).await?.ok_or_else(|| super::not_found("gateway config", &ns, NAME))?;
    config.spec.gateway = Some(apply(config.spec.gateway.as_ref(), &req)?);
    let updated = api
        .replace(NAME, &PostParams::default(), &config)
        .await
        .map_err(|e| write_error("gateway config", &ns, NAME, e))?;
    Ok(Json(response(&updated)))
}

/// Removes the gateway configuration.
#[utoipa::path(delete, path = "/api/v1/gateway", tag = "gateway",
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(State(s): State<AppState>) -> ApiResult<StatusCode> {
    let ns = s.system_namespace.clone();
    super::delete_object::<SympoziumConfig>(&s.client, "gateway config", &ns, NAME).await
}

/// One bucket of [`GatewayMetrics`].
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayBucket {
    /// Start of the bucket (unix ms).
    pub ts: i64,
    /// Requests (web-proxy runs) created in it.
    pub requests: u64,
    /// Of which failed.
    pub errors: u64,
    /// Their mean duration (s).
    pub avg_duration_sec: f64,
}

/// `GET /api/v1/gateway/metrics`: web-endpoint traffic of the namespace.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayMetrics {
    /// Requests in the range.
    pub total_requests: u64,
    /// Requests that did not fail.
    pub success_count: u64,
    /// Requests that failed.
    pub error_count: u64,
    /// Mean duration of the finished ones (s).
    pub avg_duration_sec: f64,
    /// Seconds since the oldest serving web endpoint of the namespace started (0 when none).
    pub uptime_sec: i64,
    /// Instances of the namespace with a serving web endpoint.
    pub serving_instances: u64,
    /// Oldest first.
    pub buckets: Vec<GatewayBucket>,
}

/// Web-endpoint requests (AgentRuns labelled `sympozium.ai/source=web-proxy`) over the
/// range, and the namespace's serving endpoints. (The original counted serving endpoints
/// among the request runs, so they were always 0; here they are the `Serving` runs.)
#[utoipa::path(get, path = "/api/v1/gateway/metrics", tag = "gateway", params(crate::routes::observability::RangeQuery),
    responses((status = 200, body = GatewayMetrics), (status = 400, body = ErrorBody)))]
pub async fn metrics(
    State(s): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<crate::routes::observability::RangeQuery>,
) -> ApiResult<Json<GatewayMetrics>> {
    use kube::ResourceExt;
    use sympozium_api::agentrun::AgentRunPhase;
    let ns = crate::params::NamespaceQuery { namespace: q.namespace.clone() }.ns()?;
    let range = q.range.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| "24h".into());
    let (span, width) = match range.as_str() {
        "1h" => (3600, 300),
        "24h" => (86_400, 3600),
        "7d" => (7 * 86_400, 86_400),
        other => return Err(ApiError::invalid("range", format!("\"{other}\" is not one of 1h, 24h, 7d"))),
    };
    let now = chrono::Utc::now().timestamp();
    let end = (now / width + 1) * width;
    let start = end - span;
    let mut buckets: Vec<GatewayBucket> = (0..span / width)
        .map(|i| GatewayBucket { ts: (start + i * width) * 1000, ..Default::default() })
        .collect();
    let mut sums = vec![(0.0_f64, 0_u64); buckets.len()];
    let mut out = GatewayMetrics::default();
    let (mut total_secs, mut timed) = (0.0_f64, 0_u64);
    let mut serving = std::collections::BTreeSet::new();
    let mut oldest_serving: Option<i64> = None;
    for r in cache::list(&s.caches.runs, Some(&ns)) {
        let st = r.status.clone().unwrap_or_default();
        if st.phase == Some(AgentRunPhase::Serving) {
            serving.insert(r.spec.instance_ref.clone());
            let since =
                st.started_at.as_ref().or(r.metadata.creation_timestamp.as_ref()).map(|t| t.0.as_second());
            oldest_serving = match (oldest_serving, since) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        if r.labels().get(sympozium_api::labels::SOURCE).map(String::as_str) != Some("web-proxy") {
            continue;
        }
        let Some(t) = r.creation_timestamp().map(|t| t.0.as_second()) else { continue };
        if t < start || t >= end {
            continue;
        }
        let i = ((t - start) / width) as usize;
        let Some(b) = buckets.get_mut(i) else { continue };
        b.requests += 1;
        out.total_requests += 1;
        if st.phase == Some(AgentRunPhase::Failed) {
            b.errors += 1;
            out.error_count += 1;
        } else {
            out.success_count += 1;
        }
        if let Some(secs) = duration_secs(&st) {
            total_secs += secs;
            timed += 1;
            if let Some(sum) = sums.get_mut(i) {
                sum.0 += secs;
                sum.1 += 1;
            }
        }
    }
    for (b, (sum, n)) in buckets.iter_mut().zip(sums) {
        if n > 0 {
            b.avg_duration_sec = sum / n as f64;
        }
    }
    if timed > 0 {
        out.avg_duration_sec = total_secs / timed as f64;
    }
    out.serving_instances = serving.len() as u64;
    out.uptime_sec = oldest_serving.map(|t| (now - t).max(0)).unwrap_or(0);
    out.buckets = buckets;
    Ok(Json(out))
}

fn duration_secs(st: &sympozium_api::agentrun::AgentRunStatus) -> Option<f64> {
    if let Some(u) = st.token_usage.as_ref().filter(|u| u.duration_ms > 0) {
        return Some(u.duration_ms as f64 / 1000.0);
    }
    let (a, b) = (st.started_at.as_ref()?, st.completed_at.as_ref()?);
    Some((b.0.as_millisecond() - a.0.as_millisecond()).max(0) as f64 / 1000.0)
}
