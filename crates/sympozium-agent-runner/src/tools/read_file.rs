//! `read_file`: reads a file under `/workspace`, `/skills`, `/tmp` or `/ipc`.

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::{MAX_RESULT_CHARS, Tool, ToolOutput, path_arg};
use crate::llm::ToolSpec;
use crate::paths::{Access, Roots};

/// The tool.
pub struct ReadFile {
    /// Directory roots.
    pub roots: Roots,
}

impl Tool for ReadFile {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "read_file".into(),
            description: "Read a text file. Allowed under /workspace, /skills, /tmp and /ipc.".into(),
            parameters: json!({"type": "object", "properties": {
                "path": {"type": "string", "description": "Absolute path of the file"}},
                "required": ["path"]}),
        }
    }

    fn call(&self, args: Value) -> BoxFuture<'_, ToolOutput> {
        Box::pin(async move {
            let (path, real) = match path_arg(&self.roots, &args, Access::Read) {
                Ok(p) => p,
                Err(e) => return e,
            };
            match tokio::fs::read(&real).await {
                Ok(bytes) => {
                    let text = String::from_utf8_lossy(&bytes);
                    match text.char_indices().nth(MAX_RESULT_CHARS) {
                        None => ToolOutput::Ok(text.into_owned()),
                        Some((end, _)) => ToolOutput::Ok(format!(
                            "{}\n... (truncated, file is {} bytes)",
                            &text[..end],
                            bytes.len()
                        )),
                    }
                }
                Err(e) => ToolOutput::err(format!("reading {path}: {e}")),
            }
        })
    }
}
