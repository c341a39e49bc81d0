//! The layout of the IPC volume shared by the containers of an agent pod (mounted at
//! `/ipc`, [`crate::env::IPC_PATH`] / [`crate::env::IPC_DIR`]).
//!
//! The agent runner writes requests and output as JSON files; the IPC bridge publishes them on
//! the bus and writes what comes back into `input/` or `tools/`; the tool executor and the MCP
//! bridge (sidecars) answer requests in `tools/`. Every writer writes `<name>.tmp` first and
//! renames, so a reader never sees half a file.
//!
//! ```text
//! /ipc/input/task.json                      the run's task (controller → runner)
//! /ipc/input/spawn-result-<id>.json         a sub-agent's outcome        (bridge → runner)
//! /ipc/input/schedule-result-<id>.json      a schedule request's outcome (bridge → runner)
//! /ipc/input/followup-<nnnnnn>.json         a follow-up chat message     (bridge → runner)
//! /ipc/output/stream-<n>.json               a streamed chunk             (runner → bridge)
//! /ipc/output/status.json                   a status update              (runner → bridge)
//! /ipc/output/result.json                   the final result, last       (runner → bridge)
//! /ipc/messages/send-<n>.json               a chat message to send       (runner → bridge)
//! /ipc/schedules/schedule-<id>.json         a schedule upsert            (runner → bridge)
//! /ipc/spawn/spawn-<id>.json                a sub-agent request          (runner → bridge)
//! /ipc/tools[/<skill>]/exec-request-<id>.json  a command for a sidecar   (runner → executor/bridge)
//! /ipc/tools[/<skill>]/exec-result-<id>.json   its result                (executor/bridge → runner)
//! /ipc/tools/mcp-tools.json                 the MCP tool manifest        (MCP bridge → runner)
//! /ipc/tools/mcp-request-<n>.json           an MCP tool call             (runner → MCP bridge)
//! /ipc/tools/mcp-result-<n>.json            its result                   (MCP bridge → runner)
//! /ipc/done                                 the runner has finished      (runner → sidecars)
//! ```

use std::path::{Path, PathBuf};

/// Where the controller mounts the IPC volume.
pub const DEFAULT_ROOT: &str = "/ipc";

/// `input/`: what reaches the runner (task, results, follow-ups).
pub const INPUT: &str = "input";
/// `output/`: the runner's stream chunks, status and result.
pub const OUTPUT: &str = "output";
/// `spawn/`: sub-agent requests.
pub const SPAWN: &str = "spawn";
/// `tools/`: command and MCP requests and results (a sub-directory per skill sidecar).
pub const TOOLS: &str = "tools";
/// `messages/`: chat messages the agent sends.
pub const MESSAGES: &str = "messages";
/// `schedules/`: schedule upserts the agent requests.
pub const SCHEDULES: &str = "schedules";

/// Every sub-directory of the IPC root, created by the bridge at start.
pub const DIRS: [&str; 6] = [INPUT, OUTPUT, SPAWN, TOOLS, MESSAGES, SCHEDULES];

/// The run's task, in `input/`.
pub const TASK: &str = "task.json";
/// The final result, in `output/`; written last, after every chunk.
pub const RESULT: &str = "result.json";
/// The latest status update, in `output/`.
pub const STATUS: &str = "status.json";
/// An empty file at the root the runner writes after `result.json` (or after failing to):
/// the sidecars' cue to exit.
pub const DONE: &str = "done";
/// The MCP tool manifest, in `tools/`.
pub const MCP_TOOLS: &str = "mcp-tools.json";

/// `stream-<n>.json`, the `n`th streamed chunk.
pub fn stream_chunk(n: u64) -> String {
    format!("stream-{n}.json")
}

/// `n` of `stream-<n>.json`.
pub fn stream_index(name: &str) -> Option<u64> {
    name.strip_prefix("stream-")?.strip_suffix(".json")?.parse().ok()
}

/// `spawn-<id>.json` in `spawn/`.
pub fn spawn_request(id: &str) -> String {
    format!("spawn-{id}.json")
}

/// `spawn-result-<id>.json` in `input/`.
pub fn spawn_result(id: &str) -> String {
    format!("spawn-result-{id}.json")
}

/// `schedule-<id>.json` in `schedules/`.
pub fn schedule_request(id: &str) -> String {
    format!("schedule-{id}.json")
}

/// `schedule-result-<id>.json` in `input/`.
pub fn schedule_result(id: &str) -> String {
    format!("schedule-result-{id}.json")
}

/// `followup-<nnnnnn>.json` in `input/`: zero-padded so names sort in arrival order.
pub fn followup(n: u64) -> String {
    format!("followup-{n:06}.json")
}

/// `send-<n>.json` in `messages/`.
pub fn send_message(n: u64) -> String {
    format!("send-{n}.json")
}

/// Prefix of a command request's file name.
pub const EXEC_REQUEST_PREFIX: &str = "exec-request-";

/// `exec-request-<id>.json` in `tools/` or `tools/<skill>/`.
pub fn exec_request(id: &str) -> String {
    format!("{EXEC_REQUEST_PREFIX}{id}.json")
}

/// `exec-result-<id>.json`, beside its request.
pub fn exec_result(id: &str) -> String {
    format!("exec-result-{id}.json")
}

/// `id` of `exec-request-<id>.json` (never empty).
pub fn exec_request_id(name: &str) -> Option<&str> {
    name.strip_prefix(EXEC_REQUEST_PREFIX)?.strip_suffix(".json").filter(|id| !id.is_empty())
}

/// `mcp-request-<id>.json` in `tools/`.
pub fn mcp_request(id: &str) -> String {
    format!("mcp-request-{id}.json")
}

/// `mcp-result-<id>.json`, beside its request.
pub fn mcp_result(id: &str) -> String {
    format!("mcp-result-{id}.json")
}

/// `id` of `mcp-request-<id>.json` (never empty).
pub fn mcp_request_id(name: &str) -> Option<&str> {
    name.strip_prefix("mcp-request-")?.strip_suffix(".json").filter(|id| !id.is_empty())
}

/// The IPC volume at `root`: the paths of its directories and well-known files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The volume mounted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The mount point.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `input/`.
    pub fn input(&self) -> PathBuf {
        self.root.join(INPUT)
    }

    /// `output/`.
    pub fn output(&self) -> PathBuf {
        self.root.join(OUTPUT)
    }

    /// `tools/`.
    pub fn tools(&self) -> PathBuf {
        self.root.join(TOOLS)
    }

    /// `spawn/`.
    pub fn spawn(&self) -> PathBuf {
        self.root.join(SPAWN)
    }

    /// `messages/`.
    pub fn messages(&self) -> PathBuf {
        self.root.join(MESSAGES)
    }

    /// `schedules/`.
    pub fn schedules(&self) -> PathBuf {
        self.root.join(SCHEDULES)
    }

    /// `input/task.json`.
    pub fn task(&self) -> PathBuf {
        self.input().join(TASK)
    }

    /// `output/result.json`.
    pub fn result(&self) -> PathBuf {
        self.output().join(RESULT)
    }

    /// `done`.
    pub fn done(&self) -> PathBuf {
        self.root.join(DONE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_their_parsers() {
        assert_eq!(stream_index(&stream_chunk(12)), Some(12));
        assert_eq!(stream_index("stream-x.json"), None);
        assert_eq!(exec_request_id(&exec_request("42")), Some("42"));
        assert_eq!(exec_request_id("exec-request-.json"), None);
        assert_eq!(exec_request_id(&exec_result("42")), None);
        assert_eq!(mcp_request_id(&mcp_request("7")), Some("7"));
        assert_eq!(mcp_request_id(&mcp_result("7")), None);
    }

    #[test]
    fn followups_sort_in_arrival_order() {
        let mut names: Vec<String> = [10, 9, 100, 1].into_iter().map(followup).collect();
        names.sort();
        assert_eq!(
            names,
            ["followup-000001.json", "followup-000009.json", "followup-000010.json", "followup-000100.json"]
        );
    }

    #[test]
    fn the_layout_places_well_known_files() {
        let ipc = Layout::new(DEFAULT_ROOT);
        assert_eq!(ipc.task(), Path::new("/ipc/input/task.json"));
        assert_eq!(ipc.result(), Path::new("/ipc/output/result.json"));
        assert_eq!(ipc.tools().join(MCP_TOOLS), Path::new("/ipc/tools/mcp-tools.json"));
        assert_eq!(DIRS.len(), 6);
    }
}
