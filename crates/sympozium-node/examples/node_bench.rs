//! Pod start latency on the local node: from the moment a pod is seen bound to the node
//! (`spec.nodeName` set) to the moment every container is seen running, observed through a
//! watch, over BENCH_PODS (100) busybox pods — once one pod at a time, once as a burst.
//!
//! `make bench-node` (needs root, bubblewrap and busybox; uses or starts the test plane):
//!     target/release/examples/node_bench target/release/sympozium-node

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use sympozium_testkit::{TestPlane, wait_for};

const NODE: &str = "sympozium-local";
const TAINT: &str = "sympozium.ai/local-node";

fn all_running(p: &Pod) -> bool {
    let statuses = p.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
    !statuses.is_empty()
        && statuses.iter().all(|c| c.state.as_ref().and_then(|s| s.running.as_ref()).is_some())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"bench": "node"}},
        "spec": {"terminationGracePeriodSeconds": 1, "automountServiceAccountToken": false,
            "containers": [{"name": "sleep", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}))
    .unwrap()
}

/// Creates `count` pods, `in_flight` at a time, and returns each one's bound → running and
/// created → running times.
async fn measure(
    client: &Client,
    ns: &str,
    prefix: &str,
    count: usize,
    in_flight: usize,
) -> (Vec<Duration>, Vec<Duration>) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut bound: HashMap<String, Instant> = HashMap::new();
    let mut latencies: HashMap<String, Duration> = HashMap::new();
    let mut created_at: HashMap<String, Instant> = HashMap::new();
    let mut totals: Vec<Duration> = Vec::new();
    let stream = watcher::watcher(pods.clone(), watcher::Config::default().labels("bench=node"));
    futures::pin_mut!(stream);
    // Wait for the watch to be established before creating anything.
    while let Some(ev) = stream.next().await {
        if matches!(ev, Ok(Event::InitDone)) {
            break;
        }
    }
    let mut created = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    while latencies.len() < count {
        while created < count && created - latencies.len() < in_flight {
            let name = format!("{prefix}-{created}");
            created_at.insert(name.clone(), Instant::now());
            pods.create(&PostParams::default(), &pod(&name)).await.unwrap();
            created += 1;
        }
        let ev = tokio::time::timeout_at(deadline.into(), stream.next()).await.expect("bench timed out");
        let Some(Ok(Event::Apply(p) | Event::InitApply(p))) = ev else { continue };
        let name = p.name_any();
        if !name.starts_with(prefix) {
            continue;
        }
        let now = Instant::now();
        if p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(NODE) {
            bound.entry(name.clone()).or_insert(now);
        }
        if all_running(&p)
            && !latencies.contains_key(&name)
            && let Some(t) = bound.get(&name)
        {
            totals.push(now - created_at[&name]);
            latencies.insert(name, now - *t);
        }
    }
    (latencies.into_values().collect(), totals)
}

fn report(what: &str, (bound, created): (Vec<Duration>, Vec<Duration>)) {
    line(what, "bound -> all containers running", bound);
    line(what, "created -> all containers running", created);
}

fn line(what: &str, measured: &str, mut l: Vec<Duration>) {
    l.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what}: {} pods, {measured}: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        l.len(),
        ms(percentile(&l, 0.5)),
        ms(percentile(&l, 0.9)),
        ms(percentile(&l, 0.99)),
        ms(*l.last().unwrap())
    );
}

#[tokio::main]
async fn main() {
    let node_bin = std::env::args().nth(1).expect("usage: node_bench <path to sympozium-node>");
    let count: usize = std::env::var("BENCH_PODS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let pid = std::process::id();
    let state = std::env::temp_dir().join(format!("sympozium-node-bench-{pid}"));
    std::fs::create_dir_all(&state).unwrap();
    let root = sympozium_testkit::repo_root();
    let mut node = Command::new(&node_bin)
        .args(["--kubeconfig", plane.kubeconfig().to_str().unwrap(), "--node-name", NODE])
        .args(["--images", root.join("deploy/local-node/images.yaml").to_str().unwrap()])
        .args(["--state-dir", state.to_str().unwrap(), "--bridge", &format!("symb{}", pid % 100_000)])
        .args(["--pod-cidr", "10.249.0.0/24", "--register-with-taints", &format!("{TAINT}=true:NoSchedule")])
        .args(["--parent-pid", &pid.to_string()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .expect("starting sympozium-node");
    let nodes: Api<Node> = Api::all(client.clone());
    wait_for(&nodes, NODE, "local node Ready", Duration::from_secs(60), |n: Option<&Node>| {
        n.and_then(|n| n.metadata.annotations.as_ref())
            .and_then(|a| a.get("sympozium.ai/pod-cidr"))
            .map(String::as_str)
            == Some("10.249.0.0/24")
            && n.and_then(|n| n.status.as_ref()?.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    })
    .await
    .unwrap();
    let ns = plane.namespace(&client, "node-bench").await.unwrap();
    let ns = ns.name().to_string();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
            "scheduler.alpha.kubernetes.io/node-selector": format!("kubernetes.io/hostname={NODE}"),
            "scheduler.alpha.kubernetes.io/defaultTolerations":
                format!(r#"[{{"key":"{TAINT}","operator":"Exists","effect":"NoSchedule"}}]"#)}}})),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);

    report("one at a time", measure(&client, &ns, "seq", count, 1).await);
    pods.delete_collection(&DeleteParams::default(), &Default::default()).await.unwrap();
    // The next round starts on an empty node.
    while !pods.list(&Default::default()).await.unwrap().items.is_empty() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    report(&format!("burst of {count}"), measure(&client, &ns, "burst", count, count).await);
    pods.delete_collection(&DeleteParams::default(), &Default::default()).await.unwrap();
    namespaces.delete(&ns, &DeleteParams::default()).await.unwrap();
    // Stop the node cleanly (SIGTERM): it stops its pods and removes its network.
    let _ = Command::new("kill").arg(node.id().to_string()).status();
    let _ = node.wait();
    let _ = std::fs::remove_dir_all(&state);
}
