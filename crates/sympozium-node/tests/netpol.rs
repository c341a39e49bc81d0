//! NetworkPolicy on the local node, tried the way a hostile tenant would: real pods (busybox
//! `httpd` servers) on the real node, real NetworkPolicies through the API server, and every
//! connection made from inside an attacker pod's network namespace — directly to pod IPs,
//! through Services, through a Service of the attacker's own whose EndpointSlice points at
//! the victim, to ports the policy does not list. Each attack is first shown to work while no
//! policy stands in the way, so a refusal means the policy refused it.
//!
//! Every test prints `attacks tried N, refused M`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use support::probe::{Outcome, dns_from, http_from, until};
use support::*;
use sympozium_testkit::TestPlane;

const WAIT: Duration = Duration::from_secs(60);
/// How long a policy change may take to show (generous: a shared 2-core machine).
const PROPAGATE: Duration = Duration::from_secs(30);

/// Attacks tried and refused in one test.
#[derive(Default)]
struct Score {
    tried: AtomicUsize,
    refused: AtomicUsize,
}

impl Score {
    /// Tries an attack until it is refused (the policy may still be on its way).
    async fn refused(&self, what: &str, from: &str, target: SocketAddr) {
        self.tried.fetch_add(1, Ordering::Relaxed);
        let got = until(what, PROPAGATE, |o| !o.reached(), || http_from(from, target)).await;
        eprintln!("refused: {what} ({got:?})");
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    fn report(&self, test: &str) {
        let (t, r) = (self.tried.load(Ordering::Relaxed), self.refused.load(Ordering::Relaxed));
        eprintln!("{test}: attacks tried {t}, refused {r}");
        assert_eq!(t, r);
    }
}

async fn reaches(what: &str, from: &str, target: SocketAddr, body: &str) {
    let got = until(what, PROPAGATE, Outcome::reached, || http_from(from, target)).await;
    assert_eq!(got, Outcome::Reached(body.to_string()), "{what}");
}

/// A busybox web server answering `hello from <name>` on `port`, ready when it listens.
fn server(name: &str, labels: serde_json::Value, port: u16) -> serde_json::Value {
    let script = format!(
        "mkdir -p /tmp/www && echo 'hello from {name}' > /tmp/www/index.html && exec httpd -f -p {port} -h /tmp/www"
    );
    json!({"metadata": {"name": name, "labels": labels},
        "spec": {"terminationGracePeriodSeconds": 1, "automountServiceAccountToken": false,
            "containers": [{"name": "web", "image": "busybox:1.36", "command": ["sh", "-c", script],
                "ports": [{"name": "http", "containerPort": port}],
                "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1}}]}})
}

/// A pod that only sleeps: its network namespace is the attacker's (or the client's) seat.
fn idle(name: &str, labels: serde_json::Value) -> serde_json::Value {
    json!({"metadata": {"name": name, "labels": labels},
        "spec": {"terminationGracePeriodSeconds": 1, "automountServiceAccountToken": false,
            "containers": [{"name": "idle", "image": "busybox:1.36", "command": ["sleep", "100000"]}]}})
}

/// Creates the pods and returns their IPs once each is ready.
async fn start(client: &Client, ns: &str, pods: Vec<serde_json::Value>) -> Vec<String> {
    let mut names = Vec::new();
    for p in pods {
        names.push(p["metadata"]["name"].as_str().unwrap().to_string());
        create_pod(client, ns, p).await;
    }
    let mut ips = Vec::new();
    for n in names {
        let p = wait_ready(client, ns, &n, WAIT).await;
        ips.push(p.status.unwrap().pod_ip.unwrap());
    }
    ips
}

fn at(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::from((ip.parse::<Ipv4Addr>().unwrap(), port))
}

async fn service(
    client: &Client,
    ns: &str,
    name: &str,
    selector: serde_json::Value,
    port: u16,
) -> SocketAddr {
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    let svc = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name},
                "spec": {"selector": selector, "ports": [{"port": 80, "targetPort": port}]}}))
            .unwrap(),
        )
        .await
        .unwrap();
    at(&svc.spec.unwrap().cluster_ip.unwrap(), 80)
}

async fn policy(client: &Client, ns: &str, spec: serde_json::Value) -> String {
    let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    let name = spec["metadata"]["name"].as_str().unwrap().to_string();
    api.create(&PostParams::default(), &serde_json::from_value(spec).unwrap()).await.unwrap();
    name
}

async fn label_namespace(client: &Client, ns: &str, labels: serde_json::Value) {
    let api: Api<Namespace> = Api::all(client.clone());
    api.patch(ns, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": labels}})))
        .await
        .unwrap();
}

/// A Service of the attacker's own namespace whose hand-written EndpointSlice points at
/// `victim`: the node's proxy would connect from its own address, so only its own check
/// stands between the attacker and the victim.
async fn smuggling_service(client: &Client, ns: &str, victim: &str, port: u16) -> SocketAddr {
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    let svc = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "smuggle"},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": port}]}}))
            .unwrap(),
        )
        .await
        .unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    slices
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "smuggle-1",
                "labels": {"kubernetes.io/service-name": "smuggle", "endpointslice.kubernetes.io/managed-by": "attacker"}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": port}],
                "endpoints": [{"addresses": [victim], "conditions": {"ready": true}}]}))
            .unwrap(),
        )
        .await
        .unwrap();
    at(&svc.spec.unwrap().cluster_ip.unwrap(), 80)
}

#[tokio::test]
async fn default_deny_ingress_keeps_out_everyone_but_the_chosen_pods_and_follows_policy_changes() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let score = Score::default();
    let home = namespace(&client, &plane, "np-home").await;
    let ally_ns = namespace(&client, &plane, "np-ally").await;
    let evil_ns = namespace(&client, &plane, "np-evil").await;
    let (home, ally_ns, evil_ns) = (home.name(), ally_ns.name(), evil_ns.name());
    label_namespace(&client, ally_ns, json!({"team": "red"})).await;
    label_namespace(&client, evil_ns, json!({"team": "blue"})).await;

    let ips = start(
        &client,
        home,
        vec![
            server("db", json!({"app": "db"}), 8080),
            server("db-admin", json!({"app": "db-admin"}), 9090),
            idle("friend", json!({"role": "friend"})),
            idle("stranger", json!({"role": "stranger"})),
        ],
    )
    .await;
    let (db, admin, friend, stranger) = (&ips[0], &ips[1], &ips[2], &ips[3]);
    let ally = &start(&client, ally_ns, vec![idle("ally", json!({"role": "ally"}))]).await[0];
    // The attacker even wears the friend's label, in its own namespace.
    let evil = &start(&client, evil_ns, vec![idle("evil", json!({"role": "friend"}))]).await[0];
    let db_svc = service(&client, home, "db", json!({"app": "db"}), 8080).await;
    let smuggle = smuggling_service(&client, evil_ns, db, 8080).await;

    // Without a policy every one of these works: the attacks below are real.
    for (who, from) in [("friend", friend), ("stranger", stranger), ("ally", ally), ("evil", evil)] {
        reaches(&format!("{who} → db (no policy)"), from, at(db, 8080), "hello from db").await;
    }
    reaches("evil → db via its own smuggling Service (no policy)", evil, smuggle, "hello from db").await;
    reaches("stranger → db-admin (no policy)", stranger, at(admin, 9090), "hello from db-admin").await;

    policy(&client, home, json!({"metadata": {"name": "default-deny"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}))
        .await;
    let allow = policy(
        &client,
        home,
        json!({"metadata": {"name": "db-clients"}, "spec": {
            "podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "friend"}}},
                                  {"namespaceSelector": {"matchLabels": {"team": "red"}}}],
                         "ports": [{"port": "http"}]}]}}),
    )
    .await;

    score.refused("stranger → db", stranger, at(db, 8080)).await;
    reaches("friend → db", friend, at(db, 8080), "hello from db").await;
    reaches("ally (namespace team=red) → db", ally, at(db, 8080), "hello from db").await;
    reaches("friend → db through its Service", friend, db_svc, "hello from db").await;
    score.refused("stranger → db through its Service", stranger, db_svc).await;
    score.refused("evil (another namespace, friend's label) → db", evil, at(db, 8080)).await;
    score.refused("evil → db through db's Service", evil, db_svc).await;
    score.refused("evil → db through its own Service pointing at db", evil, smuggle).await;
    score.refused("friend → db-admin (default deny, no rule)", friend, at(admin, 9090)).await;
    score.refused("stranger → db-admin", stranger, at(admin, 9090)).await;
    // Probes come from the node and keep working under deny-all.
    wait_ready(&client, home, "db", WAIT).await;
    wait_ready(&client, home, "db-admin", WAIT).await;

    // Policy changes apply to running pods: without the allow rule the friend is out too …
    let nps: Api<NetworkPolicy> = Api::namespaced(client.clone(), home);
    nps.delete(&allow, &DeleteParams::default()).await.unwrap();
    score.refused("friend → db after the allow rule was deleted", friend, at(db, 8080)).await;
    score.refused("ally → db after the allow rule was deleted", ally, at(db, 8080)).await;
    // … and relabelling a pod moves it in or out without a restart.
    let pods: Api<Pod> = Api::namespaced(client.clone(), home);
    policy(
        &client,
        home,
        json!({"metadata": {"name": "db-clients-2"}, "spec": {"podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "trusted"}}}]}]}}),
    )
    .await;
    pods.patch(
        "stranger",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"role": "trusted"}}})),
    )
    .await
    .unwrap();
    reaches("stranger relabelled trusted → db", stranger, at(db, 8080), "hello from db").await;
    score.refused("friend (not trusted) → db", friend, at(db, 8080)).await;
    // Removing the default deny opens db-admin again; db stays selected by db-clients-2.
    nps.delete("default-deny", &DeleteParams::default()).await.unwrap();
    reaches("friend → db-admin once no policy selects it", friend, at(admin, 9090), "hello from db-admin")
        .await;
    score.refused("evil → db (still selected)", evil, at(db, 8080)).await;
    for name in ["db", "stranger", "friend"] {
        let p = pods.get(name).await.unwrap();
        let restarts: i32 =
            p.status.unwrap().container_statuses.unwrap_or_default().iter().map(|c| c.restart_count).sum();
        assert_eq!(restarts, 0, "{name} was restarted");
    }
    score.report("ingress");
}

#[tokio::test]
async fn egress_deny_blocks_connections_while_dns_and_the_allowed_port_work() {
    let plane = TestPlane::get().unwrap();
    let client = plane.client().await.unwrap();
    let score = Score::default();
    let ns = namespace(&client, &plane, "np-egress").await;
    let other = namespace(&client, &plane, "np-egress-other").await;
    let (ns, other) = (ns.name(), other.name());
    let ips = start(
        &client,
        ns,
        vec![
            server("api", json!({"app": "api"}), 8080),
            server("api-debug", json!({"app": "api"}), 9090),
            idle("client", json!({"app": "client"})),
        ],
    )
    .await;
    let (api, debug, me) = (&ips[0], &ips[1], &ips[2]);
    let outside = &start(&client, other, vec![server("outside", json!({"app": "api"}), 8080)]).await[0];
    let api_svc = service(&client, ns, "api", json!({"app": "api"}), 8080).await;
    let outside_svc = service(&client, other, "outside", json!({"app": "api"}), 8080).await;
    let node: k8s_openapi::api::core::v1::Node = Api::all(client.clone()).get(NODE).await.unwrap();
    let addresses = node.status.as_ref().unwrap().addresses.clone().unwrap();
    let node_ip = addresses.into_iter().find(|a| a.type_ == "InternalIP").unwrap().address;
    let kubelet_port = node.status.unwrap().daemon_endpoints.unwrap().kubelet_endpoint.unwrap().port as u16;
    let dns_server: Ipv4Addr = {
        let n: Ipv4Addr = node_ip.parse().unwrap();
        Ipv4Addr::from(u32::from(n) + 1)
    };
    let name = format!("api.{ns}.svc.cluster.local");

    for (what, target, body) in [
        ("client → api-debug (no policy)", at(debug, 9090), "hello from api-debug"),
        ("client → outside (no policy)", at(outside, 8080), "hello from outside"),
        ("client → outside Service (no policy)", outside_svc, "hello from outside"),
    ] {
        reaches(what, me, target, body).await;
    }
    // The kubelet endpoint speaks TLS: a connection that opens at all counts as reached.
    let kubelet = at(&node_ip, kubelet_port);
    assert!(tcp_opens(me, kubelet).await, "client → the node's kubelet port (no policy)");

    policy(
        &client,
        ns,
        json!({"metadata": {"name": "client-egress"}, "spec": {
            "podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"],
            "egress": [
                {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
                {"to": [{"podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": 8080}]}]}}),
    )
    .await;
    score.refused("client → api-debug:9090 (port not allowed)", me, at(debug, 9090)).await;
    score.refused("client → a pod of another namespace", me, at(outside, 8080)).await;
    score.refused("client → another namespace's Service", me, outside_svc).await;
    score.tried.fetch_add(1, Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + PROPAGATE;
    while tcp_opens(me, kubelet).await {
        assert!(tokio::time::Instant::now() < deadline, "client still reaches the node's kubelet port");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    score.refused.fetch_add(1, Ordering::Relaxed);
    reaches("client → api:8080", me, at(api, 8080), "hello from api").await;
    reaches("client → api Service", me, api_svc, "hello from api").await;
    let answers = dns_from(me, dns_server, &name).await.expect("DNS under an egress policy that allows it");
    assert_eq!(answers, vec![api_svc.ip().to_string().parse::<Ipv4Addr>().unwrap()]);

    // Without the DNS rule, names stop resolving.
    let nps: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    nps.patch(
        "client-egress",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"egress": [{"to": [{"podSelector": {"matchLabels": {"app": "api"}}}], "ports": [{"port": 8080}]}]}})),
    )
    .await
    .unwrap();
    score.tried.fetch_add(1, Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + PROPAGATE;
    while dns_from(me, dns_server, &name).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "DNS still answers without a DNS rule");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    score.refused.fetch_add(1, Ordering::Relaxed);
    reaches("client → api:8080 still", me, at(api, 8080), "hello from api").await;
    // A rule written for a real cluster's DNS (CoreDNS's labels) allows the node's DNS.
    policy(
        &client,
        ns,
        json!({"metadata": {"name": "kube-dns"}, "spec": {
            "podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                        "ports": [{"port": 53, "protocol": "UDP"}]}]}}),
    )
    .await;
    let deadline = tokio::time::Instant::now() + PROPAGATE;
    while let Err(e) = dns_from(me, dns_server, &name).await {
        assert!(tokio::time::Instant::now() < deadline, "DNS by kube-dns selector: {e}");
    }
    score.report("egress");
}

async fn tcp_opens(from: &str, target: SocketAddr) -> bool {
    match http_from(from, target).await {
        Outcome::Reached(_) => true,
        Outcome::Blocked(why) => !why.starts_with("connect"),
    }
}

#[path = "netpol/run.rs"]
mod run;
