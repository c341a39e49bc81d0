//! Label, annotation and finalizer keys. These are contracts: tools and manifests select
//! Sympozium's objects by them.

/// The instance an object belongs to.
pub const INSTANCE: &str = "sympozium.ai/instance";
/// What an object is (`channel`, `memory`, `memory-db`, `web-endpoint`, `agent-run`, …).
pub const COMPONENT: &str = "sympozium.ai/component";
/// Channel type of a channel Deployment.
pub const CHANNEL: &str = "sympozium.ai/channel";
/// The AgentRun a Job or pod belongs to.
pub const AGENT_RUN: &str = "sympozium.ai/agent-run";
/// Who created an AgentRun (`channel`, `web-proxy`, `agent`).
pub const SOURCE: &str = "sympozium.ai/source";
/// The schedule that created an AgentRun.
pub const SCHEDULE: &str = "sympozium.ai/schedule";
/// Annotation on a SympoziumSchedule asking for one run now (`sympozium schedules trigger`);
/// its value identifies the request, and the controller removes it once the run exists.
pub const RUN_NOW: &str = "sympozium.ai/run-now";
/// Label: the conversation (instance, channel, chat, thread; `tui` for TUI chats) a chat
/// run belongs to.
pub const CONVERSATION: &str = "sympozium.ai/conversation";
/// Annotation: the chat message a run answers, as written (its task may carry history).
pub const MESSAGE: &str = "sympozium.ai/message";
/// Annotation on an AgentRun: the W3C trace context it continues (set by the channel router
/// from the inbound message); the run's pod gets a child span of it.
pub const TRACEPARENT: &str = "otel.dev/traceparent";
/// Annotation on an AgentRun: its instance's `status.totalAgentRuns` includes it (set by the
/// instance controller right after counting it, so pruned runs stay counted exactly once).
pub const COUNTED: &str = "sympozium.ai/counted";
/// Annotation marking a finished run whose outcome, tokens and cost were metered (metrics).
pub const METERED: &str = "sympozium.ai/metered";
/// Annotation marking a run whose `status.cost` is in its instance's `status.cost` total.
pub const COST_COUNTED: &str = "sympozium.ai/cost-counted";
/// The PersonaPack that created an object.
pub const PERSONA_PACK: &str = "sympozium.ai/persona-pack";
/// The persona an object was stamped out for.
pub const PERSONA: &str = "sympozium.ai/persona";
/// Kubernetes' recommended "part of" label.
pub const PART_OF: &str = "app.kubernetes.io/part-of";
/// Kubernetes' recommended "managed by" label.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// Component values.
pub mod component {
    /// A channel Deployment or its PVC.
    pub const CHANNEL: &str = "channel";
    /// The legacy memory ConfigMap and the memory server Deployment/Service.
    pub const MEMORY: &str = "memory";
    /// The memory server's database PVC.
    pub const MEMORY_DB: &str = "memory-db";
    /// The serving AgentRun of the web-endpoint skill.
    pub const WEB_ENDPOINT: &str = "web-endpoint";
    /// An agent run's Job and pod.
    pub const AGENT_RUN: &str = "agent-run";
}

/// Finalizer of SympoziumInstances.
pub const INSTANCE_FINALIZER: &str = "sympozium.ai/finalizer";
/// Finalizer of AgentRuns.
pub const AGENT_RUN_FINALIZER: &str = "sympozium.ai/agentrun-finalizer";
/// Finalizer of PersonaPacks.
pub const PERSONA_PACK_FINALIZER: &str = "sympozium.ai/personapack-finalizer";
/// Finalizer of SkillPacks.
pub const SKILL_PACK_FINALIZER: &str = "sympozium.ai/skillpack-finalizer";
/// Finalizer of SympoziumSchedules.
pub const SCHEDULE_FINALIZER: &str = "sympozium.ai/schedule-finalizer";
/// Finalizer of SympoziumConfigs.
pub const CONFIG_FINALIZER: &str = "sympozium.ai/config-finalizer";

/// Skill packs with special meaning to the controllers.
pub mod skills {
    /// Attaching this pack gives the instance a memory server.
    pub const MEMORY: &str = "memory";
    /// Attaching this pack makes the instance serve HTTP.
    pub const WEB_ENDPOINT: &str = "web-endpoint";
    /// Older spelling of [`WEB_ENDPOINT`], still honoured.
    pub const WEB_ENDPOINT_LEGACY: &str = "skillpack-web-endpoint";
}
