//! `SympoziumInstance`: one tenant/agent — its channels, model, skills, policy, memory,
//! observability and MCP servers.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LocalObjectReference, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    AgentSandboxInstanceSpec, ChannelAccessControl, LifecycleHooks, SecretRef, SkillRef, Thinking,
    ToolPolicy, duration_rule,
};

/// Desired state of a SympoziumInstance.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "sympozium.ai",
    version = "v1alpha1",
    kind = "SympoziumInstance",
    doc = "An AI agent tenant: its chat channels, model, skills, policy, memory and MCP servers. The controller keeps its channel Deployments, memory and web endpoint converged to this spec.",
    category = "sympozium",
    plural = "sympoziuminstances",
    namespaced,
    status = "SympoziumInstanceStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Active Agents","type":"integer","jsonPath":".status.activeAgentPods"}"#,
    printcolumn = r#"{"name":"Total Runs","type":"integer","jsonPath":".status.totalAgentRuns"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = kube::core::Rule::new("!has(self.spec.channels) || self.spec.channels.all(c, size(self.metadata.name) + size(c.type) <= 54)").message("metadata.name is too long: the channel Deployment name <name>-channel-<type> must fit in 63 characters"),
)]
#[serde(rename_all = "camelCase")]
pub struct SympoziumInstanceSpec {
    /// Chat channels this agent is reachable on; one Deployment per channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    #[x_kube(validation = kube::core::Rule::new("self.all(a, self.exists_one(b, b.type == a.type))").message("each channel type may appear only once"))]
    pub channels: Vec<ChannelSpec>,
    /// Agent configuration.
    pub agents: AgentsSpec,
    /// Skills granted to every run of this instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<SkillRef>,
    /// Name of a SympoziumPolicy in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_ref: Option<String>,
    /// Provider credentials (`{provider, secret}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auth_refs: Vec<SecretRef>,
    /// Persistent memory settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemorySpec>,
    /// OpenTelemetry settings for this instance's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observability: Option<ObservabilitySpec>,
    /// MCP tool servers available to runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new("self.all(a, self.exists_one(b, b.toolsPrefix == a.toolsPrefix))").message("toolsPrefix must be unique across mcpServers"))]
    #[x_kube(validation = kube::core::Rule::new("self.all(a, self.exists_one(b, b.name == a.name))").message("mcpServers names must be unique"))]
    pub mcp_servers: Vec<McpServerRef>,
    /// Deprecated: use the `web-endpoint` skill instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_endpoint: Option<WebEndpointSpec>,
    /// Pull secrets for every pod created for this instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
}

/// A chat channel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelSpec {
    /// Channel type.
    #[serde(rename = "type")]
    pub type_: ChannelType,
    /// Secret with the channel credentials; may be empty for whatsapp (QR pairing).
    #[serde(default)]
    pub config_ref: SecretRef,
    /// Who may talk to the agent through this channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_control: Option<ChannelAccessControl>,
}

/// Supported chat platforms.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ChannelType {
    /// Telegram Bot API.
    #[default]
    Telegram,
    /// Slack (Socket Mode).
    Slack,
    /// Discord (Gateway).
    Discord,
    /// WhatsApp.
    Whatsapp,
}

impl ChannelType {
    /// The lowercase name used in object names, labels and subjects.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Telegram => "telegram",
            Self::Slack => "slack",
            Self::Discord => "discord",
            Self::Whatsapp => "whatsapp",
        }
    }
}

impl std::fmt::Display for ChannelType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Agent configurations of an instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
pub struct AgentsSpec {
    /// The configuration every run uses unless it overrides it.
    pub default: AgentConfig,
}

/// How an agent runs: model, sandboxing, sub-agent limits, placement.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentConfig {
    /// Model name, e.g. `gpt-4.1` or `claude-sonnet-4-20250514`.
    pub model: String,
    /// OpenAI-compatible base URL override.
    #[serde(rename = "baseURL", default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Reasoning effort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Thinking>,
    /// Sandbox container settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxSpec>,
    /// Kubernetes agent-sandbox settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_sandbox: Option<AgentSandboxInstanceSpec>,
    /// Limits on sub-agents spawned by runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subagents: Option<SubagentsSpec>,
    /// Whole-run timeout as a Go duration, e.g. `30m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = duration_rule())]
    pub run_timeout: Option<String>,
    /// Node selector for agent pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Pre/post-run hooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<LifecycleHooks>,
    /// Which tools this agent's runs may use (a persona's tool policy). Additive to the
    /// original API; runs without their own tool policy inherit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_policy: Option<ToolPolicy>,
    /// Models tried in order when the run's own model fails (after its retries). Additive to
    /// the original API; the controller passes them to every run of the instance as
    /// `MODEL_FALLBACKS`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub model_fallbacks: Vec<ModelFallback>,
}

/// One fallback model of an instance.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelFallback {
    /// Provider: `openai`, `anthropic`, `azure-openai`, `ollama`, `bedrock`, …
    #[schemars(length(min = 1, max = 63))]
    pub provider: String,
    /// Model name.
    #[schemars(length(min = 1, max = 253))]
    pub model: String,
    /// OpenAI-compatible base URL override.
    #[serde(rename = "baseURL", default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Secret (in the run's namespace) holding this model's API key; unset for keyless models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub auth_secret_ref: Option<String>,
    /// Key of that Secret holding the API key; default `<PROVIDER>_API_KEY` (e.g.
    /// `ANTHROPIC_API_KEY`, `AZURE_OPENAI_API_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub auth_secret_key: Option<String>,
}

impl ModelFallback {
    /// The Secret key the API key is read from.
    pub fn secret_key(&self) -> String {
        match self.auth_secret_key.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
            Some(k) => k.to_string(),
            None => sympozium_protocol::provider::fallback_secret_key(&self.provider),
        }
    }
}

/// Sandbox container settings of an instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
pub struct SandboxSpec {
    /// Run commands in a sandbox container.
    pub enabled: bool,
    /// Sandbox image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Sandbox container resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// Sub-agent limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubagentsSpec {
    /// Maximum spawn depth.
    #[serde(default = "default_max_depth")]
    #[schemars(range(min = 0))]
    pub max_depth: i32,
    /// Maximum sub-agents running at once.
    #[serde(default = "default_max_concurrent")]
    #[schemars(range(min = 0))]
    pub max_concurrent: i32,
    /// Maximum children one agent may spawn.
    #[serde(default = "default_max_children")]
    #[schemars(range(min = 0))]
    pub max_children_per_agent: i32,
}

impl Default for SubagentsSpec {
    fn default() -> Self {
        Self {
            max_depth: default_max_depth(),
            max_concurrent: default_max_concurrent(),
            max_children_per_agent: default_max_children(),
        }
    }
}

fn default_max_depth() -> i32 {
    2
}
fn default_max_concurrent() -> i32 {
    5
}
fn default_max_children() -> i32 {
    3
}

/// Persistent memory of an instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemorySpec {
    /// Give the agent persistent memory.
    #[serde(default = "crate::common::default_true")]
    pub enabled: bool,
    /// Advisory size budget of the memory, in KiB.
    #[serde(rename = "maxSizeKB", default = "default_max_size_kb")]
    #[schemars(range(min = 0))]
    pub max_size_kb: i32,
    /// System prompt of the agent (persona prompt for pack-generated instances).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// Store a summary of every successful run in the memory server (default true).
    /// Additive to the original API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_store: Option<bool>,
    /// Most memories the memory server keeps; a store beyond it is refused with a message
    /// (0 or unset: no limit). Additive to the original API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_entries: Option<i64>,
    /// Most bytes of memory content the server keeps in total; a store beyond it is refused
    /// (unset: the server's default, 256 MiB). Additive to the original API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_total_bytes: Option<i64>,
    /// Largest single memory, in bytes (unset: the server's default, 64 KiB). Additive to
    /// the original API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_entry_bytes: Option<i64>,
}

impl Default for MemorySpec {
    fn default() -> Self {
        Self {
            enabled: true,
            max_size_kb: default_max_size_kb(),
            system_prompt: None,
            auto_store: None,
            max_entries: None,
            max_total_bytes: None,
            max_entry_bytes: None,
        }
    }
}

fn default_max_size_kb() -> i32 {
    256
}

/// OpenTelemetry export settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservabilitySpec {
    /// Export traces and metrics.
    #[serde(default)]
    pub enabled: bool,
    /// OTLP collector endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// OTLP protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_protocol: Option<OtlpProtocol>,
    /// Service name override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Extra OTLP headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// Secret whose keys become OTLP headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_secret_ref: Option<String>,
    /// Trace sampling ratio between "0.0" and "1.0".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^(0(\\\\.[0-9]+)?|1(\\\\.0+)?)$')").message("must be a number between 0.0 and 1.0, e.g. \"0.25\""))]
    pub sampling_ratio: Option<String>,
    /// Extra OpenTelemetry resource attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_attributes: Option<BTreeMap<String, String>>,
}

/// OTLP transport protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OtlpProtocol {
    /// OTLP over gRPC.
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP over HTTP with protobuf bodies.
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

/// An MCP server used by this instance: an inline URL or a reference to an MCPServer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpServerRef {
    /// Server name (an MCPServer in the namespace when `url` is unset).
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Server URL; when unset the MCPServer named `name` supplies it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Prefix of the tool names, e.g. `gh` gives `gh_create_issue`.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[A-Za-z][A-Za-z0-9_]*$')").message("must start with a letter and contain only letters, digits and '_'"))]
    pub tools_prefix: String,
    /// Per-call timeout in seconds.
    #[serde(default = "default_mcp_timeout")]
    #[schemars(range(min = 0))]
    pub timeout: i32,
    /// Secret holding the bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret: Option<String>,
    /// Key in `authSecret` (default `token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_key: Option<String>,
    /// Extra HTTP headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
    /// Only these tools are exposed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools_allow: Vec<String>,
    /// These tools are never exposed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools_deny: Vec<String>,
}

pub(crate) fn default_mcp_timeout() -> i32 {
    30
}

/// Deprecated web endpoint settings (use the `web-endpoint` skill).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebEndpointSpec {
    /// Expose the agent over HTTP.
    #[serde(default)]
    pub enabled: bool,
    /// Public hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Secret holding the API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<String>,
    /// Request rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
}

/// Token-bucket rate limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSpec {
    /// Sustained requests per minute.
    #[serde(default = "default_rpm")]
    #[schemars(range(min = 1))]
    pub requests_per_minute: i32,
    /// Burst size.
    #[serde(default = "default_burst")]
    #[schemars(range(min = 1))]
    pub burst_size: i32,
}

impl Default for RateLimitSpec {
    fn default() -> Self {
        Self { requests_per_minute: default_rpm(), burst_size: default_burst() }
    }
}

fn default_rpm() -> i32 {
    60
}
fn default_burst() -> i32 {
    10
}

/// Observed state of a SympoziumInstance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SympoziumInstanceStatus {
    /// `Running`, `Serving` or `Error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Per-channel health.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<ChannelStatus>,
    /// AgentRuns of this instance in phase Running or Serving.
    #[serde(default)]
    pub active_agent_pods: i32,
    /// AgentRuns ever created for this instance.
    #[serde(default)]
    pub total_agent_runs: i64,
    /// What the instance's priced runs cost so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::pricing::InstanceCost>,
    /// Standard conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Web endpoint state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_endpoint: Option<WebEndpointStatus>,
}

/// Health of one channel.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelStatus {
    /// Channel type.
    #[serde(rename = "type")]
    pub type_: String,
    /// `Connected`, `Disconnected`, `Pending` or `Error`.
    pub status: String,
    /// When the channel last reported its health.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_health_check: Option<Time>,
    /// Detail, e.g. the error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// State of the instance's web endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebEndpointStatus {
    /// Endpoint status.
    pub status: String,
    /// Public URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Secret holding the generated API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_name: Option<String>,
}
