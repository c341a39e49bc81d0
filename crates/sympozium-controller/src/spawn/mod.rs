//! The spawn router: an agent's `spawn_subagent` request (`agent.spawn.request`, from its
//! IPC bridge) becomes a child AgentRun within the instance's `agents.default.subagents`
//! limits, and the child's outcome travels back to the parent's bridge on
//! `agent.spawn.result.<parent run>` (written to `/ipc/input/spawn-result-<id>.json`).
//!
//! Refusals (a limit, an unknown parent) are answered at once on the same subject, so a
//! waiting parent learns why instead of timing out. A redelivered request finds the child
//! it already created (the child's name derives from the request). Results are sent once:
//! the child's `spawn-result-state` annotation moves from `pending` to `sent` under its
//! resourceVersion.
//!
//! Limits are checked request by request; the routers run on the elected leader only, so
//! two different requests are not judged at the same moment in production.

pub mod build;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use kube::api::{ListParams, PostParams};
use kube::runtime::events::EventType;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use sympozium_api::{AgentRun, labels};
use sympozium_bus::payloads::{SpawnRequest, SpawnResult};
use sympozium_bus::{Bus, Delivery, topics};
use sympozium_kube::FIELD_MANAGER;

use crate::channelrouter::reply::claim;
use crate::context::Context;
use build::{PARENT_RUN, RESULT_STATE, Usage};

/// Durable consumer of spawn requests, shared by controller replicas.
pub const CONSUMER: &str = "spawn-router";

/// What became of a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The child run exists (now or from an earlier delivery).
    Spawned(String),
    /// Refused; the parent was told why.
    Refused(String),
}

/// A transient failure handling a spawn request or sending a result; the request is
/// redelivered, the result sent again on the child's next change.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// A Kubernetes call failed.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// Publishing the answer failed.
    #[error(transparent)]
    Bus(#[from] sympozium_bus::Error),
}

fn meta(parent: &str, instance: &str, ns: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("agentRunID".to_string(), parent.to_string()),
        ("instanceName".to_string(), instance.to_string()),
        ("namespace".to_string(), ns.to_string()),
    ])
}

async fn send(
    bus: &Bus,
    parent: &str,
    instance: &str,
    ns: &str,
    result: &SpawnResult,
) -> Result<(), SpawnError> {
    // One stored answer per request, even when a publish is retried.
    let once = format!("spawn-answer/{ns}/{parent}/{}", result.id);
    Ok(bus.publish_once(&topics::spawn_result(ns, parent), meta(parent, instance, ns), result, &once).await?)
}

/// Finds the parent run by name, in the given namespace or else the only one with it,
/// within the controller's scope.
async fn parent(ctx: &Context, name: &str, ns: &str) -> Result<Option<AgentRun>, kube::Error> {
    if !ns.is_empty() {
        return Api::<AgentRun>::namespaced(ctx.client.clone(), ns).get_opt(name).await;
    }
    let found = ctx
        .scoped::<AgentRun>()
        .list(&ListParams::default().fields(&format!("metadata.name={name}")))
        .await?
        .items;
    Ok(if found.len() == 1 { found.into_iter().next() } else { None })
}

/// Handles one request; `Err` = transient, redeliver. What became of it is also an Event
/// on the parent run (`SubagentSpawned`, `SubagentRefused`).
pub async fn handle(ctx: &Context, bus: &Bus, delivery: &Delivery) -> Result<Outcome, SpawnError> {
    let env = &delivery.envelope;
    let req: SpawnRequest = serde_json::from_value(env.data.clone()).unwrap_or_default();
    let parent_name =
        Some(env.meta("agentRunID")).filter(|p| !p.is_empty()).unwrap_or(&req.parent_run_id).to_string();
    let ns = Some(env.meta("namespace")).filter(|n| !n.is_empty()).unwrap_or(&req.namespace).to_string();
    let instance_hint =
        Some(env.meta("instanceName")).filter(|i| !i.is_empty()).unwrap_or(&req.instance_name).to_string();
    let refuse = async |reason: String| -> Result<Outcome, SpawnError> {
        tracing::info!(parent = %parent_name, id = %req.id, %reason, "sub-agent refused");
        if !parent_name.is_empty() {
            send(bus, &parent_name, &instance_hint, &ns, &SpawnResult::error(&req.id, reason.clone()))
                .await?;
        }
        Ok(Outcome::Refused(reason))
    };
    if parent_name.is_empty() || req.id.is_empty() || req.task.trim().is_empty() {
        return refuse("a spawn request needs the parent run, an id and a task".into()).await;
    }
    if !ns.is_empty() && !ctx.in_scope(&ns) {
        return refuse(format!("namespace {ns} is not watched by this controller")).await;
    }
    let Some(parent) = parent(ctx, &parent_name, &ns).await? else {
        return refuse(format!("parent run {parent_name} not found")).await;
    };
    let outcome = spawn_child(ctx, &parent, &req, refuse).await?;
    let (type_, reason, note) = match &outcome {
        Outcome::Spawned(child) => (EventType::Normal, "SubagentSpawned", format!("sub-agent run {child}")),
        Outcome::Refused(why) => (EventType::Warning, "SubagentRefused", why.clone()),
    };
    ctx.publish_as(&parent, "Spawn", type_, reason, &note).await;
    Ok(outcome)
}

/// Creates the child of `parent` that `req` asks for, within the instance's limits.
async fn spawn_child(
    ctx: &Context,
    parent: &AgentRun,
    req: &SpawnRequest,
    refuse: impl AsyncFnOnce(String) -> Result<Outcome, SpawnError>,
) -> Result<Outcome, SpawnError> {
    let client = &ctx.client;
    let parent_name = parent.name_any();
    let ns = parent.namespace().unwrap_or_default();
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    let child = build::child(parent, req);
    let name = child.name_any();
    if runs.get_opt(&name).await?.is_some() {
        return Ok(Outcome::Spawned(name));
    }
    let instance = parent.spec.instance_ref.clone();
    let inst = ctx.instance(&ns, &instance).await?;
    let Some(inst) = inst else {
        return refuse(format!("instance {instance} of run {parent_name} not found")).await;
    };
    let limits = inst.spec.agents.default.subagents.clone().unwrap_or_default();
    let subagents = runs
        .list(&ListParams::default().labels(&format!("{}={instance},{PARENT_RUN}", labels::INSTANCE)))
        .await?
        .items;
    let usage = Usage {
        children: subagents.iter().filter(|r| r.labels().get(PARENT_RUN) == Some(&parent_name)).count(),
    };
    if let Err(reason) = build::check(&limits, &instance, build::child_depth(parent), usage) {
        // A copy of this very request may have created the child meanwhile (it then
        // counts against the limit): that is not a refusal.
        if runs.get_opt(&name).await?.is_some() {
            return Ok(Outcome::Spawned(name));
        }
        return refuse(reason.to_string()).await;
    }
    let params = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
    match runs.create(&params, &child).await {
        Ok(_) => tracing::info!(parent = %parent_name, child = %name, "sub-agent run created"),
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(kube::Error::Api(e)) if e.code == 422 || e.code == 400 => {
            return refuse(format!("the sub-agent run was rejected: {}", e.message)).await;
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Outcome::Spawned(name))
}

/// Watches sub-agent runs and sends each finished one's result to its parent, once.
async fn watch_children(ctx: Arc<Context>, bus: Bus) {
    let client = ctx.client.clone();
    let api: Api<AgentRun> = ctx.scoped();
    let config = watcher::Config::default().labels(PARENT_RUN);
    let mut children = std::pin::pin!(watcher(api, config).default_backoff().applied_objects());
    while let Some(next) = children.next().await {
        let Ok(child) = next else { continue };
        let pending = child.annotations().get(RESULT_STATE).map(String::as_str) == Some("pending");
        if !pending || build::result(&child).is_none() {
            continue;
        }
        let (ns, name) = (child.namespace().unwrap_or_default(), child.name_any());
        let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
        let claimed = match claim(&runs, &name, RESULT_STATE, Some(child.clone())).await {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(child = %name, error = %e, "claiming a sub-agent result failed");
                continue;
            }
        };
        let (Some(result), Some(parent)) = (build::result(&claimed), claimed.labels().get(PARENT_RUN)) else {
            continue;
        };
        if let Err(e) = send(&bus, parent, &claimed.spec.instance_ref, &ns, &result).await {
            tracing::warn!(child = %name, error = %e, "sending a sub-agent result failed; retried on its next change");
            let undo = serde_json::json!({"metadata": {"annotations": {RESULT_STATE: "pending"}}});
            let _ =
                runs.patch(&name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&undo)).await;
        } else {
            tracing::info!(child = %name, %parent, status = %result.status, "sub-agent result sent to its parent");
        }
    }
}

/// Spawn requests, as [`Bus::serve`] hands them out.
struct Requests {
    ctx: Arc<Context>,
    bus: Bus,
}

impl sympozium_bus::Handler for Requests {
    async fn handle(&mut self, d: &mut Delivery) -> sympozium_bus::Outcome {
        if let Err(reason) = crate::run_origin::pin(&self.bus, d) {
            tracing::warn!(%reason, "bus message dropped");
            return sympozium_bus::Outcome::Ack;
        }
        match handle(&self.ctx, &self.bus, d).await {
            Ok(_) => sympozium_bus::Outcome::Ack,
            Err(e) => {
                tracing::warn!(error = %e, "spawn request failed; will retry");
                sympozium_bus::Outcome::retry()
            }
        }
    }
}

async fn requests(ctx: Arc<Context>, bus: Bus) {
    let handler =
        crate::routers::observed(&ctx, "spawn-router", Requests { ctx: ctx.clone(), bus: bus.clone() });
    bus.serve(CONSUMER, topics::AGENT_SPAWN_REQUEST, handler).await;
}

/// Handles spawn requests and delivers sub-agent results until the process stops.
pub async fn run(ctx: Arc<Context>, bus: Bus) {
    futures::join!(requests(ctx.clone(), bus.clone()), watch_children(ctx, bus));
}
