//! A simple local provisioner: every unbound claim (no StorageClass, or one that names no
//! other provisioner) gets a `hostPath` PersistentVolume under `<state dir>/pv/`, pinned to
//! this node by node affinity and pre-bound to the claim (the controller-manager's binder
//! completes the binding). Data lives as long as the claim: Released volumes the node made
//! are deleted with their directory.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

/// Provisioner name (a StorageClass with it is served by this node).
pub const PROVISIONER: &str = "sympozium.ai/local-node";
const NODE_LABEL: &str = "sympozium.ai/local-node-name";

/// Provisions claims forever.
pub async fn run(client: Client, node: String, root: PathBuf) {
    let claims: Api<PersistentVolumeClaim> = Api::all(client.clone());
    let stream = watcher(claims, watcher::Config::default()).default_backoff().applied_objects();
    futures::pin_mut!(stream);
    let reaper = tokio::spawn(reap(client.clone(), node.clone(), root.clone()));
    while let Some(ev) = stream.next().await {
        let Ok(claim) = ev else { continue };
        if let Err(e) = provision(&client, &node, &root, &claim).await {
            tracing::warn!(claim = %claim.name_any(), error = %e, "provisioning a volume");
        }
    }
    reaper.abort();
}

async fn ours(client: &Client, class: Option<&str>) -> bool {
    match class.filter(|c| !c.is_empty()) {
        None => true,
        Some(c) => match Api::<StorageClass>::all(client.clone()).get_opt(c).await {
            Ok(Some(sc)) => sc.provisioner == PROVISIONER,
            Ok(None) => true,
            Err(_) => false,
        },
    }
}

async fn provision(
    client: &Client,
    node: &str,
    root: &std::path::Path,
    claim: &PersistentVolumeClaim,
) -> Result<(), kube::Error> {
    let spec = claim.spec.clone().unwrap_or_default();
    let pending = claim.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending") == "Pending";
    if !pending
        || spec.volume_name.as_deref().is_some_and(|v| !v.is_empty())
        || claim.metadata.deletion_timestamp.is_some()
    {
        return Ok(());
    }
    if let Some(selected) = claim.annotations().get("volume.kubernetes.io/selected-node")
        && selected != node
    {
        return Ok(());
    }
    if !ours(client, spec.storage_class_name.as_deref()).await {
        return Ok(());
    }
    let ns = claim.namespace().unwrap_or_default();
    let uid = claim.uid().unwrap_or_default();
    let name = format!("pvc-{uid}");
    let dir = root.join(format!("{ns}_{}_{uid}", claim.name_any()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "creating a volume directory");
        return Ok(());
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777));
    }
    let size = spec
        .resources
        .and_then(|r| r.requests)
        .and_then(|r| r.get("storage").map(|q| q.0.clone()))
        .unwrap_or_else(|| "1Gi".into());
    let pv: PersistentVolume = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {NODE_LABEL: node},
            "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": spec.access_modes.unwrap_or_else(|| vec!["ReadWriteOnce".into()]),
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": spec.storage_class_name.unwrap_or_default(),
            "volumeMode": spec.volume_mode.unwrap_or_else(|| "Filesystem".into()),
            "hostPath": {"path": dir.display().to_string(), "type": "DirectoryOrCreate"},
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns, "name": claim.name_any(), "uid": uid},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}},
        },
    }))
    .map_err(kube::Error::SerdeError)?;
    match Api::<PersistentVolume>::all(client.clone()).create(&PostParams::default(), &pv).await {
        Ok(_) => {
            tracing::info!(claim = %format!("{ns}/{}", claim.name_any()), volume = %name, "provisioned");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes this node's Released volumes and their data.
async fn reap(client: Client, node: String, root: PathBuf) {
    let pvs: Api<PersistentVolume> = Api::all(client);
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let Ok(list) = pvs.list(&ListParams::default().labels(&format!("{NODE_LABEL}={node}"))).await else {
            continue;
        };
        for pv in list {
            if pv.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Released") {
                continue;
            }
            if let Some(path) =
                pv.spec.as_ref().and_then(|s| s.host_path.as_ref()).map(|h| PathBuf::from(&h.path))
                && path.starts_with(&root)
            {
                let _ = std::fs::remove_dir_all(&path);
            }
            let _ = pvs.delete(&pv.name_any(), &DeleteParams::default()).await;
        }
    }
}
