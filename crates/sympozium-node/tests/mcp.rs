//! MCP end to end on the local node: an instance with three MCP servers — a managed stdio
//! server (the testkit's rmcp notes server run by the MCPServer controller behind the stdio
//! adapter), an external Streamable HTTP server (the testkit's rmcp knowledge base in this
//! process, behind a bearer token from a Secret) and a server that is down — runs a task.
//! The fake LLM calls a prefixed tool of each; the answer carries both results, the tool the
//! policy denies is refused, the down server gives a tool error and the run still succeeds.
//! Both MCPServers report their tools in status.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Secret, Service};
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use support::*;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_api::{AgentRun, MCPServer};
use sympozium_controller::context::Context;
use sympozium_controller::settings::Settings;
use sympozium_controller::{agentrun, mcpserver};
use sympozium_kube::metrics::Metrics;
use sympozium_testkit::fake_llm::{FakeLlm, Turn};
use sympozium_testkit::mcp::{KnowledgeBase, McpHttpServer};
use sympozium_testkit::{TestPlane, wait_for};

const WAIT: Duration = Duration::from_secs(120);

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

async fn node_ip(client: &Client) -> IpAddr {
    let node: Node = Api::all(client.clone()).get(NODE).await.unwrap();
    let addresses = node.status.unwrap().addresses.unwrap();
    addresses.into_iter().find(|a| a.type_ == "InternalIP").unwrap().address.parse().unwrap()
}

async fn wait_server_ready(client: &Client, ns: &str, name: &str) -> MCPServer {
    let api: Api<MCPServer> = Api::namespaced(client.clone(), ns);
    let ready = wait_for(&api, name, "ready with tools", WAIT, |s: Option<&MCPServer>| {
        s.and_then(|s| s.status.as_ref()).is_some_and(|st| st.ready && st.tool_count.is_some())
    })
    .await;
    match ready {
        Ok(s) => s,
        Err(e) => {
            let now = api.get_opt(name).await.unwrap().and_then(|s| s.status);
            let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
            let pod_status: Vec<_> = pods
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|p| p.status)
                .collect();
            panic!("{e}; status now: {now:?}; pods: {}", serde_json::to_string_pretty(&pod_status).unwrap());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_calls_tools_of_a_managed_stdio_server_and_an_external_http_server_through_the_mcp_bridge() {
    ensure_built("sympozium-agent-runner", &["sympozium-agent-runner"]);
    ensure_built("sympozium-ipc-bridge", &["sympozium-ipc-bridge"]);
    ensure_built("sympozium-mcp-bridge", &["sympozium-mcp-bridge"]);
    ensure_built("sympozium-testkit", &["sympozium-testkit-mcp"]);
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = namespace(&client, &plane, "node-mcp").await;
    let ns = ns.name().to_string();

    // NATS for the ipc-bridge, as a pod on the node.
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
        "spec": {"selector": {"app": "nats"}, "ports": [{"name": "client", "port": 4222, "targetPort": "client"}]}})).await;

    // The external server listens on the node's address: pods and this process reach it there.
    let ip = node_ip(&client).await;
    let kb =
        McpHttpServer::start(SocketAddr::new(ip, 0), KnowledgeBase::default(), Some("kb-token-1".into()))
            .await
            .unwrap();
    let down = std::net::TcpListener::bind(SocketAddr::new(ip, 0)).unwrap().local_addr().unwrap();
    let down_url = format!("http://{down}/mcp"); // the listener is gone when `down` is taken

    let fake = FakeLlm::start().await.unwrap();
    fake.push(
        Turn::tool_call("notes_read_note", json!({"name": "oncall"}))
            .and_tool_call("kb_lookup", json!({"term": "sympozium"}))
            .and_tool_call("kb_purge", json!({}))
            .and_tool_call("off_status", json!({})),
    );
    fake.push(Turn::echo_tool_results("Here is what I found:").with_usage(100, 20));
    host_service(&client, &ns, "llm", port_of(&fake.openai_base_url())).await;
    let base_url = format!("http://llm.{ns}.svc/v1");

    create::<Secret>(
        &client,
        &ns,
        json!({"metadata": {"name": "llm-key"}, "stringData": {"OPENAI_API_KEY": "sk-mcp"}}),
    )
    .await;
    create::<Secret>(
        &client,
        &ns,
        json!({"metadata": {"name": "kb-token"}, "stringData": {"token": "kb-token-1"}}),
    )
    .await;
    apply(
        &client,
        &ns,
        "MCPServer",
        "mcpservers",
        "notes",
        json!({
        "transportType": "stdio", "toolsPrefix": "notes", "toolsDeny": ["delete_note"],
        "deployment": {"image": "ghcr.io/sympozium-ai/testkit-mcp-notes:dev", "cmd": "sympozium-testkit-mcp",
            "env": {"NOTES_OWNER": "the SRE team"}}}),
    )
    .await;
    apply(
        &client,
        &ns,
        "MCPServer",
        "mcpservers",
        "kb",
        json!({
        "transportType": "http", "toolsPrefix": "kb", "url": kb.url(), "authSecret": "kb-token"}),
    )
    .await;
    apply(
        &client,
        &ns,
        "SympoziumPolicy",
        "sympoziumpolicies",
        "guarded",
        json!({
        "toolGating": {"defaultAction": "allow", "rules": [{"tool": "kb_purge", "action": "deny"}]}}),
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
        "authRefs": [{"provider": "openai", "secret": "llm-key"}],
        "policyRef": "guarded",
        "mcpServers": [
            {"name": "notes", "toolsPrefix": "notes"},
            {"name": "kb", "toolsPrefix": "kb"},
            {"name": "offline", "toolsPrefix": "off", "url": down_url}],
        "memory": {"enabled": false}}),
    )
    .await;
    wait_ready(&client, &ns, "nats", WAIT).await;

    // The down server is retried twice, not 6 × 10 s: the run still has to finish quickly.
    let settings = Settings {
        event_bus_url: Some(format!("nats://nats.{ns}.svc:4222")),
        mcp_discovery_attempts: 2,
        mcp_discovery_interval: Duration::from_millis(500),
        ..Default::default()
    };
    let ctx =
        Arc::new(Context::new(client.clone(), settings, Metrics::default(), Some(ns.clone()), "node-mcp"));
    let tasks = [tokio::spawn(agentrun::run(ctx.clone())), tokio::spawn(mcpserver::run(ctx.clone()))];

    // Both servers answer the controller and report their tools (filters applied).
    let notes = wait_server_ready(&client, &ns, "notes").await.status.unwrap();
    assert_eq!(notes.tools, ["long_report", "read_note", "slow"]);
    assert_eq!(notes.tool_count, Some(3));
    assert_eq!(notes.url.as_deref(), Some(format!("http://notes.{ns}.svc:8080/mcp").as_str()));
    let kb_status = wait_server_ready(&client, &ns, "kb").await.status.unwrap();
    assert_eq!(kb_status.tools, ["lookup", "purge"]);
    let ready = kb_status.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "External"));

    apply(
        &client,
        &ns,
        "AgentRun",
        "agentruns",
        "ask-1",
        json!({"instanceRef": "sre", "agentId": "primary",
        "sessionKey": "s1", "task": "What does the on-call note say, and what is sympozium?",
        "model": {"provider": "openai", "model": "gpt-4o", "baseURL": base_url, "authSecretRef": "llm-key"}}),
    )
    .await;
    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    let done =
        wait_for(&runs, "ask-1", "Succeeded or Failed", Duration::from_secs(240), |r: Option<&AgentRun>| {
            matches!(
                r.and_then(|r| r.status.as_ref()?.phase),
                Some(AgentRunPhase::Succeeded | AgentRunPhase::Failed)
            )
        })
        .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let run_pod =
        pods.list(&ListParams::default().labels("job-name=ask-1")).await.unwrap().items.into_iter().next();
    let done = match done {
        Ok(d) => d,
        Err(e) => {
            panic!("{e}; pod: {}", serde_json::to_string_pretty(&run_pod.and_then(|p| p.status)).unwrap())
        }
    };
    let status = done.status.clone().unwrap();
    assert_eq!(status.phase, Some(AgentRunPhase::Succeeded), "{status:?}");
    let answer = status.result.unwrap_or_default();
    // The answer carries what each server's tool returned.
    assert!(
        answer.contains("note oncall (kept by the SRE team): rotate the on-call pager on Mondays"),
        "{answer}"
    );
    assert!(answer.contains("sympozium is a Kubernetes-native control plane for AI agents"), "{answer}");
    // The denied tool was refused by the runner; the down server gave a tool error.
    assert!(answer.contains("tool kb_purge is not permitted by this agent's tool policy"), "{answer}");
    assert!(answer.contains("MCP server \"offline\" is unreachable"), "{answer}");

    // The model was offered the prefixed tools with the servers' schemas, minus the denied ones.
    let first = &fake.requests()[0];
    let offered = first.tool_names();
    for t in ["notes_read_note", "notes_long_report", "kb_lookup"] {
        assert!(offered.iter().any(|o| o == t), "{t} not offered: {offered:?}");
    }
    for t in ["kb_purge", "notes_delete_note"] {
        assert!(!offered.iter().any(|o| o == t), "{t} offered: {offered:?}");
    }
    let body = first.body.to_string();
    assert!(body.contains("Look a term up in the knowledge base [MCP: kb]"), "{body}");
    assert!(body.contains("\"term\""), "the server's input schema reached the model: {body}");
    // The bearer token from the Secret reached the external server, from the controller and the pod.
    let auth = kb.authorizations();
    assert!(!auth.is_empty() && auth.iter().all(|a| a == "Bearer kb-token-1"), "{auth:?}");

    let pod = run_pod.expect("the run's pod");
    let spec = pod.spec.unwrap();
    assert!(spec.init_containers.unwrap().iter().any(|c| c.name == "mcp-discover"));
    assert!(spec.containers.iter().any(|c| c.name == "mcp-bridge"));
    for t in tasks {
        t.abort();
    }
}
