//! What OpenTelemetry export costs a run: the same run (three model calls, two tool calls,
//! against the fake LLM) with export off, exporting to a real OpenTelemetry Collector
//! (OTLP/gRPC and OTLP/HTTP), and pointed at a collector that is down. Each figure is the
//! whole run as a pod sees it: process start to exit, so telemetry init, the spans and
//! metrics of the run and the final flush are all included.
//!
//! Run with `make bench-telemetry` (release build), or
//! `cargo run --release -p sympozium-agent-runner --example telemetry_bench -- <runner binary> [runs]`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;
use sympozium_testkit::fake_llm::{FakeLlm, Turn};
use sympozium_testkit::otelcol::OtelCollector;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn quantile(v: &[Duration], q: f64) -> Duration {
    v[((v.len() - 1) as f64 * q).round() as usize]
}

async fn one_run(bin: &str, dirs: &tempfile::TempDir, otel: &[(&str, String)]) -> Duration {
    let fake = FakeLlm::start().await.unwrap();
    fake.script([
        Turn::tool_call("read_file", json!({"path": "/workspace/f.txt"})).with_usage(100, 10),
        Turn::tool_call("read_file", json!({"path": "/workspace/f.txt"})).with_usage(120, 10),
        Turn::text("done").with_usage(150, 20),
    ]);
    let d = |n: &str| {
        let p = dirs.path().join(n);
        std::fs::create_dir_all(&p).unwrap();
        p
    };
    let mut cmd = tokio::process::Command::new(bin);
    cmd.env_clear()
        .env("TASK", "benchmark")
        .env("MODEL_BASE_URL", fake.openai_base_url())
        .env("OPENAI_API_KEY", "sk-bench")
        .env("TOOLS_ENABLED", "true")
        .env("TRACEPARENT", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        .env("RUST_LOG", "error")
        .env("IPC_DIR", d("ipc"))
        .env("WORKSPACE_DIR", d("workspace"))
        .env("SKILLS_DIR", d("skills"))
        .env("MEMORY_DIR", d("memory"))
        .env("TMP_DIR", d("tmp"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in otel {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let status = cmd.status().await.unwrap();
    let took = started.elapsed();
    assert!(status.success(), "runner failed");
    took
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let bin = args.next().unwrap_or_else(|| "target/release/sympozium-agent-runner".to_string());
    let runs: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(30);
    let dirs = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dirs.path().join("workspace")).unwrap();
    std::fs::write(dirs.path().join("workspace/f.txt"), "hello").unwrap();

    let collector = OtelCollector::start().await.unwrap();
    let mut down = OtelCollector::start().await.unwrap();
    let down_endpoint = down.grpc_endpoint();
    down.stop();
    let modes: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("export off", vec![]),
        ("export on, OTLP/gRPC", vec![("OTEL_EXPORTER_OTLP_ENDPOINT", collector.grpc_endpoint())]),
        (
            "export on, OTLP/HTTP",
            vec![
                ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.http_endpoint()),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".to_string()),
            ],
        ),
        ("collector down (gRPC)", vec![("OTEL_EXPORTER_OTLP_ENDPOINT", down_endpoint)]),
    ];
    // One warm-up run per mode (page cache, first connection), then the runs interleaved,
    // so drift on a shared machine spreads over every mode alike.
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); modes.len()];
    for (_, env) in &modes {
        one_run(&bin, &dirs, env).await;
    }
    for _ in 0..runs {
        for (i, (_, env)) in modes.iter().enumerate() {
            times[i].push(one_run(&bin, &dirs, env).await);
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        quantile(v, 0.5)
    };
    let base = median(&mut times[0]);
    println!("one run (3 model calls, 2 tool calls), process start to exit, {runs} runs per mode:");
    for (i, (name, _)) in modes.iter().enumerate() {
        let v = &mut times[i];
        let m = median(v);
        println!(
            "  {name:<24} median {:>7.1} ms  p95 {:>7.1} ms  overhead vs off {:>+7.1} ms",
            ms(m),
            ms(quantile(v, 0.95)),
            ms(m) - ms(base)
        );
    }
    let spans = collector.spans().len();
    println!("spans the collector received: {spans}");
}
