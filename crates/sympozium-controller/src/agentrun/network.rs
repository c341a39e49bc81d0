//! Network isolation of an agent pod, derived from its policy's `networkPolicy`: a
//! NetworkPolicy per run (owned by the run, so it goes with it) that selects the run's pod
//! by labels the pod really carries (`sympozium.ai/agent-run`, `sympozium.ai/component`).
//! `denyAll` denies all ingress and all egress except DNS (`allowDNS`), the event bus
//! (`allowEventBus`: NATS in the system namespace, port 4222), the `allowedEgress`
//! entries, and what the run itself needs (its model — the `baseURL`, or HTTPS to public
//! addresses for a hosted provider —, its instance's memory server, the MCP servers it was
//! given — a managed server's pods by their labels and port, an external one by its URL's
//! address and port —, the Kubernetes API when a skill grants RBAC). No policy, or `denyAll: false`, means no restriction.
//! Pure functions, no client.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use sympozium_api::AgentRun;
use sympozium_api::labels::{self, component};
use sympozium_api::policy::NetworkPolicySpec as PolicyNetwork;

use super::pod::run_labels;
use crate::settings::Settings;

/// Port of the NATS event bus.
pub const NATS_PORT: i32 = 4222;
/// Port of an instance's memory server.
pub const MEMORY_PORT: i32 = 8080;

/// What a run's NetworkPolicy is built from.
#[derive(Clone, Debug)]
pub struct NetworkInputs<'a> {
    /// The run.
    pub run: &'a AgentRun,
    /// The policy's `networkPolicy`, when the run has a policy that sets one.
    pub policy: Option<&'a PolicyNetwork>,
    /// Deployment settings (system namespace, event bus URL).
    pub settings: &'a Settings,
    /// Whether the run talks to its instance's memory server.
    pub memory: bool,
    /// Kubernetes API endpoints (`ip`, `port`) the pod may reach; empty unless a skill
    /// grants the run RBAC.
    pub api_server: Vec<(String, i32)>,
    /// The MCP servers the run's bridge talks to.
    pub mcp: &'a [super::mcp::ResolvedServer],
}

/// The run's NetworkPolicy name.
pub fn name(run: &AgentRun) -> String {
    format!("sympozium-run-{}", run.name_any())
}

/// Labels that select exactly the run's agent pod.
pub fn pod_selector(run: &AgentRun) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::AGENT_RUN.to_string(), run.name_any()),
        (labels::COMPONENT.to_string(), component::AGENT_RUN.to_string()),
    ])
}

fn port(protocol: &str, port: Option<i32>) -> NetworkPolicyPort {
    NetworkPolicyPort { protocol: Some(protocol.into()), port: port.map(IntOrString::Int), end_port: None }
}

fn ip_block(cidr: String) -> NetworkPolicyPeer {
    NetworkPolicyPeer { ip_block: Some(IPBlock { cidr, except: None }), ..Default::default() }
}

fn rule(to: Vec<NetworkPolicyPeer>, ports: Vec<NetworkPolicyPort>) -> NetworkPolicyEgressRule {
    NetworkPolicyEgressRule {
        to: (!to.is_empty()).then_some(to),
        ports: (!ports.is_empty()).then_some(ports),
    }
}

/// `host` as a CIDR when it is an IP address or a CIDR.
pub fn cidr(host: &str) -> Option<String> {
    let host = host.trim();
    if let Some((ip, bits)) = host.split_once('/') {
        let ip: IpAddr = ip.parse().ok()?;
        let bits: u8 = bits.parse().ok()?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        return (bits <= max).then(|| format!("{ip}/{bits}"));
    }
    let ip: IpAddr = host.trim_start_matches('[').trim_end_matches(']').parse().ok()?;
    Some(if ip.is_ipv4() { format!("{ip}/32") } else { format!("{ip}/128") })
}

/// Egress to the event bus: NATS pods in the system namespace, or the configured URL's
/// address and port when the bus lives elsewhere.
fn event_bus(settings: &Settings) -> NetworkPolicyEgressRule {
    let url = settings.event_bus_url();
    let authority = url.split("://").nth(1).unwrap_or(&url).split('/').next().unwrap_or_default();
    let (host, port_no) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().unwrap_or(NATS_PORT)),
        None => (authority, NATS_PORT),
    };
    let system = &settings.system_namespace;
    let in_system = [format!(".{system}"), format!(".{system}.svc"), format!(".{system}.svc.cluster.local")]
        .iter()
        .any(|suffix| host.ends_with(suffix.as_str()));
    let to = if in_system {
        vec![NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_string(),
                    system.clone(),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }]
    } else {
        cidr(host).map(ip_block).into_iter().collect()
    };
    rule(to, vec![port("TCP", Some(port_no))])
}

/// The run's NetworkPolicy, or `None` when its policy does not restrict the network; the
/// notes name `allowedEgress` entries a NetworkPolicy cannot express exactly.
pub fn network_policy(i: &NetworkInputs<'_>) -> Option<(NetworkPolicy, Vec<String>)> {
    let net = i.policy.filter(|n| n.deny_all)?;
    let run = i.run;
    let mut notes = Vec::new();
    let mut egress = Vec::new();
    if net.allow_dns {
        egress.push(rule(Vec::new(), vec![port("UDP", Some(53)), port("TCP", Some(53))]));
    }
    if net.allow_event_bus {
        egress.push(event_bus(i.settings));
    }
    for e in &net.allowed_egress {
        match cidr(&e.host) {
            Some(c) => egress.push(rule(vec![ip_block(c)], e.port.map(|p| port("TCP", Some(p))).into_iter().collect())),
            None => match e.port {
                // NetworkPolicies cannot name hosts: the port is opened, and the runner
                // holds the agent's own requests to the host name.
                Some(p) => {
                    egress.push(rule(Vec::new(), vec![port("TCP", Some(p))]));
                    notes.push(format!(
                        "allowedEgress host {} is a name: port {p} is open to any address at the network level",
                        e.host
                    ));
                }
                None => notes.push(format!(
                    "allowedEgress host {} is a name without a port: NetworkPolicies cannot express it, so it is not opened",
                    e.host
                )),
            },
        }
    }
    if i.memory {
        let memory = BTreeMap::from([
            (labels::INSTANCE.to_string(), run.spec.instance_ref.clone()),
            (labels::COMPONENT.to_string(), component::MEMORY.to_string()),
        ]);
        let peer = NetworkPolicyPeer {
            pod_selector: Some(LabelSelector { match_labels: Some(memory), ..Default::default() }),
            ..Default::default()
        };
        egress.push(rule(vec![peer], vec![port("TCP", Some(MEMORY_PORT))]));
    }
    for server in i.mcp {
        let (r, note) = mcp_egress(server);
        egress.extend(r);
        notes.extend(note);
    }
    for (ip, p) in &i.api_server {
        if let Some(c) = cidr(ip) {
            egress.push(rule(vec![ip_block(c)], vec![port("TCP", Some(*p))]));
        }
    }
    // Without its model a run can do nothing, so denyAll never cuts it off.
    let (model, note) = model_egress(run);
    egress.push(model);
    notes.extend(note);
    let policy = NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(name(run)),
            namespace: run.namespace(),
            labels: Some(run_labels(run)),
            owner_references: Some(run.controller_owner_ref(&()).into_iter().collect()),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector { match_labels: Some(pod_selector(run)), ..Default::default() }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: None,
            egress: Some(egress),
        }),
    };
    Some((policy, notes))
}

/// The egress an MCP server needs: a managed server's pods (by namespace and labels) on
/// their port, else its URL's address and port; a host name opens the port to any address,
/// with a note (NetworkPolicies cannot name hosts).
fn mcp_egress(server: &super::mcp::ResolvedServer) -> (Option<NetworkPolicyEgressRule>, Option<String>) {
    if let Some(pods) = &server.pods {
        let peer = NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_string(),
                    pods.namespace.clone(),
                )])),
                ..Default::default()
            }),
            pod_selector: Some(LabelSelector {
                match_labels: Some(pods.labels.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        return (Some(rule(vec![peer], vec![port("TCP", Some(pods.port))])), None);
    }
    let name = &server.config.name;
    let Ok(url) = reqwest::Url::parse(&server.config.url) else {
        return (
            None,
            Some(format!(
                "MCP server {name}: URL {} cannot be parsed, so it is not opened",
                server.config.url
            )),
        );
    };
    let p = url.port_or_known_default().map(i32::from).unwrap_or(80);
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    match cidr(host) {
        Some(c) => (Some(rule(vec![ip_block(c)], vec![port("TCP", Some(p))])), None),
        None => (
            Some(rule(Vec::new(), vec![port("TCP", Some(p))])),
            Some(format!(
                "MCP server {name} host {host} is a name: port {p} is open to any address at the network level"
            )),
        ),
    }
}

/// Address ranges that are not the public internet: cluster, node and link-local networks.
const PRIVATE_V4: [&str; 6] =
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "127.0.0.0/8"];
const PRIVATE_V6: [&str; 3] = ["fc00::/7", "fe80::/10", "::1/128"];

/// The egress the run's model needs: its `baseURL`'s address and port (a host name opens
/// the port to any address, with a note), or, for a hosted provider's public API, HTTPS to
/// public addresses only — the cluster's own network stays closed.
fn model_egress(run: &AgentRun) -> (NetworkPolicyEgressRule, Option<String>) {
    let base = run.spec.model.base_url.as_deref().map(str::trim).filter(|u| !u.is_empty());
    if let Some(url) = base.and_then(|b| reqwest::Url::parse(b).ok()) {
        let p = url.port_or_known_default().map(i32::from);
        let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        if let Some(c) = cidr(host) {
            return (rule(vec![ip_block(c)], p.map(|p| port("TCP", Some(p))).into_iter().collect()), None);
        }
        let p = p.unwrap_or(443);
        let note = format!(
            "model baseURL host {host} is a name: port {p} is open to any address at the network level"
        );
        return (rule(Vec::new(), vec![port("TCP", Some(p))]), Some(note));
    }
    let public = |all: &str, except: &[&str]| NetworkPolicyPeer {
        ip_block: Some(IPBlock {
            cidr: all.into(),
            except: Some(except.iter().map(|c| c.to_string()).collect()),
        }),
        ..Default::default()
    };
    (
        rule(
            vec![public("0.0.0.0/0", &PRIVATE_V4), public("::/0", &PRIVATE_V6)],
            vec![port("TCP", Some(443))],
        ),
        None,
    )
}

#[cfg(test)]
#[path = "network_tests.rs"]
mod tests;
