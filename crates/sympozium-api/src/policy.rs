//! `SympoziumPolicy`: guard rails a platform team sets per tenant — sandboxing, sub-agent
//! limits, tool gating, feature gates and network isolation.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::agentrun::SeccompProfile;

/// Desired state of a SympoziumPolicy.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "sympozium.ai",
    version = "v1alpha1",
    kind = "SympoziumPolicy",
    doc = "Guard rails for the instances that reference it: sandboxing, sub-agent limits, tool gating, feature gates and network isolation.",
    category = "sympozium",
    plural = "sympoziumpolicies",
    namespaced,
    status = "SympoziumPolicyStatus",
    printcolumn = r#"{"name":"Bound","type":"integer","jsonPath":".status.boundInstances"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SympoziumPolicySpec {
    /// Sandboxing requirements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_policy: Option<SandboxPolicy>,
    /// Sub-agent limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subagent_policy: Option<SubagentPolicy>,
    /// Which tools agents may call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_gating: Option<ToolGating>,
    /// Feature switches: `code-execution`, `sub-agents`, `browser-automation`, `file-access`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_gates: Option<BTreeMap<String, bool>>,
    /// Network isolation of agent pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySpec>,
}

/// Sandboxing requirements.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SandboxPolicy {
    /// Every run must enable `spec.sandbox`.
    pub required: bool,
    /// Sandbox image used when a run names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_image: Option<String>,
    /// CPU ceiling, e.g. `2`.
    #[serde(rename = "maxCPU", default, skip_serializing_if = "Option::is_none")]
    pub max_cpu: Option<String>,
    /// Memory ceiling, e.g. `4Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory: Option<String>,
    /// Allow skill sidecars to mount host paths.
    #[serde(default)]
    pub allow_host_mounts: bool,
    /// Seccomp profile for agent pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<SeccompProfile>,
    /// Kubernetes agent-sandbox requirements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_sandbox_policy: Option<AgentSandboxPolicy>,
}

/// Agent-sandbox requirements.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentSandboxPolicy {
    /// Every run must enable `spec.agentSandbox`.
    pub required: bool,
    /// RuntimeClass used when a run names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_runtime_class: Option<String>,
    /// RuntimeClasses runs may use; empty allows any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_runtime_classes: Vec<String>,
}

/// Sub-agent limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubagentPolicy {
    /// Maximum spawn depth.
    #[serde(default = "default_policy_max_depth")]
    #[schemars(range(min = 0))]
    pub max_depth: i32,
    /// Maximum runs of an instance running at once.
    #[serde(default = "default_policy_max_concurrent")]
    #[schemars(range(min = 0))]
    pub max_concurrent: i32,
}

impl Default for SubagentPolicy {
    fn default() -> Self {
        Self { max_depth: default_policy_max_depth(), max_concurrent: default_policy_max_concurrent() }
    }
}

fn default_policy_max_depth() -> i32 {
    3
}
fn default_policy_max_concurrent() -> i32 {
    5
}

/// Tool gating: a default action plus per-tool rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolGating {
    /// Action for tools no rule names.
    #[serde(default)]
    pub default_action: ToolAction,
    /// Per-tool actions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200))]
    #[x_kube(validation = kube::core::Rule::new("self.all(a, self.exists_one(b, b.tool == a.tool))").message("each tool may have only one rule"))]
    pub rules: Vec<ToolRule>,
}

/// One tool rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
pub struct ToolRule {
    /// Tool name, exact: a built-in tool, or an MCP tool `<toolsPrefix>_<tool>` /
    /// `<toolsPrefix>_*`.
    #[schemars(length(min = 1, max = 128))]
    #[x_kube(validation = crate::reserved::tool_name_rule())]
    pub tool: String,
    /// What happens when the agent calls it.
    pub action: ToolAction,
}

/// Tool gating actions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ToolAction {
    /// The call proceeds.
    #[default]
    Allow,
    /// The call is refused.
    Deny,
    /// The call waits for a human's approval.
    Ask,
}

/// Network isolation of agent pods.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Deny all egress not allowed below.
    #[serde(default = "crate::common::default_true")]
    pub deny_all: bool,
    /// Allow DNS.
    #[serde(rename = "allowDNS", default = "crate::common::default_true")]
    pub allow_dns: bool,
    /// Allow the NATS event bus.
    #[serde(default = "crate::common::default_true")]
    pub allow_event_bus: bool,
    /// Extra allowed destinations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_egress: Vec<EgressRule>,
}

impl Default for NetworkPolicySpec {
    fn default() -> Self {
        Self { deny_all: true, allow_dns: true, allow_event_bus: true, allowed_egress: Vec::new() }
    }
}

/// An allowed egress destination.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
pub struct EgressRule {
    /// Host name, IP or CIDR.
    #[schemars(length(min = 1))]
    pub host: String,
    /// Port; any port when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// Observed state of a SympoziumPolicy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SympoziumPolicyStatus {
    /// Instances that reference this policy.
    #[serde(default)]
    pub bound_instances: i32,
    /// Standard conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
