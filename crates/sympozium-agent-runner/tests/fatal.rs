#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every way a run can fail still leaves result.json, /ipc/done and the stdout marker.

mod common;

use std::time::Duration;

use common::{Pod, run_runner};
use serde_json::json;
use sympozium_testkit::fake_llm::{FakeLlm, Turn};

fn assert_failed(pod: &Pod, out: &common::Outcome) {
    assert_eq!(out.code, 1, "stdout={} stderr={}", out.stdout, out.stderr);
    assert_eq!(out.result()["status"], "error");
    assert_eq!(pod.result_file().as_ref(), Some(out.result()));
    assert!(pod.done());
}

#[tokio::test]
async fn missing_task_prints_the_marker() {
    let pod = Pod::new();
    let out = run_runner(&pod, &[("MODEL_PROVIDER", "openai")]).await;
    assert_failed(&pod, &out);
    assert!(out.error().starts_with("no task provided"), "{}", out.error());
}

#[tokio::test]
async fn task_falls_back_to_task_json() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    std::fs::write(pod.ipc.join("input/task.json"), r#"{"task":"from the file"}"#).unwrap();
    fake.push(Turn::text("ok"));
    let base = fake.openai_base_url();
    let out = run_runner(&pod, &[("MODEL_BASE_URL", base.as_str())]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(fake.requests()[0].body["messages"][1]["content"], "from the file");
}

#[tokio::test]
async fn invalid_configuration_prints_the_marker() {
    let pod = Pod::new();
    let out = run_runner(&pod, &[("TASK", "x"), ("MAX_TOOL_ITERATIONS", "zero")]).await;
    assert_failed(&pod, &out);
    assert!(out.error().contains("MAX_TOOL_ITERATIONS"), "{}", out.error());
    let out = run_runner(&pod, &[("TASK", "x"), ("THINKING_MODE", "extreme")]).await;
    assert!(out.error().contains("THINKING_MODE"), "{}", out.error());
}

#[tokio::test]
async fn iteration_limit() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.script((0..3).map(|_| Turn::tool_call("list_directory", json!({"path": "/workspace"}))));
    let base = fake.openai_base_url();
    let env = [
        ("TASK", "loop"),
        ("MODEL_BASE_URL", base.as_str()),
        ("TOOLS_ENABLED", "true"),
        ("MAX_TOOL_ITERATIONS", "2"),
    ];
    let out = run_runner(&pod, &env).await;
    assert_failed(&pod, &out);
    assert_eq!(out.error(), "exceeded maximum tool-call iterations (2)");
    assert_eq!(out.result()["metrics"]["toolCalls"], 2);
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn circuit_breaker_counts_every_kind_of_tool_failure() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    // An unknown tool, a malformed call and a refused path: all failures, uniformly signalled.
    fake.script([
        Turn::tool_call("no_such_tool", json!({})),
        Turn::tool_call_raw("read_file", "{not json"),
        Turn::tool_call("read_file", json!({"path": "/etc/passwd"})),
        Turn::text("never reached"),
    ]);
    let base = fake.openai_base_url();
    let env = [("TASK", "t"), ("MODEL_BASE_URL", base.as_str()), ("TOOLS_ENABLED", "true")];
    let out = run_runner(&pod, &env).await;
    assert_failed(&pod, &out);
    let error = out.error();
    assert!(error.starts_with("aborting after 3 consecutive rounds of failed tool calls"), "{error}");
    assert!(error.contains("read_file: Error: access denied: /etc/passwd"), "{error}");
    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    let tool_msgs: Vec<String> = requests[2].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tool_msgs[0], "Error: Unknown tool: no_such_tool");
    assert!(tool_msgs[1].starts_with("Error: Error parsing tool arguments"), "{}", tool_msgs[1]);
}

#[tokio::test]
async fn run_timeout_ends_a_hanging_run() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.push(Turn::text("too late").delayed(Duration::from_secs(20)));
    let base = fake.openai_base_url();
    let env = [("TASK", "t"), ("MODEL_BASE_URL", base.as_str()), ("RUN_TIMEOUT", "1s")];
    let out = run_runner(&pod, &env).await;
    assert_failed(&pod, &out);
    assert_eq!(out.error(), "run exceeded RUN_TIMEOUT (1s)");
}

#[tokio::test]
async fn request_timeout_is_retried_then_reported() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.script([Turn::text("slow").delayed(Duration::from_secs(20)), Turn::text("fast")]);
    let base = fake.openai_base_url();
    let env = [("TASK", "t"), ("MODEL_BASE_URL", base.as_str()), ("LLM_REQUEST_TIMEOUT", "1s")];
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.result()["response"], "fast");
}

#[tokio::test]
async fn unreachable_provider_is_a_clear_error() {
    let pod = Pod::new();
    let env = [("TASK", "t"), ("MODEL_BASE_URL", "http://127.0.0.1:9/v1"), ("LLM_MAX_RETRIES", "1")];
    let out = run_runner(&pod, &env).await;
    assert_failed(&pod, &out);
    assert!(out.error().starts_with("OpenAI API error: cannot connect"), "{}", out.error());
}

#[tokio::test]
async fn trace_context_is_written_for_a_valid_traceparent() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.push(Turn::text("ok"));
    let base = fake.openai_base_url();
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let env =
        [("TASK", "t"), ("MODEL_BASE_URL", base.as_str()), ("TRACEPARENT", tp), ("AGENT_RUN_ID", "run-9")];
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ctx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pod.workspace.join(".sympozium/trace-context.json")).unwrap())
            .unwrap();
    assert_eq!(ctx["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(ctx["span_id"], "00f067aa0ba902b7");
    assert_eq!(ctx["agent_run_id"], "run-9");
    assert_eq!(ctx["model"], "gpt-4o-mini");
}

#[tokio::test]
async fn sigterm_still_reports_a_result() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.push(Turn::text("too late").delayed(Duration::from_secs(20)));
    let base = fake.openai_base_url();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sympozium-agent-runner"))
        .env_clear()
        .env("TASK", "t")
        .env("MODEL_BASE_URL", &base)
        .env("IPC_DIR", &pod.ipc)
        .env("WORKSPACE_DIR", &pod.workspace)
        .env("SKILLS_DIR", &pod.skills)
        .env("TMP_DIR", &pod.tmp)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Wait until the request is in flight, then stop the process like the kubelet would.
    assert!(fake.wait_for_requests(1, Duration::from_secs(10)).await, "runner never called the LLM");
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output()).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result = common::parse_marker(&stdout).expect("marker after SIGTERM");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(result["error"], "run terminated by SIGTERM before it finished");
    assert_eq!(pod.result_file().unwrap(), result);
    assert!(pod.done());
}

#[tokio::test]
async fn logs_are_json_lines_on_stderr_without_secrets() {
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    fake.push(Turn::error(401, "bad key"));
    let base = fake.openai_base_url();
    let env = [
        ("TASK", "t"),
        ("MODEL_BASE_URL", base.as_str()),
        ("API_KEY", "sk-very-secret-value"),
        ("RUST_LOG", "info"),
        ("AGENT_RUN_ID", "run-7"),
    ];
    let out = run_runner(&pod, &env).await;
    assert_eq!(out.code, 1);
    let lines: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    let finished = lines.iter().find(|l| l["message"] == "run finished").expect("run finished line");
    assert_eq!(finished["status"], "error");
    assert_eq!(finished["agent_run_id"], "run-7");
    assert!(lines.iter().any(|l| l["message"] == "run started"));
    assert!(!out.stderr.contains("sk-very-secret-value") && !out.stdout.contains("sk-very-secret-value"));
}
