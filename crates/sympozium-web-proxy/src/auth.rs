//! API keys and rate limits: every route but `/healthz` needs `Authorization: Bearer <key>`,
//! compared in constant time, and each key has its own token bucket.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The accepted keys (by digest) and their buckets.
#[derive(Clone)]
pub struct Gate {
    keys: Arc<Vec<[u8; 32]>>,
    buckets: Arc<Mutex<HashMap<[u8; 32], Bucket>>>,
    rpm: u32,
    burst: u32,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl Gate {
    /// A gate accepting `keys`, each allowed `burst` requests at once and `rpm` per minute.
    pub fn new(keys: &[String], rpm: u32, burst: u32) -> Self {
        Self {
            keys: Arc::new(keys.iter().filter(|k| !k.is_empty()).map(|k| digest(k)).collect()),
            buckets: Arc::default(),
            rpm,
            burst: burst.max(1),
        }
    }

    /// The digest of the accepted key `presented`, if it is one. Digests have one length,
    /// so comparing them in constant time leaks neither the key nor its length; every key
    /// is compared, so the position of a match leaks nothing either.
    pub fn authenticate(&self, presented: &str) -> Option<[u8; 32]> {
        let d = digest(presented);
        let mut found = subtle::Choice::from(0);
        for k in self.keys.iter() {
            found |= k.as_slice().ct_eq(d.as_slice());
        }
        bool::from(found).then_some(d)
    }

    /// Takes one request from the key's bucket; `Err(seconds to wait)` when it is empty.
    pub fn take(&self, key: [u8; 32], now: Instant) -> Result<(), u64> {
        let per_sec = f64::from(self.rpm) / 60.0;
        let burst = f64::from(self.burst);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets.entry(key).or_insert(Bucket { tokens: burst, at: now });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * per_sec).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        if per_sec <= 0.0 {
            return Err(60);
        }
        // Whole seconds until one token is back (at least 1).
        Err(((1.0 - b.tokens) / per_sec).ceil().max(1.0) as u64)
    }
}

/// The bearer token of a request, if it sent one.
pub fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Middleware: 401 without a valid key, 429 once the key's bucket is empty.
pub async fn require_key(State(gate): State<Gate>, req: Request, next: Next) -> Response {
    let Some(token) = bearer(&req) else {
        return ApiError::unauthorized("missing API key: send it as the Authorization: Bearer <key> header")
            .into_response();
    };
    let Some(key) = gate.authenticate(token) else {
        return ApiError::unauthorized("incorrect API key provided").into_response();
    };
    if let Err(wait) = gate.take(key, Instant::now()) {
        return ApiError::rate_limited(wait).into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    #[test]
    fn only_the_configured_key_passes() {
        let gate = Gate::new(&["sk-right".into()], 60, 10);
        assert!(gate.authenticate("sk-right").is_some());
        assert!(gate.authenticate("sk-wrong").is_none());
        assert!(gate.authenticate("sk-righ").is_none());
        assert!(gate.authenticate("").is_none());
        assert!(Gate::new(&[String::new()], 60, 10).authenticate("").is_none(), "an empty key never matches");
    }

    #[test]
    fn each_key_has_its_own_bucket_refilled_at_the_rate() {
        let gate = Gate::new(&["a".into(), "b".into()], 60, 2);
        let (a, b) = (digest("a"), digest("b"));
        let t0 = Instant::now();
        assert!(gate.take(a, t0).is_ok());
        assert!(gate.take(a, t0).is_ok());
        assert_eq!(gate.take(a, t0), Err(1), "the burst is used up");
        assert!(gate.take(b, t0).is_ok(), "another key is not affected");
        assert!(gate.take(a, t0 + Duration::from_millis(1100)).is_ok(), "one per second comes back");
        assert!(gate.take(a, t0 + Duration::from_millis(1200)).is_err());
    }
}
