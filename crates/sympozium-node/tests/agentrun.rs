//! An AgentRun executed for real on the local node: the AgentRun controller (in-process,
//! on the test plane) builds the Job; the Job's pod lands on `sympozium-node`, whose
//! `agent` container is the real runner (talking to the fake LLM through a Service) and
//! whose `ipc-bridge` sidecar publishes to a real nats-server running as a pod on the same
//! node. The run ends Succeeded with the answer the controller read from the agent's log
//! (through the API server and the node's log endpoint).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use support::*;
use sympozium_api::AgentRun;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_controller::context::Context;
use sympozium_controller::settings::Settings;
use sympozium_controller::{agentrun, skillpack};
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::fake_llm::{FakeLlm, Turn};
use sympozium_testkit::{TestPlane, wait_for};

const WAIT: Duration = Duration::from_secs(90);

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

async fn create<K>(client: &Client, ns: &str, obj: Value)
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope> + Clone + std::fmt::Debug,
    K: serde::de::DeserializeOwned + serde::Serialize,
    <K as kube::Resource>::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    api.create(&PostParams::default(), &serde_json::from_value(obj).unwrap()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_run_executes_on_the_local_node_and_succeeds_with_the_answer_from_its_log() {
    ensure_built("sympozium-agent-runner", &["sympozium-agent-runner"]);
    ensure_built("sympozium-ipc-bridge", &["sympozium-ipc-bridge"]);
    ensure_built("sympozium-tool-executor", &["tool-executor"]);
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = namespace(&client, &plane, "node-run").await;
    let ns = ns.name().to_string();

    // NATS as a pod on the node, behind a Service.
    create::<Pod>(
        &client,
        &ns,
        json!({"metadata": {"name": "nats", "labels": {"app": "nats"}},
        "spec": {"containers": [{"name": "nats", "image": "nats:2.10", "args": ["-js", "-sd", "/data"],
            "ports": [{"name": "client", "containerPort": 4222}],
            "readinessProbe": {"tcpSocket": {"port": 4222}, "periodSeconds": 1},
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "emptyDir": {}}]}}),
    )
    .await;
    create::<Service>(&client, &ns, json!({"metadata": {"name": "nats"},
        "spec": {"selector": {"app": "nats"}, "ports": [{"name": "client", "port": 4222, "targetPort": "client"}]}}))
    .await;

    // The fake LLM runs in this test process on loopback; a selector-less Service whose
    // endpoint is the node's own address leads pods to it.
    let fake = FakeLlm::start().await.unwrap();
    // The agent asks its skill sidecar to list the namespace's pods through the API server,
    // with the per-run ServiceAccount's token and RBAC, then answers.
    let list_pods = r#"SA=/var/run/secrets/kubernetes.io/serviceaccount; echo "sidecar sees $(curl -s --cacert $SA/ca.crt -H "Authorization: Bearer $(cat $SA/token)" https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/api/v1/namespaces/$(cat $SA/namespace)/pods | grep -o 'nats:2.10' | head -n 1) as $(id -u)""#;
    fake.push(Turn::tool_call("execute_command", json!({"command": list_pods})).with_usage(0, 0));
    fake.push(Turn::text("Two pods crash-loop in shop: payments and cart.").with_usage(420, 17));
    host_service(&client, &ns, "llm", port_of(&fake.openai_base_url())).await;
    let base_url = format!("http://llm.{ns}.svc/v1");

    create::<Secret>(
        &client,
        &ns,
        json!({"metadata": {"name": "team-openai-key"}, "stringData": {"OPENAI_API_KEY": "sk-node-key"}}),
    )
    .await;
    apply(&client, &ns, "SkillPack", "skillpacks", "triage", json!({
        "skills": [{"name": "triage", "description": "First ten minutes", "content": "Check recent deployments first."}]})).await;
    apply(
        &client,
        &ns,
        "SkillPack",
        "skillpacks",
        "inspect",
        json!({
        "skills": [{"name": "inspect", "content": "Inspect the cluster with execute_command."}],
        "sidecar": {"image": "ghcr.io/sympozium-ai/sympozium/skill-k8s-ops:latest",
            "rbac": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}}),
    )
    .await;
    apply(
        &client,
        &ns,
        "SympoziumInstance",
        "sympoziuminstances",
        "sre",
        json!({
        "agents": {"default": {"model": "gpt-4o", "baseURL": base_url}},
        "authRefs": [{"provider": "openai", "secret": "team-openai-key"}],
        "skills": [{"skillPackRef": "triage"}],
        "memory": {"enabled": false, "systemPrompt": "You are the SRE watchdog of the shop cluster."}}),
    )
    .await;
    wait_ready(&client, &ns, "nats", WAIT).await;

    let settings =
        Settings { event_bus_url: Some(format!("nats://nats.{ns}.svc:4222")), ..Default::default() };
    let ctx =
        Arc::new(Context::new(client.clone(), settings, Metrics::default(), Some(ns.clone()), "node-e2e"));
    let tasks = [tokio::spawn(agentrun::run(ctx.clone())), tokio::spawn(skillpack::run(ctx.clone()))];
    apply(&client, &ns, "AgentRun", "agentruns", "watch-1", json!({"instanceRef": "sre", "agentId": "primary",
        "sessionKey": "s1", "task": "Which pods are crash-looping?",
        "skills": [{"skillPackRef": "triage"}, {"skillPackRef": "inspect"}],
        "model": {"provider": "openai", "model": "gpt-4o", "baseURL": base_url, "authSecretRef": "team-openai-key"}}))
    .await;

    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    let done = wait_for(
        &runs,
        "watch-1",
        "Succeeded or Failed",
        Duration::from_secs(180),
        |r: Option<&AgentRun>| {
            matches!(
                r.and_then(|r| r.status.as_ref()?.phase),
                Some(AgentRunPhase::Succeeded | AgentRunPhase::Failed)
            )
        },
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let run_pod =
        pods.list(&ListParams::default().labels("job-name=watch-1")).await.unwrap().items.into_iter().next();
    let done = match done {
        Ok(d) => d,
        Err(e) => {
            panic!("{e}; pod: {}", serde_json::to_string_pretty(&run_pod.and_then(|p| p.status)).unwrap())
        }
    };
    let status = done.status.clone().unwrap();
    assert_eq!(status.phase, Some(AgentRunPhase::Succeeded), "{status:?}");
    assert_eq!(status.result.as_deref(), Some("Two pods crash-loop in shop: payments and cart."));
    let usage = status.token_usage.unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens), (420, 17));

    // What the model saw came from the API objects, through the pod's environment and volumes.
    let request = &fake.requests()[0];
    assert_eq!(request.header("authorization"), Some("Bearer sk-node-key"));
    let system = request.system_prompt();
    assert!(system.contains("You are the SRE watchdog of the shop cluster."), "{system}");
    assert!(system.contains("Check recent deployments first."), "{system}");
    let after_tool = fake.requests()[1].body.to_string();
    assert!(
        after_tool.contains("sidecar sees nats:2.10 as 1000"),
        "the skill sidecar ran the command as the pod's user and read pods with its RBAC: {after_tool}"
    );

    // The pod ran here. No bus router runs in this test: the controller read the result
    // marker from the `agent` container's log through the API server and the node's log
    // endpoint.
    let pod = run_pod.expect("the run's pod");
    assert_eq!(pod.spec.as_ref().unwrap().node_name.as_deref(), Some(NODE));
    for t in tasks {
        t.abort();
    }
}

/// `spec.sandbox.enabled` for real: the run's pod gets a `sandbox` container (the tool
/// executor, as the sandbox image maps to on this node), `execute_command` runs there by
/// default — as the pod's user, without the Kubernetes token, the model's key or any other
/// Secret — and still reaches a skill sidecar (with its RBAC) when the model names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_sandbox_commands_run_in_the_sandbox_container_and_named_skills_in_their_sidecar() {
    ensure_built("sympozium-agent-runner", &["sympozium-agent-runner"]);
    ensure_built("sympozium-ipc-bridge", &["sympozium-ipc-bridge"]);
    ensure_built("sympozium-tool-executor", &["tool-executor"]);
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = namespace(&client, &plane, "node-sandbox").await;
    let ns = ns.name().to_string();
    create::<Pod>(
        &client,
        &ns,
        json!({"metadata": {"name": "nats", "labels": {"app": "nats"}},
        "spec": {"containers": [{"name": "nats", "image": "nats:2.10", "args": ["-js", "-sd", "/data"],
            "ports": [{"name": "client", "containerPort": 4222}],
            "readinessProbe": {"tcpSocket": {"port": 4222}, "periodSeconds": 1},
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
            "volumes": [{"name": "data", "emptyDir": {}}]}}),
    )
    .await;
    create::<Service>(&client, &ns, json!({"metadata": {"name": "nats"},
        "spec": {"selector": {"app": "nats"}, "ports": [{"name": "client", "port": 4222, "targetPort": "client"}]}}))
    .await;
    let fake = FakeLlm::start().await.unwrap();
    let in_sandbox = "SA=/var/run/secrets/kubernetes.io/serviceaccount; echo \"sandbox uid=$(id -u) token=$(test -e $SA/token && echo yes || echo no) key=${OPENAI_API_KEY:-none}\" | tee /workspace/note.txt";
    let in_sidecar = r#"SA=/var/run/secrets/kubernetes.io/serviceaccount; echo "sidecar token=$(test -e $SA/token && echo yes || echo no) note=$(cat /workspace/note.txt | cut -c1-7)""#;
    fake.push(Turn::tool_call("execute_command", json!({"command": in_sandbox})).with_usage(0, 0));
    fake.push(
        Turn::tool_call("execute_command", json!({"command": in_sidecar, "skill": "inspect"}))
            .with_usage(0, 0),
    );
    fake.push(Turn::text("Checked.").with_usage(1, 1));
    host_service(&client, &ns, "llm", port_of(&fake.openai_base_url())).await;
    let base_url = format!("http://llm.{ns}.svc/v1");
    create::<Secret>(
        &client,
        &ns,
        json!({"metadata": {"name": "team-openai-key"}, "stringData": {"OPENAI_API_KEY": "sk-node-key"}}),
    )
    .await;
    apply(
        &client,
        &ns,
        "SkillPack",
        "skillpacks",
        "inspect",
        json!({
        "skills": [{"name": "inspect", "content": "Inspect the cluster with execute_command."}],
        "sidecar": {"image": "ghcr.io/sympozium-ai/sympozium/skill-k8s-ops:latest",
            "rbac": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}}),
    )
    .await;
    apply(
        &client,
        &ns,
        "SympoziumInstance",
        "sympoziuminstances",
        "boxed",
        json!({
        "agents": {"default": {"model": "gpt-4o", "baseURL": base_url,
            "sandbox": {"enabled": true, "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}}}}},
        "authRefs": [{"provider": "openai", "secret": "team-openai-key"}]}),
    )
    .await;
    wait_ready(&client, &ns, "nats", WAIT).await;
    let settings =
        Settings { event_bus_url: Some(format!("nats://nats.{ns}.svc:4222")), ..Default::default() };
    let ctx = Arc::new(Context::new(
        client.clone(),
        settings,
        Metrics::default(),
        Some(ns.clone()),
        "node-sandbox",
    ));
    let tasks = [tokio::spawn(agentrun::run(ctx.clone())), tokio::spawn(skillpack::run(ctx.clone()))];
    apply(&client, &ns, "AgentRun", "agentruns", "boxed-1", json!({"instanceRef": "boxed", "agentId": "primary",
        "sessionKey": "s1", "task": "Look around.", "skills": [{"skillPackRef": "inspect"}],
        "model": {"provider": "openai", "model": "gpt-4o", "baseURL": base_url, "authSecretRef": "team-openai-key"}}))
    .await;
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    let done = wait_for(
        &runs,
        "boxed-1",
        "Succeeded or Failed",
        Duration::from_secs(180),
        |r: Option<&AgentRun>| {
            matches!(
                r.and_then(|r| r.status.as_ref()?.phase),
                Some(AgentRunPhase::Succeeded | AgentRunPhase::Failed)
            )
        },
    )
    .await
    .unwrap();
    let status = done.status.unwrap();
    assert_eq!(status.phase, Some(AgentRunPhase::Succeeded), "{status:?}");

    let requests = fake.requests();
    let tool_result = |i: usize| {
        requests[i].body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|m| m["role"] == "tool")
            .map(|m| m["content"].as_str().unwrap_or_default().to_string())
            .unwrap()
    };
    assert_eq!(tool_result(1).trim(), "sandbox uid=1000 token=no key=none", "the sandbox holds nothing");
    assert_eq!(
        tool_result(2).trim(),
        "sidecar token=yes note=sandbox",
        "the named skill ran in its sidecar, which shares /workspace"
    );
    let system = requests[0].system_prompt();
    assert!(system.contains("sandbox container"), "{system}");

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod = pods.list(&ListParams::default().labels("job-name=boxed-1")).await.unwrap().items.remove(0);
    let spec = pod.spec.unwrap();
    let sandbox = spec.containers.iter().find(|c| c.name == "sandbox").unwrap();
    let limits = sandbox.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!((limits["cpu"].0.as_str(), limits["memory"].0.as_str()), ("500m", "256Mi"));
    assert_eq!(sandbox.security_context.as_ref().unwrap().read_only_root_filesystem, Some(true));
    for t in tasks {
        t.abort();
    }
}
