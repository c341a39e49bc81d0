//! The controller keeps a small, fixed number of connections to the API server however
//! many reconciles run at once: a burst of runs across several instances is reconciled
//! concurrently, and the established TCP connections the controller process holds to the
//! API server (read from `/proc/<pid>`) stay at most [`MAX_CONNECTIONS`] throughout. A
//! client speaking HTTP/1.1 needs one connection per request in flight and fails this.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use sympozium_api::{AgentRun, SympoziumInstance};
use sympozium_testkit::{TestPlane, procstat};

/// The promise: one multiplexed connection, with room for a reconnect overlapping it.
const MAX_CONNECTIONS: usize = 4;
const INSTANCES: usize = 4;
const RUNS_PER_INSTANCE: usize = 15;

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn api_port(kubeconfig: &std::path::Path) -> u16 {
    let doc: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(kubeconfig).unwrap()).unwrap();
    let server = doc["clusters"][0]["cluster"]["server"].as_str().unwrap();
    let url: reqwest::Url = server.parse().unwrap();
    url.port_or_known_default().unwrap()
}

#[tokio::test]
async fn a_burst_of_runs_shares_a_few_api_connections() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "conns").await.unwrap();
    let ns = ns.name().to_string();
    let port = api_port(plane.kubeconfig());
    // SYMPOZIUM_CONTROLLER_BIN runs the same check against another build (an older
    // release, to see it fail).
    let bin = std::env::var("SYMPOZIUM_CONTROLLER_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_sympozium-controller").to_string());
    let controller = Killed(
        Command::new(bin)
            .args(["--kubeconfig", plane.kubeconfig().to_str().unwrap()])
            .args(["--watch-namespace", &ns, "--system-namespace", &ns])
            .args(["--metrics-bind-address", &format!("127.0.0.1:{}", free_port())])
            .args(["--health-probe-bind-address", &format!("127.0.0.1:{}", free_port())])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let pid = controller.0.id();

    let instances: Api<SympoziumInstance> = Api::namespaced(client.clone(), &ns);
    for i in 0..INSTANCES {
        let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
            "metadata": {"name": format!("agent-{i}")}, "spec": {"agents": {"default": {"model": "gpt-4o"}}}});
        instances
            .patch(&format!("agent-{i}"), &PatchParams::apply("test"), &Patch::Apply(&body))
            .await
            .unwrap();
    }
    // The controller has started its watches before the burst begins.
    let mut connected = false;
    for _ in 0..200 {
        if procstat::tcp_connections_to(pid, port) > 0 {
            connected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(connected, "the controller connected to the API server");
    tokio::time::sleep(Duration::from_secs(1)).await;

    let runs: Api<AgentRun> = Api::namespaced(client.clone(), &ns);
    let creates = (0..INSTANCES * RUNS_PER_INSTANCE).map(|n| {
        let runs = runs.clone();
        async move {
            let run: AgentRun = serde_json::from_value(json!({
                "apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun", "metadata": {"name": format!("run-{n}")},
                "spec": {"instanceRef": format!("agent-{}", n % INSTANCES), "agentId": "primary", "sessionKey": "",
                         "task": "t", "model": {"provider": "openai", "model": "gpt-4o", "authSecretRef": "k"}}}))
            .unwrap();
            runs.create(&PostParams::default(), &run).await.unwrap();
        }
    });
    futures::future::join_all(creates).await;

    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let (mut peak, mut samples) = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut done = false;
    while tokio::time::Instant::now() < deadline {
        for _ in 0..25 {
            peak = peak.max(procstat::tcp_connections_to(pid, port));
            samples += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if jobs.list_metadata(&ListParams::default()).await.unwrap().items.len()
            >= INSTANCES * RUNS_PER_INSTANCE
        {
            done = true;
            break;
        }
    }
    assert!(samples > 0 && peak > 0, "connections were sampled during the burst");
    assert!(
        peak <= MAX_CONNECTIONS,
        "the controller held {peak} connections to the API server during a burst of {} runs (at most {MAX_CONNECTIONS})",
        INSTANCES * RUNS_PER_INSTANCE
    );
    assert!(done, "every run got its Job");
}
