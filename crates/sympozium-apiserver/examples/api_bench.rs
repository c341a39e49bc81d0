//! API and dashboard benchmark against a real test plane (`make bench-api`): list-route
//! latency (p50/p99) with 1,000 instances, and the dashboard's load time with 5,000 runs
//! (Debian's chromium through `web/e2e/bench.mjs`).
//!
//! Needs `TESTPLANE_KUBECONFIG` (a running plane, `make testplane-up`), and for the page load
//! `node`, `web/node_modules` and `/usr/bin/chromium`. Flags: `--instances N` (1000),
//! `--runs N` (5000), `--requests N` (200 per route).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a benchmark binary

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Body;
use axum::http::{Method, Request};
use futures::StreamExt;
use http_body_util::BodyExt;
use sympozium_apiserver::{AppState, Caches, router};
use sympozium_testkit::TestPlane;
use tower::ServiceExt;

const TOKEN: &str = "bench-token-0123456789";

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn call(
    app: &axum::Router,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, usize) {
    let mut req =
        Request::builder().method(method).uri(path).header("authorization", format!("Bearer {TOKEN}"));
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req.body(body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty)).unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let len = res.into_body().collect().await.unwrap().to_bytes().len();
    (status, len)
}

/// Waits until `path` (a list route) reports at least `want` items in `X-Total-Count`.
async fn wait_for_total(app: &axum::Router, path: &str, want: usize) {
    loop {
        let r = app
            .clone()
            .oneshot(
                Request::get(path)
                    .header("authorization", format!("Bearer {TOKEN}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let total: usize = r
            .headers()
            .get("x-total-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if total >= want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let instances = arg("--instances", 1000);
    let runs = arg("--runs", 5000);
    let requests = arg("--requests", 200);
    let plane = TestPlane::get().context("TESTPLANE_KUBECONFIG must point at a running plane")?;
    let client = plane.client().await?;
    let ns = plane.namespace(&client, "bench-api").await?;
    let sys = plane.namespace(&client, "bench-api-sys").await?;
    let caches = Caches::start(&client);
    anyhow::ensure!(caches.wait_ready(Duration::from_secs(60)).await, "the watch caches did not sync");
    let app = router(AppState {
        client: client.clone(),
        caches,
        token: Some(Arc::from(TOKEN)),
        bus: None,
        system_namespace: sys.name().to_string(),
        bedrock_endpoint: None,
    });
    let nsq = format!("namespace={}", ns.name());

    let t = Instant::now();
    futures::stream::iter(0..instances)
        .map(|i| {
            let (app, nsq) = (app.clone(), nsq.clone());
            async move {
                let body = serde_json::json!({"name": format!("agent-{i:04}"), "provider": "openai", "model": "gpt-4o", "apiKey": "sk-bench"});
                let (s, _) = call(&app, Method::POST, &format!("/api/v1/instances?{nsq}"), Some(body)).await;
                assert_eq!(s, 201);
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    println!("created {instances} instances in {:.1}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    futures::stream::iter(0..runs)
        .map(|i| {
            let (app, nsq) = (app.clone(), nsq.clone());
            async move {
                let body = serde_json::json!({"instanceRef": format!("agent-{:04}", i % instances.max(1)), "task": format!("task {i}")});
                let (s, _) = call(&app, Method::POST, &format!("/api/v1/runs?{nsq}"), Some(body)).await;
                assert_eq!(s, 201);
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    println!("created {runs} runs in {:.1}s", t.elapsed().as_secs_f64());
    // Timed only once the watch caches hold every instance and run (lists are served from them).
    wait_for_total(&app, &format!("/api/v1/instances?{nsq}&limit=1"), instances).await;
    wait_for_total(&app, &format!("/api/v1/runs?{nsq}&limit=1"), runs).await;

    println!("route                                   n     p50        p99        bytes");
    for path in [
        format!("/api/v1/instances?{nsq}"),
        format!("/api/v1/instances?{nsq}&limit=50"),
        format!("/api/v1/runs?{nsq}&limit=200"),
        format!("/api/v1/runs?{nsq}"),
        format!("/api/v1/observability/metrics?{nsq}"),
        format!("/api/v1/observability/timeseries?{nsq}"),
    ] {
        let mut times = Vec::with_capacity(requests);
        let mut bytes = 0;
        for _ in 0..requests {
            let t = Instant::now();
            let (s, len) = call(&app, Method::GET, &path, None).await;
            times.push(t.elapsed());
            assert_eq!(s, 200);
            bytes = len;
        }
        times.sort();
        let short = path.split('?').next().unwrap_or_default().to_string()
            + path.split_once('&').map(|(_, q)| format!(" ?{q}")).unwrap_or_default().as_str();
        println!(
            "{short:<38} {requests:<5} {:>7.2}ms {:>8.2}ms  {bytes}",
            pct(&times, 0.5).as_secs_f64() * 1000.0,
            pct(&times, 0.99).as_secs_f64() * 1000.0
        );
    }

    // The dashboard in chromium, served over TCP like any deployment.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let served = app.clone();
    tokio::spawn(async move { axum::serve(listener, served).await });
    let web = sympozium_testkit::repo_root().join("web");
    let out = tokio::process::Command::new("node")
        .arg("e2e/bench.mjs")
        .current_dir(&web)
        .env("DASHBOARD_URL", format!("http://{addr}/"))
        .env("DASHBOARD_TOKEN", TOKEN)
        .env("DASHBOARD_NAMESPACE", ns.name())
        // The runs page shows at most 200 rows; a small --runs fills fewer.
        .env("EXPECT_RUN_ROWS", runs.clamp(1, 200).to_string())
        .output()
        .await
        .context("running node e2e/bench.mjs")?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    anyhow::ensure!(out.status.success(), "the page-load benchmark failed");
    Ok(())
}
