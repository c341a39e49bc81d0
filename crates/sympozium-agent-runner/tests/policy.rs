#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Tool policy: denied tools are not offered and refused if called anyway; `ask` tools wait
//! for a human decision over a real nats-server.

mod common;

use std::time::Duration;

use common::{Pod, run_runner};
use futures_util::StreamExt;
use serde_json::{Value, json};
use sympozium_testkit::fake_llm::{FakeLlm, Turn};
use sympozium_testkit::nats::NatsServer;

/// A real `nats-server -js` from the test kit (missing binary = failing test).
async fn start_nats() -> NatsServer {
    NatsServer::start().await.expect("nats-server (apt-get install nats-server)")
}

/// The subject of the answer to `request` (an approval request envelope): the asking run's own.
fn answer_subject(request: &Value) -> String {
    let ns = request["data"]["namespace"].as_str().filter(|n| !n.is_empty()).unwrap_or("default");
    let run = request["data"]["agentRunId"].as_str().unwrap_or_default();
    sympozium_bus::subject(&sympozium_bus::topics::approval_response(ns, run))
}

/// Answers approval requests with `verdict`, returning the requests it saw.
async fn reviewer(url: &str, verdict: Option<(bool, &'static str)>) -> tokio::task::JoinHandle<Vec<Value>> {
    let client = async_nats::connect(url).await.unwrap();
    let mut requests = client.subscribe("sympozium.tool.approval.request").await.unwrap();
    client.flush().await.unwrap();
    tokio::spawn(async move {
        let mut seen = Vec::new();
        if let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(20), requests.next()).await {
            let envelope: Value = serde_json::from_slice(&msg.payload).unwrap();
            seen.push(envelope.clone());
            if let Some((approved, reason)) = verdict {
                let answer = json!({"topic": "tool.approval.response", "timestamp": "2026-01-01T00:00:00Z",
                    "metadata": {}, "data": {"requestId": envelope["data"]["requestId"], "approved": approved,
                    "reason": reason}});
                client.publish(answer_subject(&envelope), answer.to_string().into()).await.unwrap();
                client.flush().await.unwrap();
            }
        }
        seen
    })
}

fn write_turns(fake: &FakeLlm) {
    fake.script([
        Turn::tool_call(
            "write_file",
            json!({"path": "/workspace/deploy.yaml", "content": "kind: Deployment"}),
        ),
        Turn::text("finished"),
    ]);
}

fn tool_result(fake: &FakeLlm) -> String {
    let body = &fake.requests()[1].body;
    body["messages"].as_array().unwrap().iter().find(|m| m["role"] == "tool").unwrap()["content"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn denied_tools_are_not_offered_and_refused_when_called() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    let manifest = json!({"tools": [
        {"name": "grafana_query", "description": "q", "server": "grafana"},
        {"name": "github_list_prs", "description": "l", "server": "github"}]});
    std::fs::write(pod.ipc.join("tools/mcp-tools.json"), manifest.to_string()).unwrap();
    write_turns(&fake);
    let base = fake.openai_base_url();
    let env = [
        ("TASK", "deploy"),
        ("MODEL_BASE_URL", base.as_str()),
        ("TOOLS_ENABLED", "true"),
        ("SKILL_SIDECARS", "k8s-ops"),
        ("TOOL_POLICY", r#"{"deny": ["write_file", "grafana_*"]}"#),
    ];
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let offered = fake.requests()[0].tool_names();
    assert!(!offered.contains(&"write_file".to_string()), "{offered:?}");
    assert!(!offered.contains(&"grafana_query".to_string()));
    assert!(offered.contains(&"github_list_prs".to_string()));
    assert!(offered.contains(&"execute_command".to_string()));
    let system = fake.requests()[0].body["messages"][0]["content"].as_str().unwrap().to_string();
    assert!(system.contains("## Specialized MCP Tools") && system.contains("- github: github_list_prs"));
    assert!(!system.contains("grafana_query"));
    assert_eq!(tool_result(&fake), "Error: tool write_file is not permitted by this agent's tool policy");
    assert!(!pod.workspace.join("deploy.yaml").exists());
}

#[tokio::test]
async fn an_allow_list_offers_only_what_it_names() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.push(Turn::text("ok"));
    let base = fake.openai_base_url();
    let env = [
        ("TASK", "t"),
        ("MODEL_BASE_URL", base.as_str()),
        ("TOOLS_ENABLED", "true"),
        ("TOOL_POLICY", r#"{"allow": ["read_file", "list_directory"]}"#),
    ];
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(fake.requests()[0].tool_names(), vec!["read_file", "list_directory"]);
}

async fn ask_run(nats: &NatsServer, fake: &FakeLlm, pod: &Pod, timeout: &str) -> common::Outcome {
    ask_run_at(&nats.url(), fake, pod, timeout).await
}

async fn ask_run_at(url: &str, fake: &FakeLlm, pod: &Pod, timeout: &str) -> common::Outcome {
    write_turns(fake);
    let base = fake.openai_base_url();
    let policy = json!({"ask": ["write_file"], "approvalTimeout": timeout}).to_string();
    let env = [
        ("TASK", "deploy"),
        ("MODEL_BASE_URL", base.as_str()),
        ("TOOLS_ENABLED", "true"),
        ("TOOL_POLICY", policy.as_str()),
        ("EVENT_BUS_URL", url),
        ("AGENT_RUN_ID", "run-42"),
        ("INSTANCE_NAME", "ops"),
    ];
    run_runner(pod, &env).await
}

#[tokio::test]
async fn ask_proceeds_when_approved_over_nats() {
    let nats = start_nats().await;
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    let seen = reviewer(&nats.url(), Some((true, "looks fine"))).await;
    let out = ask_run(&nats, &fake, &pod, "20s").await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(pod.workspace.join("deploy.yaml")).unwrap(), "kind: Deployment");
    assert!(tool_result(&fake).starts_with("Successfully wrote"));
    let seen = seen.await.unwrap();
    let request = &seen[0];
    assert_eq!(request["topic"], "tool.approval.request");
    assert_eq!(request["metadata"]["agentRunID"], "run-42");
    assert_eq!(request["data"]["tool"], "write_file");
    assert_eq!(request["data"]["instanceName"], "ops");
    assert_eq!(request["data"]["arguments"]["path"], "/workspace/deploy.yaml");
}

#[tokio::test]
async fn ask_refuses_when_the_reviewer_denies() {
    let nats = start_nats().await;
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    let seen = reviewer(&nats.url(), Some((false, "change freeze until Monday"))).await;
    let out = ask_run(&nats, &fake, &pod, "20s").await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!pod.workspace.join("deploy.yaml").exists());
    assert_eq!(tool_result(&fake), "Error: tool write_file was not approved: change freeze until Monday");
    assert_eq!(seen.await.unwrap().len(), 1);
}

#[tokio::test]
async fn ask_without_an_answer_times_out_as_denied() {
    let nats = start_nats().await;
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    let out = ask_run(&nats, &fake, &pod, "1s").await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!pod.workspace.join("deploy.yaml").exists());
    assert_eq!(tool_result(&fake), "Error: tool write_file was not approved: no approval within 1s");
}

#[tokio::test]
async fn an_answer_sent_while_nats_restarts_still_reaches_the_waiting_runner() {
    let mut nats = start_nats().await;
    let url = nats.url();
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    let client = async_nats::connect(&url).await.unwrap();
    let mut requests = client.subscribe("sympozium.tool.approval.request").await.unwrap();
    client.flush().await.unwrap();
    let reviewer = tokio::spawn(async move {
        let msg = tokio::time::timeout(Duration::from_secs(20), requests.next()).await.unwrap().unwrap();
        let request: Value = serde_json::from_slice(&msg.payload).unwrap();
        // NATS crashes while the runner waits; the reviewer's answer goes out the moment it is
        // back, before the runner's connection has returned (its reconnects back off).
        nats.kill();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        nats.restart().await.unwrap();
        let bus = sympozium_bus::Bus::connect(&nats.url()).await.unwrap();
        let answer = json!({"requestId": request["data"]["requestId"], "approved": true});
        let topic = answer_subject(&request);
        bus.publish(topic.trim_start_matches("sympozium."), Default::default(), &answer).await.unwrap();
        nats
    });
    let out = ask_run_at(&url, &fake, &pod, "30s").await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let result = tool_result(&fake);
    assert_eq!(
        result.split_whitespace().next(),
        Some("Successfully"),
        "approved after the restart: {result}"
    );
    assert_eq!(std::fs::read_to_string(pod.workspace.join("deploy.yaml")).unwrap(), "kind: Deployment");
    drop(reviewer.await.unwrap());
}
