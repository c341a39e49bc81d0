//! `GET /ws/stream`: streamed run output from the event bus as WebSocket text frames, each
//! the bus envelope `{"topic","timestamp","metadata","data"}`. `?namespace=` keeps only the
//! chunks of runs in that namespace; `?run=` only one run's.
//!
//! The server reads the bus as the `operator` role, which may read stream chunks and
//! nothing a run or channel says privately (spawn results, follow-ups, tool results).

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use sympozium_bus::{Envelope, subject, topics};
use utoipa::IntoParams;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};

/// `?namespace=&run=` of the stream.
#[derive(Clone, Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Only runs in this namespace (default: every namespace).
    pub namespace: Option<String>,
    /// Only this run.
    pub run: Option<String>,
}

fn wanted(env: &Envelope, q: &StreamQuery) -> bool {
    let ns_ok = q.namespace.as_deref().filter(|n| !n.is_empty()).is_none_or(|n| env.meta("namespace") == n);
    let run_ok = q.run.as_deref().filter(|r| !r.is_empty()).is_none_or(|r| env.meta("agentRunID") == r);
    ns_ok && run_ok
}

/// Upgrades to a WebSocket of run output.
#[utoipa::path(get, path = "/ws/stream", tag = "stream", params(StreamQuery),
    responses((status = 101, description = "WebSocket of agent.stream.chunk envelopes"),
              (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn stream(
    State(s): State<AppState>,
    Query(q): Query<StreamQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(bus) = s.bus.clone() else {
        return ApiError::Unavailable("no event bus: streaming is off".into()).into_response();
    };
    let sub = match bus.client().subscribe(subject(topics::AGENT_STREAM_CHUNK)).await {
        Ok(sub) => sub,
        Err(e) => return ApiError::Unavailable(format!("subscribing to the event bus: {e}")).into_response(),
    };
    ws.on_upgrade(move |socket| forward(socket, sub, q))
}

async fn forward(socket: WebSocket, mut sub: async_nats::Subscriber, q: StreamQuery) {
    let (mut tx, mut rx) = socket.split();
    let mut ping = tokio::time::interval(Duration::from_secs(15));
    loop {
        tokio::select! {
            msg = sub.next() => {
                let Some(msg) = msg else { break };
                let Ok(env) = serde_json::from_slice::<Envelope>(&msg.payload) else { continue };
                if !wanted(&env, &q) {
                    continue;
                }
                let Ok(text) = serde_json::to_string(&env) else { continue };
                if tx.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            incoming = rx.next() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if tx.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = sub.unsubscribe().await;
}
