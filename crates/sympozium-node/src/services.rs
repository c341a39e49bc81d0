//! The cluster's Services and EndpointSlices as the node sees them (watched caches), and
//! the two lookups pods need: a Service name → its cluster IP (DNS), and a cluster
//! IP:port → a ready endpoint (the proxy).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::Notify;

/// Watched Services and EndpointSlices.
#[derive(Clone)]
pub struct ServiceTable {
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    /// Signalled on every change (the proxy re-syncs its listeners).
    pub changed: Arc<Notify>,
    apiserver: SocketAddr,
    node_ip: Ipv4Addr,
    next: Arc<AtomicUsize>,
}

/// The outcome of choosing a Service backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Connect here.
    Ready(SocketAddr),
    /// No ready endpoint (yet).
    None,
    /// Ready endpoints exist, but NetworkPolicy forbids this connection to every one.
    Refused,
}

/// Where a connection to a Service port goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServicePort {
    /// Cluster IP.
    pub ip: Ipv4Addr,
    /// Service port.
    pub port: u16,
}

impl ServiceTable {
    /// Starts watching. `apiserver` is where the `default/kubernetes` Service leads (the
    /// plane runs without an endpoint reconciler); `node_ip` endpoints mean this machine's
    /// loopback (host services bound to 127.0.0.1 — loopback endpoints are not allowed).
    pub fn start(client: Client, apiserver: SocketAddr, node_ip: Ipv4Addr) -> ServiceTable {
        let changed = Arc::new(Notify::new());
        let (services, svc_writer) = reflector::store();
        let (slices, slice_writer) = reflector::store();
        let svc_api: Api<Service> = Api::all(client.clone());
        let slice_api: Api<EndpointSlice> = Api::all(client);
        let n = changed.clone();
        tokio::spawn(async move {
            let stream = watcher(svc_api, watcher::Config::default())
                .default_backoff()
                .reflect(svc_writer)
                .touched_objects();
            futures::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                if let Err(e) = ev {
                    tracing::debug!(error = %e, "service watch");
                }
                n.notify_one();
            }
        });
        let n = changed.clone();
        tokio::spawn(async move {
            let stream = watcher(slice_api, watcher::Config::default())
                .default_backoff()
                .reflect(slice_writer)
                .touched_objects();
            futures::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                if let Err(e) = ev {
                    tracing::debug!(error = %e, "endpointslice watch");
                }
                n.notify_one();
            }
        });
        ServiceTable { services, slices, changed, apiserver, node_ip, next: Arc::new(AtomicUsize::new(0)) }
    }

    /// Every TCP Service port with a cluster IP.
    pub fn ports(&self) -> Vec<ServicePort> {
        let mut out = Vec::new();
        for svc in self.services.state() {
            let Some(spec) = &svc.spec else { continue };
            let Some(ip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse::<Ipv4Addr>().ok()) else {
                continue;
            };
            for p in spec.ports.iter().flatten() {
                if p.protocol.as_deref().unwrap_or("TCP") == "TCP"
                    && let Ok(port) = u16::try_from(p.port)
                {
                    out.push(ServicePort { ip, port });
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// A-record answers for a fully qualified name: `<svc>.<ns>.svc[.<domain>]`.
    pub fn resolve(&self, name: &str, domain: &str) -> Option<Vec<Ipv4Addr>> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let short = name.strip_suffix(&format!(".{domain}")).unwrap_or(&name);
        let rest = short.strip_suffix(".svc")?;
        let (svc, ns) = rest.split_once('.')?;
        if ns.contains('.') {
            return None;
        }
        let service = self
            .services
            .state()
            .into_iter()
            .find(|s| s.name_any() == svc && s.namespace().as_deref() == Some(ns))?;
        let spec = service.spec.as_ref()?;
        match spec.cluster_ip.as_deref() {
            Some("None") | None => Some(
                self.slices_of(ns, svc)
                    .iter()
                    .flat_map(|s| s.endpoints.iter().flatten().cloned().collect::<Vec<_>>())
                    .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
                    .flat_map(|e| e.addresses.into_iter())
                    .filter_map(|a| a.parse().ok())
                    .collect(),
            ),
            Some(ip) => Some(ip.parse().ok().into_iter().collect()),
        }
    }

    fn slices_of(&self, ns: &str, svc: &str) -> Vec<Arc<EndpointSlice>> {
        self.slices
            .state()
            .into_iter()
            .filter(|s| {
                s.namespace().as_deref() == Some(ns)
                    && s.labels().get("kubernetes.io/service-name").map(String::as_str) == Some(svc)
            })
            .collect()
    }

    /// A ready backend for a connection to `target` (round robin over the ready endpoints
    /// `allowed` accepts; it sees each endpoint's address as the cluster knows it, so a
    /// loopback endpoint appears as the node's address).
    pub fn backend(&self, target: ServicePort, allowed: impl Fn(SocketAddrV4) -> bool) -> Backend {
        let ip = target.ip.to_string();
        let Some(service) = self
            .services
            .state()
            .into_iter()
            .find(|s| s.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some(ip.as_str()))
        else {
            return Backend::None;
        };
        let ns = service.namespace().unwrap_or_default();
        let name = service.name_any();
        let port = service
            .spec
            .as_ref()
            .and_then(|s| s.ports.iter().flatten().find(|p| p.port == i32::from(target.port)).cloned());
        let Some(port) = port else { return Backend::None };
        if ns == "default" && name == "kubernetes" {
            let judged = match self.apiserver {
                SocketAddr::V4(a) => a,
                SocketAddr::V6(_) => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, self.apiserver.port()),
            };
            return if allowed(judged) { Backend::Ready(self.apiserver) } else { Backend::Refused };
        }
        let mut candidates = Vec::new();
        let mut refused = false;
        for slice in self.slices_of(&ns, &name) {
            let Some(slice_port) = slice
                .ports
                .iter()
                .flatten()
                // An unnamed Service port appears in slices as `name: ""`.
                .find(|p| p.name.as_deref().unwrap_or("") == port.name.as_deref().unwrap_or(""))
                .and_then(|p| p.port)
            else {
                continue;
            };
            let Ok(slice_port) = u16::try_from(slice_port) else { continue };
            for e in slice.endpoints.iter().flatten() {
                if !e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true) {
                    continue;
                }
                for a in &e.addresses {
                    if let Ok(addr) = a.parse::<Ipv4Addr>() {
                        if !allowed(SocketAddrV4::new(addr, slice_port)) {
                            refused = true;
                            continue;
                        }
                        let addr = if addr == self.node_ip { Ipv4Addr::LOCALHOST } else { addr };
                        candidates.push(SocketAddr::from((addr, slice_port)));
                    }
                }
            }
        }
        if candidates.is_empty() {
            return if refused { Backend::Refused } else { Backend::None };
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % candidates.len();
        candidates.get(i).copied().map_or(Backend::None, Backend::Ready)
    }
}
