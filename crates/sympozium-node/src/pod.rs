//! One pod's life on the node: network and volumes, init containers in order (restartable
//! sidecars keep running), then the containers; status patched on every change; and the
//! end — graceful deletion (SIGTERM, grace period, SIGKILL, then the object is deleted
//! with grace 0), the object vanishing, or the node shutting down.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::{Mutex, Notify, watch};
use tokio::task::JoinHandle;

use crate::container::{self, Restart};
use crate::env::NodeValues;
use crate::kubelet_api::PodDirs;
use crate::network::{Network, PodNet};
use crate::state::{ContainerInfo, PodState, Run};
use crate::volumes::{Prepared, Volumes};

/// What every pod worker shares.
pub struct NodeCtx {
    /// API client.
    pub client: Client,
    /// Image mapping.
    pub images: crate::images::ImageMap,
    /// Real OCI images (`--oci-dir`), tried before the mapping.
    pub oci: Arc<crate::oci::Store>,
    /// The host's setpriv for image roots (None: not found; user switching then fails).
    pub setpriv: Option<crate::sandbox::Setpriv>,
    /// Volume preparation.
    pub volumes: Volumes,
    /// Pod network (None: pods share the host network).
    pub net: Option<Network>,
    /// State directory.
    pub state_dir: PathBuf,
    /// Node name.
    pub node_name: String,
    /// Node IP.
    pub host_ip: Ipv4Addr,
    /// Pods' DNS server.
    pub dns: Option<Ipv4Addr>,
    /// Cluster domain.
    pub cluster_domain: String,
    /// Applet directories of multi-call programs.
    pub applets: BTreeMap<PathBuf, PathBuf>,
    /// Pod directories for the log endpoint.
    pub pod_dirs: PodDirs,
    /// Values for env and downward API (pod IP filled per pod).
    pub values: NodeValues,
    /// NetworkPolicy enforcement (with the pod network).
    pub netpol: Option<crate::netpol::Enforcer>,
    /// Container cgroups (or why limits are not enforced).
    pub cgroups: crate::cgroups::Cgroups,
    /// Running pods for exec, attach and port-forward.
    pub running: crate::streaming::Registry,
}

/// Gives a pod's network namespace and address back, and stops filtering for it.
async fn release(node: &NodeCtx, pod: &Pod, net: &Network, p: &PodNet) {
    if let Some(enforcer) = &node.netpol {
        enforcer.detach(pod, p.ip, &p.netns_path).await;
    }
    net.remove_pod(p).await;
}

impl NodeCtx {
    /// The applet directory of a multi-call program.
    pub fn applets_for(&self, program: &std::path::Path) -> Option<PathBuf> {
        self.applets.get(program).cloned()
    }
}

/// How a pod's run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The object was deleted gracefully (deletionTimestamp set).
    Deleted(Duration),
    /// The object is gone: stop at once.
    Gone,
    /// The node is stopping.
    Shutdown,
}

/// One running pod.
pub struct PodCtx {
    /// The node.
    pub node: Arc<NodeCtx>,
    /// The pod as first seen.
    pub pod: Pod,
    /// Its directory.
    pub dir: PathBuf,
    /// Its network namespace.
    pub netns: Option<PathBuf>,
    /// Its volumes.
    pub volumes: BTreeMap<String, Prepared>,
    /// Hostname.
    pub hostname: String,
    /// Env values (with the pod IP).
    pub values: NodeValues,
    /// Stop every container, with this grace period.
    pub stop: watch::Sender<Option<Duration>>,
    /// Stop sidecars (after the containers ended).
    pub stop_sidecars: watch::Sender<Option<Duration>>,
    /// What exec, attach and port-forward reach.
    pub handle: crate::streaming::PodHandle,
    state: Arc<Mutex<PodState>>,
    changed: Arc<Notify>,
    tasks: Mutex<Vec<JoinHandle<Option<i32>>>>,
}

impl PodCtx {
    /// Changes the tracked state and schedules a status patch.
    pub async fn update(&self, f: impl FnOnce(&mut PodState)) {
        let mut s = self.state.lock().await;
        f(&mut s);
        let main_started = s.containers.iter().any(|c| !c.init && !matches!(c.run, Run::Waiting { .. }));
        if s.initialized && main_started && s.phase == "Pending" {
            s.phase = "Running".into();
        }
        drop(s);
        self.changed.notify_one();
    }

    /// A copy of the tracked state.
    pub async fn snapshot(&self) -> PodState {
        self.state.lock().await.clone()
    }

    /// Where probes connect.
    pub fn probe_ip(&self) -> IpAddr {
        self.values.pod_ip.parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// Records an Event on the pod.
    pub async fn event(&self, kind: &str, reason: &str, note: &str) {
        event(&self.node.client, &self.pod, &self.node.node_name, kind, reason, note).await;
    }
}

/// Records an Event about `pod` from this node.
pub async fn event(client: &Client, pod: &Pod, node: &str, kind: &str, reason: &str, note: &str) {
    let ns = pod.namespace().unwrap_or_default();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let ev = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": format!("{}.", pod.name_any()), "namespace": ns},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod.name_any(), "namespace": ns, "uid": pod.uid()},
        "reason": reason, "message": note, "type": kind,
        "source": {"component": "sympozium-node", "host": node},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    });
    let Ok(ev) = serde_json::from_value::<Event>(ev) else { return };
    if let Err(e) = Api::<Event>::namespaced(client.clone(), &ns).create(&PostParams::default(), &ev).await {
        tracing::debug!(error = %e, "recording an event");
    }
}

fn grace_of(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or(pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30);
    Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

async fn ending(pod_rx: &mut watch::Receiver<Pod>, control: &mut watch::Receiver<Option<End>>) -> End {
    loop {
        if let Some(end) = *control.borrow() {
            return end;
        }
        {
            let pod = pod_rx.borrow();
            if pod.metadata.deletion_timestamp.is_some() {
                return End::Deleted(grace_of(&pod));
            }
        }
        tokio::select! {
            r = pod_rx.changed() => if r.is_err() { return End::Gone },
            r = control.changed() => if r.is_err() { return End::Shutdown },
        }
    }
}

async fn status_loop(client: Client, pod: Pod, state: Arc<Mutex<PodState>>, changed: Arc<Notify>) {
    let api: Api<Pod> = Api::namespaced(client, &pod.namespace().unwrap_or_default());
    let name = pod.name_any();
    let mut last = serde_json::Value::Null;
    loop {
        let status = state.lock().await.status();
        if status != last {
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": status})))
                .await
            {
                Ok(_) => last = status,
                Err(kube::Error::Api(e)) if e.code == 404 => return,
                Err(e) => tracing::debug!(pod = %name, error = %e, "patching pod status"),
            }
        }
        tokio::select! {
            // Changes come in runs (address, then each container starting): one patch for
            // a run instead of one per step keeps the API server's load down in bursts.
            () = changed.notified() => tokio::time::sleep(Duration::from_millis(20)).await,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

fn write_etc(
    dir: &std::path::Path,
    node: &NodeCtx,
    pod: &Pod,
    hostname: &str,
    ip: &str,
) -> std::io::Result<()> {
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc)?;
    let ns = pod.namespace().unwrap_or_default();
    let d = &node.cluster_domain;
    let resolv = match node.dns {
        Some(dns) => format!("nameserver {dns}\nsearch {ns}.svc.{d} svc.{d} {d}\noptions ndots:5\n"),
        None => std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    };
    std::fs::write(etc.join("resolv.conf"), resolv)?;
    std::fs::write(
        etc.join("hosts"),
        format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{ip}\t{hostname}\n"),
    )?;
    std::fs::write(etc.join("hostname"), format!("{hostname}\n"))
}

/// Runs a pod until it ends; `pod_rx` carries its updates, `control` the node's orders.
pub async fn run(
    node: Arc<NodeCtx>,
    mut pod_rx: watch::Receiver<Pod>,
    mut control: watch::Receiver<Option<End>>,
) {
    let pod = pod_rx.borrow().clone();
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let uid = pod.uid().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let dir = node.state_dir.join("pods").join(&uid);
    let hostname = spec.hostname.clone().unwrap_or_else(|| name.chars().take(63).collect());
    if let Ok(mut dirs) = node.pod_dirs.write() {
        dirs.insert((ns.clone(), name.clone()), dir.clone());
    }
    let mut infos = Vec::new();
    for (init, list) in
        [(true, spec.init_containers.clone().unwrap_or_default()), (false, spec.containers.clone())]
    {
        for c in list {
            infos.push(ContainerInfo {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                init,
                run: Run::Waiting {
                    reason: if init || spec.init_containers.as_ref().is_none_or(|v| v.is_empty()) {
                        "ContainerCreating"
                    } else {
                        "PodInitializing"
                    }
                    .into(),
                    message: String::new(),
                },
                last: None,
                restarts: 0,
                ready: false,
                started: false,
                pid: None,
            });
        }
    }
    let state = Arc::new(Mutex::new(PodState::new(infos, node.host_ip.to_string())));
    let changed = Arc::new(Notify::new());
    let status_task =
        tokio::spawn(status_loop(node.client.clone(), pod.clone(), state.clone(), changed.clone()));

    let mut podnet: Option<PodNet> = None;
    let prepared = async {
        if let Some(net) = &node.net {
            loop {
                let added = match net.add_pod().await {
                    Ok(p) => match &node.netpol {
                        // Filtered before anything runs in it; a pod that cannot be filtered
                        // does not start.
                        Some(enforcer) => match enforcer.attach(&pod, p.ip, p.netns_path.clone()).await {
                            Ok(()) => Ok(p),
                            Err(e) => {
                                enforcer.detach(&pod, p.ip, &p.netns_path).await;
                                net.remove_pod(&p).await;
                                Err(e.to_string())
                            }
                        },
                        None => Ok(p),
                    },
                    Err(e) => Err(e.to_string()),
                };
                match added {
                    Ok(p) => break podnet = Some(p),
                    Err(e) => {
                        event(&node.client, &pod, &node.node_name, "Warning", "FailedCreatePodSandBox", &e)
                            .await;
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            }
        }
        let ip = podnet.as_ref().map(|p| p.ip).unwrap_or(node.host_ip).to_string();
        state.lock().await.pod_ip = Some(ip.clone());
        changed.notify_one();
        if let Err(e) = write_etc(&dir, &node, &pod, &hostname, &ip) {
            tracing::warn!(pod = %name, error = %e, "writing the pod's /etc files");
        }
        let values = NodeValues { pod_ip: ip, ..node.values.clone() };
        let mut reported = String::new();
        let volumes = loop {
            match node.volumes.prepare(&pod, &dir, &values).await {
                Ok(v) => break v,
                Err(e) => {
                    let msg = e.to_string();
                    if msg != reported {
                        event(&node.client, &pod, &node.node_name, "Warning", "FailedMount", &msg).await;
                        let mut s = state.lock().await;
                        for c in &mut s.containers {
                            c.run = Run::Waiting { reason: "ContainerCreating".into(), message: msg.clone() };
                        }
                        changed.notify_one();
                        reported = msg;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        (values, volumes)
    };
    let setup = tokio::select! {
        r = prepared => Ok(r),
        end = ending(&mut pod_rx, &mut control) => Err(end),
    };
    let (end, ctx) = match setup {
        Err(end) => (end, None),
        Ok((values, volumes)) => {
            let ctx = Arc::new(PodCtx {
                node: node.clone(),
                pod: pod.clone(),
                dir: dir.clone(),
                netns: podnet.as_ref().map(|p| p.netns_path.clone()),
                volumes,
                hostname,
                values,
                stop: watch::channel(None).0,
                stop_sidecars: watch::channel(None).0,
                handle: crate::streaming::PodHandle {
                    netns: podnet.as_ref().map(|p| p.netns_path.clone()),
                    containers: Default::default(),
                },
                state: state.clone(),
                changed: changed.clone(),
                tasks: Mutex::new(Vec::new()),
            });
            if let Ok(mut running) = node.running.write() {
                running.insert((ns.clone(), name.clone()), ctx.handle.clone());
            }
            for c in spec.init_containers.iter().flatten().chain(spec.containers.iter()) {
                let mut unsupported = crate::sandbox::unsupported(c, spec.security_context.as_ref());
                if let (true, Some(why)) = (crate::cgroups::has_limits(c), node.cgroups.unavailable()) {
                    unsupported.push(format!("resource limits are not enforced: {why}"));
                }
                if !unsupported.is_empty() {
                    ctx.event(
                        "Normal",
                        "SecurityContextPartial",
                        &format!("container {}: {}", c.name, unsupported.join("; ")),
                    )
                    .await;
                }
            }
            let mut ignored = Vec::new();
            if spec.host_network == Some(true) {
                ignored.push("hostNetwork (the pod gets its own network namespace)");
            }
            if spec.containers.iter().flat_map(|c| c.ports.iter().flatten()).any(|p| p.host_port.is_some()) {
                ignored.push("hostPort");
            }
            if spec.host_pid == Some(true) || spec.host_ipc == Some(true) {
                ignored.push("hostPID/hostIPC");
            }
            let disk_limit = spec
                .volumes
                .iter()
                .flatten()
                .filter_map(|v| v.empty_dir.as_ref())
                .any(|e| e.size_limit.is_some() && e.medium.as_deref() != Some("Memory"));
            if disk_limit {
                ignored
                    .push("sizeLimit of disk-backed emptyDir volumes (memory-backed ones are sized tmpfs)");
            }
            if !ignored.is_empty() {
                ctx.event(
                    "Warning",
                    "NotSupportedByLocalNode",
                    &format!("not honoured on this node: {}", ignored.join(", ")),
                )
                .await;
            }
            let resync = tokio::spawn(resync(ctx.clone()));
            let end = tokio::select! {
                () = lifecycle(ctx.clone()) => {
                    // Every container has ended: the pod keeps its status (and podIP) but
                    // its network namespace and address go back to the pool now.
                    if let (Some(net), Some(p)) = (&node.net, podnet.take()) {
                        release(&node, &pod, net, &p).await;
                    }
                    ending(&mut pod_rx, &mut control).await
                }
                end = ending(&mut pod_rx, &mut control) => end,
            };
            resync.abort();
            (end, Some(ctx))
        }
    };
    let grace = match end {
        End::Deleted(g) => g,
        End::Gone => Duration::ZERO,
        End::Shutdown => grace_of(&pod).min(Duration::from_secs(10)),
    };
    if let Some(ctx) = &ctx {
        let _ = ctx.stop.send(Some(grace));
        let _ = ctx.stop_sidecars.send(Some(grace));
        let tasks: Vec<_> = std::mem::take(&mut *ctx.tasks.lock().await);
        for t in tasks {
            let _ = t.await;
        }
        let stopped = wait_state(ctx, |s| s.containers.iter().all(|c| !matches!(c.run, Run::Running { .. })));
        let _ = tokio::time::timeout(grace + Duration::from_secs(5), stopped).await;
        if end == End::Shutdown {
            ctx.update(|s| {
                if s.phase != "Succeeded" {
                    s.phase = "Failed".into();
                    s.reason = Some(("NodeShutdown".into(), "the node (sympozium-node) stopped".into()));
                }
            })
            .await;
        }
        // Let the final status reach the API server before the object goes.
        let status = state.lock().await.status();
        let api: Api<Pod> = Api::namespaced(node.client.clone(), &ns);
        let _ =
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(json!({"status": status}))).await;
        for v in ctx.volumes.values().filter(|v| v.tmpfs) {
            crate::volumes::unmount(&v.host_path).await;
        }
    }
    status_task.abort();
    if let Ok(mut running) = node.running.write() {
        running.remove(&(ns.clone(), name.clone()));
    }
    if let (Some(net), Some(p)) = (&node.net, &podnet) {
        release(&node, &pod, net, p).await;
    }
    if let End::Deleted(_) = end {
        let api: Api<Pod> = Api::namespaced(node.client.clone(), &ns);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions { uid: Some(uid.clone()), resource_version: None }),
            ..Default::default()
        };
        if let Err(e) = api.delete(&name, &dp).await {
            tracing::debug!(pod = %name, error = %e, "deleting the pod object");
        }
    }
    if end != End::Shutdown {
        if let Ok(mut dirs) = node.pod_dirs.write() {
            dirs.remove(&(ns.clone(), name.clone()));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    tracing::info!(pod = %format!("{ns}/{name}"), ?end, "pod finished on this node");
}

async fn spawn(
    ctx: &Arc<PodCtx>,
    c: k8s_openapi::api::core::v1::Container,
    init: bool,
    restart: Restart,
    sidecar: bool,
) -> JoinHandle<Option<i32>> {
    let stop = if sidecar { ctx.stop_sidecars.subscribe() } else { ctx.stop.subscribe() };
    tokio::spawn(container::supervise(ctx.clone(), c, init, restart, stop))
}

async fn wait_state(ctx: &PodCtx, f: impl Fn(&PodState) -> bool) {
    loop {
        if f(&*ctx.state.lock().await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn lifecycle(ctx: Arc<PodCtx>) {
    let spec = ctx.pod.spec.clone().unwrap_or_default();
    let policy = match spec.restart_policy.as_deref() {
        Some("Never") => Restart::Never,
        Some("OnFailure") => Restart::OnFailure,
        _ => Restart::Always,
    };
    let mut sidecars = Vec::new();
    for c in spec.init_containers.clone().unwrap_or_default() {
        if c.restart_policy.as_deref() == Some("Always") {
            let name = c.name.clone();
            sidecars.push(spawn(&ctx, c, true, Restart::Always, true).await);
            wait_state(&ctx, |s| {
                s.containers
                    .iter()
                    .any(|x| x.init && x.name == name && matches!(x.run, Run::Running { .. }) && x.started)
            })
            .await;
        } else {
            let init_policy = if policy == Restart::Never { Restart::Never } else { Restart::OnFailure };
            let h = spawn(&ctx, c, true, init_policy, false).await;
            match h.await {
                Ok(Some(0)) => {}
                Ok(None) | Err(_) => return,
                Ok(Some(_)) => {
                    ctx.update(|s| s.phase = "Failed".into()).await;
                    let _ = ctx.stop_sidecars.send(Some(grace_of(&ctx.pod)));
                    ctx.tasks.lock().await.extend(sidecars);
                    return;
                }
            }
        }
    }
    ctx.update(|s| {
        s.initialized = true;
        for c in s.containers.iter_mut().filter(|c| !c.init) {
            c.run = Run::Waiting { reason: "ContainerCreating".into(), message: String::new() };
        }
    })
    .await;
    let mut mains = Vec::new();
    for c in spec.containers.clone() {
        mains.push(spawn(&ctx, c, false, policy, false).await);
    }
    ctx.tasks.lock().await.extend(sidecars);
    let mut codes = Vec::new();
    for h in mains {
        codes.push(h.await.ok().flatten());
    }
    if codes.iter().any(Option::is_none) {
        return;
    }
    let ok = codes.iter().all(|c| *c == Some(0));
    let _ = ctx.stop_sidecars.send(Some(grace_of(&ctx.pod)));
    let tasks: Vec<_> = std::mem::take(&mut *ctx.tasks.lock().await);
    for t in tasks {
        let _ = t.await;
    }
    ctx.update(|s| s.phase = if ok { "Succeeded".into() } else { "Failed".into() }).await;
}

/// Keeps configMap, secret, downwardAPI and projected volumes in sync while the pod runs.
async fn resync(ctx: Arc<PodCtx>) {
    let volumes = ctx.pod.spec.as_ref().and_then(|s| s.volumes.clone()).unwrap_or_default();
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let current =
            Api::<Pod>::namespaced(ctx.node.client.clone(), &ctx.pod.namespace().unwrap_or_default())
                .get_opt(&ctx.pod.name_any())
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| ctx.pod.clone());
        for v in &volumes {
            let Some(prepared) = ctx.volumes.get(&v.name).filter(|p| p.synced) else { continue };
            // Tokens are re-requested only when the file is older than half an hour.
            if v.projected
                .as_ref()
                .is_some_and(|p| p.sources.iter().flatten().any(|s| s.service_account_token.is_some()))
            {
                let fresh = std::fs::symlink_metadata(prepared.host_path.join("..data"))
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age < Duration::from_secs(1800));
                if fresh {
                    continue;
                }
            }
            if let Ok(Some(payload)) = ctx.node.volumes.payload(&current, v, &ctx.values).await
                && let Err(e) = crate::volumes::write_atomic(&prepared.host_path, &payload)
            {
                tracing::warn!(volume = %v.name, error = %e, "re-syncing a volume");
            }
        }
    }
}
