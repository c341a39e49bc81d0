//! Container lifecycle hooks: `postStart` runs right after the program starts (the
//! container is not Running until it succeeds; a failure kills the container, Event
//! `FailedPostStartHook`), `preStop` runs before SIGTERM when the container is stopped
//! (deletion, liveness failure), within the pod's termination grace period (Event
//! `FailedPreStopHook` on failure). Handlers: `exec` (in the container's sandbox as its
//! user, like `kubectl exec`), `httpGet`, `tcpSocket` and `sleep`.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Probe};

use crate::probes::Target;
use crate::streaming::ExecTarget;

/// Why a lifecycle hook failed (the text goes into the Warning event).
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// An exec hook without a command.
    #[error("exec hook has no command")]
    NoCommand,
    /// The container's program is gone.
    #[error("the container's program is not running")]
    NotRunning,
    /// The command could not be started.
    #[error("running {command:?}: {source}")]
    Spawn {
        /// The hook's command.
        command: Vec<String>,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The command exited unsuccessfully.
    #[error("command {command:?} exited with {code}: {output}")]
    Exit {
        /// The hook's command.
        command: Vec<String>,
        /// Its exit code (-1 when killed by a signal).
        code: i32,
        /// The start of its output.
        output: String,
    },
    /// The httpGet or tcpSocket check failed.
    #[error("{0} hook failed")]
    Check(&'static str),
    /// No handler is set.
    #[error("hook has no handler (exec, httpGet, tcpSocket or sleep)")]
    NoHandler,
    /// The hook ran past its limit.
    #[error("hook did not finish within {0}s")]
    Timeout(u64),
}

/// Runs one hook handler; Err carries what to report.
pub async fn run(
    handler: &LifecycleHandler,
    c: &Container,
    exec: &ExecTarget,
    probe_target: &Target,
    limit: Duration,
) -> Result<(), HookError> {
    let work = async {
        if let Some(e) = &handler.exec {
            let command = e.command.clone().unwrap_or_default();
            if command.is_empty() {
                return Err(HookError::NoCommand);
            }
            // bwrap forks the program a moment after it starts.
            let mut program = None;
            for _ in 0..50 {
                program = crate::sandbox::program_pid(exec.sandbox_pid);
                if program.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let Some(program) = program else { return Err(HookError::NotRunning) };
            let (exe, args) = crate::streaming::enter_command(exec, program, &command, false);
            let out = tokio::process::Command::new(exe)
                .args(args)
                .env_clear()
                .envs(exec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output()
                .await
                .map_err(|source| HookError::Spawn { command: command.clone(), source })?;
            if out.status.success() {
                return Ok(());
            }
            let mut msg = String::from_utf8_lossy(&out.stdout).into_owned();
            msg.push_str(&String::from_utf8_lossy(&out.stderr));
            let msg: String = msg.trim().chars().take(512).collect();
            return Err(HookError::Exit { command, code: out.status.code().unwrap_or(-1), output: msg });
        }
        if let Some(s) = &handler.sleep {
            tokio::time::sleep(Duration::from_secs(u64::try_from(s.seconds).unwrap_or(0))).await;
            return Ok(());
        }
        if handler.http_get.is_some() || handler.tcp_socket.is_some() {
            let seconds = i32::try_from(limit.as_secs()).unwrap_or(i32::MAX).max(1);
            let probe = Probe {
                http_get: handler.http_get.clone(),
                tcp_socket: handler.tcp_socket.clone(),
                timeout_seconds: Some(seconds),
                ..Default::default()
            };
            let what = if handler.http_get.is_some() { "httpGet" } else { "tcpSocket" };
            return if crate::probes::check(&probe, c, probe_target).await {
                Ok(())
            } else {
                Err(HookError::Check(what))
            };
        }
        Err(HookError::NoHandler)
    };
    tokio::time::timeout(limit, work).await.unwrap_or(Err(HookError::Timeout(limit.as_secs())))
}
