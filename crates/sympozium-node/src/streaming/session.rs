//! A server-side SPDY/3.1 session over an upgraded connection: a reader task that
//! decodes frames, answers each SYN_STREAM with a SYN_REPLY, echoes PINGs and hands data to
//! the stream it belongs to; a writer task that owns the sending compression context and
//! writes frames in the order they were queued.

use std::collections::HashMap;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::spdy::{Decoder, Encoder, Frame, Headers, SpdyError};

/// The largest DATA payload this side sends in one frame.
const MAX_DATA_CHUNK: usize = 32 * 1024;

/// The value of header `name` (case-insensitive).
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// A stream the peer opened: its headers, what it sends, and a way to answer.
pub struct Stream {
    /// Stream id.
    pub id: u32,
    /// Its SYN_STREAM headers.
    pub headers: Headers,
    /// The peer's data; closed when the peer half-closes or resets the stream.
    pub data: mpsc::Receiver<Bytes>,
    /// Sending side.
    pub writer: StreamWriter,
}

/// Sends on one stream.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    out: mpsc::Sender<Out>,
}

impl StreamWriter {
    /// Sends `data` (split into frames as needed); fails once the connection is gone.
    pub async fn write(&self, data: &[u8]) -> Result<(), SpdyError> {
        for chunk in data.chunks(MAX_DATA_CHUNK) {
            let f = Frame::Data { id: self.id, fin: false, data: Bytes::copy_from_slice(chunk) };
            self.out.send(Out::Frame(f)).await.map_err(|_| closed())?;
        }
        Ok(())
    }

    /// Half-closes this side of the stream.
    pub async fn close(&self) {
        let _ = self.out.send(Out::Frame(Frame::Data { id: self.id, fin: true, data: Bytes::new() })).await;
    }

    /// Aborts the stream.
    pub async fn reset(&self) {
        let _ = self.out.send(Out::Frame(Frame::RstStream { id: self.id, status: 5 })).await;
    }
}

fn closed() -> SpdyError {
    SpdyError::Io(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "SPDY connection closed"))
}

enum Out {
    Frame(Frame),
    Close,
}

/// A server-side session: new streams arrive on `streams`.
pub struct Session {
    /// Streams as the peer opens them (each already answered with a SYN_REPLY).
    pub streams: mpsc::Receiver<Stream>,
    out: mpsc::Sender<Out>,
    reader: tokio::task::JoinHandle<()>,
    writer: tokio::task::JoinHandle<()>,
}

impl Session {
    /// Starts serving SPDY on `io` (after the HTTP upgrade).
    pub fn start<IO>(io: IO) -> Session
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (rd, wr) = tokio::io::split(io);
        let (out_tx, out_rx) = mpsc::channel::<Out>(256);
        let (streams_tx, streams_rx) = mpsc::channel(16);
        let writer = tokio::spawn(write_loop(wr, out_rx));
        let reader = tokio::spawn(read_loop(rd, out_tx.clone(), streams_tx));
        Session { streams: streams_rx, out: out_tx, reader, writer }
    }

    /// Sends everything queued, then closes the connection.
    pub async fn close(self) {
        let _ = self.out.send(Out::Close).await;
        drop(self.out);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.writer).await;
        self.reader.abort();
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(mut wr: W, mut rx: mpsc::Receiver<Out>) {
    let mut enc = Encoder::new();
    let mut buf = Vec::new();
    while let Some(item) = rx.recv().await {
        let close = matches!(item, Out::Close);
        if let Out::Frame(f) = item
            && let Err(e) = enc.encode(&f, &mut buf)
        {
            tracing::debug!(error = %e, "SPDY: encoding a frame");
            break;
        }
        // Batch what is already queued into one write.
        while !close && buf.len() < 256 * 1024 {
            match rx.try_recv() {
                Ok(Out::Frame(f)) => {
                    if enc.encode(&f, &mut buf).is_err() {
                        break;
                    }
                }
                Ok(Out::Close) => {
                    let _ = wr.write_all(&buf).await;
                    let _ = wr.shutdown().await;
                    return;
                }
                Err(_) => break,
            }
        }
        if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
            return;
        }
        buf.clear();
        if close {
            let _ = wr.shutdown().await;
            return;
        }
    }
    let _ = wr.shutdown().await;
}

async fn read_loop<R: AsyncRead + Unpin>(mut rd: R, out: mpsc::Sender<Out>, streams: mpsc::Sender<Stream>) {
    let mut dec = Decoder::new();
    let mut open: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    loop {
        let mut head = [0u8; 8];
        if rd.read_exact(&mut head).await.is_err() {
            return;
        }
        let len = (u32::from_be_bytes([0, head[5], head[6], head[7]])) as usize;
        let mut body = vec![0u8; len];
        if rd.read_exact(&mut body).await.is_err() {
            return;
        }
        let frame = match dec.parse(&head, &body) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(error = %e, "SPDY: bad frame; closing");
                let _ = out.send(Out::Frame(Frame::GoAway { last_good: 0, status: 1 })).await;
                return;
            }
        };
        match frame {
            Frame::SynStream { id, fin, headers, .. } => {
                let (tx, rx) = mpsc::channel(64);
                if !fin {
                    open.insert(id, tx);
                }
                let reply = Frame::SynReply { id, fin: false, headers: Vec::new() };
                if out.send(Out::Frame(reply)).await.is_err() {
                    return;
                }
                let writer = StreamWriter { id, out: out.clone() };
                if streams.send(Stream { id, headers, data: rx, writer }).await.is_err() {
                    // Nobody takes streams any more: refuse it.
                    let _ = out.send(Out::Frame(Frame::RstStream { id, status: 3 })).await;
                }
            }
            Frame::Data { id, fin, data } => {
                if let Some(tx) = open.get(&id)
                    && !data.is_empty()
                    && tx.send(data).await.is_err()
                {
                    open.remove(&id);
                }
                if fin {
                    open.remove(&id);
                }
            }
            Frame::Headers { id, fin: true, .. } => {
                open.remove(&id);
            }
            Frame::RstStream { id, .. } => {
                open.remove(&id);
            }
            // Pings the peer started (odd ids from a client) are echoed; our own (even) are answers.
            Frame::Ping { id } if id % 2 == 1 => {
                // A failed send means the writer is gone; the next read ends this loop.
                let _ = out.send(Out::Frame(Frame::Ping { id })).await;
            }
            Frame::GoAway { .. } => return,
            _ => {}
        }
    }
}
