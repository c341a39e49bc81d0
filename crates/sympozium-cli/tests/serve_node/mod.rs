//! A real local node (`sympozium-node`) for this test process on the test plane, tainted so
//! only the namespaces made here (which tolerate the taint and select the node) get pods on
//! it — the way the node crate's own tests run theirs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use sympozium_testkit::{TestNamespace, TestPlane};

const TAINT: &str = "sympozium.ai/local-node";

static NODE_PROCESS: OnceLock<Mutex<Option<Child>>> = OnceLock::new();

/// This process's node name (another test process may run its own node on the plane).
fn node_name() -> String {
    format!("sympozium-cli-{}", std::process::id())
}

/// The workspace binaries (the node runs the API server, controller, NATS mapping from there).
fn bin_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_BIN_EXE_sympozium")).parent().unwrap().to_path_buf()
}

/// Builds the programs the install's pods run when they are missing.
fn ensure_built() {
    let needed = ["sympozium-node", "sympozium-apiserver", "sympozium-controller"];
    if needed.iter().all(|n| bin_dir().join(n).is_file()) {
        return;
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "-p", "sympozium-node", "-p", "sympozium-apiserver", "-p", "sympozium-controller"])
        .arg("--bins")
        .current_dir(sympozium_testkit::repo_root())
        .status()
        .expect("running cargo build");
    assert!(status.success(), "building {needed:?} failed");
}

/// A 10.249.x.0/24 no other node on the machine routes yet.
fn pod_cidr() -> String {
    let routes =
        Command::new("ip").args(["-4", "route", "show"]).output().map(|o| o.stdout).unwrap_or_default();
    let routes = String::from_utf8_lossy(&routes);
    let start = std::process::id() % 250;
    (0..250)
        .map(|i| (start + i) % 250)
        .map(|x| format!("10.249.{x}.0/24"))
        .find(|c| !routes.lines().any(|l| l.starts_with(c.as_str())))
        .expect("a free 10.249.x.0/24")
}

fn spawn(plane: &TestPlane, cidr: &str) -> Child {
    ensure_built();
    let pid = std::process::id();
    let state = std::env::temp_dir().join(format!("sympozium-cli-node-{pid}"));
    let _ = std::fs::remove_dir_all(&state);
    std::fs::create_dir_all(&state).unwrap();
    let log = std::fs::File::create(state.with_extension("log")).unwrap();
    eprintln!("sympozium-node started (log: {})", state.with_extension("log").display());
    Command::new(bin_dir().join("sympozium-node"))
        .args(["--kubeconfig", plane.kubeconfig().to_str().unwrap()])
        .args(["--node-name", &node_name()])
        .arg("--images")
        .arg(sympozium_testkit::repo_root().join("deploy/local-node/images.yaml"))
        .arg("--bin-dir")
        .arg(bin_dir())
        .arg("--state-dir")
        .arg(&state)
        .args(["--bridge", &format!("symc{}", pid % 100_000)])
        .args(["--pod-cidr", cidr])
        .args(["--register-with-taints", &format!("{TAINT}=true:NoSchedule")])
        .args(["--parent-pid", &pid.to_string()])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting sympozium-node")
}

/// Starts the node (once per process) and waits until its Node is Ready.
pub async fn node(client: &Client, plane: &TestPlane) {
    let process = NODE_PROCESS.get_or_init(|| Mutex::new(Some(spawn(plane, &pod_cidr()))));
    let nodes: Api<Node> = Api::all(client.clone());
    for _ in 0..120 {
        if let Some(status) = process.lock().unwrap().as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            let log = std::env::temp_dir().join(format!("sympozium-cli-node-{}.log", std::process::id()));
            panic!("sympozium-node exited ({status}):\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        let ready = nodes
            .get_opt(&node_name())
            .await
            .unwrap()
            .and_then(|n| n.status)
            .and_then(|s| s.conditions)
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if ready {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the local node did not become Ready within 60 s");
}

/// A namespace whose pods go to this process's node.
pub async fn namespace(client: &Client, plane: &TestPlane, prefix: &str) -> TestNamespace {
    node(client, plane).await;
    let ns = plane.namespace(client, prefix).await.unwrap();
    let patch = json!({"metadata": {"annotations": {
        "scheduler.alpha.kubernetes.io/node-selector": format!("kubernetes.io/hostname={}", node_name()),
        "scheduler.alpha.kubernetes.io/defaultTolerations":
            format!(r#"[{{"key":"{TAINT}","operator":"Exists","effect":"NoSchedule"}}]"#),
    }}});
    Api::<Namespace>::all(client.clone())
        .patch(ns.name(), &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
    ns
}
