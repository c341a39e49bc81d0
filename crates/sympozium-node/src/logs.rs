//! Container logs on disk: `<pod dir>/logs/<container>/<attempt>.log`, one line per
//! output line in the CRI format `<RFC 3339 time> <stdout|stderr> F <text>`; a
//! `<attempt>.done` marker tells followers the attempt has ended.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

/// Directory of a container's logs.
pub fn container_dir(pod_dir: &Path, container: &str) -> PathBuf {
    pod_dir.join("logs").join(container)
}

/// The attempt numbers with a log, ascending.
pub fn attempts(dir: &Path) -> Vec<u32> {
    let mut out: Vec<u32> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten().filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok()).collect()
        })
        .unwrap_or_default();
    out.sort_unstable();
    out
}

/// Copies a process's stdout or stderr into the attempt's log file, line by line.
pub async fn capture(
    reader: impl AsyncRead + Unpin,
    stream: &'static str,
    file: std::sync::Arc<Mutex<tokio::fs::File>>,
) {
    let mut lines = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches('\n');
                let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
                let mut f = file.lock().await;
                let _ = f.write_all(format!("{ts} {stream} F {text}\n").as_bytes()).await;
                let _ = f.flush().await;
            }
        }
    }
}

/// What the log endpoint was asked for.
#[derive(Clone, Debug, Default)]
pub struct LogQuery {
    /// Keep streaming until the attempt ends.
    pub follow: bool,
    /// Only the last N lines.
    pub tail_lines: Option<usize>,
    /// Prefix lines with their RFC 3339 time.
    pub timestamps: bool,
    /// Only lines newer than this many seconds.
    pub since_seconds: Option<i64>,
    /// Stop after this many bytes.
    pub limit_bytes: Option<usize>,
}

fn render(line: &str, q: &LogQuery, since: Option<chrono::DateTime<chrono::Utc>>) -> Option<String> {
    let mut parts = line.splitn(4, ' ');
    let ts = parts.next()?;
    let _stream = parts.next()?;
    let _tag = parts.next()?;
    let text = parts.next().unwrap_or("");
    if let Some(since) = since {
        let t = chrono::DateTime::parse_from_rfc3339(ts).ok()?;
        if t < since {
            return None;
        }
    }
    Some(if q.timestamps { format!("{ts} {text}\n") } else { format!("{text}\n") })
}

/// The log of one attempt as a byte stream (following new lines when asked).
pub fn read(log: PathBuf, q: LogQuery) -> impl Stream<Item = Result<String, std::io::Error>> {
    let done = log.with_extension("done");
    let since = q.since_seconds.map(|s| chrono::Utc::now() - chrono::Duration::seconds(s));
    async_stream(move |tx| async move {
        let mut file = tokio::fs::File::open(&log).await?;
        let mut text = String::new();
        file.read_to_string(&mut text).await?;
        let mut lines: Vec<&str> = text.lines().collect();
        if let Some(n) = q.tail_lines {
            lines = lines.split_off(lines.len().saturating_sub(n));
        }
        let mut sent = 0usize;
        let limit = q.limit_bytes.unwrap_or(usize::MAX);
        for line in lines {
            if let Some(out) = render(line, &q, since) {
                sent += out.len();
                if tx.send(Ok(out)).await.is_err() || sent >= limit {
                    return Ok(());
                }
            }
        }
        if !q.follow {
            return Ok(());
        }
        let mut offset = text.len() as u64;
        let mut partial = String::new();
        loop {
            // The attempt ended, or its pod is gone (directory removed).
            let finished = done.exists() || !log.exists();
            file.seek(std::io::SeekFrom::Start(offset)).await?;
            let mut more = String::new();
            let n = file.read_to_string(&mut more).await?;
            offset += n as u64;
            partial.push_str(&more);
            while let Some(i) = partial.find('\n') {
                let line: String = partial.drain(..=i).collect();
                if let Some(out) = render(line.trim_end_matches('\n'), &q, since) {
                    sent += out.len();
                    if tx.send(Ok(out)).await.is_err() || sent >= limit {
                        return Ok(());
                    }
                }
            }
            if finished && n == 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// A stream fed by a task through a channel (the task's error ends the stream with it).
fn async_stream<F, Fut>(f: F) -> impl Stream<Item = Result<String, std::io::Error>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<String, std::io::Error>>) -> Fut,
    Fut: std::future::Future<Output = Result<(), std::io::Error>> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let fut = f(tx.clone());
    tokio::spawn(async move {
        if let Err(e) = fut.await {
            let _ = tx.send(Err(e)).await;
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}
