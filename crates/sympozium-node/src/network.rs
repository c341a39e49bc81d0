//! Pod networking: one network namespace per pod on a bridge, addresses from the pod CIDR.
//!
//! Layout (pod CIDR 10.246.0.0/24, bridge `symnode0`):
//! - `symnode0` (host namespace) holds 10.246.0.1: the node's InternalIP and every pod's
//!   default gateway; the kubelet endpoint listens there.
//! - netns `symnode0-svc` holds 10.246.0.2 on the same bridge and routes the whole Service
//!   CIDR as local addresses: the node's DNS responder and service proxy listen there, so
//!   two nodes on one machine (or a node beside anything else) never fight over cluster IPs.
//! - each pod gets netns `symnode0-<n>` with 10.246.0.<n> on `eth0`, a default route via
//!   .1 and the Service CIDR routed via .2.
//!
//! The host does not forward packets, so pods reach only the node, each other and Services.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;

use crate::config::Cidr;

/// Network set-up errors.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// An `ip` command failed.
    #[error("ip {what}: {reason}")]
    Ip {
        /// What was being done.
        what: String,
        /// stderr of ip.
        reason: String,
    },
    /// The pod CIDR has no free address left.
    #[error("no free pod address in {0}")]
    Exhausted(String),
    /// Entering the services namespace failed.
    #[error("entering network namespace {name}: {source}")]
    Enter {
        /// The namespace.
        name: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The node's pod network.
#[derive(Clone, Debug)]
pub struct Network {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bridge: String,
    cidr: Cidr,
    service_cidr: Cidr,
    used: Mutex<BTreeSet<u32>>,
    /// Where the next search for a free address starts: addresses are handed out round
    /// robin, so a just-freed address (still in neighbour caches with the old pod's MAC)
    /// is not reused at once.
    next: Mutex<u32>,
}

/// A pod's network namespace and address.
#[derive(Clone, Debug)]
pub struct PodNet {
    /// The pod IP.
    pub ip: Ipv4Addr,
    /// `/run/netns/<name>`.
    pub netns_path: PathBuf,
    name: String,
    index: u32,
}

async fn ip_batch(what: &str, commands: &str) -> Result<(), NetError> {
    ip_batch_in(what, None, commands).await
}

/// Runs `ip -batch` (inside netns `ns` when given).
async fn ip_batch_in(what: &str, ns: Option<&str>, commands: &str) -> Result<(), NetError> {
    let mut cmd = tokio::process::Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", ns]);
    }
    let mut child = cmd
        .args(["-force", "-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| NetError::Ip { what: what.into(), reason: e.to_string() })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(commands.as_bytes())
            .await
            .map_err(|e| NetError::Ip { what: what.into(), reason: e.to_string() })?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| NetError::Ip { what: what.into(), reason: e.to_string() })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError::Ip {
            what: what.into(),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

impl Network {
    /// Creates (after removing leftovers of an earlier run) the bridge and the services
    /// namespace.
    pub async fn setup(bridge: &str, cidr: Cidr, service_cidr: Cidr) -> Result<Network, NetError> {
        let net = Network {
            inner: Arc::new(Inner {
                bridge: bridge.into(),
                cidr,
                service_cidr,
                used: Mutex::new(BTreeSet::new()),
                next: Mutex::new(10),
            }),
        };
        net.teardown().await;
        let gw = net.gateway();
        let svc = net.service_address();
        let prefix = cidr.prefix;
        let ns = net.svc_netns();
        let commands = format!(
            "link add {bridge} type bridge\n\
             addr add {gw}/{prefix} dev {bridge}\n\
             link set {bridge} up\n\
             netns add {ns}\n\
             link add {bridge}s type veth peer name eth0 netns {ns}\n\
             link set {bridge}s master {bridge} up\n"
        );
        ip_batch("setting up the bridge and the services namespace", &commands).await?;
        let inside = format!(
            "addr add {svc}/{prefix} dev eth0\n\
             link set eth0 up\n\
             link set lo up\n\
             route add local {service_cidr} dev lo\n\
             route add default via {gw}\n"
        );
        ip_batch_in("setting up the services namespace", Some(&ns), &inside).await?;
        Ok(net)
    }

    /// Removes everything [`Network::setup`] and [`Network::add_pod`] created (by name).
    pub async fn teardown(&self) {
        let prefix = format!("{}-", self.inner.bridge);
        if let Ok(entries) = std::fs::read_dir("/run/netns") {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with(&prefix) {
                    let _ = ip_batch("removing a netns", &format!("netns del {name}\n")).await;
                }
            }
        }
        // The services veth can outlive its namespace (a process still inside keeps it), and
        // would then block the next setup with "File exists".
        let services_veth = format!("{}s", self.inner.bridge);
        if std::path::Path::new("/sys/class/net").join(&services_veth).exists() {
            let _ = ip_batch("removing the services veth", &format!("link del {services_veth}\n")).await;
        }
        if std::path::Path::new("/sys/class/net").join(&self.inner.bridge).exists() {
            let _ = ip_batch("removing the bridge", &format!("link del {}\n", self.inner.bridge)).await;
        }
    }

    /// The node's address on the bridge (InternalIP, pods' gateway).
    pub fn gateway(&self) -> Ipv4Addr {
        self.inner.cidr.nth(1).unwrap_or(self.inner.cidr.addr)
    }

    /// The services namespace's address (DNS server of the pods).
    pub fn service_address(&self) -> Ipv4Addr {
        self.inner.cidr.nth(2).unwrap_or(self.inner.cidr.addr)
    }

    fn svc_netns(&self) -> String {
        format!("{}-svc", self.inner.bridge)
    }

    /// Runs `f` on a thread inside the services namespace: sockets it creates live there.
    pub fn in_service_namespace<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, NetError> {
        let name = self.svc_netns();
        let path = PathBuf::from("/run/netns").join(&name);
        let err = |source| NetError::Enter { name: name.clone(), source };
        let handle = std::thread::spawn(move || -> std::io::Result<T> {
            let file = std::fs::File::open(&path)?;
            rustix::thread::move_into_link_name_space(
                file.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )?;
            f()
        });
        match handle.join() {
            Ok(r) => r.map_err(err),
            Err(_) => Err(err(std::io::Error::other("thread panicked"))),
        }
    }

    /// Creates a pod's namespace with the next free address.
    pub async fn add_pod(&self) -> Result<PodNet, NetError> {
        let index = {
            let mut used = self.inner.used.lock().unwrap_or_else(|e| e.into_inner());
            let size = self.inner.cidr.size().min(65_000);
            let mut next = self.inner.next.lock().unwrap_or_else(|e| e.into_inner());
            let start = (*next).clamp(10, size - 2);
            let free = (start..size - 1).chain(10..start).find(|i| !used.contains(i));
            if let Some(i) = free {
                *next = if i + 1 >= size - 1 { 10 } else { i + 1 };
            }
            let Some(i) = free else {
                return Err(NetError::Exhausted(self.inner.cidr.to_string()));
            };
            used.insert(i);
            i
        };
        let ip =
            self.inner.cidr.nth(index).ok_or_else(|| NetError::Exhausted(self.inner.cidr.to_string()))?;
        let bridge = &self.inner.bridge;
        let name = format!("{bridge}-{index}");
        let host = format!("{bridge}p{index}");
        let prefix = self.inner.cidr.prefix;
        let gw = self.gateway();
        let svc = self.service_address();
        let service_cidr = self.inner.service_cidr;
        // `neigh flush`: forget the MAC of an earlier pod with this address (usually none).
        let commands = format!(
            "neigh flush to {ip}\n\
             netns add {name}\n\
             link add {host} type veth peer name eth0 netns {name}\n\
             link set {host} master {bridge} up\n"
        );
        let inside = format!(
            "addr add {ip}/{prefix} dev eth0\n\
             link set eth0 up\n\
             link set lo up\n\
             route add default via {gw}\n\
             route add {service_cidr} via {svc}\n"
        );
        let pod = PodNet { ip, netns_path: PathBuf::from("/run/netns").join(&name), name, index };
        let result = match ip_batch("creating a pod network namespace", &commands).await {
            Ok(()) => ip_batch_in("configuring a pod network namespace", Some(&pod.name), &inside).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            self.remove_pod(&pod).await;
            return Err(e);
        }
        Ok(pod)
    }

    /// Deletes a pod's namespace (its veth goes with it) and frees its address.
    pub async fn remove_pod(&self, pod: &PodNet) {
        if pod.netns_path.exists()
            && let Err(e) =
                ip_batch("removing a pod network namespace", &format!("netns del {}\n", pod.name)).await
        {
            tracing::warn!(netns = %pod.name, error = %e, "could not remove the pod's network namespace");
        }
        self.inner.used.lock().unwrap_or_else(|e| e.into_inner()).remove(&pod.index);
    }
}
