//! `kubectl port-forward` over SPDY (`portforward.k8s.io`): for each forwarded
//! connection the client opens an `error` and a `data` stream carrying the same `port` and
//! `requestID` headers. The node connects to that port on the pod's loopback — inside the
//! pod's network namespace, as a container runtime does, so servers bound to 127.0.0.1 in
//! the pod are reachable — and copies bytes both ways; a failure is written as text to the
//! `error` stream.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::session::{Session, Stream, header};

/// The protocol name in `X-Stream-Protocol-Version`.
pub const PROTOCOL: &str = "portforward.k8s.io";

/// Connects to `127.0.0.1:port` inside the network namespace at `netns` (the host's
/// loopback without one). A thread of its own enters the namespace and then ends, so no
/// pooled thread is left in a pod's namespace.
pub async fn connect(netns: Option<PathBuf>, port: u16) -> std::io::Result<TcpStream> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let result = (|| -> std::io::Result<std::net::TcpStream> {
            if let Some(ns) = &netns {
                let file = std::fs::File::open(ns)?;
                rustix::thread::move_into_link_name_space(
                    file.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )?;
            }
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
            s.set_nonblocking(true)?;
            Ok(s)
        })();
        let _ = tx.send(result);
    });
    let std = rx.await.map_err(|_| std::io::Error::other("connect thread ended"))??;
    TcpStream::from_std(std)
}

#[derive(Default)]
struct Pair {
    error: Option<Stream>,
    data: Option<Stream>,
}

/// Serves one port-forward session for the pod `label` until the client closes it.
pub async fn serve(mut session: Session, netns: Option<PathBuf>, label: String) {
    let mut pending: HashMap<String, Pair> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(stream) = session.streams.recv().await {
        let kind = header(&stream.headers, "streamtype").unwrap_or("").to_string();
        // Old clients send no requestID: one connection per port then.
        let key = header(&stream.headers, "requestid")
            .or_else(|| header(&stream.headers, "port"))
            .unwrap_or("")
            .to_string();
        let pair = pending.entry(key.clone()).or_default();
        match kind.as_str() {
            "error" => pair.error = Some(stream),
            "data" => pair.data = Some(stream),
            other => {
                tracing::debug!(stream_type = other, "port-forward: unexpected stream");
                stream.writer.reset().await;
                continue;
            }
        }
        if pair.error.is_some() && pair.data.is_some() {
            let Some(Pair { error: Some(error), data: Some(data) }) = pending.remove(&key) else { continue };
            tasks.spawn(forward(error, data, netns.clone(), label.clone()));
        }
        while tasks.try_join_next().is_some() {}
    }
    tasks.abort_all();
    session.close().await;
}

async fn forward(error: Stream, mut data: Stream, netns: Option<PathBuf>, label: String) {
    let port = header(&data.headers, "port").and_then(|p| p.parse::<u16>().ok()).filter(|p| *p > 0);
    let Some(port) = port else {
        let _ = error.writer.write(b"invalid or missing port header").await;
        error.writer.close().await;
        data.writer.close().await;
        return;
    };
    let socket = match connect(netns, port).await {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("error forwarding port {port} to pod {label}: {e}");
            let _ = error.writer.write(msg.as_bytes()).await;
            error.writer.close().await;
            data.writer.close().await;
            return;
        }
    };
    let (mut rd, mut wr) = socket.into_split();
    let upstream = async {
        while let Some(b) = data.data.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    let writer = data.writer.clone();
    let downstream = async {
        let mut buf = vec![0u8; 32 * 1024];
        while let Ok(n) = rd.read(&mut buf).await {
            if n == 0 || writer.write(&buf[..n]).await.is_err() {
                break;
            }
        }
        writer.close().await;
    };
    tokio::join!(upstream, downstream);
    error.writer.close().await;
}
