//! Test support: one real `sympozium-node` per test process on the test plane (tainted, so
//! only this test's namespaces — which tolerate the taint and select the node — get pods
//! there), namespaces pinned to it, and small wait helpers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use sympozium_testkit::{TestNamespace, TestPlane, wait_for};

pub mod probe;

pub const NODE: &str = "sympozium-local";
pub const TAINT: &str = "sympozium.ai/local-node";

static NODE_PROCESS: OnceLock<Mutex<Option<Child>>> = OnceLock::new();
static OCI_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Makes this process's node run real OCI images from `dir` (`--oci-dir`); call before the
/// first [`node`].
pub fn use_oci_dir(dir: PathBuf) {
    let _ = OCI_DIR.set(dir);
}

/// This process's node state directory.
pub fn state_dir() -> PathBuf {
    std::env::temp_dir().join(format!("sympozium-node-test-{}", std::process::id()))
}
static POD_CIDR: OnceLock<String> = OnceLock::new();

/// This process's pod network: a 10.248.x.0/24 no other node on the machine routes yet
/// (test runs on other planes may be running nodes at the same time).
pub fn pod_cidr() -> &'static str {
    POD_CIDR.get_or_init(|| {
        let routes =
            Command::new("ip").args(["-4", "route", "show"]).output().map(|o| o.stdout).unwrap_or_default();
        let routes = String::from_utf8_lossy(&routes);
        let start = std::process::id() % 250;
        (0..250)
            .map(|i| (start + i) % 250)
            .map(|x| format!("10.248.{x}.0/24"))
            .find(|c| !routes.lines().any(|l| l.starts_with(c.as_str())))
            .expect("a free 10.248.x.0/24")
    })
}

/// This process's node bridge; its services network namespace is `<bridge>-svc`, where
/// every Service's cluster IP answers.
pub fn bridge() -> String {
    format!("symt{}", std::process::id() % 100_000)
}

/// Where cargo puts this build's binaries (target/debug, or under CARGO_TARGET_DIR).
pub fn bin_dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_BIN_EXE_sympozium-node")).parent().unwrap().to_path_buf()
}

/// Makes sure the workspace binaries `names` of `package` exist beside ours.
pub fn ensure_built(package: &str, names: &[&str]) -> PathBuf {
    let dir = bin_dir();
    if names.iter().all(|n| dir.join(n).is_file()) {
        return dir;
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "-p", package, "--bins"])
        .current_dir(sympozium_testkit::repo_root())
        .status()
        .expect("running cargo build");
    assert!(status.success(), "cargo build -p {package} --bins failed: the local node needs {names:?}");
    for n in names {
        assert!(dir.join(n).is_file(), "{} missing after building {package}", dir.join(n).display());
    }
    dir
}

/// Starts the node for this test process (once) and waits until its Node is Ready.
pub async fn node(client: &Client, plane: &TestPlane) {
    NODE_PROCESS.get_or_init(|| {
        let pid = std::process::id();
        // State and logs of earlier test processes that are gone.
        for e in std::fs::read_dir(std::env::temp_dir()).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(old) = name.strip_prefix("sympozium-node-test-") else { continue };
            let old = old.trim_end_matches(".log");
            if old.parse::<u32>().is_ok() && !std::path::Path::new(&format!("/proc/{old}")).exists() {
                let _ = std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
            }
        }
        let state = std::env::temp_dir().join(format!("sympozium-node-test-{pid}"));
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state).unwrap();
        let child = spawn_node(plane);
        Mutex::new(Some(child))
    });
    let nodes: Api<Node> = Api::all(client.clone());
    let cidr = pod_cidr().to_string();
    for _ in 0..120 {
        // A node that could not start (missing bwrap, not root, …) fails the test at once.
        let exited =
            NODE_PROCESS.get().and_then(|m| m.lock().ok()).and_then(|mut c| c.as_mut()?.try_wait().ok()?);
        if let Some(status) = exited {
            let log = std::env::temp_dir().join(format!("sympozium-node-test-{}.log", std::process::id()));
            panic!("sympozium-node exited ({status}):\n{}", std::fs::read_to_string(log).unwrap_or_default());
        }
        let n = nodes.get_opt(NODE).await.unwrap();
        let ready = n
            .as_ref()
            .and_then(|n| n.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        // The Node of an earlier test run can still say Ready: wait for ours (its pod CIDR).
        let ours = n
            .as_ref()
            .and_then(|n| n.metadata.annotations.as_ref())
            .and_then(|a| a.get("sympozium.ai/pod-cidr"))
            == Some(&cidr);
        if ready && ours {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the local node did not become Ready within 60 s");
}

/// Starts a node process for this test process (state under the temp dir, kept across restarts).
fn spawn_node(plane: &TestPlane) -> Child {
    let bin_dir = bin_dir();
    let pid = std::process::id();
    let state = std::env::temp_dir().join(format!("sympozium-node-test-{pid}"));
    let log =
        std::fs::OpenOptions::new().create(true).append(true).open(state.with_extension("log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_sympozium-node"))
        .args(["--kubeconfig", plane.kubeconfig().to_str().unwrap()])
        .args(["--node-name", NODE])
        .args([
            "--images",
            sympozium_testkit::repo_root().join("deploy/local-node/images.yaml").to_str().unwrap(),
        ])
        .args(["--bin-dir", bin_dir.to_str().unwrap()])
        .args(["--state-dir", state.to_str().unwrap()])
        .args(["--bridge", &bridge()])
        .args(["--pod-cidr", pod_cidr()])
        .args(["--register-with-taints", &format!("{TAINT}=true:NoSchedule")])
        .args(["--parent-pid", &pid.to_string()])
        .args(
            OCI_DIR.get().map(|d| vec!["--oci-dir".to_string(), d.display().to_string()]).unwrap_or_default(),
        )
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting sympozium-node");
    eprintln!("sympozium-node started (log: {})", state.with_extension("log").display());
    child
}

/// Stops the node (SIGTERM, as a supervisor would) and starts it again with the same state
/// directory, then waits until the new process has registered the Node as Ready.
pub async fn restart_node(client: &Client, plane: &TestPlane) {
    node(client, plane).await;
    let old = NODE_PROCESS.get().unwrap().lock().unwrap().take();
    if let Some(mut old) = old {
        let _ = Command::new("kill").args(["-TERM", &old.id().to_string()]).status();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while old.try_wait().unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline, "the node did not stop within 60 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    *NODE_PROCESS.get().unwrap().lock().unwrap() = Some(spawn_node(plane));
    node(client, plane).await;
}

/// A namespace whose pods go to the local node.
pub async fn namespace(client: &Client, plane: &TestPlane, prefix: &str) -> TestNamespace {
    node(client, plane).await;
    let ns = plane.namespace(client, prefix).await.unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let patch = json!({"metadata": {"annotations": {
        "scheduler.alpha.kubernetes.io/node-selector": format!("kubernetes.io/hostname={NODE}"),
        "scheduler.alpha.kubernetes.io/defaultTolerations":
            format!(r#"[{{"key":"{TAINT}","operator":"Exists","effect":"NoSchedule"}}]"#),
    }}});
    namespaces.patch(ns.name(), &PatchParams::default(), &Patch::Merge(patch)).await.unwrap();
    ns
}

/// Creates a pod from JSON.
pub async fn create_pod(client: &Client, ns: &str, pod: serde_json::Value) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.create(&PostParams::default(), &serde_json::from_value(pod).unwrap()).await.unwrap()
}

/// Waits until the pod's phase is `phase`.
pub async fn wait_phase(
    client: &Client,
    ns: &str,
    name: &str,
    phase: &'static str,
    timeout: Duration,
) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let result = wait_for(&pods, name, phase, timeout, move |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref()).and_then(|s| s.phase.as_deref()) == Some(phase)
    })
    .await;
    match result {
        Ok(p) => p,
        Err(e) => {
            let now = pods.get_opt(name).await.ok().flatten().and_then(|p| p.status);
            panic!("{e}; status now: {}", serde_json::to_string_pretty(&now).unwrap_or_default());
        }
    }
}

/// Waits until the pod's Ready condition is True.
pub async fn wait_ready(client: &Client, ns: &str, name: &str, timeout: Duration) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let result = wait_for(&pods, name, "Ready", timeout, |p: Option<&Pod>| ready(p)).await;
    match result {
        Ok(p) => p,
        Err(e) => {
            let now = pods.get_opt(name).await.ok().flatten().and_then(|p| p.status);
            panic!("{e}; status now: {}", serde_json::to_string_pretty(&now).unwrap_or_default());
        }
    }
}

/// The pod's Ready condition is True.
pub fn ready(p: Option<&Pod>) -> bool {
    p.and_then(|p| p.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Deletes a pod (default grace) and waits until it is gone.
pub async fn delete_pod(client: &Client, ns: &str, name: &str, timeout: Duration) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.delete(name, &DeleteParams::default()).await.unwrap();
    sympozium_testkit::wait_until_gone(&pods, name, "pod", timeout).await.unwrap();
}

/// `kubectl logs` through the API server.
pub fn logs(plane: &TestPlane, ns: &str, pod: &str, container: &str) -> String {
    plane.kubectl(&["logs", "-n", ns, pod, "-c", container]).unwrap()
}

/// A selector-less Service `name` whose one endpoint is the node's own address at `port`:
/// pods reach a server of this test process bound to 127.0.0.1:`port` at `<name>.<ns>.svc:80`.
pub async fn host_service(client: &Client, ns: &str, name: &str, port: u16) {
    let node: Node = Api::all(client.clone()).get(NODE).await.unwrap();
    let node_ip = node
        .status
        .unwrap()
        .addresses
        .unwrap()
        .into_iter()
        .find(|a| a.type_ == "InternalIP")
        .unwrap()
        .address;
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), ns);
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let slices: Api<k8s_openapi::api::discovery::v1::EndpointSlice> = Api::namespaced(client.clone(), ns);
    slices
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": format!("{name}-host"),
                "labels": {"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "sympozium-test"}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": port}],
                "endpoints": [{"addresses": [node_ip], "conditions": {"ready": true}}]}))
            .unwrap(),
        )
        .await
        .unwrap();
}

/// The port of a loopback URL such as `http://127.0.0.1:1234/v1`.
pub fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().split('/').next().unwrap().parse().unwrap()
}

/// A `kubectl` command against the plane (the plane's own kubectl under `make test`).
pub fn kubectl_cmd(plane: &TestPlane) -> Command {
    let kubectl = std::env::var_os("TESTPLANE_KUBECTL")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("kubectl"));
    let mut cmd = Command::new(kubectl);
    cmd.env("KUBECONFIG", plane.kubeconfig());
    cmd
}

/// Runs `kubectl args` with `stdin` as its input: (exit code, stdout, stderr).
pub fn kubectl_with_input(plane: &TestPlane, args: &[&str], stdin: &str) -> (i32, String, String) {
    kubectl_env_input(plane, &[], args, stdin)
}

/// [`kubectl_with_input`] with extra environment variables.
pub fn kubectl_env_input(
    plane: &TestPlane,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: &str,
) -> (i32, String, String) {
    use std::io::Write;
    let mut child = kubectl_cmd(plane)
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kubectl");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The node's InternalIP and kubelet port.
pub async fn kubelet_endpoint(client: &Client) -> (String, u16) {
    let node: Node = Api::all(client.clone()).get(NODE).await.unwrap();
    let status = node.status.unwrap();
    let ip = status.addresses.unwrap().into_iter().find(|a| a.type_ == "InternalIP").unwrap().address;
    let port = status.daemon_endpoints.unwrap().kubelet_endpoint.unwrap().port;
    (ip, u16::try_from(port).unwrap())
}
