//! The controller's first log lines say which optional integrations the cluster offers:
//! with the agent-sandbox and cert-manager CRDs installed on the test control plane, the
//! start-up line reports both, and the Gateway API as the cluster's discovery has it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sympozium_testkit::TestPlane;

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

#[tokio::test]
async fn the_controller_logs_the_integrations_it_detected_at_start() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let ns = plane.namespace(&client, "integrations").await.unwrap();
    let fixtures = sympozium_testkit::repo_root().join("crates/sympozium-controller/tests/fixtures");
    for file in ["agent-sandbox-crds.yaml", "cert-manager-crds.yaml"] {
        let path = fixtures.join(file);
        plane.kubectl(&["apply", "--server-side", "-f", path.to_str().unwrap()]).unwrap();
        plane
            .kubectl(&["wait", "--for=condition=Established", "--timeout=60s", "-f", path.to_str().unwrap()])
            .unwrap();
    }
    let groups = client.list_api_groups().await.unwrap();
    let gateway_api = groups.groups.iter().any(|g| g.name == "gateway.networking.k8s.io");

    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_sympozium-controller"))
            .args(["--kubeconfig", plane.kubeconfig().to_str().unwrap()])
            .args(["--watch-namespace", ns.name(), "--system-namespace", ns.name()])
            .args(["--metrics-bind-address", &format!("127.0.0.1:{}", free_port())])
            .args(["--health-probe-bind-address", &format!("127.0.0.1:{}", free_port())])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
            if v["message"] == "optional integrations detected" {
                let _ = tx.send(v);
                return;
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).expect("the start-up line about integrations");
    assert_eq!(line["level"], "INFO", "{line}");
    // The shared JSON log format puts an event's fields at the top level.
    let fields = &line;
    assert_eq!(fields["agent_sandbox_crds"], true, "{line}");
    assert_eq!(fields["agent_sandbox_extensions"], true, "{line}");
    assert_eq!(fields["cert_manager"], true, "{line}");
    assert_eq!(fields["gateway_api"], gateway_api, "{line}");
}
