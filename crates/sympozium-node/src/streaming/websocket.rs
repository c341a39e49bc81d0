//! Port-forward over WebSocket, as the kubelet serves it for clients whose WebSocket the
//! API server passes through instead of translating (client libraries such as kube-rs'
//! `Api::portforward`, which speak `v4.channel.k8s.io`): the ports come as `port` (or
//! `ports`) query parameters; port *i* has data channel 2*i* and error channel 2*i*+1; each
//! binary message is a channel byte then payload; the node first sends every channel its
//! port number (two bytes, little endian), then relays bytes between the data channel and
//! one connection to that port on the pod's loopback.

use std::path::PathBuf;

use axum::extract::ws::{Message, WebSocket};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// The subprotocol served.
pub const PROTOCOL: &str = "v4.channel.k8s.io";

/// Why a port-forward request's ports are refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PortsError {
    /// An entry is not a port number.
    #[error("query parameter port: {0:?} is not a port number")]
    NotAPort(String),
    /// No port was asked for.
    #[error("query parameter port is required")]
    Missing,
}

/// The ports asked for, in order (invalid entries make the whole request invalid).
pub fn ports(query: &str) -> Result<Vec<u16>, PortsError> {
    let mut out = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if k == "port" || k == "ports" {
            for p in v.split(',').filter(|p| !p.trim().is_empty()) {
                let port = p.trim().parse::<u16>().ok().filter(|p| *p > 0);
                out.push(port.ok_or_else(|| PortsError::NotAPort(p.to_string()))?);
            }
        }
    }
    if out.is_empty() {
        return Err(PortsError::Missing);
    }
    Ok(out)
}

fn framed(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

/// Serves one WebSocket port-forward session.
pub async fn serve(socket: WebSocket, netns: Option<PathBuf>, ports: Vec<u16>, label: String) {
    let (mut sink, mut source) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if sink.send(m).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let mut to_pod: Vec<Option<mpsc::Sender<Bytes>>> = Vec::new();
    let mut tasks = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let (data_ch, err_ch) =
            (u8::try_from(2 * i).unwrap_or(u8::MAX), u8::try_from(2 * i + 1).unwrap_or(u8::MAX));
        for ch in [data_ch, err_ch] {
            let _ = out_tx.send(framed(ch, &port.to_le_bytes())).await;
        }
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        to_pod.push(Some(tx));
        tasks.push(tokio::spawn(relay(
            rx,
            out_tx.clone(),
            netns.clone(),
            *port,
            data_ch,
            err_ch,
            label.clone(),
        )));
    }
    drop(out_tx);
    let reading = async {
        while let Some(Ok(msg)) = source.next().await {
            let data = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            let Some((&ch, payload)) = data.split_first() else { continue };
            // Only data channels carry client bytes; each port's index is ch / 2.
            if ch % 2 == 0
                && let Some(slot) = to_pod.get_mut(usize::from(ch / 2))
                && let Some(tx) = slot
                && tx.send(Bytes::copy_from_slice(payload)).await.is_err()
            {
                *slot = None;
            }
        }
    };
    let relays = futures::future::join_all(tasks);
    tokio::pin!(relays);
    tokio::select! {
        () = reading => {}
        _ = &mut relays => {}
    }
    to_pod.clear();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), writer).await;
}

async fn relay(
    mut from_client: mpsc::Receiver<Bytes>,
    out: mpsc::Sender<Message>,
    netns: Option<PathBuf>,
    port: u16,
    data_ch: u8,
    err_ch: u8,
    label: String,
) {
    let socket = match super::portforward::connect(netns, port).await {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("error forwarding port {port} to pod {label}: {e}");
            let _ = out.send(framed(err_ch, msg.as_bytes())).await;
            return;
        }
    };
    let (mut rd, mut wr) = socket.into_split();
    let up = async {
        while let Some(b) = from_client.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 32 * 1024];
        while let Ok(n) = rd.read(&mut buf).await {
            if n == 0 || out.send(framed(data_ch, &buf[..n])).await.is_err() {
                break;
            }
        }
    };
    // The pod closing its side ends the forward, as with the kubelet.
    tokio::select! {
        () = down => {}
        () = async { up.await; std::future::pending::<()>().await } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_from_port_or_ports_parameters() {
        assert_eq!(ports("port=80&port=8080"), Ok(vec![80, 8080]));
        assert_eq!(ports("&ports=80%2C1234"), Ok(vec![80, 1234]));
        assert!(ports("port=0").is_err());
        assert!(ports("port=http").unwrap_err().to_string().contains("\"http\""));
        assert!(ports("").is_err());
    }
}
