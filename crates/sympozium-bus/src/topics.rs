//! Topic names (the part after `sympozium.`). These are contracts with channel pods, the
//! IPC bridge, the web proxy and the API server.

/// A chat message arrived at a channel pod.
pub const CHANNEL_MESSAGE_RECEIVED: &str = "channel.message.received";
/// A message to post through a channel pod.
pub const CHANNEL_MESSAGE_SEND: &str = "channel.message.send";
/// A channel pod's connection health.
pub const CHANNEL_HEALTH_UPDATE: &str = "channel.health.update";
/// An agent run finished (the runner's result.json).
pub const AGENT_RUN_COMPLETED: &str = "agent.run.completed";
/// An agent run failed before producing a result.
pub const AGENT_RUN_FAILED: &str = "agent.run.failed";
/// A chunk of an agent's streamed answer.
pub const AGENT_STREAM_CHUNK: &str = "agent.stream.chunk";
/// An agent's status update.
pub const AGENT_STATUS_UPDATE: &str = "agent.status.update";
/// An agent asks for a sub-agent.
pub const AGENT_SPAWN_REQUEST: &str = "agent.spawn.request";
/// A command an agent sent to a skill sidecar (audit).
pub const TOOL_EXEC_REQUEST: &str = "tool.exec.request";
/// A tool call waits for a human's approval.
pub const TOOL_APPROVAL_REQUEST: &str = "tool.approval.request";
/// A human's decision on a tool call.
pub const TOOL_APPROVAL_RESPONSE: &str = "tool.approval.response";
/// An agent creates, changes or removes one of its schedules.
pub const SCHEDULE_UPSERT: &str = "schedule.upsert";
/// Prefix of the outcomes of one run's `schedule.upsert` requests (accepted, or why not):
/// `schedule.upsert.result.<ns>.<run>` (see [`schedule_upsert_result`]).
pub const SCHEDULE_UPSERT_RESULT_PREFIX: &str = "schedule.upsert.result";
/// Prefix of the subject answering one run's spawn requests: `agent.spawn.result.<ns>.<run>`
/// (see [`spawn_result`]).
pub const AGENT_SPAWN_RESULT_PREFIX: &str = "agent.spawn.result";
/// Prefix of follow-up messages for a running agent: `agent.followup.<ns>.<run>`.
pub const AGENT_FOLLOWUP_PREFIX: &str = "agent.followup";

/// The topic carrying the outcomes of the sub-agents run `run` in `namespace` spawned, read
/// by that run's IPC bridge (which writes `/ipc/input/spawn-result-<id>.json`).
pub fn spawn_result(namespace: &str, run: &str) -> String {
    scoped(AGENT_SPAWN_RESULT_PREFIX, namespace, run)
}

/// The topic carrying the outcomes of the schedule requests run `run` in `namespace` made,
/// read by that run's IPC bridge (which writes `/ipc/input/schedule-result-<id>.json`).
pub fn schedule_upsert_result(namespace: &str, run: &str) -> String {
    scoped(SCHEDULE_UPSERT_RESULT_PREFIX, namespace, run)
}

/// The topic carrying follow-up messages for run `run` in `namespace`.
pub fn followup(namespace: &str, run: &str) -> String {
    scoped(AGENT_FOLLOWUP_PREFIX, namespace, run)
}

/// Prefix of command results for a running agent: `tool.exec.result.<ns>.<run>`.
pub const TOOL_EXEC_RESULT_PREFIX: &str = "tool.exec.result";

/// The topic carrying command results for run `run` in `namespace` (written by its IPC
/// bridge as `/ipc/tools/[<skill>/]exec-result-<id>.json`).
pub fn tool_exec_result(namespace: &str, run: &str) -> String {
    scoped(TOOL_EXEC_RESULT_PREFIX, namespace, run)
}

/// The topic of the answers to run `run`'s tool approval requests (read by its runner).
pub fn approval_response(namespace: &str, run: &str) -> String {
    scoped(TOOL_APPROVAL_RESPONSE, namespace, run)
}

/// The topic of messages to post through instance `instance`'s channel pods.
pub fn channel_send(namespace: &str, instance: &str) -> String {
    scoped(CHANNEL_MESSAGE_SEND, namespace, instance)
}

/// The topic of chat messages instance `instance`'s channel pods received.
pub fn channel_received(namespace: &str, instance: &str) -> String {
    scoped(CHANNEL_MESSAGE_RECEIVED, namespace, instance)
}

/// The topic of instance `instance`'s channel health updates.
pub fn channel_health(namespace: &str, instance: &str) -> String {
    scoped(CHANNEL_HEALTH_UPDATE, namespace, instance)
}

/// Every scoped subject of a base topic (`<topic>.>`): what the controller's routers read.
pub fn every(topic: &str) -> String {
    format!("{topic}.>")
}

/// The namespace and name a scoped topic (`<base>.<namespace>.<name>`) is addressed to.
pub fn scope_of<'a>(base: &str, topic: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = topic.strip_prefix(base)?.strip_prefix('.')?;
    let (namespace, name) = rest.split_once('.')?;
    (!namespace.is_empty() && !name.is_empty()).then_some((namespace, name))
}

/// The per-instance or per-run subject of a base topic: `<topic>.<namespace>.<name>`.
///
/// Kubernetes names hold no `*`, `>` or spaces, and a namespace holds no `.`, so the
/// namespace is always the first token after the topic and no two (namespace, name) pairs
/// share a subject; permissions name these subjects exactly (no wildcards), so instance `a`
/// is never granted `a.b`'s subject.
pub fn scoped(topic: &str, namespace: &str, name: &str) -> String {
    format!("{topic}.{namespace}.{name}")
}
