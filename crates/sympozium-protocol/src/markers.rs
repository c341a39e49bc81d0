//! Markers the agent runner prints on stdout and the controller (and `sympozium logs`)
//! look for in the `agent` container's log: the result JSON, and the legacy `MEMORY.md`
//! block, each between a start and an end marker.

/// Starts the result JSON on stdout.
pub const RESULT_START: &str = "__SYMPOZIUM_RESULT__";
/// Ends the result JSON on stdout.
pub const RESULT_END: &str = "__SYMPOZIUM_END__";
/// Starts a legacy memory block.
pub const MEMORY_START: &str = "__SYMPOZIUM_MEMORY__";
/// Ends a legacy memory block.
pub const MEMORY_END: &str = "__SYMPOZIUM_MEMORY_END__";

/// The result line the runner prints: the JSON between the result markers.
pub fn result_line(json: &str) -> String {
    format!("{RESULT_START}{json}{RESULT_END}")
}

/// The JSON of the last complete result marker pair in a log, if any. Earlier pairs are
/// from earlier attempts of the same container.
pub fn last_result(logs: &str) -> Option<&str> {
    let start = logs.rfind(RESULT_START)? + RESULT_START.len();
    let rest = &logs[start..];
    Some(&rest[..rest.find(RESULT_END)?])
}

/// The text of the last complete, non-empty memory block in a log, trimmed.
pub fn last_memory_block(logs: &str) -> Option<&str> {
    let start = logs.rfind(MEMORY_START)? + MEMORY_START.len();
    let rest = &logs[start..];
    let block = rest[..rest.find(MEMORY_END)?].trim();
    (!block.is_empty()).then_some(block)
}

/// Whether a log line carries the result (so a progress view skips it).
pub fn is_result_line(line: &str) -> bool {
    line.contains(RESULT_START)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_complete_result_wins() {
        let logs = format!("start\n{}\n{}\n", result_line(r#"{"a":1}"#), result_line(r#"{"a":2}"#));
        assert_eq!(last_result(&logs), Some(r#"{"a":2}"#));
        assert_eq!(last_result(&format!("{RESULT_START}{{\"a\":1")), None, "unterminated");
        assert_eq!(last_result("no markers"), None);
        assert!(is_result_line(&result_line("{}")));
    }

    #[test]
    fn memory_blocks() {
        let logs = format!("{MEMORY_START}- a{MEMORY_END}\n{MEMORY_START}\n- b\n{MEMORY_END}");
        assert_eq!(last_memory_block(&logs), Some("- b"));
        assert_eq!(last_memory_block(&format!("{MEMORY_START}  {MEMORY_END}")), None);
    }
}
