//! `MCPServer`: an MCP tool server, external (`url`) or deployed by Sympozium.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of an MCPServer.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "sympozium.ai",
    version = "v1alpha1",
    kind = "MCPServer",
    doc = "An MCP tool server agents can call, either external (url) or run by Sympozium as a Deployment and Service.",
    category = "sympozium",
    plural = "mcpservers",
    namespaced,
    status = "McpServerStatus",
    printcolumn = r#"{"name":"Transport","type":"string","jsonPath":".spec.transportType"}"#,
    printcolumn = r#"{"name":"Ready","type":"boolean","jsonPath":".status.ready"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.url"}"#,
    printcolumn = r#"{"name":"Tools","type":"integer","jsonPath":".status.toolCount"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("(has(self.url) && self.url != '') || has(self.deployment)").message("either url (an external server) or deployment must be set"))]
#[x_kube(validation = kube::core::Rule::new("self.transportType != 'stdio' || has(self.deployment)").message("transportType stdio needs a deployment to run the server in"))]
pub struct MCPServerSpec {
    /// How Sympozium talks to the server.
    pub transport_type: McpTransport,
    /// URL of an external server; no Deployment is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// How to run the server in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<McpDeployment>,
    /// Prefix of the tool names.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[A-Za-z][A-Za-z0-9_]*$')").message("must start with a letter and contain only letters, digits and '_'"))]
    pub tools_prefix: String,
    /// Per-call timeout in seconds.
    #[serde(default = "crate::instance::default_mcp_timeout")]
    #[schemars(range(min = 0))]
    pub timeout: i32,
    /// Replicas of the Deployment.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// Only these tools are exposed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools_allow: Vec<String>,
    /// These tools are never exposed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools_deny: Vec<String>,
    /// Secret (in this namespace) holding a token sent as `Authorization: Bearer <token>`
    /// to the server, by the controller's discovery and by runs in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret: Option<String>,
    /// Key in `authSecret` (default `token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_key: Option<String>,
    /// Extra HTTP headers sent to the server (not secret: use `authSecret` for credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
}

fn default_replicas() -> i32 {
    1
}

/// MCP transports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum McpTransport {
    /// A stdio server wrapped by the HTTP adapter.
    #[default]
    Stdio,
    /// A streamable-HTTP server.
    Http,
}

/// How to run an MCP server in the cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpDeployment {
    /// Server image.
    #[schemars(length(min = 1))]
    pub image: String,
    /// Command (stdio servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Port the server (or adapter) listens on.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// HTTP path of the MCP endpoint (default `/mcp`; the stdio adapter also answers on `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("self.startsWith('/')").message("must start with '/'"))]
    pub path: Option<String>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// Secrets exposed as environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_refs: Vec<McpSecretRef>,
    /// Container resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// ServiceAccount of the server pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

fn default_port() -> i32 {
    8080
}

/// A Secret whose keys become environment variables.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
pub struct McpSecretRef {
    /// Secret name.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// Observed state of an MCPServer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpServerStatus {
    /// The server answers.
    #[serde(default)]
    pub ready: bool,
    /// Where runs reach it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Number of tools it offers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_count: Option<i32>,
    /// Names of the tools it offers (after `toolsAllow`/`toolsDeny`; agents see them as
    /// `<toolsPrefix>_<name>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// Why the last discovery failed (cleared when it succeeds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,

    /// Standard conditions (`Deployed`, `Ready`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
