//! What the run leaves behind for the rest of the platform: streamed chunks
//! (`<ipc>/output/stream-<n>.json`), `<ipc>/output/result.json`, the `<ipc>/done` sentinel,
//! and the stdout markers the controller reads from the container log.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::llm::{StreamSink, Usage};
use crate::prompt::{MEMORY_END, MEMORY_START};
use crate::util::write_json_atomic;
use sympozium_protocol::ipc;

pub use sympozium_protocol::markers::{RESULT_END, RESULT_START};

/// Coalesce deltas until this many bytes…
const CHUNK_BYTES: usize = 32;
/// …or this much time has passed since the last chunk, so readers see text promptly
/// without one file per token.
const CHUNK_INTERVAL: Duration = Duration::from_millis(100);

/// Removes legacy memory blocks (`__SYMPOZIUM_MEMORY__ … __SYMPOZIUM_MEMORY_END__`) from
/// streamed text, even when a marker is split across deltas, so users never see them.
#[derive(Default)]
pub struct MarkerFilter {
    inside: bool,
    held: String,
}

/// Length of the longest suffix of `text` that is a proper prefix of `marker` (ASCII).
fn partial_marker(text: &str, marker: &str) -> usize {
    (1..marker.len().min(text.len() + 1))
        .rev()
        .find(|&n| text.is_char_boundary(text.len() - n) && text.ends_with(&marker[..n]))
        .unwrap_or(0)
}

impl MarkerFilter {
    /// Feeds a delta; returns the text that is safe to show.
    pub fn feed(&mut self, delta: &str) -> String {
        self.held.push_str(delta);
        let mut out = String::new();
        loop {
            let marker = if self.inside { MEMORY_END } else { MEMORY_START };
            if let Some(i) = self.held.find(marker) {
                if !self.inside {
                    out.push_str(&self.held[..i]);
                }
                self.held.drain(..i + marker.len());
                self.inside = !self.inside;
                continue;
            }
            let keep = partial_marker(&self.held, marker);
            let cut = self.held.len() - keep;
            let released: String = self.held.drain(..cut).collect();
            if !self.inside {
                out.push_str(&released);
            }
            return out;
        }
    }

    /// Ends a turn: returns held-back text (an unclosed block is dropped to its end).
    pub fn finish(&mut self) -> String {
        let held = std::mem::take(&mut self.held);
        let inside = std::mem::replace(&mut self.inside, false);
        if inside { String::new() } else { held }
    }
}

/// Writes streamed text as numbered chunk files, in order.
pub struct ChunkWriter {
    dir: PathBuf,
    next: u64,
    buffer: String,
    last_flush: Instant,
    errors: u64,
    filter: Option<MarkerFilter>,
}

impl ChunkWriter {
    /// Chunks go to `<ipc>/output`.
    pub fn new(ipc: &Path) -> Self {
        Self {
            dir: ipc.join(ipc::OUTPUT),
            next: 0,
            buffer: String::new(),
            last_flush: Instant::now(),
            errors: 0,
            filter: None,
        }
    }

    /// Hides legacy memory blocks from the stream (they are stripped from the response too).
    pub fn hide_memory_blocks(&mut self) {
        self.filter = Some(MarkerFilter::default());
    }

    /// How many chunks were written.
    pub fn chunks(&self) -> u64 {
        self.next
    }

    fn write_chunk(&mut self, content: &str) {
        let path = self.dir.join(ipc::stream_chunk(self.next));
        let value = json!({"type": "text", "content": content, "index": self.next});
        match write_json_atomic(&path, &value, false) {
            Ok(()) => self.next += 1,
            Err(e) => {
                // Streaming is best effort; the full answer still lands in result.json.
                self.errors += 1;
                if self.errors == 1 {
                    tracing::warn!(error = %e, "cannot write stream chunk");
                }
            }
        }
    }

    /// Writes the whole answer as one chunk when nothing was streamed.
    pub fn write_whole(&mut self, response: &str) {
        if self.next == 0 && !response.is_empty() {
            self.write_chunk(response);
        }
    }
}

impl StreamSink for ChunkWriter {
    fn text(&mut self, delta: &str) {
        match &mut self.filter {
            Some(filter) => {
                let visible = filter.feed(delta);
                self.buffer.push_str(&visible);
            }
            None => self.buffer.push_str(delta),
        }
        if self.buffer.len() >= CHUNK_BYTES || self.last_flush.elapsed() >= CHUNK_INTERVAL {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if let Some(filter) = &mut self.filter {
            let rest = filter.finish();
            self.buffer.push_str(&rest);
        }
        if !self.buffer.is_empty() {
            let content = std::mem::take(&mut self.buffer);
            self.write_chunk(&content);
        }
        self.last_flush = Instant::now();
    }
}

/// Run metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Tokens.
    pub usage: Usage,
    /// Tool calls executed.
    pub tool_calls: u64,
}

/// Builds the result document.
pub fn result_json<E: std::fmt::Display>(
    outcome: &Result<String, E>,
    stats: Stats,
    duration: Duration,
) -> Value {
    let metrics = json!({
        "durationMs": duration.as_millis() as u64,
        "inputTokens": stats.usage.input,
        "outputTokens": stats.usage.output,
        "toolCalls": stats.tool_calls,
    });
    match outcome {
        Ok(response) => json!({"status": "success", "response": response, "metrics": metrics}),
        Err(error) => json!({"status": "error", "error": error.to_string(), "metrics": metrics}),
    }
}

/// Writes `result.json` (indented) and then `<ipc>/done`. Errors are returned for logging;
/// the caller still prints the stdout marker.
pub fn write_result(ipc: &Path, result: &Value) -> std::io::Result<()> {
    let written = write_json_atomic(&ipc.join(ipc::OUTPUT).join(ipc::RESULT), result, true);
    // `done` tells sidecars to exit even when the result could not be written.
    let done = std::fs::write(ipc.join(ipc::DONE), b"");
    written.and(done)
}

/// The stdout line the controller parses.
pub fn result_marker(result: &Value) -> String {
    format!("\n{RESULT_START}{result}{RESULT_END}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_blocks_never_reach_the_stream() {
        let text = "Answer.\n__SYMPOZIUM_MEMORY__\nsecret notes\n__SYMPOZIUM_MEMORY_END__\nTail.";
        for size in [1, 3, 7, 20, 200] {
            let mut f = MarkerFilter::default();
            let chars: Vec<char> = text.chars().collect();
            let mut out = String::new();
            for piece in chars.chunks(size) {
                out.push_str(&f.feed(&piece.iter().collect::<String>()));
            }
            out.push_str(&f.finish());
            assert_eq!(out, "Answer.\n\nTail.", "piece size {size}");
        }
        let mut f = MarkerFilter::default();
        let mut out = f.feed("keep __SYMPOZIUM_MEM");
        out.push_str(&f.feed("ORY__ unclosed"));
        out.push_str(&f.finish());
        assert_eq!(out, "keep ");
        let mut f = MarkerFilter::default();
        assert_eq!(f.feed("__SYMP") + &f.finish(), "__SYMP");
    }
}
