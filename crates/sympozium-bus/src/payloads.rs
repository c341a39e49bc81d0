//! Typed `data` payloads of the bus topics shared by channel pods, the channel router, the
//! IPC bridge and the spawn router (camelCase JSON, as on the wire).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A chat message a channel pod received (`channel.message.received`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundMessage {
    /// Channel type (`telegram`, `slack`, …).
    #[serde(default)]
    pub channel: String,
    /// The instance whose channel pod received it.
    #[serde(default)]
    pub instance_name: String,
    /// Namespace of that instance (optional; also accepted as `metadata.namespace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Platform message id, when the platform has one (also accepted as
    /// `metadata.messageId`); makes redeliveries recognisable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Who wrote it.
    #[serde(default)]
    pub sender_id: String,
    /// Display name of the sender.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_name: Option<String>,
    /// Chat (conversation) id.
    #[serde(default)]
    pub chat_id: String,
    /// Thread id inside the chat (Slack `thread_ts`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// The text.
    #[serde(default)]
    pub text: String,
    /// Attachments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// Platform-specific details (`messageId`, `ts`, `username`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// A file or media item attached to an inbound message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// Kind (`image`, `document`, …).
    #[serde(rename = "type", default)]
    pub type_: String,
    /// Where to fetch it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// File name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// MIME type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

/// A message a channel pod should post (`channel.message.send`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboundMessage {
    /// Channel type.
    #[serde(default)]
    pub channel: String,
    /// Target chat.
    #[serde(default)]
    pub chat_id: String,
    /// Thread to answer in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// The text.
    #[serde(default)]
    pub text: String,
    /// `plain`, `markdown` or `html`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Platform message id this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
}

/// A sub-agent request as the runner's `spawn_subagent` writes it (`agent.spawn.request`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpawnRequest {
    /// Request id chosen by the parent (names the result file).
    #[serde(default)]
    pub id: String,
    /// The child's task.
    #[serde(default)]
    pub task: String,
    /// The child's system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// The parent run.
    #[serde(default)]
    pub parent_run_id: String,
    /// The parent's instance.
    #[serde(default)]
    pub instance_name: String,
    /// The parent's namespace.
    #[serde(default)]
    pub namespace: String,
    /// Whether the parent waits for the answer.
    #[serde(default)]
    pub wait: bool,
}

/// The outcome of a sub-agent (`agent.spawn.result.<parent run>`), written by the parent's
/// bridge to `/ipc/input/spawn-result-<id>.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpawnResult {
    /// The request id.
    pub id: String,
    /// `success` or `error`.
    pub status: String,
    /// The child's answer (success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// Why it failed or was refused (error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The child AgentRun, when one was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_name: Option<String>,
}

/// The outcome of one `schedule.upsert` request, published by the schedule router on
/// `schedule.upsert.result.<run>` and written by the run's IPC bridge to
/// `/ipc/input/schedule-result-<id>.json`, where the runner's `schedule_task` waits for it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleResult {
    /// The request id the tool chose (empty for requests that carried none).
    #[serde(default)]
    pub id: String,
    /// The request's schedule name.
    pub name: String,
    /// The request's action.
    pub action: String,
    /// The SympoziumSchedule object affected (`<instance>-<name>`).
    pub schedule: String,
    /// Whether it was applied.
    pub accepted: bool,
    /// Why not, when refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl SpawnResult {
    /// A failed or refused spawn.
    pub fn error(id: &str, error: impl Into<String>) -> Self {
        Self { id: id.into(), status: "error".into(), error: Some(error.into()), ..Default::default() }
    }
}
