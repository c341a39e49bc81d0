//! The SkillPack controller: each pack becomes a ConfigMap named like the pack with one
//! Markdown file per skill, which agent pods mount at `/skills`. Built-in packs live in the
//! system namespace; [`mirror`] copies their ConfigMaps into the namespaces of runs that
//! use them, never overwriting a local pack's ConfigMap.
//!
//! Pipeline per reconcile: build (pure) → create or take over the ConfigMap → status, with
//! cleanup under the `sympozium.ai/skillpack-finalizer` finalizer.

pub mod build;
pub mod mirror;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::{Controller, watcher};
use kube::{Api, ResourceExt};
use sympozium_api::labels::{COMPONENT, SKILL_PACK_FINALIZER};
use sympozium_api::{SkillPack, SkillPackStatus};
use sympozium_kube::FIELD_MANAGER;
use sympozium_kube::apply::{create_if_absent, delete_if_owned};

use crate::context::{Context, backoff_key};

/// Name used in metrics and logs.
pub const CONTROLLER: &str = "skillpack";

/// Errors of one reconcile.
pub use crate::context::ReconcileError as Error;

/// Runs the controller until the process is asked to stop.
pub async fn run(ctx: Arc<Context>) {
    let owned = watcher::Config::default().labels(&format!("{COMPONENT}={}", build::COMPONENT_SKILL_PACK));
    let controller = Controller::new(ctx.scoped::<SkillPack>(), watcher::Config::default().any_semantic());
    // Run starts resolve their skills' sidecars from it.
    let _ = ctx.watched.skill_packs.set(controller.store());
    controller
        .with_config(ctx.controller_config())
        .owns(ctx.scoped::<ConfigMap>(), owned)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[tracing::instrument(skip_all, fields(pack = %pack.name_any(), namespace = pack.namespace().unwrap_or_default()))]
async fn reconcile(pack: Arc<SkillPack>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let ns = pack.namespace().unwrap_or_default();
    let api: Api<SkillPack> = Api::namespaced(ctx.client.clone(), &ns);
    let key = backoff_key(CONTROLLER, &*pack);
    // Added here, the work goes on in this reconcile (see `crate::finalizers`).
    let pack = match crate::finalizers::ensure(&api, SKILL_PACK_FINALIZER, pack).await {
        Ok(pack) => pack,
        Err(e) => {
            return ctx.settle(&key, Err(kube::runtime::finalizer::Error::AddFinalizer(e)), Error::Finalizer);
        }
    };
    let result = finalizer(&api, SKILL_PACK_FINALIZER, pack, |event| async {
        match event {
            Finalizer::Apply(pack) => converge(&pack, &api, &ctx).await,
            Finalizer::Cleanup(pack) => {
                let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
                delete_if_owned(&configmaps, &pack.name_any(), &pack.uid().unwrap_or_default()).await?;
                Ok(Action::await_change())
            }
        }
    })
    .await;
    ctx.settle(&key, result, Error::Finalizer)
}

async fn converge(pack: &SkillPack, api: &Api<SkillPack>, ctx: &Context) -> Result<Action, Error> {
    let ns = pack.namespace().unwrap_or_default();
    let name = pack.name_any();
    let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    match configmaps.get_opt(&name).await? {
        None => {
            if create_if_absent(&configmaps, &build::config_map(pack)).await? {
                ctx.publish(pack, EventType::Normal, "Created", &format!("created ConfigMap {name}")).await;
            }
        }
        Some(existing) => {
            if let Some(updated) = build::take_over(pack, &existing) {
                let pp = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
                configmaps.replace(&name, &pp, &updated).await?;
                ctx.publish(pack, EventType::Normal, "Updated", &format!("updated ConfigMap {name}")).await;
            }
        }
    }
    let status = build::ready_status(pack);
    if pack.status.as_ref() != Some(&status) {
        write_status(api, &name, &status).await?;
    }
    Ok(Action::requeue(Duration::from_secs(600)))
}

async fn write_status(api: &Api<SkillPack>, name: &str, status: &SkillPackStatus) -> Result<(), kube::Error> {
    let patch =
        serde_json::json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SkillPack", "status": status});
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(())
}

fn error_policy(pack: Arc<SkillPack>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.retry(CONTROLLER, "kube", &*pack, error)
}
