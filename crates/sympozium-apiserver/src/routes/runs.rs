//! `/api/v1/runs`: AgentRuns.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use kube::api::ObjectMeta;
use kube::{Api, ResourceExt};
use serde::{Deserialize, Serialize};
use sympozium_api::{AgentRun, AgentRunSpec, labels, resolve};
use utoipa::ToSchema;

use super::{not_found, object_json};
use crate::AppState;
use crate::cache;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::openapi::KubeObject;
use crate::params::{Body, ListQuery, NamespaceQuery, check_name};

/// The run routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/runs", get(list).post(create))
        .route("/api/v1/runs/{name}", get(get_one).delete(delete))
        .route("/api/v1/runs/{name}/telemetry", get(telemetry))
}

/// `POST /api/v1/runs`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateRunRequest {
    /// The instance to run on (required).
    pub instance_ref: Option<String>,
    /// What the agent should do (required).
    pub task: Option<String>,
    /// Agent id (default `primary`).
    pub agent_id: Option<String>,
    /// Session key (default `session-<unix nanos>`).
    pub session_key: Option<String>,
    /// Model (default the instance's).
    pub model: Option<String>,
    /// Whole-run timeout, e.g. `5m` (default the instance's).
    pub timeout: Option<String>,
}

/// `GET /api/v1/runs/{name}/telemetry`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunTelemetry {
    /// The run.
    pub run_name: String,
    /// Its namespace.
    pub namespace: String,
    /// Its pod, once it has one.
    pub pod_name: String,
    /// Its phase.
    pub phase: String,
    /// Trace ids (none are collected yet).
    pub trace_ids: Vec<String>,
    /// Events (none are collected yet).
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<serde_json::Value>,
}

/// Lists runs in `?namespace`, newest first.
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(ListQuery),
    responses((status = 200, body = [KubeObject]), (status = 400, body = ErrorBody)))]
pub async fn list(State(s): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult<Response> {
    let ns = q.ns()?;
    let mut runs = cache::list(&s.caches.runs, Some(&ns));
    runs.sort_by(|a, b| {
        b.creation_timestamp()
            .map(|t| t.0)
            .cmp(&a.creation_timestamp().map(|t| t.0))
            .then(a.name_any().cmp(&b.name_any()))
    });
    q.page_of(runs, |o| object_json(&o))
}

/// One run.
#[utoipa::path(get, path = "/api/v1/runs/{name}", tag = "runs", params(("name" = String, Path), NamespaceQuery),
    responses((status = 200, body = KubeObject), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<NamespaceQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    let ns = q.ns()?;
    cache::get(&s.caches.runs, &ns, &name)
        .map(|o| Json(object_json(&o)))
        .ok_or_else(|| not_found("run", &ns, &name))
}

/// Go-style durations the CRD accepts: digits and a unit, repeated (`90s`, `1h30m`).
fn valid_duration(s: &str) -> bool {
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ms", "h", "m", "s"].into_iter().find(|u| rest.starts_with(u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

/// Starts a run on an instance, configured like the instance.
#[utoipa::path(post, path = "/api/v1/runs", tag = "runs", params(NamespaceQuery), request_body = CreateRunRequest,
    responses((status = 201, body = KubeObject), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    Query(q): Query<NamespaceQuery>,
    Body(req): Body<CreateRunRequest>,
) -> ApiResult<Response> {
    let ns = q.ns()?;
    let instance_name = req.instance_ref.clone().unwrap_or_default();
    check_name("instanceRef", &instance_name)?;
    let task = req.task.clone().unwrap_or_default();
    if task.trim().is_empty() {
        return Err(ApiError::invalid("task", "is required"));
    }
    if let Some(t) = req.timeout.as_deref().filter(|t| !t.is_empty())
        && !valid_duration(t)
    {
        return Err(ApiError::invalid("timeout", format!("\"{t}\" is not a duration like 90s, 5m or 1h")));
    }
    let instance = Api::<sympozium_api::SympoziumInstance>::namespaced(s.client.clone(), &ns)
        .get_opt(&instance_name)
        .await?
        .ok_or_else(|| not_found("instance", &ns, &instance_name))?;
    let agent = &instance.spec.agents.default;
    let model = resolve::model_spec(
        &instance.spec,
        &resolve::ModelOverrides { model: req.model.clone(), ..Default::default() },
    );
    if model.auth_secret_ref.is_empty() && model.base_url.is_none() {
        return Err(ApiError::invalid(
            "instanceRef",
            format!("instance \"{instance_name}\" has no API key configured (authRefs is empty)"),
        ));
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let run = AgentRun {
        metadata: ObjectMeta {
            generate_name: Some(format!("{instance_name}-")),
            namespace: Some(ns.clone()),
            labels: Some(
                [
                    (labels::INSTANCE.to_string(), instance_name.clone()),
                    (labels::SOURCE.to_string(), "web-ui".to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: AgentRunSpec {
            instance_ref: instance_name.clone(),
            agent_id: req.agent_id.clone().filter(|a| !a.is_empty()).unwrap_or_else(|| "primary".into()),
            session_key: req
                .session_key
                .clone()
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| format!("session-{nanos}")),
            task,
            model,
            // The original ignored the request's timeout; a run here gets what was asked for.
            timeout: req.timeout.clone().filter(|t| !t.is_empty()).or_else(|| agent.run_timeout.clone()),
            ..Default::default()
        },
        status: None,
    };
    super::create_object::<AgentRun>(&s.client, "run", &ns, &instance_name, &run).await
}

/// Deletes a run.
#[utoipa::path(delete, path = "/api/v1/runs/{name}", tag = "runs", params(("name" = String, Path), NamespaceQuery),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<NamespaceQuery>,
) -> ApiResult<StatusCode> {
    let ns = q.ns()?;
    super::delete_object::<AgentRun>(&s.client, "run", &ns, &name).await
}

/// The run's pod and phase (trace collection is not wired yet: ids and events are empty).
#[utoipa::path(get, path = "/api/v1/runs/{name}/telemetry", tag = "runs", params(("name" = String, Path), NamespaceQuery),
    responses((status = 200, body = RunTelemetry), (status = 404, body = ErrorBody)))]
pub async fn telemetry(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<NamespaceQuery>,
) -> ApiResult<Json<RunTelemetry>> {
    let ns = q.ns()?;
    let run = cache::get(&s.caches.runs, &ns, &name).ok_or_else(|| not_found("run", &ns, &name))?;
    let status = run.status.clone().unwrap_or_default();
    Ok(Json(RunTelemetry {
        run_name: name,
        namespace: ns,
        pod_name: status.pod_name.unwrap_or_default(),
        phase: super::phase_name(status.phase),
        trace_ids: vec![],
        events: vec![],
    }))
}

#[cfg(test)]
mod tests {
    use super::valid_duration;

    #[test]
    fn durations() {
        for ok in ["90s", "5m", "1h30m", "1.5h", "250ms"] {
            assert!(valid_duration(ok), "{ok}");
        }
        for bad in ["", "5", "m", "5d", "5 m", "-5m"] {
            assert!(!valid_duration(bad), "{bad}");
        }
    }
}
