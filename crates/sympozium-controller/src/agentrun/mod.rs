//! The AgentRun controller: every agent execution becomes an ephemeral, locked-down Job
//! with a per-run ServiceAccount and exactly the RBAC its skills grant, and its outcome —
//! read from the agent's log or from the bus, whichever comes first — lands in status.
//!
//! Phases: Pending → Running → Succeeded | Failed (server mode and post-run hooks are
//! handled elsewhere).

pub mod build;
pub mod bus_access;
pub mod completion;
pub mod fallbacks;
pub mod hooks;
pub mod host;
pub mod mcp;
pub mod memory;
pub mod metering;
pub mod network;
pub mod observability;
pub mod pending;
pub mod policy;
pub mod postrun;
pub mod result;
pub mod running;
pub mod sandbox;
pub mod sandbox_container;
pub mod scope;
pub mod serve;
pub mod terminal;
pub mod warm_claim;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::{Controller, watcher};
use kube::{Api, ResourceExt};
use sympozium_api::AgentRun;
use sympozium_api::agentrun::{AgentRunPhase, RunMode};
use sympozium_api::labels::{self, AGENT_RUN_FINALIZER};

use crate::context::{Context, backoff_key};

/// Name used in metrics and logs.
pub const CONTROLLER: &str = "agentrun";

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The finalizer machinery failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
}

/// Runs the controller until the process is asked to stop.
pub async fn run(ctx: Arc<Context>) {
    Controller::new(ctx.scoped::<AgentRun>(), watcher::Config::default())
        .owns(ctx.scoped::<Job>(), watcher::Config::default().labels(labels::AGENT_RUN))
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

/// One reconcile as the span `agentrun.reconcile`, a child of the trace the run continues
/// (its `otel.dev/traceparent` annotation: the chat message that caused it).
async fn reconcile(run: Arc<AgentRun>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = tracing::info_span!("agentrun.reconcile", run = %run.name_any(),
        namespace = run.namespace().unwrap_or_default(), sympozium.instance = %run.spec.instance_ref,
        otel.status_code = tracing::field::Empty);
    if let Some(tp) = run.annotations().get(sympozium_api::labels::TRACEPARENT) {
        sympozium_telemetry::set_parent_from_traceparent(&span, tp);
    }
    let result = tracing::Instrument::instrument(reconcile_in_span(run, ctx), span.clone()).await;
    if result.is_err() {
        span.record("otel.status_code", "ERROR");
    }
    result
}

async fn reconcile_in_span(run: Arc<AgentRun>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let ns = run.namespace().unwrap_or_default();
    let api: Api<AgentRun> = Api::namespaced(ctx.client.clone(), &ns);
    let key = backoff_key(CONTROLLER, &*run);
    let result = finalizer(&api, AGENT_RUN_FINALIZER, run, |event| async {
        match event {
            Finalizer::Apply(run) => step(&run, &api, &ctx).await,
            Finalizer::Cleanup(run) => {
                terminal::cleanup(&run, &ctx).await?;
                Ok(Action::await_change())
            }
        }
    })
    .await;
    ctx.settle(&key, result, Error::Finalizer)
}

async fn step(run: &AgentRun, api: &Api<AgentRun>, ctx: &Context) -> Result<Action, Error> {
    let phase = run.status.as_ref().and_then(|s| s.phase).unwrap_or_default();
    match phase {
        AgentRunPhase::Pending if run.spec.mode == RunMode::Server => serve::start(run, api, ctx).await,
        AgentRunPhase::Pending => pending::pending(run, api, ctx).await,
        AgentRunPhase::Running => running::running(run, api, ctx).await,
        AgentRunPhase::Succeeded | AgentRunPhase::Failed => terminal::finished(run, ctx).await,
        AgentRunPhase::PostRunning => postrun::post_running(run, api, ctx).await,
        AgentRunPhase::Serving => serve::serving(run, api, ctx).await,
    }
}

fn error_policy(run: Arc<AgentRun>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.retry(CONTROLLER, "kube", &*run, error)
}

/// Publishes a Kubernetes Event on the run (best effort).
pub async fn publish(ctx: &Context, run: &AgentRun, type_: EventType, reason: &str, note: &str) {
    ctx.publish_as(run, "Run", type_, reason, note).await;
}
