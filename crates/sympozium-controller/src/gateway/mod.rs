//! The SympoziumConfig controller: the shared Gateway API gateway for web endpoints.
//! Enabled → GatewayClass and Gateway (owned by the config) converged to the spec, status
//! from the Gateway's `Programmed` condition; disabled or deleted → the managed Gateways and
//! GatewayClasses removed. Serving runs add their own HTTPRoutes once the gateway is ready
//! (`agentrun::serve`).
//!
//! Only `<system namespace>/default` is acted on: a SympoziumConfig anywhere else could make
//! the controller create cluster-scoped GatewayClasses on a tenant's behalf, so it only gets
//! an `Error` status saying so.

pub mod build;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::{Controller, watcher};
use kube::{Api, ResourceExt};
use sympozium_api::config::{GatewaySpec, GatewayStatus};
use sympozium_api::labels::CONFIG_FINALIZER;
use sympozium_api::{SympoziumConfig, SympoziumConfigStatus};
use sympozium_kube::FIELD_MANAGER;

use crate::context::{Context, backoff_key};

/// Name used in metrics and logs.
pub const CONTROLLER: &str = "sympoziumconfig";
/// The one config that is read.
pub const CONFIG_NAME: &str = "default";

/// Errors of one reconcile.
pub use crate::context::ReconcileError as Error;

/// Runs the controller until the process is asked to stop.
pub async fn run(ctx: Arc<Context>) {
    let controller =
        Controller::new(ctx.scoped::<SympoziumConfig>(), watcher::Config::default().any_semantic());
    // Finished runs read the price table from it.
    let _ = ctx.watched.configs.set(controller.store());
    controller
        .with_config(ctx.controller_config())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

fn error_policy(config: Arc<SympoziumConfig>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.retry(CONTROLLER, "kube", &*config, error)
}

/// The gateway settings of the platform config, when it is enabled and ready for routes.
pub async fn ready_gateway(ctx: &Context) -> Result<Option<GatewaySpec>, kube::Error> {
    let api: Api<SympoziumConfig> = Api::namespaced(ctx.client.clone(), &ctx.settings.system_namespace);
    let Some(config) = api.get_opt(CONFIG_NAME).await? else { return Ok(None) };
    let ready = config.status.as_ref().and_then(|s| s.gateway.as_ref()).is_some_and(|g| g.ready);
    Ok(config.spec.gateway.filter(|g| g.enabled && ready))
}

#[tracing::instrument(skip_all, fields(config = %config.name_any(), namespace = config.namespace().unwrap_or_default()))]
async fn reconcile(config: Arc<SympoziumConfig>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let ns = config.namespace().unwrap_or_default();
    let api: Api<SympoziumConfig> = Api::namespaced(ctx.client.clone(), &ns);
    if ns != ctx.settings.system_namespace || config.name_any() != CONFIG_NAME {
        let message =
            format!("ignored: only {}/{CONFIG_NAME} configures the platform", ctx.settings.system_namespace);
        write_status(&api, &config, "Error", None, condition(false, "Ignored", message)).await?;
        return Ok(Action::await_change());
    }
    let key = backoff_key(CONTROLLER, &*config);
    // Added here, the work goes on in this reconcile (see `crate::finalizers`).
    let config = match crate::finalizers::ensure(&api, CONFIG_FINALIZER, config).await {
        Ok(config) => config,
        Err(e) => {
            return ctx.settle(&key, Err(kube::runtime::finalizer::Error::AddFinalizer(e)), Error::Finalizer);
        }
    };
    let result = finalizer(&api, CONFIG_FINALIZER, config, |event| async {
        match event {
            Finalizer::Apply(config) => converge(&config, &api, &ctx).await,
            Finalizer::Cleanup(config) => {
                remove_managed(&config, &ctx).await?;
                Ok(Action::await_change())
            }
        }
    })
    .await;
    ctx.settle(&key, result, Error::Finalizer)
}

async fn converge(
    config: &SympoziumConfig,
    api: &Api<SympoziumConfig>,
    ctx: &Context,
) -> Result<Action, Error> {
    let Some(gw) = config.spec.gateway.clone().filter(|g| g.enabled) else {
        remove_managed(config, ctx).await?;
        write_status(
            api,
            config,
            "Disabled",
            None,
            condition(false, "Disabled", "the gateway is disabled".into()),
        )
        .await?;
        return Ok(Action::await_change());
    };
    let ns = config.namespace().unwrap_or_default();
    let classes: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &build::gateway_class_resource());
    let gateways: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &ns, &build::gateway_resource());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let applied = async {
        match classes.get_opt(&gw.gateway_class_name).await? {
            // Someone else's class: only mark it as used by Sympozium.
            Some(existing) if existing.labels().get(build::MANAGED_BY).is_none() => {
                let patch =
                    serde_json::json!({"metadata": {"labels": {build::MANAGED_BY: build::MANAGED_BY_VALUE}}});
                classes.patch(&gw.gateway_class_name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            }
            _ => {
                classes
                    .patch(&gw.gateway_class_name, &params, &Patch::Apply(build::gateway_class(&gw)))
                    .await?;
            }
        }
        gateways.patch(&gw.name, &params, &Patch::Apply(build::gateway(config, &gw))).await
    }
    .await;
    let gateway = match applied {
        Ok(g) => g,
        Err(e) => {
            let message = match &e {
                kube::Error::Api(s) if s.code == 404 => {
                    "the Gateway API (gateway.networking.k8s.io/v1) is not installed in this cluster"
                        .to_string()
                }
                other => other.to_string(),
            };
            write_status(api, config, "Error", None, condition(false, "ReconcileError", message)).await?;
            return Ok(Action::requeue(Duration::from_secs(30)));
        }
    };
    let status = build::gateway_status(&gateway);
    let (phase, cond) = if status.ready {
        ("Ready", condition(true, "Ready", format!("Gateway {} is programmed", gw.name)))
    } else {
        ("Pending", condition(false, "Pending", format!("waiting for Gateway {} to be programmed", gw.name)))
    };
    let ready = status.ready;
    write_status(api, config, phase, Some(status), cond).await?;
    // Nobody is told when the Gateway implementation programs the Gateway: look again soon.
    Ok(Action::requeue(Duration::from_secs(if ready { 30 } else { 5 })))
}

async fn remove_managed(config: &SympoziumConfig, ctx: &Context) -> Result<(), kube::Error> {
    let ns = config.namespace().unwrap_or_default();
    let selector = format!("{}={}", build::MANAGED_BY, build::MANAGED_BY_VALUE);
    let lp = ListParams::default().labels(&selector);
    let gateways: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &ns, &build::gateway_resource());
    let classes: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &build::gateway_class_resource());
    for (api, what) in [(gateways, "Gateway"), (classes, "GatewayClass")] {
        let list = match api.list(&lp).await {
            Ok(l) => l,
            // Without the Gateway API there is nothing to remove.
            Err(kube::Error::Api(s)) if s.code == 404 => continue,
            Err(e) => return Err(e),
        };
        for name in build::managed_names(&list) {
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => tracing::info!(%name, what, "removed"),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

fn condition(ok: bool, reason: &str, message: String) -> Condition {
    Condition {
        type_: "Ready".into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        last_transition_time: Time(k8s_openapi::jiff::Timestamp::now()),
        observed_generation: None,
    }
}

async fn write_status(
    api: &Api<SympoziumConfig>,
    config: &SympoziumConfig,
    phase: &str,
    gateway: Option<GatewayStatus>,
    mut cond: Condition,
) -> Result<(), kube::Error> {
    let previous = config.status.clone().unwrap_or_default();
    cond.observed_generation = config.metadata.generation;
    if let Some(old) = previous.conditions.iter().find(|c| c.type_ == cond.type_)
        && old.status == cond.status
        && old.reason == cond.reason
    {
        cond.last_transition_time = old.last_transition_time.clone();
    }
    let status = SympoziumConfigStatus { phase: Some(phase.into()), gateway, conditions: vec![cond] };
    if config.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let patch = serde_json::json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumConfig", "status": status});
    api.patch_status(&config.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await?;
    Ok(())
}
