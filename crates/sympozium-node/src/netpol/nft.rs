//! A pod's [`PodRules`] as an nftables script for the pod's own network namespace: an
//! `input` chain for ingress and an `output` chain for egress, each dropping by default when
//! the pod is isolated in that direction. The script replaces the previous table in one
//! transaction, so a pod is never briefly open while its rules change. Pure text, no I/O.
//!
//! Always accepted, whatever the policies say:
//! - packets of connections already allowed (`ct state established,related`), as with every
//!   stateful network plugin — replies and ICMP errors follow their connection;
//! - the pod's loopback (a pod talking to itself);
//! - ingress from the node's own address (kubelet probes: Kubernetes expects them to work
//!   under any policy);
//! - ingress from the services namespace and egress to the Service CIDR: that is the node's
//!   Service proxy, which judges each proxied connection itself (source pod's egress and
//!   destination pod's ingress, see `proxy.rs`), because it knows the real source and the
//!   endpoint the connection goes to, which these rules do not.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::model::{Allow, Direction, Net, Peer, PodRules, PortRange, Proto};

/// The table the node owns in every pod namespace.
pub const TABLE: &str = "sympozium_netpol";

/// Addresses every pod's rules need.
#[derive(Clone, Copy, Debug)]
pub struct Fixed {
    /// The node's address on the bridge (probes come from there).
    pub node_ip: Ipv4Addr,
    /// The services namespace's address (Service proxy, DNS).
    pub proxy_ip: Ipv4Addr,
    /// The Service CIDR (routed to the proxy).
    pub service_cidr: Net,
}

fn proto_name(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
        Proto::Sctp => "sctp",
    }
}

fn set<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    format!("{{ {} }}", items.join(", "))
}

/// The address match of a peer (`None`: the peer is no address at all, so the rule is
/// dropped).
fn peer_match(peer: &Peer, field: &str) -> Option<String> {
    match peer {
        Peer::Any => Some(String::new()),
        Peer::Block { net, except } => {
            let mut m = format!("ip {field} {net} ");
            let inside: Vec<&Net> =
                except.iter().filter(|e| e.prefix >= net.prefix && net.contains(e.addr)).collect();
            if !inside.is_empty() {
                let _ = write!(m, "ip {field} != {} ", set(inside));
            }
            Some(m)
        }
        Peer::Hosts(h) if h.is_empty() => None,
        Peer::Hosts(h) => Some(format!("ip {field} {} ", set(h))),
    }
}

fn port_match(p: &PortRange) -> String {
    let name = proto_name(p.proto);
    match p.range {
        None => format!("meta l4proto {name} "),
        Some((a, b)) if a == b => format!("{name} dport {a} "),
        Some((a, b)) => format!("{name} dport {a}-{b} "),
    }
}

fn allow_lines(out: &mut String, allows: &[Allow], field: &str) {
    for a in allows {
        let Some(peer) = peer_match(&a.peer, field) else { continue };
        if a.ports.is_empty() {
            let _ = writeln!(out, "\t\t{peer}accept");
        }
        for p in &a.ports {
            let _ = writeln!(out, "\t\t{peer}{}accept", port_match(p));
        }
    }
}

fn chain(out: &mut String, name: &str, hook: &str, fixed: &Fixed, dir: &Direction) {
    let Direction::Isolated(allows) = dir else { return };
    let _ = writeln!(out, "\tchain {name} {{");
    let _ = writeln!(out, "\t\ttype filter hook {hook} priority filter; policy drop;");
    let _ = writeln!(out, "\t\tct state established,related accept");
    if hook == "input" {
        let _ = writeln!(out, "\t\tiifname \"lo\" accept");
        let _ = writeln!(out, "\t\tip saddr {} accept", fixed.node_ip);
        let _ = writeln!(out, "\t\tip saddr {} accept", fixed.proxy_ip);
        allow_lines(out, allows, "saddr");
    } else {
        let _ = writeln!(out, "\t\toifname \"lo\" accept");
        let _ = writeln!(out, "\t\tip daddr {} accept", fixed.service_cidr);
        allow_lines(out, allows, "daddr");
    }
    let _ = writeln!(out, "\t}}");
}

/// The script that makes a pod namespace's table exactly `rules` (an open pod ends with no
/// table at all).
pub fn render(rules: &PodRules, fixed: &Fixed) -> String {
    // Creating the table first makes the delete valid whether or not it existed.
    let mut out = format!("table inet {TABLE} {{}}\ndelete table inet {TABLE}\n");
    if rules.ingress == Direction::Open && rules.egress == Direction::Open {
        return out;
    }
    let _ = writeln!(out, "table inet {TABLE} {{");
    if !rules.policies.is_empty() {
        // For people reading `nft list ruleset`; nftables caps comments at 128 bytes.
        let mut names: String =
            rules.policies.join(" ").chars().filter(|c| c.is_ascii() && *c != '"').collect();
        if names.len() > 100 {
            names.truncate(96);
            names.push_str(" ...");
        }
        let _ = writeln!(out, "\tcomment \"policies: {names}\"");
    }
    chain(&mut out, "ingress", "input", fixed, &rules.ingress);
    chain(&mut out, "egress", "output", fixed, &rules.egress);
    let _ = writeln!(out, "}}");
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeSet;

    use super::*;

    fn fixed() -> Fixed {
        Fixed {
            node_ip: Ipv4Addr::new(10, 246, 0, 1),
            proxy_ip: Ipv4Addr::new(10, 246, 0, 2),
            service_cidr: Net::parse("10.0.0.0/24").unwrap(),
        }
    }

    #[test]
    fn an_open_pod_gets_no_table() {
        let s = render(&PodRules::open(), &fixed());
        assert_eq!(s, format!("table inet {TABLE} {{}}\ndelete table inet {TABLE}\n"));
    }

    #[test]
    fn an_isolated_pod_gets_drop_chains_with_its_allows() {
        let rules = PodRules {
            ingress: Direction::Isolated(vec![Allow {
                peer: Peer::Hosts(BTreeSet::from([
                    Ipv4Addr::new(10, 246, 0, 12),
                    Ipv4Addr::new(10, 246, 0, 11),
                ])),
                ports: vec![PortRange { proto: Proto::Tcp, range: Some((8080, 8080)) }],
            }]),
            egress: Direction::Isolated(vec![
                Allow {
                    peer: Peer::Any,
                    ports: vec![
                        PortRange { proto: Proto::Udp, range: Some((53, 53)) },
                        PortRange { proto: Proto::Tcp, range: Some((1000, 2000)) },
                    ],
                },
                Allow {
                    peer: Peer::Block {
                        net: Net::parse("10.0.0.0/8").unwrap(),
                        except: vec![
                            Net::parse("10.246.0.0/24").unwrap(),
                            Net::parse("192.168.0.0/16").unwrap(),
                        ],
                    },
                    ports: vec![PortRange { proto: Proto::Sctp, range: None }],
                },
                Allow { peer: Peer::Hosts(BTreeSet::new()), ports: Vec::new() },
            ]),
            policies: vec!["ns/p".into()],
        };
        let s = render(&rules, &fixed());
        assert!(
            s.contains("chain ingress {\n\t\ttype filter hook input priority filter; policy drop;"),
            "{s}"
        );
        assert!(s.contains("\t\tip saddr { 10.246.0.11, 10.246.0.12 } tcp dport 8080 accept\n"), "{s}");
        assert!(s.contains("\t\tudp dport 53 accept\n\t\ttcp dport 1000-2000 accept\n"), "{s}");
        // The exception outside the block cannot matter and is left out.
        assert!(
            s.contains("\t\tip daddr 10.0.0.0/8 ip daddr != { 10.246.0.0/24 } meta l4proto sctp accept\n"),
            "{s}"
        );
        assert!(s.contains("ip daddr 10.0.0.0/24 accept"), "{s}");
        // A peer with no pods allows nothing (not everything).
        assert!(!s.contains("\t\taccept\n"), "{s}");
    }
}
