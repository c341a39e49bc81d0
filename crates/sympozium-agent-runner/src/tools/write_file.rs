//! `write_file`: writes a file under `/workspace` or `/tmp`, creating parent directories.

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::{Tool, ToolOutput, required, str_arg};
use crate::llm::ToolSpec;
use crate::paths::{Access, Roots, write_no_follow};

/// The tool.
pub struct WriteFile {
    /// Directory roots.
    pub roots: Roots,
}

impl Tool for WriteFile {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "write_file".into(),
            description: "Write (create or overwrite) a file. Only under /workspace and /tmp.".into(),
            parameters: json!({"type": "object", "properties": {
                "path": {"type": "string", "description": "Absolute path of the file"},
                "content": {"type": "string", "description": "Full new content"}},
                "required": ["path", "content"]}),
        }
    }

    fn call(&self, args: Value) -> BoxFuture<'_, ToolOutput> {
        Box::pin(async move {
            let path = match required(&args, "path") {
                Ok(p) => p.to_string(),
                Err(e) => return e,
            };
            let Some(content) = str_arg(&args, "content") else {
                return ToolOutput::err("'content' is required");
            };
            let real = match self.roots.resolve(&path, Access::Write) {
                Ok(p) => p,
                Err(e) => return ToolOutput::err(e.to_string()),
            };
            if let Some(parent) = real.parent()
                && let Err(e) = tokio::fs::create_dir_all(parent).await
            {
                return ToolOutput::err(format!("creating directories for {path}: {e}"));
            }
            let bytes = content.as_bytes().to_vec();
            let written = tokio::task::spawn_blocking(move || write_no_follow(&real, &bytes)).await;
            match written.unwrap_or_else(|e| Err(std::io::Error::other(e))) {
                Ok(()) => ToolOutput::Ok(format!("Successfully wrote {} bytes to {path}", content.len())),
                Err(e) => ToolOutput::err(format!("writing {path}: {e}")),
            }
        })
    }
}
