#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;

use super::*;

fn pack(spec: serde_json::Value) -> PersonaPack {
    let mut p: PersonaPack = serde_json::from_value(json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "PersonaPack",
        "metadata": {"name": "platform-team", "namespace": "team"},
        "spec": spec,
    }))
    .unwrap();
    p.metadata.uid = Some("pack-uid".into());
    p
}

fn seed_pack() -> PersonaPack {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/samples/personapack-platform-team.yaml"),
    )
    .unwrap();
    let mut doc: serde_json::Value = serde_yaml::from_str(&text).unwrap();
    doc["metadata"]["namespace"] = json!("team");
    doc["metadata"]["uid"] = json!("pack-uid");
    serde_json::from_value(doc).unwrap()
}

#[test]
fn seed_instance_carries_every_pack_derived_field() {
    let p = seed_pack();
    let persona = &p.spec.personas[0];
    let inst = instance(&p, persona, &Settings::default()).unwrap();
    assert_eq!(inst.metadata.name.as_deref(), Some("platform-team-security-guardian"));
    assert_eq!(inst.metadata.namespace.as_deref(), Some("team"));
    let labels = inst.metadata.labels.clone().unwrap();
    assert_eq!(labels["sympozium.ai/persona-pack"], "platform-team");
    assert_eq!(labels["sympozium.ai/persona"], "security-guardian");
    let owner = &inst.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("PersonaPack", "pack-uid", Some(true))
    );

    let spec = &inst.spec;
    let agent = &spec.agents.default;
    assert_eq!(agent.model, "claude-sonnet-4-20250514");
    assert_eq!(agent.agent_sandbox.as_ref().unwrap().runtime_class.as_deref(), Some("gvisor"));
    assert_eq!(agent.tool_policy.as_ref().unwrap().allow, ["execute_command", "read_file", "fetch_url"]);
    assert_eq!(spec.policy_ref.as_deref(), Some("restrictive"));
    assert_eq!(spec.auth_refs[0].secret, "platform-team-anthropic-key");
    let memory = spec.memory.as_ref().unwrap();
    assert!(memory.enabled);
    assert_eq!(memory.max_size_kb, 256);
    assert!(memory.system_prompt.as_deref().unwrap().contains("CIS benchmark"));
    let skills: Vec<_> = spec.skills.iter().map(|s| s.skill_pack_ref.clone().unwrap()).collect();
    assert_eq!(skills, ["k8s-ops", "sre-observability", "memory"]);
    assert_eq!(spec.channels.len(), 1);
    assert_eq!(spec.channels[0].type_, ChannelType::Telegram);
    assert_eq!(spec.channels[0].config_ref.secret, "telegram-creds");
    assert_eq!(spec.channels[0].access_control.as_ref().unwrap().allowed_senders, ["123456"]);
    let obs = spec.observability.as_ref().unwrap();
    assert!(!obs.enabled, "no collector configured");
    assert_eq!(obs.otlp_endpoint.as_deref(), Some("sympozium-otel-collector.sympozium-system.svc:4317"));
}

#[test]
fn observability_follows_the_controller_collector() {
    let settings = Settings { otlp_endpoint: "otel.obs.svc:4317".into(), ..Default::default() };
    let obs = observability(&settings);
    assert!(obs.enabled);
    assert_eq!(obs.otlp_endpoint.as_deref(), Some("otel.obs.svc:4317"));
    assert_eq!(obs.resource_attributes.unwrap()["deployment.environment"], "cluster");
}

#[test]
fn skills_skip_the_mcp_marker_take_params_and_end_with_memory_and_web_endpoint() {
    let p = pack(json!({
        "skillParams": {"github-gitops": {"repo": "org/repo"}, "k8s-ops": {}},
        "personas": [{"name": "a", "systemPrompt": "x",
                      "skills": ["mcp-bridge", "github-gitops", "k8s-ops", "github-gitops"],
                      "webEndpoint": {"enabled": true, "hostname": "a.example.com"}}],
    }));
    let skills = skills_of(&p, &p.spec.personas[0]);
    let names: Vec<_> = skills.iter().map(|s| s.skill_pack_ref.clone().unwrap()).collect();
    assert_eq!(names, ["github-gitops", "k8s-ops", "memory", "web-endpoint"]);
    assert_eq!(skills[0].params.as_ref().unwrap()["repo"], "org/repo");
    assert!(skills[1].params.is_none(), "empty params are left out");
    assert_eq!(skills[3].params.as_ref().unwrap()["hostname"], "a.example.com");

    let p = pack(json!({"personas": [{"name": "a", "systemPrompt": "x", "skills": ["memory", "k8s-ops"],
                                      "webEndpoint": {"enabled": true}}]}));
    let skills = skills_of(&p, &p.spec.personas[0]);
    let names: Vec<_> = skills.iter().map(|s| s.skill_pack_ref.clone().unwrap()).collect();
    assert_eq!(names, ["memory", "k8s-ops", "web-endpoint"]);
    assert_eq!(skills[2].params, Some(Default::default()));
}

#[test]
fn unknown_channel_types_are_named_in_the_error() {
    let p = pack(json!({"personas": [{"name": "a", "systemPrompt": "x", "channels": ["irc"]}]}));
    let err = instance(&p, &p.spec.personas[0], &Settings::default()).unwrap_err();
    assert!(err.to_string().contains("unknown channel type \"irc\""), "{err}");
}

#[test]
fn default_model_and_cleared_optionals() {
    let p = pack(json!({"baseURL": " ", "policyRef": "", "personas": [{"name": "a", "systemPrompt": "x"}]}));
    let inst = instance(&p, &p.spec.personas[0], &Settings::default()).unwrap();
    assert_eq!(inst.spec.agents.default.model, DEFAULT_MODEL);
    assert!(inst.spec.agents.default.base_url.is_none());
    assert!(inst.spec.policy_ref.is_none());
    assert!(inst.spec.channels.is_empty());
}

#[test]
fn schedule_uses_the_stagger_and_the_team_objective() {
    let p = seed_pack();
    let s = schedule(&p, &p.spec.personas[0], 0).unwrap();
    assert_eq!(s.metadata.name.as_deref(), Some("platform-team-security-guardian-schedule"));
    assert_eq!(s.spec.instance_ref, "platform-team-security-guardian");
    assert_eq!(s.spec.schedule, "0/30 * * * *");
    assert!(s.spec.task.starts_with(
        "TEAM OBJECTIVE: Keep the production cluster secure and healthy ahead of the Q3 audit.\n\nYOUR ROLE TASK: Scan every namespace"
    ));
    assert_eq!(s.spec.type_, sympozium_api::schedule::ScheduleType::Heartbeat);
    assert_eq!(s.spec.concurrency_policy, ConcurrencyPolicy::Forbid);
    assert_eq!(s.spec.include_memory, Some(true));
    assert_eq!(s.metadata.owner_references.as_ref().unwrap()[0].kind, "PersonaPack");

    let s = schedule(&p, &p.spec.personas[0], 3).unwrap();
    assert_eq!(s.spec.schedule, "6/30 * * * *", "index 3 is staggered by 6 minutes");

    let p = pack(json!({"personas": [
        {"name": "a", "systemPrompt": "x", "schedule": {"type": "scheduled", "cron": "0 9 * * 1-5", "interval": "5m", "task": "t"}},
        {"name": "b", "systemPrompt": "x"}]}));
    let s = schedule(&p, &p.spec.personas[0], 4).unwrap();
    assert_eq!(
        (s.spec.schedule.as_str(), s.spec.task.as_str()),
        ("0 9 * * 1-5", "t"),
        "cron wins, no wrapper"
    );
    assert!(schedule(&p, &p.spec.personas[1], 1).is_none());
}

#[test]
fn seeds_become_a_labelled_unowned_memory_document() {
    let p = seed_pack();
    let cm = seed_configmap(&p, &p.spec.personas[0]).unwrap();
    assert_eq!(cm.metadata.name.as_deref(), Some("platform-team-security-guardian-memory"));
    assert!(cm.metadata.owner_references.is_none());
    let labels = cm.metadata.labels.clone().unwrap();
    assert_eq!(labels["sympozium.ai/persona-pack"], "platform-team");
    assert_eq!(labels["sympozium.ai/persona"], "security-guardian");
    assert_eq!(labels["sympozium.ai/memory"], "true");
    assert_eq!(labels["sympozium.ai/instance"], "platform-team-security-guardian");
    let memory = &cm.data.as_ref().unwrap()["MEMORY.md"];
    assert_eq!(
        memory,
        "# Memory\n\n- Follow CIS Kubernetes Benchmark v1.8 when judging findings.\n\
         - Escalate privileged or host-network pods immediately.\n\
         - Treat containers without resource limits as medium severity.\n"
    );
    assert_eq!(cm.metadata.annotations.unwrap()[SEED_HASH_ANNOTATION], content_hash(memory));

    let p = pack(
        json!({"personas": [{"name": "a", "systemPrompt": "x", "memory": {"enabled": true, "seeds": [" "]}}]}),
    );
    assert!(seed_configmap(&p, &p.spec.personas[0]).is_none());
}

#[test]
fn seeds_replace_placeholders_and_own_earlier_seeds_but_never_recorded_memories() {
    let p = seed_pack();
    let desired = seed_configmap(&p, &p.spec.personas[0]).unwrap();
    let with = |content: &str, hash: Option<&str>| {
        let mut cm = desired.clone();
        cm.data = Some([("MEMORY.md".to_string(), content.to_string())].into());
        cm.metadata.annotations = hash.map(|h| [(SEED_HASH_ANNOTATION.to_string(), h.to_string())].into());
        cm
    };
    let placeholder = "# Agent Memory\n\nNo memories recorded yet.\n";
    assert_eq!(seed_action(&desired, &desired, placeholder), SeedAction::Keep);
    assert_eq!(seed_action(&with(placeholder, None), &desired, placeholder), SeedAction::Replace);
    assert_eq!(seed_action(&with("", None), &desired, placeholder), SeedAction::Replace);
    let old = "# Memory\n\n- old seed\n";
    assert_eq!(seed_action(&with(old, Some(&content_hash(old))), &desired, placeholder), SeedAction::Replace);
    let recorded = "# Memory\n\n- old seed\n- learned: node-3 flaps nightly\n";
    assert_eq!(
        seed_action(&with(recorded, Some(&content_hash(old))), &desired, placeholder),
        SeedAction::Preserve
    );
    assert_eq!(seed_action(&with(recorded, None), &desired, placeholder), SeedAction::Preserve);
}

#[test]
fn managed_secrets_are_labelled_or_follow_the_pack_naming() {
    let none = BTreeMap::new();
    assert!(is_managed_secret("team", "team-credentials", &none));
    assert!(is_managed_secret("team", "team-anthropic-key", &none));
    assert!(is_managed_secret("team", "team-azure-openai-key", &none));
    assert!(!is_managed_secret("team", "team-key", &none));
    assert!(!is_managed_secret("team", "other-anthropic-key", &none));
    assert!(!is_managed_secret("team", "shared-openai", &none));
    let labelled: BTreeMap<_, _> = [("sympozium.ai/persona-pack".to_string(), "team".to_string())].into();
    assert!(is_managed_secret("team", "shared-openai", &labelled));
    let other: BTreeMap<_, _> = [("sympozium.ai/persona-pack".to_string(), "x".to_string())].into();
    assert!(!is_managed_secret("team", "shared-openai", &other));
}

#[test]
fn exclusion_and_enablement() {
    let p = pack(json!({"enabled": true, "excludePersonas": [" b "], "personas": [
        {"name": "a", "systemPrompt": "x"}, {"name": "b", "systemPrompt": "x"}]}));
    assert!(is_enabled(&p));
    assert!(!is_excluded(&p, "a"));
    assert!(is_excluded(&p, "b"));
    assert!(!is_enabled(&pack(json!({"personas": []}))));
}

#[test]
fn base_url_and_lifecycle_flow_into_the_agent() {
    let p = pack(
        json!({"baseURL": "http://ollama.local:11434/v1", "personas": [{"name": "a", "systemPrompt": "x",
        "lifecycle": {"preRun": [{"name": "fetch", "image": "busybox"}]}}]}),
    );
    let agent = instance(&p, &p.spec.personas[0], &Settings::default()).unwrap().spec.agents.default;
    assert_eq!(agent.base_url.as_deref(), Some("http://ollama.local:11434/v1"));
    assert_eq!(agent.lifecycle.unwrap().pre_run[0].name, "fetch");
    assert!(agent.tool_policy.is_none());
}
