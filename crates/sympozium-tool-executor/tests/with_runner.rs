//! The agent runner's real `execute_command` tool against real tool executors sharing an
//! IPC directory: a command goes to the sidecar of the skill the model names, a single
//! sidecar serves unnamed commands, and `/ipc/done` stops the executors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use sympozium_agent_runner::tools::{ExecuteCommand, Tool, ToolOutput};
use sympozium_tool_executor::{Config, run};

fn executor(ipc: &Path, skill: &str, token_dir: &Path) -> tokio::task::JoinHandle<()> {
    // Each sidecar's "token" names it, so the output shows which sidecar ran a command.
    let token = token_dir.join(format!("{skill}.token"));
    std::fs::write(&token, skill).unwrap();
    let config = Config {
        ipc_dir: ipc.to_path_buf(),
        skill: Some(skill.to_string()),
        poll: Duration::from_millis(50),
        gh_token_file: Some(token),
    };
    tokio::spawn(async move { run(config).await.unwrap() })
}

fn text(out: ToolOutput) -> String {
    match out {
        ToolOutput::Ok(s) => s,
        other => panic!("tool failed: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_reach_the_sidecar_of_the_named_skill() {
    let ipc = tempfile::tempdir().unwrap();
    let tokens = tempfile::tempdir().unwrap();
    let k8s = executor(ipc.path(), "k8s-ops", tokens.path());
    let gitops = executor(ipc.path(), "github-gitops", tokens.path());
    let exec = ExecuteCommand {
        tools_dir: ipc.path().join("tools"),
        sidecars: vec!["k8s-ops".into(), "github-gitops".into()],
        sandbox: false,
        meta: None,
        pickup_timeout: Duration::from_secs(10),
    };
    for _ in 0..5 {
        assert_eq!(
            text(exec.call(json!({"command": "echo $GH_TOKEN", "skill": "github-gitops"})).await),
            "github-gitops\n"
        );
        assert_eq!(
            text(exec.call(json!({"command": "echo $GH_TOKEN", "skill": "k8s-ops"})).await),
            "k8s-ops\n"
        );
    }
    let out = text(exec.call(json!({"command": "echo out; echo err >&2; exit 7", "skill": "k8s-ops"})).await);
    assert_eq!(out, "out\n\nSTDERR: err\n\n(exit code: 7)");
    let slow = text(exec.call(json!({"command": "sleep 20", "timeout": 1, "skill": "k8s-ops"})).await);
    assert!(slow.contains("timed out"), "{slow}");

    std::fs::write(ipc.path().join("done"), "").unwrap();
    for handle in [k8s, gitops] {
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .expect("executors stop on /ipc/done")
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_sidecar_serves_unnamed_commands() {
    let ipc = tempfile::tempdir().unwrap();
    let tokens = tempfile::tempdir().unwrap();
    let k8s = executor(ipc.path(), "k8s-ops", tokens.path());
    let exec = ExecuteCommand {
        tools_dir: ipc.path().join("tools"),
        sidecars: vec!["k8s-ops".into()],
        sandbox: false,
        meta: None,
        pickup_timeout: Duration::from_secs(10),
    };
    let dir = ipc.path().join("work");
    std::fs::create_dir(&dir).unwrap();
    let out = text(exec.call(json!({"command": "pwd", "workdir": dir.to_string_lossy()})).await);
    assert_eq!(out.trim(), std::fs::canonicalize(&dir).unwrap().to_string_lossy());
    std::fs::write(ipc.path().join("done"), "").unwrap();
    tokio::time::timeout(Duration::from_secs(5), k8s).await.unwrap().unwrap();
}
