//! The `sandbox` container (`spec.sandbox.enabled` on the run, or on its instance's
//! `agents.default.sandbox`): the place `execute_command` runs when the model names no skill
//! sidecar. It runs the tool executor serving `/ipc/tools/sandbox/` (the agent routes there;
//! see the runner's `execute_command`), shares `/workspace` and `/tmp` with the agent, and
//! holds nothing else: no provider key, no bus credentials, no Kubernetes token, no Secret.
//! Its security context is always the hardened one with the runtime's default seccomp
//! profile, whatever the run's pod-level settings ask (a run cannot loosen it), and its
//! resources are always bounded.

use std::collections::BTreeMap;
use sympozium_protocol::env as vars;
use sympozium_protocol::ipc;

use k8s_openapi::api::core::v1::{Container, EnvVar, ResourceRequirements, SeccompProfile, SecurityContext};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use sympozium_api::{AgentRun, SympoziumInstance};

use super::pod::hardened;
use crate::settings::Settings;

/// Container name, and the name `execute_command` routes by (`<ipc>/tools/sandbox/`).
pub const NAME: &str = "sandbox";
/// Image name (under the configured registry and tag) when the spec names none.
pub const IMAGE: &str = "sandbox";
/// Requests and limits when the spec sets none (a limit the spec omits is filled in too).
const DEFAULT_REQUESTS: (&str, &str) = ("100m", "128Mi");
const DEFAULT_LIMITS: (&str, &str) = ("1", "512Mi");

/// The sandbox a run gets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Effective {
    /// Image override.
    pub image: Option<String>,
    /// Resources from the spec (filled with defaults).
    pub resources: ResourceRequirements,
}

fn quantities(m: Option<&BTreeMap<String, String>>) -> BTreeMap<String, Quantity> {
    m.map(|m| m.iter().map(|(k, v)| (k.clone(), Quantity(v.clone()))).collect()).unwrap_or_default()
}

fn bounded(mut r: ResourceRequirements) -> ResourceRequirements {
    for (field, (cpu, memory)) in [(&mut r.requests, DEFAULT_REQUESTS), (&mut r.limits, DEFAULT_LIMITS)] {
        let map = field.get_or_insert_with(BTreeMap::new);
        map.entry("cpu".into()).or_insert_with(|| Quantity(cpu.into()));
        map.entry("memory".into()).or_insert_with(|| Quantity(memory.into()));
    }
    r
}

/// The run's sandbox: its own `spec.sandbox` when enabled, else its instance's — unless the
/// run chose agent-sandbox mode for itself (the webhook refuses both on one run).
pub fn effective(run: &AgentRun, instance: Option<&SympoziumInstance>) -> Option<Effective> {
    if let Some(own) = run.spec.sandbox.as_ref().filter(|s| s.enabled) {
        let resources = own
            .resources
            .as_ref()
            .map(|r| ResourceRequirements {
                requests: Some(quantities(r.requests.as_ref())),
                limits: Some(quantities(r.limits.as_ref())),
                ..Default::default()
            })
            .unwrap_or_default();
        return Some(Effective {
            image: own.image.clone().filter(|i| !i.trim().is_empty()),
            resources: bounded(resources),
        });
    }
    if run.spec.agent_sandbox.as_ref().is_some_and(|s| s.enabled) {
        return None;
    }
    let inst = instance?.spec.agents.default.sandbox.as_ref().filter(|s| s.enabled)?;
    Some(Effective {
        image: inst.image.clone().filter(|i| !i.trim().is_empty()),
        resources: bounded(inst.resources.clone().unwrap_or_default()),
    })
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() }
}

/// The container.
pub fn container(s: &Effective, settings: &Settings) -> Container {
    // Set on the container so a pod-level `Unconfined` (the run's own choice for its
    // agent) never reaches the place where arbitrary commands run.
    let security = SecurityContext {
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }),
        ..hardened()
    };
    let mount = |name: &str, path: &str| k8s_openapi::api::core::v1::VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..Default::default()
    };
    Container {
        name: NAME.into(),
        image: Some(s.image.clone().unwrap_or_else(|| settings.image(IMAGE))),
        image_pull_policy: Some("IfNotPresent".into()),
        env: Some(vec![
            env(vars::SYMPOZIUM_SKILL, NAME),
            env(vars::IPC_DIR, ipc::DEFAULT_ROOT),
            env("HOME", "/tmp"),
        ]),
        volume_mounts: Some(vec![
            mount("ipc", ipc::DEFAULT_ROOT),
            mount("workspace", "/workspace"),
            mount("tmp", "/tmp"),
        ]),
        resources: Some(s.resources.clone()),
        security_context: Some(security),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn run(extra: serde_json::Value) -> AgentRun {
        let mut spec = json!({"instanceRef": "agent", "agentId": "a", "sessionKey": "", "task": "t",
            "model": {"provider": "openai", "model": "m", "authSecretRef": ""}});
        spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
            "metadata": {"name": "r1", "namespace": "team"}, "spec": spec}))
        .unwrap()
    }

    #[test]
    fn the_run_or_its_instance_enables_it_and_it_is_always_bounded_and_hardened() {
        assert!(effective(&run(json!({})), None).is_none());
        assert!(effective(&run(json!({"sandbox": {"enabled": false}})), None).is_none());
        let own = effective(
            &run(json!({"sandbox": {"enabled": true, "resources": {"limits": {"memory": "256Mi"}},
                "securityContext": {"readOnlyRootFilesystem": false, "runAsNonRoot": false,
                                    "seccompProfile": {"type": "Unconfined"}}}})),
            None,
        )
        .unwrap();
        let limits = own.resources.limits.clone().unwrap();
        assert_eq!((limits["memory"].0.as_str(), limits["cpu"].0.as_str()), ("256Mi", "1"));
        let c = container(&own, &Settings::default());
        assert_eq!(c.name, "sandbox");
        assert!(c.image.unwrap().ends_with("/sandbox:latest"));
        let sc = c.security_context.unwrap();
        // Asking to loosen changes nothing.
        assert_eq!((sc.read_only_root_filesystem, sc.run_as_non_root), (Some(true), Some(true)));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.capabilities.unwrap().drop.unwrap(), ["ALL"]);
        assert_eq!(sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        assert!(c.env_from.is_none());
        let mounts: Vec<_> = c.volume_mounts.unwrap().into_iter().map(|m| m.mount_path).collect();
        assert_eq!(mounts, ["/ipc", "/workspace", "/tmp"]);

        let inst: SympoziumInstance = serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1",
            "kind": "SympoziumInstance", "metadata": {"name": "agent"},
            "spec": {"agents": {"default": {"model": "m", "sandbox": {"enabled": true, "image": "my/sandbox:1"}}}}}))
        .unwrap();
        let inherited = effective(&run(json!({})), Some(&inst)).unwrap();
        assert_eq!(container(&inherited, &Settings::default()).image.as_deref(), Some("my/sandbox:1"));
    }
}
