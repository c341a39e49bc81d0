//! Pending, as a pipeline: dereference (the instance and its policy) → admit (policy
//! validation, the concurrency slot) → inherit (skills and timeout written into the spec)
//! → prepare (memory server, sidecars, RBAC, mirrored skills, MCP servers, NetworkPolicy;
//! [`super::prepare`]) → build (the Job, pure; [`super::build`]) → start (the Job or the
//! sandbox claim, status Running). Each step either hands its result on or stops the run
//! with a [`Stop`].

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde_json::json;
use sympozium_api::agentrun::{AgentRunPhase, RunMode};
use sympozium_api::common::SkillRef;
use sympozium_api::labels;
use sympozium_api::{AgentRun, SympoziumInstance, SympoziumPolicy};
use sympozium_bus::trace::TraceParent;
use sympozium_kube::apply::create_if_absent;

use super::build::{self, RunInputs};
use super::inherit::{effective_skills, effective_timeout};
use super::pod::{ResolvedSidecar, uses_memory_server};
use super::prepare::{self, grant, isolate, memory_ready, resolve_sidecars};
use super::{Error, policy, publish, terminal};
use crate::context::{Context, is_refusal};

/// Why the Pending step ends before the run is Running.
enum Stop {
    /// The run fails: an Event with `reason` (when set) and the message in its status.
    Fail { reason: Option<&'static str>, message: String },
    /// The run waits (queued, or for its memory server); reconcile as the action says.
    Wait(Action),
    /// The API server failed; the reconcile is retried.
    Api(Error),
}

impl Stop {
    fn fail(reason: &'static str, message: impl Into<String>) -> Self {
        Stop::Fail { reason: Some(reason), message: message.into() }
    }
}

impl From<kube::Error> for Stop {
    fn from(e: kube::Error) -> Self {
        Stop::Api(e.into())
    }
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Api(e)
    }
}

/// A refusal by the API server is the run's fate (it fails with `reason`); anything else
/// (an API server or etcd restarting) is retried.
fn refused(e: kube::Error, reason: &'static str, what: &str) -> Stop {
    if is_refusal(&e) { Stop::fail(reason, format!("{what}: {e}")) } else { Stop::from(e) }
}

/// The Pending step.
pub async fn pending(run: &AgentRun, api: &Api<AgentRun>, ctx: &Context) -> Result<Action, Error> {
    let now = Time(ctx.clock.now());
    match start(run, api, ctx, &now).await {
        Ok(action) | Err(Stop::Wait(action)) => Ok(action),
        Err(Stop::Api(e)) => Err(e),
        Err(Stop::Fail { reason, message }) => {
            if let Some(reason) = reason {
                publish(ctx, run, EventType::Warning, reason, &message).await;
            }
            terminal::fail(api, ctx, run, &message, now).await?;
            Ok(Action::await_change())
        }
    }
}

async fn start(run: &AgentRun, api: &Api<AgentRun>, ctx: &Context, now: &Time) -> Result<Action, Stop> {
    let ns = run.namespace().unwrap_or_default();
    let (instance, policy) = dereference(run, ctx).await?;
    // Counting the running runs and starting this one is one step per instance: without
    // the lock, runs reconciled together all see the same free slot and all start. Runs
    // no limit applies to need neither the count nor the lock, so a burst of them starts
    // in parallel. The lock is held until the run is marked Running.
    let limited = policy::concurrency_limited(run, Some(&instance), policy.as_ref());
    let _slot = if limited {
        Some(ctx.start_locks.lock(&format!("{ns}/{}", run.spec.instance_ref)).await)
    } else {
        None
    };
    admit(run, api, ctx, &instance, policy.as_ref(), limited, now).await?;
    // Before anything is written: a run waiting for its memory server polls, and each poll
    // would otherwise repeat the writes below.
    if uses_memory_server(&effective_skills(run, Some(&instance))) {
        match memory_ready(run, ctx).await {
            Ok(Some(wait)) => return Err(Stop::Wait(wait)),
            Ok(None) => {}
            Err(e) => return Err(Stop::Fail { reason: None, message: e.to_string() }),
        }
    }
    // The run's identity does not depend on what it inherits: one round trip, not two.
    let (inherited, identity) = futures::join!(inherit(run, api, &instance), prepare::identity(run, ctx));
    let (skills, timeout, written) = inherited?;
    identity
        .map_err(|e| refused(e, "RBACFailed", "creating the run's ServiceAccount and bus user failed"))?;
    // Later writes start from the run as written, not the copy from before the patch.
    let run = written.as_ref().unwrap_or(run);
    let (sidecars, mcp_servers) = prepare(run, api, ctx, &instance, policy.as_ref(), &skills).await?;

    // The pod continues the trace under this span (a fresh child id when telemetry is off).
    let traceparent = tracing::info_span!("agentrun.create_job", run = %run.name_any()).in_scope(|| {
        sympozium_telemetry::current_traceparent()
            .and_then(|tp| TraceParent::parse(&tp))
            .unwrap_or_else(|| run_traceparent(run))
    });
    let trace_id = traceparent.trace_id().to_string();
    let inputs = RunInputs {
        run,
        instance: Some(&instance),
        settings: &ctx.settings,
        skills,
        sidecars,
        timeout,
        tool_policy: policy::effective_tool_policy(run, Some(&instance), policy.as_ref()),
        traceparent: Some(traceparent.to_string()),
    };
    let mut job = build::job(&inputs);
    if let Some(pod) = job.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        super::mcp::add_to_pod(pod, run, &mcp_servers, &ctx.settings);
    }
    launch(run, api, ctx, &instance, &job, trace_id, now).await
}

/// The run's instance and the instance's policy; either missing fails the run.
async fn dereference(
    run: &AgentRun,
    ctx: &Context,
) -> Result<(SympoziumInstance, Option<SympoziumPolicy>), Stop> {
    let ns = run.namespace().unwrap_or_default();
    let Some(instance) = ctx.instance(&ns, &run.spec.instance_ref).await? else {
        let message = format!("policy validation failed: instance \"{}\" not found", run.spec.instance_ref);
        return Err(Stop::fail("ValidationFailed", message));
    };
    let policy = match instance.spec.policy_ref.as_deref().filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => match crate::watched::get(&ctx.watched.policies, &ctx.client, &ns, p).await? {
            Some(policy) => Some(policy),
            None => {
                let message = format!("policy validation failed: policy \"{p}\" not found");
                return Err(Stop::fail("ValidationFailed", message));
            }
        },
    };
    Ok((instance, policy))
}

/// The policy's checks (a refusal fails the run) and the concurrency limit (over it, the
/// run waits with a `Queued` condition; it is not failed).
async fn admit(
    run: &AgentRun,
    api: &Api<AgentRun>,
    ctx: &Context,
    instance: &SympoziumInstance,
    policy: Option<&SympoziumPolicy>,
    limited: bool,
    now: &Time,
) -> Result<(), Stop> {
    // By spec, not by label: runs created by hand or by other tools may carry no labels.
    let siblings: Vec<_> = if limited {
        api.list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|r| r.spec.instance_ref == run.spec.instance_ref)
            .collect()
    } else {
        Vec::new()
    };
    if let Err(refusal) = policy::validate(run, Some(instance), policy) {
        return Err(Stop::fail("ValidationFailed", refusal.to_string()));
    }
    let Err(refusal) = policy::concurrency_slot(run, Some(instance), policy, &siblings) else {
        return Ok(());
    };
    let message = refusal.to_string();
    let already = run
        .status
        .as_ref()
        .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Queued" && c.message == message));
    if !already {
        let generation = run.metadata.generation;
        terminal::transition(api, ctx, run, &[AgentRunPhase::Pending], |s| {
            s.conditions.retain(|c| c.type_ != "Queued");
            s.conditions.push(Condition {
                type_: "Queued".into(),
                status: "True".into(),
                reason: "ConcurrencyLimit".into(),
                message: message.clone(),
                last_transition_time: now.clone(),
                observed_generation: generation,
            });
        })
        .await?;
        publish(ctx, run, EventType::Normal, "Queued", &message).await;
    }
    Err(Stop::Wait(Action::requeue(Duration::from_secs(3))))
}

/// Whether this reconcile adds the run's finalizer itself, in [`inherit`]'s write: a new
/// task run, not being deleted. Nothing that outlives the run is created before that write.
pub fn adds_finalizer(run: &AgentRun) -> bool {
    crate::finalizers::missing(run, labels::AGENT_RUN_FINALIZER)
        && run.spec.mode != RunMode::Server
        && run.status.as_ref().and_then(|s| s.phase).unwrap_or_default() == AgentRunPhase::Pending
}

/// What the run inherits is written into its spec, so every later step (and every reader)
/// sees the same skills and timeout; the same write adds the run's finalizer, before
/// anything is created that must be removed with the run. Returns the run as written.
async fn inherit(
    run: &AgentRun,
    api: &Api<AgentRun>,
    instance: &SympoziumInstance,
) -> Result<(Vec<SkillRef>, Duration, Option<AgentRun>), Stop> {
    let skills = effective_skills(run, Some(instance));
    let timeout = effective_timeout(run, Some(instance));
    let mut ops = Vec::new();
    if adds_finalizer(run) {
        ops = crate::finalizers::add_ops(run.finalizers(), labels::AGENT_RUN_FINALIZER);
    }
    if run.spec.skills != skills || run.spec.timeout.is_none() {
        ops.push(json!({"op": "add", "path": "/spec/skills", "value": skills}));
        let timeout = sympozium_protocol::duration::seconds(timeout);
        ops.push(json!({"op": "add", "path": "/spec/timeout", "value": timeout}));
    }
    if ops.is_empty() {
        return Ok((skills, timeout, None));
    }
    let written = crate::finalizers::patch(api, &run.name_any(), ops).await?;
    Ok((skills, timeout, Some(written)))
}

/// Everything the Job needs in place: the skill sidecars (less
/// what the run may not have), the run's RBAC, mirrored skills and Secrets, its MCP
/// servers and its NetworkPolicy.
async fn prepare(
    run: &AgentRun,
    api: &Api<AgentRun>,
    ctx: &Context,
    instance: &SympoziumInstance,
    policy: Option<&SympoziumPolicy>,
    skills: &[SkillRef],
) -> Result<(Vec<ResolvedSidecar>, Vec<super::mcp::ResolvedServer>), Stop> {
    let (mut sidecars, withheld) = resolve_sidecars(run, skills, ctx, false).await?;
    super::scope::report_withheld(run, api, ctx, &withheld, AgentRunPhase::Pending).await?;
    let host_mounts_allowed =
        policy.and_then(|p| p.spec.sandbox_policy.as_ref()).is_some_and(|s| s.allow_host_mounts);
    for pack in super::host::withhold(&mut sidecars, host_mounts_allowed) {
        let note = format!(
            "skill {pack} requests host access; it runs without it because the run's policy does not set sandboxPolicy.allowHostMounts"
        );
        publish(ctx, run, EventType::Warning, "HostAccessDenied", &note).await;
    }
    grant(run, &sidecars, ctx).await.map_err(|e| {
        refused(
            e,
            "RBACFailed",
            "granting the run's skill RBAC failed (the controller needs bind/escalate rights)",
        )
    })?;
    mirror(run, ctx, skills, &sidecars).await;

    // Resolved before the NetworkPolicy is built: a denyAll run still reaches its servers.
    let mcp_servers = prepare::mcp_servers(run, instance, ctx).await?;
    isolate(run, policy, skills, &sidecars, &mcp_servers, ctx)
        .await
        .map_err(|e| refused(e, "NetworkPolicyFailed", "creating the run's NetworkPolicy failed"))?;
    if super::hooks::has_post_run(run) {
        let ns = run.namespace().unwrap_or_default();
        let pvc = super::hooks::workspace_pvc(run);
        create_if_absent(&Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &ns), &pvc).await?;
    }
    Ok((sidecars, mcp_servers))
}

/// Copies built-in skills and the skill sidecars' Secrets from the system namespace; a
/// failure is reported and the run goes on (its tools say what is missing).
async fn mirror(run: &AgentRun, ctx: &Context, skills: &[SkillRef], sidecars: &[ResolvedSidecar]) {
    let system = &ctx.settings.system_namespace;
    match crate::skillpack::mirror::mirror_skills(&ctx.client, system, run, skills).await {
        Ok(names) if !names.is_empty() => {
            let note = format!("mirrored built-in skills {}", names.join(", "));
            publish(ctx, run, EventType::Normal, "SkillsMirrored", &note).await;
        }
        Ok(_) => {}
        Err(e) => publish(ctx, run, EventType::Warning, "MirrorFailed", &e.to_string()).await,
    }
    let secrets: Vec<String> = sidecars.iter().filter_map(|s| s.sidecar.secret_ref.clone()).collect();
    match crate::skillpack::mirror::mirror_secrets(&ctx.client, system, run, &secrets).await {
        Ok(names) if !names.is_empty() => {
            let note = format!("copied skill Secrets {} from {system}", names.join(", "));
            publish(ctx, run, EventType::Normal, "SecretsMirrored", &note).await;
        }
        Ok(_) => {}
        Err(e) => publish(ctx, run, EventType::Warning, "MirrorFailed", &e.to_string()).await,
    }
}

/// Starts the run: its sandbox claim when the instance runs agents in a sandbox, else its
/// Job; then status Running.
async fn launch(
    run: &AgentRun,
    api: &Api<AgentRun>,
    ctx: &Context,
    instance: &SympoziumInstance,
    job: &Job,
    trace_id: String,
    now: &Time,
) -> Result<Action, Stop> {
    if let Some(sandbox) = super::sandbox::effective(run, Some(instance)) {
        return Ok(super::sandbox::start(run, api, ctx, &sandbox, job, &trace_id).await?);
    }
    let (ns, name) = (run.namespace().unwrap_or_default(), run.name_any());
    create_if_absent(&Api::<Job>::namespaced(ctx.client.clone(), &ns), job).await?;
    // The Event and the status are independent requests: sent together, the reconcile (and
    // its slot, which the next run of a burst waits for) ends a round trip sooner.
    let note = format!("created Job {name}");
    let (_, moved) = futures::join!(
        publish(ctx, run, EventType::Normal, "Started", &note),
        terminal::transition(api, ctx, run, &[AgentRunPhase::Pending], |status| {
            status.conditions.retain(|c| c.type_ != "Queued");
            status.phase = Some(AgentRunPhase::Running);
            status.job_name = Some(name.clone());
            status.started_at = Some(now.clone());
            status.trace_id = Some(trace_id.clone());
        })
    );
    moved?;
    Ok(Action::requeue(Duration::from_secs(5)))
}

/// The trace context of the run's pod: a child of the trace the run continues (the chat
/// message that caused it), or a new trace.
fn run_traceparent(run: &AgentRun) -> TraceParent {
    run.annotations()
        .get(labels::TRACEPARENT)
        .and_then(|value| TraceParent::parse(value))
        .map_or_else(TraceParent::root, |parent| parent.child())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_annotated(traceparent: Option<&str>) -> AgentRun {
        let mut run =
            AgentRun::new("r", serde_json::from_value(json!({"instanceRef": "i", "agentId": "primary", "sessionKey": "s", "task": "t", "model": {"provider": "openai", "model": "m", "authSecretRef": ""}})).unwrap());
        if let Some(tp) = traceparent {
            run.metadata.annotations = Some([(labels::TRACEPARENT.to_string(), tp.to_string())].into());
        }
        run
    }

    #[test]
    fn a_run_continues_the_trace_of_its_chat_message() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tp = run_traceparent(&run_annotated(Some(parent)));
        assert_eq!(tp.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(tp.to_string(), parent, "the pod is a child span, not the message's span");
    }

    #[test]
    fn a_run_without_or_with_a_broken_trace_starts_its_own() {
        let own = run_traceparent(&run_annotated(None));
        let broken = run_traceparent(&run_annotated(Some("00-abc-def-01")));
        assert!(TraceParent::parse(&own.to_string()).is_some());
        assert_ne!(own.trace_id(), broken.trace_id());
    }
}
