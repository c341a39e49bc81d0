//! The tools offered to the model, the tool policy applied to them, and uniform error
//! signalling: every failure is a [`ToolOutput::Err`] whose text starts with `Error:`, so the
//! circuit breaker and the providers' `is_error` flags see all failures alike.

mod edit_file;
mod execute_command;
mod fetch_url;
mod html;
mod list_directory;
mod mcp;
mod memory;
mod read_file;
mod schedule_task;
mod send_channel_message;
mod spawn_subagent;
mod ssrf;
mod write_file;

use futures_util::future::BoxFuture;
use serde_json::Value;

pub use edit_file::EditFile;
pub use execute_command::ExecuteCommand;
pub use fetch_url::FetchUrl;
pub use list_directory::ListDirectory;
pub use mcp::{McpTool, load_mcp_tools};
pub use memory::{MemoryClient, format_entry as format_entry_public, memory_tools};
pub use read_file::ReadFile;
pub use schedule_task::ScheduleTask;
pub use send_channel_message::SendChannelMessage;
pub use spawn_subagent::SpawnSubagent;
pub use ssrf::{SsrfError, check_ip};
pub use write_file::WriteFile;

use crate::approval::Approver;
use crate::llm::{ToolCall, ToolResult, ToolSpec};
use crate::policy::{Action, ToolPolicy};

/// Longest tool result handed back to the model.
pub const MAX_RESULT_CHARS: usize = 8000;

/// A tool's result.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolOutput {
    /// Success text.
    Ok(String),
    /// Failure text (without the `Error: ` prefix, which [`ToolOutput::text`] adds).
    Err(String),
}

impl ToolOutput {
    /// Builds an error.
    pub fn err(message: impl Into<String>) -> Self {
        Self::Err(message.into())
    }

    /// The text the model sees.
    pub fn text(&self) -> String {
        match self {
            Self::Ok(t) => t.clone(),
            Self::Err(e) if e.starts_with("Error:") => e.clone(),
            Self::Err(e) => format!("Error: {e}"),
        }
    }
}

/// One tool.
pub trait Tool: Send + Sync {
    /// Its function definition.
    fn spec(&self) -> ToolSpec;
    /// Runs it with parsed arguments.
    fn call(&self, args: Value) -> BoxFuture<'_, ToolOutput>;
    /// Whether the model is offered it (a stand-in for an unreachable MCP server's tools is
    /// not, but still answers calls to them).
    fn offered(&self) -> bool {
        true
    }
    /// Runs a call that arrived under `name` (differs from the spec's name only for tools
    /// that [`Tool::handles`] several names).
    fn call_as<'a>(&'a self, name: &'a str, args: Value) -> BoxFuture<'a, ToolOutput> {
        let _ = name;
        self.call(args)
    }
    /// Whether a call named `name` goes to this tool.
    fn handles(&self, name: &str) -> bool {
        self.spec().name == name
    }
}

/// Reads a string argument.
pub(crate) fn str_arg<'a>(args: &'a Value, key: &str) -> Option<&'a str> {
    args.get(key).and_then(Value::as_str)
}

/// Reads a required, non-empty string argument.
pub(crate) fn required<'a>(args: &'a Value, key: &str) -> Result<&'a str, ToolOutput> {
    match str_arg(args, key) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ToolOutput::err(format!("'{key}' is required"))),
    }
}

/// The `path` argument and the real path it resolves to for `access`, or the tool's error.
pub(crate) fn path_arg(
    roots: &crate::paths::Roots,
    args: &Value,
    access: crate::paths::Access,
) -> Result<(String, std::path::PathBuf), ToolOutput> {
    let path = required(args, "path")?.to_string();
    let real = roots.resolve(&path, access).map_err(|e| ToolOutput::err(e.to_string()))?;
    Ok((path, real))
}

/// The tools of a run, filtered and gated by the policy.
pub struct Toolbox {
    tools: Vec<Box<dyn Tool>>,
    policy: ToolPolicy,
    approver: Option<Approver>,
}

impl Toolbox {
    /// Wraps `tools`.
    pub fn new(tools: Vec<Box<dyn Tool>>, policy: ToolPolicy, approver: Option<Approver>) -> Self {
        Self { tools, policy, approver }
    }

    /// The specs offered to the model: every tool the policy does not deny.
    pub fn offered(&self) -> Vec<ToolSpec> {
        self.tools
            .iter()
            .filter(|t| t.offered())
            .map(|t| t.spec())
            .filter(|s| self.policy.action(&s.name) != Action::Deny)
            .collect()
    }

    /// Runs one call, applying the policy.
    pub async fn execute(&self, call: &ToolCall) -> ToolResult {
        let output = self.dispatch(call).await;
        let is_error = matches!(output, ToolOutput::Err(_));
        ToolResult { call_id: call.id.clone(), name: call.name.clone(), content: output.text(), is_error }
    }

    async fn dispatch(&self, call: &ToolCall) -> ToolOutput {
        // Exact names first: a stand-in for an unreachable server only takes what no real tool does.
        let tool = self.tools.iter().find(|t| t.offered() && t.handles(&call.name));
        let Some(tool) = tool.or_else(|| self.tools.iter().find(|t| t.handles(&call.name))) else {
            return ToolOutput::err(format!("Unknown tool: {}", call.name));
        };
        let raw = if call.arguments.trim().is_empty() { "{}" } else { call.arguments.as_str() };
        let args: Value = match serde_json::from_str(raw) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return ToolOutput::err("Error parsing tool arguments: expected a JSON object"),
            Err(e) => return ToolOutput::err(format!("Error parsing tool arguments: {e}")),
        };
        match self.policy.action(&call.name) {
            Action::Allow => {}
            Action::Deny => {
                return ToolOutput::err(format!(
                    "tool {} is not permitted by this agent's tool policy",
                    call.name
                ));
            }
            Action::Ask => {
                let verdict = match &self.approver {
                    Some(approver) => approver.request(&call.name, &args).await,
                    None => Err(crate::approval::ApprovalError::NotConfigured),
                };
                if let Err(reason) = verdict {
                    return ToolOutput::err(format!("tool {} was not approved: {reason}", call.name));
                }
            }
        }
        tool.call_as(&call.name, args).await
    }
}
