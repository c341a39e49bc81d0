#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The runner's OpenTelemetry export, read back from a real collector: one run continues
//! the trace it was given (`TRACEPARENT`) with a run span, a GenAI span per model call
//! carrying model and token counts, and a span per tool call; its metrics arrive; with
//! the collector down the run still succeeds.

mod common;

use std::time::Duration;

use common::{Pod, run_runner};
use serde_json::{Value, json};
use sympozium_testkit::fake_llm::{FakeLlm, Turn};
use sympozium_testkit::otelcol::OtelCollector;

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT: &str = "b7ad6b7169203331";

fn env(fake: &FakeLlm, endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("TASK", "Check the deployment and report.".into()),
        ("MODEL_PROVIDER", "openai".into()),
        ("MODEL_NAME", "gpt-4o-mini".into()),
        ("MODEL_BASE_URL", fake.openai_base_url()),
        ("OPENAI_API_KEY", "sk-test-secret".into()),
        ("TOOLS_ENABLED", "true".into()),
        ("INSTANCE_NAME", "triage".into()),
        ("AGENT_RUN_ID", "triage-run-1".into()),
        ("TRACEPARENT", format!("00-{TRACE}-{PARENT}-01")),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.into()),
        ("OTEL_RESOURCE_ATTRIBUTES", "sympozium.agent_run.id=triage-run-1".into()),
        ("SYMPOZIUM_OTEL_BATCH_TIMEOUT", "200ms".into()),
    ]
}

fn script(fake: &FakeLlm, pod: &Pod) {
    std::fs::write(pod.workspace.join("status.txt"), "replicas=3").unwrap();
    fake.script([
        Turn::tool_call("read_file", json!({"path": "/workspace/status.txt"})).with_usage(100, 20),
        Turn::text("all 3 replicas ready").with_usage(150, 30),
    ]);
}

#[tokio::test]
async fn one_run_exports_a_connected_trace_with_genai_spans_and_metrics() {
    let collector = OtelCollector::start().await.unwrap();
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    script(&fake, &pod);
    let out = run_runner(&pod, &env(&fake, &collector.grpc_endpoint())).await;
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);

    let mut spans = Vec::new();
    for _ in 0..200 {
        spans = collector.spans();
        if spans.iter().any(|s| s["name"] == "sympozium.agent.run") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let named = |name: &str| spans.iter().filter(|s| s["name"] == name).collect::<Vec<&Value>>();
    let run = *named("sympozium.agent.run").first().unwrap_or_else(|| panic!("no run span in {spans:?}"));
    assert!(spans.iter().all(|s| s["traceId"] == TRACE), "one trace, the one given: {spans:#?}");
    assert_eq!(run["parentSpanId"], PARENT, "the run continues the controller's span");
    assert_eq!(run["attrs"]["instance"], "triage");
    assert_eq!(run["attrs"]["gen_ai.usage.input_tokens"], 250);
    assert_eq!(run["attrs"]["gen_ai.usage.output_tokens"], 50);
    assert_eq!(run["attrs"]["gen_ai.tool.call.count"], 1);
    assert_eq!(run["resource"]["service.name"], "sympozium-agent-runner");
    assert_eq!(run["resource"]["sympozium.agent_run.id"], "triage-run-1");

    // Span names follow the GenAI conventions ("chat <model>", "execute_tool <tool>").
    let chats = named("chat gpt-4o-mini");
    assert_eq!(chats.len(), 2, "one span per model call: {spans:#?}");
    for chat in &chats {
        assert_eq!(chat["parentSpanId"], run["spanId"]);
        assert_eq!(chat["kind"], 3, "client span");
        assert_eq!(chat["attrs"]["gen_ai.operation.name"], "chat");
        assert_eq!(chat["attrs"]["gen_ai.system"], "openai");
        assert_eq!(chat["attrs"]["gen_ai.request.model"], "gpt-4o-mini");
    }
    assert_eq!(chats[0]["attrs"]["gen_ai.usage.input_tokens"], 100);
    assert_eq!(chats[0]["attrs"]["gen_ai.response.finish_reasons"], "tool_calls");
    assert_eq!(chats[1]["attrs"]["gen_ai.usage.output_tokens"], 30);
    assert_eq!(chats[1]["attrs"]["gen_ai.response.finish_reasons"], "stop");
    let tool = *named("execute_tool read_file").first().unwrap_or_else(|| panic!("no tool span: {spans:#?}"));
    assert_eq!(tool["parentSpanId"], run["spanId"]);
    assert_eq!(tool["attrs"]["gen_ai.tool.name"], "read_file");

    let mut metrics = Vec::new();
    for _ in 0..200 {
        metrics = collector.metrics();
        if metrics.iter().any(|m| m["name"] == "sympozium.agent.runs") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Sums are cumulative and exported every batch interval: the latest (largest) point
    // of each counter is its total (each has one attribute set here).
    let sum = |name: &str| -> i64 {
        metrics
            .iter()
            .filter(|m| m["name"] == name)
            .flat_map(|m| m["sum"]["dataPoints"].as_array().cloned().unwrap_or_default())
            .map(|p| p["asInt"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0))
            .max()
            .unwrap_or(0)
    };
    assert_eq!(sum("gen_ai.usage.input_tokens"), 250, "{metrics:#?}");
    assert_eq!(sum("gen_ai.usage.output_tokens"), 50);
    assert_eq!(sum("sympozium.agent.runs"), 1);
    assert_eq!(sum("sympozium.tool.invocations"), 1);
}

#[tokio::test]
async fn a_run_succeeds_with_the_collector_down() {
    let mut collector = OtelCollector::start().await.unwrap();
    let endpoint = collector.grpc_endpoint();
    collector.stop();
    let fake = FakeLlm::start().await.unwrap();
    let pod = Pod::new();
    script(&fake, &pod);
    let out = run_runner(&pod, &env(&fake, &endpoint)).await;
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.result()["response"], "all 3 replicas ready");
}
