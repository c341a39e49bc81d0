//! Per-identity bus permissions: what one instance's channel pods, one run, the controller
//! and the operator console may publish and read, in the user JWTs the controller mints
//! ([`crate::jwt::Issuer::mint`]).
//!
//! | identity | publishes | reads (through its own JetStream consumers) |
//! |---|---|---|
//! | `controller` | everything | everything |
//! | `channel/<ns>/<instance>` | `channel.message.received.<ns>.<instance>`, `channel.health.update.<ns>.<instance>` | `channel.message.send.<ns>.<instance>` |
//! | `run/<ns>/<run>` | run outcomes, chunks, status, spawn/schedule/exec/approval *requests*; `channel.message.send.<ns>.<instance>` of its own instance | `agent.spawn.result.<ns>.<run>`, `agent.followup.<ns>.<run>`, `tool.exec.result.<ns>.<run>`, `tool.approval.response.<ns>.<run>`, `schedule.upsert.result.<ns>.<run>` |
//! | `operator` | `tool.approval.response.>` | `agent.stream.chunk`, `tool.approval.request`, `tool.approval.response.>` (live) |
//!
//! Subjects are the base topics of the protocol with `.<namespace>.<name>` appended
//! ([`crate::topics::scoped`]); grants name them exactly. Every non-controller user gets its
//! own reply inbox (`_INBOX_<its public key>`) and reads through JetStream consumers whose
//! names are fixed per identity and topic ([`Identity::consumer_name`]): it may create,
//! inspect, pull from and acknowledge on exactly those (created only with the API form that
//! names the filter, on the subject it reads), so no other user can pull from them even
//! knowing their names, and it never touches anyone else's consumer, lists consumers, reads
//! by sequence or administers the stream. Nobody but the controller and the operator console
//! may publish an approval answer.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::auth::Permissions;
use crate::topics::{self, scoped};
use crate::{STREAM, subject};

/// Who a bus user is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Identity {
    /// The controller manager.
    Controller,
    /// The channel pods of one instance.
    Channel {
        /// The instance's namespace.
        namespace: String,
        /// The instance.
        instance: String,
    },
    /// One run's IPC bridge and agent runner.
    Run {
        /// The run's namespace.
        namespace: String,
        /// The run.
        run: String,
        /// The instance the run belongs to (it may post through that instance's channels).
        instance: Option<String>,
    },
    /// The operator console (TUI): answers approvals, watches answers stream in.
    Operator,
}

impl fmt::Display for Identity {
    /// The same identity strings as [`crate::origin`]: `channel/<ns>/<instance>`, `run/<ns>/<run>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Controller => f.write_str("controller"),
            Self::Channel { namespace, instance } => {
                f.write_str(&crate::origin::channel_identity(namespace, instance))
            }
            Self::Run { namespace, run, .. } => f.write_str(&crate::origin::run_identity(namespace, run)),
            Self::Operator => f.write_str("operator"),
        }
    }
}

/// Topics (after `sympozium.`) a run publishes as they are: who sent them is proven by the
/// run's origin signature, and nobody but the controller and the operator console reads them.
const RUN_PUBLISHES: &[&str] = &[
    topics::AGENT_RUN_COMPLETED,
    topics::AGENT_RUN_FAILED,
    topics::AGENT_STREAM_CHUNK,
    topics::AGENT_STATUS_UPDATE,
    topics::AGENT_SPAWN_REQUEST,
    topics::TOOL_EXEC_REQUEST,
    topics::TOOL_APPROVAL_REQUEST,
    topics::SCHEDULE_UPSERT,
];

/// The chat platforms a channel pod may serve: the pods of one instance (one per platform)
/// each read the instance's outbound subject through their own consumer
/// ([`Identity::channel_consumer_name`]), so every pod sees every message and posts the ones
/// for its platform.
pub const CHANNEL_KINDS: &[&str] = &["telegram", "slack", "discord", "whatsapp"];

/// Prefixes of the topics a run reads, each followed by `.<ns>.<run>`.
const RUN_READS: &[&str] = &[
    topics::AGENT_SPAWN_RESULT_PREFIX,
    topics::AGENT_FOLLOWUP_PREFIX,
    topics::TOOL_EXEC_RESULT_PREFIX,
    topics::TOOL_APPROVAL_RESPONSE,
    topics::SCHEDULE_UPSERT_RESULT_PREFIX,
];

impl Identity {
    /// The channel pods of `instance` in `namespace`.
    pub fn channel(namespace: impl Into<String>, instance: impl Into<String>) -> Self {
        Self::Channel { namespace: namespace.into(), instance: instance.into() }
    }

    /// Run `run` in `namespace`, of `instance` (if any).
    pub fn run(namespace: impl Into<String>, run: impl Into<String>, instance: Option<String>) -> Self {
        Self::Run { namespace: namespace.into(), run: run.into(), instance }
    }

    /// The topics (after `sympozium.`) this identity publishes.
    pub fn publishes(&self) -> Vec<String> {
        match self {
            Self::Controller => vec![">".into()],
            Self::Channel { namespace, instance } => vec![
                scoped(topics::CHANNEL_MESSAGE_RECEIVED, namespace, instance),
                scoped(topics::CHANNEL_HEALTH_UPDATE, namespace, instance),
            ],
            Self::Run { namespace, instance, .. } => {
                let mut out: Vec<String> = RUN_PUBLISHES.iter().map(|t| t.to_string()).collect();
                if let Some(instance) = instance {
                    out.push(scoped(topics::CHANNEL_MESSAGE_SEND, namespace, instance));
                }
                out
            }
            Self::Operator => vec![format!("{}.>", topics::TOOL_APPROVAL_RESPONSE)],
        }
    }

    /// The topics (after `sympozium.`) this identity reads.
    pub fn reads(&self) -> Vec<String> {
        match self {
            Self::Controller => vec![">".into()],
            Self::Channel { namespace, instance } => {
                vec![scoped(topics::CHANNEL_MESSAGE_SEND, namespace, instance)]
            }
            Self::Run { namespace, run, .. } => RUN_READS.iter().map(|t| scoped(t, namespace, run)).collect(),
            Self::Operator => vec![
                topics::AGENT_STREAM_CHUNK.into(),
                topics::TOOL_APPROVAL_REQUEST.into(),
                format!("{}.>", topics::TOOL_APPROVAL_RESPONSE),
            ],
        }
    }

    /// The name of this identity's JetStream consumer on `topic` (one of [`Identity::reads`]):
    /// the only consumer on that topic its permissions let it use.
    pub fn consumer_name(&self, topic: &str) -> String {
        let kind = match self {
            Self::Controller => "controller",
            Self::Channel { .. } => "channel",
            Self::Run { .. } => "run",
            Self::Operator => "operator",
        };
        let digest = Sha256::digest(format!("{self}\n{topic}").as_bytes());
        let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        format!("{kind}-{hex}")
    }

    /// The consumer of the channel pod serving platform `kind` (one of [`CHANNEL_KINDS`]) on
    /// `topic` (its instance's outbound subject).
    pub fn channel_consumer_name(&self, topic: &str, kind: &str) -> String {
        self.consumer_name(&format!("{topic}#{kind}"))
    }

    /// Every consumer name this identity may use on `topic`, one of [`Identity::reads`].
    fn consumer_names(&self, topic: &str) -> Vec<String> {
        let mut names = vec![self.consumer_name(topic)];
        if matches!(self, Self::Channel { .. }) {
            names.extend(CHANNEL_KINDS.iter().map(|kind| self.channel_consumer_name(topic, kind)));
        }
        names
    }

    /// The NATS permissions of a user of this identity whose replies arrive under `inbox`.
    pub fn permissions(&self, inbox: &str) -> Permissions {
        if *self == Self::Controller {
            return Permissions {
                publish_allow: vec![">".into()],
                publish_deny: vec![],
                subscribe_allow: vec![">".into()],
                subscribe_deny: vec![],
            };
        }
        let js = "$JS.API";
        let mut publish_allow: Vec<String> = self.publishes().iter().map(|t| subject(t)).collect();
        publish_allow.push(format!("{js}.STREAM.INFO.{STREAM}"));
        for topic in self.reads() {
            for name in self.consumer_names(&topic) {
                publish_allow.push(format!("{js}.CONSUMER.CREATE.{STREAM}.{name}.{}", subject(&topic)));
                publish_allow.push(format!("{js}.CONSUMER.INFO.{STREAM}.{name}"));
                publish_allow.push(format!("{js}.CONSUMER.MSG.NEXT.{STREAM}.{name}"));
                publish_allow.push(format!("$JS.ACK.{STREAM}.{name}.>"));
            }
        }
        let mut publish_deny = Vec::new();
        if *self != Self::Operator {
            let answers = subject(topics::TOOL_APPROVAL_RESPONSE);
            publish_deny.push(answers.clone());
            publish_deny.push(format!("{answers}.>"));
        }
        let mut subscribe_allow = vec![format!("{inbox}.>")];
        if *self == Self::Operator {
            // The console watches these live (core subscriptions).
            subscribe_allow.extend(self.reads().iter().map(|t| subject(t)));
        }
        Permissions { publish_allow, publish_deny, subscribe_allow, subscribe_deny: vec![] }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn identities_read_and_write_only_their_own_scoped_subjects() {
        let a = Identity::channel("team-a", "support").permissions("_INBOX_U1");
        assert!(a.publish_allow.contains(&"sympozium.channel.message.received.team-a.support".to_string()));
        let alpha = Identity::channel("team-a", "support");
        let name = alpha.consumer_name("channel.message.send.team-a.support");
        assert!(a.publish_allow.contains(&format!(
            "$JS.API.CONSUMER.CREATE.sympozium.{name}.sympozium.channel.message.send.team-a.support"
        )));
        assert!(
            !a.publish_allow
                .iter()
                .any(|s| s.contains('*') || (s.contains('>') && !s.starts_with("$JS.ACK.")))
        );
        assert_ne!(
            name,
            Identity::channel("team-a", "other").consumer_name("channel.message.send.team-a.support")
        );
        assert_eq!(a.subscribe_allow, vec!["_INBOX_U1.>".to_string()]);

        let run = Identity::run("team-a", "r1", Some("support".into())).permissions("_INBOX_U2");
        assert!(run.publish_allow.contains(&"sympozium.channel.message.send.team-a.support".to_string()));
        assert!(run.publish_deny.contains(&"sympozium.tool.approval.response.>".to_string()));
        for read in run.publish_allow.iter().filter(|s| s.contains("CONSUMER.CREATE")) {
            assert!(read.ends_with(".team-a.r1"), "{read}");
        }
        assert_eq!(Identity::run("n", "r", None).to_string(), "run/n/r");
        assert_eq!(Identity::channel("n", "i").to_string(), "channel/n/i");
    }
}
