//! `serve`'s default: a local port forwarded to the deployed API server (Service
//! `sympozium-apiserver`) through the Kubernetes API, as `kubectl port-forward svc/…` does.
//!
//! Each local connection gets its own port-forward session to a ready pod behind the
//! Service, chosen when the connection arrives. So when the pod goes away (a rollout, a
//! deleted pod, a node restart) the next connection reaches its replacement, and a
//! connection that cannot be forwarded yet is retried with exponential backoff while the
//! new pod starts, the way the original's reconnect loop around `kubectl port-forward` did.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use tokio::net::TcpStream;

use super::install_apiserver;

/// How long a connection waits for a pod to forward to before it is dropped.
const CONNECT_PATIENCE: Duration = Duration::from_secs(90);
/// Longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// Where connections go: a pod of the API server's Service, on its target port.
pub(crate) struct Forwarder {
    pods: Api<Pod>,
    service: Api<Service>,
    namespace: String,
    /// The pod the last connection went to, to say so when it changes.
    last_pod: Mutex<Option<String>>,
}

/// Why a connection could not be forwarded (yet).
#[derive(Debug, thiserror::Error)]
enum ForwardError {
    #[error("Service {0} is gone")]
    NoService(String),
    #[error("no ready pod behind Service {0}")]
    NoPod(String),
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

impl Forwarder {
    /// Forwards to Service `sympozium-apiserver` in `namespace`.
    pub(crate) fn new(client: &Client, namespace: &str) -> Self {
        Self {
            pods: Api::namespaced(client.clone(), namespace),
            service: Api::namespaced(client.clone(), namespace),
            namespace: namespace.to_string(),
            last_pod: Mutex::new(None),
        }
    }

    /// A ready pod behind the Service (not terminating) and the container port to reach.
    async fn target(&self) -> Result<(String, u16), ForwardError> {
        let name = install_apiserver::NAME;
        let service =
            self.service.get_opt(name).await?.ok_or_else(|| ForwardError::NoService(name.into()))?;
        let spec = service.spec.unwrap_or_default();
        let selector = spec.selector.unwrap_or_default();
        if selector.is_empty() {
            return Err(ForwardError::NoPod(name.into()));
        }
        let port = spec
            .ports
            .unwrap_or_default()
            .into_iter()
            .find(|p| p.port == i32::from(install_apiserver::PORT) || p.name.as_deref() == Some("http"));
        let labels = selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        let pods = self.pods.list(&ListParams::default().labels(&labels)).await?;
        let mut ready: Vec<Pod> = pods.items.into_iter().filter(is_ready).collect();
        // The newest ready pod: during a rollout the old one is about to go.
        ready.sort_by_key(|p| std::cmp::Reverse(p.metadata.creation_timestamp.clone()));
        let pod = ready.into_iter().next().ok_or_else(|| ForwardError::NoPod(name.into()))?;
        let target = match port.as_ref().and_then(|p| p.target_port.clone()) {
            Some(IntOrString::Int(n)) => u16::try_from(n).ok(),
            Some(IntOrString::String(port_name)) => container_port(&pod, &port_name),
            None => port.as_ref().and_then(|p| u16::try_from(p.port).ok()),
        }
        .unwrap_or(install_apiserver::PORT);
        Ok((pod.name_any(), target))
    }

    /// Opens a port-forward session to the current pod and returns its stream.
    async fn connect(
        &self,
    ) -> Result<(kube::api::Portforwarder, tokio::io::DuplexStream, String), ForwardError> {
        let (pod, port) = self.target().await?;
        let mut forwarder = self.pods.portforward(&pod, &[port]).await?;
        let stream = forwarder.take_stream(port).ok_or_else(|| ForwardError::NoPod(pod.clone()))?;
        if let Some(errors) = forwarder.take_error(port) {
            let pod = pod.clone();
            tokio::spawn(async move {
                if let Some(message) = errors.await {
                    eprintln!("port-forward to pod {pod}: {message}");
                }
            });
        }
        Ok((forwarder, stream, pod))
    }

    /// Carries one local connection to the API server, waiting (with backoff) for a pod.
    pub(crate) async fn handle(self: Arc<Self>, mut local: TcpStream) {
        let started = Instant::now();
        let mut pause = Duration::from_millis(250);
        let mut said = String::new();
        loop {
            match self.connect().await {
                Ok((forwarder, mut remote, pod)) => {
                    self.note_pod(&pod);
                    // A reset either way just ends this connection; the client opens another.
                    let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
                    drop(remote);
                    forwarder.abort();
                    return;
                }
                Err(e) => {
                    let message = e.to_string();
                    if message != said {
                        eprintln!("waiting for the API server: {message}");
                        said = message;
                    }
                    if started.elapsed() > CONNECT_PATIENCE {
                        eprintln!(
                            "gave up on a connection after {}s: {said} (is `sympozium-apiserver` running? `kubectl -n {} get pods`)",
                            CONNECT_PATIENCE.as_secs(),
                            self.namespace
                        );
                        return;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn note_pod(&self, pod: &str) {
        if let Ok(mut last) = self.last_pod.lock()
            && last.as_deref() != Some(pod)
        {
            eprintln!("forwarding to pod {pod}");
            *last = Some(pod.to_string());
        }
    }
}

/// Running, Ready and not being deleted.
fn is_ready(pod: &Pod) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let status = pod.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The number of a named container port.
fn container_port(pod: &Pod, name: &str) -> Option<u16> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(name))
        .and_then(|p| u16::try_from(p.container_port).ok())
}

/// Whether Service `sympozium-apiserver` exists in `namespace`.
pub(crate) async fn deployed(client: &Client, namespace: &str) -> anyhow::Result<bool> {
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    Ok(services
        .get_opt(install_apiserver::NAME)
        .await
        .with_context(|| format!("reading Service {namespace}/{}", install_apiserver::NAME))?
        .is_some())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn only_running_ready_pods_not_being_deleted_take_connections() {
        let ready = serde_json::json!({"metadata": {"name": "a"}, "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]}});
        assert!(is_ready(&pod(ready.clone())));
        let mut deleting = ready.clone();
        deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
        assert!(!is_ready(&pod(deleting)));
        let mut unready = ready.clone();
        unready["status"]["conditions"][0]["status"] = "False".into();
        assert!(!is_ready(&pod(unready)));
        let mut pending = ready;
        pending["status"]["phase"] = "Pending".into();
        assert!(!is_ready(&pod(pending)));
    }

    #[test]
    fn a_named_target_port_is_looked_up_in_the_pods_containers() {
        let p = pod(serde_json::json!({"metadata": {"name": "a"}, "spec": {"containers": [
            {"name": "side", "ports": [{"name": "metrics", "containerPort": 9000}]},
            {"name": "apiserver", "ports": [{"name": "http", "containerPort": 8080}]}]}}));
        assert_eq!(container_port(&p, "http"), Some(8080));
        assert_eq!(container_port(&p, "nope"), None);
    }
}
