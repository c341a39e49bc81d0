//! `spawn_subagent`: asks the platform to start a child run by writing
//! `<ipc>/spawn/spawn-<id>.json`:
//!
//! ```json
//! {"id": "<id>", "task": "...", "systemPrompt"?: "...", "parentRunId": "<run>",
//!  "instanceName": "<inst>", "namespace": "<ns>", "wait": true}
//! ```
//!
//! With `wait`, the tool polls `<ipc>/input/spawn-result-<id>.json`
//! (`{"id", "status": "success"|"error", "response"?, "error"?}`, written by the IPC bridge
//! when the child finishes) until `timeout` seconds pass.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::{MAX_RESULT_CHARS, Tool, ToolOutput, required, str_arg};
use crate::llm::ToolSpec;
use crate::util::{truncate_chars, unix_nanos, write_json_atomic};
use sympozium_protocol::ipc;

const POLL: Duration = Duration::from_millis(500);

/// The tool.
pub struct SpawnSubagent {
    /// `<ipc>` root.
    pub ipc: PathBuf,
    /// This run's id.
    pub parent_run_id: String,
    /// Instance.
    pub instance_name: String,
    /// Namespace.
    pub namespace: String,
}

impl SpawnSubagent {
    async fn run(&self, args: Value) -> ToolOutput {
        let task = match required(&args, "task") {
            Ok(t) => t,
            Err(e) => return e,
        };
        let wait = args.get("wait").and_then(Value::as_bool).unwrap_or(false);
        let timeout = args.get("timeout").and_then(Value::as_u64).unwrap_or(300).clamp(1, 1800);
        let id = unix_nanos().to_string();
        let mut request = json!({"id": id, "task": task, "parentRunId": self.parent_run_id,
            "instanceName": self.instance_name, "namespace": self.namespace, "wait": wait});
        if let Some(prompt) = str_arg(&args, "systemPrompt").filter(|p| !p.is_empty()) {
            request["systemPrompt"] = json!(prompt);
        }
        let path = self.ipc.join(ipc::SPAWN).join(ipc::spawn_request(&id));
        if let Err(e) = write_json_atomic(&path, &request, false) {
            return ToolOutput::err(format!("writing spawn request: {e}"));
        }
        if !wait {
            return ToolOutput::Ok(format!("Sub-agent requested (id {id}); it runs independently."));
        }
        let result = self.ipc.join(ipc::INPUT).join(ipc::spawn_result(&id));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
        while tokio::time::Instant::now() < deadline {
            if let Ok(bytes) = tokio::fs::read(&result).await
                && let Ok(value) = serde_json::from_slice::<Value>(&bytes)
            {
                let text = |k: &str| value.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                return if text("status") == "success" {
                    ToolOutput::Ok(truncate_chars(&text("response"), MAX_RESULT_CHARS))
                } else {
                    ToolOutput::err(format!("sub-agent failed: {}", text("error")))
                };
            }
            tokio::time::sleep(POLL).await;
        }
        ToolOutput::err(format!("sub-agent {id} did not finish within {timeout}s"))
    }
}

impl Tool for SpawnSubagent {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "spawn_subagent".into(),
            description: "Delegate a task to a sub-agent. With wait=true, block until it answers.".into(),
            parameters: json!({"type": "object", "properties": {
                "task": {"type": "string"},
                "systemPrompt": {"type": "string"},
                "wait": {"type": "boolean", "description": "Wait for the sub-agent's answer"},
                "timeout": {"type": "integer", "description": "Seconds to wait (default 300)"}},
                "required": ["task"]}),
        }
    }

    fn call(&self, args: Value) -> BoxFuture<'_, ToolOutput> {
        Box::pin(self.run(args))
    }
}
