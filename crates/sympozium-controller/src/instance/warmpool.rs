//! Warm pools: an instance with `agentSandbox.warmPool` keeps pre-started sandboxes ready
//! (a `SandboxTemplate` of its agent pod plus a `SandboxWarmPool` of `size` replicas, both
//! owned by the instance); its runs claim one and get their task injected.

use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{ApiResource, DynamicObject, ObjectMeta, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Value, json};
use sympozium_api::labels;
use sympozium_api::{AgentRun, AgentRunSpec, SympoziumInstance, resolve};
use sympozium_kube::FIELD_MANAGER;
use sympozium_kube::apply::{apply as apply_typed, delete_if_owned};

use super::apply::Converged;
use super::stores::Stores;
use crate::agentrun::build::{RunInputs, job};
use crate::agentrun::sandbox::{extension_resource, warm_pool_name};
use crate::context::Context;
use crate::settings::Settings;

/// The pod every pooled sandbox starts: the instance's agent pod without run specifics.
fn template_pod(inst: &SympoziumInstance, settings: &Settings) -> (Value, Value) {
    let name = inst.name_any();
    let agent = &inst.spec.agents.default;
    let skills: Vec<_> = resolve::run_skills(&inst.spec);
    let mut run = AgentRun::new(
        &warm_pool_name(&name),
        AgentRunSpec {
            instance_ref: name.clone(),
            agent_id: "primary".into(),
            model: resolve::model_spec(&inst.spec, &Default::default()),
            skills: skills.clone(),
            ..Default::default()
        },
    );
    run.metadata =
        ObjectMeta { name: Some(warm_pool_name(&name)), namespace: inst.namespace(), ..Default::default() };
    // Pooled pods exist before any run does, so no run's bus Secret can be referenced yet;
    // a claimed pod without bus credentials cannot publish on an authenticated bus (see
    // docs/security/bus-and-memory.md).
    let settings = &crate::settings::Settings { bus_auth: None, ..settings.clone() };
    let inputs = RunInputs {
        run: &run,
        instance: Some(inst),
        settings,
        skills,
        sidecars: Vec::new(),
        timeout: Duration::from_secs(600),
        tool_policy: None,
        traceparent: None,
    };
    let template = job(&inputs).spec.map(|s| s.template).unwrap_or_default();
    let sandbox = agent.agent_sandbox.clone().unwrap_or_default();
    let runtime_class =
        sandbox.warm_pool.as_ref().and_then(|w| w.runtime_class.clone()).or(sandbox.runtime_class.clone());
    let mut pod = template.spec.unwrap_or_default();
    pod.runtime_class_name = runtime_class.filter(|r| !r.is_empty());
    // The pool's resources size the pooled agent containers.
    if let Some(res) = sandbox.warm_pool.as_ref().and_then(|w| w.resources.as_ref())
        && let Some(agent) = pod.containers.iter_mut().find(|c| c.name == "agent")
    {
        let quantities = |m: &Option<std::collections::BTreeMap<String, String>>| {
            m.as_ref().map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (k.clone(), k8s_openapi::apimachinery::pkg::api::resource::Quantity(v.clone()))
                    })
                    .collect()
            })
        };
        let current = agent.resources.get_or_insert_with(Default::default);
        if let Some(requests) = quantities(&res.requests) {
            current.requests = Some(requests);
        }
        if let Some(limits) = quantities(&res.limits) {
            current.limits = Some(limits);
        }
    }
    let labels = json!({labels::INSTANCE: name, labels::COMPONENT: "warm-pool",
                        "app.kubernetes.io/part-of": "sympozium"});
    (labels, json!(pod))
}

/// The SandboxTemplate and SandboxWarmPool of an instance, when it asks for a warm pool.
pub fn objects(inst: &SympoziumInstance, settings: &Settings) -> Option<(Value, Value)> {
    let sandbox = inst.spec.agents.default.agent_sandbox.as_ref().filter(|s| s.enabled)?;
    let pool = sandbox.warm_pool.as_ref()?;
    let name = warm_pool_name(&inst.name_any());
    let owner = json!(inst.controller_owner_ref(&()).into_iter().collect::<Vec<_>>());
    let (labels, pod) = template_pod(inst, settings);
    let template = json!({"apiVersion": "extensions.agents.x-k8s.io/v1alpha1", "kind": "SandboxTemplate",
        "metadata": {"name": name, "namespace": inst.namespace(), "labels": labels, "ownerReferences": owner},
        // Runs inject their task and identity; Sympozium manages network isolation itself.
        "spec": {"podTemplate": {"metadata": {"labels": labels}, "spec": pod},
                 "envVarsInjectionPolicy": "Overrides", "networkPolicyManagement": "Unmanaged"}});
    let warm_pool = json!({"apiVersion": "extensions.agents.x-k8s.io/v1alpha1", "kind": "SandboxWarmPool",
        "metadata": {"name": name, "namespace": inst.namespace(), "labels": labels, "ownerReferences": owner},
        "spec": {"replicas": pool.size.max(0), "sandboxTemplateRef": {"name": name}}});
    Some((template, warm_pool))
}

async fn apply(ctx: &Context, ar: &ApiResource, ns: &str, obj: &Value) -> Result<(), kube::Error> {
    let dynamic: DynamicObject = serde_json::from_value(obj.clone()).map_err(kube::Error::SerdeError)?;
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, ar);
    api.patch(&dynamic.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&dynamic))
        .await?;
    Ok(())
}

/// The ServiceAccount pooled pods run as (the template names it like a run's): no token and
/// no grants, since a pooled pod starts before any run, and so before any run's RBAC.
pub fn service_account(inst: &SympoziumInstance) -> ServiceAccount {
    let name = warm_pool_name(&inst.name_any());
    ServiceAccount {
        metadata: ObjectMeta {
            name: Some(format!("sympozium-run-{name}")),
            namespace: inst.namespace(),
            labels: Some(
                [
                    (labels::INSTANCE.to_string(), inst.name_any()),
                    (labels::COMPONENT.to_string(), "warm-pool".to_string()),
                ]
                .into(),
            ),
            owner_references: Some(inst.controller_owner_ref(&()).into_iter().collect()),
            ..Default::default()
        },
        automount_service_account_token: Some(false),
        ..Default::default()
    }
}

/// Creates, updates or removes the instance's warm pool. Removal looks at the API server
/// only when the ServiceAccount store holds the pool's account, so an instance without a
/// warm pool costs no request at steady state.
pub async fn converge(inst: &SympoziumInstance, ctx: &Context, stores: &Stores, out: &mut Converged) {
    let ns = inst.namespace().unwrap_or_default();
    let template_ar = extension_resource("SandboxTemplate", "sandboxtemplates");
    let pool_ar = extension_resource("SandboxWarmPool", "sandboxwarmpools");
    let name = warm_pool_name(&inst.name_any());
    let accounts: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &ns);
    let account = service_account(inst);
    match objects(inst, &ctx.settings) {
        Some((template, pool)) => {
            out.record(
                format!("ServiceAccount/{}", account.name_any()),
                apply_typed(&accounts, &account).await,
            );
            out.record(format!("SandboxTemplate/{name}"), apply(ctx, &template_ar, &ns, &template).await);
            out.record(format!("SandboxWarmPool/{name}"), apply(ctx, &pool_ar, &ns, &pool).await);
        }
        None => {
            let uid = inst.uid().unwrap_or_default();
            let account_name = account.name_any();
            if !Stores::owned_by(&stores.accounts, &ns, &account_name, &uid) {
                return;
            }
            if out.record(
                format!("ServiceAccount/{account_name}"),
                delete_if_owned(&accounts, &account_name, &uid).await,
            ) == Some(true)
            {
                out.deleted.push(format!("ServiceAccount/{account_name}"));
            }
            for ar in [&pool_ar, &template_ar] {
                let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, ar);
                if out.record(format!("{}/{name}", ar.kind), delete_if_owned(&api, &name, &uid).await)
                    == Some(true)
                {
                    out.deleted.push(format!("{}/{name}", ar.kind));
                }
            }
        }
    }
}
