//! The PersonaPack controller: a pack is a catalog entry until `spec.enabled` is true;
//! enabled, it stamps out one SympoziumInstance, SympoziumSchedule and seeded memory
//! ConfigMap per persona in the pack's namespace and keeps them converged to the pack.
//!
//! Pipeline per reconcile: dereference → build (pure) → apply/prune → status, with cleanup
//! under the `sympozium.ai/personapack-finalizer` finalizer. Disabling removes the team and
//! waits for it to be gone; deleting releases the seeded memory, and garbage collection
//! takes the rest.

pub mod apply;
pub mod build;
pub mod cleanup;
pub mod dereference;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, ResourceExt};
use sympozium_api::labels::{self, PERSONA_PACK_FINALIZER};
use sympozium_api::{PersonaPack, SympoziumInstance, SympoziumSchedule};

use crate::cache;
use crate::context::{Context, backoff_key};
use dereference::Stores;

/// Name used in metrics and logs.
pub const CONTROLLER: &str = "personapack";
/// How often a disabled pack checks whether its team is gone.
pub const REMOVAL_POLL: Duration = Duration::from_secs(2);
/// How soon a pack handed a copy older than its own last write is looked at again (the
/// write's watch event usually triggers the reconcile first).
const STALE_RECHECK: Duration = Duration::from_secs(1);

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Some personas could not be stamped out.
    #[error("converging personas failed: {0}")]
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
    let stamped = watcher::Config::default().labels(labels::PERSONA_PACK);
    // Each watch both triggers reconciles and fills a store the reconciles read. Instances
    // and schedules are watched whatever their labels (metadata only): a name a persona
    // would take may belong to a user's own object.
    let (instances, instance_events) = cache::reflected_metadata(
        ctx.scoped::<PartialObjectMeta<SympoziumInstance>>(),
        watcher::Config::default(),
    );
    let (schedules, schedule_events) = cache::reflected_metadata(
        ctx.scoped::<PartialObjectMeta<SympoziumSchedule>>(),
        watcher::Config::default(),
    );
    let (configmaps, configmap_events) = cache::reflected(ctx.scoped::<ConfigMap>(), stamped, |_| {});
    let readiness = cache::readiness(vec![
        cache::until_ready(&instances),
        cache::until_ready(&schedules),
        cache::until_ready(&configmaps),
    ]);
    let stores = Stores {
        instances,
        schedules,
        configmaps,
        readiness,
        stamps: Default::default(),
        superseded: Default::default(),
    };
    // Seeded memory carries no ownerReference; it maps back to its pack by label.
    let memory_mapper = |cm: ConfigMap| {
        let ns = cm.namespace()?;
        cm.labels().get(labels::PERSONA_PACK).map(|p| ObjectRef::<PersonaPack>::new(p).within(&ns))
    };
    Controller::new(ctx.scoped::<PersonaPack>(), watcher::Config::default().any_semantic())
        .with_config(ctx.controller_config())
        .owns_stream(instance_events)
        .owns_stream(schedule_events)
        .watches_stream(configmap_events, memory_mapper)
        .shutdown_on_signal()
        .run(move |pack, ctx| reconcile(pack, ctx, stores.clone()), error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(pack = %obj, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile failed"),
            }
        })
        .await;
}

#[tracing::instrument(skip_all, fields(pack = %pack.name_any(), namespace = pack.namespace().unwrap_or_default()))]
async fn reconcile(pack: Arc<PersonaPack>, ctx: Arc<Context>, stores: Stores) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    if !stores.ready().await {
        return Ok(Action::await_change());
    }
    let ns = pack.namespace().unwrap_or_default();
    let api: Api<PersonaPack> = Api::namespaced(ctx.client.clone(), &ns);
    let key = backoff_key(CONTROLLER, &*pack);
    let uid = pack.uid().unwrap_or_default();
    if stores.superseded.is_stale(&uid, pack.metadata.resource_version.as_deref()) {
        // Our own write's watch event is on its way and brings the next reconcile (a stale
        // copy of a pack just made Ready still reads `Inactive` and would announce `Pending`).
        return Ok(Action::requeue(STALE_RECHECK));
    }
    let before = pack.metadata.resource_version.clone();
    // Added here, the work goes on in this reconcile (see `crate::finalizers`).
    let pack = match crate::finalizers::ensure(&api, PERSONA_PACK_FINALIZER, pack).await {
        Ok(pack) => {
            stores.superseded.record(&uid, before.as_deref(), pack.metadata.resource_version.as_deref());
            pack
        }
        Err(e) => {
            return ctx.settle(&key, Err(kube::runtime::finalizer::Error::AddFinalizer(e)), Error::Finalizer);
        }
    };
    let result = finalizer(&api, PERSONA_PACK_FINALIZER, pack.clone(), |event| async {
        match event {
            Finalizer::Apply(pack) => converge(&pack, &api, &ctx, &stores).await,
            Finalizer::Cleanup(pack) => {
                stores.stamps.forget(&uid);
                stores.superseded.forget(&uid);
                let deleted = cleanup::finalize(&pack, &dereference::observe(&pack, &stores), &ctx).await?;
                let note = if deleted.is_empty() {
                    "pack deleted; its team goes with it".to_string()
                } else {
                    format!("pack deleted; removed seeded memory {}", deleted.join(", "))
                };
                ctx.publish(&*pack, EventType::Normal, "Deleted", &note).await;
                Ok(Action::await_change())
            }
        }
    })
    .await;
    ctx.settle(&key, result, Error::Finalizer)
}

async fn converge(
    pack: &PersonaPack,
    api: &Api<PersonaPack>,
    ctx: &Context,
    stores: &Stores,
) -> Result<Action, Error> {
    let name = pack.name_any();
    let uid = pack.uid().unwrap_or_default();
    let observed = dereference::observe(pack, stores);
    if !build::is_enabled(pack) {
        return disable(pack, api, observed, ctx, stores).await;
    }
    let phase = pack.status.as_ref().and_then(|s| s.phase.as_deref());
    let enabling = phase.is_none() || phase == Some(status::phase::INACTIVE);
    // Users see `Pending` while the team is stamped out; the team does not wait for that
    // write, only the final status does (so it always lands after it).
    let announce = async {
        if enabling {
            let pending = status::pending(pack);
            let (written, ()) = futures::join!(
                status::write(api, &name, &pending),
                ctx.publish(pack, EventType::Normal, "Enabling", "stamping out the team")
            );
            return written.map(Some);
        }
        Ok::<_, kube::Error>(None)
    };
    let (announced, converged) = futures::join!(announce, apply::converge(pack, &observed, ctx, stores));
    let mut version = pack.metadata.resource_version.clone();
    if let Some(written) = announced? {
        stores.superseded.record(&uid, version.as_deref(), written.as_deref());
        version = written;
    }
    let errors = converged.errors();
    let new_status = status::converged(pack, converged.installed, &errors);
    // The status first (that is what users and tools wait for), the Events after it,
    // concurrently: each is a request of its own.
    if status::changed(pack.status.as_ref(), &new_status) {
        let written = status::write(api, &name, &new_status).await?;
        stores.superseded.record(&uid, version.as_deref(), written.as_deref());
    }
    let created =
        converged.created.iter().map(|what| (EventType::Normal, "Created", format!("created {what}")));
    let deleted = converged
        .deleted
        .iter()
        .map(|what| (EventType::Normal, "Deleted", format!("deleted {what}, no longer stamped out")));
    futures::future::join_all(
        created
            .chain(deleted)
            .map(|(kind, reason, note)| async move { ctx.publish(pack, kind, reason, &note).await }),
    )
    .await;
    if !errors.is_empty() {
        ctx.publish(pack, EventType::Warning, "PersonaFailed", &errors.join("; ")).await;
        return Err(Error::Converge(errors.join("; ")));
    }
    // Everything the pack stamps out is watched; the periodic requeue is a safety net.
    Ok(Action::requeue(Duration::from_secs(600)))
}

/// A disabled pack: remove the team, wait until it is gone, then release the managed
/// credentials and report `Inactive`.
async fn disable(
    pack: &PersonaPack,
    api: &Api<PersonaPack>,
    observed: dereference::Observed,
    ctx: &Context,
    stores: &Stores,
) -> Result<Action, Error> {
    let name = pack.name_any();
    let uid = pack.uid().unwrap_or_default();
    let version = pack.metadata.resource_version.as_deref();
    stores.stamps.forget(&uid);
    let deleted = cleanup::remove_team(pack, &observed, ctx).await?;
    for what in &deleted {
        ctx.publish(pack, EventType::Normal, "Deleted", &format!("deleted {what}: pack disabled")).await;
    }
    if !deleted.is_empty() || !observed.team_gone() {
        let remaining = dereference::observe(pack, stores);
        if !remaining.team_gone() {
            let removing = status::removing(pack, remaining.instances.len(), remaining.schedules.len());
            if status::changed(pack.status.as_ref(), &removing) {
                let written = status::write(api, &name, &removing).await?;
                stores.superseded.record(&uid, version, written.as_deref());
            }
            return Ok(Action::requeue(REMOVAL_POLL));
        }
    }
    for secret in cleanup::remove_managed_secrets(pack, ctx).await? {
        ctx.publish(pack, EventType::Normal, "Deleted", &format!("deleted managed credentials {secret}"))
            .await;
    }
    let inactive = status::inactive(pack);
    if status::changed(pack.status.as_ref(), &inactive) {
        let written = status::write(api, &name, &inactive).await?;
        stores.superseded.record(&uid, version, written.as_deref());
    }
    Ok(Action::await_change())
}

fn error_policy(pack: Arc<PersonaPack>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.retry(CONTROLLER, error.reason(), &*pack, error)
}
