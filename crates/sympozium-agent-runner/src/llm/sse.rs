//! A small Server-Sent Events decoder: bytes in, complete events out. Bytes are buffered
//! until an event is complete, so multi-byte UTF-8 split across network reads is safe.

/// One event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SseEvent {
    /// `event:` field (empty when absent).
    pub event: String,
    /// `data:` lines joined by `\n`.
    pub data: String,
}

/// Incremental decoder.
#[derive(Default)]
pub struct SseDecoder {
    buf: Vec<u8>,
}

impl SseDecoder {
    /// Feeds bytes; returns the events completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some((end, sep)) = find_blank_line(&self.buf) {
            let raw: Vec<u8> = self.buf.drain(..end + sep).collect();
            let text = String::from_utf8_lossy(&raw[..end]);
            if let Some(event) = parse_event(&text) {
                events.push(event);
            }
        }
        events
    }

    /// Flushes a final event not followed by a blank line.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let raw = std::mem::take(&mut self.buf);
        parse_event(&String::from_utf8_lossy(&raw))
    }
}

fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    (0..buf.len()).find_map(|i| {
        if buf[i..].starts_with(b"\r\n\r\n") {
            Some((i, 4))
        } else if buf[i..].starts_with(b"\n\n") {
            Some((i, 2))
        } else {
            None
        }
    })
}

fn parse_event(text: &str) -> Option<SseEvent> {
    let mut event = SseEvent::default();
    let mut data: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event.event = value.to_string(),
            "data" => data.push(value),
            _ => {}
        }
    }
    if data.is_empty() && event.event.is_empty() {
        return None;
    }
    event.data = data.join("\n");
    Some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_across_splits() {
        let mut d = SseDecoder::default();
        let input = "event: a\ndata: {\"x\":\"é\"}\n\n: comment\n\ndata: [DONE]\r\n\r\n";
        let bytes = input.as_bytes();
        let mut out = Vec::new();
        for b in bytes.chunks(3) {
            out.extend(d.push(b));
        }
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].event, "a");
        assert_eq!(out[0].data, "{\"x\":\"é\"}");
        assert_eq!(out[1].data, "[DONE]");
    }
}
