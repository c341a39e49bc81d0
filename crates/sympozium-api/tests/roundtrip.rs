//! Every sample manifest (including the two seed examples) parses into the typed API and
//! serializes back without losing a field; omitted fields get the spec's defaults.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sympozium_api::agentrun::{CleanupPolicy, RunMode};
use sympozium_api::common::Thinking;
use sympozium_api::instance::ChannelType;
use sympozium_api::policy::ToolAction;
use sympozium_api::schedule::{ConcurrencyPolicy, ScheduleType};
use sympozium_api::*;

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/samples")
}

/// All YAML documents of all sample files, as JSON values, with their file names.
fn sample_documents() -> Vec<(String, Value)> {
    let mut files: Vec<_> = std::fs::read_dir(samples_dir())
        .expect("deploy/samples exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable sample");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).expect("valid YAML");
            if !value.is_null() {
                docs.push((file.file_name().unwrap().to_string_lossy().into_owned(), value));
            }
        }
    }
    docs
}

use serde::Deserialize;

/// Asserts that every field present in `input` is present in `output` with the same value.
fn assert_preserved(input: &Value, output: &Value, path: &str) {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            for (k, v) in i {
                let Some(ov) = o.get(k) else {
                    panic!("field {path}.{k} was lost in the round trip");
                };
                assert_preserved(v, ov, &format!("{path}.{k}"));
            }
        }
        (Value::Array(i), Value::Array(o)) => {
            assert_eq!(i.len(), o.len(), "list {path} changed length");
            for (n, (a, b)) in i.iter().zip(o).enumerate() {
                assert_preserved(a, b, &format!("{path}[{n}]"));
            }
        }
        _ => assert_eq!(input, output, "value of {path} changed"),
    }
}

fn roundtrip<K: DeserializeOwned + Serialize>(doc: &Value, file: &str) -> K {
    let typed: K =
        serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{file}: does not parse: {e}"));
    let back = serde_json::to_value(&typed).expect("serializes");
    assert_preserved(doc, &back, file);
    typed
}

#[test]
fn every_sample_round_trips_without_losing_a_field() {
    let docs = sample_documents();
    let mut kinds_seen = std::collections::BTreeSet::new();
    for (file, doc) in &docs {
        let kind = doc["kind"].as_str().expect("kind").to_string();
        match kind.as_str() {
            "SympoziumInstance" => drop(roundtrip::<SympoziumInstance>(doc, file)),
            "PersonaPack" => drop(roundtrip::<PersonaPack>(doc, file)),
            "AgentRun" => drop(roundtrip::<AgentRun>(doc, file)),
            "SkillPack" => drop(roundtrip::<SkillPack>(doc, file)),
            "SympoziumPolicy" => drop(roundtrip::<SympoziumPolicy>(doc, file)),
            "SympoziumSchedule" => drop(roundtrip::<SympoziumSchedule>(doc, file)),
            "SympoziumConfig" => drop(roundtrip::<SympoziumConfig>(doc, file)),
            "MCPServer" => drop(roundtrip::<MCPServer>(doc, file)),
            other => panic!("{file}: unexpected kind {other}"),
        }
        kinds_seen.insert(kind);
    }
    assert_eq!(kinds_seen.len(), 8, "samples cover every kind: {kinds_seen:?}");
}

fn sample<K: DeserializeOwned>(kind: &str, name: &str) -> K {
    let (_, doc) = sample_documents()
        .into_iter()
        .find(|(_, d)| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no sample {kind}/{name}"));
    serde_json::from_value(doc).expect("parses")
}

#[test]
fn seed_instance_keeps_every_setting() {
    let inst: SympoziumInstance = sample("SympoziumInstance", "my-agent");
    let s = &inst.spec;
    assert_eq!(s.channels[0].type_, ChannelType::Telegram);
    assert_eq!(s.channels[0].config_ref.secret, "telegram-creds");
    assert_eq!(s.channels[0].access_control.as_ref().unwrap().allowed_senders, ["123456"]);
    let a = &s.agents.default;
    assert_eq!(a.model, "gpt-4.1");
    assert_eq!(a.base_url.as_deref(), Some(""));
    assert_eq!(a.thinking, Some(Thinking::Medium));
    assert!(!a.sandbox.as_ref().unwrap().enabled);
    let sb = a.agent_sandbox.as_ref().unwrap();
    assert!(sb.enabled);
    assert_eq!(sb.runtime_class.as_deref(), Some("gvisor"));
    assert_eq!(sb.warm_pool.as_ref().unwrap().size, 3);
    let sub = a.subagents.as_ref().unwrap();
    assert_eq!((sub.max_depth, sub.max_concurrent, sub.max_children_per_agent), (2, 5, 3));
    assert_eq!(a.node_selector.as_ref().unwrap()["gpu-type"], "a100");
    assert_eq!(s.skills[0].skill_pack_ref.as_deref(), Some("k8s-ops"));
    assert_eq!(s.skills[0].params.as_ref().unwrap()["CLUSTER"], "production");
    assert_eq!(s.skills[1].skill_pack_ref.as_deref(), Some("memory"));
    assert_eq!(s.policy_ref.as_deref(), Some("restrictive"));
    assert_eq!(s.auth_refs[0].provider.as_deref(), Some("openai"));
    assert_eq!(s.auth_refs[0].secret, "openai-key");
    let m = s.memory.as_ref().unwrap();
    assert!(m.enabled);
    assert_eq!(m.max_size_kb, 256);
    let o = s.observability.as_ref().unwrap();
    assert!(o.enabled);
    assert_eq!(o.otlp_endpoint.as_deref(), Some("otel-collector.observability.svc:4317"));
    assert_eq!(s.mcp_servers[0].name, "github");
    assert_eq!(s.mcp_servers[0].tools_prefix, "gh");
    assert_eq!(s.mcp_servers[0].timeout, 30);
}

#[test]
fn seed_persona_pack_keeps_every_setting() {
    let pack: PersonaPack = sample("PersonaPack", "platform-team");
    let s = &pack.spec;
    assert_eq!(s.enabled, Some(true));
    assert_eq!(s.category.as_deref(), Some("platform"));
    assert_eq!(s.version.as_deref(), Some("1.0.0"));
    assert_eq!(s.policy_ref.as_deref(), Some("restrictive"));
    assert_eq!(s.channel_configs.as_ref().unwrap()["telegram"], "telegram-creds");
    assert_eq!(s.skill_params.as_ref().unwrap()["github-gitops"]["REPO"], "my-org/my-repo");
    assert!(s.task_override.as_deref().unwrap().contains("Q3 audit"));
    assert_eq!(s.exclude_personas, ["cost-analyzer"]);
    assert_eq!(s.channel_access_control.as_ref().unwrap()["telegram"].allowed_senders, ["123456"]);
    assert_eq!(s.agent_sandbox.as_ref().unwrap().runtime_class.as_deref(), Some("gvisor"));
    let p = &s.personas[0];
    assert_eq!(p.name, "security-guardian");
    assert_eq!(p.model.as_deref(), Some("claude-sonnet-4-20250514"));
    assert_eq!(p.skills, ["k8s-ops", "sre-observability"]);
    assert_eq!(p.tool_policy.as_ref().unwrap().allow, ["execute_command", "read_file", "fetch_url"]);
    assert_eq!(p.channels, ["telegram"]);
    let sched = p.schedule.as_ref().unwrap();
    assert_eq!(sched.type_, ScheduleType::Heartbeat);
    assert_eq!(sched.interval.as_deref(), Some("30m"));
    assert_eq!(p.memory.as_ref().unwrap().seeds.len(), 3);
}

#[test]
fn explicit_false_survives_where_the_default_is_true() {
    let sched: SympoziumSchedule = sample("SympoziumSchedule", "my-agent-nightly");
    assert_eq!(sched.spec.include_memory, Some(false));
    assert_eq!(serde_json::to_value(&sched).unwrap()["spec"]["includeMemory"], false);

    let pack: SkillPack = sample("SkillPack", "k8s-ops");
    let sidecar = pack.spec.sidecar.unwrap();
    assert_eq!(sidecar.mount_workspace, Some(false));
}

#[test]
fn required_strings_are_emitted_even_when_empty() {
    let run: AgentRun = serde_json::from_value(serde_json::json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
        "metadata": {"name": "r"},
        "spec": {"instanceRef": "i", "agentId": "primary", "sessionKey": "", "task": "t",
                 "model": {"provider": "ollama", "model": "llama3", "authSecretRef": ""}}
    }))
    .unwrap();
    let v = serde_json::to_value(&run).unwrap();
    assert_eq!(v["spec"]["sessionKey"], "");
    assert_eq!(v["spec"]["model"]["authSecretRef"], "");

    let inst: SympoziumInstance = serde_json::from_value(serde_json::json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
        "metadata": {"name": "wa"},
        "spec": {"agents": {"default": {"model": "m"}}, "channels": [{"type": "whatsapp"}]}
    }))
    .unwrap();
    let v = serde_json::to_value(&inst).unwrap();
    assert_eq!(v["spec"]["channels"][0]["configRef"]["secret"], "");
}

#[test]
fn omitted_fields_get_the_spec_defaults() {
    let sched: SympoziumSchedule = serde_json::from_value(serde_json::json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumSchedule",
        "metadata": {"name": "s"},
        "spec": {"instanceRef": "i", "schedule": "*/5 * * * *", "task": "t"}
    }))
    .unwrap();
    assert_eq!(sched.spec.type_, ScheduleType::Scheduled);
    assert_eq!(sched.spec.concurrency_policy, ConcurrencyPolicy::Forbid);
    assert_eq!(sched.spec.include_memory, Some(true));

    let run: AgentRun = serde_json::from_value(serde_json::json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun", "metadata": {"name": "r"},
        "spec": {"instanceRef": "i", "agentId": "a", "sessionKey": "", "task": "t",
                 "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": ""}}
    }))
    .unwrap();
    assert_eq!(run.spec.mode, RunMode::Task);
    assert_eq!(run.spec.cleanup, CleanupPolicy::Delete);

    let mcp: MCPServer = serde_json::from_value(serde_json::json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "MCPServer", "metadata": {"name": "m"},
        "spec": {"transportType": "stdio", "toolsPrefix": "x", "deployment": {"image": "img"}}
    }))
    .unwrap();
    assert_eq!((mcp.spec.timeout, mcp.spec.replicas), (30, 1));
    assert_eq!(mcp.spec.deployment.unwrap().port, 8080);

    let policy: SympoziumPolicy = serde_json::from_value(serde_json::json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumPolicy", "metadata": {"name": "p"},
        "spec": {"subagentPolicy": {}, "toolGating": {}, "networkPolicy": {},
                 "sandboxPolicy": {"required": false}}
    }))
    .unwrap();
    let sp = policy.spec.subagent_policy.unwrap();
    assert_eq!((sp.max_depth, sp.max_concurrent), (3, 5));
    assert_eq!(policy.spec.tool_gating.unwrap().default_action, ToolAction::Allow);
    let np = policy.spec.network_policy.unwrap();
    assert!(np.deny_all && np.allow_dns && np.allow_event_bus);
    assert!(!policy.spec.sandbox_policy.unwrap().allow_host_mounts);

    let skill: SkillPack = serde_json::from_value(serde_json::json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "SkillPack", "metadata": {"name": "k"},
        "spec": {"skills": [{"name": "s", "content": "# S"}],
                 "sidecar": {"image": "img", "hostAccess": {"mounts": [{"hostPath": "/var/log", "mountPath": "/host/log"}]}}}
    }))
    .unwrap();
    let sidecar = skill.spec.sidecar.unwrap();
    assert_eq!(sidecar.mount_workspace, Some(true), "the workspace is mounted unless turned off");
    assert!(
        sidecar.host_access.unwrap().mounts[0].read_only,
        "host mounts are read-only unless said otherwise"
    );

    let config: SympoziumConfig = serde_json::from_value(serde_json::json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumConfig", "metadata": {"name": "default"},
        "spec": {"gateway": {}}
    }))
    .unwrap();
    let gw = config.spec.gateway.unwrap();
    assert_eq!(
        (gw.enabled, gw.gateway_class_name.as_str(), gw.name.as_str()),
        (false, "sympozium", "sympozium-gateway")
    );

    let inst: SympoziumInstance = serde_json::from_value(serde_json::json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance", "metadata": {"name": "i"},
        "spec": {"agents": {"default": {"model": "m", "subagents": {},
                  "agentSandbox": {"enabled": true, "warmPool": {}}}},
                 "memory": {}, "observability": {}, "webEndpoint": {"rateLimit": {}},
                 "mcpServers": [{"name": "n", "toolsPrefix": "p"}]}
    }))
    .unwrap();
    let a = &inst.spec.agents.default;
    let sub = a.subagents.as_ref().unwrap();
    assert_eq!((sub.max_depth, sub.max_concurrent, sub.max_children_per_agent), (2, 5, 3));
    assert_eq!(a.agent_sandbox.as_ref().unwrap().warm_pool.as_ref().unwrap().size, 2);
    let mem = inst.spec.memory.as_ref().unwrap();
    assert!(mem.enabled);
    assert_eq!(mem.max_size_kb, 256);
    assert!(!inst.spec.observability.as_ref().unwrap().enabled);
    let rl = inst.spec.web_endpoint.as_ref().unwrap().rate_limit.as_ref().unwrap();
    assert_eq!((rl.requests_per_minute, rl.burst_size), (60, 10));
    assert_eq!(inst.spec.mcp_servers[0].timeout, 30);

    let cfg: SympoziumConfig = serde_json::from_value(serde_json::json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumConfig", "metadata": {"name": "default"},
        "spec": {"gateway": {"tls": {}}}
    }))
    .unwrap();
    let gw = cfg.spec.gateway.unwrap();
    assert!(!gw.enabled);
    assert_eq!(gw.gateway_class_name, "sympozium");
    assert_eq!(gw.name, "sympozium-gateway");
    assert_eq!(gw.tls.unwrap().secret_name, "sympozium-wildcard-cert");

    let pack: PersonaPack = serde_json::from_value(serde_json::json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "PersonaPack", "metadata": {"name": "p"},
        "spec": {"personas": [{"name": "a", "systemPrompt": "x",
                  "schedule": {"interval": "5m", "task": "t"}, "memory": {}}]}
    }))
    .unwrap();
    assert_eq!(pack.spec.enabled, None, "a pack without `enabled` stays a catalog entry");
    let persona = &pack.spec.personas[0];
    assert_eq!(persona.schedule.as_ref().unwrap().type_, ScheduleType::Heartbeat);
    assert!(persona.memory.as_ref().unwrap().enabled);
}
