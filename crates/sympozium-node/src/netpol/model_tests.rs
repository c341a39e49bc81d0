#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

use super::*;

fn pod(ns: &str, name: &str, ip: [u8; 4], labels: &[(&str, &str)]) -> PodView {
    PodView {
        namespace: ns.into(),
        name: name.into(),
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ip: Ipv4Addr::from(ip),
        ports: vec![DeclaredPort { name: "http".into(), port: 8080, proto: Proto::Tcp }],
    }
}

fn policy(ns: &str, name: &str, spec: serde_json::Value) -> NetworkPolicy {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}, "spec": spec})).unwrap()
}

fn snapshot(pods: Vec<PodView>, policies: Vec<NetworkPolicy>) -> Snapshot {
    let mut namespaces = BTreeMap::new();
    for (ns, team) in [("a", "red"), ("b", "blue"), ("c", "red")] {
        namespaces.insert(
            ns.to_string(),
            Labels::from([
                ("kubernetes.io/metadata.name".to_string(), ns.to_string()),
                ("team".to_string(), team.to_string()),
            ]),
        );
    }
    Snapshot { namespaces, pods, policies }
}

const SERVER: [u8; 4] = [10, 246, 0, 10];
const FRIEND: [u8; 4] = [10, 246, 0, 11];
const STRANGER: [u8; 4] = [10, 246, 0, 12];
const OTHER_NS: [u8; 4] = [10, 246, 0, 13];
const RED_NS: [u8; 4] = [10, 246, 0, 14];

fn pods() -> Vec<PodView> {
    vec![
        pod("a", "server", SERVER, &[("app", "server")]),
        pod("a", "friend", FRIEND, &[("app", "client"), ("role", "friend")]),
        pod("a", "stranger", STRANGER, &[("app", "client")]),
        pod("b", "other", OTHER_NS, &[("app", "client"), ("role", "friend")]),
        pod("c", "red", RED_NS, &[("app", "client"), ("role", "friend")]),
    ]
}

fn ip(a: [u8; 4]) -> Ipv4Addr {
    Ipv4Addr::from(a)
}

fn server_rules(policies: Vec<NetworkPolicy>) -> PodRules {
    let s = snapshot(pods(), policies);
    let server = s.pods[0].clone();
    s.rules_for(&server)
}

#[test]
fn a_pod_no_policy_selects_is_open_both_ways() {
    let other = policy("b", "deny", json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}));
    let narrow = policy("a", "db", json!({"podSelector": {"matchLabels": {"app": "db"}}}));
    let r = server_rules(vec![other, narrow]);
    assert_eq!(r, PodRules::open());
    assert!(r.ingress.allows(ip(STRANGER), Proto::Tcp, 1));
}

#[test]
fn default_deny_ingress_isolates_ingress_only() {
    let r = server_rules(vec![policy("a", "deny", json!({"podSelector": {}, "policyTypes": ["Ingress"]}))]);
    assert_eq!(r.ingress, Direction::Isolated(Vec::new()));
    assert!(!r.ingress.allows(ip(FRIEND), Proto::Tcp, 8080));
    assert_eq!(r.egress, Direction::Open);
    assert_eq!(r.policies, vec!["a/deny".to_string()]);
}

#[test]
fn policy_types_default_to_ingress_plus_egress_when_egress_rules_exist() {
    let r = server_rules(vec![policy("a", "p", json!({"podSelector": {}}))]);
    assert!(matches!(r.ingress, Direction::Isolated(_)));
    assert_eq!(r.egress, Direction::Open);
    let r = server_rules(vec![policy(
        "a",
        "p",
        json!({"podSelector": {}, "egress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]}),
    )]);
    assert!(matches!(r.ingress, Direction::Isolated(_)));
    assert!(r.egress.allows(ip([8, 8, 8, 8]), Proto::Udp, 53));
    assert!(!r.egress.allows(ip([8, 8, 8, 8]), Proto::Tcp, 53));
    // Egress listed alone: ingress stays open.
    let r = server_rules(vec![policy("a", "p", json!({"podSelector": {}, "policyTypes": ["Egress"]}))]);
    assert_eq!(r.ingress, Direction::Open);
    assert_eq!(r.egress, Direction::Isolated(Vec::new()));
}

#[test]
fn pod_selector_peers_are_pods_of_the_policys_namespace_only() {
    let p = policy(
        "a",
        "from-friends",
        json!({"podSelector": {"matchLabels": {"app": "server"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "friend"}}}]}]}),
    );
    let r = server_rules(vec![p]);
    assert!(r.ingress.allows(ip(FRIEND), Proto::Tcp, 8080));
    assert!(!r.ingress.allows(ip(STRANGER), Proto::Tcp, 8080));
    // Same labels in another namespace: not a peer.
    assert!(!r.ingress.allows(ip(OTHER_NS), Proto::Tcp, 8080));
    assert!(!r.ingress.allows(ip(RED_NS), Proto::Tcp, 8080));
}

#[test]
fn namespace_selectors_alone_and_combined_with_pod_selectors() {
    let ns_only = policy(
        "a",
        "red",
        json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "red"}}}]}]}),
    );
    let r = server_rules(vec![ns_only]);
    for allowed in [FRIEND, STRANGER, RED_NS] {
        assert!(r.ingress.allows(ip(allowed), Proto::Tcp, 1), "{allowed:?}");
    }
    assert!(!r.ingress.allows(ip(OTHER_NS), Proto::Tcp, 1));

    let both = policy(
        "a",
        "red-friends",
        json!({"podSelector": {}, "ingress": [{"from": [{
            "namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In", "values": ["red"]}]},
            "podSelector": {"matchExpressions": [{"key": "role", "operator": "Exists"}]}}]}]}),
    );
    let r = server_rules(vec![both]);
    assert!(r.ingress.allows(ip(FRIEND), Proto::Tcp, 1));
    assert!(r.ingress.allows(ip(RED_NS), Proto::Tcp, 1));
    assert!(!r.ingress.allows(ip(STRANGER), Proto::Tcp, 1));
    assert!(!r.ingress.allows(ip(OTHER_NS), Proto::Tcp, 1));

    // `{}` chooses every namespace; a namespace's name label works without a cache entry.
    let any =
        policy("a", "any", json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}]}]}));
    assert!(server_rules(vec![any]).ingress.allows(ip(OTHER_NS), Proto::Tcp, 1));
    let mut s = snapshot(
        pods(),
        vec![policy(
            "a",
            "by-name",
            json!({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "b"}}}]}]}),
        )],
    );
    s.namespaces.remove("b");
    let server = s.pods[0].clone();
    assert!(s.rules_for(&server).ingress.allows(ip(OTHER_NS), Proto::Tcp, 1));
}

#[test]
fn ip_blocks_honour_except_and_ports_protocols_and_ranges() {
    let p = policy(
        "a",
        "egress",
        json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [
            {"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.246.0.0/24"]}}],
             "ports": [{"port": 5000, "endPort": 5010}, {"protocol": "UDP"}]}]}),
    );
    let r = server_rules(vec![p]);
    assert!(r.egress.allows(ip([10, 1, 2, 3]), Proto::Tcp, 5005));
    assert!(r.egress.allows(ip([10, 1, 2, 3]), Proto::Udp, 9999));
    assert!(!r.egress.allows(ip([10, 1, 2, 3]), Proto::Tcp, 5011));
    assert!(!r.egress.allows(ip(FRIEND), Proto::Tcp, 5005), "the except range");
    assert!(!r.egress.allows(ip([192, 168, 0, 1]), Proto::Tcp, 5005));
}

#[test]
fn named_ports_resolve_against_the_destination_pod() {
    let ingress = policy("a", "in", json!({"podSelector": {}, "ingress": [{"ports": [{"port": "http"}]}]}));
    let r = server_rules(vec![ingress]);
    assert!(r.ingress.allows(ip(OTHER_NS), Proto::Tcp, 8080));
    assert!(!r.ingress.allows(ip(OTHER_NS), Proto::Tcp, 8081));
    let egress = policy(
        "a",
        "out",
        json!({"podSelector": {"matchLabels": {"app": "server"}}, "policyTypes": ["Egress"],
            "egress": [{"ports": [{"port": "http"}, {"port": "nope"}]}]}),
    );
    let r = server_rules(vec![egress]);
    assert!(r.egress.allows(ip(OTHER_NS), Proto::Tcp, 8080));
    // A named port never matches an address that is not a pod.
    assert!(!r.egress.allows(ip([1, 1, 1, 1]), Proto::Tcp, 8080));
}

#[test]
fn policies_add_up_and_none_takes_away() {
    let deny = policy("a", "deny", json!({"podSelector": {}, "policyTypes": ["Ingress"]}));
    let allow = policy(
        "a",
        "allow",
        json!({"podSelector": {"matchLabels": {"app": "server"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "friend"}}}], "ports": [{"port": 8080}]}]}),
    );
    let r = server_rules(vec![deny, allow]);
    assert!(r.ingress.allows(ip(FRIEND), Proto::Tcp, 8080));
    assert!(!r.ingress.allows(ip(FRIEND), Proto::Tcp, 22));
    assert!(!r.ingress.allows(ip(STRANGER), Proto::Tcp, 8080));
    assert_eq!(r.policies.len(), 2);
}

#[test]
fn malformed_rules_only_narrow() {
    // Unknown operator in a peer: that peer allows nothing.
    let p = policy(
        "a",
        "bad-peer",
        json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchExpressions": [{"key": "x", "operator": "Sometimes"}]}}]}]}),
    );
    assert!(!server_rules(vec![p]).ingress.allows(ip(FRIEND), Proto::Tcp, 1));
    // Unknown operator in the target selector: the pod is isolated rather than left open.
    let p = policy(
        "a",
        "bad-target",
        json!({"podSelector": {"matchExpressions": [{"key": "x", "operator": "Sometimes"}]}, "policyTypes": ["Ingress"]}),
    );
    assert_eq!(server_rules(vec![p]).ingress, Direction::Isolated(Vec::new()));
    // An unparsable CIDR or except allows nothing (not everything).
    let p = policy(
        "a",
        "bad-cidr",
        json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/99"}}, {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["garbage"]}}]}]}),
    );
    assert!(!server_rules(vec![p]).ingress.allows(ip(FRIEND), Proto::Tcp, 1));
    // A port out of range or an unknown protocol opens nothing.
    let p = policy(
        "a",
        "bad-port",
        json!({"podSelector": {}, "ingress": [{"ports": [{"port": 70000}, {"port": 80, "protocol": "ICMP"}, {"port": 90, "endPort": 80}]}]}),
    );
    let r = server_rules(vec![p]);
    assert!(!r.ingress.allows(ip(FRIEND), Proto::Tcp, 80));
    assert!(!r.ingress.allows(ip(FRIEND), Proto::Tcp, 4464));
    assert!(!r.ingress.allows(ip(FRIEND), Proto::Tcp, 85));
}

/// The controller's per-run policy, as the AgentRun controller builds it, evaluated for the
/// agent pod: DNS, the bus in the system namespace, its own instance's memory server and
/// its model are reachable; another tenant's pods and other instances' memory are not.
#[test]
fn the_controllers_per_run_policy_confines_the_agent_pod() {
    use sympozium_api::AgentRun;
    use sympozium_controller::agentrun::network::{NetworkInputs, network_policy};
    use sympozium_controller::settings::Settings;

    let run: AgentRun = serde_json::from_value(json!({
        "apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
        "metadata": {"name": "r1", "namespace": "a", "uid": "u1"},
        "spec": {"instanceRef": "inst", "agentId": "default", "sessionKey": "s", "task": "t",
            "model": {"provider": "openai", "model": "m", "baseURL": "http://10.9.9.9:8000/v1", "authSecretRef": "k"}}
    }))
    .unwrap();
    let net: sympozium_api::policy::NetworkPolicySpec =
        serde_json::from_value(json!({"denyAll": true, "allowDNS": true, "allowEventBus": true})).unwrap();
    let settings = Settings::default();
    let inputs = NetworkInputs {
        run: &run,
        policy: Some(&net),
        settings: &settings,
        memory: true,
        api_server: Vec::new(),
        mcp: &[],
    };
    let (np, _) = network_policy(&inputs).unwrap();
    let system = settings.system_namespace.clone();
    let mut namespaces = BTreeMap::new();
    for ns in ["a", "b", system.as_str()] {
        namespaces.insert(
            ns.to_string(),
            Labels::from([("kubernetes.io/metadata.name".to_string(), ns.to_string())]),
        );
    }
    let agent_labels = np.spec.as_ref().unwrap().pod_selector.as_ref().unwrap().match_labels.clone().unwrap();
    let agent = PodView {
        namespace: "a".into(),
        name: "agent".into(),
        labels: agent_labels,
        ip: ip([10, 246, 0, 20]),
        ports: Vec::new(),
    };
    let memory = pod(
        "a",
        "memory",
        [10, 246, 0, 21],
        &[("sympozium.ai/instance", "inst"), ("sympozium.ai/component", "memory")],
    );
    let other_memory = pod(
        "a",
        "memory2",
        [10, 246, 0, 22],
        &[("sympozium.ai/instance", "other"), ("sympozium.ai/component", "memory")],
    );
    let nats = pod(&system, "nats", [10, 246, 0, 23], &[("app", "nats")]);
    let victim = pod("b", "victim", [10, 246, 0, 24], &[("app", "db")]);
    let neighbour = pod("a", "neighbour", [10, 246, 0, 25], &[("app", "x")]);
    let s = Snapshot {
        namespaces,
        pods: vec![agent.clone(), memory, other_memory, nats, victim, neighbour],
        policies: vec![np],
    };
    let r = s.rules_for(&agent);
    let out = |a: [u8; 4], proto, port| r.egress.allows(ip(a), proto, port);
    assert!(out([10, 246, 0, 2], Proto::Udp, 53), "DNS");
    assert!(out([10, 246, 0, 23], Proto::Tcp, 4222), "the bus");
    assert!(out([10, 246, 0, 21], Proto::Tcp, 8080), "its memory server");
    assert!(out([10, 9, 9, 9], Proto::Tcp, 8000), "its model");
    assert!(!out([10, 246, 0, 22], Proto::Tcp, 8080), "another instance's memory");
    assert!(!out([10, 246, 0, 24], Proto::Tcp, 8080), "another tenant's pod");
    assert!(!out([10, 246, 0, 25], Proto::Tcp, 8080), "a neighbour pod");
    assert!(!out([10, 246, 0, 23], Proto::Tcp, 8222), "the bus's monitoring port");
    assert!(!out([169, 254, 169, 254], Proto::Tcp, 80), "metadata service");
    assert!(!r.ingress.allows(ip([10, 246, 0, 25]), Proto::Tcp, 8080), "nobody connects to the agent");
}
