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
//! "read_file freely, ask for everything else". Names match exactly; the one pattern is a
//! trailing `_*` (`github_*`: every tool of the MCP server with prefix `github`). A bare `*`
//! or `?` matches nothing. Denied tools are not offered to the model at all.
//!
//! The top level is the administrator's layer (the SympoziumPolicy's tool gating and feature
//! gates). The tenant's own `toolPolicy` (the run's, else its instance's) travels as `own`
//! (`{"allow": [...], "deny": [...]}`) and can only narrow: a tool's action is the stricter
//! of the two layers, so `own.allow: [execute_command]` under `defaultAction: deny` still
//! leaves `execute_command` denied.

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
    #[serde(default)]
    own: Option<Own>,
}

/// The tenant's layer: allow/deny lists only.
#[derive(Debug, Default, Clone, Deserialize)]
struct Own {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
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
    /// The tenant's own layer, which only narrows.
    own: Option<Own>,
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
            own: None,
        }
    }
}

/// Why a tool policy's JSON form is refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not JSON of the policy's shape.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// `defaultAction` names no action.
    #[error("defaultAction {0:?} is not allow, deny or ask")]
    DefaultAction(String),
    /// `approvalTimeout` is not a duration.
    #[error("approvalTimeout: {0}")]
    ApprovalTimeout(#[source] crate::duration::DurationError),
}

impl ToolPolicy {
    /// Parses the JSON form; empty input is the permissive default.
    pub fn from_json(raw: &str) -> Result<Self, PolicyError> {
        if raw.trim().is_empty() {
            return Ok(Self::default());
        }
        let raw: Raw = serde_json::from_str(raw)?;
        let default_action = match raw.default_action.to_ascii_lowercase().as_str() {
            "" | "allow" => Action::Allow,
            "deny" => Action::Deny,
            "ask" => Action::Ask,
            other => return Err(PolicyError::DefaultAction(other.to_string())),
        };
        let approval_timeout = if raw.approval_timeout.is_empty() {
            Duration::from_secs(300)
        } else {
            parse_duration(&raw.approval_timeout).map_err(PolicyError::ApprovalTimeout)?
        };
        Ok(Self {
            allow: raw.allow,
            deny: raw.deny,
            ask: raw.ask,
            default_action,
            approval_timeout,
            allowed_egress: raw.allowed_egress,
            own: raw.own,
        })
    }

    /// The action for `tool`: the stricter of the administrator's and the tenant's layer.
    pub fn action(&self, tool: &str) -> Action {
        let hit = |list: &[String]| list.iter().any(|p| name_match(p, tool));
        let admin = if hit(&self.deny) {
            Action::Deny
        } else if hit(&self.ask) {
            Action::Ask
        } else if hit(&self.allow) {
            Action::Allow
        } else if !self.allow.is_empty() && self.default_action == Action::Allow {
            Action::Deny
        } else {
            self.default_action
        };
        let own = match &self.own {
            None => Action::Allow,
            Some(own) if hit(&own.deny) => Action::Deny,
            Some(own) if own.allow.is_empty() || hit(&own.allow) => Action::Allow,
            Some(_) => Action::Deny,
        };
        stricter(admin, own)
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

fn rank(a: Action) -> u8 {
    match a {
        Action::Allow => 0,
        Action::Ask => 1,
        Action::Deny => 2,
    }
}

fn stricter(a: Action, b: Action) -> Action {
    if rank(a) >= rank(b) { a } else { b }
}

/// Tool-name matching: exact, or `<prefix>_*` for every tool `<prefix>_…` of an MCP server.
pub fn name_match(pattern: &str, tool: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) if prefix.ends_with('_') && prefix.len() > 1 && !prefix.contains('*') => {
            tool.len() > prefix.len() && tool.starts_with(prefix)
        }
        _ => pattern == tool,
    }
}

/// Host-name globs for egress rules: `*` matches any run of characters, `?` exactly one.
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
            r#"{"allow":["read_file","github_*","write_file"],"deny":["github_delete_repo"],"ask":["write_file"]}"#,
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
    fn names_match_exactly_and_stars_are_not_wildcards() {
        let p = ToolPolicy::from_json(r#"{"allow":["*","read_?ile","execute_command*"]}"#).unwrap();
        for tool in ["read_file", "execute_command", "write_file", "anything"] {
            assert_eq!(p.action(tool), Action::Deny, "{tool}: no pattern above names it");
        }
        let p = ToolPolicy::from_json(r#"{"deny":["github_*"]}"#).unwrap();
        assert_eq!(p.action("github_delete_repo"), Action::Deny);
        assert_eq!(p.action("github_"), Action::Allow, "the prefix alone is no tool");
        assert_eq!(p.action("githubx_list"), Action::Allow);
    }

    #[test]
    fn the_tenant_layer_only_narrows() {
        // The attack: allow everything under an administrator's whitelist.
        let p = ToolPolicy::from_json(
            r#"{"defaultAction":"deny","allow":["read_file"],"ask":["write_file"],
                "own":{"allow":["*","execute_command","read_file","write_file"]}}"#,
        )
        .unwrap();
        assert_eq!(p.action("execute_command"), Action::Deny);
        assert_eq!(p.action("fetch_url"), Action::Deny);
        assert_eq!(p.action("read_file"), Action::Allow);
        assert_eq!(p.action("write_file"), Action::Ask, "ask stays ask");
        // Its deny and whitelist still narrow an open administrator layer.
        let p = ToolPolicy::from_json(r#"{"own":{"allow":["read_file"],"deny":["read_file"]}}"#).unwrap();
        assert_eq!(p.action("read_file"), Action::Deny);
        assert_eq!(p.action("list_directory"), Action::Deny);
        let p = ToolPolicy::from_json(r#"{"own":{"deny":["fetch_url"]}}"#).unwrap();
        assert_eq!((p.action("fetch_url"), p.action("read_file")), (Action::Deny, Action::Allow));
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
