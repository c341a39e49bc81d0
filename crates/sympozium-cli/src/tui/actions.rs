//! What the UI asks the worker to do. The UI never calls Kubernetes; it queues an
//! [`Action`] and shows the [`Update`](super::data::Update) that comes back.

use std::sync::Arc;

use sympozium_api::SympoziumInstance;

use crate::wizard::onboard::Onboarding;
use crate::wizard::pack::Activation;

/// A kind of object an action names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjKind {
    /// PersonaPack.
    Pack,
    /// SympoziumInstance.
    Instance,
    /// AgentRun.
    Run,
    /// SympoziumPolicy.
    Policy,
    /// SkillPack.
    Skill,
    /// SympoziumSchedule.
    Schedule,
    /// Pod.
    Pod,
    /// SympoziumConfig.
    Config,
    /// MCPServer.
    McpServer,
}

impl ObjKind {
    /// The kind as kubectl spells it.
    pub fn resource(self) -> &'static str {
        match self {
            ObjKind::Pack => "personapack",
            ObjKind::Instance => "sympoziuminstance",
            ObjKind::Run => "agentrun",
            ObjKind::Policy => "sympoziumpolicy",
            ObjKind::Skill => "skillpack",
            ObjKind::Schedule => "sympoziumschedule",
            ObjKind::Pod => "pod",
            ObjKind::Config => "sympoziumconfig",
            ObjKind::McpServer => "mcpserver",
        }
    }

    /// The Kubernetes `kind`.
    pub fn kind(self) -> &'static str {
        match self {
            ObjKind::Pack => "PersonaPack",
            ObjKind::Instance => "SympoziumInstance",
            ObjKind::Run => "AgentRun",
            ObjKind::Policy => "SympoziumPolicy",
            ObjKind::Skill => "SkillPack",
            ObjKind::Schedule => "SympoziumSchedule",
            ObjKind::Pod => "Pod",
            ObjKind::Config => "SympoziumConfig",
            ObjKind::McpServer => "MCPServer",
        }
    }
}

/// A request to the worker.
#[derive(Clone, Debug)]
pub enum Action {
    /// Delete an object.
    Delete {
        /// Kind.
        kind: ObjKind,
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
    },
    /// Merge-patch an object's `spec` (`what` names the change for the status bar).
    Patch {
        /// Kind.
        kind: ObjKind,
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
        /// JSON merge patch.
        patch: serde_json::Value,
        /// One line saying what changed.
        what: String,
    },
    /// Activate a PersonaPack.
    ActivatePack {
        /// Namespace of the pack.
        ns: String,
        /// What to write.
        activation: Activation,
    },
    /// Write an onboarding.
    Onboard(Onboarding),
    /// Send a chat message: create a run on the instance.
    Chat {
        /// Namespace.
        ns: String,
        /// The instance.
        instance: Arc<SympoziumInstance>,
        /// The message as typed.
        message: String,
        /// The run's task (the message with the conversation so far).
        task: String,
    },
    /// Create or update `<instance>-schedule`.
    Schedule {
        /// Namespace.
        ns: String,
        /// Instance.
        instance: String,
        /// Cron.
        cron: String,
        /// Task.
        task: String,
    },
    /// Create a Secret `<instance>-<type>-secret` with one token.
    ChannelSecret {
        /// Namespace.
        ns: String,
        /// Secret name.
        name: String,
        /// Key → value.
        data: std::collections::BTreeMap<String, String>,
    },
    /// YAML of an object and its Events.
    Describe {
        /// Kind.
        kind: ObjKind,
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
    },
    /// Events of an object.
    Events {
        /// Kind.
        kind: ObjKind,
        /// Namespace.
        ns: String,
        /// Name.
        name: String,
    },
    /// Logs of a pod.
    Logs {
        /// Namespace.
        ns: String,
        /// Pod.
        pod: String,
    },
    /// Answer a tool approval (goes out on the bus).
    Approve {
        /// The request.
        approval: super::data::Approval,
        /// Allowed or refused.
        approved: bool,
    },
    /// The legacy memory ConfigMap of an instance.
    Memory {
        /// Namespace.
        ns: String,
        /// Instance.
        instance: String,
    },
}
