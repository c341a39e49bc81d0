//! NetworkPolicy semantics without a client: which policies select a pod, and what they let
//! in and out of it, as allow-lists of addresses and ports. The node renders these into
//! packet filter rules (see `nft.rs`) and its Service proxy asks [`Direction::allows`] about
//! each connection it forwards.
//!
//! Kubernetes' rules, as implemented here:
//! - a policy in namespace N selects the pods of N its `podSelector` matches (`{}`: all);
//! - a pod selected by a policy whose `policyTypes` include `Ingress` (`Egress`) is isolated
//!   in that direction: only what some selecting policy's rules allow gets through (policies
//!   add up; none can take away what another allows); a pod no policy selects is open;
//! - `policyTypes` absent means `Ingress`, plus `Egress` when the policy has egress rules;
//! - a rule's peers (`from`/`to`) absent or empty mean every address; ports absent or empty
//!   mean every port; a peer is an `ipBlock` (with `except`), or pods chosen by
//!   `podSelector` in the policy's namespace, by `namespaceSelector` (every pod of the chosen
//!   namespaces) or by both (the chosen pods of the chosen namespaces);
//! - a port is a number or a container port name (resolved against the destination pod's
//!   declared ports, so a named port only ever matches pods), with `protocol` (TCP by
//!   default) and `endPort` for ranges.
//!
//! Anything malformed (an unparsable CIDR, an unknown selector operator in a peer, a port out
//! of range) allows nothing, so a bad rule can only narrow, never widen; a target selector
//! that cannot be evaluated selects the pod (isolating it), for the same reason.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Labels of an object.
pub type Labels = BTreeMap<String, String>;

/// A transport protocol NetworkPolicy ports name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Proto {
    /// Parses a Kubernetes protocol name (`None` for anything else).
    pub fn parse(s: &str) -> Option<Proto> {
        match s {
            "TCP" => Some(Proto::Tcp),
            "UDP" => Some(Proto::Udp),
            "SCTP" => Some(Proto::Sctp),
            _ => None,
        }
    }
}

/// A container port a pod declares (named ports resolve against these).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclaredPort {
    /// `ports[].name`.
    pub name: String,
    /// `ports[].containerPort`.
    pub port: u16,
    /// `ports[].protocol`.
    pub proto: Proto,
}

/// A pod as policies see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodView {
    /// Namespace.
    pub namespace: String,
    /// Name (for messages).
    pub name: String,
    /// Labels.
    pub labels: Labels,
    /// Pod IP.
    pub ip: Ipv4Addr,
    /// Declared container ports.
    pub ports: Vec<DeclaredPort>,
}

/// An IPv4 network, host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Net {
    /// Network address.
    pub addr: Ipv4Addr,
    /// Prefix length (0–32).
    pub prefix: u8,
}

impl Net {
    /// Parses `a.b.c.d/n` (IPv4 only: the node's pods have no IPv6 addresses).
    pub fn parse(s: &str) -> Option<Net> {
        let (a, p) = s.trim().split_once('/')?;
        let addr: Ipv4Addr = a.parse().ok()?;
        let prefix: u8 = p.parse().ok().filter(|p| *p <= 32)?;
        Some(Net { addr: Ipv4Addr::from(u32::from(addr) & Net::mask(prefix)), prefix })
    }

    fn mask(prefix: u8) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
    }

    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Net::mask(self.prefix) == u32::from(self.addr)
    }
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Who is on the other end of an allowed connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// Any address.
    Any,
    /// An `ipBlock`: the network minus the exceptions.
    Block {
        /// `cidr`.
        net: Net,
        /// `except` (those inside `net`; others cannot matter).
        except: Vec<Net>,
    },
    /// Pod addresses (possibly none: the selectors match no pod right now).
    Hosts(BTreeSet<Ipv4Addr>),
}

impl Peer {
    /// Whether `ip` is this peer.
    pub fn matches(&self, ip: Ipv4Addr) -> bool {
        match self {
            Peer::Any => true,
            Peer::Block { net, except } => net.contains(ip) && !except.iter().any(|e| e.contains(ip)),
            Peer::Hosts(h) => h.contains(&ip),
        }
    }
}

/// Ports of one protocol: every port (`None`) or an inclusive range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    /// Protocol.
    pub proto: Proto,
    /// First and last port; `None`: all ports of the protocol.
    pub range: Option<(u16, u16)>,
}

impl PortRange {
    fn matches(&self, proto: Proto, port: u16) -> bool {
        self.proto == proto && self.range.is_none_or(|(a, b)| a <= port && port <= b)
    }
}

/// One allowed (peer, ports) pair; `ports` empty means every port and protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allow {
    /// The other end.
    pub peer: Peer,
    /// The ports on the destination side.
    pub ports: Vec<PortRange>,
}

impl Allow {
    fn matches(&self, ip: Ipv4Addr, proto: Proto, port: u16) -> bool {
        self.peer.matches(ip) && (self.ports.is_empty() || self.ports.iter().any(|p| p.matches(proto, port)))
    }
}

/// One direction of a pod's traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Direction {
    /// No policy isolates the pod in this direction.
    Open,
    /// Isolated: only these get through.
    Isolated(Vec<Allow>),
}

impl Direction {
    /// Whether a connection with the other end at `ip` and the destination port `port` is
    /// allowed.
    pub fn allows(&self, ip: Ipv4Addr, proto: Proto, port: u16) -> bool {
        match self {
            Direction::Open => true,
            Direction::Isolated(allows) => allows.iter().any(|a| a.matches(ip, proto, port)),
        }
    }
}

/// What the policies allow for one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRules {
    /// Incoming connections (the peer is the source; ports are the pod's own).
    pub ingress: Direction,
    /// Outgoing connections (the peer is the destination).
    pub egress: Direction,
    /// Names (`namespace/name`) of the policies that select the pod.
    pub policies: Vec<String>,
}

impl PodRules {
    /// Rules of a pod no policy selects.
    pub fn open() -> PodRules {
        PodRules { ingress: Direction::Open, egress: Direction::Open, policies: Vec::new() }
    }
}

/// Everything policies are evaluated against.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Namespace name → labels.
    pub namespaces: BTreeMap<String, Labels>,
    /// Pods with addresses (possible peers).
    pub pods: Vec<PodView>,
    /// Every NetworkPolicy.
    pub policies: Vec<NetworkPolicy>,
}

/// Whether `labels` satisfy `selector`; `None` when the selector cannot be evaluated (an
/// unknown operator, `In` without values).
pub fn selector_matches(selector: &LabelSelector, labels: &Labels) -> Option<bool> {
    for (k, v) in selector.match_labels.iter().flatten() {
        if labels.get(k) != Some(v) {
            return Some(false);
        }
    }
    for e in selector.match_expressions.iter().flatten() {
        let value = labels.get(&e.key);
        let values = e.values.as_deref().unwrap_or_default();
        let ok = match e.operator.as_str() {
            "In" if !values.is_empty() => value.is_some_and(|v| values.contains(v)),
            "NotIn" if !values.is_empty() => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => return None,
        };
        if !ok {
            return Some(false);
        }
    }
    Some(true)
}

fn types(policy: &NetworkPolicy) -> (bool, bool) {
    let Some(spec) = &policy.spec else { return (true, false) };
    match &spec.policy_types {
        Some(t) if !t.is_empty() => (t.iter().any(|t| t == "Ingress"), t.iter().any(|t| t == "Egress")),
        _ => (true, spec.egress.as_ref().is_some_and(|e| !e.is_empty())),
    }
}

/// Whether `policy` selects `pod`.
pub fn selects(policy: &NetworkPolicy, pod: &PodView) -> bool {
    if policy.metadata.namespace.as_deref() != Some(pod.namespace.as_str()) {
        return false;
    }
    let Some(spec) = &policy.spec else { return false };
    match &spec.pod_selector {
        None => true,
        // Unreadable target selectors isolate: a broken policy must not leave a pod open.
        Some(s) => selector_matches(s, &pod.labels).unwrap_or(true),
    }
}

impl Snapshot {
    fn namespace_labels(&self, ns: &str) -> Labels {
        self.namespaces.get(ns).cloned().unwrap_or_else(|| {
            // Every namespace carries its name as a label; a namespace not seen yet still does.
            Labels::from([("kubernetes.io/metadata.name".to_string(), ns.to_string())])
        })
    }

    /// Pods a peer with selectors chooses, for a policy in `policy_ns`.
    fn peer_pods(&self, peer: &NetworkPolicyPeer, policy_ns: &str) -> Vec<&PodView> {
        self.pods
            .iter()
            .filter(|p| {
                let ns_ok = match &peer.namespace_selector {
                    None => p.namespace == policy_ns,
                    Some(s) => selector_matches(s, &self.namespace_labels(&p.namespace)) == Some(true),
                };
                let pod_ok = match &peer.pod_selector {
                    None => true,
                    Some(s) => selector_matches(s, &p.labels) == Some(true),
                };
                ns_ok && pod_ok
            })
            .collect()
    }

    /// The peers of a rule; `None` entries (malformed) are left out.
    fn peers(&self, peers: Option<&Vec<NetworkPolicyPeer>>, policy_ns: &str) -> Vec<Peer> {
        let Some(peers) = peers.filter(|p| !p.is_empty()) else { return vec![Peer::Any] };
        let mut out = Vec::new();
        for peer in peers {
            if let Some(block) = &peer.ip_block {
                // IPv6 blocks cannot match anything here (IPv4 pods); bad ones allow nothing.
                let Some(net) = Net::parse(&block.cidr) else { continue };
                let mut except = Vec::new();
                let mut broken = false;
                for e in block.except.iter().flatten() {
                    match Net::parse(e) {
                        Some(e) => except.push(e),
                        None => broken |= !e.contains(':'),
                    }
                }
                if !broken {
                    out.push(Peer::Block { net, except });
                }
            } else if peer.pod_selector.is_some() || peer.namespace_selector.is_some() {
                let hosts = self.peer_pods(peer, policy_ns).iter().map(|p| p.ip).collect();
                out.push(Peer::Hosts(hosts));
            }
        }
        out
    }

    /// Every pod (of the snapshot) that `peer` is.
    fn pods_of(&self, peer: &Peer) -> Vec<&PodView> {
        self.pods.iter().filter(|p| peer.matches(p.ip)).collect()
    }

    /// Allows of one rule. `local` is the pod the rule protects: on ingress, named ports are
    /// its own; on egress (`local` None) they are each destination pod's.
    fn rule_allows(
        &self,
        peers: Option<&Vec<NetworkPolicyPeer>>,
        ports: Option<&Vec<NetworkPolicyPort>>,
        policy_ns: &str,
        local: Option<&PodView>,
        out: &mut Vec<Allow>,
    ) {
        let peers = self.peers(peers, policy_ns);
        let ports = ports.map(Vec::as_slice).unwrap_or_default();
        if ports.is_empty() {
            out.extend(peers.into_iter().map(|peer| Allow { peer, ports: Vec::new() }));
            return;
        }
        let mut numeric = Vec::new();
        let mut named = Vec::new();
        for p in ports {
            let Some(proto) = Proto::parse(p.protocol.as_deref().unwrap_or("TCP")) else { continue };
            match &p.port {
                None => numeric.push(PortRange { proto, range: None }),
                Some(IntOrString::Int(n)) => {
                    let Ok(first) = u16::try_from(*n) else { continue };
                    let last = match p.end_port {
                        None => first,
                        Some(e) => match u16::try_from(e) {
                            Ok(e) if e >= first => e,
                            _ => continue,
                        },
                    };
                    numeric.push(PortRange { proto, range: Some((first, last)) });
                }
                Some(IntOrString::String(name)) => named.push((proto, name.clone())),
            }
        }
        let resolve = |pod: &PodView| -> Vec<PortRange> {
            named
                .iter()
                .filter_map(|(proto, name)| {
                    pod.ports
                        .iter()
                        .find(|d| &d.name == name && d.proto == *proto)
                        .map(|d| PortRange { proto: *proto, range: Some((d.port, d.port)) })
                })
                .collect()
        };
        for peer in peers {
            if !numeric.is_empty() {
                out.push(Allow { peer: peer.clone(), ports: numeric.clone() });
            }
            if named.is_empty() {
                continue;
            }
            match local {
                Some(me) => {
                    let mine = resolve(me);
                    if !mine.is_empty() {
                        out.push(Allow { peer, ports: mine });
                    }
                }
                None => {
                    for dest in self.pods_of(&peer) {
                        let theirs = resolve(dest);
                        if !theirs.is_empty() {
                            out.push(Allow { peer: Peer::Hosts(BTreeSet::from([dest.ip])), ports: theirs });
                        }
                    }
                }
            }
        }
    }

    /// What the snapshot's policies allow for `pod`.
    pub fn rules_for(&self, pod: &PodView) -> PodRules {
        let mut ingress: Option<Vec<Allow>> = None;
        let mut egress: Option<Vec<Allow>> = None;
        let mut names = Vec::new();
        for policy in self.policies.iter().filter(|p| selects(p, pod)) {
            let (is_ingress, is_egress) = types(policy);
            let ns = pod.namespace.as_str();
            names.push(format!("{ns}/{}", policy.metadata.name.as_deref().unwrap_or_default()));
            let Some(spec) = &policy.spec else { continue };
            if is_ingress {
                let allows = ingress.get_or_insert_with(Vec::new);
                for r in spec.ingress.iter().flatten() {
                    self.rule_allows(r.from.as_ref(), r.ports.as_ref(), ns, Some(pod), allows);
                }
            }
            if is_egress {
                let allows = egress.get_or_insert_with(Vec::new);
                for r in spec.egress.iter().flatten() {
                    self.rule_allows(r.to.as_ref(), r.ports.as_ref(), ns, None, allows);
                }
            }
        }
        PodRules {
            ingress: ingress.map_or(Direction::Open, Direction::Isolated),
            egress: egress.map_or(Direction::Open, Direction::Isolated),
            policies: names,
        }
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
