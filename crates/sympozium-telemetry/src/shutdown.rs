//! The lifetime every long-running Sympozium process shares: when to stop.

use std::path::PathBuf;
use std::time::Duration;

/// How often the parent process is looked for: a supervisor that dies without signalling
/// its children (SIGKILL) must not leave them running for long.
const PARENT_POLL: Duration = Duration::from_millis(500);

/// Resolves when the process should stop: on SIGINT or SIGTERM, or, with `parent_pid`,
/// once that process is gone (its `/proc` entry disappears).
pub async fn shutdown_signal(parent_pid: Option<u32>) {
    tokio::select! {
        () = interrupt() => tracing::info!("SIGINT received; shutting down"),
        () = terminate() => tracing::info!("SIGTERM received; shutting down"),
        () = parent_gone(parent_pid) => tracing::info!("parent process gone; shutting down"),
    }
}

async fn interrupt() {
    if let Err(e) = tokio::signal::ctrl_c().await {
        // Without the handler the other conditions still stop the process.
        tracing::warn!(error = %e, "cannot listen for SIGINT");
        std::future::pending::<()>().await;
    }
}

async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
        }
    }
}

async fn parent_gone(parent_pid: Option<u32>) {
    let Some(pid) = parent_pid else { return std::future::pending().await };
    let entry = PathBuf::from(format!("/proc/{pid}"));
    while entry.exists() {
        tokio::time::sleep(PARENT_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn shutdown_follows_the_parent() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let waiting = tokio::spawn(shutdown_signal(Some(child.id())));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "the parent still runs");
        child.kill().unwrap();
        child.wait().unwrap();
        tokio::time::timeout(Duration::from_secs(5), waiting).await.unwrap().unwrap();
    }
}
