//! Sub-types shared by several kinds. Field names and JSON casing are a compatibility
//! contract with the original Go API's manifests.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A reference to a Secret in the object's namespace, optionally naming the provider
/// whose credentials it holds (`openai`, `anthropic`, `azure-openai`, `ollama`, …).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Provider whose credentials the Secret holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Secret name. Required by the schema but may be empty (Go clients always send it).
    pub secret: String,
}

/// A plain `name=value` environment variable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Variable value.
    pub value: String,
}

/// One RBAC policy rule, granted to a run for its lifetime.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RbacRule {
    /// API groups (`""` is the core group).
    pub api_groups: Vec<String>,
    /// Resources, e.g. `pods` or `pods/log`.
    pub resources: Vec<String>,
    /// Verbs, e.g. `get`, `list`, `watch`.
    pub verbs: Vec<String>,
}

/// Compute resources as plain quantity strings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
pub struct ResourceSpec {
    /// Requested resources, e.g. `{cpu: 100m, memory: 128Mi}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<BTreeMap<String, String>>,
    /// Resource limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<BTreeMap<String, String>>,
}

/// A skill granted to an agent: a SkillPack (or a raw ConfigMap) plus parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkillRef {
    /// Name of a SkillPack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill_pack_ref: Option<String>,
    /// Name of a ConfigMap holding skill Markdown files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<String>,
    /// Parameters, exposed to the skill sidecar as `SKILL_<KEY>` environment variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<BTreeMap<String, String>>,
}

impl SkillRef {
    /// Whether this is the web-endpoint pack (either spelling), which makes the instance
    /// serve HTTP rather than giving its runs a skill.
    pub fn is_web_endpoint(&self) -> bool {
        matches!(
            self.skill_pack_ref.as_deref(),
            Some(crate::labels::skills::WEB_ENDPOINT | crate::labels::skills::WEB_ENDPOINT_LEGACY)
        )
    }
}

/// Allow/deny lists of tool names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
pub struct ToolPolicy {
    /// Tools the agent may use. Empty means no allow-list. Names are exact: built-in
    /// tools, or MCP tools `<toolsPrefix>_<tool>` / `<toolsPrefix>_*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 128)))]
    #[schemars(transform = crate::reserved::tool_list_rules)]
    pub allow: Vec<String>,
    /// Tools the agent must never use; deny wins over allow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 128)))]
    #[schemars(transform = crate::reserved::tool_list_rules)]
    pub deny: Vec<String>,
}

/// Hooks that run before (init containers) and after (a separate Job) an agent run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LifecycleHooks {
    /// Containers run as init containers before the agent starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = kube::core::Rule::new("self.all(a, self.exists_one(b, b.name == a.name))").message("preRun hook names must be unique"))]
    #[schemars(length(max = 20))]
    pub pre_run: Vec<LifecycleHookContainer>,
    /// Containers run in a follow-up Job after the agent finishes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = kube::core::Rule::new("self.all(a, self.exists_one(b, b.name == a.name))").message("postRun hook names must be unique"))]
    #[schemars(length(max = 20))]
    pub post_run: Vec<LifecycleHookContainer>,
    /// Extra RBAC the hooks need, bound for the run only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rbac: Vec<RbacRule>,
}

/// One lifecycle hook container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
pub struct LifecycleHookContainer {
    /// Container name (a DNS label).
    #[schemars(length(max = 63))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(self) <= 63").message("must be a DNS label: lowercase letters, digits and '-', at most 63 characters"))]
    pub name: String,
    /// Container image.
    #[schemars(length(min = 1))]
    pub image: String,
    /// Entrypoint override.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Hook timeout as a Go duration (e.g. `2m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = duration_rule())]
    pub timeout: Option<String>,
}

/// Who may talk to an agent through a channel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelAccessControl {
    /// Sender IDs allowed to talk to the agent; empty allows everyone not denied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_senders: Vec<String>,
    /// Sender IDs that are always refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denied_senders: Vec<String>,
    /// Chat IDs the agent answers in; empty allows every chat.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_chats: Vec<String>,
    /// Reply sent to refused senders; silence when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_message: Option<String>,
}

/// Kubernetes agent-sandbox settings of an instance (gVisor/Kata runtime, warm pool).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentSandboxInstanceSpec {
    /// Run agents as agent-sandbox `Sandbox` objects.
    pub enabled: bool,
    /// RuntimeClass for sandboxed pods, e.g. `gvisor` or `kata`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class: Option<String>,
    /// Pre-warmed sandboxes for instant starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_pool: Option<WarmPoolSpec>,
}

/// A pool of pre-started sandboxes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WarmPoolSpec {
    /// Number of sandboxes kept warm.
    #[serde(default = "default_warm_pool_size")]
    #[schemars(range(min = 0, max = 100))]
    pub size: i32,
    /// RuntimeClass of the pooled sandboxes (defaults to the instance's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class: Option<String>,
    /// Resources of each pooled sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceSpec>,
}

impl Default for WarmPoolSpec {
    fn default() -> Self {
        Self { size: default_warm_pool_size(), runtime_class: None, resources: None }
    }
}

fn default_warm_pool_size() -> i32 {
    2
}

/// Agent reasoning effort; mapped to each provider's reasoning control by the runner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Thinking {
    /// No extended reasoning.
    #[default]
    Off,
    /// Low reasoning effort.
    Low,
    /// Medium reasoning effort.
    Medium,
    /// High reasoning effort.
    High,
}

/// CEL rule for Go-style duration strings (`30m`, `1h30m`, `10m0s`).
pub(crate) fn duration_rule() -> kube::core::Rule {
    kube::core::Rule::new(r"self.matches('^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$')")
        .message("must be a duration such as 30s, 10m or 1h30m")
}

/// Serde default for booleans whose schema default is `true`.
pub(crate) fn default_true() -> bool {
    true
}

/// Serde default for `Option<bool>` fields whose schema default is `true`: kept optional
/// so an explicit `false` survives a round trip.
pub(crate) fn default_some_true() -> Option<bool> {
    Some(true)
}
