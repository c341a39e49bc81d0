//! The UI token: `/api/` and `/ws/` need `Authorization: Bearer <token>` or `?token=<token>`
//! when a token is configured. Compared in constant time, so the answer's timing says
//! nothing about how much of a guess was right.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::ApiError;

/// Name of the Secret (in the API server's namespace) holding the token, key `token`.
pub const TOKEN_SECRET: &str = "sympozium-ui-token";

fn presented(req: &Request) -> Option<String> {
    if let Some(h) = req.headers().get(axum::http::header::AUTHORIZATION)
        && let Ok(v) = h.to_str()
        && let Some(t) = v.strip_prefix("Bearer ")
    {
        return Some(t.trim().to_string());
    }
    req.uri().query().and_then(|q| url_pairs(q).find(|(k, _)| k == "token").map(|(_, v)| v))
}

/// `key=value` pairs of a query string, percent-decoded.
fn url_pairs(q: &str) -> impl Iterator<Item = (String, String)> + '_ {
    q.split('&').filter_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        Some((decode(k)?, decode(v)?))
    })
}

fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Whether `presented` is the configured token.
pub fn token_matches(expected: &str, presented: &str) -> bool {
    // ct_eq of unequal lengths returns false at once; the length of a random token is no secret.
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

/// Middleware on `/api/` and `/ws/`.
pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(expected) = state.token.as_deref() else {
        return next.run(req).await;
    };
    match presented(&req) {
        Some(t) if token_matches(expected, &t) => next.run(req).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn compare() {
        assert!(token_matches("s3cret", "s3cret"));
        assert!(!token_matches("s3cret", "s3cre"));
        assert!(!token_matches("s3cret", "s3cret "));
        assert!(!token_matches("s3cret", ""));
    }

    #[test]
    fn query_decoding() {
        let pairs: Vec<_> = url_pairs("a=1&token=x%2By+z").collect();
        assert_eq!(pairs[1], ("token".to_string(), "x+y z".to_string()));
    }
}
