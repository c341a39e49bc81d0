//! Pure builders of the channel router: the AgentRun an inbound message becomes, and the
//! reply a finished run sends back.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::api::ObjectMeta;
use sha2::{Digest, Sha256};
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_api::{AgentRun, AgentRunSpec, SympoziumInstance, labels, resolve};
use sympozium_bus::payloads::{InboundMessage, OutboundMessage};

/// Label: the channel type a run came from.
pub const SOURCE_CHANNEL: &str = "sympozium.ai/source-channel";
/// Annotation: channel type to answer on.
pub const REPLY_CHANNEL: &str = "sympozium.ai/reply-channel";
/// Annotation: chat to answer in.
pub const REPLY_CHAT_ID: &str = "sympozium.ai/reply-chat-id";
/// Annotation: thread to answer in.
pub const REPLY_THREAD_ID: &str = "sympozium.ai/reply-thread-id";
/// Annotation: platform message id the answer replies to.
pub const REPLY_TO: &str = "sympozium.ai/reply-to";
/// Annotation: whether the answer is still owed (`pending`) or went out (`sent`).
pub const REPLY_STATE: &str = "sympozium.ai/reply-state";
/// Annotation: sender's display name.
pub const SENDER_NAME: &str = "sympozium.ai/sender-name";
/// Annotation: sender id.
pub const SENDER_ID: &str = "sympozium.ai/sender-id";
/// Annotation: the inbound message this run answers (redeliveries map to the same run).
pub const INBOUND_ID: &str = "sympozium.ai/inbound-message-id";
/// Annotation: W3C trace context of the inbound message.
pub const TRACEPARENT: &str = labels::TRACEPARENT;
/// Value of [`labels::SOURCE`] on runs created here.
pub const SOURCE_VALUE: &str = "channel";
/// Timeout of channel runs.
pub const RUN_TIMEOUT: &str = "10m";
/// Longest error text put into a chat reply.
const MAX_ERROR_CHARS: usize = 500;

/// The platform id of an inbound message: `id`, else `metadata.messageId`, else
/// `metadata.ts` (Slack), else the envelope's `messageId`; `None` when there is none.
pub fn platform_id(msg: &InboundMessage, envelope_meta: &BTreeMap<String, String>) -> Option<String> {
    let meta = msg.metadata.as_ref();
    msg.id
        .clone()
        .or_else(|| meta.and_then(|m| m.get("messageId").cloned()))
        .or_else(|| meta.and_then(|m| m.get("ts").cloned()))
        .or_else(|| envelope_meta.get("messageId").cloned())
        .filter(|id| !id.is_empty())
}

/// A stable key of one inbound message: the same message (a redelivery, or a channel pod
/// publishing it twice) always gets the same key. `fallback` (the stream sequence) is used
/// when the platform gave no id.
pub fn message_key(namespace: &str, msg: &InboundMessage, id: Option<&str>, fallback: u64) -> String {
    let id = id.map(str::to_string).unwrap_or_else(|| format!("seq-{fallback}"));
    let mut h = Sha256::new();
    for part in [
        namespace,
        &msg.instance_name,
        &msg.channel,
        &msg.chat_id,
        msg.thread_id.as_deref().unwrap_or(""),
        &id,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())[..12].to_string()
}

/// The run's name: `<instance>-ch-<key>` (the instance part cut so the name stays a valid
/// label value; a key too long to leave room for any of it is cut too).
pub fn run_name(instance: &str, key: &str) -> String {
    const MAX_NAME: usize = 63;
    const PREFIX_ROOM: usize = 1;
    let key: String = key.chars().take(MAX_NAME - "-ch-".len() - PREFIX_ROOM).collect();
    let max = MAX_NAME - "-ch-".len() - key.len();
    let mut prefix: String = instance.chars().take(max).collect();
    while prefix.ends_with('-') {
        prefix.pop();
    }
    format!("{prefix}-ch-{key}")
}

/// The AgentRun answering `msg`.
pub fn agent_run(
    instance: &SympoziumInstance,
    msg: &InboundMessage,
    key: &str,
    reply_to: Option<&str>,
    traceparent: Option<&str>,
    now_nanos: i128,
) -> AgentRun {
    let inst = instance.name_any();
    let agent = &instance.spec.agents.default;
    let name = run_name(&inst, key);
    let mut run = AgentRun::new(
        &name,
        AgentRunSpec {
            instance_ref: inst.clone(),
            agent_id: "primary".into(),
            session_key: format!("channel-{}-{}-{now_nanos}", msg.channel, msg.chat_id),
            task: msg.text.clone(),
            model: resolve::model_spec(&instance.spec, &Default::default()),
            skills: instance.spec.skills.clone(),
            tool_policy: agent.tool_policy.clone(),
            timeout: Some(RUN_TIMEOUT.into()),
            image_pull_secrets: instance.spec.image_pull_secrets.clone(),
            lifecycle: agent.lifecycle.clone(),
            ..Default::default()
        },
    );
    let mut annotations = BTreeMap::from([
        (REPLY_CHANNEL.to_string(), msg.channel.clone()),
        (REPLY_CHAT_ID.to_string(), msg.chat_id.clone()),
        (SENDER_ID.to_string(), msg.sender_id.clone()),
        (SENDER_NAME.to_string(), msg.sender_name.clone().unwrap_or_default()),
        (REPLY_STATE.to_string(), "pending".to_string()),
        (INBOUND_ID.to_string(), key.to_string()),
    ]);
    let optional =
        [(REPLY_THREAD_ID, msg.thread_id.as_deref()), (REPLY_TO, reply_to), (TRACEPARENT, traceparent)];
    for (k, v) in optional {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            annotations.insert(k.to_string(), v.to_string());
        }
    }
    run.metadata = ObjectMeta {
        name: Some(name),
        namespace: instance.namespace(),
        labels: Some(BTreeMap::from([
            (labels::INSTANCE.to_string(), inst),
            (labels::SOURCE.to_string(), SOURCE_VALUE.to_string()),
            (SOURCE_CHANNEL.to_string(), msg.channel.clone()),
        ])),
        annotations: Some(annotations),
        ..Default::default()
    };
    run
}

fn short(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(MAX_ERROR_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

fn non_empty(v: Option<&str>) -> Option<&str> {
    v.map(str::trim).filter(|s| !s.is_empty())
}

/// The reply text of a runner result `{status, response, error}`: the response, else
/// `Error: <error>`, else `(no response)`.
pub fn text_from_result(result: &serde_json::Value) -> String {
    if let Some(r) =
        non_empty(result["response"].as_str()).filter(|_| result["status"].as_str() != Some("error"))
    {
        return r.to_string();
    }
    match non_empty(result["error"].as_str()) {
        Some(e) => format!("Error: {}", short(e)),
        None if result["status"].as_str() == Some("error") => "Error: the agent run failed".into(),
        None => "(no response)".into(),
    }
}

/// The reply text of a finished run from its status (when no result event arrived, e.g.
/// the pod crashed); `None` while the run is not finished.
pub fn text_from_status(run: &AgentRun) -> Option<String> {
    let status = run.status.as_ref()?;
    match status.phase? {
        AgentRunPhase::Succeeded => {
            Some(non_empty(status.result.as_deref()).unwrap_or("(no response)").to_string())
        }
        AgentRunPhase::Failed => Some(format!(
            "Error: {}",
            short(non_empty(status.error.as_deref()).unwrap_or("the agent run failed"))
        )),
        _ => None,
    }
}

/// Whether `run` still owes its chat an answer.
pub fn reply_pending(run: &AgentRun) -> bool {
    run.annotations().get(REPLY_STATE).map(String::as_str) == Some("pending")
}

/// The outbound message answering `run` with `text`, and its metadata (instance, channel,
/// namespace), so that only that instance's channel pod posts it.
pub fn reply(run: &AgentRun, text: String) -> Option<(OutboundMessage, BTreeMap<String, String>)> {
    let a = run.annotations();
    let channel = a.get(REPLY_CHANNEL).filter(|c| !c.is_empty())?.clone();
    let message = OutboundMessage {
        channel: channel.clone(),
        chat_id: a.get(REPLY_CHAT_ID).cloned().unwrap_or_default(),
        thread_id: a.get(REPLY_THREAD_ID).cloned(),
        text,
        format: None,
        reply_to: a.get(REPLY_TO).cloned(),
    };
    let meta = BTreeMap::from([
        ("instanceName".to_string(), run.spec.instance_ref.clone()),
        ("channel".to_string(), channel),
        ("namespace".to_string(), run.namespace().unwrap_or_default()),
    ]);
    Some((message, meta))
}
