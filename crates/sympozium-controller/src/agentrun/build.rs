//! Pure builders of an agent run's Kubernetes objects: the Job and its locked-down pod, the
//! per-run ServiceAccount and RBAC. No client here.

use std::collections::BTreeMap;
use std::time::Duration;
use sympozium_protocol::env as vars;
use sympozium_protocol::ipc;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMapProjection, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvFromSource, EnvVar,
    PodSecurityContext, PodSpec, PodTemplateSpec, ProjectedVolumeSource, ResourceRequirements,
    SeccompProfile, SecretEnvSource, SecretVolumeSource, ServiceAccount, Volume, VolumeProjection,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use sympozium_api::common::{RbacRule, SkillRef};
use sympozium_api::labels;
use sympozium_api::reserved::is_reserved_env;
use sympozium_api::{AgentRun, SympoziumInstance};

use crate::settings::Settings;

use super::pod::ResolvedSidecar;
use super::pod::{
    api_token_mount, api_token_volume, hardened, mount, needs_api_token, run_labels, service_account_name,
    sidecar_needs_api, uses_memory_server,
};

/// Everything the Job is built from.
#[derive(Clone, Debug)]
pub struct RunInputs<'a> {
    /// The run.
    pub run: &'a AgentRun,
    /// Its instance, when it exists.
    pub instance: Option<&'a SympoziumInstance>,
    /// Deployment settings.
    pub settings: &'a Settings,
    /// Skills in effect (the run's, or the instance's when the run names none).
    pub skills: Vec<SkillRef>,
    /// Resolved skill sidecars.
    pub sidecars: Vec<ResolvedSidecar>,
    /// Whole-run timeout in effect.
    pub timeout: Duration,
    /// Effective tool policy (runner `TOOL_POLICY` JSON).
    pub tool_policy: Option<String>,
    /// W3C trace context for the pod.
    pub traceparent: Option<String>,
}

/// The JSON spelling of an API enum value (`high`, `RuntimeDefault`).
fn wire_name(value: &impl serde::Serialize) -> Option<String> {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(String::from))
}

fn owner(run: &AgentRun) -> Vec<OwnerReference> {
    run.controller_owner_ref(&()).into_iter().collect()
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() }
}

fn resources(req: (&str, &str), lim: (&str, &str)) -> ResourceRequirements {
    let q = |cpu: &str, mem: &str| {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(mem.into())),
        ])
    };
    ResourceRequirements {
        requests: Some(q(req.0, req.1)),
        limits: Some(q(lim.0, lim.1)),
        ..Default::default()
    }
}

/// Init containers: wait for the memory server (when the run uses it), then pre-run hooks.
fn init_containers(i: &RunInputs<'_>, memory_url: Option<&str>) -> Vec<Container> {
    let mut init = Vec::new();
    if let Some(url) = memory_url {
        // Fails after 120 s, so a run never starts against a memory server that is not there.
        let script = format!(
            "for i in $(seq 1 60); do wget -q --spider {url}/health && exit 0; sleep 2; done; \
             echo 'memory server {url} not ready after 120s' >&2; exit 1"
        );
        init.push(Container {
            name: "wait-for-memory".into(),
            image: Some(i.settings.busybox_image.clone()),
            image_pull_policy: Some("IfNotPresent".into()),
            command: Some(vec!["sh".into(), "-c".into(), script]),
            resources: Some(resources(("50m", "32Mi"), ("100m", "64Mi"))),
            security_context: Some(hardened()),
            ..Default::default()
        });
    }
    init.extend(super::hooks::pre_run_containers(i.run));
    init
}

/// Pod labels: the run's own labels (so users and tools can select a run's pod by them)
/// under the controller's, which always win.
fn pod_labels(run: &AgentRun, ours: BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = run.labels().clone();
    labels.extend(ours);
    labels
}

/// The run's own ServiceAccount (owned by the run, so it goes with it).
pub fn service_account(run: &AgentRun) -> ServiceAccount {
    ServiceAccount {
        metadata: ObjectMeta {
            name: Some(service_account_name(run)),
            namespace: run.namespace(),
            labels: Some(run_labels(run)),
            owner_references: Some(owner(run)),
            ..Default::default()
        },
        automount_service_account_token: Some(false),
        ..Default::default()
    }
}

fn rules(rules: &[RbacRule]) -> Vec<PolicyRule> {
    rules
        .iter()
        .map(|r| PolicyRule {
            api_groups: Some(r.api_groups.clone()),
            resources: Some(r.resources.clone()),
            verbs: r.verbs.clone(),
            ..Default::default()
        })
        .collect()
}

fn rbac_labels(run: &AgentRun, skill: &str) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        (labels::AGENT_RUN.to_string(), run.name_any()),
        ("sympozium.ai/managed-by".to_string(), "sympozium".to_string()),
    ]);
    if !skill.is_empty() {
        l.insert("sympozium.ai/skill".to_string(), skill.to_string());
    }
    l
}

/// Namespaced Role + RoleBinding granting the run's ServiceAccount `grant` (owned by the run).
pub fn role(run: &AgentRun, name: &str, skill: &str, grant: &[RbacRule]) -> (Role, RoleBinding) {
    let meta = ObjectMeta {
        name: Some(name.into()),
        namespace: run.namespace(),
        labels: Some(rbac_labels(run, skill)),
        owner_references: Some(owner(run)),
        ..Default::default()
    };
    let binding = RoleBinding {
        metadata: meta.clone(),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: name.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: service_account_name(run),
            namespace: run.namespace(),
            ..Default::default()
        }]),
    };
    (Role { metadata: meta, rules: Some(rules(grant)) }, binding)
}

/// Cluster-wide grant for the run; removed by label when the run finishes.
pub fn cluster_role(
    run: &AgentRun,
    name: &str,
    skill: &str,
    grant: &[RbacRule],
) -> (ClusterRole, ClusterRoleBinding) {
    let meta =
        ObjectMeta { name: Some(name.into()), labels: Some(rbac_labels(run, skill)), ..Default::default() };
    let binding = ClusterRoleBinding {
        metadata: meta.clone(),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: name.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: service_account_name(run),
            namespace: run.namespace(),
            ..Default::default()
        }]),
    };
    (ClusterRole { metadata: meta, rules: Some(rules(grant)), ..Default::default() }, binding)
}

fn agent_container(i: &RunInputs<'_>, memory_url: Option<&str>, legacy_memory: bool) -> Container {
    let run = i.run;
    let spec = &run.spec;
    let ns = run.namespace().unwrap_or_default();
    let mut vars = vec![
        env(vars::AGENT_RUN_ID, run.name_any()),
        env(vars::AGENT_ID, spec.agent_id.clone()),
        env(vars::SESSION_KEY, spec.session_key.clone()),
        env(vars::INSTANCE_NAME, spec.instance_ref.clone()),
        env(vars::AGENT_NAMESPACE, ns),
        env(vars::TASK, spec.task.clone()),
        // A run without its own prompt gets its instance's (a persona's), whoever created it.
        env(
            vars::SYSTEM_PROMPT,
            spec.system_prompt
                .clone()
                .filter(|p| !p.trim().is_empty())
                .or_else(|| i.instance.and_then(|inst| inst.spec.memory.as_ref()?.system_prompt.clone()))
                .unwrap_or_default(),
        ),
        env(vars::MODEL_PROVIDER, spec.model.provider.clone()),
        env(vars::MODEL_NAME, spec.model.model.clone()),
        env(vars::MODEL_BASE_URL, spec.model.base_url.clone().unwrap_or_default()),
        env(vars::THINKING_MODE, spec.model.thinking.and_then(|t| wire_name(&t)).unwrap_or_default()),
    ];
    // Before the run's own env, so a run can still override the chain for itself.
    vars.extend(super::fallbacks::env_vars(i.instance));
    if legacy_memory {
        vars.push(env(vars::MEMORY_ENABLED, "true"));
    }
    if let Some(url) = memory_url {
        vars.push(env(vars::MEMORY_SERVER_URL, url));
        vars.push(crate::instance::memory_access::token_env(&spec.instance_ref));
        let auto_store = i.instance.and_then(|inst| inst.spec.memory.as_ref()?.auto_store);
        if auto_store == Some(false) {
            vars.push(env(vars::MEMORY_AUTO_STORE, "false"));
        }
    }
    // Reserved names are refused at admission; skipping them here too keeps a run stored
    // before that rule existed (or written past it) from overriding what Sympozium sets.
    for (k, v) in spec.env.iter().flatten().filter(|(k, _)| !is_reserved_env(k)) {
        vars.push(env(k, v.clone()));
    }
    vars.push(env(vars::TOOLS_ENABLED, "true"));
    let annotations = run.annotations();
    if let Some(c) = annotations.get("sympozium.ai/reply-channel") {
        vars.push(env(vars::SOURCE_CHANNEL, c.clone()));
    }
    if let Some(c) = annotations.get("sympozium.ai/reply-chat-id") {
        vars.push(env(vars::SOURCE_CHAT_ID, c.clone()));
    }
    vars.push(env(vars::RUN_TIMEOUT, format!("{}s", i.timeout.as_secs())));
    if let Some(tp) = &i.traceparent {
        vars.push(env(vars::TRACEPARENT, tp.clone()));
    }
    if let Some(policy) = &i.tool_policy {
        vars.push(env(vars::TOOL_POLICY, policy.clone()));
    }
    let command_sidecars: Vec<_> = i.sidecars.iter().map(|s| s.pack.clone()).collect();
    if !command_sidecars.is_empty() {
        vars.push(env(vars::SKILL_SIDECARS, command_sidecars.join(",")));
        // What the skills' Roles grant, so the prompt describes the run's real permissions.
        let grants: serde_json::Map<String, serde_json::Value> = i
            .sidecars
            .iter()
            .map(|s| {
                let grant =
                    serde_json::json!({"namespace": s.sidecar.rbac, "cluster": s.sidecar.cluster_rbac});
                (s.pack.clone(), grant)
            })
            .collect();
        vars.push(env(vars::SKILL_RBAC, serde_json::Value::Object(grants).to_string()));
    }
    if super::sandbox_container::effective(run, i.instance).is_some() {
        // `execute_command` goes to the sandbox container; this one runs no command itself.
        vars.push(env(vars::SANDBOX_ENABLED, "true"));
    }
    vars.push(env(vars::EVENT_BUS_URL, i.settings.event_bus_url()));
    if i.settings.bus_auth.is_some() {
        vars.extend(super::bus_access::env(&run.name_any()));
    }
    vars.extend(super::observability::env_vars(run, i.instance));

    let mut mounts = vec![
        mount("workspace", "/workspace", false),
        mount("skills", "/skills", true),
        mount("ipc", ipc::DEFAULT_ROOT, false),
        mount("tmp", "/tmp", false),
    ];
    if legacy_memory {
        mounts.push(mount("memory", "/memory", true));
    }
    let secret = spec.model.auth_secret_ref.trim();
    Container {
        name: "agent".into(),
        image: Some(i.settings.image("agent-runner")),
        image_pull_policy: Some("IfNotPresent".into()),
        env: Some(vars),
        env_from: {
            let mut from: Vec<EnvFromSource> = Vec::new();
            if !secret.is_empty() {
                from.push(EnvFromSource {
                    secret_ref: Some(SecretEnvSource { name: secret.into(), optional: None }),
                    ..Default::default()
                });
            }
            from.extend(super::observability::headers_env_from(i.instance));
            (!from.is_empty()).then_some(from)
        },
        volume_mounts: Some(mounts),
        resources: Some(resources(("250m", "512Mi"), ("1", "1Gi"))),
        security_context: Some(hardened()),
        ..Default::default()
    }
}

fn ipc_bridge(i: &RunInputs<'_>) -> Container {
    let mut vars = vec![
        env(vars::AGENT_RUN_ID, i.run.name_any()),
        env(vars::INSTANCE_NAME, i.run.spec.instance_ref.clone()),
        env(vars::AGENT_NAMESPACE, i.run.namespace().unwrap_or_default()),
        env(vars::EVENT_BUS_URL, i.settings.event_bus_url()),
        env(vars::RUN_TIMEOUT, format!("{}s", i.timeout.as_secs())),
        env(vars::TRACEPARENT, i.traceparent.clone().unwrap_or_default()),
    ];
    if i.settings.bus_auth.is_some() {
        vars.extend(super::bus_access::env(&i.run.name_any()));
    }
    vars.extend(super::observability::env_vars(i.run, i.instance));
    Container {
        name: "ipc-bridge".into(),
        image: Some(i.settings.image("ipc-bridge")),
        image_pull_policy: Some("IfNotPresent".into()),
        env: Some(vars),
        env_from: super::observability::headers_env_from(i.instance).map(|f| vec![f]),
        volume_mounts: Some(vec![mount("ipc", ipc::DEFAULT_ROOT, false)]),
        resources: Some(resources(("50m", "64Mi"), ("100m", "128Mi"))),
        security_context: Some(hardened()),
        ..Default::default()
    }
}

fn skill_container(s: &ResolvedSidecar) -> Container {
    let mut vars: Vec<_> = s.sidecar.env.iter().map(|e| env(&e.name, e.value.clone())).collect();
    for (k, v) in &s.params {
        vars.push(env(&format!("SKILL_{}", k.to_ascii_uppercase()), v.clone()));
    }
    // The tool executor serves `/ipc/tools/<pack>/`: commands for this skill reach this sidecar.
    vars.push(env(vars::SYMPOZIUM_SKILL, s.pack.clone()));
    let mut mounts = vec![mount("ipc", ipc::DEFAULT_ROOT, false), mount("tmp", "/tmp", false)];
    if s.sidecar.mount_workspace != Some(false) {
        mounts.push(mount("workspace", "/workspace", false));
    }
    if let Some(secret) = &s.sidecar.secret_ref {
        let path = s.sidecar.secret_mount_path.clone().unwrap_or_else(|| format!("/secrets/{secret}"));
        mounts.push(mount(&format!("skill-secret-{}", s.pack), &path, true));
    }
    mounts.extend(super::host::mounts(s));
    if sidecar_needs_api(s) {
        mounts.push(api_token_mount());
    }
    let cpu = s.sidecar.resources.as_ref().and_then(|r| r.cpu.clone()).unwrap_or_else(|| "100m".into());
    let memory =
        s.sidecar.resources.as_ref().and_then(|r| r.memory.clone()).unwrap_or_else(|| "128Mi".into());
    Container {
        name: format!("skill-{}", s.pack),
        image: Some(s.sidecar.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: (!s.sidecar.command.is_empty()).then(|| s.sidecar.command.clone()),
        env: (!vars.is_empty()).then_some(vars),
        volume_mounts: Some(mounts),
        resources: Some(resources((&cpu, &memory), (&cpu, &memory))),
        security_context: Some(super::host::security_context(s).unwrap_or_else(hardened)),
        ..Default::default()
    }
}

fn empty_dir(name: &str, medium: Option<&str>, size: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: medium.map(Into::into),
            size_limit: Some(Quantity(size.into())),
        }),
        ..Default::default()
    }
}

fn skills_volume(skills: &[SkillRef]) -> Volume {
    let sources: Vec<_> = skills
        .iter()
        .flat_map(|s| [s.skill_pack_ref.clone(), s.config_map_ref.clone()])
        .flatten()
        .map(|name| VolumeProjection {
            config_map: Some(ConfigMapProjection { name, optional: Some(true), ..Default::default() }),
            ..Default::default()
        })
        .collect();
    if sources.is_empty() {
        return empty_dir("skills", None, "1Mi");
    }
    Volume {
        name: "skills".into(),
        projected: Some(ProjectedVolumeSource { sources: Some(sources), ..Default::default() }),
        ..Default::default()
    }
}

/// The Job running the agent.
pub fn job(i: &RunInputs<'_>) -> Job {
    let run = i.run;
    let ns = run.namespace().unwrap_or_default();
    let legacy_memory = i.instance.and_then(|inst| inst.spec.memory.as_ref()).is_some_and(|m| m.enabled);
    let memory_url =
        uses_memory_server(&i.skills).then(|| i.settings.memory_url(&run.spec.instance_ref, &ns));
    let labels = run_labels(run);
    let mut containers = vec![agent_container(i, memory_url.as_deref(), legacy_memory), ipc_bridge(i)];
    containers.extend(i.sidecars.iter().map(skill_container));
    if let Some(sandbox) = super::sandbox_container::effective(run, i.instance) {
        containers.push(super::sandbox_container::container(&sandbox, i.settings));
    }

    let mut volumes = vec![
        super::hooks::workspace_volume(run),
        empty_dir("ipc", Some("Memory"), "64Mi"),
        empty_dir("tmp", None, "256Mi"),
        skills_volume(&i.skills),
    ];
    if legacy_memory {
        volumes.push(Volume {
            name: "memory".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: format!("{}-memory", run.spec.instance_ref),
                optional: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    for s in &i.sidecars {
        if let Some(secret) = &s.sidecar.secret_ref {
            volumes.push(Volume {
                name: format!("skill-secret-{}", s.pack),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(secret.clone()),
                    optional: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }
    volumes.extend(super::host::volumes(&i.sidecars));
    if needs_api_token(run, &i.sidecars) {
        volumes.push(api_token_volume());
    }
    let seccomp = run
        .spec
        .sandbox
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|c| c.seccomp_profile.as_ref())
        .and_then(|p| wire_name(&p.type_))
        .unwrap_or_else(|| "RuntimeDefault".into());
    let deadline = i64::try_from(i.timeout.as_secs()).unwrap_or(i64::MAX / 2).saturating_add(60);
    Job {
        metadata: ObjectMeta {
            name: Some(run.name_any()),
            namespace: run.namespace(),
            labels: Some(labels.clone()),
            owner_references: Some(owner(run)),
            ..Default::default()
        },
        spec: Some(JobSpec {
            // A kept run's Job stays until the run is deleted (it owns the Job), not 5 minutes.
            ttl_seconds_after_finished: (run.spec.cleanup != sympozium_api::agentrun::CleanupPolicy::Keep)
                .then_some(300),
            active_deadline_seconds: Some(deadline),
            backoff_limit: Some(0),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(pod_labels(run, labels)), ..Default::default() }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    host_network: super::host::host_network(&i.sidecars).then_some(true),
                    // On the host's network the pod still resolves cluster Services.
                    dns_policy: super::host::host_network(&i.sidecars)
                        .then(|| "ClusterFirstWithHostNet".into()),
                    host_pid: super::host::host_pid(&i.sidecars).then_some(true),
                    service_account_name: Some(service_account_name(run)),
                    // Never the whole pod: see `api_token_volume`.
                    automount_service_account_token: Some(false),
                    image_pull_secrets: (!run.spec.image_pull_secrets.is_empty())
                        .then(|| run.spec.image_pull_secrets.clone()),
                    node_selector: run.spec.model.node_selector.clone().filter(|n| !n.is_empty()),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(1000),
                        fs_group: Some(1000),
                        seccomp_profile: Some(SeccompProfile { type_: seccomp, ..Default::default() }),
                        ..Default::default()
                    }),
                    init_containers: Some(init_containers(i, memory_url.as_deref()))
                        .filter(|c| !c.is_empty()),
                    containers,
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "build_tests.rs"]
mod tests;
