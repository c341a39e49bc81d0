//! `/api/v1/pods` and `/api/v1/pods/{name}/logs`: the namespace's pods and the tail of a
//! container's log (read live from the Kubernetes API; pods are not cached).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::{Api, ResourceExt};
use serde::{Deserialize, Serialize};
use sympozium_api::labels;
use utoipa::{IntoParams, ToSchema};

use super::not_found;
use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::params::{ListQuery, check_name};

/// Lines of log returned.
const TAIL_LINES: i64 = 200;

/// The pod routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/pods", get(list)).route("/api/v1/pods/{name}/logs", get(logs))
}

/// A pod, summarised.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodSummary {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Phase (`Pending`, `Running`, …).
    pub phase: String,
    /// Node it runs on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Its IP.
    #[serde(rename = "podIP", skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    /// When it started (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// Restarts over all its containers.
    pub restart_count: i32,
    /// Instance it belongs to (label `sympozium.ai/instance`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_ref: Option<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

fn summary(p: &Pod) -> PodSummary {
    let st = p.status.as_ref();
    PodSummary {
        name: p.name_any(),
        namespace: p.namespace().unwrap_or_default(),
        phase: st.and_then(|s| s.phase.clone()).unwrap_or_else(|| "Unknown".into()),
        node_name: p.spec.as_ref().and_then(|s| s.node_name.clone()),
        pod_ip: st.and_then(|s| s.pod_ip.clone()),
        start_time: st.and_then(|s| s.start_time.as_ref()).map(|t| t.0.to_string()),
        restart_count: st
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| cs.iter().map(|c| c.restart_count).sum())
            .unwrap_or(0),
        instance_ref: p.labels().get(labels::INSTANCE).cloned(),
        labels: p.labels().clone(),
    }
}

/// The pods of `?namespace`, by name.
#[utoipa::path(get, path = "/api/v1/pods", tag = "cluster", params(ListQuery),
    responses((status = 200, body = [PodSummary]), (status = 400, body = ErrorBody)))]
pub async fn list(State(s): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult<Response> {
    let ns = q.ns()?;
    let mut pods: Vec<PodSummary> = Api::<Pod>::namespaced(s.client.clone(), &ns)
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(summary)
        .collect();
    pods.sort_by(|a, b| a.name.cmp(&b.name));
    q.page(pods)
}

/// `?namespace=&container=` of the log route.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Namespace of the pod (default `default`).
    pub namespace: Option<String>,
    /// Container (default: the pod's `kubectl.kubernetes.io/default-container`, else its first).
    pub container: Option<String>,
}

/// `GET /api/v1/pods/{name}/logs`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema, PartialEq)]
pub struct PodLogs {
    /// The last 200 lines.
    pub logs: String,
}

/// The last 200 lines of a container's log.
#[utoipa::path(get, path = "/api/v1/pods/{name}/logs", tag = "cluster", params(("name" = String, Path), LogsQuery),
    responses((status = 200, body = PodLogs), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn logs(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Json<PodLogs>> {
    let ns = crate::params::NamespaceQuery { namespace: q.namespace.clone() }.ns()?;
    check_name("name", &name)?;
    let api = Api::<Pod>::namespaced(s.client.clone(), &ns);
    let pod = api.get_opt(&name).await?.ok_or_else(|| not_found("pod", &ns, &name))?;
    let containers: Vec<String> =
        pod.spec.as_ref().map(|s| s.containers.iter().map(|c| c.name.clone()).collect()).unwrap_or_default();
    let container = match q.container.as_deref().filter(|c| !c.is_empty()) {
        Some(c) if containers.iter().any(|x| x == c) => c.to_string(),
        Some(c) => {
            return Err(ApiError::invalid(
                "container",
                format!("pod \"{name}\" has no container \"{c}\" (it has: {})", containers.join(", ")),
            ));
        }
        None => pod
            .annotations()
            .get("kubectl.kubernetes.io/default-container")
            .filter(|d| containers.contains(d))
            .cloned()
            .or_else(|| containers.first().cloned())
            .ok_or_else(|| ApiError::invalid("name", format!("pod \"{name}\" has no containers")))?,
    };
    let lp =
        LogParams { container: Some(container.clone()), tail_lines: Some(TAIL_LINES), ..Default::default() };
    match api.logs(&name, &lp).await {
        Ok(logs) => Ok(Json(PodLogs { logs })),
        // A container that has not started has no log yet: say so instead of a bare 400.
        Err(kube::Error::Api(e)) if e.code == 400 => Err(ApiError::Conflict(format!(
            "no log for container \"{container}\" of pod \"{name}\" yet: {}",
            e.message
        ))),
        Err(e) => Err(e.into()),
    }
}
