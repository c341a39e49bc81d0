//! The shared telemetry init against a real OpenTelemetry Collector: what a component
//! exports over gRPC and over HTTP arrives as connected spans, metrics and log records
//! with the resource attributes, and a collector that is down costs nothing but the data.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use sympozium_testkit::otelcol::OtelCollector;

const PROBE: &str = env!("CARGO_BIN_EXE_sympozium-telemetry-probe");

fn probe(envs: &[(&str, &str)]) -> (Output, Value) {
    let mut cmd = Command::new(PROBE);
    for var in ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "TRACEPARENT", "RUST_LOG"] {
        cmd.env_remove(var);
    }
    cmd.env("SYMPOZIUM_OTEL_BATCH_TIMEOUT", "200ms")
        .env("NAMESPACE", "team-a")
        .env("INSTANCE_NAME", "triage");
    cmd.envs(envs.iter().copied());
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "probe failed: {}", String::from_utf8_lossy(&out.stderr));
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, report)
}

async fn eventually<T>(what: &str, collector: &OtelCollector, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} never reached the collector; its log:\n{}", collector.log());
}

async fn check_export(protocol: &str) {
    let collector = OtelCollector::start().await.unwrap();
    let endpoint = if protocol == "grpc" { collector.grpc_endpoint() } else { collector.http_endpoint() };
    let (out, report) = probe(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
        ("OTEL_RESOURCE_ATTRIBUTES", "team=sre"),
    ]);
    let traceparent = report["traceparent"].as_str().unwrap().to_string();
    let trace_id = traceparent.split('-').nth(1).unwrap().to_string();

    let spans = eventually("both spans", &collector, || {
        let spans: Vec<Value> = collector
            .spans()
            .into_iter()
            .filter(|s| s["traceId"].as_str() == Some(trace_id.as_str()))
            .collect();
        (spans.len() == 2).then_some(spans)
    })
    .await;
    let root = spans.iter().find(|s| s["name"] == "sympozium.probe").unwrap();
    let child = spans.iter().find(|s| s["name"] == "sympozium.probe.child").unwrap();
    assert_eq!(child["parentSpanId"], root["spanId"], "child of the root: {spans:?}");
    assert_eq!(child["attrs"]["probe.step"], 1);
    let resource = &root["resource"];
    assert_eq!(resource["service.name"], "sympozium-telemetry-probe");
    assert_eq!(resource["sympozium.component"], "telemetry-probe");
    assert_eq!(resource["k8s.namespace.name"], "team-a");
    assert_eq!(resource["sympozium.instance"], "triage");
    assert_eq!(resource["team"], "sre", "OTEL_RESOURCE_ATTRIBUTES reach the resource");

    let metric = eventually("the counter", &collector, || {
        collector.metrics().into_iter().find(|m| m["name"] == "sympozium.probe.count")
    })
    .await;
    assert_eq!(metric["sum"]["dataPoints"][0]["asInt"], "1", "{metric}");

    let log = eventually("the log record", &collector, || {
        collector.logs().into_iter().find(|l| l["body"]["stringValue"] == "probe log record")
    })
    .await;
    assert_eq!(log["traceId"].as_str(), Some(trace_id.as_str()), "log record carries its trace: {log}");

    // The stderr JSON line of the same event names the same trace and the child span.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line: Value = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "probe log record")
        .unwrap_or_else(|| panic!("no JSON log line in {stderr}"));
    assert_eq!(line["trace_id"].as_str(), Some(trace_id.as_str()), "{line}");
    assert_eq!(line["span_id"], child["spanId"], "{line}");
    assert_eq!(line["answer"], 42);
}

#[tokio::test]
async fn exports_traces_metrics_and_logs_over_grpc() {
    check_export("grpc").await;
}

#[tokio::test]
async fn exports_traces_metrics_and_logs_over_http() {
    check_export("http/protobuf").await;
}

#[tokio::test]
async fn continues_a_remote_trace_and_honours_the_sampling_ratio() {
    let collector = OtelCollector::start().await.unwrap();
    let endpoint = collector.grpc_endpoint();
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    probe(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint), ("TRACEPARENT", parent)]);
    let root = eventually("the continued root span", &collector, || {
        collector.spans().into_iter().find(|s| s["name"] == "sympozium.probe")
    })
    .await;
    assert_eq!(root["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(root["parentSpanId"], "00f067aa0ba902b7");

    // Ratio 0 samples no new trace: spans stay home, metrics still flow.
    let (_, report) = probe(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint), ("OTEL_TRACES_SAMPLER_ARG", "0")]);
    let unsampled = report["traceparent"].as_str().unwrap_or_default().to_string();
    eventually("the second probe's metrics", &collector, || {
        (collector.metrics().iter().filter(|m| m["name"] == "sympozium.probe.count").count() >= 2)
            .then_some(())
    })
    .await;
    let trace_id = unsampled.split('-').nth(1).unwrap_or("none");
    assert!(
        !collector.spans().iter().any(|s| s["traceId"].as_str() == Some(trace_id)),
        "ratio 0 must not export new traces"
    );
}

#[tokio::test]
async fn a_collector_that_is_down_blocks_nothing() {
    let mut collector = OtelCollector::start().await.unwrap();
    let endpoint = collector.grpc_endpoint();
    let http = collector.http_endpoint();
    collector.stop();
    for (endpoint, protocol) in [(endpoint, "grpc"), (http, "http/protobuf")] {
        let started = Instant::now();
        // A hang here would hold the test until the harness kills it; the probe must finish
        // on its own, successfully, with its flush budget (2 s) spent at most.
        let (_, report) = probe(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20s3cret-token"),
        ]);
        assert!(report["traceparent"].is_string(), "{protocol}: {report}");
        eprintln!("{protocol}: probe finished in {:?} with the collector down", started.elapsed());
    }
}

#[test]
fn headers_never_reach_the_logs() {
    let out = Command::new(PROBE)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
        .env("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer s3cret-token")
        .env("SYMPOZIUM_OTEL_HEADER_x-api-key", "another-s3cret")
        .args(["--flush-seconds", "1"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("exporting OpenTelemetry"), "{all}");
    assert!(!all.contains("s3cret"), "a header value leaked: {all}");
    let help = Command::new(PROBE)
        .arg("--help")
        .env("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer s3cret-token")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("s3cret"), "--help shows no header value");
}

#[test]
fn bad_settings_are_refused_by_name() {
    let out = Command::new(PROBE).env("OTEL_TRACES_SAMPLER_ARG", "2").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("otel-sampling-ratio") && err.contains("outside"), "{err}");
}
