//! Conversation continuity: how a new message's task carries the earlier turns of its
//! conversation. The channel router, the TUI chat and the OpenAI-compatible web proxy all
//! build the task here, so an agent reads one format however it was reached, and a change
//! to the budget or the headings reaches every path at once.

/// Most characters of earlier turns put in front of a new message (≈ 4k tokens).
pub const BUDGET_CHARS: usize = 16_000;
/// Most earlier exchanges a chat carries over.
pub const MAX_TURNS: usize = 10;
/// Heading of the earlier turns of a chat (channel or TUI).
pub const CHAT_HEADING: &str = "## Conversation so far (earlier messages in this chat and your answers)";
/// Heading of the earlier turns an API client sent with its request.
pub const HEADING: &str = "## Conversation so far";
/// Heading of the new message, after the earlier turns.
pub const NEW_MESSAGE: &str = "## New message";

/// A user's message and the agent's answer, as one entry of the history.
pub fn exchange(message: &str, answer: &str) -> String {
    format!("User: {message}\nAssistant: {answer}\n")
}

/// One line of the history said by `speaker` (`User`, `Assistant`, `Tool`).
pub fn line(speaker: &str, text: &str) -> String {
    format!("{speaker}: {text}\n")
}

/// The task of a new message: `text` alone when no earlier entry fits; otherwise, under
/// `heading`, the most recent entries (given newest first) whose total length stays within
/// `budget` characters, oldest first, then the new message.
pub fn task(
    newest_first: impl IntoIterator<Item = String>,
    text: &str,
    heading: &str,
    budget: usize,
) -> String {
    let mut kept = Vec::new();
    let mut used = 0;
    for entry in newest_first {
        used += entry.chars().count();
        if used > budget {
            break;
        }
        kept.push(entry);
    }
    if kept.is_empty() {
        return text.to_string();
    }
    kept.reverse();
    format!("{heading}\n{}\n{NEW_MESSAGE}\n{text}", kept.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_history_is_the_message_as_written() {
        assert_eq!(task(Vec::new(), "hello", CHAT_HEADING, BUDGET_CHARS), "hello");
    }

    #[test]
    fn entries_come_oldest_first_under_the_heading() {
        let newest_first = vec![exchange("and now?", "Still 3."), exchange("how many pods?", "3 pods.")];
        assert_eq!(
            task(newest_first, "scale to 5", HEADING, BUDGET_CHARS),
            "## Conversation so far\nUser: how many pods?\nAssistant: 3 pods.\nUser: and now?\nAssistant: Still 3.\n\n## New message\nscale to 5"
        );
    }

    #[test]
    fn the_budget_keeps_the_newest_entries_and_counts_characters() {
        let newest_first = vec![line("User", "new"), line("User", &"é".repeat(30)), line("User", "old")];
        // "User: new\n" is 10 characters, the second entry 37: a budget of 47 keeps both.
        let t = task(newest_first.clone(), "m", HEADING, 47);
        assert!(t.contains("User: new") && t.contains("éé") && !t.contains("old"), "{t}");
        let t = task(newest_first, "m", HEADING, 46);
        assert!(t.contains("User: new") && !t.contains("éé"), "{t}");
    }
}
