//! A fake Slack: Web API (`auth.test`, `apps.connections.open`, `chat.postMessage` with
//! 429 + `Retry-After`), Socket Mode (WebSocket with `hello`, `events_api` envelopes that
//! are redelivered until acknowledged, `disconnect`), and the Events API side (signed
//! `event_callback` and `url_verification` POSTs to the bot's URL). Messages the bot posts
//! come back over the socket as bot message events, as on the real platform.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;

use super::{Faults, Recorder, Sent, bearer_ok, serve};

/// The bot user's id.
pub const BOT_USER: &str = "UBOT";
/// The bot id.
pub const BOT_ID: &str = "BBOT";

enum Cmd {
    Frame(String),
    Disconnect(String),
    Drop,
}

#[derive(Default)]
struct Inner {
    /// Envelopes sent but not acknowledged: redelivered on the next connection.
    unacked: Vec<(String, Value)>,
    socket: Option<(u64, mpsc::UnboundedSender<Cmd>)>,
    next: u64,
    connections: u32,
    acks: u32,
}

struct Shared {
    bot_token: String,
    app_token: String,
    signing_secret: String,
    addr: Mutex<Option<SocketAddr>>,
    inner: Mutex<Inner>,
    recorder: Recorder,
    faults: Faults,
    retry_after: AtomicU32,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn next_id(&self) -> u64 {
        let mut inner = self.lock();
        inner.next += 1;
        inner.next
    }

    /// Queues an event for Socket Mode delivery.
    fn deliver(&self, event: Value) {
        let n = self.next_id();
        let id = format!("env-{n}");
        let envelope = json!({"envelope_id": id, "type": "events_api", "accepts_response_payload": false,
            "retry_attempt": 0, "retry_reason": "",
            "payload": {"token": "verification", "team_id": "T1", "api_app_id": "A1", "event": event,
                "type": "event_callback", "event_id": format!("Ev{n}"), "event_time": 1_700_000_000}});
        let mut inner = self.lock();
        inner.unacked.push((id, envelope.clone()));
        if let Some((_, tx)) = &inner.socket {
            let _ = tx.send(Cmd::Frame(envelope.to_string()));
        }
    }
}

/// A running fake Slack; stops when dropped.
pub struct FakeSlack {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    http: reqwest::Client,
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSlack {
    /// Starts a fake accepting these tokens and signing Events API requests with `signing_secret`.
    pub async fn start(bot_token: &str, app_token: &str, signing_secret: &str) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            bot_token: bot_token.into(),
            app_token: app_token.into(),
            signing_secret: signing_secret.into(),
            addr: Mutex::new(None),
            inner: Mutex::default(),
            recorder: Recorder::default(),
            faults: Faults::default(),
            retry_after: AtomicU32::new(1),
        });
        let app = Router::new()
            .route("/api/{method}", post(api))
            .route("/link", any(link))
            .with_state(shared.clone());
        let (addr, task) = serve(app).await?;
        *shared.addr.lock().unwrap_or_else(PoisonError::into_inner) = Some(addr);
        Ok(Self { addr, shared, task, http: reqwest::Client::new() })
    }

    /// The value for `SLACK_API_URL`.
    pub fn url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    fn message_event(
        &self,
        channel: &str,
        user: &str,
        text: &str,
        thread_ts: Option<&str>,
    ) -> (String, Value) {
        let ts = format!("1700000000.{:06}", self.shared.next_id());
        let mut event = json!({"type": "message", "channel": channel, "user": user, "text": text, "ts": ts,
            "event_ts": ts, "channel_type": "channel", "team": "T1"});
        if let Some(t) = thread_ts {
            event["thread_ts"] = t.into();
        }
        (ts, event)
    }

    /// A user writes in `channel` (in thread `thread_ts`, if given) over Socket Mode;
    /// returns the message's `ts`.
    pub fn user_says(&self, channel: &str, user: &str, text: &str, thread_ts: Option<&str>) -> String {
        let (ts, event) = self.message_event(channel, user, text, thread_ts);
        self.shared.deliver(event);
        ts
    }

    /// Another app's bot posts in `channel` over Socket Mode.
    pub fn other_bot_says(&self, channel: &str, text: &str) -> String {
        let (ts, mut event) = self.message_event(channel, "UOTHER", text, None);
        event["bot_id"] = "BOTHER".into();
        self.shared.deliver(event);
        ts
    }

    /// Sends `disconnect` (Slack's "please reconnect") and closes the socket.
    pub fn disconnect(&self, reason: &str) {
        if let Some((_, tx)) = &self.shared.lock().socket {
            let _ = tx.send(Cmd::Disconnect(reason.into()));
        }
    }

    /// Drops the socket without a close frame (a network failure).
    pub fn drop_socket(&self) {
        if let Some((_, tx)) = self.shared.lock().socket.take() {
            let _ = tx.send(Cmd::Drop);
        }
    }

    /// Web API and Socket Mode fail with 503 while `down` (an open socket is dropped).
    pub fn set_down(&self, down: bool) {
        self.shared.faults.down.store(down, Ordering::SeqCst);
        if down {
            self.drop_socket();
        }
    }

    /// The next `n` chat.postMessage calls get 429 with `Retry-After: retry_after`.
    pub fn rate_limit_next(&self, n: u32, retry_after: u32) {
        self.shared.retry_after.store(retry_after, Ordering::SeqCst);
        self.shared.faults.rate_limited.store(n, Ordering::SeqCst);
    }

    /// Socket Mode connections opened so far.
    pub fn connections(&self) -> u32 {
        self.shared.lock().connections
    }

    /// Envelopes acknowledged so far; envelopes still waiting for an ack.
    pub fn acks(&self) -> (u32, usize) {
        let inner = self.shared.lock();
        (inner.acks, inner.unacked.len())
    }

    /// Waits until no envelope is waiting for an ack (the bot's own echoed messages included,
    /// which arrive as the bot posts), then returns [`acks`](Self::acks); after `timeout` it
    /// returns whatever is still unacknowledged.
    pub async fn wait_acked(&self, timeout: Duration) -> (u32, usize) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let acks = self.acks();
            if acks.1 == 0 || tokio::time::Instant::now() >= deadline {
                return acks;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Messages the bot posted.
    pub fn sent(&self) -> Vec<Sent> {
        self.shared.recorder.all()
    }

    /// Waits for at least `n` posted messages.
    pub async fn wait_sent(&self, n: usize, timeout: Duration) -> Result<Vec<Sent>, super::FakeChatError> {
        self.shared.recorder.wait(n, timeout).await
    }

    /// `X-Slack-Request-Timestamp` and `X-Slack-Signature` for `body`, signed now.
    pub fn sign(&self, body: &str) -> (String, String) {
        let ts =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default().to_string();
        let mut mac = Hmac::<Sha256>::new_from_slice(self.shared.signing_secret.as_bytes())
            .unwrap_or_else(|_| unreachable!());
        mac.update(format!("v0:{ts}:{body}").as_bytes());
        (ts, format!("v0={}", hex::encode(mac.finalize().into_bytes())))
    }

    /// POSTs `body` to the bot's Events API `url` with the given signature headers.
    pub async fn post_raw(&self, url: &str, body: &str, ts: &str, signature: &str) -> (StatusCode, String) {
        let resp = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", signature)
            .body(body.to_string())
            .send()
            .await;
        match resp {
            Ok(r) => {
                let status = StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
                (status, r.text().await.unwrap_or_default())
            }
            Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()),
        }
    }

    /// A user writes in `channel` and Slack POSTs the signed event to the bot's Events API
    /// `url`, retrying (like Slack) until it is answered 200 or `timeout` passes; returns the ts.
    pub async fn user_says_http(
        &self,
        url: &str,
        channel: &str,
        user: &str,
        text: &str,
        timeout: Duration,
    ) -> Result<String, super::FakeChatError> {
        let (ts, event) = self.message_event(channel, user, text, None);
        let body = json!({"token": "verification", "team_id": "T1", "api_app_id": "A1", "event": event,
            "type": "event_callback", "event_id": format!("Ev{ts}"), "event_time": 1_700_000_000})
        .to_string();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (sts, sig) = self.sign(&body);
            let (status, text) = self.post_raw(url, &body, &sts, &sig).await;
            if status == StatusCode::OK {
                return Ok(ts);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(super::FakeChatError::NotAccepted { status: status.to_string(), body: text });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn slack_error(status: StatusCode, error: &str) -> Response {
    (status, axum::Json(json!({"ok": false, "error": error}))).into_response()
}

async fn api(
    State(s): State<Arc<Shared>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if s.faults.is_down() {
        return slack_error(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable");
    }
    let p: Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!({}));
    match method.as_str() {
        "auth.test" if bearer_ok(&headers, &s.bot_token) => axum::Json(json!({"ok": true,
            "url": "https://fake.slack.com/", "team": "Fake", "user": "sympozium", "team_id": "T1",
            "user_id": BOT_USER, "bot_id": BOT_ID}))
        .into_response(),
        "apps.connections.open" if bearer_ok(&headers, &s.app_token) => {
            // The socket is on the host the client reached the Web API by (a pod on the
            // local node comes through a Service name, not this loopback address).
            let host = headers.get("host").and_then(|h| h.to_str().ok()).map(String::from);
            let addr = s.addr.lock().unwrap_or_else(PoisonError::into_inner).map(|a| a.to_string());
            let n = s.next_id();
            let host = host.or(addr).unwrap_or_default();
            axum::Json(json!({"ok": true, "url": format!("ws://{host}/link?ticket={n}")})).into_response()
        }
        "chat.postMessage" if bearer_ok(&headers, &s.bot_token) => post_message(&s, p),
        "auth.test" | "apps.connections.open" | "chat.postMessage" => {
            slack_error(StatusCode::OK, "invalid_auth")
        }
        _ => slack_error(StatusCode::NOT_FOUND, "unknown_method"),
    }
}

fn post_message(s: &Shared, p: Value) -> Response {
    let channel = p["channel"].as_str().unwrap_or_default().to_string();
    let text = p["text"].as_str().unwrap_or_default().to_string();
    if channel.is_empty() {
        return slack_error(StatusCode::OK, "channel_not_found");
    }
    if text.is_empty() {
        return slack_error(StatusCode::OK, "no_text");
    }
    if Faults::take(&s.faults.rate_limited) {
        let after = s.retry_after.load(Ordering::SeqCst).to_string();
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", after)],
            axum::Json(json!({"ok": false, "error": "ratelimited"})),
        )
            .into_response();
    }
    if Faults::take(&s.faults.failing_sends) {
        return slack_error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error");
    }
    let ts = format!("1700000001.{:06}", s.next_id());
    let thread = p["thread_ts"].as_str().map(str::to_string);
    s.recorder.push(Sent {
        chat: channel.clone(),
        thread: thread.clone(),
        text: text.clone(),
        reply_to: None,
        body: p,
    });
    // The real platform sends the bot's own message back as an event.
    let mut echo = json!({"type": "message", "channel": channel, "user": BOT_USER, "bot_id": BOT_ID,
        "app_id": "A1", "text": text, "ts": ts, "event_ts": ts, "channel_type": "channel",
        "bot_profile": {"id": BOT_ID, "name": "sympozium"}});
    if let Some(t) = &thread {
        echo["thread_ts"] = t.clone().into();
    }
    s.deliver(echo);
    axum::Json(json!({"ok": true, "channel": channel, "ts": ts,
        "message": {"type": "message", "text": text, "user": BOT_USER, "bot_id": BOT_ID, "ts": ts}}))
    .into_response()
}

async fn link(State(s): State<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    if s.faults.is_down() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    ws.on_upgrade(move |socket| session(s, socket))
}

async fn session(s: Arc<Shared>, mut socket: WebSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = s.next_id();
    let pending: Vec<Value> = {
        let mut inner = s.lock();
        inner.connections += 1;
        inner.socket = Some((id, tx));
        inner
            .unacked
            .iter()
            .map(|(_, e)| {
                let mut e = e.clone();
                e["retry_attempt"] = (e["retry_attempt"].as_u64().unwrap_or(0) + 1).into();
                e["retry_reason"] = "timeout".into();
                e
            })
            .collect()
    };
    let hello = json!({"type": "hello", "num_connections": 1,
        "debug_info": {"host": "fake-slack", "approximate_connection_time": 18060},
        "connection_info": {"app_id": "A1"}});
    let mut ok = socket.send(Message::Text(hello.to_string().into())).await.is_ok();
    for e in pending {
        ok = ok && socket.send(Message::Text(e.to_string().into())).await.is_ok();
    }
    while ok {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Cmd::Frame(f)) => ok = socket.send(Message::Text(f.into())).await.is_ok(),
                Some(Cmd::Disconnect(reason)) => {
                    let d = json!({"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-slack"}});
                    let _ = socket.send(Message::Text(d.to_string().into())).await;
                    let _ = socket.send(Message::Close(None)).await;
                    ok = false;
                }
                Some(Cmd::Drop) | None => ok = false,
            },
            frame = socket.recv() => match frame {
                Some(Ok(Message::Text(t))) => {
                    if let Ok(v) = serde_json::from_str::<Value>(t.as_str())
                        && let Some(env) = v["envelope_id"].as_str()
                    {
                        let mut inner = s.lock();
                        let before = inner.unacked.len();
                        inner.unacked.retain(|(i, _)| i != env);
                        if inner.unacked.len() < before {
                            inner.acks += 1;
                        }
                    }
                }
                Some(Ok(_)) => {}
                _ => ok = false,
            },
        }
    }
    let mut inner = s.lock();
    if inner.socket.as_ref().is_some_and(|(i, _)| *i == id) {
        inner.socket = None;
    }
}
