#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;

use super::*;
use crate::agentrun::build::{self, RunInputs};

fn run() -> AgentRun {
    serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
        "metadata": {"name": "r1", "namespace": "team", "uid": "u1"},
        "spec": {"instanceRef": "agent", "agentId": "a", "sessionKey": "", "task": "t",
                 "model": {"provider": "openai", "model": "m", "authSecretRef": ""}}}))
    .unwrap()
}

fn net(v: serde_json::Value) -> PolicyNetwork {
    serde_json::from_value(v).unwrap()
}

fn inputs<'a>(r: &'a AgentRun, n: Option<&'a PolicyNetwork>, s: &'a Settings) -> NetworkInputs<'a> {
    NetworkInputs { run: r, policy: n, settings: s, memory: false, api_server: Vec::new(), mcp: &[] }
}

#[test]
fn no_policy_or_deny_all_off_means_no_restriction() {
    let (r, s) = (run(), Settings::default());
    assert!(network_policy(&inputs(&r, None, &s)).is_none());
    let open = net(json!({"denyAll": false}));
    assert!(network_policy(&inputs(&r, Some(&open), &s)).is_none());
}

#[test]
fn deny_all_selects_the_pod_the_job_creates_and_allows_only_dns_bus_and_listed_egress() {
    let (r, s) = (run(), Settings { system_namespace: "sym".into(), ..Default::default() });
    let n = net(json!({"allowedEgress": [{"host": "10.0.0.0/8", "port": 443}, {"host": "192.168.1.7"},
                                          {"host": "api.openai.com", "port": 443}, {"host": "example.com"}]}));
    let (np, notes) = network_policy(&inputs(&r, Some(&n), &s)).unwrap();
    assert_eq!(np.metadata.name.as_deref(), Some("sympozium-run-r1"));
    assert_eq!(np.metadata.owner_references.as_ref().unwrap()[0].uid, "u1");
    let spec = np.spec.unwrap();

    // The selector matches the labels on the Job's pod template.
    let settings = Settings::default();
    let job = build::job(&RunInputs {
        run: &r,
        instance: None,
        settings: &settings,
        skills: vec![],
        sidecars: vec![],
        timeout: std::time::Duration::from_secs(60),
        tool_policy: None,
        traceparent: None,
    });
    let pod_labels = job.spec.unwrap().template.metadata.unwrap().labels.unwrap();
    let selector = spec.pod_selector.unwrap().match_labels.unwrap();
    assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)), "{selector:?} vs {pod_labels:?}");

    assert_eq!(spec.policy_types.unwrap(), ["Ingress", "Egress"]);
    assert!(spec.ingress.is_none(), "no ingress rule: all ingress denied");
    let egress = spec.egress.unwrap();
    let dns = &egress[0];
    assert!(dns.to.is_none());
    assert_eq!(dns.ports.as_ref().unwrap()[0].port, Some(IntOrString::Int(53)));
    let bus = &egress[1];
    let ns_sel = bus.to.as_ref().unwrap()[0].namespace_selector.as_ref().unwrap();
    assert_eq!(ns_sel.match_labels.as_ref().unwrap()["kubernetes.io/metadata.name"], "sym");
    assert_eq!(bus.ports.as_ref().unwrap()[0].port, Some(IntOrString::Int(4222)));
    assert_eq!(egress[2].to.as_ref().unwrap()[0].ip_block.as_ref().unwrap().cidr, "10.0.0.0/8");
    assert_eq!(egress[3].to.as_ref().unwrap()[0].ip_block.as_ref().unwrap().cidr, "192.168.1.7/32");
    assert!(egress[3].ports.is_none(), "no port: any port to that address");
    assert!(
        egress[4].to.is_none() && egress[4].ports.as_ref().unwrap()[0].port == Some(IntOrString::Int(443))
    );
    let model = egress[5].to.as_ref().unwrap();
    let v4 = model[0].ip_block.as_ref().unwrap();
    assert_eq!(v4.cidr, "0.0.0.0/0");
    assert!(
        v4.except.as_ref().unwrap().contains(&"10.0.0.0/8".to_string()),
        "the cluster network stays closed"
    );
    assert_eq!(egress[5].ports.as_ref().unwrap()[0].port, Some(IntOrString::Int(443)));
    assert_eq!(egress.len(), 6, "example.com without a port opens nothing");
    assert_eq!(notes.len(), 2);
    assert!(notes[1].contains("example.com"));
}

#[test]
fn dns_and_bus_can_be_turned_off_and_run_needs_are_added() {
    let (r, s) = (run(), Settings::default());
    let n = net(json!({"allowDNS": false, "allowEventBus": false}));
    let mut i = inputs(&r, Some(&n), &s);
    assert_eq!(network_policy(&i).unwrap().0.spec.unwrap().egress.unwrap().len(), 1, "only the model");
    i.memory = true;
    i.api_server = vec![("10.96.0.1".into(), 6443)];
    let egress = network_policy(&i).unwrap().0.spec.unwrap().egress.unwrap();
    let memory =
        egress[0].to.as_ref().unwrap()[0].pod_selector.as_ref().unwrap().match_labels.clone().unwrap();
    assert_eq!(
        (memory["sympozium.ai/instance"].as_str(), memory["sympozium.ai/component"].as_str()),
        ("agent", "memory")
    );
    assert_eq!(egress[1].to.as_ref().unwrap()[0].ip_block.as_ref().unwrap().cidr, "10.96.0.1/32");
}

#[test]
fn an_external_bus_is_reached_by_its_address() {
    let s = Settings { event_bus_url: Some("nats://10.1.2.3:4333".into()), ..Default::default() };
    let r = run();
    let n = net(json!({"allowDNS": false}));
    let egress = network_policy(&inputs(&r, Some(&n), &s)).unwrap().0.spec.unwrap().egress.unwrap();
    assert_eq!(egress[0].to.as_ref().unwrap()[0].ip_block.as_ref().unwrap().cidr, "10.1.2.3/32");
    assert_eq!(egress[0].ports.as_ref().unwrap()[0].port, Some(IntOrString::Int(4333)));
    assert_eq!(cidr("fd00::1"), Some("fd00::1/128".into()));
    assert_eq!(cidr("10.0.0.0/40"), None);
}

#[test]
fn the_model_stays_reachable_under_deny_all() {
    let s = Settings::default();
    let n = net(json!({"allowDNS": false, "allowEventBus": false}));
    let with_base = |url: &str| {
        let mut r = run();
        r.spec.model.base_url = Some(url.into());
        r
    };
    // An address: exactly that address and port.
    let r = with_base("http://10.0.5.9:11434/v1");
    let (np, notes) = network_policy(&inputs(&r, Some(&n), &s)).unwrap();
    let egress = np.spec.unwrap().egress.unwrap();
    assert_eq!(egress[0].to.as_ref().unwrap()[0].ip_block.as_ref().unwrap().cidr, "10.0.5.9/32");
    assert_eq!(egress[0].ports.as_ref().unwrap()[0].port, Some(IntOrString::Int(11434)));
    assert!(notes.is_empty());
    // A name (an in-cluster Ollama): its port, and a note saying what that means.
    let r = with_base("http://ollama.models.svc:11434");
    let (np, notes) = network_policy(&inputs(&r, Some(&n), &s)).unwrap();
    let egress = np.spec.unwrap().egress.unwrap();
    assert!(egress[0].to.is_none());
    assert_eq!(egress[0].ports.as_ref().unwrap()[0].port, Some(IntOrString::Int(11434)));
    assert!(notes[0].contains("ollama.models.svc"), "{notes:?}");
    // HTTPS without a port: 443.
    let r = with_base("https://llm.example.com/v1");
    let egress = network_policy(&inputs(&r, Some(&n), &s)).unwrap().0.spec.unwrap().egress.unwrap();
    assert_eq!(egress[0].ports.as_ref().unwrap()[0].port, Some(IntOrString::Int(443)));
}

fn mcp_server(ns: &str, name: &str, spec: serde_json::Value) -> sympozium_api::MCPServer {
    let mut s: sympozium_api::MCPServer =
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1",
        "kind": "MCPServer", "metadata": {"name": name, "namespace": ns}, "spec": spec}))
        .unwrap();
    let url = crate::mcpserver::build::service_url(&s);
    s.status = Some(sympozium_api::McpServerStatus { ready: true, url: Some(url), ..Default::default() });
    s
}

fn reference(v: serde_json::Value) -> sympozium_api::instance::McpServerRef {
    serde_json::from_value(v).unwrap()
}

#[test]
fn deny_all_opens_the_mcp_servers_the_run_was_given_and_only_those() {
    let (r, s) = (run(), Settings::default());
    let notes = mcp_server(
        "sympozium-system",
        "notes",
        json!({"transportType": "stdio", "toolsPrefix": "notes",
        "deployment": {"image": "notes:1", "cmd": "notes"}}),
    );
    let http = mcp_server(
        "team",
        "wiki",
        json!({"transportType": "http", "toolsPrefix": "wiki",
        "deployment": {"image": "wiki:1", "port": 9000}}),
    );
    let kb = mcp_server(
        "team",
        "kb",
        json!({"transportType": "http", "toolsPrefix": "kb", "url": "http://10.1.2.3:7000/mcp"}),
    );
    let servers = [
        crate::agentrun::mcp::resolve_ref(
            &reference(json!({"name": "notes", "toolsPrefix": "notes"})),
            Some(&notes),
            "team",
        )
        .unwrap(),
        crate::agentrun::mcp::resolve_ref(
            &reference(json!({"name": "wiki", "toolsPrefix": "wiki"})),
            Some(&http),
            "team",
        )
        .unwrap(),
        crate::agentrun::mcp::resolve_ref(
            &reference(json!({"name": "kb", "toolsPrefix": "kb"})),
            Some(&kb),
            "team",
        )
        .unwrap(),
        crate::agentrun::mcp::resolve_ref(
            &reference(
                json!({"name": "gh", "toolsPrefix": "gh", "url": "https://api.githubcopilot.example/mcp"}),
            ),
            None,
            "team",
        )
        .unwrap(),
    ];
    let deny = net(json!({"denyAll": true}));
    let i = NetworkInputs { mcp: &servers, ..inputs(&r, Some(&deny), &s) };
    let (np, notes_out) = network_policy(&i).unwrap();
    let egress = np.spec.unwrap().egress.unwrap();
    let value = serde_json::to_value(&egress).unwrap();
    let rules = value.as_array().unwrap();
    let find = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        rules.iter().filter(|r| pred(r)).cloned().collect::<Vec<_>>()
    };
    // A managed stdio server: its pods in its own namespace, on the adapter's port.
    let managed =
        find(&|r| r["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "notes");
    assert_eq!(managed.len(), 1, "{value}");
    assert_eq!(
        managed[0]["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "sympozium-system"
    );
    assert_eq!(managed[0]["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"], "mcpserver");
    assert_eq!(managed[0]["ports"], json!([{"protocol": "TCP", "port": 8080}]));
    // A managed HTTP server: its own port.
    let wiki = find(&|r| r["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "wiki");
    assert_eq!(wiki[0]["ports"], json!([{"protocol": "TCP", "port": 9000}]));
    // An external server at an address: that address and port only.
    let external = find(&|r| r["to"][0]["ipBlock"]["cidr"] == "10.1.2.3/32");
    assert_eq!(external.len(), 1, "{value}");
    assert_eq!(external[0]["ports"], json!([{"protocol": "TCP", "port": 7000}]));
    // A host name: its port, with a note saying the address cannot be pinned.
    assert!(
        rules
            .iter()
            .any(|r| r.get("to").is_none() && r["ports"] == json!([{"protocol": "TCP", "port": 443}]))
    );
    assert!(
        notes_out.iter().any(|n| n.contains("MCP server gh host api.githubcopilot.example is a name")),
        "{notes_out:?}"
    );
    // Nothing else: no rule opens every port, no pod selector for anything but the given servers.
    assert!(rules.iter().all(|r| r.get("ports").is_some()), "{value}");
    let pod_rules = find(&|r| r["to"][0].get("podSelector").is_some());
    assert_eq!(pod_rules.len(), 2, "{value}");
}

#[test]
fn without_mcp_servers_the_policy_is_unchanged() {
    let (r, s) = (run(), Settings::default());
    let deny = net(json!({"denyAll": true}));
    let (np, _) = network_policy(&inputs(&r, Some(&deny), &s)).unwrap();
    let egress = serde_json::to_value(np.spec.unwrap().egress.unwrap()).unwrap();
    assert!(!egress.to_string().contains("mcpserver"), "{egress}");
}
