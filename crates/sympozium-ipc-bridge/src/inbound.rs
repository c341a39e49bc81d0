//! Answers for the runner: sub-agent outcomes become `input/spawn-result-<id>.json`,
//! schedule outcomes `input/schedule-result-<id>.json`, follow-up messages
//! `input/followup-<n>.json`, and command results published on the bus
//! `tools/[<skill>/]exec-result-<id>.json`.

use std::path::{Path, PathBuf};

use sympozium_bus::Bus;
use sympozium_bus::payloads::{ScheduleResult, SpawnResult};
use sympozium_protocol::ipc;

/// A request id safe to use in a file name.
fn safe_id(id: &str) -> Option<&str> {
    (!id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then_some(id)
}

/// Writes `value` to `path` through a temporary file and a rename (the reader never sees
/// half a file).
pub(crate) fn write_atomic(path: &Path, value: &serde_json::Value) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, serde_json::to_vec(value).unwrap_or_default())?;
    std::fs::rename(&tmp, path)
}

/// Writes every spawn result on `topic` (the run's `agent.spawn.result.<ns>.<run>`) until
/// aborted.
pub(crate) async fn spawn_results(bus: Bus, root: PathBuf, topic: String) {
    let mut results = bus.replay(&topic);
    while let Some(envelope) = results.recv().await {
        let result: SpawnResult = match serde_json::from_value(envelope.data.clone()) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a spawn result that does not parse");
                continue;
            }
        };
        let Some(id) = safe_id(&result.id) else {
            tracing::warn!(id = %result.id, "ignoring a spawn result with an unusable id");
            continue;
        };
        let path = root.join(ipc::INPUT).join(ipc::spawn_result(id));
        match serde_json::to_value(&result).map(|v| write_atomic(&path, &v)) {
            Ok(Ok(())) => tracing::info!(%id, status = %result.status, "sub-agent result delivered"),
            Ok(Err(e)) => tracing::warn!(%id, error = %e, "writing the sub-agent result failed"),
            Err(e) => tracing::warn!(%id, error = %e, "encoding the sub-agent result failed"),
        }
    }
}

/// Writes the outcome of every schedule request the run made (from `topic`, its
/// `schedule.upsert.result.<ns>.<run>`) where its `schedule_task` call waits for it.
pub(crate) async fn schedule_results(bus: Bus, root: PathBuf, topic: String) {
    let mut results = bus.replay(&topic);
    while let Some(envelope) = results.recv().await {
        let result: ScheduleResult = match serde_json::from_value(envelope.data.clone()) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a schedule result that does not parse");
                continue;
            }
        };
        let Some(id) = safe_id(&result.id) else {
            tracing::warn!(id = %result.id, "ignoring a schedule result with an unusable id");
            continue;
        };
        let path = root.join(ipc::INPUT).join(ipc::schedule_result(id));
        match serde_json::to_value(&result).map(|v| write_atomic(&path, &v)) {
            Ok(Ok(())) => tracing::info!(%id, accepted = result.accepted, "schedule result delivered"),
            Ok(Err(e)) => tracing::warn!(%id, error = %e, "writing the schedule result failed"),
            Err(e) => tracing::warn!(%id, error = %e, "encoding the schedule result failed"),
        }
    }
}

/// Writes every follow-up message on `topic` (the run's `agent.followup.<ns>.<run>`) as
/// `input/followup-<n>.json`, numbered in arrival order so the runner reads them in order.
pub(crate) async fn followups(bus: Bus, root: PathBuf, topic: String) {
    let mut messages = bus.replay(&topic);
    // A restarted bridge continues the numbering of the files already there (its consumer
    // resumes after what the last one acknowledged).
    let mut n: u64 = std::fs::read_dir(root.join("input"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    name.strip_prefix("followup-")?.strip_suffix(".json")?.parse::<u64>().ok()
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    while let Some(envelope) = messages.recv().await {
        n += 1;
        let path = root.join(ipc::INPUT).join(ipc::followup(n));
        match write_atomic(&path, &envelope.data) {
            Ok(()) => tracing::info!(n, "follow-up delivered"),
            Err(e) => tracing::warn!(n, error = %e, "writing the follow-up failed"),
        }
    }
}

/// Writes command results (from `topic`, the run's `tool.exec.result.<ns>.<run>`) where the
/// runner waits for them.
pub(crate) async fn tool_results(bus: Bus, root: PathBuf, topic: String) {
    let mut results = bus.replay(&topic);
    while let Some(envelope) = results.recv().await {
        let Some(id) = envelope.data["id"].as_str().and_then(safe_id) else {
            tracing::warn!("ignoring a command result without a usable id");
            continue;
        };
        let mut dir = root.join(ipc::TOOLS);
        if let Some(skill) = envelope.data["skill"].as_str() {
            let Some(skill) = safe_id(skill) else {
                tracing::warn!(%id, "ignoring a command result with an unusable skill name");
                continue;
            };
            dir = dir.join(skill);
        }
        if let Err(e) = std::fs::create_dir_all(&dir)
            .and_then(|()| write_atomic(&dir.join(ipc::exec_result(id)), &envelope.data))
        {
            tracing::warn!(%id, error = %e, "writing the command result failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_before_they_name_a_file() {
        assert_eq!(safe_id("1732312312"), Some("1732312312"));
        assert_eq!(safe_id("../../etc/passwd"), None);
        assert_eq!(safe_id(""), None);
    }
}
