//! Tenant isolation of the agent pod on the real test control plane, tried as a hostile
//! tenant would: reserved variables through `spec.env`, wildcard and made-up tool names in
//! tool policies, the ServiceAccount token reaching the agent container, a pod that would
//! not pass the `restricted` Pod Security Standard, and a burst of runs racing past
//! `maxConcurrent`. Each test counts the attacks it tried and saw refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::{Value, json};
use sympozium_api::AgentRun;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_bus::{Bus, topics};
use sympozium_controller::agentrun;
use sympozium_controller::context::Context;
use sympozium_controller::settings::Settings;
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::TestPlane;
use sympozium_testkit::nats::NatsServer;

const WAIT: Duration = Duration::from_secs(90);
const TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

fn resource(kind: &str) -> ApiResource {
    let plural = match kind {
        "SympoziumInstance" => "sympoziuminstances",
        "SkillPack" => "skillpacks",
        "SympoziumPolicy" => "sympoziumpolicies",
        "PersonaPack" => "personapacks",
        _ => "agentruns",
    };
    ApiResource {
        group: "sympozium.ai".into(),
        version: "v1alpha1".into(),
        api_version: "sympozium.ai/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Creates a Sympozium object; the API server's answer (the refusal message on error).
async fn create(client: &Client, ns: &str, kind: &str, name: &str, spec: Value) -> Result<(), String> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource(kind));
    let obj: DynamicObject =
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": kind,
        "metadata": {"name": name}, "spec": spec}))
        .unwrap();
    api.create(&PostParams::default(), &obj).await.map(|_| ()).map_err(|e| e.to_string())
}

async fn apply(client: &Client, ns: &str, kind: &str, name: &str, spec: Value) {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource(kind));
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec});
    api.patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&body)).await.unwrap();
}

fn run_spec(extra: Value) -> Value {
    let mut spec = json!({"instanceRef": "agent", "agentId": "primary", "sessionKey": "", "task": "list pods",
        "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "openai-key"}});
    spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    spec
}

/// Starts the AgentRun controller (and its bus completion listener) for `ns`.
async fn controller(client: &Client, ns: &str) -> (Bus, NatsServer, Vec<tokio::task::JoinHandle<()>>) {
    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    let settings = Settings { image_tag: "test".into(), ..Default::default() };
    let ctx = Context::new(client.clone(), settings, Metrics::default(), Some(ns.to_string()), "test");
    let tasks = vec![
        tokio::spawn(agentrun::run(Arc::new(ctx))),
        tokio::spawn(agentrun::completion::run(
            Arc::new(Context::with_defaults(client.clone(), None)),
            bus.clone(),
        )),
    ];
    (bus, nats, tasks)
}

#[tokio::test]
async fn spec_env_cannot_override_reserved_variables() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "iso-env").await.unwrap().name().to_string();
    let attacks = [
        ("MODEL_BASE_URL", "https://collector.attacker.example/v1"),
        ("OPENAI_API_KEY", "sk-mine"),
        ("ANTHROPIC_API_KEY", "sk-mine"),
        ("MODEL_PROVIDER", "ollama"),
        ("IPC_DIR", "/workspace"),
        ("WORKSPACE_DIR", "/ipc"),
        ("EVENT_BUS_URL", "nats://attacker:4222"),
        ("MEMORY_SERVER_URL", "http://other-tenant-memory.team-b.svc:8080"),
        ("TOOL_POLICY", "{}"),
        ("SKILL_SIDECARS", "k8s-ops"),
        ("AGENT_NAMESPACE", "kube-system"),
        ("LD_PRELOAD", "/workspace/evil.so"),
    ];
    let mut refused = 0;
    for (i, (var, value)) in attacks.iter().enumerate() {
        let spec = run_spec(json!({"env": {"LOG_LEVEL": "debug", *var: value}}));
        let err = create(&client, &ns, "AgentRun", &format!("env-{i}"), spec).await.unwrap_err();
        assert!(err.contains("spec.env") && err.contains(var) && err.contains("reserved"), "{var}: {err}");
        refused += 1;
    }
    // Several at once: every one is named.
    let spec = run_spec(json!({"env": {"TOOL_POLICY": "{}", "MODEL_NAME": "x", "OK": "1"}}));
    let err = create(&client, &ns, "AgentRun", "env-many", spec).await.unwrap_err();
    assert!(err.contains("MODEL_NAME is reserved") && err.contains("TOOL_POLICY is reserved"), "{err}");
    // An ordinary variable is fine.
    create(&client, &ns, "AgentRun", "env-ok", run_spec(json!({"env": {"LOG_LEVEL": "debug"}})))
        .await
        .unwrap();
    eprintln!("reserved-env attacks tried: {}, refused: {refused}", attacks.len() + 1);
}

#[tokio::test]
async fn tool_names_are_exact_and_unknown_ones_are_refused_at_admission() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "iso-tools").await.unwrap().name().to_string();
    let mut tried = 0;
    let mut refuse = async |kind: &str, name: &str, spec: Value, offender: &str| {
        tried += 1;
        let err = create(&client, &ns, kind, name, spec).await.unwrap_err();
        assert!(err.contains("unknown tool name") && err.contains(offender), "{kind} {name}: {err}");
    };
    refuse("AgentRun", "star", run_spec(json!({"toolPolicy": {"allow": ["*"]}})), "*").await;
    refuse(
        "AgentRun",
        "typo",
        run_spec(json!({"toolPolicy": {"deny": ["execute_comand"]}})),
        "execute_comand",
    )
    .await;
    refuse("AgentRun", "glob", run_spec(json!({"toolPolicy": {"allow": ["read_*"]}})), "read_*").await;
    refuse("AgentRun", "qmark", run_spec(json!({"toolPolicy": {"allow": ["read_fil?"]}})), "read_fil?").await;
    refuse(
        "SympoziumInstance",
        "inst",
        json!({"agents": {"default": {"model": "m", "toolPolicy": {"allow": ["*", "read_file"]}}}}),
        "*",
    )
    .await;
    refuse(
        "SympoziumPolicy",
        "pol",
        json!({"toolGating": {"defaultAction": "deny", "rules": [{"tool": "exec*", "action": "allow"}]}}),
        "exec*",
    )
    .await;
    refuse(
        "PersonaPack",
        "pack",
        json!({"personas": [{"name": "p", "systemPrompt": "s", "toolPolicy": {"allow": ["*"]}}]}),
        "*",
    )
    .await;
    eprintln!("tool-name attacks tried: {tried}, refused: {tried}");
    // Exact built-in names and MCP names are fine.
    create(
        &client,
        &ns,
        "AgentRun",
        "exact",
        run_spec(json!({"toolPolicy": {"allow": ["read_file", "github_*", "grafana_query"], "deny": ["write_file"]}})),
    )
    .await
    .unwrap();
    create(
        &client,
        &ns,
        "SympoziumPolicy",
        "ok",
        json!({"toolGating": {"defaultAction": "deny", "rules": [{"tool": "read_file", "action": "allow"},
            {"tool": "github_*", "action": "ask"}]}}),
    )
    .await
    .unwrap();
}

fn mounts_token(c: &k8s_openapi::api::core::v1::Container) -> bool {
    c.volume_mounts.iter().flatten().any(|m| m.mount_path.starts_with(TOKEN_PATH))
}

#[tokio::test]
async fn only_the_sidecar_that_needs_the_api_holds_the_token_and_the_pod_passes_restricted() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.restricted_namespace(&client, "iso-pod").await.unwrap().name().to_string();
    let (_bus, _nats, tasks) = controller(&client, &ns).await;

    // Control: the namespace really enforces `restricted`.
    let privileged: Pod = serde_json::from_value(json!({"metadata": {"name": "privileged"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": true}}]}}))
    .unwrap();
    let err = Api::<Pod>::namespaced(client.clone(), &ns).create(&PostParams::default(), &privileged).await;
    let err = err.unwrap_err().to_string();
    assert!(err.contains("violates PodSecurity \"restricted:latest\""), "{err}");

    apply(
        &client,
        &ns,
        "SympoziumInstance",
        "agent",
        json!({"agents": {"default": {"model": "gpt-4o"}},
        "authRefs": [{"provider": "openai", "secret": "openai-key"}]}),
    )
    .await;
    apply(
        &client,
        &ns,
        "SkillPack",
        "k8s-ops",
        json!({"skills": [{"name": "triage", "content": "# Triage"}],
        "sidecar": {"image": "ghcr.io/sympozium-ai/sympozium/skill-k8s-ops:test",
            "rbac": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}}),
    )
    .await;
    apply(
        &client,
        &ns,
        "SkillPack",
        "notes",
        json!({"skills": [{"name": "notes", "content": "# Notes"}],
        "sidecar": {"image": "ghcr.io/sympozium-ai/sympozium/skill-notes:test"}}),
    )
    .await;
    apply(
        &client,
        &ns,
        "AgentRun",
        "r1",
        run_spec(json!({
        "skills": [{"skillPackRef": "k8s-ops"}, {"skillPackRef": "notes"}],
        "lifecycle": {"preRun": [{"name": "fetch", "image": "busybox:1.36", "command": ["true"]}]}})),
    )
    .await;

    // The Job controller creates the pod: admission under `restricted` is the proof.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let lp = ListParams::default().labels("sympozium.ai/agent-run=r1");
    let deadline = tokio::time::Instant::now() + WAIT;
    let pod = loop {
        if let Some(p) = pods.list(&lp).await.unwrap().items.into_iter().next() {
            break p;
        }
        assert!(tokio::time::Instant::now() < deadline, "the agent pod was never admitted");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let spec = pod.spec.unwrap();
    assert_eq!(spec.automount_service_account_token, Some(false));
    assert_ne!(spec.share_process_namespace, Some(true), "containers never see each other's processes");
    let holders: BTreeSet<&str> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter(|c| mounts_token(c))
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(holders, BTreeSet::from(["skill-k8s-ops"]), "only the skill granted RBAC gets the token");
    let mut tried = 0;
    for c in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
        if c.name == "skill-k8s-ops" {
            continue;
        }
        tried += 1;
        assert!(!mounts_token(c), "{} holds the token", c.name);
        // The model's key (Secret `openai-key`) reaches the agent container only; other
        // Secrets (the run's bus credentials, say) are not this test's concern.
        let model_key = c
            .env_from
            .iter()
            .flatten()
            .any(|f| f.secret_ref.as_ref().is_some_and(|s| s.name == "openai-key"))
            || c.env.iter().flatten().any(|e| {
                e.value_from
                    .as_ref()
                    .and_then(|v| v.secret_key_ref.as_ref())
                    .is_some_and(|r| r.name == "openai-key")
            });
        if c.name != "agent" {
            assert!(!model_key, "{} gets the model's key", c.name);
        }
    }
    eprintln!("token-reach checks (containers without the token): {tried}");
    for t in tasks {
        t.abort();
    }
}

fn phase(r: &AgentRun) -> AgentRunPhase {
    r.status.as_ref().and_then(|s| s.phase).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_concurrent_is_exact_when_many_runs_are_created_at_once() {
    const RUNS: usize = 12;
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "iso-burst").await.unwrap().name().to_string();
    apply(
        &client,
        &ns,
        "SympoziumPolicy",
        "one",
        json!({"subagentPolicy": {"maxDepth": 1, "maxConcurrent": 1}}),
    )
    .await;
    apply(
        &client,
        &ns,
        "SympoziumInstance",
        "agent",
        json!({"agents": {"default": {"model": "gpt-4o"}},
        "authRefs": [{"provider": "openai", "secret": "openai-key"}], "policyRef": "one"}),
    )
    .await;
    // Runs exist before the controller starts, so its first pass reconciles all of them at
    // once: the race the limit must survive.
    let creates = (0..RUNS).map(|i| {
        let client = client.clone();
        let ns = ns.clone();
        async move { create(&client, &ns, "AgentRun", &format!("burst-{i}"), run_spec(json!({}))).await }
    });
    for r in futures::future::join_all(creates).await {
        r.unwrap();
    }
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    let mut events = watcher(runs.clone(), watcher::Config::default()).applied_objects().boxed();
    let (bus, _nats, tasks) = controller(&client, &ns).await;

    let mut phases: BTreeMap<String, AgentRunPhase> = BTreeMap::new();
    let mut completed: BTreeSet<String> = BTreeSet::new();
    let mut most = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    while phases.values().filter(|p| matches!(p, AgentRunPhase::Succeeded | AgentRunPhase::Failed)).count()
        < RUNS
    {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let run = tokio::time::timeout(left, events.try_next())
            .await
            .unwrap_or_else(|_| panic!("runs did not all finish: {phases:?}"))
            .unwrap()
            .unwrap();
        let name = run.metadata.name.clone().unwrap();
        phases.insert(name.clone(), phase(&run));
        let running: Vec<_> =
            phases.iter().filter(|(_, p)| **p == AgentRunPhase::Running).map(|(n, _)| n).collect();
        most = most.max(running.len());
        assert!(running.len() <= 1, "maxConcurrent 1, yet running at once: {running:?}");
        if phase(&run) == AgentRunPhase::Running && completed.insert(name.clone()) {
            let meta = BTreeMap::from([
                ("agentRunID".to_string(), name.clone()),
                ("instanceName".to_string(), "agent".to_string()),
                ("namespace".to_string(), ns.clone()),
            ]);
            bus.publish(topics::AGENT_RUN_COMPLETED, meta, &json!({"status": "success", "response": "ok"}))
                .await
                .unwrap();
        }
    }
    assert_eq!(most, 1, "runs did run, one at a time");
    assert_eq!(completed.len(), RUNS, "every run had its turn");
    eprintln!("burst: {RUNS} runs created at once, at most {most} running at any time");
    for t in tasks {
        t.abort();
    }
}
