//! Conversation continuity: messages in the same chat (and thread) of an instance form a
//! conversation, and each new run gets its recent turns — the earlier messages and the
//! answers — ahead of the new message, within a size budget. The turns come from the
//! conversation's earlier AgentRuns (label [`CONVERSATION`]), which etcd keeps durably: the
//! router keeps each conversation's latest turns in memory from a watch
//! ([`super::conversations`]) and reads the runs from the API server only until that watch
//! has listed them once.

use kube::ResourceExt;
use sha2::{Digest, Sha256};
use sympozium_api::AgentRun;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_bus::payloads::InboundMessage;
use sympozium_protocol::conversation;

pub use sympozium_api::labels::{CONVERSATION, MESSAGE};
pub use sympozium_protocol::conversation::{BUDGET_CHARS, MAX_TURNS};
/// Longest message kept in the [`MESSAGE`] annotation.
pub const MAX_MESSAGE_CHARS: usize = 4_000;

/// The conversation key of a message (a valid label value).
pub fn key(namespace: &str, msg: &InboundMessage) -> String {
    let mut h = Sha256::new();
    for part in
        [namespace, &msg.instance_name, &msg.channel, &msg.chat_id, msg.thread_id.as_deref().unwrap_or("")]
    {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())[..20].to_string()
}

/// `text` cut to `max` characters.
pub fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// One answered message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// The chat message as written.
    pub message: String,
    /// The agent's answer, cut to [`BUDGET_CHARS`] (a longer one never fits anyway).
    pub answer: String,
}

/// The turn a run answered: a Succeeded run with its message and a non-empty result.
pub fn turn(run: &AgentRun) -> Option<Turn> {
    let status = run.status.as_ref()?;
    if status.phase != Some(AgentRunPhase::Succeeded) {
        return None;
    }
    let message = run.annotations().get(MESSAGE)?.clone();
    let answer = status.result.as_deref().filter(|a| !a.trim().is_empty())?;
    Some(Turn { message, answer: cut(answer, BUDGET_CHARS) })
}

/// The answered turns among `earlier` runs, oldest first.
pub fn turns(earlier: &[AgentRun], except: &str) -> Vec<Turn> {
    let mut done: Vec<&AgentRun> = earlier.iter().filter(|r| r.name_any() != except).collect();
    done.sort_by_key(|r| (r.creation_timestamp().map(|t| t.0), r.name_any()));
    done.into_iter().filter_map(turn).collect()
}

/// The task of a new run: `text` alone when there is no earlier turn; otherwise the most
/// recent of `turns` (oldest first) that fit the budget, then the new message.
pub fn task(turns: &[Turn], text: &str) -> String {
    let newest_first =
        turns.iter().rev().take(MAX_TURNS).map(|t| conversation::exchange(&t.message, &t.answer));
    conversation::task(newest_first, text, conversation::CHAT_HEADING, BUDGET_CHARS)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn run(name: &str, created: &str, phase: &str, message: &str, result: &str) -> AgentRun {
        serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
            "metadata": {"name": name, "creationTimestamp": created, "annotations": {MESSAGE: message}},
            "spec": {"instanceRef": "a", "agentId": "primary", "sessionKey": "", "task": "x",
                     "model": {"provider": "openai", "model": "m", "authSecretRef": ""}},
            "status": {"phase": phase, "result": result}}))
        .unwrap()
    }

    #[test]
    fn the_first_message_is_the_task_as_written() {
        assert_eq!(task(&turns(&[], "r"), "hello"), "hello");
        let failed = run("r0", "2026-01-01T00:00:00Z", "Failed", "q", "");
        assert_eq!(task(&turns(&[failed], "r"), "hello"), "hello", "failed turns are not carried");
    }

    #[test]
    fn earlier_turns_come_first_oldest_first() {
        let earlier = [
            run("r2", "2026-01-01T00:02:00Z", "Succeeded", "and now?", "Still 3."),
            run("r1", "2026-01-01T00:01:00Z", "Succeeded", "how many pods?", "3 pods."),
            run("r3", "2026-01-01T00:03:00Z", "Running", "pending", ""),
        ];
        let t = task(&turns(&earlier, "r4"), "scale to 5");
        assert_eq!(
            t,
            "## Conversation so far (earlier messages in this chat and your answers)\n\
             User: how many pods?\nAssistant: 3 pods.\nUser: and now?\nAssistant: Still 3.\n\n## New message\nscale to 5"
        );
        assert_eq!(task(&turns(&earlier[..1], "r2"), "x"), "x", "a redelivery does not see itself");
    }

    #[test]
    fn the_budget_keeps_the_most_recent_turns() {
        let long = "y".repeat(BUDGET_CHARS / 2);
        let earlier = [
            run("r1", "2026-01-01T00:01:00Z", "Succeeded", "old", &long),
            run("r2", "2026-01-01T00:02:00Z", "Succeeded", "mid", &long),
            run("r3", "2026-01-01T00:03:00Z", "Succeeded", "new", "short"),
        ];
        let t = task(&turns(&earlier, "r4"), "q");
        assert!(
            t.contains("User: new") && t.contains("User: mid") && !t.contains("User: old"),
            "{}",
            &t[..200]
        );
        let k = key("ns", &InboundMessage { chat_id: "c".into(), ..Default::default() });
        assert_eq!(k.len(), 20);
    }
}
