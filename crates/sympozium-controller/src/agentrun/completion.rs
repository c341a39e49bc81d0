//! Outcomes from the bus: the IPC bridge publishes the runner's result as
//! `agent.run.completed`; recording it here settles runs whose logs cannot be read, and
//! whichever of log and bus arrives first wins (see [`super::terminal::complete`]).

use std::sync::Arc;

use kube::{Api, ResourceExt};
use sympozium_api::AgentRun;
use sympozium_bus::{Bus, topics};

use crate::context::Context;

use super::result::from_result_json;
use super::terminal::complete;

/// Durable consumer name shared by controller replicas.
pub const CONSUMER: &str = "agentrun-completions";

/// The runs API of the namespace the completion's run lives in, within the controller's
/// scope: `None` for a run outside it or not found.
async fn find(ctx: &Context, meta: &std::collections::BTreeMap<String, String>) -> Option<Api<AgentRun>> {
    let run = meta.get("agentRunID")?;
    if let Some(ns) = meta.get("namespace").filter(|n| !n.is_empty()) {
        return ctx.in_scope(ns).then(|| Api::namespaced(ctx.client.clone(), ns));
    }
    let instance = meta.get("instanceName").cloned().unwrap_or_default();
    let all: Api<AgentRun> = ctx.scoped();
    let found =
        all.list(&kube::api::ListParams::default().fields(&format!("metadata.name={run}"))).await.ok()?;
    let mut matching =
        found.items.into_iter().filter(|r| instance.is_empty() || r.spec.instance_ref == instance);
    let first = matching.next()?;
    if matching.next().is_some() {
        tracing::warn!(%run, "completion matches runs in several namespaces; ignored");
        return None;
    }
    Some(Api::namespaced(ctx.client.clone(), &first.namespace()?))
}

/// Run completions, as [`Bus::serve`] hands them out.
struct Completions {
    ctx: Arc<Context>,
    bus: Bus,
}

impl sympozium_bus::Handler for Completions {
    async fn handle(&mut self, d: &mut sympozium_bus::Delivery) -> sympozium_bus::Outcome {
        let Self { ctx, bus } = self;
        if let Err(reason) = crate::run_origin::pin(bus, d) {
            tracing::warn!(%reason, "bus message dropped");
            return sympozium_bus::Outcome::Ack;
        }
        let meta = &d.envelope.metadata;
        if let (Some(api), Some(name)) = (find(ctx, meta).await, meta.get("agentRunID")) {
            let outcome = from_result_json(&d.envelope.data);
            let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
            match complete(&api, ctx, name.as_str(), &outcome, now).await {
                Ok(Some(run)) => {
                    tracing::info!(run = %name, "outcome recorded from the bus");
                    super::memory::after_finish(&ctx.client, &ctx.settings, &run, &outcome).await;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(run = %name, error = %e, "recording the outcome failed; will retry");
                    return sympozium_bus::Outcome::retry();
                }
            }
        }
        sympozium_bus::Outcome::Ack
    }
}

/// Records run outcomes from the bus until the process stops.
pub async fn run(ctx: Arc<Context>, bus: Bus) {
    let handler = crate::routers::observed(
        &ctx,
        "agentrun-completions",
        Completions { ctx: ctx.clone(), bus: bus.clone() },
    );
    bus.serve(CONSUMER, topics::AGENT_RUN_COMPLETED, handler).await;
}
