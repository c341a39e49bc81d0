#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use sympozium_api::skillpack::SkillSidecar;

use super::*;

fn run() -> AgentRun {
    let mut r: AgentRun = serde_json::from_value(json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
        "metadata": {"name": "agent-run-1", "namespace": "team", "uid": "u1",
                     "annotations": {"sympozium.ai/reply-channel": "telegram", "sympozium.ai/reply-chat-id": "42"}},
        "spec": {"instanceRef": "agent", "agentId": "primary", "sessionKey": "s1", "task": "list pods",
                 "systemPrompt": "be brief", "env": {"B": "2", "A": "1"},
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
    assert_eq!(pod.automount_service_account_token, Some(true), "the skill's RBAC needs a token");
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

    let volumes: Vec<_> = pod.volumes.unwrap().into_iter().map(|v| v.name).collect();
    assert_eq!(volumes, ["workspace", "ipc", "tmp", "skills", "memory", "skill-secret-k8s-ops"]);
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
