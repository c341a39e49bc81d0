//! A fake WhatsApp Cloud API: the Graph API (`GET /{phone-number-id}`, `POST
//! /{phone-number-id}/messages` with Bearer auth, 4096-character limit, error code 130429
//! for rate limits) and Meta's side of the webhook (the `hub.*` subscription check and
//! `messages` notifications signed with `X-Hub-Signature-256`, retried until answered 200).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Faults, Recorder, Sent, bearer_ok, serve};

struct Shared {
    token: String,
    phone_number_id: String,
    recorder: Recorder,
    faults: Faults,
    next: AtomicU64,
}

/// A running fake WhatsApp Cloud API; stops when dropped.
pub struct FakeWhatsApp {
    addr: SocketAddr,
    shared: Arc<Shared>,
    app_secret: String,
    task: tokio::task::JoinHandle<()>,
    http: reqwest::Client,
}

impl Drop for FakeWhatsApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn graph_error(status: StatusCode, code: i64, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"message": message, "type": "OAuthException", "code": code,
        "fbtrace_id": "fake"}})),
    )
        .into_response()
}

impl FakeWhatsApp {
    /// Starts a fake for `phone_number_id`, accepting `token` and signing webhooks with `app_secret`.
    pub async fn start(token: &str, phone_number_id: &str, app_secret: &str) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            token: token.into(),
            phone_number_id: phone_number_id.into(),
            recorder: Recorder::default(),
            faults: Faults::default(),
            next: AtomicU64::new(1),
        });
        let app = Router::new()
            .route("/v21.0/{phone}", get(phone))
            .route("/v21.0/{phone}/messages", post(messages))
            .with_state(shared.clone());
        let (addr, task) = serve(app).await?;
        Ok(Self { addr, shared, app_secret: app_secret.into(), task, http: reqwest::Client::new() })
    }

    /// The value for `WHATSAPP_API_URL`.
    pub fn url(&self) -> String {
        format!("http://{}/v21.0", self.addr)
    }

    /// `sha256=<hex>` of `body` with the app secret.
    pub fn sign(&self, body: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.app_secret.as_bytes()).unwrap_or_else(|_| unreachable!());
        mac.update(body.as_bytes());
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    /// The subscription check Meta makes: `GET <webhook>?hub.mode=subscribe&…`.
    pub async fn verify_subscription(
        &self,
        webhook: &str,
        verify_token: &str,
        challenge: &str,
    ) -> (u16, String) {
        let resp = self
            .http
            .get(webhook)
            .query(&[
                ("hub.mode", "subscribe"),
                ("hub.verify_token", verify_token),
                ("hub.challenge", challenge),
            ])
            .send()
            .await;
        match resp {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    /// POSTs `body` to `webhook` with `signature` as `X-Hub-Signature-256`; the status.
    pub async fn post_raw(&self, webhook: &str, body: &str, signature: &str) -> u16 {
        let resp = self
            .http
            .post(webhook)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(body.to_string())
            .send()
            .await;
        resp.map(|r| r.status().as_u16()).unwrap_or(0)
    }

    async fn notify(
        &self,
        webhook: &str,
        value: Value,
        timeout: Duration,
    ) -> Result<(), super::FakeChatError> {
        let body = json!({"object": "whatsapp_business_account",
            "entry": [{"id": "WABA1", "changes": [{"field": "messages", "value": value}]}]})
        .to_string();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let status = self.post_raw(webhook, &body, &self.sign(&body)).await;
            if status == 200 {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(super::FakeChatError::Webhook(status));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn value(&self, messages: Value, contacts: Value, statuses: Value) -> Value {
        json!({"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": self.shared.phone_number_id},
            "contacts": contacts, "messages": messages, "statuses": statuses})
    }

    /// A user (`wa_id`) writes `text`; Meta notifies `webhook` (retrying until 200 or
    /// `timeout`). Returns the message id.
    pub async fn user_says(
        &self,
        webhook: &str,
        wa_id: &str,
        name: &str,
        text: &str,
        timeout: Duration,
    ) -> Result<String, super::FakeChatError> {
        let id = format!("wamid.IN{}", self.shared.next.fetch_add(1, Ordering::SeqCst));
        let value = self.value(
            json!([{"from": wa_id, "id": id, "timestamp": "1700000000", "type": "text", "text": {"body": text}}]),
            json!([{"profile": {"name": name}, "wa_id": wa_id}]),
            json!([]),
        );
        self.notify(webhook, value, timeout).await.map(|()| id)
    }

    /// Meta reports the status of a message the bot sent (`sent`, `delivered`, `read`):
    /// the bot's own messages only ever come back this way.
    pub async fn status_update(
        &self,
        webhook: &str,
        message_id: &str,
        wa_id: &str,
        status: &str,
    ) -> Result<(), super::FakeChatError> {
        let value = self.value(
            json!([]),
            json!([]),
            json!([{"id": message_id, "status": status, "timestamp": "1700000001", "recipient_id": wa_id}]),
        );
        self.notify(webhook, value, Duration::from_secs(10)).await
    }

    /// Graph API calls fail with 500 while `down`.
    pub fn set_down(&self, down: bool) {
        self.shared.faults.down.store(down, Ordering::SeqCst);
    }

    /// The next `n` message sends get the pair rate-limit error.
    pub fn rate_limit_next(&self, n: u32) {
        self.shared.faults.rate_limited.store(n, Ordering::SeqCst);
    }

    /// Messages the bot sent.
    pub fn sent(&self) -> Vec<Sent> {
        self.shared.recorder.all()
    }

    /// Waits for at least `n` sent messages.
    pub async fn wait_sent(&self, n: usize, timeout: Duration) -> Result<Vec<Sent>, super::FakeChatError> {
        self.shared.recorder.wait(n, timeout).await
    }
}

async fn phone(State(s): State<Arc<Shared>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    if s.faults.is_down() {
        return graph_error(StatusCode::INTERNAL_SERVER_ERROR, 2, "Service temporarily unavailable");
    }
    if !bearer_ok(&headers, &s.token) {
        return graph_error(StatusCode::UNAUTHORIZED, 190, "Invalid OAuth access token.");
    }
    if id != s.phone_number_id {
        return graph_error(StatusCode::BAD_REQUEST, 100, "Unsupported get request.");
    }
    axum::Json(json!({"id": id, "display_phone_number": "+1 555-000-1111", "verified_name": "Sympozium"}))
        .into_response()
}

async fn messages(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if s.faults.is_down() {
        return graph_error(StatusCode::INTERNAL_SERVER_ERROR, 2, "Service temporarily unavailable");
    }
    if !bearer_ok(&headers, &s.token) {
        return graph_error(StatusCode::UNAUTHORIZED, 190, "Invalid OAuth access token.");
    }
    if id != s.phone_number_id {
        return graph_error(StatusCode::BAD_REQUEST, 100, "Unsupported post request.");
    }
    let p: Value = serde_json::from_slice(&body).unwrap_or_else(|_| json!({}));
    let to = p["to"].as_str().unwrap_or_default().to_string();
    let text = p["text"]["body"].as_str().unwrap_or_default().to_string();
    if p["messaging_product"].as_str() != Some("whatsapp") || to.is_empty() || text.is_empty() {
        return graph_error(StatusCode::BAD_REQUEST, 100, "Invalid parameter");
    }
    if text.chars().count() > 4096 {
        return graph_error(
            StatusCode::BAD_REQUEST,
            100,
            "Param text['body'] must be at most 4096 characters long.",
        );
    }
    if Faults::take(&s.faults.rate_limited) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            131056,
            "(Business Account, Consumer Account) pair rate limit hit",
        );
    }
    if Faults::take(&s.faults.failing_sends) {
        return graph_error(StatusCode::INTERNAL_SERVER_ERROR, 2, "Service temporarily unavailable");
    }
    let mid = format!("wamid.OUT{}", s.next.fetch_add(1, Ordering::SeqCst));
    let reply_to = p["context"]["message_id"].as_str().map(str::to_string);
    s.recorder.push(Sent { chat: to.clone(), thread: None, text, reply_to, body: p });
    axum::Json(json!({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
        "messages": [{"id": mid}]}))
    .into_response()
}
