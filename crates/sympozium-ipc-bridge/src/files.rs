//! Which `/ipc` files are published where, and in which order: pure functions over paths.

use std::path::{Path, PathBuf};

use sympozium_bus::topics;
use sympozium_protocol::ipc;

/// Sub-directories of `/ipc` the bridge creates.
pub const DIRS: [&str; 6] = ipc::DIRS;

/// A file to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// Where it is.
    pub path: PathBuf,
    /// The topic it goes to.
    pub topic: &'static str,
    /// Ordering key within one scan (lower first).
    pub order: (u8, u64, String),
}

fn is_ignored(name: &str) -> bool {
    name.starts_with('.') || name.ends_with(".tmp") || name.ends_with('~')
}

/// The index `n` of `stream-<n>.json`.
pub fn stream_index(name: &str) -> Option<u64> {
    ipc::stream_index(name)
}

/// Classifies a file by its path relative to the IPC root; `None` = not published.
///
/// Order inside a scan: requests (messages, schedules, spawn, tools) first, then the
/// stream chunks by index, then status, and `output/result.json` last of all.
pub fn classify(root: &Path, path: &Path) -> Option<Outgoing> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
    let name = *parts.last()?;
    if is_ignored(name) {
        return None;
    }
    let make = |topic, rank, index| {
        Some(Outgoing { path: path.to_path_buf(), topic, order: (rank, index, name.to_string()) })
    };
    match parts.as_slice() {
        [ipc::MESSAGES, _] => make(topics::CHANNEL_MESSAGE_SEND, 0, 0),
        [ipc::SCHEDULES, _] => make(topics::SCHEDULE_UPSERT, 1, 0),
        [ipc::SPAWN, _] => make(topics::AGENT_SPAWN_REQUEST, 2, 0),
        [ipc::TOOLS, file] | [ipc::TOOLS, _, file] if file.starts_with(ipc::EXEC_REQUEST_PREFIX) => {
            make(topics::TOOL_EXEC_REQUEST, 3, 0)
        }
        [ipc::OUTPUT, file] if stream_index(file).is_some() => {
            make(topics::AGENT_STREAM_CHUNK, 4, stream_index(file).unwrap_or_default())
        }
        [ipc::OUTPUT, ipc::STATUS] => make(topics::AGENT_STATUS_UPDATE, 5, 0),
        [ipc::OUTPUT, ipc::RESULT] => make(topics::AGENT_RUN_COMPLETED, 6, 0),
        _ => None,
    }
}

/// Every publishable file under `root` (two levels deep), in publishing order.
pub fn scan(root: &Path) -> Vec<Outgoing> {
    let mut found = Vec::new();
    for dir in [ipc::MESSAGES, ipc::SCHEDULES, ipc::SPAWN, ipc::TOOLS, ipc::OUTPUT] {
        collect(root, &root.join(dir), 0, &mut found);
    }
    found.sort_by(|a, b| a.order.cmp(&b.order));
    found
}

fn collect(root: &Path, dir: &Path, depth: u8, found: &mut Vec<Outgoing>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() && depth == 0 => collect(root, &path, 1, found),
            Ok(t) if t.is_file() => found.extend(classify(root, &path)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn topic(p: &str) -> Option<&'static str> {
        classify(Path::new("/ipc"), &Path::new("/ipc").join(p)).map(|o| o.topic)
    }

    #[test]
    fn files_map_to_the_spec_topics() {
        assert_eq!(topic("output/result.json"), Some("agent.run.completed"));
        assert_eq!(topic("output/stream-12.json"), Some("agent.stream.chunk"));
        assert_eq!(topic("output/status.json"), Some("agent.status.update"));
        assert_eq!(topic("messages/send-1.json"), Some("channel.message.send"));
        assert_eq!(topic("schedules/schedule-1.json"), Some("schedule.upsert"));
        assert_eq!(topic("spawn/spawn-1.json"), Some("agent.spawn.request"));
        assert_eq!(topic("tools/exec-request-1.json"), Some("tool.exec.request"));
        assert_eq!(topic("tools/k8s/exec-request-1.json"), Some("tool.exec.request"));
    }

    #[test]
    fn temporary_answers_and_unknown_files_are_not_published() {
        for p in [
            "output/result.json.tmp",
            "messages/send-1.json.tmp",
            "tools/exec-result-1.json",
            "tools/k8s/exec-result-1.json",
            "input/spawn-result-1.json",
            "output/stream-x.json",
            "output/other.json",
            "done",
            "messages/.hidden",
        ] {
            assert_eq!(topic(p), None, "{p}");
        }
    }

    #[test]
    fn stream_chunks_go_by_number_and_the_result_goes_last() {
        let dir = tempfile::tempdir().unwrap();
        for d in DIRS {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        for f in [
            "output/result.json",
            "output/stream-10.json",
            "output/stream-9.json",
            "output/stream-0.json",
            "spawn/spawn-1.json",
        ] {
            std::fs::write(dir.path().join(f), "{}").unwrap();
        }
        let names: Vec<_> = scan(dir.path())
            .iter()
            .map(|o| o.path.strip_prefix(dir.path()).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "spawn/spawn-1.json",
                "output/stream-0.json",
                "output/stream-9.json",
                "output/stream-10.json",
                "output/result.json"
            ]
        );
    }
}
