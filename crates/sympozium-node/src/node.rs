//! The Node object: registration (labels, capacity, addresses, kubelet endpoint, Ready)
//! and the heartbeat (Ready condition and the Lease in `kube-node-lease`).

use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

/// What the Node reports about this machine.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// InternalIP (the bridge address).
    pub ip: Ipv4Addr,
    /// Port of the kubelet endpoint.
    pub port: u16,
    /// Pod CIDR.
    pub pod_cidr: String,
    /// Pods capacity.
    pub max_pods: u32,
    /// Taints `key=value:Effect`.
    pub taints: Vec<String>,
    /// Why container resource limits are not enforced (None: they are, with cgroups v2).
    pub limits_not_enforced: Option<String>,
}

/// The Node condition type telling whether container resource limits are enforced.
pub const LIMITS_CONDITION: &str = "ResourceLimitsEnforced";
/// The Node annotation saying the same in words.
pub const LIMITS_ANNOTATION: &str = "sympozium.ai/resource-limits";
/// The Node annotation naming the pod CIDR of the process that registered it last: the
/// process that currently owns the Node.
pub const POD_CIDR_ANNOTATION: &str = "sympozium.ai/pod-cidr";

fn taints(list: &[String]) -> Vec<serde_json::Value> {
    list.iter()
        .filter_map(|t| {
            let (kv, effect) = t.split_once(':')?;
            let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
            Some(json!({"key": key, "value": value, "effect": effect}))
        })
        .collect()
}

const MANAGER: &str = "sympozium-node";

fn memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn status(info: &NodeInfo) -> serde_json::Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let resources = json!({"cpu": cpus.to_string(), "memory": memory_bytes().to_string(), "pods": info.max_pods.to_string(), "ephemeral-storage": "100Gi"});
    json!({
        "capacity": resources,
        "allocatable": resources,
        "addresses": [{"type": "InternalIP", "address": info.ip.to_string()}, {"type": "Hostname", "address": info.name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": info.port}},
        "nodeInfo": {"architecture": std::env::consts::ARCH, "operatingSystem": "linux", "kubeletVersion": "v1.36.0-sympozium",
            "kubeProxyVersion": "", "containerRuntimeVersion": "sympozium-node://local-processes", "kernelVersion": "",
            "osImage": "", "machineID": "", "systemUUID": "", "bootID": ""},
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "sympozium-node is running pods as local processes",
             "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "lastHeartbeatTime": now, "lastTransitionTime": now},
            {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "lastHeartbeatTime": now, "lastTransitionTime": now},
            match &info.limits_not_enforced {
                None => json!({"type": LIMITS_CONDITION, "status": "True", "reason": "CgroupV2",
                    "message": "memory.max, cpu.max and pids.max are set per container", "lastHeartbeatTime": now, "lastTransitionTime": now}),
                Some(why) => json!({"type": LIMITS_CONDITION, "status": "False", "reason": "CgroupV2Unavailable",
                    "message": why, "lastHeartbeatTime": now, "lastTransitionTime": now}),
            },
        ],
    })
}

/// Creates or updates the Node and its status.
pub async fn register(client: &Client, info: &NodeInfo) -> Result<(), kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let body = json!({
        "apiVersion": "v1", "kind": "Node",
        // spec.podCIDR cannot change once set, and a restarted node may use another
        // range: the range goes in an annotation instead.
        "metadata": {"name": info.name, "annotations": {POD_CIDR_ANNOTATION: info.pod_cidr,
            LIMITS_ANNOTATION: match &info.limits_not_enforced {
                None => "enforced (cgroup v2)".to_string(),
                Some(why) => format!("not enforced: {why}"),
            }}, "labels": {
            "kubernetes.io/hostname": info.name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
            "sympozium.ai/local-node": "true"}},
        "spec": {"taints": taints(&info.taints)},
    });
    let params = PatchParams::apply(MANAGER).force();
    match nodes.patch(&info.name, &params, &Patch::Apply(&body)).await {
        // A Node left by another registration (e.g. with a podCIDR, which cannot change)
        // is replaced: this node owns the name.
        Err(kube::Error::Api(e)) if e.code == 422 => {
            tracing::warn!(node = %info.name, reason = %e.message, "replacing the existing Node object");
            nodes.delete(&info.name, &Default::default()).await?;
            nodes.patch(&info.name, &params, &Patch::Apply(&body)).await?;
        }
        other => {
            other?;
        }
    }
    let node = nodes
        .patch_status(&info.name, &PatchParams::default(), &Patch::Merge(json!({"status": status(info)})))
        .await?;
    // The node is Ready now: drop the not-ready/unreachable taints a stopped predecessor
    // left (node-lifecycle would take them off a few seconds later; pods wait meanwhile).
    let taints = node.spec.and_then(|s| s.taints).unwrap_or_default();
    let stale = ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"];
    if taints.iter().any(|t| stale.contains(&t.key.as_str())) {
        let keep: Vec<_> = taints.into_iter().filter(|t| !stale.contains(&t.key.as_str())).collect();
        nodes
            .patch(&info.name, &PatchParams::default(), &Patch::Merge(json!({"spec": {"taints": keep}})))
            .await?;
    }
    renew_lease(client, &info.name).await
}

async fn renew_lease(client: &Client, name: &str) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let body = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)},
    });
    leases.patch(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&body)).await.map(|_| ())
}

/// Renews the Lease and the Ready condition every 10 s until another node process takes
/// the Node over (its pod CIDR annotation differs): two processes heartbeating one Node
/// would flip its address and kubelet endpoint between them.
pub async fn heartbeat(client: Client, info: NodeInfo) {
    let nodes: Api<Node> = Api::all(client.clone());
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        if let Ok(Some(current)) = nodes.get_opt(&info.name).await {
            let holder = current.metadata.annotations.as_ref().and_then(|a| a.get(POD_CIDR_ANNOTATION));
            if holder.is_some_and(|c| *c != info.pod_cidr) {
                tracing::warn!(node = %info.name, holder = ?holder, "another node process registered this Node; heartbeat stops");
                return;
            }
        }
        if let Err(e) = register(&client, &info).await {
            tracing::warn!(error = %e, "node heartbeat failed");
        }
    }
}

/// Marks the Node not ready — unless another node process has registered it since (its
/// pod CIDR annotation differs), so a node stopping never darkens its successor.
pub async fn stopped(client: &Client, info: &NodeInfo) {
    let nodes: Api<Node> = Api::all(client.clone());
    let current = nodes.get_opt(&info.name).await.ok().flatten();
    let ours = current
        .as_ref()
        .and_then(|n| n.metadata.annotations.as_ref())
        .and_then(|a| a.get(POD_CIDR_ANNOTATION))
        .is_some_and(|c| *c == info.pod_cidr);
    if !ours {
        return;
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let not_ready = json!({"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "KubeletStopped",
        "message": "sympozium-node stopped", "lastHeartbeatTime": now, "lastTransitionTime": now}]}});
    if let Err(e) =
        nodes.patch_status(&info.name, &PatchParams::default(), &Patch::Strategic(not_ready)).await
    {
        tracing::warn!(error = %e, "marking the node not ready");
    }
}
