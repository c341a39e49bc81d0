//! System prompt assembly, in the original runner's order: base, skills, tool usage, channel
//! context, MCP tools, memory.

use std::collections::BTreeMap;
use std::path::Path;

/// Used when `SYSTEM_PROMPT` is empty.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful AI assistant running as an agent on Kubernetes. Complete the task accurately and concisely.";

/// The placeholder the instance controller writes into a fresh `MEMORY.md`.
pub const MEMORY_PLACEHOLDER: &str = "# Agent Memory\n\nNo memories recorded yet.";

pub use sympozium_protocol::markers::{MEMORY_END, MEMORY_START};

/// Which memory mechanism the prompt describes.
pub enum MemoryMode {
    /// No memory.
    None,
    /// Legacy ConfigMap memory: ask for a marker block.
    Legacy,
    /// Memory server, with auto-retrieved context when the search found any.
    Server {
        /// Formatted context, already cut to size.
        context: Option<String>,
    },
}

/// Everything the prompt depends on.
pub struct PromptInputs<'a> {
    /// `SYSTEM_PROMPT`.
    pub base: &'a str,
    /// Concatenated skill files (empty = none).
    pub skills: String,
    /// Tools enabled at all.
    pub tools_enabled: bool,
    /// Names of the tools actually offered (after policy).
    pub offered: &'a [String],
    /// Sidecars that run commands.
    pub sidecars: &'a [String],
    /// Whether commands run in the pod's sandbox container by default.
    pub sandbox: bool,
    /// What the run may do in Kubernetes, when the controller told us.
    pub permissions: Option<&'a str>,
    /// `SOURCE_CHANNEL`.
    pub source_channel: &'a str,
    /// `SOURCE_CHAT_ID`.
    pub source_chat_id: &'a str,
    /// Offered MCP tool names.
    pub mcp_tools: &'a [String],
    /// Memory.
    pub memory: MemoryMode,
}

/// Reads the skill instructions: every non-empty, non-hidden regular file, sorted by name,
/// separated by `---` rules. (ConfigMap volumes expose keys as symlinks into `..data`; those
/// are followed, the dot-directories themselves are skipped.)
pub fn load_skills(dir: &Path) -> String {
    let Ok(entries) = std::fs::read_dir(dir) else { return String::new() };
    let mut files: Vec<(String, String)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !std::fs::metadata(e.path()).ok()?.is_file() {
                return None;
            }
            let text = std::fs::read_to_string(e.path()).ok()?;
            let text = text.trim().to_string();
            (!text.is_empty()).then_some((name, text))
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join("\n\n---\n\n")
}

/// Builds the system prompt.
pub fn build(inputs: &PromptInputs<'_>) -> String {
    let has = |tool: &str| inputs.offered.iter().any(|t| t == tool);
    let mut out = if inputs.base.trim().is_empty() {
        DEFAULT_SYSTEM_PROMPT.to_string()
    } else {
        inputs.base.to_string()
    };
    if !inputs.skills.is_empty() {
        out.push_str("\n\n## Your Skills\n\nThe following skill instructions are loaded. Follow them whenever they are relevant to the task.\n\n");
        out.push_str(&inputs.skills);
    }
    if inputs.tools_enabled && !inputs.offered.is_empty() {
        out.push_str("\n\n## Tool Usage\n\n");
        if has("execute_command") && inputs.sandbox {
            out.push_str(
                "Run shell commands with `execute_command`. Commands run in this run's sandbox container: \
                 an isolated, locked-down environment sharing /workspace with you, with no cluster \
                 credentials and limited CPU and memory.",
            );
            if !inputs.sidecars.is_empty() {
                out.push_str(&format!(
                    " To run a command in a skill sidecar instead ({}), name it with `skill`; sidecars \
                     hold exactly the permissions their skills grant.",
                    inputs.sidecars.join(", ")
                ));
            }
            out.push('\n');
        } else if has("execute_command") {
            out.push_str(&format!(
                "Run shell commands with `execute_command`. Commands run in a skill sidecar ({}) that has \
                 kubectl and common CLI tools. The pod runs inside the cluster with a service account that \
                 has exactly the permissions the loaded skills grant (often read-only, often limited to this \
                 namespace); a `forbidden` error means this run is not permitted to do that, not that \
                 something is broken. Do not try to configure a kubeconfig: in-cluster credentials are \
                 already set up, and `kubectl config current-context` failing is expected.\n",
                inputs.sidecars.join(", ")
            ));
        }
        if has("execute_command")
            && !inputs.sidecars.is_empty()
            && let Some(permissions) = inputs.permissions
        {
            out.push_str(permissions);
            out.push('\n');
        }
        out.push_str(
            "Prefer gathering real data with your tools over guessing, and summarise what you found \
             rather than pasting raw output.\n",
        );
        if has("fetch_url") {
            out.push_str("\n### fetch_url\nFetches public web pages and APIs (HTML is converted to text). Internal and private network addresses are refused.\n");
        }
        if has("write_file") || has("edit_file") {
            out.push_str("\n### write_file / edit_file\nFiles can only be written under /workspace and /tmp. Use edit_file for exact, unique replacements in existing files.\n");
        }
        if has("send_channel_message") {
            out.push_str("\n### send_channel_message\nSends a message via a connected channel. chatId formats: WhatsApp — international number without `+`; Telegram — numeric chat id; Discord and Slack — channel id. Leave chatId empty to message the owner.\n");
        }
    }
    if !inputs.source_channel.is_empty() {
        out.push_str(&format!(
            "\n\n## Channel Context\n\nThis task arrived via the {} channel (chat id: {}). You can reply there with `send_channel_message` using channel \"{}\" and chatId \"{}\".",
            inputs.source_channel, inputs.source_chat_id, inputs.source_channel, inputs.source_chat_id
        ));
    }
    if !inputs.mcp_tools.is_empty() {
        let mut by_prefix: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for name in inputs.mcp_tools {
            let prefix = name.split('_').next().unwrap_or(name);
            by_prefix.entry(prefix).or_default().push(name);
        }
        out.push_str(&format!(
            "\n\n## Specialized MCP Tools\n\nYou have {} MCP tools. Prefer them over `execute_command` for the systems they cover.\n\
             Methodology: be targeted (query what the task needs), read each result before the next call, \
             for gRPC services use the service's own MCP tools rather than hand-written calls, and fall back to \
             `execute_command` only when no MCP tool fits.\n",
            inputs.mcp_tools.len()
        ));
        for (prefix, tools) in by_prefix {
            out.push_str(&format!("- {prefix}: {}\n", tools.join(", ")));
        }
    }
    match &inputs.memory {
        MemoryMode::None => {}
        MemoryMode::Server { context } => {
            out.push_str("\n\n## Persistent Memory\n\n");
            match context {
                Some(context) => {
                    out.push_str("### Relevant Past Context (auto-retrieved)\n\n");
                    out.push_str(context);
                    out.push_str("\n\nUse `memory_search` if you need more past context.\n");
                }
                None => out.push_str("Call `memory_search` first to look for relevant past findings.\n"),
            }
            out.push_str("At the end, store specific, reusable findings with `memory_store`.");
        }
        MemoryMode::Legacy => out.push_str(&format!(
            "\n\n## Memory\n\nIf you learned something worth remembering for future tasks, end your answer with the \
             complete updated memory file between the markers:\n{MEMORY_START}\n<full new MEMORY.md>\n{MEMORY_END}"
        )),
    }
    out
}

/// Legacy memory: the task with the memory prepended. A scheduled run whose task already
/// carries the memory (`## Memory Context`, injected by `includeMemory`) is left alone, so the
/// model does not get it twice.
pub fn prepend_legacy_memory(task: &str, memory: &str) -> String {
    let memory = memory.trim();
    if memory.is_empty() || memory == MEMORY_PLACEHOLDER.trim() || task.starts_with("## Memory Context\n") {
        return task.to_string();
    }
    format!("## Your Memory\n{memory}\n\n## Current Task\n{task}")
}

/// Extracts the last memory block and strips all blocks from `response`.
/// Returns `(memory content, cleaned response)`.
pub fn extract_memory(response: &str, keep_markers: bool) -> (Option<String>, String) {
    let memory = response.rfind(MEMORY_START).map(|start| {
        let after = &response[start + MEMORY_START.len()..];
        after.find(MEMORY_END).map_or(after, |end| &after[..end]).trim().to_string()
    });
    if keep_markers {
        return (memory, response.to_string());
    }
    let mut cleaned = String::new();
    let mut rest = response;
    while let Some(start) = rest.find(MEMORY_START) {
        cleaned.push_str(&rest[..start]);
        let after = &rest[start..];
        rest = after.find(MEMORY_END).map_or("", |end| &after[end + MEMORY_END.len()..]);
    }
    cleaned.push_str(rest);
    (memory.filter(|m| !m.is_empty()), cleaned.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_memory_is_prepended_once() {
        assert_eq!(prepend_legacy_memory("t", "m"), "## Your Memory\nm\n\n## Current Task\nt");
        assert_eq!(prepend_legacy_memory("t", MEMORY_PLACEHOLDER), "t");
        let scheduled = "## Memory Context\nm\n\n## Task\nt";
        assert_eq!(prepend_legacy_memory(scheduled, "m"), scheduled);
    }

    #[test]
    fn memory_blocks_are_extracted_and_stripped() {
        let r = "Answer.\n__SYMPOZIUM_MEMORY__\nold\n__SYMPOZIUM_MEMORY_END__\nMore.\n__SYMPOZIUM_MEMORY__\nnew facts\n__SYMPOZIUM_MEMORY_END__";
        let (m, clean) = extract_memory(r, false);
        assert_eq!(m.as_deref(), Some("new facts"));
        assert_eq!(clean, "Answer.\n\nMore.");
        let (m, clean) = extract_memory("x __SYMPOZIUM_MEMORY__ unclosed", false);
        assert_eq!(m.as_deref(), Some("unclosed"));
        assert_eq!(clean, "x");
    }
}
