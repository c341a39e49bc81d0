//! Pending: check the run against its instance and policy, settle what it inherits,
//! grant its skills' RBAC to its own ServiceAccount, and start the Job.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde_json::json;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_api::common::SkillRef;
use sympozium_api::labels;
use sympozium_api::{AgentRun, SkillPack, SympoziumInstance, SympoziumPolicy};
use sympozium_bus::trace::TraceParent;
use sympozium_kube::FIELD_MANAGER;
use sympozium_kube::apply::{apply, create_if_absent};

use super::build::{self, ResolvedSidecar, RunInputs};
use super::{Error, network, policy, publish, terminal};
use crate::context::{Context, is_refusal};

/// Timeout when neither the run nor its instance sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a run waits for its instance's memory server to become ready.
pub const MEMORY_WAIT: Duration = Duration::from_secs(120);

/// Parses a manifest's Go-style duration (`30m`, `1h30m`, `10m0s`, `1.5h`); zero and
/// invalid values (which the CRD schema refuses anyway) mean "not set".
pub fn parse_duration(s: &str) -> Option<Duration> {
    sympozium_protocol::duration::parse(s).ok().filter(|d| !d.is_zero())
}

/// The skills in effect: the run's own, else the instance's (web-proxy runs carry theirs).
pub fn effective_skills(run: &AgentRun, instance: Option<&SympoziumInstance>) -> Vec<SkillRef> {
    let from_web_proxy = run.labels().get(labels::SOURCE).map(String::as_str) == Some("web-proxy");
    match instance {
        Some(i) if run.spec.skills.is_empty() && !from_web_proxy => i.spec.skills.clone(),
        _ => run.spec.skills.clone(),
    }
}

/// The timeout in effect: the run's, else the instance's `runTimeout`, else 10 minutes.
pub fn effective_timeout(run: &AgentRun, instance: Option<&SympoziumInstance>) -> Duration {
    run.spec
        .timeout
        .as_deref()
        .and_then(parse_duration)
        .or_else(|| {
            instance.and_then(|i| i.spec.agents.default.run_timeout.as_deref()).and_then(parse_duration)
        })
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// The skill sidecars of a run: task-mode sidecars (`serving = false`), or the serving
/// ones that drive server mode (`serving = true`); and the packs whose `clusterRBAC` was
/// withheld because they are not in the system namespace ([`super::scope`]).
pub(super) async fn resolve_sidecars(
    run: &AgentRun,
    skills: &[SkillRef],
    ctx: &Context,
    serving: bool,
) -> Result<(Vec<ResolvedSidecar>, Vec<String>), Error> {
    let ns = run.namespace().unwrap_or_default();
    let system_ns = &ctx.settings.system_namespace;
    let local: Api<SkillPack> = Api::namespaced(ctx.client.clone(), &ns);
    let system: Api<SkillPack> = Api::namespaced(ctx.client.clone(), system_ns);
    let mut out = Vec::new();
    let mut withheld = Vec::new();
    for skill in skills {
        let Some(name) = skill.skill_pack_ref.as_deref() else { continue };
        let name = name.strip_prefix("skillpack-").unwrap_or(name);
        let (pack, admin_managed) = match local.get_opt(name).await? {
            Some(p) => (Some(p), &ns == system_ns),
            None => (system.get_opt(name).await.ok().flatten(), true),
        };
        let Some(mut sidecar) = pack.and_then(|p| p.spec.sidecar) else { continue };
        // Serving sidecars drive server mode; a task run does not start them.
        if sidecar.image.trim().is_empty() || (sidecar.requires_server == Some(true)) != serving {
            continue;
        }
        if super::scope::withhold_cluster_rbac(&mut sidecar, admin_managed) {
            withheld.push(name.to_string());
        }
        out.push(ResolvedSidecar {
            pack: name.to_string(),
            sidecar,
            params: skill.params.clone().unwrap_or_default(),
        });
    }
    Ok((out, withheld))
}

pub(super) async fn grant(
    run: &AgentRun,
    sidecars: &[ResolvedSidecar],
    ctx: &Context,
) -> Result<(), kube::Error> {
    let ns = run.namespace().unwrap_or_default();
    create_if_absent(
        &Api::<ServiceAccount>::namespaced(ctx.client.clone(), &ns),
        &build::service_account(run),
    )
    .await?;
    if let Some(auth) = &ctx.settings.bus_auth {
        let secrets = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(ctx.client.clone(), &ns);
        // Minted once per run: an existing Secret (a retried reconcile) is kept as it is.
        if secrets.get_opt(&super::bus_access::secret_name(&run.name_any())).await?.is_none() {
            match auth.issuer.mint(&super::bus_access::identity(run), None) {
                Ok(creds) => {
                    create_if_absent(&secrets, &super::bus_access::secret(run, auth, &creds)).await?;
                }
                Err(e) => tracing::error!(error = %e, "minting the run's bus user failed"),
            }
        }
    }
    let roles: Api<Role> = Api::namespaced(ctx.client.clone(), &ns);
    let bindings: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), &ns);
    let cluster_roles: Api<ClusterRole> = Api::all(ctx.client.clone());
    let cluster_bindings: Api<ClusterRoleBinding> = Api::all(ctx.client.clone());
    let run_name = run.name_any();
    for s in sidecars {
        let name = format!("sympozium-skill-{}-{run_name}", s.pack);
        if !s.sidecar.rbac.is_empty() {
            let (role, binding) = build::role(run, &name, &s.pack, &s.sidecar.rbac);
            apply(&roles, &role).await?;
            apply(&bindings, &binding).await?;
        }
        if !s.sidecar.cluster_rbac.is_empty() {
            // Cluster objects are global: the namespace keeps names of equal runs apart.
            let cluster_name = format!("sympozium-skill-{}-{ns}-{run_name}", s.pack);
            let (mut role, mut binding) =
                build::cluster_role(run, &cluster_name, &s.pack, &s.sidecar.cluster_rbac);
            for meta in [&mut role.metadata, &mut binding.metadata] {
                meta.labels
                    .get_or_insert_with(Default::default)
                    .insert("sympozium.ai/namespace".into(), ns.clone());
            }
            apply(&cluster_roles, &role).await?;
            apply(&cluster_bindings, &binding).await?;
        }
    }
    if let Some(hooks) = run.spec.lifecycle.as_ref().filter(|l| !l.rbac.is_empty()) {
        let (role, binding) = build::role(run, &format!("sympozium-lifecycle-{run_name}"), "", &hooks.rbac);
        apply(&roles, &role).await?;
        apply(&bindings, &binding).await?;
    }
    Ok(())
}

/// Applies the run's NetworkPolicy from its policy's `networkPolicy` (nothing when the
/// policy does not restrict the network).
async fn isolate(
    run: &AgentRun,
    policy: Option<&SympoziumPolicy>,
    skills: &[SkillRef],
    sidecars: &[ResolvedSidecar],
    mcp: &[super::mcp::ResolvedServer],
    ctx: &Context,
) -> Result<(), kube::Error> {
    let net = policy.and_then(|p| p.spec.network_policy.as_ref());
    if !net.is_some_and(|n| n.deny_all) {
        return Ok(());
    }
    let mut api_server = Vec::new();
    if build::needs_api_token(run, sidecars) {
        let slices: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), "default");
        let lp = ListParams::default().labels("kubernetes.io/service-name=kubernetes");
        for slice in slices.list(&lp).await?.items {
            let ports: Vec<i32> = slice.ports.iter().flatten().filter_map(|p| p.port).collect();
            for ip in slice.endpoints.iter().flatten().flat_map(|e| e.addresses.iter()) {
                api_server.extend(ports.iter().map(|p| (ip.clone(), *p)));
            }
        }
        // The Service address too: some network plugins judge traffic before it is translated.
        let services: Api<Service> = Api::namespaced(ctx.client.clone(), "default");
        if let Some(spec) = services.get_opt("kubernetes").await?.and_then(|s| s.spec) {
            let ports: Vec<i32> = spec.ports.iter().flatten().map(|p| p.port).collect();
            for ip in spec.cluster_ips.iter().flatten().filter(|ip| ip.as_str() != "None") {
                api_server.extend(ports.iter().map(|p| (ip.clone(), *p)));
            }
        }
    }
    let inputs = network::NetworkInputs {
        run,
        policy: net,
        settings: &ctx.settings,
        memory: build::uses_memory_server(skills),
        api_server,
        mcp,
    };
    let Some((np, notes)) = network::network_policy(&inputs) else { return Ok(()) };
    apply(&Api::<NetworkPolicy>::namespaced(ctx.client.clone(), &run.namespace().unwrap_or_default()), &np)
        .await?;
    for note in notes {
        publish(ctx, run, EventType::Warning, "EgressApproximated", &note).await;
    }
    Ok(())
}

/// The instance's memory server did not become ready in time.
#[derive(Debug, thiserror::Error)]
#[error("memory server deployment \"{name}\" has no ready replicas after {age}s")]
struct MemoryNotReady {
    name: String,
    age: i64,
}

/// Checks that the instance's memory server is ready; `Err` fails the run.
async fn memory_ready(run: &AgentRun, ctx: &Context) -> Result<Option<Action>, MemoryNotReady> {
    let deployments: Api<Deployment> =
        Api::namespaced(ctx.client.clone(), &run.namespace().unwrap_or_default());
    let name = format!("{}-memory", run.spec.instance_ref);
    let ready = match deployments.get_opt(&name).await {
        Ok(Some(d)) => d.status.and_then(|s| s.ready_replicas).unwrap_or(0) > 0,
        Ok(None) | Err(_) => false,
    };
    if ready {
        return Ok(None);
    }
    let now = ctx.clock.now();
    let created = run.metadata.creation_timestamp.as_ref().map(|t| t.0).unwrap_or(now);
    let age = now.duration_since(created).as_secs();
    if age > i64::try_from(MEMORY_WAIT.as_secs()).unwrap_or(i64::MAX) {
        return Err(MemoryNotReady { name, age });
    }
    Ok(Some(Action::requeue(Duration::from_secs(5))))
}

/// The Pending step.
pub async fn pending(run: &AgentRun, api: &Api<AgentRun>, ctx: &Context) -> Result<Action, Error> {
    let ns = run.namespace().unwrap_or_default();
    let name = run.name_any();
    let now = Time(ctx.clock.now());
    let instances: Api<SympoziumInstance> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(instance) = instances.get_opt(&run.spec.instance_ref).await? else {
        let message = format!("policy validation failed: instance \"{}\" not found", run.spec.instance_ref);
        publish(ctx, run, EventType::Warning, "ValidationFailed", &message).await;
        terminal::fail(api, &name, &message, now).await?;
        return Ok(Action::await_change());
    };
    let policy = match instance.spec.policy_ref.as_deref().filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => match Api::<SympoziumPolicy>::namespaced(ctx.client.clone(), &ns).get_opt(p).await? {
            Some(policy) => Some(policy),
            None => {
                let message = format!("policy validation failed: policy \"{p}\" not found");
                publish(ctx, run, EventType::Warning, "ValidationFailed", &message).await;
                terminal::fail(api, &name, &message, now).await?;
                return Ok(Action::await_change());
            }
        },
    };
    // Counting the running runs and starting this one is one step per instance: without
    // the lock, runs reconciled together all see the same free slot and all start. Runs
    // no limit applies to need neither the count nor the lock, so a burst of them starts
    // in parallel.
    let limited = policy::concurrency_limited(run, Some(&instance), policy.as_ref());
    let _slot = if limited {
        Some(ctx.start_locks.lock(&format!("{ns}/{}", run.spec.instance_ref)).await)
    } else {
        None
    };
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
    if let Err(refusal) = policy::validate(run, Some(&instance), policy.as_ref()) {
        let message = refusal.to_string();
        publish(ctx, run, EventType::Warning, "ValidationFailed", &message).await;
        terminal::fail(api, &name, &message, now).await?;
        return Ok(Action::await_change());
    }
    // Over the concurrency limit a run waits (queued), it is not failed.
    if let Err(refusal) = policy::concurrency_slot(run, Some(&instance), policy.as_ref(), &siblings) {
        let message = refusal.to_string();
        let already = run
            .status
            .as_ref()
            .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Queued" && c.message == message));
        if !already {
            let at = now.clone();
            let generation = run.metadata.generation;
            terminal::transition(api, &name, &[AgentRunPhase::Pending], |s| {
                s.conditions.retain(|c| c.type_ != "Queued");
                s.conditions.push(k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                    type_: "Queued".into(),
                    status: "True".into(),
                    reason: "ConcurrencyLimit".into(),
                    message: message.clone(),
                    last_transition_time: at.clone(),
                    observed_generation: generation,
                });
            })
            .await?;
            publish(ctx, run, EventType::Normal, "Queued", &message).await;
        }
        return Ok(Action::requeue(Duration::from_secs(3)));
    }

    // What the run inherits is written into its spec, so every later step (and every
    // reader) sees the same skills and timeout.
    let skills = effective_skills(run, Some(&instance));
    let timeout = effective_timeout(run, Some(&instance));
    if run.spec.skills != skills || run.spec.timeout.is_none() {
        let patch = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
                           "spec": {"skills": skills, "timeout": sympozium_protocol::duration::seconds(timeout)}});
        api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    }

    if build::uses_memory_server(&skills) {
        match memory_ready(run, ctx).await {
            Ok(Some(wait)) => return Ok(wait),
            Ok(None) => {}
            Err(e) => {
                terminal::fail(api, &name, &e.to_string(), now).await?;
                return Ok(Action::await_change());
            }
        }
    }

    let (mut sidecars, withheld) = resolve_sidecars(run, &skills, ctx, false).await?;
    super::scope::report_withheld(run, api, ctx, &withheld, AgentRunPhase::Pending).await?;
    let host_mounts_allowed =
        policy.as_ref().and_then(|p| p.spec.sandbox_policy.as_ref()).is_some_and(|s| s.allow_host_mounts);
    for pack in super::host::withhold(&mut sidecars, host_mounts_allowed) {
        let note = format!(
            "skill {pack} requests host access; it runs without it because the run's policy does not set sandboxPolicy.allowHostMounts"
        );
        publish(ctx, run, EventType::Warning, "HostAccessDenied", &note).await;
    }
    if let Err(e) = grant(run, &sidecars, ctx).await {
        // Only a refusal is the run's fate; an API server or etcd that is restarting is not.
        if !is_refusal(&e) {
            return Err(e.into());
        }
        let message =
            format!("granting the run's skill RBAC failed (the controller needs bind/escalate rights): {e}");
        publish(ctx, run, EventType::Warning, "RBACFailed", &message).await;
        terminal::fail(api, &name, &message, now).await?;
        return Ok(Action::await_change());
    }

    match crate::skillpack::mirror::mirror_skills(&ctx.client, &ctx.settings.system_namespace, run, &skills)
        .await
    {
        Ok(names) if !names.is_empty() => {
            let note = format!("mirrored built-in skills {}", names.join(", "));
            publish(ctx, run, EventType::Normal, "SkillsMirrored", &note).await;
        }
        Ok(_) => {}
        Err(e) => publish(ctx, run, EventType::Warning, "MirrorFailed", &e.to_string()).await,
    }

    let secrets: Vec<String> = sidecars.iter().filter_map(|s| s.sidecar.secret_ref.clone()).collect();
    match crate::skillpack::mirror::mirror_secrets(&ctx.client, &ctx.settings.system_namespace, run, &secrets)
        .await
    {
        Ok(names) if !names.is_empty() => {
            let note =
                format!("copied skill Secrets {} from {}", names.join(", "), ctx.settings.system_namespace);
            publish(ctx, run, EventType::Normal, "SecretsMirrored", &note).await;
        }
        Ok(_) => {}
        Err(e) => publish(ctx, run, EventType::Warning, "MirrorFailed", &e.to_string()).await,
    }

    // Resolved before the NetworkPolicy is built: a denyAll run still reaches its servers.
    let mcp_servers = mcp_servers(run, &instance, ctx).await?;
    if let Err(e) = isolate(run, policy.as_ref(), &skills, &sidecars, &mcp_servers, ctx).await {
        if !is_refusal(&e) {
            return Err(e.into());
        }
        let message = format!("creating the run's NetworkPolicy failed: {e}");
        publish(ctx, run, EventType::Warning, "NetworkPolicyFailed", &message).await;
        terminal::fail(api, &name, &message, now).await?;
        return Ok(Action::await_change());
    }

    // The pod continues the trace under this span (a fresh child id when telemetry is off).
    let traceparent = tracing::info_span!("agentrun.create_job", run = %name).in_scope(|| {
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
    if super::hooks::has_post_run(run) {
        let pvc = super::hooks::workspace_pvc(run);
        create_if_absent(
            &Api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>::namespaced(ctx.client.clone(), &ns),
            &pvc,
        )
        .await?;
    }
    let mut job = build::job(&inputs);
    if let Some(pod) = job.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        super::mcp::add_to_pod(pod, run, &mcp_servers, &ctx.settings);
    }
    if let Some(sandbox) = super::sandbox::effective(run, Some(&instance)) {
        return super::sandbox::start(run, api, ctx, &sandbox, &job, &trace_id).await;
    }
    create_if_absent(&Api::<Job>::namespaced(ctx.client.clone(), &ns), &job).await?;
    publish(ctx, run, EventType::Normal, "Started", &format!("created Job {name}")).await;

    terminal::transition(api, &name, &[AgentRunPhase::Pending], |status| {
        status.conditions.retain(|c| c.type_ != "Queued");
        status.phase = Some(AgentRunPhase::Running);
        status.job_name = Some(name.clone());
        status.started_at = Some(now.clone());
        status.trace_id = Some(trace_id.clone());
    })
    .await?;
    Ok(Action::requeue(Duration::from_secs(5)))
}

/// Resolves the instance's MCP servers and writes the bridge's ConfigMap; servers that
/// cannot be used are reported as Events (the run goes on without them).
async fn mcp_servers(
    run: &AgentRun,
    instance: &SympoziumInstance,
    ctx: &Context,
) -> Result<Vec<super::mcp::ResolvedServer>, kube::Error> {
    if instance.spec.mcp_servers.is_empty() {
        return Ok(Vec::new());
    }
    let ns = run.namespace().unwrap_or_default();
    let (servers, skipped) = super::mcp::resolve(&ctx.client, &ctx.settings, instance, &ns).await?;
    for why in skipped {
        publish(ctx, run, EventType::Warning, "MCPServerSkipped", &why).await;
    }
    if !servers.is_empty() {
        match super::mcp::config_map(run, &servers) {
            Ok(cm) => {
                create_if_absent(
                    &Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(ctx.client.clone(), &ns),
                    &cm,
                )
                .await?;
            }
            Err(e) => tracing::error!(error = %e, "cannot encode the MCP server list"),
        }
    }
    Ok(servers)
}

/// A random number for trace ids (std's randomly keyed hasher; no extra dependency).
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

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("10m0s"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), None);
        assert_eq!(parse_duration("ten"), None);
        assert_eq!(parse_duration(""), None);
    }

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
