//! A fake Telegram Bot API: `POST /bot<token>/<method>` with `getMe`, `getUpdates` (long
//! polling with `offset` and `timeout`; updates below the offset are confirmed and gone) and
//! `sendMessage` (4096-character limit, 429 with `parameters.retry_after`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::{Faults, Recorder, Sent};

/// The bot's user id in the fake.
pub const BOT_ID: i64 = 7_000_001;

#[derive(Default)]
struct Inner {
    updates: VecDeque<Value>,
    next_update: i64,
    next_message: i64,
    /// How often each update id was handed out.
    handed_out: std::collections::BTreeMap<i64, u32>,
    /// Message id → the update that carried it.
    update_of: std::collections::BTreeMap<i64, i64>,
}

struct Shared {
    token: String,
    inner: Mutex<Inner>,
    arrived: Notify,
    recorder: Recorder,
    faults: Faults,
    retry_after: AtomicU32,
}

/// A running fake Telegram; stops when dropped.
pub struct FakeTelegram {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn tg_error(status: StatusCode, description: &str, extra: Value) -> Response {
    let mut body = json!({"ok": false, "error_code": status.as_u16(), "description": description});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    (status, axum::Json(body)).into_response()
}

impl FakeTelegram {
    /// Starts a fake accepting `token`, on loopback.
    pub async fn start(token: &str) -> std::io::Result<Self> {
        Self::start_on(token, std::net::Ipv4Addr::LOCALHOST.into()).await
    }

    /// Starts a fake accepting `token`, listening on `ip` (the `url` then names that
    /// address; clients elsewhere replace the host part).
    pub async fn start_on(token: &str, ip: std::net::IpAddr) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            token: token.to_string(),
            inner: Mutex::new(Inner { next_update: 1000, next_message: 1, ..Default::default() }),
            arrived: Notify::new(),
            recorder: Recorder::default(),
            faults: Faults::default(),
            retry_after: AtomicU32::new(1),
        });
        let app = Router::new().route("/{bot}/{method}", any(handle)).with_state(shared.clone());
        let (addr, task) = super::serve_on(app, ip).await?;
        Ok(Self { addr, shared, task })
    }

    /// The value for `TELEGRAM_API_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    fn push_message(&self, message: Value) -> i64 {
        let id = {
            let mut inner = self.shared.inner.lock().unwrap_or_else(PoisonError::into_inner);
            let update_id = inner.next_update;
            inner.next_update += 1;
            let message_id = inner.next_message;
            inner.next_message += 1;
            inner.update_of.insert(message_id, update_id);
            let mut message = message;
            message["message_id"] = message_id.into();
            message["date"] = 1_700_000_000.into();
            inner.updates.push_back(json!({"update_id": update_id, "message": message}));
            message_id
        };
        self.shared.arrived.notify_waiters();
        id
    }

    /// A user writes `text` in chat `chat` (negative ids are groups); returns the message id.
    pub fn user_says(&self, chat: i64, user: i64, name: &str, text: &str) -> i64 {
        let kind = if chat < 0 { "supergroup" } else { "private" };
        self.push_message(json!({
            "from": {"id": user, "is_bot": false, "first_name": name, "username": name.to_lowercase()},
            "chat": {"id": chat, "type": kind}, "text": text}))
    }

    /// A user writes `text` in forum topic `topic` of supergroup `chat`; returns the message id.
    pub fn user_says_in_topic(&self, chat: i64, topic: i64, user: i64, name: &str, text: &str) -> i64 {
        self.push_message(json!({
            "from": {"id": user, "is_bot": false, "first_name": name, "username": name.to_lowercase()},
            "chat": {"id": chat, "type": "supergroup", "is_forum": true},
            "message_thread_id": topic, "is_topic_message": true, "text": text}))
    }

    /// A message from the bot itself shows up in the chat (as with channel posts).
    pub fn bot_says(&self, chat: i64, text: &str) -> i64 {
        self.push_message(json!({
            "from": {"id": BOT_ID, "is_bot": true, "first_name": "Sympozium", "username": "sympozium_bot"},
            "chat": {"id": chat, "type": "private"}, "text": text}))
    }

    /// Messages the bot sent.
    pub fn sent(&self) -> Vec<Sent> {
        self.shared.recorder.all()
    }

    /// Waits for at least `n` sent messages.
    pub async fn wait_sent(&self, n: usize, timeout: Duration) -> Result<Vec<Sent>, super::FakeChatError> {
        self.shared.recorder.wait(n, timeout).await
    }

    /// Every request fails with 502 while `down`.
    pub fn set_down(&self, down: bool) {
        self.shared.faults.down.store(down, Ordering::SeqCst);
        self.shared.arrived.notify_waiters();
    }

    /// The next `n` sendMessage calls get 429 with `retry_after` seconds.
    pub fn rate_limit_next(&self, n: u32, retry_after: u32) {
        self.shared.retry_after.store(retry_after, Ordering::SeqCst);
        self.shared.faults.rate_limited.store(n, Ordering::SeqCst);
    }

    /// How many times the update carrying message `message_id` was handed out by
    /// `getUpdates` (more than once means the bot did not confirm it before polling again).
    pub fn times_handed_out(&self, message_id: i64) -> u32 {
        let inner = self.shared.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.update_of.get(&message_id).and_then(|u| inner.handed_out.get(u)).copied().unwrap_or_default()
    }

    /// Updates not yet confirmed by an offset.
    pub fn unconfirmed(&self) -> usize {
        self.shared.inner.lock().unwrap_or_else(PoisonError::into_inner).updates.len()
    }
}

fn params(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| json!({}))
}

async fn handle(
    State(s): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if s.faults.is_down() {
        return (StatusCode::BAD_GATEWAY, "<html><body>502 Bad Gateway</body></html>").into_response();
    }
    if bot.strip_prefix("bot") != Some(s.token.as_str()) {
        return tg_error(StatusCode::UNAUTHORIZED, "Unauthorized", json!({}));
    }
    let p = params(&body);
    match method.as_str() {
        "getMe" => axum::Json(json!({"ok": true, "result": {"id": BOT_ID, "is_bot": true,
            "first_name": "Sympozium", "username": "sympozium_bot"}}))
        .into_response(),
        "getUpdates" => get_updates(&s, &p).await,
        "sendMessage" => send_message(&s, &p),
        _ => tg_error(StatusCode::NOT_FOUND, "Not Found", json!({})),
    }
}

async fn get_updates(s: &Shared, p: &Value) -> Response {
    let offset = p["offset"].as_i64().unwrap_or(0);
    let timeout = Duration::from_secs(p["timeout"].as_u64().unwrap_or(0).min(50));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let arrived = s.arrived.notified();
        if s.faults.is_down() {
            return (StatusCode::BAD_GATEWAY, "<html><body>502 Bad Gateway</body></html>").into_response();
        }
        let ready: Vec<Value> = {
            let mut inner = s.inner.lock().unwrap_or_else(PoisonError::into_inner);
            // An offset confirms every update below it.
            while inner.updates.front().and_then(|u| u["update_id"].as_i64()).is_some_and(|id| id < offset) {
                inner.updates.pop_front();
            }
            let ready: Vec<Value> = inner.updates.iter().take(100).cloned().collect();
            for u in &ready {
                if let Some(id) = u["update_id"].as_i64() {
                    *inner.handed_out.entry(id).or_default() += 1;
                }
            }
            ready
        };
        if !ready.is_empty() || tokio::time::timeout_at(deadline, arrived).await.is_err() {
            return axum::Json(json!({"ok": true, "result": ready})).into_response();
        }
    }
}

fn send_message(s: &Shared, p: &Value) -> Response {
    let text = p["text"].as_str().unwrap_or_default();
    let chat = match &p["chat_id"] {
        Value::Number(n) => n.to_string(),
        Value::String(c) => c.clone(),
        _ => return tg_error(StatusCode::BAD_REQUEST, "Bad Request: chat_id is empty", json!({})),
    };
    if text.is_empty() {
        return tg_error(StatusCode::BAD_REQUEST, "Bad Request: message text is empty", json!({}));
    }
    if text.chars().count() > 4096 {
        return tg_error(StatusCode::BAD_REQUEST, "Bad Request: message is too long", json!({}));
    }
    // Legacy Markdown: an unbalanced entity marker cannot be parsed (as on the real API).
    if p["parse_mode"].as_str() == Some("Markdown")
        && let Some(offset) = ['_', '*', '`'].iter().find_map(|m| {
            let positions: Vec<usize> = text.match_indices(*m).map(|(i, _)| i).collect();
            (positions.len() % 2 == 1).then(|| positions.last().copied().unwrap_or_default())
        })
    {
        return tg_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset {offset}"
            ),
            json!({}),
        );
    }
    if Faults::take(&s.faults.rate_limited) {
        let after = s.retry_after.load(Ordering::SeqCst);
        return tg_error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too Many Requests: retry after {after}"),
            json!({"parameters": {"retry_after": after}}),
        );
    }
    if Faults::take(&s.faults.failing_sends) {
        return (StatusCode::BAD_GATEWAY, "<html><body>502 Bad Gateway</body></html>").into_response();
    }
    let message_id = {
        let mut inner = s.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.next_message += 1;
        inner.next_message
    };
    s.recorder.push(Sent {
        chat: chat.clone(),
        thread: p["message_thread_id"].as_i64().map(|t| t.to_string()),
        text: text.to_string(),
        reply_to: p["reply_to_message_id"].as_i64().map(|r| r.to_string()),
        body: p.clone(),
    });
    axum::Json(json!({"ok": true, "result": {"message_id": message_id,
        "from": {"id": BOT_ID, "is_bot": true, "first_name": "Sympozium"},
        "chat": {"id": p["chat_id"]}, "date": 1_700_000_000, "text": text}}))
    .into_response()
}
