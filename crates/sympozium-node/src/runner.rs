//! Start-up and shutdown: checks, the pod network, DNS and Service proxy, the kubelet
//! endpoint, the Node and its heartbeat, the provisioner and the pod manager; on shutdown
//! every pod's processes are stopped and the network the node made is removed.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use kube::{Api, Client};
use tokio::sync::watch;

use crate::config::{Cidr, Config};
use crate::env::NodeValues;
use crate::images::ImageMap;
use crate::netpol::Enforcer;
use crate::netpol::model::Net;
use crate::netpol::nft::Fixed;
use crate::network::Network;
use crate::node::NodeInfo;
use crate::pod::NodeCtx;
use crate::services::ServiceTable;
use crate::volumes::Volumes;

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image mapping is unusable.
    #[error(transparent)]
    Images(#[from] crate::images::ImagesError),
    /// A required tool is missing.
    #[error("{0} is not installed (Debian package {1})")]
    Missing(&'static str, &'static str),
    /// A flag is invalid.
    #[error("invalid {0}: {1}")]
    Flag(&'static str, String),
    /// Local I/O failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The network could not be set up.
    #[error(transparent)]
    Net(#[from] crate::network::NetError),
    /// TLS set-up failed.
    #[error(transparent)]
    Tls(#[from] crate::kubelet_api::TlsError),
    /// The API server refused something.
    #[error("kubernetes: {0}")]
    Kube(#[from] kube::Error),
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
}

/// Links every applet of a multi-call program into a directory (bound at `/bin`).
fn applets(state: &std::path::Path, program: &std::path::Path) -> Result<PathBuf, Error> {
    let io = |what: &str, e| Error::Io(format!("{what} {}", program.display()), e);
    let out = std::process::Command::new(program)
        .arg("--list")
        .output()
        .map_err(|e| io("listing applets of", e))?;
    let name = program.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let dir = state.join("applets").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| io("creating the applet directory for", e))?;
    for applet in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if !applet.contains('/') {
            std::os::unix::fs::symlink(program, dir.join(applet))
                .map_err(|e| io("linking an applet of", e))?;
        }
    }
    Ok(dir)
}

fn meminfo_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

async fn apiserver_addr(cluster_url: &str) -> Result<SocketAddr, Error> {
    let url = url_host_port(cluster_url).ok_or_else(|| Error::Flag("cluster URL", cluster_url.into()))?;
    let mut addrs =
        tokio::net::lookup_host(url.clone()).await.map_err(|e| Error::Io(format!("resolving {url}"), e))?;
    addrs.next().ok_or_else(|| Error::Flag("cluster URL", cluster_url.into()))
}

fn url_host_port(url: &str) -> Option<String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let hostport = rest.split('/').next()?;
    Some(if hostport.contains(':') { hostport.to_string() } else { format!("{hostport}:443") })
}

/// Runs the node until `shutdown` resolves, then stops every pod and cleans up.
pub async fn run(
    config: Config,
    kube_config: kube::Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    for (tool, pkg) in [
        ("bwrap", "bubblewrap"),
        ("nsenter", "util-linux"),
        ("setpriv", "util-linux"),
        ("ip", "iproute2"),
        ("nft", "nftables"),
    ] {
        if !on_path(tool) {
            return Err(Error::Missing(tool, pkg));
        }
    }
    let images = ImageMap::load(&config.images, config.bin_dir.as_deref())?;
    let state_dir = config.state_dir.clone();
    std::fs::create_dir_all(state_dir.join("pods"))
        .map_err(|e| Error::Io(format!("creating {}", state_dir.display()), e))?;
    let mut applet_dirs = BTreeMap::new();
    for (key, p) in images.programs() {
        if !p.path.exists() {
            tracing::warn!(image = key, program = %p.path.display(), "mapped program does not exist (yet): its containers wait with ErrImagePull");
        } else if p.multicall {
            applet_dirs.insert(p.path.clone(), applets(&state_dir, &p.path)?);
        }
    }
    let cluster_url = kube_config.cluster_url.to_string();
    let client = Client::try_from(kube_config)?;
    let apiserver = apiserver_addr(&cluster_url).await?;
    let root = rustix::process::geteuid().is_root();
    let cidr =
        Cidr::parse(&config.pod_cidr).ok_or_else(|| Error::Flag("--pod-cidr", config.pod_cidr.clone()))?;
    let service_cidr = Cidr::parse(&config.service_cidr)
        .ok_or_else(|| Error::Flag("--service-cidr", config.service_cidr.clone()))?;
    let net = if root {
        Some(Network::setup(&config.bridge, cidr, service_cidr).await?)
    } else {
        tracing::warn!(
            "not root: pods share the host network (no pod IPs, no Service DNS or proxy); see README"
        );
        None
    };
    // Whatever happens from here on, the network the node made goes when it stops.
    let local = Local { images, state_dir, applet_dirs, cidr, service_cidr };
    let result = serve(&config, local, client, net.clone(), apiserver, shutdown).await;
    if let Some(net) = net {
        net.teardown().await;
    }
    result
}

/// What start-up prepared locally.
struct Local {
    images: ImageMap,
    state_dir: PathBuf,
    applet_dirs: BTreeMap<PathBuf, PathBuf>,
    cidr: Cidr,
    service_cidr: Cidr,
}

async fn serve(
    config: &Config,
    local: Local,
    client: Client,
    net: Option<Network>,
    apiserver: SocketAddr,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    let Local { images, state_dir, applet_dirs, cidr, service_cidr } = local;
    let host_ip = net.as_ref().map(Network::gateway).unwrap_or(Ipv4Addr::LOCALHOST);
    let mut tasks = Vec::new();
    let mut dns_ip = None;
    let mut kubernetes = Some((apiserver.ip().to_string(), apiserver.port()));
    let mut netpol = None;
    if let Some(net) = &net {
        let table = ServiceTable::start(client.clone(), apiserver, host_ip);
        let svc_ip = net.service_address();
        let net_of = |c: Cidr| Net { addr: c.addr, prefix: c.prefix };
        let fixed = Fixed { node_ip: host_ip, proxy_ip: svc_ip, service_cidr: net_of(service_cidr) };
        netpol = Some(Enforcer::start(client.clone(), fixed, net_of(cidr)));
        let socket = net.in_service_namespace(move || {
            let s = std::net::UdpSocket::bind((svc_ip, 53))?;
            s.set_nonblocking(true)?;
            Ok(s)
        })?;
        let socket =
            tokio::net::UdpSocket::from_std(socket).map_err(|e| Error::Io("DNS socket".into(), e))?;
        tasks.push(tokio::spawn(crate::dns::serve(socket, table.clone(), config.cluster_domain.clone())));
        tasks.push(tokio::spawn(crate::proxy::run(table, net.clone(), netpol.clone())));
        dns_ip = Some(svc_ip);
        let kube_svc = Api::<Service>::namespaced(client.clone(), "default").get_opt("kubernetes").await?;
        kubernetes = kube_svc
            .and_then(|s| s.spec)
            .and_then(|s| {
                let port = s.ports.as_ref()?.first()?.port;
                Some((s.cluster_ip?, u16::try_from(port).ok()?))
            })
            .or(kubernetes);
    }
    let listener = tokio::net::TcpListener::bind((host_ip, config.port))
        .await
        .map_err(|e| Error::Io(format!("binding the kubelet endpoint on {host_ip}:{}", config.port), e))?;
    let port = listener.local_addr().map_err(|e| Error::Io("kubelet endpoint".into(), e))?.port();
    let pod_dirs = crate::kubelet_api::PodDirs::default();
    let tls = crate::kubelet_api::tls_config(host_ip.into(), &config.node_name)?;
    let running = crate::streaming::Registry::default();
    tasks.push(tokio::spawn(crate::kubelet_api::serve(
        listener,
        tls,
        crate::kubelet_api::router(pod_dirs.clone(), running.clone()),
        net.as_ref().map(|_| std::net::IpAddr::V4(host_ip)),
    )));
    let cgroups = crate::cgroups::Cgroups::detect(std::path::Path::new("/sys/fs/cgroup"));
    if let Some(why) = cgroups.unavailable() {
        tracing::warn!(reason = why, "container resource limits are not enforced on this node");
    }
    let info = NodeInfo {
        limits_not_enforced: cgroups.unavailable().map(str::to_string),
        name: config.node_name.clone(),
        ip: host_ip,
        port,
        pod_cidr: cidr.to_string(),
        max_pods: config.max_pods,
        taints: config.taints.clone(),
    };
    crate::node::register(&client, &info).await?;
    let heartbeat = tokio::spawn(crate::node::heartbeat(client.clone(), info.clone()));
    if !config.no_provisioner {
        tasks.push(tokio::spawn(crate::provisioner::run(
            client.clone(),
            config.node_name.clone(),
            state_dir.join("pv"),
        )));
    }
    let cpus = std::thread::available_parallelism().map(|n| n.get() as u64).unwrap_or(1);
    let ctx = Arc::new(NodeCtx {
        client: client.clone(),
        images,
        oci: Arc::new(crate::oci::Store::new(
            config.oci_dirs.iter().map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| d.clone())).collect(),
            state_dir.join("oci"),
        )),
        setpriv: crate::sandbox::Setpriv::discover(),
        volumes: Volumes { client: client.clone(), allow_host_paths: config.allow_host_paths.clone() },
        net: net.clone(),
        state_dir,
        node_name: config.node_name.clone(),
        host_ip,
        dns: dns_ip,
        cluster_domain: config.cluster_domain.clone(),
        applets: applet_dirs,
        pod_dirs,
        values: NodeValues {
            pod_ip: String::new(),
            host_ip: host_ip.to_string(),
            apiserver: kubernetes,
            cpu_cores: cpus,
            memory_bytes: meminfo_bytes(),
        },
        netpol,
        cgroups,
        running,
    });
    tracing::info!(node = %config.node_name, ip = %host_ip, port, "node ready");
    let (stop_tx, stop_rx) = watch::channel(false);
    let manager = tokio::spawn(crate::manager::run(ctx, stop_rx));
    shutdown.await;
    tracing::info!("shutting down");
    // A successor may register while the pods stop: this process no longer claims the Node.
    heartbeat.abort();
    let _ = stop_tx.send(true);
    let _ = manager.await;
    crate::node::stopped(&client, &info).await;
    for t in tasks {
        t.abort();
    }
    Ok(())
}
