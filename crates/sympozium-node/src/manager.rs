//! Watches the pods bound to this node (field selector `spec.nodeName`) and keeps one
//! worker per pod; on shutdown every worker stops its containers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::DeleteParams;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, ResourceExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::pod::{self, End, NodeCtx};

struct Worker {
    pod: watch::Sender<Pod>,
    control: watch::Sender<Option<End>>,
    task: JoinHandle<()>,
}

fn terminal(p: &Pod) -> bool {
    matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// Runs pods until `shutdown` flips to true, then stops them all.
pub async fn run(node: Arc<NodeCtx>, mut shutdown: watch::Receiver<bool>) {
    let api: Api<Pod> = Api::all(node.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", node.node_name));
    let stream = watcher::watcher(api, config).default_backoff();
    futures::pin_mut!(stream);
    let mut workers: HashMap<String, Worker> = HashMap::new();
    let mut seen_in_list: Vec<String> = Vec::new();
    loop {
        workers.retain(|_, w| !w.task.is_finished());
        let event = tokio::select! {
            ev = stream.next() => ev,
            _ = shutdown.changed() => break,
        };
        let Some(event) = event else { break };
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "pod watch");
                continue;
            }
        };
        match event {
            Event::Init => seen_in_list.clear(),
            Event::InitApply(p) => {
                seen_in_list.push(p.uid().unwrap_or_default());
                apply(&node, &mut workers, p).await;
            }
            Event::InitDone => {
                // Pods deleted while the watch was down.
                for (uid, w) in &workers {
                    if !seen_in_list.contains(uid) {
                        let _ = w.control.send(Some(End::Gone));
                    }
                }
            }
            Event::Apply(p) => apply(&node, &mut workers, p).await,
            Event::Delete(p) => {
                if let Some(w) = workers.get(&p.uid().unwrap_or_default()) {
                    let _ = w.control.send(Some(End::Gone));
                }
            }
        }
    }
    tracing::info!(pods = workers.len(), "stopping every pod");
    for w in workers.values() {
        let _ = w.control.send(Some(End::Shutdown));
    }
    for (_, w) in workers {
        let _ = tokio::time::timeout(Duration::from_secs(20), w.task).await;
    }
}

async fn apply(node: &Arc<NodeCtx>, workers: &mut HashMap<String, Worker>, p: Pod) {
    let uid = p.uid().unwrap_or_default();
    if let Some(w) = workers.get(&uid) {
        let _ = w.pod.send(p);
        return;
    }
    if terminal(&p) || p.metadata.deletion_timestamp.is_some() {
        // Not running here (finished earlier, or never started): a deletion is final at once.
        if p.metadata.deletion_timestamp.is_some() {
            let api: Api<Pod> = Api::namespaced(node.client.clone(), &p.namespace().unwrap_or_default());
            let _ = api
                .delete(&p.name_any(), &DeleteParams { grace_period_seconds: Some(0), ..Default::default() })
                .await;
        }
        return;
    }
    tracing::info!(pod = %format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()), "starting pod");
    let (pod_tx, pod_rx) = watch::channel(p);
    let (control_tx, control_rx) = watch::channel(None);
    let task = tokio::spawn(pod::run(node.clone(), pod_rx, control_rx));
    workers.insert(uid, Worker { pod: pod_tx, control: control_tx, task });
}
