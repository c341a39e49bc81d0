//! The `sympozium-controller` binary end to end: it elects itself leader on a Lease in the
//! system namespace, reconciles an instance, and serves health and metrics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use sympozium_testkit::{TestPlane, wait_for};

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

async fn get(url: &str) -> Option<(u16, String)> {
    let res = reqwest::get(url).await.ok()?;
    Some((res.status().as_u16(), res.text().await.ok()?))
}

#[tokio::test]
async fn the_binary_leads_reconciles_and_serves_metrics() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "binary").await.unwrap();
    let (metrics_port, health_port) = (free_port(), free_port());
    let _controller = Killed(
        Command::new(env!("CARGO_BIN_EXE_sympozium-controller"))
            .args(["--kubeconfig", plane.kubeconfig().to_str().unwrap()])
            .args(["--watch-namespace", ns.name(), "--system-namespace", ns.name(), "--leader-elect"])
            .args(["--metrics-bind-address", &format!("127.0.0.1:{metrics_port}")])
            .args(["--health-probe-bind-address", &format!("127.0.0.1:{health_port}")])
            .args(["--image-registry", "registry.example/sym", "--image-tag", "e2e"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );

    let health = format!("http://127.0.0.1:{health_port}");
    let mut ready = false;
    for _ in 0..100 {
        if get(&format!("{health}/readyz")).await.is_some_and(|(code, _)| code == 200) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ready, "the controller became ready (leader)");
    assert_eq!(get(&format!("{health}/healthz")).await.unwrap().0, 200);
    let lease =
        Api::<Lease>::namespaced(client.clone(), ns.name()).get("sympozium-controller-leader").await.unwrap();
    assert!(lease.spec.unwrap().holder_identity.is_some_and(|h| !h.is_empty()));

    let body = json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "SympoziumInstance",
                      "metadata": {"name": "bin"},
                      "spec": {"agents": {"default": {"model": "m"}}, "channels": [{"type": "slack"}]}});
    let instances: Api<sympozium_api::SympoziumInstance> = Api::namespaced(client.clone(), ns.name());
    instances.patch("bin", &PatchParams::apply("test"), &Patch::Apply(&body)).await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client, ns.name());
    let d = wait_for(
        &deployments,
        "bin-channel-slack",
        "channel Deployment",
        Duration::from_secs(60),
        |d: Option<&Deployment>| d.is_some(),
    )
    .await
    .unwrap();
    let image = d.spec.unwrap().template.spec.unwrap().containers[0].image.clone().unwrap();
    assert_eq!(image, "registry.example/sym/channel-slack:e2e", "one registry/tag setting for every image");

    let (code, text) = get(&format!("http://127.0.0.1:{metrics_port}/metrics")).await.unwrap();
    assert_eq!(code, 200);
    assert!(text.contains("sympozium_reconciles_total{controller=\"sympoziuminstance\"}"), "{text}");
    assert!(text.contains("sympozium_reconcile_duration_seconds_bucket"), "{text}");
}
