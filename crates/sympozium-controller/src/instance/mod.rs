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
pub mod stores;
pub mod warmpool;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
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

use self::stores::Stores;
use crate::cache;
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
    let (store, instance_events) = cache::reflected_own(instances, watcher::Config::default().any_semantic());
    let controller =
        Controller::for_stream(instance_events, store.clone()).with_config(ctx.controller_config());
    // Shared with the routers; a second controller on the same context keeps the first's.
    let _ = ctx.watched.instances.set(store.clone());

    // Each watch below both triggers reconciles and fills a store the reconciles read, so
    // a steady-state reconcile asks the API server nothing it is already told.
    let strip_deployment = |d: &mut Deployment| d.spec = None;
    let (deployments, deployment_events) =
        cache::reflected(ctx.scoped::<Deployment>(), children.clone(), strip_deployment);
    let _ = ctx.watched.deployments.set(deployments.clone());
    let (services, service_events) =
        cache::reflected_metadata(ctx.scoped::<PartialObjectMeta<Service>>(), children.clone());
    let (configmaps, configmap_events) =
        cache::reflected_metadata(ctx.scoped::<PartialObjectMeta<ConfigMap>>(), children.clone());
    let (policies, policy_events) =
        cache::reflected_metadata(ctx.scoped::<PartialObjectMeta<NetworkPolicy>>(), children.clone());
    // A Secret appearing, disappearing or changing re-reconciles the instances whose
    // channels name it. Metadata only: the controller never caches secret values.
    let (secrets, secret_events) =
        cache::reflected_metadata(ctx.scoped::<PartialObjectMeta<Secret>>(), watcher::Config::default());
    let strip_run = |_: &mut AgentRun| {};
    let (runs, run_events) = cache::reflected(ctx.scoped::<AgentRun>(), children.clone(), strip_run);
    let (accounts, account_events) =
        cache::reflected_metadata(ctx.scoped::<PartialObjectMeta<ServiceAccount>>(), children);
    let readiness = cache::readiness(vec![
        cache::until_ready(&deployments),
        cache::until_ready(&services),
        cache::until_ready(&configmaps),
        cache::until_ready(&policies),
        cache::until_ready(&secrets),
        cache::until_ready(&runs),
        cache::until_ready(&accounts),
    ]);
    let stores = Stores {
        deployments,
        services,
        configmaps,
        policies,
        secrets,
        runs,
        accounts,
        marked: Arc::new(stores::Marked::default()),
        stamps: Default::default(),
        superseded: Default::default(),
        readiness,
    };

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
        .owns_stream(deployment_events)
        .owns_stream(service_events)
        .owns_stream(configmap_events)
        .owns_stream(policy_events)
        .owns_stream(account_events)
        .watches_stream(run_events, run_mapper)
        .watches_stream(secret_events, secret_mapper)
        .shutdown_on_signal()
        .run(move |inst, ctx| reconcile(inst, ctx, stores.clone()), error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(instance = %obj, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile failed"),
            }
        })
        .await;
}

#[tracing::instrument(skip_all, fields(instance = %inst.name_any(), namespace = inst.namespace().unwrap_or_default()))]
async fn reconcile(inst: Arc<SympoziumInstance>, ctx: Arc<Context>, stores: Stores) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    if !stores.ready().await {
        return Ok(Action::await_change());
    }
    let ns = inst.namespace().unwrap_or_default();
    let api: Api<SympoziumInstance> = Api::namespaced(ctx.client.clone(), &ns);
    let key = backoff_key(CONTROLLER, &*inst);
    let uid = inst.uid().unwrap_or_default();
    if stores.superseded.is_stale(&uid, inst.metadata.resource_version.as_deref()) {
        // Our own write's watch event is on its way and brings the next reconcile.
        return Ok(Action::requeue(STALE_RECHECK));
    }
    let before = inst.metadata.resource_version.clone();
    // Added here, the work goes on in this reconcile (see `crate::finalizers`).
    let inst = match crate::finalizers::ensure(&api, INSTANCE_FINALIZER, inst).await {
        Ok(inst) => {
            stores.superseded.record(&uid, before.as_deref(), inst.metadata.resource_version.as_deref());
            inst
        }
        Err(e) => {
            return ctx.settle(&key, Err(kube::runtime::finalizer::Error::AddFinalizer(e)), Error::Finalizer);
        }
    };
    let result = finalizer(&api, INSTANCE_FINALIZER, inst.clone(), |event| async {
        match event {
            Finalizer::Apply(inst) => converge(&inst, &api, &ctx, &stores).await,
            Finalizer::Cleanup(inst) => {
                stores.stamps.forget(&uid);
                stores.superseded.forget(&uid);
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
    stores: &Stores,
) -> Result<Action, Error> {
    let name = inst.name_any();
    // The status comes from the watch cache, so every status write is conditional on the
    // instance still being at the version it was computed from: counters that never go down
    // and "write only on change" are only right against the latest status, and a cache that
    // trails the API server gets a 409 and a fresh look instead of overwriting newer data.
    // A new instance's first status is the converged one: its children are created in this
    // reconcile, so a `Pending` written first would be replaced milliseconds later.
    let version = inst.metadata.resource_version.clone();
    let observed = dereference::observe(inst, stores);
    let converged = apply::converge(inst, &observed, ctx, stores).await;

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
        let newly_counted: Vec<&AgentRun> = status::uncounted(&observed).collect();
        let newly_costed: Vec<&AgentRun> = status::cost_uncounted(&observed).collect();
        match status::write(api, &name, &new_status, version.as_deref()).await {
            Ok(written) => {
                let uid = inst.uid().unwrap_or_default();
                stores.superseded.record(&uid, version.as_deref(), written.as_deref());
            }
            Err(e) if is_conflict(&e) => return Ok(Action::requeue(STALE_RECHECK)),
            Err(e) => return Err(e.into()),
        }
        mark_counted(inst, &newly_counted, labels::COUNTED, ctx, stores).await?;
        mark_counted(inst, &newly_costed, labels::COST_COUNTED, ctx, stores).await?;
    }
    if !converged.errors.is_empty() {
        ctx.publish(inst, EventType::Warning, "ConvergeFailed", &converged.errors.join("; ")).await;
        return Err(Error::Converge(converged.errors.join("; ")));
    }
    // Everything the instance depends on is watched; the periodic requeue is a safety net.
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// How soon an instance whose status write met a newer version is looked at again (its
/// watch event usually triggers the reconcile first).
const STALE_RECHECK: Duration = Duration::from_secs(1);

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Marks runs as included in the total just written. A crash before this re-counts them
/// (at least once); a run deleted meanwhile needs no mark.
async fn mark_counted(
    inst: &SympoziumInstance,
    runs_marked: &[&AgentRun],
    annotation: &str,
    ctx: &Context,
    stores: &Stores,
) -> Result<(), Error> {
    let runs: Api<AgentRun> = Api::namespaced(ctx.client.clone(), &inst.namespace().unwrap_or_default());
    let patch = Patch::Merge(serde_json::json!({"metadata": {"annotations": {annotation: "true"}}}));
    for run in runs_marked {
        match runs.patch(&run.name_any(), &PatchParams::default(), &patch).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        stores.marked.insert(&run.uid().unwrap_or_default(), annotation);
    }
    Ok(())
}

fn error_policy(inst: Arc<SympoziumInstance>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.retry(CONTROLLER, error.reason(), &*inst, error)
}
