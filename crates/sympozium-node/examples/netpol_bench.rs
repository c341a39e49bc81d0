//! NetworkPolicy enforcement on the local node:
//! 1. recomputation: the pure model + nft rendering for BENCH_PODS (100) pods under
//!    BENCH_POLICIES (100) policies, no cluster;
//! 2. policy change → enforced: a NetworkPolicy created (deleted) through the API server
//!    until a client pod's connection to the server pod is first refused (first succeeds
//!    again), probed every few milliseconds from inside the client's network namespace, with
//!    BENCH_POLICIES unrelated policies in the namespace, BENCH_ROUNDS (20) times;
//! 3. per-connection cost: TCP connects from the client to the server with no policy and
//!    with ingress + egress policies of 100 rules each in front of the matching one.
//!
//! `make bench-netpol` (needs root, bubblewrap, busybox, nftables; uses or starts the test
//! plane):  target/release/examples/netpol_bench target/release/sympozium-node

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use sympozium_node::netpol::model::{DeclaredPort, Labels, Net, PodView, Proto, Snapshot};
use sympozium_node::netpol::nft::{Fixed, render};
use sympozium_testkit::{TestPlane, wait_for};

const NODE: &str = "sympozium-local";
const TAINT: &str = "sympozium.ai/local-node";
const CIDR: &str = "10.249.2.0/24";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn line(what: &str, mut l: Vec<Duration>) {
    l.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what}: n={}, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        l.len(),
        ms(percentile(&l, 0.5)),
        ms(percentile(&l, 0.9)),
        ms(percentile(&l, 0.99)),
        ms(*l.last().unwrap())
    );
}

fn policy(name: &str, spec: serde_json::Value) -> NetworkPolicy {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

/// Part 1: no cluster.
fn recompute(pods: usize, policies: usize) {
    let fixed = Fixed {
        node_ip: Ipv4Addr::new(10, 246, 0, 1),
        proxy_ip: Ipv4Addr::new(10, 246, 0, 2),
        service_cidr: Net::parse("10.0.0.0/24").unwrap(),
    };
    let views: Vec<PodView> = (0..pods)
        .map(|i| PodView {
            namespace: format!("ns{}", i % 10),
            name: format!("p{i}"),
            labels: Labels::from([
                ("app".to_string(), format!("a{}", i % 7)),
                ("tier".into(), format!("t{}", i % 3)),
            ]),
            ip: Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 246, 0, 10)) + i as u32),
            ports: vec![DeclaredPort { name: "http".into(), port: 8080, proto: Proto::Tcp }],
        })
        .collect();
    let mut nps = Vec::new();
    for i in 0..policies {
        let mut p = policy(
            &format!("np{i}"),
            json!({"podSelector": {"matchLabels": {"app": format!("a{}", i % 7)}}, "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"tier": format!("t{}", i % 3)}}},
                                      {"namespaceSelector": {"matchLabels": {"team": "red"}}}], "ports": [{"port": "http"}]}],
                "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}], "ports": [{"port": 443}]},
                           {"ports": [{"port": 53, "protocol": "UDP"}]}]}),
        );
        p.metadata.namespace = Some(format!("ns{}", i % 10));
        nps.push(p);
    }
    let namespaces: BTreeMap<String, Labels> = (0..10)
        .map(|i| {
            (
                format!("ns{i}"),
                Labels::from([("team".to_string(), if i % 2 == 0 { "red" } else { "blue" }.into())]),
            )
        })
        .collect();
    let snapshot = Snapshot { namespaces, pods: views.clone(), policies: nps };
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..20 {
        let t = Instant::now();
        for v in &views {
            bytes += render(&snapshot.rules_for(v), &fixed).len();
        }
        times.push(t.elapsed());
    }
    println!("(rendered {} bytes per round)", bytes / 20);
    line(&format!("recompute + render, {pods} pods, {policies} policies (in process)"), times);
}

fn netns_of(ip: &str, bridge: &str) -> String {
    format!("/run/netns/{bridge}-{}", ip.rsplit('.').next().unwrap())
}

/// Connect attempts from inside `netns`, on a thread that lives there.
struct Prober {
    tx: std::sync::mpsc::Sender<(SocketAddr, Duration, std::sync::mpsc::Sender<Option<Duration>>)>,
}

impl Prober {
    fn new(netns: String) -> Prober {
        let (tx, rx) =
            std::sync::mpsc::channel::<(SocketAddr, Duration, std::sync::mpsc::Sender<Option<Duration>>)>();
        std::thread::spawn(move || {
            let f = std::fs::File::open(&netns).unwrap();
            rustix::thread::move_into_link_name_space(
                f.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .unwrap();
            for (target, timeout, reply) in rx {
                let t = Instant::now();
                let ok = TcpStream::connect_timeout(&target, timeout).is_ok();
                let _ = reply.send(ok.then(|| t.elapsed()));
            }
        });
        Prober { tx }
    }

    /// The connect time, or None when it did not connect within `timeout`.
    fn connect(&self, target: SocketAddr, timeout: Duration) -> Option<Duration> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.tx.send((target, timeout, tx)).unwrap();
        rx.recv().unwrap()
    }
}

async fn until_state(prober: &Prober, target: SocketAddr, open: bool) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let connected = prober.connect(target, Duration::from_millis(20)).is_some();
        if connected == open {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "the policy never took effect");
        if connected {
            // Open and waiting to close: probe again at once (a refused probe took 20 ms).
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

fn pod(name: &str, labels: serde_json::Value, serve: bool) -> Pod {
    let command = if serve {
        json!([
            "sh",
            "-c",
            "mkdir -p /tmp/w && echo ok > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w"
        ])
    } else {
        json!(["sleep", "100000"])
    };
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
        "spec": {"terminationGracePeriodSeconds": 1, "automountServiceAccountToken": false,
            "containers": [{"name": "c", "image": "busybox:1.36", "command": command}]}}))
    .unwrap()
}

async fn running_ip(client: &Client, ns: &str, name: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let p = wait_for(&pods, name, "running", Duration::from_secs(60), |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref()).and_then(|s| s.phase.as_deref()) == Some("Running")
    })
    .await
    .unwrap();
    p.status.unwrap().pod_ip.unwrap()
}

#[tokio::main]
async fn main() {
    let node_bin = std::env::args().nth(1).expect("usage: netpol_bench <path to sympozium-node>");
    let (pods_n, policies_n, rounds) =
        (env("BENCH_PODS", 100), env("BENCH_POLICIES", 100), env("BENCH_ROUNDS", 20));
    recompute(pods_n, policies_n);

    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let pid = std::process::id();
    let bridge = format!("symq{}", pid % 100_000);
    let state = std::env::temp_dir().join(format!("sympozium-netpol-bench-{pid}"));
    std::fs::create_dir_all(&state).unwrap();
    let root = sympozium_testkit::repo_root();
    let mut node = Command::new(&node_bin)
        .args(["--kubeconfig", plane.kubeconfig().to_str().unwrap(), "--node-name", NODE])
        .args(["--images", root.join("deploy/local-node/images.yaml").to_str().unwrap()])
        .args(["--state-dir", state.to_str().unwrap(), "--bridge", &bridge])
        .args(["--pod-cidr", CIDR, "--register-with-taints", &format!("{TAINT}=true:NoSchedule")])
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
            == Some(CIDR)
            && n.and_then(|n| n.status.as_ref()?.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    })
    .await
    .unwrap();
    let ns_obj = plane.namespace(&client, "netpol-bench").await.unwrap();
    let ns = ns_obj.name().to_string();
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
    pods.create(&PostParams::default(), &pod("server", json!({"app": "server"}), true)).await.unwrap();
    pods.create(&PostParams::default(), &pod("client", json!({"app": "client"}), false)).await.unwrap();
    let server = running_ip(&client, &ns, "server").await;
    let client_ip = running_ip(&client, &ns, "client").await;
    let target = SocketAddr::from((server.parse::<Ipv4Addr>().unwrap(), 8080));
    let prober = Prober::new(netns_of(&client_ip, &bridge));
    until_state(&prober, target, true).await;

    let nps: Api<NetworkPolicy> = Api::namespaced(client.clone(), &ns);
    for i in 0..policies_n {
        let p = policy(
            &format!("unrelated-{i}"),
            json!({"podSelector": {"matchLabels": {"app": format!("other-{i}")}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"x": format!("{i}")}}}]}]}),
        );
        nps.create(&PostParams::default(), &p).await.unwrap();
    }
    let deny = policy(
        "deny-server",
        json!({"podSelector": {"matchLabels": {"app": "server"}}, "policyTypes": ["Ingress"]}),
    );
    let (mut closing, mut opening) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        nps.create(&PostParams::default(), &deny).await.unwrap();
        closing.push(until_state(&prober, target, false).await - t);
        let t = Instant::now();
        nps.delete("deny-server", &DeleteParams::default()).await.unwrap();
        opening.push(until_state(&prober, target, true).await - t);
    }
    line(&format!("policy created -> connection refused ({policies_n} other policies)"), closing);
    line(&format!("policy deleted -> connection allowed ({policies_n} other policies)"), opening);

    let connects = |label: &str| {
        let mut l = Vec::new();
        for _ in 0..env("BENCH_CONNECTS", 2000) {
            l.push(prober.connect(target, Duration::from_secs(2)).expect("connect"));
        }
        line(label, l);
    };
    connects("TCP connect, no policy on either pod");
    let mut rules: Vec<serde_json::Value> = (0..100)
        .map(|i| json!({"from": [{"ipBlock": {"cidr": format!("192.168.{i}.0/24")}}], "ports": [{"port": 1000 + i}]}))
        .collect();
    rules.push(
        json!({"from": [{"podSelector": {"matchLabels": {"app": "client"}}}], "ports": [{"port": 8080}]}),
    );
    nps.create(
        &PostParams::default(),
        &policy("server-in", json!({"podSelector": {"matchLabels": {"app": "server"}}, "ingress": rules})),
    )
    .await
    .unwrap();
    let egress: Vec<serde_json::Value> = rules
        .iter()
        .map(|r| {
            let mut r = r.clone();
            let mut peers = r["from"].take();
            // The last rule's peer is the client itself: going out, it is the server.
            if peers[0].get("podSelector").is_some() {
                peers = json!([{"podSelector": {"matchLabels": {"app": "server"}}}]);
            }
            json!({"to": peers, "ports": r["ports"]})
        })
        .collect();
    nps.create(
        &PostParams::default(),
        &policy("client-out", json!({"podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"], "egress": egress})),
    )
    .await
    .unwrap();
    // Wait until both tables are in place (the client's egress table is the later one).
    let client_ns = netns_of(&client_ip, &bridge);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !String::from_utf8_lossy(
        &Command::new("nsenter")
            .arg(format!("--net={client_ns}"))
            .args(["nft", "list", "ruleset"])
            .output()
            .unwrap()
            .stdout,
    )
    .contains("hook output")
    {
        assert!(Instant::now() < deadline, "client egress table never appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until_state(&prober, target, true).await;
    connects("TCP connect, 101-rule ingress + 101-rule egress policies");

    nps.delete_collection(&DeleteParams::default(), &Default::default()).await.unwrap();
    pods.delete_collection(&DeleteParams::default(), &Default::default()).await.unwrap();
    namespaces.delete(&ns, &DeleteParams::default()).await.unwrap();
    let _ = Command::new("kill").arg(node.id().to_string()).status();
    let _ = node.wait();
    let _ = std::fs::remove_dir_all(&state);
}
