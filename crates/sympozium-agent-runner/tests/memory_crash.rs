#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The real memory server (`sympozium-memory-server`, SQLite) killed with SIGKILL while runs
//! auto-store their answers: no run fails because of it (each still answers), and every
//! store the server acknowledged is there, once, after it restarts on the same file.
//!
//! The server binary comes from the workspace build `make test` does first
//! (`cargo build --workspace --bins`), next to the runner binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Pod, run_runner};
use serde_json::Value;
use sympozium_testkit::fake_llm::{FakeLlm, Turn};

const FAILED: &str = "auto-store to memory failed";

struct Memory {
    child: Child,
    url: String,
}

impl Memory {
    async fn start(db: &Path, port: u16) -> Memory {
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_sympozium-agent-runner"))
            .with_file_name("sympozium-memory-server");
        assert!(bin.is_file(), "{} missing: run `cargo build --workspace --bins` first", bin.display());
        let child = Command::new(bin)
            .env_clear()
            .env("MEMORY_PORT", port.to_string())
            .env("MEMORY_BIND", "127.0.0.1")
            .env("MEMORY_DB_PATH", db)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let up = async {
            while !reqwest::get(format!("{url}/health")).await.is_ok_and(|r| r.status().is_success()) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), up).await.expect("memory server up");
        Memory { child, url }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        self.kill9();
    }
}

async fn run_answering(url: &str, i: usize, delay: Duration) -> (usize, common::Outcome) {
    let fake = FakeLlm::start().await.unwrap();
    let mut turn = Turn::text(&format!("answer {i} token-{i}-auto"));
    turn.delay = delay;
    fake.script([turn]);
    let pod = Pod::new();
    let env = [
        ("TASK".to_string(), format!("task {i}")),
        ("MODEL_BASE_URL".to_string(), fake.openai_base_url()),
        ("MEMORY_SERVER_URL".to_string(), url.to_string()),
    ];
    (i, run_runner(&pod, &env).await)
}

#[tokio::test]
async fn runs_survive_a_memory_server_kill_9_during_auto_store_and_acknowledged_stores_stay() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("memory.db");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut memory = Memory::start(&db, port).await;
    let url = memory.url.clone();

    // One run while the server is up: its store is acknowledged.
    let (_, first) = run_answering(&url, 0, Duration::ZERO).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(!first.stderr.contains(FAILED), "the server was up: {}", first.stderr);

    // Seven more, their answers (and so their stores) spread over 1.4 s; the server is
    // killed in the middle of them.
    let mut runs = Vec::new();
    for i in 1..8 {
        let url = url.clone();
        runs.push(tokio::spawn(async move {
            run_answering(&url, i, Duration::from_millis(200 * i as u64)).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    memory.kill9();
    let mut outcomes = vec![(0, first)];
    for r in runs {
        outcomes.push(r.await.unwrap());
    }
    for (i, out) in &outcomes {
        assert_eq!(out.code, 0, "run {i} failed: {}", out.stderr);
        assert_eq!(out.result()["response"], format!("answer {i} token-{i}-auto"), "run {i} still answers");
    }
    let acknowledged: Vec<usize> =
        outcomes.iter().filter(|(_, o)| !o.stderr.contains(FAILED)).map(|(i, _)| *i).collect();
    let refused = outcomes.len() - acknowledged.len();
    assert!(refused > 0, "the kill landed after every store: no store met a dead server");
    println!("acknowledged stores: runs {acknowledged:?}; {refused} refused by the dead server");

    // Back on the same file: each acknowledged store is there exactly once; none is doubled.
    let memory = Memory::start(&db, port).await;
    let listed: Value =
        reqwest::get(format!("{}/list?tag=auto&limit=100", memory.url)).await.unwrap().json().await.unwrap();
    assert_eq!(listed["success"], true, "{listed}");
    let entries = listed["content"].as_array().cloned().unwrap_or_default();
    let contents: Vec<String> =
        entries.iter().map(|e| e["content"].as_str().unwrap_or_default().to_string()).collect();
    for i in 0..8 {
        let n = contents.iter().filter(|c| c.contains(&format!("token-{i}-auto"))).count();
        if acknowledged.contains(&i) {
            assert_eq!(n, 1, "acknowledged store of run {i} is there once: {contents:?}");
        } else {
            assert!(n <= 1, "store of run {i} doubled: {contents:?}");
        }
    }
}
