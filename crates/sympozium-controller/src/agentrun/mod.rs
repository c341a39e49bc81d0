//! The AgentRun controller: every agent execution becomes an ephemeral, locked-down Job
//! with a per-run ServiceAccount and exactly the RBAC its skills grant, and its outcome —
//! read from the agent's log or from the bus, whichever comes first — lands in status.
//!
//! Phases: Pending → Running → Succeeded | Failed (server mode and post-run hooks are
//! handled elsewhere).

pub mod build;
pub mod completion;
pub mod hooks;
pub mod host;
pub mod memory;
pub mod network;
pub mod pending;
pub mod policy;
pub mod postrun;
pub mod result;
pub mod running;
pub mod sandbox;
pub mod serve;
pub mod terminal;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::{Controller, watcher};
use kube::{Api, Resource, ResourceExt};
use sympozium_api::AgentRun;
use sympozium_api::agentrun::{AgentRunPhase, RunMode};
use sympozium_api::labels::{self, AGENT_RUN_FINALIZER};

use crate::context::Context;

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
    let client = ctx.client.clone();
    let (runs, jobs): (Api<AgentRun>, Api<Job>) = match &ctx.namespace {
        Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client, ns)),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    Controller::new(runs, watcher::Config::default())
        .owns(jobs, watcher::Config::default().labels(labels::AGENT_RUN))
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[tracing::instrument(skip_all, fields(run = %run.name_any(), namespace = run.namespace().unwrap_or_default()))]
async fn reconcile(run: Arc<AgentRun>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let ns = run.namespace().unwrap_or_default();
    let api: Api<AgentRun> = Api::namespaced(ctx.client.clone(), &ns);
    let key = format!("{ns}/{}", run.name_any());
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
    match result {
        Ok(action) => {
            ctx.backoff.succeeded(&key);
            Ok(action)
        }
        Err(
            kube::runtime::finalizer::Error::ApplyFailed(e)
            | kube::runtime::finalizer::Error::CleanupFailed(e),
        ) => Err(e),
        Err(e) => Err(Error::Finalizer(e.to_string())),
    }
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
    ctx.metrics.failure(CONTROLLER, "kube");
    let delay = ctx.backoff.failed(&format!("{}/{}", run.namespace().unwrap_or_default(), run.name_any()));
    tracing::warn!(run = %run.name_any(), error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Publishes a Kubernetes Event on the run (best effort).
pub async fn publish(ctx: &Context, run: &AgentRun, type_: EventType, reason: &str, note: &str) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Run".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &run.object_ref(&())).await {
        tracing::debug!(error = %e, "could not publish event");
    }
}
