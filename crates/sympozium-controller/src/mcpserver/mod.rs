//! The MCPServer controller. Managed servers (`spec.deployment`) become a Deployment and a
//! Service (stdio servers run behind the MCP bridge's stdio adapter); external ones
//! (`spec.url`) get no workload. Either way the controller connects to the server as an MCP
//! client (rmcp), lists its tools and reports them in status: `ready`, `url`, `toolCount`,
//! `tools` (after `toolsAllow`/`toolsDeny`), `lastError`, and the `Deployed`/`Ready`
//! conditions. Children are owned, so garbage collection removes them (no finalizer).

pub mod build;
pub mod discover;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::{Controller, watcher};
use kube::{Api, ResourceExt};
use sympozium_api::{MCPServer, McpServerStatus};
use sympozium_kube::FIELD_MANAGER;
use sympozium_kube::apply::apply;

use crate::context::{Context, backoff_key};

/// Name used in metrics and logs.
pub const CONTROLLER: &str = "mcpserver";

/// How often a ready server's tools are listed again.
const REDISCOVER: Duration = Duration::from_secs(60);
/// How soon a server that is not ready is looked at again.
const NOT_READY: Duration = Duration::from_secs(5);

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// Runs the controller until the process is asked to stop.
pub async fn run(ctx: Arc<Context>) {
    let owned = watcher::Config::default().labels("app.kubernetes.io/name=mcpserver");
    Controller::new(ctx.scoped::<MCPServer>(), watcher::Config::default().any_semantic())
        .with_config(ctx.controller_config())
        .owns(ctx.scoped::<Deployment>(), owned.clone())
        .owns(ctx.scoped::<Service>(), owned)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

fn condition(
    previous: Option<&McpServerStatus>,
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let last_transition_time = previous
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time,
        observed_generation: generation,
    }
}

/// Every key of every `secretRefs` Secret, sorted (a stdio server gets each as a variable).
async fn secret_keys(server: &MCPServer, ctx: &Context) -> Result<Vec<(String, String)>, kube::Error> {
    let ns = server.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let mut out = Vec::new();
    for r in server.spec.deployment.iter().flat_map(|d| d.secret_refs.iter()) {
        if let Some(secret) = secrets.get_opt(&r.name).await? {
            let keys = secret.data.iter().flatten().map(|(k, _)| k.clone());
            let keys = keys.chain(secret.string_data.iter().flatten().map(|(k, _)| k.clone()));
            out.extend(keys.map(|k| (r.name.clone(), k)));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[tracing::instrument(skip_all, fields(mcpserver = %server.name_any(), namespace = server.namespace().unwrap_or_default()))]
async fn reconcile(server: Arc<MCPServer>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let ns = server.namespace().unwrap_or_default();
    let name = server.name_any();
    let generation = server.metadata.generation;
    let previous = server.status.as_ref();
    let external = server.spec.url.clone().filter(|u| !u.is_empty());
    let mut conditions = Vec::new();
    let (url, endpoints, deployed_ready) = match &external {
        Some(url) => (url.clone(), vec![url.clone()], true),
        None => {
            let keys = secret_keys(&server, &ctx).await?;
            let Some(deployment) = build::deployment(&server, &ctx.settings, &keys) else {
                tracing::info!("neither url nor deployment: nothing to do");
                return Ok(Action::await_change());
            };
            let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
            apply(&deployments, &deployment).await?;
            apply(&Api::<Service>::namespaced(ctx.client.clone(), &ns), &build::service(&server)).await?;
            conditions.push(condition(
                previous,
                "Deployed",
                true,
                "DeploymentCreated",
                format!("Deployment and Service {name}"),
                generation,
            ));
            let ready_replicas = deployments
                .get_opt(&name)
                .await?
                .and_then(|d| d.status)
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0);
            let endpoints = discover::endpoint_urls(&ctx.client, &server).await?;
            (build::service_url(&server), endpoints, ready_replicas > 0)
        }
    };
    let outcome = if deployed_ready {
        let token = discover::token(&ctx.client, &server).await?;
        Some(discover::tools(&server, &endpoints, token).await.map_err(|e| e.to_string()))
    } else {
        None
    };
    let mut status = McpServerStatus {
        ready: false,
        url: Some(url),
        tool_count: previous.and_then(|p| p.tool_count),
        tools: previous.map(|p| p.tools.clone()).unwrap_or_default(),
        last_error: None,
        conditions,
    };
    let requeue = match outcome {
        None => {
            status.conditions.push(condition(
                previous,
                "Ready",
                false,
                "NotReady",
                "the Deployment has no ready replica yet".into(),
                generation,
            ));
            NOT_READY
        }
        Some(Ok(tools)) => {
            status.ready = true;
            status.tool_count = Some(i32::try_from(tools.len()).unwrap_or(i32::MAX));
            let message = format!("{} tool(s): {}", tools.len(), tools.join(", "));
            status.tools = tools;
            let reason = if external.is_some() { "External" } else { "Ready" };
            status.conditions.push(condition(previous, "Ready", true, reason, message, generation));
            REDISCOVER
        }
        Some(Err(e)) => {
            status.last_error = Some(e.clone());
            status.conditions.push(condition(previous, "Ready", false, "Unreachable", e, generation));
            NOT_READY.max(Duration::from_secs(15))
        }
    };
    if previous != Some(&status) {
        let patch =
            serde_json::json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "MCPServer", "status": status});
        let api: Api<MCPServer> = Api::namespaced(ctx.client.clone(), &ns);
        api.patch_status(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    }
    ctx.backoff.succeeded(&backoff_key(CONTROLLER, &*server));
    Ok(Action::requeue(requeue))
}

fn error_policy(server: Arc<MCPServer>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.retry(CONTROLLER, "kube", &*server, error)
}
