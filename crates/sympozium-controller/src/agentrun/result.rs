//! Reading an agent's outcome: the runner's result JSON, found either in the last lines of
//! the `agent` container log (between the result markers) or in an `agent.run.completed`
//! event from the bus.

use serde_json::Value;
use sympozium_api::agentrun::TokenUsage;
use sympozium_protocol::markers;

/// Largest `status.result` stored; longer answers are cut (the full text is in the
/// run's result.json / bus event), keeping AgentRun objects far below etcd's size limit.
pub const MAX_RESULT_BYTES: usize = 64 * 1024;

/// What an agent run produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The run succeeded.
    pub success: bool,
    /// The answer (success).
    pub result: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Token usage, when the model reported any.
    pub usage: Option<TokenUsage>,
    /// The new legacy MEMORY.md the agent wrote, if any.
    pub memory: Option<String>,
}

fn as_i64(v: &Value) -> i64 {
    v.as_i64().or_else(|| v.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX))).unwrap_or(0)
}

/// Cuts `text` to [`MAX_RESULT_BYTES`] on a character boundary, saying so.
pub fn truncate(text: &str) -> String {
    if text.len() <= MAX_RESULT_BYTES {
        return text.to_string();
    }
    let mut end = MAX_RESULT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n…(truncated: {} bytes in all)", &text[..end], text.len())
}

/// Interprets the runner's result JSON `{status, response, error, metrics}`.
pub fn from_result_json(v: &Value) -> Outcome {
    let m = &v["metrics"];
    let (input, output) = (as_i64(&m["inputTokens"]), as_i64(&m["outputTokens"]));
    let memory = v["memory"].as_str().map(str::trim).filter(|m| !m.is_empty()).map(String::from);
    if v["status"].as_str() == Some("error") {
        let error =
            v["error"].as_str().map(str::trim).filter(|e| !e.is_empty()).unwrap_or("agent run failed");
        return Outcome { success: false, result: None, error: Some(error.to_string()), usage: None, memory };
    }
    let usage = (input > 0 || output > 0).then(|| TokenUsage {
        input_tokens: input,
        output_tokens: output,
        total_tokens: input + output,
        tool_calls: as_i64(&m["toolCalls"]),
        duration_ms: as_i64(&m["durationMs"]),
    });
    Outcome {
        success: true,
        result: Some(truncate(v["response"].as_str().unwrap_or_default())),
        error: None,
        usage,
        memory,
    }
}

/// The last complete legacy memory block printed by the runner.
pub fn memory_block(logs: &str) -> Option<String> {
    markers::last_memory_block(logs).map(str::to_string)
}

const RATE_LIMIT_SIGNS: [&str; 9] = [
    "http 429",
    "status 429",
    "status code: 429",
    "(429)",
    " 429 ",
    "insufficient_quota",
    "quota",
    "rate limit",
    "too many requests",
];

/// Finds the outcome in the tail of an agent log: the last complete result marker, or,
/// failing that, a rate-limit symptom as the error.
pub fn from_logs(logs: &str) -> Option<Outcome> {
    if logs.contains(markers::RESULT_START) {
        let json = markers::last_result(logs)?.trim();
        let mut outcome = serde_json::from_str::<Value>(json).ok().map(|v| from_result_json(&v))?;
        if outcome.memory.is_none() {
            outcome.memory = memory_block(logs);
        }
        return Some(outcome);
    }
    logs.lines().rev().find_map(|line| {
        let lower = line.to_ascii_lowercase();
        RATE_LIMIT_SIGNS.iter().any(|s| lower.contains(s)).then(|| {
            let collapsed: String = line.split_whitespace().collect::<Vec<_>>().join(" ");
            Outcome {
                success: false,
                result: None,
                error: Some(collapsed.chars().take(500).collect()),
                usage: None,
                memory: None,
            }
        })
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn last_marker_wins_and_usage_is_summed() {
        let logs = "starting\n__SYMPOZIUM_RESULT__{\"status\":\"success\",\"response\":\"old\"}__SYMPOZIUM_END__\n\
            __SYMPOZIUM_RESULT__{\"status\":\"success\",\"response\":\"3 pods crashloop\",\
            \"metrics\":{\"durationMs\":1200,\"inputTokens\":100,\"outputTokens\":20,\"toolCalls\":2}}__SYMPOZIUM_END__\n";
        let o = from_logs(logs).unwrap();
        assert!(o.success);
        assert_eq!(o.result.as_deref(), Some("3 pods crashloop"));
        let u = o.usage.unwrap();
        assert_eq!(
            (u.input_tokens, u.output_tokens, u.total_tokens, u.tool_calls, u.duration_ms),
            (100, 20, 120, 2, 1200)
        );
    }

    #[test]
    fn errors_and_rate_limits() {
        let o =
            from_logs("__SYMPOZIUM_RESULT__{\"status\":\"error\",\"error\":\"\"}__SYMPOZIUM_END__").unwrap();
        assert_eq!(o.error.as_deref(), Some("agent run failed"));
        let o = from_logs("calling model\nerror:   HTTP 429   Too Many Requests\n").unwrap();
        assert_eq!(o.error.as_deref(), Some("error: HTTP 429 Too Many Requests"));
        assert_eq!(from_logs("__SYMPOZIUM_RESULT__{\"status\":\"success\""), None, "unterminated marker");
        assert_eq!(from_logs("all good\n"), None);
    }

    #[test]
    fn memory_travels_in_the_result_or_the_log() {
        let o =
            from_result_json(&serde_json::json!({"status": "success", "response": "ok", "memory": "- fact"}));
        assert_eq!(o.memory.as_deref(), Some("- fact"));
        let logs = "x\n__SYMPOZIUM_MEMORY__- a\n- b__SYMPOZIUM_MEMORY_END__\n\
            __SYMPOZIUM_RESULT__{\"status\":\"success\",\"response\":\"ok\"}__SYMPOZIUM_END__";
        assert_eq!(from_logs(logs).unwrap().memory.as_deref(), Some("- a\n- b"));
    }

    #[test]
    fn long_results_are_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_RESULT_BYTES);
        let cut = truncate(&long);
        assert!(cut.len() < long.len());
        assert!(cut.contains("truncated"));
    }
}
