//! The SympoziumInstance controller: keeps an instance's channel Deployments, memory
//! (ConfigMap, database PVC, server Deployment and Service) and serving AgentRun converged to
//! its spec, and reports their health in status.
//!
//! Pipeline per reconcile: dereference → build (pure) → apply/prune → status, with cleanup
//! under the `sympozium.ai/finalizer` finalizer.

pub mod apply;
pub mod build;
pub mod bus_access;
pub mod cleanup;
pub mod dereference;
pub mod health;
pub mod memory_access;
pub mod status;
pub mod warmpool;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::api::{Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, ResourceExt};
use sympozium_api::labels::{self, INSTANCE_FINALIZER};
use sympozium_api::{AgentRun, SympoziumInstance};

use crate::context::{Context, backoff_key};

/// Name used in metrics and logs.
pub const CONTROLLER: &str = "sympoziuminstance";

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Some children could not be converged.
    #[error("converging children failed: {0}")]
    Converge(String),
    /// The finalizer machinery failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl Error {
    fn reason(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kube",
            Self::Converge(_) => "converge",
            Self::Finalizer(_) => "finalizer",
        }
    }
}

/// Runs the controller until the process is asked to stop.
pub async fn run(ctx: Arc<Context>) {
    let instances: Api<SympoziumInstance> = ctx.scoped();
    let children = watcher::Config::default().labels(labels::INSTANCE);
    let controller = Controller::new(instances, watcher::Config::default().any_semantic());
    let store = controller.store();

    // A Secret appearing, disappearing or changing re-reconciles the instances whose
    // channels name it. Metadata only: the controller never caches secret values.
    let secrets = ctx.scoped::<PartialObjectMeta<Secret>>();
    let secret_store = store.clone();
    let secret_mapper = move |secret: PartialObjectMeta<Secret>| {
        let (ns, name) = (secret.namespace(), secret.name_any());
        secret_store
            .state()
            .into_iter()
            .filter(|i| {
                i.namespace() == ns && i.spec.channels.iter().any(|c| c.config_ref.secret.trim() == name)
            })
            .map(|i| ObjectRef::from_obj(&*i))
            .collect::<Vec<_>>()
    };
    let run_mapper = |run: AgentRun| {
        let ns = run.namespace()?;
        run.labels().get(labels::INSTANCE).map(|i| ObjectRef::<SympoziumInstance>::new(i).within(&ns))
    };

    controller
        .owns(ctx.scoped::<Deployment>(), children.clone())
        .owns(ctx.scoped::<Service>(), children.clone())
        .owns(ctx.scoped::<ConfigMap>(), children.clone())
        .watches(ctx.scoped::<AgentRun>(), children, run_mapper)
        .watches(secrets, watcher::Config::default(), secret_mapper)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(instance = %obj, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile failed"),
            }
        })
        .await;
}

#[tracing::instrument(skip_all, fields(instance = %inst.name_any(), namespace = inst.namespace().unwrap_or_default()))]
async fn reconcile(inst: Arc<SympoziumInstance>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let ns = inst.namespace().unwrap_or_default();
    let api: Api<SympoziumInstance> = Api::namespaced(ctx.client.clone(), &ns);
    let key = backoff_key(CONTROLLER, &*inst);
    let result = finalizer(&api, INSTANCE_FINALIZER, inst.clone(), |event| async {
        match event {
            Finalizer::Apply(inst) => converge(&inst, &api, &ctx).await,
            Finalizer::Cleanup(inst) => {
                cleanup::cleanup(&inst, &ctx).await?;
                ctx.publish(
                    &*inst,
                    EventType::Normal,
                    "Deleted",
                    "removed channel, memory and web-endpoint workloads",
                )
                .await;
                Ok(Action::await_change())
            }
        }
    })
    .await;
    ctx.settle(&key, result, Error::Finalizer)
}

async fn converge(
    inst: &SympoziumInstance,
    api: &Api<SympoziumInstance>,
    ctx: &Context,
) -> Result<Action, Error> {
    let name = inst.name_any();
    // The status as stored now, not as cached: counters that never go down and
    // "write only on change" are only right against the latest status.
    let fresh = api.get_status(&name).await?;
    let mut fresh_version = fresh.metadata.resource_version.clone();
    let inst = &SympoziumInstance { status: fresh.status, ..inst.clone() };
    if inst.status.as_ref().and_then(|s| s.phase.as_ref()).is_none() {
        let pending =
            sympozium_api::SympoziumInstanceStatus { phase: Some("Pending".into()), ..Default::default() };
        status::write(api, &name, &pending, None).await?;
        fresh_version = api.get_status(&name).await?.metadata.resource_version;
    }
    let observed = dereference::observe(inst, ctx).await?;
    let converged = apply::converge(inst, &observed, ctx).await;

    for what in &converged.created {
        ctx.publish(inst, EventType::Normal, "Created", &format!("created {what}")).await;
    }
    for what in &converged.deleted {
        ctx.publish(inst, EventType::Normal, "Deleted", &format!("deleted {what}, no longer in the spec"))
            .await;
    }
    let new_status = status::compute(inst, &observed, &converged);
    let previous = inst.status.as_ref();
    for ch in new_status.channels.iter().filter(|c| c.status == "Error") {
        let was_error = previous.is_some_and(|p| {
            p.channels.iter().any(|o| o.type_ == ch.type_ && o.status == "Error" && o.message == ch.message)
        });
        if !was_error {
            let note = format!("channel {}: {}", ch.type_, ch.message.clone().unwrap_or_default());
            ctx.publish(inst, EventType::Warning, "ChannelSecretMissing", &note).await;
        }
    }
    if status::changed(previous, &new_status) {
        let newly_counted: Vec<String> = status::uncounted(&observed).map(ResourceExt::name_any).collect();
        let newly_costed: Vec<String> =
            status::cost_uncounted(&observed).map(ResourceExt::name_any).collect();
        let precondition =
            if newly_counted.is_empty() && newly_costed.is_empty() { None } else { fresh_version.as_deref() };
        status::write(api, &name, &new_status, precondition).await?;
        mark_counted(inst, &newly_counted, labels::COUNTED, ctx).await?;
        mark_counted(inst, &newly_costed, labels::COST_COUNTED, ctx).await?;
    }
    if !converged.errors.is_empty() {
        ctx.publish(inst, EventType::Warning, "ConvergeFailed", &converged.errors.join("; ")).await;
        return Err(Error::Converge(converged.errors.join("; ")));
    }
    // Everything the instance depends on is watched; the periodic requeue is a safety net.
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// Marks runs as included in the total just written. A crash before this re-counts them
/// (at least once); a run deleted meanwhile needs no mark.
async fn mark_counted(
    inst: &SympoziumInstance,
    names: &[String],
    annotation: &str,
    ctx: &Context,
) -> Result<(), Error> {
    let runs: Api<AgentRun> = Api::namespaced(ctx.client.clone(), &inst.namespace().unwrap_or_default());
    let patch = Patch::Merge(serde_json::json!({"metadata": {"annotations": {annotation: "true"}}}));
    for name in names {
        match runs.patch(name, &PatchParams::default(), &patch).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn error_policy(inst: Arc<SympoziumInstance>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.retry(CONTROLLER, error.reason(), &*inst, error)
}
