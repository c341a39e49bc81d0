//! Slack Events API mode: `POST /slack/events`, every request verified with the signing
//! secret (`X-Slack-Signature` = `v0=` HMAC-SHA256 of `v0:<timestamp>:<body>`, timestamp
//! within five minutes), `url_verification` answered with its challenge, and a message
//! event answered 200 only once it is on the bus (otherwise Slack retries it).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Slack, inbound_message};
use crate::bridge::Inbound;
use crate::config::Secret;
use crate::health::HealthReporter;

/// Requests older (or newer) than this are refused as possible replays.
const MAX_SKEW_SECS: i64 = 300;

/// What the events handler needs.
#[derive(Clone)]
pub struct EventsState {
    slack: Arc<Slack>,
    secret: Secret,
    inbound: Inbound,
}

/// The `/slack/events` router.
pub fn router(slack: Arc<Slack>, secret: Secret, inbound: Inbound) -> Router {
    Router::new().route("/slack/events", post(handle)).with_state(EventsState { slack, secret, inbound })
}

/// Whether `signature` is the signing secret's signature of `timestamp` and `body`, and the
/// timestamp is recent (`now` in Unix seconds).
pub fn verify(secret: &Secret, timestamp: &str, body: &[u8], signature: &str, now: i64) -> bool {
    let Ok(ts) = timestamp.parse::<i64>() else { return false };
    // `abs_diff`: a timestamp near i64::MIN or MAX is an attacker's header, not an overflow.
    if now.abs_diff(ts) > MAX_SKEW_SECS.unsigned_abs() {
        return false;
    }
    let Some(hex_sig) = signature.strip_prefix("v0=") else { return false };
    let Ok(expected) = hex::decode(hex_sig) else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else { return false };
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    // Constant-time comparison.
    mac.verify_slice(&expected).is_ok()
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

async fn handle(State(state): State<EventsState>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let (ts, sig) = (header("x-slack-request-timestamp"), header("x-slack-signature"));
    if !verify(&state.secret, &ts, &body, &sig, now()) {
        tracing::warn!("refusing a Slack event with a missing or wrong signature");
        return (StatusCode::UNAUTHORIZED, "invalid signature").into_response();
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    match payload["type"].as_str() {
        Some("url_verification") => {
            axum::Json(json!({"challenge": payload["challenge"].as_str().unwrap_or_default()}))
                .into_response()
        }
        Some("event_callback") => {
            let me = match state.slack.identify().await {
                Ok(me) => me,
                // Without knowing who we are, our own messages cannot be told apart: let
                // Slack retry later.
                Err(e) => {
                    tracing::warn!(error = %e, "auth.test failed; asking Slack to retry the event");
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
            };
            if let Some(msg) = inbound_message(&payload["event"], &me) {
                state.inbound.publish(msg).await;
            }
            StatusCode::OK.into_response()
        }
        _ => StatusCode::OK.into_response(),
    }
}

/// Events mode has no connection of its own: health is whether the Web API accepts the
/// bot token, checked every `interval`.
pub async fn watch_health(slack: Arc<Slack>, health: HealthReporter, interval: Duration) {
    loop {
        match slack.call("auth.test", None, &json!({})).await {
            Ok(_) => {
                let _ = slack.identify().await;
                health.connected();
            }
            Err(e) => health.disconnected(format!("Slack auth.test failed: {e}")),
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, ts: &str, body: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
        mac.update(format!("v0:{ts}:{body}").as_bytes());
        format!("v0={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn signatures() {
        let secret = Secret::new("8f742231b10e8888abcd99yyyzzz85a5");
        let body = "token=x&team_id=T1";
        let sig = sign("8f742231b10e8888abcd99yyyzzz85a5", "1531420618", body);
        assert!(verify(&secret, "1531420618", body.as_bytes(), &sig, 1531420618 + 10));
        assert!(!verify(&secret, "1531420618", body.as_bytes(), &sig, 1531420618 + 400), "too old");
        assert!(!verify(&secret, "1531420618", b"token=y", &sig, 1531420618), "other body");
        assert!(!verify(&Secret::new("other"), "1531420618", body.as_bytes(), &sig, 1531420618));
        assert!(!verify(&secret, "1531420618", body.as_bytes(), "", 1531420618));
    }

    #[test]
    fn extreme_timestamps_are_refused_not_a_panic() {
        // Found by the request_signatures fuzz target: `now - ts` overflowed.
        let secret = Secret::new("s");
        for ts in ["-9223372036854775808", "9223372036854775807"] {
            let sig = sign("s", ts, "{}");
            assert!(!verify(&secret, ts, b"{}", &sig, 1_700_000_000), "{ts}");
        }
    }
}
