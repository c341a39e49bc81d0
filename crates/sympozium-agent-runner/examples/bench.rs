//! Runner overhead benchmark against the fake LLM (no network beyond loopback):
//!
//! * start → first LLM request: from spawning the process to the fake receiving request 1;
//! * per tool call: the gap between consecutive LLM requests in a run of many `read_file`
//!   rounds (fake answers instantly, so the gap is the runner's own work: parse the turn,
//!   run the tool, write files, build and send the next request).
//!
//! Run with `make bench-runner` (release build), or
//! `cargo run --release -p sympozium-agent-runner --example bench -- <runner binary>`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;
use sympozium_testkit::fake_llm::{FakeLlm, Turn};

fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!("n={} min={:.2}ms median={:.2}ms p95={:.2}ms", v.len(), ms(v[0]), ms(p(0.5)), ms(p(0.95)))
}

async fn run(bin: &str, fake: &FakeLlm, dirs: &tempfile::TempDir, stream: bool) -> Instant {
    let base = fake.openai_base_url();
    let d = |n: &str| {
        let p = dirs.path().join(n);
        std::fs::create_dir_all(&p).unwrap();
        p
    };
    let started = Instant::now();
    let status = tokio::process::Command::new(bin)
        .env_clear()
        .env("TASK", "benchmark")
        .env("MODEL_BASE_URL", &base)
        .env("OPENAI_API_KEY", "sk-bench")
        .env("TOOLS_ENABLED", "true")
        .env("LLM_STREAM", if stream { "true" } else { "false" })
        .env("MAX_TOOL_ITERATIONS", "1000")
        .env("RUST_LOG", "error")
        .env("IPC_DIR", d("ipc"))
        .env("WORKSPACE_DIR", d("workspace"))
        .env("SKILLS_DIR", d("skills"))
        .env("MEMORY_DIR", d("memory"))
        .env("TMP_DIR", d("tmp"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success(), "runner failed");
    started
}

#[tokio::main]
async fn main() {
    let bin = std::env::args().nth(1).unwrap_or_else(|| "target/release/sympozium-agent-runner".to_string());
    let dirs = tempfile::tempdir().unwrap();
    std::fs::write(dirs.path().join("workspace").join("f.txt"), "x").ok();

    // 1. Process start to first LLM request.
    let mut first = Vec::new();
    let mut whole = Vec::new();
    for _ in 0..30 {
        let fake = FakeLlm::start().await.unwrap();
        fake.push(Turn::text("done").streamed(1, Duration::ZERO));
        let started = run(&bin, &fake, &dirs, true).await;
        whole.push(started.elapsed());
        first.push(fake.requests()[0].at - started);
    }
    println!("start -> first LLM request: {}", stats(first));
    println!("whole one-turn run (process exit): {}", stats(whole));

    // 2. Per tool call overhead.
    std::fs::create_dir_all(dirs.path().join("workspace")).unwrap();
    std::fs::write(dirs.path().join("workspace/f.txt"), "hello").unwrap();
    for stream in [false, true] {
        let fake = FakeLlm::start().await.unwrap();
        let rounds = 200;
        fake.script((0..rounds).map(|_| {
            Turn::tool_call("read_file", json!({"path": "/workspace/f.txt"})).streamed(1, Duration::ZERO)
        }));
        fake.push(Turn::text("done").streamed(1, Duration::ZERO));
        run(&bin, &fake, &dirs, stream).await;
        let reqs = fake.requests();
        let gaps: Vec<Duration> = reqs.windows(2).map(|w| w[1].at - w[0].at).collect();
        println!("per tool call (read_file, stream={stream}): {}", stats(gaps));
    }
}
