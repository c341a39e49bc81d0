//! W3C trace context (`traceparent`) ids: minted where a trace starts (a chat message
//! arriving at a channel pod), continued where it crosses a process (the AgentRun
//! controller starting the run's pod), so one trace id follows a message to its reply.

use std::fmt::Write;

/// A `traceparent` value `00-<trace id>-<span id>-<flags>`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceParent {
    trace_id: String,
    span_id: String,
    flags: String,
}

impl TraceParent {
    /// A new sampled trace with a random trace id and span id (the root of a trace).
    pub fn root() -> Self {
        Self { trace_id: random_hex(16), span_id: random_hex(8), flags: "01".into() }
    }

    /// Parses a header value; `None` unless it is a version-00 traceparent with non-zero,
    /// lower-case hex ids (the W3C rules), so a malformed value starts a new trace instead.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace_id, span_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, len: usize| {
            s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let zero = |s: &str| s.bytes().all(|b| b == b'0');
        let valid = parts.next().is_none()
            && version == "00"
            && hex(trace_id, 32)
            && !zero(trace_id)
            && hex(span_id, 16)
            && !zero(span_id)
            && hex(flags, 2);
        valid.then(|| Self { trace_id: trace_id.into(), span_id: span_id.into(), flags: flags.into() })
    }

    /// A child span of this one: same trace id and flags, new span id.
    pub fn child(&self) -> Self {
        Self { trace_id: self.trace_id.clone(), span_id: random_hex(8), flags: self.flags.clone() }
    }

    /// The 32-hex trace id.
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "00-{}-{}-{}", self.trace_id, self.span_id, self.flags)
    }
}

/// `bytes` random bytes as lower-case hex, never all zeros (an invalid id).
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if getrandom::fill(&mut buf).is_err() || buf.iter().all(|b| *b == 0) {
        // No OS randomness (or the one-in-2^64 all-zero draw): ids need uniqueness, not
        // secrecy, so the process's hasher keys and the clock do.
        use std::hash::{BuildHasher, Hasher};
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos());
        for (i, chunk) in buf.chunks_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(nanos);
            h.write_usize(i);
            let word = h.finish() | 1;
            chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
        }
    }
    buf.iter().fold(String::with_capacity(bytes * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_valid_distinct_and_sampled() {
        let a = TraceParent::root();
        let b = TraceParent::root();
        assert_ne!(a.trace_id(), b.trace_id());
        let text = a.to_string();
        assert_eq!(TraceParent::parse(&text), Some(a.clone()), "{text}");
        assert!(text.starts_with("00-") && text.ends_with("-01"), "{text}");
        assert_eq!(text.len(), 55);
    }

    #[test]
    fn children_keep_the_trace_and_change_the_span() {
        let parent = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let child = parent.child();
        assert_eq!(child.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(child.to_string(), parent.to_string());
        assert!(child.to_string().ends_with("-01"));
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            "",
            "00-abc-def-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }
}
