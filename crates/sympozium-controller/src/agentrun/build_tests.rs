#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use sympozium_api::skillpack::SkillSidecar;

use super::*;
use crate::agentrun::pod::API_TOKEN_VOLUME;

fn run() -> AgentRun {
    let mut r: AgentRun = serde_json::from_value(json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
        "metadata": {"name": "agent-run-1", "namespace": "team", "uid": "u1",
                     "annotations": {"sympozium.ai/reply-channel": "telegram", "sympozium.ai/reply-chat-id": "42"}},
        "spec": {"instanceRef": "agent", "agentId": "primary", "sessionKey": "s1", "task": "list pods",
                 "systemPrompt": "be brief", "env": {"B": "2", "A": "1", "MODEL_BASE_URL": "https://evil.example", "TOOL_POLICY": "{}"},
                 "model": {"provider": "anthropic", "model": "claude", "thinking": "high", "authSecretRef": "anthropic-key",
                           "nodeSelector": {"gpu": "a100"}},
                 "skills": [{"skillPackRef": "k8s-ops", "params": {"cluster": "prod"}}, {"skillPackRef": "memory"}]}
    }))
    .unwrap();
    r.metadata.uid = Some("u1".into());
    r
}

fn instance() -> SympoziumInstance {
    serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
        "metadata": {"name": "agent", "namespace": "team"},
        "spec": {"agents": {"default": {"model": "claude"}}, "memory": {"enabled": true}}}))
    .unwrap()
}

fn sidecar() -> ResolvedSidecar {
    ResolvedSidecar {
        pack: "k8s-ops".into(),
        sidecar: SkillSidecar {
            image: "ghcr.io/x/skill-k8s-ops:1".into(),
            rbac: vec![RbacRule {
                api_groups: vec!["".into()],
                resources: vec!["pods".into()],
                verbs: vec!["get".into()],
            }],
            secret_ref: Some("kube-extra".into()),
            ..Default::default()
        },
        params: [("cluster".to_string(), "prod".to_string())].into(),
    }
}

#[test]
fn job_has_the_locked_down_agent_pod() {
    let (r, inst) = (run(), instance());
    let settings = Settings { image_tag: "t1".into(), ..Default::default() };
    let inputs = RunInputs {
        run: &r,
        instance: Some(&inst),
        settings: &settings,
        skills: r.spec.skills.clone(),
        sidecars: vec![sidecar()],
        timeout: Duration::from_secs(900),
        tool_policy: Some(r#"{"deny":["write_file"]}"#.into()),
        traceparent: Some("00-abc-def-01".into()),
    };
    let job = job(&inputs);
    assert_eq!(job.metadata.name.as_deref(), Some("agent-run-1"));
    let labels = job.metadata.labels.clone().unwrap();
    assert_eq!(labels["sympozium.ai/agent-run"], "agent-run-1");
    assert_eq!(labels["sympozium.ai/component"], "agent-run");
    assert_eq!(labels["app.kubernetes.io/part-of"], "sympozium");
    let spec = job.spec.unwrap();
    assert_eq!((spec.backoff_limit, spec.ttl_seconds_after_finished), (Some(0), Some(300)));
    assert_eq!(spec.active_deadline_seconds, Some(960));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.service_account_name.as_deref(), Some("sympozium-run-agent-run-1"));
    assert_eq!(pod.automount_service_account_token, Some(false), "never for the whole pod");
    assert_eq!(pod.node_selector.unwrap()["gpu"], "a100");
    let psc = pod.security_context.unwrap();
    assert_eq!((psc.run_as_non_root, psc.run_as_user), (Some(true), Some(1000)));
    assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");

    let names: Vec<_> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["agent", "ipc-bridge", "skill-k8s-ops"]);
    let wait = &pod.init_containers.as_ref().unwrap()[0];
    assert_eq!(wait.name, "wait-for-memory");
    assert!(
        wait.command.as_ref().unwrap()[2]
            .contains("wget -q --spider http://agent-memory.team.svc:8080/health")
    );
    assert_eq!(wait.security_context.as_ref().unwrap().read_only_root_filesystem, Some(true));
    for c in &pod.containers {
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
        assert_eq!(sc.capabilities.as_ref().unwrap().drop.as_ref().unwrap(), &["ALL"], "{}", c.name);
    }
    let agent = &pod.containers[0];
    assert_eq!(agent.image.as_deref(), Some("ghcr.io/sympozium-ai/sympozium/agent-runner:t1"));
    let env: Vec<(String, String)> =
        agent.env.iter().flatten().map(|e| (e.name.clone(), e.value.clone().unwrap_or_default())).collect();
    let names: Vec<_> = env.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        &names[..11],
        [
            "AGENT_RUN_ID",
            "AGENT_ID",
            "SESSION_KEY",
            "INSTANCE_NAME",
            "AGENT_NAMESPACE",
            "TASK",
            "SYSTEM_PROMPT",
            "MODEL_PROVIDER",
            "MODEL_NAME",
            "MODEL_BASE_URL",
            "THINKING_MODE"
        ]
    );
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("THINKING_MODE").as_deref(), Some("high"));
    assert_eq!(get("SYSTEM_PROMPT").as_deref(), Some("be brief"));
    assert_eq!(get("MEMORY_SERVER_URL").as_deref(), Some("http://agent-memory.team.svc:8080"));
    let token = agent.env.iter().flatten().find(|e| e.name == "MEMORY_AUTH_TOKEN").unwrap();
    assert!(token.value.is_none(), "the memory token reaches the pod only by reference");
    let by_ref = token.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
    assert_eq!((by_ref.name.as_str(), by_ref.key.as_str()), ("agent-memory-token", "token"));
    assert_eq!(get("MEMORY_ENABLED").as_deref(), Some("true"));
    assert_eq!(get("SOURCE_CHAT_ID").as_deref(), Some("42"));
    assert_eq!(get("RUN_TIMEOUT").as_deref(), Some("900s"));
    assert_eq!(get("TRACEPARENT").as_deref(), Some("00-abc-def-01"));
    assert_eq!(get("TOOL_POLICY").as_deref(), Some(r#"{"deny":["write_file"]}"#));
    assert_eq!(get("SKILL_SIDECARS").as_deref(), Some("k8s-ops"));
    // The runner's prompt describes exactly what the skill's Role grants.
    let rbac: serde_json::Value = serde_json::from_str(&get("SKILL_RBAC").unwrap()).unwrap();
    assert_eq!(rbac["k8s-ops"]["namespace"][0]["resources"], json!(["pods"]));
    assert_eq!(rbac["k8s-ops"]["namespace"][0]["apiGroups"], json!([""]));
    assert_eq!(rbac["k8s-ops"]["cluster"], json!([]));
    let a = names.iter().position(|n| *n == "A").unwrap();
    assert_eq!(names[a + 1], "B", "spec.env sorted by key");
    assert_eq!(agent.env_from.as_ref().unwrap()[0].secret_ref.as_ref().unwrap().name, "anthropic-key");

    let skill = &pod.containers[2];
    let skill_env: Vec<_> = skill.env.iter().flatten().map(|e| e.name.as_str()).collect();
    assert_eq!(skill_env, ["SKILL_CLUSTER", "SYMPOZIUM_SKILL"]);
    let res = skill.resources.as_ref().unwrap();
    assert_eq!(res.requests, res.limits, "sidecar requests equal limits");
    assert!(skill.volume_mounts.iter().flatten().any(|m| m.mount_path == "/secrets/kube-extra"));
    // Only the skill that was granted RBAC holds the run account's token.
    let token_holders: Vec<_> = pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
        .filter(|c| c.volume_mounts.iter().flatten().any(|m| m.name == API_TOKEN_VOLUME))
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(token_holders, ["skill-k8s-ops"]);
    // spec.env cannot replace what the controller sets.
    assert_eq!(env.iter().filter(|(n, _)| n == "MODEL_BASE_URL").count(), 1);
    assert_eq!(get("MODEL_BASE_URL").as_deref(), Some(""));
    assert_eq!(env.iter().filter(|(n, _)| n == "TOOL_POLICY").count(), 1);

    let volumes: Vec<_> = pod.volumes.unwrap().into_iter().map(|v| v.name).collect();
    assert_eq!(
        volumes,
        ["workspace", "ipc", "tmp", "skills", "memory", "skill-secret-k8s-ops", "kube-api-access"]
    );
}

#[test]
fn no_token_without_rbac_and_rbac_objects_bind_the_run_account() {
    let r = run();
    assert!(!needs_api_token(&r, &[]));
    let (role, binding) = role(&r, "sympozium-skill-k8s-ops-agent-run-1", "k8s-ops", &sidecar().sidecar.rbac);
    assert_eq!(role.rules.unwrap()[0].verbs, ["get"]);
    assert_eq!(role.metadata.owner_references.unwrap()[0].name, "agent-run-1");
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(
        (subject.name.as_str(), subject.namespace.as_deref()),
        ("sympozium-run-agent-run-1", Some("team"))
    );
    let (cr, _) = cluster_role(&r, "c", "k8s-ops", &sidecar().sidecar.rbac);
    assert!(cr.metadata.owner_references.is_none(), "cluster objects are removed by label");
    assert_eq!(cr.metadata.labels.unwrap()["sympozium.ai/agent-run"], "agent-run-1");
}

#[test]
fn a_run_without_a_prompt_gets_the_persona_prompt() {
    let mut r = run();
    r.spec.system_prompt = None;
    let mut inst = instance();
    inst.spec.memory.as_mut().unwrap().system_prompt = Some("You are the SRE watchdog.".into());
    let settings = Settings::default();
    let inputs = RunInputs {
        run: &r,
        instance: Some(&inst),
        settings: &settings,
        skills: vec![],
        sidecars: vec![],
        timeout: Duration::from_secs(60),
        tool_policy: None,
        traceparent: None,
    };
    let job = job(&inputs);
    let agent = &job.spec.unwrap().template.spec.unwrap().containers[0];
    let prompt = agent.env.iter().flatten().find(|e| e.name == "SYSTEM_PROMPT").unwrap();
    assert_eq!(prompt.value.as_deref(), Some("You are the SRE watchdog."));
}

#[test]
fn auto_store_follows_the_instance() {
    let r = run();
    let mut inst = instance();
    inst.spec.memory.as_mut().unwrap().auto_store = Some(false);
    let settings = Settings {
        memory_url_template: "http://127.0.0.1:9/{namespace}/{instance}".into(),
        ..Default::default()
    };
    let inputs = RunInputs {
        run: &r,
        instance: Some(&inst),
        settings: &settings,
        skills: r.spec.skills.clone(),
        sidecars: vec![],
        timeout: Duration::from_secs(60),
        tool_policy: None,
        traceparent: None,
    };
    let job = job(&inputs);
    let env: Vec<_> = job.spec.unwrap().template.spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect();
    assert!(env.contains(&("MEMORY_AUTO_STORE".into(), "false".into())));
    assert!(env.contains(&("MEMORY_SERVER_URL".into(), "http://127.0.0.1:9/team/agent".into())), "{env:?}");
}

/// The seed instance of the project (deploy/samples), its k8s-ops skill as built in, and a
/// task run of it: the Job and pod, field by field against the shape the original's pods have.
#[test]
fn the_seed_instances_task_run_has_the_spec_pod_shape() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let inst: SympoziumInstance = serde_yaml::from_str(
        &std::fs::read_to_string(root.join("deploy/samples/sympoziuminstance-my-agent.yaml")).unwrap(),
    )
    .unwrap();
    let mut inst = inst;
    inst.metadata.namespace = Some("team".into());
    let packs = std::fs::read_to_string(root.join("deploy/builtin/skillpack-k8s-ops.yaml")).unwrap();
    let k8s_ops: sympozium_api::SkillPack = serde_yaml::from_str(&packs).unwrap();
    let run: AgentRun = serde_json::from_value(json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
        "metadata": {"name": "my-agent-run", "namespace": "team", "uid": "u9"},
        "spec": {"instanceRef": "my-agent", "agentId": "primary", "sessionKey": "s", "task": "Check the cluster",
                 "model": {"provider": "openai", "model": "gpt-4.1", "thinking": "medium", "authSecretRef": "openai-key",
                           "nodeSelector": {"gpu-type": "a100"}},
                 "skills": [{"skillPackRef": "k8s-ops", "params": {"CLUSTER": "production"}}, {"skillPackRef": "memory"}]}
    }))
    .unwrap();
    let settings = Settings::default();
    let sidecar = ResolvedSidecar {
        pack: "k8s-ops".into(),
        sidecar: k8s_ops.spec.sidecar.clone().unwrap(),
        params: [("CLUSTER".to_string(), "production".to_string())].into(),
    };
    let job = job(&RunInputs {
        run: &run,
        instance: Some(&inst),
        settings: &settings,
        skills: run.spec.skills.clone(),
        sidecars: vec![sidecar],
        timeout: Duration::from_secs(600),
        tool_policy: None,
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
    });

    // Job: name, labels L, owner, TTL, deadline (timeout + 60), no retries.
    let labels = json!({"sympozium.ai/agent-run": "my-agent-run", "sympozium.ai/instance": "my-agent",
        "sympozium.ai/component": "agent-run", "app.kubernetes.io/part-of": "sympozium",
        "app.kubernetes.io/managed-by": "sympozium-controller"});
    assert_eq!(json!(job.metadata.labels), labels);
    let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("AgentRun", "my-agent-run", Some(true))
    );
    let spec = job.spec.unwrap();
    assert_eq!(
        (spec.ttl_seconds_after_finished, spec.active_deadline_seconds, spec.backoff_limit),
        (Some(300), Some(660), Some(0))
    );
    let template_labels = json!(spec.template.metadata.unwrap().labels.unwrap());
    for (k, v) in labels.as_object().unwrap() {
        assert_eq!(&template_labels[k], v, "pod label {k}");
    }

    // Pod: never restarted, its own account (our deliberate change from a shared one),
    // the instance's node selector, non-root with fsGroup and RuntimeDefault seccomp.
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.service_account_name.as_deref(), Some("sympozium-run-my-agent-run"));
    assert_eq!(json!(pod.node_selector), json!({"gpu-type": "a100"}));
    assert_eq!(pod.host_network, None);
    assert_eq!(pod.dns_policy, None);
    let psc = pod.security_context.unwrap();
    assert_eq!(
        (psc.run_as_non_root, psc.run_as_user, psc.fs_group, psc.seccomp_profile.unwrap().type_.as_str()),
        (Some(true), Some(1000), Some(1000), "RuntimeDefault")
    );

    // Init: wait-for-memory (the memory skill), busybox, its resources.
    let init = pod.init_containers.unwrap();
    assert_eq!(init.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["wait-for-memory"]);
    let res = json!(init[0].resources);
    assert_eq!(
        res,
        json!({"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}})
    );

    // Containers in order, each with the hardened security context.
    let names: Vec<_> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["agent", "ipc-bridge", "skill-k8s-ops"]);
    for c in pod.containers.iter().chain(&init) {
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(
            (sc.read_only_root_filesystem, sc.allow_privilege_escalation),
            (Some(true), Some(false)),
            "{}",
            c.name
        );
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_string()][..]),
            "{}",
            c.name
        );
    }
    let env_of = |c: &Container| -> Vec<(String, String)> {
        c.env.iter().flatten().map(|e| (e.name.clone(), e.value.clone().unwrap_or_default())).collect()
    };
    let agent = &pod.containers[0];
    assert_eq!(agent.image.as_deref(), Some("ghcr.io/sympozium-ai/sympozium/agent-runner:latest"));
    assert_eq!(agent.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(
        json!(agent.resources),
        json!({"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
    );
    let env = env_of(agent);
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("MODEL_PROVIDER"), Some("openai"));
    assert_eq!(get("THINKING_MODE"), Some("medium"));
    assert_eq!(get("MEMORY_SERVER_URL"), Some("http://my-agent-memory.team.svc:8080"));
    assert_eq!(get("MEMORY_ENABLED"), Some("true"));
    assert_eq!(get("TOOLS_ENABLED"), Some("true"));
    assert_eq!(get("RUN_TIMEOUT"), Some("600s"));
    assert_eq!(get("OTEL_EXPORTER_OTLP_ENDPOINT"), Some("otel-collector.observability.svc:4317"));
    assert_eq!(agent.env_from.as_ref().unwrap()[0].secret_ref.as_ref().unwrap().name, "openai-key");
    let mounts: Vec<_> = agent
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.name.as_str(), m.mount_path.as_str(), m.read_only.unwrap_or(false)))
        .collect();
    assert_eq!(
        mounts,
        [
            ("workspace", "/workspace", false),
            ("skills", "/skills", true),
            ("ipc", "/ipc", false),
            ("tmp", "/tmp", false),
            ("memory", "/memory", true)
        ]
    );

    let bridge = &pod.containers[1];
    let bridge_env: Vec<_> = env_of(bridge).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        &bridge_env[..6],
        ["AGENT_RUN_ID", "INSTANCE_NAME", "AGENT_NAMESPACE", "EVENT_BUS_URL", "RUN_TIMEOUT", "TRACEPARENT"]
    );
    assert!(
        bridge_env.contains(&"OTEL_EXPORTER_OTLP_ENDPOINT".to_string()),
        "observability on the bridge too"
    );
    assert_eq!(
        json!(bridge.resources),
        json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "100m", "memory": "128Mi"}})
    );

    let skill = &pod.containers[2];
    assert!(env_of(skill).contains(&("SKILL_CLUSTER".to_string(), "production".to_string())));

    // Volumes: sizes and sources as the original's pods have them.
    let volumes = pod.volumes.unwrap();
    let volume = |n: &str| json!(volumes.iter().find(|v| v.name == n).unwrap());
    assert_eq!(volume("workspace")["emptyDir"], json!({"sizeLimit": "1Gi"}));
    assert_eq!(volume("ipc")["emptyDir"], json!({"medium": "Memory", "sizeLimit": "64Mi"}));
    assert_eq!(volume("tmp")["emptyDir"], json!({"sizeLimit": "256Mi"}));
    assert_eq!(
        volume("skills")["projected"]["sources"],
        json!([{"configMap": {"name": "k8s-ops", "optional": true}}, {"configMap": {"name": "memory", "optional": true}}])
    );
    assert_eq!(volume("memory")["configMap"], json!({"name": "my-agent-memory", "optional": true}));
}
