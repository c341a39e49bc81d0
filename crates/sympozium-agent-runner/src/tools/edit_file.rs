//! `edit_file`: replaces one exact occurrence of `old_text` with `new_text` (under
//! `/workspace` or `/tmp`). Refuses ambiguous edits instead of guessing.

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::{Tool, ToolOutput, required, str_arg};
use crate::llm::ToolSpec;
use crate::paths::{Access, Roots, write_no_follow};

/// The tool.
pub struct EditFile {
    /// Directory roots.
    pub roots: Roots,
}

impl Tool for EditFile {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "edit_file".into(),
            description: "Replace an exact, unique piece of text in a file under /workspace or /tmp. \
                          Set replace_all to replace every occurrence."
                .into(),
            parameters: json!({"type": "object", "properties": {
                "path": {"type": "string"},
                "old_text": {"type": "string", "description": "Exact text to find"},
                "new_text": {"type": "string", "description": "Replacement"},
                "replace_all": {"type": "boolean"}},
                "required": ["path", "old_text", "new_text"]}),
        }
    }

    fn call(&self, args: Value) -> BoxFuture<'_, ToolOutput> {
        Box::pin(async move {
            let path = match required(&args, "path") {
                Ok(p) => p.to_string(),
                Err(e) => return e,
            };
            let old = match required(&args, "old_text") {
                Ok(p) => p,
                Err(e) => return e,
            };
            let Some(new) = str_arg(&args, "new_text") else {
                return ToolOutput::err("'new_text' is required");
            };
            let all = args.get("replace_all").and_then(Value::as_bool).unwrap_or(false);
            let real = match self.roots.resolve(&path, Access::Write) {
                Ok(p) => p,
                Err(e) => return ToolOutput::err(e.to_string()),
            };
            let text = match tokio::fs::read_to_string(&real).await {
                Ok(t) => t,
                Err(e) => return ToolOutput::err(format!("reading {path}: {e}")),
            };
            let count = text.matches(old).count();
            if count == 0 {
                return ToolOutput::err(format!("old_text not found in {path}"));
            }
            if count > 1 && !all {
                return ToolOutput::err(format!(
                    "old_text occurs {count} times in {path}; include more context or set replace_all"
                ));
            }
            let updated = if all { text.replace(old, new) } else { text.replacen(old, new, 1) };
            let written =
                tokio::task::spawn_blocking(move || write_no_follow(&real, updated.as_bytes())).await;
            match written.unwrap_or_else(|e| Err(std::io::Error::other(e))) {
                Ok(()) => ToolOutput::Ok(format!("Replaced {count} occurrence(s) in {path}")),
                Err(e) => ToolOutput::err(format!("writing {path}: {e}")),
            }
        })
    }
}
