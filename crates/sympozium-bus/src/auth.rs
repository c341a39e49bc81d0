//! Who may do what on the bus.
//!
//! NATS runs with one user per *role* (the `authorization` block [`server_config`] renders;
//! passwords come from Secrets the installer creates). A connection without credentials is
//! refused. Each role may publish and subscribe only what its components need:
//!
//! | role | components | publishes | reads |
//! |---|---|---|---|
//! | `controller` | controller manager (routers) | everything | everything |
//! | `channel` | channel pods | `channel.message.received`, `channel.health.update` | `channel.message.send` |
//! | `agent` | IPC bridge and agent runner of a run | results, chunks, status, spawn/schedule/exec requests, approval *requests*, `channel.message.send` | its spawn results, follow-ups, command results, schedule results, approval answers |
//! | `operator` | the TUI | approval *answers* | stream chunks, approval requests and answers |
//!
//! Only `operator` and `controller` may publish `tool.approval.response`: a run can ask for
//! an approval but never answer it. Role clients use their own reply-inbox prefix
//! (`_INBOX_<role>`), so none can read the replies (and pulled messages) of the controller;
//! they may create consumers only on the subjects they read, never touch the controller's
//! durable consumers ([`CONTROLLER_CONSUMERS`]), never list consumers, read messages by
//! sequence, or create, change or delete the stream.
//!
//! Roles are shared by many tenants (a channel Secret in a tenant's namespace holds the
//! `channel` password), so *who* published a message is proven separately, per instance and
//! per run, by [`crate::origin`].

use std::fmt::Write as _;

use crate::STREAM;

/// Durable consumers of the controller manager. Role clients may not pull from, acknowledge
/// on, inspect or redefine them (a test in the controller keeps this list complete).
pub const CONTROLLER_CONSUMERS: &[&str] = &[
    "channel-router-inbound",
    "channel-router-replies",
    "channel-router-approvals",
    "spawn-router",
    "agentrun-completions",
    "instance-channel-health",
    "schedule-router",
];

/// A bus role: one NATS user with its permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// The controller manager: everything.
    Controller,
    /// Channel pods.
    Channel,
    /// A run's IPC bridge and agent runner.
    Agent,
    /// The TUI (a human answering approvals, watching answers stream in).
    Operator,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Controller, Role::Channel, Role::Agent, Role::Operator];

    /// The NATS user name.
    pub fn user(self) -> &'static str {
        match self {
            Self::Controller => "controller",
            Self::Channel => "channel",
            Self::Agent => "agent",
            Self::Operator => "operator",
        }
    }

    /// The reply-inbox prefix the role's clients must use (the controller keeps NATS's
    /// default `_INBOX`, which no other role may read).
    pub fn inbox_prefix(self) -> Option<String> {
        (self != Self::Controller).then(|| format!("_INBOX_{}", self.user()))
    }

    /// The Secret key holding the role's password in the installer's Secret.
    pub fn password_key(self) -> String {
        format!("{}-password", self.user())
    }

    /// Topics the role publishes.
    fn publishes(self) -> &'static [&'static str] {
        use crate::topics::*;
        match self {
            Self::Controller => &[],
            Self::Channel => &[CHANNEL_MESSAGE_RECEIVED, CHANNEL_HEALTH_UPDATE],
            Self::Agent => &[
                AGENT_RUN_COMPLETED,
                AGENT_RUN_FAILED,
                AGENT_STREAM_CHUNK,
                AGENT_STATUS_UPDATE,
                AGENT_SPAWN_REQUEST,
                TOOL_EXEC_REQUEST,
                TOOL_APPROVAL_REQUEST,
                CHANNEL_MESSAGE_SEND,
                SCHEDULE_UPSERT,
            ],
            Self::Operator => &[TOOL_APPROVAL_RESPONSE],
        }
    }

    /// Topics (NATS subject patterns after `sympozium.`) the role reads.
    fn reads(self) -> &'static [&'static str] {
        use crate::topics::*;
        match self {
            Self::Controller => &[],
            Self::Channel => &[CHANNEL_MESSAGE_SEND],
            Self::Agent => &[
                "agent.spawn.result.*",
                "agent.followup.*",
                "tool.exec.result.*",
                TOOL_APPROVAL_RESPONSE,
                "schedule.upsert.result.*",
            ],
            Self::Operator => &[AGENT_STREAM_CHUNK, TOOL_APPROVAL_REQUEST, TOOL_APPROVAL_RESPONSE],
        }
    }

    /// The role's NATS permissions.
    pub fn permissions(self) -> Permissions {
        if self == Self::Controller {
            return Permissions {
                publish_allow: vec![">".into()],
                publish_deny: vec![],
                subscribe_allow: vec![">".into()],
                subscribe_deny: vec![],
            };
        }
        let js = "$JS.API";
        let mut publish_allow: Vec<String> = self.publishes().iter().map(|t| crate::subject(t)).collect();
        // Finding the stream, pulling from and acknowledging on the role's own consumers
        // (whose names only their owner knows), and creating consumers only on what it reads.
        publish_allow.push(format!("{js}.STREAM.INFO.{STREAM}"));
        publish_allow.push(format!("{js}.CONSUMER.INFO.{STREAM}.*"));
        publish_allow.push(format!("{js}.CONSUMER.MSG.NEXT.{STREAM}.*"));
        publish_allow.push(format!("$JS.ACK.{STREAM}.>"));
        for topic in self.reads() {
            publish_allow.push(format!("{js}.CONSUMER.CREATE.{STREAM}.*.{}", crate::subject(topic)));
        }
        let mut publish_deny = Vec::new();
        for name in CONTROLLER_CONSUMERS {
            publish_deny.push(format!("{js}.CONSUMER.MSG.NEXT.{STREAM}.{name}"));
            publish_deny.push(format!("{js}.CONSUMER.INFO.{STREAM}.{name}"));
            publish_deny.push(format!("{js}.CONSUMER.CREATE.{STREAM}.{name}.>"));
            publish_deny.push(format!("$JS.ACK.{STREAM}.{name}.>"));
        }
        if self != Self::Operator {
            publish_deny.push(crate::subject(crate::topics::TOOL_APPROVAL_RESPONSE));
        }
        let mut subscribe_allow: Vec<String> =
            self.inbox_prefix().map(|p| format!("{p}.>")).into_iter().collect();
        if self == Self::Operator {
            // The TUI watches these live (core subscriptions).
            subscribe_allow.extend(self.reads().iter().map(|t| crate::subject(t)));
        }
        Permissions { publish_allow, publish_deny, subscribe_allow, subscribe_deny: vec![] }
    }
}

/// NATS permissions of one user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permissions {
    /// Subjects it may publish on.
    pub publish_allow: Vec<String>,
    /// Subjects it may not publish on (deny wins).
    pub publish_deny: Vec<String>,
    /// Subjects it may subscribe to.
    pub subscribe_allow: Vec<String>,
    /// Subjects it may not subscribe to (deny wins).
    pub subscribe_deny: Vec<String>,
}

/// A role's user with its password.
#[derive(Clone)]
pub struct RoleUser {
    /// The role.
    pub role: Role,
    /// Its password (random, from the installer's Secret).
    pub password: String,
}

impl std::fmt::Debug for RoleUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleUser").field("role", &self.role).field("password", &"<redacted>").finish()
    }
}

fn quoted(s: &str) -> String {
    // NATS config strings: JSON string escaping is accepted.
    serde_json::Value::String(s.to_string()).to_string()
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|s| quoted(s)).collect::<Vec<_>>().join(", "))
}

/// The `authorization` block of `nats.conf` for `users`: no user without a password, nobody
/// without credentials (no `no_auth_user`).
pub fn authorization_block(users: &[RoleUser]) -> String {
    let mut out = String::from("authorization {\n  users = [\n");
    for u in users {
        let p = u.role.permissions();
        let _ = writeln!(
            out,
            "    {{user: {}, password: {}, permissions: {{publish: {{allow: {}, deny: {}}}, subscribe: {{allow: {}, deny: {}}}}}}}",
            quoted(u.role.user()),
            quoted(&u.password),
            list(&p.publish_allow),
            list(&p.publish_deny),
            list(&p.subscribe_allow),
            list(&p.subscribe_deny),
        );
    }
    out.push_str("  ]\n}\n");
    out
}

/// A whole `nats.conf`: the [`authorization_block`]. Port, JetStream and its store
/// directory come from the command line (`-js -sd <dir>`; NATS refuses a store directory
/// given twice).
pub fn server_config(users: &[RoleUser]) -> String {
    authorization_block(users)
}

/// How a client authenticates: its role's user and password.
#[derive(Clone)]
pub struct Credentials {
    /// The role.
    pub role: Role,
    /// The role's password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("role", &self.role).field("password", &"<redacted>").finish()
    }
}

/// A random secret (32 bytes, hex): role passwords and origin master keys.
pub fn random_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Parses a role name (`controller`, `channel`, `agent`, `operator`).
impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.user() == s.trim())
            .ok_or_else(|| format!("unknown bus role {s:?}: expected controller, channel, agent or operator"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_the_controller_and_the_operator_answer_approvals() {
        for role in Role::ALL {
            let p = role.permissions();
            let answers = "sympozium.tool.approval.response".to_string();
            let may = p.publish_allow.iter().any(|s| s == ">" || *s == answers)
                && !p.publish_deny.contains(&answers);
            assert_eq!(may, matches!(role, Role::Controller | Role::Operator), "{role:?}");
        }
    }

    #[test]
    fn role_clients_never_get_the_default_inbox_or_stream_administration() {
        for role in [Role::Channel, Role::Agent, Role::Operator] {
            let p = role.permissions();
            assert!(!p.subscribe_allow.iter().any(|s| s.starts_with("_INBOX.") || s == ">"), "{role:?}");
            assert!(!p.publish_allow.iter().any(|s| s.contains("STREAM.CREATE")
                || s.contains("STREAM.DELETE")
                || s.contains("STREAM.MSG")
                || s.contains("CONSUMER.LIST")
                || s.contains("CONSUMER.NAMES")
                || s.contains("CONSUMER.DELETE")
                || s == ">"
                || s.ends_with("$JS.API.>")));
        }
    }

    #[test]
    fn the_rendered_config_has_every_role_and_no_anonymous_user() {
        let users: Vec<_> =
            Role::ALL.iter().map(|r| RoleUser { role: *r, password: format!("pw-{}", r.user()) }).collect();
        let conf = server_config(&users);
        for r in Role::ALL {
            assert!(
                conf.contains(&format!("user: \"{}\", password: \"pw-{}\"", r.user(), r.user())),
                "{conf}"
            );
        }
        assert!(!conf.contains("no_auth_user"));
        assert!(format!("{:?}", users[0]).contains("<redacted>"));
        assert_eq!("agent".parse::<Role>().unwrap(), Role::Agent);
        assert!("root".parse::<Role>().unwrap_err().contains("unknown bus role"));
    }
}
