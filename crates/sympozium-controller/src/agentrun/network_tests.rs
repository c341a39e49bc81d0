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
    NetworkInputs { run: r, policy: n, settings: s, memory: false, api_server: Vec::new() }
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
