#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Memory: the memory-server integration (auto-context, tools, auto-store) against a small
//! HTTP server speaking the memory server's routes, and legacy ConfigMap memory markers.

mod common;

use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use common::{Pod, run_runner};
use serde_json::{Value, json};
use sympozium_testkit::fake_llm::{FakeLlm, Turn};

#[derive(Default)]
struct Store {
    entries: Vec<Value>,
    searches: Vec<Value>,
}

type Shared = Arc<Mutex<Store>>;

async fn search(State(s): State<Shared>, Json(body): Json<Value>) -> Json<Value> {
    let mut store = s.lock().unwrap();
    store.searches.push(body.clone());
    let query = body["query"].as_str().unwrap_or_default().to_lowercase();
    let hits: Vec<Value> = store
        .entries
        .iter()
        .filter(|e| {
            query.split_whitespace().any(|w| e["content"].as_str().unwrap().to_lowercase().contains(w))
        })
        .cloned()
        .collect();
    Json(json!({"success": true, "content": hits}))
}

async fn store_entry(State(s): State<Shared>, Json(body): Json<Value>) -> Json<Value> {
    let mut store = s.lock().unwrap();
    let id = store.entries.len() as i64 + 1;
    store.entries.push(json!({"id": id, "content": body["content"], "tags": body["tags"],
        "created_at": "2026-11-23T10:00:00Z", "updated_at": "2026-11-23T10:00:00Z"}));
    Json(json!({"success": true, "content": {"id": id, "stored_at": "2026-11-23T10:00:00Z"}}))
}

async fn list(
    State(s): State<Shared>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Json<Value> {
    let store = s.lock().unwrap();
    let tag = q.get("tags").cloned().unwrap_or_default();
    let hits: Vec<Value> =
        store.entries.iter().filter(|e| e["tags"].to_string().contains(&tag)).cloned().collect();
    Json(json!({"success": true, "content": hits}))
}

async fn memory_server(seed: Vec<Value>) -> (String, Shared) {
    let state: Shared = Arc::new(Mutex::new(Store { entries: seed, searches: Vec::new() }));
    let app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/search", post(search))
        .route("/store", post(store_entry))
        .route("/list", get(list))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), state)
}

#[tokio::test]
async fn memory_server_context_tools_and_auto_store() {
    let seed = vec![json!({"id": 7, "content": "The payments service OOMs when replicas < 3",
        "tags": ["payments"], "created_at": "2026-11-01T09:00:00Z", "updated_at": "2026-11-01T09:00:00Z"})];
    let (url, state) = memory_server(seed).await;
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.script([
        Turn::tool_call("memory_search", json!({"query": "payments"})),
        Turn::tool_call(
            "memory_store",
            json!({"content": "payments needs 3 replicas", "tags": ["payments", "sizing"]}),
        ),
        Turn::text("Scale payments to 3 replicas."),
    ]);
    let base = fake.openai_base_url();
    let env = [
        ("TASK", "Why does payments crash?"),
        ("MODEL_BASE_URL", base.as_str()),
        ("TOOLS_ENABLED", "true"),
        ("MEMORY_SERVER_URL", url.as_str()),
    ];
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let requests = fake.requests();
    let system = requests[0].body["messages"][0]["content"].as_str().unwrap().to_string();
    assert!(system.contains("## Persistent Memory"));
    assert!(system.contains("Relevant Past Context (auto-retrieved)"));
    assert!(system.contains("**Memory #7** (2026-11-01T09:00:00Z) [payments]\nThe payments service OOMs"));
    assert!(requests[0].tool_names().contains(&"memory_search".to_string()));
    let tool_msg = |i: usize| {
        requests[i].body["messages"].as_array().unwrap().iter().rev().find(|m| m["role"] == "tool").unwrap()["content"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(tool_msg(1).starts_with("**Memory #7**"), "{}", tool_msg(1));
    assert_eq!(tool_msg(2), r#"{"id":2,"stored_at":"2026-11-23T10:00:00Z"}"#);
    let store = state.lock().unwrap();
    assert_eq!(store.searches[0], json!({"query": "Why does payments crash?", "top_k": 3}));
    let auto = store.entries.last().unwrap();
    assert_eq!(auto["tags"], json!(["auto", "agent-run"]));
    assert_eq!(auto["content"], "Task: Why does payments crash?\n\nResponse: Scale payments to 3 replicas.");
}

#[tokio::test]
async fn memory_tools_report_server_failures_as_errors() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    // A server that answers every route with 500.
    let app =
        Router::new().fallback(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "db locked") });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    fake.script([Turn::tool_call("memory_list", json!({})), Turn::text("done")]);
    let base = fake.openai_base_url();
    let env = [
        ("TASK", "t"),
        ("MODEL_BASE_URL", base.as_str()),
        ("TOOLS_ENABLED", "true"),
        ("MEMORY_SERVER_URL", url.as_str()),
    ];
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let system = fake.requests()[0].body["messages"][0]["content"].as_str().unwrap().to_string();
    assert!(system.contains("Call `memory_search` first"));
    let msgs = fake.requests()[1].body["messages"].as_array().unwrap().clone();
    let tool = msgs.iter().find(|m| m["role"] == "tool").unwrap();
    assert_eq!(tool["content"], "Error: Memory server returned 500: db locked");
}

#[tokio::test]
async fn legacy_memory_is_prepended_and_the_marker_printed() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    std::fs::write(pod.memory.join("MEMORY.md"), "- cluster runs k8s 1.31").unwrap();
    fake.push(Turn::text(
        "Upgrade is safe.\n__SYMPOZIUM_MEMORY__\n- cluster runs k8s 1.31\n- upgrade checked\n__SYMPOZIUM_MEMORY_END__",
    ).streamed(9, std::time::Duration::ZERO));
    let base = fake.openai_base_url();
    let env =
        [("TASK", "Is the upgrade safe?"), ("MODEL_BASE_URL", base.as_str()), ("MEMORY_ENABLED", "true")];
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.result()["response"], "Upgrade is safe.");
    // The memory block is hidden from the live stream too, even split across deltas.
    let streamed: String = pod.chunks().iter().map(|c| c["content"].as_str().unwrap().to_string()).collect();
    assert!(!streamed.contains("SYMPOZIUM") && !streamed.contains("upgrade checked"), "{streamed}");
    assert_eq!(streamed.trim(), "Upgrade is safe.");
    assert!(out.stdout.contains(
        "\n__SYMPOZIUM_MEMORY__- cluster runs k8s 1.31\n- upgrade checked__SYMPOZIUM_MEMORY_END__\n"
    ));
    let body = &fake.requests()[0].body;
    assert_eq!(
        body["messages"][1]["content"],
        "## Your Memory\n- cluster runs k8s 1.31\n\n## Current Task\nIs the upgrade safe?"
    );
    assert!(body["messages"][0]["content"].as_str().unwrap().contains("__SYMPOZIUM_MEMORY__"));
    // The new memory also travels in result.json, for controllers that cannot read the log.
    assert_eq!(pod.result_file().unwrap()["memory"], "- cluster runs k8s 1.31\n- upgrade checked");
}

#[tokio::test]
async fn auto_store_can_be_switched_off() {
    let (url, state) = memory_server(Vec::new()).await;
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.push(Turn::text("Nothing to report."));
    let base = fake.openai_base_url();
    let env = [
        ("TASK", "Quick check"),
        ("MODEL_BASE_URL", base.as_str()),
        ("MEMORY_SERVER_URL", url.as_str()),
        ("MEMORY_AUTO_STORE", "false"),
    ];
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.result()["response"], "Nothing to report.");
    let store = state.lock().unwrap();
    assert_eq!(store.searches.len(), 1, "auto-context still runs");
    assert!(store.entries.is_empty(), "nothing stored when auto-store is off");
}

#[tokio::test]
async fn channel_context_reaches_the_prompt() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.script([
        Turn::tool_call(
            "send_channel_message",
            json!({"channel": "slack", "chatId": "C123", "text": "on it"}),
        ),
        Turn::text("ok"),
    ]);
    let base = fake.openai_base_url();
    let env = [
        ("TASK", "t"),
        ("MODEL_BASE_URL", base.as_str()),
        ("TOOLS_ENABLED", "true"),
        ("SOURCE_CHANNEL", "slack"),
        ("SOURCE_CHAT_ID", "C123"),
    ];
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let system = fake.requests()[0].body["messages"][0]["content"].as_str().unwrap().to_string();
    assert!(system.contains("## Channel Context") && system.contains("slack channel (chat id: C123)"));
    assert_eq!(
        pod.ipc_files("messages"),
        vec![json!({"channel": "slack", "chatId": "C123", "text": "on it"})]
    );
}

#[tokio::test]
async fn system_prompt_sections_come_in_the_spec_order() {
    let (url, _state) = memory_server(Vec::new()).await;
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    std::fs::write(pod.skills.join("b-second.md"), "Second skill.").unwrap();
    std::fs::write(pod.skills.join("a-first.md"), "  First skill.  \n").unwrap();
    std::fs::write(pod.skills.join(".hidden.md"), "Hidden skill.").unwrap();
    std::fs::write(pod.skills.join("empty.md"), "   ").unwrap();
    let manifest =
        json!({"tools": [{"name": "argocd_sync", "description": "Sync an app", "server": "argocd"}]});
    std::fs::write(pod.ipc.join("tools/mcp-tools.json"), manifest.to_string()).unwrap();
    fake.push(Turn::text("ok"));
    let base = fake.base_url();
    let env = [
        ("TASK", "t"),
        ("SYSTEM_PROMPT", "You are the SRE agent."),
        ("MODEL_PROVIDER", "anthropic"),
        ("MODEL_BASE_URL", base.as_str()),
        ("TOOLS_ENABLED", "true"),
        ("SKILL_SIDECARS", "k8s-ops"),
        ("SOURCE_CHANNEL", "telegram"),
        ("SOURCE_CHAT_ID", "42"),
        ("MEMORY_SERVER_URL", url.as_str()),
    ];
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let system = fake.requests()[0].system_prompt();
    assert!(system.starts_with("You are the SRE agent."));
    assert!(system.contains("First skill.\n\n---\n\nSecond skill."), "{system}");
    assert!(!system.contains("Hidden skill."));
    let order: Vec<usize> = [
        "## Your Skills",
        "## Tool Usage",
        "## Channel Context",
        "## Specialized MCP Tools",
        "## Persistent Memory",
    ]
    .iter()
    .map(|h| system.find(h).unwrap_or_else(|| panic!("missing {h} in {system}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    assert!(system.contains("- argocd: argocd_sync"));
    assert!(system.contains("execute_command") && system.contains("k8s-ops"));
}
