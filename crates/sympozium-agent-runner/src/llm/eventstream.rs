//! Decoder for the AWS event-stream framing used by Bedrock `ConverseStream`:
//! `total_len u32 | headers_len u32 | prelude_crc u32 | headers | payload | message_crc u32`
//! (big-endian, CRC-32/IEEE). Only string headers matter here; others are skipped.

/// One decoded message.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// String headers (`:event-type`, `:message-type`, …).
    pub headers: Vec<(String, String)>,
    /// The payload (JSON for Bedrock).
    pub payload: Vec<u8>,
}

impl Frame {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// CRC-32 (IEEE 802.3, as in zlib).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Why a byte stream is not valid event-stream framing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The prelude announces lengths that cannot hold a frame.
    #[error("bad event-stream frame (length {0})")]
    Length(usize),
    /// The prelude's CRC does not match.
    #[error("event-stream prelude checksum mismatch")]
    PreludeChecksum,
    /// The whole message's CRC does not match.
    #[error("event-stream message checksum mismatch")]
    MessageChecksum,
    /// A header is truncated or of an unknown type.
    #[error("bad event-stream header")]
    Header,
}

/// Incremental decoder.
#[derive(Default)]
pub struct EventStreamDecoder {
    buf: Vec<u8>,
}

impl EventStreamDecoder {
    /// Feeds bytes; returns complete frames or a framing error.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Frame>, FrameError> {
        self.buf.extend_from_slice(bytes);
        let mut frames = Vec::new();
        while self.buf.len() >= 12 {
            let total = be32(&self.buf[0..4]) as usize;
            let headers_len = be32(&self.buf[4..8]) as usize;
            if total < 16 || headers_len > total - 16 {
                return Err(FrameError::Length(total));
            }
            if crc32(&self.buf[0..8]) != be32(&self.buf[8..12]) {
                return Err(FrameError::PreludeChecksum);
            }
            if self.buf.len() < total {
                break;
            }
            let message: Vec<u8> = self.buf.drain(..total).collect();
            if crc32(&message[..total - 4]) != be32(&message[total - 4..]) {
                return Err(FrameError::MessageChecksum);
            }
            let headers = parse_headers(&message[12..12 + headers_len])?;
            frames.push(Frame { headers, payload: message[12 + headers_len..total - 4].to_vec() });
        }
        Ok(frames)
    }
}

fn parse_headers(mut b: &[u8]) -> Result<Vec<(String, String)>, FrameError> {
    let bad = || FrameError::Header;
    let mut headers = Vec::new();
    while !b.is_empty() {
        let name_len = *b.first().ok_or_else(bad)? as usize;
        let name = String::from_utf8_lossy(b.get(1..1 + name_len).ok_or_else(bad)?).into_owned();
        b = &b[1 + name_len..];
        let kind = *b.first().ok_or_else(bad)?;
        b = &b[1..];
        // Value sizes by type: 0/1 bool (0 bytes), 2 byte, 3 i16, 4 i32, 5 i64, 6 bytes, 7 string,
        // 8 timestamp (8), 9 uuid (16).
        let fixed = match kind {
            0 | 1 => Some(0),
            2 => Some(1),
            3 => Some(2),
            4 => Some(4),
            5 | 8 => Some(8),
            9 => Some(16),
            6 | 7 => None,
            _ => return Err(bad()),
        };
        match fixed {
            Some(n) => b = b.get(n..).ok_or_else(bad)?,
            None => {
                let len =
                    u16::from_be_bytes([*b.first().ok_or_else(bad)?, *b.get(1).ok_or_else(bad)?]) as usize;
                let value = b.get(2..2 + len).ok_or_else(bad)?;
                if kind == 7 {
                    headers.push((name, String::from_utf8_lossy(value).into_owned()));
                }
                b = &b[2 + len..];
            }
        }
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
        let mut h = Vec::new();
        for (k, v) in headers {
            h.push(k.len() as u8);
            h.extend_from_slice(k.as_bytes());
            h.push(7);
            h.extend_from_slice(&(v.len() as u16).to_be_bytes());
            h.extend_from_slice(v.as_bytes());
        }
        let total = 12 + h.len() + payload.len() + 4;
        let mut m = Vec::new();
        m.extend_from_slice(&(total as u32).to_be_bytes());
        m.extend_from_slice(&(h.len() as u32).to_be_bytes());
        let crc = crc32(&m);
        m.extend_from_slice(&crc.to_be_bytes());
        m.extend_from_slice(&h);
        m.extend_from_slice(payload);
        let crc = crc32(&m);
        m.extend_from_slice(&crc.to_be_bytes());
        m
    }

    #[test]
    fn crc_and_frames() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        let mut bytes = encode(&[(":event-type", "messageStart")], br#"{"role":"assistant"}"#);
        bytes.extend(encode(&[(":event-type", "messageStop")], br#"{"stopReason":"end_turn"}"#));
        let mut d = EventStreamDecoder::default();
        let mut frames = Vec::new();
        for chunk in bytes.chunks(7) {
            frames.extend(d.push(chunk).unwrap());
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].header(":event-type"), Some("messageStop"));
        let mut corrupt = encode(&[], b"{}");
        let n = corrupt.len();
        corrupt[n - 5] ^= 1;
        assert!(EventStreamDecoder::default().push(&corrupt).is_err());
    }
}
