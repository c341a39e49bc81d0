//! The userspace Service proxy: one listener per Service cluster IP:port (in the node's
//! services namespace, where the whole Service CIDR is local), each connection forwarded
//! to a ready endpoint's pod IP and target port. Listeners follow the Services.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::netpol::Enforcer;
use crate::network::Network;
use crate::services::{Backend, ServicePort, ServiceTable};

/// Keeps one listener per Service port until the task is dropped. With an enforcer, each
/// connection goes only to an endpoint NetworkPolicy lets the client reach.
pub async fn run(table: ServiceTable, net: Network, netpol: Option<Enforcer>) {
    let mut listeners: BTreeMap<ServicePort, JoinHandle<()>> = BTreeMap::new();
    loop {
        let wanted = table.ports();
        listeners.retain(|port, task| {
            let keep = wanted.contains(port) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for port in wanted {
            if listeners.contains_key(&port) {
                continue;
            }
            let addr = std::net::SocketAddr::from((port.ip, port.port));
            let bound = net.in_service_namespace(move || {
                let l = std::net::TcpListener::bind(addr)?;
                l.set_nonblocking(true)?;
                Ok(l)
            });
            match bound.map(TcpListener::from_std) {
                Ok(Ok(listener)) => {
                    listeners
                        .insert(port, tokio::spawn(accept(listener, table.clone(), port, netpol.clone())));
                }
                Ok(Err(e)) => tracing::warn!(%addr, error = %e, "service listener"),
                Err(e) => tracing::warn!(%addr, error = %e, "service listener"),
            }
        }
        table.changed.notified().await;
    }
}

async fn accept(listener: TcpListener, table: ServiceTable, port: ServicePort, netpol: Option<Enforcer>) {
    loop {
        let Ok((client, peer)) = listener.accept().await else { continue };
        let table = table.clone();
        let netpol = netpol.clone();
        tokio::spawn(async move {
            let src = match peer {
                SocketAddr::V4(a) => *a.ip(),
                SocketAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
            };
            let service = SocketAddrV4::new(port.ip, port.port);
            let allowed = |backend: SocketAddrV4| {
                netpol.as_ref().is_none_or(|n| n.proxied_connection_allowed(src, service, backend))
            };
            // Endpoints may still be appearing (a pod just became ready): retry briefly.
            let mut backend = None;
            for _ in 0..20 {
                match table.backend(port, allowed) {
                    Backend::Ready(addr) => match TcpStream::connect(addr).await {
                        Ok(s) => {
                            backend = Some(s);
                            break;
                        }
                        Err(e) => tracing::debug!(%addr, error = %e, "backend connect"),
                    },
                    Backend::Refused => {
                        tracing::debug!(%src, ip = %port.ip, port = port.port, "refused by NetworkPolicy");
                        // A reset, as a peer that rejects the connection would send.
                        // Linger zero never blocks (the deprecation's concern): it resets.
                        #[allow(deprecated)]
                        let _ = client.set_linger(Some(std::time::Duration::ZERO));
                        return;
                    }
                    Backend::None => {}
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            let Some(mut backend) = backend else {
                tracing::debug!(ip = %port.ip, port = port.port, "no ready endpoint");
                return;
            };
            let mut client = client;
            let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
        });
    }
}
