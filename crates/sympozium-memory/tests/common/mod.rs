//! Helpers shared by the integration tests: a real `sympozium-memory-server` process.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_sympozium-memory-server");

/// A running server process on a random loopback port.
pub struct ServerProcess {
    child: Child,
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    pub stderr_path: PathBuf,
}

fn command(db: &Path, env: &[(&str, &str)], stderr_path: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("MEMORY_PORT", "0")
        .env("MEMORY_BIND", "127.0.0.1")
        .env("MEMORY_DB_PATH", db)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(std::fs::File::create(stderr_path).expect("create stderr log")));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn stderr_path_for(db: &Path) -> PathBuf {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    db.with_file_name(format!("server-{n}.stderr"))
}

impl ServerProcess {
    /// Starts the server on `db` and waits (≤ 15 s) until it prints its address.
    pub fn start(db: &Path, env: &[(&str, &str)]) -> Self {
        let stderr_path = stderr_path_for(db);
        let mut child = command(db, env, &stderr_path).spawn().expect("spawn memory server");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(url) => Self { child, url, stderr_path },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "memory server did not start; stderr:\n{}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
        }
    }

    /// `kill -9` and reap.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL server");
        self.child.wait().expect("reap server");
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn terminate(mut self) -> ExitStatus {
        let status =
            Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("run kill");
        assert!(status.success());
        wait_timeout(&mut self.child, Duration::from_secs(15)).expect("server exits on SIGTERM")
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn client(&self) -> sympozium_memory::MemoryClient {
        sympozium_memory::MemoryClient::new(self.url.clone()).expect("client")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Runs the server expecting it to fail at start-up; returns (exit status, stderr).
pub fn start_expecting_failure(db: &Path, env: &[(&str, &str)]) -> (ExitStatus, String) {
    let stderr_path = stderr_path_for(db);
    let mut child = command(db, env, &stderr_path).spawn().expect("spawn memory server");
    let status = match wait_timeout(&mut child, Duration::from_secs(15)) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("memory server kept running although it should have refused to start");
        }
    };
    (status, std::fs::read_to_string(&stderr_path).unwrap_or_default())
}
