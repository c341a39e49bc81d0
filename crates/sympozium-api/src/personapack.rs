//! `PersonaPack`: a whole agent team in one resource. While disabled it is a catalog entry;
//! once enabled the controller stamps out one instance, schedule and memory per persona.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    AgentSandboxInstanceSpec, ChannelAccessControl, LifecycleHooks, SecretRef, ToolPolicy, default_true,
};
use crate::instance::SandboxSpec;
use crate::schedule::ScheduleType;

/// Desired state of a PersonaPack.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "sympozium.ai",
    version = "v1alpha1",
    kind = "PersonaPack",
    doc = "A team of AI agents in one resource. While disabled it is a catalog entry; once enabled the controller creates one SympoziumInstance, schedule and seeded memory per persona.",
    category = "sympozium",
    plural = "personapacks",
    namespaced,
    status = "PersonaPackStatus",
    printcolumn = r#"{"name":"Enabled","type":"boolean","jsonPath":".spec.enabled"}"#,
    printcolumn = r#"{"name":"Personas","type":"integer","jsonPath":".status.personaCount"}"#,
    printcolumn = r#"{"name":"Installed","type":"integer","jsonPath":".status.installedCount"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = kube::core::Rule::new("self.spec.personas.all(p, size(self.metadata.name) + size(p.name) <= 53)").message("metadata.name plus a persona name is too long: the generated instance <pack>-<persona> must leave room for its -schedule suffix within 63 characters"),
)]
#[serde(rename_all = "camelCase")]
pub struct PersonaPackSpec {
    /// Stamp out the team. Unset or false keeps the pack a catalog entry.
    // The schema default makes the API server store `false`, so `kubectl get` shows
    // `ENABLED false` for a catalog entry instead of a blank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = false))]
    pub enabled: Option<bool>,
    /// What the team does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Catalog category, e.g. `platform`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Pack version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The team members.
    #[schemars(length(max = 50))]
    #[x_kube(validation = kube::core::Rule::new("self.all(a, self.exists_one(b, b.name == a.name))").message("persona names must be unique"))]
    pub personas: Vec<PersonaSpec>,
    /// Provider credentials copied to every generated instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auth_refs: Vec<SecretRef>,
    /// Personas not to stamp out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_personas: Vec<String>,
    /// Channel type → Secret with its credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_configs: Option<BTreeMap<String, String>>,
    /// SympoziumPolicy for every generated instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_ref: Option<String>,
    /// OpenAI-compatible base URL for every generated instance.
    #[serde(rename = "baseURL", default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// SkillPack name → parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill_params: Option<BTreeMap<String, BTreeMap<String, String>>>,
    /// Team objective wrapped around every persona's task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_override: Option<String>,
    /// Channel type → access control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_access_control: Option<BTreeMap<String, ChannelAccessControl>>,
    /// Agent-sandbox settings for every generated instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_sandbox: Option<AgentSandboxInstanceSpec>,
    /// Sandbox container settings for every generated instance
    /// (`spec.agents.default.sandbox`): `execute_command` then runs in each run's hardened
    /// `sandbox` container, which a policy with `sandboxPolicy.required` demands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxSpec>,
}

/// One team member.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonaSpec {
    /// Name; the generated instance is `<pack>-<name>`.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("must be lowercase letters, digits and '-', starting and ending with a letter or digit"))]
    pub name: String,
    /// Human-friendly name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The persona's system prompt.
    pub system_prompt: String,
    /// Model (defaults to the pack activation's choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// SkillPack names (`mcp-bridge` is a marker and is skipped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<String>,
    /// Tools this persona may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_policy: Option<ToolPolicy>,
    /// Recurring work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<PersonaSchedule>,
    /// Seeded memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<PersonaMemory>,
    /// Channel types this persona listens on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// Web endpoint for this persona.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_endpoint: Option<PersonaWebEndpoint>,
    /// Pre/post-run hooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<LifecycleHooks>,
}

/// A persona's recurring task.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("(has(self.interval) && self.interval != '') || (has(self.cron) && self.cron != '')").message("a persona schedule needs an interval (e.g. 30m) or a cron expression"))]
pub struct PersonaSchedule {
    /// Kind of schedule.
    #[serde(rename = "type", default = "default_persona_schedule_type")]
    pub type_: ScheduleType,
    /// Interval such as `5m`, `30m`, `1h`, `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub interval: Option<String>,
    /// 5-field cron expression; wins over `interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub cron: Option<String>,
    /// The task run on every tick.
    pub task: String,
}

fn default_persona_schedule_type() -> ScheduleType {
    ScheduleType::Heartbeat
}

/// A persona's seeded memory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
pub struct PersonaMemory {
    /// Memory on (always on for personas).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Initial memories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<String>,
}

impl Default for PersonaMemory {
    fn default() -> Self {
        Self { enabled: true, seeds: Vec::new() }
    }
}

/// A persona's web endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
pub struct PersonaWebEndpoint {
    /// Expose the persona over HTTP.
    pub enabled: bool,
    /// Public hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// Observed state of a PersonaPack.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonaPackStatus {
    /// `Ready`, `Error` or `Inactive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Personas in the pack.
    #[serde(default)]
    pub persona_count: i32,
    /// Personas stamped out.
    #[serde(default)]
    pub installed_count: i32,
    /// What was stamped out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub installed_personas: Vec<InstalledPersona>,
    /// Standard conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One stamped-out persona.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstalledPersona {
    /// Persona name.
    pub name: String,
    /// Generated SympoziumInstance.
    pub instance_name: String,
    /// Generated SympoziumSchedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_name: Option<String>,
}
