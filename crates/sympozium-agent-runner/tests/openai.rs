#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! End-to-end runs of the real binary against the fake LLM speaking OpenAI Chat Completions
//! (plus Azure OpenAI and OpenAI-compatible local servers).

mod common;

use std::time::{Duration, Instant};

use common::{Pod, long_answer, messages, run_runner};
use serde_json::json;
use sympozium_testkit::fake_llm::{FakeLlm, Turn};

fn base_env(fake: &FakeLlm) -> Vec<(&'static str, String)> {
    vec![
        ("TASK", "Check the deployment and report.".into()),
        ("MODEL_PROVIDER", "openai".into()),
        ("MODEL_NAME", "gpt-4o-mini".into()),
        ("MODEL_BASE_URL", fake.openai_base_url()),
        ("OPENAI_API_KEY", "sk-test-secret".into()),
        ("TOOLS_ENABLED", "true".into()),
    ]
}

#[tokio::test]
async fn multi_step_tool_run_streams_answer_and_sums_usage() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    std::fs::write(pod.workspace.join("status.txt"), "replicas=3 ready=3").unwrap();
    std::fs::write(pod.skills.join("k8s.md"), "Always check replicas first.").unwrap();
    let answer = long_answer();
    fake.script([
        Turn::tool_call("read_file", json!({"path": "/workspace/status.txt"})).with_usage(100, 20),
        Turn::tool_call("write_file", json!({"path": "/workspace/report.md", "content": "ok"}))
            .with_usage(150, 30),
        Turn::text(&answer).with_usage(200, 40).streamed(4, Duration::from_millis(120)),
    ]);
    let out = run_runner(&pod, &base_env(&fake)).await;

    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let result = out.result();
    assert_eq!(result["status"], "success");
    assert_eq!(result["response"], answer.as_str());
    assert_eq!(result["metrics"]["inputTokens"], 450);
    assert_eq!(result["metrics"]["outputTokens"], 90);
    assert_eq!(result["metrics"]["toolCalls"], 2);
    assert_eq!(pod.result_file().as_ref(), Some(result));
    assert!(pod.done());
    assert_eq!(std::fs::read_to_string(pod.workspace.join("report.md")).unwrap(), "ok");

    // Real incremental chunks, in order, that add up to the answer.
    let chunks = pod.chunks();
    assert!(chunks.len() >= 3, "expected several chunks, got {chunks:?}");
    let joined: String = chunks.iter().map(|c| c["content"].as_str().unwrap()).collect();
    assert_eq!(joined, answer);
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c["index"], i as u64);
        assert_eq!(c["type"], "text");
    }

    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    let first = &requests[0];
    assert_eq!(first.path, "/v1/chat/completions");
    assert_eq!(first.header("authorization"), Some("Bearer sk-test-secret"));
    assert_eq!(first.body["stream"], true);
    let tools = first.tool_names();
    assert!(tools.contains(&"read_file".to_string()) && tools.contains(&"fetch_url".to_string()));
    assert!(!tools.contains(&"execute_command".to_string()), "no sidecar, so no execute_command");
    let system = messages(&first.body)[0]["content"].as_str().unwrap().to_string();
    assert!(system.contains("## Your Skills") && system.contains("Always check replicas first."));
    assert!(system.contains("## Tool Usage"));
    assert!(system.find("## Your Skills") < system.find("## Tool Usage"));
    assert_eq!(messages(&first.body)[1]["content"], "Check the deployment and report.");
    // The second request carries the tool call and its result.
    let second = messages(&requests[1].body);
    let tool_msg = second.iter().find(|m| m["role"] == "tool").unwrap();
    assert_eq!(tool_msg["content"], "replicas=3 ready=3");
    assert_eq!(tool_msg["tool_call_id"], "call_read_file_1");
    assert!(
        second
            .iter()
            .any(|m| m["role"] == "assistant" && m["tool_calls"][0]["function"]["name"] == "read_file")
    );
    // The key never reaches the output.
    assert!(!out.stdout.contains("sk-test-secret") && !out.stderr.contains("sk-test-secret"));
}

#[tokio::test]
async fn without_streaming_the_answer_is_one_chunk() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.push(Turn::text("All good."));
    let mut env = base_env(&fake);
    env.push(("LLM_STREAM", "false".into()));
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.result()["response"], "All good.");
    assert_eq!(fake.requests()[0].body.get("stream"), None);
    let chunks = pod.chunks();
    assert_eq!(chunks, vec![json!({"type": "text", "content": "All good.", "index": 0})]);
}

#[tokio::test]
async fn thinking_high_becomes_reasoning_effort() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.push(Turn::text("done"));
    let mut env = base_env(&fake);
    env.push(("THINKING_MODE", "high".into()));
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(fake.requests()[0].body["reasoning_effort"], "high");
}

#[tokio::test]
async fn retries_429_and_5xx_honouring_retry_after() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.script([
        Turn::error(429, "Rate limit reached").retry_after(1),
        Turn::error(503, "overloaded"),
        Turn::text("recovered"),
    ]);
    let started = Instant::now();
    let out = run_runner(&pod, &base_env(&fake)).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.result()["response"], "recovered");
    assert_eq!(fake.requests().len(), 3);
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 must be waited out");
}

#[tokio::test]
async fn rate_limit_exhaustion_is_a_clear_error() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.script((0..3).map(|_| Turn::error(429, "Rate limit reached for gpt-4o-mini")));
    let mut env = base_env(&fake);
    env.push(("LLM_MAX_RETRIES", "2".into()));
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 1);
    assert_eq!(out.result()["status"], "error");
    assert_eq!(out.error(), "OpenAI API error (HTTP 429): Rate limit reached for gpt-4o-mini");
    assert_eq!(fake.requests().len(), 3);
    assert_eq!(pod.result_file().unwrap()["error"], out.error());
    assert!(pod.done());
}

#[tokio::test]
async fn auth_failure_is_not_retried() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.push(Turn::error(401, "Incorrect API key provided"));
    let out = run_runner(&pod, &base_env(&fake)).await;
    assert_eq!(out.code, 1);
    assert_eq!(out.error(), "OpenAI API error (HTTP 401): Incorrect API key provided");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn azure_uses_deployment_url_api_version_and_api_key_header() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.push(Turn::text("azure answer"));
    let base = fake.base_url();
    let env = [
        ("TASK", "hi"),
        ("MODEL_PROVIDER", "azure-openai"),
        ("MODEL_NAME", "my-gpt4o"),
        ("MODEL_BASE_URL", base.as_str()),
        ("AZURE_OPENAI_API_KEY", "azure-key"),
    ];
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.result()["response"], "azure answer");
    let req = &fake.requests()[0];
    assert_eq!(req.path, "/openai/deployments/my-gpt4o/chat/completions");
    assert_eq!(req.query, "api-version=2024-06-01");
    assert_eq!(req.header("api-key"), Some("azure-key"));
    assert_eq!(req.header("authorization"), None);
    // api-version 2024-06-01 predates `stream_options`; sending it would be rejected.
    assert_eq!(req.body["stream"], true);
    assert!(req.body.get("stream_options").is_none());
}

#[tokio::test]
async fn azure_without_base_url_fails_with_the_spec_message() {
    let pod = Pod::new();
    let out = run_runner(&pod, &[("TASK", "hi"), ("MODEL_PROVIDER", "azure-openai")]).await;
    assert_eq!(out.code, 1);
    assert_eq!(out.error(), "Azure OpenAI requires MODEL_BASE_URL to be set");
}

#[tokio::test]
async fn local_openai_compatible_server_without_key() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.push(Turn::text("local answer"));
    let base = fake.openai_base_url();
    let env = [
        ("TASK", "hi"),
        ("MODEL_PROVIDER", "ollama"),
        ("MODEL_NAME", "llama3.2"),
        ("MODEL_BASE_URL", base.as_str()),
    ];
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let req = &fake.requests()[0];
    assert_eq!(req.header("authorization"), None);
    assert_eq!(req.body["model"], "llama3.2");
    // Tools are off unless TOOLS_ENABLED: none offered.
    assert!(req.tool_names().is_empty());
}

#[tokio::test]
async fn failover_moves_to_the_next_model_when_the_primary_keeps_failing() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.script([Turn::error(503, "primary down"), Turn::text("answer from the fallback")]);
    let fallbacks = json!([{"provider": "anthropic", "model": "claude-sonnet-4", "baseURL": fake.base_url(),
                            "apiKeyEnv": "FALLBACK_KEY"}])
    .to_string();
    let mut env = base_env(&fake);
    env.push(("LLM_MAX_RETRIES", "0".into()));
    env.push(("MODEL_FALLBACKS", fallbacks));
    env.push(("FALLBACK_KEY", "anthropic-key".into()));
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.result()["response"], "answer from the fallback");
    let requests = fake.requests();
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(requests[1].path, "/v1/messages");
    assert_eq!(requests[1].header("x-api-key"), Some("anthropic-key"));
}

/// Azure OpenAI and a local OpenAI-compatible server (Ollama) do what the OpenAI test shows:
/// a tool round, usage summed over turns, the answer streamed in ordered chunks, and
/// `thinking: high` sent as `reasoning_effort`.
#[tokio::test]
async fn azure_and_local_servers_run_tools_stream_and_think_like_openai() {
    for (provider, model, key) in [
        ("azure-openai", "my-gpt4o", Some(("AZURE_OPENAI_API_KEY", "azure-key"))),
        ("ollama", "llama3.2", None),
    ] {
        let fake = FakeLlm::start().await.unwrap();
        let pod = Pod::new();
        std::fs::write(pod.workspace.join("status.txt"), "replicas=3 ready=3").unwrap();
        let answer = "All 3 replicas of the deployment are ready; nothing to do.";
        fake.script([
            Turn::tool_call("read_file", json!({"path": "/workspace/status.txt"})).with_usage(100, 20),
            Turn::text(answer).with_usage(200, 40).streamed(3, Duration::from_millis(100)),
        ]);
        let base = if provider == "azure-openai" { fake.base_url() } else { fake.openai_base_url() };
        let mut env = vec![
            ("TASK", "Check the deployment."),
            ("MODEL_PROVIDER", provider),
            ("MODEL_NAME", model),
            ("MODEL_BASE_URL", base.as_str()),
            ("TOOLS_ENABLED", "true"),
            ("THINKING_MODE", "high"),
        ];
        env.extend(key);
        let out = run_runner(&pod, &env).await;
        assert_eq!(out.code, 0, "{provider}: {}", out.stderr);
        let result = out.result();
        assert_eq!(result["response"], answer, "{provider}");
        assert_eq!(
            (
                &result["metrics"]["inputTokens"],
                &result["metrics"]["outputTokens"],
                &result["metrics"]["toolCalls"]
            ),
            (&json!(300), &json!(60), &json!(1)),
            "{provider}"
        );
        let chunks = pod.chunks();
        assert!(chunks.len() >= 2, "{provider}: {chunks:?}");
        assert_eq!(chunks.iter().map(|c| c["content"].as_str().unwrap()).collect::<String>(), answer);
        assert!(chunks.iter().enumerate().all(|(i, c)| c["index"] == i as u64), "{provider}: in order");
        let requests = fake.requests();
        assert_eq!(requests.len(), 2, "{provider}");
        assert_eq!(requests[0].body["reasoning_effort"], "high", "{provider}");
        let tool = messages(&requests[1].body).into_iter().find(|m| m["role"] == "tool").unwrap();
        assert_eq!(tool["content"], "replicas=3 ready=3", "{provider}");
    }
}
