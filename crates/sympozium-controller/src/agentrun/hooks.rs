//! Lifecycle hooks: pre-run init containers in the agent pod, and the post-run Job that
//! runs after the agent with its exit code and answer, on the same workspace volume.

use std::collections::BTreeMap;
use sympozium_protocol::env as vars;
use sympozium_protocol::ipc;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements,
    SeccompProfile, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use sympozium_api::AgentRun;
use sympozium_api::common::LifecycleHookContainer;
use sympozium_api::labels;

use super::pod::{hardened, run_labels, service_account_name};

/// Bytes of the agent's answer handed to post-run hooks.
pub const MAX_HOOK_RESULT: usize = 32 * 1024;

/// Whether the run has post-run hooks (and so a persistent workspace).
pub fn has_post_run(run: &AgentRun) -> bool {
    run.spec.lifecycle.as_ref().is_some_and(|l| !l.post_run.is_empty())
}

/// Name of the workspace PVC shared by the agent and the post-run hooks.
pub fn workspace_pvc_name(run: &AgentRun) -> String {
    format!("{}-workspace", run.name_any())
}

/// Name of the post-run Job (at most 63 characters).
pub fn post_run_job_name(run: &AgentRun) -> String {
    let mut name = format!("{}-postrun", run.name_any());
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() }
}

fn quantity_map(cpu: &str, memory: &str) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), Quantity(cpu.into())),
        ("memory".to_string(), Quantity(memory.into())),
    ])
}

fn hook_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(quantity_map("100m", "128Mi")),
        limits: Some(quantity_map("500m", "512Mi")),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount { name: name.into(), mount_path: path.into(), ..Default::default() }
}

fn hook_container(
    prefix: &str,
    hook: &LifecycleHookContainer,
    base_env: Vec<EnvVar>,
    run: &AgentRun,
    mounts: Vec<VolumeMount>,
) -> Container {
    let mut vars = base_env;
    let run_env = run
        .spec
        .env
        .iter()
        .flatten()
        .filter(|(k, _)| !sympozium_api::reserved::is_reserved_env(k))
        .map(|(k, v)| env(k, v.clone()));
    let hook_env = hook.env.iter().map(|e| env(&e.name, e.value.clone()));
    // Pre-run hooks see the hook's own settings first, post-run hooks last (as the original).
    if prefix == "pre" {
        vars.extend(hook_env);
        vars.extend(run_env);
    } else {
        vars.extend(run_env);
        vars.extend(hook_env);
    }
    Container {
        name: format!("{prefix}-{}", hook.name),
        image: Some(hook.image.clone()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: (!hook.command.is_empty()).then(|| hook.command.clone()),
        args: (!hook.args.is_empty()).then(|| hook.args.clone()),
        env: Some(vars),
        volume_mounts: Some(mounts),
        resources: Some(hook_resources()),
        security_context: Some(hardened()),
        ..Default::default()
    }
}

fn identity_env(run: &AgentRun) -> Vec<EnvVar> {
    vec![
        env(vars::AGENT_RUN_ID, run.name_any()),
        env(vars::INSTANCE_NAME, run.spec.instance_ref.clone()),
        env(vars::AGENT_NAMESPACE, run.namespace().unwrap_or_default()),
    ]
}

/// Init containers `pre-<hook>` that run before the agent, on its workspace and /ipc.
pub fn pre_run_containers(run: &AgentRun) -> Vec<Container> {
    let Some(hooks) = &run.spec.lifecycle else { return Vec::new() };
    hooks
        .pre_run
        .iter()
        .map(|h| {
            let mut mounts =
                vec![mount("workspace", "/workspace"), mount("ipc", ipc::DEFAULT_ROOT), mount("tmp", "/tmp")];
            // lifecycle.rbac is granted for the hooks: they, not the agent, get the token.
            if !hooks.rbac.is_empty() {
                mounts.push(super::pod::api_token_mount());
            }
            hook_container("pre", h, identity_env(run), run, mounts)
        })
        .collect()
}

/// The workspace volume: a PVC when post-run hooks need the agent's files, else scratch.
pub fn workspace_volume(run: &AgentRun) -> Volume {
    if has_post_run(run) {
        return Volume {
            name: "workspace".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: workspace_pvc_name(run),
                read_only: None,
            }),
            ..Default::default()
        };
    }
    Volume {
        name: "workspace".into(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(Quantity("1Gi".into())),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The workspace PVC `<run>-workspace` (1Gi, owned by the run).
pub fn workspace_pvc(run: &AgentRun) -> PersistentVolumeClaim {
    let mut labels = BTreeMap::from([(labels::AGENT_RUN.to_string(), run.name_any())]);
    labels.insert(labels::COMPONENT.to_string(), "workspace".into());
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(workspace_pvc_name(run)),
            namespace: run.namespace(),
            labels: Some(labels),
            owner_references: Some(run.controller_owner_ref(&()).into_iter().collect()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity("1Gi".into()))])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The post-run Job: one init container `post-<hook>` per hook (in order), with the agent's
/// exit code and answer, then a no-op main container.
pub fn post_run_job(run: &AgentRun, exit_code: i32, result: &str, busybox: &str) -> Job {
    let mut labels = run_labels(run);
    labels.insert(labels::COMPONENT.to_string(), "post-run".into());
    let mut answer = result.to_string();
    if answer.len() > MAX_HOOK_RESULT {
        let mut end = MAX_HOOK_RESULT;
        while !answer.is_char_boundary(end) {
            end -= 1;
        }
        answer.truncate(end);
    }
    let hooks: Vec<_> = run.spec.lifecycle.iter().flat_map(|l| l.post_run.iter()).collect();
    let init: Vec<_> = hooks
        .iter()
        .map(|h| {
            let mut base = identity_env(run);
            base.push(env(vars::AGENT_EXIT_CODE, exit_code.to_string()));
            base.push(env(vars::AGENT_RESULT, answer.clone()));
            hook_container("post", h, base, run, vec![mount("workspace", "/workspace"), mount("tmp", "/tmp")])
        })
        .collect();
    let done = Container {
        name: "done".into(),
        image: Some(busybox.into()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(vec!["true".into()]),
        resources: Some(ResourceRequirements {
            requests: Some(quantity_map("10m", "8Mi")),
            limits: Some(quantity_map("50m", "16Mi")),
            ..Default::default()
        }),
        security_context: Some(hardened()),
        ..Default::default()
    };
    Job {
        metadata: ObjectMeta {
            name: Some(post_run_job_name(run)),
            namespace: run.namespace(),
            labels: Some(labels.clone()),
            owner_references: Some(run.controller_owner_ref(&()).into_iter().collect()),
            ..Default::default()
        },
        spec: Some(JobSpec {
            ttl_seconds_after_finished: Some(300),
            active_deadline_seconds: Some(600),
            backoff_limit: Some(0),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    service_account_name: Some(service_account_name(run)),
                    // The run's grants last until it is terminal: postRun hooks that asked for
                    // `lifecycle.rbac` get the run account's token to use them.
                    automount_service_account_token: Some(
                        run.spec.lifecycle.as_ref().is_some_and(|l| !l.rbac.is_empty()),
                    ),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(1000),
                        fs_group: Some(1000),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    init_containers: Some(init),
                    containers: vec![done],
                    volumes: Some(vec![
                        workspace_volume(run),
                        Volume {
                            name: "tmp".into(),
                            empty_dir: Some(EmptyDirVolumeSource {
                                size_limit: Some(Quantity("256Mi".into())),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn run() -> AgentRun {
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
            "metadata": {"name": "r1", "namespace": "team", "uid": "u"},
            "spec": {"instanceRef": "agent", "agentId": "a", "sessionKey": "", "task": "t", "env": {"Z": "1"},
                     "model": {"provider": "openai", "model": "m", "authSecretRef": ""},
                     "lifecycle": {
                        "preRun": [{"name": "fetch", "image": "busybox:1.36", "command": ["sh", "-c"], "args": ["echo"],
                                    "env": [{"name": "STAGE", "value": "pre"}]}],
                        "postRun": [{"name": "upload", "image": "busybox:1.36", "env": [{"name": "DEST", "value": "s3"}]}]}}}))
        .unwrap()
    }

    #[test]
    fn pre_run_hooks_share_the_workspace_and_ipc() {
        let c = &pre_run_containers(&run())[0];
        assert_eq!(c.name, "pre-fetch");
        let env: Vec<_> = c.env.iter().flatten().map(|e| e.name.as_str()).collect();
        assert_eq!(env, ["AGENT_RUN_ID", "INSTANCE_NAME", "AGENT_NAMESPACE", "STAGE", "Z"]);
        let mounts: Vec<_> = c.volume_mounts.iter().flatten().map(|m| m.mount_path.as_str()).collect();
        assert_eq!(mounts, ["/workspace", "/ipc", "/tmp"]);
        assert_eq!(c.security_context.as_ref().unwrap().read_only_root_filesystem, Some(true));
    }

    #[test]
    fn post_run_hooks_get_a_token_only_when_lifecycle_rbac_grants_something() {
        let pod =
            |r: &AgentRun| post_run_job(r, 0, "ok", "busybox:1.36").spec.unwrap().template.spec.unwrap();
        assert_eq!(pod(&run()).automount_service_account_token, Some(false));
        let mut r = run();
        r.spec.lifecycle.as_mut().unwrap().rbac = serde_json::from_value(
            json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}]),
        )
        .unwrap();
        let granted = pod(&r);
        assert_eq!(granted.automount_service_account_token, Some(true));
        assert_eq!(granted.service_account_name.as_deref(), Some("sympozium-run-r1"));
    }

    #[test]
    fn post_run_job_gets_the_outcome_on_the_workspace_claim() {
        let r = run();
        assert!(has_post_run(&r));
        assert_eq!(workspace_volume(&r).persistent_volume_claim.unwrap().claim_name, "r1-workspace");
        let job = post_run_job(&r, 0, &"é".repeat(20_000), "busybox:1.36");
        assert_eq!(job.metadata.name.as_deref(), Some("r1-postrun"));
        assert_eq!(job.metadata.labels.as_ref().unwrap()["sympozium.ai/component"], "post-run");
        let pod = job.spec.unwrap().template.spec.unwrap();
        let hook = &pod.init_containers.as_ref().unwrap()[0];
        assert_eq!(hook.name, "post-upload");
        let env: Vec<_> =
            hook.env.iter().flatten().map(|e| (e.name.clone(), e.value.clone().unwrap())).collect();
        let names: Vec<_> = env.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "AGENT_RUN_ID",
                "INSTANCE_NAME",
                "AGENT_NAMESPACE",
                "AGENT_EXIT_CODE",
                "AGENT_RESULT",
                "Z",
                "DEST"
            ]
        );
        assert_eq!(env[3].1, "0");
        assert!(env[4].1.len() <= MAX_HOOK_RESULT);
        assert!(
            !hook.volume_mounts.iter().flatten().any(|m| m.mount_path == "/ipc"),
            "no /ipc after the run"
        );
        assert_eq!(pod.containers[0].name, "done");
        let long =
            AgentRun { metadata: ObjectMeta { name: Some("x".repeat(60)), ..Default::default() }, ..r };
        assert!(post_run_job_name(&long).len() <= 63);
    }
}
