//! Slack Socket Mode: `apps.connections.open` with the app token gives a WebSocket URL;
//! Slack sends `hello`, then envelopes (`events_api`, `interactive`, `slash_commands`) that
//! must be acknowledged with their `envelope_id`, and `disconnect` when it wants the client
//! to reconnect. An `events_api` envelope is acknowledged only after its message is on the
//! bus — unacknowledged envelopes are redelivered by Slack, and the bus stores a redelivered
//! message once.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::{Slack, inbound_message};
use crate::bridge::Inbound;
use crate::config::Secret;
use crate::health::HealthReporter;

/// Slack pings every ~30 s; silence this long means the connection is dead.
const READ_DEADLINE: Duration = Duration::from_secs(120);

/// How a session ended without an error.
enum Ended {
    /// Slack asked for a reconnect (`disconnect`).
    Refresh(String),
}

/// Why a Socket Mode session broke off (the connection is then opened again).
#[derive(Debug, thiserror::Error)]
enum SessionError {
    /// A Web API call (`auth.test`, `apps.connections.open`) failed.
    #[error("{0}")]
    Api(#[from] crate::platform::SendError),
    /// `apps.connections.open` answered without a WebSocket URL.
    #[error("apps.connections.open returned no url")]
    NoUrl,
    /// The WebSocket could not be opened.
    #[error("connecting: {0}")]
    Connect(#[source] tokio_tungstenite::tungstenite::Error),
    /// Slack stayed silent past the read deadline.
    #[error("nothing received for {0:?}")]
    Silent(Duration),
    /// The connection ended without a close frame.
    #[error("connection closed")]
    Closed,
    /// Reading a frame failed.
    #[error("reading: {0}")]
    Read(#[source] tokio_tungstenite::tungstenite::Error),
    /// Slack closed the connection.
    #[error("closed by Slack: {0:?}")]
    ClosedBySlack(Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>),
    /// An acknowledgement could not be sent.
    #[error("acknowledging: {0}")]
    Acknowledge(#[source] tokio_tungstenite::tungstenite::Error),
}

/// Keeps a Socket Mode connection up forever.
pub async fn run(slack: Arc<Slack>, app_token: Secret, inbound: Inbound, health: HealthReporter) {
    let mut attempt = 0u32;
    loop {
        match session(&slack, &app_token, &inbound, &health, &mut attempt).await {
            Ok(Ended::Refresh(reason)) => {
                tracing::info!(%reason, "Slack asked for a reconnect");
                continue;
            }
            Err(e) => {
                health.disconnected(format!("Slack Socket Mode: {e}"));
                attempt = attempt.saturating_add(1);
                let delay = Duration::from_millis(250u64.saturating_mul(1 << attempt.min(5)))
                    .min(Duration::from_secs(5));
                tracing::warn!(error = %e, retry_in = ?delay, "Slack connection lost");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

async fn session(
    slack: &Slack,
    app_token: &Secret,
    inbound: &Inbound,
    health: &HealthReporter,
    attempt: &mut u32,
) -> Result<Ended, SessionError> {
    let me = slack.identify().await?;
    let opened = slack.call("apps.connections.open", Some(app_token), &json!({})).await?;
    let url = opened["url"].as_str().ok_or(SessionError::NoUrl)?;
    let (ws, _) = tokio_tungstenite::connect_async(url).await.map_err(SessionError::Connect)?;
    let (mut sink, mut stream) = ws.split();
    loop {
        let frame = tokio::time::timeout(READ_DEADLINE, stream.next())
            .await
            .map_err(|_| SessionError::Silent(READ_DEADLINE))?;
        let text = match frame {
            None => return Err(SessionError::Closed),
            Some(Err(e)) => return Err(SessionError::Read(e)),
            Some(Ok(Message::Close(frame))) => return Err(SessionError::ClosedBySlack(frame)),
            Some(Ok(Message::Text(t))) => t.to_string(),
            // Pings are answered by the WebSocket layer.
            Some(Ok(_)) => continue,
        };
        let Ok(envelope) = serde_json::from_str::<Value>(&text) else {
            tracing::warn!("ignoring a Socket Mode frame that is not JSON");
            continue;
        };
        match envelope["type"].as_str() {
            Some("hello") => {
                health.connected();
                *attempt = 0;
                continue;
            }
            Some("disconnect") => {
                return Ok(Ended::Refresh(envelope["reason"].as_str().unwrap_or("unknown").to_string()));
            }
            _ => {}
        }
        let Some(envelope_id) = envelope["envelope_id"].as_str() else { continue };
        if envelope["type"].as_str() == Some("events_api")
            && let Some(msg) = inbound_message(&envelope["payload"]["event"], &me)
        {
            inbound.publish(msg).await;
        }
        let ack = json!({"envelope_id": envelope_id}).to_string();
        sink.send(Message::text(ack)).await.map_err(SessionError::Acknowledge)?;
    }
}
