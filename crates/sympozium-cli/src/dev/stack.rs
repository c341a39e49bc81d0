//! The one-machine stack: start, stop and report on it.
//!
//! Everything it starts is recorded in its state directory (the control plane's PIDs by
//! `testplane/up.sh`, the local node's PID in `node.pid`) and `down` stops exactly that.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use super::DevPaths;
use crate::commands::{Target, install_with};
use crate::output::emitln;
use crate::progress::Progress;

/// Registry and tag of every image in the stack; the local node maps them to built binaries.
pub const REGISTRY: &str = "sympozium.local/dev";
/// Tag of every image in the stack.
pub const TAG: &str = "dev";
/// Name of the local node.
pub const NODE: &str = "sympozium-local";
/// The fake (kwok) node of the control plane; tainted so workloads go to the local node.
const FAKE_NODE: &str = "kwok-node-0";
/// Service of the offline scripted model, in the system namespace.
pub const OFFLINE_MODEL: &str = "offline-model";

/// Paths of one stack.
#[derive(Debug, Clone)]
pub struct Layout {
    repo: PathBuf,
    state: PathBuf,
    system_namespace: String,
}

impl Layout {
    /// Resolves the repository and state directory.
    pub fn new(paths: &DevPaths) -> anyhow::Result<Self> {
        let repo = paths.repo.canonicalize().map_err(|e| {
            anyhow!("the Sympozium checkout {} is not readable ({e}); pass --repo", paths.repo.display())
        })?;
        if !repo.join("testplane/up.sh").is_file() {
            bail!(
                "{} is not a Sympozium checkout (no testplane/up.sh); pass --repo <checkout>",
                repo.display()
            );
        }
        let state = paths.state_dir.clone().unwrap_or_else(|| repo.join(".sympozium-dev"));
        Ok(Self { repo, state, system_namespace: paths.system_namespace.clone() })
    }

    /// The control plane's state directory.
    fn plane(&self) -> PathBuf {
        self.state.join("plane")
    }

    /// The stack's kubeconfig: the control plane's, with the context's namespace set to the
    /// system namespace, where the stack and the demo's objects live.
    pub fn kubeconfig(&self) -> PathBuf {
        self.state.join("kubeconfig")
    }

    fn node_pid(&self) -> PathBuf {
        self.state.join("node.pid")
    }

    fn binary(&self, name: &str) -> PathBuf {
        self.repo.join("target/debug").join(name)
    }
}

/// Binaries the stack's pods run; `make build` (or `cargo build --workspace --bins`) makes them.
const BINARIES: &[&str] = &[
    "sympozium-node",
    "sympozium-controller",
    "sympozium-agent-runner",
    "sympozium-ipc-bridge",
    "sympozium-memory-server",
    "tool-executor",
    "sympozium-apiserver",
    "sympozium",
];

/// The image → program mapping the local node reads (keys match image names whatever the
/// registry; `{bin}` is the checkout's `target/debug`).
fn image_mapping(layout: &Layout) -> PathBuf {
    layout.repo.join("deploy/local-node/images.yaml")
}

/// Images `dev up --real-images` builds and the node runs from their OCI archives (the
/// rest, busybox, nats and the shell-based skill sidecars, stay mapped to programs).
const REAL_IMAGES: &[&str] =
    &["controller", "webhook", "apiserver", "agent-runner", "ipc-bridge", "skill-memory", "cli"];

/// Builds [`REAL_IMAGES`] from the checkout's debug binaries into `<state>/images`.
async fn build_images(layout: &Layout) -> anyhow::Result<PathBuf> {
    let out = layout.state.join("images");
    std::fs::create_dir_all(&out)?;
    let log_path = layout.state.join("images.log");
    let log = std::fs::File::create(&log_path)?;
    let status = tokio::process::Command::new("bash")
        .arg(layout.repo.join("scripts/images.sh"))
        .args(["--profile", "debug", "--no-build", "--out"])
        .arg(&out)
        .arg("--bin-dir")
        .arg(layout.repo.join("target/debug"))
        .args(REAL_IMAGES)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .status()
        .await
        .context("running scripts/images.sh")?;
    if !status.success() {
        bail!(
            "building the images failed; {} ends with:\n{}",
            log_path.display(),
            super::watch::tail(&log_path, 15)
                .lines()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Ok(out)
}

/// Whether `pid` runs (a zombie has exited).
pub(super) fn alive(pid: u32) -> bool {
    // A zombie has exited; /proc/<pid>/stat's third field says so.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                .map(|st| st != "Z" && st != "X")
        })
        .unwrap_or(false)
}

fn signal(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

async fn node_ready(client: &Client) -> bool {
    let nodes: Api<Node> = Api::all(client.clone());
    let Ok(Some(node)) = nodes.get_opt(NODE).await else { return false };
    node.status
        .and_then(|s| s.conditions)
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn wait_until<F, Fut>(what: &str, wait: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        if start.elapsed() > wait {
            bail!("{what} not ready after {wait:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

async fn start_plane(layout: &Layout) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(&layout.state)?;
    let log = std::fs::File::create(layout.state.join("plane.log"))?;
    let out = tokio::process::Command::new("bash")
        .arg(layout.repo.join("testplane/up.sh"))
        .env("TESTPLANE_DIR", layout.plane())
        .stdout(Stdio::piped())
        .stderr(log)
        .output()
        .await
        .context("running testplane/up.sh")?;
    if !out.status.success() {
        let log = layout.state.join("plane.log");
        bail!(
            "the control plane did not start; {} ends with:\n{}",
            log.display(),
            super::watch::tail(&log, 15).lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
        );
    }
    let path = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string();
    Ok(PathBuf::from(path))
}

/// Writes the stack's kubeconfig: the plane's, its current context in `namespace`.
fn write_kubeconfig(plane: &Path, out: &Path, namespace: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(plane).with_context(|| format!("reading {}", plane.display()))?;
    let mut doc: serde_yaml::Value =
        serde_yaml::from_str(&text).with_context(|| format!("parsing {}", plane.display()))?;
    let current = doc.get("current-context").and_then(|c| c.as_str()).unwrap_or_default().to_string();
    let contexts = doc.get_mut("contexts").and_then(|c| c.as_sequence_mut());
    for ctx in contexts.into_iter().flatten() {
        if ctx.get("name").and_then(|n| n.as_str()) == Some(current.as_str())
            && let Some(inner) = ctx.get_mut("context").and_then(|c| c.as_mapping_mut())
        {
            inner.insert("namespace".into(), namespace.into());
        }
    }
    // It holds the plane's admin token: written private, then moved into place.
    let tmp = out.with_extension("tmp");
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(serde_yaml::to_string(&doc)?.as_bytes())?;
    }
    std::fs::rename(&tmp, out)?;
    Ok(())
}

/// Starts the local node unless it runs; the process to watch while the stack comes up.
async fn start_node(
    layout: &Layout,
    kubeconfig: &Path,
    oci_dir: Option<&Path>,
) -> anyhow::Result<super::watch::Watched> {
    let log_path = layout.state.join("node.log");
    if let Some(pid) = read_pid(&layout.node_pid()).filter(|p| alive(*p)) {
        return Ok(super::watch::Watched { name: "the local node".into(), pid, log: log_path, child: None });
    }
    let images = image_mapping(layout);
    let log = std::fs::File::create(&log_path)?;
    let mut command = std::process::Command::new("setsid");
    if let Some(dir) = oci_dir {
        command.arg(layout.binary("sympozium-node")).arg("--oci-dir").arg(dir);
    } else {
        command.arg(layout.binary("sympozium-node"));
    }
    let child = command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--node-name", NODE])
        .arg("--images")
        .arg(&images)
        .arg("--bin-dir")
        .arg(layout.repo.join("target/debug"))
        .arg("--state-dir")
        .arg(layout.state.join("node"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting the local node")?;
    std::fs::write(layout.node_pid(), child.id().to_string())?;
    Ok(super::watch::Watched {
        name: "the local node".into(),
        pid: child.id(),
        log: log_path,
        child: Some(child),
    })
}

async fn taint_fake_node(client: &Client) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    if nodes.get_opt(FAKE_NODE).await?.is_none() {
        return Ok(());
    }
    let patch = json!({"spec": {"taints": [{"key": "sympozium.ai/fake-node", "value": "true", "effect": "NoSchedule"}]}});
    nodes.patch(FAKE_NODE, &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

async fn deploy_offline_model(client: &Client, ns: &str) -> anyhow::Result<()> {
    let labels = json!({"app": OFFLINE_MODEL, "app.kubernetes.io/part-of": "sympozium"});
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": OFFLINE_MODEL, "namespace": ns, "labels": labels},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": OFFLINE_MODEL}},
            "template": {"metadata": {"labels": labels},
                "spec": {"securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{"name": "model", "image": format!("{REGISTRY}/cli:{TAG}"),
                        "args": ["dev", "offline-model", "--listen", "0.0.0.0:8080"],
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                        "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                                            "capabilities": {"drop": ["ALL"]}}}]}}}});
    let service = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": OFFLINE_MODEL, "namespace": ns, "labels": labels},
        "spec": {"selector": {"app": OFFLINE_MODEL}, "ports": [{"name": "http", "port": 8080, "targetPort": 8080}]}});
    crate::commands::apply_json(client, &deployment).await?;
    crate::commands::apply_json(client, &service).await?;
    Ok(())
}

async fn deployment_available(client: &Client, ns: &str, name: &str) -> bool {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    api.get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|d| d.status)
        .is_some_and(|s| s.available_replicas.unwrap_or(0) >= 1)
}

/// Fails at once when the machine lacks something the stack needs, naming the command that
/// installs it; warns when not root (the node then runs pods in the host network).
fn prerequisites(layout: &Layout) -> anyhow::Result<()> {
    let found = super::prereqs::check(&layout.repo, false)?;
    let missing: Vec<_> = found.iter().filter(|r| !r.ok).collect();
    if !missing.is_empty() {
        let mut msg = format!(
            "this machine lacks what the stack needs: {}",
            missing.iter().map(|r| format!("{} ({})", r.command, r.detail)).collect::<Vec<_>>().join(", ")
        );
        if let Some(apt) = super::prereqs::apt_command(&found) {
            msg.push_str(&format!("\n  install them with: {apt}"));
        }
        msg.push_str(&format!(
            "\n  (as root, `bash {}` installs what is missing)",
            layout.repo.join(super::prereqs::SCRIPT).display()
        ));
        bail!(msg);
    }
    if !rustix::process::geteuid().is_root() {
        eprintln!(
            "warning: not root: the local node runs pods in the host network (no pod IPs or Service DNS); run as root for the full stack"
        );
    }
    Ok(())
}

/// `dev up`.
pub async fn up(layout: &Layout, wait: Duration, real_images: bool) -> anyhow::Result<i32> {
    let started = Instant::now();
    prerequisites(layout)?;
    let missing: Vec<_> = BINARIES.iter().filter(|b| !layout.binary(b).is_file()).collect();
    if !missing.is_empty() {
        bail!(
            "not built yet: {}; run `cargo build --workspace --bins` in {} first",
            missing.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(", "),
            layout.repo.display()
        );
    }
    let mut progress = Progress::stderr();
    let oci_dir = if real_images {
        if !rustix::process::geteuid().is_root() {
            bail!(
                "--real-images builds the images with buildah, which needs root here (vfs storage, chroot isolation)"
            );
        }
        progress.step(&format!(
            "building the OCI images of {} from the debug binaries (scripts/images.sh)",
            REAL_IMAGES.join(", ")
        ));
        Some(build_images(layout).await?)
    } else {
        None
    };
    progress.step("starting the control plane (etcd, kube-apiserver, scheduler, controller-manager)");
    let plane_kubeconfig = start_plane(layout).await?;
    write_kubeconfig(&plane_kubeconfig, &layout.kubeconfig(), &layout.system_namespace)?;
    let kubeconfig = layout.kubeconfig();
    let (client, _) = crate::client_for(Some(&kubeconfig)).await?;
    taint_fake_node(&client).await?;
    progress.step("starting the local node (runs pods as local processes)");
    let mut watched = super::watch::plane_processes(&layout.plane());
    watched.push(start_node(layout, &kubeconfig, oci_dir.as_deref()).await?);
    // Whatever step is waiting, the first stack process to die ends the wait with its error.
    let failure = super::watch::first_failure(watched, client.clone(), layout.system_namespace.clone());
    tokio::select! {
        result = bring_up(layout, &client, wait, &mut progress) => {
            if result? != 0 {
                return Ok(1);
            }
        }
        error = failure => {
            return Err(error.context("sympozium dev up failed (`sympozium dev down` stops what did start)"));
        }
    }
    progress.done();
    let ns = &layout.system_namespace;
    emitln!("sympozium dev stack is up ({:.0}s)", started.elapsed().as_secs_f64());
    emitln!("  control plane  {}", layout.plane().display());
    emitln!("  local node     {NODE} (log {})", layout.state.join("node.log").display());
    if let Some(dir) = &oci_dir {
        emitln!(
            "  images         {} run from their OCI archives in {}",
            REAL_IMAGES.join(", "),
            dir.display()
        );
    }
    emitln!("  system         namespace {ns}: controller, admission webhook, NATS (nats.{ns}.svc:4222)");
    emitln!("  offline model  http://{OFFLINE_MODEL}.{ns}.svc:8080/v1 (scripted, no network)");
    emitln!(
        "  API server     http://{}.{ns}.svc:8080 (token: Secret sympozium-ui-token; `sympozium serve` opens the same dashboard on localhost)",
        crate::commands::install_apiserver::NAME
    );
    emitln!("  kubeconfig     context namespace {ns} (kubectl and sympozium land where the stack is)");
    emitln!("  stop with      sympozium dev down");
    emitln!("export KUBECONFIG={}", kubeconfig.display());
    Ok(0)
}

/// The steps after the node started: node Ready, Sympozium installed, the offline model.
async fn bring_up(
    layout: &Layout,
    client: &Client,
    wait: Duration,
    progress: &mut Progress,
) -> anyhow::Result<i32> {
    wait_until(&format!("node {NODE}"), wait, || node_ready(client)).await.with_context(|| {
        format!("the local node did not become Ready; see {}", layout.state.join("node.log").display())
    })?;
    let target = Target {
        namespace: layout.system_namespace.clone(),
        registry: REGISTRY.into(),
        tag: TAG.into(),
        wait,
        webhook: true,
    };
    let code = install_with(client, &target, progress).await?;
    if code != 0 {
        return Ok(code);
    }
    progress.step("starting the offline scripted model (used when no provider key is given)");
    deploy_offline_model(client, &layout.system_namespace).await?;
    let ns = layout.system_namespace.clone();
    wait_until("the offline model", wait, || deployment_available(client, &ns, OFFLINE_MODEL)).await?;
    Ok(0)
}

/// `dev down`.
pub async fn down(layout: &Layout) -> anyhow::Result<i32> {
    let mut progress = Progress::stderr();
    if let Some(pid) = read_pid(&layout.node_pid()).filter(|p| alive(*p)) {
        progress.step("stopping the local node and its pods");
        signal(pid, rustix::process::Signal::TERM);
        let start = Instant::now();
        while alive(pid) && start.elapsed() < Duration::from_secs(40) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if alive(pid) {
            signal(pid, rustix::process::Signal::KILL);
        }
    }
    let _ = std::fs::remove_file(layout.node_pid());
    let _ = std::fs::remove_file(layout.kubeconfig());
    progress.step("stopping the control plane");
    let status = tokio::process::Command::new("bash")
        .arg(layout.repo.join("testplane/down.sh"))
        .env("TESTPLANE_DIR", layout.plane())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await?;
    if !status.success() {
        bail!("testplane/down.sh failed for {}", layout.plane().display());
    }
    progress.done();
    emitln!("sympozium dev stack stopped");
    Ok(0)
}

/// `dev status`.
pub async fn status(layout: &Layout) -> anyhow::Result<i32> {
    let kubeconfig = layout.kubeconfig();
    if !kubeconfig.is_file() {
        emitln!("not running (start it with `sympozium dev up`)");
        return Ok(1);
    }
    let (client, _) = crate::client_for(Some(&kubeconfig)).await?;
    let reachable = tokio::time::timeout(Duration::from_secs(5), client.apiserver_version()).await;
    if !matches!(reachable, Ok(Ok(_))) {
        emitln!("control plane  down ({}); start it with `sympozium dev up`", layout.plane().display());
        return Ok(1);
    }
    let mut healthy = true;
    emitln!("control plane  up ({})", kubeconfig.display());
    let node = node_ready(&client).await;
    healthy &= node;
    emitln!("local node     {}", if node { "Ready" } else { "not ready" });
    let ns = &layout.system_namespace;
    for name in [
        "sympozium-controller-manager",
        "nats",
        "sympozium-webhook",
        OFFLINE_MODEL,
        crate::commands::install_apiserver::NAME,
    ] {
        let ok = deployment_available(&client, ns, name).await;
        healthy &= ok;
        emitln!("{name:<14} {}", if ok { "available" } else { "not available" });
    }
    emitln!("export KUBECONFIG={}", kubeconfig.display());
    Ok(if healthy { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_stack_lives_in_the_checkout_unless_told_otherwise() {
        let paths = DevPaths {
            repo: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."),
            state_dir: None,
            system_namespace: "sympozium-system".into(),
        };
        let layout = Layout::new(&paths).unwrap();
        assert!(layout.kubeconfig().ends_with(".sympozium-dev/kubeconfig"));
        assert!(image_mapping(&layout).is_file(), "the node's image mapping ships with the checkout");
        let elsewhere = DevPaths { repo: "/".into(), ..paths };
        let err = Layout::new(&elsewhere).unwrap_err().to_string();
        assert!(err.contains("not a Sympozium checkout"), "{err}");
    }

    #[test]
    fn the_stacks_kubeconfig_lands_in_the_system_namespace_and_stays_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let plane = dir.path().join("plane-kubeconfig");
        std::fs::write(
            &plane,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: testplane\n  cluster: {server: 'https://127.0.0.1:1'}\n\
             users:\n- name: admin\n  user: {token: secret}\ncontexts:\n- name: other\n  context: {cluster: testplane, user: admin, namespace: keep}\n\
             - name: testplane\n  context: {cluster: testplane, user: admin, namespace: default}\ncurrent-context: testplane\n",
        )
        .unwrap();
        let out = dir.path().join("kubeconfig");
        write_kubeconfig(&plane, &out, "sympozium-system").unwrap();
        assert_eq!(std::fs::metadata(&out).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(crate::context_namespace(Some(&out)).as_deref(), Some("sympozium-system"));
        let kc = kube::config::Kubeconfig::read_from(&out).unwrap();
        let other = kc.contexts.iter().find(|c| c.name == "other").unwrap();
        assert_eq!(other.context.as_ref().unwrap().namespace.as_deref(), Some("keep"));
        assert!(kc.auth_infos[0].auth_info.as_ref().unwrap().token.is_some(), "the token is kept");
    }
}
