//! `/api/v1/namespaces`, `/api/v1/cluster`, `/api/v1/capabilities`: what the cluster is
//! and offers, for the namespace selector, the dashboard header and the create wizard.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::cache;
use crate::error::{ApiResult, ErrorBody};

/// Group/version of the agent-sandbox API (kubernetes-sigs/agent-sandbox).
const SANDBOX_GROUP_VERSION: &str = "agents.x-k8s.io/v1alpha1";

/// The cluster routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/namespaces", get(namespaces))
        .route("/api/v1/cluster", get(cluster))
        .route("/api/v1/capabilities", get(capabilities))
}

/// Every namespace name, sorted.
#[utoipa::path(get, path = "/api/v1/namespaces", tag = "cluster",
    responses((status = 200, body = [String])))]
pub async fn namespaces(State(s): State<AppState>) -> Json<Vec<String>> {
    Json(cache::list(&s.caches.namespaces, None).iter().map(|n| n.name_any()).collect())
}

/// `GET /api/v1/cluster`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema, PartialEq)]
pub struct ClusterInfo {
    /// Nodes.
    pub nodes: u64,
    /// Namespaces.
    pub namespaces: u64,
    /// Pods in every namespace.
    pub pods: u64,
    /// Kubernetes version (`v1.33.1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Counts of nodes, namespaces and pods, and the Kubernetes version.
#[utoipa::path(get, path = "/api/v1/cluster", tag = "cluster",
    responses((status = 200, body = ClusterInfo), (status = 500, body = ErrorBody)))]
pub async fn cluster(State(s): State<AppState>) -> ApiResult<Json<ClusterInfo>> {
    // Metadata-only lists: the counts are all the page shows.
    let lp = ListParams::default();
    let nodes = Api::<Node>::all(s.client.clone()).list_metadata(&lp).await?.items.len();
    let pods = Api::<Pod>::all(s.client.clone()).list_metadata(&lp).await?.items.len();
    let version = s.client.apiserver_version().await.ok().map(|v| v.git_version);
    Ok(Json(ClusterInfo {
        nodes: nodes as u64,
        namespaces: cache::list(&s.caches.namespaces, None).len() as u64,
        pods: pods as u64,
        version,
    }))
}

/// Whether an optional API is installed.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema, PartialEq)]
pub struct Capability {
    /// Installed and usable.
    pub available: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET /api/v1/capabilities`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    /// The agent-sandbox API (`agents.x-k8s.io` `sandboxes`), needed by `agentSandbox` specs.
    pub agent_sandbox: Capability,
}

/// Optional APIs the cluster has (the create wizard hides what is missing).
#[utoipa::path(get, path = "/api/v1/capabilities", tag = "cluster",
    responses((status = 200, body = Capabilities)))]
pub async fn capabilities(State(s): State<AppState>) -> Json<Capabilities> {
    let agent_sandbox = match s.client.list_api_group_resources(SANDBOX_GROUP_VERSION).await {
        Ok(list) if list.resources.iter().any(|r| r.name == "sandboxes") => {
            Capability { available: true, reason: None }
        }
        Ok(_) => Capability {
            available: false,
            reason: Some(format!("{SANDBOX_GROUP_VERSION} has no \"sandboxes\" resource")),
        },
        Err(kube::Error::Api(e)) if e.code == 404 => Capability {
            available: false,
            reason: Some(format!(
                "{SANDBOX_GROUP_VERSION} is not installed (install the agent-sandbox CRDs)"
            )),
        },
        Err(e) => Capability { available: false, reason: Some(format!("discovery failed: {e}")) },
    };
    Json(Capabilities { agent_sandbox })
}
