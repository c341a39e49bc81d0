//! `kubectl exec` and `kubectl attach` over SPDY: the remote command protocols
//! (`v4.channel.k8s.io` down to `channel.k8s.io`). The client opens one stream per
//! channel, named by its `streamType` header — `error`, `stdin`, `stdout`, `stderr`,
//! `resize` (terminal size as JSON `{"Width":…,"Height":…}` objects) — and the node ends the
//! session by writing the outcome to `error` (v4: a `metav1.Status`, whose
//! `NonZeroExitCode` cause carries the exit code kubectl exits with).

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustix::process::{Pid, Signal};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::session::{Session, Stream, StreamWriter, header};
use super::{ExecTarget, pty};

/// What the request asked for (query parameters `command`, `input`, `output`, `error`, `tty`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The command (exec only).
    pub command: Vec<String>,
    /// Attach stdin.
    pub stdin: bool,
    /// Attach stdout.
    pub stdout: bool,
    /// Attach stderr (never with a terminal: its output goes to stdout).
    pub stderr: bool,
    /// Allocate a terminal.
    pub tty: bool,
}

impl Options {
    /// Parses a raw query string.
    pub fn from_query(query: &str) -> Options {
        let mut o = Options::default();
        let on = |v: &str| v == "1" || v.eq_ignore_ascii_case("true");
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "command" => o.command.push(v.into_owned()),
                "input" | "stdin" => o.stdin = on(&v),
                "output" | "stdout" => o.stdout = on(&v),
                "error" | "stderr" => o.stderr = on(&v),
                "tty" => o.tty = on(&v),
                _ => {}
            }
        }
        if o.tty {
            o.stderr = false;
        }
        o
    }

    fn expected_streams(&self, protocol: Protocol) -> usize {
        1 + usize::from(self.stdin)
            + usize::from(self.stdout)
            + usize::from(self.stderr)
            + usize::from(self.tty && protocol >= Protocol::V3)
    }
}

/// A remote command protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    /// `channel.k8s.io`.
    V1,
    /// `v2.channel.k8s.io`.
    V2,
    /// `v3.channel.k8s.io` (terminal resizing).
    V3,
    /// `v4.channel.k8s.io` (status as JSON, exit codes).
    V4,
}

/// Picks the newest protocol the client offers (`X-Stream-Protocol-Version` values).
pub fn negotiate(offered: &[String]) -> Option<(Protocol, &'static str)> {
    const OURS: [(Protocol, &str); 4] = [
        (Protocol::V4, "v4.channel.k8s.io"),
        (Protocol::V3, "v3.channel.k8s.io"),
        (Protocol::V2, "v2.channel.k8s.io"),
        (Protocol::V1, "channel.k8s.io"),
    ];
    OURS.into_iter().find(|(_, name)| offered.iter().any(|o| o.trim() == *name))
}

#[derive(Default)]
struct Streams {
    error: Option<Stream>,
    stdin: Option<Stream>,
    stdout: Option<Stream>,
    stderr: Option<Stream>,
    resize: Option<Stream>,
}

/// Waits for the client's streams (up to 30 s, as the kubelet does).
async fn collect(session: &mut Session, expected: usize) -> Option<Streams> {
    let mut s = Streams::default();
    let mut got = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got < expected {
        let stream = match tokio::time::timeout_at(deadline, session.streams.recv()).await {
            Ok(Some(stream)) => stream,
            _ => return None,
        };
        let slot = match header(&stream.headers, "streamtype").unwrap_or("") {
            "error" => &mut s.error,
            "stdin" => &mut s.stdin,
            "stdout" => &mut s.stdout,
            "stderr" => &mut s.stderr,
            "resize" => &mut s.resize,
            other => {
                tracing::debug!(stream_type = other, "exec: unexpected stream");
                stream.writer.reset().await;
                continue;
            }
        };
        *slot = Some(stream);
        got += 1;
    }
    Some(s)
}

/// How the command ended, for the error stream.
enum Outcome {
    Exited(i32),
    Failed(String),
}

async fn report(error: Option<&Stream>, protocol: Protocol, outcome: Outcome, what: &str) {
    let Some(error) = error else { return };
    let body = match (&outcome, protocol) {
        (Outcome::Exited(0), Protocol::V4) => json!({"metadata": {}, "status": "Success"}).to_string(),
        (Outcome::Exited(0), _) => String::new(),
        (Outcome::Exited(code), Protocol::V4) => json!({
            "metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: error executing {what}, exit code {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        })
        .to_string(),
        (Outcome::Exited(code), _) => format!("command terminated with non-zero exit code: exit code {code}"),
        (Outcome::Failed(msg), Protocol::V4) => {
            json!({"metadata": {}, "status": "Failure", "message": msg, "reason": "InternalError", "code": 500})
                .to_string()
        }
        (Outcome::Failed(msg), _) => msg.clone(),
    };
    if !body.is_empty() {
        let _ = error.writer.write(body.as_bytes()).await;
    }
    error.writer.close().await;
}

async fn pump_in(mut rx: mpsc::Receiver<Bytes>, mut w: impl AsyncWrite + Unpin) {
    while let Some(b) = rx.recv().await {
        if w.write_all(&b).await.is_err() || w.flush().await.is_err() {
            break;
        }
    }
}

async fn pump_out(mut r: impl AsyncRead + Unpin, w: StreamWriter) {
    let mut buf = vec![0u8; 32 * 1024];
    // A terminal's master reports EIO once the command and its children closed the slave.
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 || w.write(&buf[..n]).await.is_err() {
            break;
        }
    }
    w.close().await;
}

/// Applies the client's terminal sizes as they come.
async fn resizes(mut rx: mpsc::Receiver<Bytes>, master: std::fs::File) {
    #[derive(serde::Deserialize)]
    struct Size {
        #[serde(rename = "Width")]
        width: u16,
        #[serde(rename = "Height")]
        height: u16,
    }
    let mut pending: Vec<u8> = Vec::new();
    while let Some(b) = rx.recv().await {
        pending.extend_from_slice(&b);
        let mut it = serde_json::Deserializer::from_slice(&pending).into_iter::<Size>();
        let mut used = 0;
        while let Some(Ok(size)) = it.next() {
            used = it.byte_offset();
            let _ = pty::resize(&master, size.width, size.height);
        }
        pending.drain(..used);
        if pending.len() > 4096 {
            pending.clear();
        }
    }
}

fn exit_code(status: std::io::Result<std::process::ExitStatus>) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => s.code().or_else(|| s.signal().map(|sig| 128 + sig)).unwrap_or(255),
        Err(_) => 255,
    }
}

/// Runs `opts.command` in the container and relays it until it ends.
pub async fn exec(mut session: Session, target: Arc<ExecTarget>, opts: Options, protocol: Protocol) {
    let Some(streams) = collect(&mut session, opts.expected_streams(protocol)).await else {
        tracing::debug!("exec: the client did not open its streams");
        session.close().await;
        return;
    };
    let what = format!("command {:?}", opts.command);
    let (outcome, streams) = run(&mut session, &target, &opts, streams).await;
    report(streams.error.as_ref(), protocol, outcome, &what).await;
    session.close().await;
}

async fn run(
    session: &mut Session,
    target: &ExecTarget,
    opts: &Options,
    mut streams: Streams,
) -> (Outcome, Streams) {
    let Some(program) = crate::sandbox::program_pid(target.sandbox_pid) else {
        return (Outcome::Failed("the container is not running".into()), streams);
    };
    if opts.command.is_empty() {
        return (Outcome::Failed("no command given (query parameter `command`)".into()), streams);
    }
    let (exe, args) = super::enter_command(target, program, &opts.command, opts.tty);
    let mut cmd = tokio::process::Command::new(&exe);
    cmd.args(&args).env_clear().envs(target.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut pumps = Vec::new();
    let mut terminal = None;
    if opts.tty {
        if !target.env.iter().any(|(k, _)| k == "TERM") {
            cmd.env("TERM", "xterm");
        }
        let p = match pty::open() {
            Ok(p) => p,
            Err(e) => return (Outcome::Failed(format!("allocating a terminal: {e}")), streams),
        };
        let dup = |fd: &std::os::fd::OwnedFd| fd.try_clone().map(Stdio::from);
        match (dup(&p.slave), dup(&p.slave), dup(&p.slave)) {
            (Ok(i), Ok(o), Ok(e)) => {
                cmd.stdin(i).stdout(o).stderr(e);
            }
            _ => return (Outcome::Failed("duplicating the terminal".into()), streams),
        }
        terminal = Some(p);
    } else {
        // Its own process group, so everything it started goes when the client leaves.
        cmd.process_group(0);
        cmd.stdin(if streams.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(if streams.stdout.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stderr(if streams.stderr.is_some() { Stdio::piped() } else { Stdio::null() });
    }
    let mut child = match cmd.kill_on_drop(true).spawn() {
        Ok(c) => c,
        Err(e) => return (Outcome::Failed(format!("starting {exe}: {e}")), streams),
    };
    let pid = child.id();
    if let Some(p) = terminal {
        // Only the command keeps the slave open, so its end is the master's EOF.
        drop(p.slave);
        let master = std::fs::File::from(p.master);
        let (Ok(reader), Ok(writer), Ok(sizer)) =
            (master.try_clone(), master.try_clone(), master.try_clone())
        else {
            return (Outcome::Failed("duplicating the terminal".into()), streams);
        };
        if let Some(out) = &streams.stdout {
            pumps.push(tokio::spawn(pump_out(tokio::fs::File::from_std(reader), out.writer.clone())));
        }
        if let Some(s) = streams.stdin.as_mut() {
            let rx = std::mem::replace(&mut s.data, mpsc::channel(1).1);
            tokio::spawn(pump_in(rx, tokio::fs::File::from_std(writer)));
        }
        if let Some(r) = streams.resize.as_mut() {
            let rx = std::mem::replace(&mut r.data, mpsc::channel(1).1);
            tokio::spawn(resizes(rx, sizer));
        }
        drop(master);
    } else {
        if let (Some(s), Some(w)) = (streams.stdin.as_mut(), child.stdin.take()) {
            let rx = std::mem::replace(&mut s.data, mpsc::channel(1).1);
            tokio::spawn(pump_in(rx, w));
        }
        if let (Some(s), Some(r)) = (&streams.stdout, child.stdout.take()) {
            pumps.push(tokio::spawn(pump_out(r, s.writer.clone())));
        }
        if let (Some(s), Some(r)) = (&streams.stderr, child.stderr.take()) {
            pumps.push(tokio::spawn(pump_out(r, s.writer.clone())));
        }
    }
    let status = loop {
        tokio::select! {
            status = child.wait() => break Some(status),
            more = session.streams.recv() => {
                if more.is_none() {
                    break None;
                }
            }
        }
    };
    let Some(status) = status else {
        // The client went away: the command goes too.
        if let Some(p) = pid.and_then(|p| Pid::from_raw(i32::try_from(p).unwrap_or(0))) {
            let _ = rustix::process::kill_process_group(p, Signal::KILL);
        }
        let _ = child.kill().await;
        for p in pumps {
            p.abort();
        }
        return (Outcome::Failed("the client went away".into()), streams);
    };
    // Output still buffered is sent before the status; processes the command left
    // running in the background may hold it open, so the wait is bounded.
    for p in pumps {
        let _ = tokio::time::timeout(Duration::from_secs(2), p).await;
    }
    (Outcome::Exited(exit_code(status)), streams)
}

/// Attaches to the container's program: its output from now on, and its stdin when the
/// container has `stdin: true`; ends when the program ends or the client leaves.
pub async fn attach(mut session: Session, target: Arc<ExecTarget>, opts: Options, protocol: Protocol) {
    let Some(mut streams) = collect(&mut session, opts.expected_streams(protocol)).await else {
        session.close().await;
        return;
    };
    // Output from here on: what the program answers to the input below included.
    let start = std::fs::metadata(&target.log).map(|m| m.len()).unwrap_or(0);
    let mut tasks = Vec::new();
    if let (Some(s), Some(stdin)) = (streams.stdin.as_mut(), target.stdin.clone()) {
        let mut rx = std::mem::replace(&mut s.data, mpsc::channel(1).1);
        let once = target.stdin_once;
        tasks.push(tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                let mut guard = stdin.lock().await;
                let Some(w) = guard.as_mut() else { break };
                if w.write_all(&b).await.is_err() || w.flush().await.is_err() {
                    break;
                }
            }
            if once {
                stdin.lock().await.take();
            }
        }));
    }
    let out = streams.stdout.as_ref().map(|s| s.writer.clone());
    let err = streams.stderr.as_ref().map(|s| s.writer.clone()).or_else(|| out.clone());
    let follow = follow_log(target.log.clone(), start, out.clone(), err.clone());
    tokio::pin!(follow);
    loop {
        tokio::select! {
            () = &mut follow => break,
            more = session.streams.recv() => if more.is_none() { break },
        }
    }
    for t in tasks {
        t.abort();
    }
    for w in [out, err].into_iter().flatten() {
        w.close().await;
    }
    report(streams.error.as_ref(), protocol, Outcome::Exited(0), "attach").await;
    session.close().await;
}

/// Sends the log lines written after byte `start` to stdout/stderr, until the attempt ends.
async fn follow_log(
    log: std::path::PathBuf,
    start: u64,
    out: Option<StreamWriter>,
    err: Option<StreamWriter>,
) {
    let done = log.with_extension("done");
    let Ok(mut file) = tokio::fs::File::open(&log).await else { return };
    let mut offset = start;
    let mut partial = String::new();
    loop {
        let finished = done.exists() || !log.exists();
        let mut more = String::new();
        let n = match file.seek(std::io::SeekFrom::Start(offset)).await {
            Ok(_) => file.read_to_string(&mut more).await.unwrap_or(0),
            Err(_) => 0,
        };
        offset += n as u64;
        partial.push_str(&more);
        while let Some(i) = partial.find('\n') {
            let line: String = partial.drain(..=i).collect();
            let mut parts = line.splitn(4, ' ');
            let (_, stream, _, text) =
                (parts.next(), parts.next(), parts.next(), parts.next().unwrap_or("\n"));
            let target = if stream == Some("stderr") { &err } else { &out };
            if let Some(w) = target
                && w.write(text.as_bytes()).await.is_err()
            {
                return;
            }
        }
        if finished && n == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_follow_the_kubelet_query() {
        let o =
            Options::from_query("command=sh&command=-c&command=echo+a%26b&input=1&output=1&error=1&tty=1");
        assert_eq!(o.command, ["sh", "-c", "echo a&b"]);
        // A terminal merges stderr into stdout; v3+ adds the resize stream.
        assert!(o.stdin && o.stdout && o.tty && !o.stderr);
        assert_eq!(o.expected_streams(Protocol::V4), 4);
        assert_eq!(o.expected_streams(Protocol::V2), 3);
        let o = Options::from_query("command=ls&output=1&error=1");
        assert_eq!(o.expected_streams(Protocol::V4), 3);
    }

    #[test]
    fn the_newest_common_protocol_wins() {
        let offered = ["v5.channel.k8s.io".to_string(), "v4.channel.k8s.io".into(), "channel.k8s.io".into()];
        assert_eq!(negotiate(&offered).map(|p| p.0), Some(Protocol::V4));
        assert_eq!(negotiate(&["channel.k8s.io".to_string()]).map(|p| p.1), Some("channel.k8s.io"));
        assert_eq!(negotiate(&["portforward.k8s.io".to_string()]), None);
    }
}
