//! Tool-call round trip through the MCP bridge: the agent runner's own MCP tool writes
//! `mcp-request-<n>.json`, the bridge (in this process, the same code as the sidecar) picks
//! it up, calls the testkit's rmcp knowledge-base server over Streamable HTTP on loopback,
//! and writes `mcp-result-<n>.json`, which the runner reads. Also the bare rmcp call, as
//! the floor. `make bench-mcp` (release build); `--calls N` (default 1000).

#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark code

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sympozium_agent_runner::tools::{Tool, load_mcp_tools};
use sympozium_mcp_bridge::bridge::{Bridge, Settings, serve, write_atomic};
use sympozium_mcp_bridge::client::{EnvLookup, connect};
use sympozium_mcp_bridge::{ServerConfig, ServersFile};
use sympozium_testkit::mcp::{KnowledgeBase, McpHttpServer};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<28} n={:<5} p50 {:>7.3} ms   p90 {:>7.3} ms   p99 {:>7.3} ms   max {:>7.3} ms",
        samples.len(),
        ms(percentile(&samples, 0.50)),
        ms(percentile(&samples, 0.90)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().unwrap())
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let calls: usize =
        std::env::args().skip_while(|a| a != "--calls").nth(1).and_then(|n| n.parse().ok()).unwrap_or(1000);
    let kb =
        McpHttpServer::start("127.0.0.1:0".parse().unwrap(), KnowledgeBase::default(), None).await.unwrap();
    let config: ServerConfig =
        serde_json::from_value(json!({"name": "kb", "url": kb.url(), "toolsPrefix": "kb"})).unwrap();
    let env: EnvLookup = Arc::new(|_: &str| None);

    // Floor: rmcp client straight to the server.
    let session = connect(&config, &env, Duration::from_secs(10)).await.unwrap();
    let args = json!({"term": "sympozium"}).as_object().unwrap().clone();
    let mut direct = Vec::with_capacity(calls);
    for _ in 0..calls.min(50) {
        session.call("lookup", args.clone(), None, Duration::from_secs(10)).await.unwrap();
    }
    for _ in 0..calls {
        let t = Instant::now();
        session.call("lookup", args.clone(), None, Duration::from_secs(10)).await.unwrap();
        direct.push(t.elapsed());
    }

    // Through the bridge and the IPC files, with the runner's tool.
    let dir = tempfile::tempdir().unwrap();
    let tools_dir = dir.path().join("tools");
    std::fs::create_dir_all(&tools_dir).unwrap();
    let bridge = Arc::new(Bridge::new(&ServersFile { servers: vec![config] }, env, Settings::default()));
    let manifest = bridge.discover().await;
    write_atomic(&tools_dir.join("mcp-tools.json"), &serde_json::to_value(&manifest).unwrap()).unwrap();
    let done = dir.path().join("output/result.json");
    let server = tokio::spawn(serve(bridge, tools_dir.clone(), done.clone(), std::future::pending()));
    let tools = load_mcp_tools(&tools_dir, Duration::ZERO, None).await;
    let lookup = tools.iter().find(|t| t.spec().name == "kb_lookup").unwrap();
    let mut bridged = Vec::with_capacity(calls);
    for _ in 0..calls.min(50) {
        lookup.call(json!({"term": "sympozium"})).await;
    }
    for _ in 0..calls {
        let t = Instant::now();
        let out = lookup.call(json!({"term": "sympozium"})).await;
        bridged.push(t.elapsed());
        assert!(out.text().contains("Kubernetes-native"), "{}", out.text());
    }
    std::fs::create_dir_all(done.parent().unwrap()).unwrap();
    std::fs::write(&done, "{}").unwrap();
    let _ = server.await;

    println!("MCP tool-call round trip, {calls} sequential calls, loopback, 2 worker threads");
    report("rmcp client -> server", direct);
    report("runner -> bridge -> server", bridged);
}
