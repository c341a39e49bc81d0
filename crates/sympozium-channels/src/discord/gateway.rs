//! The Discord Gateway: Hello → Identify (intents: guild messages, direct messages,
//! message content) or Resume, heartbeats at the interval Hello gives (a missing ACK means
//! a dead connection), dispatches numbered by `s`. A dropped connection resumes the session
//! at `resume_gateway_url` with the last sequence number, so Discord replays what was missed;
//! Invalid Session (not resumable) or a refused resume starts a fresh session. Received
//! messages go to a publisher task in order, so a slow bus never stalls heartbeats.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::{Discord, INTENTS, inbound_message};
use crate::bridge::Inbound;
use crate::health::HealthReporter;

/// A resumable Gateway session.
#[derive(Clone, Debug, Default)]
struct Session {
    id: String,
    resume_url: String,
    seq: Option<i64>,
    me: String,
}

/// Why a connection ended.
enum End {
    /// Try to resume the session (network error, Reconnect, zombie connection).
    Resume(String),
    /// Start a fresh session (Invalid Session, session-ending close codes).
    Fresh(String),
    /// A configuration problem (bad token, disallowed intents): wait long before retrying.
    Fatal(String),
}

fn with_query(url: &str) -> String {
    if url.contains('?') {
        url.to_string()
    } else {
        format!("{}/?v=10&encoding=json", url.trim_end_matches('/'))
    }
}

/// Keeps a Gateway connection up forever.
pub async fn run(
    discord: Arc<Discord>,
    gateway_url: Option<String>,
    inbound: Inbound,
    health: HealthReporter,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            inbound.publish(msg).await;
        }
    });
    let mut session: Option<Session> = None;
    let mut attempt = 0u32;
    loop {
        let url = match (&session, &gateway_url) {
            (Some(s), _) if !s.resume_url.is_empty() => s.resume_url.clone(),
            (_, Some(url)) => url.clone(),
            (_, None) => match discord.gateway_url().await {
                Ok(url) => url,
                Err(e) => {
                    health.disconnected(format!("Discord gateway lookup failed: {e}"));
                    attempt = attempt.saturating_add(1);
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
            },
        };
        let end = connection(&discord, &with_query(&url), &mut session, &tx, &health, &mut attempt).await;
        attempt = attempt.saturating_add(1);
        let delay = match end {
            End::Resume(why) => {
                health.disconnected(format!("Discord gateway: {why}"));
                tracing::warn!(reason = %why, "gateway connection lost; resuming");
                backoff(attempt)
            }
            End::Fresh(why) => {
                health.disconnected(format!("Discord gateway: {why}"));
                tracing::warn!(reason = %why, "gateway session ended; identifying again");
                session = None;
                // Discord asks for a 1–5 s pause before identifying again.
                Duration::from_secs(1).max(backoff(attempt))
            }
            End::Fatal(why) => {
                health.disconnected(format!("Discord gateway refused the bot: {why}"));
                tracing::error!(reason = %why, "gateway refused the bot");
                session = None;
                Duration::from_secs(30)
            }
        };
        tokio::time::sleep(delay).await;
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(10))
}

fn close_end(code: CloseCode, reason: &str) -> End {
    let why = format!("closed with {code}: {reason}");
    match u16::from(code) {
        4004 | 4010 | 4011 | 4012 | 4013 | 4014 => End::Fatal(why),
        4007 | 4009 => End::Fresh(why),
        _ => End::Resume(why),
    }
}

async fn connection(
    discord: &Discord,
    url: &str,
    session: &mut Option<Session>,
    out: &mpsc::UnboundedSender<sympozium_bus::payloads::InboundMessage>,
    health: &HealthReporter,
    attempt: &mut u32,
) -> End {
    let ws = match tokio_tungstenite::connect_async(url).await {
        Ok((ws, _)) => ws,
        Err(e) => return End::Resume(format!("connecting: {e}")),
    };
    let (mut sink, mut stream) = ws.split();
    let mut heartbeat: Option<tokio::time::Interval> = None;
    let mut acked = true;
    loop {
        let tick = async {
            match heartbeat.as_mut() {
                Some(h) => {
                    h.tick().await;
                }
                None => std::future::pending().await,
            }
        };
        let frame = tokio::select! {
            () = tick => {
                if !acked {
                    return End::Resume("no heartbeat ACK".into());
                }
                acked = false;
                let seq = session.as_ref().and_then(|s| s.seq);
                if let Err(e) = sink.send(Message::text(json!({"op": 1, "d": seq}).to_string())).await {
                    return End::Resume(format!("sending a heartbeat: {e}"));
                }
                continue;
            }
            frame = stream.next() => frame,
        };
        let text = match frame {
            None => return End::Resume("connection closed".into()),
            Some(Err(e)) => return End::Resume(format!("reading: {e}")),
            Some(Ok(Message::Close(Some(f)))) => return close_end(f.code, f.reason.as_str()),
            Some(Ok(Message::Close(None))) => return End::Resume("closed".into()),
            Some(Ok(Message::Text(t))) => t.to_string(),
            Some(Ok(_)) => continue,
        };
        let Ok(payload) = serde_json::from_str::<Value>(&text) else { continue };
        if let (Some(s), Some(sess)) = (payload["s"].as_i64(), session.as_mut()) {
            sess.seq = Some(sess.seq.map_or(s, |old| old.max(s)));
        }
        let op = payload["op"].as_i64().unwrap_or(-1);
        let sent = match op {
            10 => {
                let every = Duration::from_millis(
                    payload["d"]["heartbeat_interval"].as_u64().unwrap_or(41_250).max(100),
                );
                let start = tokio::time::Instant::now() + every / 2;
                heartbeat = Some(tokio::time::interval_at(start, every));
                let token = discord.token().expose();
                let hello_reply = match session.as_ref() {
                    Some(s) => json!({"op": 6, "d": {"token": token, "session_id": s.id, "seq": s.seq}}),
                    None => json!({"op": 2, "d": {"token": token, "intents": INTENTS,
                        "properties": {"os": "linux", "browser": "sympozium", "device": "sympozium"}}}),
                };
                sink.send(Message::text(hello_reply.to_string())).await
            }
            1 => {
                let seq = session.as_ref().and_then(|s| s.seq);
                sink.send(Message::text(json!({"op": 1, "d": seq}).to_string())).await
            }
            11 => {
                acked = true;
                Ok(())
            }
            7 => return End::Resume("Discord asked for a reconnect".into()),
            9 => {
                return if payload["d"].as_bool() == Some(true) {
                    End::Resume("invalid session (resumable)".into())
                } else {
                    End::Fresh("invalid session".into())
                };
            }
            0 => {
                dispatch(&payload, session, out, health, attempt);
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(e) = sent {
            return End::Resume(format!("sending: {e}"));
        }
    }
}

fn dispatch(
    payload: &Value,
    session: &mut Option<Session>,
    out: &mpsc::UnboundedSender<sympozium_bus::payloads::InboundMessage>,
    health: &HealthReporter,
    attempt: &mut u32,
) {
    let d = &payload["d"];
    match payload["t"].as_str().unwrap_or_default() {
        "READY" => {
            *session = Some(Session {
                id: d["session_id"].as_str().unwrap_or_default().to_string(),
                resume_url: d["resume_gateway_url"].as_str().unwrap_or_default().to_string(),
                seq: payload["s"].as_i64(),
                me: d["user"]["id"].as_str().unwrap_or_default().to_string(),
            });
            health.connected();
            *attempt = 0;
            tracing::info!("Discord gateway session ready");
        }
        "RESUMED" => {
            health.connected();
            *attempt = 0;
            tracing::info!("Discord gateway session resumed");
        }
        "MESSAGE_CREATE" => {
            let me = session.as_ref().map(|s| s.me.as_str()).unwrap_or_default();
            if let Some(msg) = inbound_message(d, me) {
                let _ = out.send(msg);
            }
        }
        _ => {}
    }
}
