//! End to end through the pod the controller builds: the AgentRun controller (in-process,
//! on the real test control plane) builds the Job; this test "runs" its `agent` container —
//! the real runner binary with the env and files resolved from the API objects (task,
//! persona prompt, provider Secret via envFrom, skills from the SkillPack ConfigMap) — against
//! the fake LLM, with the real IPC bridge beside it on a real nats-server; the run's status
//! ends with the agent's answer and token usage.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use sympozium_api::AgentRun;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_bus::Bus;
use sympozium_controller::context::Context;
use sympozium_controller::settings::Settings;
use sympozium_controller::{agentrun, skillpack};
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::fake_llm::{FakeLlm, Turn};
use sympozium_testkit::nats::NatsServer;
use sympozium_testkit::{TestPlane, wait_for};

const WAIT: Duration = Duration::from_secs(60);

async fn apply(client: &Client, ns: &str, kind: &str, plural: &str, name: &str, spec: Value) {
    let ar = ApiResource {
        group: "sympozium.ai".into(),
        version: "v1alpha1".into(),
        api_version: "sympozium.ai/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec});
    api.patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&body)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_pod_runs_and_its_answer_lands_in_status() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "pod-e2e").await.unwrap().name().to_string();
    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    let fake = FakeLlm::start().await.unwrap();
    fake.push(Turn::text("Two pods crash-loop in shop: payments and cart.").with_usage(420, 17));

    // The API objects the pod is resolved from.
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "team-openai-key"},
        "stringData": {"OPENAI_API_KEY": "sk-e2e-key"}}))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns).create(&Default::default(), &secret).await.unwrap();
    apply(&client, &ns, "SkillPack", "skillpacks", "triage", json!({
        "skills": [{"name": "triage", "description": "First ten minutes", "content": "Check recent deployments first."}]})).await;
    apply(
        &client,
        &ns,
        "SympoziumInstance",
        "sympoziuminstances",
        "sre",
        json!({
        "agents": {"default": {"model": "gpt-4o", "baseURL": fake.openai_base_url()}},
        "authRefs": [{"provider": "openai", "secret": "team-openai-key"}],
        "skills": [{"skillPackRef": "triage"}],
        "memory": {"enabled": false, "systemPrompt": "You are the SRE watchdog of the shop cluster."}}),
    )
    .await;

    let settings = Settings { event_bus_url: Some(nats.url()), ..Default::default() };
    let ctx =
        Arc::new(Context::new(client.clone(), settings.clone(), Metrics::default(), Some(ns.clone()), "e2e"));
    let tasks = [
        tokio::spawn(agentrun::run(ctx.clone())),
        tokio::spawn(skillpack::run(ctx.clone())),
        tokio::spawn(agentrun::completion::run(ctx.clone(), bus.clone())),
    ];
    apply(&client, &ns, "AgentRun", "agentruns", "watch-1", json!({"instanceRef": "sre", "agentId": "primary",
        "sessionKey": "s1", "task": "Which pods are crash-looping?",
        "model": {"provider": "openai", "model": "gpt-4o", "baseURL": fake.openai_base_url(), "authSecretRef": "team-openai-key"}}))
    .await;

    // The pod exactly as the controller built it.
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let job = wait_for(&jobs, "watch-1", "the run's Job", WAIT, |j: Option<&Job>| j.is_some()).await.unwrap();
    let pod = job.spec.unwrap().template.spec.unwrap();
    let agent = pod.containers.iter().find(|c| c.name == "agent").unwrap().clone();

    // Resolve its environment: plain values, then envFrom Secrets (as the kubelet does).
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for from in agent.env_from.iter().flatten() {
        let name = &from.secret_ref.as_ref().unwrap().name;
        let secret = Api::<Secret>::namespaced(client.clone(), &ns).get(name).await.unwrap();
        for (k, v) in secret.data.unwrap() {
            env.insert(k, String::from_utf8(v.0).unwrap());
        }
    }
    for e in agent.env.iter().flatten() {
        env.insert(e.name.clone(), e.value.clone().unwrap_or_default());
    }
    // Resolve its volumes into directories: /skills from the projected ConfigMaps.
    let dirs = tempfile::tempdir().unwrap();
    let root = dirs.path();
    for d in ["ipc", "workspace", "skills", "memory", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let skills = pod.volumes.iter().flatten().find(|v| v.name == "skills").unwrap();
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    for source in skills.projected.as_ref().unwrap().sources.iter().flatten() {
        let name = &source.config_map.as_ref().unwrap().name;
        let cm = wait_for(&configmaps, name, "skill ConfigMap", WAIT, |c: Option<&ConfigMap>| c.is_some())
            .await
            .unwrap();
        for (file, content) in cm.data.unwrap() {
            std::fs::write(root.join("skills").join(file), content).unwrap();
        }
    }
    for (var, dir) in [
        ("IPC_DIR", "ipc"),
        ("WORKSPACE_DIR", "workspace"),
        ("SKILLS_DIR", "skills"),
        ("MEMORY_DIR", "memory"),
        ("TMP_DIR", "tmp"),
    ] {
        env.insert(var.into(), root.join(dir).display().to_string());
    }

    // The ipc-bridge sidecar beside it.
    let mut bridge = sympozium_ipc_bridge::Config::new(root.join("ipc"), "watch-1", &nats.url());
    bridge.instance_name = "sre".into();
    bridge.namespace = ns.clone();
    bridge.exit_delay_ms = 200;
    let bridge = tokio::spawn(sympozium_ipc_bridge::run(bridge));

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sympozium-agent-runner"))
        .env_clear()
        .envs(&env)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "runner failed: {}", String::from_utf8_lossy(&out.stderr));

    // What the model saw came from the API objects.
    let request = &fake.requests()[0];
    assert_eq!(request.header("authorization"), Some("Bearer sk-e2e-key"));
    let system = request.system_prompt();
    assert!(system.contains("You are the SRE watchdog of the shop cluster."), "{system}");
    assert!(system.contains("Check recent deployments first."), "{system}");
    assert_eq!(
        request.body["messages"].as_array().unwrap().last().unwrap()["content"],
        "Which pods are crash-looping?"
    );

    // The bridge publishes the result; the controller records it.
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    let done = wait_for(&runs, "watch-1", "Succeeded", WAIT, |r: Option<&AgentRun>| {
        r.and_then(|r| r.status.as_ref()?.phase) == Some(AgentRunPhase::Succeeded)
    })
    .await
    .unwrap();
    let status = done.status.unwrap();
    assert_eq!(status.result.as_deref(), Some("Two pods crash-loop in shop: payments and cart."));
    let usage = status.token_usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (420, 17));
    tokio::time::timeout(WAIT, bridge).await.unwrap().unwrap().unwrap();
    for t in tasks {
        t.abort();
    }
}
