//! Chat with an instance from the detail pane. Each message is one AgentRun; the message as
//! typed is kept in the annotation `sympozium.ai/message` (the task may carry history), so a
//! new run's task holds the recent turns once each — the same continuity scheme and format
//! the channel router uses, not the original TUI's prompt that grew quadratically.

use std::sync::Arc;

use kube::ResourceExt;
use sympozium_api::AgentRun;
use sympozium_api::agentrun::AgentRunPhase;
use sympozium_protocol::conversation;

pub use sympozium_api::labels::{CONVERSATION, MESSAGE};
/// The conversation value of TUI chats (one conversation per instance).
pub const TUI_CONVERSATION: &str = "tui";

/// Marks `run` as a TUI chat message.
pub fn mark(run: &mut AgentRun, message: &str) {
    run.labels_mut().insert(CONVERSATION.into(), TUI_CONVERSATION.into());
    run.annotations_mut().insert(MESSAGE.into(), message.chars().take(4000).collect());
}

/// The runs of `instance` in `ns`, oldest first.
pub fn runs_of<'a>(runs: &'a [Arc<AgentRun>], ns: &str, instance: &str) -> Vec<&'a Arc<AgentRun>> {
    let mut v: Vec<_> = runs
        .iter()
        .filter(|r| r.spec.instance_ref == instance && r.namespace().as_deref() == Some(ns))
        .collect();
    v.sort_by_key(|r| (r.creation_timestamp().map(|t| t.0), r.name_any()));
    v
}

/// The task of a new message: the message alone, or the recent answered TUI turns within
/// the budget followed by the message.
pub fn task(earlier: &[&Arc<AgentRun>], text: &str) -> String {
    let answered = earlier.iter().rev().filter(|r| {
        r.labels().get(CONVERSATION).is_some_and(|c| c == TUI_CONVERSATION)
            && r.status.as_ref().and_then(|s| s.phase) == Some(AgentRunPhase::Succeeded)
    });
    let newest_first = answered.take(conversation::MAX_TURNS).filter_map(|r| {
        let message = r.annotations().get(MESSAGE)?;
        let answer = r.status.as_ref()?.result.as_deref()?;
        Some(conversation::exchange(message, answer))
    });
    conversation::task(newest_first, text, conversation::CHAT_HEADING, conversation::BUDGET_CHARS)
}

/// Set by the schedule controller on runs whose task it prefixed with the instance's memory.
const MEMORY_INJECTED_ENV: &str = "SYMPOZIUM_MEMORY_INJECTED";
/// Where the schedule's own task starts in a memory-prefixed task.
const TASK_HEADING: &str = "\n\n## Task\n";

/// What the user asked in `run`: the message as typed (chat and channel runs, and scheduled
/// runs, which record the schedule's task), else the task without the memory the schedule
/// controller put in front of it, else the task.
pub fn asked(run: &AgentRun) -> String {
    if let Some(m) = run.annotations().get(MESSAGE) {
        return m.clone();
    }
    let task = &run.spec.task;
    let injected =
        run.spec.env.as_ref().and_then(|e| e.get(MEMORY_INJECTED_ENV)).is_some_and(|v| v == "true");
    if injected
        && task.starts_with("## Memory Context\n")
        && let Some(i) = task.rfind(TASK_HEADING)
    {
        return task[i + TASK_HEADING.len()..].to_string();
    }
    task.clone()
}

/// One line pair of the chat feed: what was asked and the answer so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Turn {
    /// The message (or the task of runs not started from a chat).
    pub asked: String,
    /// The answer, `[error: …]`, or `[pending]`/`[running]`.
    pub answer: String,
    /// Whether the answer is final.
    pub done: bool,
}

/// The chat feed of an instance: every run, oldest first. Runs still answering show what
/// they streamed so far, or the tool call they wait to have approved.
pub fn feed(runs: &[&Arc<AgentRun>], data: &super::data::Data) -> Vec<Turn> {
    runs.iter()
        .map(|r| {
            let status = r.status.clone().unwrap_or_default();
            let asked = asked(r);
            let (answer, done) = match status.phase {
                Some(AgentRunPhase::Succeeded) => (status.result.unwrap_or_default(), true),
                Some(AgentRunPhase::Failed) => {
                    (format!("[error: {}]", status.error.unwrap_or_else(|| "no reason given".into())), true)
                }
                _ if data.approvals.iter().any(|a| a.run == r.name_any()) => {
                    let a = data.approvals.iter().find(|a| a.run == r.name_any());
                    (
                        format!(
                            "[waiting for approval: {}] (A to answer)",
                            a.map(|a| a.tool.as_str()).unwrap_or("")
                        ),
                        false,
                    )
                }
                _ if data.streams.contains_key(&r.name_any()) => {
                    (format!("{}▌", data.streams.get(&r.name_any()).map(String::as_str).unwrap_or("")), false)
                }
                Some(AgentRunPhase::Running | AgentRunPhase::PostRunning | AgentRunPhase::Serving) => {
                    ("[running]".into(), false)
                }
                Some(AgentRunPhase::Pending) | None => ("[pending]".into(), false),
            };
            Turn { asked, answer, done }
        })
        .collect()
}
