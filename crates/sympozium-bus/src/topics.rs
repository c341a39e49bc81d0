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
/// The outcome of a `schedule.upsert` (accepted, or why not), for the requesting run.
pub const SCHEDULE_UPSERT_RESULT: &str = "schedule.upsert.result";
