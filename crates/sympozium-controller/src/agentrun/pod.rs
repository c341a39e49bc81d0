//! The pieces of a run's pod that several builders share (the Job, pre/post-run hooks,
//! host access, the sandbox, warm pods, the NetworkPolicy): a leaf module, so the
//! builders depend on it and never on each other.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapProjection, DownwardAPIProjection, DownwardAPIVolumeFile, KeyToPath,
    ObjectFieldSelector, ProjectedVolumeSource, SecurityContext, ServiceAccountTokenProjection, Volume,
    VolumeMount, VolumeProjection,
};
use kube::ResourceExt;
use sympozium_api::AgentRun;
use sympozium_api::common::SkillRef;
use sympozium_api::labels::{self, component, skills};
use sympozium_api::skillpack::SkillSidecar;

/// A skill sidecar the run gets: the pack's sidecar plus the SkillRef's parameters.
#[derive(Clone, Debug)]
pub struct ResolvedSidecar {
    /// SkillPack name.
    pub pack: String,
    /// The pack's sidecar.
    pub sidecar: SkillSidecar,
    /// Parameters from the SkillRef (become `SKILL_<KEY>`).
    pub params: BTreeMap<String, String>,
}

/// Labels every object of a run carries.
pub fn run_labels(run: &AgentRun) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::AGENT_RUN.to_string(), run.name_any()),
        (labels::INSTANCE.to_string(), run.spec.instance_ref.clone()),
        (labels::COMPONENT.to_string(), component::AGENT_RUN.to_string()),
        (labels::PART_OF.to_string(), "sympozium".to_string()),
        (labels::MANAGED_BY.to_string(), "sympozium-controller".to_string()),
    ])
}

/// Hardened container security context: non-root, read-only root, no capabilities.
pub fn hardened() -> SecurityContext {
    SecurityContext {
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
        ..Default::default()
    }
}

/// A volume mount (`read_only` only when set, as the API server writes it).
pub fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

/// Whether the run uses the memory server (exact `memory` SkillPack).
pub fn uses_memory_server(skills: &[SkillRef]) -> bool {
    skills.iter().any(|s| s.skill_pack_ref.as_deref() == Some(skills::MEMORY))
}

/// Name of the per-run ServiceAccount.
pub fn service_account_name(run: &AgentRun) -> String {
    format!("sympozium-run-{}", run.name_any())
}

/// Whether any grant needs the pod to hold a Kubernetes API token.
pub fn needs_api_token(run: &AgentRun, sidecars: &[ResolvedSidecar]) -> bool {
    sidecars.iter().any(sidecar_needs_api) || run.spec.lifecycle.as_ref().is_some_and(|l| !l.rbac.is_empty())
}

/// Whether this skill's sidecar talks to the Kubernetes API (its pack grants it something).
pub fn sidecar_needs_api(s: &ResolvedSidecar) -> bool {
    !s.sidecar.rbac.is_empty() || !s.sidecar.cluster_rbac.is_empty()
}

/// Name of the pod volume holding the run account's token.
pub const API_TOKEN_VOLUME: &str = "kube-api-access";
/// Where a container that needs the API finds its token (the in-cluster default).
pub const API_TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The token volume, mounted only into the containers that need the API: the pod itself
/// never automounts, so the agent container (which holds the model's key and runs the
/// model's tool calls) holds no Kubernetes credential.
pub fn api_token_volume() -> Volume {
    let token = VolumeProjection {
        service_account_token: Some(ServiceAccountTokenProjection {
            path: "token".into(),
            expiration_seconds: Some(3607),
            audience: None,
        }),
        ..Default::default()
    };
    let ca = VolumeProjection {
        config_map: Some(ConfigMapProjection {
            name: "kube-root-ca.crt".into(),
            items: Some(vec![KeyToPath { key: "ca.crt".into(), path: "ca.crt".into(), mode: None }]),
            optional: None,
        }),
        ..Default::default()
    };
    let namespace = VolumeProjection {
        downward_api: Some(DownwardAPIProjection {
            items: Some(vec![DownwardAPIVolumeFile {
                path: "namespace".into(),
                field_ref: Some(ObjectFieldSelector {
                    api_version: Some("v1".into()),
                    field_path: "metadata.namespace".into(),
                }),
                ..Default::default()
            }]),
        }),
        ..Default::default()
    };
    Volume {
        name: API_TOKEN_VOLUME.into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(vec![token, ca, namespace]),
            default_mode: Some(0o444),
        }),
        ..Default::default()
    }
}

/// The token mount for a container that needs the API.
pub fn api_token_mount() -> VolumeMount {
    mount(API_TOKEN_VOLUME, API_TOKEN_PATH, true)
}
