//! Turns an MCP tool result into what the runner reads from `mcp-result-<id>.json`: text
//! blocks (non-text blocks described in words), structured content, and a size limit with a
//! note saying what was cut.

use rmcp::model::CallToolResult;
use serde_json::{Value, json};

/// The text of every block, in order; images, audio and resources the model cannot read
/// as text are described instead of dropped silently.
pub fn texts(result: &CallToolResult) -> Vec<String> {
    result
        .content
        .iter()
        .filter_map(|block| serde_json::to_value(block).ok())
        .map(|block| describe(&block))
        .filter(|t| !t.is_empty())
        .collect()
}

fn describe(block: &Value) -> String {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    match block.get("type").and_then(Value::as_str).unwrap_or_default() {
        "text" => s(block, "text"),
        kind @ ("image" | "audio") => {
            let bytes = block.get("data").and_then(Value::as_str).map_or(0, |d| d.len() * 3 / 4);
            format!("[{kind} {}, about {bytes} bytes, not shown]", s(block, "mimeType"))
        }
        "resource" => {
            let r = block.get("resource").cloned().unwrap_or(Value::Null);
            match r.get("text").and_then(Value::as_str) {
                Some(t) => t.to_string(),
                None => format!("[binary resource {}]", s(&r, "uri")),
            }
        }
        "resource_link" => {
            format!("[resource {} {}]", s(block, "uri"), s(block, "name")).trim_end().to_string()
        }
        other => format!("[{other} content]"),
    }
}

/// Cuts `text` to `max` characters (UTF-8 safe), saying how much was left out.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((end, _)) => {
            let total = text.chars().count();
            format!(
                "{}\n[result truncated by the MCP bridge: {max} of {total} characters shown]",
                &text[..end]
            )
        }
    }
}

/// The result file body for a call `id` that reached the server.
pub fn result_file(id: &str, result: &CallToolResult, max_chars: usize) -> Value {
    let mut text = texts(result).join("\n");
    let structured = result.structured_content.clone();
    if text.is_empty()
        && let Some(v) = &structured
    {
        text = v.to_string();
    }
    let text = truncate(&text, max_chars);
    let is_error = result.is_error.unwrap_or(false);
    let mut out = json!({"id": id, "success": !is_error, "content": [{"type": "text", "text": text}]});
    if is_error {
        out["isError"] = json!(true);
        out["error"] = json!(text);
    }
    if let Some(v) = structured {
        let rendered = v.to_string();
        // Structured content rides along whole only when small; the text already carries it.
        if rendered.chars().count() <= max_chars {
            out["structuredContent"] = v;
        }
    }
    out
}

/// The result file body for a call that failed before or instead of a result.
pub fn error_file(id: &str, error: &str) -> Value {
    json!({"id": id, "success": false, "isError": true, "error": error,
        "content": [{"type": "text", "text": error}]})
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn large_results_are_cut_with_a_note_and_structured_only_results_become_text() {
        let r: CallToolResult =
            serde_json::from_value(json!({"content": [{"type": "text", "text": "é".repeat(50)}]})).unwrap();
        let f = result_file("1", &r, 10);
        let text = f["content"][0]["text"].as_str().unwrap();
        assert!(text.starts_with(&"é".repeat(10)) && text.ends_with("10 of 50 characters shown]"), "{text}");
        let r: CallToolResult =
            serde_json::from_value(json!({"content": [], "structuredContent": {"n": 3}})).unwrap();
        let f = result_file("2", &r, 100);
        assert_eq!(f["content"][0]["text"], "{\"n\":3}");
        assert_eq!(f["structuredContent"], json!({"n": 3}));
        let r: CallToolResult = serde_json::from_value(json!({"isError": true,
            "content": [{"type": "text", "text": "no such repo"}, {"type": "image", "data": "AAAA", "mimeType": "image/png"}]}))
        .unwrap();
        let f = result_file("3", &r, 100);
        assert_eq!(f["success"], false);
        assert_eq!(f["error"], "no such repo\n[image image/png, about 3 bytes, not shown]");
    }
}
