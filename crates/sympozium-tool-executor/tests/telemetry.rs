//! The `tool-executor` binary on the shared telemetry init: a command the runner sends with
//! its trace context (`_meta.traceparent`, as `execute_command` writes it) runs under a
//! `sympozium.tool.exec` span in that trace, exported to a real OpenTelemetry Collector,
//! with the command's exit code; the executor logs JSON lines.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use sympozium_testkit::otelcol::OtelCollector;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_runs_in_the_runs_trace() {
    let collector = OtelCollector::start().await.unwrap();
    let ipc = tempfile::tempdir().unwrap();
    let tools = ipc.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tool-executor"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("IPC_DIR", ipc.path())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", collector.grpc_endpoint())
        // No scheduled export before the end: the span must leave with the flush at exit.
        .env("SYMPOZIUM_OTEL_BATCH_TIMEOUT", "60s")
        .env("OTEL_SERVICE_NAME", "sympozium-skill-k8s-ops")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let request = json!({"id": "c1", "command": "echo hi; exit 3", "timeout": 10,
        "_meta": {"trace_id": TRACE, "span_id": PARENT, "traceparent": traceparent}});
    std::fs::write(tools.join("exec-request-c1.json"), request.to_string()).unwrap();
    let result = tools.join("exec-result-c1.json");
    for _ in 0..200 {
        if result.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let result: serde_json::Value = serde_json::from_slice(&std::fs::read(&result).unwrap()).unwrap();
    assert_eq!((result["exitCode"].as_i64(), result["stdout"].as_str()), (Some(3), Some("hi\n")));

    // `/ipc/done` ends the executor, which flushes its telemetry on the way out.
    std::fs::write(ipc.path().join("done"), "").unwrap();
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output()).await.unwrap().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v["level"] == "INFO")),
        "JSON log lines: {stderr}"
    );

    let mut span = None;
    for _ in 0..200 {
        span = collector.spans().into_iter().find(|s| s["name"] == "sympozium.tool.exec");
        if span.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let span = span.unwrap_or_else(|| panic!("no span; collector log:\n{}", collector.log()));
    assert_eq!(span["traceId"], TRACE, "the run's trace");
    assert_eq!(span["parentSpanId"], PARENT, "under the runner's tool span");
    assert_eq!(span["attrs"]["process.exit.code"], 3);
    assert_eq!(span["attrs"]["gen_ai.tool.call.id"], "c1");
    assert_eq!(span["status"]["code"], 2, "a failing command marks the span as an error");
    assert_eq!(span["resource"]["service.name"], "sympozium-skill-k8s-ops");
}
