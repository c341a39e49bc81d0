//! The userspace Service proxy: one listener per Service cluster IP:port (in the node's
//! services namespace, where the whole Service CIDR is local), each connection forwarded
//! to a ready endpoint's pod IP and target port. Listeners follow the Services.

use std::collections::BTreeMap;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::network::Network;
use crate::services::{ServicePort, ServiceTable};

/// Keeps one listener per Service port until the task is dropped.
pub async fn run(table: ServiceTable, net: Network) {
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
                    listeners.insert(port, tokio::spawn(accept(listener, table.clone(), port)));
                }
                Ok(Err(e)) => tracing::warn!(%addr, error = %e, "service listener"),
                Err(e) => tracing::warn!(%addr, error = %e, "service listener"),
            }
        }
        table.changed.notified().await;
    }
}

async fn accept(listener: TcpListener, table: ServiceTable, port: ServicePort) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        let table = table.clone();
        tokio::spawn(async move {
            // Endpoints may still be appearing (a pod just became ready): retry briefly.
            let mut backend = None;
            for _ in 0..20 {
                if let Some(addr) = table.backend(port) {
                    match TcpStream::connect(addr).await {
                        Ok(s) => {
                            backend = Some(s);
                            break;
                        }
                        Err(e) => tracing::debug!(%addr, error = %e, "backend connect"),
                    }
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
