//! SPDY/3.1 framing and a server-side session, as Kubernetes' streaming protocols use it
//! (`kubectl exec`/`attach`/`port-forward`, relayed by the API server to the kubelet).
//!
//! Frames (draft-mbelshe-httpbis-spdy-00, version 3): an 8-byte header — control frames
//! carry the control bit, version 3, a type, flags and a 24-bit length; data frames a
//! 31-bit stream id, flags and a length. Header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are
//! zlib-compressed with the protocol's preset dictionary, one compression context per
//! direction for the whole connection, each block ended with a sync flush.
//!
//! Only what Kubernetes' peers use is served: the client opens streams, the server
//! answers each SYN_STREAM with a SYN_REPLY, both send DATA with FIN to half-close, PINGs
//! are echoed, RST_STREAM ends a stream, SETTINGS and WINDOW_UPDATE are read and ignored
//! (the Go implementation Kubernetes uses does no flow control either).

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Header names and values, in order (names lowercase).
pub type Headers = Vec<(String, String)>;

/// The largest decompressed header block accepted (a peer's headers are a few hundred bytes).
const MAX_HEADER_BLOCK: usize = 256 * 1024;

/// SPDY errors.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    /// The peer sent something that is not SPDY/3.
    #[error("SPDY protocol error: {0}")]
    Protocol(String),
    /// A header block did not (de)compress.
    #[error("SPDY header compression: {0}")]
    Compression(String),
    /// The connection failed.
    #[error("SPDY connection: {0}")]
    Io(#[from] std::io::Error),
}

/// One frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream.
    SynStream {
        /// Stream id (odd from the client).
        id: u32,
        /// Associated stream (server push; unused here).
        associated: u32,
        /// Priority 0–7.
        priority: u8,
        /// The sender will send nothing more on it.
        fin: bool,
        /// The receiver must send nothing on it.
        unidirectional: bool,
        /// Headers.
        headers: Headers,
    },
    /// Accepts a stream.
    SynReply {
        /// Stream id.
        id: u32,
        /// Half-closes the stream.
        fin: bool,
        /// Headers.
        headers: Headers,
    },
    /// Aborts a stream.
    RstStream {
        /// Stream id.
        id: u32,
        /// Status code (1 protocol error … 5 cancel …).
        status: u32,
    },
    /// Connection settings: (flags, id, value).
    Settings {
        /// Entries.
        entries: Vec<(u8, u32, u32)>,
    },
    /// Liveness check; echoed by the receiver.
    Ping {
        /// Ping id (odd from the client).
        id: u32,
    },
    /// The sender is closing the connection.
    GoAway {
        /// Last stream the sender processed.
        last_good: u32,
        /// Status.
        status: u32,
    },
    /// More headers for a stream.
    Headers {
        /// Stream id.
        id: u32,
        /// Half-closes the stream.
        fin: bool,
        /// Headers.
        headers: Headers,
    },
    /// Flow-control credit.
    WindowUpdate {
        /// Stream id.
        id: u32,
        /// Bytes.
        delta: u32,
    },
    /// Payload.
    Data {
        /// Stream id.
        id: u32,
        /// Last frame of the sender's side of the stream.
        fin: bool,
        /// Bytes.
        data: Bytes,
    },
    /// A control frame type this side does not know (skipped, as the protocol requires).
    Unknown {
        /// Its type.
        kind: u16,
    },
}

/// The header compression dictionary of SPDY/3: length-prefixed common header names and
/// values, then a run of common strings.
pub fn dictionary() -> Vec<u8> {
    const WORDS: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";
    let mut out = Vec::with_capacity(1500);
    for w in WORDS {
        out.extend_from_slice(&(w.len() as u32).to_be_bytes());
        out.extend_from_slice(w.as_bytes());
    }
    out.extend_from_slice(TAIL.as_bytes());
    out
}

/// Encodes frames; owns the sending direction's compression context.
pub struct Encoder {
    z: Compress,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    /// A fresh context.
    pub fn new() -> Self {
        let mut z = Compress::new(Compression::best(), true);
        // Setting a dictionary on a fresh zlib stream cannot fail.
        let _ = z.set_dictionary(&dictionary());
        Self { z }
    }

    fn header_block(&mut self, headers: &Headers) -> Result<Vec<u8>, SpdyError> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (k, v) in headers {
            let k = k.to_ascii_lowercase();
            raw.extend_from_slice(&(k.len() as u32).to_be_bytes());
            raw.extend_from_slice(k.as_bytes());
            raw.extend_from_slice(&(v.len() as u32).to_be_bytes());
            raw.extend_from_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let start_in = self.z.total_in();
        loop {
            let consumed = usize::try_from(self.z.total_in() - start_in).unwrap_or(raw.len());
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            self.z
                .compress_vec(&raw[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Compression(e.to_string()))?;
            let consumed = usize::try_from(self.z.total_in() - start_in).unwrap_or(raw.len());
            // Done once all input is in and the flush left spare room in the output.
            if consumed == raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }

    /// Appends `frame`'s bytes to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) -> Result<(), SpdyError> {
        let control = |out: &mut Vec<u8>, kind: u16, flags: u8, body: &[u8]| {
            out.extend_from_slice(&(0x8003_0000u32 | u32::from(kind)).to_be_bytes());
            out.extend_from_slice(
                &((u32::from(flags) << 24) | (body.len() as u32 & 0x00ff_ffff)).to_be_bytes(),
            );
            out.extend_from_slice(body);
        };
        let mut body = Vec::new();
        match frame {
            Frame::SynStream { id, associated, priority, fin, unidirectional, headers } => {
                body.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
                body.extend_from_slice(&(associated & 0x7fff_ffff).to_be_bytes());
                body.extend_from_slice(&[(priority & 7) << 5, 0]);
                body.extend(self.header_block(headers)?);
                control(out, 1, u8::from(*fin) | (u8::from(*unidirectional) << 1), &body);
            }
            Frame::SynReply { id, fin, headers } => {
                body.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
                body.extend(self.header_block(headers)?);
                control(out, 2, u8::from(*fin), &body);
            }
            Frame::RstStream { id, status } => {
                body.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
                body.extend_from_slice(&status.to_be_bytes());
                control(out, 3, 0, &body);
            }
            Frame::Settings { entries } => {
                body.extend_from_slice(&(entries.len() as u32).to_be_bytes());
                for (flags, id, value) in entries {
                    body.extend_from_slice(&((u32::from(*flags) << 24) | (id & 0x00ff_ffff)).to_be_bytes());
                    body.extend_from_slice(&value.to_be_bytes());
                }
                control(out, 4, 0, &body);
            }
            Frame::Ping { id } => control(out, 6, 0, &id.to_be_bytes()),
            Frame::GoAway { last_good, status } => {
                body.extend_from_slice(&(last_good & 0x7fff_ffff).to_be_bytes());
                body.extend_from_slice(&status.to_be_bytes());
                control(out, 7, 0, &body);
            }
            Frame::Headers { id, fin, headers } => {
                body.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
                body.extend(self.header_block(headers)?);
                control(out, 8, u8::from(*fin), &body);
            }
            Frame::WindowUpdate { id, delta } => {
                body.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
                body.extend_from_slice(&(delta & 0x7fff_ffff).to_be_bytes());
                control(out, 9, 0, &body);
            }
            Frame::Data { id, fin, data } => {
                if data.len() > 0x00ff_ffff {
                    return Err(SpdyError::Protocol("data frame larger than 16 MiB".into()));
                }
                out.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(&((u32::from(u8::from(*fin)) << 24) | data.len() as u32).to_be_bytes());
                out.extend_from_slice(data);
            }
            Frame::Unknown { kind } => {
                return Err(SpdyError::Protocol(format!("cannot send frame type {kind}")));
            }
        }
        Ok(())
    }
}

/// Decodes frames; owns the receiving direction's decompression context.
pub struct Decoder {
    z: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

fn be32(b: &[u8], at: usize) -> Result<u32, SpdyError> {
    b.get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| SpdyError::Protocol("frame too short".into()))
}

impl Decoder {
    /// A fresh context.
    pub fn new() -> Self {
        Self { z: Decompress::new(true) }
    }

    fn header_block(&mut self, compressed: &[u8]) -> Result<Headers, SpdyError> {
        let err = |m: String| SpdyError::Compression(m);
        let mut raw: Vec<u8> = Vec::with_capacity(compressed.len() * 4 + 64);
        let start_in = self.z.total_in();
        loop {
            let consumed = usize::try_from(self.z.total_in() - start_in).unwrap_or(compressed.len());
            if consumed >= compressed.len() && raw.len() < raw.capacity() {
                break;
            }
            if raw.capacity() - raw.len() < 256 {
                if raw.len() >= MAX_HEADER_BLOCK {
                    return Err(err("header block too large".into()));
                }
                raw.reserve(raw.capacity().max(1024));
            }
            let before = (self.z.total_in(), self.z.total_out());
            match self.z.decompress_vec(&compressed[consumed..], &mut raw, FlushDecompress::Sync) {
                Ok(Status::StreamEnd) => break,
                Ok(_) => {
                    if (self.z.total_in(), self.z.total_out()) == before && raw.len() < raw.capacity() {
                        return Err(err("truncated header block".into()));
                    }
                }
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z.set_dictionary(&dictionary()).map_err(|e| err(e.to_string()))?;
                }
                Err(e) => return Err(err(e.to_string())),
            }
        }
        parse_headers(&raw)
    }

    /// Takes one whole frame off the front of `buf`, if it holds one.
    pub fn decode(&mut self, buf: &mut Vec<u8>) -> Result<Option<Frame>, SpdyError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let len = (be32(buf, 4)? & 0x00ff_ffff) as usize;
        if buf.len() < 8 + len {
            return Ok(None);
        }
        let frame: Vec<u8> = buf.drain(..8 + len).collect();
        self.parse(&frame[..8], &frame[8..]).map(Some)
    }

    /// Parses a frame from its 8-byte header and its payload.
    pub fn parse(&mut self, head: &[u8], body: &[u8]) -> Result<Frame, SpdyError> {
        let w0 = be32(head, 0)?;
        let flags = head.get(4).copied().unwrap_or(0);
        let fin = flags & 1 != 0;
        if w0 & 0x8000_0000 == 0 {
            return Ok(Frame::Data { id: w0 & 0x7fff_ffff, fin, data: Bytes::copy_from_slice(body) });
        }
        let version = (w0 >> 16) & 0x7fff;
        if version != 3 {
            return Err(SpdyError::Protocol(format!("unsupported SPDY version {version}")));
        }
        let kind = (w0 & 0xffff) as u16;
        let id = || be32(body, 0).map(|v| v & 0x7fff_ffff);
        Ok(match kind {
            1 => {
                if body.len() < 10 {
                    return Err(SpdyError::Protocol("SYN_STREAM too short".into()));
                }
                Frame::SynStream {
                    id: id()?,
                    associated: be32(body, 4)? & 0x7fff_ffff,
                    priority: body[8] >> 5,
                    fin,
                    unidirectional: flags & 2 != 0,
                    headers: self.header_block(&body[10..])?,
                }
            }
            2 => {
                Frame::SynReply { id: id()?, fin, headers: self.header_block(body.get(4..).unwrap_or(&[]))? }
            }
            3 => Frame::RstStream { id: id()?, status: be32(body, 4)? },
            4 => {
                let n = be32(body, 0)? as usize;
                let mut entries = Vec::with_capacity(n.min(64));
                for i in 0..n {
                    let a = be32(body, 4 + i * 8)?;
                    entries.push(((a >> 24) as u8, a & 0x00ff_ffff, be32(body, 8 + i * 8)?));
                }
                Frame::Settings { entries }
            }
            6 => Frame::Ping { id: be32(body, 0)? },
            7 => Frame::GoAway { last_good: id()?, status: be32(body, 4).unwrap_or(0) },
            8 => Frame::Headers { id: id()?, fin, headers: self.header_block(body.get(4..).unwrap_or(&[]))? },
            9 => Frame::WindowUpdate { id: id()?, delta: be32(body, 4)? & 0x7fff_ffff },
            kind => Frame::Unknown { kind },
        })
    }
}

fn parse_headers(raw: &[u8]) -> Result<Headers, SpdyError> {
    let bad = || SpdyError::Protocol("malformed header block".into());
    let n = be32(raw, 0)? as usize;
    let mut at = 4;
    let mut out = Vec::with_capacity(n.min(64));
    let field = |at: &mut usize| -> Result<String, SpdyError> {
        let len = be32(raw, *at)? as usize;
        let s = raw.get(*at + 4..*at + 4 + len).ok_or_else(bad)?;
        *at += 4 + len;
        Ok(String::from_utf8_lossy(s).into_owned())
    };
    for _ in 0..n {
        let k = field(&mut at)?;
        let v = field(&mut at)?;
        out.push((k.to_ascii_lowercase(), v));
    }
    Ok(out)
}

#[cfg(test)]
#[path = "spdy_tests.rs"]
mod tests;
