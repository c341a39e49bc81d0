//! `AgentRun`: one agent invocation, executed as an ephemeral pod (or a Deployment in
//! server mode).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::LocalObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{LifecycleHooks, ResourceSpec, SkillRef, Thinking, ToolPolicy, duration_rule};

/// Desired state of an AgentRun.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "sympozium.ai",
    version = "v1alpha1",
    kind = "AgentRun",
    doc = "One agent invocation. Runs as an ephemeral, locked-down pod (or a Deployment in server mode); the result and token usage land in status.",
    category = "sympozium",
    plural = "agentruns",
    namespaced,
    status = "AgentRunStatus",
    printcolumn = r#"{"name":"Instance","type":"string","jsonPath":".spec.instanceRef"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Pod","type":"string","jsonPath":".status.podName"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = kube::core::Rule::new("!(has(self.spec.sandbox) && self.spec.sandbox.enabled && has(self.spec.agentSandbox) && self.spec.agentSandbox.enabled)").message("spec.sandbox and spec.agentSandbox cannot both be enabled"),
    validation = kube::core::Rule::new("!(has(self.spec.agentSandbox) && self.spec.agentSandbox.enabled && has(self.spec.mode) && self.spec.mode == 'server')").message("spec.agentSandbox cannot be used with mode: server"),
)]
#[serde(rename_all = "camelCase")]
pub struct AgentRunSpec {
    /// The SympoziumInstance this run belongs to.
    #[schemars(length(min = 1))]
    pub instance_ref: String,
    /// Which agent runs: `primary`, `web-endpoint`, `schedule-<name>`, …
    pub agent_id: String,
    /// Conversation/session key; may be empty.
    pub session_key: String,
    /// Extra environment variables for the agent and hook containers. Variables Sympozium
    /// sets itself (model, keys, paths, bus and memory URLs, tool policy) are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 128))]
    #[schemars(transform = crate::reserved::env_rules)]
    pub env: Option<BTreeMap<String, String>>,
    /// Set on sub-agent runs: who spawned this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentRef>,
    /// The task for the agent.
    pub task: String,
    /// System prompt override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// Model and provider.
    pub model: ModelSpec,
    /// Sandbox container settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<AgentRunSandboxSpec>,
    /// Kubernetes agent-sandbox settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_sandbox: Option<AgentRunAgentSandboxSpec>,
    /// Skills granted to this run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<SkillRef>,
    /// Which tools the agent may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_policy: Option<ToolPolicy>,
    /// Run timeout as a duration, e.g. `10m0s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = duration_rule())]
    pub timeout: Option<String>,
    /// What happens to the pod after the run.
    #[serde(default)]
    pub cleanup: CleanupPolicy,
    /// `task` runs once; `server` keeps a Deployment serving requests.
    #[serde(default)]
    pub mode: RunMode,
    /// Pull secrets for the run's pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Pre/post-run hooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<LifecycleHooks>,
}

/// The run that spawned a sub-agent run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    /// Parent AgentRun name.
    pub run_name: String,
    /// Parent session key.
    pub session_key: String,
    /// Depth of this run in the spawn tree (children of a top-level run have depth 1).
    #[schemars(range(min = 0))]
    pub spawn_depth: i32,
}

/// Model selection for a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelSpec {
    /// Provider: `openai`, `anthropic`, `azure-openai`, `ollama`, `bedrock`, …
    pub provider: String,
    /// Model name.
    pub model: String,
    /// OpenAI-compatible base URL override.
    #[serde(rename = "baseURL", default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Reasoning effort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Thinking>,
    /// Secret holding the provider API key; may be empty (e.g. local models).
    pub auth_secret_ref: String,
    /// Node selector for the run's pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
}

/// Sandbox container settings of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentRunSandboxSpec {
    /// Run commands in a sandbox container.
    pub enabled: bool,
    /// Sandbox image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Security context of the sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SandboxSecurityContext>,
    /// Sandbox resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceSpec>,
}

/// The subset of a container security context a sandbox may set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxSecurityContext {
    /// Mount the root filesystem read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
    /// Refuse to run as root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    /// Capabilities to drop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// Seccomp profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<SeccompProfile>,
}

/// Linux capabilities to drop.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
pub struct Capabilities {
    /// Capabilities to drop, e.g. `ALL`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<String>,
}

/// A seccomp profile.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeccompProfile {
    /// Profile type.
    #[serde(rename = "type")]
    pub type_: SeccompProfileType,
}

/// Seccomp profile types.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SeccompProfileType {
    /// The container runtime's default profile.
    #[default]
    RuntimeDefault,
    /// No seccomp filtering.
    Unconfined,
    /// A profile file on the node.
    Localhost,
}

/// Kubernetes agent-sandbox settings of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentRunAgentSandboxSpec {
    /// Run as an agent-sandbox `Sandbox`.
    pub enabled: bool,
    /// RuntimeClass, e.g. `gvisor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class: Option<String>,
    /// Warm pool to claim a sandbox from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_pool_ref: Option<String>,
    /// Sandbox resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceSpec>,
}

/// What happens to a run's pod when it finishes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CleanupPolicy {
    /// Delete the pod once the result is recorded.
    #[default]
    Delete,
    /// Keep the pod for inspection.
    Keep,
}

/// Execution mode of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunMode {
    /// Run the task once in a Job.
    #[default]
    Task,
    /// Serve requests from a long-lived Deployment.
    Server,
}

/// Phases of an AgentRun.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum AgentRunPhase {
    /// Accepted, not started ("" is read as Pending).
    #[default]
    #[serde(alias = "")]
    Pending,
    /// The agent pod is running.
    Running,
    /// A server-mode run is serving.
    Serving,
    /// Post-run hooks are running.
    PostRunning,
    /// Finished successfully.
    Succeeded,
    /// Finished with an error.
    Failed,
}

impl AgentRunPhase {
    /// Whether the run has finished for good.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// Observed state of an AgentRun.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentRunStatus {
    /// Current phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<AgentRunPhase>,
    /// Agent pod name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    /// Job name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// Sandbox name (agent-sandbox mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_name: Option<String>,
    /// SandboxClaim name (warm pool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_claim_name: Option<String>,
    /// Deployment name (server mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_name: Option<String>,
    /// Service name (server mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Post-run Job name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_run_job_name: Option<String>,
    /// W3C trace ID of the run.
    #[serde(rename = "traceID", default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// When the agent started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
    /// The agent's final answer (truncated to keep the object small).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Why the run failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Exit code, set when post-run hooks ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Tokens and tool calls used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_usage: Option<TokenUsage>,
    /// What the run's tokens cost, by the price table of `SympoziumConfig` (absent for a
    /// model without a price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::pricing::RunCost>,
    /// Standard conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Token and tool usage of a run; every key is always present.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    /// Prompt tokens.
    #[serde(default)]
    pub input_tokens: i64,
    /// Completion tokens.
    #[serde(default)]
    pub output_tokens: i64,
    /// Sum of input and output tokens.
    #[serde(default)]
    pub total_tokens: i64,
    /// Number of tool calls.
    #[serde(default)]
    pub tool_calls: i64,
    /// Wall-clock duration in milliseconds.
    #[serde(default)]
    pub duration_ms: i64,
}
