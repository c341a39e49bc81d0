//! A fake Discord: REST (`GET /gateway/bot`, `POST /channels/{id}/messages` with the
//! 2000-character limit, per-channel rate-limit buckets announced in `X-RateLimit-*`
//! headers, 429 with `retry_after`, `nonce` + `enforce_nonce` de-duplication) and the
//! Gateway (Hello, Identify with intents, Ready, heartbeats and ACKs, numbered dispatches,
//! Resume replaying what a dropped connection missed). Messages the bot posts come back as
//! `MESSAGE_CREATE` from the bot, as on the real platform.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{Faults, Recorder, Sent};

/// The bot's user id.
pub const BOT_ID: &str = "900000000000000001";
/// Requests per bucket window on a channel's messages route.
pub const BUCKET_LIMIT: u32 = 5;
/// Length of a bucket window.
pub const BUCKET_WINDOW: Duration = Duration::from_secs(1);

enum Cmd {
    Frame(String),
    Drop,
}

#[derive(Default)]
struct SessionLog {
    /// Every dispatch of the session, numbered.
    events: Vec<(i64, Value)>,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, SessionLog>,
    /// The session whose dispatches new events join, and the live socket (if connected).
    current: Option<String>,
    socket: Option<(u64, mpsc::UnboundedSender<Cmd>)>,
    next: u64,
    identifies: u32,
    resumes: u32,
    nonces: HashMap<String, String>,
    buckets: HashMap<String, (Instant, u32)>,
    too_many: u32,
}

struct Shared {
    token: String,
    heartbeat_ms: u64,
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

    fn gateway_url(&self) -> String {
        let addr = self.addr.lock().unwrap_or_else(PoisonError::into_inner).map(|a| a.to_string());
        format!("ws://{}/gateway", addr.unwrap_or_default())
    }

    /// Adds a dispatch to the current session and sends it when connected.
    fn dispatch(&self, t: &str, d: Value) {
        let mut inner = self.lock();
        let Some(current) = inner.current.clone() else { return };
        let log = inner.sessions.entry(current).or_default();
        let seq = log.events.last().map(|(s, _)| s + 1).unwrap_or(1);
        let frame = json!({"op": 0, "t": t, "s": seq, "d": d});
        log.events.push((seq, frame.clone()));
        if let Some((_, tx)) = &inner.socket {
            let _ = tx.send(Cmd::Frame(frame.to_string()));
        }
    }
}

/// A running fake Discord; stops when dropped.
pub struct FakeDiscord {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeDiscord {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeDiscord {
    /// Starts a fake accepting `token`, asking for heartbeats every `heartbeat`, on loopback.
    pub async fn start(token: &str, heartbeat: Duration) -> std::io::Result<Self> {
        Self::start_on(token, heartbeat, std::net::Ipv4Addr::LOCALHOST.into()).await
    }

    /// Like [`FakeDiscord::start`], listening on `ip` (clients elsewhere, e.g. pods of the
    /// local node, replace the host part of [`FakeDiscord::url`] and pass the gateway URL).
    pub async fn start_on(token: &str, heartbeat: Duration, ip: std::net::IpAddr) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            token: token.into(),
            heartbeat_ms: u64::try_from(heartbeat.as_millis()).unwrap_or(41_250),
            addr: Mutex::new(None),
            inner: Mutex::default(),
            recorder: Recorder::default(),
            faults: Faults::default(),
            retry_after: AtomicU32::new(1),
        });
        let app = Router::new()
            .route("/api/v10/gateway/bot", get(gateway_bot))
            .route("/api/v10/channels/{channel}/messages", post(create_message))
            .route("/gateway", any(gateway))
            .route("/gateway/", any(gateway))
            .with_state(shared.clone());
        let (addr, task) = super::serve_on(app, ip).await?;
        *shared.addr.lock().unwrap_or_else(PoisonError::into_inner) = Some(addr);
        Ok(Self { addr, shared, task })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The value for `DISCORD_API_URL`.
    pub fn url(&self) -> String {
        format!("http://{}/api/v10", self.addr)
    }

    /// A user writes in channel `channel` (of guild `guild`, or a DM when `None`); returns
    /// the message id. Missed while the bot is disconnected, it is replayed on Resume.
    pub fn user_says(&self, channel: &str, guild: Option<&str>, user: &str, text: &str) -> String {
        let id = format!("{}", 1_100_000_000_000_000_000u64 + self.shared.next_id());
        let mut d = json!({"id": id, "channel_id": channel, "content": text, "type": 0,
            "author": {"id": user, "username": format!("user{user}"), "global_name": format!("User {user}")},
            "attachments": [], "timestamp": "2026-01-01T00:00:00.000000+00:00"});
        if let Some(g) = guild {
            d["guild_id"] = g.into();
        }
        self.shared.dispatch("MESSAGE_CREATE", d);
        id
    }

    /// Drops the Gateway connection without a close frame.
    pub fn drop_socket(&self) {
        if let Some((_, tx)) = self.shared.lock().socket.take() {
            let _ = tx.send(Cmd::Drop);
        }
    }

    /// REST answers 502 and the Gateway refuses connections while `down`.
    pub fn set_down(&self, down: bool) {
        self.shared.faults.down.store(down, Ordering::SeqCst);
        if down {
            self.drop_socket();
        }
    }

    /// The next `n` message posts get 429 with `retry_after` seconds.
    pub fn rate_limit_next(&self, n: u32, retry_after: u32) {
        self.shared.retry_after.store(retry_after, Ordering::SeqCst);
        self.shared.faults.rate_limited.store(n, Ordering::SeqCst);
    }

    /// (Identify, Resume) counts so far.
    pub fn sessions(&self) -> (u32, u32) {
        let inner = self.shared.lock();
        (inner.identifies, inner.resumes)
    }

    /// 429s caused by exceeding a bucket (not by [`FakeDiscord::rate_limit_next`]).
    pub fn bucket_violations(&self) -> u32 {
        self.shared.lock().too_many
    }

    /// Messages the bot posted.
    pub fn sent(&self) -> Vec<Sent> {
        self.shared.recorder.all()
    }

    /// Waits for at least `n` posted messages.
    pub async fn wait_sent(&self, n: usize, timeout: Duration) -> Result<Vec<Sent>, super::FakeChatError> {
        self.shared.recorder.wait(n, timeout).await
    }
}

fn authorized(s: &Shared, headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bot {}", s.token))
}

fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, axum::Json(json!({"message": "401: Unauthorized", "code": 0}))).into_response()
}

async fn gateway_bot(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if s.faults.is_down() {
        return StatusCode::BAD_GATEWAY.into_response();
    }
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    axum::Json(json!({"url": s.gateway_url(), "shards": 1,
        "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}}))
    .into_response()
}

async fn create_message(
    State(s): State<Arc<Shared>>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if s.faults.is_down() {
        return StatusCode::BAD_GATEWAY.into_response();
    }
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let p: Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!({}));
    let content = p["content"].as_str().unwrap_or_default().to_string();
    if content.is_empty() || content.chars().count() > 2000 {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"message": "Invalid Form Body", "code": 50035})))
            .into_response();
    }
    let bucket = format!("bucket-{channel}");
    let (remaining, reset_after) = {
        let mut inner = s.lock();
        let now = Instant::now();
        let (start, used) = inner.buckets.entry(bucket.clone()).or_insert((now, 0));
        if now.duration_since(*start) >= BUCKET_WINDOW {
            *start = now;
            *used = 0;
        }
        let reset_after = BUCKET_WINDOW.saturating_sub(now.duration_since(*start)).as_secs_f64();
        if *used >= BUCKET_LIMIT {
            inner.too_many += 1;
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("x-ratelimit-bucket", bucket), ("x-ratelimit-remaining", "0".into())],
                axum::Json(json!({"message": "You are being rate limited.", "retry_after": reset_after, "global": false})),
            )
                .into_response();
        }
        *used += 1;
        (BUCKET_LIMIT - *used, reset_after)
    };
    let limit_headers = [
        ("x-ratelimit-bucket", bucket.clone()),
        ("x-ratelimit-limit", BUCKET_LIMIT.to_string()),
        ("x-ratelimit-remaining", remaining.to_string()),
        ("x-ratelimit-reset-after", format!("{reset_after:.3}")),
    ];
    if Faults::take(&s.faults.rate_limited) {
        let after = s.retry_after.load(Ordering::SeqCst);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            limit_headers,
            axum::Json(
                json!({"message": "You are being rate limited.", "retry_after": after, "global": false}),
            ),
        )
            .into_response();
    }
    if Faults::take(&s.faults.failing_sends) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let nonce = p["nonce"].as_str().map(str::to_string);
    if p["enforce_nonce"].as_bool() == Some(true)
        && let Some(existing) = nonce.as_ref().and_then(|n| s.lock().nonces.get(n).cloned())
    {
        return (
            limit_headers,
            axum::Json(json!({"id": existing, "channel_id": channel, "content": content})),
        )
            .into_response();
    }
    let id = format!("{}", 1_200_000_000_000_000_000u64 + s.next_id());
    if let Some(n) = nonce {
        s.lock().nonces.insert(n, id.clone());
    }
    let reply_to = p["message_reference"]["message_id"].as_str().map(str::to_string);
    s.recorder.push(Sent { chat: channel.clone(), thread: None, text: content.clone(), reply_to, body: p });
    let message = json!({"id": id, "channel_id": channel, "content": content, "type": 0,
        "author": {"id": BOT_ID, "username": "sympozium", "bot": true}, "attachments": []});
    // The real Gateway sends the bot's own message back.
    s.dispatch("MESSAGE_CREATE", message.clone());
    (limit_headers, axum::Json(message)).into_response()
}

async fn gateway(State(s): State<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    if s.faults.is_down() {
        return StatusCode::BAD_GATEWAY.into_response();
    }
    ws.on_upgrade(move |socket| connection(s, socket))
}

async fn send(socket: &mut WebSocket, v: Value) -> bool {
    socket.send(Message::Text(v.to_string().into())).await.is_ok()
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
}

async fn connection(s: Arc<Shared>, mut socket: WebSocket) {
    if !send(&mut socket, json!({"op": 10, "d": {"heartbeat_interval": s.heartbeat_ms}})).await {
        return;
    }
    // The first frame must be Identify or Resume.
    let first = match tokio::time::timeout(Duration::from_secs(10), socket.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str::<Value>(t.as_str()).unwrap_or_default(),
        _ => return,
    };
    let d = &first["d"];
    if d["token"].as_str() != Some(s.token.as_str()) {
        return close(&mut socket, 4004, "Authentication failed.").await;
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let conn = s.next_id();
    let backlog: Vec<Value> = match first["op"].as_i64() {
        Some(2) => {
            let intents = d["intents"].as_u64().unwrap_or(0);
            if intents & ((1 << 9) | (1 << 12) | (1 << 15)) != ((1 << 9) | (1 << 12) | (1 << 15)) {
                return close(&mut socket, 4014, "Disallowed intent(s).").await;
            }
            let session = format!("session-{conn}");
            let mut inner = s.lock();
            inner.identifies += 1;
            inner.current = Some(session.clone());
            let ready = json!({"op": 0, "t": "READY", "s": 1, "d": {"v": 10, "session_id": session,
                "resume_gateway_url": s.gateway_url(), "user": {"id": BOT_ID, "username": "sympozium", "bot": true},
                "guilds": [], "application": {"id": BOT_ID}}});
            inner.sessions.insert(session, SessionLog { events: vec![(1, ready.clone())] });
            inner.socket = Some((conn, tx));
            vec![ready]
        }
        Some(6) => {
            let session = d["session_id"].as_str().unwrap_or_default().to_string();
            let seq = d["seq"].as_i64().unwrap_or(0);
            let resumable = {
                let inner = s.lock();
                inner.current.as_deref() == Some(session.as_str()) && inner.sessions.contains_key(&session)
            };
            if !resumable {
                let _ = send(&mut socket, json!({"op": 9, "d": false})).await;
                return;
            }
            let mut inner = s.lock();
            inner.resumes += 1;
            let last =
                inner.sessions.get(&session).and_then(|l| l.events.last().map(|(n, _)| *n)).unwrap_or(seq);
            let mut replay: Vec<Value> = inner
                .sessions
                .get(&session)
                .map(|l| l.events.iter().filter(|(n, _)| *n > seq).map(|(_, e)| e.clone()).collect())
                .unwrap_or_default();
            replay.push(json!({"op": 0, "t": "RESUMED", "s": last, "d": {}}));
            inner.socket = Some((conn, tx));
            replay
        }
        _ => return close(&mut socket, 4002, "Decode error.").await,
    };
    let mut ok = true;
    for frame in backlog {
        ok = ok && send(&mut socket, frame).await;
    }
    while ok {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Cmd::Frame(f)) => ok = socket.send(Message::Text(f.into())).await.is_ok(),
                Some(Cmd::Drop) | None => ok = false,
            },
            frame = socket.recv() => match frame {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                    if v["op"].as_i64() == Some(1) {
                        ok = send(&mut socket, json!({"op": 11})).await;
                    }
                }
                Some(Ok(_)) => {}
                _ => ok = false,
            },
        }
    }
    let mut inner = s.lock();
    if inner.socket.as_ref().is_some_and(|(i, _)| *i == conn) {
        inner.socket = None;
    }
}
