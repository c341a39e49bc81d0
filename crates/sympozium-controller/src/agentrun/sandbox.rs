//! Agent-sandbox mode: a run executes as a `Sandbox` (kubernetes-sigs/agent-sandbox,
//! `agents.x-k8s.io/v1alpha1`) under a RuntimeClass such as gVisor — or, when its instance
//! keeps a warm pool, claims a pre-started sandbox with a `SandboxClaim`
//! (`extensions.agents.x-k8s.io/v1alpha1`) and gets its run-specific settings injected —
//! when the pooled pod can carry everything the run's own pod would have
//! ([`super::warm_claim`]); otherwise it runs in its own Sandbox and an Event
//! (`WarmPoolBypassed`) says why. While it runs, a vanished Sandbox or claim, or a failed
//! pod, fails the run at the next check (seconds), not at its timeout.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::{Value, json};
use sympozium_api::agentrun::{AgentRunAgentSandboxSpec, AgentRunPhase};
use sympozium_api::{AgentRun, SympoziumInstance};
use sympozium_kube::FIELD_MANAGER;

use super::{Error, publish, terminal};
use crate::context::Context;

/// `agents.x-k8s.io/v1alpha1` `Sandbox`.
pub fn sandbox_resource() -> ApiResource {
    resource("agents.x-k8s.io", "Sandbox", "sandboxes")
}

/// `extensions.agents.x-k8s.io/v1alpha1` kinds.
pub fn extension_resource(kind: &str, plural: &str) -> ApiResource {
    resource("extensions.agents.x-k8s.io", kind, plural)
}

fn resource(group: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: "v1alpha1".into(),
        api_version: format!("{group}/v1alpha1"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Whether the agent-sandbox API is served (probed once at start-up).
pub async fn available(client: &Client) -> bool {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &sandbox_resource());
    api.list(&ListParams::default().limit(1)).await.is_ok()
}

/// The sandbox settings of a run: its own, else its instance's.
pub fn effective(run: &AgentRun, instance: Option<&SympoziumInstance>) -> Option<AgentRunAgentSandboxSpec> {
    if let Some(own) = run.spec.agent_sandbox.clone().filter(|s| s.enabled) {
        return Some(own);
    }
    let inst = instance?.spec.agents.default.agent_sandbox.clone().filter(|s| s.enabled)?;
    Some(AgentRunAgentSandboxSpec {
        enabled: true,
        runtime_class: inst.runtime_class.clone(),
        warm_pool_ref: inst.warm_pool.as_ref().map(|_| warm_pool_name(&run.spec.instance_ref)),
        resources: None,
    })
}

/// Name of an instance's warm pool (and of its SandboxTemplate).
pub fn warm_pool_name(instance: &str) -> String {
    format!("wp-{instance}")
}

fn owner(run: &AgentRun) -> Value {
    json!(run.controller_owner_ref(&()).into_iter().collect::<Vec<_>>())
}

/// The `Sandbox` running the run's pod under `runtime_class`.
pub fn sandbox(run: &AgentRun, labels: Value, mut pod: PodSpec, runtime_class: Option<&str>) -> Value {
    pod.runtime_class_name = runtime_class.filter(|r| !r.is_empty()).map(String::from);
    let mut object_labels = labels.clone();
    object_labels["sympozium.ai/agent-sandbox"] = json!("true");
    json!({"apiVersion": "agents.x-k8s.io/v1alpha1", "kind": "Sandbox",
        "metadata": {"name": format!("sb-{}", run.name_any()), "namespace": run.namespace(),
                     "labels": object_labels, "ownerReferences": owner(run)},
        "spec": {"podTemplate": {"metadata": {"labels": labels}, "spec": pod}}})
}

/// How often a run in a sandbox is checked (sandbox still there, pod not failed).
const CHECK_EVERY: Duration = Duration::from_secs(3);

/// The `SandboxClaim` taking a warm sandbox from `pool`, with the run's own settings
/// (task, prompt, identity: `env` from [`super::warm_claim::fit`]) injected per container.
pub fn claim(run: &AgentRun, labels: Value, pool: &str, env: Vec<Value>) -> Value {
    json!({"apiVersion": "extensions.agents.x-k8s.io/v1alpha1", "kind": "SandboxClaim",
        "metadata": {"name": format!("sbc-{}", run.name_any()), "namespace": run.namespace(),
                     "labels": labels, "ownerReferences": owner(run)},
        "spec": {"sandboxTemplateRef": {"name": pool}, "warmpool": pool,
                 "additionalPodMetadata": {"labels": labels}, "env": env}})
}

async fn apply(client: &Client, ar: &ApiResource, ns: &str, obj: &Value) -> Result<(), kube::Error> {
    let dynamic: DynamicObject = serde_json::from_value(obj.clone()).map_err(kube::Error::SerdeError)?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
    api.patch(&dynamic.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&dynamic))
        .await?;
    Ok(())
}

/// Starts the run in a sandbox (or a claimed warm one); phase Running.
pub async fn start(
    run: &AgentRun,
    api: &Api<AgentRun>,
    ctx: &Context,
    settings: &AgentRunAgentSandboxSpec,
    job: &k8s_openapi::api::batch::v1::Job,
    trace_id: &str,
) -> Result<Action, Error> {
    let name = run.name_any();
    let now = Time(ctx.clock.now());
    if !ctx.agent_sandbox {
        let message = "agent-sandbox mode needs the agent-sandbox CRDs (agents.x-k8s.io) in the cluster";
        terminal::fail(api, ctx, run, message, now).await?;
        return Ok(Action::await_change());
    }
    let ns = run.namespace().unwrap_or_default();
    let template = job.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    let labels = json!(template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default());
    let pod = template.spec.unwrap_or_default();
    let pool = settings.warm_pool_ref.as_deref().filter(|p| !p.is_empty());
    let fit = match pool {
        Some(pool) => Some(match pooled_pod(&ctx.client, &ns, pool).await? {
            Some(pooled) => super::warm_claim::fit(&pod, &pooled).map_err(|r| r.join("; ")),
            None => Err(format!("its SandboxTemplate {pool} does not exist (yet)")),
        }),
        None => None,
    };
    let (sandbox_name, claim_name) = match (pool, fit) {
        (Some(pool), Some(Ok(env))) => {
            let obj = claim(run, labels, pool, env);
            apply(&ctx.client, &extension_resource("SandboxClaim", "sandboxclaims"), &ns, &obj).await?;
            (None, Some(format!("sbc-{name}")))
        }
        (pool, fit) => {
            if let (Some(pool), Some(Err(why))) = (pool, fit) {
                let note = format!(
                    "not claiming from warm pool {pool}, running in its own Sandbox sb-{name}: {why}"
                );
                publish(ctx, run, EventType::Warning, "WarmPoolBypassed", &note).await;
            }
            let obj = sandbox(run, labels, pod, settings.runtime_class.as_deref());
            apply(&ctx.client, &sandbox_resource(), &ns, &obj).await?;
            (Some(format!("sb-{name}")), None)
        }
    };
    let moved = terminal::transition(api, ctx, run, &[AgentRunPhase::Pending], |s| {
        s.phase = Some(AgentRunPhase::Running);
        s.sandbox_name = sandbox_name.clone();
        s.sandbox_claim_name = claim_name.clone();
        s.started_at = Some(now.clone());
        s.trace_id = Some(trace_id.to_string());
    })
    .await?;
    if moved {
        let what =
            sandbox_name.map(|s| format!("Sandbox {s}")).or(claim_name.map(|c| format!("SandboxClaim {c}")));
        publish(ctx, run, EventType::Normal, "Started", &format!("created {}", what.unwrap_or_default()))
            .await;
    }
    Ok(Action::requeue(CHECK_EVERY))
}

/// The pod a warm pool's sandboxes start (its SandboxTemplate's), if the template exists.
async fn pooled_pod(client: &Client, ns: &str, pool: &str) -> Result<Option<PodSpec>, kube::Error> {
    let templates: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &extension_resource("SandboxTemplate", "sandboxtemplates"));
    let Some(template) = templates.get_opt(pool).await? else { return Ok(None) };
    let spec = template.data.pointer("/spec/podTemplate/spec").cloned().unwrap_or_default();
    Ok(serde_json::from_value(spec).ok())
}

/// Why the run's sandbox pod failed, if it did: the pod is `Failed`, or one of its
/// containers that never restarts ended with a non-zero code.
pub fn pod_failure(pod: &Pod) -> Option<String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() == Some("Failed") {
        let why =
            status.message.clone().or(status.reason.clone()).unwrap_or_else(|| "no reason given".into());
        return Some(format!("sandbox pod {name} failed: {why}"));
    }
    let restarts = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always") != "Never";
    if restarts {
        return None;
    }
    status.container_statuses.iter().flatten().find_map(|c| {
        let t = c.state.as_ref()?.terminated.as_ref()?;
        (t.exit_code != 0).then(|| {
            format!(
                "sandbox pod {name}: container {} exited with code {}{}",
                c.name,
                t.exit_code,
                t.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
            )
        })
    })
}

fn target(run: &AgentRun) -> Option<(ApiResource, String)> {
    let status = run.status.as_ref()?;
    if let Some(s) = &status.sandbox_name {
        return Some((sandbox_resource(), s.clone()));
    }
    status.sandbox_claim_name.clone().map(|c| (extension_resource("SandboxClaim", "sandboxclaims"), c))
}

/// Whether the run executes in a sandbox.
pub fn in_sandbox(run: &AgentRun) -> bool {
    target(run).is_some()
}

/// Running in a sandbox: the outcome arrives over the bus; the sandbox must still exist and
/// the timeout holds.
pub async fn running(
    run: &AgentRun,
    api: &Api<AgentRun>,
    ctx: &Context,
    timeout: Duration,
) -> Result<Action, Error> {
    let Some((ar, name)) = target(run) else { return Ok(Action::await_change()) };
    let ns = run.namespace().unwrap_or_default();
    let objects: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &ar);
    let now = ctx.clock.now();
    if objects.get_opt(&name).await?.is_none() {
        terminal::fail(api, ctx, run, &format!("{} {name} disappeared", ar.kind), Time(now)).await?;
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = format!("{}={}", sympozium_api::labels::AGENT_RUN, run.name_any());
    let failure = pods.list(&ListParams::default().labels(&selector)).await?.iter().find_map(pod_failure);
    if let Some(why) = failure {
        let _ = objects.delete(&name, &DeleteParams::background()).await;
        terminal::fail(api, ctx, run, &why, Time(now)).await?;
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let started = run.status.as_ref().and_then(|s| s.started_at.as_ref()).map(|t| t.0).unwrap_or(now);
    if now.duration_since(started).as_secs_f64() > timeout.as_secs_f64() {
        let _ = objects.delete(&name, &DeleteParams::background()).await;
        let message = format!("agent sandbox {}", super::running::timed_out(timeout));
        if terminal::fail(api, ctx, run, &message, Time(now)).await?.is_some() {
            super::memory::store_failure(&ctx.client, &ctx.settings, run, &message).await;
        }
        publish(ctx, run, EventType::Warning, "TimedOut", &message).await;
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    Ok(Action::requeue(CHECK_EVERY))
}

/// A finished run gives its sandbox (or claim) back.
pub async fn release(run: &AgentRun, ctx: &Context) -> Result<(), kube::Error> {
    let Some((ar, name)) = target(run) else { return Ok(()) };
    let objects: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &run.namespace().unwrap_or_default(), &ar);
    match objects.delete(&name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn run(extra: Value) -> AgentRun {
        let mut spec = json!({"instanceRef": "agent", "agentId": "a", "sessionKey": "", "task": "t",
            "model": {"provider": "openai", "model": "m", "authSecretRef": ""}});
        spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let mut r: AgentRun =
            serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
            "metadata": {"name": "r1", "namespace": "team"}, "spec": spec}))
            .unwrap();
        r.metadata.uid = Some("u".into());
        r
    }

    #[test]
    fn runs_inherit_the_instances_sandbox_and_warm_pool() {
        let inst: SympoziumInstance = serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1",
            "kind": "SympoziumInstance", "metadata": {"name": "agent"},
            "spec": {"agents": {"default": {"model": "m",
                "agentSandbox": {"enabled": true, "runtimeClass": "gvisor", "warmPool": {"size": 3}}}}}}))
        .unwrap();
        let s = effective(&run(json!({})), Some(&inst)).unwrap();
        assert_eq!(
            (s.runtime_class.as_deref(), s.warm_pool_ref.as_deref()),
            (Some("gvisor"), Some("wp-agent"))
        );
        let own = run(json!({"agentSandbox": {"enabled": true, "runtimeClass": "kata"}}));
        assert_eq!(effective(&own, Some(&inst)).unwrap().runtime_class.as_deref(), Some("kata"));
        assert!(effective(&run(json!({})), None).is_none());
    }

    #[test]
    fn sandbox_and_claim_shapes() {
        let r = run(json!({}));
        let sb = sandbox(&r, json!({"sympozium.ai/agent-run": "r1"}), PodSpec::default(), Some("gvisor"));
        assert_eq!(sb["metadata"]["name"], "sb-r1");
        assert_eq!(sb["metadata"]["labels"]["sympozium.ai/agent-sandbox"], "true");
        assert_eq!(sb["spec"]["podTemplate"]["spec"]["runtimeClassName"], "gvisor");
        let env = vec![json!({"name": "TASK", "value": "t", "containerName": "agent"})];
        let c = claim(&r, json!({}), "wp-agent", env);
        assert_eq!(c["spec"]["sandboxTemplateRef"]["name"], "wp-agent");
        assert_eq!(c["spec"]["env"][0], json!({"name": "TASK", "value": "t", "containerName": "agent"}));
    }
}
