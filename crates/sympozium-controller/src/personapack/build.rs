//! Pure builders: what a PersonaPack stamps out for each persona — the SympoziumInstance,
//! the SympoziumSchedule and the seeded memory ConfigMap — from the pack and the deployment
//! settings. No client here, so every shape is unit-tested.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};
use sympozium_api::common::SkillRef;
use sympozium_api::instance::{
    AgentConfig, AgentsSpec, ChannelSpec, ChannelType, MemorySpec, ObservabilitySpec, OtlpProtocol,
};
use sympozium_api::labels::{self, component, skills};
use sympozium_api::personapack::PersonaSpec;
use sympozium_api::schedule::{ConcurrencyPolicy, interval_to_cron};
use sympozium_api::{
    PersonaPack, SympoziumInstance, SympoziumInstanceSpec, SympoziumSchedule, SympoziumScheduleSpec,
};

use crate::settings::Settings;

/// Model of a persona that names none.
pub const DEFAULT_MODEL: &str = "gpt-4o";
/// Skill name that only marks a persona as MCP-backed; it is not a SkillPack.
pub const MCP_BRIDGE_MARKER: &str = "mcp-bridge";
/// Label marking a ConfigMap as seeded memory.
pub const MEMORY_LABEL: &str = "sympozium.ai/memory";
/// Annotation holding the hash of the memory content the pack last wrote, so the pack can
/// tell its own untouched seeds from memories an agent has since recorded.
pub const SEED_HASH_ANNOTATION: &str = "sympozium.ai/seed-hash";
/// Minutes between the schedules of consecutive personas.
pub const STAGGER_MINUTES: u32 = 2;

/// Why a persona cannot be stamped out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    /// A persona names a channel type Sympozium does not support.
    #[error("channels: unknown channel type \"{channel}\" (expected telegram, slack, discord or whatsapp)")]
    UnknownChannel {
        /// The persona.
        persona: String,
        /// The channel type.
        channel: String,
    },
}

/// Name of the instance stamped out for `persona`.
pub fn instance_name(pack: &str, persona: &str) -> String {
    format!("{pack}-{persona}")
}

/// Name of the schedule of an instance.
pub fn schedule_name(instance: &str) -> String {
    format!("{instance}-schedule")
}

/// Name of the memory ConfigMap of an instance (the instance controller uses the same).
pub fn memory_name(instance: &str) -> String {
    format!("{instance}-memory")
}

/// Whether `persona` is stamped out (enabled packs only).
pub fn is_excluded(pack: &PersonaPack, persona: &str) -> bool {
    pack.spec.exclude_personas.iter().any(|p| p.trim() == persona)
}

/// Whether the pack is enabled (unset means catalog only).
pub fn is_enabled(pack: &PersonaPack) -> bool {
    pack.spec.enabled == Some(true)
}

fn owner(pack: &PersonaPack) -> Vec<OwnerReference> {
    pack.controller_owner_ref(&()).into_iter().collect()
}

fn persona_labels(pack: &PersonaPack, persona: &str) -> BTreeMap<String, String> {
    [(labels::PERSONA_PACK, pack.name_any()), (labels::PERSONA, persona.to_string())]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// The default observability of a stamped-out instance: export when the controller has a
/// collector, to the controller's collector or the one in the system namespace.
pub fn observability(settings: &Settings) -> ObservabilitySpec {
    let endpoint = if settings.otlp_endpoint.trim().is_empty() {
        format!("sympozium-otel-collector.{}.svc:4317", settings.system_namespace)
    } else {
        settings.otlp_endpoint.clone()
    };
    ObservabilitySpec {
        enabled: !settings.otlp_endpoint.trim().is_empty(),
        otlp_endpoint: Some(endpoint),
        otlp_protocol: Some(OtlpProtocol::Grpc),
        service_name: Some("sympozium".into()),
        resource_attributes: Some(
            [("deployment.environment", "cluster"), ("k8s.cluster.name", "unknown")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

/// The skills of a persona's instance: its SkillPacks (without the `mcp-bridge` marker)
/// with the pack's parameters, then `memory`, then `web-endpoint` when the persona serves.
pub fn skills_of(pack: &PersonaPack, persona: &PersonaSpec) -> Vec<SkillRef> {
    let params = pack.spec.skill_params.clone().unwrap_or_default();
    let skill = |name: &str, params: Option<BTreeMap<String, String>>| SkillRef {
        skill_pack_ref: Some(name.to_string()),
        params: params.filter(|p| !p.is_empty()),
        ..Default::default()
    };
    let mut out: Vec<SkillRef> = Vec::new();
    for name in persona.skills.iter().map(|s| s.trim()) {
        if name.is_empty() || name == MCP_BRIDGE_MARKER {
            continue;
        }
        if out.iter().any(|s| s.skill_pack_ref.as_deref() == Some(name)) {
            continue;
        }
        out.push(skill(name, params.get(name).cloned()));
    }
    if !out.iter().any(|s| s.skill_pack_ref.as_deref() == Some(skills::MEMORY)) {
        out.push(skill(skills::MEMORY, params.get(skills::MEMORY).cloned()));
    }
    if let Some(web) = persona.web_endpoint.as_ref().filter(|w| w.enabled)
        && !out.iter().any(|s| s.skill_pack_ref.as_deref() == Some(skills::WEB_ENDPOINT))
    {
        let hostname = web.hostname.as_deref().map(str::trim).filter(|h| !h.is_empty());
        let mut p = params.get(skills::WEB_ENDPOINT).cloned().unwrap_or_default();
        if let Some(h) = hostname {
            p.insert("hostname".into(), h.to_string());
        }
        out.push(SkillRef {
            skill_pack_ref: Some(skills::WEB_ENDPOINT.into()),
            params: Some(p),
            ..Default::default()
        });
    }
    out
}

fn channel_type(persona: &str, name: &str) -> Result<ChannelType, BuildError> {
    serde_json::from_value(serde_json::Value::String(name.trim().to_ascii_lowercase()))
        .map_err(|_| BuildError::UnknownChannel { persona: persona.to_string(), channel: name.to_string() })
}

/// The channels of a persona's instance, wired to the pack's channel Secrets and access
/// control.
pub fn channels_of(pack: &PersonaPack, persona: &PersonaSpec) -> Result<Vec<ChannelSpec>, BuildError> {
    let configs = pack.spec.channel_configs.clone().unwrap_or_default();
    let access = pack.spec.channel_access_control.clone().unwrap_or_default();
    let mut out: Vec<ChannelSpec> = Vec::new();
    for name in &persona.channels {
        let kind = channel_type(&persona.name, name)?;
        if out.iter().any(|c| c.type_ == kind) {
            continue;
        }
        let mut channel = ChannelSpec {
            type_: kind,
            access_control: access.get(kind.as_str()).cloned(),
            ..Default::default()
        };
        channel.config_ref.secret = configs.get(kind.as_str()).cloned().unwrap_or_default();
        out.push(channel);
    }
    Ok(out)
}

/// The SympoziumInstance of the persona: every field here is owned by the pack and
/// converges to it on every reconcile; fields the pack does not set stay the user's.
pub fn instance(
    pack: &PersonaPack,
    persona: &PersonaSpec,
    settings: &Settings,
) -> Result<SympoziumInstance, BuildError> {
    let name = instance_name(&pack.name_any(), &persona.name);
    let model = persona.model.as_deref().map(str::trim).filter(|m| !m.is_empty()).unwrap_or(DEFAULT_MODEL);
    let spec = SympoziumInstanceSpec {
        channels: channels_of(pack, persona)?,
        agents: AgentsSpec {
            default: AgentConfig {
                model: model.to_string(),
                base_url: pack.spec.base_url.clone().filter(|u| !u.trim().is_empty()),
                agent_sandbox: pack.spec.agent_sandbox.clone(),
                sandbox: pack.spec.sandbox.clone(),
                lifecycle: persona.lifecycle.clone(),
                tool_policy: persona.tool_policy.clone(),
                ..Default::default()
            },
        },
        skills: skills_of(pack, persona),
        policy_ref: pack.spec.policy_ref.clone().filter(|p| !p.trim().is_empty()),
        auth_refs: pack.spec.auth_refs.clone(),
        memory: Some(MemorySpec { system_prompt: Some(persona.system_prompt.clone()), ..Default::default() }),
        observability: Some(observability(settings)),
        ..Default::default()
    };
    let mut inst = SympoziumInstance::new(&name, spec);
    inst.metadata.namespace = pack.namespace();
    inst.metadata.labels = Some(persona_labels(pack, &persona.name));
    inst.metadata.owner_references = Some(owner(pack));
    Ok(inst)
}

/// The task of a persona's schedule, wrapped in the team objective when the pack sets one.
pub fn task(pack: &PersonaPack, persona_task: &str) -> String {
    match pack.spec.task_override.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(objective) => format!("TEAM OBJECTIVE: {objective}\n\nYOUR ROLE TASK: {persona_task}"),
        None => persona_task.to_string(),
    }
}

/// The cron of the persona at `index`: its own cron, else its interval staggered by
/// [`STAGGER_MINUTES`] per persona.
pub fn cron(schedule: &sympozium_api::personapack::PersonaSchedule, index: usize) -> String {
    if let Some(cron) = schedule.cron.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        return cron.to_string();
    }
    let offset = u32::try_from(index).unwrap_or(u32::MAX / STAGGER_MINUTES).saturating_mul(STAGGER_MINUTES);
    interval_to_cron(schedule.interval.as_deref().unwrap_or_default(), offset)
}

/// The SympoziumSchedule of the persona at `index`, if it has recurring work.
pub fn schedule(pack: &PersonaPack, persona: &PersonaSpec, index: usize) -> Option<SympoziumSchedule> {
    let s = persona.schedule.as_ref()?;
    let instance = instance_name(&pack.name_any(), &persona.name);
    let spec = SympoziumScheduleSpec {
        instance_ref: instance.clone(),
        schedule: cron(s, index),
        task: task(pack, &s.task),
        type_: s.type_,
        concurrency_policy: ConcurrencyPolicy::Forbid,
        include_memory: Some(true),
        ..Default::default()
    };
    let mut sched = SympoziumSchedule::new(&schedule_name(&instance), spec);
    sched.metadata.namespace = pack.namespace();
    sched.metadata.labels = Some(persona_labels(pack, &persona.name));
    sched.metadata.owner_references = Some(owner(pack));
    Some(sched)
}

/// The seeded memory document: a heading and one bullet per seed.
pub fn seed_content(seeds: &[String]) -> String {
    let mut out = String::from("# Memory\n\n");
    for seed in seeds.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        out.push_str("- ");
        out.push_str(&seed.replace('\n', " "));
        out.push('\n');
    }
    out
}

/// Hex SHA-256 of a memory document, recorded in [`SEED_HASH_ANNOTATION`].
pub fn content_hash(content: &str) -> String {
    hex::encode(Sha256::digest(content.as_bytes()))
}

/// The persona's seeded memory ConfigMap, if it has seeds. It carries no ownerReference
/// (memories outlive a disabled instance's garbage collection only through the finalizer's
/// explicit deletion) and the instance labels, so the instance controller treats it as its
/// memory ConfigMap.
pub fn seed_configmap(pack: &PersonaPack, persona: &PersonaSpec) -> Option<ConfigMap> {
    let seeds = &persona.memory.as_ref()?.seeds;
    if seeds.iter().all(|s| s.trim().is_empty()) {
        return None;
    }
    let instance = instance_name(&pack.name_any(), &persona.name);
    let content = seed_content(seeds);
    let mut labels = persona_labels(pack, &persona.name);
    labels.insert(MEMORY_LABEL.into(), "true".into());
    labels.insert(labels::INSTANCE.into(), instance.clone());
    labels.insert(labels::COMPONENT.into(), component::MEMORY.into());
    Some(ConfigMap {
        metadata: ObjectMeta {
            name: Some(memory_name(&instance)),
            namespace: pack.namespace(),
            labels: Some(labels),
            annotations: Some([(SEED_HASH_ANNOTATION.to_string(), content_hash(&content))].into()),
            ..Default::default()
        },
        data: Some([("MEMORY.md".to_string(), content)].into()),
        ..Default::default()
    })
}

/// What to do with an existing memory ConfigMap given the desired seeded one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedAction {
    /// It already holds the desired seeds.
    Keep,
    /// It holds only a placeholder or seeds the pack wrote earlier: write the new seeds.
    Replace,
    /// An agent has recorded memories in it: never overwrite them.
    Preserve,
}

/// Decides whether the pack may (re)write the seeds into an existing memory ConfigMap: only
/// when it holds the instance controller's placeholder, nothing, or seeds the pack itself
/// wrote and nobody changed since.
pub fn seed_action(existing: &ConfigMap, desired: &ConfigMap, placeholder: &str) -> SeedAction {
    let memory =
        |cm: &ConfigMap| cm.data.as_ref().and_then(|d| d.get("MEMORY.md")).cloned().unwrap_or_default();
    let (current, wanted) = (memory(existing), memory(desired));
    if current == wanted {
        return SeedAction::Keep;
    }
    let written_by_pack =
        existing.annotations().get(SEED_HASH_ANNOTATION).is_some_and(|h| *h == content_hash(&current));
    if current.trim().is_empty() || current == placeholder || written_by_pack {
        SeedAction::Replace
    } else {
        SeedAction::Preserve
    }
}

/// Whether the pack manages the credential Secret `secret` (and so deletes it when the pack
/// is disabled): it is labelled with the pack, or named `<pack>-credentials` or
/// `<pack>-<anything>-key`.
pub fn is_managed_secret(pack: &str, secret: &str, secret_labels: &BTreeMap<String, String>) -> bool {
    if secret_labels.get(labels::PERSONA_PACK).is_some_and(|p| p == pack) {
        return true;
    }
    if secret == format!("{pack}-credentials") {
        return true;
    }
    secret
        .strip_prefix(&format!("{pack}-"))
        .and_then(|rest| rest.strip_suffix("-key"))
        .is_some_and(|middle| !middle.is_empty())
}

#[cfg(test)]
#[path = "build_tests.rs"]
mod tests;
