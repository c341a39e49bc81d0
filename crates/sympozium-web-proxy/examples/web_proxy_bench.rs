//! `make bench-web-proxy`: what the web proxy adds between a streamed chat request and its
//! first token. The proxy runs in this process against the test plane and a real
//! nats-server; a stand-in agent watches for the proxy's runs and publishes the first chunk
//! the moment a run appears, so everything measured is the proxy's own path:
//!
//! * request → run visible: reading the instance, creating the AgentRun (API server), the
//!   watch delivering it;
//! * chunk published → first token at the client: NATS, the proxy's dispatch, SSE.
//!
//! Their sum is the overhead on top of the agent's own time to its first token (pod start
//! and the model). Requests go one at a time; `--requests N` (default 200).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark code

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::PostParams;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;
use sympozium_api::SympoziumInstance;
use sympozium_bus::{Bus, topics};
use sympozium_testkit::TestPlane;
use sympozium_testkit::nats::NatsServer;
use sympozium_web_proxy::auth::Gate;
use sympozium_web_proxy::runs::{Hub, Runs};

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "{name:<34} p50 {:>8.2} ms   p90 {:>8.2} ms   p99 {:>8.2} ms   max {:>8.2} ms",
        pct(&v, 0.5).as_secs_f64() * 1e3,
        pct(&v, 0.9).as_secs_f64() * 1e3,
        pct(&v, 0.99).as_secs_f64() * 1e3,
        v.last().unwrap().as_secs_f64() * 1e3
    );
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .skip_while(|a| a != "--requests")
        .nth(1)
        .map(|s| s.parse().expect("--requests N"))
        .unwrap_or(200);
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "bench-web").await.unwrap();
    let ns = ns.name().to_string();
    let nats = NatsServer::start().await.unwrap();
    let inst: SympoziumInstance = serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1",
        "kind": "SympoziumInstance", "metadata": {"name": "bench"},
        "spec": {"agents": {"default": {"model": "gpt-4o"}}, "authRefs": [{"provider": "openai", "secret": "k"}]}}))
    .unwrap();
    Api::<SympoziumInstance>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &inst)
        .await
        .unwrap();

    let hub = Hub::default();
    let runs = Runs::new(client.clone(), ns.clone(), "bench".into(), hub.clone(), Duration::from_secs(60));
    tokio::spawn(hub.run(nats.url(), runs.api(), "bench".into()));
    let router = sympozium_web_proxy::router(
        runs.clone(),
        Gate::new(&["sk-bench".into()], 1_000_000, 1_000_000),
        1 << 20,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    // The stand-in agent: the first chunk and the result as soon as a run shows up.
    let seen: Arc<Mutex<HashMap<String, (Instant, Instant)>>> = Arc::default();
    let bus = Bus::connect(&nats.url()).await.unwrap();
    let (seen2, api) = (seen.clone(), runs.api());
    tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher::watcher(
            api,
            watcher::Config::default().labels("sympozium.ai/source=web-proxy")
        ));
        while let Some(Ok(ev)) = events.next().await {
            let watcher::Event::Apply(run) = ev else { continue };
            let name = run.name_any();
            if seen2.lock().unwrap().contains_key(&name) {
                continue;
            }
            let visible = Instant::now();
            let meta = BTreeMap::from([
                ("agentRunID".to_string(), name.clone()),
                ("instanceName".to_string(), "bench".to_string()),
            ]);
            let published = Instant::now();
            bus.publish(
                topics::AGENT_STREAM_CHUNK,
                meta.clone(),
                &json!({"type": "text", "content": "first", "index": 0}),
            )
            .await
            .unwrap();
            seen2.lock().unwrap().insert(name, (visible, published));
            bus.publish(
                topics::AGENT_RUN_COMPLETED,
                meta,
                &json!({"status": "success", "response": "first",
                "metrics": {"inputTokens": 1, "outputTokens": 1}}),
            )
            .await
            .unwrap();
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;

    let http = reqwest::Client::new();
    let (mut total, mut before, mut after) = (Vec::new(), Vec::new(), Vec::new());
    let body = json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "go"}]});
    for i in 0..n + 10 {
        let t0 = Instant::now();
        let resp = http
            .post(format!("http://{addr}/v1/chat/completions"))
            .bearer_auth("sk-bench")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        let mut bytes = resp.bytes_stream();
        let mut buf = String::new();
        let mut first = None;
        while let Some(chunk) = bytes.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if first.is_none() && buf.contains("\"content\":\"first\"") {
                first = Some(Instant::now());
            }
            if buf.contains("[DONE]") {
                break;
            }
        }
        let t2 = first.expect("the first token");
        let id =
            buf.split("\"id\":\"chatcmpl-").nth(1).and_then(|s| s.split('"').next()).unwrap().to_string();
        let (visible, published) = seen.lock().unwrap()[&id];
        if i >= 10 {
            // The first requests warm connections and caches.
            total.push(t2 - t0);
            before.push(visible - t0);
            after.push(t2 - published);
        }
    }
    println!("web proxy, request → first streamed token, {n} requests one at a time (no agent time):");
    report("request → first token (end to end)", total);
    report("  request → run created and visible", before);
    report("  chunk published → token at client", after);
}
