//! Small helpers: atomic JSON writes for the IPC directories, timestamps, truncation.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Nanoseconds since the epoch, strictly increasing within the process so two files written
/// in the same nanosecond still get distinct names.
pub fn unix_nanos() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(actual) => prev = actual,
        }
    }
}

/// RFC 3339 UTC timestamp with nanoseconds (the event envelope's `timestamp`).
pub fn rfc3339_now() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let compact = crate::llm::amz_date_pub(d.as_secs());
    // compact = YYYYMMDDTHHMMSSZ
    format!(
        "{}-{}-{}T{}:{}:{}.{:09}Z",
        &compact[0..4],
        &compact[4..6],
        &compact[6..8],
        &compact[9..11],
        &compact[11..13],
        &compact[13..15],
        d.subsec_nanos()
    )
}

/// Writes JSON to `path` through a temporary file and a rename, so a watcher (the IPC bridge,
/// a sidecar) never reads a half-written file.
pub fn write_json_atomic(path: &Path, value: &Value, pretty: bool) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let text = if pretty { serde_json::to_string_pretty(value) } else { serde_json::to_string(value) }
        .map_err(std::io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Cuts `s` to `max` characters, appending a note when something was cut.
pub fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((end, _)) => {
            format!("{}\n... (truncated, {} more characters)", &s[..end], s[end..].chars().count())
        }
    }
}
