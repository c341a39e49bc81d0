//! What a run needs in place before its Job starts, each step against the API server:
//! its skill sidecars looked up, its ServiceAccount, bus user and RBAC granted, its
//! NetworkPolicy, its MCP servers' ConfigMap, and its instance's memory server ready.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use sympozium_api::common::SkillRef;
use sympozium_api::{AgentRun, SkillPack, SympoziumInstance, SympoziumPolicy};
use sympozium_kube::apply::{apply, create_if_absent};

use super::pod::{ResolvedSidecar, needs_api_token, uses_memory_server};
use super::{Error, build, network, publish};
use crate::context::Context;

/// How long a run waits for its instance's memory server to become ready.
pub const MEMORY_WAIT: Duration = Duration::from_secs(120);

/// The skill sidecars of a run: task-mode sidecars (`serving = false`), or the serving
/// ones that drive server mode (`serving = true`); and the packs whose `clusterRBAC` was
/// withheld because they are not in the system namespace ([`super::scope`]).
pub async fn resolve_sidecars(
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
        let (pack, admin_managed) = match skill_pack(ctx, &local, &system, &ns, name).await? {
            Some((p, from_system)) => (Some(p), from_system || &ns == system_ns),
            None => (None, true),
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

/// The skill pack `name`: the run's namespace's own, else the system namespace's (`true`
/// when it is that one). Read from the skill pack controller's store; the API server is
/// asked only when the store holds neither (a pack created a moment ago, or a controller
/// scoped to one namespace).
async fn skill_pack(
    ctx: &Context,
    local: &Api<SkillPack>,
    system: &Api<SkillPack>,
    ns: &str,
    name: &str,
) -> Result<Option<(SkillPack, bool)>, Error> {
    let system_ns = &ctx.settings.system_namespace;
    let slot = &ctx.watched.skill_packs;
    if let Some(p) = crate::watched::stored(slot, ns, name) {
        return Ok(Some(((*p).clone(), false)));
    }
    if let Some(p) = crate::watched::stored(slot, system_ns, name) {
        return Ok(Some(((*p).clone(), true)));
    }
    if let Some(p) = local.get_opt(name).await? {
        return Ok(Some((p, false)));
    }
    Ok(system.get_opt(name).await.ok().flatten().map(|p| (p, true)))
}

/// Gives the run its identity: its ServiceAccount and its bus user (minted once). Both are
/// owned by the run and go with it, so this needs no finalizer in place first.
pub async fn identity(run: &AgentRun, ctx: &Context) -> Result<(), kube::Error> {
    let ns = run.namespace().unwrap_or_default();
    create_if_absent(
        &Api::<ServiceAccount>::namespaced(ctx.client.clone(), &ns),
        &build::service_account(run),
    )
    .await?;
    if let Some(auth) = &ctx.settings.bus_auth {
        let secrets = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(ctx.client.clone(), &ns);
        // Minting is a local signature, cheaper than asking whether the Secret exists: an
        // existing Secret (a retried reconcile) is kept as it is and the new user discarded.
        match auth.issuer.mint(&super::bus_access::identity(run), None) {
            Ok(creds) => {
                create_if_absent(&secrets, &super::bus_access::secret(run, auth, &creds)).await?;
            }
            Err(e) => tracing::error!(error = %e, "minting the run's bus user failed"),
        }
    }
    Ok(())
}

/// Grants the RBAC the run's skills and lifecycle hooks ask for (cluster-wide only from
/// admin-managed packs), bound to the ServiceAccount [`identity`] created.
pub async fn grant(run: &AgentRun, sidecars: &[ResolvedSidecar], ctx: &Context) -> Result<(), kube::Error> {
    let ns = run.namespace().unwrap_or_default();
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
pub async fn isolate(
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
    if needs_api_token(run, sidecars) {
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
        memory: uses_memory_server(skills),
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
pub struct MemoryNotReady {
    name: String,
    age: i64,
}

/// Checks that the instance's memory server is ready; `Err` fails the run.
pub async fn memory_ready(run: &AgentRun, ctx: &Context) -> Result<Option<Action>, MemoryNotReady> {
    let ns = run.namespace().unwrap_or_default();
    let name = format!("{}-memory", run.spec.instance_ref);
    let ready =
        match crate::watched::get::<Deployment>(&ctx.watched.deployments, &ctx.client, &ns, &name).await {
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

/// Resolves the instance's MCP servers and writes the bridge's ConfigMap; servers that
/// cannot be used are reported as Events (the run goes on without them).
pub async fn mcp_servers(
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
