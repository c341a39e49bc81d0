//! Keeps every local pod's packet filter equal to what the NetworkPolicies say.
//!
//! Watches NetworkPolicies, Pods and Namespaces (whole cluster); every change recomputes the
//! rules of each pod this node runs and re-applies the tables whose text changed (`nft -f`
//! inside the pod's network namespace, one atomic transaction each). A pod gets its table
//! before any of its containers starts ([`Enforcer::attach`]), and only once the first list
//! of every watch has arrived, so no pod ever runs unfiltered because the node had not yet
//! heard of a policy.
//!
//! Peer addresses inside the node's pod CIDR come only from the node's own records (it
//! handed them out), never from a Pod's `status.podIP`, so a pod status claiming a local
//! address cannot borrow another pod's permissions.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, watch};

use super::model::{DeclaredPort, Labels, Net, PodRules, PodView, Proto, Snapshot};
use super::nft::{self, Fixed};

/// Enforcement errors.
#[derive(Debug, thiserror::Error)]
pub enum NetpolError {
    /// `nft` could not be run or refused the rules.
    #[error("applying the NetworkPolicy rules of pod {pod} (nft in {netns}): {source}")]
    Apply {
        /// `namespace/name`.
        pod: String,
        /// The network namespace.
        netns: String,
        /// What went wrong.
        #[source]
        source: NftError,
    },
}

/// Why `nft` did not load a rule set.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// `nsenter`/`nft` could not be started.
    #[error("running nsenter/nft: {0}")]
    Spawn(#[source] std::io::Error),
    /// Talking to the child failed.
    #[error("{0}")]
    Io(#[source] std::io::Error),
    /// `nft` refused the rules; its standard error.
    #[error("{0}")]
    Refused(String),
}

struct LocalPod {
    pod: Pod,
    ip: Ipv4Addr,
    netns: PathBuf,
}

struct Inner {
    policies: Store<NetworkPolicy>,
    pods: Store<Pod>,
    namespaces: Store<Namespace>,
    /// Pods running here, by uid.
    local: Mutex<BTreeMap<String, LocalPod>>,
    /// Current rules of local pods, by address (the proxy's view).
    compiled: RwLock<HashMap<Ipv4Addr, Arc<PodRules>>>,
    /// Text last applied per network namespace; the lock also serialises applying.
    applied: tokio::sync::Mutex<HashMap<PathBuf, String>>,
    changed: Notify,
    ready: watch::Receiver<u8>,
    fixed: Fixed,
    pod_cidr: Net,
}

/// The node's NetworkPolicy enforcer (cheap to clone).
#[derive(Clone)]
pub struct Enforcer {
    inner: Arc<Inner>,
}

const ALL_LISTED: u8 = 0b111;

fn spawn_watch<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    bit: u8,
    ready: Arc<watch::Sender<u8>>,
    changed: Arc<Inner>,
) where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    tokio::spawn(async move {
        let stream = watcher::watcher(api, watcher::Config::default()).default_backoff().reflect(writer);
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(Event::InitDone) => {
                    ready.send_modify(|r| *r |= bit);
                    changed.changed.notify_one();
                }
                Ok(Event::Init | Event::InitApply(_)) => {}
                Ok(Event::Apply(_) | Event::Delete(_)) => changed.changed.notify_one(),
                Err(e) => tracing::debug!(error = %e, "network policy enforcer watch"),
            }
        }
    });
}

fn declared_ports(pod: &Pod) -> Vec<DeclaredPort> {
    let Some(spec) = &pod.spec else { return Vec::new() };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            Some(DeclaredPort {
                name: p.name.clone()?,
                port: u16::try_from(p.container_port).ok()?,
                proto: Proto::parse(p.protocol.as_deref().unwrap_or("TCP"))?,
            })
        })
        .collect()
}

fn view(pod: &Pod, ip: Ipv4Addr) -> PodView {
    PodView {
        namespace: pod.namespace().unwrap_or_default(),
        name: pod.name_any(),
        labels: pod.labels().clone(),
        ip,
        ports: declared_ports(pod),
    }
}

/// The node's DNS responder, as policies see it: CoreDNS's usual labels in `kube-system`,
/// so a policy written for a real cluster's DNS (`k8s-app: kube-dns`) allows it here too.
fn dns_view(ip: Ipv4Addr) -> PodView {
    PodView {
        namespace: "kube-system".into(),
        name: "sympozium-node-dns".into(),
        labels: Labels::from([("k8s-app".to_string(), "kube-dns".to_string())]),
        ip,
        ports: vec![
            DeclaredPort { name: "dns".into(), port: 53, proto: Proto::Udp },
            DeclaredPort { name: "dns-tcp".into(), port: 53, proto: Proto::Tcp },
        ],
    }
}

async fn nft_in(netns: &std::path::Path, script: &str) -> Result<(), NftError> {
    let mut child = tokio::process::Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(NftError::Spawn)?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).await.map_err(NftError::Io)?;
    }
    let out = child.wait_with_output().await.map_err(NftError::Io)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NftError::Refused(String::from_utf8_lossy(&out.stderr).trim().to_string()))
    }
}

impl Enforcer {
    /// Starts the watches and the loop that keeps local pods' tables current.
    pub fn start(client: Client, fixed: Fixed, pod_cidr: Net) -> Enforcer {
        let (policies, pw) = reflector::store();
        let (pods, podw) = reflector::store();
        let (namespaces, nw) = reflector::store();
        let (ready_tx, ready) = watch::channel(0u8);
        let inner = Arc::new(Inner {
            policies,
            pods,
            namespaces,
            local: Mutex::new(BTreeMap::new()),
            compiled: RwLock::new(HashMap::new()),
            applied: tokio::sync::Mutex::new(HashMap::new()),
            changed: Notify::new(),
            ready,
            fixed,
            pod_cidr,
        });
        let ready_tx = Arc::new(ready_tx);
        spawn_watch(Api::<NetworkPolicy>::all(client.clone()), pw, 0b001, ready_tx.clone(), inner.clone());
        spawn_watch(Api::<Pod>::all(client.clone()), podw, 0b010, ready_tx.clone(), inner.clone());
        spawn_watch(Api::<Namespace>::all(client), nw, 0b100, ready_tx, inner.clone());
        let enforcer = Enforcer { inner };
        tokio::spawn(enforcer.clone().run());
        enforcer
    }

    async fn run(self) {
        loop {
            self.inner.changed.notified().await;
            if *self.inner.ready.borrow() != ALL_LISTED {
                continue;
            }
            if !self.sync_all().await {
                // Some table could not be applied: try again soon even without a change.
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.inner.changed.notify_one();
            }
        }
    }

    async fn wait_listed(&self) {
        let mut ready = self.inner.ready.clone();
        let _ = ready.wait_for(|r| *r == ALL_LISTED).await;
    }

    /// Everything the rules are computed from: policies, namespaces, and as peers the local
    /// pods (by the addresses the node gave them), pods elsewhere (by their status), and the
    /// node's DNS responder.
    fn snapshot(&self) -> (Snapshot, Vec<(PathBuf, PodView)>) {
        let inner = &self.inner;
        let watched: HashMap<String, Arc<Pod>> =
            inner.pods.state().into_iter().filter_map(|p| Some((p.uid()?, p))).collect();
        let mut pods = Vec::new();
        let mut locals = Vec::new();
        {
            let local = inner.local.lock().unwrap_or_else(|e| e.into_inner());
            for (uid, l) in local.iter() {
                // The watch has the pod's current labels; the record, those it started with.
                let v = match watched.get(uid) {
                    Some(p) => view(p, l.ip),
                    None => view(&l.pod, l.ip),
                };
                pods.push(v.clone());
                locals.push((l.netns.clone(), v));
            }
        }
        for p in watched.values() {
            let finished =
                matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"));
            let ip =
                p.status.as_ref().and_then(|s| s.pod_ip.as_deref()).and_then(|i| i.parse::<Ipv4Addr>().ok());
            if let (false, Some(ip)) = (finished, ip)
                && !inner.pod_cidr.contains(ip)
            {
                pods.push(view(p, ip));
            }
        }
        pods.push(dns_view(inner.fixed.proxy_ip));
        let namespaces =
            inner.namespaces.state().into_iter().map(|n| (n.name_any(), n.labels().clone())).collect();
        let policies = inner.policies.state().into_iter().map(|p| (*p).clone()).collect();
        (Snapshot { namespaces, pods, policies }, locals)
    }

    async fn apply_one(
        &self,
        applied: &mut HashMap<PathBuf, String>,
        netns: &std::path::Path,
        pod: &PodView,
        rules: PodRules,
    ) -> Result<(), NetpolError> {
        let script = nft::render(&rules, &self.inner.fixed);
        self.inner.compiled.write().unwrap_or_else(|e| e.into_inner()).insert(pod.ip, Arc::new(rules));
        if applied.get(netns) == Some(&script) {
            return Ok(());
        }
        applied.remove(netns);
        nft_in(netns, &script).await.map_err(|source| NetpolError::Apply {
            pod: format!("{}/{}", pod.namespace, pod.name),
            netns: netns.display().to_string(),
            source,
        })?;
        tracing::debug!(pod = %format!("{}/{}", pod.namespace, pod.name), "network policy rules applied");
        applied.insert(netns.to_path_buf(), script);
        Ok(())
    }

    /// Recomputes and applies every local pod's rules; false when some could not be applied.
    async fn sync_all(&self) -> bool {
        let mut applied = self.inner.applied.lock().await;
        let (snapshot, locals) = self.snapshot();
        let mut ok = true;
        for (netns, pod) in locals {
            let rules = snapshot.rules_for(&pod);
            if let Err(e) = self.apply_one(&mut applied, &netns, &pod, rules).await {
                tracing::warn!(error = %e, "network policy");
                ok = false;
            }
        }
        ok
    }

    /// Filters a new pod (already in its network namespace at `ip`) before its containers
    /// start; the other pods' rules follow (the new pod may be their peer).
    pub async fn attach(&self, pod: &Pod, ip: Ipv4Addr, netns: PathBuf) -> Result<(), NetpolError> {
        self.wait_listed().await;
        let uid = pod.uid().unwrap_or_default();
        self.inner
            .local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uid, LocalPod { pod: pod.clone(), ip, netns: netns.clone() });
        let mut applied = self.inner.applied.lock().await;
        let (snapshot, _) = self.snapshot();
        let v = view(pod, ip);
        let rules = snapshot.rules_for(&v);
        let result = self.apply_one(&mut applied, &netns, &v, rules).await;
        drop(applied);
        self.inner.changed.notify_one();
        result
    }

    /// Forgets a pod whose network namespace is going away.
    pub async fn detach(&self, pod: &Pod, ip: Ipv4Addr, netns: &std::path::Path) {
        let uid = pod.uid().unwrap_or_default();
        self.inner.local.lock().unwrap_or_else(|e| e.into_inner()).remove(&uid);
        self.inner.compiled.write().unwrap_or_else(|e| e.into_inner()).remove(&ip);
        self.inner.applied.lock().await.remove(netns);
        self.inner.changed.notify_one();
    }

    /// Whether the Service proxy may forward a TCP connection from `src` that was made to
    /// `service` (cluster IP and port) to `backend` (the endpoint's address and port):
    /// the source pod's egress must allow the endpoint — or the Service address itself,
    /// as network plugins that judge before translation do — and the endpoint pod's
    /// ingress must allow the source.
    pub fn proxied_connection_allowed(
        &self,
        src: Ipv4Addr,
        service: SocketAddrV4,
        backend: SocketAddrV4,
    ) -> bool {
        let compiled = self.inner.compiled.read().unwrap_or_else(|e| e.into_inner());
        let egress_ok = compiled.get(&src).is_none_or(|r| {
            r.egress.allows(*backend.ip(), Proto::Tcp, backend.port())
                || r.egress.allows(*service.ip(), Proto::Tcp, service.port())
        });
        let ingress_ok =
            compiled.get(backend.ip()).is_none_or(|r| r.ingress.allows(src, Proto::Tcp, backend.port()));
        egress_ok && ingress_ok
    }
}
