//! Shared test harness: a pod-like directory tree in a temp dir, and the real runner binary
//! started with a clean environment against it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

/// `/ipc`, `/workspace`, `/skills`, `/memory`, `/tmp` as temp directories.
pub struct Pod {
    _dir: TempDir,
    pub ipc: PathBuf,
    pub workspace: PathBuf,
    pub skills: PathBuf,
    pub memory: PathBuf,
    pub tmp: PathBuf,
}

impl Pod {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sub = |name: &str| {
            let p = dir.path().join(name);
            std::fs::create_dir_all(&p).unwrap();
            p
        };
        let (ipc, workspace, skills, memory, tmp) =
            (sub("ipc"), sub("workspace"), sub("skills"), sub("memory"), sub("tmp"));
        for d in ["input", "output", "tools", "messages", "schedules", "spawn"] {
            std::fs::create_dir_all(ipc.join(d)).unwrap();
        }
        Self { _dir: dir, ipc, workspace, skills, memory, tmp }
    }

    pub fn roots(&self) -> sympozium_agent_runner::paths::Roots {
        sympozium_agent_runner::paths::Roots {
            ipc: self.ipc.clone(),
            workspace: self.workspace.clone(),
            skills: self.skills.clone(),
            memory: self.memory.clone(),
            tmp: self.tmp.clone(),
        }
    }

    fn dir_env(&self) -> Vec<(String, String)> {
        let s = |p: &Path| p.display().to_string();
        vec![
            ("IPC_DIR".into(), s(&self.ipc)),
            ("WORKSPACE_DIR".into(), s(&self.workspace)),
            ("SKILLS_DIR".into(), s(&self.skills)),
            ("MEMORY_DIR".into(), s(&self.memory)),
            ("TMP_DIR".into(), s(&self.tmp)),
        ]
    }

    /// Stream chunks in index order.
    pub fn chunks(&self) -> Vec<Value> {
        let mut chunks: Vec<Value> = std::fs::read_dir(self.ipc.join("output"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("stream-"))
            .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
            .collect();
        chunks.sort_by_key(|c| c["index"].as_u64().unwrap());
        chunks
    }

    pub fn result_file(&self) -> Option<Value> {
        let bytes = std::fs::read(self.ipc.join("output/result.json")).ok()?;
        Some(serde_json::from_slice(&bytes).unwrap())
    }

    pub fn done(&self) -> bool {
        self.ipc.join("done").exists()
    }

    /// Files in `<ipc>/<sub>` as parsed JSON, sorted by name.
    pub fn ipc_files(&self, sub: &str) -> Vec<Value> {
        let mut entries: Vec<_> = std::fs::read_dir(self.ipc.join(sub))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .collect();
        entries.sort_by_key(|e| e.file_name());
        entries.iter().map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap()).collect()
    }
}

/// What the process left behind.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Parsed `__SYMPOZIUM_RESULT__` marker.
    pub marker: Option<Value>,
}

impl Outcome {
    pub fn result(&self) -> &Value {
        self.marker
            .as_ref()
            .unwrap_or_else(|| panic!("no result marker; stdout={} stderr={}", self.stdout, self.stderr))
    }

    pub fn error(&self) -> String {
        self.result()["error"].as_str().unwrap_or_default().to_string()
    }
}

pub fn parse_marker(stdout: &str) -> Option<Value> {
    let start = stdout.rfind("__SYMPOZIUM_RESULT__")? + "__SYMPOZIUM_RESULT__".len();
    let end = stdout[start..].find("__SYMPOZIUM_END__")? + start;
    serde_json::from_str(&stdout[start..end]).ok()
}

/// Runs the real binary with only `env` (plus PATH and the pod dirs) set.
pub async fn run_runner<K: AsRef<str>, V: AsRef<str>>(pod: &Pod, env: &[(K, V)]) -> Outcome {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sympozium-agent-runner"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("LLM_RETRY_BACKOFF", "20ms")
        .envs(pod.dir_env())
        .envs(env.iter().map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_string())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().unwrap();
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("runner did not exit within 60 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Outcome {
        code: out.status.code().unwrap_or(-1),
        marker: parse_marker(&stdout),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Messages of an OpenAI-format request body.
pub fn messages(body: &Value) -> Vec<Value> {
    body["messages"].as_array().cloned().unwrap_or_default()
}

/// A string long enough that every streamed piece becomes its own chunk file.
pub fn long_answer() -> String {
    "The deployment is healthy: all three replicas are ready, the last rollout finished \
     cleanly, and the error rate over the past hour is below one tenth of a percent."
        .to_string()
}
