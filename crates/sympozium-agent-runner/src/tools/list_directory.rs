//! `list_directory`: one line per entry, `kind size name`. Restricted to the readable roots
//! (the original listed any path; a pod's root filesystem is none of the model's business).

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::{Tool, ToolOutput, path_arg};
use crate::llm::ToolSpec;
use crate::paths::{Access, Roots};

/// The tool.
pub struct ListDirectory {
    /// Directory roots.
    pub roots: Roots,
}

impl Tool for ListDirectory {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "list_directory".into(),
            description: "List a directory under /workspace, /skills, /tmp or /ipc.".into(),
            parameters: json!({"type": "object", "properties": {
                "path": {"type": "string", "description": "Absolute path of the directory"}},
                "required": ["path"]}),
        }
    }

    fn call(&self, args: Value) -> BoxFuture<'_, ToolOutput> {
        Box::pin(async move {
            let (path, real) = match path_arg(&self.roots, &args, Access::Read) {
                Ok(p) => p,
                Err(e) => return e,
            };
            let mut dir = match tokio::fs::read_dir(&real).await {
                Ok(d) => d,
                Err(e) => return ToolOutput::err(format!("listing {path}: {e}")),
            };
            let mut entries = Vec::new();
            while let Ok(Some(entry)) = dir.next_entry().await {
                let Ok(meta) = entry.metadata().await else { continue };
                let kind = if meta.is_dir() { "dir" } else { "file" };
                entries.push((entry.file_name().to_string_lossy().into_owned(), kind, meta.len()));
            }
            entries.sort();
            let lines: Vec<String> =
                entries.iter().map(|(name, kind, size)| format!("{kind:<6} {size:>8}  {name}")).collect();
            if lines.is_empty() {
                return ToolOutput::Ok("(empty directory)".into());
            }
            ToolOutput::Ok(lines.join("\n"))
        })
    }
}
