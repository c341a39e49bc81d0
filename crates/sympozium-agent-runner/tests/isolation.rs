#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
//! The agent container's side of tenant isolation, tried as an attacker would:
//! - write/edit through symbolic links that leave the allowed directories (existing and
//!   dangling targets, chains, linked directories, links into `/ipc`) on real files;
//! - another process of the same user reading the runner's API key through `/proc`;
//! - a run's own tool policy trying to widen its SympoziumPolicy, through the real runner.

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use common::{Pod, run_runner};
use serde_json::{Value, json};
use sympozium_agent_runner::tools::{EditFile, Tool, ToolOutput, WriteFile};
use sympozium_api::{AgentRun, SympoziumPolicy};
use sympozium_testkit::fake_llm::{FakeLlm, Turn};

fn refused(out: &ToolOutput) -> bool {
    matches!(out, ToolOutput::Err(e) if e.contains("access denied") && e.contains("outside the allowed directories"))
}

/// Every way of writing outside the pod's writable directories through a link, each refused,
/// and the outside untouched.
#[tokio::test]
async fn write_and_edit_refuse_every_link_that_leaves_the_allowed_directories() {
    let pod = Pod::new();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("passwd");
    std::fs::write(&secret, "root:x:0:0").unwrap();
    let ws = &pod.workspace;
    let write = WriteFile { roots: pod.roots() };
    let edit = EditFile { roots: pod.roots() };
    let mut tried = 0;

    // 1. A link to an existing file outside.
    symlink(&secret, ws.join("passwd")).unwrap();
    // 2. A dangling link to a file outside (the write would create it).
    let planted = outside.path().join("planted");
    symlink(&planted, ws.join("dangling")).unwrap();
    // 3. A dangling link into /ipc, which the write tools may not touch: a command request
    //    for the sidecar that would bypass execute_command's policy.
    let request = pod.ipc.join("tools/exec-request-1.json");
    symlink(&request, ws.join("request.json")).unwrap();
    // 4. A linked directory outside, written below.
    symlink(outside.path(), ws.join("outdir")).unwrap();
    // 5. A relative link climbing out.
    let depth = ws.components().count();
    let climb = format!(
        "{}{}",
        "../".repeat(depth),
        outside.path().join("rel").display().to_string().trim_start_matches('/')
    );
    symlink(&climb, ws.join("climb")).unwrap();
    // 6. A chain: inside -> inside -> outside (dangling at the end).
    symlink(ws.join("hop2"), ws.join("hop1")).unwrap();
    symlink(outside.path().join("chained"), ws.join("hop2")).unwrap();
    // 7. A link in /tmp (the other writable root) to a file outside.
    symlink(&secret, pod.tmp.join("passwd")).unwrap();
    // 8. A link loop.
    symlink(ws.join("loop-b"), ws.join("loop-a")).unwrap();
    symlink(ws.join("loop-a"), ws.join("loop-b")).unwrap();

    for path in [
        "/workspace/passwd",
        "/workspace/dangling",
        "/workspace/request.json",
        "/workspace/outdir/new.txt",
        "/workspace/outdir/sub/new.txt",
        "/workspace/climb",
        "/workspace/hop1",
        "/tmp/passwd",
        "/workspace/loop-a",
        "dangling",
        "/workspace/../workspace/./dangling",
    ] {
        tried += 1;
        let out = write.call(json!({"path": path, "content": "owned"})).await;
        assert!(refused(&out), "write_file {path}: {out:?}");
    }
    for path in ["/workspace/passwd", "/tmp/passwd", "/workspace/hop1"] {
        tried += 1;
        let out = edit.call(json!({"path": path, "old_text": "root", "new_text": "owned"})).await;
        assert!(refused(&out), "edit_file {path}: {out:?}");
    }
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "root:x:0:0", "the outside file is untouched");
    for created in [&planted, &request, &outside.path().join("new.txt"), &outside.path().join("rel")] {
        assert!(!created.exists(), "{} was not created", created.display());
    }
    assert!(!outside.path().join("chained").exists());
    eprintln!("symlink attacks tried: {tried}, refused: {tried}");

    // Links that stay inside keep working: the write lands on the link's target.
    std::fs::write(ws.join("real.txt"), "old").unwrap();
    symlink(ws.join("real.txt"), ws.join("alias.txt")).unwrap();
    std::fs::create_dir(ws.join("dir")).unwrap();
    symlink("dir", ws.join("dirlink")).unwrap();
    let out = write.call(json!({"path": "/workspace/alias.txt", "content": "new"})).await;
    assert!(matches!(out, ToolOutput::Ok(_)), "{out:?}");
    assert_eq!(std::fs::read_to_string(ws.join("real.txt")).unwrap(), "new");
    let out = write.call(json!({"path": "/workspace/dirlink/f.txt", "content": "x"})).await;
    assert!(matches!(out, ToolOutput::Ok(_)), "{out:?}");
    assert_eq!(std::fs::read_to_string(ws.join("dir/f.txt")).unwrap(), "x");
    let out =
        edit.call(json!({"path": "/workspace/alias.txt", "old_text": "new", "new_text": "newer"})).await;
    assert!(matches!(out, ToolOutput::Ok(_)), "{out:?}");
    assert_eq!(std::fs::read_to_string(ws.join("real.txt")).unwrap(), "newer");
}

/// Runs `argv` as uid/gid 1000 (the agent pod's user) and returns (success, stdout, stderr).
fn as_pod_user(argv: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=1000", "--regid=1000", "--clear-groups", "--"])
        .args(argv)
        .output()
        .expect("setpriv (util-linux) runs the attacker as the pod's user");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn chown_tree(path: &Path) {
    std::os::unix::fs::chown(path, Some(1000), Some(1000)).unwrap();
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path());
        }
    }
}

/// A tool command runs as the same user as the runner. Where containers share a PID
/// namespace (shareProcessNamespace, or a node without per-container PID namespaces) it can
/// see the runner's process; it must still not read the runner's environment (the API key),
/// memory or filesystem through /proc.
#[tokio::test]
async fn a_process_of_the_same_user_cannot_read_the_runners_key_through_proc() {
    assert!(rustix_is_root(), "this test switches to uid 1000 and must run as root (as CI does)");
    const KEY: &str = "sk-isolation-secret-4f1c";
    // A model endpoint that accepts and never answers: the runner waits in its first call.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (conn_tx, mut conn_rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = conn_tx.send(stream).await;
        }
    });
    let pod = Pod::new();
    let top = pod.workspace.parent().unwrap().to_path_buf();
    chown_tree(&top);
    let runner = env!("CARGO_BIN_EXE_sympozium-agent-runner");
    let dirs = [
        ("IPC_DIR", &pod.ipc),
        ("WORKSPACE_DIR", &pod.workspace),
        ("SKILLS_DIR", &pod.skills),
        ("MEMORY_DIR", &pod.memory),
        ("TMP_DIR", &pod.tmp),
    ];
    let mut child = tokio::process::Command::new("setpriv")
        .args(["--reuid=1000", "--regid=1000", "--clear-groups", "--", runner])
        .env_clear()
        .env("OPENAI_API_KEY", KEY)
        .env("MODEL_PROVIDER", "openai")
        .env("MODEL_NAME", "gpt-4o")
        .env("MODEL_BASE_URL", format!("http://127.0.0.1:{port}/v1"))
        .env("TASK", "wait")
        .env("LLM_MAX_RETRIES", "0")
        .envs(dirs.iter().map(|(k, v)| (k.to_string(), v.display().to_string())))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let _held = tokio::time::timeout(Duration::from_secs(30), conn_rx.recv())
        .await
        .expect("the runner called the model within 30 s")
        .unwrap();

    // Control: an ordinary process of that user with a secret in its environment IS
    // readable, so the refusals below are the runner's doing, not the test machine's.
    let mut control = std::process::Command::new("setpriv")
        .args(["--reuid=1000", "--regid=1000", "--clear-groups", "--", "sleep", "30"])
        .env("CONTROL_SECRET", KEY)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let (ok, stdout, _) = as_pod_user(&["cat", &format!("/proc/{}/environ", control.id())]);
    let _ = control.kill();
    let _ = control.wait();
    assert!(ok && stdout.contains(KEY), "control: a dumpable process's environment is readable");

    let mut tried = 0;
    let attacks: [&[&str]; 5] = [
        &["cat", &format!("/proc/{pid}/environ")],
        &["head", "-c", "4096", &format!("/proc/{pid}/mem")],
        &["ls", &format!("/proc/{pid}/root/")],
        &["ls", "-l", &format!("/proc/{pid}/fd/")],
        &["cat", &format!("/proc/{pid}/task/{pid}/environ")],
    ];
    for argv in attacks {
        tried += 1;
        let (ok, stdout, stderr) = as_pod_user(argv);
        assert!(!ok, "{argv:?} must fail: {stdout}");
        assert!(!stdout.contains(KEY), "{argv:?} leaked the key");
        assert!(stderr.contains("Permission denied"), "{argv:?}: {stderr}");
    }
    eprintln!("/proc attacks tried: {tried}, refused: {tried}");
    assert!(child.try_wait().unwrap().is_none(), "the runner was still running throughout");
    child.kill().await.unwrap();
}

fn rustix_is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false)
}

fn hostile_run(tool_policy: Value) -> AgentRun {
    serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1", "kind": "AgentRun",
        "metadata": {"name": "r", "namespace": "team"},
        "spec": {"instanceRef": "i", "agentId": "a", "sessionKey": "", "task": "t",
            "model": {"provider": "openai", "model": "m", "authSecretRef": ""}, "toolPolicy": tool_policy}}))
    .unwrap()
}

/// The run's own `toolPolicy` lists tools the SympoziumPolicy's whitelist does not allow:
/// the real runner, given what the controller computes, neither offers nor runs them.
#[tokio::test]
async fn a_runs_tool_policy_cannot_widen_its_sympozium_policy() {
    let policy: SympoziumPolicy = serde_json::from_value(json!({"apiVersion": "sympozium.ai/v1alpha1",
        "kind": "SympoziumPolicy", "metadata": {"name": "locked"},
        "spec": {"toolGating": {"defaultAction": "deny", "rules": [{"tool": "read_file", "action": "allow"}]}}}))
    .unwrap();
    let mut tried = 0;
    for own in [
        json!({"allow": ["*"]}),
        json!({"allow": ["execute_command", "write_file", "read_file"]}),
        json!({"allow": ["execute_command"], "deny": []}),
    ] {
        tried += 1;
        let run = hostile_run(own.clone());
        let tool_policy =
            sympozium_controller::agentrun::policy::effective_tool_policy(&run, None, Some(&policy)).unwrap();
        let fake = FakeLlm::start().await.unwrap();
        fake.script([
            Turn::tool_call("execute_command", json!({"command": "cat /etc/shadow"})),
            Turn::tool_call("write_file", json!({"path": "/workspace/x", "content": "y"})),
            Turn::text("done"),
        ]);
        let pod = Pod::new();
        let base = fake.openai_base_url();
        let env = [
            ("TASK", "t"),
            ("MODEL_BASE_URL", base.as_str()),
            ("TOOLS_ENABLED", "true"),
            ("SKILL_SIDECARS", "k8s-ops"),
            ("TOOL_POLICY", tool_policy.as_str()),
        ];
        let out = run_runner(&pod, &env).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        let offered = fake.requests()[0].tool_names();
        assert!(offered.iter().all(|t| t == "read_file"), "{own}: offered {offered:?}");
        let results: Vec<String> = fake.requests()[2].body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "tool")
            .map(|m| m["content"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            results,
            [
                "Error: tool execute_command is not permitted by this agent's tool policy",
                "Error: tool write_file is not permitted by this agent's tool policy"
            ],
            "{own}"
        );
        assert!(!pod.workspace.join("x").exists());
        assert!(pod.ipc_files("tools").is_empty(), "no command request reached a sidecar");
    }
    eprintln!("tool-policy widening attacks tried: {tried}, refused: {tried}");
}
