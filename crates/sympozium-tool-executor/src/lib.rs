//! The tool executor: the entry point of Sympozium's skill sidecar images. It serves the
//! agent's `execute_command` requests over the shared `/ipc` volume: every
//! `exec-request-<id>.json` it claims (atomically, `mkdir .claim-<id>`) runs as
//! `bash -c` in the request's working directory under its timeout, and the outcome is
//! written to `exec-result-<id>.json` (via a temporary file and a rename).
//!
//! Routing (our fix over the original's "first sidecar wins"): a sidecar that knows its
//! skill (`SYMPOZIUM_SKILL`) serves `/ipc/tools/<skill>/`, where the agent puts commands
//! meant for that skill, as well as the shared `/ipc/tools/` used when the run has a
//! single sidecar or the model names none. The loop ends when `/ipc/done` appears.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use serde::{Deserialize, Serialize};
use sympozium_protocol::ipc;

/// Longest stdout or stderr kept, in characters.
pub const MAX_OUTPUT_CHARS: usize = 51_200;
/// Exit code of a command that ran out of time (as coreutils `timeout`).
pub const TIMEOUT_EXIT_CODE: i32 = 124;

/// Errors that stop the executor.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The IPC directory could not be prepared.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Settings (from the environment, read by `main`).
#[derive(Clone, Debug)]
pub struct Config {
    /// The shared IPC directory (`/ipc`).
    pub ipc_dir: PathBuf,
    /// The skill this sidecar serves, if known.
    pub skill: Option<String>,
    /// How often the request directories are scanned.
    pub poll: Duration,
    /// A file whose content becomes `GH_TOKEN` for commands (the GitOps skill's token).
    pub gh_token_file: Option<PathBuf>,
}

/// A command request written by the agent.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// Request id.
    #[serde(default)]
    pub id: String,
    /// Shell command.
    pub command: String,
    /// Extra arguments appended to the command, separated by spaces.
    #[serde(default)]
    pub args: Vec<String>,
    /// Working directory (falls back to `/` when missing).
    #[serde(default)]
    pub work_dir: Option<String>,
    /// Timeout in seconds, clamped to 1..=120 (default 30).
    #[serde(default)]
    pub timeout: Option<u64>,
    /// The runner's trace context (`traceparent`, `trace_id`, `span_id`): the command's
    /// span continues the run's trace.
    #[serde(default, rename = "_meta")]
    pub meta: Option<serde_json::Value>,
}

/// The outcome written back to the agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecResult {
    /// Request id.
    pub id: String,
    /// Exit code (124 when timed out, -1 when it could not start).
    pub exit_code: i32,
    /// Standard output, truncated.
    pub stdout: String,
    /// Standard error, truncated.
    pub stderr: String,
    /// Whether the timeout ended it.
    pub timed_out: bool,
}

/// `s` cut to [`MAX_OUTPUT_CHARS`] characters, marked when cut.
pub fn truncate(s: &str) -> String {
    if s.chars().count() <= MAX_OUTPUT_CHARS {
        return s.to_string();
    }
    let mut out: String = s.chars().take(MAX_OUTPUT_CHARS).collect();
    out.push_str("...(truncated)");
    out
}

/// The directories this sidecar serves, its own first.
pub fn request_dirs(config: &Config) -> Vec<PathBuf> {
    let tools = config.ipc_dir.join(ipc::TOOLS);
    let mut dirs = Vec::new();
    if let Some(skill) = config.skill.as_deref().filter(|s| !s.is_empty() && !s.contains('/')) {
        dirs.push(tools.join(skill));
    }
    dirs.push(tools);
    dirs
}

/// The request id of a file name `exec-request-<id>.json`.
pub fn request_id(file_name: &str) -> Option<&str> {
    ipc::exec_request_id(file_name)
}

/// Runs one request and returns its outcome.
pub async fn execute(request: &Request, gh_token: Option<&str>) -> ExecResult {
    let timeout = Duration::from_secs(request.timeout.unwrap_or(30).clamp(1, 120));
    let mut line = request.command.clone();
    for arg in &request.args {
        line.push(' ');
        line.push_str(arg);
    }
    let work_dir =
        request.work_dir.as_deref().map(Path::new).filter(|d| d.is_dir()).unwrap_or_else(|| Path::new("/"));
    let mut command = tokio::process::Command::new("bash");
    command
        .arg("-c")
        .arg(&line)
        .current_dir(work_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    if let Some(token) = gh_token {
        command.env("GH_TOKEN", token);
    }
    let failed = |message: String| ExecResult {
        id: request.id.clone(),
        exit_code: -1,
        stdout: String::new(),
        stderr: message,
        timed_out: false,
    };
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => return failed(format!("starting bash: {e}")),
    };
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return failed("the command's output pipes were not set up".into());
    };
    let read_out = async {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out).await;
        out
    };
    let read_err = async {
        let mut err = Vec::new();
        let _ = stderr.read_to_end(&mut err).await;
        err
    };
    let finished = async { tokio::join!(child.wait(), read_out, read_err) };
    match tokio::time::timeout(timeout, finished).await {
        Ok((Ok(status), out, err)) => {
            let code = status.code().unwrap_or(-1);
            ExecResult {
                id: request.id.clone(),
                exit_code: code,
                stdout: truncate(&String::from_utf8_lossy(&out)),
                stderr: truncate(&String::from_utf8_lossy(&err)),
                timed_out: code == TIMEOUT_EXIT_CODE,
            }
        }
        Ok((Err(e), _, _)) => failed(format!("waiting for the command: {e}")),
        Err(_) => {
            // The whole process group, background children of the command too. The child is
            // not reaped yet, so its PID (the group's ID) cannot have been reused.
            if let Some(pid) = child.id().and_then(|id| rustix::process::Pid::from_raw(id as i32)) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            let _ = child.kill().await;
            ExecResult {
                id: request.id.clone(),
                exit_code: TIMEOUT_EXIT_CODE,
                stdout: String::new(),
                stderr: format!("command timed out after {}s", timeout.as_secs()),
                timed_out: true,
            }
        }
    }
}

/// Claims and runs one request file; returns whether this sidecar took it.
pub async fn take(dir: &Path, id: &str, gh_token: Option<String>) -> bool {
    let result_path = dir.join(ipc::exec_result(id));
    if result_path.exists() || tokio::fs::create_dir(dir.join(format!(".claim-{id}"))).await.is_err() {
        return false;
    }
    let request_path = dir.join(ipc::exec_request(id));
    let dir = dir.to_path_buf();
    let id = id.to_string();
    tokio::spawn(async move {
        let result = match tokio::fs::read(&request_path).await.map(|b| serde_json::from_slice::<Request>(&b))
        {
            Ok(Ok(mut request)) => {
                if request.id.is_empty() {
                    request.id.clone_from(&id);
                }
                let span = tracing::info_span!(
                    "sympozium.tool.exec",
                    otel.kind = "server",
                    gen_ai.tool.call.id = %request.id,
                    process.exit.code = tracing::field::Empty,
                    otel.status_code = tracing::field::Empty,
                );
                let traceparent =
                    request.meta.as_ref().and_then(|m| m["traceparent"].as_str()).unwrap_or_default();
                sympozium_telemetry::set_parent_from_traceparent(&span, traceparent);
                let result =
                    tracing::Instrument::instrument(execute(&request, gh_token.as_deref()), span.clone())
                        .await;
                span.record("process.exit.code", result.exit_code);
                if result.exit_code != 0 {
                    span.record("otel.status_code", "ERROR");
                }
                result
            }
            Ok(Err(e)) => ExecResult {
                id: id.clone(),
                exit_code: -1,
                stdout: String::new(),
                stderr: format!("invalid request: {e}"),
                timed_out: false,
            },
            Err(e) => ExecResult {
                id: id.clone(),
                exit_code: -1,
                stdout: String::new(),
                stderr: format!("reading the request: {e}"),
                timed_out: false,
            },
        };
        let tmp = dir.join(format!("{}.tmp", ipc::exec_result(&id)));
        let body = serde_json::to_vec(&result).unwrap_or_default();
        if let Err(e) = tokio::fs::write(&tmp, body).await {
            tracing::warn!(error = %e, "writing the result");
            return;
        }
        if let Err(e) = tokio::fs::rename(&tmp, dir.join(ipc::exec_result(&id))).await {
            tracing::warn!(error = %e, "publishing the result");
        }
    });
    true
}

/// Serves requests until `<ipc>/done` exists.
pub async fn run(config: Config) -> Result<(), Error> {
    let dirs = request_dirs(&config);
    for dir in &dirs {
        tokio::fs::create_dir_all(dir).await.map_err(|source| Error::Io { path: dir.clone(), source })?;
    }
    tracing::info!(dirs = ?dirs, "serving execute_command requests");
    let done = config.ipc_dir.join(ipc::DONE);
    loop {
        if done.exists() {
            return Ok(());
        }
        let gh_token = match &config.gh_token_file {
            Some(f) => tokio::fs::read_to_string(f).await.ok().map(|t| t.trim().to_string()),
            None => None,
        };
        for dir in &dirs {
            let Ok(mut entries) = tokio::fs::read_dir(dir).await else { continue };
            while let Ok(Some(entry)) = entries.next_entry().await {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(id) = request_id(&name) {
                    take(dir, id, gh_token.clone()).await;
                }
            }
        }
        tokio::time::sleep(config.poll).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn request(command: &str, timeout: Option<u64>) -> Request {
        Request { id: "1".into(), command: command.into(), args: vec![], work_dir: None, timeout, meta: None }
    }

    #[tokio::test]
    async fn runs_commands_with_exit_codes_output_and_work_dir() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = request("pwd; echo err >&2; exit 3", None);
        r.work_dir = Some(dir.path().to_string_lossy().into_owned());
        let out = execute(&r, None).await;
        assert_eq!(out.exit_code, 3);
        assert_eq!(out.stdout.trim(), std::fs::canonicalize(dir.path()).unwrap().to_string_lossy());
        assert_eq!(out.stderr, "err\n");
        let mut with_args = request("echo", None);
        with_args.args = vec!["a".into(), "b".into()];
        with_args.work_dir = Some("/does/not/exist".into());
        assert_eq!(execute(&with_args, None).await.stdout, "a b\n");
        assert_eq!(execute(&request("echo $GH_TOKEN", None), Some("t0k")).await.stdout, "t0k\n");
    }

    #[tokio::test]
    async fn timeouts_kill_the_command() {
        let started = std::time::Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("background.pid");
        let command = format!("sleep 300 & echo $! > {}; sleep 30", pid_file.display());
        let out = execute(&request(&command, Some(1)), None).await;
        assert!(out.timed_out && out.exit_code == 124, "{out:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        // The command's background child went with it.
        let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
        let proc_dir = std::path::Path::new("/proc").join(&pid);
        for _ in 0..50 {
            let state = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
            // Gone, or a zombie waiting for init to reap it.
            if state.is_empty() || state.split(' ').nth(2) == Some("Z") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("background child {pid} of a timed-out command still runs");
    }

    #[test]
    fn output_is_truncated_and_names_parse() {
        let long = "x".repeat(MAX_OUTPUT_CHARS + 5);
        let t = truncate(&long);
        assert!(t.ends_with("...(truncated)") && t.len() == MAX_OUTPUT_CHARS + 14);
        assert_eq!(request_id("exec-request-42.json"), Some("42"));
        assert_eq!(request_id("exec-result-42.json"), None);
        let c = Config {
            ipc_dir: "/ipc".into(),
            skill: Some("k8s-ops".into()),
            poll: Duration::from_millis(200),
            gh_token_file: None,
        };
        assert_eq!(request_dirs(&c), [PathBuf::from("/ipc/tools/k8s-ops"), PathBuf::from("/ipc/tools")]);
    }
}
