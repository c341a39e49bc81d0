//! `execute_command`: runs a shell command in a skill sidecar or in the pod's `sandbox`
//! container through the IPC file protocol (request file, `.claim-<id>`, result file). The request goes to
//! `<ipc>/tools/exec-request-<id>.json` — or, when several sidecars exist and the model names
//! one with `skill`, to `<ipc>/tools/<skill>/` so exactly that sidecar runs it. With a
//! sandbox, every command goes to a named directory: `<ipc>/tools/sandbox/` unless the model
//! names a skill sidecar, so no command can land in a container it was not meant for. The
//! agent container itself never runs a command; the tool is only offered when a sandbox or
//! at least one sidecar exists.
//!
//! Sidecars claim a request by creating `.claim-<id>`. When no claim appears within
//! `pickup_timeout` the call fails fast instead of waiting out the full command timeout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{MAX_RESULT_CHARS, Tool, ToolOutput, required, str_arg};
use crate::llm::ToolSpec;
use crate::util::{truncate_chars, unix_nanos, write_json_atomic};
use sympozium_protocol::ipc;

const POLL: Duration = Duration::from_millis(150);
/// Grace on top of the command's own timeout for the sidecar to notice and report.
const GRACE: Duration = Duration::from_secs(10);

/// The tool.
pub struct ExecuteCommand {
    /// `<ipc>/tools`.
    pub tools_dir: PathBuf,
    /// Skill packs with a sidecar.
    pub sidecars: Vec<String>,
    /// The pod has a `sandbox` container, which runs commands that name no skill.
    pub sandbox: bool,
    /// Trace context passed to the sidecar as `_meta` (`trace_id`, `span_id`, `traceparent`).
    pub meta: Option<Value>,
    /// How long a sidecar may take to claim a request.
    pub pickup_timeout: Duration,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecResult {
    #[serde(default)]
    exit_code: i64,
    #[serde(default)]
    stdout: String,
    #[serde(default)]
    stderr: String,
    #[serde(default)]
    timed_out: bool,
}

/// The name under which the sandbox container serves commands (`<ipc>/tools/sandbox/`).
pub const SANDBOX: &str = "sandbox";

impl ExecuteCommand {
    /// Where commands can go: the sandbox first (when there is one), then the sidecars.
    fn targets(&self) -> Vec<String> {
        let mut all: Vec<String> = self.sandbox.then(|| SANDBOX.to_string()).into_iter().collect();
        all.extend(self.sidecars.iter().cloned());
        all
    }

    fn request_dir(&self, skill: Option<&str>) -> Result<PathBuf, ToolOutput> {
        match skill.filter(|s| !s.is_empty()) {
            Some(SANDBOX) if self.sandbox => Ok(self.tools_dir.join(SANDBOX)),
            Some(skill) => {
                if !self.sidecars.iter().any(|s| s == skill) {
                    return Err(ToolOutput::err(format!(
                        "no sidecar for skill {skill:?}; available: {}",
                        self.targets().join(", ")
                    )));
                }
                if self.sidecars.len() > 1 || self.sandbox {
                    Ok(self.tools_dir.join(skill))
                } else {
                    Ok(self.tools_dir.clone())
                }
            }
            None if self.sandbox => Ok(self.tools_dir.join(SANDBOX)),
            None => Ok(self.tools_dir.clone()),
        }
    }

    async fn run(&self, args: Value) -> ToolOutput {
        let command = match required(&args, "command") {
            Ok(c) => c.to_string(),
            Err(e) => return e,
        };
        let workdir = str_arg(&args, "workdir").filter(|w| !w.is_empty()).unwrap_or("/workspace");
        let timeout = args.get("timeout").and_then(Value::as_u64).unwrap_or(30).clamp(1, 120);
        let dir = match self.request_dir(str_arg(&args, "skill")) {
            Ok(d) => d,
            Err(e) => return e,
        };
        if let Err(e) = tokio::fs::create_dir_all(&dir).await {
            return ToolOutput::err(format!("preparing {}: {e}", dir.display()));
        }
        let id = unix_nanos().to_string();
        let request = dir.join(ipc::exec_request(&id));
        let result = dir.join(ipc::exec_result(&id));
        let mut body = json!({"id": id, "command": command, "workDir": workdir, "timeout": timeout});
        if let Some(meta) = &self.meta {
            body["_meta"] = meta.clone();
        }
        if let Err(e) = write_json_atomic(&request, &body, false) {
            return ToolOutput::err(format!("writing command request: {e}"));
        }
        let claim = dir.join(format!(".claim-{id}"));
        let started = tokio::time::Instant::now();
        let deadline = started + Duration::from_secs(timeout) + GRACE;
        let outcome = loop {
            if let Some(parsed) = read_result(&result).await {
                break Ok(parsed);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break Err(format!(
                    "timed out waiting for command execution result after {}s",
                    timeout + GRACE.as_secs()
                ));
            }
            if now >= started + self.pickup_timeout && !claim.exists() {
                break Err(format!(
                    "no skill sidecar picked up the command within {}s; the sidecar ({}) may not \
                     be running",
                    self.pickup_timeout.as_secs_f32(),
                    self.targets().join(", ")
                ));
            }
            tokio::time::sleep(POLL).await;
        };
        // Request, result and claim are done with; a missing one is fine.
        let _ = tokio::fs::remove_file(&request).await;
        let _ = tokio::fs::remove_file(&result).await;
        let _ = tokio::fs::remove_dir(&claim).await;
        match outcome {
            Err(e) => ToolOutput::err(e),
            Ok(r) => ToolOutput::Ok(format_result(&r)),
        }
    }
}

async fn read_result(path: &Path) -> Option<ExecResult> {
    let bytes = tokio::fs::read(path).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn format_result(r: &ExecResult) -> String {
    let mut out = r.stdout.clone();
    if !r.stderr.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str("STDERR: ");
        out.push_str(&r.stderr);
    }
    if r.timed_out {
        out.push_str("\n(command timed out)");
    }
    if r.exit_code != 0 {
        out.push_str(&format!("\n(exit code: {})", r.exit_code));
    }
    let out = out.trim_start_matches('\n').to_string();
    if out.is_empty() { "(no output)".to_string() } else { truncate_chars(&out, MAX_RESULT_CHARS) }
}

impl Tool for ExecuteCommand {
    fn spec(&self) -> ToolSpec {
        let mut properties = json!({
            "command": {"type": "string", "description": "Shell command to run"},
            "workdir": {"type": "string", "description": "Working directory (default /workspace)"},
            "timeout": {"type": "integer", "description": "Seconds, default 30, max 120"}
        });
        let mut description = if self.sandbox {
            "Run a shell command in this run's sandbox container (isolated, no cluster credentials)."
                .to_string()
        } else {
            format!("Run a shell command in a skill sidecar (available: {}).", self.sidecars.join(", "))
        };
        if self.sidecars.len() > 1 || (self.sandbox && !self.sidecars.is_empty()) {
            properties["skill"] = json!({"type": "string", "enum": self.targets(),
                "description": "Which container runs the command (default: the first)"});
            description.push_str(" Pick the container with `skill`.");
        }
        ToolSpec {
            name: "execute_command".into(),
            description,
            parameters: json!({"type": "object", "properties": properties, "required": ["command"]}),
        }
    }

    fn call(&self, args: Value) -> BoxFuture<'_, ToolOutput> {
        Box::pin(self.run(args))
    }
}
