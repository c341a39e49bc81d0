//! The effective tool policy handed over by the controller in `TOOL_POLICY` (JSON):
//!
//! ```json
//! {"allow": ["read_file", "github_*"], "deny": ["execute_command"], "ask": ["write_file"],
//!  "defaultAction": "allow", "approvalTimeout": "5m",
//!  "allowedEgress": [{"host": "api.internal", "port": 443}, {"host": "10.1.0.0/16"}]}
//! ```
//!
//! Precedence: `deny` beats `ask` beats `allow`. Tools no list names get `defaultAction`
//! (default `allow`) — except that a non-empty `allow` list turns an `allow` default into
//! "deny the rest" (a whitelist). So `defaultAction: ask` + `allow: [read_file]` means
//! "read_file freely, ask for everything else". Names are
//! globs (`*`, `?`) so MCP prefixes can be matched as `prefix_*`. Denied tools are not offered
//! to the model at all.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::duration::parse_duration;

/// What the policy says about one tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Run it.
    Allow,
    /// Never offer or run it.
    Deny,
    /// Ask a human over the bus first.
    Ask,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
    #[serde(default)]
    ask: Vec<String>,
    #[serde(default)]
    default_action: String,
    #[serde(default)]
    approval_timeout: String,
    #[serde(default)]
    allowed_egress: Vec<EgressRule>,
}

/// A destination `fetch_url` may reach even if it is private.
#[derive(Debug, Clone, Deserialize)]
pub struct EgressRule {
    /// Host name glob, IP address or CIDR.
    pub host: String,
    /// Port; any when absent.
    #[serde(default)]
    pub port: Option<u16>,
}

/// The parsed policy.
#[derive(Debug, Clone)]
pub struct ToolPolicy {
    allow: Vec<String>,
    deny: Vec<String>,
    ask: Vec<String>,
    default_action: Action,
    /// How long an `ask` waits before it counts as denied.
    pub approval_timeout: Duration,
    /// Egress exceptions for `fetch_url`.
    pub allowed_egress: Vec<EgressRule>,
}

impl Default for ToolPolicy {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            deny: Vec::new(),
            ask: Vec::new(),
            default_action: Action::Allow,
            approval_timeout: Duration::from_secs(300),
            allowed_egress: Vec::new(),
        }
    }
}

impl ToolPolicy {
    /// Parses the JSON form; empty input is the permissive default.
    pub fn from_json(raw: &str) -> Result<Self, String> {
        if raw.trim().is_empty() {
            return Ok(Self::default());
        }
        let raw: Raw = serde_json::from_str(raw).map_err(|e| e.to_string())?;
        let default_action = match raw.default_action.to_ascii_lowercase().as_str() {
            "" | "allow" => Action::Allow,
            "deny" => Action::Deny,
            "ask" => Action::Ask,
            other => return Err(format!("defaultAction {other:?} is not allow, deny or ask")),
        };
        let approval_timeout = if raw.approval_timeout.is_empty() {
            Duration::from_secs(300)
        } else {
            parse_duration(&raw.approval_timeout).map_err(|e| format!("approvalTimeout: {e}"))?
        };
        Ok(Self {
            allow: raw.allow,
            deny: raw.deny,
            ask: raw.ask,
            default_action,
            approval_timeout,
            allowed_egress: raw.allowed_egress,
        })
    }

    /// The action for `tool`.
    pub fn action(&self, tool: &str) -> Action {
        let hit = |list: &[String]| list.iter().any(|p| glob_match(p, tool));
        if hit(&self.deny) {
            Action::Deny
        } else if hit(&self.ask) {
            Action::Ask
        } else if hit(&self.allow) {
            Action::Allow
        } else if !self.allow.is_empty() && self.default_action == Action::Allow {
            Action::Deny
        } else {
            self.default_action
        }
    }

    /// Whether `fetch_url` may reach `host`/`ip`:`port` despite it being private.
    pub fn egress_allows(&self, host: &str, ip: IpAddr, port: u16) -> bool {
        self.allowed_egress.iter().any(|rule| {
            rule.port.is_none_or(|p| p == port)
                && (glob_match(&rule.host.to_ascii_lowercase(), &host.to_ascii_lowercase())
                    || cidr_contains(&rule.host, ip))
        })
    }
}

/// `*` matches any run of characters, `?` exactly one.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether `spec` (an IP or `ip/prefix`) contains `ip`.
fn cidr_contains(spec: &str, ip: IpAddr) -> bool {
    let (addr, bits) = match spec.split_once('/') {
        Some((a, b)) => (a, b.parse::<u32>().ok()),
        None => (spec, None),
    };
    let Ok(net) = addr.trim().parse::<IpAddr>() else { return false };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_and_globs() {
        let p = ToolPolicy::from_json(
            r#"{"allow":["read_file","github_*","write_file"],"deny":["github_delete*"],"ask":["write_file"]}"#,
        )
        .unwrap();
        assert_eq!(p.action("read_file"), Action::Allow);
        assert_eq!(p.action("github_list_issues"), Action::Allow);
        assert_eq!(p.action("github_delete_repo"), Action::Deny);
        assert_eq!(p.action("write_file"), Action::Ask);
        assert_eq!(p.action("execute_command"), Action::Deny);
        let gated = ToolPolicy::from_json(r#"{"defaultAction":"ask","allow":["read_file"]}"#).unwrap();
        assert_eq!(gated.action("read_file"), Action::Allow);
        assert_eq!(gated.action("write_file"), Action::Ask);
        let closed = ToolPolicy::from_json(r#"{"defaultAction":"deny","ask":["execute_command"]}"#).unwrap();
        assert_eq!(closed.action("execute_command"), Action::Ask);
        assert_eq!(closed.action("read_file"), Action::Deny);
        let open = ToolPolicy::from_json("").unwrap();
        assert_eq!(open.action("anything"), Action::Allow);
        assert!(ToolPolicy::from_json(r#"{"defaultAction":"maybe"}"#).is_err());
    }

    #[test]
    fn egress_rules() {
        let p = ToolPolicy::from_json(
            r#"{"allowedEgress":[{"host":"10.1.0.0/16"},{"host":"*.internal","port":443}]}"#,
        )
        .unwrap();
        assert!(p.egress_allows("x", "10.1.2.3".parse().unwrap(), 80));
        assert!(!p.egress_allows("x", "10.2.0.1".parse().unwrap(), 80));
        assert!(p.egress_allows("api.internal", "10.9.9.9".parse().unwrap(), 443));
        assert!(!p.egress_allows("api.internal", "10.9.9.9".parse().unwrap(), 80));
        // The controller writes `"port": null` for "any port".
        let any = ToolPolicy::from_json(r#"{"allowedEgress":[{"host":"10.0.0.5","port":null}]}"#).unwrap();
        assert!(any.egress_allows("10.0.0.5", "10.0.0.5".parse().unwrap(), 8443));
    }
}
