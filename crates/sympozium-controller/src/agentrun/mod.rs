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
pub mod inherit;
pub mod mcp;
pub mod memory;
pub mod metering;
pub mod network;
pub mod observability;
pub mod pending;
pub mod pod;
pub mod policy;
pub mod postrun;
pub mod prepare;
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
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::Store;
use kube::runtime::{Controller, watcher};
use kube::{Api, ResourceExt};
use sympozium_api::AgentRun;
use sympozium_api::agentrun::{AgentRunPhase, RunMode};
use sympozium_api::labels::{self, AGENT_RUN_FINALIZER};

use crate::cache;
use crate::context::{Context, backoff_key};

/// Name used in metrics and logs.
pub const CONTROLLER: &str = "agentrun";

/// Errors of one reconcile.
pub use crate::context::ReconcileError as Error;

/// What the AgentRun controller watches, as reflector stores its reconciles read instead of
/// asking the API server on every poll of a running run.
#[derive(Clone)]
pub struct Stores {
    /// The runs themselves (the controller's own cache).
    pub runs: Store<AgentRun>,
    /// Jobs labelled with a run (specs dropped; status kept).
    pub jobs: Store<Job>,
    /// Pods labelled with a run (specs dropped; labels and status kept).
    pub pods: Store<Pod>,
    /// Whether all three have had their first list.
    pub readiness: cache::Readiness,
}

impl Stores {
    fn new(runs: Store<AgentRun>, jobs: Store<Job>, pods: Store<Pod>) -> Self {
        let readiness = cache::readiness(vec![
            cache::until_ready(&runs),
            cache::until_ready(&jobs),
            cache::until_ready(&pods),
        ]);
        Stores { runs, jobs, pods, readiness }
    }

    async fn ready(&self) -> bool {
        self.readiness.clone().await
    }
}

/// Runs the controller until the process is asked to stop.
pub async fn run(ctx: Arc<Context>) {
    let (runs, run_events) = cache::reflected_own(ctx.scoped::<AgentRun>(), watcher::Config::default());
    let controller = Controller::for_stream(run_events, runs.clone()).with_config(ctx.controller_config());
    let by_run = watcher::Config::default().labels(labels::AGENT_RUN);
    let (jobs, job_events) =
        cache::reflected(ctx.scoped::<Job>(), by_run.clone(), |j: &mut Job| j.spec = None);
    // Pods only fill their store: a running run is looked at on its own schedule (and
    // when its Job changes), as before, not on every pod status change.
    let (pods, pod_events) = cache::reflected(ctx.scoped::<Pod>(), by_run, |p: &mut Pod| {
        p.spec = None;
        p.metadata.annotations = None;
        if let Some(s) = p.status.as_mut() {
            s.conditions = None;
            s.init_container_statuses = None;
        }
    });
    let stores = Stores::new(runs, jobs, pods);
    let controller = controller
        .owns_stream(job_events)
        .shutdown_on_signal()
        .run(move |run, ctx| reconcile(run, ctx, stores.clone()), error_policy, ctx)
        .for_each(|_| async {});
    let pods = pod_events.for_each(|_| async {});
    // The pod watch lives as long as the controller.
    futures::future::select(std::pin::pin!(controller), std::pin::pin!(pods)).await;
}

/// One reconcile as the span `agentrun.reconcile`, a child of the trace the run continues
/// (its `otel.dev/traceparent` annotation: the chat message that caused it).
async fn reconcile(run: Arc<AgentRun>, ctx: Arc<Context>, stores: Stores) -> Result<Action, Error> {
    let span = tracing::info_span!("agentrun.reconcile", run = %run.name_any(),
        namespace = run.namespace().unwrap_or_default(), sympozium.instance = %run.spec.instance_ref,
        otel.status_code = tracing::field::Empty);
    if let Some(tp) = run.annotations().get(sympozium_api::labels::TRACEPARENT) {
        sympozium_telemetry::set_parent_from_traceparent(&span, tp);
    }
    let result = tracing::Instrument::instrument(reconcile_in_span(run, ctx, stores), span.clone()).await;
    if result.is_err() {
        span.record("otel.status_code", "ERROR");
    }
    result
}

async fn reconcile_in_span(run: Arc<AgentRun>, ctx: Arc<Context>, stores: Stores) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    if !stores.ready().await {
        return Ok(Action::await_change());
    }
    let ns = run.namespace().unwrap_or_default();
    let api: Api<AgentRun> = Api::namespaced(ctx.client.clone(), &ns);
    let key = backoff_key(CONTROLLER, &*run);
    if stale(&run, &ctx) {
        // Behind this process's own status write: that write's watch event reconciles the
        // run again (the requeue only guards against missing it).
        return ctx.settle(&key, Ok(Action::requeue(STALE_RECHECK)), Error::Finalizer);
    }
    if pending::adds_finalizer(&run) {
        // A new run gets its finalizer with the spec it inherits, in one write, and is
        // started in this reconcile rather than after the finalizer's own round trip.
        let result =
            step(&run, &api, &ctx, &stores).await.map_err(kube::runtime::finalizer::Error::ApplyFailed);
        return ctx.settle(&key, result, Error::Finalizer);
    }
    // Added here, the work goes on in this reconcile (see `crate::finalizers`).
    let run = match crate::finalizers::ensure(&api, AGENT_RUN_FINALIZER, run).await {
        Ok(run) => run,
        Err(e) => {
            return ctx.settle(&key, Err(kube::runtime::finalizer::Error::AddFinalizer(e)), Error::Finalizer);
        }
    };
    let result = finalizer(&api, AGENT_RUN_FINALIZER, run, |event| async {
        match event {
            Finalizer::Apply(run) => step(&run, &api, &ctx, &stores).await,
            Finalizer::Cleanup(run) => {
                terminal::cleanup(&run, &ctx).await?;
                Ok(Action::await_change())
            }
        }
    })
    .await;
    ctx.settle(&key, result, Error::Finalizer)
}

/// How soon a run whose cached copy was stale is looked at again, should the watch event
/// of the newer version not trigger it first.
const STALE_RECHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether `run` is a copy from before a status this process already wrote for it.
fn stale(run: &AgentRun, ctx: &Context) -> bool {
    run.metadata.deletion_timestamp.is_none()
        && ctx
            .progress
            .get(&run.uid().unwrap_or_default())
            .is_some_and(|written| written > terminal::rank(run.status.as_ref()))
}

async fn step(run: &AgentRun, api: &Api<AgentRun>, ctx: &Context, stores: &Stores) -> Result<Action, Error> {
    let phase = run.status.as_ref().and_then(|s| s.phase).unwrap_or_default();
    match phase {
        AgentRunPhase::Pending if run.spec.mode == RunMode::Server => serve::start(run, api, ctx).await,
        AgentRunPhase::Pending => pending::pending(run, api, ctx).await,
        AgentRunPhase::Running => running::running(run, api, ctx, stores).await,
        AgentRunPhase::Succeeded | AgentRunPhase::Failed => terminal::finished(run, ctx, stores).await,
        AgentRunPhase::PostRunning => postrun::post_running(run, api, ctx, stores).await,
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
