//! `SkillPack`: Markdown skills mounted into agent pods, optionally with a sidecar that
//! executes commands and the RBAC it needs for the run.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{EnvVar, RbacRule};

/// Desired state of a SkillPack.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[kube(
    group = "sympozium.ai",
    version = "v1alpha1",
    kind = "SkillPack",
    doc = "Skills for agents: Markdown instructions mounted into agent pods, optionally with a sidecar that executes commands and the RBAC it needs for each run.",
    category = "sympozium",
    plural = "skillpacks",
    namespaced,
    status = "SkillPackStatus",
    printcolumn = r#"{"name":"Skills","type":"integer","jsonPath":".status.skillCount"}"#,
    printcolumn = r#"{"name":"ConfigMap","type":"string","jsonPath":".status.configMapName"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = kube::core::Rule::new("!has(self.spec.sidecar) || size(self.metadata.name) <= 57").message("metadata.name is too long: the sidecar container skill-<name> must fit in 63 characters"),
)]
#[serde(rename_all = "camelCase")]
pub struct SkillPackSpec {
    /// The skills; each becomes `<name>.md` in the pack's ConfigMap.
    #[x_kube(validation = kube::core::Rule::new("self.all(a, self.exists_one(b, b.name == a.name))").message("skill names must be unique"))]
    #[schemars(length(max = 100))]
    pub skills: Vec<Skill>,
    /// Catalog category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Where the pack came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Pack version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Informational runtime needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_requirements: Option<RuntimeRequirements>,
    /// Sidecar that executes commands for the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sidecar: Option<SkillSidecar>,
}

/// One skill: instructions in Markdown.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
pub struct Skill {
    /// Skill name; the file is `<name>.md`.
    #[schemars(length(min = 1, max = 250))]
    #[x_kube(validation = kube::core::Rule::new("self.matches('^[A-Za-z0-9]([-_.A-Za-z0-9]*[A-Za-z0-9])?$') && size(self) <= 250").message("must be a valid ConfigMap key: letters, digits, '-', '_' and '.'"))]
    pub name: String,
    /// One-line description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What the skill needs (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires: Option<SkillRequirements>,
    /// Markdown instructions.
    pub content: String,
}

/// Binaries and tools a skill relies on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
pub struct SkillRequirements {
    /// Binaries on the sidecar's PATH.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bins: Vec<String>,
    /// Agent tools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
}

/// Informational runtime requirements.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeRequirements {
    /// Suggested image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Needs a sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<bool>,
    /// Minimum memory, e.g. `256Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_memory: Option<String>,
    /// Minimum CPU, e.g. `100m`.
    #[serde(rename = "minCPU", default, skip_serializing_if = "Option::is_none")]
    pub min_cpu: Option<String>,
}

/// The sidecar container a skill brings into agent pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkillSidecar {
    /// Sidecar image.
    #[schemars(length(min = 1))]
    pub image: String,
    /// Entrypoint; the image's CMD runs when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Mount the shared `/workspace` (default true).
    #[serde(default = "crate::common::default_some_true", skip_serializing_if = "Option::is_none")]
    pub mount_workspace: Option<bool>,
    /// CPU and memory, used as both request and limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<SidecarResources>,
    /// Namespaced RBAC granted for the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rbac: Vec<RbacRule>,
    /// Cluster-wide RBAC granted for the run.
    #[serde(rename = "clusterRBAC", default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_rbac: Vec<RbacRule>,
    /// Secret mounted read-only into the sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<String>,
    /// Where the secret is mounted (default `/secrets/<secretRef>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_mount_path: Option<String>,
    /// Host access (only honoured when the policy allows host mounts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_access: Option<HostAccess>,
    /// Run the sidecar as a long-lived Deployment (serving).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_server: Option<bool>,
    /// Ports the sidecar listens on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<SidecarPort>,
}

/// Sidecar CPU and memory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
pub struct SidecarResources {
    /// CPU, e.g. `100m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory, e.g. `128Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// Host access for a sidecar.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostAccess {
    /// Turn host access on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Use the host network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_network: Option<bool>,
    /// Use the host PID namespace.
    #[serde(rename = "hostPID", default, skip_serializing_if = "Option::is_none")]
    pub host_pid: Option<bool>,
    /// Run privileged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// Run as root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_root: Option<bool>,
    /// Host paths mounted into the sidecar.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub mounts: Vec<HostMount>,
}

/// A host path mount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostMount {
    /// Path on the node.
    #[schemars(length(max = 4096))]
    #[x_kube(validation = kube::core::Rule::new("self.startsWith('/')").message("must be an absolute path"))]
    pub host_path: String,
    /// Path in the container.
    #[schemars(length(max = 4096))]
    #[x_kube(validation = kube::core::Rule::new("self.startsWith('/')").message("must be an absolute path"))]
    pub mount_path: String,
    /// Mount read-only (default true).
    #[serde(default = "crate::common::default_true")]
    pub read_only: bool,
}

/// A sidecar port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarPort {
    /// Port name.
    pub name: String,
    /// Port number.
    #[schemars(range(min = 1, max = 65535))]
    pub container_port: i32,
    /// `TCP` (default), `UDP` or `SCTP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// Observed state of a SkillPack.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkillPackStatus {
    /// `Ready` once the ConfigMap exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The ConfigMap holding the skills (same name as the pack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_name: Option<String>,
    /// Number of skills.
    #[serde(default)]
    pub skill_count: i32,
    /// Standard conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
