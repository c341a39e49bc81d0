//! The AgentRun controller on the real test control plane with a real nats-server: runs
//! become locked-down Jobs with per-run RBAC, finish from the bus or from the exit code,
//! fail clearly on policy, are pruned to the history limit, and clean up when deleted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use sympozium_api::AgentRun;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_bus::{Bus, topics};
use sympozium_controller::agentrun;
use sympozium_controller::clock::ManualClock;
use sympozium_controller::context::Context;
use sympozium_controller::settings::Settings;
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::nats::NatsServer;
use sympozium_testkit::{TestPlane, wait_for, wait_until_gone};

const WAIT: Duration = Duration::from_secs(60);

struct Harness {
    client: Client,
    ns: String,
    clock: Arc<ManualClock>,
    bus: Bus,
    _nats: NatsServer,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Harness {
    async fn new(prefix: &str, history: usize) -> Self {
        let plane = TestPlane::get().unwrap();
        let client = plane.client().await.unwrap();
        let ns = plane.namespace(&client, prefix).await.unwrap().name().to_string();
        let nats = NatsServer::start().await.unwrap();
        let bus = Bus::connect(&nats.url()).await.unwrap();
        let clock = Arc::new(ManualClock::new(Timestamp::now()));
        let settings = Settings { image_tag: "test".into(), max_run_history: history, ..Default::default() };
        let ctx = Context::new(client.clone(), settings, Metrics::default(), Some(ns.clone()), "test")
            .with_clock(clock.clone());
        let tasks = vec![
            tokio::spawn(agentrun::run(Arc::new(ctx))),
            tokio::spawn(agentrun::completion::run(
                Arc::new(Context::with_defaults(client.clone(), None)),
                bus.clone(),
            )),
        ];
        let h = Harness { client, ns, clock, bus, _nats: nats, tasks };
        h.apply(
            "SympoziumInstance",
            "agent",
            json!({"agents": {"default": {"model": "gpt-4o"}},
            "authRefs": [{"provider": "openai", "secret": "openai-key"}]}),
        )
        .await;
        h
    }

    async fn apply(&self, kind: &str, name: &str, spec: serde_json::Value) {
        let plural = match kind {
            "SympoziumInstance" => "sympoziuminstances",
            "SkillPack" => "skillpacks",
            "SympoziumPolicy" => "sympoziumpolicies",
            _ => "agentruns",
        };
        let ar = kube::api::ApiResource {
            group: "sympozium.ai".into(),
            version: "v1alpha1".into(),
            api_version: "sympozium.ai/v1alpha1".into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(self.client.clone(), &self.ns, &ar);
        let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec});
        api.patch(name, &PatchParams::apply("test").force(), &Patch::Apply(&body)).await.unwrap();
    }

    async fn run(&self, name: &str, extra: serde_json::Value) {
        let mut spec = json!({"instanceRef": "agent", "agentId": "primary", "sessionKey": "", "task": "list crashing pods",
            "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "openai-key"}});
        spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        self.apply("AgentRun", name, spec).await;
    }

    fn runs(&self) -> Api<AgentRun> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn run_where(
        &self,
        name: &str,
        what: &str,
        cond: impl Fn(&AgentRun) -> bool + Send + 'static,
    ) -> AgentRun {
        wait_for(&self.runs(), name, what, WAIT, move |r: Option<&AgentRun>| r.is_some_and(&cond))
            .await
            .unwrap()
    }

    async fn complete_over_bus(&self, run: &str, data: serde_json::Value) {
        let meta = BTreeMap::from([
            ("agentRunID".to_string(), run.to_string()),
            ("instanceName".to_string(), "agent".to_string()),
            ("namespace".to_string(), self.ns.clone()),
        ]);
        self.bus.publish(topics::AGENT_RUN_COMPLETED, meta, &data).await.unwrap();
    }
}

fn phase(r: &AgentRun) -> AgentRunPhase {
    r.status.as_ref().and_then(|s| s.phase).unwrap_or_default()
}

#[tokio::test]
async fn a_run_becomes_a_locked_down_job_with_its_own_rbac_and_finishes_from_the_bus() {
    let h = Harness::new("run-bus", 50).await;
    h.apply(
        "SkillPack",
        "k8s-ops",
        json!({
        "skills": [{"name": "triage", "content": "# Triage"}],
        "sidecar": {"image": "ghcr.io/sympozium-ai/sympozium/skill-k8s-ops:test",
            "rbac": [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}],
            "clusterRBAC": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}]}}),
    )
    .await;
    h.run("r1", json!({"skills": [{"skillPackRef": "k8s-ops", "params": {"cluster": "prod"}}]})).await;

    let run = h.run_where("r1", "Running", |r| phase(r) == AgentRunPhase::Running).await;
    let status = run.status.clone().unwrap();
    assert_eq!(status.job_name.as_deref(), Some("r1"));
    assert!(status.started_at.is_some());
    assert_eq!(status.trace_id.as_ref().map(String::len), Some(32));
    assert_eq!(run.spec.timeout.as_deref(), Some("600s"), "the effective timeout is persisted");

    let job = Api::<Job>::namespaced(h.client.clone(), &h.ns).get("r1").await.unwrap();
    let pod = job.spec.unwrap().template.spec.unwrap();
    let names: Vec<_> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["agent", "ipc-bridge", "skill-k8s-ops"]);
    assert_eq!(pod.service_account_name.as_deref(), Some("sympozium-run-r1"));
    assert!(
        Api::<ServiceAccount>::namespaced(h.client.clone(), &h.ns)
            .get_opt("sympozium-run-r1")
            .await
            .unwrap()
            .is_some()
    );
    let role =
        Api::<Role>::namespaced(h.client.clone(), &h.ns).get("sympozium-skill-k8s-ops-r1").await.unwrap();
    assert_eq!(role.rules.unwrap()[0].resources.as_ref().unwrap(), &["pods", "pods/log"]);
    // The pack is in the run's own namespace, not the system namespace: its clusterRBAC is
    // withheld and the run says so (grants from system packs: tests/isolation_rbac.rs).
    let cluster_roles: Api<ClusterRole> = Api::all(h.client.clone());
    let cluster_name = format!("sympozium-skill-k8s-ops-{}-r1", h.ns);
    assert!(cluster_roles.get_opt(&cluster_name).await.unwrap().is_none());
    let denied = status.conditions.iter().find(|c| c.type_ == "ClusterRBACDenied").unwrap();
    assert!(denied.message.contains("SkillPack \"k8s-ops\""), "{}", denied.message);

    h.complete_over_bus(
        "r1",
        json!({"status": "success", "response": "3 pods crashloop in ns shop",
        "metrics": {"durationMs": 4200, "inputTokens": 1200, "outputTokens": 80, "toolCalls": 3}}),
    )
    .await;
    let done = h.run_where("r1", "Succeeded", |r| phase(r) == AgentRunPhase::Succeeded).await;
    let status = done.status.unwrap();
    assert_eq!(status.result.as_deref(), Some("3 pods crashloop in ns shop"));
    let usage = status.token_usage.unwrap();
    assert_eq!(
        (usage.input_tokens, usage.output_tokens, usage.total_tokens, usage.tool_calls),
        (1200, 80, 1280, 3)
    );
    assert!(status.completed_at.is_some());
    let roles: Api<Role> = Api::namespaced(h.client.clone(), &h.ns);
    wait_until_gone(&roles, "sympozium-skill-k8s-ops-r1", "the skill Role revoked after the run", WAIT)
        .await
        .unwrap();

    // A late duplicate (the log path, or a redelivery) does not change the recorded outcome.
    h.complete_over_bus("r1", json!({"status": "error", "error": "late"})).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(h.runs().get("r1").await.unwrap().status.unwrap().phase, Some(AgentRunPhase::Succeeded));
}

#[tokio::test]
async fn a_run_from_a_chat_message_continues_its_trace_into_the_pod() {
    let h = Harness::new("run-trace", 50).await;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let run: AgentRun = serde_json::from_value(json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
        "metadata": {"name": "chat", "namespace": h.ns, "annotations": {"otel.dev/traceparent": parent}},
        "spec": {"instanceRef": "agent", "agentId": "primary", "sessionKey": "", "task": "hello",
            "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "openai-key"}}}))
    .unwrap();
    h.runs().create(&Default::default(), &run).await.unwrap();

    let run = h.run_where("chat", "Running", |r| phase(r) == AgentRunPhase::Running).await;
    assert_eq!(run.status.unwrap().trace_id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    let job = Api::<Job>::namespaced(h.client.clone(), &h.ns).get("chat").await.unwrap();
    let agent = job.spec.unwrap().template.spec.unwrap().containers.remove(0);
    let env = agent.env.unwrap_or_default();
    let tp = env.iter().find(|e| e.name == "TRACEPARENT").and_then(|e| e.value.clone()).unwrap();
    assert!(tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "same trace: {tp}");
    assert_ne!(tp, parent, "the pod is a child span of the message");
}

#[tokio::test]
async fn errors_from_the_agent_and_silent_exits_settle_the_run() {
    let h = Harness::new("run-exit", 50).await;
    h.run("bad", json!({})).await;
    h.run_where("bad", "Running", |r| phase(r) == AgentRunPhase::Running).await;
    h.complete_over_bus("bad", json!({"status": "error", "error": "model returned 401: invalid api key"}))
        .await;
    let failed = h.run_where("bad", "Failed", |r| phase(r) == AgentRunPhase::Failed).await;
    assert_eq!(failed.status.unwrap().error.as_deref(), Some("model returned 401: invalid api key"));

    // No log, no bus event: once the grace period passes, the exit code decides.
    h.run("quiet", json!({})).await;
    h.run_where("quiet", "Running", |r| phase(r) == AgentRunPhase::Running).await;
    let jobs: Api<Job> = Api::namespaced(h.client.clone(), &h.ns);
    wait_for(&jobs, "quiet", "Job complete on the fake node", WAIT, |j: Option<&Job>| {
        j.and_then(|j| j.status.as_ref()).is_some_and(|s| s.succeeded.unwrap_or(0) > 0)
    })
    .await
    .unwrap();
    h.clock.advance(SignedDuration::from_secs(75));
    let done = h.run_where("quiet", "Succeeded", |r| phase(r) == AgentRunPhase::Succeeded).await;
    assert!(done.status.unwrap().result.is_none());

    // A pod that fails (the fake node fails pods labelled so; run labels reach the pod).
    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
        "metadata": {"name": "crashes", "labels": {"testplane.sympozium.ai/fail": "true"}},
        "spec": {"instanceRef": "agent", "agentId": "primary", "sessionKey": "", "task": "t",
                 "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "openai-key"}}});
    h.runs().patch("crashes", &PatchParams::apply("test"), &Patch::Apply(&body)).await.unwrap();
    // The clock already stands past the result grace period: the exit code settles it.
    let failed = h.run_where("crashes", "Failed", |r| phase(r) == AgentRunPhase::Failed).await;
    let error = failed.status.unwrap().error.unwrap();
    assert!(error.starts_with("agent container exited with code 1"), "{error}");
}

#[tokio::test]
async fn policy_failures_are_clear() {
    let h = Harness::new("run-policy", 50).await;
    h.apply(
        "AgentRun",
        "orphan",
        json!({"instanceRef": "ghost", "agentId": "primary", "sessionKey": "", "task": "t",
        "model": {"provider": "openai", "model": "m", "authSecretRef": ""}}),
    )
    .await;
    let r = h.run_where("orphan", "Failed", |r| phase(r) == AgentRunPhase::Failed).await;
    assert_eq!(
        r.status.unwrap().error.as_deref(),
        Some("policy validation failed: instance \"ghost\" not found")
    );

    h.apply(
        "SympoziumPolicy",
        "one-at-a-time",
        json!({"subagentPolicy": {"maxDepth": 1, "maxConcurrent": 1}}),
    )
    .await;
    h.apply(
        "SympoziumInstance",
        "agent",
        json!({"agents": {"default": {"model": "gpt-4o"}},
        "authRefs": [{"provider": "openai", "secret": "openai-key"}], "policyRef": "one-at-a-time"}),
    )
    .await;
    h.run("first", json!({})).await;
    h.run_where("first", "Running", |r| phase(r) == AgentRunPhase::Running).await;
    h.run("second", json!({})).await;
    // Over the limit a run waits, with a condition saying why, and starts when a slot frees.
    let queued = h
        .run_where("second", "queued", |r| {
            r.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Queued"))
        })
        .await;
    let status = queued.status.unwrap();
    assert_eq!(status.phase.unwrap_or_default(), AgentRunPhase::Pending);
    assert!(
        status.conditions[0].message.contains("1/1 runs of this instance are running"),
        "{:?}",
        status.conditions
    );
    h.complete_over_bus("first", json!({"status": "success", "response": "done"})).await;
    h.run_where("first", "Succeeded", |r| phase(r) == AgentRunPhase::Succeeded).await;
    let started =
        h.run_where("second", "Running once a slot frees", |r| phase(r) == AgentRunPhase::Running).await;
    assert!(started.status.unwrap().conditions.iter().all(|c| c.type_ != "Queued"));
    h.run("deep", json!({"parent": {"runName": "first", "sessionKey": "s", "spawnDepth": 2}})).await;
    let r = h.run_where("deep", "Failed", |r| phase(r) == AgentRunPhase::Failed).await;
    assert!(r.status.unwrap().error.unwrap().contains("spawn depth 2 exceeds"));
}

#[tokio::test]
async fn sub_agents_over_the_instances_max_concurrent_wait_for_a_slot() {
    let h = Harness::new("run-subq", 50).await;
    h.apply(
        "SympoziumInstance",
        "agent",
        json!({"agents": {"default": {"model": "gpt-4o",
            "subagents": {"maxDepth": 3, "maxConcurrent": 1, "maxChildrenPerAgent": 5}}},
        "authRefs": [{"provider": "openai", "secret": "openai-key"}]}),
    )
    .await;
    let child_of = |parent: &str, depth: i32| json!({"parent": {"runName": parent, "sessionKey": "s", "spawnDepth": depth}});
    h.run("lead", json!({})).await;
    h.run("c1", child_of("lead", 1)).await;
    h.run_where("c1", "Running", |r| phase(r) == AgentRunPhase::Running).await;
    // A second sub-agent waits, saying why; top-level runs are not held back.
    h.run("c2", child_of("lead", 1)).await;
    let queued = h
        .run_where("c2", "queued", |r| {
            r.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Queued"))
        })
        .await;
    let status = queued.status.unwrap();
    assert_eq!(status.phase.unwrap_or_default(), AgentRunPhase::Pending);
    assert!(
        status.conditions[0].message.contains("1/1 sub-agents of instance agent"),
        "{:?}",
        status.conditions
    );
    h.run("other", json!({})).await;
    h.run_where("other", "Running", |r| phase(r) == AgentRunPhase::Running).await;
    // c1's own child does not wait for the slot c1 holds (that would never free).
    h.run("c1-child", child_of("c1", 2)).await;
    h.run_where("c1-child", "Running", |r| phase(r) == AgentRunPhase::Running).await;
    h.complete_over_bus("c1-child", json!({"status": "success", "response": "done"})).await;
    h.complete_over_bus("c1", json!({"status": "success", "response": "done"})).await;
    let started = h.run_where("c2", "Running once c1 finished", |r| phase(r) == AgentRunPhase::Running).await;
    assert!(started.status.unwrap().conditions.iter().all(|c| c.type_ != "Queued"));
}

#[tokio::test]
async fn history_is_pruned_and_deletion_cleans_up() {
    let h = Harness::new("run-history", 2).await;
    for n in 1..=4 {
        h.run(&format!("h{n}"), json!({})).await;
        h.run_where(&format!("h{n}"), "Running", |r| phase(r) == AgentRunPhase::Running).await;
        h.complete_over_bus(
            &format!("h{n}"),
            json!({"status": "success", "response": format!("answer {n}")}),
        )
        .await;
        h.run_where(&format!("h{n}"), "Succeeded", |r| phase(r) == AgentRunPhase::Succeeded).await;
        // Creation timestamps have one-second resolution; keep the order unambiguous.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    wait_until_gone(&h.runs(), "h1", "oldest run pruned", WAIT).await.unwrap();
    wait_until_gone(&h.runs(), "h2", "second-oldest run pruned", WAIT).await.unwrap();
    assert!(
        h.runs().get_opt("h3").await.unwrap().is_some() && h.runs().get_opt("h4").await.unwrap().is_some()
    );

    h.run("doomed", json!({})).await;
    h.run_where("doomed", "Running", |r| phase(r) == AgentRunPhase::Running).await;
    h.runs().delete("doomed", &DeleteParams::default()).await.unwrap();
    wait_until_gone(&h.runs(), "doomed", "deleted run (finalizer released)", WAIT).await.unwrap();
    let jobs: Api<Job> = Api::namespaced(h.client.clone(), &h.ns);
    wait_until_gone(&jobs, "doomed", "its Job", WAIT).await.unwrap();
}

/// The real memory server, in-process on a loopback port, backed by a temporary SQLite file.
async fn memory_server() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory.db");
    let store = tokio::task::spawn_blocking(move || {
        sympozium_memory::Store::open(&path, sympozium_memory::Limits::default(), true, 2)
    })
    .await
    .unwrap()
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, sympozium_memory::http::router(store)).await.unwrap() });
    (url, dir)
}

#[tokio::test]
async fn memory_is_persisted_within_limits_and_failures_are_remembered() {
    let (url, _db) = memory_server().await;
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "run-memory").await.unwrap().name().to_string();
    let nats = NatsServer::start().await.unwrap();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    // The controller reaches memory servers through the configured address (here: loopback).
    let settings = Settings { memory_url_template: url.clone(), ..Default::default() };
    let tasks = [tokio::spawn(agentrun::completion::run(
        Arc::new(Context { settings, ..Context::with_defaults(client.clone(), None) }),
        bus.clone(),
    ))];
    let h = Harness {
        client,
        ns,
        clock: Arc::new(ManualClock::new(Timestamp::now())),
        bus,
        _nats: nats,
        tasks: tasks.into(),
    };
    h.apply(
        "SympoziumInstance",
        "agent",
        json!({"agents": {"default": {"model": "gpt-4o"}},
        "memory": {"enabled": true, "maxSizeKB": 1}}),
    )
    .await;
    let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "agent-memory"}, "data": {"MEMORY.md": "# Agent Memory\n"}}))
    .unwrap();
    let configmaps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(h.client.clone(), &h.ns);
    configmaps.create(&Default::default(), &cm).await.unwrap();

    // Runs waiting in Running (no controller here), finished over the bus.
    for name in ["remembers", "breaks"] {
        h.run(name, json!({"skills": [{"skillPackRef": "memory"}]})).await;
        let status = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun", "status": {"phase": "Running"}});
        h.runs().patch_status(name, &PatchParams::apply("test"), &Patch::Apply(&status)).await.unwrap();
    }
    let long_memory = format!(
        "# Agent Memory\n{}",
        (0..80).map(|i| format!("- fact {i:02}: {}", "x".repeat(30))).collect::<Vec<_>>().join("\n")
    );
    h.complete_over_bus("remembers", json!({"status": "success", "response": "done", "memory": long_memory}))
        .await;
    h.run_where("remembers", "Succeeded", |r| phase(r) == AgentRunPhase::Succeeded).await;
    let mut memory = String::new();
    for _ in 0..50 {
        memory = configmaps.get("agent-memory").await.unwrap().data.unwrap()["MEMORY.md"].clone();
        if memory.contains("fact 79") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(memory.contains("fact 79"), "the newest memory is kept: {memory}");
    assert!(
        memory.len() <= 1024 && !memory.contains("fact 00:"),
        "trimmed to maxSizeKB: {} bytes",
        memory.len()
    );

    h.complete_over_bus("breaks", json!({"status": "error", "error": "kubectl: connection refused"})).await;
    h.run_where("breaks", "Failed", |r| phase(r) == AgentRunPhase::Failed).await;
    let memories = sympozium_memory::MemoryClient::new(url).unwrap();
    let mut found = Vec::new();
    for _ in 0..50 {
        let query = sympozium_memory::ListQuery { tags: vec!["failure".into()], ..Default::default() };
        found = memories.list(&query).await.unwrap();
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(found.len(), 1, "one failure record");
    assert!(found[0].content.starts_with(
        "## Failed AgentRun: breaks\n**Task**: list crashing pods\n**Error**: kubectl: connection refused"
    ));
    assert!(found[0].tags.contains(&"agent".to_string()), "tagged with the instance: {:?}", found[0].tags);
}

#[tokio::test]
async fn lifecycle_hooks_run_before_and_after_the_agent() {
    let h = Harness::new("run-hooks", 50).await;
    // A volume for the run's workspace claim (the test plane has no provisioner).
    let pv: k8s_openapi::api::core::v1::PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": format!("pv-{}", h.ns)},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                 "hostPath": {"path": format!("/tmp/{}", h.ns)},
                 "claimRef": {"namespace": h.ns, "name": "hooked-workspace"}}}))
    .unwrap();
    let pvs: Api<k8s_openapi::api::core::v1::PersistentVolume> = Api::all(h.client.clone());
    pvs.create(&Default::default(), &pv).await.unwrap();

    h.run("hooked", json!({"lifecycle": {
        "preRun": [{"name": "fetch", "image": "busybox:1.36", "command": ["sh", "-c", "echo ready > /workspace/ctx"]}],
        "postRun": [{"name": "upload", "image": "busybox:1.36", "env": [{"name": "DEST", "value": "reports"}]}]}}))
        .await;
    h.run_where("hooked", "Running", |r| phase(r) == AgentRunPhase::Running).await;
    let jobs: Api<Job> = Api::namespaced(h.client.clone(), &h.ns);
    let agent_pod = jobs.get("hooked").await.unwrap().spec.unwrap().template.spec.unwrap();
    assert_eq!(agent_pod.init_containers.unwrap()[0].name, "pre-fetch");
    let workspace = agent_pod.volumes.unwrap().into_iter().find(|v| v.name == "workspace").unwrap();
    assert_eq!(workspace.persistent_volume_claim.unwrap().claim_name, "hooked-workspace");

    h.complete_over_bus("hooked", json!({"status": "success", "response": "report written"})).await;
    let post = h.run_where("hooked", "PostRunning", |r| phase(r) == AgentRunPhase::PostRunning).await;
    let status = post.status.unwrap();
    assert_eq!((status.exit_code, status.post_run_job_name.as_deref()), (Some(0), Some("hooked-postrun")));
    let post_pod = jobs.get("hooked-postrun").await.unwrap().spec.unwrap().template.spec.unwrap();
    let hook = &post_pod.init_containers.unwrap()[0];
    let env: BTreeMap<_, _> =
        hook.env.iter().flatten().map(|e| (e.name.clone(), e.value.clone().unwrap_or_default())).collect();
    assert_eq!(
        (env["AGENT_EXIT_CODE"].as_str(), env["AGENT_RESULT"].as_str(), env["DEST"].as_str()),
        ("0", "report written", "reports")
    );

    // The fake node completes the post-run Job; the run finishes with the agent's answer.
    let done = h.run_where("hooked", "Succeeded", |r| phase(r) == AgentRunPhase::Succeeded).await;
    assert_eq!(done.status.unwrap().result.as_deref(), Some("report written"));
    let _ = pvs.delete(&format!("pv-{}", h.ns), &Default::default()).await;
}

#[tokio::test]
async fn a_web_endpoint_instance_serves_through_a_deployment() {
    let h = Harness::new("run-serve", 50).await;
    // The instance controller turns the web-endpoint skill into a server-mode run.
    let ctx =
        Context::new(h.client.clone(), Settings::default(), Metrics::default(), Some(h.ns.clone()), "test");
    let instance_controller = tokio::spawn(sympozium_controller::instance::run(Arc::new(ctx)));
    h.apply(
        "SkillPack",
        "web-endpoint",
        json!({
        "skills": [{"name": "web-endpoint", "content": "# Serving"}],
        "sidecar": {"image": "ghcr.io/sympozium-ai/sympozium/web-proxy:test", "requiresServer": true,
                    "mountWorkspace": false, "ports": [{"name": "http", "containerPort": 8080}]}}),
    )
    .await;
    h.apply(
        "SympoziumInstance",
        "web",
        json!({"agents": {"default": {"model": "gpt-4o"}},
        "skills": [{"skillPackRef": "web-endpoint", "params": {"rate_limit_rpm": "30"}}]}),
    )
    .await;

    let run = h.run_where("web-web-endpoint", "Serving", |r| phase(r) == AgentRunPhase::Serving).await;
    let status = run.status.unwrap();
    assert_eq!(status.deployment_name.as_deref(), Some("web-web-endpoint-server"));
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = Api::namespaced(h.client.clone(), &h.ns);
    let d = deployments.get("web-web-endpoint-server").await.unwrap();
    let c = &d.spec.unwrap().template.spec.unwrap().containers[0];
    let key = c.env.iter().flatten().find(|e| e.name == "WEB_PROXY_API_KEY").unwrap();
    assert!(key.value.is_none(), "the API key comes from the Secret, never inline");
    assert_eq!(key.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap().name, "web-web-proxy-key");
    assert!(c.env.iter().flatten().any(|e| e.name == "RATE_LIMIT_RPM" && e.value.as_deref() == Some("30")));
    let secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(h.client.clone(), &h.ns)
        .get("web-web-proxy-key")
        .await
        .unwrap();
    let api_key = String::from_utf8(secret.data.unwrap()["api-key"].0.clone()).unwrap();
    assert!(api_key.starts_with("sk-") && api_key.len() == 51, "a fresh random key");
    let svc = Api::<k8s_openapi::api::core::v1::Service>::namespaced(h.client.clone(), &h.ns)
        .get("web-web-endpoint-server")
        .await
        .unwrap();
    assert_eq!(svc.spec.unwrap().ports.unwrap()[0].port, 8080);

    // The instance reports that it serves, and where.
    let instances: Api<sympozium_api::SympoziumInstance> = Api::namespaced(h.client.clone(), &h.ns);
    let serving = wait_for(
        &instances,
        "web",
        "instance Serving",
        WAIT,
        |i: Option<&sympozium_api::SympoziumInstance>| {
            i.and_then(|i| i.status.as_ref()).is_some_and(|s| s.phase.as_deref() == Some("Serving"))
        },
    )
    .await
    .unwrap();
    let endpoint = serving.status.unwrap().web_endpoint.unwrap();
    assert_eq!(endpoint.url.unwrap(), format!("http://web-web-endpoint-server.{}.svc:8080", h.ns));
    instance_controller.abort();
}

#[tokio::test]
async fn kept_runs_keep_their_job_and_no_secret_leaks_into_status_events_or_configmaps() {
    let h = Harness::new("run-secrets", 50).await;
    let secret_value = "sk-test-9f8e7d6c5b4a-never-print-me";
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"name": "openai-key"}, "stringData": {"OPENAI_API_KEY": secret_value}}))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(h.client.clone(), &h.ns)
        .create(&Default::default(), &secret)
        .await
        .unwrap();
    h.run("kept", json!({"cleanup": "keep"})).await;
    h.run("removed", json!({})).await;
    for name in ["kept", "removed"] {
        h.run_where(name, "Running", |r| phase(r) == AgentRunPhase::Running).await;
        h.complete_over_bus(name, json!({"status": "success", "response": "all good"})).await;
        h.run_where(name, "Succeeded", |r| phase(r) == AgentRunPhase::Succeeded).await;
    }
    let jobs: Api<Job> = Api::namespaced(h.client.clone(), &h.ns);
    wait_until_gone(&jobs, "removed", "the finished run's Job", WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let kept = jobs.get_opt("kept").await.unwrap().expect("cleanup: keep keeps the Job for debugging");
    assert_eq!(kept.spec.unwrap().ttl_seconds_after_finished, None, "and no TTL removes it later");
    // The key reaches the pod only through envFrom/secretKeyRef, never as a value.
    let pod = jobs.get("kept").await.unwrap().spec.unwrap().template.spec.unwrap();
    assert_eq!(
        pod.containers[0].env_from.as_ref().unwrap()[0].secret_ref.as_ref().unwrap().name,
        "openai-key"
    );

    let mut scanned = String::new();
    for r in h.runs().list(&Default::default()).await.unwrap() {
        scanned.push_str(&serde_json::to_string(&r).unwrap());
    }
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(h.client.clone(), &h.ns);
    scanned.push_str(&serde_json::to_string(&events.list(&Default::default()).await.unwrap().items).unwrap());
    let configmaps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(h.client.clone(), &h.ns);
    scanned.push_str(
        &serde_json::to_string(&configmaps.list(&Default::default()).await.unwrap().items).unwrap(),
    );
    scanned.push_str(&serde_json::to_string(&jobs.list(&Default::default()).await.unwrap().items).unwrap());
    assert!(scanned.len() > 1000, "there was something to scan");
    assert!(!scanned.contains(secret_value), "the secret leaked into runs, events, ConfigMaps or Jobs");
}

/// The instance's fallback models reach the runner as `MODEL_FALLBACKS`, in the runner's own
/// format, each key from its own Secret; a run of an instance without fallbacks gets none.
#[tokio::test]
async fn the_instances_fallback_models_reach_the_runner() {
    let h = Harness::new("run-failover", 50).await;
    h.run("plain", json!({})).await;
    h.run_where("plain", "Running", |r| phase(r) == AgentRunPhase::Running).await;
    h.apply(
        "SympoziumInstance",
        "agent",
        json!({"agents": {"default": {"model": "gpt-4o", "modelFallbacks": [
            {"provider": "anthropic", "model": "claude-sonnet-4-20250514", "authSecretRef": "anthropic-key"},
            {"provider": "ollama", "model": "llama3.1", "baseURL": "http://ollama.models:11434"},
            {"provider": "azure-openai", "model": "gpt-4o", "authSecretRef": "azure-key", "authSecretKey": "key1"}]}},
        "authRefs": [{"provider": "openai", "secret": "openai-key"}]}),
    )
    .await;
    h.run("failover", json!({})).await;
    h.run_where("failover", "Running", |r| phase(r) == AgentRunPhase::Running).await;

    let jobs = Api::<Job>::namespaced(h.client.clone(), &h.ns);
    let agent_env = |job: Job| {
        let pod = job.spec.unwrap().template.spec.unwrap();
        pod.containers.into_iter().find(|c| c.name == "agent").unwrap().env.unwrap_or_default()
    };
    let plain = agent_env(jobs.get("plain").await.unwrap());
    assert!(!plain.iter().any(|e| e.name == "MODEL_FALLBACKS" || e.name.starts_with("SYMPOZIUM_FALLBACK_")));

    let env = agent_env(jobs.get("failover").await.unwrap());
    let chain = env.iter().find(|e| e.name == "MODEL_FALLBACKS").unwrap().value.clone().unwrap();
    let chain: serde_json::Value = serde_json::from_str(&chain).unwrap();
    assert_eq!(
        chain,
        json!([
            {"provider": "anthropic", "model": "claude-sonnet-4-20250514", "apiKeyEnv": "SYMPOZIUM_FALLBACK_0_API_KEY"},
            {"provider": "ollama", "model": "llama3.1", "baseURL": "http://ollama.models:11434"},
            {"provider": "azure-openai", "model": "gpt-4o", "apiKeyEnv": "SYMPOZIUM_FALLBACK_2_API_KEY"}
        ])
    );
    let key_ref = |name: &str| {
        let var = env.iter().find(|e| e.name == name).unwrap();
        assert!(var.value.is_none(), "a key is never written into the pod spec");
        let r = var.value_from.clone().unwrap().secret_key_ref.unwrap();
        (r.name, r.key)
    };
    assert_eq!(key_ref("SYMPOZIUM_FALLBACK_0_API_KEY"), ("anthropic-key".into(), "ANTHROPIC_API_KEY".into()));
    assert_eq!(key_ref("SYMPOZIUM_FALLBACK_2_API_KEY"), ("azure-key".into(), "key1".into()));
    assert!(!env.iter().any(|e| e.name == "SYMPOZIUM_FALLBACK_1_API_KEY"), "a keyless model gets no key");
}
